//! The `oversell` command: run, explore, replay, shrink, check, matrix.
//!
//! Exit codes: 0 fine, 1 a violation (or an unmet expectation for `check`), 2 bad input.

use clap::{Args, Parser, Subcommand};
use oversell::checker::Invariant;
use oversell::designs::{self, Design, Mutation};
use oversell::expect::{self, FaultClass, RegressionSeed};
use oversell::run::{self, Judged};
use oversell::scenario::{Scenario, SeedRange};
use oversell::{load, report, shrink};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Parser)]
#[command(
    name = "oversell",
    version,
    about = "Deterministic simulation of event-sourced inventory services on Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One run per design: verdict and a short summary.
    Run {
        scenario: PathBuf,
        #[command(flatten)]
        design: DesignArg,
        /// Seed of the run.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        mutations: MutationArg,
    },
    /// Sweep seeds; a table per design of violations per invariant.
    Explore {
        scenario: PathBuf,
        #[command(flatten)]
        design: DesignArg,
        /// Seeds to sweep, `A..B` (default: the scenario's `run.seeds`).
        #[arg(long, value_parser = parse_seeds)]
        seeds: Option<SeedRange>,
        /// Worker threads (default: available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Write the per-design results as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Stop each design's sweep at its first violation.
        #[arg(long)]
        stop_on_first: bool,
        /// Keep the first failing seed of each design in the scenario's regression file.
        #[arg(long)]
        save: bool,
        #[command(flatten)]
        mutations: MutationArg,
    },
    /// Reproduce one run exactly; print its trace and its violations in plain words.
    Replay {
        scenario: PathBuf,
        /// The design (required).
        #[arg(long)]
        design: String,
        #[arg(long, required_unless_present = "choices")]
        seed: Option<u64>,
        /// Replay a recorded choice log (from --json output) instead of a seed.
        #[arg(long, conflicts_with = "seed")]
        choices: Option<PathBuf>,
        /// Print every trace event (RUST_LOG filters it further).
        #[arg(long)]
        trace: bool,
        /// Include message deliveries and fetches in the printed trace.
        #[arg(long)]
        all: bool,
        /// Write a self-contained HTML timeline.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Write the whole trace and verdict as JSON (schema: docs/run-json.md).
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        mutations: MutationArg,
    },
    /// Cut a failing run down to a minimal scenario and seed that still fail.
    Shrink {
        scenario: PathBuf,
        #[arg(long)]
        design: String,
        #[arg(long)]
        seed: u64,
        /// The invariant that must keep failing (default: the first one violated).
        #[arg(long)]
        invariant: Option<String>,
        /// Where to write the minimal scenario (default: print it).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        mutations: MutationArg,
    },
    /// Check every scenario's declared expectations (default: scenarios/*.toml).
    Check {
        scenarios: Vec<PathBuf>,
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// The design × fault-class table, produced by runs, as markdown.
    Matrix {
        scenarios: Vec<PathBuf>,
        /// Seeds per scenario and cell.
        #[arg(long, value_parser = parse_seeds, default_value = "0..20")]
        seeds: SeedRange,
        #[arg(long)]
        jobs: Option<usize>,
    },
}

#[derive(Args)]
struct DesignArg {
    /// A design name, or `all`.
    #[arg(long, default_value = "all")]
    design: String,
}

#[derive(Args)]
struct MutationArg {
    /// Deliberate defect to inject (repeatable): commit-before-process, unfenced,
    /// read-uncommitted, non-idempotent-retry, no-timeout, non-idempotent-compensation.
    #[arg(long = "mutation", value_parser = parse_mutation)]
    mutations: Vec<Mutation>,
    /// Replace the scenario's faults with a fault class of the matrix: none, crash,
    /// pause, network, all.
    #[arg(long = "fault-class", value_parser = parse_fault_class)]
    fault_class: Option<FaultClass>,
}

