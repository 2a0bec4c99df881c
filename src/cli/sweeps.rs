//! Many runs at a time: `explore`, `check`, `matrix`.

use super::args::ExploreArgs;
use super::out::{self, note, say, Shown};
use super::progress::{self, Progress, Sweeping};
use super::{designs, load_scenario, load_with, replay_command, Error, Exit, OutFile, Registry};
use crate::checker::{Invariant, Probe};
use crate::designs::Design;
use crate::expect::{self, RegressionSeed};
use crate::run::{self, RunPanic, Sweep, SweepEnd, SweepOptions};
use crate::scenario::{Scenario, SeedRange};
use crate::shard::{DesignSweep, ShardReport};
use std::path::{Path, PathBuf};

/// One design's sweep, with progress, ending early on Ctrl-C.
fn sweep_design(
    d: &dyn Design,
    scenario: &Scenario,
    a: &ExploreArgs,
    seeds: SeedRange,
    jobs: usize,
) -> Result<(Sweep, SweepEnd, f64), Error> {
    let progress = Progress::new(d.name(), seeds.len());
    let opts = SweepOptions {
        seeds,
        jobs,
        stop_on_first: a.stop_on_first,
        interrupt: Some(&progress::INTERRUPTED),
    };
    let on_run = |_: u64, judged: &run::Judged| progress.tick(judged.counted().next().is_some());
    let swept = run::sweep_seeds(d, scenario, &a.mutations.mutations, opts, &on_run);
    progress.finish();
    let (sweep, end) = swept.map_err(|panic| panicked(panic, &a.scenario, &a.mutations))?;
    Ok((sweep, end, progress.elapsed_secs()))
}

fn panicked(panic: RunPanic, path: &Path, opts: &super::args::MutationArg) -> Error {
    let replay = replay_command(path, &panic.design, panic.seed.unwrap_or(0), opts);
    Error::Panicked {
        panic,
        replay: out::escape(&replay).into_owned(),
    }
}

/// One design's entry of `explore --json`: its sweep and how it ended.
pub(super) fn sweep_json(sweep: &Sweep, end: SweepEnd) -> Result<serde_json::Value, Error> {
    let mut value = serde_json::to_value(sweep)?;
    value["end"] = serde_json::to_value(end)?;
    Ok(value)
}

/// A design's summary; `secs` (the sweep's duration) adds its speed.
pub(super) fn print_sweep(name: &str, sweep: &Sweep, end: SweepEnd, secs: Option<f64>) {
    let ended = match end {
        SweepEnd::Complete => "",
        SweepEnd::StoppedAtFailure => " (stopped at the first violating seed)",
        SweepEnd::Interrupted => " (INTERRUPTED: partial results)",
    };
    let speed = match secs {
        Some(secs) => format!(
            ", {:.0} runs/s, {:.0} steps/s",
            sweep.runs as f64 / secs,
            sweep.steps as f64 / secs
        ),
        None => String::new(),
    };
    say!(
        "\n{} — {} runs, {} violating, {} unsettled{speed}{ended}",
        Shown(name),
        sweep.runs,
        sweep.failing_runs,
        sweep.unsettled,
    );
    if let Some(seed) = sweep.first_unsettled {
        say!("  first unsettled seed (ended at a bound, liveness not judged): {seed}");
    }
    say!("  {:<22} {:>8}  first failing seed", "invariant", "runs");
    for inv in Invariant::ALL {
        match sweep.violations.get(&inv) {
            Some((n, first)) => say!("  {:<22} {:>8}  {first}", inv.name(), n),
            None => say!("  {:<22} {:>8}  -", inv.name(), 0),
        }
    }
    print_probes(sweep);
    if let Some(pct) = &sweep.pct {
        say!("  {}", pct_line(pct, "at most"));
    }
}

/// PCT's probability bound, in words.
pub(super) fn pct_line(pct: &oversell_sim::PctStats, most: &str) -> String {
    format!(
        "PCT depth {d}: {most} {n} threads and {k} scheduling decisions per run, so a bug of depth {d} shows in a run with probability at least 1/(n·k^(d-1)) = {p:.3e}",
        d = pct.depth,
        n = pct.threads,
        k = pct.decisions,
        p = pct.bound()
    )
}

/// The coverage probes: in how many runs each fired (every probe, so that one that
/// never fired shows as 0).
fn print_probes(sweep: &Sweep) {
    say!("  {:<26} {:>8} {:>8}  first seed", "probe", "runs", "hits");
    for probe in Probe::ALL {
        match sweep.probes.get(probe) {
            Some(c) => say!(
                "  {:<26} {:>8} {:>8}  {}",
                probe.name(),
                c.runs,
                c.hits,
                c.first_seed
            ),
            None => say!("  {:<26} {:>8} {:>8}  -", probe.name(), 0, 0),
        }
    }
}

