//! What the command can end with: an exit status, or an error that carries its own.

use crate::run::RunPanic;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command's exit statuses (documented in the README's command table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every run settled and every invariant holds; every expectation met.
    Holds,
    /// Some invariant is violated (for `check`: some expectation is not met).
    Violated,
    /// Bad input: a scenario file error, an unknown name, a bad flag value, an unwritable
    /// output file, a choice log that does not fit the scenario.
    BadInput,
    /// No violation, but some run ended at a time or step bound: liveness and
    /// at-quiescence invariants were not judged.
    Unsettled,
    /// A bug in oversell: a run panicked (a kernel invariant broke).
    Bug,
    /// Interrupted (Ctrl-C) after printing and writing what was found so far.
    Interrupted,
    /// `check`: every expectation met, but some sweep is vacuous (an expected coverage
    /// probe never fired).
    Vacuous,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Holds => 0,
            Exit::Violated => 1,
            Exit::BadInput => 2,
            Exit::Unsettled => 3,
            Exit::Bug => 70,
            Exit::Interrupted => 130,
            Exit::Vacuous => 4,
        }
    }

    /// How bad a verdict is, to combine several: holds < unsettled < violated.
    fn rank(self) -> u8 {
        match self {
            Exit::Holds => 0,
            Exit::Unsettled => 1,
            Exit::Vacuous => 2,
            Exit::Violated => 3,
            Exit::BadInput => 4,
            Exit::Bug => 5,
            Exit::Interrupted => 6,
        }
    }

    /// The worse of two statuses.
    pub fn and(self, other: Exit) -> Exit {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Scenario(String),
    #[error("unknown design {name:?}; known designs: {known}")]
    UnknownDesign { name: String, known: String },
    #[error("unknown invariant {name:?}; known: {known}")]
    UnknownInvariant { name: String, known: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    ChoiceLog { path: PathBuf, message: String },
    #[error(
        "the choice log {} does not fit this scenario and design: the replay diverged {why} \
         (after {steps} steps, at {time}ms); it was recorded from another scenario, design or mutation",
        path.display()
    )]
    Diverged {
        path: PathBuf,
        why: String,
        steps: u64,
        time: u64,
    },
    #[error("{0}")]
    NoScenarios(String),
    #[error("{0}")]
    Expectations(String),
    #[error("{0}")]
    Shrink(String),
    /// The live mode could not run: Java or Maven missing, a port in use, a cluster or an
    /// application that did not start, a history file that cannot be read.
    #[error("live: {0}")]
    Live(String),
    /// `--driver madsim` cannot run this: not built in, or the design or scenario is not
    /// supported by that driver.
    #[error("--driver madsim: {0}")]
    Madsim(String),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "bug in oversell: the run of design {} {} panicked: {}\n  replay: {replay}",
        panic.design,
        panic.seed.map_or("(replayed choice log)".to_string(), |s| format!("seed {s}")),
        panic.message
    )]
    Panicked { panic: RunPanic, replay: String },
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Panicked { .. } => Exit::Bug,
            _ => Exit::BadInput,
        }
    }

    pub fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
