//! Shrinking a failing run: cut a scenario down, while the same invariant still fails,
//! to the smallest story that reproduces it (what `oversell shrink` does).
//!
//! # How
//!
//! Greedy delta debugging to a fixpoint. Each pass tries these reductions, in this
//! order, on the current scenario; a reduction is kept as soon as one run of it violates
//! the target invariant, and the pass goes on from the reduced scenario:
//!
//! 1. drop scheduled faults, one at a time;
//! 2. random faults: end the fault phase (`phase_ms = 0`), zero each rate, halve the phase;
//! 3. drop products, with all their orders and restocks: first every product nobody
//!    orders or restocks, then ddmin style (halves first, … then one at a time);
//! 4. drop orders, ddmin style: halves first, then quarters, … then one at a time;
//! 5. drop restocks, the same way;
//! 6. fewer instances (1, then one fewer);
//! 7. fewer partitions (1, then one fewer);
//! 8. lower quantities: stock (0, half, one less), order and restock quantities (1, half,
//!    one less);
//! 9. earlier arrivals: everything at the first arrival time, every time halved, then each
//!    arrival pulled to its predecessor's time or halfway there;
//! 10. lower `run.max_time_ms`: bisect between the end time of the failing run and the
//!     bound (from half the bound when the run ran into it).
//!
//! A liveness failure (`eventual-decision`) only counts when its run went quiet or ran past
//! every order's deadline: a run cut short by a lowered time bound fails that invariant in
//! the checker's eyes too, but for the wrong reason.
//!
//! Passes repeat until one keeps nothing, or the run budget ([`Options::max_runs`],
//! 2,000 by default) is spent.
//!
//! # Seeds
//!
//! A reduction changes the schedule a seed produces, so the failure may survive only
//! under another seed. A candidate is therefore run with the current seed first, then the
//! seed the user gave, then each of [`Options::extra_seeds`] (0..8 by default), and kept
//! with the first seed that fails; that seed is the one kept from then on. Keeping the
//! user's seed is thus preferred, but not required.
//!
//! The result names itself `<name>-shrunk`, runs its one seed (`run.seeds = seed..seed+1`)
//! and expects the design to violate what that run violates; [`to_toml`] writes it as a
//! scenario file with a header that tells its story and the command that replays it.
//!
//! Every reduction also keeps the scenario valid: orders, restocks and payment outcomes of
//! removed products or orders go too, and scheduled faults of instances that no longer
//! exist are dropped. The result is deterministic: same inputs, same output.

mod file;
mod passes;

use crate::checker::Invariant;
use crate::designs::{Design, Mutation};
use crate::run::run_seed;
use crate::scenario::{Expectation, Scenario, SeedRange};
pub use file::{scenario_toml, to_toml, to_toml_at};
use oversell_sim::{Millis, Outcome};
use passes::Shrinker;
use std::collections::{BTreeMap, BTreeSet};

/// Bounds and seeds of a shrink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// At most this many runs in all (the first run of the given seed included).
    pub max_runs: u64,
    /// Seeds tried after the current and the given seed, when they do not fail.
    pub extra_seeds: Vec<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_runs: 2_000,
            extra_seeds: (0..8).collect(),
        }
    }
}

/// A shrunk failure: the smallest scenario found, and the seed that makes it fail.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The reduced scenario, with `run.seeds = seed..seed+1` and `expect` set to the
    /// invariants its run violates under the design (the target among them), so that
    /// `oversell check` passes on it; without `expect` when shrunk with mutations, as
    /// `check` runs designs without them.
    pub scenario: Scenario,
    pub seed: u64,
    /// The seed the shrink started from.
    pub original_seed: u64,
    /// The invariant that still fails.
    pub invariant: Invariant,
    /// Everything the final run violates (`invariant` among them).
    pub violated: BTreeSet<Invariant>,
    pub design: String,
    pub mutations: Vec<Mutation>,
    /// Runs taken, the first one included.
    pub runs: u64,
    /// Reductions kept.
    pub reductions: u64,
    /// The run budget ran out before a fixpoint was reached.
    pub budget_exhausted: bool,
    pub steps_before: u64,
    pub steps_after: u64,
    pub end_time_before: Millis,
    pub end_time_after: Millis,
    pub orders_before: usize,
    pub orders_after: usize,
    pub products_before: usize,
    pub products_after: usize,
    pub restocks_before: usize,
    pub restocks_after: usize,
    pub faults_before: usize,
    pub faults_after: usize,
}

impl Shrunk {
    /// One line per measure: before → after.
    pub fn summary(&self) -> String {
        format!(
            "{} violates {} with seed {} (was seed {})\n\
             orders    {} -> {}\nproducts  {} -> {}\nrestocks  {} -> {}\n\
             faults    {} -> {} scheduled\nsteps     {} -> {}\nend time  {} -> {} ms\n\
             {} runs, {} reductions kept{}",
            self.design,
            self.invariant.name(),
            self.seed,
            self.original_seed,
            self.orders_before,
            self.orders_after,
            self.products_before,
            self.products_after,
            self.restocks_before,
            self.restocks_after,
            self.faults_before,
            self.faults_after,
            self.steps_before,
            self.steps_after,
            self.end_time_before,
            self.end_time_after,
            self.runs,
            self.reductions,
            if self.budget_exhausted {
                " (run budget spent before a fixpoint)"
            } else {
                ""
            }
        )
    }
}

