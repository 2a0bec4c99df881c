//! Kafka Streams' processing loop as a sans-IO client.
//!
//! A [`StreamsClient`] is one `KafkaStreams` instance with one stream thread: it joins the
//! application's consumer group, creates a task per assigned input partition (per
//! sub-topology), fetches its committed offsets, restores the task's state stores from
//! their changelog topics, then loops poll → process → produce → commit.
//!
//! * `at_least_once`: outputs and changelog writes are produced (and acknowledged) before
//!   the offsets are committed; a crash in between means the records are processed again
//!   with the store already written.
//! * `exactly_once_v2`: one transactional producer per thread (`transactional.id` derived
//!   from the instance, stable across restarts); outputs, changelog writes and offsets go in
//!   one transaction; the offset commit carries the group generation (KIP-447), so a zombie
//!   is fenced; a crash leaves the transaction open until the restarted instance's
//!   `InitProducerId` or the broker's transaction timeout aborts it; stores are restored
//!   from the committed changelog (`read_committed`).
//!
//! Heartbeats run on their own lane, as the consumer's heartbeat thread does; the
//! processing loop learns of a rebalance only when it next polls.

use crate::client::{Client, Env, Metadata, StoreUnavailable};
use crate::partitioner::partition_for_key;
use crate::protocol::*;
use crate::trace::Event;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// `processing.guarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Guarantee {
    AtLeastOnce,
    ExactlyOnceV2,
}

/// Configuration of one streams application instance. Defaults are scaled down from
/// Kafka's so that runs stay short; each is named after the Kafka setting it models.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group, and the prefix of changelog topics.
    pub application_id: String,
    /// `processing.guarantee`.
    pub guarantee: Guarantee,
    /// `commit.interval.ms`. Default 100.
    pub commit_interval_ms: Millis,
    /// `session.timeout.ms`. Default 300.
    pub session_timeout_ms: Millis,
    /// `heartbeat.interval.ms`. Default 100.
    pub heartbeat_interval_ms: Millis,
    /// `max.poll.interval.ms`, used as the rebalance timeout. Default 1000.
    pub rebalance_timeout_ms: Millis,
    /// `request.timeout.ms`: an unanswered request is retried after this. Default 200.
    pub request_timeout_ms: Millis,
    /// `retry.backoff.ms`, also the wait after an empty fetch. Default 10.
    pub retry_backoff_ms: Millis,
    /// `transaction.timeout.ms`. Default 1000.
    pub transaction_timeout_ms: Millis,
    /// `max.poll.records`. Default 50.
    pub max_poll_records: usize,
    /// `enable.idempotence` of the at-least-once producer. Default true (Kafka >= 3.0).
    pub idempotent_producer: bool,
    /// Test-only mutation: offsets are committed when records are fetched, before they are
    /// processed (at most once). Default false.
    pub commit_before_process: bool,
    /// Test-only mutation: under exactly-once, skip the generation check of the offset
    /// commit (a pre-KIP-447 zombie is not fenced). Default false.
    pub unfenced_offsets: bool,
    /// Test-only mutation: read with `read_uncommitted` even under exactly-once. Default false.
    pub read_uncommitted: bool,
}

impl StreamsConfig {
    pub fn new(application_id: impl Into<String>, guarantee: Guarantee) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            guarantee,
            commit_interval_ms: 100,
            session_timeout_ms: 300,
            heartbeat_interval_ms: 100,
            rebalance_timeout_ms: 1000,
            request_timeout_ms: 200,
            retry_backoff_ms: 10,
            transaction_timeout_ms: 1000,
            max_poll_records: 50,
            idempotent_producer: true,
            commit_before_process: false,
            unfenced_offsets: false,
            read_uncommitted: false,
        }
    }

    fn eos(&self) -> bool {
        self.guarantee == Guarantee::ExactlyOnceV2
    }

    fn isolation(&self) -> Isolation {
        if self.eos() && !self.read_uncommitted {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }

    /// The changelog topic of a store.
    pub fn changelog(&self, store: &str) -> String {
        changelog_topic(&self.application_id, store)
    }
}

/// `<application.id>-<store>-changelog`, as Kafka Streams names it.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// A record handed to a processor.
#[derive(Clone, Debug)]
pub struct Input {
    pub tp: TopicPartition,
    pub offset: Offset,
    pub key: Option<String>,
    pub value: Option<String>,
    pub timestamp: Millis,
}

/// What a processor did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Processed {
    Done,
    /// Could not process now (a store it queries is unavailable): keep the record and
    /// retry after the backoff.
    Retry,
}

/// The application logic of one task. Built afresh per task by its sub-topology.
pub trait Processor {
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed;
    /// Called on each punctuation of the sub-topology (see [`SubTopology::punctuate`]).
    fn punctuate(&mut self, _ctx: &mut Context<'_, '_>) {}
}

/// When a sub-topology's punctuator fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Punctuation {
    /// `PunctuationType.WALL_CLOCK_TIME` (simulated wall clock), every so many ms.
    WallClock(Millis),
    /// `PunctuationType.STREAM_TIME`: when the task's stream time passes each multiple.
    StreamTime(Millis),
}

/// Builds the processor of a task.
pub type ProcessorFactory = Arc<dyn Fn(u32) -> Box<dyn Processor> + Send + Sync>;

/// A sub-topology: co-partitioned source topics, the stores of its tasks, its processor.
#[derive(Clone)]
pub struct SubTopology {
    pub name: String,
    pub sources: Vec<String>,
    pub stores: Vec<String>,
    pub processor: ProcessorFactory,
    pub punctuate: Option<Punctuation>,
}

#[derive(Clone, Default)]
pub struct Topology {
    pub subtopologies: Vec<SubTopology>,
}

impl Topology {
    fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .subtopologies
            .iter()
            .flat_map(|s| s.sources.iter().cloned())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    fn subtopology_of(&self, topic: &str) -> Option<usize> {
        self.subtopologies
            .iter()
            .position(|s| s.sources.iter().any(|t| t == topic))
    }
}

