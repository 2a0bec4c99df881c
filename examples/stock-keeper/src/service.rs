//! The service: consume, decide, produce — as it would run against a real cluster.

// The import switch. Under `--cfg madsim` the client is oversell's, served by its broker
// on a madsim node, and time is madsim's; in a real build they are `rdkafka` and `tokio`
// (`#[cfg(not(madsim))] use rdkafka;` and `use tokio::{task, time};`, with
// `rdkafka = { package = "madsim-rdkafka", ... }` and `tokio` as dependencies: the calls
// below are madsim-rdkafka's signatures), which this crate leaves out: it does not build
// librdkafka.
#[cfg(madsim)]
use madsim::{task, time};
#[cfg(madsim)]
use oversell_madsim::rdkafka;

use crate::{decide, Delivery, APP, CHANGELOG, COMMIT_INTERVAL_MS, ORDERS, STOCK, VALIDATIONS};
use oversell::{Msg, Validation};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long `recv` waits before the loop looks at a rebalance's restores again.
const POLL: Duration = Duration::from_millis(100);

/// One instance's store of units on hand: input partition → product → units.
#[derive(Clone, Default)]
pub struct OnHand(Arc<Mutex<BTreeMap<u32, BTreeMap<String, u64>>>>);

impl OnHand {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u32, BTreeMap<String, u64>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store now, partition by partition.
    pub fn contents(&self) -> BTreeMap<u32, BTreeMap<String, u64>> {
        self.lock().clone()
    }

    fn units(&self, partition: u32, product: &str) -> u64 {
        let store = self.lock();
        store
            .get(&partition)
            .and_then(|p| p.get(product))
            .copied()
            .unwrap_or(0)
    }

    fn set(&self, partition: u32, product: &str, units: u64) {
        let mut store = self.lock();
        store
            .entry(partition)
            .or_default()
            .insert(product.to_string(), units);
    }
}

/// The rebalance callbacks: the partitions of the last assignment, and the offsets
/// processed since the last commit (forgotten when a revocation ends the tasks).
#[derive(Clone, Default)]
struct Tasks(Arc<Mutex<TasksState>>);

#[derive(Default)]
struct TasksState {
    assigned: Option<Vec<u32>>,
    processed: BTreeMap<(String, i32), i64>,
}

impl ClientContext for Tasks {}

impl ConsumerContext for Tasks {
    fn pre_rebalance(&self, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.lock().processed.clear();
        }
    }

    fn post_rebalance(&self, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut parts: Vec<u32> = tpl
                .elements()
                .iter()
                .map(|e| e.partition() as u32)
                .collect();
            parts.sort_unstable();
            parts.dedup();
            self.lock().assigned = Some(parts);
        }
    }
}

impl Tasks {
    fn lock(&self) -> MutexGuard<'_, TasksState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Run one instance of the service until its node dies. `on_hand` is where it keeps its
/// store (the test reads it at the end); a (re)started instance starts it empty.
pub async fn run(instance: String, delivery: Delivery, on_hand: OnHand) {
    on_hand.lock().clear();
    let eos = delivery == Delivery::ExactlyOnce;
    let isolation = if eos {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let tasks = Tasks::default();
    let consumer: StreamConsumer<Tasks> = consumer_config(isolation)
        .set("group.id", APP)
        .create_with_context(tasks.clone())
        .await
        .expect("valid consumer settings");
    consumer
        .subscribe(&[ORDERS, STOCK])
        .expect("the topics exist");
    let consumer = Arc::new(consumer);
    let tid = format!("{APP}-{instance}");
    let mut producer = new_producer(eos.then_some(tid.as_str())).await;
    if !eos {
        task::spawn(commit_every(consumer.clone(), tasks.clone()));
    }
    loop {
        let next = time::timeout(POLL, consumer.recv()).await;
        // Taken first: no lock is held across the restore's awaits.
        let assigned = tasks.lock().assigned.take();
        if let Some(parts) = assigned {
            restore(&on_hand, &parts, isolation).await;
        }
        let Ok(Ok(m)) = next else {
            continue;
        };
        let out = handle(&on_hand, &m);
        if !eos {
            for (topic, key, value) in &out {
                let _ = producer.send(record(topic, key, value, &m), POLL).await;
            }
            let mut t = tasks.lock();
            t.processed
                .insert((m.topic().to_string(), m.partition()), m.offset() + 1);
        } else if in_transaction(&producer, &consumer, &m, &out)
            .await
            .is_err()
        {
            // Abort (or, fenced, start afresh); rejoining restores the store from the
            // committed changelog and resumes from the committed offsets.
            if producer.abort_transaction(POLL).await.is_err() {
                producer = new_producer(Some(&tid)).await;
            }
            consumer
                .subscribe(&[ORDERS, STOCK])
                .expect("the topics exist");
        }
    }
}

fn consumer_config(isolation: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("client.id", APP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("session.timeout.ms", "1000")
        .set("heartbeat.interval.ms", "100")
        .set("fetch.wait.max.ms", "10");
    c
}

async fn new_producer(transactional_id: Option<&str>) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("client.id", APP)
        .set("enable.idempotence", "true")
        .set("acks", "all");
    if let Some(tid) = transactional_id {
        c.set("transactional.id", tid);
    }
    let producer: FutureProducer = c.create().await.expect("valid producer settings");
    if transactional_id.is_some() {
        while producer.init_transactions(POLL).await.is_err() {
            time::sleep(POLL).await;
        }
    }
    producer
}

/// A record and its effects: the store's new value and the records to send, as
/// (topic, key, value).
fn handle(on_hand: &OnHand, m: &BorrowedMessage<'_>) -> Vec<(String, String, String)> {
    let partition = m.partition() as u32;
    let text = m
        .payload_view::<str>()
        .and_then(Result::ok)
        .unwrap_or_default();
    match Msg::decode(text) {
        Some(Msg::StockAdded {
            product_id,
            quantity,
        }) => {
            let units = on_hand.units(partition, &product_id) + quantity;
            on_hand.set(partition, &product_id, units);
            vec![(CHANGELOG.into(), product_id, units.to_string())]
        }
        Some(Msg::OrderPlaced {
            order_id,
            product_id,
            quantity,
            ..
        }) => {
            let left = decide(on_hand.units(partition, &product_id), quantity);
            let mut out = Vec::new();
            if let Some(left) = left {
                on_hand.set(partition, &product_id, left);
                out.push((CHANGELOG.into(), product_id.clone(), left.to_string()));
            }
            let result = if left.is_some() {
                Validation::Pass
            } else {
                Validation::Fail
            };
            let decision = Msg::OrderValidation {
                order_id: order_id.clone(),
                product_id,
                quantity,
                result,
            };
            out.push((VALIDATIONS.into(), order_id, decision.encode()));
            out
        }
        _ => Vec::new(),
    }
}

/// An output record; the changelog's goes to the input's partition (its task's).
fn record<'a>(
    topic: &'a str,
    key: &'a str,
    value: &'a str,
    input: &BorrowedMessage<'_>,
) -> FutureRecord<'a, str, str> {
    let r = FutureRecord::to(topic).key(key).payload(value);
    if topic == CHANGELOG {
        r.partition(input.partition())
    } else {
        r
    }
}

