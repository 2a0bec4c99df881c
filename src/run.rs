//! Running designs on scenarios: one seed, a replayed choice log, a sweep of seeds.

use crate::checker::{check, Invariant, Probe, Property, Verdict, Violation};
use crate::designs::{Design, Mutation};
use crate::scenario::{Scenario, SeedRange, StateDir};
use oversell_sim::broker::TransactionVersion;
use oversell_sim::{ChoiceLog, Chooser, FaultRates, Outcome, RunResult, World};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// One judged run.
pub struct Judged {
    pub seed: Option<u64>,
    pub result: RunResult,
    pub verdict: Verdict,
    /// The fault mix the run drew, when its scenario runs swarm faults.
    pub swarm: Option<FaultRates>,
}

/// What a judged run says, as the command and the reports tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The run settled (quiescent) and every invariant holds.
    Holds,
    /// The run ended at a bound (or diverged) with no violation among what could be
    /// judged: liveness and at-quiescence invariants were not judged.
    Unsettled,
    /// Some invariant is violated.
    Violated,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Holds => "holds",
            Status::Unsettled => "unsettled",
            Status::Violated => "violated",
        }
    }
}

impl Judged {
    /// Whether the run reached quiescence (the only end at which everything is judged).
    pub fn settled(&self) -> bool {
        self.result.outcome == Outcome::Quiescent
    }

    /// Whether a violation stands. On a run that ended at a bound, a liveness violation
    /// stands only if it was seen before the run ended (its deadline passed while the run
    /// still went on); one dated at the run's end is a deadline the run never reached.
    pub fn stands(&self, v: &Violation) -> bool {
        self.settled()
            || v.invariant.property() != Property::Eventually
            || v.time < self.result.end_time
    }

    /// The violations that stand, in the checker's order.
    pub fn counted(&self) -> impl Iterator<Item = &Violation> {
        self.verdict.violations.iter().filter(|v| self.stands(v))
    }

    /// Liveness violations dated at the end of an unsettled run: not judged.
    pub fn unjudged(&self) -> impl Iterator<Item = &Violation> {
        self.verdict.violations.iter().filter(|v| !self.stands(v))
    }

    /// The invariants that stand violated.
    pub fn violated(&self) -> BTreeSet<Invariant> {
        self.counted().map(|v| v.invariant).collect()
    }

    /// The invariants this run could not be judged on: at-quiescence ones when it did
    /// not settle, and liveness whenever it did not settle.
    pub fn not_judged(&self) -> Vec<Invariant> {
        Invariant::ALL
            .into_iter()
            .filter(|i| {
                !i.judged_on(&self.result)
                    || (!self.settled() && i.property() == Property::Eventually)
            })
            .collect()
    }

    pub fn status(&self) -> Status {
        if self.counted().next().is_some() {
            Status::Violated
        } else if self.settled() {
            Status::Holds
        } else {
            Status::Unsettled
        }
    }
}