/// A task: a sub-topology at one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaskId {
    pub subtopology: usize,
    pub partition: u32,
}

struct Task {
    processor: Box<dyn Processor>,
    stores: BTreeMap<String, BTreeMap<String, String>>,
    stream_time: Millis,
    next_stream_punctuation: Millis,
}

/// What a processor sees while it processes a record or punctuates.
pub struct Context<'c, 'e> {
    client: &'c str,
    partition: u32,
    stores: &'c mut BTreeMap<String, BTreeMap<String, String>>,
    application_id: &'c str,
    outputs: &'c mut Vec<(TopicPartition, Record)>,
    env: &'c mut Env<'e>,
    timestamp: Millis,
}

impl<'c, 'e> Context<'c, 'e> {
    /// Simulated wall-clock time.
    pub fn now(&self) -> Millis {
        self.env.now
    }

    /// The partition of the task.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn client(&self) -> &str {
        self.client
    }

    fn store(&mut self, store: &str) -> &mut BTreeMap<String, String> {
        match self.stores.get_mut(store) {
            Some(s) => s,
            None => panic!(
                "processor of {} used store {store:?} which its sub-topology does not declare",
                self.client
            ),
        }
    }

    /// Read a key of one of the task's own stores.
    pub fn get(&mut self, store: &str, key: &str) -> Option<String> {
        let value = self.store(store).get(key).cloned();
        let event = Event::StoreGet {
            client: self.client.to_string(),
            store: store.to_string(),
            key: key.to_string(),
            value: value.clone(),
        };
        self.env.event(event);
        value
    }

    /// All entries of one of the task's own stores, in key order.
    pub fn entries(&mut self, store: &str) -> Vec<(String, String)> {
        self.store(store)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Write a key (`None` deletes it); the write goes to the store's changelog.
    pub fn put(&mut self, store: &str, key: &str, value: Option<String>) {
        let s = self.store(store);
        match &value {
            Some(v) => {
                s.insert(key.to_string(), v.clone());
            }
            None => {
                s.remove(key);
            }
        }
        let tp = TopicPartition::new(changelog_topic(self.application_id, store), self.partition);
        self.outputs.push((
            tp,
            Record {
                key: Some(key.to_string()),
                value: value.clone(),
                timestamp: self.timestamp,
                headers: Vec::new(),
            },
        ));
        let event = Event::StorePut {
            client: self.client.to_string(),
            store: store.to_string(),
            key: key.to_string(),
            value,
        };
        self.env.event(event);
    }

    /// Send a record to a topic, partitioned by its key with Kafka's default partitioner.
    pub fn send(&mut self, topic: &str, key: &str, value: String) {
        let Some(n) = self.env.meta.partitions(topic) else {
            let event = Event::ClientError {
                client: self.client.to_string(),
                what: format!("topic {topic} does not exist; record dropped"),
            };
            self.env.event(event);
            return;
        };
        let tp = TopicPartition::new(topic, partition_for_key(key, n));
        self.outputs.push((
            tp,
            Record {
                key: Some(key.to_string()),
                value: Some(value),
                timestamp: self.timestamp,
                headers: Vec::new(),
            },
        ));
    }

    /// Interactive query of a store anywhere in the application (possibly another
    /// instance's, possibly stale).
    pub fn query(&mut self, store: &str, key: &str) -> Result<Option<String>, StoreUnavailable> {
        let value = self.env.iq.query(store, key);
        if let Ok(v) = &value {
            let event = Event::StoreGet {
                client: self.client.to_string(),
                store: store.to_string(),
                key: key.to_string(),
                value: v.clone(),
            };
            self.env.event(event);
        }
        value
    }

    /// Record a note in the trace (a design explaining a decision).
    pub fn note(&mut self, text: impl Into<String>) {
        let event = Event::Note {
            client: self.client.to_string(),
            text: text.into(),
        };
        self.env.event(event);
    }
}

