//! `oversell live` and `oversell replay --history` as a user meets them, without a Kafka
//! cluster: bad input is a clear error and exit 2 before any process starts, and a
//! recorded history is judged by the same checker. (The live runs themselves are
//! exercised by `scripts/live-smoke`, which needs Java and Maven.)

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_oversell");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scenario(name: &str) -> String {
    root()
        .join("scenarios")
        .join(format!("{name}.toml"))
        .display()
        .to_string()
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oversell-live-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn oversell(args: &[&str], path: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("CARGO").env("RUST_BACKTRACE", "0");
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn without_java_the_live_mode_says_so_and_exits_2() {
    let out = scratch("no-java");
    let empty = scratch("empty-path");
    let o = oversell(
        &[
            "live",
            &scenario("last-unit"),
            "--design",
            "naive",
            "--out",
            out.to_str().unwrap(),
        ],
        Some(empty.to_str().unwrap()),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("java is not installed"), "{}", text(&o));
}

/// A `PATH` holding only a `java` that exits 1 at once (no Maven).
fn path_with_a_failing_java(test: &str) -> PathBuf {
    let dir = scratch(test);
    let java = dir.join("java");
    std::fs::write(&java, "#!/bin/sh\nexit 1\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

#[test]
fn without_maven_or_with_a_java_that_cannot_start_a_broker_the_live_mode_exits_2() {
    let out = scratch("no-maven");
    let path = path_with_a_failing_java("java-only-path");
    let o = oversell(
        &[
            "live",
            &scenario("last-unit"),
            "--design",
            "naive",
            "--out",
            out.to_str().unwrap(),
        ],
        Some(path.to_str().unwrap()),
    );
    let said = text(&o);
    assert_eq!(o.status.code(), Some(2), "{said}");
    if oversell::live::java::needs_build() {
        // live/ is not built: Maven is needed, and missing.
        assert!(said.contains("mvn is not installed"), "{said}");
        assert!(said.contains("scripts/live-setup"), "{said}");
    } else {
        // Built already: the first broker's JVM exits at once, which is said as such.
        assert!(said.contains("broker-1 exited while starting"), "{said}");
    }
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn what_the_live_mode_cannot_run_yet_is_refused_before_any_process_starts() {
    let out = scratch("unsupported");
    let out = out.to_str().unwrap();
    let o = oversell(
        &[
            "live",
            &scenario("last-unit"),
            "--design",
            "rekeyed-alo-delta",
            "--out",
            out,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("has no live twin yet; live twins: naive, rekeyed-alo, rekeyed-eos"),
        "{}",
        text(&o)
    );
    let o = oversell(
        &[
            "live",
            &scenario("lost-produce-ack-retry"),
            "--design",
            "rekeyed-eos",
            "--out",
            out,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("faults the live mode cannot play on real processes: [faults] drop"),
        "{}",
        text(&o)
    );
    let o = oversell(
        &[
            "live",
            &scenario("last-unit"),
            "--design",
            "nope",
            "--out",
            out,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unknown design"), "{}", text(&o));
    let o = oversell(
        &[
            "live",
            &scenario("last-unit"),
            "--design",
            "naive",
            "--runs",
            "0",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// A recorded run of the last unit in which both orders were reserved.
fn oversold_history() -> serde_json::Value {
    let t0 = 1_000_000u64;
    let rec = |topic: &str, offset: u64, t: u64, value: &str| {
        serde_json::json!({"topic": topic, "partition": 0, "offset": offset, "key": "product1",
            "value": value, "timestamp": t0 + t, "timestamp_type": "LogAppendTime", "committed": true})
    };
    let placed = |o: &str| {
        format!(
            r#"{{"type":"OrderPlaced","order_id":"{o}","product_id":"product1","quantity":1,"user_id":"u"}}"#
        )
    };
    let reserved = |o: &str| {
        format!(
            r#"{{"type":"ProductReserved","order_id":"{o}","product_id":"product1","quantity":1}}"#
        )
    };
    let changelog = "product-stock-ProductStock-changelog";
    serde_json::json!({
        "format": "oversell-live-history/1", "scenario": "last-unit",
        "scenario_path": "scenarios/last-unit.toml", "design": "naive", "run": 0, "prefix": "r0.",
        "kafka_version": "4.4.0", "brokers": 1, "decision_bound_ms": 10000, "t0": t0,
        "outcome": "quiescent", "recorded_at": t0 + 1300,
        "records": [
            rec("stock", 0, 110, r#"{"type":"StockAdded","product_id":"product1","quantity":1}"#),
            rec("orders", 0, 122, &placed("order1")), rec("orders", 1, 122, &placed("order2")),
            rec("orders", 2, 299, &reserved("order1")), rec("orders", 3, 462, &reserved("order2")),
            rec(changelog, 0, 297, "1"), rec(changelog, 1, 476, "0"), rec(changelog, 2, 485, "-1"),
        ],
        "end_offsets": {"stock": {"0": 1}, "orders": {"0": 4}, changelog: {"0": 3}},
        "acks": [], "events": [],
        "stores": [{"instance": "product-service-0", "stores": [{"application": "product-stock",
            "store": "ProductStock", "partition": 0, "entries": {"product1": "-1"}}]}],
        "group_offsets": {}
    })
}

#[test]
fn replay_history_judges_a_recorded_live_run_with_the_same_checker() {
    let dir = scratch("replay");
    let file = dir.join("history.json");
    std::fs::write(&file, oversold_history().to_string()).unwrap();
    let o = oversell(&["replay", "--history", file.to_str().unwrap()], None);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("VIOLATED: no-oversell, conservation"), "{t}");
    assert!(
        t.contains("ProductReserved at orders-0@2 (t=299ms) and orders-0@3 (t=462ms)"),
        "{t}"
    );
    assert!(t.contains("(not judged live: epoch-fencing"), "{t}");
}

#[test]
fn replay_history_of_a_bad_file_is_an_error_that_says_where() {
    let dir = scratch("bad-history");
    let missing = dir.join("missing.json");
    let o = oversell(&["replay", "--history", missing.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("missing.json"), "{}", text(&o));
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        "{\"format\": \"oversell-live-history/1\",\n \"run\": \"x\"}",
    )
    .unwrap();
    let o = oversell(&["replay", "--history", bad.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.json:2:"), "{}", text(&o));
    let mut gap = oversold_history();
    gap["records"].as_array_mut().unwrap().remove(2);
    std::fs::write(&bad, gap.to_string()).unwrap();
    let o = oversell(&["replay", "--history", bad.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("orders-0 has no record at offset 1"),
        "{}",
        text(&o)
    );
    let o = oversell(
        &["replay", "--history", bad.to_str().unwrap(), "--seed", "3"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// The live experiments' scenarios (`scenarios/live/`, outside the matrix) keep their
/// simulated expectations.
#[test]
fn the_live_experiment_scenarios_meet_their_simulated_expectations() {
    let dir = root().join("scenarios").join("live");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/live")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for f in files {
        let o = oversell(&["check", f.to_str().unwrap()], None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

/// A toolchain whose `java` is `program`: what `Cluster::start` runs, without Java.
fn fake_toolchain(program: &str) -> oversell::live::java::Toolchain {
    oversell::live::java::Toolchain {
        java: PathBuf::from(program),
        classpath: String::new(),
    }
}

#[test]
fn a_busy_base_port_is_refused_before_any_broker_starts() {
    let busy = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a port");
    let port = busy.local_addr().expect("bound").port();
    let dir = scratch("busy-port");
    // A java that would fail if it ran: the port check comes first.
    let tc = fake_toolchain("/nonexistent/java");
    let e = oversell::live::cluster::Cluster::start(&tc, 1, &dir, Some(port))
        .err()
        .expect("refused");
    let text = e.to_string();
    assert!(
        text.contains(&format!("port {port} on 127.0.0.1 is in use")),
        "{text}"
    );
    assert!(text.contains("--base-port"), "{text}");
}

#[test]
#[allow(clippy::disallowed_methods, clippy::disallowed_types)] // the wall clock of a real process
fn a_broker_that_exits_while_starting_is_a_clear_error_not_a_time_out() {
    let dir = scratch("broker-exits");
    // `false` as java: the broker's process exits at once, as one with a corrupt or
    // unwritable log directory does.
    let tc = fake_toolchain("false");
    let t = std::time::Instant::now();
    let e = oversell::live::cluster::Cluster::start(&tc, 1, &dir, None)
        .err()
        .expect("the cluster does not start");
    let text = e.to_string();
    assert!(text.contains("broker-1 exited while starting"), "{text}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(30),
        "not a time-out: {text}"
    );
}

/// The recorded histories of the live experiments (`docs/live/`, README "Live
/// experiments") are re-judged as they were judged live.
#[test]
fn the_recorded_experiment_histories_are_judged_as_they_were_live() {
    let docs = root().join("docs").join("live");
    let replay = |file: &str| {
        oversell(
            &["replay", "--history", docs.join(file).to_str().unwrap()],
            None,
        )
    };
    let o = replay("crash-point-double-reserve-rekeyed-alo-run0.json");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("VIOLATED: one-decision, no-duplicate-effect"),
        "{}",
        text(&o)
    );
    let o = replay("zombie-punctuation-saga-direct-timers.json");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("VIOLATED: conservation, no-duplicate-effect"),
        "{}",
        text(&o)
    );
    // Format 3: the coordinators' logs and the polls recorded, so epoch-fencing,
    // monotonic-commits and no-aborted-read are judged; commit-generation is not.
    let o = replay("crash-point-double-reserve-rekeyed-eos-run0.json");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("holds on every invariant a live run shows"),
        "{}",
        text(&o)
    );
    let out = text(&o);
    let unjudged: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("(not judged live:"))
        .map(str::trim)
        .collect();
    assert_eq!(unjudged.len(), 2, "{unjudged:?}");
    assert!(unjudged[0].starts_with("(not judged live: commit-generation"));
    assert!(unjudged[1].starts_with("(not judged live: own-end-txn"));
    let o = replay("zombie-fenced-rekeyed-eos-run0.json");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("holds on every invariant a live run shows"),
        "{}",
        text(&o)
    );
}
