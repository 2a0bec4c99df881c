//! The exhaustive strategy: a bounded depth-first search over every choice of a run.
//!
//! Each run of the search is driven by a choice prefix ([`Chooser::guided`]): the
//! prefix's answers, then option 0 of every later choice, with the number of options of
//! each choice kept. A run's alternatives (every other option of every choice past its
//! prefix) become prefixes still to run, deepest first, as loom and stateright explore a
//! bounded model. After every step past its prefix the world's state fingerprint
//! (`World::fingerprint`) is looked up: a state already reached at the same or a smaller
//! depth is not searched again (state matching: interleavings of independent steps that
//! meet in one state are searched once). Once a counterexample is found, runs are cut at
//! its length, so the one reported is the shortest (fewest choices) within the bound.
//!
//! What the bound is, the world's side: see `sim/src/world/exhaustive.rs` (no time
//! passing as a choice, a fault point at every step of the fault phase, at most
//! `max_crashes` crashes and `max_pauses` pauses, no network or broker faults).

use crate::checker::check;
use crate::designs::{Design, Mutation};
use crate::run::{build_world, Judged};
use crate::scenario::{Scenario, StrategyName};
use oversell_sim::{ChoiceLog, Chooser, Guided, Outcome};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the search may spend.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Runs (choice prefixes) at most; the search stops unfinished past it.
    pub max_runs: u64,
    /// Stop at the first counterexample instead of searching for the shortest.
    pub first: bool,
}

/// A violating run the search found.
pub struct Counterexample {
    pub choices: ChoiceLog,
    /// The run, judged.
    pub judged: Judged,
    /// Runs the search had made when it first found a violation (this one or a longer).
    pub runs_before_first: u64,
}

/// What the search found.
#[derive(Default)]
pub struct Search {
    /// Runs made: one per choice prefix.
    pub runs: u64,
    /// Runs that went to their end (and were judged).
    pub ended: u64,
    /// Runs cut at a state already searched (or at the counterexample's length).
    pub pruned: u64,
    /// Runs ended at a step whose every action the reduction had put to sleep.
    pub blocked: u64,
    /// Whether the partial-order reduction was on.
    pub reduced: bool,
    /// Runs that ended at a time or step bound (liveness not judged on them).
    pub unsettled: u64,
    /// Distinct state fingerprints reached.
    pub states: u64,
    /// Times a state was searched again: reached at a smaller depth, or with a sleep set
    /// not a superset of the one it was searched with.
    pub researched: u64,
    /// The longest run, in choices.
    pub deepest: u64,
    /// Whether every state could be fingerprinted (otherwise no state matching).
    pub hashed: bool,
    /// Whether the whole bounded tree was searched (not stopped by `max_runs` or at the
    /// first counterexample).
    pub complete: bool,
    pub counterexample: Option<Counterexample>,
}

/// The scenario as the search runs it: a fault budget needs a fault phase, which
/// defaults (as a swarm run's) to the last arrival and 500 ms.
pub fn scenario_for(scenario: &Scenario) -> Scenario {
    let mut s = scenario.clone();
    s.run.strategy = StrategyName::Exhaustive;
    if s.run.max_crashes + s.run.max_pauses > 0 {
        s.faults.phase_ms = crate::swarm::phase_of(scenario);
    }
    s
}

/// Search every run of `design` on `scenario` within its bound.
pub fn search(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    limits: Limits,
) -> Result<Search, crate::run::RunPanic> {
    let scenario = scenario_for(scenario);
    let schema = design.schema();
    let reduced = !scenario.run.no_reduction;
    let mut out = Search {
        hashed: true,
        complete: true,
        reduced,
        ..Search::default()
    };
    let mut seen: Seen = BTreeMap::new();
    let mut stack: Vec<Vec<u32>> = vec![Vec::new()];
    while let Some(prefix) = stack.pop() {
        if out.runs >= limits.max_runs {
            out.complete = false;
            break;
        }
        out.runs += 1;
        let best = out
            .counterexample
            .as_ref()
            .map(|c| c.choices.choices.len() as u64);
        let world = build_world(design, &scenario, mutations);
        let (guided, hashed) = run_prefix(world, &prefix, &mut seen, best, &mut out.researched)
            .map_err(|message| crate::run::RunPanic {
                design: design.name().to_string(),
                seed: None,
                message,
            })?;
        out.hashed &= hashed;
        let (choices, arities, stop) = match guided {
            Guided::Pruned {
                choices,
                arities,
                blocked,
            } => {
                if blocked {
                    out.blocked += 1;
                } else {
                    out.pruned += 1;
                }
                (choices, arities, false)
            }
            Guided::Ended { result, arities } => {
                let choices = result.choices.clone();
                let stop = take_ended(&mut out, *result, &schema, &scenario, best, limits);
                (choices, arities, stop)
            }
        };
        if stop {
            out.complete = false;
            break;
        }
        out.deepest = out.deepest.max(choices.choices.len() as u64);
        push_alternatives(&mut stack, &prefix, &choices.choices, &arities, reduced);
    }
    out.states = seen.len() as u64;
    Ok(out)
}

