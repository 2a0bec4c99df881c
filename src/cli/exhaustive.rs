//! `explore --strategy exhaustive`: the bounded search, its bound spelled out, and either
//! the proof for that bound or the shortest counterexample with the command replaying it.
// The search's own duration, in wall time: the command's output, never a run's input.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::args::ExploreArgs;
use super::out::{self, say, Shown};
use super::{designs, Error, Exit, OutFile, Registry};
use crate::exhaustive::{search_with, Limits, Search};
use crate::scenario::Scenario;
use std::time::Instant;

/// Search every design `a` names on `scenario` (already set to the exhaustive strategy).
pub(super) fn explore(
    registry: &Registry,
    a: &ExploreArgs,
    scenario: &Scenario,
) -> Result<Exit, Error> {
    let designs = designs(registry, &a.design.design)?;
    let file = OutFile::open_opt(a.counterexample.as_deref())?;
    let searched = crate::exhaustive::scenario_for(scenario);
    say!(
        "exhaustive search · scenario {} ({})",
        Shown(&scenario.name),
        out::path(&a.scenario)
    );
    say!("  bound: {}", bound_words(&searched));
    let limits = Limits {
        max_runs: a.max_runs,
        first: a.stop_on_first,
    };
    let mut exit = Exit::Holds;
    let mut written = None;
    for d in designs {
        let start = Instant::now();
        let copies = !a.rerun_prefixes;
        let found =
            search_with(d, scenario, &a.mutations.mutations, limits, copies).map_err(|panic| {
                Error::Panicked {
                    panic,
                    replay: "(the exhaustive search; rerun it)".into(),
                }
            })?;
        let secs = start.elapsed().as_secs_f64();
        exit = exit.and(print_search(d.name(), &found, secs));
        if let Some(c) = &found.counterexample {
            let text = c.choices.encode();
            match &file {
                Some(f) if written.is_none() => written = Some((out::path(&f.path), text)),
                _ => say!("  choices: {text}"),
            }
            let path = a
                .counterexample
                .as_deref()
                .map_or("FILE".into(), |p| p.display().to_string());
            let mut args = vec![
                "replay",
                a.scenario.to_str().unwrap_or("SCENARIO"),
                "--design",
                d.name(),
                "--choices",
                &path,
            ];
            let flags = a.mutations.flags();
            args.extend(flags.iter().map(String::as_str));
            let strategy = ["--strategy", "exhaustive"];
            if a.mutations.strategy.is_none() {
                args.extend(strategy);
            }
            say!("  replay: {}", Shown(&crate::run::command_line(&args)));
        }
    }
    if let (Some(f), Some((path, text))) = (file, written) {
        f.write(&text)?;
        say!("counterexample choice log written to {path}");
    }
    Ok(exit)
}

/// The bound a search covers, in words: what is branched on and what is fixed.
pub(super) fn bound_words(s: &Scenario) -> String {
    let r = &s.run;
    let f = &s.faults.rates;
    let orders = match r.max_deviations {
        None => "every order of deliveries, client steps and marker writes".to_string(),
        Some(k) => format!(
            "every order of deliveries, client steps and marker writes with at most {k} \
             deviation(s) from the default schedule (the first option of every choice: the \
             oldest due message delivered first, else the first ready client of the first \
             instance steps, else the first marker is written), searched level by level from \
             0 deviations, every fault placement first with the default schedule"
        ),
    };
    let kinds: Vec<&str> = [(f.delay > 0, "delayed"), (f.duplicate > 0, "duplicated")]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect();
    let net = if r.max_net_faults == 0 || kinds.is_empty() {
        "no drop, duplicate, delay or broker fault".to_string()
    } else {
        format!(
            "at most {} request(s) {} (a delay of {} ms) at any delivery to the broker before \
             {} ms; no drop or broker fault",
            r.max_net_faults,
            kinds.join(" or "),
            f.delay_for.1,
            s.faults.phase_ms
        )
    };
    format!(
        "{orders}; at most {} crash(es) \
         (restart after {} ms) and {} pause(s) (of {} ms) of service instances, at any \
         step before {} ms; {net}; time passes only \
         when nothing else can happen (processing takes no time: timeouts, heartbeats \
         and punctuations fire at their deadlines only); runs up to {} ms of simulated time; {}",
        r.max_crashes,
        f.restart_after.0,
        r.max_pauses,
        f.pause_for.1,
        s.faults.phase_ms,
        r.max_time_ms,
        if r.max_net_faults > 0 {
            "no reduction (a delivery's network fault is a choice inside the action, which \
             the sleep sets do not tell apart)"
        } else if r.max_deviations.is_some() {
            "no reduction (a deviation bound counts from the first option of every choice, \
             which sleep sets and moved fault points would change)"
        } else if r.no_reduction {
            "no reduction (every interleaving of independent actions)"
        } else {
            "partial-order reduction (sleep sets over independent actions; a fault only \
             before an action that depends on it or before time passes)"
        }
    )
}

fn print_search(name: &str, s: &Search, secs: f64) -> Exit {
    say!(
        "{name:<12} {} runs ({} to their end, {} cut at a state already searched{}{}), {} distinct states, deepest {} choices, {secs:.2} s",
        s.runs,
        s.ended,
        s.pruned,
        if s.counterexample.is_some() { " or past the counterexample's length" } else { "" },
        if s.reduced { format!(", {} blocked by the reduction", s.blocked) } else { String::new() },
        s.states,
        s.deepest
    );
    if s.researched > 0 {
        say!(
            "  {} times a state was searched again (reached shallower, or with fewer actions asleep)",
            s.researched
        );
    }
    if !s.hashed {
        say!("  (a client without a state fingerprint: no state matching)");
    }
    if let Some(c) = &s.counterexample {
        let names: Vec<&str> = c.judged.violated().iter().map(|i| i.name()).collect();
        if let Some(k) = s.max_deviations {
            let level = s.deviations_searched.map_or(0, |d| d + 1);
            say!("  first found among the runs with at most {level} of {k} deviation(s)");
        }
        let which = if s.complete {
            "shortest counterexample"
        } else {
            "counterexample (the search stopped before covering its bound: a shorter one may exist)"
        };
        say!(
            "  REFUTED: {} — {which}: {} choices (first violation after {} runs)",
            names.join(", "),
            c.choices.choices.len(),
            c.runs_before_first
        );
        for v in c.judged.counted() {
            say!(
                "  ✗ {} at {}ms: {}",
                v.invariant.name(),
                v.time,
                out::escape(&v.explanation)
            );
        }
        return Exit::Violated;
    }
    if !s.complete {
        say!("  NOT PROVED: the search stopped at --max-runs before covering its bound");
        return Exit::Unsettled;
    }
    if s.unsettled > 0 {
        say!(
            "  no violation, but {} runs ended at the time bound: liveness not judged on them",
            s.unsettled
        );
        return Exit::Unsettled;
    }
    if let Some(k) = s.max_deviations {
        say!(
            "  PROVED for this bound (at most {k} deviation(s) from the default schedule): every run settles and every invariant holds"
        );
        return Exit::Holds;
    }
    say!("  PROVED for this bound: every run settles and every invariant holds");
    Exit::Holds
}
