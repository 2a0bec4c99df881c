//! `oversell check` over `scenarios/`: regression seeds first, then every scenario's
//! declared expectations over its seed range.

use oversell::expect::{check_expectations, replay_regressions};
use oversell::load::load_file;
use oversell::run::replay_command;
use std::path::PathBuf;

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files");
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
