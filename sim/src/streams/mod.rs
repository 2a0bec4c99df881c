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
//!
//! The runtime is split as Kafka Streams splits it:
//! [`config`] (`StreamsConfig`), [`topology`] and [`context`] (what a design writes),
//! `membership` (join, heartbeat lane, generation, closing tasks), `restore` (task
//! creation, committed offsets, changelog restoration), `partition_group` (which record
//! is processed next, KIP-695), `processing` (the poll → process → punctuate loop),
//! `linger` (the producer's record accumulator: outputs held for `linger.ms`, flushed by
//! a commit or a revocation), `commit` (at_least_once and exactly_once_v2, the transactional producer) and
//! `invariants` (the phase invariants asserted after every step and response).

mod commit;
pub mod config;
pub mod context;
mod cooperative;
mod fingerprint;
pub mod harness;
mod invariants;
mod linger;
mod membership;
mod partition_group;
mod processing;
mod restore;
#[cfg(test)]
mod testkit;
pub mod topology;

pub use config::{changelog_topic, Guarantee, StreamsConfig};
pub use context::{Context, Detached};
pub use topology::{
    Input, Processed, Processor, ProcessorFactory, Punctuation, SubTopology, TaskId, Topology,
};

use crate::client::{Client, ClientId, Env, Metadata};
use crate::partitioner::partition_for_key;
use crate::protocol::*;
use crate::trace::{Event, Label};
use restore::RestoreItem;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub(super) struct Task {
    processor: Box<dyn Processor>,
    stores: BTreeMap<String, BTreeMap<String, String>>,
    stream_time: Millis,
    next_stream_punctuation: Millis,
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
    /// Eager: revoke every task and rejoin.
    Rejoin,
    /// Cooperative: the assignment that arrived (`handover`) is applied.
    Handover,
}

#[derive(Clone, Debug)]
struct Waiting {
    corr: u64,
    request: Request,
    deadline: Millis,
}

/// One Kafka Streams instance (one stream thread) of an application.
pub struct StreamsClient {
    id: ClientId,
    config: StreamsConfig,
    topology: Topology,
    phase: Phase,
    // Group membership, shared by the processing loop and the heartbeat lane.
    member_id: Option<String>,
    generation: Generation,
    in_group: bool,
    rejoin_needed: bool,
    /// The heartbeat learnt that the group reset this member's generation (or expired it).
    member_lost: bool,
    /// ... and forgot its member id (`UNKNOWN_MEMBER_ID`): rejoin as a new member.
    forget_member: bool,
    assignment: Vec<TopicPartition>,
    next_heartbeat: Millis,
    /// Cooperative: a `JoinGroup` was sent with tasks kept, and its assignment has not
    /// arrived (`TaskManager.rebalanceInProgress`): tasks keep processing, commits wait.
    rebalancing: bool,
    /// Cooperative: a pending `JoinGroup` is sent again at this time.
    join_retry: Option<Millis>,
    /// Cooperative: the assignment that arrived, applied once the uncommitted work is
    /// committed (`TaskManager.handleRevocation`).
    handover: Option<Vec<TopicPartition>>,
    /// Since when the processing loop has been blocked on its request in flight (first
    /// sent, retries included): it does not poll meanwhile (`max.poll.interval.ms`).
    blocked_since: Option<Millis>,
    /// The heartbeat lane left the group after the poll timeout; the next poll finds the
    /// partitions lost.
    left_group: bool,
    // Producer.
    producer: Option<(ProducerId, Epoch)>,
    sequences: BTreeMap<TopicPartition, i32>,
    /// The producer (id, epoch) whose transaction is open: at most one at a time.
    txn: Option<(ProducerId, Epoch)>,
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
    /// Outputs and changelog writes held by the producer (`linger`).
    outputs: Vec<(TopicPartition, Record)>,
    /// When the oldest held output was written: it goes out `linger.ms` later at the latest.
    held_since: Option<Millis>,
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
    /// A request of the processing loop answered with a retriable error, to send again as
    /// it was at the given time (`retry.backoff.ms`).
    resend: Option<(Millis, Request)>,
    /// The process id this start drew, with ephemeral state directories: part of the
    /// `transactional.id`.
    process_id: Option<u32>,
    heartbeat: Option<Waiting>,
    /// The fetch in flight, under the long poll (`fetch_max_wait_ms` above 0): the
    /// consumer's own, sent whenever none is in flight while the loop runs
    /// (`AbstractFetch.prepareFetchRequests`), not blocking the processing loop.
    fetching: Option<Waiting>,
    /// After a fetch answered with an error, the next waits until then
    /// (`retry.backoff.ms`).
    fetch_backoff_until: Millis,
}

