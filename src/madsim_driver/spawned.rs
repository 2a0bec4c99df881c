//! A user's inventory service with a bug only its async form has: each order is handled
//! in a task of its own (`tokio::spawn` per message, so that a slow order does not hold
//! up the consumer), and the handler awaits between its check and its reservation.
//!
//! It is Confluent's `InventoryService` at least once, as `rekeyed-alo` is (the same
//! stores, changelogs, topics and group, so the same schema judges it), with one change a
//! team makes without thinking of it as a change to the design: the validation is sent,
//! and its acknowledgement awaited, between reading the reserved count and writing the
//! new one. While one handler waits at that `await`, the consumer hands the next order
//! to another handler, which reads the same reserved count. The sans-IO designs cannot
//! express this: a Kafka Streams processor handles one record at a time per task, and
//! nothing runs between its store read and its store write.

use super::services::{producer_config, subscribed, sync_tasks, Ctx, Tracker, NEVER_LOST, NO_WAIT};
use super::store::Store;
use crate::designs::rekeyed::{self, APP, INVENTORY, INVENTORY_STORE, RESERVED_STORE, VALIDATIONS};
use crate::domain::{InventoryRow, Msg};
use oversell_madsim::madsim::task;
use oversell_madsim::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use oversell_madsim::rdkafka::message::{BorrowedMessage, OwnedMessage};
use oversell_madsim::rdkafka::producer::{FutureProducer, FutureRecord};
use oversell_madsim::rdkafka::{Message, Offset, TopicPartitionList};
use oversell_sim::{changelog_topic, ClientId};
use std::sync::Arc;

/// The instance's parts its handlers share.
#[derive(Clone)]
struct Parts {
    inventory: Store,
    reserved: Store,
    producer: Arc<FutureProducer>,
    consumer: Arc<StreamConsumer<Tracker>>,
}

/// One instance: a consumer of `orders` and `warehouse-inventory`, a task per order.
pub async fn spawning_instance(ctx: Ctx) {
    let store = |name: &str| {
        let id = ClientId::new(ctx.instance.as_str(), APP);
        Store::new(id, name, ctx.stores.clone(), ctx.recorder.clone())
    };
    let (tracker, consumer) =
        subscribed(APP, "read_uncommitted", &["orders", INVENTORY], &ctx).await;
    let producer: FutureProducer = producer_config(APP, None, &ctx.streams)
        .create()
        .await
        .expect("valid producer settings");
    let parts = Parts {
        inventory: store(INVENTORY_STORE),
        reserved: store(RESERVED_STORE),
        producer: Arc::new(producer),
        consumer: Arc::new(consumer),
    };
    let changelogs = [
        (&parts.inventory, changelog_topic(APP, INVENTORY_STORE)),
        (&parts.reserved, changelog_topic(APP, RESERVED_STORE)),
    ];
    loop {
        let Ok(m) = parts.consumer.recv().await else {
            continue;
        };
        sync_tasks(&tracker, &changelogs, "read_uncommitted", &ctx, NEVER_LOST).await;
        let value = m
            .payload_view::<str>()
            .and_then(Result::ok)
            .unwrap_or_default();
        if matches!(Msg::decode(value), Some(Msg::OrderPlaced { .. })) {
            // Handle the order in its own task: the consumer goes on to the next record.
            task::spawn(handle_order(parts.clone(), m.detach()));
        } else {
            inventory_row(&parts, &m).await;
        }
    }
}

/// The KTable side: keep the product's absolute count, then commit.
async fn inventory_row(parts: &Parts, m: &BorrowedMessage<'_>) {
    let value = m
        .payload_view::<str>()
        .and_then(Result::ok)
        .unwrap_or_default();
    if let Some(row) = InventoryRow::decode(value) {
        let partition = m.partition() as u32;
        let count = row.count.to_string();
        parts
            .inventory
            .put(partition, &row.product_id, Some(count.clone()));
        let changelog = changelog_topic(APP, INVENTORY_STORE);
        let record = FutureRecord::to(&changelog)
            .partition(partition as i32)
            .key(&row.product_id)
            .payload(&count);
        let _ = parts.producer.send(record, NO_WAIT).await;
    }
    let _ = parts.consumer.commit_message(m, CommitMode::Sync).await;
}

/// Check, await, reserve: the reserved count read before the `await` is stale after it.
async fn handle_order(parts: Parts, m: OwnedMessage) {
    let value = m
        .payload_view::<str>()
        .and_then(Result::ok)
        .unwrap_or_default();
    let Some(Msg::OrderPlaced {
        order_id,
        product_id,
        quantity,
        ..
    }) = Msg::decode(value)
    else {
        return;
    };
    let partition = m.partition() as u32;
    let count = |store: &Store| -> Option<i64> {
        store
            .get(partition, &product_id)
            .and_then(|v| v.parse().ok())
    };
    let Some(stock) = count(&parts.inventory) else {
        commit_after(&parts, &m).await;
        return;
    };
    let (result, reserve) = rekeyed::reserve(stock, count(&parts.reserved).unwrap_or(0), quantity);
    let validation = Msg::OrderValidation {
        order_id: order_id.clone(),
        product_id: product_id.clone(),
        quantity,
        result,
    };
    let encoded = validation.encode();
    let record = FutureRecord::to(VALIDATIONS)
        .key(&order_id)
        .payload(&encoded);
    // The await point between the check and the reservation.
    let _ = parts.producer.send(record, NO_WAIT).await;
    if reserve.is_some() {
        // The reservation adds to the count as it is now, not as it was checked.
        let now = (count(&parts.reserved).unwrap_or(0) + quantity as i64).to_string();
        parts
            .reserved
            .put(partition, &product_id, Some(now.clone()));
        let changelog = changelog_topic(APP, RESERVED_STORE);
        let record = FutureRecord::to(&changelog)
            .partition(partition as i32)
            .key(&product_id)
            .payload(&now);
        let _ = parts.producer.send(record, NO_WAIT).await;
    }
    commit_after(&parts, &m).await;
}

/// Commit the offset after `m` (`commit_message` takes a `BorrowedMessage`, which a
/// spawned task cannot hold: it borrows the consumer).
async fn commit_after(parts: &Parts, m: &OwnedMessage) {
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))
        .expect("a partition list takes any offset");
    let _ = parts.consumer.commit(&offsets, CommitMode::Sync).await;
}