/// The exit status a sweep's findings give.
pub(super) fn exit_of(sweep: &Sweep) -> Exit {
    if sweep.first_failing_seed().is_some() {
        Exit::Violated
    } else if sweep.unsettled > 0 {
        Exit::Unsettled
    } else {
        Exit::Holds
    }
}

pub fn explore(registry: &Registry, a: &ExploreArgs) -> Result<Exit, Error> {
    let scenario = load_with(&a.scenario, &a.mutations)?;
    if scenario.run.strategy == crate::scenario::StrategyName::Exhaustive {
        return super::exhaustive::explore(registry, a, &scenario);
    }
    let all = a.seeds.unwrap_or(scenario.run.seeds);
    let seeds = match a.shard {
        Some(shard) => {
            let (start, end) = shard.seeds(all);
            SeedRange { start, end }
        }
        None => all,
    };
    let designs = designs(registry, &a.design.design)?;
    let json = OutFile::open_opt(a.json.as_deref())?;
    let jobs = run::jobs_for(seeds, a.jobs.get());
    let part = match a.shard {
        Some(shard) => format!("shard {shard} of seeds {all}: "),
        None => String::new(),
    };
    say!(
        "{part}seeds {seeds} · scenario {} ({}) · {jobs} jobs",
        Shown(&scenario.name),
        out::path(&a.scenario)
    );
    let sweeping = Sweeping::start();
    let mut exit = Exit::Holds;
    let mut report = serde_json::Map::new();
    let mut parts = std::collections::BTreeMap::new();
    let mut saved = Vec::new();
    for d in designs {
        let (sweep, end, secs) = sweep_design(d, &scenario, a, seeds, jobs)?;
        print_sweep(d.name(), &sweep, end, Some(secs));
        exit = exit.and(exit_of(&sweep));
        if let Some(seed) = sweep.first_failing_seed() {
            let command = replay_command(&a.scenario, d.name(), seed, &a.mutations);
            say!("  replay: {}", Shown(&command));
            let as_written = a.mutations.mutations.is_empty()
                && a.mutations.fault_class.is_none()
                && a.mutations.settings.is_none()
                && a.mutations.faults.is_none();
            if a.save && as_written {
                saved.push(regression_seed(d, &scenario, seed, a)?);
            }
        }
        report.insert(d.name().to_string(), sweep_json(&sweep, end)?);
        parts.insert(d.name().to_string(), DesignSweep { sweep, end });
        if end == SweepEnd::Interrupted {
            break;
        }
    }
    drop(sweeping);
    save_seeds(a, &saved)?;
    if let Some(file) = json {
        let text = match a.shard {
            Some(shard) => shard_json(a, &scenario, all, seeds, shard, parts)?,
            None => serde_json::to_string_pretty(&report)?,
        };
        file.write(&text)?;
    }
    if progress::interrupted() {
        say!("interrupted: the summary above and the --json file cover the seeds that finished");
        return Ok(Exit::Interrupted);
    }
    Ok(exit)
}

/// The JSON report of one shard of an `explore` sweep (`oversell merge` combines them).
fn shard_json(
    a: &ExploreArgs,
    scenario: &Scenario,
    all: SeedRange,
    seeds: SeedRange,
    shard: crate::shard::Shard,
    parts: std::collections::BTreeMap<String, DesignSweep>,
) -> Result<String, Error> {
    let doc = ShardReport {
        schema: crate::shard::SHARD_SCHEMA.into(),
        scenario: scenario.name.clone(),
        file: a.scenario.display().to_string(),
        seeds: all,
        shard,
        part: (seeds.start, seeds.end),
        options: a.mutations.flags(),
        designs: parts,
    };
    Ok(serde_json::to_string_pretty(&doc)?)
}

fn regression_seed(
    d: &dyn Design,
    scenario: &Scenario,
    seed: u64,
    a: &ExploreArgs,
) -> Result<RegressionSeed, Error> {
    let judged = run::try_run_seed(d, scenario, &[], seed)
        .map_err(|p| panicked(p, &a.scenario, &a.mutations))?;
    Ok(RegressionSeed {
        design: d.name().to_string(),
        seed,
        violated: judged
            .violated()
            .iter()
            .map(|i| i.name().to_string())
            .collect(),
        note: "found by explore --save".into(),
    })
}

