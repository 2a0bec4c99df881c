//! Model test of the Kafka Streams runtime ([`StreamsClient`]).
//!
//! One streams instance (a counting processor over a two-partition input topic, one
//! changelog-backed store) is driven directly, with no scheduler: proptest chooses the
//! history — which lane steps, when time passes, which requests are lost, and how each
//! request is answered (success, or an error Kafka can return for it) — and the test plays
//! a small broker (`Cluster`: logs, one transaction, committed offsets, one group with
//! its generation) that answers faithfully: a fenced or expelled member's commit is
//! rejected, an `InitProducerId` aborts the open transaction, `require_stable` refuses a
//! pending transactional offset.
//!
//! Beside it runs a reference model of what the runtime may do (`Model`), fed by every
//! request and trace event, which checks:
//!
//! - **task lifecycle**: tasks exist only between an assignment and the next
//!   `JoinGroup` / `InitProducerId`; records are processed only from assigned partitions,
//!   in offset order, starting at the committed offset;
//! - **restore before process**: no input is fetched or processed before every store of
//!   the assignment is restored to the changelog's end, and a restored store equals the
//!   fold of the committed changelog (what a fresh instance would read);
//! - **commit under both guarantees**: `at_least_once` commits with `OffsetCommit` only
//!   after every output of the processed records is acknowledged, `exactly_once_v2` with
//!   `TxnOffsetCommit` + `EndTxn` only; the committed offsets are exactly the processed
//!   positions of assigned partitions, with the generation of the current assignment;
//! - **no commit after the member was expelled** (a heartbeat's `ILLEGAL_GENERATION` or
//!   `UNKNOWN_MEMBER_ID`, or its own `LeaveGroup` after `max.poll.interval.ms`): the
//!   partitions are lost, the next request is a rejoin or a producer re-initialisation
//!   (`ConsumerCoordinator.onJoinPrepare`, `TaskManager.handleLostAll`);
//! - **the rebalance protocol**, eager or cooperative: a `JoinGroup` reports exactly the
//!   partitions still held under the cooperative protocol and none under the eager one;
//!   no commit while a cooperative rebalance is in progress (`TaskManager.commit`); a
//!   retained task keeps its position and its store, which is never restored again;
//!   revoked partitions are committed with the new generation before they close
//!   (`TaskManager.handleRevocation`); eager tasks are all closed at each rejoin;
//! - at the end, with faults healed, the instance settles: everything assigned is
//!   processed and committed; under exactly-once every count in the committed changelog
//!   equals the committed input (no double count, no lost count), and the store equals the
//!   committed changelog.

use oversell_sim::protocol::{
    Generation, GroupMetadata, Isolation, JoinOutcome, KafkaError, Offset, RebalanceProtocol,
    Request, Response, TopicPartition,
};
use oversell_sim::streams::harness::Driver;
use oversell_sim::{
    changelog_topic, Client, Context, Event, Guarantee, Input, Processed, Processor, StreamsClient,
    StreamsConfig, SubTopology, Topology,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const APP: &str = "app";
const STORE: &str = "s";
const IN: &str = "in";
const OUT: &str = "out";
const PARTS: u32 = 2;
const RECORDS: u64 = 5;
const MAIN: usize = 0;
const HEARTBEAT: usize = 1;

type Store = BTreeMap<String, String>;

/// Counts records per key; each count goes to the store (and its changelog) and `out`.
struct Count;

impl Processor for Count {
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let key = input.key.as_deref().expect("keyed input");
        let n: u64 = ctx
            .get(STORE, key)
            .map_or(0, |v| v.parse().expect("a count"))
            + 1;
        ctx.put(STORE, key, Some(n.to_string()));
        ctx.send(OUT, key, n.to_string());
        Processed::Done
    }
}

fn client(guarantee: Guarantee, protocol: RebalanceProtocol) -> StreamsClient {
    let topology = Topology {
        subtopologies: vec![SubTopology {
            name: "count".into(),
            sources: vec![IN.into()],
            stores: vec![STORE.into()],
            processor: Arc::new(|_| Box::new(Count)),
            punctuate: None,
        }],
    };
    let mut config = StreamsConfig::new(APP, guarantee);
    config.rebalance_protocol = protocol;
    // The ops drive the main and heartbeat lanes: the processing loop fetches itself, one
    // partition at a time (the long poll's fetch lane is not driven here).
    config.fetch_max_wait_ms = 0;
    StreamsClient::new("i0", config, topology)
}

