//! One run at a time: `run`, `replay`, `shrink`.

use super::args::{MutationArg, ReplayArgs};
use super::out::{self, say, Shown};
use super::{design, designs, load_with, replay_command, Error, Exit, OutFile, Registry};
use crate::checker::Invariant;
use crate::run::{self, Judged, Status};
use crate::{report, shrink};
use oversell_sim::Outcome;
use std::path::Path;

/// The exit status of one judged run.
fn exit_of(judged: &Judged) -> Exit {
    match judged.status() {
        Status::Holds => Exit::Holds,
        Status::Unsettled => Exit::Unsettled,
        Status::Violated => Exit::Violated,
    }
}

fn verdict_word(status: Status) -> &'static str {
    match status {
        Status::Holds => "holds",
        Status::Unsettled => "UNSETTLED",
        Status::Violated => "VIOLATED",
    }
}

/// The violations that stand, what was not judged, and the command that replays it.
pub(super) fn print_judgement(judged: &Judged, command: &str) {
    for v in judged.counted() {
        say!(
            "  ✗ {} at {}ms: {}",
            v.invariant.name(),
            v.time,
            Shown(&v.explanation)
        );
    }
    if !judged.settled() {
        let why = match &judged.result.outcome {
            Outcome::TimeBound => "hit its time bound",
            Outcome::StepBound => "hit its step bound",
            _ => "did not settle",
        };
        let names: Vec<&str> = judged.not_judged().iter().map(|i| i.name()).collect();
        say!(
            "  ? unsettled — liveness not judged: the run {why} at {}ms before it was quiescent; not judged: {}",
            judged.result.end_time,
            names.join(", ")
        );
        for v in judged.unjudged() {
            say!(
                "    ({} not judged: {})",
                v.invariant.name(),
                Shown(&v.explanation)
            );
        }
    }
    if judged.status() != Status::Holds {
        say!("  replay: {}", Shown(command));
    }
}

fn run_one(
    d: &dyn crate::designs::Design,
    scenario: &crate::scenario::Scenario,
    opts: &MutationArg,
    seed: u64,
    command: &str,
) -> Result<Judged, Error> {
    run::try_run_seed(d, scenario, &opts.mutations, seed).map_err(|panic| Error::Panicked {
        panic,
        replay: out::escape(command).into_owned(),
    })
}

pub fn run(
    registry: &Registry,
    path: &Path,
    design: &str,
    seed: u64,
    opts: &MutationArg,
) -> Result<Exit, Error> {
    let scenario = load_with(path, opts)?;
    let designs = designs(registry, design)?;
    let mut exit = Exit::Holds;
    say!(
        "seed {seed} · scenario {} ({})",
        Shown(&scenario.name),
        out::path(path)
    );
    let last = designs.len().saturating_sub(1);
    for (i, d) in designs.into_iter().enumerate() {
        let command = replay_command(path, d.name(), seed, opts);
        let judged = run_one(d, &scenario, opts, seed, &command)?;
        let r = &judged.result;
        say!(
            "{:<12} {:<9} {:?} at {}ms after {} steps, trace {} events, hash {:016x}",
            Shown(d.name()),
            verdict_word(judged.status()),
            r.outcome,
            r.end_time,
            r.steps,
            r.trace.len(),
            r.trace.hash()
        );
        if let Some(rates) = &judged.swarm {
            say!("  swarm fault mix: {}", crate::swarm::describe(rates));
        }
        if let Some(pct) = &judged.result.pct {
            say!("  {}", super::sweeps::pct_line(pct, "with"));
        }
        print_judgement(&judged, &command);
        exit = exit.and(exit_of(&judged));
        if i == last {
            exit_with(judged);
        }
    }
    Ok(exit)
}

/// The last run's result, which the process exits with: not freed record by record (6 to
/// 8 % of a 10,000-order `run`), the operating system takes its memory back at exit. Every
/// earlier design's result is freed as usual, so peak memory stays one run's.
fn exit_with(judged: Judged) {
    std::mem::forget(judged);
}

