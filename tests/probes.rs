//! Coverage probes: they fire where the race really happened and stay silent where it
//! did not; a scenario's `[expect_probes]` is checked by the loader, and a sweep in which
//! an expected probe never fired fails `oversell check` as vacuous (exit 4).

use oversell::checker::Probe;
use oversell::expect::{check_expectations, design_named};
use oversell::load::{load_file, load_str};
use oversell::run::run_seed;
use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_oversell");

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

fn probes_of(scenario: &str, design: &str, seed: u64) -> Vec<Probe> {
    let s = load_file(&scenario_path(scenario)).expect("shipped scenario");
    let d = design_named(design).expect("shipped design");
    let judged = run_seed(d.as_ref(), &s, &[], seed);
    judged.verdict.probes.fired().collect()
}

#[test]
fn the_naive_check_reads_stale_stock_and_the_rekeyed_one_does_not() {
    assert!(probes_of("last-unit", "naive", 0).contains(&Probe::StaleRead));
    for design in ["rekeyed-alo", "rekeyed-eos", "saga"] {
        let fired = probes_of("last-unit", design, 0);
        assert!(!fired.contains(&Probe::StaleRead), "{design}: {fired:?}");
    }
}

#[test]
fn a_crash_between_changelog_write_and_commit_is_seen_and_eos_aborts() {
    let alo = probes_of("crash-before-offset-commit", "rekeyed-alo", 0);
    assert!(alo.contains(&Probe::CrashBeforeCommit), "{alo:?}");
    assert!(
        !alo.contains(&Probe::TxnAborted),
        "at least once has no transactions"
    );
    let eos = probes_of("crash-before-offset-commit", "rekeyed-eos", 0);
    assert!(eos.contains(&Probe::CrashBeforeCommit), "{eos:?}");
    assert!(eos.contains(&Probe::TxnAborted), "{eos:?}");
    // No fault, no crash probe.
    let calm = probes_of("last-unit", "rekeyed-alo", 0);
    assert!(!calm.contains(&Probe::CrashBeforeCommit), "{calm:?}");
}

#[test]
fn lost_acks_without_idempotence_write_an_order_twice() {
    let fired = probes_of("lost-produce-ack-retry", "saga", 0);
    assert!(fired.contains(&Probe::OrderWrittenTwice), "{fired:?}");
    assert!(!probes_of("last-unit", "saga", 0).contains(&Probe::OrderWrittenTwice));
}

#[test]
fn the_saga_timer_releases_a_reservation() {
    let fired = probes_of("saga-reservation-timeout", "saga", 0);
    assert!(fired.contains(&Probe::ReservationTimedOut), "{fired:?}");
}

#[test]
fn every_shipped_expected_probe_fires_over_its_seed_range() {
    for name in [
        "last-unit",
        "zombie-after-rebalance",
        "saga-reservation-timeout",
    ] {
        let s = load_file(&scenario_path(name)).expect("shipped scenario");
        assert!(!s.expect_probes.is_empty(), "{name} declares probes");
        for c in check_expectations(&s, 2).expect("known designs") {
            assert!(c.vacuous.is_empty(), "{name} {}: {:?}", c.design, c.vacuous);
        }
    }
}

const VACUOUS: &str = r#"
name = "vacuous"
[[products]]
id = "p"
stock = 1
[[orders]]
id = "o1"
product = "p"
at = 10
[run]
seeds = "0..3"
[expect]
rekeyed-eos = "holds"
[expect_probes]
rekeyed-eos = ["crash-before-offset-commit"]
"#;

#[test]
fn an_unknown_probe_is_refused_with_its_place() {
    let text = VACUOUS.replace(
        "[\"crash-before-offset-commit\"]",
        "[\"crash-before-comit\"]",
    );
    let e = load_str(&text, "t.toml").expect_err("unknown probe");
    let line = text.lines().position(|l| l.contains("comit")).unwrap() + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(e.message.contains("unknown probe"), "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains("crash-before-offset-commit"),
        "lists or suggests: {shown}"
    );
}

#[test]
fn a_probe_for_a_design_without_expectation_is_refused() {
    let text = VACUOUS.replace("rekeyed-eos = [", "naive = [");
    let e = load_str(&text, "t.toml").expect_err("no [expect] for naive");
    assert!(e.message.contains("no [expect] entry"), "{e}");
}

#[test]
fn a_sweep_whose_expected_probe_cannot_fire_fails_check_as_vacuous() {
    let dir = std::env::temp_dir().join(format!("oversell-probes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("vacuous.toml");
    std::fs::write(&file, VACUOUS).unwrap();
    let out = Command::new(BIN)
        .args(["check", file.to_str().unwrap(), "--jobs", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("VACUOUS"), "{stdout}");
    assert!(
        stdout.contains("crash-before-offset-commit never fired"),
        "{stdout}"
    );
    // The same scenario with a crash that lands after the store write is not vacuous.
    let crashing = VACUOUS.replace(
        "[run]",
        "[[faults.schedule]]\nkind = \"crash\"\nat = 60\ninstance = \"product-service-0\"\nrestart_after = 100\n[streams]\ncommit_interval_ms = 1000\ntransaction_timeout_ms = 5000\n[run]",
    );
    std::fs::write(&file, crashing).unwrap();
    let out = Command::new(BIN)
        .args(["check", file.to_str().unwrap(), "--jobs", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
