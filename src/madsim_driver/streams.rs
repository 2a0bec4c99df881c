//! `saga` and `saga-direct-timers` as async services: each of the saga's two Kafka
//! Streams applications (OrderService, ProductService) is an ordinary async service on the
//! rdkafka-shaped client, one madsim node per instance, running the sans-IO design's own
//! processors (`ProcessManager`, `ProductLedger`, through [`Detached`]): the decisions and
//! the timers' logic are the design's, the loop around them is the service's.
//!
//! The loop is Kafka Streams' `StreamThread` under `exactly_once_v2`, reduced to one
//! sub-topology: a consumer of the sources (`read_committed`, eager rebalances), a task
//! per assigned partition whose stores are restored from their changelogs at every
//! rebalance, and one transactional producer per instance. Each input record is processed
//! in a transaction of its own with its outputs, its changelog records and its offset
//! (`send_offsets_to_transaction` with the group's metadata, KIP-447). A wall-clock
//! punctuation (`StreamTask.maybePunctuateSystemTime`, madsim's time) runs every task's
//! `punctuate`; what it writes is committed in a transaction with no offsets
//! (`TaskExecutor.commitOffsetsOrTransaction` commits a transaction whose offset map is
//! empty, `KafkaProducer.sendOffsetsToTransaction` sends nothing for it), so a zombie's
//! punctuation is not fenced by the group generation, as in Kafka; it runs over the tasks
//! assigned now. A failed transaction is aborted (a fenced producer replaced), every task
//! closed dirty and its stores wiped, and the consumer rejoined: the new assignment's
//! stores are restored from their committed changelogs and its processors built afresh.
//! Lost partitions (the member expelled, or a transaction fenced or its offsets refused
//! for the group generation) are handled as `rekeyed-eos` handles them (`services.rs`):
//! tasks closed, stores wiped, the producer replaced, the member rejoined.

use super::services::{
    close_at_poll, migrated, rejoin_migrated, subscribed, sync_tasks, Ctx, Tracker, Txn, NO_WAIT,
    POLL,
};
use super::store::{Store, Stores};
use crate::designs::saga::App;
use oversell_madsim::madsim::time::timeout;
use oversell_madsim::rdkafka::consumer::{Consumer, StreamConsumer};
use oversell_madsim::rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use oversell_madsim::rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use oversell_madsim::rdkafka::{Message, Offset, TopicPartitionList};
use oversell_madsim::record::now_ms;
use oversell_sim::protocol::Record;
use oversell_sim::{
    changelog_topic, ClientId, Detached, Input, Metadata, Millis, Processed, Processor,
    Punctuation, StoreQuery, StoreUnavailable, SubTopology, TopicPartition,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The topics' partition counts, as the client's metadata knows them.
struct ClusterMetadata;

impl Metadata for ClusterMetadata {
    fn partitions(&self, topic: &str) -> Option<u32> {
        oversell_madsim::cluster::partitions(topic)
    }
}

/// The saga's processors query no other instance's store.
struct NoQueries;

impl StoreQuery for NoQueries {
    fn query(&self, _store: &str, _key: &str) -> Result<Option<String>, StoreUnavailable> {
        Err(StoreUnavailable)
    }
}

/// One instance's running application: its stores and its tasks' processors.
struct Tasks<'a> {
    ctx: &'a Ctx,
    client: ClientId,
    sub: &'a SubTopology,
    stores: Vec<Store>,
    processors: BTreeMap<u32, Box<dyn Processor>>,
    /// The input partitions consumed since the tasks were built, and the offset last
    /// committed for each (`StreamTask.consumedOffsets`).
    consumed: BTreeMap<(String, i32), i64>,
}

