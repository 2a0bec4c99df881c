//! PCT: a priority-based schedule replays exactly from its seed and from its choice log,
//! states its probability bound, and leaves the random strategy's runs as they were.

use oversell::expect::design_named;
use oversell::load::load_file;
use oversell::run::{run_log, run_seed};
use oversell::scenario::{Scenario, StrategyName};
use std::path::PathBuf;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    load_file(&path).expect("shipped scenario")
}

#[test]
fn a_pct_run_replays_from_its_seed_and_its_log() {
    let mut s = scenario("crash-before-offset-commit");
    s.run.strategy = StrategyName::Pct;
    let d = design_named("rekeyed-alo").unwrap();
    let a = run_seed(d.as_ref(), &s, &[], 3);
    let b = run_seed(d.as_ref(), &s, &[], 3);
    assert_eq!(a.result.trace.hash(), b.result.trace.hash());
    let log = run_log(d.as_ref(), &s, &[], &a.result.choices);
    assert_eq!(a.result.trace.hash(), log.result.trace.hash());
    assert_eq!(a.result.pct, log.result.pct);
    let pct = a.result.pct.expect("a PCT run states its bound");
    assert_eq!(pct.depth, 3);
    assert!(pct.threads >= 2 && pct.decisions > 0, "{pct:?}");
    let bound = pct.bound();
    let expected = 1.0 / (pct.threads as f64 * (pct.decisions as f64).powi(2));
    assert!((bound - expected).abs() <= expected * 1e-12);
}

#[test]
fn pct_schedules_differently_and_random_states_no_bound() {
    let s = scenario("last-unit");
    let d = design_named("naive").unwrap();
    let random = run_seed(d.as_ref(), &s, &[], 0);
    assert!(random.result.pct.is_none());
    let mut p = s.clone();
    p.run.strategy = StrategyName::Pct;
    let pct = run_seed(d.as_ref(), &p, &[], 0);
    assert_ne!(random.result.trace.hash(), pct.result.trace.hash());
    // The PCT run is a valid run: it settles and the naive design still oversells.
    assert!(pct.settled());
    assert!(!pct.violated().is_empty());
}
