//! oversell's Kafka on madsim: the simulated cluster as a madsim node and an async client
//! shaped like `rdkafka`'s, for a service written as ordinary async code.
//!
//! madsim (<https://github.com/madsim-rs/madsim>) runs async tasks on simulated nodes
//! over a simulated network, all driven by one seeded RNG and simulated time. This crate
//! puts oversell's sans-IO broker ([`oversell_sim::Broker`]: logs, producer state,
//! transaction and group coordinators) behind a madsim address ([`cluster`]) and gives
//! services a client API with `rdkafka`'s names and shapes ([`rdkafka`]). Everything the
//! broker and the clients do is recorded ([`record::Recorder`]) as the simulator's trace
//! events, so that a run is judged by oversell's checker exactly as a simulator run is.
//!
//! Everything but [`AVAILABLE`] and [`UNAVAILABLE`] exists only in a `--cfg madsim` build
//! (set by the workspace's `.cargo/config.toml`; a `RUSTFLAGS` environment variable
//! replaces that setting).

/// Whether this build has the madsim driver (built with `--cfg madsim`).
pub const AVAILABLE: bool = cfg!(madsim);

/// Why the madsim driver is missing from a build without `--cfg madsim`, and how to get it.
pub const UNAVAILABLE: &str = "the madsim driver is not in this build: it needs `--cfg madsim`, \
which the workspace's .cargo/config.toml sets, but a RUSTFLAGS (or CARGO_ENCODED_RUSTFLAGS) \
environment variable replaces it; unset it, or add `--cfg madsim` to it \
(RUSTFLAGS=\"--cfg madsim\"), and build again";

#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod netfaults;
#[cfg(madsim)]
pub mod nodes;
#[cfg(madsim)]
pub mod rdkafka;
#[cfg(madsim)]
pub mod record;

#[cfg(madsim)]
pub use madsim;
