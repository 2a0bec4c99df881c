//! The designs as ordinary async services on the rdkafka-shaped client: what a user's
//! own service looks like on the madsim driver.
//!
//! * `naive`: the question's ProductService as one process with two tasks: a consumer
//!   of `orders` that checks `ProductStock` by interactive query and publishes
//!   `ProductReserved` or `OrderRejected`, and a consumer of `orders` and `stock` that
//!   folds them into `ProductStock` (at least once: offsets committed after the store
//!   write and its changelog record);
//! * `rekeyed-eos`: Confluent's InventoryService under exactly-once: one consumer of
//!   `orders` and `warehouse-inventory` (`read_committed`) and one transactional producer;
//!   each record is validated and reserved over the two stores in one transaction with
//!   its output, its changelog records and its offset (`send_offsets_to_transaction`
//!   with the group's metadata). The frontend keys orders by product already, so the
//!   select-key repartition step of the simulator's topology is not needed here.
//!
//! Both share their decisions with the simulator's designs (`naive::reply`,
//! `naive::stock_change`, `rekeyed::reserve`). Under a failed transaction the stores are
//! wiped and rebuilt from their committed changelogs and the consumer rejoins to resume
//! from the committed offsets, as Kafka Streams does under `exactly_once_v2`. When the
//! partitions are lost — the member expelled (`Consumer::assignment_lost`), or a
//! transaction fenced or its offsets refused for the group generation — the tasks are
//! closed dirty as Kafka Streams' `TaskManager.handleLostAll` closes them: the open
//! transaction aborted, the stores wiped (not rebuilt: another member owns those
//! partitions now), the producer replaced, and the member leaves and joins again; its
//! next assignment is restored from the changelogs.

use super::store::{Store, Stores};
use crate::designs::naive::{self, CHECKER_APP, STOCK_APP, STORE};
use crate::designs::rekeyed::{self, APP, INVENTORY, INVENTORY_STORE, RESERVED_STORE, VALIDATIONS};
use crate::domain::{InventoryRow, Msg};
use oversell_madsim::madsim::time::{sleep, timeout, Duration};
use oversell_madsim::rdkafka::config::ClientConfig;
use oversell_madsim::rdkafka::consumer::{
    CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use oversell_madsim::rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use oversell_madsim::rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use oversell_madsim::rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use oversell_madsim::record::Recorder;
use oversell_sim::partitioner::partition_for_key;
use oversell_sim::{changelog_topic, ClientId, Scheduled, StreamsConfig, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// What every service instance gets.
#[derive(Clone)]
pub struct Ctx {
    pub instance: String,
    pub streams: StreamsConfig,
    pub stores: Stores,
    pub recorder: Recorder,
    pub partitions: u32,
}

pub(super) const NO_WAIT: Duration = Duration::from_secs(0);

/// How long a processing loop waits in `recv` before it looks for a rebalance's store
/// work again (Kafka Streams' `poll.ms`, 100 ms by default): a rebalance's restoration
/// does not wait for the next record, so a member that gets no more records still
/// restores what it was given. Safe to cancel: a `recv` cancelled in a fetch fetches
/// again, one cancelled in a rejoin joins again (a known member's `JoinGroup` in a
/// stable group is answered with its assignment, without a rebalance).
pub(super) const POLL: Duration = Duration::from_millis(100);

/// A consumer's settings from the simulator's streams settings (same timings).
pub(super) fn consumer_config(app: &str, isolation: &str, s: &StreamsConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("client.id", app)
        .set("group.id", app)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", s.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", s.heartbeat_interval_ms.to_string())
        .set("max.poll.interval.ms", s.rebalance_timeout_ms.to_string())
        .set("request.timeout.ms", s.request_timeout_ms.to_string())
        .set("retry.backoff.ms", s.retry_backoff_ms.to_string())
        .set("fetch.wait.max.ms", "10");
    c
}

pub(super) fn producer_config(
    app: &str,
    transactional_id: Option<&str>,
    s: &StreamsConfig,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("client.id", app)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("request.timeout.ms", s.request_timeout_ms.to_string())
        .set("retry.backoff.ms", s.retry_backoff_ms.to_string())
        .set(
            "transaction.timeout.ms",
            s.transaction_timeout_ms.to_string(),
        );
    if let Some(tid) = transactional_id {
        c.set("transactional.id", tid);
    }
    c
}

/// The rebalance callbacks: every partition revoked since the last look, and the last
/// assignment. Under the eager protocol a rebalance revokes everything, and a member may
/// go through several rebalances between two records: a partition revoked and then
/// assigned again must still be restored, since another member may have written its
/// changelog meanwhile.
#[derive(Clone, Default)]
pub struct Tracker(Arc<Mutex<Rebalanced>>);

#[derive(Default)]
struct Rebalanced {
    revoked: BTreeSet<u32>,
    assigned: Option<Vec<u32>>,
    /// The offsets processed and not yet committed, forgotten at a revocation.
    pending: Pending,
}

fn partitions_of(tpl: &TopicPartitionList) -> impl Iterator<Item = u32> + '_ {
    tpl.elements().into_iter().map(|e| e.partition() as u32)
}