impl<'a> Tasks<'a> {
    /// The instance's tasks, none built yet, and its stores, none hosted yet.
    fn new(ctx: &'a Ctx, client: ClientId, sub: &'a SubTopology) -> Tasks<'a> {
        let stores = (sub.stores.iter())
            .map(|s| Store::new(client.clone(), s, ctx.stores.clone(), ctx.recorder.clone()))
            .collect();
        Tasks {
            ctx,
            client,
            sub,
            stores,
            processors: BTreeMap::new(),
            consumed: BTreeMap::new(),
        }
    }

    /// The partitions whose stores this instance hosts (restored), in order.
    fn hosted(&self) -> Vec<u32> {
        self.stores.first().map_or_else(Vec::new, Store::hosted)
    }

    /// A task's processor: built by the sub-topology at the task's first use after a
    /// restore, as a new `StreamTask` builds its processors.
    fn step<R>(
        &mut self,
        partition: u32,
        timestamp: Millis,
        step: impl FnOnce(&mut dyn Processor, &mut oversell_sim::Context<'_, '_>) -> R,
    ) -> (R, Vec<(TopicPartition, Record)>) {
        let factory = &self.sub.processor;
        let processor = (self.processors)
            .entry(partition)
            .or_insert_with(|| factory(partition));
        let detached = Detached {
            client: &self.client,
            application_id: &self.client.app,
            partition,
            now: now_ms(),
            timestamp,
            meta: &ClusterMetadata,
            iq: &NoQueries,
        };
        let stores = &self.ctx.stores;
        let mut task = stores.check_out(&self.client.instance, partition, &self.sub.stores);
        let (r, (outputs, events)) = detached.step(&mut task, |c| step(processor.as_mut(), c));
        stores.check_in(&self.client.instance, partition, task);
        for e in events {
            self.ctx.recorder.event(e);
        }
        (r, outputs)
    }

    /// The tasks closed (a rebalance under the eager protocol): processors and consumed
    /// offsets forgotten.
    fn close(&mut self) {
        self.processors.clear();
        self.consumed.clear();
    }

    /// Every task closed dirty and, under exactly-once, its stores wiped
    /// (`TaskManager.handleLostAll` → `closeRunningTasksDirty`; `StateManagerUtil`
    /// wipes a dirty task's state under exactly-once): what the tasks wrote since their
    /// last commit is gone with them, and nothing is hosted until the next assignment
    /// restores its stores from their committed changelogs ([`sync_tasks`]).
    fn close_dirty(&mut self) {
        self.close();
        for store in &self.stores {
            for p in store.hosted() {
                store.drop_partition(p);
            }
        }
        debug_assert!(self.hosted().is_empty(), "a dirty close hosts no store");
    }
}

/// One instance of one of the saga's applications.
pub async fn saga_instance(ctx: Ctx, app: Arc<App>) {
    let [sub] = app.topology.subtopologies.as_slice() else {
        panic!("the saga's applications have one sub-topology each");
    };
    let name = app.application_id;
    let mut tasks = Tasks::new(&ctx, ClientId::new(ctx.instance.as_str(), name), sub);
    let stores = tasks.stores.clone();
    let changelogs: Vec<(&Store, String)> = (stores.iter())
        .map(|s| (s, changelog_topic(name, &s.name)))
        .collect();
    let topics: Vec<&str> = sub.sources.iter().map(String::as_str).collect();
    let (tracker, consumer) = subscribed(name, "read_committed", &topics, &ctx).await;
    let mut txn = Txn::new(name, &ctx).await;
    let every = punctuation_interval(sub);
    let mut next_punctuation = every.map(|e| now_ms() + e);
    loop {
        // `StreamThread.pollPhase`: a poll returns at the first records or after
        // `poll.ms`; the wall-clock punctuation runs after it, so an idle task's timers
        // fire up to `poll.ms` late, as in Kafka Streams. (A shorter wait would cancel a
        // `recv` in the middle of its first join, and the next would join as a new member.)
        let next = timeout(POLL, consumer.recv()).await;
        let lost = || consumer.assignment_lost();
        if sync_tasks(&tracker, &changelogs, "read_committed", &ctx, &lost).await {
            tasks.close();
        }
        if lost() {
            // No record or punctuation of a lost task.
            if close_at_poll(&changelogs, &mut txn, &ctx).await {
                tasks.close();
            }
            continue;
        }
        let done = match next {
            Ok(Ok(m)) => process(&mut tasks, &txn.producer, &consumer, &m).await,
            _ => commit_skipped(&mut tasks, &txn.producer, &consumer).await,
        };
        let done = match done {
            Ok(()) if due(&mut next_punctuation, every) => {
                punctuate(&mut tasks, &txn.producer, &consumer).await
            }
            done => done,
        };
        let Err(e) = done else {
            continue;
        };
        if migrated(&e) || consumer.assignment_lost() {
            tasks.close();
            let why = e.to_string();
            rejoin_migrated(&consumer, &topics, &changelogs, &mut txn, &why, &ctx).await;
            continue;
        }
        // Any other failed transaction (a timeout, a broker's error): `close_dirty`.
        txn.abort_or_replace(&ctx).await;
        tasks.close_dirty();
        consumer
            .subscribe(&topics)
            .expect("the design's topics exist");
    }
}