/// Where the processing loop is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Obtain a producer id (transactional under EOS, idempotent under ALO).
    InitProducer,
    /// (Re)join the group; `backoff_until` after a pending answer.
    Join {
        backoff_until: Millis,
    },
    /// Fetch the committed offsets of the assignment.
    FetchOffsets {
        backoff_until: Millis,
    },
    /// Restore the stores of the tasks, one changelog partition after another.
    Restore,
    Run,
    /// Commit in progress: send the offsets next.
    CommitOffsets {
        then: AfterCommit,
    },
    /// EOS: offsets sent to the transaction; end it next.
    EndTxn {
        commit: bool,
        then: AfterCommit,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterCommit {
    Continue,
    Rejoin,
}

#[derive(Clone, Debug)]
struct Waiting {
    corr: u64,
    request: Request,
    deadline: Millis,
}

struct RestoreItem {
    task: TaskId,
    store: String,
    tp: TopicPartition,
    position: Offset,
    records: usize,
    /// Under exactly-once: the changelog's high watermark when restoration began, which
    /// restoration must reach (KAFKA-10167). Read-committed fetches stop at the LSO, so
    /// this waits out transactions still open below it — a zombie's, whose records may
    /// precede committed ones — instead of declaring the store restored at a pinned LSO.
    end: Option<Offset>,
    /// No progress possible before this time (an open transaction pins the LSO).
    backoff_until: Millis,
}

/// One Kafka Streams instance (one stream thread) of an application.
pub struct StreamsClient {
    name: String,
    instance: String,
    config: StreamsConfig,
    topology: Topology,
    phase: Phase,
    // Group membership, shared by the processing loop and the heartbeat lane.
    member_id: Option<String>,
    generation: Generation,
    in_group: bool,
    rejoin_needed: bool,
    /// The heartbeat learnt that the group expired this member.
    member_lost: bool,
    assignment: Vec<TopicPartition>,
    next_heartbeat: Millis,
    // Producer.
    producer: Option<(ProducerId, Epoch)>,
    sequences: BTreeMap<TopicPartition, i32>,
    txn_open: bool,
    // Tasks and positions.
    tasks: BTreeMap<TaskId, Task>,
    restoring: VecDeque<RestoreItem>,
    fetch_positions: BTreeMap<TopicPartition, Offset>,
    processed: BTreeMap<TopicPartition, Offset>,
    committed: BTreeMap<TopicPartition, Offset>,
    caught_up: BTreeMap<TopicPartition, bool>,
    /// Fetched, unprocessed records, per input partition.
    buffer: BTreeMap<TopicPartition, VecDeque<Input>>,
    /// Partitions a record was consumed from since the assignment.
    consumed: BTreeSet<TopicPartition>,
    retry_until: Millis,
    outputs: Vec<(TopicPartition, Record)>,
    /// Processed since the last successful commit.
    dirty: bool,
    /// Mutation `commit_before_process`: commit before processing what was just fetched.
    commit_now: bool,
    last_commit: Millis,
    next_fetch: usize,
    idle_until: Millis,
    next_wall_punctuation: Millis,
    // Requests in flight, per lane.
    main: Option<Waiting>,
    heartbeat: Option<Waiting>,
}

const MAIN: usize = 0;
const HEARTBEAT: usize = 1;

impl StreamsClient {
    pub fn new(instance: &str, config: StreamsConfig, topology: Topology) -> Self {
        let name = format!("{instance}/{}", config.application_id);
        let needs_producer = config.eos() || config.idempotent_producer;
        StreamsClient {
            name,
            instance: instance.to_string(),
            phase: if needs_producer {
                Phase::InitProducer
            } else {
                Phase::Join { backoff_until: 0 }
            },
            config,
            topology,
            member_id: None,
            generation: 0,
            in_group: false,
            rejoin_needed: false,
            member_lost: false,
            assignment: Vec::new(),
            next_heartbeat: 0,
            producer: None,
            sequences: BTreeMap::new(),
            txn_open: false,
            tasks: BTreeMap::new(),
            restoring: VecDeque::new(),
            fetch_positions: BTreeMap::new(),
            processed: BTreeMap::new(),
            committed: BTreeMap::new(),
            caught_up: BTreeMap::new(),
            buffer: BTreeMap::new(),
            consumed: BTreeSet::new(),
            retry_until: 0,
            outputs: Vec::new(),
            dirty: false,
            commit_now: false,
            last_commit: 0,
            next_fetch: 0,
            idle_until: 0,
            next_wall_punctuation: 0,
            main: None,
            heartbeat: None,
        }
    }

    fn transactional_id(&self) -> String {
        format!("{}-{}", self.config.application_id, self.instance)
    }

    fn identity(&self) -> Option<ProducerIdentity> {
        self.producer.map(|(producer_id, epoch)| ProducerIdentity {
            producer_id,
            epoch,
            transactional_id: self.config.eos().then(|| self.transactional_id()),
        })
    }

    fn group_metadata(&self) -> GroupMetadata {
        GroupMetadata {
            group: self.config.application_id.clone(),
            member_id: self.member_id.clone().unwrap_or_default(),
            generation: self.generation,
        }
    }

    fn send_main(&mut self, request: Request, env: &mut Env<'_>) {
        let corr = env.send(request.clone());
        self.main = Some(Waiting {
            corr,
            request,
            deadline: env.now + self.config.request_timeout_ms,
        });
    }

    fn error(&self, env: &mut Env<'_>, what: String) {
        env.event(Event::ClientError {
            client: self.name.clone(),
            what,
        });
    }

    /// Close every task without committing (Kafka Streams' "close dirty" after a task
    /// migration): in-memory state, buffered records and unsent outputs are dropped.
    fn close_tasks_dirty(&mut self) {
        self.tasks.clear();
        self.restoring.clear();
        self.buffer.clear();
        self.consumed.clear();
        self.outputs.clear();
        self.fetch_positions.clear();
        self.processed.clear();
        self.committed.clear();
        self.caught_up.clear();
        self.assignment.clear();
        self.dirty = false;
        self.commit_now = false;
    }

    /// The task was migrated away or the producer fenced: drop everything, rejoin.
    fn task_migrated(&mut self, env: &mut Env<'_>, why: &str, reset_member: bool) {
        self.error(
            env,
            format!("task migrated ({why}): closing tasks dirty and rejoining"),
        );
        self.close_tasks_dirty();
        self.in_group = false;
        self.rejoin_needed = false;
        if reset_member {
            self.member_id = None;
        }
        if self.config.eos() && self.txn_open {
            // The open transaction is aborted by the re-initialisation of the producer.
            self.txn_open = false;
            self.producer = None;
        }
        if self.config.eos() && self.producer.is_none() {
            self.sequences.clear();
            self.phase = Phase::InitProducer;
        } else {
            self.phase = Phase::Join { backoff_until: 0 };
        }
    }

    fn commit_due(&self, now: Millis) -> bool {
        self.dirty && now >= self.last_commit + self.config.commit_interval_ms
    }

    fn wall_punctuation(&self) -> Option<Millis> {
        self.topology
            .subtopologies
            .iter()
            .find_map(|s| match s.punctuate {
                Some(Punctuation::WallClock(every)) => Some(every),
                _ => None,
            })
    }

    fn main_ready(&self, now: Millis) -> bool {
        if let Some(w) = &self.main {
            return now >= w.deadline;
        }
        match &self.phase {
            Phase::InitProducer | Phase::CommitOffsets { .. } | Phase::EndTxn { .. } => true,
            Phase::Restore => {
                !matches!(self.restoring.front(), Some(item) if now < item.backoff_until)
            }
            Phase::Join { backoff_until } | Phase::FetchOffsets { backoff_until } => {
                now >= *backoff_until
            }
            Phase::Run => {
                self.rejoin_needed
                    || (self.next_input().is_some() && now >= self.retry_until)
                    || !self.outputs.is_empty()
                    || self.commit_due(now)
                    || (self.wall_punctuation().is_some()
                        && !self.tasks.is_empty()
                        && now >= self.next_wall_punctuation)
                    || (!self.assignment.is_empty()
                        && self.next_input().is_none()
                        && now >= self.idle_until)
            }
        }
    }

    fn main_wakeup(&self) -> Option<Millis> {
        if let Some(w) = &self.main {
            return Some(w.deadline);
        }
        match &self.phase {
            Phase::Join { backoff_until } | Phase::FetchOffsets { backoff_until } => {
                Some(*backoff_until)
            }
            Phase::Restore => self.restoring.front().map(|item| item.backoff_until),
            Phase::Run => {
                let mut t: Option<Millis> = None;
                let mut at = |x: Millis| t = Some(t.map_or(x, |t| t.min(x)));
                if self.next_input().is_some() {
                    at(self.retry_until);
                }
                if self.dirty {
                    at(self.last_commit + self.config.commit_interval_ms);
                }
                if self.wall_punctuation().is_some() && !self.tasks.is_empty() {
                    at(self.next_wall_punctuation);
                }
                if !self.assignment.is_empty() && self.next_input().is_none() {
                    at(self.idle_until);
                }
                t
            }
            _ => None,
        }
    }

    fn step_main(&mut self, env: &mut Env<'_>) {
        if let Some(w) = self.main.take() {
            env.event(Event::Timeout {
                client: self.name.clone(),
                what: format!("request unanswered: retrying {}", request_name(&w.request)),
            });
            self.send_main(w.request, env);
            return;
        }
        match self.phase.clone() {
            Phase::InitProducer => {
                let transactional_id = self.config.eos().then(|| self.transactional_id());
                let request = Request::InitProducerId {
                    transactional_id,
                    transaction_timeout_ms: self.config.transaction_timeout_ms,
                };
                self.send_main(request, env);
            }
            Phase::Join { .. } => {
                let request = Request::JoinGroup {
                    group: self.config.application_id.clone(),
                    member_id: self.member_id.clone(),
                    topics: self.topology.topics(),
                    session_timeout_ms: self.config.session_timeout_ms,
                    rebalance_timeout_ms: self.config.rebalance_timeout_ms,
                };
                self.send_main(request, env);
            }
            Phase::FetchOffsets { .. } => {
                let request = Request::OffsetFetch {
                    group: self.config.application_id.clone(),
                    partitions: self.assignment.clone(),
                    require_stable: self.config.eos(),
                };
                self.send_main(request, env);
            }
            Phase::Restore => match self.restoring.front() {
                None => self.start_running(env),
                Some(item) => {
                    let request = Request::Fetch {
                        tp: item.tp.clone(),
                        offset: item.position,
                        max_records: 500,
                        isolation: self.config.isolation(),
                    };
                    self.send_main(request, env);
                }
            },
            Phase::Run => self.step_run(env),
            Phase::CommitOffsets { then } => self.send_offsets(then, env),
            Phase::EndTxn { commit, .. } => {
                let Some(producer) = self.identity() else {
                    self.task_migrated(env, "no producer to end the transaction", false);
                    return;
                };
                self.send_main(Request::EndTxn { producer, commit }, env);
            }
        }
    }

    fn start_running(&mut self, env: &mut Env<'_>) {
        self.phase = Phase::Run;
        self.last_commit = env.now;
        self.idle_until = env.now;
        if let Some(every) = self.wall_punctuation() {
            self.next_wall_punctuation = env.now + every;
        }
    }

    fn step_run(&mut self, env: &mut Env<'_>) {
        let now = env.now;
        if self.rejoin_needed && self.member_lost {
            // onPartitionsLost: nothing may be committed; close dirty, rejoin as new.
            self.member_lost = false;
            self.task_migrated(env, "member expired from the group", true);
            return;
        }
        if self.rejoin_needed {
            // Eager rebalance: commit what was processed, then revoke everything and rejoin.
            self.rejoin_needed = false;
            if self.dirty || !self.outputs.is_empty() || self.txn_open {
                if !self.outputs.is_empty() {
                    self.send_outputs(env);
                    self.rejoin_needed = true; // come back here once the produce is acked
                    return;
                }
                self.phase = Phase::CommitOffsets {
                    then: AfterCommit::Rejoin,
                };
                self.send_offsets(AfterCommit::Rejoin, env);
            } else {
                self.revoke_and_rejoin();
            }
            return;
        }
        if self.commit_now && self.outputs.is_empty() {
            self.commit_now = false;
            self.phase = Phase::CommitOffsets {
                then: AfterCommit::Continue,
            };
            self.send_offsets(AfterCommit::Continue, env);
            return;
        }
        if let Some(tp) = self.next_input() {
            if now >= self.retry_until {
                self.process_one(tp, env);
                return;
            }
        }
        if !self.outputs.is_empty() {
            self.send_outputs(env);
            return;
        }
        if self.commit_due(now) {
            self.phase = Phase::CommitOffsets {
                then: AfterCommit::Continue,
            };
            self.send_offsets(AfterCommit::Continue, env);
            return;
        }
        if let Some(every) = self.wall_punctuation() {
            if !self.tasks.is_empty() && now >= self.next_wall_punctuation {
                self.next_wall_punctuation = now + every;
                self.punctuate_all(env, |p| matches!(p, Some(Punctuation::WallClock(_))));
                return;
            }
        }
        if !self.assignment.is_empty() && self.next_input().is_none() && now >= self.idle_until {
            self.fetch_next(env);
        }
    }

    fn revoke_and_rejoin(&mut self) {
        self.close_tasks_dirty();
        self.in_group = false;
        self.phase = Phase::Join { backoff_until: 0 };
    }

    fn punctuate_all(&mut self, env: &mut Env<'_>, which: impl Fn(Option<Punctuation>) -> bool) {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let sub = &self.topology.subtopologies[id.subtopology];
            if !which(sub.punctuate) {
                continue;
            }
            self.punctuate_task(id, env);
        }
    }

    fn punctuate_task(&mut self, id: TaskId, env: &mut Env<'_>) {
        let sub_name = self.topology.subtopologies[id.subtopology].name.clone();
        env.event(Event::Punctuate {
            client: self.name.clone(),
            task: TopicPartition::new(sub_name, id.partition),
            at: env.now,
        });
        let task = self.tasks.get_mut(&id).expect("task exists");
        let timestamp = env.now;
        let mut ctx = Context {
            client: &self.name,
            partition: id.partition,
            stores: &mut task.stores,
            application_id: &self.config.application_id,
            outputs: &mut self.outputs,
            env,
            timestamp,
        };
        let before = ctx.outputs.len();
        task.processor.punctuate(&mut ctx);
        // A punctuation that wrote nothing leaves nothing to commit.
        if self.outputs.len() > before {
            self.dirty = true;
        }
    }

    /// The partition whose head record is processed next, as Kafka Streams' partition
    /// group chooses it: among tasks whose every input partition has buffered data or is
    /// known to be caught up (KIP-695), the head record with the smallest timestamp.
    fn next_input(&self) -> Option<TopicPartition> {
        let mut best: Option<(Millis, &TopicPartition)> = None;
        for (tp, queue) in &self.buffer {
            let Some(head) = queue.front() else { continue };
            let sub = self.topology.subtopology_of(&tp.topic);
            let task_ready = self
                .assignment
                .iter()
                .filter(|t| {
                    t.partition == tp.partition && self.topology.subtopology_of(&t.topic) == sub
                })
                .all(|t| {
                    self.buffer.get(t).is_some_and(|q| !q.is_empty())
                        || self.caught_up.get(t) == Some(&true)
                });
            if task_ready && best.is_none_or(|(ts, _)| head.timestamp < ts) {
                best = Some((head.timestamp, tp));
            }
        }
        best.map(|(_, tp)| tp.clone())
    }

    fn buffered(&self) -> bool {
        self.buffer.values().any(|q| !q.is_empty())
    }

    fn process_one(&mut self, tp: TopicPartition, env: &mut Env<'_>) {
        let input = self.buffer[&tp]
            .front()
            .expect("chosen partition has a record")
            .clone();
        let Some(sub) = self.topology.subtopology_of(&input.tp.topic) else {
            unreachable!("fetched a topic no sub-topology reads");
        };
        let id = TaskId {
            subtopology: sub,
            partition: input.tp.partition,
        };
        let Some(task) = self.tasks.get_mut(&id) else {
            unreachable!("record of a partition without a task");
        };
        env.event(Event::Process {
            client: self.name.clone(),
            tp: input.tp.clone(),
            offset: input.offset,
            key: input.key.clone(),
            value: input.value.clone(),
        });
        let mut ctx = Context {
            client: &self.name,
            partition: id.partition,
            stores: &mut task.stores,
            application_id: &self.config.application_id,
            outputs: &mut self.outputs,
            env,
            timestamp: input.timestamp,
        };
        match task.processor.process(&mut ctx, &input) {
            Processed::Retry => {
                self.retry_until = env.now + self.config.retry_backoff_ms;
            }
            Processed::Done => {
                if let Some(q) = self.buffer.get_mut(&tp) {
                    q.pop_front();
                }
                self.processed.insert(input.tp.clone(), input.offset + 1);
                self.consumed.insert(input.tp.clone());
                self.dirty = true;
                task.stream_time = task.stream_time.max(input.timestamp);
                let mut due = false;
                if let Some(Punctuation::StreamTime(every)) =
                    self.topology.subtopologies[sub].punctuate
                {
                    if task.stream_time >= task.next_stream_punctuation {
                        task.next_stream_punctuation = (task.stream_time / every + 1) * every;
                        due = true;
                    }
                }
                if due {
                    self.punctuate_task(id, env);
                }
            }
        }
    }

    fn fetch_next(&mut self, env: &mut Env<'_>) {
        let n = self.assignment.len();
        let tp = self.assignment[self.next_fetch % n].clone();
        self.next_fetch = (self.next_fetch + 1) % n;
        let offset = *self.fetch_positions.get(&tp).unwrap_or(&0);
        let request = Request::Fetch {
            tp,
            offset,
            max_records: self.config.max_poll_records,
            isolation: self.config.isolation(),
        };
        self.send_main(request, env);
    }

    fn send_outputs(&mut self, env: &mut Env<'_>) {
        let eos = self.config.eos();
        let mut batches: Vec<ProduceBatch> = Vec::new();
        for (tp, record) in self.outputs.drain(..) {
            match batches.iter_mut().find(|b| b.tp == tp) {
                Some(b) => b.records.push(record),
                None => batches.push(ProduceBatch {
                    tp,
                    base_sequence: None,
                    records: vec![record],
                }),
            }
        }
        if self.producer.is_some() {
            for b in &mut batches {
                let seq = self.sequences.entry(b.tp.clone()).or_insert(0);
                b.base_sequence = Some(*seq);
                *seq += b.records.len() as i32;
            }
        }
        if eos {
            self.txn_open = true;
        }
        let request = Request::Produce {
            producer: self.identity(),
            batches,
        };
        self.send_main(request, env);
    }

    fn send_offsets(&mut self, then: AfterCommit, env: &mut Env<'_>) {
        // As Kafka Streams' committable offsets: every partition a record was consumed from
        // since the assignment, changed or not. Under exactly-once this is what carries the
        // group generation to the broker (KIP-447); a transaction with no consumed
        // partition (punctuation only, on a task that consumed nothing) commits unchecked.
        let offsets: Vec<(TopicPartition, Offset)> = self
            .processed
            .iter()
            .filter(|(tp, _)| self.consumed.contains(*tp))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        let unchanged = offsets
            .iter()
            .all(|(tp, o)| self.committed.get(tp) == Some(o));
        if !self.config.eos() && unchanged {
            self.finish_commit(then, env);
            return;
        }
        if self.config.eos() {
            if unchanged && !self.txn_open {
                self.finish_commit(then, env);
                return;
            }
            let Some(producer) = self.identity() else {
                self.task_migrated(env, "no transactional producer", false);
                return;
            };
            if offsets.is_empty() {
                self.phase = Phase::EndTxn { commit: true, then };
                self.send_main(
                    Request::EndTxn {
                        producer,
                        commit: true,
                    },
                    env,
                );
                return;
            }
            let mut group = self.group_metadata();
            if self.config.unfenced_offsets {
                // Mutation: a pre-KIP-447 offset commit, without member id or generation.
                group.member_id.clear();
                group.generation = 0;
            }
            self.txn_open = true;
            self.send_main(
                Request::TxnOffsetCommit {
                    producer,
                    group,
                    offsets,
                },
                env,
            );
        } else {
            if offsets.is_empty() {
                self.finish_commit(then, env);
                return;
            }
            let request = Request::OffsetCommit {
                group: self.group_metadata(),
                offsets,
            };
            self.send_main(request, env);
        }
    }

    fn finish_commit(&mut self, then: AfterCommit, env: &mut Env<'_>) {
        self.dirty = false;
        self.last_commit = env.now;
        self.committed = self.processed.clone();
        match then {
            AfterCommit::Continue => self.phase = Phase::Run,
            AfterCommit::Rejoin => self.revoke_and_rejoin(),
        }
    }

    fn on_main_response(&mut self, response: Response, env: &mut Env<'_>) {
        let request = self.main.take().map(|w| w.request);
        match response {
            Response::InitProducerId(result) => match result {
                Ok(pid) => {
                    self.producer = Some(pid);
                    self.sequences.clear();
                    self.txn_open = false;
                    self.phase = Phase::Join { backoff_until: 0 };
                }
                Err(e) => {
                    self.error(env, format!("init producer id failed: {e:?}; retrying"));
                }
            },
            Response::JoinGroup(result) => self.on_join(result, env),
            Response::OffsetFetch(result) => match result {
                Ok(offsets) => {
                    for (tp, offset) in offsets {
                        // auto.offset.reset = earliest
                        let o = offset.unwrap_or(0);
                        self.fetch_positions.insert(tp.clone(), o);
                        self.processed.insert(tp.clone(), o);
                        self.committed.insert(tp, o);
                    }
                    self.phase = Phase::Restore;
                }
                Err(e) => {
                    self.error(env, format!("offset fetch: {e:?}; retrying after backoff"));
                    self.phase = Phase::FetchOffsets {
                        backoff_until: env.now + self.config.retry_backoff_ms,
                    };
                }
            },
            Response::Fetch { tp, result } => match self.phase {
                Phase::Restore => self.on_restore_fetch(tp, result, env),
                Phase::Run => self.on_fetch(tp, result, env),
                _ => {}
            },
            Response::Produce(results) => {
                let counts: BTreeMap<TopicPartition, usize> = match &request {
                    Some(Request::Produce { batches, .. }) => batches
                        .iter()
                        .map(|b| (b.tp.clone(), b.records.len()))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                self.on_produce(results, &counts, env)
            }
            Response::OffsetCommit(result) => match result {
                Ok(()) => {
                    let then = self.commit_continuation();
                    self.finish_commit(then, env);
                }
                Err(e) => {
                    let reset = e == KafkaError::UnknownMemberId;
                    self.task_migrated(env, &format!("offset commit rejected: {e:?}"), reset);
                }
            },
            Response::TxnOffsetCommit(result) => match result {
                Ok(()) => {
                    let then = self.commit_continuation();
                    self.phase = Phase::EndTxn { commit: true, then };
                    let producer = self.identity().expect("transactional producer");
                    self.send_main(
                        Request::EndTxn {
                            producer,
                            commit: true,
                        },
                        env,
                    );
                }
                Err(KafkaError::ProducerFenced) | Err(KafkaError::InvalidProducerEpoch) => {
                    self.producer = None;
                    self.task_migrated(env, "producer fenced", false);
                }
                Err(e) => {
                    // CommitFailed: abort the transaction, then rejoin.
                    self.error(
                        env,
                        format!("offset commit to transaction rejected: {e:?}; aborting"),
                    );
                    let reset = e == KafkaError::UnknownMemberId;
                    if reset {
                        self.member_id = None;
                    }
                    self.phase = Phase::EndTxn {
                        commit: false,
                        then: AfterCommit::Rejoin,
                    };
                    let producer = self.identity().expect("transactional producer");
                    self.send_main(
                        Request::EndTxn {
                            producer,
                            commit: false,
                        },
                        env,
                    );
                }
            },
            Response::EndTxn(result) => {
                let Phase::EndTxn { commit, then } = self.phase.clone() else {
                    return;
                };
                match result {
                    Ok(bumped) => {
                        // Transaction protocol v2: the epoch the coordinator bumped, and fresh
                        // sequences (TransactionManager.EndTxnHandler.handleResponse).
                        if let Some(producer) = bumped {
                            self.producer = Some(producer);
                            self.sequences.clear();
                        }
                        self.txn_open = false;
                        if commit {
                            self.finish_commit(then, env);
                        } else {
                            self.task_migrated(env, "transaction aborted", false);
                        }
                    }
                    Err(e) => {
                        self.producer = None;
                        self.txn_open = false;
                        self.task_migrated(env, &format!("end transaction failed: {e:?}"), false);
                    }
                }
            }
            other => {
                let what = format!(
                    "unexpected response {other:?} to {:?}",
                    request.map(|r| request_name(&r))
                );
                self.error(env, what);
            }
        }
    }

    fn commit_continuation(&self) -> AfterCommit {
        match self.phase {
            Phase::CommitOffsets { then } | Phase::EndTxn { then, .. } => then,
            _ => AfterCommit::Continue,
        }
    }

    fn on_join(&mut self, result: Result<JoinOutcome, KafkaError>, env: &mut Env<'_>) {
        match result {
            Ok(JoinOutcome::Pending { member_id }) => {
                self.member_id = Some(member_id);
                self.phase = Phase::Join {
                    backoff_until: env.now + self.config.retry_backoff_ms,
                };
            }
            Ok(JoinOutcome::Joined {
                member_id,
                generation,
                assignment,
            }) => {
                self.member_id = Some(member_id);
                self.generation = generation;
                self.in_group = true;
                self.rejoin_needed = false;
                self.member_lost = false;
                self.next_heartbeat = env.now + self.config.heartbeat_interval_ms;
                self.close_tasks_dirty();
                self.assignment = assignment;
                self.create_tasks();
                env.event(Event::Assigned {
                    client: self.name.clone(),
                    generation,
                    tasks: self.assignment.clone(),
                });
                self.phase = Phase::FetchOffsets { backoff_until: 0 };
            }
            Err(e) => {
                self.error(
                    env,
                    format!("join failed: {e:?}; rejoining as a new member"),
                );
                self.member_id = None;
                self.phase = Phase::Join {
                    backoff_until: env.now + self.config.retry_backoff_ms,
                };
            }
        }
    }

    fn create_tasks(&mut self) {
        let mut restoring = VecDeque::new();
        for tp in &self.assignment {
            let Some(sub) = self.topology.subtopology_of(&tp.topic) else {
                continue;
            };
            let id = TaskId {
                subtopology: sub,
                partition: tp.partition,
            };
            if self.tasks.contains_key(&id) {
                continue;
            }
            let s = &self.topology.subtopologies[sub];
            let mut stores = BTreeMap::new();
            for store in &s.stores {
                stores.insert(store.clone(), BTreeMap::new());
                restoring.push_back(RestoreItem {
                    task: id,
                    store: store.clone(),
                    tp: TopicPartition::new(self.config.changelog(store), tp.partition),
                    position: 0,
                    records: 0,
                    end: None,
                    backoff_until: 0,
                });
            }
            self.tasks.insert(
                id,
                Task {
                    processor: (s.processor)(tp.partition),
                    stores,
                    stream_time: 0,
                    next_stream_punctuation: 0,
                },
            );
        }
        self.restoring = restoring;
    }

    fn on_restore_fetch(
        &mut self,
        tp: TopicPartition,
        result: Result<FetchData, KafkaError>,
        env: &mut Env<'_>,
    ) {
        let eos = self.config.eos() && !self.config.read_uncommitted;
        let Some(item) = self.restoring.front_mut() else {
            return;
        };
        if item.tp != tp {
            return;
        }
        match result {
            Ok(data) => {
                let task = self
                    .tasks
                    .get_mut(&item.task)
                    .expect("restoring task exists");
                let store = task.stores.get_mut(&item.store).expect("declared store");
                for r in &data.records {
                    let Some(key) = &r.record.key else { continue };
                    match &r.record.value {
                        Some(v) => store.insert(key.clone(), v.clone()),
                        None => store.remove(key),
                    };
                }
                item.records += data.records.len();
                let progress = data.next_offset > item.position;
                item.position = data.next_offset;
                let end = if eos {
                    *item.end.get_or_insert(data.high_watermark)
                } else {
                    data.high_watermark
                };
                if item.position < end && !progress {
                    item.backoff_until = env.now + self.config.retry_backoff_ms;
                }
                if item.position >= end {
                    env.event(Event::Restored {
                        client: self.name.clone(),
                        store: item.store.clone(),
                        tp: item.tp.clone(),
                        records: item.records,
                        upto: item.position,
                    });
                    self.restoring.pop_front();
                }
            }
            Err(e) => {
                self.error(env, format!("restore fetch of {tp}: {e:?}"));
            }
        }
    }

    fn on_fetch(
        &mut self,
        tp: TopicPartition,
        result: Result<FetchData, KafkaError>,
        env: &mut Env<'_>,
    ) {
        if !self.assignment.contains(&tp) {
            return;
        }
        match result {
            Ok(data) => {
                let empty = data.records.is_empty();
                self.caught_up.insert(tp.clone(), empty);
                let queue = self.buffer.entry(tp.clone()).or_default();
                for r in data.records {
                    queue.push_back(Input {
                        tp: tp.clone(),
                        offset: r.offset,
                        key: r.record.key,
                        value: r.record.value,
                        timestamp: r.record.timestamp,
                    });
                }
                self.fetch_positions.insert(tp.clone(), data.next_offset);
                if self.config.commit_before_process && !empty {
                    // Mutation: the fetched position is committed at once, before the
                    // records are processed (at most once).
                    self.processed.insert(tp.clone(), data.next_offset);
                    self.consumed.insert(tp.clone());
                    self.dirty = true;
                    self.commit_now = true;
                }
                if empty && self.caught_up.values().all(|c| *c) {
                    self.idle_until = env.now + self.config.retry_backoff_ms;
                }
            }
            Err(KafkaError::OffsetOutOfRange) => {
                self.error(
                    env,
                    format!("fetch {tp}: offset out of range; resetting to earliest"),
                );
                self.fetch_positions.insert(tp, 0);
            }
            Err(e) => self.error(env, format!("fetch {tp}: {e:?}")),
        }
    }

    fn on_produce(
        &mut self,
        results: Vec<(TopicPartition, PartitionProduceResult)>,
        counts: &BTreeMap<TopicPartition, usize>,
        env: &mut Env<'_>,
    ) {
        let mut failed = None;
        for (tp, result) in results {
            match result {
                PartitionProduceResult::Appended { base_offset, .. } => {
                    let count = counts.get(&tp).copied().unwrap_or(0);
                    env.event(Event::Acked {
                        client: self.name.clone(),
                        tp,
                        base_offset,
                        count,
                    });
                }
                PartitionProduceResult::Error(e) => failed = Some((tp, e)),
            }
        }
        if let Some((tp, e)) = failed {
            match e {
                KafkaError::ProducerFenced | KafkaError::InvalidProducerEpoch => {
                    self.producer = None;
                    self.txn_open = false;
                    self.task_migrated(env, &format!("produce to {tp}: producer fenced"), false);
                }
                _ => {
                    // Sequence trouble or an unknown producer: a fresh producer id, and the
                    // tasks are closed dirty so that their input is processed again.
                    self.producer = None;
                    self.txn_open = false;
                    self.sequences.clear();
                    self.task_migrated(env, &format!("produce to {tp} failed: {e:?}"), false);
                    self.phase = Phase::InitProducer;
                }
            }
        }
    }

    fn step_heartbeat(&mut self, env: &mut Env<'_>) {
        if let Some(w) = self.heartbeat.take() {
            // Unanswered heartbeat: send the next one.
            let _ = w;
        }
        let Some(member_id) = self.member_id.clone() else {
            return;
        };
        let request = Request::Heartbeat {
            group: self.config.application_id.clone(),
            member_id,
            generation: self.generation,
        };
        let corr = env.send(request.clone());
        self.heartbeat = Some(Waiting {
            corr,
            request,
            deadline: env.now + self.config.request_timeout_ms,
        });
        self.next_heartbeat = env.now + self.config.heartbeat_interval_ms;
    }

    fn on_heartbeat(&mut self, result: Result<(), KafkaError>, env: &mut Env<'_>) {
        match result {
            Ok(()) => {}
            Err(KafkaError::RebalanceInProgress) | Err(KafkaError::IllegalGeneration) => {
                if self.in_group && !self.rejoin_needed {
                    self.rejoin_needed = true;
                }
            }
            Err(KafkaError::UnknownMemberId) => {
                if self.in_group && !self.member_lost {
                    // The group moved on without this member: its tasks are lost. The
                    // processing loop learns of it at its next poll; until then it keeps
                    // its stale member id and generation, which the broker rejects.
                    self.rejoin_needed = true;
                    self.member_lost = true;
                    self.error(
                        env,
                        "heartbeat: unknown member; tasks lost, will rejoin as a new member".into(),
                    );
                }
            }
            Err(e) => self.error(env, format!("heartbeat: {e:?}")),
        }
    }
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::InitProducerId { .. } => "InitProducerId",
        Request::Produce { .. } => "Produce",
        Request::TxnOffsetCommit { .. } => "TxnOffsetCommit",
        Request::EndTxn { .. } => "EndTxn",
        Request::Fetch { .. } => "Fetch",
        Request::JoinGroup { .. } => "JoinGroup",
        Request::Heartbeat { .. } => "Heartbeat",
        Request::LeaveGroup { .. } => "LeaveGroup",
        Request::OffsetCommit { .. } => "OffsetCommit",
        Request::OffsetFetch { .. } => "OffsetFetch",
    }
}

