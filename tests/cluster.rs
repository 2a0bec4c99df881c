//! The replicated cluster on real runs: where acknowledged writes are lost and where they
//! are not.
//!
//! - `acks=all`, replication factor 3, `min.insync.replicas = 2`, no unclean election:
//!   no acknowledged write is lost over every shipped scenario under the `broker` fault
//!   class (broker crashes one at a time, half of them losing the broker's unflushed
//!   data), every design;
//! - the same fault schedule with `acks=1` loses acknowledged writes, so the sweep above
//!   can fail;
//! - a lost write is named as lost, with the append that took its place.

use oversell::checker::invariants::Invariant;
use oversell::checker::Probe;
use oversell::designs::{self, Registry};
use oversell::expect::FaultClass;
use oversell::load::load_file;
use oversell::run::{run_seed, Judged};
use oversell::scenario::Scenario;
use oversell::sim::protocol::{Acks, KafkaError};
use oversell::sim::world::ScheduledFault;
use oversell::sim::Event;
use std::path::{Path, PathBuf};

const SEEDS: u64 = 6;

fn shipped() -> Vec<(PathBuf, Scenario)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = ["scenarios", "scenarios/cluster"]
        .into_iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).expect("scenarios/"))
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let s = load_file(&p).expect("a shipped scenario loads");
            (p, s)
        })
        .collect()
}

/// The `broker` class on a scenario, with its cluster at the safe settings and its broker
/// faults one at a time (no run draws an overlap).
fn safe(s: &Scenario) -> Scenario {
    let mut s = FaultClass::Broker.apply(s);
    s.faults.rates.broker_overlap = 0;
    s.cluster.brokers = 3;
    s.cluster.replication_factor = Some(3);
    s.cluster.min_insync_replicas = 2;
    s.cluster.unclean_leader_election = false;
    s.producer.acks = Acks::All;
    s
}

fn lost(j: &Judged) -> bool {
    j.violated().contains(&Invariant::NoLostWrite)
}

#[test]
fn acks_all_min_isr_2_loses_no_acknowledged_write_under_broker_crashes_fsync_loss_partitions_and_slow_followers(
) {
    let mut runs = 0;
    let mut crashes = 0;
    let mut losses = 0;
    let (mut partitions, mut isolations, mut slow) = (0, 0, 0);
    let files = shipped();
    let designs_n = Registry::builtin().names().len();
    for (path, scenario) in &files {
        let s = safe(scenario);
        for name in Registry::builtin().names() {
            let design = designs::by_name(name).expect("a shipped design");
            for seed in 0..SEEDS {
                let j = run_seed(design.as_ref(), &s, &[], seed);
                runs += 1;
                for r in &j.result.trace.records {
                    match r.event {
                        Event::BrokerCrashed { lost, .. } => {
                            crashes += 1;
                            losses += usize::from(lost > 0);
                        }
                        Event::BrokerPartitioned { from_brokers, .. } => {
                            partitions += 1;
                            isolations += usize::from(from_brokers);
                        }
                        Event::SlowFollower { slow: true, .. } => slow += 1,
                        _ => {}
                    }
                }
                assert_eq!(
                    j.verdict.probes.count(Probe::BrokerFaultsOverlap),
                    0,
                    "{} {name} seed {seed}: broker faults overlapped one at a time",
                    path.display()
                );
                assert!(
                    !lost(&j),
                    "{} {name} seed {seed} lost an acknowledged write: {:?}",
                    path.display(),
                    j.verdict.violations
                );
            }
        }
    }
    assert_eq!(runs, files.len() * designs_n * SEEDS as usize);
    eprintln!(
        "{runs} runs, {crashes} broker crashes, {losses} of them losing unflushed data, \
         {partitions} network partitions ({isolations} from the other brokers), \
         {slow} slow followers"
    );
    // The faults really struck: crashes, some of which lost unflushed data, partitions
    // (some of a broker from the others) and slow followers.
    assert!(
        crashes > runs / 2 && losses > runs / 8,
        "{crashes} crashes, {losses} with loss"
    );
    assert!(
        partitions > runs / 2 && isolations > runs / 4 && slow > runs / 2,
        "{partitions} partitions, {isolations} isolations, {slow} slow followers"
    );
}

