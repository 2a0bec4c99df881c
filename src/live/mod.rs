//! The live mode: a scenario played on a real Kafka 4.x cluster by real Kafka Streams
//! applications (the Java twins in `live/`), its history recorded, rebuilt into the run
//! record the simulator produces ([`convert`]), and judged by the same checker.
//!
//! Layout: [`java`] (Java, Maven, the built module, child processes), [`cluster`] (real
//! KRaft brokers on loopback ports, crashed and restarted on command), [`run`] (one run:
//! topics, the service instances, the workload, the recorded history), [`faults`] (a
//! scenario's faults as actions on real processes), [`player`] (playing them at their
//! wall times), [`scale`] (the live time scale: every time of the story multiplied
//! so that the session timeout is a real one), [`history`] (the history file), [`convert`] (history → run record, and
//! what a live history cannot show), [`conformance`] (the simulator's verdicts beside the
//! live ones), [`zombie`] (the saga's zombie punctuation, an experiment with its own
//! triggers).
//!
//! What exists: twins of `naive`, `rekeyed-alo`, `rekeyed-eos`, `saga` and
//! `saga-direct-timers`; `topology.instances`
//! service instances, one JVM each; crashes (SIGKILL, restart), pauses (SIGSTOP,
//! SIGCONT), broker crashes and a crash point ([`faults`]). Message faults (drop,
//! duplicate, delay, lost acknowledgements) are refused, never ignored.

pub mod cluster;
pub mod conformance;
pub mod convert;
pub mod coordinator;
pub mod faults;
pub mod history;
pub mod holder;
pub mod java;
pub mod player;
pub mod run;
pub mod scale;
pub mod zombie;

use std::path::{Path, PathBuf};

pub use convert::{live_verdict, not_recorded, to_run, Unconvertible, NOT_RECORDED};
pub use history::LiveHistory;

/// Designs with a live twin in `live/`.
pub const TWINS: [&str; 5] = [
    "naive",
    "rekeyed-alo",
    "rekeyed-eos",
    "saga",
    "saga-direct-timers",
];

/// Why the live mode could not do its job (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{tool} is not installed: {why}")]
    Missing {
        tool: &'static str,
        why: &'static str,
    },
    #[error("port {port} on 127.0.0.1 is in use ({why}): choose another --base-port, or omit it to use free ports")]
    PortInUse { port: u16, why: String },
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Process(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

impl LiveError {
    pub fn io(path: &Path, source: std::io::Error) -> LiveError {
        LiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