/// Print the trace through `tracing` while the run goes (deliveries and fetches are
/// traced at `trace` level, everything else at `debug`).
pub(super) fn init_trace(all: bool) {
    let default = if all {
        "oversell::trace=trace"
    } else {
        "oversell::trace=debug"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .with_writer(out::trace_writer)
        .try_init();
}

pub fn replay(registry: &Registry, a: &ReplayArgs) -> Result<Exit, Error> {
    let scenario = load_with(a.scenario_path(), &a.mutations)?;
    let d = design(registry, &a.design)?;
    let html = OutFile::open_opt(a.html.as_deref())?;
    let json = OutFile::open_opt(a.json.as_deref())?;
    let (judged, command) = replay_run(d, &scenario, a)?;
    let r = &judged.result;
    if let Outcome::Diverged(why) = &r.outcome {
        return Err(Error::Diverged {
            path: a.choices.clone().unwrap_or_default(),
            why: out::escape(why).into_owned(),
            steps: r.steps,
            time: r.end_time,
        });
    }
    say!(
        "{:?} at {}ms after {} steps; {} trace events, hash {:016x}; {} choices",
        r.outcome,
        r.end_time,
        r.steps,
        r.trace.len(),
        r.trace.hash(),
        r.choices.choices.len()
    );
    if let Some(pct) = &r.pct {
        say!("{}", super::sweeps::pct_line(pct, "with"));
    }
    match judged.status() {
        Status::Holds => say!("every invariant holds"),
        Status::Unsettled => say!("no violation found, but the run is unsettled"),
        Status::Violated => say!("{} violation(s):", judged.counted().count()),
    }
    print_judgement(&judged, &command);
    if let Some(file) = html {
        let path = out::path(&file.path);
        file.write(&report::html(&scenario, &a.design, &judged, &command))?;
        say!("timeline written to {path}");
    }
    if let Some(file) = json {
        let path = out::path(&file.path);
        let value = report::json(&scenario, &a.design, &judged);
        file.write(&serde_json::to_string_pretty(&value)?)?;
        say!("trace and verdict written to {path}");
    }
    Ok(exit_of(&judged))
}

/// A swarm run's fault mix, printed before the run (and its trace) starts.
fn print_swarm(scenario: &crate::scenario::Scenario, chooser: oversell_sim::Chooser) {
    if !scenario.faults.swarm {
        return;
    }
    match crate::swarm::preview(chooser) {
        Some(rates) => say!(
            "swarm fault mix: {} · fault phase {} ms",
            crate::swarm::describe(&rates),
            crate::swarm::phase_of(scenario)
        ),
        None => say!("swarm fault mix: the choice log ends before the mix is drawn"),
    }
}

/// Run what `replay` was asked for: a seed or a choice log; and its replay command.
fn replay_run(
    d: &dyn crate::designs::Design,
    scenario: &crate::scenario::Scenario,
    a: &ReplayArgs,
) -> Result<(Judged, String), Error> {
    if a.trace {
        init_trace(a.all);
    }
    let path = out::path(a.scenario_path());
    match (a.seed, &a.choices) {
        (Some(seed), _) => {
            say!(
                "seed {seed} · design {} · scenario {} ({path})",
                Shown(&a.design),
                Shown(&scenario.name)
            );
            print_swarm(scenario, oversell_sim::Chooser::seeded(seed));
            let command = replay_command(a.scenario_path(), &a.design, seed, &a.mutations);
            Ok((run_one(d, scenario, &a.mutations, seed, &command)?, command))
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
            let log = choices_from(&text).map_err(|message| Error::ChoiceLog {
                path: file.clone(),
                message,
            })?;
            say!(
                "choice log {} · design {} · scenario {}",
                out::path(file),
                Shown(&a.design),
                Shown(&scenario.name)
            );
            print_swarm(scenario, oversell_sim::Chooser::replay(&log));
            let command = choices_command(a, file);
            let judged =
                run::try_run_log(d, scenario, &a.mutations.mutations, &log).map_err(|panic| {
                    Error::Panicked {
                        panic,
                        replay: out::escape(&command).into_owned(),
                    }
                })?;
            Ok((judged, command))
        }
        (None, None) => Err(Error::ChoiceLog {
            path: a.scenario_path().to_path_buf(),
            message: "give --seed N or --choices FILE".into(),
        }),
    }
}

fn choices_command(a: &ReplayArgs, file: &Path) -> String {
    let scenario = a.scenario_path().display().to_string();
    let file = file.display().to_string();
    let flags = a.mutations.flags();
    let mut args = vec![
        "replay",
        &scenario,
        "--design",
        &a.design,
        "--choices",
        &file,
    ];
    args.extend(flags.iter().map(String::as_str));
    run::command_line(&args)
}

/// A choice log from a `--json` run file, or from its plain text encoding.
fn choices_from(text: &str) -> Result<oversell_sim::ChoiceLog, String> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let Some(encoded) = value.get("choices").and_then(|c| c.as_str()) else {
            return Err(
                "JSON without a \"choices\" string field; pass a file written by replay --json"
                    .into(),
            );
        };
        return oversell_sim::ChoiceLog::decode(encoded);
    }
    oversell_sim::ChoiceLog::decode(text)
}

fn parse_invariant(name: Option<&str>) -> Result<Option<Invariant>, Error> {
    name.map(|name| {
        Invariant::parse(name).ok_or_else(|| Error::UnknownInvariant {
            name: name.to_string(),
            known: Invariant::ALL.map(|i| i.name()).join(", "),
        })
    })
    .transpose()
}

pub fn shrink(
    registry: &Registry,
    path: &Path,
    design_name: &str,
    seed: u64,
    invariant: Option<&str>,
    out_path: Option<&Path>,
    opts: &MutationArg,
) -> Result<Exit, Error> {
    let scenario = load_with(path, opts)?;
    let d = design(registry, design_name)?;
    let target = parse_invariant(invariant)?;
    let out_file = OutFile::open_opt(out_path)?;
    say!(
        "seed {seed} · design {} · scenario {} ({})",
        Shown(design_name),
        Shown(&scenario.name),
        out::path(path)
    );
    let shrunk = shrink::shrink(d, &scenario, &opts.mutations, seed, target, &mut |msg| {
        out::note_line(format_args!("  {msg}"))
    })
    .map_err(Error::Shrink)?;
    let shown_out = out_path.map(|o| o.display().to_string());
    let text = shrink::to_toml_at(
        &shrunk,
        &path.display().to_string(),
        design_name,
        shown_out.as_deref(),
    );
    out::note_line(format_args!(""));
    match (out_file, out_path) {
        (Some(file), Some(file_path)) => {
            file.write(&text)?;
            say!("minimal scenario written to {}", out::path(file_path));
            say!(
                "reproduce: {}",
                Shown(&replay_command(file_path, design_name, shrunk.seed, opts))
            );
        }
        _ => out::write_stdout(out::escape_lines(&text).as_bytes()),
    }
    Ok(Exit::Violated)
}
