//! The scenario's random fault rates on madsim, drawn from madsim's RNG during the fault
//! phase: service instances crashed (`Handle::kill`, then `restart`) and paused
//! (`pause` / `resume`: a zombie), brokers crashed, partitioned and slowed (`Nodes`), and
//! the clients' messages dropped, delayed and duplicated (`oversell_madsim::netfaults`).
//!
//! The simulator draws an instance fault and a broker fault at each scheduler step of its
//! fault phase (`sim/src/world/faults.rs`, `World::maybe_instance_fault`;
//! `sim/src/world/brokers.rs`, `World::maybe_broker_fault`), and a network fault at each
//! delivery (`World::network_fault`). madsim has no scheduler steps: its tasks run until
//! they await. Here a supervisor task draws once per [`DRAW_EVERY_MS`] of simulated time
//! with the scenario's rate, which is the simulator's chance per step when it takes
//! `1 / DRAW_EVERY_MS` steps a millisecond (the measured figure is in that constant's
//! note); a network fault is drawn per message, as in the simulator. Everything else
//! follows the simulator: one crash else one pause per draw, of an instance drawn among
//! those that are up; one broker fault per draw, only while every broker is up and
//! reachable and every ISR full (crash, with `fsync_loss`'s chance of losing the
//! unflushed logs, else partition from the brokers, the clients or both, else slow
//! follower); durations drawn from the scenario's ranges.

use oversell_madsim::madsim::runtime::{Handle, NodeHandle};
use oversell_madsim::madsim::task;
use oversell_madsim::madsim::time::{sleep, Duration};
use oversell_madsim::netfaults::{self, NetworkFaults};
use oversell_madsim::nodes::Nodes;
use oversell_madsim::record::{now_ms, Recorder};
use oversell_sim::{Event, FaultRates, Millis};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::store::Stores;

/// Simulated time between two draws of the instance and broker faults, ms. The
/// simulator's random strategy takes about one scheduler step per simulated millisecond
/// in these scenarios' fault phases (see README, "The madsim driver": steps over the
/// fault phase, measured), so one draw a millisecond keeps a rate's meaning.
pub(super) const DRAW_EVERY_MS: Millis = 1;

/// The service instances that are down now (crashed or paused), shared by the scheduled
/// and the random faults: a fault strikes only an instance that is up, as the
/// simulator's (`World::up_instance`, `World::faulty_instances`).
#[derive(Clone, Default)]
pub(super) struct Downs(Arc<Mutex<BTreeSet<String>>>);

impl Downs {
    /// Mark `instance` down; false (nothing marked) when it already is.
    fn take(&self, instance: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(instance.to_string())
    }

    fn heal(&self, instance: &str) {
        let was = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(instance);
        debug_assert!(was, "{instance} healed while up");
    }

    /// The instances of `all` that are up, in name order.
    fn up<'a>(&self, all: impl Iterator<Item = &'a String>) -> Vec<String> {
        let downs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.filter(|i| !downs.contains(*i)).cloned().collect()
    }
}

/// What a run's faults act on.
#[derive(Clone)]
pub(super) struct Targets {
    pub nodes: BTreeMap<String, NodeHandle>,
    pub brokers: Option<Nodes>,
    pub stores: Stores,
    pub recorder: Recorder,
    pub downs: Downs,
    /// Rises to each fault's heal time when it strikes.
    pub struck: Arc<AtomicU64>,
}

/// Crash (`crash`) or pause `instance` now until `until`; the future that then restarts
/// or resumes it (`None`, nothing done, when it is not up).
pub(super) fn strike_instance(
    t: &Targets,
    instance: &str,
    until: Millis,
    crash: bool,
) -> Option<impl std::future::Future<Output = ()>> {
    let node = t.nodes.get(instance)?;
    if !t.downs.take(instance) {
        return None;
    }
    t.struck.fetch_max(until, Ordering::SeqCst);
    let (id, h, instance) = (node.id(), Handle::current(), instance.to_string());
    if crash {
        h.kill(id);
        t.stores.forget(&instance);
        let event = Event::Crash {
            instance: instance.clone(),
        };
        t.recorder.event(event);
    } else {
        h.pause(id);
        let event = Event::Pause {
            instance: instance.clone(),
            until,
        };
        t.recorder.event(event);
    }
    let (recorder, downs) = (t.recorder.clone(), t.downs.clone());
    Some(async move {
        sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
        downs.heal(&instance);
        if crash {
            h.restart(id);
            recorder.event(Event::Restart { instance });
        } else {
            h.resume(id);
            recorder.event(Event::Resume { instance });
        }
    })
}