impl ClientContext for Tracker {}

impl ConsumerContext for Tracker {
    fn pre_rebalance(&self, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut r = self.lock();
            r.revoked.extend(partitions_of(tpl));
            // Under the eager protocol a revocation ends every task: what it processed
            // and did not commit is the next owner's to process again, and is never
            // committed by this member under its next generation.
            r.pending.take();
        }
    }

    fn post_rebalance(&self, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: BTreeSet<u32> = partitions_of(tpl).collect();
            self.lock().assigned = Some(parts.into_iter().collect());
        }
    }
}

impl Tracker {
    /// The offsets to commit, cleared at every revocation.
    fn pending(&self) -> Pending {
        self.lock().pending.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rebalanced> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (revoked since the last look, the new assignment), once per rebalance.
    fn take(&self) -> Option<(BTreeSet<u32>, Vec<u32>)> {
        let mut r = self.lock();
        let assigned = r.assigned.take()?;
        Some((std::mem::take(&mut r.revoked), assigned))
    }
}

/// Whether the assignment a restoration works for was lost meanwhile: a restoration
/// stops when it is, as Kafka Streams' `TaskManager.handleLostAll` removes the lost
/// tasks still restoring (`removeLostActiveTasksFromStateUpdaterAndPendingTasksToInit`)
/// at the first poll after the loss. A service that keeps its tasks' stores at a loss
/// (at least once: no wipe) passes [`NEVER_LOST`].
pub(super) type Lost<'a> = &'a (dyn Fn() -> bool + Sync);

pub(super) const NEVER_LOST: Lost<'static> = &|| false;

/// After a rebalance: drop the stores' partitions revoked or no longer assigned and
/// restore the assigned ones from their changelogs (`StoreChangelogReader`), reading as
/// `isolation` does, until `lost` says the assignment was lost. Whether a rebalance was
/// seen.
pub(super) async fn sync_tasks(
    tracker: &Tracker,
    stores: &[(&Store, String)],
    isolation: &str,
    ctx: &Ctx,
    lost: Lost<'_>,
) -> bool {
    let Some((revoked, assigned)) = tracker.take() else {
        return false;
    };
    for (store, changelog) in stores {
        for p in store.hosted() {
            if revoked.contains(&p) || !assigned.contains(&p) {
                store.drop_partition(p);
            }
        }
        let hosted = store.hosted();
        for p in assigned.iter().filter(|p| !hosted.contains(p)) {
            restore(store, changelog, *p, isolation, ctx, lost).await;
        }
    }
    true
}

/// Whether a failed transaction means the instance's tasks migrated away: Kafka
/// Streams' `StreamsProducer.commitTransaction` turns `ProducerFencedException`,
/// `InvalidProducerEpochException` and `CommitFailedException` (the `TxnOffsetCommit`
/// answered `UNKNOWN_MEMBER_ID` or `ILLEGAL_GENERATION`, `TransactionManager`'s
/// `TxnOffsetCommitHandler`) into a `TaskMigratedException`.
pub(super) fn migrated(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::IllegalGeneration
        )
    )
}

