//! `oversell live` (a scenario on a real Kafka cluster, judged by the same checker) and
//! `oversell replay --history FILE` (re-judge a recorded live run).

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::args::LiveArgs;
use super::error::{Error, Exit};
use super::out::{self, say};
use super::{design, load_scenario};
use crate::checker::{self, Verdict};
use crate::designs::{Design, Registry};
use crate::live::{self, cluster::Cluster, run::Plan, LiveError, LiveHistory, NOT_RECORDED};
use std::path::Path;
use std::time::{Duration, Instant};

impl From<LiveError> for Error {
    fn from(e: LiveError) -> Error {
        Error::Live(e.to_string())
    }
}

/// Seeds of the simulator's side of the cost comparison.
const SIM_SEEDS: u64 = 50;

pub fn live(registry: &Registry, a: &LiveArgs) -> Result<Exit, Error> {
    let scenario = load_scenario(&a.scenario)?;
    let d = design(registry, &a.design)?;
    let plan = Plan {
        scenario: &scenario,
        scenario_path: &a.scenario,
        design: d.name(),
        time_scale: a.time_scale,
    };
    live::run::supported(&plan)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let tc = live::java::toolchain()?;
    let work = tempdir()?;
    // The first Ctrl-C ends the series after the current run (the JVMs, in the same
    // process group, are stopped by it too), so the cluster's files are removed; a
    // second one ends the command at once (the JVMs halt when their input closes).
    let _interruptible = super::progress::Sweeping::start();
    let ran = series(&tc, d, &plan, a, &work);
    let _ = std::fs::remove_dir_all(&work);
    ran
}

/// The live time scale of `plan`, said once before its runs.
fn say_scale(plan: &Plan<'_>) {
    let k = plan.scale();
    say!(
        "time scale ×{k}: every time of the story (workload, faults, session timeout {} ms, \
         heartbeat, commit interval, transaction and saga timeouts, decision bound) \
         multiplied by {k} (--time-scale)",
        crate::live::scale::scaled(plan.scenario, k)
            .streams
            .session_timeout_ms
            .unwrap_or_default()
    );
}

/// Start the cluster, run the series, stop the cluster; the summary.
fn series(
    tc: &live::java::Toolchain,
    d: &dyn Design,
    plan: &Plan<'_>,
    a: &LiveArgs,
    work: &Path,
) -> Result<Exit, Error> {
    let scenario = plan.scenario;
    let t = Instant::now();
    let mut cluster = Cluster::start(tc, a.brokers, work, a.base_port)?;
    let cluster_start = t.elapsed();
    say!(
        "live: {} on {} ({}), {} run(s) on {} real broker(s) at {} (started in {:.1} s)",
        d.name(),
        out::escape(&scenario.name),
        out::path(&a.scenario),
        a.runs,
        a.brokers,
        cluster.bootstrap,
        cluster_start.as_secs_f64()
    );
    say_scale(plan);
    let mut tally = Tally::new();
    let mut failed = 0;
    for index in 0..a.runs {
        if super::progress::interrupted() {
            break;
        }
        match live::run::run_once(
            tc,
            &mut cluster,
            plan,
            index,
            &a.out,
            &super::progress::interrupted,
        ) {
            Ok(done) => tally.add(d, &done.history, &done.file, done.wall)?,
            Err(e) => {
                // A run that could not finish is no verdict: said, counted, and the
                // series goes on while the cluster lives.
                failed += 1;
                say!(
                    "run {index}: FAILED, no verdict: {}",
                    out::escape_lines(&e.to_string())
                );
                if !cluster.alive() && !super::progress::interrupted() {
                    say!("the cluster is down: the series stops");
                    break;
                }
            }
        }
    }
    cluster.stop();
    tally.summary(d, scenario);
    if super::progress::interrupted() {
        say!("interrupted after {} finished run(s)", tally.runs);
        return Ok(Exit::Interrupted);
    }
    if failed > 0 {
        return Err(Error::Live(format!(
            "{failed} of {} live run(s) failed before their history was recorded (see above)",
            a.runs
        )));
    }
    Ok(tally.exit)
}

/// `replay --history FILE`: rebuild the run record and judge it again.
pub fn replay_history(registry: &Registry, path: &Path) -> Result<Exit, Error> {
    let h = LiveHistory::read(path).map_err(Error::Live)?;
    let d = design(registry, &h.design)?;
    say!(
        "live history {} · design {} · scenario {} · run {} · Kafka {} on {} broker(s) · times ×{}",
        out::path(path),
        d.name(),
        out::escape(&h.scenario),
        h.run,
        out::escape(&h.kafka_version),
        h.brokers,
        h.time_scale
    );
    let verdict = judge(d, &h).map_err(|e| Error::Live(format!("{}: {e}", out::path(path))))?;
    let status = print_verdict(&verdict, &h);
    print_not_recorded(&live::not_recorded(&h));
    Ok(status)
}

/// The checker's verdict on a live history.
pub fn judge(d: &dyn Design, h: &LiveHistory) -> Result<Verdict, live::Unconvertible> {
    let run = live::to_run(h)?;
    let verdict = checker::check(&d.schema(), &run, h.decision_bound_ms);
    Ok(live::live_verdict(verdict, h))
}