/// A short description of a request, for traces.
pub fn describe_request(r: &Request) -> String {
    match r {
        Request::Produce { batches, .. } => {
            let parts: Vec<String> = batches
                .iter()
                .map(|b| format!("{}x{}", b.tp, b.records.len()))
                .collect();
            format!("Produce[{}]", parts.join(","))
        }
        Request::Fetch { tp, offset, .. } => format!("Fetch[{tp}@{offset}]"),
        Request::EndTxn { commit, .. } => {
            format!("EndTxn[{}]", if *commit { "commit" } else { "abort" })
        }
        other => request_name(other).to_string(),
    }
}

impl Client for StreamsClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn lanes(&self) -> usize {
        2
    }

    fn ready(&self, lane: usize, now: Millis) -> bool {
        match lane {
            MAIN => self.main_ready(now),
            _ => {
                if let Some(w) = &self.heartbeat {
                    return now >= w.deadline;
                }
                self.in_group && self.member_id.is_some() && now >= self.next_heartbeat
            }
        }
    }

    fn step(&mut self, lane: usize, env: &mut Env<'_>) {
        match lane {
            MAIN => self.step_main(env),
            HEARTBEAT => self.step_heartbeat(env),
            _ => unreachable!("streams clients have two lanes"),
        }
    }

    fn on_response(&mut self, corr: u64, response: Response, env: &mut Env<'_>) {
        if self.main.as_ref().map(|w| w.corr) == Some(corr) {
            self.on_main_response(response, env);
        } else if self.heartbeat.as_ref().map(|w| w.corr) == Some(corr) {
            self.heartbeat = None;
            if let Response::Heartbeat(result) = response {
                self.on_heartbeat(result, env);
            }
        }
    }

    fn wakeup(&self) -> Option<Millis> {
        let hb = match &self.heartbeat {
            Some(w) => Some(w.deadline),
            None if self.in_group && self.member_id.is_some() => Some(self.next_heartbeat),
            None => None,
        };
        match (self.main_wakeup(), hb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn idle(&self) -> bool {
        // An empty poll in flight is what an idle consumer does.
        let polling = matches!(&self.main, Some(w) if matches!(w.request, Request::Fetch { .. }));
        (self.main.is_none() || polling)
            && self.phase == Phase::Run
            && !self.rejoin_needed
            && !self.buffered()
            && self.outputs.is_empty()
            && !self.dirty
            && !self.txn_open
            && self.caught_up.len() == self.assignment.len()
            && self.caught_up.values().all(|c| *c)
    }

    fn query(&self, store: &str, key: &str, meta: &dyn Metadata) -> Option<Option<String>> {
        if self.phase == Phase::Restore || !self.restoring.is_empty() {
            return None;
        }
        let partitions = meta.partitions(&self.config.changelog(store))?;
        let partition = partition_for_key(key, partitions);
        self.tasks.iter().find_map(|(id, task)| {
            if id.partition != partition {
                return None;
            }
            task.stores.get(store).map(|s| s.get(key).cloned())
        })
    }

    fn stores(&self) -> BTreeMap<(String, u32), BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (id, task) in &self.tasks {
            for (name, contents) in &task.stores {
                out.insert((name.clone(), id.partition), contents.clone());
            }
        }
        out
    }
}