fn input_key(p: u32, offset: Offset) -> String {
    format!("p{p}k{}", offset % 2)
}

// ------------------------------------------------------------------ the history

#[derive(Clone, Debug)]
enum Op {
    StepMain,
    StepHeartbeat,
    /// Answer the main lane's request; `0` is an error where one applies.
    Answer(u8),
    /// Answer the heartbeat: 0 ok, 1 rebalance in progress, 2 illegal generation,
    /// 3 unknown member.
    Heartbeat(u8),
    /// The main lane's request is lost (the client retries after its timeout).
    Lose,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::StepMain),
        6 => (0u8..8).prop_map(Op::Answer),
        2 => Just(Op::StepHeartbeat),
        2 => prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)]
            .prop_map(Op::Heartbeat),
        1 => Just(Op::Lose),
        2 => (1u64..150).prop_map(Op::Advance),
    ]
}

#[path = "streams_model/cluster.rs"]
mod cluster;
use cluster::Cluster;

// ------------------------------------------------------------------ the runtime's model

/// What the runtime may do next, from what it has sent and reported.
#[derive(Default)]
struct Model {
    eos: bool,
    cooperative: bool,
    /// The tasks held and the generation they were assigned in; None while (re)joining.
    tasks: Option<(Generation, Vec<TopicPartition>)>,
    /// The generation of the last `JoinGroup` answer with an assignment.
    joined: Generation,
    /// A cooperative `JoinGroup` with tasks held is unanswered: no commit.
    rebalancing: bool,
    /// Cooperative: the assignment that arrived and is not applied yet (revoked tasks
    /// are being committed).
    target: Option<Vec<TopicPartition>>,
    /// Partitions a record was processed from since their task was created.
    consumed: BTreeSet<TopicPartition>,
    /// Changelog partitions restored since the assignment.
    restored: BTreeSet<u32>,
    /// Partitions restored whose store was not compared yet with the committed changelog.
    unchecked: BTreeSet<u32>,
    /// Next offset to process, per assigned partition (from the offset fetch).
    next: BTreeMap<TopicPartition, Offset>,
    /// Records processed and output records acknowledged since the assignment.
    processed: u64,
    acked: u64,
    /// A heartbeat said the member was expelled; no commit may follow before a rejoin.
    expelled: bool,
    /// The client reported its tasks migrated (closed dirty) while it held some.
    migrated: bool,
    /// Paths exercised, for the coverage check.
    seen: BTreeSet<&'static str>,
}

fn fail(what: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(what))
}

