//! Replication and the controller, one Kafka rule each: acks, min.insync.replicas, the
//! high watermark, ISR shrink and expansion, clean and unclean elections, KIP-279
//! truncation, lost unflushed data, and markers that wait for the high watermark.
//! (Replica placement: `placement_start("stock", 3)` is 0, so broker 0 leads.)

use super::*;
use crate::protocol::{Acks, Isolation, PartitionProduceResult, ProduceBatch, Record};

const T: &str = "stock"; // placed from broker 0 in a three-broker cluster

pub(super) fn tp() -> TopicPartition {
    TopicPartition::new(T, 0)
}

pub(super) fn rec(v: &str) -> Record {
    Record {
        key: Some("k".into()),
        value: Some(v.into()),
        timestamp: 0,
        headers: Vec::new(),
    }
}

pub(super) struct Cl {
    pub(super) b: Broker,
    pub(super) now: Millis,
    pub(super) events: Vec<Event>,
}

impl Cl {
    /// Three brokers, one partition of `stock` led by broker 0, replicas 0, 1, 2.
    pub(super) fn new(min_isr: u32, unclean: bool) -> Cl {
        let mut b = Broker::new();
        b.create_topic(
            T,
            TopicConfig {
                partitions: 1,
                compacted: false,
            },
        )
        .unwrap();
        let config = ClusterConfig {
            brokers: 3,
            replication_factor: 3,
            min_insync_replicas: min_isr,
            unclean_leader_election: unclean,
            ..ClusterConfig::default()
        };
        b.set_cluster(config).unwrap();
        Cl {
            b,
            now: 0,
            events: Vec::new(),
        }
    }

    pub(super) fn produce(&mut self, value: &str, acks: Acks) -> Handled {
        let req = Request::Produce {
            producer: None,
            batches: vec![ProduceBatch {
                tp: tp(),
                base_sequence: None,
                records: vec![rec(value)],
            }],
            acks,
        };
        let client = crate::client::ClientId::new("p", "app");
        let h = self
            .b
            .handle_request(self.now, &client, req, &mut self.events);
        self.b.check_invariants();
        h
    }

    fn fetch(&mut self, broker: BrokerId) {
        let f = FollowerFetch { tp: tp(), broker };
        assert!(self.b.follower_fetches().contains(&f), "{f:?} not offered");
        self.b.follower_fetch(self.now, &f, &mut self.events);
        self.b.check_invariants();
    }

    pub(super) fn tick_to(&mut self, t: Millis) {
        self.now = t;
        self.b.tick(t, &mut self.events);
        self.b.check_invariants();
    }

    /// Crash `broker`; with `keep`, its replica of `tp()` keeps that many offsets (the
    /// coordinators' partitions keep everything).
    pub(super) fn crash(&mut self, broker: BrokerId, keep: Option<Offset>) {
        let keep: Option<Vec<Offset>> = keep.map(|k| {
            let ends = self.b.replica_log_ends(broker);
            ends.iter()
                .map(|(t, end)| if *t == tp() { k } else { *end })
                .collect()
        });
        self.b
            .crash_broker(self.now, broker, keep.as_deref(), &mut self.events);
        self.b.check_invariants();
    }

    /// A coordinator request, answered once its records are replicated: every follower
    /// of the coordinators' partitions fetches until the answer is out.
    pub(super) fn coord(&mut self, req: Request) -> Response {
        let client = crate::client::ClientId::new("p", "app");
        match self
            .b
            .handle_request(self.now, &client, req, &mut self.events)
        {
            Handled::Now(r) => r,
            Handled::Delayed(id) => {
                for _ in 0..10 {
                    let done = self.b.take_completed_produces();
                    if let Some((_, r)) = done.into_iter().find(|(i, _)| *i == id) {
                        return r;
                    }
                    for f in self.b.follower_fetches() {
                        if log::is_internal(&f.tp.topic) {
                            self.b.follower_fetch(self.now, &f, &mut self.events);
                        }
                    }
                }
                panic!("answer {id} never completed")
            }
            Handled::Never => panic!("a coordinator request is answered"),
        }
    }

    fn values(&self) -> Vec<String> {
        self.b
            .log(&tp())
            .iter()
            .filter_map(|e| e.record.value.clone())
            .collect()
    }

