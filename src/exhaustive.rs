//! The exhaustive strategy: a bounded depth-first search over every choice of a run.
//!
//! Each run of the search is driven by a choice prefix ([`Chooser::guided`]): the
//! prefix's answers, then option 0 of every later choice, with the number of options of
//! each choice kept. A run's alternatives (every other option of every choice past its
//! prefix) become prefixes still to run, deepest first, as loom and stateright explore a
//! bounded model. A run does not re-execute its prefix: it resumes a copy of the world
//! taken before the step that makes its branching choice (`World::try_clone`, the
//! guided chooser redirected there, `Chooser::redirect`), the runs, states and verdicts
//! being those of re-running the prefix (`search_with`, `tests/exhaustive.rs`); a world
//! that cannot be copied (a user's processor without `Processor::clone_boxed`) re-runs
//! prefixes. Copies keep no trace: a run that ends is run again from its choices, with
//! its trace, to be judged.
//!
//! After every step past its prefix the world's state fingerprint
//! (`World::fingerprint`) is looked up (state matching: interleavings of independent
//! steps that meet in one state are searched once). The search has two phases. Up to
//! the first counterexample no run is cut by its length, so a state searched once is
//! searched in full whatever the depth it was reached at: it is not searched again when
//! reached shallower (only when reached with a sleep set that is not a superset of the
//! one it was searched with, `sim/src/world/por.rs`). A search that finds none has
//! proved its bound. One that finds a counterexample (and does not stop at the first)
//! starts again from the root for the shortest: runs cut at the best length so far, a
//! state searched again when reached at a smaller depth, so the one reported is the
//! shortest (fewest choices) within the bound when this second phase completes.
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
use std::rc::Rc;

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
    /// Whether runs resumed copies of the world taken where they branch off (otherwise
    /// each re-ran its prefix from the start; the figures are the same either way).
    pub resumed: bool,
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
    search_with(design, scenario, mutations, limits, true)
}

/// [`search`], resuming copies of the world where runs branch off when `copies` and the
/// world can be copied, otherwise re-running every prefix from the start (the same
/// runs, states and verdict; for comparing the two).
pub fn search_with(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    limits: Limits,
    copies: bool,
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
    let root = copies
        .then(|| root_snapshot(design, &scenario, mutations))
        .flatten();
    out.resumed = root.is_some();
    let ctx = Ctx {
        design,
        scenario: &scenario,
        mutations,
        schema: &schema,
        limits,
        reduced,
    };
    // To the first counterexample, a state is matched whatever its depth (nothing is
    // cut by length, so a state searched once is searched in full). A counterexample
    // found, the search starts again for the shortest: states matched with their depth,
    // runs cut at the best length so far.
    let first = search_phase(&ctx, &mut out, root.clone(), false)?;
    if first == Phase::Found && !limits.first {
        search_phase(&ctx, &mut out, root, true)?;
    }
    Ok(out)
}

/// What a search phase reads.
struct Ctx<'a> {
    design: &'a dyn Design,
    scenario: &'a Scenario,
    mutations: &'a [Mutation],
    schema: &'a crate::designs::Schema,
    limits: Limits,
    reduced: bool,
}

/// How a search phase ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Every run searched.
    Done,
    /// Stopped at `max_runs`.
    Limit,
    /// Stopped at the first counterexample (the first phase).
    Found,
}

/// One depth-first search from the root. `shortest`: states matched with their depth
/// and runs cut at the shortest counterexample's length; otherwise stopped at the first
/// counterexample, states matched whatever their depth.
fn search_phase(
    ctx: &Ctx<'_>,
    out: &mut Search,
    root: Option<Rc<Snap>>,
    shortest: bool,
) -> Result<Phase, crate::run::RunPanic> {
    let mut seen: Seen = BTreeMap::new();
    let mut stack: Vec<(Vec<u32>, Option<Rc<Snap>>)> = vec![(Vec::new(), root)];
    let mut phase = Phase::Done;
    while let Some((prefix, from)) = stack.pop() {
        if out.runs >= ctx.limits.max_runs {
            out.complete = false;
            phase = Phase::Limit;
            break;
        }
        out.runs += 1;
        let (choices, arities, found, snaps) =
            run_one(ctx, out, &mut seen, (&prefix, from.as_ref()), shortest)?;
        if found && !shortest {
            out.complete = false;
            phase = Phase::Found;
            break;
        }
        out.deepest = out.deepest.max(choices.choices.len() as u64);
        let alternatives = Alternatives {
            prefix: &prefix,
            log: &choices.choices,
            arities: &arities,
            in_order: ctx.reduced,
        };
        push_alternatives(&mut stack, alternatives, from, &snaps);
    }
    if shortest && phase == Phase::Done {
        out.complete = true;
    }
    out.states = out.states.max(seen.len() as u64);
    Ok(phase)
}