/// A run that panicked: a bug in oversell (a kernel invariant broken), not a verdict.
#[derive(Clone, Debug)]
pub struct RunPanic {
    pub design: String,
    /// `None` when the run replayed a choice log.
    pub seed: Option<u64>,
    pub message: String,
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// The design's world for `scenario`, on the Kafka the scenario models (`[kafka]`):
/// every design, built in or a user's, runs on the same coordinator settings.
pub fn build_world(design: &dyn Design, scenario: &Scenario, mutations: &[Mutation]) -> World {
    // The exhaustive strategy's fault budget needs a fault phase (`exhaustive::scenario_for`).
    let searched;
    let scenario = if scenario.run.strategy == crate::scenario::StrategyName::Exhaustive {
        searched = crate::exhaustive::scenario_for(scenario);
        &searched
    } else {
        scenario
    };
    let mut world = design.build(scenario, mutations);
    let version = match scenario.kafka.transaction_version {
        1 => TransactionVersion::V1,
        2 => TransactionVersion::V2,
        other => panic!("transaction_version {other} passed the loader (1 or 2)"),
    };
    world.broker_mut().set_transaction_version(version);
    world
        .broker_mut()
        .set_abort_scan_interval(scenario.kafka.abort_scan_interval_ms);
    world
        .broker_mut()
        .set_defects(Mutation::broker_defects(mutations));
    world.set_ephemeral_state_dirs(scenario.streams.state_dir == StateDir::Ephemeral);
    world.set_strategy(scenario.run.strategy());
    if scenario.cluster.brokers > 1 {
        world
            .broker_mut()
            .set_cluster(scenario.cluster.config())
            .unwrap_or_else(|e| panic!("[cluster] passed the loader: {e}"));
    }
    world
}

/// Run `design` on `scenario` with `seed`, then judge the recorded run.
pub fn run_seed(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seed: u64,
) -> Judged {
    let mut judged = run_chooser(design, scenario, mutations, Chooser::seeded(seed));
    judged.seed = Some(seed);
    judged
}

/// Run `design` on `scenario` drawing every choice from `chooser` (a swarm scenario
/// first draws its fault mix from it), then judge the recorded run.
pub fn run_chooser(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    chooser: Chooser,
) -> Judged {
    let (result, swarm) = run_unjudged(design, scenario, mutations, chooser);
    let verdict = check(&design.schema(), &result, scenario.run.decision_bound_ms);
    Judged {
        seed: None,
        result,
        verdict,
        swarm,
    }
}

/// [`run_chooser`]'s run without its judgement: the recorded run and the fault mix a
/// swarm scenario drew. For a caller that judges only what it needs (the shrinker asks
/// about one invariant per candidate, `checker::check_one`).
pub fn run_unjudged(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    mut chooser: Chooser,
) -> (RunResult, Option<FaultRates>) {
    // A log that does not even fit the mix's draws diverges at the world's first choice.
    let swarm = if scenario.faults.swarm {
        crate::swarm::draw(&mut chooser).ok()
    } else {
        None
    };
    let swarmed = swarm
        .as_ref()
        .map(|rates| crate::swarm::apply(scenario, rates));
    let scenario = swarmed.as_ref().unwrap_or(scenario);
    (build_world(design, scenario, mutations).run(chooser), swarm)
}

/// [`run_seed`], with a panic inside the run caught and returned with its seed.
pub fn try_run_seed(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seed: u64,
) -> Result<Judged, RunPanic> {
    catch_unwind(AssertUnwindSafe(|| {
        run_seed(design, scenario, mutations, seed)
    }))
    .map_err(|p| RunPanic {
        design: design.name().to_string(),
        seed: Some(seed),
        message: panic_message(p.as_ref()),
    })
}

/// Replay a recorded choice log exactly (no seed needed).
pub fn run_log(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    log: &ChoiceLog,
) -> Judged {
    run_chooser(design, scenario, mutations, Chooser::replay(log))
}

/// [`run_log`], with a panic inside the run caught.
pub fn try_run_log(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    log: &ChoiceLog,
) -> Result<Judged, RunPanic> {
    catch_unwind(AssertUnwindSafe(|| {
        run_log(design, scenario, mutations, log)
    }))
    .map_err(|p| RunPanic {
        design: design.name().to_string(),
        seed: None,
        message: panic_message(p.as_ref()),
    })
}

/// What a sweep over seeds found, for one design.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Sweep {
    pub runs: u64,
    /// Runs that violated at least one invariant.
    pub failing_runs: u64,
    /// Per invariant: how many runs violated it, and the first seed that did.
    pub violations: BTreeMap<Invariant, (u64, u64)>,
    /// Runs that ended at a bound instead of quiescence, and the first such seed.
    pub unsettled: u64,
    pub first_unsettled: Option<u64>,
    pub steps: u64,
    /// Per coverage probe that fired: in how many runs, how often in all, first seed.
    pub probes: BTreeMap<Probe, ProbeCount>,
    /// Under PCT: the largest thread count and decision count over the runs (the
    /// weakest per-run bound of the sweep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pct: Option<oversell_sim::PctStats>,
}

/// The weaker bound of two PCT runs: most threads, most decisions.
fn weakest(
    a: Option<oversell_sim::PctStats>,
    b: Option<oversell_sim::PctStats>,
) -> Option<oversell_sim::PctStats> {
    match (a, b) {
        (Some(a), Some(b)) => Some(oversell_sim::PctStats {
            depth: a.depth,
            threads: a.threads.max(b.threads),
            decisions: a.decisions.max(b.decisions),
        }),
        (a, b) => a.or(b),
    }
}

/// How a coverage probe fired over a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeCount {
    /// Runs in which it fired.
    pub runs: u64,
    /// Times it fired, over every run.
    pub hits: u64,
    /// The lowest seed in which it fired.
    pub first_seed: u64,
}

impl ProbeCount {
    fn merge(&mut self, other: &ProbeCount) {
        self.runs += other.runs;
        self.hits += other.hits;
        self.first_seed = self.first_seed.min(other.first_seed);
    }
}

/// What a sweep keeps of one run.
#[derive(Clone, Debug)]
struct RunSummary {
    steps: u64,
    settled: bool,
    violated: BTreeSet<Invariant>,
    probes: BTreeMap<Probe, u64>,
    pct: Option<oversell_sim::PctStats>,
}

