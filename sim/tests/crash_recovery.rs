//! Crash recovery on the small counting topology (`oversell_sim::counting`).
//!
//! * `at_least_once`: a crash after the changelog write and before the offset commit
//!   means the input is processed again with the store already written: a key is
//!   counted twice. Some seed with crash injection must show it.
//! * `exactly_once_v2`: outputs, changelog writes and offsets commit in one transaction;
//!   a crash aborts it and the store is restored from the committed changelog. No seed of
//!   2,000, with crashes, zombie pauses and network faults, may count twice (or lose a
//!   count, or commit a duplicate output).
//!
//! Every failure message starts with the seed; `world(&setup).run_seed(seed)` reproduces it.

use oversell_sim::counting::{double_counts, world, CountingSetup, APP, STORE};
use oversell_sim::{
    changelog_topic, Broker, Event, FaultRates, Guarantee, Outcome, Peer, RunResult,
    TopicPartition, TraceRecord,
};
use std::collections::BTreeMap;

fn crashes_only(guarantee: Guarantee) -> CountingSetup {
    CountingSetup {
        guarantee,
        rates: FaultRates {
            crash: 5,
            ..FaultRates::default()
        },
        fault_phase_ms: 600,
        ..CountingSetup::default()
    }
}

fn every_fault(guarantee: Guarantee) -> CountingSetup {
    CountingSetup {
        guarantee,
        rates: FaultRates {
            crash: 5,
            pause: 3,
            drop: 10,
            duplicate: 10,
            delay: 10,
            ..FaultRates::default()
        },
        fault_phase_ms: 600,
        ..CountingSetup::default()
    }
}

/// Committed input records per key.
fn inputs(broker: &Broker, partitions: u32) -> BTreeMap<String, u64> {
    let mut n = BTreeMap::new();
    for p in 0..partitions {
        let tp = TopicPartition::new("input", p);
        for e in broker.log(&tp) {
            if e.control.is_none() && broker.is_committed(&tp, e.offset) {
                *n.entry(e.record.key.clone().expect("keyed input"))
                    .or_insert(0u64) += 1;
            }
        }
    }
    n
}

/// The last committed count per key in the changelog.
fn committed_counts(broker: &Broker, partitions: u32) -> BTreeMap<String, u64> {
    let mut n = BTreeMap::new();
    for p in 0..partitions {
        let tp = TopicPartition::new(changelog_topic(APP, STORE), p);
        for e in broker.log(&tp) {
            if e.control.is_none() && broker.is_committed(&tp, e.offset) {
                let k = e.record.key.clone().expect("keyed changelog");
                let v = e
                    .record
                    .value
                    .as_deref()
                    .expect("no tombstones")
                    .parse()
                    .expect("a count");
                n.insert(k, v);
            }
        }
    }
    n
}

/// Committed output values per key, in log order.
fn committed_outputs(broker: &Broker, partitions: u32) -> BTreeMap<String, Vec<u64>> {
    let mut n: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in 0..partitions {
        let tp = TopicPartition::new("counts", p);
        for e in broker.log(&tp) {
            if e.control.is_none() && broker.is_committed(&tp, e.offset) {
                let k = e.record.key.clone().expect("keyed output");
                let v = e
                    .record
                    .value
                    .as_deref()
                    .expect("a value")
                    .parse()
                    .expect("a count");
                n.entry(k).or_default().push(v);
            }
        }
    }
    n
}

/// Input records handed to a processor more than once: (tp, offset) → times.
fn reprocessed(r: &RunResult) -> BTreeMap<(TopicPartition, u64), u32> {
    let mut seen: BTreeMap<(TopicPartition, u64), u32> = BTreeMap::new();
    for rec in &r.trace.records {
        if let Event::Process { tp, offset, .. } = &rec.event {
            *seen.entry((tp.clone(), *offset)).or_insert(0) += 1;
        }
    }
    seen.retain(|_, n| *n > 1);
    seen
}

fn count_events(r: &RunResult, f: fn(&Event) -> bool) -> usize {
    r.trace.records.iter().filter(|rec| f(&rec.event)).count()
}