/// One run of a search phase, counted in `out`: its choices and their arities, whether
/// it is a new counterexample kept in `out`, and the snapshots it took.
fn run_one(
    ctx: &Ctx<'_>,
    out: &mut Search,
    seen: &mut Seen,
    (prefix, from): (&[u32], Option<&Rc<Snap>>),
    shortest: bool,
) -> Result<(ChoiceLog, Vec<u32>, bool, Snaps), crate::run::RunPanic> {
    let (design, scenario, mutations) = (ctx.design, ctx.scenario, ctx.mutations);
    let best = out
        .counterexample
        .as_ref()
        .map(|c| c.choices.choices.len() as u64);
    let start = match from {
        Some(snap) => Start::Resume(snap, prefix),
        None => Start::Fresh(Box::new(build_world(design, scenario, mutations)), prefix),
    };
    let (guided, hashed, snaps) =
        run_prefix(start, seen, best, shortest, out).map_err(|message| crate::run::RunPanic {
            design: design.name().to_string(),
            seed: None,
            message,
        })?;
    out.hashed &= hashed;
    let (choices, arities, found) = match guided {
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
            let result = match from {
                // A resumed run kept no trace: run its choices again to judge it.
                Some(_) => rerun(design, scenario, mutations, &choices)?,
                None => *result,
            };
            let found = take_ended(out, result, ctx.schema, scenario, best);
            (choices, arities, found)
        }
    };
    Ok((choices, arities, found, snaps))
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

/// A world between two steps, and the guided chooser that brought it there: where the
/// search resumes the runs that branch off at that step (`sim`'s `World::try_clone`).
struct Snap {
    world: oversell_sim::World,
    chooser: Chooser,
}

/// The snapshots a run took, by the number of choices made before the step each
/// precedes, in order.
type Snaps = Vec<(u64, Rc<Snap>)>;

/// The search's first world, without a trace, when it can be copied: then every run
/// resumes a copy taken at the step where it branches off instead of re-running its
/// prefix (the same runs, states and figures; a run that ends is run again from its
/// choices, with its trace, to be judged).
fn root_snapshot(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
) -> Option<Rc<Snap>> {
    let world = build_world(design, scenario, mutations).without_trace();
    world.try_clone()?;
    let chooser = Chooser::guided(&[]);
    Some(Rc::new(Snap { world, chooser }))
}

/// Where a run starts: a fresh world guided by its prefix, or a snapshot resumed with
/// its prefix (the snapshot's choices are the prefix's first ones).
enum Start<'a> {
    Fresh(Box<oversell_sim::World>, &'a [u32]),
    Resume(&'a Rc<Snap>, &'a [u32]),
}

/// A resumed run whose choices end: run again from the start, with its trace.
fn rerun(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    choices: &ChoiceLog,
) -> Result<oversell_sim::RunResult, crate::run::RunPanic> {
    let world = build_world(design, scenario, mutations);
    let result =
        catch_unwind(AssertUnwindSafe(|| world.run(Chooser::replay(choices)))).map_err(|p| {
            crate::run::RunPanic {
                design: design.name().to_string(),
                seed: None,
                message: crate::run::panic_message(p.as_ref()),
            }
        })?;
    assert_eq!(
        result.choices.choices, choices.choices,
        "a run again from its choices makes them again"
    );
    Ok(result)
}

