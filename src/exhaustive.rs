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
//! **A deviation bound** (`[run] max_deviations`, `--max-deviations K`; delay bounding,
//! as CHESS's iterative context bounding, Musuvathi and Qadeer, PLDI 2007, and Emmi,
//! Qadeer and Rakamarić, POPL 2011): a run's deviations are its choices that are not
//! fault points (`Chooser::choose_fault`) and take another option than the first. The
//! first phase searches level by level, 0 to K: level `k` is every run with at most `k`
//! deviations, every fault placement within the fault budget included, so level 0 is
//! each fault placement with the default schedule. No alternative past the level's bound
//! is pushed (`push_alternatives`). A proof holds for the bound it prints: every run
//! with at most K deviations. Soundness with the new order:
//!
//! - state matching: a state is recorded with the deviations its search had left; it
//!   prunes a later visit only with as many left or more (`visit_state`). What a visit
//!   may search is a function of the state and the deviations left only if the first
//!   option of every choice is: the order of the actions follows message ids, not in
//!   the state, so under a bound the fingerprint keeps the messages in flight in their
//!   order (`Strategy::Exhaustive::ordered`, `sim/src/world/exhaustive.rs`), a finer
//!   state. The levels share the record: a state searched at level `k` with `r` left
//!   is searched again at level `k + 1`, reached with `r + 1`;
//! - sleep sets are off (and so are fault points moved to an instance's next own
//!   action): they prune a run because an equivalent one (independent actions swapped)
//!   was searched, but the equivalent run may have more deviations than the bound allows
//!   and never be searched (Coons, Musuvathi and McKinley, *Bounded partial-order
//!   reduction*, OOPSLA 2013). `RunSpec::reduced` is false under a bound, for the search
//!   and for the replay of its choice log alike.
//!
//! Without a bound the search is the one above, in its old order: a proof there covers
//! every schedule, which is what the question's proofs claim.
//!
//! What the bound is, the world's side: see `sim/src/world/exhaustive.rs` (no time
//! passing as a choice, a fault point at every step of the fault phase, at most
//! `max_crashes` crashes and `max_pauses` pauses, at most `max_net_faults` requests
//! delayed or duplicated where the fault class has those rates, no drop and no broker
//! fault).

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
    /// The bound on deviations from the default schedule (`None`: every schedule).
    pub max_deviations: Option<u32>,
    /// Under a deviation bound: the largest number of deviations whose every run the
    /// first phase searched (`None`: not even 0).
    pub deviations_searched: Option<u32>,
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
    if s.run.max_crashes + s.run.max_pauses + s.run.max_net_faults > 0 {
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
    let reduced = scenario.run.reduced();
    let max_deviations = scenario.run.max_deviations;
    let mut out = Search {
        hashed: true,
        complete: true,
        reduced,
        max_deviations,
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
    // runs cut at the best length so far. Under a deviation bound K, the first phase
    // goes level by level, 0 to K deviations (each level the whole tree within it, its
    // states matched with the deviations they have left), and the shortest is searched
    // within K.
    let mut seen = Seen::new();
    let mut first = Phase::Done;
    for level in levels(max_deviations) {
        first = search_phase(&ctx, &mut out, (root.clone(), &mut seen), (false, level))?;
        if first != Phase::Done {
            break;
        }
        out.deviations_searched = level;
    }
    if first == Phase::Found && !limits.first {
        let mut seen = Seen::new();
        search_phase(&ctx, &mut out, (root, &mut seen), (true, max_deviations))?;
    }
    Ok(out)
}

/// The deviation bounds the first phase searches in turn: none (every schedule) without
/// a bound, 0 to K under the bound K.
fn levels(max_deviations: Option<u32>) -> Vec<Option<u32>> {
    match max_deviations {
        None => vec![None],
        Some(k) => (0..=k).map(Some).collect(),
    }
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

/// One depth-first search from the root, over the runs with at most `level` deviations
/// from the default schedule (`None`: every run). `shortest`: states matched with their
/// depth and runs cut at the shortest counterexample's length; otherwise stopped at the
/// first counterexample, states matched whatever their depth.
fn search_phase(
    ctx: &Ctx<'_>,
    out: &mut Search,
    (root, seen): (Option<Rc<Snap>>, &mut Seen),
    (shortest, level): (bool, Option<u32>),
) -> Result<Phase, crate::run::RunPanic> {
    let mut stack: Vec<(Vec<u32>, Option<Rc<Snap>>)> = vec![(Vec::new(), root)];
    let mut phase = Phase::Done;
    while let Some((prefix, from)) = stack.pop() {
        if out.runs >= ctx.limits.max_runs {
            out.complete = false;
            phase = Phase::Limit;
            break;
        }
        out.runs += 1;
        let (choices, kinds, found, snaps) =
            run_one(ctx, out, seen, (&prefix, from.as_ref()), (shortest, level))?;
        if found && !shortest {
            out.complete = false;
            phase = Phase::Found;
            break;
        }
        out.deepest = out.deepest.max(choices.choices.len() as u64);
        let alternatives = Alternatives {
            prefix: &prefix,
            log: &choices.choices,
            arities: &kinds.0,
            faults: &kinds.1,
            level,
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

/// A run's choices' arities, and whether each was a fault point.
type Kinds = (Vec<u32>, Vec<bool>);

/// One run of a search phase, counted in `out`: its choices, their arities and kinds,
/// whether it is a new counterexample kept in `out`, and the snapshots it took.
fn run_one(
    ctx: &Ctx<'_>,
    out: &mut Search,
    seen: &mut Seen,
    (prefix, from): (&[u32], Option<&Rc<Snap>>),
    (shortest, level): (bool, Option<u32>),
) -> Result<(ChoiceLog, Kinds, bool, Snaps), crate::run::RunPanic> {
    let (design, scenario, mutations) = (ctx.design, ctx.scenario, ctx.mutations);
    let best = out
        .counterexample
        .as_ref()
        .map(|c| c.choices.choices.len() as u64);
    let start = match from {
        Some(snap) => Start::Resume(snap, prefix),
        None => Start::Fresh(Box::new(build_world(design, scenario, mutations)), prefix),
    };
    let cut = Cut {
        best,
        by_depth: shortest,
        level,
    };
    let (guided, hashed, snaps) =
        run_prefix(start, seen, cut, out).map_err(|message| crate::run::RunPanic {
            design: design.name().to_string(),
            seed: None,
            message,
        })?;
    out.hashed &= hashed;
    let (choices, arities, found) = match guided {
        Guided::Pruned {
            choices,
            arities,
            faults,
            blocked,
        } => {
            if blocked {
                out.blocked += 1;
            } else {
                out.pruned += 1;
            }
            (choices, (arities, faults), false)
        }
        Guided::Ended {
            result,
            arities,
            faults,
        } => {
            let choices = result.choices.clone();
            let result = match from {
                // A resumed run kept no trace: run its choices again to judge it.
                Some(_) => rerun(design, scenario, mutations, &choices)?,
                None => *result,
            };
            let found = take_ended(out, result, ctx.schema, scenario, best);
            (choices, (arities, faults), found)
        }
    };
    Ok((choices, arities, found, snaps))
}

/// A search from a state: the depth it was reached at, the deviations it had left (under
/// a deviation bound; otherwise `u32::MAX`), and its sleep set (sorted action keys). It
/// covers every run from the state within that many choices and deviations that starts
/// with an action not in the sleep set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Covered {
    depth: u64,
    left: u32,
    sleep: Vec<u64>,
}

/// The states searched: fingerprint → what the searches from it cover.
type Seen = BTreeMap<u64, Covered>;

/// Whether a state reached as `now` says must be searched (again), given what `seen`
/// holds of it; records the search. Pruned only when searched before at the same or a
/// smaller depth, with as many deviations left or more, and a sleep set included in
/// this one: every run this search would make was made there (with at least as many
/// choices and deviations left).
fn visit_state(seen: &mut Seen, fp: u64, now: Covered) -> bool {
    let Some(was) = seen.get_mut(&fp) else {
        seen.insert(fp, now);
        return true;
    };
    let subset = was.sleep.iter().all(|k| now.sleep.binary_search(k).is_ok());
    if was.depth <= now.depth && was.left >= now.left && subset {
        return false;
    }
    let same = now.depth == was.depth && now.left == was.left;
    if now.depth <= was.depth && now.left >= was.left && !same {
        // This search has more choices or deviations left than the old one: from here
        // on, only its sleep set is known to be covered with them.
        *was = now;
    } else {
        // Both searches together cover every action outside both sleep sets, with the
        // fewer choices and deviations left of the two.
        was.sleep.retain(|k| now.sleep.binary_search(k).is_ok());
        was.depth = was.depth.max(now.depth);
        was.left = was.left.min(now.left);
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

/// Where a run of the search is cut, besides a state searched before.
#[derive(Clone, Copy, Debug)]
struct Cut {
    /// The counterexample's length.
    best: Option<u64>,
    /// States matched with their depth.
    by_depth: bool,
    /// The deviation bound of this level.
    level: Option<u32>,
}

/// One run of the search from `start`: cut where its state was searched before
/// (`visit_state`; with its depth when `by_depth`, with the deviations it has left under
/// a bound), or at the counterexample's length `best`. The run, whether every
/// state on it could be fingerprinted, and the snapshots it took (a resumed run's own
/// first one included); a panic's message if it panicked.
fn run_prefix(
    start: Start<'_>,
    seen: &mut Seen,
    cut: Cut,
    out: &mut Search,
) -> Result<(Guided, bool, Snaps), String> {
    let mut hashed = true;
    let researched = &mut out.researched;
    let mut visit = |fp: Option<u64>, c: &Chooser, sleep: &[u64]| -> bool {
        let depth = c.index();
        if cut.best.is_some_and(|b| depth >= b) {
            return false;
        }
        let Some(fp) = fp else {
            hashed = false;
            return true;
        };
        let known = seen.contains_key(&fp);
        let left = cut.level.map_or(u32::MAX, |l| {
            l.checked_sub(c.deviations())
                .expect("a run within its deviation bound")
        });
        let now = Covered {
            // Without a length cut every depth is the same to the search.
            depth: if cut.by_depth { depth } else { 0 },
            left,
            sleep: sleep.to_vec(),
        };
        let search = visit_state(seen, fp, now);
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
    /// Whether each choice was a fault point.
    faults: &'a [bool],
    /// The deviation bound: no alternative past it is pushed.
    level: Option<u32>,
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
        faults,
        level,
        in_order,
    } = run;
    assert_eq!(log.len(), arities.len(), "one arity per choice");
    assert_eq!(log.len(), faults.len(), "one kind per choice");
    // Deviations of the prefix (past it, every choice takes option 0).
    let deviations = (prefix.iter().zip(faults))
        .filter(|(v, fault)| **v != 0 && !**fault)
        .count() as u32;
    assert!(
        level.is_none_or(|l| deviations <= l),
        "a prefix within its bound"
    );
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
        if !faults[i] && level.is_some_and(|l| deviations >= l) {
            // Another option here would be a deviation past the bound.
            continue;
        }
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
