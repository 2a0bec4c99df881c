//! The madsim driver: a design written as ordinary async services on an rdkafka-shaped
//! client (`oversell-madsim`), run by madsim against oversell's broker and judged by the
//! same checker from the same kind of run record.
//!
//! The simulator's driver (`World::run`) steps sans-IO state machines one choice at a
//! time; this one runs async tasks on madsim nodes (the cluster, the frontend, one node
//! per service instance) over madsim's network, with madsim's seed, time and faults
//! (`Handle::kill` / `restart` / `pause` / `resume`, packet loss, latency, clogged
//! nodes). What they do is recorded as the simulator's trace events; the final broker
//! and the instances' stores complete the `RunResult`.
//!
//! Everything but [`unsupported`] and [`DESIGNS`] needs a `--cfg madsim` build.

#[cfg(madsim)]
mod brokers;
#[cfg(madsim)]
mod random;
#[cfg(madsim)]
mod run;
#[cfg(madsim)]
mod services;
#[cfg(madsim)]
mod spawned;
#[cfg(madsim)]
mod store;
#[cfg(madsim)]
mod streams;

#[cfg(madsim)]
pub use run::{run_seed, run_service_seed, simulate, simulate_service, NetFaults, Service};

use crate::scenario::Scenario;

/// The designs that run on the madsim driver.
pub const DESIGNS: [&str; 4] = ["naive", "rekeyed-eos", "saga", "saga-direct-timers"];

/// Why the madsim driver cannot run `design` on `scenario` (`None`: it can).
pub fn unsupported(design: &str, scenario: &Scenario) -> Option<String> {
    if !oversell_madsim::AVAILABLE {
        return Some(oversell_madsim::UNAVAILABLE.to_string());
    }
    if !DESIGNS.contains(&design) {
        return Some(format!(
            "design {design} does not run on the madsim driver yet (it runs: {})",
            DESIGNS.join(", ")
        ));
    }
    use oversell_sim::protocol::Acks;
    if scenario.producer.acks == Acks::Zero {
        return Some(
            "the madsim driver's producer sends acks=all or acks=1: [producer] acks = \"0\" is not played"
                .into(),
        );
    }
    if scenario.faults.swarm {
        return Some(
            "the madsim driver does not draw swarm fault mixes: [faults] swarm is not played"
                .into(),
        );
    }
    if scenario.faults.rates.broker_overlap > 0 {
        return Some(
            "the madsim driver plays one random broker fault at a time: [faults] broker_overlap is not played"
                .into(),
        );
    }
    None
}