fn save_seeds(a: &ExploreArgs, saved: &[RegressionSeed]) -> Result<(), Error> {
    if !a.save {
        return Ok(());
    }
    if !a.mutations.mutations.is_empty()
        || a.mutations.fault_class.is_some()
        || a.mutations.settings.is_some()
        || a.mutations.faults.is_some()
    {
        note!("--save ignored: regression seeds are kept for the scenario as written, without mutations or fault classes");
        return Ok(());
    }
    let n = expect::save_seeds(&a.scenario, saved).map_err(Error::Expectations)?;
    say!(
        "saved {n} new regression seed(s) to {}",
        out::path(&expect::seeds_path(&a.scenario))
    );
    Ok(())
}

fn scenario_files(given: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir("scenarios")
        .map_err(|e| Error::io(Path::new("scenarios/"), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::NoScenarios("no scenarios/*.toml found".into()));
    }
    Ok(files)
}

/// The schema name of `check --json` (docs/check-json.md).
pub const CHECK_JSON_SCHEMA: &str = "oversell-check/1";

/// How one file's check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileCheck {
    Met,
    /// Every expectation met, but an expected probe never fired.
    Vacuous,
    NotMet,
}

/// One expectation's result in `check --json` (docs/check-json.md).
fn expectation_json(c: &expect::ExpectationCheck) -> serde_json::Value {
    serde_json::json!({
        "design": c.design,
        "kind": c.kind(),
        "expected": c.expected,
        "found": c.found,
        "met": c.matches(),
        "runs": c.sweep.runs,
        "unsettled": c.sweep.unsettled,
        "first_failing_seed": c.sweep.first_failing_seed(),
        "hazards": c.hazards,
        "outcomes": c.outcomes,
        "expected_probes": c.expected_probes,
        "vacuous": c.vacuous,
        "probes": c.sweep.probes,
    })
}

/// Check one file: its expectations, then its regression seeds. `json` receives the
/// file's result.
fn check_file(
    registry: &Registry,
    file: &Path,
    jobs: usize,
    json: &mut serde_json::Value,
) -> Result<FileCheck, Error> {
    let scenario = load_scenario(file)?;
    say!("{} (seeds {})", out::path(file), scenario.run.seeds);
    json["seeds"] = scenario.run.seeds.to_string().into();
    if scenario.expect.is_empty() {
        say!("  no expectations declared");
        return Ok(FileCheck::Met);
    }
    let mut all_met = true;
    let mut vacuous = false;
    let mut expectations = Vec::new();
    for c in
        expect::check_expectations_in(registry, &scenario, jobs).map_err(Error::Expectations)?
    {
        let mark = if c.matches() && !c.is_vacuous() {
            "✓"
        } else {
            "✗"
        };
        say!("  {mark} {}", c.describe(&file.display().to_string()));
        all_met &= c.matches();
        vacuous |= c.is_vacuous();
        expectations.push(expectation_json(&c));
    }
    json["expectations"] = expectations.into();
    // Regression seeds kept beside the scenario: each must still show what the scenario
    // expects of its design.
    let mut regressions = Vec::new();
    for r in
        expect::replay_regressions_in(registry, file, &scenario).map_err(Error::Expectations)?
    {
        let mark = if r.ok() { "✓" } else { "✗" };
        say!(
            "  {mark} regression {} seed {}: was {}, now {}",
            Shown(&r.seed.design),
            r.seed.seed,
            join_or(&r.seed.violated, "holds"),
            join_or(&r.now, "holds")
        );
        all_met &= r.ok();
        regressions.push(serde_json::json!({
            "design": r.seed.design,
            "seed": r.seed.seed,
            "recorded": r.seed.violated,
            "now": r.now,
            "met": r.ok(),
        }));
    }
    json["regressions"] = regressions.into();
    Ok(if !all_met {
        FileCheck::NotMet
    } else if vacuous {
        FileCheck::Vacuous
    } else {
        FileCheck::Met
    })
}

/// A file's check, with a panic inside one of its runs turned into an error naming it.
fn check_file_caught(
    registry: &Registry,
    file: &Path,
    jobs: usize,
    json: &mut serde_json::Value,
) -> Result<FileCheck, Error> {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check_file(registry, file, jobs, json)
    }));
    match caught {
        Ok(result) => result,
        Err(payload) => match payload.downcast::<RunPanic>() {
            Ok(p) => Err(panicked(*p, file, &no_options())),
            Err(payload) => std::panic::resume_unwind(payload),
        },
    }
}

