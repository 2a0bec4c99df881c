//! The madsim driver: the designs as async services, judged by the same checker, with
//! the same verdicts as the simulator's driver; same seed, same trace.
#![cfg(madsim)]

use oversell::checker::{check, Invariant};
use oversell::madsim_driver::{run_seed, simulate, NetFaults};
use oversell::run::{self, Status};
use oversell::{Registry, Scenario};
use oversell_sim::{Event, Outcome, ScheduledFault};
use std::collections::BTreeSet;
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    oversell::load::load_file(&path).expect("a shipped scenario loads")
}

fn reproduce(name: &str, design: &str) -> String {
    format!(
        "MADSIM_TEST_SEED={} cargo test --test madsim (or: oversell run scenarios/{name}.toml --design {design} --seed {} --driver madsim)",
        seed(),
        seed()
    )
}

fn seed() -> u64 {
    madsim::runtime::Handle::current().seed()
}

/// One run inside the test's own madsim runtime (seed: MADSIM_TEST_SEED).
async fn judged(
    name: &str,
    design: &str,
    net: &NetFaults,
    edit: impl Fn(&mut Scenario),
) -> (BTreeSet<Invariant>, Outcome, oversell_sim::Trace) {
    let registry = Registry::builtin();
    let d = registry.get(design).expect("a built-in design");
    let mut s = scenario(name);
    edit(&mut s);
    let r = simulate(d, &s, net).await;
    let verdict = check(&d.schema(), &r, s.run.decision_bound_ms);
    if r.outcome != Outcome::Quiescent {
        // What the run was doing when it hit its bound, for the reader of a failure.
        for rec in r.trace.records.iter().rev().take(40).rev() {
            eprintln!("{:>6}ms {}", rec.time, rec.event);
        }
    }
    assert!(
        verdict.kernel_bugs.is_empty(),
        "kernel bugs {:?}; reproduce: {}",
        verdict.kernel_bugs,
        reproduce(name, design)
    );
    (
        verdict.violations.iter().map(|v| v.invariant).collect(),
        r.outcome,
        r.trace,
    )
}

#[madsim::test]
async fn naive_on_last_unit_breaks_at_most_what_the_simulator_breaks() {
    let (violated, outcome, _) = judged("last-unit", "naive", &NetFaults::default(), |_| {}).await;
    assert_eq!(
        outcome,
        Outcome::Quiescent,
        "reproduce: {}",
        reproduce("last-unit", "naive")
    );
    let allowed = BTreeSet::from([Invariant::NoOversell, Invariant::Conservation]);
    assert!(
        violated.is_subset(&allowed),
        "naive broke {violated:?}; reproduce: {}",
        reproduce("last-unit", "naive")
    );
}

#[madsim::test]
async fn rekeyed_eos_holds_on_last_unit() {
    let (violated, outcome, _) =
        judged("last-unit", "rekeyed-eos", &NetFaults::default(), |_| {}).await;
    assert_eq!(
        outcome,
        Outcome::Quiescent,
        "reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
    assert!(
        violated.is_empty(),
        "rekeyed-eos broke {violated:?}; reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
}

#[madsim::test]
async fn rekeyed_eos_holds_through_a_crash_loss_and_a_clogged_node() {
    let net = NetFaults {
        packet_loss_rate: 0.05,
        latency_ms: (1, 20),
        clog: Some(("product-service-0".into(), 300, 700)),
    };
    let crash = |s: &mut Scenario| {
        s.faults.schedule.push(ScheduledFault::Crash {
            at: 105,
            instance: "product-service-0".into(),
            restart_after: 200,
        });
    };
    let (violated, outcome, trace) = judged("last-unit", "rekeyed-eos", &net, crash).await;
    assert_eq!(
        outcome,
        Outcome::Quiescent,
        "reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
    assert!(
        violated.is_empty(),
        "rekeyed-eos broke {violated:?} under faults; reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
    // The faults struck: the instance was killed and restarted.
    let has = |what: fn(&Event) -> bool| trace.records.iter().any(|r| what(&r.event));
    assert!(has(|e| matches!(e, Event::Crash { .. })), "no crash");
    assert!(has(|e| matches!(e, Event::Restart { .. })), "no restart");
}

/// Same seed, same trace, byte for byte (two runtimes of their own).
#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    let registry = Registry::builtin();
    let s = scenario("last-unit");
    for design in ["naive", "rekeyed-eos"] {
        let d = registry.get(design).unwrap();
        let a = run_seed(d, &s, 7, &NetFaults::default());
        let b = run_seed(d, &s, 7, &NetFaults::default());
        assert_eq!(
            a.result.trace.hash(),
            b.result.trace.hash(),
            "{design}: seed 7 gave two traces"
        );
        assert!(
            a.result.trace.len() > 20,
            "{design}: a run records its events"
        );
    }
}

/// Which invariants break over a sweep of seeds, on one driver.
fn union(sweep: impl Iterator<Item = run::Judged>) -> (BTreeSet<Invariant>, usize) {
    let mut broken = BTreeSet::new();
    let mut unsettled = 0;
    for j in sweep {
        broken.extend(j.violated());
        unsettled += usize::from(j.status() == Status::Unsettled);
    }
    (broken, unsettled)
}

/// Both drivers give the same verdict on every scenario × design that runs on both: the
/// same invariants hold and the same break, over the scenario's seeds (the simulator)
/// and 0..MADSIM_SWEEP (madsim, default 12).
#[test]
fn both_drivers_give_the_same_verdict() {
    let registry = Registry::builtin();
    let n: u64 = std::env::var("MADSIM_SWEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut checked = 0;
    for name in ["last-unit"] {
        let s = scenario(name);
        for design in oversell::madsim_driver::DESIGNS {
            if oversell::madsim_driver::unsupported(design, &s).is_some() {
                continue;
            }
            let d = registry.get(design).unwrap();
            let seeds = s.run.seeds.start..s.run.seeds.end;
            let (sim, _) = union(seeds.map(|seed| run::run_seed(d, &s, &[], seed)));
            let (mad, unsettled) =
                union((0..n).map(|seed| run_seed(d, &s, seed, &NetFaults::default())));
            assert_eq!(
                unsettled, 0,
                "{name} × {design}: a madsim run did not settle"
            );
            assert_eq!(
                sim, mad,
                "{name} × {design}: the simulator breaks {sim:?}, madsim {mad:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 2,
        "last-unit runs on both drivers with naive and rekeyed-eos"
    );
}
