//! The harness benchmark: what a run costs, where the time goes, and its floor.
//!
//! `scripts/bench` drives it (and writes `BENCHMARKS.md`); by hand:
//!
//! - `cargo bench --bench harness -- scenario N` prints a scenario of `N` orders (50
//!   products, 4 partitions, 2 instances, no faults, one order a millisecond);
//! - `cargo bench --bench harness -- sweep DESIGN SCENARIO SEEDS` runs seeds `0..SEEDS` one
//!   after the other, as `oversell explore --jobs 1` does;
//! - `cargo bench --bench harness -- one DESIGN SCENARIO [REPS]` runs seed 0 (`REPS` times,
//!   default 1: the figures are the sums).
//!
//! Each prints one line of `key=value` figures: runs, steps, the thread's CPU time of the
//! whole harness (build the world, run it with its trace and choice log, judge it), the
//! checker's part of it, the floor's, and the process's peak resident memory (VmHWM).
//!
//! The **floor** is the same run of the same state machines with no checker, no trace
//! (`World::without_trace`) and no choice log (`Chooser::without_log`): the seed draws the
//! same choices, so the floor applies the same deliveries and steps, and its run is
//! asserted to end at the same step and time.
//!
//! Times are the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so other
//! processes sharing the cores do not inflate them; wall time where it is not available.
//! A benchmark reads the real clock: that is its point (the simulator never does).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use oversell::checker::check;
use oversell::designs::Design;
use oversell::run::build_world;
use oversell::{Registry, Scenario};
use oversell_sim::Chooser;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`: exact, where the scheduler's own
/// statistics advance only at its ticks).
fn cpu_time() -> Option<Duration> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
}

/// A stopwatch on the thread's CPU time (else wall time).
struct Watch {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Watch {
    fn start() -> Watch {
        Watch {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu, cpu_time()) {
            (Some(a), Some(b)) => b - a,
            _ => self.wall.elapsed(),
        }
    }
}

/// Peak resident memory of this process so far, in MB (Linux `VmHWM`).
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// A scenario of `n` orders of one unit, one a millisecond from 100 ms, over 50
/// products (order `i` for product `7i mod 50`), each with half the units its orders
/// ask for; 4 partitions, 2 instances of each service, no faults.
fn scenario(n: u64) -> String {
    const PRODUCTS: u64 = 50;
    let mut t = format!(
        "name = \"bench-{n}\"\ndescription = \"{n} orders over {PRODUCTS} products, no faults\"\n"
    );
    let stock = (n / PRODUCTS / 2).max(1);
    for p in 0..PRODUCTS {
        let _ = write!(t, "\n[[products]]\nid = \"product{p}\"\nstock = {stock}\n");
    }
    for o in 0..n {
        let (p, at) = ((o * 7) % PRODUCTS, 100 + o);
        let _ = write!(
            t,
            "\n[[orders]]\nid = \"order{o}\"\nproduct = \"product{p}\"\nat = {at}\n"
        );
    }
    let bound = 100_000 + 10 * n;
    let _ = write!(
        t,
        "\n[topology]\npartitions = 4\ninstances = 2\n\n[run]\nseeds = \"0..1\"\nmax_time_ms = {bound}\n"
    );
    t
}

#[derive(Default)]
struct Figures {
    runs: u64,
    steps: u64,
    harness: Duration,
    checker: Duration,
    floor: Duration,
    held: u64,
}

/// Seed `seed` through the whole harness, then its floor.
fn measure(design: &dyn Design, s: &Scenario, seed: u64, f: &mut Figures) {
    let whole = Watch::start();
    let result = build_world(design, s, &[]).run(Chooser::seeded(seed));
    let judging = Watch::start();
    let verdict = check(&design.schema(), &result, s.run.decision_bound_ms);
    f.checker += judging.elapsed();
    let (steps, end) = (result.steps, result.end_time);
    drop((result, verdict.violations.is_empty().then(|| f.held += 1)));
    f.harness += whole.elapsed();
    let bare = Watch::start();
    let world = build_world(design, s, &[]).without_trace();
    let floor = world.run(Chooser::seeded(seed).without_log());
    f.floor += bare.elapsed();
    assert_eq!(
        (floor.steps, floor.end_time),
        (steps, end),
        "the floor ran another run"
    );
    f.runs += 1;
    f.steps += steps;
}

fn report(design: &str, f: &Figures) {
    let secs = f.harness.as_secs_f64();
    println!(
        "design={design} runs={} held={} steps={} harness_s={:.4} checker_s={:.4} floor_s={:.4} runs_per_s={:.0} checker_share={:.3} floor_ratio={:.2} peak_mb={:.0}",
        f.runs,
        f.held,
        f.steps,
        secs,
        f.checker.as_secs_f64(),
        f.floor.as_secs_f64(),
        f.runs as f64 / secs,
        f.checker.as_secs_f64() / secs,
        secs / f.floor.as_secs_f64(),
        peak_mb(),
    );
}

fn one(design: &dyn Design, name: &str, s: &Scenario, reps: u64) {
    let mut f = Figures::default();
    for _ in 0..reps {
        measure(design, s, 0, &mut f);
    }
    report(name, &f);
}

fn load(path: &str) -> Scenario {
    oversell::load::load_file(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let registry = Registry::builtin();
    let design = |name: &str| {
        registry
            .get(name)
            .unwrap_or_else(|| panic!("no design {name}"))
    };
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["scenario", n] => print!("{}", scenario(n.parse().expect("a number of orders"))),
        ["sweep", d, path, seeds] => {
            let (s, mut f) = (load(path), Figures::default());
            for seed in 0..seeds.parse().expect("a number of seeds") {
                measure(design(d), &s, seed, &mut f);
            }
            report(d, &f);
        }
        ["one", d, path] => one(design(d), d, &load(path), 1),
        ["one", d, path, reps] => one(design(d), d, &load(path), reps.parse().expect("a count")),
        [] => {} // `cargo bench` runs every bench with no arguments: nothing to do here.
        _ => {
            eprintln!(
                "usage: harness scenario N | sweep DESIGN SCENARIO SEEDS | one DESIGN SCENARIO"
            );
            std::process::exit(2);
        }
    }
}