/// The `broker` class draws per run whether its faults overlap: over a few seeds some runs
/// keep them one at a time (the run's note says so) and in others a broker fault strikes
/// while another broker's has not healed (`broker-faults-overlap`); the same seed draws
/// the same.
#[test]
fn the_broker_class_draws_runs_one_at_a_time_and_runs_with_overlapping_faults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/last-unit.toml");
    let s = FaultClass::Broker.apply(&load_file(&path).expect("a shipped scenario loads"));
    let design = designs::by_name("rekeyed-eos").expect("a shipped design");
    let (mut calm, mut overlapped) = (0, 0);
    for seed in 0..12 {
        let j = run_seed(design.as_ref(), &s, &[], seed);
        let note = j.result.trace.records.iter().find_map(|r| match &r.event {
            Event::Note { text, .. } if text.starts_with("broker faults") => Some(text.clone()),
            _ => None,
        });
        let note = note.unwrap_or_else(|| panic!("seed {seed}: no note of the overlap draw"));
        let one_at_a_time = note.starts_with("broker faults one at a time");
        let n = j.verdict.probes.count(Probe::BrokerFaultsOverlap);
        if one_at_a_time {
            assert_eq!(n, 0, "seed {seed}: {note}, yet faults overlapped");
        }
        calm += usize::from(one_at_a_time);
        overlapped += usize::from(n > 0);
        let again = run_seed(design.as_ref(), &s, &[], seed);
        assert_eq!(
            j.result.trace.hash(),
            again.result.trace.hash(),
            "seed {seed}"
        );
    }
    assert!(
        calm > 0 && overlapped > 0,
        "12 seeds: {calm} one at a time, {overlapped} with overlapping faults"
    );
}

#[test]
fn the_same_broker_faults_with_acks_1_lose_acknowledged_writes() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/cluster/acks-all-broker-faults.toml");
    let scenario = load_file(&path).expect("a shipped scenario loads");
    let mut s = scenario.clone();
    s.producer.acks = Acks::Leader;
    let design = designs::by_name("rekeyed-eos").expect("a shipped design");
    let lost_runs = (0..60)
        .filter(|seed| lost(&run_seed(design.as_ref(), &s, &[], *seed)))
        .count();
    assert!(lost_runs > 0, "acks=1 lost nothing in 60 runs");
    let kept = (0..60).all(|seed| !lost(&run_seed(design.as_ref(), &scenario, &[], seed)));
    assert!(kept, "acks=all lost a write");
}

#[test]
fn a_write_lost_with_the_leader_is_named_lost_with_its_append() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/cluster/acks1-leader-crash.toml");
    let scenario = load_file(&path).expect("a shipped scenario loads");
    let design = designs::by_name("naive").expect("a shipped design");
    let j = (0..40)
        .map(|seed| run_seed(design.as_ref(), &scenario, &[], seed))
        .find(lost)
        .expect("a seed of 0..40 loses a write");
    let v = j
        .verdict
        .violations
        .iter()
        .find(|v| v.invariant == Invariant::NoLostWrite)
        .expect("the violation");
    assert!(v.explanation.contains("was lost"), "{}", v.explanation);
    let append = &j.result.trace.records[v.evidence[0] as usize].event;
    assert!(matches!(append, Event::Append { .. }), "{append:?}");
    // A leader change happened, and the record is no longer where it was appended.
    assert!(j
        .result
        .trace
        .records
        .iter()
        .any(|r| matches!(r.event, Event::LeaderElected { .. })));
}

/// `acks1-leader-crash`'s orders at `acks=all`, with `fault` instead of its crash.
fn with_fault(fault: ScheduledFault) -> Scenario {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/cluster/acks1-leader-crash.toml");
    let mut s = load_file(&path).expect("a shipped scenario loads");
    s.producer.acks = Acks::All;
    s.cluster.replication_factor = Some(3);
    s.cluster.min_insync_replicas = 2;
    s.faults.schedule = vec![fault];
    s
}

