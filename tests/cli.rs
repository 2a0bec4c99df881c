//! The `oversell` command as a user meets it: closed pipes, bad flags, huge seed ranges,
//! diverged replays, unsettled runs, hostile ids, quoted commands, multi-file checks.

use oversell::designs::{Design, Mutation, Schema};
use oversell::run::{sweep_seeds, SweepOptions};
use oversell::scenario::{Scenario, SeedRange};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oversell-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The command, run outside cargo's environment (as a user runs the binary).
fn oversell(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("CARGO")
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let mut child = Command::new(BIN)
        .args(["replay", &scenario("last-unit"), "--design", "naive"])
        .args(["--seed", "0", "--trace", "--all"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().expect("it ends");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn jobs_must_be_at_least_one_and_are_capped() {
    let zero = oversell(&[
        "explore",
        &scenario("last-unit"),
        "--seeds",
        "0..3",
        "--jobs",
        "0",
    ]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        text(&zero.stderr).contains("at least 1"),
        "{}",
        text(&zero.stderr)
    );
    let huge = oversell(&[
        "explore",
        &scenario("last-unit"),
        "--design",
        "naive",
        "--seeds",
        "0..3",
        "--jobs",
        "100000",
    ]);
    let out = text(&huge.stdout);
    assert_eq!(huge.status.code(), Some(1), "{}", text(&huge.stderr));
    assert!(out.contains("· 3 jobs"), "{out}");
}

fn explore_json(dir: &Path, seeds: &str, jobs: &str, extra: &[&str]) -> serde_json::Value {
    let file = dir.join(format!("jobs-{jobs}-{}.json", extra.len()));
    let file_arg = file.display().to_string();
    let mut args = vec![
        "explore",
        "scenarios/last-unit.toml",
        "--seeds",
        seeds,
        "--jobs",
        jobs,
        "--json",
        &file_arg,
    ];
    args.extend_from_slice(extra);
    let out = Command::new(BIN)
        .current_dir(root())
        .args(&args)
        .output()
        .expect("runs");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&file).expect("json written")).expect("json")
}

#[test]
fn seed_ranges_up_to_u64_max_give_the_same_result_whatever_the_jobs() {
    let dir = scratch("seeds");
    let top = "18446744073709551605..18446744073709551615";
    let one = explore_json(&dir, top, "1", &[]);
    let two = explore_json(&dir, top, "2", &[]);
    assert_eq!(one, two);
    assert_eq!(one["naive"]["runs"], 10);
    assert_eq!(one["saga"]["runs"], 10);
    let first = explore_json(&dir, "0..40", "1", &["--stop-on-first"]);
    let firsts = explore_json(&dir, "0..40", "2", &["--stop-on-first"]);
    assert_eq!(first, firsts);
    assert_eq!(first["naive"]["end"], "stopped-at-failure");
}

#[test]
fn a_diverged_replay_is_an_error_that_says_where() {
    let dir = scratch("diverged");
    let log = dir.join("last-unit.json").display().to_string();
    let rec = oversell(&["replay", &scenario("last-unit"), "--design", "naive"]);
    assert_eq!(
        rec.status.code(),
        Some(2),
        "--seed or --choices is required"
    );
    let rec = oversell(&[
        "replay",
        &scenario("last-unit"),
        "--design",
        "naive",
        "--seed",
        "0",
        "--json",
        &log,
    ]);
    assert_eq!(rec.status.code(), Some(1));
    let other = oversell(&[
        "replay",
        &scenario("many-products"),
        "--design",
        "naive",
        "--choices",
        &log,
    ]);
    let err = text(&other.stderr);
    assert_eq!(other.status.code(), Some(2), "{err}");
    assert!(err.contains("diverged at choice"), "{err}");
    assert!(!text(&other.stdout).contains("holds"));
}

const BOUNDED: &str = r#"
name = "bounded"
[[products]]
id = "product1"
stock = 1
[[orders]]
id = "order1"
product = "product1"
at = 104
[run]
max_time_ms = 122
"#;

#[test]
fn a_run_ended_at_its_time_bound_is_unsettled_not_holding_nor_violated() {
    let dir = scratch("unsettled");
    let file = dir.join("bounded.toml");
    std::fs::write(&file, BOUNDED).expect("write");
    let path = file.display().to_string();
    let out = oversell(&["run", &path, "--design", "saga"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("UNSETTLED"), "{stdout}");
    assert!(stdout.contains("liveness not judged"), "{stdout}");
    assert!(!stdout.contains("✗"), "{stdout}");
    let json = dir.join("run.json").display().to_string();
    let out = oversell(&[
        "replay", &path, "--design", "saga", "--seed", "0", "--json", &json,
    ]);
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("written")).expect("json");
    assert_eq!(doc["verdict"]["status"], "unsettled");
    assert!(doc["verdict"]["not_judged"]
        .as_array()
        .expect("list")
        .contains(&serde_json::json!("eventual-decision")));
}

const HOSTILE: &str = r#"
name = "hostile"
[[products]]
id = "p\u001b[2J\rX"
stock = 1
[[orders]]
id = "o\u001b[31m1"
product = "p\u001b[2J\rX"
at = 100
[[orders]]
id = "o2\nfake"
product = "p\u001b[2J\rX"
at = 100
"#;

#[test]
fn ids_are_escaped_and_commands_quoted_with_the_program_as_invoked() {
    let dir = scratch("hostile").join("a;b");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("x y.toml");
    std::fs::write(&file, HOSTILE).expect("write");
    let path = file.display().to_string();
    let html = dir.join("t.html").display().to_string();
    let out = oversell(&["run", &path, "--design", "naive"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert!(stdout.contains("p\\u{1b}[2J\\rX"), "{stdout}");
    assert!(stdout.contains("o2\\nfake"), "{stdout}");
    let quoted = format!("  replay: {BIN} replay '{path}' --design naive --seed 0\n");
    assert!(stdout.contains(&quoted), "{stdout}\nwanted {quoted}");
    let words = shell_words::split(quoted.trim().trim_start_matches("replay: ")).expect("quoted");
    assert_eq!(words[2], path);
    oversell(&[
        "replay", &path, "--design", "naive", "--seed", "0", "--html", &html,
    ]);
    let page = std::fs::read_to_string(&html).expect("page");
    assert!(page.contains(&format!("{BIN} replay &#39;{path}&#39; --design naive")));
}

#[test]
fn check_reports_every_file_loadable_or_not() {
    let dir = scratch("check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \n").expect("write");
    let bad = bad.display().to_string();
    let out = oversell(&[
        "check",
        &scenario("last-unit"),
        &bad,
        &scenario("restock-race"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("last-unit.toml (seeds"), "{stdout}");
    assert!(stdout.contains("restock-race.toml (seeds"), "{stdout}");
    assert!(stdout.contains("cannot be checked"), "{stdout}");
    assert!(
        stdout.contains("1 of 3 file(s) could not be checked"),
        "{stdout}"
    );
}

#[test]
fn check_labels_a_one_seed_expectation_a_regression_pin_in_text_and_json() {
    let dir = scratch("check-json");
    let json = dir.join("check.json");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \n").expect("write");
    let out = oversell(&[
        "check",
        &scenario("saga-zombie-punctuation"),
        &scenario("saga-reservation-timeout"),
        &bad.display().to_string(),
        "--json",
        &json.display().to_string(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("regression pin of seed 99, not a verdict"),
        "{stdout}"
    );
    assert!(
        stdout.contains("outcomes: met in 30 of 30 settled runs"),
        "{stdout}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    assert_eq!(doc["schema"], "oversell-check/1");
    assert_eq!(doc["met"], false);
    let files = doc["files"].as_array().expect("files");
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["expectations"][0]["kind"], "regression-pin");
    assert_eq!(files[0]["status"], "met");
    let saga = &files[1]["expectations"].as_array().expect("expectations")[3];
    assert_eq!(saga["design"], "saga");
    assert_eq!(saga["kind"], "verdict");
    assert_eq!(saga["outcomes"]["promised"], true);
    assert_eq!(saga["outcomes"]["judged"], 30);
    assert_eq!(saga["outcomes"]["missed"], 0);
    assert_eq!(files[2]["status"], "cannot-be-checked");
    assert!(files[2]["error"]
        .as_str()
        .expect("error")
        .contains("bad.toml:1"));
}

#[test]
fn an_unwritable_json_path_is_refused_before_the_sweep() {
    let out = oversell(&[
        "explore",
        &scenario("last-unit"),
        "--json",
        "/nonexistent-dir/x.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent-dir/x.json"));
    assert!(!text(&out.stdout).contains("runs"), "no sweep ran");
}

/// A design whose world breaks an assertion on one seed's run (as a kernel bug would).
struct Broken;

impl Design for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn summary(&self) -> &'static str {
        "panics while building its world"
    }
    fn schema(&self) -> Schema {
        oversell::designs::Naive.schema()
    }
    fn build(&self, _: &Scenario, _: &[Mutation]) -> oversell_sim::World {
        panic!("a broken invariant")
    }
}

#[test]
fn a_panicking_run_is_reported_with_its_seed() {
    let scenario = oversell::load::load_file(Path::new(&scenario("last-unit"))).expect("loads");
    let opts = SweepOptions {
        seeds: SeedRange { start: 7, end: 9 },
        jobs: 2,
        stop_on_first: false,
        interrupt: None,
    };
    let err = match sweep_seeds(&Broken, &scenario, &[], opts, &|_, _| {}) {
        Ok(_) => panic!("the sweep cannot succeed"),
        Err(e) => e,
    };
    assert_eq!(err.design, "broken");
    assert!(matches!(err.seed, Some(7 | 8)));
    assert_eq!(err.message, "a broken invariant");
}

#[cfg(unix)]
#[test]
fn ctrl_c_during_a_sweep_prints_and_writes_what_it_found() {
    let dir = scratch("interrupt");
    let json = dir.join("partial.json");
    let child = Command::new(BIN)
        .args(["explore", &scenario("last-unit"), "--design", "naive"])
        .args(["--seeds", "0..100000000", "--jobs", "1", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = child.wait_with_output().expect("it ends");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("INTERRUPTED: partial results"), "{stdout}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("written")).expect("json");
    assert_eq!(doc["naive"]["end"], "interrupted");
    assert!(doc["naive"]["runs"].as_u64().expect("runs") > 0);
}

#[test]
fn explore_on_madsim_refuses_the_options_it_does_not_play() {
    let last_unit = scenario("last-unit");
    let base = [
        "explore",
        last_unit.as_str(),
        "--design",
        "naive",
        "--seeds",
        "0..1",
        "--driver",
        "madsim",
    ];
    for (extra, what) in [
        (&["--json", "unused.json"][..], "--json"),
        (&["--jobs", "2"][..], "--jobs above 1"),
        (&["--strategy", "pct"][..], "a strategy other than random"),
        (&["--save"][..], "--save"),
    ] {
        let out = oversell(&[&base[..], extra].concat());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(&format!("does not play {what}")), "{err}");
    }
    assert!(
        !root().join("unused.json").exists(),
        "a refused --json writes nothing"
    );
}