impl Model {
    fn assigned(&self) -> Vec<TopicPartition> {
        self.tasks
            .as_ref()
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    fn restored_all(&self) -> bool {
        self.assigned()
            .iter()
            .all(|tp| self.restored.contains(&tp.partition))
    }

    fn lose_tasks(&mut self) {
        self.tasks = None;
        self.restored.clear();
        self.unchecked.clear();
        self.next.clear();
        self.processed = 0;
        self.acked = 0;
        self.expelled = false;
        self.rebalancing = false;
        self.target = None;
        self.consumed.clear();
    }

    /// A `JoinGroup`: eager members revoke everything first; cooperative ones report
    /// what they hold and keep it.
    fn join(
        &mut self,
        protocol: RebalanceProtocol,
        owned: &[TopicPartition],
    ) -> Result<(), TestCaseError> {
        let expected = if self.cooperative {
            RebalanceProtocol::Cooperative
        } else {
            RebalanceProtocol::Eager
        };
        prop_assert_eq!(protocol, expected);
        if self.expelled {
            prop_assert!(owned.is_empty(), "an expelled member reports {:?}", owned);
            self.lose_tasks();
        }
        if !self.cooperative {
            prop_assert!(owned.is_empty(), "an eager member reports {:?}", owned);
            self.lose_tasks();
            return Ok(());
        }
        prop_assert!(
            self.target.is_none(),
            "joined again before the handover ended"
        );
        prop_assert_eq!(owned, &self.assigned()[..], "owned partitions at a rejoin");
        if self.tasks.is_some() {
            self.rebalancing = true;
            self.seen.insert("cooperative rejoin with tasks");
        }
        Ok(())
    }

    /// The broker's answer to a request of the main lane.
    fn response(&mut self, response: &Response) {
        if let Response::JoinGroup(Ok(JoinOutcome::Joined {
            generation,
            assignment,
            ..
        })) = response
        {
            self.joined = *generation;
            self.rebalancing = false;
            // A stale heartbeat error is superseded by the new generation.
            self.expelled = false;
            if self.cooperative && self.tasks.is_some() {
                self.target = Some(assignment.clone());
            }
        }
    }

    /// A cooperative assignment applied: retained tasks keep everything.
    fn reassign(&mut self, generation: Generation, tasks: &[TopicPartition]) {
        let held = self.assigned();
        let kept = |tp: &TopicPartition| tasks.contains(tp);
        if held.iter().any(&kept) {
            self.seen.insert("task retained");
        }
        self.restored
            .retain(|p| tasks.iter().any(|tp| tp.partition == *p));
        self.unchecked
            .retain(|p| tasks.iter().any(|tp| tp.partition == *p));
        self.next.retain(|tp, _| kept(tp));
        self.consumed.retain(kept);
        self.target = None;
        self.tasks = Some((generation, tasks.to_vec()));
    }

    fn request(
        &mut self,
        r: &Request,
        c: &StreamsClient,
        k: &Cluster,
    ) -> Result<(), TestCaseError> {
        match r {
            Request::InitProducerId {
                transactional_id, ..
            } => {
                prop_assert_eq!(transactional_id.is_some(), self.eos);
                if self.tasks.is_some() || self.migrated {
                    self.seen.insert("producer re-initialised");
                }
                self.lose_tasks();
                self.migrated = false;
            }
            Request::JoinGroup {
                protocol, owned, ..
            } => self.join(*protocol, owned)?,
            Request::OffsetFetch {
                partitions,
                require_stable,
                ..
            } => {
                // Only the partitions without a position: a retained task keeps its own.
                let unpositioned: Vec<TopicPartition> = self
                    .assigned()
                    .into_iter()
                    .filter(|tp| !self.next.contains_key(tp))
                    .collect();
                prop_assert_eq!(partitions, &unpositioned);
                // The Java consumer always asks for stable offsets.
                prop_assert!(*require_stable, "OffsetFetch without require_stable");
            }
            Request::Fetch { tp, isolation, .. } => self.fetch(tp, *isolation, c, k)?,
            Request::FetchMany {
                partitions,
                isolation,
                ..
            } => {
                for (tp, _) in partitions {
                    prop_assert_eq!(&tp.topic, IN, "a long-poll fetch of a changelog");
                    self.fetch(tp, *isolation, c, k)?;
                }
            }
            Request::Produce { producer, .. } => {
                if self.eos {
                    let tid = producer.as_ref().and_then(|p| p.transactional_id.clone());
                    prop_assert!(tid.is_some(), "EOS produce without a transactional id");
                }
            }
            Request::OffsetCommit { group, offsets } => {
                prop_assert!(!self.eos, "OffsetCommit under exactly_once_v2");
                self.commit(group, offsets)?;
            }
            Request::TxnOffsetCommit { group, offsets, .. } => {
                prop_assert!(self.eos, "TxnOffsetCommit under at_least_once");
                self.commit(group, offsets)?;
            }
            Request::EndTxn { commit, .. } => {
                prop_assert!(self.eos, "EndTxn under at_least_once");
                if *commit {
                    prop_assert!(
                        !self.expelled,
                        "EndTxn(commit) after the member was expelled"
                    );
                    prop_assert!(self.tasks.is_some(), "EndTxn(commit) without tasks");
                    prop_assert!(!self.rebalancing, "EndTxn(commit) during a rebalance");
                }
                if *commit {
                    self.seen.insert("commit txn");
                }
            }
            Request::LeaveGroup { .. } => {
                // `max.poll.interval.ms`: the member left; its partitions are lost.
                if self.tasks.is_some() {
                    self.expelled = true;
                    self.seen.insert("left after the poll timeout");
                }
            }
            Request::Heartbeat { .. } => {}
        }
        Ok(())
    }

    fn fetch(
        &mut self,
        tp: &TopicPartition,
        isolation: Isolation,
        c: &StreamsClient,
        k: &Cluster,
    ) -> Result<(), TestCaseError> {
        let Some((_, assignment)) = &self.tasks else {
            return fail(format!("fetch of {tp} without tasks"));
        };
        prop_assert!(assignment.iter().any(|a| a.partition == tp.partition));
        let committed_read = if self.eos {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        prop_assert_eq!(isolation, committed_read);
        if tp.topic == IN {
            prop_assert!(
                self.restored_all(),
                "input fetched before restoration ended"
            );
            // The stores restored since the last input fetch (a retained task may have
            // processed buffered records meanwhile: its store is not compared again).
            let fresh = std::mem::take(&mut self.unchecked);
            for p in &fresh {
                let store = c.stores().get(&(STORE.to_string(), *p)).cloned();
                prop_assert_eq!(
                    store.unwrap_or_default(),
                    k.committed_store(*p),
                    "restored store of partition {} differs from the committed changelog",
                    p
                );
                self.seen.insert("restored");
            }
        } else {
            prop_assert!(!self.restored.contains(&tp.partition), "restored twice");
        }
        Ok(())
    }

    fn commit(
        &mut self,
        group: &GroupMetadata,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), TestCaseError> {
        prop_assert!(
            !self.expelled,
            "offsets committed after the member was expelled"
        );
        prop_assert!(!self.rebalancing, "offsets committed during a rebalance");
        let Some((_, assignment)) = &self.tasks else {
            return fail("offsets committed without tasks".into());
        };
        // The generation of the last assignment received, even for the revoked tasks
        // committed before they close.
        prop_assert_eq!(group.generation, self.joined);
        if let Some(target) = &self.target {
            for tp in self.consumed.iter().filter(|tp| !target.contains(tp)) {
                prop_assert!(
                    offsets.iter().any(|(t, _)| t == tp),
                    "revoked {} not committed at the handover",
                    tp
                );
                self.seen.insert("revoked committed");
            }
        }
        prop_assert!(self.restored_all(), "commit before restoration ended");
        for (tp, o) in offsets {
            prop_assert!(assignment.contains(tp), "offset of unassigned {}", tp);
            prop_assert_eq!(Some(o), self.next.get(tp), "committed offset of {}", tp);
        }
        prop_assert_eq!(
            self.acked,
            2 * self.processed,
            "outputs unacknowledged at commit"
        );
        self.seen.insert("commit");
        Ok(())
    }

    fn event(&mut self, e: &Event, k: &Cluster) -> Result<(), TestCaseError> {
        match e {
            Event::Assigned {
                generation, tasks, ..
            } => {
                prop_assert_eq!(*generation, self.joined);
                if self.cooperative {
                    self.reassign(*generation, tasks);
                } else {
                    self.lose_tasks();
                    self.tasks = Some((*generation, tasks.clone()));
                }
            }
            Event::ClientError { what, .. } if what.starts_with("task migrated") => {
                let held = self.tasks.is_some();
                self.lose_tasks();
                self.migrated = held;
            }
            Event::Restored { tp, upto, .. } => {
                let hw = k.changelog[tp.partition as usize].len() as Offset;
                prop_assert_eq!(*upto, hw, "restoration of {} stopped short", tp);
                self.restored.insert(tp.partition);
                self.unchecked.insert(tp.partition);
                if *upto > 0 {
                    self.seen.insert("restored data");
                }
            }
            Event::Process { tp, offset, .. } => {
                prop_assert!(self.restored_all(), "processing while restoring");
                prop_assert!(self.assigned().contains(tp), "processed unassigned {}", tp);
                let next = self.next.get(tp).copied();
                prop_assert_eq!(next, Some(*offset), "processing order of {}", tp);
                self.next.insert(tp.clone(), offset + 1);
                self.consumed.insert(tp.clone());
                self.processed += 1;
            }
            Event::Acked { count, .. } => self.acked += *count as u64,
            _ => {}
        }
        Ok(())
    }

    fn offsets_fetched(&mut self, response: &Response) {
        if let Response::OffsetFetch(Ok(offsets)) = response {
            for (tp, o) in offsets {
                self.next.insert(tp.clone(), o.unwrap_or(0));
            }
        }
    }
}

// ------------------------------------------------------------------ the run

struct Run {
    client: StreamsClient,
    driver: Driver,
    cluster: Cluster,
    model: Model,
    main: Option<(u64, Request)>,
    heartbeat: Option<(u64, Request)>,
    /// The last main request lost in the network.
    lost: Option<Request>,
}

impl Run {
    fn new(guarantee: Guarantee, protocol: RebalanceProtocol) -> Self {
        let meta = [
            (IN.to_string(), PARTS),
            (OUT.to_string(), PARTS),
            (changelog_topic(APP, STORE), PARTS),
        ]
        .into_iter()
        .collect();
        let model = Model {
            eos: guarantee == Guarantee::ExactlyOnceV2,
            cooperative: protocol == RebalanceProtocol::Cooperative,
            ..Model::default()
        };
        Run {
            client: client(guarantee, protocol),
            driver: Driver::new(meta),
            cluster: Cluster::new(),
            model,
            main: None,
            heartbeat: None,
            lost: None,
        }
    }

    /// Record what the client sent and reported.
    fn absorb(&mut self, sent: Vec<(u64, Request)>, lane: usize) -> Result<(), TestCaseError> {
        for e in self.driver.take_events() {
            self.model.event(&e, &self.cluster)?;
        }
        for (corr, request) in sent {
            // A request resent after its timeout was decided before: not a new step.
            let resent = self.main.as_ref().map(|(_, r)| r) == Some(&request)
                || self.lost.as_ref() == Some(&request);
            if !resent {
                self.model.request(&request, &self.client, &self.cluster)?;
            }
            if lane == MAIN {
                // The lost request is resent now or never.
                self.lost = None;
            }
            let heartbeat_lane = matches!(
                request,
                Request::Heartbeat { .. } | Request::LeaveGroup { .. }
            );
            assert_eq!(
                lane == HEARTBEAT,
                heartbeat_lane,
                "{request:?} on lane {lane}"
            );
            let slot = if heartbeat_lane {
                &mut self.heartbeat
            } else {
                &mut self.main
            };
            *slot = Some((corr, request));
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::StepMain | Op::StepHeartbeat => {
                let lane = if matches!(op, Op::StepMain) {
                    MAIN
                } else {
                    HEARTBEAT
                };
                if self.client.ready(lane, self.driver.now) {
                    let sent = self.driver.step(&mut self.client, lane);
                    self.absorb(sent, lane)?;
                }
            }
            Op::Answer(choice) => {
                let Some((corr, request)) = self.main.take() else {
                    return Ok(());
                };
                let response = self.cluster.answer(&request, *choice);
                self.model.offsets_fetched(&response);
                self.model.response(&response);
                let sent = self.driver.respond(&mut self.client, corr, response);
                self.absorb(sent, MAIN)?;
            }
            Op::Heartbeat(choice) => {
                let Some((corr, request)) = self.heartbeat.take() else {
                    return Ok(());
                };
                if let Request::LeaveGroup { .. } = request {
                    let response = self.cluster.leave();
                    let sent = self.driver.respond(&mut self.client, corr, response);
                    return self.absorb(sent, HEARTBEAT);
                }
                let result = self.cluster.heartbeat(*choice);
                if matches!(
                    result,
                    Err(KafkaError::IllegalGeneration) | Err(KafkaError::UnknownMemberId)
                ) && self.model.tasks.is_some()
                    // During the member's own cooperative join, the join's answer decides.
                    && !self.model.rebalancing
                {
                    self.model.expelled = true;
                    self.model.seen.insert("expelled");
                }
                let response = Response::Heartbeat(result);
                let sent = self.driver.respond(&mut self.client, corr, response);
                self.absorb(sent, HEARTBEAT)?;
            }
            Op::Lose => {
                if let Some((_, request)) = self.main.take() {
                    self.lost = Some(request);
                }
            }
            Op::Advance(ms) => self.driver.now += ms,
        }
        Ok(())
    }

    /// Faults healed: answer everything successfully until the client is idle.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..5_000 {
            if self.client.idle() {
                return Ok(());
            }
            if self.main.is_some() {
                self.apply(&Op::Answer(4))?;
            } else if self.heartbeat.is_some() {
                self.apply(&Op::Heartbeat(0))?;
            } else if self.client.ready(MAIN, self.driver.now) {
                self.apply(&Op::StepMain)?;
            } else {
                let next = self.client.wakeup().unwrap_or(self.driver.now + 1);
                self.driver.now = next.max(self.driver.now + 1);
            }
        }
        fail("the client did not settle".into())
    }