/// Whether this instance hosts a partition of any of `stores`.
///
/// Lost partitions: when the coordinator expels the member (its heartbeat answered
/// `UNKNOWN_MEMBER_ID` or `ILLEGAL_GENERATION`) the client revokes them with
/// `Rebalance::Revoke` and reports `Consumer::assignment_lost()` until its next
/// assignment, as librdkafka does (`rd_kafka_assignment_lost`); rdkafka 0.34's rebalance
/// callbacks get no consumer to ask, so the processing loops ask after each poll, where
/// Kafka's consumer calls `onPartitionsLost` (`ConsumerCoordinator.onJoinPrepare` at the
/// poll that finds the generation reset).
pub(super) fn hosts_any(stores: &[(&Store, String)]) -> bool {
    stores.iter().any(|(s, _)| !s.hosted().is_empty())
}

/// Kafka Streams' `TaskManager.handleLostAll` under exactly-once, for the stores: every
/// active task is closed dirty (`closeTaskDirty` → `StreamTask.closeDirty`), and a dirty
/// close under exactly-once wipes the task's state directory
/// (`StateManagerUtil.closeStateManager`: `wipeStateStore = !closeClean && eosEnabled`),
/// so every hosted partition of every store is dropped; a later assignment restores it
/// from its changelog ([`sync_tasks`]). Recorded as the client's error, with why.
/// (The caller aborts the open transaction and replaces the producer:
/// `RecordCollectorImpl.closeDirty` → `StreamsProducer.abortTransaction`, then
/// `ActiveTaskCreator.reInitializeProducer`.)
pub(super) fn close_lost_tasks(stores: &[(&Store, String)], why: &str, ctx: &Ctx) {
    let Some((first, _)) = stores.first() else {
        return;
    };
    let mut wiped = BTreeSet::new();
    for (store, _) in stores {
        for p in store.hosted() {
            store.drop_partition(p);
            wiped.insert(p);
        }
    }
    ctx.recorder.event(oversell_sim::Event::ClientError {
        client: first.client.clone(),
        what: format!("tasks lost ({why}): closed dirty, stores of partitions {wiped:?} wiped"),
    });
    for (store, _) in stores {
        assert!(store.hosted().is_empty(), "a lost task's store is wiped");
    }
}

/// An exactly-once instance's transactional producer: one transactional id per instance,
/// kept across restarts, so a restarted instance fences its previous incarnation
/// (`exactly_once_v2` with a persistent process id).
pub(super) struct Txn<'a> {
    tid: String,
    app: &'a str,
    pub producer: FutureProducer,
}

