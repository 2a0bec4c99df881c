//! The live mode: a scenario played on a real Kafka 4.x cluster by real Kafka Streams
//! applications (the Java twins in `live/`), its history recorded, rebuilt into the run
//! record the simulator produces ([`convert`]), and judged by the same checker.
//!
//! Layout: [`java`] (Java, Maven, the built module, child processes), [`cluster`] (real
//! KRaft brokers on loopback ports), [`run`] (one run: topics, the service, the
//! workload, the recorded history), [`history`] (the history file), [`convert`] (history →
//! run record, and what a live history cannot show).
//!
//! What exists: the twins of `naive`, `saga` and `saga-direct-timers` ([`twins`]),
//! scenarios without faults, one service
//! instance, non-transactional histories. Fault injection on real processes, the other
//! designs' twins and transactional histories are not built yet; asking for them is an
//! error, never a silent run without them.

pub mod cluster;
pub mod convert;
pub mod history;
pub mod java;
pub mod run;
pub mod twins;

use std::path::{Path, PathBuf};

pub use convert::{live_verdict, to_run, Unconvertible, NOT_RECORDED};
pub use history::LiveHistory;

/// Designs with a live twin in `live/`.
pub const TWINS: [&str; 3] = ["naive", "saga", "saga-direct-timers"];

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