/// Every input counted exactly once, and the committed output of each key is exactly
/// 1, 2, ..., n: what exactly-once promises (and at-least-once gives without faults).
fn assert_exactly_once(seed: u64, setup: &CountingSetup, r: &RunResult) {
    let p = setup.partitions;
    let doubles = double_counts(&r.broker, p);
    assert!(
        doubles.is_empty(),
        "seed {seed}: double counts (key, counted, records): {doubles:?}"
    );
    let inputs = inputs(&r.broker, p);
    assert_eq!(
        inputs.values().sum::<u64>(),
        setup.records as u64,
        "seed {seed}: the feeder's records are not all committed once"
    );
    assert_eq!(
        committed_counts(&r.broker, p),
        inputs,
        "seed {seed}: committed counts differ from inputs"
    );
    let outputs = committed_outputs(&r.broker, p);
    for (key, n) in &inputs {
        let expected: Vec<u64> = (1..=*n).collect();
        assert_eq!(
            outputs.get(key),
            Some(&expected),
            "seed {seed}: committed outputs of {key}"
        );
    }
}

#[derive(Default, Debug)]
struct Sweep {
    runs: u64,
    steps: u64,
    crashes: usize,
    pauses: usize,
    drops: usize,
    fenced: usize,
    aborts: usize,
    runs_reprocessing: u64,
    outcomes: BTreeMap<String, u64>,
}

impl Sweep {
    fn add(&mut self, r: &RunResult) {
        self.runs += 1;
        self.steps += r.steps;
        self.crashes += count_events(r, |e| matches!(e, Event::Crash { .. }));
        self.pauses += count_events(r, |e| matches!(e, Event::Pause { .. }));
        self.drops += count_events(r, |e| matches!(e, Event::Drop { .. }));
        self.fenced += count_events(r, |e| matches!(e, Event::Fenced { .. }));
        self.aborts += count_events(r, |e| matches!(e, Event::TxnAbort { .. }));
        self.runs_reprocessing += u64::from(!reprocessed(r).is_empty());
        *self.outcomes.entry(format!("{:?}", r.outcome)).or_insert(0) += 1;
    }
}

/// Runs `seeds` of `setup`; every run must be quiescent (no bound reached) and pass `check`.
fn sweep(
    setup: &CountingSetup,
    seeds: std::ops::Range<u64>,
    check: impl Fn(u64, &RunResult),
) -> Sweep {
    let mut s = Sweep::default();
    for seed in seeds {
        let r = world(setup).run_seed(seed);
        assert_eq!(
            r.outcome,
            Outcome::Quiescent,
            "seed {seed}: the run ended at a bound after {} steps, at {} ms",
            r.steps,
            r.end_time
        );
        r.broker.check_invariants();
        check(seed, &r);
        s.add(&r);
    }
    eprintln!("{:?} over seeds: {s:?}", setup.guarantee);
    s
}

/// Finds an input record that was processed, whose changelog write was appended, whose
/// instance then crashed before any offset commit covered it, and which was processed
/// again afterwards. Returns a one-line account of it.
fn crash_between_changelog_write_and_offset_commit(r: &RunResult) -> Option<String> {
    let records = &r.trace.records;
    for ((tp, offset), _) in reprocessed(r) {
        let changelog = TopicPartition::new(changelog_topic(APP, STORE), tp.partition);
        let is_process = |e: &Event| matches!(e, Event::Process { tp: t, offset: o, .. } if *t == tp && *o == offset);
        let Some(first) = records.iter().position(|rec| is_process(&rec.event)) else {
            continue;
        };
        let Event::Process { client, key, .. } = &records[first].event else {
            unreachable!()
        };
        let instance = &client.instance;
        let crashed = |rec: &&TraceRecord| matches!(&rec.event, Event::Crash { instance: i } if i == instance);
        let Some(crash) = records[first..].iter().position(|rec| crashed(&rec)) else {
            continue; // reprocessed for another reason (a rebalance, a zombie)
        };
        let crash = first + crash;
        let Some(again) = records[crash..]
            .iter()
            .position(|rec| is_process(&rec.event))
        else {
            continue;
        };
        let again = crash + again;
        // The changelog write of this instance, appended before the crash or after it (sent
        // before it and still in flight: the broker appends it when the request arrives).
        // Whose write it is: the delivery whose handling appended it.
        let by_instance = |j: usize| {
            records[..j].iter().rev().find_map(|rec| match &rec.event {
                Event::Deliver {
                    from: Peer::Client(c),
                    ..
                } => Some(c.instance == *instance),
                Event::Deliver { .. } => Some(false),
                _ => None,
            }) == Some(true)
        };
        let written = (first..again).any(|j| {
            matches!(&records[j].event, Event::Append { tp: t, key: k, .. } if *t == changelog && k == key)
                && by_instance(j)
        });
        let committed = records[first..again].iter().any(|rec| {
            matches!(&rec.event, Event::OffsetCommit { offsets, .. }
                if offsets.iter().any(|(t, o)| *t == tp && *o > offset))
        });
        if written && !committed {
            return Some(format!(
                "{tp}@{offset} (key {key:?}) processed by {client} at {} ms, its count appended to {changelog}, \
                 {instance} crashed at {} ms before committing the offset, and the record was processed again",
                records[first].time, records[crash].time
            ));
        }
    }
    None
}