impl RunSummary {
    fn of(judged: &Judged) -> RunSummary {
        RunSummary {
            steps: judged.result.steps,
            settled: judged.settled(),
            violated: judged.violated(),
            probes: judged.verdict.probes.0.clone(),
            pct: judged.result.pct,
        }
    }
}

impl Sweep {
    pub fn add(&mut self, seed: u64, judged: &Judged) {
        self.add_summary(seed, &RunSummary::of(judged));
    }

    fn add_summary(&mut self, seed: u64, run: &RunSummary) {
        self.runs += 1;
        self.steps += run.steps;
        self.pct = weakest(self.pct, run.pct);
        if !run.settled {
            self.unsettled += 1;
            self.first_unsettled = Some(self.first_unsettled.map_or(seed, |s| s.min(seed)));
        }
        if !run.violated.is_empty() {
            self.failing_runs += 1;
        }
        for inv in &run.violated {
            let e = self.violations.entry(*inv).or_insert((0, seed));
            e.0 += 1;
            e.1 = e.1.min(seed);
        }
        for (probe, hits) in &run.probes {
            let one = ProbeCount {
                runs: 1,
                hits: *hits,
                first_seed: seed,
            };
            self.probes
                .entry(*probe)
                .and_modify(|c| c.merge(&one))
                .or_insert(one);
        }
    }

    pub fn merge(&mut self, other: &Sweep) {
        self.runs += other.runs;
        self.failing_runs += other.failing_runs;
        self.pct = weakest(self.pct, other.pct);
        self.unsettled += other.unsettled;
        self.first_unsettled = match (self.first_unsettled, other.first_unsettled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.steps += other.steps;
        for (inv, (n, first)) in &other.violations {
            let e = self.violations.entry(*inv).or_insert((0, *first));
            e.0 += n;
            e.1 = e.1.min(*first);
        }
        for (probe, count) in &other.probes {
            self.probes
                .entry(*probe)
                .and_modify(|c| c.merge(count))
                .or_insert(*count);
        }
    }

    /// The probes among `expected` that never fired in this sweep: a clean result over
    /// it did not reach what it was written for.
    pub fn vacuous(&self, expected: &[Probe]) -> Vec<Probe> {
        expected
            .iter()
            .copied()
            .filter(|p| !self.probes.contains_key(p))
            .collect()
    }

    /// The first seed violating anything.
    pub fn first_failing_seed(&self) -> Option<u64> {
        self.violations.values().map(|(_, s)| *s).min()
    }
}

/// Most worker threads a sweep starts, whatever it is asked for.
pub const MAX_JOBS: usize = 256;

/// How to sweep.
#[derive(Clone, Copy)]
pub struct SweepOptions<'a> {
    pub seeds: SeedRange,
    /// Worker threads; capped at the number of seeds and at [`MAX_JOBS`].
    pub jobs: usize,
    /// Stop at the first violating seed: the result then covers exactly the seeds from
    /// the start up to that one, whatever `jobs` is.
    pub stop_on_first: bool,
    /// Checked between seeds: once set, the sweep ends with what it has.
    pub interrupt: Option<&'a AtomicBool>,
}

/// How a sweep ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepEnd {
    /// Every seed ran.
    Complete,
    /// Stopped at the first violating seed (`stop_on_first`).
    StoppedAtFailure,
    /// Interrupted: the result covers the seeds that had finished.
    Interrupted,
}

/// The threads a sweep of `seeds` uses for a request of `jobs`.
pub fn jobs_for(seeds: SeedRange, jobs: usize) -> usize {
    let n = usize::try_from(seeds.len()).unwrap_or(usize::MAX);
    jobs.clamp(1, MAX_JOBS).min(n.max(1))
}

/// Shared state of one sweep's workers.
struct Shared<'a> {
    opts: SweepOptions<'a>,
    next: AtomicU64,
    /// Lowest violating seed seen (`u64::MAX`: none).
    first_fail: AtomicU64,
    stop: AtomicBool,
    panic: Mutex<Option<RunPanic>>,
}

impl Shared<'_> {
    /// The next seed to run, or `None` when the range is done or the sweep stops. Seeds
    /// are handed out in increasing order and the counter never wraps.
    fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed)
            || self
                .opts
                .interrupt
                .is_some_and(|i| i.load(Ordering::Relaxed))
        {
            return None;
        }
        let end = self.opts.seeds.end;
        let seed = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                (s < end).then(|| s + 1)
            })
            .ok()?;
        (seed <= self.first_fail.load(Ordering::Relaxed)).then_some(seed)
    }
}

