//! Determinism of the kernel: a run is a pure function of its world and its seed, and a
//! recorded choice log replays it exactly, even without the seed.
//!
//! The world is the small counting topology with every kind of random fault switched on
//! during a fault phase (crash, pause, drop, duplicate, delay), and both processing
//! guarantees (even seeds at-least-once, odd seeds exactly-once v2). Coverage counters
//! check that the faults really struck, so a green run means the fault paths were
//! replayed too, not only the happy path.

use oversell_sim::counting::{world, CountingSetup};
use oversell_sim::{ChoiceLog, Chooser, Event, FaultRates, Guarantee, Outcome, RunResult};
use std::collections::BTreeSet;

/// Seeds of the run-twice check (the issue asks for 1,000).
const SEEDS: u64 = 1_000;

/// The world of a seed. Its shape and fault mix are drawn from the seed as well (a
/// "swarm", as in TigerBeetle's VOPR), so that the 1,000 seeds cover one to three
/// partitions and instances and light to heavy fault rates. Small, so that 2,000 runs stay
/// fast in the debug profile.
fn setup(seed: u64) -> CountingSetup {
    let mut x = seed;
    let mut pick = |n: u64| {
        x = splitmix64(x);
        x % n
    };
    CountingSetup {
        guarantee: if seed & 1 == 0 {
            Guarantee::AtLeastOnce
        } else {
            Guarantee::ExactlyOnceV2
        },
        partitions: 1 + pick(3) as u32,
        instances: 1 + pick(3) as usize,
        records: 8 + pick(17) as usize,
        keys: 1 + pick(4) as usize,
        spread_ms: 100 + pick(400),
        rates: FaultRates {
            crash: 1 + pick(8) as u32,
            pause: 1 + pick(6) as u32,
            drop: pick(40) as u32,
            duplicate: pick(40) as u32,
            delay: pick(40) as u32,
            ..FaultRates::default()
        },
        fault_phase_ms: 300 + pick(700),
        // Half the worlds long-poll (the broker holds their fetches).
        fetch_max_wait_ms: if pick(2) == 0 { 0 } else { 100 },
    }
}

/// A fixed mixing function (not a crate's RNG, whose output could change).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn run(seed: u64) -> RunResult {
    world(&setup(seed)).run_seed(seed)
}

fn replay(seed: u64, log: &ChoiceLog) -> RunResult {
    world(&setup(seed)).run(Chooser::replay(log))
}

/// Which kinds of fault a trace contains.
#[derive(Default)]
struct Coverage {
    runs: u64,
    crash: u64,
    pause: u64,
    drop: u64,
    duplicate: u64,
    delay: u64,
}

impl Coverage {
    fn add(&mut self, r: &RunResult) {
        let has =
            |f: fn(&Event) -> bool| u64::from(r.trace.records.iter().any(|rec| f(&rec.event)));
        self.runs += 1;
        self.crash += has(|e| matches!(e, Event::Crash { .. }));
        self.pause += has(|e| matches!(e, Event::Pause { .. }));
        self.drop += has(|e| matches!(e, Event::Drop { .. }));
        self.duplicate += has(|e| matches!(e, Event::Duplicate { .. }));
        self.delay += has(|e| matches!(e, Event::Delay { .. }));
    }

    /// Every kind of fault struck in at least a fifth of the runs.
    fn assert_broad(&self) {
        eprintln!(
            "fault coverage over {} runs: crash {}, pause {}, drop {}, duplicate {}, delay {}",
            self.runs, self.crash, self.pause, self.drop, self.duplicate, self.delay
        );
        let min = self.runs / 5;
        for (name, n) in [
            ("crash", self.crash),
            ("pause", self.pause),
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("delay", self.delay),
        ] {
            assert!(
                n >= min,
                "only {n} of {} runs had a {name}: the determinism check does not cover that fault path",
                self.runs
            );
        }
    }
}

/// How a failure names its run: the seed and the world it drew.
fn who(seed: u64) -> String {
    format!("seed {seed} ({:?})", setup(seed))
}

fn run_twice(seeds: std::ops::Range<u64>) {
    let mut coverage = Coverage::default();
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in seeds {
        let a = run(seed);
        *outcomes.entry(format!("{:?}", a.outcome)).or_insert(0u32) += 1;
        let b = run(seed);
        let (ra, rb) = (&a.trace.records, &b.trace.records);
        if let Some(i) = (0..ra.len().min(rb.len())).find(|&i| ra[i] != rb[i]) {
            panic!(
                "{}: traces first differ at record {i}:\n  {:?}\n  {:?}",
                who(seed),
                ra[i],
                rb[i]
            );
        }
        assert_eq!(ra.len(), rb.len(), "{}: trace lengths differ", who(seed));
        assert_eq!(
            a.trace.hash(),
            b.trace.hash(),
            "{}: trace hashes differ",
            who(seed)
        );
        assert_eq!(a.choices, b.choices, "{}: choice logs differ", who(seed));
        assert_eq!(a.outcome, b.outcome, "{}: outcomes differ", who(seed));
        assert_eq!(
            (a.steps, a.end_time),
            (b.steps, b.end_time),
            "{}: steps or end times differ",
            who(seed)
        );
        assert!(!a.trace.is_empty(), "{}: empty trace", who(seed));
        coverage.add(&a);
    }
    eprintln!("outcomes: {outcomes:?}");
    coverage.assert_broad();
}