    /// After settling: all assigned input processed and committed; under exactly-once
    /// each committed count equals the committed input with its key.
    fn check_settled(&self) -> Result<(), TestCaseError> {
        for tp in self.model.assigned() {
            let committed = self.cluster.committed.get(&tp).copied();
            prop_assert_eq!(committed, Some(RECORDS), "{} not fully committed", tp);
            let store = self.client.stores()[&(STORE.to_string(), tp.partition)].clone();
            prop_assert_eq!(&store, &self.cluster.committed_store(tp.partition));
            let mut expected: BTreeMap<String, u64> = BTreeMap::new();
            for o in 0..RECORDS {
                *expected.entry(input_key(tp.partition, o)).or_default() += 1;
            }
            for (key, n) in expected {
                let counted: u64 = store.get(&key).map_or(0, |v| v.parse().expect("count"));
                if self.model.eos {
                    prop_assert_eq!(counted, n, "exactly-once count of {}", key);
                } else {
                    prop_assert!(counted >= n, "at-least-once lost a count of {}", key);
                }
            }
        }
        Ok(())
    }
}

fn run(
    guarantee: Guarantee,
    protocol: RebalanceProtocol,
    ops: &[Op],
) -> Result<BTreeSet<&'static str>, TestCaseError> {
    let mut r = Run::new(guarantee, protocol);
    for op in ops {
        r.apply(op)?;
    }
    r.model.expelled = false;
    r.settle()?;
    r.check_settled()?;
    Ok(std::mem::take(&mut r.model.seen))
}

