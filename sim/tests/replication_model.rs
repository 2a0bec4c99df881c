//! Property tests of replication: random histories on a three-broker cluster (produce with
//! `acks=1` and `acks=all`, follower fetches in any order, time passing past
//! `replica.lag.time.max.ms` and the broker session timeout, broker crashes with or
//! without losing their unflushed suffix, restarts), checked against Kafka's replication
//! rules after every operation:
//!
//! - the broker's own invariants (`Broker::check_invariants`: HW at most every ISR
//!   member's log end, every record below the HW on every live ISR member, leader epochs
//!   increasing);
//! - a record that comes below the high watermark is on at least
//!   `min(min.insync.replicas, RF)` replicas (KIP-966: the HW does not move while the ISR
//!   is smaller, `Partition.maybeIncrementLeaderHW`, `Partition.isUnderMinIsr`), counting
//!   a crashed follower that lost its copy as its leader does until it is fenced;
//! - each election's leader epoch is above the last (KRaft `PartitionChangeBuilder`);
//! - with clean elections only and one fault at a time (a broker crashes only when the
//!   cluster is healthy: every broker up, every replica in sync), a record once below the
//!   high watermark stays at its offset with the same value, so every `acks=all` write
//!   acknowledged stays too: no lost committed write, no two records at one offset
//!   (KIP-101 / KIP-279 truncation only removes what was never committed).

use std::collections::BTreeMap;

use oversell_sim::broker::{Broker, ClusterConfig, Handled, TopicConfig};
use oversell_sim::protocol::{
    Acks, Millis, Offset, PartitionProduceResult, ProduceBatch, Record, Request, Response,
    TopicPartition,
};
use oversell_sim::{ClientId, Event};
use proptest::prelude::*;

const TOPIC: &str = "stock";
const BROKERS: u32 = 3;

fn tp() -> TopicPartition {
    TopicPartition::new(TOPIC, 0)
}

#[derive(Clone, Debug)]
enum Op {
    Produce {
        all: bool,
    },
    /// The n-th (modulo their number) follower fetch the broker offers now.
    Fetch(usize),
    Advance(Millis),
    /// Crash a broker (only when the cluster is healthy); `lose` entries of each of its
    /// replica logs are lost with its page cache.
    Crash {
        broker: u32,
        lose: Option<u64>,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(|all| Op::Produce { all }),
        6 => (0usize..8).prop_map(Op::Fetch),
        2 => prop::sample::select(vec![5, 40, 70, 210]).prop_map(Op::Advance),
        1 => (0..BROKERS, prop::option::of(1u64..4))
            .prop_map(|(broker, lose)| Op::Crash { broker, lose }),
        1 => Just(Op::Restart),
    ]
}

struct Run {
    b: Broker,
    now: Millis,
    min_isr: u32,
    next_value: u64,
    down: Option<u32>,
    /// The broker down lost unflushed data: until it is fenced, its leader still counts it
    /// with the log end of its last fetch (`Replica.logEndOffset`), as Kafka's does.
    lossy_down: bool,
    /// Produce answers not given yet: delayed id → value.
    waiting: BTreeMap<u64, String>,
    /// Every record seen below the high watermark, by offset.
    committed: BTreeMap<Offset, String>,
    /// `acks=all` writes acknowledged, by offset.
    acked_all: BTreeMap<Offset, String>,
    last_epoch: Option<u32>,
}

impl Run {
    fn new(min_isr: u32) -> Run {
        let mut b = Broker::new();
        let topic = TopicConfig {
            partitions: 1,
            compacted: false,
        };
        b.create_topic(TOPIC, topic).unwrap();
        let config = ClusterConfig {
            brokers: BROKERS,
            replication_factor: BROKERS,
            min_insync_replicas: min_isr,
            ..ClusterConfig::default()
        };
        b.set_cluster(config).unwrap();
        Run {
            b,
            now: 0,
            min_isr,
            next_value: 0,
            down: None,
            lossy_down: false,
            waiting: BTreeMap::new(),
            committed: BTreeMap::new(),
            acked_all: BTreeMap::new(),
            last_epoch: None,
        }
    }

    fn apply(&mut self, op: &Op, events: &mut Vec<Event>) {
        match *op {
            Op::Produce { all } => self.produce(all, events),
            Op::Fetch(n) => {
                let offered = self.b.follower_fetches();
                if !offered.is_empty() {
                    let f = &offered[n % offered.len()];
                    self.b.follower_fetch(self.now, f, events);
                }
            }
            Op::Advance(ms) => {
                self.now += ms;
                self.b.tick(self.now, events);
            }
            Op::Crash { broker, lose } => {
                if self.down.is_none() && self.b.cluster_healthy() {
                    let keep: Option<Vec<Offset>> = lose.map(|k| {
                        let ends = self.b.replica_log_ends(broker);
                        ends.iter().map(|(_, end)| end.saturating_sub(k)).collect()
                    });
                    self.b
                        .crash_broker(self.now, broker, keep.as_deref(), events);
                    self.down = Some(broker);
                    self.lossy_down = lose.is_some();
                }
            }
            Op::Restart => {
                if let Some(broker) = self.down.take() {
                    self.lossy_down = false;
                    self.b.restart_broker(self.now, broker, events);
                }
            }
        }
        for (id, response) in self.b.take_completed_produces() {
            let value = self.waiting.remove(&id).expect("a produce we sent");
            self.note_answer(&response, value);
        }
    }