/// Play `rates` until `phase_ms` (nothing when no rate is set): the network's on every
/// client message, the instances' and brokers' on a task of the supervisor.
pub(super) fn play(rates: &FaultRates, phase_ms: Millis, t: &Targets) {
    if phase_ms == 0 || !rates.any() {
        return;
    }
    debug_assert_eq!(rates.broker_overlap, 0, "refused by `unsupported`");
    netfaults::set(NetworkFaults {
        drop: rates.drop,
        duplicate: rates.duplicate,
        delay: rates.delay,
        delay_for: rates.delay_for,
        until: phase_ms,
    });
    t.struck.fetch_max(phase_ms, Ordering::SeqCst);
    let (rates, t) = (rates.clone(), t.clone());
    task::spawn(async move {
        while now_ms() < phase_ms {
            instance_fault(&rates, &t);
            broker_fault(&rates, &t);
            sleep(Duration::from_millis(DRAW_EVERY_MS)).await;
        }
    });
}

/// A chance of `per_mille` in 1000 from madsim's RNG (no draw at 0).
fn chance(per_mille: u32) -> bool {
    per_mille > 0 && (oversell_madsim::madsim::rand::random::<u32>() % 1000) < per_mille
}

/// A value in `0..n` from madsim's RNG.
fn choose(n: u64) -> u64 {
    oversell_madsim::madsim::rand::random::<u64>() % n
}

/// A duration drawn from an inclusive range.
fn pick((lo, hi): (Millis, Millis)) -> Millis {
    if hi <= lo {
        lo
    } else {
        lo + choose(hi - lo + 1)
    }
}

/// At most one crash, else one pause, of an instance that is up.
fn instance_fault(rates: &FaultRates, t: &Targets) {
    if rates.crash == 0 && rates.pause == 0 {
        return;
    }
    let up = t.downs.up(t.nodes.keys());
    if up.is_empty() {
        return;
    }
    let now = now_ms();
    let heal = if chance(rates.crash) {
        let i = &up[choose(up.len() as u64) as usize];
        strike_instance(t, i, now + pick(rates.restart_after), true)
    } else if chance(rates.pause) {
        let i = &up[choose(up.len() as u64) as usize];
        strike_instance(t, i, now + pick(rates.pause_for), false)
    } else {
        None
    };
    if let Some(heal) = heal {
        task::spawn(heal);
    }
}

/// A broker fault's kind, for its heal.
#[derive(Clone, Copy)]
enum BrokerFault {
    Crash,
    Partition,
    Slow,
}

/// At most one broker fault, while the cluster is healthy (several brokers only).
fn broker_fault(rates: &FaultRates, t: &Targets) {
    let Some(nodes) = &t.brokers else {
        return;
    };
    if rates.broker_crash + rates.broker_partition + rates.slow_follower == 0 || !nodes.healthy() {
        return;
    }
    let n = u64::from(nodes.count());
    let now = now_ms();
    let (struck, kind, until, b) = if chance(rates.broker_crash) {
        let (b, until) = (choose(n) as u32, now + pick(rates.broker_restart_after));
        (
            nodes.crash(b, chance(rates.fsync_loss)),
            BrokerFault::Crash,
            until,
            b,
        )
    } else if chance(rates.broker_partition) {
        let (b, until) = (choose(n) as u32, now + pick(rates.broker_partition_for));
        // From the brokers, from the clients, or from both.
        let (from_brokers, from_clients) = match choose(3) {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        let struck = nodes.partition(b, from_brokers, from_clients);
        (struck, BrokerFault::Partition, until, b)
    } else if chance(rates.slow_follower) {
        let (b, until) = (choose(n) as u32, now + pick(rates.slow_follower_for));
        (nodes.slow(b, true), BrokerFault::Slow, until, b)
    } else {
        return;
    };
    if !struck {
        return;
    }
    t.struck.fetch_max(until, Ordering::SeqCst);
    let nodes = nodes.clone();
    task::spawn(async move {
        sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
        match kind {
            BrokerFault::Crash => nodes.restart(b),
            BrokerFault::Partition => nodes.heal(b),
            BrokerFault::Slow => {
                nodes.slow(b, false);
            }
        }
    });
}