/// One run of the search from `start`: cut where its state was searched before
/// (`visit_state`; with its depth when `by_depth`), or at the counterexample's length
/// `best`. The run, whether every
/// state on it could be fingerprinted, and the snapshots it took (a resumed run's own
/// first one included); a panic's message if it panicked.
fn run_prefix(
    start: Start<'_>,
    seen: &mut Seen,
    best: Option<u64>,
    by_depth: bool,
    out: &mut Search,
) -> Result<(Guided, bool, Snaps), String> {
    let mut hashed = true;
    let researched = &mut out.researched;
    let mut visit = |fp: Option<u64>, depth: u64, sleep: &[u64]| -> bool {
        if best.is_some_and(|b| depth >= b) {
            return false;
        }
        let Some(fp) = fp else {
            hashed = false;
            return true;
        };
        let known = seen.contains_key(&fp);
        // Without a length cut every depth is the same to the search.
        let depth = if by_depth { depth } else { 0 };
        let search = visit_state(seen, fp, depth, sleep);
        *researched += u64::from(known && search);
        search
    };
    let mut snaps = Snaps::new();
    let guided = catch_unwind(AssertUnwindSafe(|| match start {
        Start::Fresh(world, prefix) => (*world).run_guided(Chooser::guided(prefix), &mut visit),
        Start::Resume(snap, prefix) => {
            snaps.push((snap.chooser.index(), Rc::clone(snap)));
            let world = snap.world.try_clone().expect("a snapshot copies");
            let mut take = |w: &oversell_sim::World, c: &Chooser| {
                let world = w.try_clone().expect("a snapshot's world copies");
                let chooser = c.clone();
                snaps.push((c.index(), Rc::new(Snap { world, chooser })));
            };
            world.run_guided_with(snap.chooser.redirect(prefix), &mut visit, &mut take)
        }
    }))
    .map_err(|p| crate::run::panic_message(p.as_ref()))?;
    Ok((guided, hashed, snaps))
}

/// Judges a run the search took to its end, keeping it as the counterexample when it
/// violates and is shorter than the one kept; true when it is kept.
fn take_ended(
    out: &mut Search,
    result: oversell_sim::RunResult,
    schema: &crate::designs::Schema,
    scenario: &Scenario,
    best: Option<u64>,
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
    true
}

/// A run's choices, as `push_alternatives` reads them.
struct Alternatives<'a> {
    prefix: &'a [u32],
    log: &'a [u32],
    arities: &'a [u32],
    /// With the reduction: the options of one choice searched in order.
    in_order: bool,
}

/// Every other option of every choice past `prefix`, as prefixes to run, each with the
/// snapshot taken before the step that makes its choice (`None`: the run had none, it
/// re-runs from the start); the deepest is pushed last, so searched first. With the
/// reduction, the options of one choice are searched in order (option `v` after the
/// subtrees of `0..v`), as its sleep sets assume; without it, in the reverse order (the
/// order of the search before the reduction).
fn push_alternatives(
    stack: &mut Vec<(Vec<u32>, Option<Rc<Snap>>)>,
    run: Alternatives<'_>,
    from: Option<Rc<Snap>>,
    snaps: &Snaps,
) {
    let Alternatives {
        prefix,
        log,
        arities,
        in_order,
    } = run;
    assert_eq!(log.len(), arities.len(), "one arity per choice");
    assert!(
        log.len() >= prefix.len(),
        "a run makes its prefix's choices"
    );
    assert_eq!(
        from.is_some(),
        !snaps.is_empty(),
        "a resumed run keeps its start"
    );
    debug_assert_eq!(&log[..prefix.len()], prefix, "a run follows its prefix");
    for i in prefix.len()..log.len() {
        debug_assert_eq!(log[i], 0, "past its prefix a run takes option 0");
        // The last snapshot taken before choice `i`.
        let at = snaps.partition_point(|(k, _)| *k <= i as u64);
        let snap = at.checked_sub(1).map(|j| Rc::clone(&snaps[j].1));
        assert!(
            from.is_none() || snap.is_some(),
            "a resumed run's choices follow its start"
        );
        let push = |v: u32, stack: &mut Vec<(Vec<u32>, Option<Rc<Snap>>)>| {
            let mut next = log[..i].to_vec();
            next.push(v);
            stack.push((next, snap.clone()));
        };
        if in_order {
            (1..arities[i]).rev().for_each(|v| push(v, stack));
        } else {
            (1..arities[i]).for_each(|v| push(v, stack));
        }
    }
}
