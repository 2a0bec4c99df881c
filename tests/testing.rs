//! `oversell::testing`: a suite reports unmet expectations with the environment that
//! replays them, and honours a seed selection.

use oversell::designs::Registry;
use oversell::scenario::SeedRange;
use oversell::testing::{Selection, Suite};

fn scenarios() -> String {
    format!("{}/scenarios", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_design_that_oversells_fails_its_suite_with_a_replay_line() {
    let suite = Suite::new(Registry::builtin(), "naive")
        .scenarios(scenarios())
        .expect("last-unit", &[])
        .generated(0);
    let selection = Selection {
        scenario: Some("last-unit".into()),
        seeds: Some(SeedRange { start: 0, end: 3 }),
        ..Selection::default()
    };
    let report = suite.run(&selection);
    assert!(!report.ok());
    assert_eq!(
        report.runs,
        3 + 1,
        "three seeds and the kept regression seed"
    );
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("OVERSELL_SCENARIO=last-unit OVERSELL_SEED=")),
        "{:?}",
        report.failures
    );
}

#[test]
fn the_scenario_files_expectations_are_the_default() {
    let suite = Suite::new(Registry::builtin(), "naive")
        .scenarios(scenarios())
        .generated(0);
    let selection = Selection {
        scenario: Some("last-unit".into()),
        ..Selection::default()
    };
    let report = suite.run(&selection);
    assert!(report.ok(), "{:?}", report.failures);
    assert_eq!(
        report.found["last-unit"]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["conservation", "no-oversell"]
    );
}

#[test]
fn a_suite_judges_the_promised_outcomes() {
    let dir = std::env::temp_dir().join(format!("oversell-suite-outcomes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let original =
        std::fs::read_to_string(format!("{}/saga-reservation-timeout.toml", scenarios())).unwrap();
    // A false promise: the saga's timeout releases order1's unit, so it is never accepted.
    let text = original.replace(
        "[outcomes.saga.orders]\norder1 = { decision = \"rejected\", released = true }",
        "[outcomes.saga.orders]\norder1 = { decision = \"accepted\", released = true }",
    );
    assert_ne!(text, original, "the scenario promises order1's release");
    std::fs::write(dir.join("saga-reservation-timeout.toml"), text).unwrap();
    let suite = Suite::new(Registry::builtin(), "saga")
        .scenarios(&dir)
        .generated(0);
    let selection = Selection {
        seeds: Some(SeedRange { start: 0, end: 2 }),
        ..Selection::default()
    };
    let report = suite.run(&selection);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        report.failures.iter().any(|f| f.contains(
            "seed 0 misses the promised outcomes: order1: ended rejected, expected accepted"
        )),
        "{:?}",
        report.failures
    );
    // The true promise passes.
    let suite = Suite::new(Registry::builtin(), "saga")
        .scenarios(scenarios())
        .generated(0);
    let selection = Selection {
        scenario: Some("saga-reservation-timeout".into()),
        seeds: Some(SeedRange { start: 0, end: 2 }),
        ..Selection::default()
    };
    assert!(suite.run(&selection).ok());
}