impl<'a> Txn<'a> {
    pub(super) async fn new(app: &'a str, ctx: &Ctx) -> Txn<'a> {
        let tid = format!("{app}-{}", ctx.instance);
        let producer = transactional(&tid, app, ctx).await;
        Txn { tid, app, producer }
    }

    /// A new producer for this id (`ActiveTaskCreator.reInitializeProducer`).
    pub(super) async fn replace(&mut self, ctx: &Ctx) {
        self.producer = transactional(&self.tid, self.app, ctx).await;
    }

    /// The open transaction aborted or, the producer fenced, a new producer.
    pub(super) async fn abort_or_replace(&mut self, ctx: &Ctx) {
        if self.producer.abort_transaction(NO_WAIT).await.is_err() {
            self.replace(ctx).await;
        }
    }
}

/// A consumer of `app`'s group reading as `isolation` reads, its rebalances tracked,
/// subscribed to `topics`.
pub(super) async fn subscribed(
    app: &str,
    isolation: &str,
    topics: &[&str],
    ctx: &Ctx,
) -> (Tracker, StreamConsumer<Tracker>) {
    let tracker = Tracker::default();
    let consumer: StreamConsumer<Tracker> = consumer_config(app, isolation, &ctx.streams)
        .create_with_context(tracker.clone())
        .await
        .expect("valid consumer settings");
    consumer
        .subscribe(topics)
        .expect("the design's topics exist");
    (tracker, consumer)
}

/// At the poll that finds the member expelled (`StreamsRebalanceListener.onPartitionsLost`
/// → `TaskManager.handleLostAll`): the tasks closed dirty, their stores wiped, the
/// producer re-initialised; the caller processes no record of a lost task. Whether any
/// task was hosted (and so closed).
pub(super) async fn close_at_poll(
    changelogs: &[(&Store, String)],
    txn: &mut Txn<'_>,
    ctx: &Ctx,
) -> bool {
    if !hosts_any(changelogs) {
        return false;
    }
    close_lost_tasks(changelogs, "the group expelled the member", ctx);
    txn.replace(ctx).await;
    true
}

/// `StreamThread.handleTaskMigrated` after a failed transaction that means the tasks
/// migrated ([`migrated`], or the assignment lost): `TaskManager.handleLostAll` (the open
/// transaction aborted, the tasks closed dirty and their stores wiped, the producer
/// re-initialised), then `unsubscribe` and `subscribe`: the member leaves and joins
/// again, and its next assignment is restored from the changelogs.
pub(super) async fn rejoin_migrated(
    consumer: &StreamConsumer<Tracker>,
    topics: &[&str],
    changelogs: &[(&Store, String)],
    txn: &mut Txn<'_>,
    why: &str,
    ctx: &Ctx,
) {
    let _ = txn.producer.abort_transaction(NO_WAIT).await;
    close_lost_tasks(changelogs, why, ctx);
    txn.replace(ctx).await;
    consumer.unsubscribe();
    consumer
        .subscribe(topics)
        .expect("the design's topics exist");
}

/// `TaskManager.closeDirtyAndRevive` under exactly-once: every hosted partition's stores
/// wiped (a dirty close, `StateManagerUtil.closeStateManager`) and then restored from
/// their committed changelogs; none is a view while it is rebuilt.
pub(super) async fn revive(stores: &[(&Store, String)], ctx: &Ctx, lost: Lost<'_>) {
    let hosted: Vec<(usize, u32)> = (stores.iter().enumerate())
        .flat_map(|(i, (store, _))| store.hosted().into_iter().map(move |p| (i, p)))
        .collect();
    for &(i, p) in &hosted {
        stores[i].0.drop_partition(p);
    }
    for &(i, p) in &hosted {
        let (store, changelog) = &stores[i];
        restore(store, changelog, p, "read_committed", ctx, lost).await;
    }
}

/// Rebuild one partition of a store from its changelog, read as `isolation` reads (a
/// restore consumer reads `read_committed` under exactly-once), up to the log's end;
/// abandoned, the partition not hosted, once `lost` says the assignment was lost.
///
/// The end is the log end offset whatever the isolation, as Kafka Streams asks it
/// (`StoreChangelogReader.endOffsetForChangelogs` lists offsets `READ_UNCOMMITTED`,
/// KAFKA-10167); a `read_committed` consumer's watermark is the last stable offset, which
/// an open transaction holds back (a zombie's, until it is aborted): restored up to it,
/// a store would miss the committed records written after that transaction began. Read
/// `read_committed`, the position passes an open transaction only once it ends, so the
/// restore waits for it, as Kafka Streams' does.
pub async fn restore(
    store: &Store,
    changelog: &str,
    partition: u32,
    isolation: &str,
    ctx: &Ctx,
    lost: Lost<'_>,
) {
    let mut config = consumer_config(&store.client.app, isolation, &ctx.streams);
    config.remove("group.id");
    let consumer: StreamConsumer = config
        .create()
        .await
        .expect("valid restore consumer settings");
    let mut ends = consumer_config(&store.client.app, "read_uncommitted", &ctx.streams);
    ends.remove("group.id");
    let ends: StreamConsumer = ends
        .create()
        .await
        .expect("valid end offset consumer settings");
    let end = loop {
        match ends
            .fetch_watermarks(changelog, partition as i32, NO_WAIT)
            .await
        {
            Ok((_, end)) => break end,
            Err(_) => sleep(Duration::from_millis(ctx.streams.retry_backoff_ms)).await,
        }
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(changelog, partition as i32, Offset::Offset(0))
        .expect("a partition list takes any offset");
    consumer.assign(&tpl).expect("manual assignment");
    let mut contents = BTreeMap::new();
    let mut records = 0;
    // Done when the position reaches the end (`StoreChangelogReader.hasRestoredToEnd`):
    // a transaction's marker may be the last entry, so no record need carry end - 1.
    while position(&consumer) < end {
        if lost() {
            return;
        }
        let wait = Duration::from_millis(ctx.streams.retry_backoff_ms.max(1));
        let Ok(Ok(m)) = timeout(wait, consumer.recv()).await else {
            continue;
        };
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        match m.payload_view::<str>().and_then(Result::ok) {
            Some(v) => contents.insert(key, v.to_string()),
            None => contents.remove(&key),
        };
        records += 1;
    }
    let tp = TopicPartition::new(changelog, partition);
    store.restored(partition, contents, records, tp, end.max(0) as u64);
}

/// The restore consumer's position in its one partition.
fn position(consumer: &StreamConsumer) -> i64 {
    let tpl = consumer
        .position()
        .expect("an assigned consumer has positions");
    match tpl.elements().first().map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => 0,
    }
}

/// At least once, as Kafka Streams commits (`StreamThread.maybeCommit`): the offsets of
/// processed records are committed every `commit.interval.ms`, not after each record, so
/// a crash in between replays what was processed since the last commit. The processing
/// loop notes each record once its work is done; a task of the instance commits what
/// was noted, for the partitions still assigned (a revoked partition's uncommitted
/// offsets are left to its new owner, which processes those records again).
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<BTreeMap<(String, i32), i64>>>);