const MAIN: usize = 0;
const HEARTBEAT: usize = 1;
/// The consumer's fetches under the long poll.
const FETCH: usize = 2;

impl StreamsClient {
    pub fn new(instance: &str, config: StreamsConfig, topology: Topology) -> Self {
        let id = ClientId::new(instance, config.application_id.clone());
        let needs_producer = config.eos() || config.idempotent_producer;
        StreamsClient {
            id,
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
            forget_member: false,
            assignment: Vec::new(),
            next_heartbeat: 0,
            rebalancing: false,
            join_retry: None,
            handover: None,
            blocked_since: None,
            left_group: false,
            producer: None,
            sequences: BTreeMap::new(),
            txn: None,
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
            held_since: None,
            dirty: false,
            commit_now: false,
            last_commit: 0,
            next_fetch: 0,
            idle_until: 0,
            next_wall_punctuation: 0,
            main: None,
            resend: None,
            process_id: None,
            heartbeat: None,
            fetching: None,
            fetch_backoff_until: 0,
        }
    }

    /// Whether the consumer long-polls (`fetch_max_wait_ms` above 0).
    fn long_poll(&self) -> bool {
        self.config.fetch_max_wait_ms > 0
    }

    /// `exactly_once_v2`'s `transactional.id`: application id, process id and thread
    /// (`ActiveTaskCreator` / `StreamsProducer`). With persistent state directories the
    /// process id is the one stored there, the same at every start: the instance's name
    /// stands for it. With ephemeral ones it is drawn at every start
    /// (`StateDirectory.initializeProcessId`), so a restarted instance is a new
    /// transactional id that fences nothing of its previous incarnation.
    fn transactional_id(&self) -> String {
        let (app, instance) = (&self.config.application_id, &self.id.instance);
        match self.process_id {
            None => format!("{app}-{instance}"),
            Some(pid) => format!("{app}-{instance}-{pid:08x}"),
        }
    }

    /// Send `request` again after `retry.backoff.ms`: the answer was a retriable error.
    fn resend_after_backoff(&mut self, request: Request, env: &Env<'_>) {
        assert!(self.main.is_none(), "a resend while a request is in flight");
        self.resend = Some((env.now + self.config.retry_backoff_ms, request));
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
        self.blocked_since.get_or_insert(env.now);
        let corr = env.send(request.clone());
        self.main = Some(Waiting {
            corr,
            request,
            deadline: env.now + self.config.request_timeout_ms,
        });
    }

    fn error(&self, env: &mut Env<'_>, what: String) {
        env.event(Event::ClientError {
            client: self.id.clone(),
            what,
        });
    }

    fn main_ready(&self, now: Millis) -> bool {
        if let Some(w) = &self.main {
            return now >= w.deadline;
        }
        if let Some((at, _)) = &self.resend {
            return now >= *at;
        }
        match &self.phase {
            Phase::InitProducer | Phase::CommitOffsets { .. } | Phase::EndTxn { .. } => true,
            // A rebalance the heartbeat asked for is handled at the next poll, restoring or not.
            _ if self.join_due(now) => true,
            Phase::Restore => {
                self.rejoin_needed
                    || !matches!(self.restoring.front(), Some(item) if now < item.backoff_until)
            }
            Phase::FetchOffsets { backoff_until } => self.rejoin_needed || now >= *backoff_until,
            Phase::Join { backoff_until } => now >= *backoff_until,
            Phase::Run => {
                if self.rejoin_needed
                    || self.handover.is_some()
                    || self.linger_due(now)
                    || self.commit_due(now)
                    || (self.wall_punctuation().is_some()
                        && !self.tasks.is_empty()
                        && now >= self.next_wall_punctuation)
                {
                    return true;
                }
                // A record to process once `retry_until` has passed, or an empty poll
                // once `idle_until` has: which one is asked only when the times disagree.
                let process = now >= self.retry_until;
                let poll =
                    !self.long_poll() && !self.assignment.is_empty() && now >= self.idle_until;
                match (process, poll) {
                    (true, true) => true,
                    (false, false) => false,
                    (true, false) => self.has_next_input(),
                    (false, true) => !self.has_next_input(),
                }
            }
        }
    }