/// The states searched: fingerprint → the depth and the sleep set (sorted action keys)
/// of a search from it that covers every action not in that sleep set.
type Seen = BTreeMap<u64, (u64, Vec<u64>)>;

/// Whether a state reached at `depth` with sleep set `sleep` must be searched (again),
/// given what `seen` holds of it; records the search. Pruned only when searched before
/// at the same or a smaller depth with a sleep set included in this one: every action
/// this search would take was taken there, with at least as many choices left.
fn visit_state(seen: &mut Seen, fp: u64, depth: u64, sleep: &[u64]) -> bool {
    let Some((d, z)) = seen.get_mut(&fp) else {
        seen.insert(fp, (depth, sleep.to_vec()));
        return true;
    };
    let subset = z.iter().all(|k| sleep.binary_search(k).is_ok());
    if *d <= depth && subset {
        return false;
    }
    if depth < *d {
        // From here on, only this search's sleep set is known to be covered at `depth`.
        (*d, *z) = (depth, sleep.to_vec());
    } else {
        // Both searches together cover every action outside both sleep sets, at `depth`.
        z.retain(|k| sleep.binary_search(k).is_ok());
        *d = depth;
    }
    true
}

/// One run of the search, guided by `prefix`: cut where its state was searched before
/// (`visit_state`), or at the counterexample's length `best`. The run, and whether every
/// state on it could be fingerprinted; a panic's message if it panicked.
fn run_prefix(
    world: oversell_sim::World,
    prefix: &[u32],
    seen: &mut Seen,
    best: Option<u64>,
    researched: &mut u64,
) -> Result<(Guided, bool), String> {
    let mut hashed = true;
    let mut visit = |fp: Option<u64>, depth: u64, sleep: &[u64]| -> bool {
        if best.is_some_and(|b| depth >= b) {
            return false;
        }
        let Some(fp) = fp else {
            hashed = false;
            return true;
        };
        let known = seen.contains_key(&fp);
        let search = visit_state(seen, fp, depth, sleep);
        *researched += u64::from(known && search);
        search
    };
    let guided = catch_unwind(AssertUnwindSafe(|| {
        world.run_guided(Chooser::guided(prefix), &mut visit)
    }))
    .map_err(|p| crate::run::panic_message(p.as_ref()))?;
    Ok((guided, hashed))
}

/// Judges a run the search took to its end, keeping it as the counterexample when it
/// violates and is shorter than the one kept; true when the search stops at it.
fn take_ended(
    out: &mut Search,
    result: oversell_sim::RunResult,
    schema: &crate::designs::Schema,
    scenario: &Scenario,
    best: Option<u64>,
    limits: Limits,
) -> bool {
    out.ended += 1;
    let choices = result.choices.clone();
    let verdict = check(schema, &result, scenario.run.decision_bound_ms);
    let judged = Judged {
        seed: None,
        result,
        verdict,
        swarm: None,
    };
    if judged.result.outcome != Outcome::Quiescent {
        out.unsettled += 1;
    }
    let shorter = best.is_none_or(|b| (choices.choices.len() as u64) < b);
    if judged.counted().next().is_none() || !shorter {
        return false;
    }
    let runs_before_first = out
        .counterexample
        .as_ref()
        .map_or(out.runs, |c| c.runs_before_first);
    out.counterexample = Some(Counterexample {
        choices,
        judged,
        runs_before_first,
    });
    limits.first
}

/// Every other option of every choice past `prefix`, as prefixes to run; the deepest is
/// pushed last, so searched first. With the reduction, the options of one choice are
/// searched in order (option `v` after the subtrees of `0..v`), as its sleep sets assume;
/// without it, in the reverse order (the order of the search before the reduction).
fn push_alternatives(
    stack: &mut Vec<Vec<u32>>,
    prefix: &[u32],
    log: &[u32],
    arities: &[u32],
    in_order: bool,
) {
    assert_eq!(log.len(), arities.len(), "one arity per choice");
    assert!(
        log.len() >= prefix.len(),
        "a run makes its prefix's choices"
    );
    debug_assert_eq!(&log[..prefix.len()], prefix, "a run follows its prefix");
    for i in prefix.len()..log.len() {
        debug_assert_eq!(log[i], 0, "past its prefix a run takes option 0");
        let push = |v: u32, stack: &mut Vec<Vec<u32>>| {
            let mut next = log[..i].to_vec();
            next.push(v);
            stack.push(next);
        };
        if in_order {
            (1..arities[i]).rev().for_each(|v| push(v, stack));
        } else {
            (1..arities[i]).for_each(|v| push(v, stack));
        }
    }
}