impl Pending {
    fn processed(&self, m: &impl Message) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
    }

    fn take(&self) -> BTreeMap<(String, i32), i64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Commit what was noted every `interval_ms`, forever (the node's death ends it).
    async fn commit_every<C: ConsumerContext>(
        self,
        consumer: Arc<StreamConsumer<C>>,
        interval_ms: u64,
    ) {
        loop {
            sleep(Duration::from_millis(interval_ms.max(1))).await;
            let assigned = consumer.assignment().unwrap_or_default();
            let assigned = assigned.elements();
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), offset) in self.take() {
                let owned = assigned
                    .iter()
                    .any(|e| e.topic() == topic && e.partition() == partition);
                if owned {
                    offsets
                        .add_partition_offset(&topic, partition, Offset::Offset(offset))
                        .expect("a partition list takes any offset");
                }
            }
            if offsets.count() > 0 {
                let _ = consumer.commit(&offsets, CommitMode::Sync).await;
            }
        }
    }
}

/// The outside world: orders and stock records, each sent at its time, one at a time,
/// with the scenario's `acks`; idempotent as the simulator's frontend is (`kit.rs`:
/// unless the topology says otherwise, and only with `acks=all`).
pub async fn frontend(
    mut schedule: Vec<Scheduled>,
    streams: StreamsConfig,
    acks: oversell_sim::protocol::Acks,
    idempotent: bool,
) {
    // In time order, records of equal time in the schedule's order (`SourceClient::new`
    // sorts it so): a scenario need not list its orders by time.
    schedule.sort_by_key(|s| s.at);
    let producer: FutureProducer = producer_config("producer", None, &streams)
        .set("acks", acks.to_string())
        .set("enable.idempotence", idempotent.to_string())
        .create()
        .await
        .expect("valid producer settings");
    for s in schedule {
        let now = oversell_madsim::record::now_ms();
        if s.at > now {
            sleep(Duration::from_millis(s.at - now)).await;
        }
        let record = FutureRecord::to(&s.topic).key(&s.key).payload(&s.value);
        if producer.send(record, NO_WAIT).await.is_err() {
            panic!("the frontend's producer, not transactional, is never fenced");
        }
    }
}

/// `naive`: one product-service instance, both of its tasks.
pub async fn naive_instance(ctx: Ctx) {
    let store = |app: &str| {
        let id = ClientId::new(ctx.instance.as_str(), app);
        Store::new(id, STORE, ctx.stores.clone(), ctx.recorder.clone())
    };
    let (stock, checker) = (store(STOCK_APP), store(CHECKER_APP));
    oversell_madsim::madsim::task::spawn(stock_task(ctx.clone(), stock));
    check_task(ctx, checker).await;
}

