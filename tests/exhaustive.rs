//! The exhaustive strategy: a bounded search over every choice, with state matching,
//! that refutes naive on the question's case with its shortest counterexample (which
//! replays exactly) and proves rekeyed-eos for its bound.

use oversell::designs::Mutation;
use oversell::exhaustive::{search, search_with, Limits, Search};
use oversell::expect::design_named;
use oversell::load::load_file;
use oversell::run::{build_world, run_log};
use oversell::scenario::{Scenario, StrategyName};
use oversell_sim::{Chooser, Event, Guided};
use std::path::PathBuf;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let mut s = load_file(&path).expect("shipped scenario");
    s.run.strategy = StrategyName::Exhaustive;
    s
}

const LIMITS: Limits = Limits {
    max_runs: 200_000,
    first: false,
};

#[test]
fn naive_is_refuted_and_its_shortest_counterexample_replays() {
    let s = scenario("last-unit");
    let d = design_named("naive").unwrap();
    let limits = Limits {
        max_runs: 2_000,
        first: true,
    };
    let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
    assert!(found.hashed, "every client writes its state");
    let c = found
        .counterexample
        .expect("naive oversells on the last unit");
    let names: Vec<&str> = c.judged.violated().iter().map(|i| i.name()).collect();
    assert!(names.contains(&"no-oversell"), "{names:?}");
    assert_eq!(
        c.runs_before_first, found.runs,
        "--stop-on-first stops there"
    );
    let again = run_log(d.as_ref(), &s, &[], &c.choices);
    assert_eq!(again.result.choices, c.choices, "the log replays in full");
    assert_eq!(
        again.result.trace.hash(),
        c.judged.result.trace.hash(),
        "replayed exactly"
    );
    assert_eq!(again.violated(), c.judged.violated());
}

#[test]
fn rekeyed_eos_is_proved_without_faults() {
    let s = scenario("last-unit");
    let d = design_named("rekeyed-eos").unwrap();
    let found = search(d.as_ref(), &s, &[], LIMITS).expect("no panic");
    assert!(found.complete, "the bounded tree searched in full");
    assert!(found.hashed, "every client writes its state");
    assert!(found.counterexample.is_none(), "rekeyed-eos holds");
    assert_eq!(found.unsettled, 0, "every run settles");
    assert!(
        found.ended >= 2 && found.states > 100,
        "more than one schedule"
    );
}

#[test]
fn a_search_stopped_by_its_limit_proves_nothing() {
    let s = scenario("last-unit");
    let d = design_named("rekeyed-eos").unwrap();
    let limits = Limits {
        max_runs: 5,
        first: false,
    };
    let found = search(d.as_ref(), &s, &[], limits).expect("no panic");
    assert!(!found.complete, "stopped by its limit");
    assert_eq!(found.runs, 5);
}

#[test]
fn a_crash_is_a_branch_and_the_budget_is_kept() {
    let mut s = scenario("last-unit");
    s.run.max_crashes = 1;
    // Without the reduction, every step of the fault phase is a fault point.
    s.run.no_reduction = true;
    let d = design_named("rekeyed-eos").unwrap();
    let crashes = |prefix: &[u32]| {
        let world = build_world(d.as_ref(), &s, &[]);
        let mut go_on = |_: Option<u64>, _: &Chooser, _: &[u64]| true;
        match world.run_guided(Chooser::guided(prefix), &mut go_on) {
            Guided::Ended {
                result, arities, ..
            } => {
                let n = result
                    .trace
                    .records
                    .iter()
                    .filter(|r| matches!(r.event, Event::Crash { .. }))
                    .count();
                (n, arities[0])
            }
            Guided::Pruned { .. } => unreachable!("nothing is pruned"),
        }
    };
    // The first choice is the first step's fault point: no fault, or a crash of one of
    // the faulty instances; after one crash, no more fault points.
    let (none, options) = crashes(&[]);
    assert_eq!(none, 0);
    assert!(options >= 2, "a crash is offered: {options} options");
    let (one, _) = crashes(&[1]);
    assert_eq!(one, 1, "one crash, and the budget offers no second");
}

