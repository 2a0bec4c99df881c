//! Running designs on scenarios: one seed, a replayed choice log, a sweep of seeds.

use crate::checker::{check, Invariant, Verdict};
use crate::designs::{Design, Mutation};
use crate::scenario::{Scenario, SeedRange};
use oversell_sim::{ChoiceLog, Chooser, RunResult};
use std::collections::BTreeMap;

/// One judged run.
pub struct Judged {
    pub seed: Option<u64>,
    pub result: RunResult,
    pub verdict: Verdict,
}

/// Run `design` on `scenario` with `seed`, then judge the recorded run.
pub fn run_seed(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seed: u64,
) -> Judged {
    let result = design.build(scenario, mutations).run(Chooser::seeded(seed));
    let verdict = check(&design.schema(), &result, scenario.run.decision_bound_ms);
    Judged {
        seed: Some(seed),
        result,
        verdict,
    }
}

/// Replay a recorded choice log exactly (no seed needed).
pub fn run_log(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    log: &ChoiceLog,
) -> Judged {
    let result = design.build(scenario, mutations).run(Chooser::replay(log));
    let verdict = check(&design.schema(), &result, scenario.run.decision_bound_ms);
    Judged {
        seed: None,
        result,
        verdict,
    }
}

/// What a sweep over seeds found, for one design.
#[derive(Clone, Debug, Default, serde::Serialize)]
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
}

impl Sweep {
    pub fn add(&mut self, seed: u64, judged: &Judged) {
        self.runs += 1;
        self.steps += judged.result.steps;
        if judged.result.outcome != oversell_sim::Outcome::Quiescent {
            self.unsettled += 1;
            self.first_unsettled = Some(self.first_unsettled.map_or(seed, |s| s.min(seed)));
        }
        let violated = judged.verdict.violated();
        if !violated.is_empty() {
            self.failing_runs += 1;
        }
        for inv in violated {
            let e = self.violations.entry(inv).or_insert((0, seed));
            e.0 += 1;
            e.1 = e.1.min(seed);
        }
    }

    pub fn merge(&mut self, other: &Sweep) {
        self.runs += other.runs;
        self.failing_runs += other.failing_runs;
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
    }

    /// The first seed violating anything.
    pub fn first_failing_seed(&self) -> Option<u64> {
        self.violations.values().map(|(_, s)| *s).min()
    }
}

/// Sweep seeds on `jobs` threads (each run is single-threaded and independent, so the
/// result does not depend on `jobs`). `on_run` is called after each run, in no
/// particular order; returning `false` stops the sweep early.
pub fn sweep(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seeds: SeedRange,
    jobs: usize,
    on_run: &(dyn Fn(u64, &Judged) -> bool + Sync),
) -> Sweep {
    let jobs = jobs.max(1);
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let partials: Vec<Sweep> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut sweep = Sweep::default();
                    loop {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if seed >= seeds.end {
                            break;
                        }
                        let judged = run_seed(design, scenario, mutations, seed);
                        sweep.add(seed, &judged);
                        if !on_run(seed, &judged) {
                            stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    sweep
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sweep worker"))
            .collect()
    });
    let mut total = Sweep::default();
    for p in &partials {
        total.merge(p);
    }
    total
}

/// The command that replays one run.
pub fn replay_command(scenario_path: &str, design: &str, seed: u64) -> String {
    format!("cargo run --release -- replay {scenario_path} --design {design} --seed {seed}")
}