/// The question's stream processor: fold stock changes into `ProductStock`.
async fn stock_task(ctx: Ctx, store: Store) {
    let (tracker, consumer) =
        subscribed(STOCK_APP, "read_uncommitted", &["orders", "stock"], &ctx).await;
    let producer: FutureProducer = producer_config(STOCK_APP, None, &ctx.streams)
        .create()
        .await
        .expect("valid producer settings");
    let changelog = changelog_topic(STOCK_APP, STORE);
    let consumer = Arc::new(consumer);
    let commits = tracker.pending();
    let interval = ctx.streams.commit_interval_ms;
    oversell_madsim::madsim::task::spawn(commits.clone().commit_every(consumer.clone(), interval));
    loop {
        let next = timeout(POLL, consumer.recv()).await;
        sync_tasks(
            &tracker,
            &[(&store, changelog.clone())],
            "read_uncommitted",
            &ctx,
            NEVER_LOST,
        )
        .await;
        let Ok(Ok(m)) = next else {
            continue;
        };
        let partition = m.partition() as u32;
        if let Some((product, delta)) = m
            .payload_view::<str>()
            .and_then(Result::ok)
            .and_then(naive::stock_change)
        {
            let stock: i64 = store
                .get(partition, &product)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let value = (stock + delta).to_string();
            store.put(partition, &product, Some(value.clone()));
            let record = FutureRecord::to(&changelog)
                .partition(partition as i32)
                .key(&product)
                .payload(&value);
            let _ = producer.send(record, NO_WAIT).await;
        }
        commits.processed(&m);
    }
}

/// The question's consumer: check `ProductStock` by interactive query, then publish.
async fn check_task(ctx: Ctx, store: Store) {
    let (tracker, consumer) = subscribed(CHECKER_APP, "read_uncommitted", &["orders"], &ctx).await;
    let producer: FutureProducer = producer_config(CHECKER_APP, None, &ctx.streams)
        .create()
        .await
        .expect("valid producer settings");
    let consumer = Arc::new(consumer);
    let commits = tracker.pending();
    let interval = ctx.streams.commit_interval_ms;
    oversell_madsim::madsim::task::spawn(commits.clone().commit_every(consumer.clone(), interval));
    loop {
        let Ok(m) = consumer.recv().await else {
            continue;
        };
        let order = m
            .payload_view::<str>()
            .and_then(Result::ok)
            .and_then(Msg::decode);
        if let Some(Msg::OrderPlaced {
            order_id,
            product_id,
            quantity,
            ..
        }) = order
        {
            let partition = partition_for_key(&product_id, ctx.partitions);
            // Integer productStock = getProductStock(order.getProductId());
            let stock: i64 = loop {
                match store.query(partition, &product_id) {
                    Some(v) => break v.and_then(|v| v.parse().ok()).unwrap_or(0),
                    None => sleep(Duration::from_millis(10)).await,
                }
            };
            let reply = naive::reply(stock, order_id, &product_id, quantity).encode();
            let record = FutureRecord::to("orders").key(&product_id).payload(&reply);
            let _ = producer.send(record, NO_WAIT).await;
        }
        commits.processed(&m);
    }
}

/// `rekeyed-eos`: one inventory-service instance.
pub async fn inventory_instance(ctx: Ctx) {
    let store = |name: &str| {
        let id = ClientId::new(ctx.instance.as_str(), APP);
        Store::new(id, name, ctx.stores.clone(), ctx.recorder.clone())
    };
    let (inventory, reserved) = (store(INVENTORY_STORE), store(RESERVED_STORE));
    let changelogs = [
        (&inventory, changelog_topic(APP, INVENTORY_STORE)),
        (&reserved, changelog_topic(APP, RESERVED_STORE)),
    ];
    let topics = ["orders", INVENTORY];
    let (tracker, consumer) = subscribed(APP, "read_committed", &topics, &ctx).await;
    let mut txn = Txn::new(APP, &ctx).await;
    loop {
        let next = timeout(POLL, consumer.recv()).await;
        let lost = || consumer.assignment_lost();
        sync_tasks(&tracker, &changelogs, "read_committed", &ctx, &lost).await;
        if lost() {
            // No transaction is open between two records here.
            close_at_poll(&changelogs, &mut txn, &ctx).await;
            continue;
        }
        let Ok(Ok(m)) = next else {
            continue;
        };
        let Err(e) =
            validate_in_transaction(&txn.producer, &consumer, &m, &inventory, &reserved).await
        else {
            continue;
        };
        if migrated(&e) || consumer.assignment_lost() {
            let why = e.to_string();
            rejoin_migrated(&consumer, &topics, &changelogs, &mut txn, &why, &ctx).await;
            continue;
        }
        // Any other failed transaction: abort it (or, fenced, start a new producer),
        // rebuild the stores from their committed changelogs and resume from the
        // committed offsets (`TaskManager.handleCorruption` → `closeDirtyAndRevive`).
        txn.abort_or_replace(&ctx).await;
        revive(&changelogs, &ctx, &|| consumer.assignment_lost()).await;
        consumer
            .subscribe(&topics)
            .expect("the design's topics exist");
    }
}