use RebalanceProtocol::{Cooperative, Eager};

proptest! {
    #![proptest_config(Config { cases: 192, failure_persistence: None, ..Config::default() })]

    #[test]
    fn at_least_once_cooperative_runtime_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(Guarantee::AtLeastOnce, Cooperative, &ops)?;
    }

    #[test]
    fn exactly_once_v2_cooperative_runtime_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(Guarantee::ExactlyOnceV2, Cooperative, &ops)?;
    }

    #[test]
    fn at_least_once_eager_runtime_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(Guarantee::AtLeastOnce, Eager, &ops)?;
    }

    #[test]
    fn exactly_once_v2_eager_runtime_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(Guarantee::ExactlyOnceV2, Eager, &ops)?;
    }
}

/// The generators reach the paths the properties are about.
#[test]
fn every_interesting_path_is_exercised() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    let strategy = proptest::collection::vec(op(), 50..250);
    for i in 0..400 {
        let ops = strategy.new_tree(&mut runner).expect("a history").current();
        let guarantee = if i % 2 == 0 {
            Guarantee::AtLeastOnce
        } else {
            Guarantee::ExactlyOnceV2
        };
        let protocol = if i % 4 < 2 { Cooperative } else { Eager };
        seen.extend(run(guarantee, protocol, &ops).expect("the model agrees"));
    }
    for path in [
        "commit",
        "commit txn",
        "producer re-initialised",
        "restored",
        "restored data",
        "expelled",
        "cooperative rejoin with tasks",
        "task retained",
        "revoked committed",
    ] {
        assert!(seen.contains(path), "no history reached {path:?}: {seen:?}");
    }
}