    fn leader(&self) -> Option<BrokerId> {
        self.b.cluster.as_ref().unwrap().partitions[&tp()].leader
    }

    fn isr(&self) -> Vec<BrokerId> {
        let r = &self.b.cluster.as_ref().unwrap().partitions[&tp()];
        r.isr.iter().copied().collect()
    }

    pub(super) fn session(&self) -> Millis {
        self.b.cluster_config().unwrap().broker_session_timeout_ms
    }
}

fn ok(h: &Handled) -> bool {
    matches!(h, Handled::Now(Response::Produce(r))
        if matches!(r[0].1, PartitionProduceResult::Appended { .. }))
}

#[test]
fn acks_1_is_answered_at_the_leader_and_the_high_watermark_waits_for_the_isr() {
    let mut c = Cl::new(1, false);
    assert!(ok(&c.produce("a", Acks::Leader)));
    assert_eq!(c.b.high_watermark(&tp()), 0, "no follower has it yet");
    assert_eq!(c.b.log_end_offset(&tp()), 1);
    c.fetch(1);
    assert_eq!(
        c.b.high_watermark(&tp()),
        0,
        "broker 2 is in the ISR and lacks it"
    );
    c.fetch(2);
    assert_eq!(c.b.high_watermark(&tp()), 1);
}