/// Print a live run's violations; its exit status.
fn print_verdict(verdict: &Verdict, h: &LiveHistory) -> Exit {
    let recorded: Vec<_> = live::not_recorded(h).iter().map(|(i, _)| *i).collect();
    let unsettled: Vec<_> = verdict
        .not_judged
        .iter()
        .filter(|n| !recorded.contains(&n.invariant))
        .collect();
    let status = if !verdict.holds() {
        let names: Vec<&str> = verdict.violated().iter().map(|i| i.name()).collect();
        say!("  VIOLATED: {}", names.join(", "));
        Exit::Violated
    } else if !unsettled.is_empty() {
        say!(
            "  UNSETTLED: the run ended {} before every input was committed",
            h.outcome
        );
        Exit::Unsettled
    } else {
        say!("  holds on every invariant a live run shows");
        Exit::Holds
    };
    for bug in &verdict.kernel_bugs {
        say!("  ✗ {}", out::escape(&bug.to_string()));
    }
    for v in &verdict.violations {
        say!(
            "  ✗ {} at {}ms: {}",
            v.invariant.name(),
            v.time,
            out::escape(&v.explanation)
        );
    }
    for n in unsettled {
        say!("  ? {}", out::escape(&n.to_string()));
    }
    status
}

fn print_not_recorded(list: &[(crate::checker::Invariant, &str)]) {
    for (invariant, why) in list {
        say!("  (not judged live: {} — {why})", invariant.name());
    }
}

/// What a series of live runs found.
struct Tally {
    runs: u32,
    violated: std::collections::BTreeMap<&'static str, u32>,
    unsettled: u32,
    walls: Vec<Duration>,
    kafka: String,
    exit: Exit,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            runs: 0,
            violated: Default::default(),
            unsettled: 0,
            walls: Vec::new(),
            kafka: String::new(),
            exit: Exit::Holds,
        }
    }

    fn add(
        &mut self,
        d: &dyn Design,
        h: &LiveHistory,
        file: &Path,
        wall: Duration,
    ) -> Result<(), Error> {
        say!(
            "run {}: {:.1} s, {} records, outcome {} · history {}",
            h.run,
            wall.as_secs_f64(),
            h.records.len(),
            h.outcome,
            out::path(file)
        );
        let verdict = judge(d, h).map_err(|e| Error::Live(format!("{}: {e}", out::path(file))))?;
        let status = print_verdict(&verdict, h);
        self.exit = self.exit.and(status);
        self.runs += 1;
        self.walls.push(wall);
        self.kafka.clone_from(&h.kafka_version);
        for i in verdict.violated() {
            *self.violated.entry(i.name()).or_default() += 1;
        }
        if status == Exit::Unsettled {
            self.unsettled += 1;
        }
        Ok(())
    }

    fn summary(&self, d: &dyn Design, scenario: &crate::scenario::Scenario) {
        if self.runs == 0 {
            say!("no live run finished");
            return;
        }
        let broke: Vec<String> = self
            .violated
            .iter()
            .map(|(i, n)| format!("{i} in {n} of {} runs", self.runs))
            .collect();
        say!(
            "live ({} run(s), Kafka {}): {}{}",
            self.runs,
            self.kafka,
            if broke.is_empty() {
                "no violation".to_string()
            } else {
                broke.join(", ")
            },
            if self.unsettled > 0 {
                format!("; {} unsettled", self.unsettled)
            } else {
                String::new()
            }
        );
        print_not_recorded(&NOT_RECORDED);
        let (sim_ms, sim_broke) = simulate(d, scenario);
        let mut walls = self.walls.clone();
        walls.sort();
        let median = walls[walls.len() / 2];
        say!("simulated ({SIM_SEEDS} seeds of the same scenario and design): {sim_broke}",);
        say!(
            "cost: {:.2} s per live run (median of {}) against {:.3} ms per simulated run",
            median.as_secs_f64(),
            self.runs,
            sim_ms
        );
    }
}

/// The simulator on seeds 0..SIM_SEEDS: ms per run, and what broke.
fn simulate(d: &dyn Design, scenario: &crate::scenario::Scenario) -> (f64, String) {
    let t = Instant::now();
    let mut broke: std::collections::BTreeMap<&'static str, u32> = Default::default();
    for seed in 0..SIM_SEEDS {
        let judged = crate::run::run_seed(d, scenario, &[], seed);
        for i in judged.verdict.violated() {
            *broke.entry(i.name()).or_default() += 1;
        }
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0 / SIM_SEEDS as f64;
    let words: Vec<String> = broke
        .iter()
        .map(|(i, n)| format!("{i} in {n} of {SIM_SEEDS} runs"))
        .collect();
    let text = if words.is_empty() {
        "no violation".into()
    } else {
        words.join(", ")
    };
    (ms, text)
}

/// A fresh directory for the cluster's log directories and the runs' working files.
fn tempdir() -> Result<std::path::PathBuf, Error> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dir = std::env::temp_dir().join(format!("oversell-live-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}
