//! The `oversell` command line, as a library function: a crate that registers its own
//! design builds its own `oversell` binary with
//!
//! ```no_run
//! use oversell::designs::Registry;
//! fn main() -> std::process::ExitCode {
//!     oversell::cli::main(Registry::builtin())
//! }
//! ```
//!
//! Exit statuses: see [`Exit`].

mod args;
mod conformance;
mod error;
mod exhaustive;
mod live;
mod madsim;
mod out;
mod progress;
mod shard;
mod single;
mod sweeps;

pub use crate::designs::Registry;
pub use error::{Error, Exit};

use crate::designs::Design;
use crate::expect::FaultClass;
use crate::run::{self, RunPanic};
use crate::scenario::Scenario;
use args::{Cli, Command, MutationArg};
use clap::Parser;
use out::note;
use std::path::Path;
use std::process::ExitCode;

/// Parse the command line, run the command, and say how it ended.
pub fn main(registry: Registry) -> ExitCode {
    run::set_program(out::program_words());
    progress::install_interrupt();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli, &registry)));
    match ran {
        Ok(Ok(exit)) => exit.into(),
        Ok(Err(error)) => {
            note!("{error}");
            error.exit().into()
        }
        Err(payload) => {
            match payload.downcast_ref::<RunPanic>() {
                Some(p) => note!(
                    "bug in oversell: a run of design {} panicked ({}): {}",
                    p.design,
                    p.seed
                        .map_or("replayed log".to_string(), |s| format!("seed {s}")),
                    p.message
                ),
                None => note!("bug in oversell: the command panicked (see the message above)"),
            }
            Exit::Bug.into()
        }
    }
}

fn dispatch(cli: Cli, registry: &Registry) -> Result<Exit, Error> {
    match cli.command {
        Command::Run {
            scenario,
            design,
            seed,
            mutations,
            driver,
        } => match driver.driver {
            args::Driver::Simulator => {
                single::run(registry, &scenario, &design.design, seed, &mutations)
            }
            args::Driver::Madsim => {
                madsim::run(registry, &scenario, &design.design, seed, &mutations)
            }
        },
        Command::Explore(a) => match a.driver.driver {
            args::Driver::Simulator => sweeps::explore(registry, &a),
            args::Driver::Madsim => madsim::explore(registry, &a),
        },
        Command::Replay(a) => match &a.history {
            Some(history) => live::replay_history(registry, history),
            None if a.driver.driver == args::Driver::Madsim => madsim::replay(registry, &a),
            None => single::replay(registry, &a),
        },
        Command::Live(a) => live::live(registry, &a),
        Command::Conformance(a) => conformance::conformance(registry, &a),
        Command::LiveZombie(a) => conformance::zombie(registry, &a),
        Command::Shrink {
            scenario,
            design,
            seed,
            invariant,
            out,
            mutations,
        } => single::shrink(
            registry,
            &scenario,
            &design,
            seed,
            invariant.as_deref(),
            out.as_deref(),
            &mutations,
        ),
        Command::Merge { shards, json } => shard::merge(&shards, json.as_deref()),
        Command::Check {
            scenarios,
            jobs,
            json,
        } => sweeps::check(registry, &scenarios, jobs.get(), json.as_deref()),
        Command::Matrix {
            scenarios,
            seeds,
            broker_seeds,
            transaction_version,
            jobs,
        } => {
            let seeds = crate::expect::MatrixSeeds {
                seeds,
                broker: broker_seeds,
            };
            sweeps::matrix(registry, &scenarios, seeds, transaction_version, jobs.get())
        }
        Command::Settings {
            scenarios,
            seeds,
            jobs,
        } => sweeps::settings(registry, &scenarios, seeds, jobs.get()),
    }
}

fn load_scenario(path: &Path) -> Result<Scenario, Error> {
    crate::load::load_file(path).map_err(|e| Error::Scenario(e.to_string()))
}

/// The scenario, with its faults replaced by `--fault-class` if given.
fn load_with(path: &Path, opts: &MutationArg) -> Result<Scenario, Error> {
    let scenario = load_scenario(path)?;
    let mut scenario = match (opts.settings, opts.fault_class) {
        (Some(profile), _) => profile.apply(&scenario),
        (None, Some(class)) => FaultClass::apply(class, &scenario),
        (None, None) => scenario,
    };
    if let Some(version) = opts.transaction_version {
        scenario.kafka.transaction_version = version;
    }
    if opts.faults.as_deref() == Some("swarm") {
        scenario.faults.swarm = true;
    }
    match opts.strategy.as_deref() {
        Some("pct") => scenario.run.strategy = crate::scenario::StrategyName::Pct,
        Some("exhaustive") => scenario.run.strategy = crate::scenario::StrategyName::Exhaustive,
        Some(_) => scenario.run.strategy = crate::scenario::StrategyName::Random,
        None => {}
    }
    if let Some(n) = opts.max_crashes {
        scenario.run.max_crashes = n;
    }
    if let Some(n) = opts.max_pauses {
        scenario.run.max_pauses = n;
    }
    if let Some(n) = opts.max_net_faults {
        scenario.run.max_net_faults = n;
    }
    if let Some(n) = opts.max_deviations {
        scenario.run.max_deviations = Some(n);
    }
    scenario.run.no_reduction |= opts.no_reduction;
    if let Some(depth) = opts.pct_depth {
        scenario.run.pct_depth = depth;
    }
    Ok(scenario)
}

fn design<'r>(registry: &'r Registry, name: &str) -> Result<&'r dyn Design, Error> {
    registry.get(name).ok_or_else(|| Error::UnknownDesign {
        name: name.to_string(),
        known: registry.names().join(", "),
    })
}

/// The designs a `--design` value names: one, or every one for `all`.
fn designs<'r>(registry: &'r Registry, name: &str) -> Result<Vec<&'r dyn Design>, Error> {
    if name == "all" {
        return Ok(registry.iter().collect());
    }
    design(registry, name).map(|d| vec![d])
}

/// The shell-quoted command that replays `seed` of `design` with these options.
fn replay_command(path: &Path, design: &str, seed: u64, opts: &MutationArg) -> String {
    let seed = seed.to_string();
    let path = path.display().to_string();
    let flags = opts.flags();
    let mut args = vec!["replay", &path, "--design", design, "--seed", &seed];
    args.extend(flags.iter().map(String::as_str));
    run::command_line(&args)
}

/// An output file, opened (and so checked writable) before any work is done; its content
/// is written at the end.
struct OutFile {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl OutFile {
    fn open(path: &Path) -> Result<OutFile, Error> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(OutFile {
            path: path.to_path_buf(),
            file,
        })
    }

    fn open_opt(path: Option<&Path>) -> Result<Option<OutFile>, Error> {
        path.map(OutFile::open).transpose()
    }

    fn write(mut self, text: &str) -> Result<(), Error> {
        use std::io::Write;
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all(text.as_bytes()))
            .map_err(|e| Error::io(&self.path, e))
    }
}
