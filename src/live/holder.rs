//! Which instance holds a task now, as the instances' own event logs say: what a live
//! pause strikes when the scenario names the task rather than the instance
//! (`[faults.live] pause_holder`).
//!
//! Kafka Streams 4.x does not keep a task with the member that ran it first when a second
//! member joins: `HighAvailabilityTaskAssignor.assign` hands stateful tasks round-robin
//! over the clients in process-id order (`assignActiveStatefulTasks`) and moves one back
//! only to a caught-up client when its target is not caught up (`TaskMovement
//! .assignActiveTaskMovements`; every client is caught up within
//! `acceptable.recovery.lag`, 10,000 records), and stateless tasks to the least loaded
//! client, ties by process id (`assignStatelessActiveTasks`, `ConstrainedPrioritySet`).
//! Process ids are random UUIDs, so which instance gets `orders-0` differs from run to
//! run. The simulator's sticky assignor (`sim/src/broker/assignor.rs`) always leaves it
//! with the first member; a scenario whose story is "the instance that owns the checked
//! task is paused" names that task, and the live run pauses whoever holds it.

use super::faults::{Action, Step, Target};
use super::history::{LiveEvent, LiveTask};
use serde::{Deserialize, Serialize};

/// A task's input partition, and the application whose task it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// The application (unprefixed, as the event logs name it: `product-checker`).
    pub app: String,
    pub topic: String,
    pub partition: u32,
}

/// The instance whose client `<instance>/<app>` holds `checked`'s partition, by each
/// instance's latest `assigned` event (written each time its application reaches
/// `RUNNING`, i.e. after every rebalance). When two claim it (one has not yet seen the
/// rebalance that took it away), the later claim wins; equal times, the first name.
/// `None` if nobody's latest assignment lists it.
pub fn holder<'a>(
    logs: impl IntoIterator<Item = (&'a str, &'a [LiveEvent])>,
    checked: &Checked,
) -> Option<String> {
    let task = LiveTask {
        topic: checked.topic.clone(),
        partition: checked.partition,
    };
    let mut best: Option<(u64, &str)> = None;
    for (instance, events) in logs {
        let client = format!("{instance}/{}", checked.app);
        let latest = events
            .iter()
            .filter(|e| e.kind == "assigned" && e.client == client)
            .max_by_key(|e| e.t);
        let Some(latest) = latest.filter(|e| e.tasks.contains(&task)) else {
            continue;
        };
        if best.is_none_or(|(t, _)| latest.t > t) {
            best = Some((latest.t, instance));
        }
    }
    best.map(|(_, instance)| instance.to_string())
}

/// Point the pause `stop` and the first pending resume of its instance at `to`: the
/// pause and its end strike the same process.
pub fn move_pause(stop: &mut Step, pending: &mut [Step], to: &str) {
    assert_eq!(
        stop.action,
        Action::Stop,
        "only a pause moves to a task's holder"
    );
    let to = Target::Instance(to.to_string());
    if let Some(cont) = pending
        .iter_mut()
        .find(|s| s.action == Action::Cont && s.target == stop.target)
    {
        cont.target = to.clone();
    }
    stop.target = to;
}

/// The application of a twin's `groups` (`app:input,input;...`) that reads `topic`
/// first: the one whose task on that topic the scenario checks.
pub fn reader_of(groups: &str, topic: &str) -> Option<String> {
    groups.split(';').find_map(|group| {
        let (app, inputs) = group.split_once(':')?;
        inputs
            .split(',')
            .any(|t| t.trim() == topic)
            .then(|| app.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(t: u64, client: &str, partitions: &[u32]) -> LiveEvent {
        LiveEvent {
            t,
            kind: "assigned".into(),
            client: client.into(),
            topic: None,
            partition: None,
            offset: None,
            store: None,
            key: None,
            value: None,
            tasks: partitions
                .iter()
                .map(|p| LiveTask {
                    topic: "orders".into(),
                    partition: *p,
                })
                .collect(),
            count: None,
            next: None,
        }
    }

    fn checked() -> Checked {
        Checked {
            app: "product-checker".into(),
            topic: "orders".into(),
            partition: 0,
        }
    }

    /// The run the conformance table recorded: the second instance joined and Kafka gave
    /// it `orders-0`; the pause must strike it, not the instance the scenario names.
    #[test]
    fn the_holder_is_whoever_was_last_assigned_the_partition_not_the_first_member() {
        let first = vec![
            assigned(10, "product-service-0/product-checker", &[0, 1]),
            assigned(20, "product-service-0/product-checker", &[1]),
            assigned(11, "product-service-0/product-stock", &[0]),
        ];
        let second = vec![
            assigned(15, "product-service-1/product-checker", &[]),
            assigned(25, "product-service-1/product-checker", &[0]),
        ];
        let logs = [
            ("product-service-0", first.as_slice()),
            ("product-service-1", second.as_slice()),
        ];
        assert_eq!(
            holder(logs, &checked()).as_deref(),
            Some("product-service-1")
        );
    }

    #[test]
    fn an_older_claim_loses_to_a_newer_one_and_another_application_does_not_count() {
        // product-service-0 still lists orders-0 from before the rebalance that moved it.
        let first = vec![assigned(10, "product-service-0/product-checker", &[0, 1])];
        let second = vec![
            assigned(30, "product-service-1/product-checker", &[0]),
            assigned(40, "product-service-1/product-stock", &[1]),
        ];
        let logs = [
            ("product-service-0", first.as_slice()),
            ("product-service-1", second.as_slice()),
        ];
        assert_eq!(
            holder(logs, &checked()).as_deref(),
            Some("product-service-1")
        );
        let only_stock = vec![assigned(40, "product-service-1/product-stock", &[0])];
        let logs = [("product-service-1", only_stock.as_slice())];
        assert_eq!(holder(logs, &checked()), None);
    }

    #[test]
    fn a_moved_pause_takes_its_own_resume_along_and_no_other() {
        let at = |at, action, who: &str| Step {
            at,
            action,
            target: Target::Instance(who.into()),
            origin: "schedule",
        };
        let mut stop = at(1030, Action::Stop, "product-service-0");
        let mut pending = vec![
            at(2000, Action::Kill, "product-service-0"),
            at(3030, Action::Cont, "product-service-0"),
            at(4000, Action::Stop, "product-service-0"),
            at(5000, Action::Cont, "product-service-0"),
        ];
        move_pause(&mut stop, &mut pending, "product-service-1");
        let who = |s: &Step| match &s.target {
            Target::Instance(n) => n.clone(),
            Target::Broker(_) => unreachable!(),
        };
        assert_eq!(who(&stop), "product-service-1");
        let targets: Vec<String> = pending.iter().map(who).collect();
        assert_eq!(
            targets,
            [
                "product-service-0",
                "product-service-1",
                "product-service-0",
                "product-service-0"
            ]
        );
    }

    #[test]
    fn the_checked_application_is_the_first_group_reading_the_topic() {
        let naive = "product-checker:orders;product-stock:orders,stock";
        assert_eq!(
            reader_of(naive, "orders").as_deref(),
            Some("product-checker")
        );
        assert_eq!(reader_of(naive, "stock").as_deref(), Some("product-stock"));
        assert_eq!(reader_of(naive, "order-replies"), None);
    }
}
