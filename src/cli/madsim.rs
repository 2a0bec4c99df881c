//! `run`, `explore` and `replay` with `--driver madsim`.

use super::args::{ExploreArgs, MutationArg, ReplayArgs};
use super::out::{self, say, Shown};
use super::{designs, load_with, Error, Exit, OutFile, Registry};
use crate::checker::Invariant;
use crate::designs::Design;
use crate::madsim_driver::unsupported;
use crate::run::{self, Judged, Status};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::path::Path;

/// The command that reproduces one madsim run and prints its trace.
pub fn command(path: &Path, design: &str, seed: u64) -> String {
    let (path, seed) = (path.display().to_string(), seed.to_string());
    run::command_line(&[
        "replay", &path, "--design", design, "--seed", &seed, "--driver", "madsim",
    ])
}

/// The designs to run, each checked for support; `all` means every design this driver runs.
fn chosen<'r>(
    registry: &'r Registry,
    name: &str,
    scenario: &Scenario,
    opts: &MutationArg,
) -> Result<Vec<&'r dyn Design>, Error> {
    if !opts.mutations.is_empty() {
        return Err(Error::Madsim(
            "mutations are not played by the madsim driver".into(),
        ));
    }
    let all = designs(registry, name)?;
    let picked: Vec<&dyn Design> = if name == "all" {
        all.into_iter()
            .filter(|d| crate::madsim_driver::DESIGNS.contains(&d.name()))
            .collect()
    } else {
        all
    };
    if !oversell_madsim::AVAILABLE {
        return Err(Error::Madsim(oversell_madsim::UNAVAILABLE.into()));
    }
    for d in &picked {
        if let Some(why) = unsupported(d.name(), scenario) {
            return Err(Error::Madsim(why));
        }
    }
    Ok(picked)
}

fn exit_of(status: Status) -> Exit {
    match status {
        Status::Holds => Exit::Holds,
        Status::Unsettled => Exit::Unsettled,
        Status::Violated => Exit::Violated,
    }
}

#[cfg(madsim)]
fn run_one(d: &dyn Design, scenario: &Scenario, seed: u64) -> Judged {
    crate::madsim_driver::run_seed(d, scenario, seed, &Default::default())
}

#[cfg(not(madsim))]
fn run_one(_: &dyn Design, _: &Scenario, _: u64) -> Judged {
    unreachable!("chosen() refuses every design without --cfg madsim")
}

/// `oversell run --driver madsim`.
pub fn run(
    registry: &Registry,
    path: &Path,
    design: &str,
    seed: u64,
    opts: &MutationArg,
) -> Result<Exit, Error> {
    let scenario = load_with(path, opts)?;
    let picked = chosen(registry, design, &scenario, opts)?;
    say!(
        "seed {seed} · scenario {} · driver madsim",
        Shown(&scenario.name)
    );
    let mut exit = Exit::Holds;
    for d in picked {
        let judged = run_one(d, &scenario, seed);
        let r = &judged.result;
        say!(
            "{:<12} {:<9} {:?} at {}ms, trace {} events, hash {:016x}",
            Shown(d.name()),
            judged.status().name(),
            r.outcome,
            r.end_time,
            r.trace.len(),
            r.trace.hash()
        );
        for v in judged.counted() {
            say!(
                "  ✗ {} at {}ms: {}",
                v.invariant.name(),
                v.time,
                Shown(&v.explanation)
            );
        }
        if judged.status() != Status::Holds {
            say!("  replay: {}", Shown(&command(path, d.name(), seed)));
        }
        exit = exit.and(exit_of(judged.status()));
    }
    Ok(exit)
}