pub(super) async fn transactional(tid: &str, app: &str, ctx: &Ctx) -> FutureProducer {
    let producer: FutureProducer = producer_config(app, Some(tid), &ctx.streams)
        .create()
        .await
        .expect("valid producer settings");
    while producer.init_transactions(NO_WAIT).await.is_err() {
        sleep(Duration::from_millis(ctx.streams.retry_backoff_ms)).await;
    }
    producer
}

/// An order checked against the inventory and reserved stock of its product: the
/// reservation and the validation pushed to `out` as (topic, key, value).
fn validate_order(
    partition: u32,
    order_id: String,
    product_id: String,
    quantity: u64,
    inventory: &Store,
    reserved: &Store,
    out: &mut Vec<(String, String, String)>,
) {
    let Some(stock) = inventory.get(partition, &product_id) else {
        return;
    };
    let stock: i64 = stock.parse().unwrap_or(0);
    let held: i64 = reserved
        .get(partition, &product_id)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (result, now_reserved) = rekeyed::reserve(stock, held, quantity);
    if let Some(r) = now_reserved {
        reserved.put(partition, &product_id, Some(r.to_string()));
        out.push((
            changelog_topic(APP, RESERVED_STORE),
            product_id.clone(),
            r.to_string(),
        ));
    }
    let validation = Msg::OrderValidation {
        order_id: order_id.clone(),
        product_id,
        quantity,
        result,
    };
    out.push((VALIDATIONS.to_string(), order_id, validation.encode()));
}

/// One input record in one transaction: the stores' writes and their changelog records,
/// the validation, and the consumer's offset.
async fn validate_in_transaction(
    producer: &FutureProducer,
    consumer: &StreamConsumer<Tracker>,
    m: &impl Message,
    inventory: &Store,
    reserved: &Store,
) -> KafkaResult<()> {
    producer.begin_transaction()?;
    let partition = m.partition() as u32;
    let value = m
        .payload_view::<str>()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut out: Vec<(String, String, String)> = Vec::new(); // (topic, key, value)
    match Msg::decode(value) {
        Some(Msg::StockAdded { product_id, .. }) => {
            let count = InventoryRow::decode(value)
                .expect("the warehouse writes counted rows")
                .count;
            inventory.put(partition, &product_id, Some(count.to_string()));
            out.push((
                changelog_topic(APP, INVENTORY_STORE),
                product_id,
                count.to_string(),
            ));
        }
        Some(Msg::OrderPlaced {
            order_id,
            product_id,
            quantity,
            ..
        }) => validate_order(
            partition, order_id, product_id, quantity, inventory, reserved, &mut out,
        ),
        _ => {}
    }
    for (topic, key, value) in &out {
        let mut record = FutureRecord::to(topic).key(key).payload(value);
        if topic.ends_with("-changelog") {
            record = record.partition(partition as i32);
        }
        producer.send(record, NO_WAIT).await.map_err(|(e, _)| e)?;
    }
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))?;
    let group = consumer
        .group_metadata()
        .ok_or(KafkaError::ConsumerCommit(RDKafkaErrorCode::State))?;
    producer
        .send_offsets_to_transaction(&offsets, &group, NO_WAIT)
        .await?;
    producer.commit_transaction(NO_WAIT).await
}