/// The verdict of a search, with and without the partial-order reduction: the invariants
/// its counterexample violates (empty: none found), whether it covered its bound, and
/// the counterexample's length.
fn verdicts(
    design: &str,
    s: &Scenario,
    mutations: &[Mutation],
    limits: Limits,
) -> [(Vec<&'static str>, bool, Option<usize>); 2] {
    let d = design_named(design).unwrap();
    [false, true].map(|no_reduction| {
        let mut s = s.clone();
        s.run.no_reduction = no_reduction;
        let found = search(d.as_ref(), &s, mutations, limits).expect("no panic");
        assert_eq!(found.reduced, !no_reduction);
        let c = found.counterexample.as_ref();
        let names = c.map_or(vec![], |c| {
            c.judged.violated().iter().map(|i| i.name()).collect()
        });
        if let Some(c) = c {
            // A counterexample replays, under the setting it was found with.
            let again = run_log(d.as_ref(), &s, mutations, &c.choices);
            assert_eq!(again.violated(), c.judged.violated(), "{design}: replays");
        }
        (names, found.complete, c.map(|c| c.choices.choices.len()))
    })
}

#[test]
fn the_reduction_refutes_what_the_unreduced_search_refutes_and_proves_what_it_proves() {
    // Refuted: naive on the question's case, by both searches, on the same invariant.
    let s = scenario("last-unit");
    let first = Limits {
        max_runs: 2_000,
        first: true,
    };
    let [reduced, full] = verdicts("naive", &s, &[], first);
    assert!(full.0.contains(&"no-oversell"), "{full:?}");
    assert!(reduced.0.contains(&"no-oversell"), "{reduced:?}");
    // Proved: rekeyed-eos, no fault, by both.
    let [reduced, full] = verdicts("rekeyed-eos", &s, &[], LIMITS);
    assert!(full.0.is_empty() && full.1, "proved without the reduction");
    assert!(reduced.0.is_empty() && reduced.1, "proved with it");
}

#[test]
fn the_reduction_finds_what_faults_break() {
    let first = Limits {
        max_runs: 20_000,
        first: true,
    };
    // A crash between the store's write and the offset commit (the scenario's own) makes
    // at-least-once reserve twice.
    let s = scenario("crash-before-offset-commit");
    let [reduced, full] = verdicts("rekeyed-alo", &s, &[], first);
    assert!(!full.0.is_empty(), "the unreduced search refutes it");
    assert!(!reduced.0.is_empty(), "so does the reduced one: {full:?}");
}

/// A search's figures: what resuming copies of the world must leave unchanged.
fn figures(found: &Search) -> [u64; 8] {
    let c = found.counterexample.as_ref();
    [
        found.runs,
        found.ended,
        found.pruned,
        found.blocked,
        found.states,
        found.researched,
        found.deepest,
        c.map_or(0, |c| c.choices.choices.len() as u64),
    ]
}

#[test]
fn resuming_copies_of_the_world_searches_exactly_what_rerunning_prefixes_searches() {
    let mut crash = scenario("last-unit");
    crash.run.max_crashes = 1;
    let cases = [
        ("naive", scenario("last-unit"), 300),
        ("rekeyed-eos", scenario("last-unit"), 400),
        ("rekeyed-eos", crash, 400),
        ("rekeyed-alo", scenario("crash-before-offset-commit"), 400),
    ];
    for (design, s, max_runs) in cases {
        let d = design_named(design).unwrap();
        let limits = Limits {
            max_runs,
            first: false,
        };
        let copied = search_with(d.as_ref(), &s, &[], limits, true).expect("no panic");
        let rerun = search_with(d.as_ref(), &s, &[], limits, false).expect("no panic");
        assert!(
            copied.resumed && !rerun.resumed,
            "{design}: both ways taken"
        );
        assert_eq!(
            figures(&copied),
            figures(&rerun),
            "{design}: the same search"
        );
        let names = |f: &Search| {
            f.counterexample
                .as_ref()
                .map(|c| (c.judged.violated(), c.judged.result.trace.hash()))
        };
        assert_eq!(names(&copied), names(&rerun), "{design}: the same verdict");
    }
}