/// `oversell explore --driver madsim`: the seeds one after another, violations per invariant.
pub fn explore(registry: &Registry, a: &ExploreArgs) -> Result<Exit, Error> {
    let scenario = load_with(&a.scenario, &a.mutations)?;
    refuse_unplayed(a, &scenario)?;
    let picked = chosen(registry, &a.design.design, &scenario, &a.mutations)?;
    let seeds = a.seeds.unwrap_or(scenario.run.seeds);
    say!(
        "seeds {}..{} · scenario {} · driver madsim",
        seeds.start,
        seeds.end,
        Shown(&scenario.name)
    );
    let mut exit = Exit::Holds;
    for d in picked {
        let mut violated: BTreeMap<Invariant, u64> = BTreeMap::new();
        let (mut unsettled, mut first) = (0, None);
        for seed in seeds.start..seeds.end {
            let judged = run_one(d, &scenario, seed);
            for i in judged.violated() {
                *violated.entry(i).or_default() += 1;
            }
            unsettled += u64::from(judged.status() == Status::Unsettled);
            if judged.status() != Status::Holds && first.is_none() {
                first = Some(seed);
            }
            exit = exit.and(exit_of(judged.status()));
            if a.stop_on_first && first.is_some() {
                break;
            }
        }
        let counts: Vec<String> = violated
            .iter()
            .map(|(i, n)| format!("{} {n}", i.name()))
            .collect();
        say!(
            "{:<12} violated: {} · unsettled: {unsettled}",
            Shown(d.name()),
            if counts.is_empty() {
                "none".to_string()
            } else {
                counts.join(", ")
            }
        );
        if let Some(seed) = first {
            say!(
                "  first failing seed {seed}: {}",
                Shown(&command(&a.scenario, d.name(), seed))
            );
        }
    }
    Ok(exit)
}

/// The `explore` options the madsim driver does not play, each refused rather than
/// ignored: a sweep that quietly dropped one would read as if it had been played.
fn refuse_unplayed(a: &ExploreArgs, scenario: &Scenario) -> Result<(), Error> {
    let unplayed = [
        (a.json.is_some(), "--json (it prints the counts; `replay --seed N --driver madsim --json FILE` writes one run's report)"),
        (a.save, "--save"),
        (a.shard.is_some(), "--shard"),
        (a.counterexample.is_some(), "--counterexample"),
        (a.rerun_prefixes, "--rerun-prefixes"),
        (
            a.jobs.jobs.is_some_and(|j| j > 1),
            "--jobs above 1 (it runs its seeds one after another)",
        ),
        (
            scenario.run.strategy != crate::scenario::StrategyName::Random,
            "a strategy other than random (madsim draws each run's interleaving from its seed)",
        ),
    ];
    match unplayed.iter().find(|(set, _)| *set) {
        Some((_, what)) => Err(Error::Madsim(format!("explore does not play {what}"))),
        None => Ok(()),
    }
}

/// `oversell replay --driver madsim`: one run from madsim's seed (a `MADSIM_TEST_SEED`),
/// its trace printed with `--trace`, its verdict, and the command that replays it.
pub fn replay(registry: &Registry, a: &ReplayArgs) -> Result<Exit, Error> {
    if a.choices.is_some() {
        return Err(Error::Madsim(
            "--choices replays the simulator's choice log; a madsim run replays from its seed (--seed N)".into(),
        ));
    }
    let Some(seed) = a.seed else {
        return Err(Error::Madsim(
            "give --seed N (madsim's seed, a MADSIM_TEST_SEED)".into(),
        ));
    };
    let path = a.scenario_path();
    let scenario = load_with(path, &a.mutations)?;
    let picked = chosen(registry, &a.design, &scenario, &a.mutations)?;
    let [d] = picked[..] else {
        return Err(Error::Madsim(
            "replay one design at a time (--design NAME)".into(),
        ));
    };
    let html = OutFile::open_opt(a.html.as_deref())?;
    let json = OutFile::open_opt(a.json.as_deref())?;
    if a.trace {
        super::single::init_trace(a.all);
    }
    say!(
        "seed {seed} · design {} · scenario {} ({}) · driver madsim",
        Shown(d.name()),
        Shown(&scenario.name),
        out::path(path)
    );
    let judged = run_one(d, &scenario, seed);
    let r = &judged.result;
    say!(
        "{:?} at {}ms after {} steps; {} trace events, hash {:016x}",
        r.outcome,
        r.end_time,
        r.steps,
        r.trace.len(),
        r.trace.hash()
    );
    match judged.status() {
        Status::Holds => say!("every invariant holds"),
        Status::Unsettled => say!("no violation found, but the run is unsettled"),
        Status::Violated => say!("{} violation(s):", judged.counted().count()),
    }
    let command = command(path, d.name(), seed);
    super::single::print_judgement(&judged, &command);
    if let Some(file) = html {
        let shown = out::path(&file.path);
        file.write(&crate::report::html(&scenario, d.name(), &judged, &command))?;
        say!("timeline written to {shown}");
    }
    if let Some(file) = json {
        let shown = out::path(&file.path);
        let value = crate::report::json(&scenario, d.name(), &judged);
        file.write(&serde_json::to_string_pretty(&value)?)?;
        say!("trace and verdict written to {shown}");
    }
    Ok(exit_of(judged.status()))
}
