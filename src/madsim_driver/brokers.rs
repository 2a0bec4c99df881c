//! The scenario's broker faults on a replicated cluster, through madsim: a crash kills
//! the broker's node (`Handle::kill`) and crashes it in the model, a restart restarts
//! both (`Handle::restart`); a partition from the clients clogs the node's links, one
//! from the brokers cuts it off from the controller and the followers in the model; a
//! slow follower's fetches stall. Each strikes at its scheduled time, and, as in the
//! simulator (`sim/src/world/brokers.rs`, `World::scheduled_broker`), only a broker that
//! is intact then: up, reachable by everyone, fetching at its pace.

use oversell_madsim::cluster::Cluster;
use oversell_madsim::madsim::time::{sleep, Duration};
use oversell_madsim::nodes::Nodes;
use oversell_madsim::record::now_ms;
use oversell_sim::{Millis, ScheduledFault};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::scenario::Scenario;

/// Schedule every broker fault of `scenario` on a task of the supervisor; `struck` rises
/// to each one's heal time when it strikes. Returns when the last would heal (0 without
/// any, or on a single broker, where the driver refuses them).
pub(super) fn play(scenario: &Scenario, cluster: &Cluster, struck: &Arc<AtomicU64>) -> Millis {
    let Some(nodes) = cluster.nodes() else {
        return 0;
    };
    let mut planned = 0;
    for fault in &scenario.faults.schedule {
        let Some((at, until)) = window(fault) else {
            continue;
        };
        planned = planned.max(until);
        let (nodes, fault, struck) = (nodes.clone(), fault.clone(), struck.clone());
        oversell_madsim::madsim::task::spawn(async move {
            sleep(Duration::from_millis(at)).await;
            if !strike(&nodes, &fault) {
                return;
            }
            struck.fetch_max(until, Ordering::SeqCst);
            sleep(Duration::from_millis(until - at)).await;
            heal(&nodes, &fault);
        });
    }
    planned
}

/// When a broker fault strikes and heals (`None`: not a broker fault).
fn window(fault: &ScheduledFault) -> Option<(Millis, Millis)> {
    match fault {
        ScheduledFault::BrokerCrash {
            at, restart_after, ..
        } => Some((*at, at + restart_after)),
        ScheduledFault::BrokerPartition { at, duration, .. }
        | ScheduledFault::SlowFollower { at, duration, .. } => Some((*at, at + duration)),
        _ => None,
    }
}

/// Strike `fault` now; false when its broker is not intact (skipped).
fn strike(nodes: &Nodes, fault: &ScheduledFault) -> bool {
    debug_assert!(window(fault).is_some_and(|(at, _)| at <= now_ms()));
    match fault {
        ScheduledFault::BrokerCrash {
            broker,
            lose_unflushed,
            ..
        } => nodes.crash(*broker, *lose_unflushed),
        ScheduledFault::BrokerPartition {
            broker,
            from_brokers,
            from_clients,
            ..
        } => nodes.partition(*broker, *from_brokers, *from_clients),
        ScheduledFault::SlowFollower { broker, .. } => nodes.slow(*broker, true),
        _ => unreachable!("not a broker fault"),
    }
}

/// Heal a fault that struck.
fn heal(nodes: &Nodes, fault: &ScheduledFault) {
    match fault {
        ScheduledFault::BrokerCrash { broker, .. } => nodes.restart(*broker),
        ScheduledFault::BrokerPartition { broker, .. } => nodes.heal(*broker),
        ScheduledFault::SlowFollower { broker, .. } => {
            nodes.slow(*broker, false);
        }
        _ => unreachable!("not a broker fault"),
    }
}