fn parse_fault_class(text: &str) -> Result<FaultClass, String> {
    FaultClass::ALL
        .into_iter()
        .find(|c| c.flag() == text)
        .ok_or_else(|| {
            format!("unknown fault class {text:?}; known: none, crash, pause, network, all")
        })
}

fn parse_seeds(text: &str) -> Result<SeedRange, String> {
    SeedRange::parse(text)
}

fn parse_mutation(text: &str) -> Result<Mutation, String> {
    Mutation::ALL
        .into_iter()
        .find(|m| m.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
            format!("unknown mutation {text:?}; known: {}", names.join(", "))
        })
}

/// A failure with its exit code.
struct Fail(u8, String);

fn bad_input(message: impl Into<String>) -> Fail {
    Fail(2, message.into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, Fail> {
    match cli.command {
        Command::Run {
            scenario,
            design,
            seed,
            mutations,
        } => cmd_run(&scenario, &design.design, seed, &mutations),
        Command::Explore {
            scenario,
            design,
            seeds,
            jobs,
            json,
            stop_on_first,
            save,
            mutations,
        } => cmd_explore(
            &scenario,
            &design.design,
            seeds,
            jobs_or_default(jobs),
            json.as_deref(),
            stop_on_first,
            save,
            &mutations,
        ),
        Command::Replay {
            scenario,
            design,
            seed,
            choices,
            trace,
            all,
            html,
            json,
            mutations,
        } => cmd_replay(
            &scenario,
            &design,
            seed,
            choices.as_deref(),
            trace,
            all,
            html.as_deref(),
            json.as_deref(),
            &mutations,
        ),
        Command::Shrink {
            scenario,
            design,
            seed,
            invariant,
            out,
            mutations,
        } => cmd_shrink(
            &scenario,
            &design,
            seed,
            invariant.as_deref(),
            out.as_deref(),
            &mutations,
        ),
        Command::Check { scenarios, jobs } => cmd_check(&scenarios, jobs_or_default(jobs)),
        Command::Matrix {
            scenarios,
            seeds,
            jobs,
        } => cmd_matrix(&scenarios, seeds, jobs_or_default(jobs)),
    }
}

fn jobs_or_default(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn load_scenario(path: &Path) -> Result<Scenario, Fail> {
    load::load_file(path).map_err(|e| bad_input(e.to_string()))
}

/// The scenario, with its faults replaced by `--fault-class` if given.
fn load_with(path: &Path, opts: &MutationArg) -> Result<Scenario, Fail> {
    let scenario = load_scenario(path)?;
    Ok(match opts.fault_class {
        Some(class) => class.apply(&scenario),
        None => scenario,
    })
}

fn selected_designs(name: &str) -> Result<Vec<Box<dyn Design>>, Fail> {
    if name == "all" {
        return Ok(designs::all());
    }
    expect::design_named(name)
        .map(|d| vec![d])
        .map_err(bad_input)
}

fn mutation_flags(opts: &MutationArg) -> String {
    let mut flags: String = opts
        .mutations
        .iter()
        .map(|m| format!(" --mutation {}", m.name()))
        .collect();
    if let Some(class) = opts.fault_class {
        flags.push_str(&format!(" --fault-class {}", class.flag()));
    }
    flags
}

fn print_violations(judged: &Judged, command: &str) {
    for v in &judged.verdict.violations {
        println!(
            "  ✗ {} at {}ms: {}",
            v.invariant.name(),
            v.time,
            v.explanation
        );
    }
    if !judged.verdict.violations.is_empty() {
        println!("  replay: {command}");
    }
}

fn cmd_run(path: &Path, design: &str, seed: u64, opts: &MutationArg) -> Result<u8, Fail> {
    let mutations: &[Mutation] = &opts.mutations;
    let scenario = load_with(path, opts)?;
    let designs = selected_designs(design)?;
    let mut code = 0;
    println!(
        "seed {seed} · scenario {} ({})",
        scenario.name,
        path.display()
    );
    for d in designs {
        let judged = run::run_seed(d.as_ref(), &scenario, mutations, seed);
        let r = &judged.result;
        let verdict = if judged.verdict.holds() {
            "holds"
        } else {
            "VIOLATED"
        };
        println!(
            "{:<12} {verdict:<9} {:?} at {}ms after {} steps, trace {} events, hash {:016x}",
            d.name(),
            r.outcome,
            r.end_time,
            r.steps,
            r.trace.len(),
            r.trace.hash()
        );
        let command = format!(
            "{}{}",
            run::replay_command(&path.display().to_string(), d.name(), seed),
            mutation_flags(opts)
        );
        print_violations(&judged, &command);
        if !judged.verdict.holds() {
            code = 1;
        }
    }
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
#[allow(clippy::disallowed_types, clippy::disallowed_methods)] // runs per second is about the host, not the simulation
fn cmd_explore(
    path: &Path,
    design: &str,
    seeds: Option<SeedRange>,
    jobs: usize,
    json: Option<&Path>,
    stop_on_first: bool,
    save: bool,
    opts: &MutationArg,
) -> Result<u8, Fail> {
    let mutations: &[Mutation] = &opts.mutations;
    let scenario = load_with(path, opts)?;
    let seeds = seeds.unwrap_or(scenario.run.seeds);
    let designs = selected_designs(design)?;
    let terminal = std::io::stderr().is_terminal();
    println!(
        "seeds {seeds} · scenario {} ({}) · {jobs} jobs",
        scenario.name,
        path.display()
    );
    let mut code = 0;
    let mut report = serde_json::Map::new();
    let mut saved = Vec::new();
    for d in designs {
        let bar = if terminal {
            let bar = indicatif::ProgressBar::new(seeds.len());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} seeds {per_sec} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(d.name());
            Some(bar)
        } else {
            None
        };
        let failures = Mutex::new(0u64);
        let started = std::time::Instant::now();
        let sweep = run::sweep(
            d.as_ref(),
            &scenario,
            mutations,
            seeds,
            jobs,
            &|_, judged| {
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                if !judged.verdict.holds() {
                    let mut f = failures.lock().expect("counter");
                    *f += 1;
                    if let Some(bar) = &bar {
                        bar.set_message(format!("{} failing", *f));
                    }
                    return !stop_on_first;
                }
                true
            },
        );
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        println!(
            "\n{} — {} runs, {} violating, {} unsettled, {:.0} runs/s, {:.0} steps/s",
            d.name(),
            sweep.runs,
            sweep.failing_runs,
            sweep.unsettled,
            sweep.runs as f64 / secs,
            sweep.steps as f64 / secs
        );
        if let Some(seed) = sweep.first_unsettled {
            println!("  first unsettled seed (ended at a bound, not quiescent): {seed}");
        }
        println!("  {:<22} {:>8}  first failing seed", "invariant", "runs");
        for inv in Invariant::ALL {
            match sweep.violations.get(&inv) {
                Some((n, first)) => println!("  {:<22} {:>8}  {first}", inv.name(), n),
                None => println!("  {:<22} {:>8}  -", inv.name(), 0),
            }
        }
        if let Some(seed) = sweep.first_failing_seed() {
            code = 1;
            println!(
                "  replay: {}{}",
                run::replay_command(&path.display().to_string(), d.name(), seed),
                mutation_flags(opts)
            );
            if save && mutations.is_empty() && opts.fault_class.is_none() {
                let judged = run::run_seed(d.as_ref(), &scenario, mutations, seed);
                saved.push(RegressionSeed {
                    design: d.name().to_string(),
                    seed,
                    violated: judged
                        .verdict
                        .violated()
                        .iter()
                        .map(|i| i.name().to_string())
                        .collect(),
                    note: "found by explore --save".into(),
                });
            }
        }
        report.insert(
            d.name().to_string(),
            serde_json::to_value(&sweep).map_err(|e| Fail(2, e.to_string()))?,
        );
    }
    if save {
        if !mutations.is_empty() || opts.fault_class.is_some() {
            eprintln!("--save ignored: regression seeds are kept for the scenario as written, without mutations or fault classes");
        } else {
            let n = expect::save_seeds(path, &saved).map_err(bad_input)?;
            println!(
                "saved {n} new regression seed(s) to {}",
                expect::seeds_path(path).display()
            );
        }
    }
    if let Some(json) = json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Fail(2, e.to_string()))?;
        std::fs::write(json, text).map_err(|e| bad_input(format!("{}: {e}", json.display())))?;
    }
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
fn cmd_replay(
    path: &Path,
    design: &str,
    seed: Option<u64>,
    choices: Option<&Path>,
    trace: bool,
    all: bool,
    html: Option<&Path>,
    json: Option<&Path>,
    opts: &MutationArg,
) -> Result<u8, Fail> {
    let mutations: &[Mutation] = &opts.mutations;
    let scenario = load_with(path, opts)?;
    let d = expect::design_named(design).map_err(bad_input)?;
    if trace {
        // Deliveries and fetches are traced at `trace` level, everything else at `debug`.
        let default = if all {
            "oversell::trace=trace"
        } else {
            "oversell::trace=debug"
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .without_time()
            .with_target(false)
            .with_level(false)
            .with_writer(std::io::stdout)
            .init();
    }
    let judged = match (seed, choices) {
        (Some(seed), _) => {
            println!(
                "seed {seed} · design {design} · scenario {} ({})",
                scenario.name,
                path.display()
            );
            run::run_seed(d.as_ref(), &scenario, mutations, seed)
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
            let log =
                choices_from(&text).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
            println!(
                "choice log {} · design {design} · scenario {}",
                file.display(),
                scenario.name
            );
            run::run_log(d.as_ref(), &scenario, mutations, &log)
        }
        (None, None) => return Err(bad_input("give --seed N or --choices FILE")),
    };
    let r = &judged.result;
    println!(
        "{:?} at {}ms after {} steps; {} trace events, hash {:016x}; {} choices",
        r.outcome,
        r.end_time,
        r.steps,
        r.trace.len(),
        r.trace.hash(),
        r.choices.choices.len()
    );
    let command = match seed {
        Some(seed) => format!(
            "{}{}",
            run::replay_command(&path.display().to_string(), design, seed),
            mutation_flags(opts)
        ),
        None => format!(
            "cargo run --release -- replay {} --design {design} --choices {}",
            path.display(),
            choices.map(|c| c.display().to_string()).unwrap_or_default()
        ),
    };
    if judged.verdict.holds() {
        println!("every invariant holds");
    } else {
        println!("{} violation(s):", judged.verdict.violations.len());
        print_violations(&judged, &command);
    }
    if let Some(file) = html {
        let page = report::html(&scenario, design, &judged, &command);
        std::fs::write(file, page).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
        println!("timeline written to {}", file.display());
    }
    if let Some(file) = json {
        let value = report::json(&scenario, design, &judged);
        let text = serde_json::to_string_pretty(&value).map_err(|e| Fail(2, e.to_string()))?;
        std::fs::write(file, text).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
        println!("trace and verdict written to {}", file.display());
    }
    Ok(if judged.verdict.holds() { 0 } else { 1 })
}

/// A choice log from a `--json` run file, or from its plain text encoding.
fn choices_from(text: &str) -> Result<oversell::sim::ChoiceLog, String> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let Some(encoded) = value.get("choices").and_then(|c| c.as_str()) else {
            return Err(
                "JSON without a \"choices\" string field; pass a file written by replay --json"
                    .into(),
            );
        };
        return oversell::sim::ChoiceLog::decode(encoded);
    }
    oversell::sim::ChoiceLog::decode(text)
}

fn cmd_shrink(
    path: &Path,
    design: &str,
    seed: u64,
    invariant: Option<&str>,
    out: Option<&Path>,
    opts: &MutationArg,
) -> Result<u8, Fail> {
    let mutations: &[Mutation] = &opts.mutations;
    let scenario = load_with(path, opts)?;
    let d = expect::design_named(design).map_err(bad_input)?;
    let target = match invariant {
        None => None,
        Some(name) => Some(Invariant::parse(name).ok_or_else(|| {
            let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
            bad_input(format!(
                "unknown invariant {name:?}; known: {}",
                names.join(", ")
            ))
        })?),
    };
    println!(
        "seed {seed} · design {design} · scenario {} ({})",
        scenario.name,
        path.display()
    );
    let shrunk = shrink::shrink(d.as_ref(), &scenario, mutations, seed, target, &mut |msg| {
        eprintln!("  {msg}")
    })
    .map_err(|e| Fail(2, e))?;
    let out_path = out.map(|o| o.display().to_string());
    let text = shrink::to_toml_at(
        &shrunk,
        &path.display().to_string(),
        design,
        out_path.as_deref(),
    );
    eprintln!();
    match out {
        Some(file) => {
            std::fs::write(file, &text)
                .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
            println!("minimal scenario written to {}", file.display());
            println!(
                "reproduce: {}{}",
                run::replay_command(&file.display().to_string(), design, shrunk.seed),
                mutation_flags(opts)
            );
        }
        None => print!("{text}"),
    }
    Ok(1)
}

fn scenario_files(given: &[PathBuf]) -> Result<Vec<PathBuf>, Fail> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir("scenarios")
        .map_err(|e| bad_input(format!("scenarios/: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad_input("no scenarios/*.toml found"));
    }
    Ok(files)
}

fn cmd_check(given: &[PathBuf], jobs: usize) -> Result<u8, Fail> {
    let files = scenario_files(given)?;
    let mut all_match = true;
    for file in &files {
        let scenario = load_scenario(file)?;
        println!("{} (seeds {})", file.display(), scenario.run.seeds);
        if scenario.expect.is_empty() {
            println!("  no expectations declared");
            continue;
        }
        let checks = expect::check_expectations(&scenario, jobs).map_err(bad_input)?;
        for c in &checks {
            let mark = if c.matches() { "✓" } else { "✗" };
            println!("  {mark} {}", c.describe(&file.display().to_string()));
            all_match &= c.matches();
        }
        // Regression seeds kept beside the scenario: each must still show what the
        // scenario expects of its design.
        for r in expect::replay_regressions(file, &scenario).map_err(bad_input)? {
            let mark = if r.ok() { "✓" } else { "✗" };
            println!(
                "  {mark} regression {} seed {}: was {}, now {}",
                r.seed.design,
                r.seed.seed,
                join_or(&r.seed.violated, "holds"),
                join_or(&r.now, "holds")
            );
            all_match &= r.ok();
        }
    }
    if all_match {
        println!("every expectation met");
        Ok(0)
    } else {
        println!("some expectations were not met");
        Ok(1)
    }
}

fn join_or(set: &std::collections::BTreeSet<String>, empty: &str) -> String {
    if set.is_empty() {
        empty.to_string()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(",")
    }
}

fn cmd_matrix(given: &[PathBuf], seeds: SeedRange, jobs: usize) -> Result<u8, Fail> {
    let files = scenario_files(given)?;
    let scenarios = files
        .iter()
        .map(|f| load_scenario(f))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    eprintln!("matrix over {} × seeds {seeds}", names.join(", "));
    let cells = expect::matrix(&scenarios, seeds, jobs, |msg| eprintln!("  {msg}"));
    println!(
        "<!-- produced by `oversell matrix` over {} with seeds {seeds} per scenario and cell -->",
        names.join(", ")
    );
    print!("{}", expect::matrix_markdown(&cells));
    Ok(0)
}
