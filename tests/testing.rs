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