/// Whether the wall-clock punctuation is due now; if so, the next one is scheduled.
fn due(next: &mut Option<Millis>, every: Option<Millis>) -> bool {
    match (*next, every) {
        (Some(at), Some(e)) if now_ms() >= at => {
            *next = Some(now_ms() + e);
            true
        }
        _ => false,
    }
}

/// The wall-clock punctuation's interval of a sub-topology, if it punctuates.
fn punctuation_interval(sub: &SubTopology) -> Option<Millis> {
    match sub.punctuate {
        Some(Punctuation::WallClock(every)) => Some(every.max(1)),
        Some(Punctuation::StreamTime(_)) => panic!("the saga punctuates on wall-clock time"),
        None => None,
    }
}

/// One input record through its task's processor, in a transaction with its offset.
async fn process(
    tasks: &mut Tasks<'_>,
    producer: &FutureProducer,
    consumer: &StreamConsumer<Tracker>,
    m: &impl Message,
) -> KafkaResult<()> {
    let partition = m.partition() as u32;
    if !tasks.hosted().contains(&partition) {
        // A record of a partition revoked since it was fetched: its next owner's.
        return Ok(());
    }
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let timestamp = m.timestamp().to_millis().map_or_else(now_ms, |t| t as u64);
    let input = Input {
        tp: TopicPartition::new(m.topic(), partition),
        offset: m.offset() as u64,
        key: text(m.key()),
        value: text(m.payload()),
        timestamp,
    };
    let (processed, outputs) = tasks.step(partition, timestamp, |p, c| p.process(c, &input));
    assert_eq!(
        processed,
        Processed::Done,
        "a saga processor queries no store, so never waits to retry"
    );
    producer.begin_transaction()?;
    send_all(producer, &outputs).await?;
    let at = position(consumer, m.topic(), m.partition()).unwrap_or(m.offset() + 1);
    let offsets = BTreeMap::from([((m.topic().to_string(), m.partition()), at)]);
    commit_offsets(tasks, producer, consumer, offsets).await
}

/// The position of `consumer` in one partition: the next buffered record's offset, or
/// the next to fetch (past the control records and aborted records it skipped).
fn position(consumer: &StreamConsumer<Tracker>, topic: &str, partition: i32) -> Option<i64> {
    let positions = consumer.position().ok()?;
    let e = positions
        .elements()
        .into_iter()
        .find(|e| e.topic() == topic && e.partition() == partition)?;
    match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// `offsets` sent to the open transaction with the group's metadata (KIP-447), and the
/// transaction committed.
async fn commit_offsets(
    tasks: &mut Tasks<'_>,
    producer: &FutureProducer,
    consumer: &StreamConsumer<Tracker>,
    offsets: BTreeMap<(String, i32), i64>,
) -> KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), at) in &offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*at))?;
    }
    let group = consumer
        .group_metadata()
        .ok_or(KafkaError::ConsumerCommit(RDKafkaErrorCode::State))?;
    producer
        .send_offsets_to_transaction(&list, &group, NO_WAIT)
        .await?;
    producer.commit_transaction(NO_WAIT).await?;
    tasks.consumed.extend(offsets);
    Ok(())
}

/// `StreamTask.commitNeeded`: a consumed partition whose position has moved past what
/// was committed with no record processed (the consumer skipped a transaction's marker
/// or an aborted transaction's records) is committed at its position
/// (`StreamTask.committableOffsetsAndMetadata`), in a transaction of offsets only.
async fn commit_skipped(
    tasks: &mut Tasks<'_>,
    producer: &FutureProducer,
    consumer: &StreamConsumer<Tracker>,
) -> KafkaResult<()> {
    let moved: BTreeMap<(String, i32), i64> = (tasks.consumed.iter())
        .filter_map(|((topic, p), &done)| {
            let at = position(consumer, topic, *p)?;
            (at > done).then(|| ((topic.clone(), *p), at))
        })
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    producer.begin_transaction()?;
    commit_offsets(tasks, producer, consumer, moved).await
}

