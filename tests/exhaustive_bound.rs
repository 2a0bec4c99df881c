//! The exhaustive search under a bound on deviations from the default schedule: level
//! by level, every fault placement first with the default schedule; its counterexample
//! replays, its proof is spelled out for its bound, and the reduction stays off.

use oversell::checker::{Invariant, Probe};
use oversell::exhaustive::{search, Limits};
use oversell::expect::design_named;
use oversell::load::load_file;
use oversell::run::run_log;
use oversell::scenario::{Scenario, StrategyName};
use std::path::PathBuf;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let mut s = load_file(&path).expect("shipped scenario");
    s.run.strategy = StrategyName::Exhaustive;
    s
}

#[test]
fn naive_is_refuted_by_the_default_schedule_and_its_counterexample_replays() {
    let mut s = scenario("last-unit");
    s.run.max_deviations = Some(1);
    let d = design_named("naive").unwrap();
    let limits = Limits {
        max_runs: 2_000,
        first: true,
    };
    let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
    assert!(!found.reduced, "no reduction under a deviation bound");
    assert_eq!(found.max_deviations, Some(1));
    assert_eq!(found.deviations_searched, None, "found at level 0");
    let c = found
        .counterexample
        .expect("naive oversells on the last unit");
    assert!(
        c.choices.choices.iter().all(|&v| v == 0),
        "the default schedule"
    );
    let again = run_log(d.as_ref(), &s, &[], &c.choices);
    assert_eq!(again.result.trace.hash(), c.judged.result.trace.hash());
    assert_eq!(again.violated(), c.judged.violated());
}

#[test]
fn rekeyed_eos_is_proved_level_by_level_with_a_crash_anywhere() {
    let mut s = scenario("last-unit");
    s.run.max_crashes = 1;
    s.run.max_deviations = Some(0);
    let d = design_named("rekeyed-eos").unwrap();
    let limits = Limits {
        max_runs: 20_000,
        first: false,
    };
    let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
    assert!(found.complete, "the bounded tree searched in full");
    assert!(found.counterexample.is_none(), "rekeyed-eos holds");
    assert_eq!(found.deviations_searched, Some(0));
    // Level 0 is every crash point with the default schedule: more than one run.
    assert!(found.ended > 1, "{} runs ended", found.ended);
}

#[test]
fn a_deviation_bound_searches_a_subset_of_the_unbounded_search() {
    let s = scenario("last-unit");
    let d = design_named("rekeyed-eos").unwrap();
    let limits = Limits {
        max_runs: 200_000,
        first: false,
    };
    let runs = |k: Option<u32>| {
        let mut s = s.clone();
        s.run.max_deviations = k;
        s.run.no_reduction = true;
        let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
        assert!(found.complete && found.counterexample.is_none());
        found.ended
    };
    let (zero, one) = (runs(Some(0)), runs(Some(1)));
    assert_eq!(zero, 1, "one default schedule and no fault point");
    assert!(one > zero, "one deviation opens more schedules: {one}");
}

/// The saga's zombie punctuation, in the scenario small enough for the search
/// (`scenarios/exhaustive/saga-zombie-punctuation-small.toml`): one pause of product-service-0
/// after its gen 2 assignment, with the default schedule, and its punctuation releases
/// o1 a second time. The deepest fault points are searched first, and the story's pause
/// is among the last steps of the fault phase: a few runs. The fixed saga holds on the
/// same runs.
#[test]
fn the_sagas_zombie_punctuation_is_found_with_one_pause_and_no_deviation() {
    let mut s = scenario("exhaustive/saga-zombie-punctuation-small");
    s.run.max_pauses = 1;
    s.run.max_deviations = Some(0);
    let limits = Limits {
        max_runs: 20,
        first: true,
    };
    let d = design_named("saga-direct-timers").unwrap();
    let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
    let c = found
        .counterexample
        .expect("the zombie's punctuation releases o1 twice within 20 runs");
    assert_eq!(found.deviations_searched, None, "found at level 0");
    assert!(
        c.judged.violated().contains(&Invariant::NoDuplicateEffect),
        "{:?}",
        c.judged.violated()
    );
    assert!(
        c.judged.verdict.probes.0.contains_key(&Probe::ZombieWrote),
        "the zombie's punctuation wrote"
    );
    let again = run_log(d.as_ref(), &s, &[], &c.choices);
    assert_eq!(again.result.trace.hash(), c.judged.result.trace.hash());
    let fixed = design_named("saga").unwrap();
    let held = search(fixed.as_ref(), &s, &[], limits).expect("no panic");
    assert!(held.counterexample.is_none(), "the saga holds on them");
    assert_eq!(held.runs, 20, "the same runs, cut by the limit");
}