#[test]
fn consumers_read_up_to_the_high_watermark_only() {
    let mut c = Cl::new(1, false);
    c.produce("a", Acks::Leader);
    let client = crate::client::ClientId::new("c", "app");
    let fetch = |c: &mut Cl| {
        let req = Request::Fetch {
            tp: tp(),
            offset: 0,
            max_records: 10,
            isolation: Isolation::ReadUncommitted,
        };
        match c.b.handle(c.now, &client, req, &mut c.events) {
            Response::Fetch { result: Ok(d), .. } => d.records.len(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(fetch(&mut c), 0, "above the high watermark");
    c.fetch(1);
    c.fetch(2);
    assert_eq!(fetch(&mut c), 1);
}

#[test]
fn acks_all_is_answered_once_every_isr_member_has_the_batch() {
    let mut c = Cl::new(2, false);
    let Handled::Delayed(id) = c.produce("a", Acks::All) else {
        panic!("acks=all waits for the ISR")
    };
    c.fetch(1);
    assert!(c.b.take_completed_produces().is_empty());
    c.fetch(2);
    let done = c.b.take_completed_produces();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, id);
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_acks_all_then_needs_min_isr() {
    let mut c = Cl::new(3, false);
    let Handled::Delayed(_) = c.produce("a", Acks::All) else {
        panic!("waits")
    };
    c.fetch(1);
    let lag = c.b.cluster_config().unwrap().replica_lag_time_max_ms;
    c.tick_to(lag + 1);
    assert_eq!(c.isr(), vec![0, 1], "broker 2 never fetched: out");
    // Below min.insync.replicas = 3 the high watermark stays (KIP-966,
    // `Partition.isUnderMinIsr`): the write waits in the purgatory.
    assert_eq!(c.b.high_watermark(&tp()), 0);
    assert!(c.b.take_completed_produces().is_empty());
    // Now refused before any append (`Partition.appendRecordsToLeader`).
    let before = c.b.log_end_offset(&tp());
    let refused = c.produce("b", Acks::All);
    assert!(matches!(&refused, Handled::Now(Response::Produce(r))
        if r[0].1 == PartitionProduceResult::Error(KafkaError::NotEnoughReplicas)));
    assert_eq!(c.b.log_end_offset(&tp()), before);
    // The follower catches up to the high watermark and rejoins: the write is committed.
    c.fetch(2);
    assert_eq!(c.isr(), vec![0, 1, 2]);
    assert_eq!(c.b.high_watermark(&tp()), 1);
    let done = c.b.take_completed_produces();
    assert!(matches!(&done[0].1, Response::Produce(r)
        if matches!(r[0].1, PartitionProduceResult::Appended { .. })));
}

#[test]
fn the_high_watermark_stays_while_the_isr_is_below_min_insync_replicas() {
    // KIP-966 (`Partition.maybeIncrementLeaderHW` returns at once when
    // `Partition.isUnderMinIsr`): an acks=1 write on a leader left alone in the ISR is
    // answered, and consumers do not see it until a follower rejoins.
    let mut c = Cl::new(2, false);
    c.produce("a", Acks::Leader);
    c.fetch(1);
    c.fetch(2);
    assert_eq!(c.b.high_watermark(&tp()), 1);
    assert!(ok(&c.produce("b", Acks::Leader)));
    let lag = c.b.cluster_config().unwrap().replica_lag_time_max_ms;
    c.tick_to(lag + 1);
    assert_eq!(c.isr(), vec![0], "neither follower fetched b");
    assert_eq!(c.b.high_watermark(&tp()), 1, "b is on the leader alone");
    c.fetch(1);
    assert_eq!(c.isr(), vec![0, 1]);
    assert_eq!(c.b.high_watermark(&tp()), 2);
}

#[test]
fn a_crashed_leader_is_replaced_from_the_isr_after_its_session_and_acks_1_writes_are_lost() {
    let mut c = Cl::new(1, false);
    c.produce("a", Acks::Leader);
    c.fetch(1);
    c.fetch(2);
    c.produce("b", Acks::Leader); // acknowledged by broker 0 alone
    c.crash(0, None);
    assert_eq!(c.leader(), Some(0), "the controller has not noticed yet");
    assert!(
        matches!(c.produce("c", Acks::Leader), Handled::Now(Response::Produce(r))
        if r[0].1 == PartitionProduceResult::Error(KafkaError::NotLeaderOrFollower))
    );
    let t = c.session();
    c.tick_to(t);
    assert_eq!(c.leader(), Some(1), "the first live replica of the ISR");
    assert_eq!(c.values(), vec!["a"], "b was acknowledged and is gone");
    c.produce("c", Acks::Leader);
    assert_eq!(c.values(), vec!["a", "c"]);
    // Broker 0 comes back, truncates to the new leader's epoch end offset, catches up.
    c.b.restart_broker(c.now, 0, &mut c.events);
    c.fetch(0);
    let f = &c.b.cluster.as_ref().unwrap().partitions[&tp()].followers[&0];
    let old: Vec<_> = f
        .log
        .entries
        .iter()
        .filter_map(|e| e.record.value.clone())
        .collect();
    assert_eq!(old, vec!["a", "c"], "b truncated (KIP-279), c copied");
}

#[test]
fn without_unclean_election_a_partition_stays_offline_and_with_it_loses_what_the_isr_had() {
    for unclean in [false, true] {
        let mut c = Cl::new(1, unclean);
        c.produce("a", Acks::Leader);
        c.fetch(1);
        c.fetch(2);
        let lag = c.b.cluster_config().unwrap().replica_lag_time_max_ms;
        c.produce("b", Acks::Leader);
        c.tick_to(lag + 1); // neither follower fetched b: the ISR is broker 0 alone
        assert_eq!(c.isr(), vec![0]);
        assert_eq!(
            c.b.high_watermark(&tp()),
            2,
            "b is committed on the ISR {{0}}"
        );
        c.crash(0, None);
        let t = c.now + c.session();
        c.tick_to(t);
        if unclean {
            assert_eq!(c.leader(), Some(1));
            assert_eq!(c.isr(), vec![1]);
            assert_eq!(c.values(), vec!["a"], "the committed b is lost");
            assert!(c
                .events
                .iter()
                .any(|e| matches!(e, Event::LeaderElected { unclean: true, .. })));
        } else {
            assert_eq!(c.leader(), None, "offline until broker 0 returns");
            c.b.restart_broker(c.now, 0, &mut c.events);
            assert_eq!(c.leader(), Some(0));
            assert_eq!(c.values(), vec!["a", "b"]);
        }
    }
}

#[test]
fn a_restarted_broker_that_lost_its_unflushed_suffix_is_fenced_and_catches_up() {
    let mut c = Cl::new(2, false);
    for v in ["a", "b", "c"] {
        c.produce(v, Acks::All);
    }
    c.fetch(1);
    c.fetch(2);
    assert_eq!(c.b.high_watermark(&tp()), 3);
    // Broker 2 loses everything past offset 1, and restarts before its session expires.
    c.crash(2, Some(1));
    c.b.restart_broker(c.now, 2, &mut c.events);
    c.b.check_invariants();
    assert_eq!(c.isr(), vec![0, 1], "registered again: fenced first");
    c.fetch(2);
    assert_eq!(c.isr(), vec![0, 1, 2]);
    assert_eq!(c.values(), vec!["a", "b", "c"], "nothing committed is lost");
}

#[test]
fn a_transaction_marker_waits_for_the_high_watermark_and_holds_the_lso_until_then() {
    let mut c = Cl::new(1, false);
    let client = crate::client::ClientId::new("p", "app");
    let init = Request::InitProducerId {
        transactional_id: Some("t".into()),
        transaction_timeout_ms: 1_000,
    };
    let Response::InitProducerId(Ok((pid, epoch))) = c.coord(init) else {
        panic!()
    };
    let id = ProducerIdentity {
        producer_id: pid,
        epoch,
        transactional_id: Some("t".into()),
    };
    let req = Request::Produce {
        producer: Some(id.clone()),
        batches: vec![ProduceBatch {
            tp: tp(),
            base_sequence: Some(0),
            records: vec![rec("a")],
        }],
        acks: Acks::All,
    };
    assert!(matches!(
        c.b.handle_request(0, &client, req, &mut c.events),
        Handled::Delayed(_)
    ));
    c.fetch(1);
    c.fetch(2);
    assert_eq!(c.b.take_completed_produces().len(), 1);
    let end = Request::EndTxn {
        producer: id,
        commit: true,
    };
    c.coord(end);
    c.b.write_pending_marker(0, &c.b.pending_markers()[0], &mut c.events);
    assert!(
        c.b.has_pending_markers(),
        "the marker is not below the HW yet"
    );
    assert_eq!(
        c.b.last_stable_offset(&tp()),
        0,
        "the transaction still holds the LSO"
    );
    c.fetch(1);
    c.fetch(2);
    assert!(!c.b.has_pending_markers());
    assert_eq!(c.b.last_stable_offset(&tp()), 2);
}

#[test]
fn a_single_broker_cluster_is_the_plain_broker() {
    let mut b = Broker::new();
    b.set_cluster(ClusterConfig::default()).unwrap();
    assert!(b.cluster.is_none());
    assert!(b.follower_fetches().is_empty());
    let bad = ClusterConfig {
        brokers: 3,
        replication_factor: 4,
        ..ClusterConfig::default()
    };
    assert!(b.set_cluster(bad).is_err());
}

/// An idempotent batch sent with `acks=1` to broker 0, its answer lost.
fn idempotent(c: &mut Cl, p: &crate::protocol::ProducerIdentity, seq: i32, v: &str) -> Handled {
    let req = Request::Produce {
        producer: Some(p.clone()),
        batches: vec![ProduceBatch {
            tp: tp(),
            base_sequence: Some(seq),
            records: vec![rec(v)],
        }],
        acks: Acks::Leader,
    };
    let client = crate::client::ClientId::new("p", "app");
    let h = c.b.handle_request(c.now, &client, req, &mut c.events);
    c.b.check_invariants();
    h
}

#[test]
fn a_new_leader_knows_the_idempotent_producers_from_its_log_and_drops_a_retried_batch() {
    // `ProducerStateManager`: a follower's producer state is its log's, so the new leader
    // recognises a batch its predecessor appended and the producer resends.
    let mut c = Cl::new(1, false);
    let Response::InitProducerId(Ok((producer_id, epoch))) = c.coord(Request::InitProducerId {
        transactional_id: None,
        transaction_timeout_ms: 1_000,
    }) else {
        panic!("an idempotent producer id")
    };
    let p = crate::protocol::ProducerIdentity {
        producer_id,
        epoch,
        transactional_id: None,
    };
    idempotent(&mut c, &p, 0, "a");
    idempotent(&mut c, &p, 1, "b");
    c.fetch(1);
    c.fetch(2);
    c.crash(0, None);
    let t = c.session();
    c.tick_to(t);
    assert_eq!(c.leader(), Some(1));
    let retry = idempotent(&mut c, &p, 1, "b");
    assert!(
        matches!(&retry, Handled::Now(Response::Produce(r))
            if r[0].1 == PartitionProduceResult::Appended { base_offset: 1, duplicate: true }),
        "{retry:?}"
    );
    let next = idempotent(&mut c, &p, 2, "c");
    assert!(
        matches!(&next, Handled::Now(Response::Produce(r))
            if r[0].1 == PartitionProduceResult::Appended { base_offset: 2, duplicate: false }),
        "{next:?}"
    );
    assert_eq!(c.values(), vec!["a", "b", "c"]);
}

/// A cluster where every replica has "a" and "b" below the high watermark.
fn replicated_two() -> Cl {
    let mut c = Cl::new(1, false);
    c.produce("a", Acks::Leader);
    c.produce("b", Acks::Leader);
    c.fetch(1);
    c.fetch(2);
    assert_eq!(c.b.high_watermark(&tp()), 2);
    c
}

#[test]
#[should_panic(expected = "HW 2 past ISR member 1")]
fn the_invariants_catch_a_high_watermark_past_an_isr_member() {
    let mut c = replicated_two();
    let r =
        c.b.cluster
            .as_mut()
            .unwrap()
            .partitions
            .get_mut(&tp())
            .unwrap();
    r.followers.get_mut(&1).unwrap().fetched_end = 1;
    c.b.check_invariants();
}

#[test]
#[should_panic(expected = "the committed record @1 is not on ISR member 2")]
fn the_invariants_catch_a_committed_record_missing_from_an_isr_member() {
    let mut c = replicated_two();
    let r =
        c.b.cluster
            .as_mut()
            .unwrap()
            .partitions
            .get_mut(&tp())
            .unwrap();
    let f = r.followers.get_mut(&2).unwrap();
    f.log.entries[1].record = rec("x");
    c.b.check_invariants();
}

#[test]
#[should_panic(expected = "knows a future epoch")]
fn the_invariants_catch_a_leader_epoch_going_back() {
    let mut c = replicated_two();
    c.crash(0, None);
    let t = c.session();
    c.tick_to(t);
    c.produce("c", Acks::Leader); // written in epoch 1
    c.fetch(2);
    let r =
        c.b.cluster
            .as_mut()
            .unwrap()
            .partitions
            .get_mut(&tp())
            .unwrap();
    r.leader_epoch = 0;
    c.b.check_invariants();
}

#[test]
fn a_held_fetch_is_answered_when_its_leader_crashes_and_when_a_new_one_is_elected() {
    // DelayedFetch.tryComplete, cases A/B (no longer the leader) and E (a new epoch).
    let mut c = Cl::new(1, false);
    c.produce("a", Acks::Leader);
    c.fetch(1);
    c.fetch(2);
    let fetch = || Request::FetchMany {
        partitions: vec![(tp(), 1)],
        max_records: 10,
        isolation: Isolation::ReadUncommitted,
        max_wait_ms: 100,
    };
    let client = crate::client::ClientId::new("c", "app");
    let held = c.b.handle_request(c.now, &client, fetch(), &mut c.events);
    assert!(matches!(held, Handled::Delayed(_)), "{held:?}");
    assert!(c.b.take_completed_fetches(&mut c.events).is_empty());
    c.crash(0, None);
    let done = c.b.take_completed_fetches(&mut c.events);
    let [(_, Response::FetchMany(results))] = &done[..] else {
        panic!("{done:?}")
    };
    assert_eq!(results[0].result, Err(KafkaError::NotLeaderOrFollower));

    // Held again once broker 1 leads; a new election (broker 1 crashes, 2 takes over)
    // answers it too, though a leader is reachable again by then.
    let t = c.session();
    c.tick_to(t);
    assert_eq!(c.leader(), Some(1));
    c.fetch(2); // the high watermark reaches the new epoch's start (KIP-207)
    let held = c.b.handle_request(c.now, &client, fetch(), &mut c.events);
    assert!(matches!(held, Handled::Delayed(_)), "{held:?}");
    c.crash(1, None);
    c.tick_to(c.now + c.session());
    assert_eq!(c.leader(), Some(2));
    let done = c.b.take_completed_fetches(&mut c.events);
    let [(_, Response::FetchMany(results))] = &done[..] else {
        panic!("{done:?}")
    };
    assert_eq!(results[0].result, Err(KafkaError::NotLeaderOrFollower));
}