/// One worker: runs claimed seeds; under `stop_on_first` keeps each run apart so that
/// runs past the first failure can be left out.
fn worker(
    shared: &Shared<'_>,
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    on_run: &(dyn Fn(u64, &Judged) + Sync),
) -> Vec<(u64, RunSummary)> {
    let mut runs = Vec::new();
    while let Some(seed) = shared.claim() {
        let judged = match try_run_seed(design, scenario, mutations, seed) {
            Ok(judged) => judged,
            Err(p) => {
                shared.stop.store(true, Ordering::Relaxed);
                let mut slot = shared.panic.lock().unwrap_or_else(|e| e.into_inner());
                let lower = match slot.as_ref() {
                    None => true,
                    Some(q) => q.seed > p.seed,
                };
                if lower {
                    *slot = Some(p);
                }
                break;
            }
        };
        let summary = RunSummary::of(&judged);
        if shared.opts.stop_on_first && !summary.violated.is_empty() {
            shared.first_fail.fetch_min(seed, Ordering::Relaxed);
        }
        on_run(seed, &judged);
        runs.push((seed, summary));
    }
    runs
}

/// Sweep seeds on threads. Each run is single-threaded and independent, and the result
/// is a merge of per-seed results, so it does not depend on `jobs` (except where the
/// sweep was interrupted). `on_run` is called after each run, in no particular order.
pub fn sweep_seeds(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    opts: SweepOptions<'_>,
    on_run: &(dyn Fn(u64, &Judged) + Sync),
) -> Result<(Sweep, SweepEnd), RunPanic> {
    let shared = Shared {
        opts,
        next: AtomicU64::new(opts.seeds.start),
        first_fail: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        panic: Mutex::new(None),
    };
    let jobs = jobs_for(opts.seeds, opts.jobs);
    let work = || worker(&shared, design, scenario, mutations, on_run);
    let runs: Vec<(u64, RunSummary)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..jobs)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        let mut runs = work();
        for h in handles {
            runs.extend(h.join().unwrap_or_default());
        }
        runs
    });
    if let Some(p) = shared.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(p);
    }
    let first_fail = shared.first_fail.into_inner();
    let mut total = Sweep::default();
    for (seed, run) in runs.iter().filter(|(seed, _)| *seed <= first_fail) {
        total.add_summary(*seed, run);
    }
    let end = if first_fail != u64::MAX {
        SweepEnd::StoppedAtFailure
    } else if total.runs < opts.seeds.len() {
        SweepEnd::Interrupted
    } else {
        SweepEnd::Complete
    };
    Ok((total, end))
}

/// Sweep every seed on `jobs` threads. `on_run` is called after each run, in no
/// particular order; returning `false` stops the sweep early. A run that panics is
/// re-raised with a [`RunPanic`] payload that names its seed.
pub fn sweep(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seeds: SeedRange,
    jobs: usize,
    on_run: &(dyn Fn(u64, &Judged) -> bool + Sync),
) -> Sweep {
    let stop = AtomicBool::new(false);
    let opts = SweepOptions {
        seeds,
        jobs,
        stop_on_first: false,
        interrupt: Some(&stop),
    };
    let call = |seed: u64, judged: &Judged| {
        if !on_run(seed, judged) {
            stop.store(true, Ordering::Relaxed);
        }
    };
    match sweep_seeds(design, scenario, mutations, opts, &call) {
        Ok((sweep, _)) => sweep,
        Err(p) => std::panic::resume_unwind(Box::new(p)),
    }
}

/// The words that start a printed command: the program as it was invoked (set once by
/// the command line with [`set_program`]); `cargo run --release --` otherwise.
static PROGRAM: OnceLock<Vec<String>> = OnceLock::new();

/// Name the program in every printed reproduction command (first call wins).
pub fn set_program(words: Vec<String>) {
    let _ = PROGRAM.set(words);
}

/// A command line, shell-quoted: the program, then `args`. A `<placeholder>` for the
/// reader to fill in (such as `<this file>`) is left as written.
pub fn command_line(args: &[&str]) -> String {
    let default = ["cargo", "run", "--release", "--"]
        .map(String::from)
        .to_vec();
    let program = PROGRAM.get().unwrap_or(&default);
    let words: Vec<String> = program
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .map(|w| {
            let placeholder = w.len() > 2 && w.starts_with('<') && w.ends_with('>');
            if placeholder {
                w.to_string()
            } else {
                shell_words::quote(w).into_owned()
            }
        })
        .collect();
    words.join(" ")
}

/// The command that replays one run, shell-quoted.
pub fn replay_command(scenario_path: &str, design: &str, seed: u64) -> String {
    let seed = seed.to_string();
    command_line(&["replay", scenario_path, "--design", design, "--seed", &seed])
}