/// One transaction: the outputs, the changelog record and the input's offset.
async fn in_transaction(
    producer: &FutureProducer,
    consumer: &StreamConsumer<Tasks>,
    m: &BorrowedMessage<'_>,
    out: &[(String, String, String)],
) -> KafkaResult<()> {
    producer.begin_transaction()?;
    for (topic, key, value) in out {
        producer
            .send(record(topic, key, value, m), POLL)
            .await
            .map_err(|(e, _)| e)?;
    }
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))?;
    let group = consumer
        .group_metadata()
        .ok_or(KafkaError::ConsumerCommit(RDKafkaErrorCode::State))?;
    producer
        .send_offsets_to_transaction(&offsets, &group, POLL)
        .await?;
    producer.commit_transaction(POLL).await
}

/// At least once: commit what was processed every [`COMMIT_INTERVAL_MS`].
async fn commit_every(consumer: Arc<StreamConsumer<Tasks>>, tasks: Tasks) {
    loop {
        time::sleep(Duration::from_millis(COMMIT_INTERVAL_MS)).await;
        let processed = std::mem::take(&mut tasks.lock().processed);
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in processed {
            offsets
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .expect("any offset");
        }
        if offsets.count() > 0 {
            let _ = consumer.commit(&offsets, CommitMode::Sync).await;
        }
    }
}

/// Rebuild the store's `partitions` from the changelog, each up to its end as
/// `isolation` reads it; every other partition is dropped.
async fn restore(on_hand: &OnHand, partitions: &[u32], isolation: &str) {
    let mut restored = BTreeMap::new();
    for &p in partitions {
        let reader: StreamConsumer = consumer_config(isolation)
            .create()
            .await
            .expect("valid settings");
        let end = loop {
            match reader.fetch_watermarks(CHANGELOG, p as i32, POLL).await {
                Ok((_, end)) => break end,
                Err(_) => time::sleep(POLL).await,
            }
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(CHANGELOG, p as i32, Offset::Offset(0))
            .expect("any offset");
        reader.assign(&tpl).expect("manual assignment");
        let mut contents = BTreeMap::new();
        while position(&reader) < end {
            let Ok(Ok(m)) = time::timeout(POLL, reader.recv()).await else {
                continue;
            };
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let units = m
                .payload_view::<str>()
                .and_then(Result::ok)
                .and_then(|v| v.parse().ok());
            contents.insert(key, units.unwrap_or(0));
        }
        restored.insert(p, contents);
    }
    *on_hand.lock() = restored;
}

/// A restore reader's position in its one partition.
fn position(reader: &StreamConsumer) -> i64 {
    let tpl = reader
        .position()
        .expect("an assigned reader has a position");
    match tpl.elements().first().map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => 0,
    }
}
