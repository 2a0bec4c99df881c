//! Generated scenarios under random faults: the designs that should hold, hold; a mutant
//! that should not, fails, and proptest shrinks its scenario to a small one.
//!
//! `OVERSELL_SWEEP=N` sets the number of generated runs per design (default 200; the
//! acceptance figure is `OVERSELL_SWEEP=10000 cargo test --release --test generated`).

mod common;

use common::{scenarios, sweep_cases, Faults};
use oversell::designs::{self, Mutation};
use oversell::run::run_seed;
use oversell::scenario::Scenario;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

fn runner(cases: u32) -> TestRunner {
    // A fixed proptest seed: the generated cases are the same on every machine.
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 2000,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    )
}

fn holds(design: &str, mutations: &'static [Mutation]) -> impl Fn((Scenario, u64)) -> Result<(), TestCaseError> {
    let design = designs::by_name(design).expect("known design");
    move |(scenario, seed)| {
        let judged = run_seed(design.as_ref(), &scenario, mutations, seed);
        if !judged.verdict.holds() {
            let explained: Vec<String> = judged
                .verdict
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.invariant.name(), v.explanation))
                .collect();
            return Err(TestCaseError::fail(format!(
                "{} violated with seed {seed}:\n{}\nscenario:\n{}",
                design.name(),
                explained.join("\n"),
                toml::to_string(&scenario).unwrap_or_default()
            )));
        }
        Ok(())
    }
}

fn sweep_holds(design: &str) {
    let cases = sweep_cases(200);
    let mut r = runner(cases);
    let result = r.run(&(scenarios(Faults::Any), any::<u64>()), holds(design, &[]));
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("{design}: {cases} generated runs, no violation");
}

#[test]
fn rekeyed_eos_holds_on_generated_scenarios_with_faults() {
    sweep_holds("rekeyed-eos");
}

#[test]
fn saga_holds_on_generated_scenarios_with_faults() {
    sweep_holds("saga");
}

/// Proptest shrinks a failing mutant's scenario to a minimal story.
#[test]
fn a_failing_mutant_shrinks_to_a_minimal_scenario() {
    // Exactly-once, but input offsets committed when records are fetched rather than
    // when they are processed: a crash loses the fetched, unprocessed orders.
    let mut r = runner(400);
    let result = r.run(
        &(scenarios(Faults::Any), 0u64..50),
        holds("rekeyed-eos", &[Mutation::CommitBeforeProcess]),
    );
    let Err(proptest::test_runner::TestError::Fail(why, (minimal, seed))) = result else {
        panic!("rekeyed-eos with commit-before-process should fail on some generated scenario");
    };
    eprintln!("minimal failing scenario (seed {seed}): {why}");
    assert!(minimal.orders.len() <= 2, "shrunk to {} orders", minimal.orders.len());
    assert!(minimal.products.len() <= 2, "shrunk to {} products", minimal.products.len());
    assert!(minimal.restocks.is_empty(), "restocks are not needed");
}