// The 1,000 seeds are split in two halves so that the test harness runs them on two threads.

#[test]
fn same_seed_same_trace_seeds_0_to_499() {
    run_twice(0..SEEDS / 2);
}

#[test]
fn same_seed_same_trace_seeds_500_to_999() {
    run_twice(SEEDS / 2..SEEDS);
}

/// Hashes of the first seeds, one per line, as the child process of
/// [`same_seed_same_trace_in_another_process`] prints them.
fn hash_lines(seeds: u64) -> String {
    (0..seeds)
        .map(|s| format!("{s} {:016x}\n", run(s).trace.hash()))
        .collect()
}

const CHILD_ENV: &str = "OVERSELL_DETERMINISM_CHILD";

/// Running twice in one process cannot see a dependence on the process itself (address
/// space layout, a per-process hash key): the same seeds are run in a second process of
/// this test binary and must hash the same.
#[test]
#[allow(clippy::disallowed_methods)] // the test's own process control, outside any run
fn same_seed_same_trace_in_another_process() {
    const N: u64 = 40;
    if std::env::var_os(CHILD_ENV).is_some() {
        print!("BEGIN\n{}END\n", hash_lines(N));
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([
            "same_seed_same_trace_in_another_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run this test binary again");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let child = stdout
        .split_once("BEGIN\n")
        .and_then(|(_, rest)| rest.split_once("END\n"))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("child printed no hashes:\n{stdout}"));
    assert_eq!(
        child,
        hash_lines(N),
        "trace hashes differ between processes"
    );
}

/// Seeds of the replay checks.
const REPLAY_SEEDS: std::ops::Range<u64> = 0..150;

#[test]
fn replay_from_the_choice_log_gives_the_same_trace() {
    for seed in REPLAY_SEEDS {
        let original = run(seed);
        let hash = original.trace.hash();

        let replayed = replay(seed, &original.choices);
        assert_eq!(
            replayed.outcome, original.outcome,
            "seed {seed}: replay outcome"
        );
        assert_eq!(
            replayed.trace.hash(),
            hash,
            "seed {seed}: replay from the log diverged"
        );
        assert_eq!(
            replayed.choices, original.choices,
            "seed {seed}: replay used a different log"
        );

        // Through the printable form, as a user would paste it.
        let text = original.choices.encode();
        let decoded = ChoiceLog::decode(&text).expect("an encoded log decodes");
        assert_eq!(
            decoded, original.choices,
            "seed {seed}: encode/decode round trip"
        );
        let replayed = replay(seed, &decoded);
        assert_eq!(
            replayed.trace.hash(),
            hash,
            "seed {seed}: replay from the text log diverged"
        );
        assert_eq!(
            replayed.outcome, original.outcome,
            "seed {seed}: replay outcome (text)"
        );
    }
}

/// A replay that runs out of choices stops with `Diverged` at the point where the log
/// ends, after reproducing the original up to there.
#[test]
fn replay_of_a_truncated_log_reports_divergence() {
    for seed in REPLAY_SEEDS {
        let original = run(seed);
        let n = original.choices.choices.len();
        assert!(n > 10, "seed {seed}: only {n} choices");
        for keep in [0, 1, n / 3, n / 2, n - 1] {
            let log = ChoiceLog {
                choices: original.choices.choices[..keep].to_vec(),
            };
            let r = replay(seed, &log);
            let Outcome::Diverged(why) = &r.outcome else {
                panic!(
                    "seed {seed}: log cut to {keep} of {n} choices ended {:?}",
                    r.outcome
                );
            };
            assert!(
                why.contains(&format!("at choice {keep}")),
                "seed {seed}, keep {keep}: {why}"
            );
            assert_eq!(
                r.choices.choices, log.choices,
                "seed {seed}: the replay used exactly the kept choices"
            );
            // Up to the cut, the replay is the original run.
            let prefix = r.trace.len();
            assert!(prefix <= original.trace.len());
            assert_eq!(
                r.trace.records[..],
                original.trace.records[..prefix],
                "seed {seed}, keep {keep}: replayed prefix differs"
            );
        }
    }
}

/// A corrupted log never panics: a value out of range is reported as `Diverged` at its
/// index; an in-range change takes the run elsewhere, which must still be a sound run.
#[test]
fn replay_of_a_corrupted_log_reports_divergence() {
    for seed in REPLAY_SEEDS {
        let original = run(seed);
        let n = original.choices.choices.len();
        for at in [0, n / 4, n / 2, n - 1] {
            let mut log = original.choices.clone();
            log.choices[at] = u32::MAX;
            let r = replay(seed, &log);
            let expected = format!("at choice {at}: choice {at} is {}, but only ", u32::MAX);
            match &r.outcome {
                Outcome::Diverged(why) if why.starts_with(&expected) => {}
                other => panic!("seed {seed}: out-of-range choice {at} of {n} ended {other:?}"),
            }
            assert_eq!(
                r.choices.choices[..],
                log.choices[..at],
                "seed {seed}: choices used before the bad one"
            );

            let mut log = original.choices.clone();
            log.choices[at] = log.choices[at].wrapping_add(1) % 3;
            let r = replay(seed, &log);
            if !matches!(r.outcome, Outcome::Diverged(_)) {
                r.broker.check_invariants();
            }
        }
        // Text that is not a log at all is refused before any run.
        let garbage = format!("{}.!.{}", original.choices.encode(), "x");
        assert!(
            ChoiceLog::decode(&garbage).is_err(),
            "seed {seed}: garbage decoded"
        );
    }
}

/// The seed matters: different seeds take different paths.
#[test]
fn different_seeds_give_different_traces() {
    let mut hashes = BTreeSet::new();
    let mut logs = BTreeSet::new();
    for seed in 0..200 {
        let r = run(seed);
        hashes.insert(r.trace.hash());
        logs.insert(r.choices.encode());
    }
    assert_eq!(hashes.len(), 200, "some seeds gave identical traces");
    assert_eq!(logs.len(), 200, "some seeds gave identical choice logs");

    // Also without any fault, where only the interleaving differs.
    let quiet = CountingSetup {
        rates: FaultRates::default(),
        ..setup(0)
    };
    let quiet: BTreeSet<u64> = (0..50)
        .map(|s| world(&quiet).run_seed(s).trace.hash())
        .collect();
    assert_eq!(
        quiet.len(),
        50,
        "fault-free runs of different seeds gave identical traces"
    );
}

/// A client that breaks at a given simulated time: a stand-in for a broken invariant.
struct Breaks {
    id: oversell_sim::ClientId,
    at: u64,
}

impl oversell_sim::Client for Breaks {
    fn id(&self) -> &oversell_sim::ClientId {
        &self.id
    }
    fn ready(&self, _lane: usize, _now: u64) -> bool {
        true
    }
    fn step(&mut self, _lane: usize, env: &mut oversell_sim::Env<'_>) {
        assert!(env.now < self.at, "invariant broken at {}ms", env.now);
    }
    fn on_response(
        &mut self,
        _corr: u64,
        _response: oversell_sim::protocol::Response,
        _env: &mut oversell_sim::Env<'_>,
    ) {
    }
    fn wakeup(&self) -> Option<u64> {
        None
    }
    fn idle(&self) -> bool {
        false
    }
}

fn breaking_world() -> oversell_sim::World {
    let spec = oversell_sim::InstanceSpec {
        name: "breaker".into(),
        build: std::sync::Arc::new(|_: &str| {
            vec![Box::new(Breaks {
                id: oversell_sim::ClientId::new("breaker", "app"),
                at: 20,
            }) as Box<dyn oversell_sim::Client>]
        }),
        faulty: false,
        start_at: 0,
    };
    oversell_sim::World::new(
        oversell_sim::Broker::new(),
        vec![spec],
        oversell_sim::WorldConfig::default(),
    )
}

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("the run must panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_kernel_panic_names_the_seed_and_the_point_of_the_run() {
    let text = panic_message(|| {
        breaking_world().run_seed(4242);
    });
    assert!(text.contains("seed 4242"), "{text}");
    assert!(text.contains("invariant broken at 2"), "{text}");
    assert!(text.contains(", step "), "{text}");
    // Twenty ticks, then a step of the client (the actions are: step, tick).
    let mut choices = vec![1; 20];
    choices.push(0);
    let log = ChoiceLog { choices };
    let text = panic_message(|| {
        breaking_world().run(Chooser::replay(&log));
    });
    assert!(text.contains("a replayed choice log, at 20ms"), "{text}");
}

/// The kernel's clippy.toml is stricter than the workspace's: clippy reads the crate's
/// own file and not the workspace's, so every path the workspace forbids must be
/// forbidden here too, besides threads and the environment.
#[test]
fn the_kernel_lints_include_every_workspace_lint() {
    let paths = |text: &'static str| -> Vec<&'static str> {
        text.lines()
            .filter_map(|l| l.split("path = \"").nth(1))
            .filter_map(|l| l.split('"').next())
            .collect()
    };
    let kernel = paths(include_str!("../clippy.toml"));
    for path in paths(include_str!("../../clippy.toml")) {
        assert!(kernel.contains(&path), "sim/clippy.toml lacks {path}");
    }
    for path in [
        "std::thread::spawn",
        "std::thread::scope",
        "std::thread::Builder::spawn",
        "std::env::var",
        "std::env::var_os",
    ] {
        assert!(kernel.contains(&path), "sim/clippy.toml lacks {path}");
    }
}
