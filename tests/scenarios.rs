//! `oversell check` over `scenarios/`: regression seeds first, then every scenario's
//! declared expectations over its seed range.

use oversell::expect::{check_expectations, replay_regressions};
use oversell::load::load_file;
use oversell::run::replay_command;
use std::path::PathBuf;

/// Every scenario of `scenarios/`, of the cluster's `scenarios/cluster/` and of the
/// exhaustive search's `scenarios/exhaustive/` (outside the matrix).
fn scenario_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = ["scenarios", "scenarios/cluster", "scenarios/exhaustive"]
        .into_iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).expect("the scenario directory exists"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let cluster = files
        .iter()
        .filter(|p| p.starts_with(root.join("scenarios/cluster")));
    assert!(cluster.count() >= 4, "scenarios/cluster/ is read");
    files
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn regression_seeds_still_show_what_their_scenario_expects() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for file in scenario_files() {
        let scenario = load_file(&file).unwrap_or_else(|e| panic!("{e}"));
        for r in replay_regressions(&file, &scenario).unwrap_or_else(|e| panic!("{e}")) {
            replayed += 1;
            if !r.ok() {
                failures.push(format!(
                    "{} {} seed {}: kept because it violated {:?}; now violates {:?}; scenario expects {:?}\n  replay: {}",
                    file.display(),
                    r.seed.design,
                    r.seed.seed,
                    r.seed.violated,
                    r.now,
                    r.expected,
                    replay_command(&file.display().to_string(), &r.seed.design, r.seed.seed)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{replayed} regression seeds replayed");
}

#[test]
fn every_scenario_meets_its_declared_expectations() {
    let mut failures = Vec::new();
    for file in scenario_files() {
        let scenario = load_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !scenario.expect.is_empty(),
            "{} declares no expectations",
            file.display()
        );
        for check in check_expectations(&scenario, jobs()).expect("designs named in files exist") {
            let line = check.describe(&file.display().to_string());
            eprintln!("{} {line}", if check.matches() { "ok  " } else { "FAIL" });
            if !check.matches() {
                failures.push(format!("{}: {line}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "unmet expectations:\n{}",
        failures.join("\n")
    );
}

/// The outcome expectations bite: with the saga's reservation timeout switched off,
/// `saga-reservation-timeout.toml`'s promise that the timeout released order1's units
/// fails on every seed, although no invariant is violated (order1's slow payment
/// confirms and order2 is rejected: a correct-looking run that broke the story).
#[test]
fn saga_without_its_timeout_breaks_the_promised_release_of_order1() {
    use oversell::designs::{Mutation, Registry};
    use oversell::expect::check_expectations_with;
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/saga-reservation-timeout.toml");
    let mut scenario = load_file(&file).unwrap_or_else(|e| panic!("{e}"));
    scenario.expect.retain(|design, _| design == "saga");
    let registry = Registry::builtin();
    let correct = check_expectations_with(&registry, &scenario, &[], jobs()).unwrap();
    assert!(
        correct[0].matches(),
        "{}",
        correct[0].describe("saga-reservation-timeout")
    );
    let mutant =
        check_expectations_with(&registry, &scenario, &[Mutation::NoTimeout], jobs()).unwrap();
    let c = &mutant[0];
    assert!(c.found.is_empty(), "no invariant sees it: {:?}", c.found);
    assert!(!c.matches(), "the outcomes must catch it");
    assert_eq!(c.outcomes.missed, c.outcomes.judged);
    assert_eq!(c.outcomes.judged, scenario.run.seeds.len());
    let (_, missed) = c.outcomes.first_miss.as_ref().unwrap();
    assert!(
        missed.contains(&"order1: its units were not released, expected them to be".to_string()),
        "{missed:?}"
    );
}