    fn main_wakeup(&self) -> Option<Millis> {
        if let Some(w) = &self.main {
            return Some(w.deadline);
        }
        if let Some((at, _)) = &self.resend {
            return Some(*at);
        }
        let t = self.main_phase_wakeup();
        match (t, self.join_retry.filter(|_| self.rebalancing)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn main_phase_wakeup(&self) -> Option<Millis> {
        match &self.phase {
            Phase::Join { backoff_until } | Phase::FetchOffsets { backoff_until } => {
                Some(*backoff_until)
            }
            Phase::Restore => self.restoring.front().map(|item| item.backoff_until),
            Phase::Run => {
                let mut t: Option<Millis> = None;
                let mut at = |x: Millis| t = Some(t.map_or(x, |t| t.min(x)));
                let input = self.has_next_input();
                if input {
                    at(self.retry_until);
                }
                if let Some(lingered) = self.linger_deadline() {
                    at(lingered);
                }
                if self.dirty && !self.rebalancing {
                    at(self.last_commit + self.config.commit_interval_ms);
                }
                if self.wall_punctuation().is_some() && !self.tasks.is_empty() {
                    at(self.next_wall_punctuation);
                }
                if !self.long_poll() && !self.assignment.is_empty() && !input {
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
                client: self.id.clone(),
                what: format!("request unanswered: retrying {}", request_name(&w.request)),
            });
            self.send_main(w.request, env);
            return;
        }
        if let Some((_, request)) = self.resend.take() {
            self.send_main(request, env);
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
            Phase::Join { .. } => self.send_join(env),
            Phase::FetchOffsets { .. } => self.step_fetch_offsets(env),
            Phase::Restore => self.step_restore(env),
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

    fn on_main_response(&mut self, response: Response, env: &mut Env<'_>) {
        let request = self.main.take().map(|w| w.request);
        self.blocked_since = None;
        match response {
            Response::InitProducerId(Err(e)) if e.is_retriable() => {
                self.retry_after(e, request, env)
            }
            Response::TxnOffsetCommit(Err(e)) if e.is_retriable() => {
                self.retry_after(e, request, env)
            }
            Response::EndTxn(Err(e)) if e.is_retriable() => self.retry_after(e, request, env),
            // `AbstractCoordinator.JoinGroupResponseHandler`, `ConsumerCoordinator.
            // OffsetCommitResponseHandler`: `NOT_COORDINATOR` and
            // `COORDINATOR_LOAD_IN_PROGRESS` mark the coordinator unknown and are retried
            // once it is found again; the generation stays.
            Response::JoinGroup(Err(e)) | Response::OffsetCommit(Err(e))
                if e.coordinator_unavailable() =>
            {
                self.retry_after(e, request, env)
            }
            Response::InitProducerId(result) => self.on_init_producer(result, env),
            Response::JoinGroup(result) => self.on_join(result, env),
            Response::OffsetFetch(result) => self.on_offset_fetch(result, env),
            Response::Fetch { tp, result } => match self.phase {
                Phase::Restore => self.on_restore_fetch(tp, result, env),
                Phase::Run => self.on_fetch(tp, result, env),
                _ => {}
            },
            Response::Produce(results) => self.on_produce(results, request, env),
            Response::OffsetCommit(result) => self.on_offset_commit(result, env),
            Response::TxnOffsetCommit(result) => self.on_txn_offset_commit(result, env),
            Response::EndTxn(result) => self.on_end_txn(result, env),
            other => {
                let what = format!(
                    "unexpected response {other:?} to {:?}",
                    request.map(|r| request_name(&r))
                );
                self.error(env, what);
            }
        }
    }
}

impl StreamsClient {
    /// `JoinGroup`, with the protocol and, under the cooperative one, the partitions
    /// still owned (none after an eager revocation or a loss: the assignment is empty).
    fn send_join(&mut self, env: &mut Env<'_>) {
        let request = Request::JoinGroup {
            group: self.config.application_id.clone(),
            member_id: self.member_id.clone(),
            topics: self.topology.topics(),
            session_timeout_ms: self.config.session_timeout_ms,
            rebalance_timeout_ms: self.config.rebalance_timeout_ms,
            protocol: self.config.rebalance_protocol,
            owned: if self.config.cooperative() {
                self.assignment.clone()
            } else {
                Vec::new()
            },
        };
        self.send_main(request, env);
    }
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::InitProducerId { .. } => "InitProducerId",
        Request::Produce { .. } => "Produce",
        Request::TxnOffsetCommit { .. } => "TxnOffsetCommit",
        Request::EndTxn { .. } => "EndTxn",
        Request::Fetch { .. } | Request::FetchMany { .. } => "Fetch",
        Request::JoinGroup { .. } => "JoinGroup",
        Request::Heartbeat { .. } => "Heartbeat",
        Request::LeaveGroup { .. } => "LeaveGroup",
        Request::OffsetCommit { .. } => "OffsetCommit",
        Request::OffsetFetch { .. } => "OffsetFetch",
    }
}

/// A short description of a request, for traces.
pub fn describe_request(r: &Request) -> String {
    request_label(r).to_string()
}

/// A request's label in the trace, written as [`describe_request`] writes it, when it is
/// read (most are never shown: formatting one is left to the reader).
pub fn request_label(r: &Request) -> Label {
    match r {
        Request::Produce { batches, .. } => {
            Label::produce(batches.iter().map(|b| (b.tp.clone(), b.records.len())))
        }
        Request::Fetch { tp, offset, .. } => Label::fetch(tp.clone(), *offset),
        Request::FetchMany { partitions, .. } => Label::fetch_many(partitions.iter().cloned()),
        Request::EndTxn { commit, .. } => Label::name(if *commit {
            "EndTxn[commit]"
        } else {
            "EndTxn[abort]"
        }),
        other => Label::name(request_name(other)),
    }
}

impl Client for StreamsClient {
    fn id(&self) -> &ClientId {
        &self.id
    }

    fn lanes(&self) -> usize {
        if self.long_poll() {
            3
        } else {
            2
        }
    }

    fn ready(&self, lane: usize, now: Millis) -> bool {
        match lane {
            MAIN => self.main_ready(now),
            FETCH => self.fetch_ready(now),
            _ => {
                if let Some(w) = &self.heartbeat {
                    return now >= w.deadline;
                }
                self.heartbeating() && now >= self.next_heartbeat
            }
        }
    }

    fn step(&mut self, lane: usize, env: &mut Env<'_>) {
        match lane {
            MAIN => self.step_main(env),
            HEARTBEAT => self.step_heartbeat(env),
            FETCH => self.step_fetch(env),
            _ => unreachable!("streams clients have three lanes at most"),
        }
        self.check_invariants();
    }

    fn on_response(&mut self, corr: u64, response: Response, env: &mut Env<'_>) {
        if self.main.as_ref().map(|w| w.corr) == Some(corr) {
            self.on_main_response(response, env);
        } else if self.heartbeat.as_ref().map(|w| w.corr) == Some(corr) {
            self.heartbeat = None;
            if let Response::Heartbeat(result) = response {
                self.on_heartbeat(result, env);
            }
        } else if self.fetching.as_ref().map(|w| w.corr) == Some(corr) {
            self.fetching = None;
            if let Response::FetchMany(results) = response {
                self.on_fetch_many(results, env);
            }
        }
        self.check_invariants();
    }

    fn wakeup(&self) -> Option<Millis> {
        let hb = match &self.heartbeat {
            Some(w) => Some(w.deadline),
            None if self.heartbeating() => Some(self.next_heartbeat),
            None => None,
        };
        let t = match (self.main_wakeup(), hb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (t, self.fetch_wakeup()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn idle(&self) -> bool {
        // An empty poll in flight is what an idle consumer does; under the long poll, a
        // fetch of every assigned partition at its position (which the broker holds while
        // none has anything to return).
        let polling = matches!(&self.main, Some(w) if matches!(w.request, Request::Fetch { .. }));
        let long_polling = !self.long_poll() || self.fetch_covers_assignment();
        (self.main.is_none() || polling)
            && long_polling
            && self.resend.is_none()
            && self.phase == Phase::Run
            && !self.rejoin_needed
            && !self.rebalancing
            && self.handover.is_none()
            && !self.buffered()
            && self.outputs.is_empty()
            && !(self.dirty && self.offsets_changed())
            && self.txn.is_none()
            && self.caught_up.len() == self.assignment.len()
            && self.caught_up.values().all(|c| *c)
    }

    /// Timers of the tasks whose sub-topology punctuates on the wall clock (a stream-time
    /// punctuation needs new input to fire, so it holds no pending timer).
    fn next_timer(&self) -> Option<Millis> {
        self.tasks
            .iter()
            .filter(|(id, _)| {
                matches!(
                    self.topology.subtopologies[id.subtopology].punctuate,
                    Some(Punctuation::WallClock(_))
                )
            })
            .filter_map(|(_, task)| task.processor.next_timer(&task.stores))
            .min()
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

    fn set_process_id(&mut self, process_id: u32) {
        assert!(
            self.producer.is_none() && self.main.is_none(),
            "a process id is set before the first step"
        );
        self.process_id = Some(process_id);
    }

    fn fingerprint(&self, out: &mut dyn std::fmt::Write) -> bool {
        self.write_fingerprint(out).is_ok()
    }

    fn clone_boxed(&self) -> Option<Box<dyn Client>> {
        Some(Box::new(self.try_clone()?))
    }

    fn awaits(&self, corr: u64) -> Option<usize> {
        self.lane_awaiting(corr)
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
