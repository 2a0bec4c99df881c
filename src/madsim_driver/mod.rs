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
use oversell_sim::ScheduledFault;

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
    if scenario.producer.acks != oversell_sim::protocol::Acks::All {
        return Some(
            "the madsim driver's producer sends acks=all only: [producer] acks is not played"
                .into(),
        );
    }
    if scenario.faults.swarm
        || (scenario.faults.phase_ms > 0 && scenario.faults.rates != Default::default())
    {
        return Some("the madsim driver plays scheduled faults only: random fault rates and swarm are not played".into());
    }
    let refused = scenario.faults.schedule.iter().find_map(|f| match f {
        ScheduledFault::Crash { .. } | ScheduledFault::Pause { .. } => None,
        ScheduledFault::DropProduceAck { .. } => Some("drop_produce_ack"),
        ScheduledFault::BrokerCrash { .. }
        | ScheduledFault::BrokerPartition { .. }
        | ScheduledFault::SlowFollower { .. } => None,
    });
    refused.map(|kind| {
        format!(
            "the madsim driver does not play the scheduled fault {kind} (it plays crash, pause, \
             broker_crash, broker_partition and slow_follower)"
        )
    })
}