#[test]
fn at_least_once_crash_between_changelog_write_and_offset_commit_double_counts() {
    let setup = crashes_only(Guarantee::AtLeastOnce);
    for seed in 0..1_000 {
        let r = world(&setup).run_seed(seed);
        let doubles = double_counts(&r.broker, setup.partitions);
        if doubles.is_empty() {
            continue;
        }
        println!("at_least_once: seed {seed} double counts (key, counted, records): {doubles:?}");
        assert_eq!(r.outcome, Outcome::Quiescent, "seed {seed}");
        let story = crash_between_changelog_write_and_offset_commit(&r).unwrap_or_else(|| {
            panic!("seed {seed}: double counts, but no record shows the crash story")
        });
        println!("at_least_once: seed {seed}: {story}");
        return;
    }
    panic!("no seed of 1,000 double counted under at_least_once with crashes: the fault is not reached");
}

#[test]
fn at_least_once_without_faults_counts_exactly_once() {
    let setup = CountingSetup::default();
    let s = sweep(&setup, 0..300, |seed, r| {
        assert_exactly_once(seed, &setup, r);
        assert!(
            reprocessed(r).is_empty(),
            "seed {seed}: a record was processed twice without a fault"
        );
    });
    assert_eq!(s.crashes + s.pauses + s.drops, 0);
}

/// Without faults, the long poll counts every input once (no held fetch leaves input
/// unread at quiescence) in fewer steps: the idle clients' fetches are held by the
/// broker instead of repeated every `retry.backoff.ms` (197,110 against 369,200 steps
/// when written; at least a quarter fewer is asked); none of them times out.
#[test]
fn the_long_poll_without_faults_counts_exactly_once_in_fewer_steps() {
    let plain = CountingSetup::default();
    let setup = CountingSetup {
        fetch_max_wait_ms: 100,
        ..CountingSetup::default()
    };
    let s = sweep(&setup, 0..300, |seed, r| {
        assert_exactly_once(seed, &setup, r);
        assert!(
            reprocessed(r).is_empty(),
            "seed {seed}: a record was processed twice without a fault"
        );
        let timeouts = count_events(r, |e| matches!(e, Event::Timeout { .. }));
        assert_eq!(
            timeouts, 0,
            "seed {seed}: a request timed out without a fault"
        );
    });
    let before: u64 = (0..300)
        .map(|seed| world(&plain).run_seed(seed).steps)
        .sum();
    assert!(
        s.steps * 4 < before * 3,
        "the long poll took {} steps over 300 seeds, the round-robin fetch {before}",
        s.steps
    );
}

// exactly_once_v2: 2,000 seeds in two halves, so that the harness runs them on two threads.

const EOS_SEEDS: u64 = 2_000;

fn exactly_once_sweep(seeds: std::ops::Range<u64>) {
    exactly_once_sweep_of(every_fault(Guarantee::ExactlyOnceV2), seeds);
}

fn exactly_once_sweep_of(setup: CountingSetup, seeds: std::ops::Range<u64>) {
    let s = sweep(&setup, seeds, |seed, r| {
        assert_exactly_once(seed, &setup, r)
    });
    // The sweep is only worth something if the faults struck and were recovered from.
    assert!(s.crashes as u64 >= s.runs / 2, "too few crashes: {s:?}");
    assert!(s.pauses as u64 >= s.runs / 4, "too few pauses: {s:?}");
    assert!(s.drops as u64 >= s.runs / 2, "too few drops: {s:?}");
    assert!(
        s.aborts > 0 && s.fenced > 0,
        "no transaction was aborted or fenced: {s:?}"
    );
    assert!(
        s.runs_reprocessing >= s.runs / 10,
        "too few runs reprocessed input: {s:?}"
    );
}

#[test]
fn exactly_once_v2_never_double_counts_seeds_0_to_999() {
    exactly_once_sweep(0..EOS_SEEDS / 2);
}

#[test]
fn exactly_once_v2_never_double_counts_seeds_1000_to_1999() {
    exactly_once_sweep(EOS_SEEDS / 2..EOS_SEEDS);
}