    fn produce(&mut self, all: bool, events: &mut Vec<Event>) {
        let value = format!("v{}", self.next_value);
        self.next_value += 1;
        let acks = if all { Acks::All } else { Acks::Leader };
        let req = Request::Produce {
            producer: None,
            batches: vec![ProduceBatch {
                tp: tp(),
                base_sequence: None,
                records: vec![Record {
                    key: Some("k".into()),
                    value: Some(value.clone()),
                    timestamp: 0,
                    headers: Vec::new(),
                }],
            }],
            acks,
        };
        let client = ClientId::new("p", "app");
        match self.b.handle_request(self.now, &client, req, events) {
            Handled::Now(response) if all => self.note_answer(&response, value),
            Handled::Now(_) | Handled::Never => {}
            Handled::Delayed(id) => {
                assert!(all, "only acks=all waits");
                self.waiting.insert(id, value);
            }
        }
    }

    fn note_answer(&mut self, response: &Response, value: String) {
        let Response::Produce(results) = response else {
            panic!("a produce answer: {response:?}")
        };
        if let PartitionProduceResult::Appended { base_offset, .. } = results[0].1 {
            self.acked_all.insert(base_offset, value);
        }
    }

    fn value_at(&self, offset: Offset) -> Option<String> {
        let log = self.b.log(&tp());
        let e = log.iter().find(|e| e.offset == offset)?;
        e.record.value.clone()
    }

    /// How many replicas' logs reach past `offset`.
    fn copies(&self, offset: Offset) -> u32 {
        (0..BROKERS)
            .filter(|b| {
                let ends = self.b.replica_log_ends(*b);
                ends.iter().any(|(t, end)| *t == tp() && *end > offset)
            })
            .count() as u32
    }
}

/// How often the paths the properties are about were taken.
#[derive(Default, Debug)]
struct Cov {
    elections: u32,
    truncations: u32,
    isr_shrinks: u32,
    lossy_crashes: u32,
    acked_all: usize,
}

/// Run `ops`; `Err` names the first broken property.
fn check(min_isr: u32, ops: &[Op], cov: &mut Cov) -> Result<(), TestCaseError> {
    let mut run = Run::new(min_isr);
    for op in ops {
        let hw_before = run.b.high_watermark(&tp());
        let mut events = Vec::new();
        run.apply(op, &mut events);
        run.b.check_invariants();
        let mut elected = false;
        cov.lossy_crashes += u32::from(matches!(op, Op::Crash { lose: Some(_), .. }));
        for e in &events {
            match e {
                Event::Truncated { tp: t, .. } if *t == tp() => cov.truncations += 1,
                Event::IsrChanged { tp: t, isr } if *t == tp() && isr.len() < 3 => {
                    cov.isr_shrinks += 1
                }
                _ => {}
            }
            if let Event::LeaderElected { tp: t, epoch, .. } = e {
                if *t == tp() {
                    prop_assert!(
                        run.last_epoch < Some(*epoch),
                        "epoch {epoch} after {:?}",
                        run.last_epoch
                    );
                    run.last_epoch = Some(*epoch);
                    elected = true;
                    cov.elections += 1;
                }
            }
        }
        let hw = run.b.high_watermark(&tp());
        let lossy = matches!(op, Op::Crash { lose: Some(_), .. });
        if !elected && !lossy {
            let min = run.min_isr.min(BROKERS);
            for o in hw_before..hw {
                prop_assert!(
                    run.copies(o) + u32::from(run.lossy_down) >= min,
                    "@{o} came below the HW on {} replicas, min.insync.replicas {min} ({op:?})",
                    run.copies(o)
                );
            }
        }
        for o in 0..hw {
            if let Some(v) = run.value_at(o) {
                run.committed.entry(o).or_insert(v);
            }
        }
        for (o, v) in run.committed.iter().chain(&run.acked_all) {
            let now = run.value_at(*o);
            prop_assert_eq!(now.as_ref(), Some(v), "committed @{} changed ({:?})", o, op);
        }
    }
    cov.acked_all += run.acked_all.len();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replication_keeps_what_it_commits(
        min_isr in 1u32..=3,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        check(min_isr, &ops, &mut Cov::default())?;
    }
}

/// The case KIP-966 is about: the ISR shrinks to the leader, which takes an `acks=1`
/// write; before 4.x's rule the high watermark passed it with one copy.
#[test]
fn a_leader_alone_in_the_isr_commits_nothing_under_min_isr_two() {
    let ops = [
        Op::Produce { all: false },
        Op::Advance(210),
        Op::Produce { all: false },
        Op::Advance(5),
    ];
    check(2, &ops, &mut Cov::default()).unwrap();
}

/// The generator reaches elections, truncations, ISR shrinks, lossy crashes and `acks=all`
/// answers, so the properties above are not vacuous.
#[test]
fn every_interesting_path_is_exercised() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::default());
    let strategy = (1u32..=3, prop::collection::vec(op(), 1..80));
    let mut cov = Cov::default();
    for _ in 0..200 {
        let (min_isr, ops) = strategy.new_tree(&mut runner).unwrap().current();
        check(min_isr, &ops, &mut cov).unwrap();
    }
    eprintln!("{cov:?}");
    assert!(
        cov.elections > 20
            && cov.truncations > 10
            && cov.isr_shrinks > 20
            && cov.lossy_crashes > 20
            && cov.acked_all > 100,
        "{cov:?}"
    );
}