fn orders_isr(j: &Judged) -> Vec<Vec<u32>> {
    j.result
        .trace
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::IsrChanged { tp, isr } if tp.topic == "orders" && tp.partition == 0 => {
                Some(isr.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_slow_follower_leaves_the_isr_after_the_lag_time_and_rejoins_when_caught_up() {
    // Broker 0 follows broker 2, the leader of orders-0; its fetches stall from 90 ms to
    // 690 ms, while orders arrive from 100 ms.
    let s = with_fault(ScheduledFault::SlowFollower {
        at: 90,
        broker: 0,
        duration: 600,
    });
    let design = designs::by_name("rekeyed-eos").expect("a shipped design");
    for seed in 0..10 {
        let j = run_seed(design.as_ref(), &s, &[], seed);
        let isr = orders_isr(&j);
        let out = isr.iter().position(|i| !i.contains(&0));
        let out = out.unwrap_or_else(|| panic!("seed {seed}: broker 0 stayed in the ISR: {isr:?}"));
        assert!(
            isr[out..].iter().any(|i| i.contains(&0)),
            "seed {seed}: broker 0 never rejoined the ISR: {isr:?}"
        );
        let shrink = j.result.trace.records.iter().find(|r| {
            matches!(&r.event, Event::IsrChanged { tp, isr }
                if tp.topic == "orders" && !isr.contains(&0))
        });
        let at = shrink.expect("the shrink").time;
        // Caught up when its fetches stalled at 90 ms: out once more than
        // replica_lag_time_max_ms (200) passed, before they resume.
        assert!((291..690).contains(&at), "seed {seed}: shrink at {at} ms");
        assert!(!lost(&j), "seed {seed}: {:?}", j.verdict.violations);
    }
}

#[test]
fn a_leader_cut_off_from_the_clients_refuses_them_until_the_partition_heals() {
    // Broker 2 leads orders-0 and stays in the cluster; the clients cannot reach it from
    // 99 ms to 399 ms: their writes fail, are retried, and land once it heals.
    let s = with_fault(ScheduledFault::BrokerPartition {
        at: 99,
        broker: 2,
        duration: 300,
        from_brokers: false,
        from_clients: true,
    });
    let design = designs::by_name("rekeyed-eos").expect("a shipped design");
    for seed in 0..10 {
        let j = run_seed(design.as_ref(), &s, &[], seed);
        let records = &j.result.trace.records;
        let refused = records.iter().any(|r| {
            matches!(&r.event, Event::Rejected { request, error: KafkaError::NotLeaderOrFollower, .. }
                if request == "Produce" && (99..399).contains(&r.time))
        });
        assert!(
            refused,
            "seed {seed}: no produce refused during the partition"
        );
        let appended: Vec<u64> = records
            .iter()
            .filter(|r| matches!(&r.event, Event::Append { tp, .. } if tp.topic == "orders"))
            .map(|r| r.time)
            .collect();
        assert_eq!(appended.len(), 3, "seed {seed}: {appended:?}");
        assert!(
            appended.iter().all(|t| *t >= 399),
            "seed {seed}: {appended:?}"
        );
        // No leader moved: the controller still heard from broker 2.
        assert!(!records
            .iter()
            .any(|r| matches!(r.event, Event::LeaderElected { .. })));
        assert!(
            j.violated().is_empty(),
            "seed {seed}: {:?}",
            j.verdict.violations
        );
    }
}

#[test]
fn an_isolated_leader_under_acks_all_loses_nothing_its_writes_move_to_the_new_leader() {
    // The story of acks1-isolated-leader at acks=all: the isolated leader cannot commit
    // the orders (its followers cannot fetch, its ISR cannot shrink), they fail when the
    // controller moves the leadership, and the retries land on the new leader.
    let s = with_fault(ScheduledFault::BrokerPartition {
        at: 99,
        broker: 2,
        duration: 400,
        from_brokers: true,
        from_clients: false,
    });
    for name in Registry::builtin().names() {
        let design = designs::by_name(name).expect("a shipped design");
        for seed in 0..10 {
            let j = run_seed(design.as_ref(), &s, &[], seed);
            let records = &j.result.trace.records;
            let truncated = records.iter().any(|r| {
                matches!(&r.event, Event::Truncated { tp, broker: 2, .. } if tp.topic == "orders")
            });
            assert!(
                truncated,
                "{name} seed {seed}: broker 2 kept its unreplicated orders"
            );
            assert!(!lost(&j), "{name} seed {seed}: {:?}", j.verdict.violations);
        }
    }
}

/// The transaction coordinator's broker crashes mid-transaction and the group
/// coordinator's mid-commit (`scenarios/cluster/coordinator-failover.toml`): the new
/// coordinators load their state from `__transaction_state-0` and `__consumer_offsets-0`,
/// the clients meet `NOT_COORDINATOR` and `COORDINATOR_LOAD_IN_PROGRESS` and retry, and
/// every design keeps its declared verdict — `rekeyed-eos` breaks no invariant.
#[test]
fn coordinator_failover_keeps_every_verdict_and_rekeyed_eos_exactly_once() {
    use oversell::expect::check_expectations;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/cluster/coordinator-failover.toml");
    let scenario = load_file(&path).expect("a shipped scenario loads");
    for check in check_expectations(&scenario, 2).expect("designs exist") {
        assert!(
            check.matches(),
            "{}",
            check.describe("coordinator-failover")
        );
    }
    let design = designs::by_name("rekeyed-eos").expect("a shipped design");
    let (mut loads, mut refused) = (0, 0);
    for seed in 0..20 {
        let j = run_seed(design.as_ref(), &scenario, &[], seed);
        assert!(
            j.violated().is_empty(),
            "seed {seed}: {:?}",
            j.verdict.violations
        );
        for r in &j.result.trace.records {
            match &r.event {
                Event::CoordinatorLoaded { .. } => loads += 1,
                Event::Rejected { error, .. } if error.coordinator_unavailable() => refused += 1,
                _ => {}
            }
        }
    }
    // Both coordinators moved in every run, and the clients met them moving.
    assert!(loads >= 40, "{loads} loads in 20 runs");
    assert!(refused > 0, "no request met a moving coordinator");
}