/// Every running task's wall-clock punctuation; what they write, in one transaction
/// without offsets (none when they write nothing). A task runs while its partitions are
/// assigned: a revocation suspends it (under the eager protocol the member's every task,
/// `TaskManager.handleRevocation`) until the rejoin's assignment, so a member whose
/// rejoin is under way (its heartbeat told it to rejoin, its consumer revoked everything
/// and has no assignment yet) punctuates nothing, though it still hosts the stores.
async fn punctuate(
    tasks: &mut Tasks<'_>,
    producer: &FutureProducer,
    consumer: &StreamConsumer<Tracker>,
) -> KafkaResult<()> {
    let now = now_ms();
    let assignment = consumer.assignment().unwrap_or_default();
    let assigned: BTreeSet<u32> = (assignment.elements().into_iter())
        .map(|e| e.partition() as u32)
        .collect();
    let mut outputs = Vec::new();
    for partition in (tasks.hosted().into_iter()).filter(|p| assigned.contains(p)) {
        let ((), written) = tasks.step(partition, now, |p, c| p.punctuate(c));
        outputs.extend(written);
    }
    if outputs.is_empty() {
        return Ok(());
    }
    producer.begin_transaction()?;
    send_all(producer, &outputs).await?;
    producer.commit_transaction(NO_WAIT).await
}

/// Send a step's records, each to the partition the step chose.
async fn send_all(
    producer: &FutureProducer,
    outputs: &[(TopicPartition, Record)],
) -> KafkaResult<()> {
    for (tp, r) in outputs {
        let mut record = FutureRecord::<str, str>::to(&tp.topic)
            .partition(tp.partition as i32)
            .timestamp(r.timestamp as i64);
        if let Some(k) = &r.key {
            record = record.key(k.as_str());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_str());
        }
        producer.send(record, NO_WAIT).await.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Whether a timer of a hosted task still has work (a payment to settle, a reservation
/// to expire), read from the stores as the simulator's world reads `next_timer`: a run
/// is not quiescent while one has.
pub fn timers_pending(apps: &[Arc<App>], stores: &Stores) -> bool {
    let all = stores.snapshot();
    apps.iter().any(|app| {
        let sub = &app.topology.subtopologies[0];
        all.values().any(|hosted| {
            let mut tasks: BTreeMap<u32, BTreeMap<String, BTreeMap<String, String>>> =
                BTreeMap::new();
            for ((store, partition), contents) in hosted {
                if sub.stores.contains(store) {
                    let task = tasks.entry(*partition).or_default();
                    task.insert(store.clone(), contents.clone());
                }
            }
            (tasks.iter()).any(|(p, task)| (sub.processor)(*p).next_timer(task).is_some())
        })
    })
}

/// The saga's applications when `design` is one of its forms (`None` otherwise).
pub fn saga_apps(design: &str, scenario: &crate::scenario::Scenario) -> Option<Vec<Arc<App>>> {
    let direct_timers = match design {
        "saga" => false,
        "saga-direct-timers" => true,
        _ => return None,
    };
    let saga = crate::designs::Saga { direct_timers };
    Some(saga.apps(scenario).into_iter().map(Arc::new).collect())
}

/// One node per instance of each application, `<application>-<i>`; a restart runs the
/// instance afresh (its stores restored from their changelogs).
pub fn start_saga(
    apps: &[Arc<App>],
    scenario: &crate::scenario::Scenario,
    stores: &Stores,
    recorder: &oversell_madsim::record::Recorder,
) -> BTreeMap<String, oversell_madsim::madsim::runtime::NodeHandle> {
    use std::net::{IpAddr, Ipv4Addr};
    let mut nodes = BTreeMap::new();
    for (a, app) in apps.iter().enumerate() {
        for i in 0..scenario.topology.instances {
            let ctx = Ctx {
                instance: format!("{}-{i}", app.application_id),
                streams: app.config.clone(),
                stores: stores.clone(),
                recorder: recorder.clone(),
                partitions: scenario.topology.partitions,
            };
            let name = ctx.instance.clone();
            let app = app.clone();
            let node = oversell_madsim::madsim::runtime::Handle::current()
                .create_node()
                .name(name.as_str())
                .ip(IpAddr::V4(Ipv4Addr::new(10, 9, 3 + a as u8, 1 + i as u8)))
                .init(move || {
                    let (ctx, app) = (ctx.clone(), app.clone());
                    ctx.stores.forget(&ctx.instance);
                    saga_instance(ctx, app)
                })
                .build();
            nodes.insert(name, node);
        }
    }
    nodes
}