/// The same sweep with the consumer's long poll (`fetch.max.wait.ms` 100): fetches held
/// by the broker, answered to crashed, paused and rebalanced instances alike. An earlier
/// long poll lost counts at seeds 762 and 1436 of this sweep; this one does not.
fn long_poll(guarantee: Guarantee) -> CountingSetup {
    CountingSetup {
        fetch_max_wait_ms: 100,
        ..every_fault(guarantee)
    }
}

#[test]
fn exactly_once_v2_never_double_counts_under_the_long_poll_seeds_0_to_999() {
    exactly_once_sweep_of(long_poll(Guarantee::ExactlyOnceV2), 0..EOS_SEEDS / 2);
}

#[test]
fn exactly_once_v2_never_double_counts_under_the_long_poll_seeds_1000_to_1999() {
    exactly_once_sweep_of(
        long_poll(Guarantee::ExactlyOnceV2),
        EOS_SEEDS / 2..EOS_SEEDS,
    );
}

use oversell_sim::broker::{BrokerConfig, TransactionVersion};
use oversell_sim::protocol::{
    KafkaError, PartitionProduceResult, ProduceBatch, ProducerIdentity, Record, Request, Response,
};
use oversell_sim::TopicConfig;

/// Found by the swarm of seeds (counting world, exactly_once_v2, one partition, one
/// instance, network faults; e.g. determinism.rs's `setup(12841)` and `setup(19611)`), kept
/// here as its smallest story: a delayed `EndTxn(commit)` of a transaction that its retry
/// already committed arrives after the producer began its next transaction. Under
/// transaction protocol v1 it carries the current producer id and epoch and commits that
/// next transaction — before its offsets were sent to it; the changelog records then count
/// as committed while the offsets are not, and after a rebalance the input is processed
/// again and counted twice. Transaction protocol v2 (KIP-890 part 2) bumps the epoch at
/// every transaction end, so the late request carries an old epoch and is fenced.
///
/// Returns the answer to the late request, whether the second transaction's record was
/// committed right after it, and the producer identity the client holds by then.
fn late_end_txn_story(
    version: TransactionVersion,
) -> (Response, bool, ProducerIdentity, Broker, Vec<Event>) {
    let mut b = Broker::with_config(BrokerConfig {
        transaction_version: version,
        ..BrokerConfig::default()
    });
    let mut events = Vec::new();
    let tp = TopicPartition::new("out", 0);
    b.create_topic(
        "out",
        TopicConfig {
            partitions: 1,
            compacted: false,
        },
    )
    .expect("fresh broker");
    let init = Request::InitProducerId {
        transactional_id: Some("tx".into()),
        transaction_timeout_ms: 60_000,
    };
    let Response::InitProducerId(Ok((producer_id, epoch))) =
        b.handle(0, &client(), init, &mut events)
    else {
        panic!("init")
    };
    let mut identity = ProducerIdentity {
        producer_id,
        epoch,
        transactional_id: Some("tx".into()),
    };
    let produce = |b: &mut Broker, events: &mut Vec<Event>, id: &ProducerIdentity, seq: i32| {
        let request = Request::Produce {
            producer: Some(id.clone()),
            acks: Default::default(),
            batches: vec![ProduceBatch {
                tp: tp.clone(),
                base_sequence: Some(seq),
                records: vec![Record {
                    key: Some("k".into()),
                    value: Some(format!("record {seq}")),
                    timestamp: 0,
                    headers: Vec::new(),
                }],
            }],
        };
        match b.handle(1, &client(), request, events) {
            Response::Produce(r) => match &r[0].1 {
                PartitionProduceResult::Appended { base_offset, .. } => *base_offset,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };

    // Transaction 1: one record; its EndTxn(commit) is delayed, the retry commits it.
    produce(&mut b, &mut events, &identity, 0);
    let end_1 = Request::EndTxn {
        producer: identity.clone(),
        commit: true,
    };
    let Response::EndTxn(Ok(bumped)) = b.handle(2, &client(), end_1.clone(), &mut events) else {
        panic!("the retried EndTxn commits transaction 1")
    };
    b.write_all_pending_markers(2, &mut events);
    assert!(b.is_committed(&tp, 0));
    // The producer adopts the new epoch (v2) and restarts its sequences with it.
    let mut seq = 1;
    if let Some((producer_id, epoch)) = bumped {
        identity.producer_id = producer_id;
        identity.epoch = epoch;
        seq = 0;
    }

    // Transaction 2 begins; then the delayed original EndTxn of transaction 1 arrives.
    let second = produce(&mut b, &mut events, &identity, seq);
    let late = b.handle(3, &client(), end_1, &mut events);
    b.write_all_pending_markers(3, &mut events);
    let committed = b.is_committed(&tp, second);
    (late, committed, identity, b, events)
}

#[test]
fn late_end_txn_of_a_finished_transaction_does_not_commit_the_next() {
    let (late, committed, identity, mut b, mut events) = late_end_txn_story(TransactionVersion::V2);
    assert_eq!(
        late,
        Response::EndTxn(Err(KafkaError::ProducerFenced)),
        "under v2 the late EndTxn carries the epoch before the bump"
    );
    assert!(
        !committed,
        "a late EndTxn of transaction 1 committed transaction 2; events: {events:#?}"
    );
    // Transaction 2 is still the producer's to finish, at its current epoch.
    let end_2 = Request::EndTxn {
        producer: identity.clone(),
        commit: true,
    };
    let r = b.handle(4, &client(), end_2, &mut events);
    let bumped = (identity.producer_id, identity.epoch + 1);
    assert_eq!(r, Response::EndTxn(Ok(Some(bumped))));
    b.write_all_pending_markers(4, &mut events);
    // Offset 0: transaction 1's record, 1: its marker, 2: transaction 2's record.
    assert!(b.is_committed(&TopicPartition::new("out", 0), 2));
}

/// The hazard of transaction protocol v1, asserted so that it cannot vanish unnoticed: the
/// late `EndTxn` of transaction 1 commits transaction 2.
#[test]
fn late_end_txn_commits_the_next_transaction_under_transaction_version_1() {
    let (late, committed, _, _, _) = late_end_txn_story(TransactionVersion::V1);
    assert_eq!(late, Response::EndTxn(Ok(None)));
    assert!(committed, "under v1 the late EndTxn commits transaction 2");
}

fn client() -> oversell_sim::ClientId {
    oversell_sim::ClientId::new("c", "app")
}

/// How the coordinator aborted the transactions of a run: (by a new producer's
/// `InitProducerId`, by the timeout scan).
fn abort_reasons(r: &RunResult) -> (usize, usize) {
    let reason = |want: &str| {
        r.trace
            .records
            .iter()
            .filter(|rec| matches!(&rec.event, Event::TxnAbort { reason, .. } if reason.starts_with(want)))
            .count()
    };
    (reason("fenced by a new producer"), reason("timeout"))
}

/// Ephemeral state directories (`StateDirectory.initializeProcessId` draws a process id at
/// every start): a restarted instance is a new `transactional.id`, so its
/// `InitProducerId` fences nothing of the crashed incarnation, whose open transaction
/// waits for the coordinator's timeout scan. Counting stays exactly once: the crashed
/// incarnation's output is aborted, its input offsets were never committed. With
/// persistent directories the restart itself aborts it.
#[test]
fn ephemeral_state_dirs_leave_a_crashed_transaction_to_the_timeout_scan() {
    let setup = crashes_only(Guarantee::ExactlyOnceV2);
    let (mut ephemeral, mut persistent) = ((0, 0), (0, 0));
    let mut tids_per_instance: BTreeMap<String, std::collections::BTreeSet<String>> =
        BTreeMap::new();
    for seed in 0..200 {
        let mut w = world(&setup);
        w.set_ephemeral_state_dirs(true);
        let r = w.run_seed(seed);
        assert_eq!(r.outcome, Outcome::Quiescent, "seed {seed}");
        assert_exactly_once(seed, &setup, &r);
        let (fenced, timeout) = abort_reasons(&r);
        ephemeral = (ephemeral.0 + fenced, ephemeral.1 + timeout);
        for rec in &r.trace.records {
            if let Event::ProducerInit {
                transactional_id: Some(tid),
                ..
            } = &rec.event
            {
                // application-instance-processid: a restart keeps the first two only.
                let (instance, _) = tid.rsplit_once('-').expect("a process id suffix");
                let instance = instance.to_string();
                tids_per_instance
                    .entry(instance)
                    .or_default()
                    .insert(tid.clone());
            }
        }
        let (fenced, timeout) = abort_reasons(&world(&setup).run_seed(seed));
        persistent = (persistent.0 + fenced, persistent.1 + timeout);
    }
    assert_eq!(
        ephemeral.0, 0,
        "an ephemeral restart fenced its predecessor"
    );
    assert!(
        ephemeral.1 > 0,
        "no crashed transaction waited for the scan"
    );
    assert!(
        persistent.0 > 0,
        "persistent restarts never fenced their predecessor"
    );
    assert!(
        tids_per_instance.values().any(|tids| tids.len() > 1),
        "a restart kept its transactional id: {tids_per_instance:?}"
    );
}