/// Shrink the run of `design` on `scenario` with `seed`, keeping `target` (or, if `None`,
/// the first invariant the run violates) violated, with the default [`Options`].
///
/// Errs if the run violates nothing, or does not violate `target`.
pub fn shrink(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seed: u64,
    target: Option<Invariant>,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, String> {
    shrink_with(
        design,
        scenario,
        mutations,
        seed,
        target,
        &Options::default(),
        progress,
    )
}

/// [`shrink`] with explicit bounds and seeds.
pub fn shrink_with(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seed: u64,
    target: Option<Invariant>,
    options: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, String> {
    let first = run_seed(design, scenario, mutations, seed);
    let violated = first.verdict.violated();
    let invariant = target_invariant(design, scenario, seed, target, &violated)?;
    progress(&format!(
        "seed {seed} violates {} ({} orders, {} products, {} steps); shrinking",
        invariant.name(),
        scenario.orders.len(),
        scenario.products.len(),
        first.result.steps
    ));
    let mut s = Shrinker {
        design,
        mutations,
        invariant,
        original_seed: seed,
        options,
        current: scenario.clone(),
        seed,
        end_time: first.result.end_time,
        steps: first.result.steps,
        quiescent: first.result.outcome == Outcome::Quiescent,
        violated,
        runs: 1,
        reductions: 0,
        exhausted: false,
        next_heartbeat: 100,
        rejected: BTreeSet::new(),
        progress,
    };
    to_fixpoint(&mut s);
    let out = shrunk_scenario(&s, scenario, seed);
    Ok(Shrunk {
        seed: s.seed,
        original_seed: seed,
        invariant,
        violated: s.violated.clone(),
        design: design.name().to_string(),
        mutations: mutations.to_vec(),
        runs: s.runs,
        reductions: s.reductions,
        budget_exhausted: s.exhausted,
        steps_before: first.result.steps,
        steps_after: s.steps,
        end_time_before: first.result.end_time,
        end_time_after: s.end_time,
        orders_before: scenario.orders.len(),
        orders_after: out.orders.len(),
        products_before: scenario.products.len(),
        products_after: out.products.len(),
        restocks_before: scenario.restocks.len(),
        restocks_after: out.restocks.len(),
        faults_before: scenario.faults.schedule.len(),
        faults_after: out.faults.schedule.len(),
        scenario: out,
    })
}

/// The invariant to keep failing: `target`, or the first one the seed violates.
fn target_invariant(
    design: &dyn Design,
    scenario: &Scenario,
    seed: u64,
    target: Option<Invariant>,
    violated: &BTreeSet<Invariant>,
) -> Result<Invariant, String> {
    match target {
        None => violated.iter().next().copied().ok_or_else(|| {
            format!(
                "seed {seed} of design {} on scenario {:?} violates no invariant: nothing to shrink",
                design.name(),
                scenario.name
            )
        }),
        Some(t) if violated.contains(&t) => Ok(t),
        Some(t) => {
            let found = if violated.is_empty() {
                "nothing".to_string()
            } else {
                violated.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            };
            Err(format!(
                "seed {seed} of design {} on scenario {:?} does not violate {} (it violates {found}): nothing to shrink",
                design.name(),
                scenario.name,
                t.name()
            ))
        }
    }
}

/// Run passes until one keeps nothing or the budget is spent.
fn to_fixpoint(s: &mut Shrinker<'_>) {
    let mut pass = 0;
    loop {
        pass += 1;
        let before = s.reductions;
        s.pass();
        (s.progress)(&format!(
            "pass {pass}: {} reductions kept, {} runs so far",
            s.reductions - before,
            s.runs
        ));
        if s.reductions == before || s.exhausted {
            break;
        }
    }
}

/// The shrinker's current scenario, named and described as the shrunk story, running its
/// one seed and expecting what that seed violates.
fn shrunk_scenario(s: &Shrinker<'_>, scenario: &Scenario, seed: u64) -> Scenario {
    let design = s.design;
    let mut out = s.current.clone();
    out.name = format!("{}-shrunk", scenario.name);
    out.description = format!(
        "Shrunk by `oversell shrink` from scenario {:?} (design {}, seed {}): the smallest story found \
         that still violates {}.",
        scenario.name,
        design.name(),
        seed,
        s.invariant.name()
    );
    out.run.seeds = SeedRange {
        start: s.seed,
        end: s.seed + 1,
    };
    // `check` runs designs without mutations, so a mutant's failure is no expectation.
    out.expect = if s.mutations.is_empty() {
        BTreeMap::from([(
            design.name().to_string(),
            Expectation {
                violates: s.violated.iter().map(|i| i.name().to_string()).collect(),
                hazards: scenario
                    .expect
                    .get(design.name())
                    .map(|e| e.hazards.clone())
                    .unwrap_or_default(),
            },
        )])
    } else {
        BTreeMap::new()
    };
    // The outcomes were promised for the original story; the shrunk one is another story
    // (orders and products gone, times moved), so it promises none.
    out.outcomes = BTreeMap::new();
    out
}