fn no_options() -> super::args::MutationArg {
    super::args::MutationArg {
        mutations: Vec::new(),
        fault_class: None,
        settings: None,
        faults: None,
        strategy: None,
        pct_depth: None,
        max_crashes: None,
        max_pauses: None,
        max_net_faults: None,
        max_deviations: None,
        no_reduction: false,
        transaction_version: None,
    }
}

/// Every file is checked and reported, loadable or not; then the status: 2 if some file
/// could not be checked, 1 if some expectation was not met.
pub fn check(
    registry: &Registry,
    given: &[PathBuf],
    jobs: usize,
    json: Option<&Path>,
) -> Result<Exit, Error> {
    let out_file = OutFile::open_opt(json)?;
    let files = scenario_files(given)?;
    let (mut unmet, mut broken, mut vacuous) = (0, 0, 0);
    let mut reports = Vec::new();
    for file in &files {
        let mut report = serde_json::json!({ "file": file.display().to_string() });
        let status = match check_file_caught(registry, file, jobs, &mut report) {
            Ok(FileCheck::Met) => "met",
            Ok(FileCheck::Vacuous) => {
                vacuous += 1;
                "vacuous"
            }
            Ok(FileCheck::NotMet) => {
                unmet += 1;
                "not-met"
            }
            Err(e @ Error::Panicked { .. }) => return Err(e),
            Err(e) => {
                broken += 1;
                say!("{}\n  ✗ cannot be checked: {e}", out::path(file));
                report["error"] = e.to_string().into();
                "cannot-be-checked"
            }
        };
        report["status"] = status.into();
        reports.push(report);
    }
    if let Some(f) = out_file {
        let doc = serde_json::json!({
            "schema": CHECK_JSON_SCHEMA,
            "met": broken == 0 && unmet == 0 && vacuous == 0,
            "files": reports,
        });
        f.write(&serde_json::to_string_pretty(&doc)?)?;
    }
    if broken == 0 && unmet == 0 && vacuous == 0 {
        say!("every expectation met");
        return Ok(Exit::Holds);
    }
    if broken == 0 && unmet == 0 {
        say!(
            "every expectation met, but {vacuous} file(s) VACUOUS: an expected coverage probe never fired, so a clean result there proves nothing"
        );
        return Ok(Exit::Vacuous);
    }
    say!(
        "{broken} of {} file(s) could not be checked; {unmet} file(s) with expectations not met; {vacuous} vacuous",
        files.len()
    );
    Ok(if broken > 0 {
        Exit::BadInput
    } else {
        Exit::Violated
    })
}

fn join_or(set: &std::collections::BTreeSet<String>, empty: &str) -> String {
    if set.is_empty() {
        empty.to_string()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(",")
    }
}

pub fn matrix(
    registry: &Registry,
    given: &[PathBuf],
    seeds: expect::MatrixSeeds,
    transaction_version: Option<u8>,
    jobs: usize,
) -> Result<Exit, Error> {
    let files = scenario_files(given)?;
    let mut scenarios = files
        .iter()
        .map(|f| load_scenario(f))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(version) = transaction_version {
        for scenario in &mut scenarios {
            scenario.kafka.transaction_version = version;
        }
    }
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    note!(
        "matrix over {} × seeds {} (broker column {})",
        Shown(&names.join(", ")),
        seeds.seeds,
        seeds.broker
    );
    let cells = expect::matrix_in(registry, &scenarios, seeds, jobs, |msg| note!("  {msg}"));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut header = expect::matrix_header(&names, seeds);
    if let Some(version) = transaction_version {
        header = format!(
            "{}\nEvery scenario on transaction protocol v{version} (`--transaction-version {version}`).\n\n",
            header.trim_end()
        );
    }
    out::write_stdout(out::escape_lines(&header).as_bytes());
    out::write_stdout(out::escape_lines(&expect::matrix_markdown_in(registry, &cells)).as_bytes());
    Ok(Exit::Holds)
}

pub fn settings(
    registry: &Registry,
    given: &[PathBuf],
    seeds: SeedRange,
    jobs: usize,
) -> Result<Exit, Error> {
    let files = scenario_files(given)?;
    let scenarios = files
        .iter()
        .map(|f| load_scenario(f))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    note!("settings over {} × seeds {seeds}", Shown(&names.join(", ")));
    let cells = expect::settings_in(registry, &scenarios, seeds, jobs, |msg| note!("  {msg}"));
    let header = expect::settings_header(&names, seeds);
    out::write_stdout(out::escape_lines(&header).as_bytes());
    out::write_stdout(
        out::escape_lines(&expect::settings_markdown_in(registry, &cells)).as_bytes(),
    );
    Ok(Exit::Holds)
}
