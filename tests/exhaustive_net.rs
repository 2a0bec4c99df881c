//! The exhaustive search's network fault points (`max_net_faults`): off by default, and
//! with one delayed or duplicated request it finds the late `EndTxn` of transaction
//! protocol v1 (`own-end-txn`), whose counterexample replays.

use oversell::checker::Invariant;
use oversell::exhaustive::{search, Limits};
use oversell::expect::design_named;
use oversell::load::load_file;
use oversell::run::run_log;
use oversell::scenario::{Scenario, StrategyName};
use std::path::PathBuf;

fn late_end_txn() -> Scenario {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/hazards/late-end-txn.toml");
    let mut s = load_file(&path).expect("shipped scenario");
    s.run.strategy = StrategyName::Exhaustive;
    s.run.max_deviations = Some(0);
    s
}

#[test]
fn without_network_fault_points_the_default_schedule_holds() {
    let s = late_end_txn();
    assert_eq!(s.run.max_net_faults, 0, "off by default");
    let d = design_named("rekeyed-eos").unwrap();
    let limits = Limits {
        max_runs: 100,
        first: true,
    };
    let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
    assert!(found.complete, "one run: no fault point, no deviation");
    assert_eq!(found.runs, 1);
    assert!(found.counterexample.is_none());
}

#[test]
fn one_delayed_request_refutes_own_end_txn_under_v1() {
    let mut s = late_end_txn();
    s.run.max_net_faults = 1;
    let d = design_named("rekeyed-eos").unwrap();
    let limits = Limits {
        max_runs: 2_000,
        first: true,
    };
    let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
    assert!(!found.reduced, "no reduction with network fault points");
    let c = found.counterexample.expect("the late EndTxn is found");
    assert_eq!(
        c.judged.violated().into_iter().collect::<Vec<_>>(),
        vec![Invariant::OwnEndTxn]
    );
    let faults = c.choices.choices.iter().filter(|&&v| v != 0).count();
    assert_eq!(
        faults, 1,
        "one fault point taken, the default schedule otherwise"
    );
    let again = run_log(d.as_ref(), &s, &[], &c.choices);
    assert_eq!(again.result.trace.hash(), c.judged.result.trace.hash());
    assert_eq!(again.violated(), c.judged.violated());
}
