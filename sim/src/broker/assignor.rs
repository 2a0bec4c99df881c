//! The cooperative assignment of a Kafka Streams group: sticky and balanced tasks, and the
//! two-step handover of a partition that changes owner.
//!
//! Kafka Streams assigns tasks, not partitions. Here every task stays where it ran, within
//! a balanced quota, and only the surplus moves to the least loaded client, ties by member
//! id: what Kafka's sticky assignors do (`LegacyStickyTaskAssignor`, the KIP-924
//! `StickyTaskAssignor`). Kafka Streams 4.x's default, `HighAvailabilityTaskAssignor`
//! (`AssignorConfiguration`: no `internal.task.assignor.class`), is not sticky when every
//! client is caught up (lag within `acceptable.recovery.lag`, 10,000 records — always, in
//! these stories): `assignActiveStatefulTasks` deals the stateful tasks round-robin over
//! the clients in process-id order and `TaskMovement.assignActiveTaskMovements` moves
//! none back; `assignStatelessActiveTasks` gives each stateless task to the least loaded
//! client, ties by process id (`ConstrainedPrioritySet`). Process ids are random UUIDs
//! (kept in the state directory only by an application with persistent stores,
//! `StateDirectory.initializeProcessId`), so when a second member joins, Kafka gives task
//! 0 to either member; the model always leaves it with the first. That is one of the
//! two placements Kafka reaches, and the scenarios name the instance that holds the
//! checked task in it; the live mode pauses the real holder (`[faults.live]
//! pause_holder`, `src/live/holder.rs`). Not modelled: the other placement's extra
//! handovers (a rejoining member with the smaller process id takes task 0 back).
//! Here a task is one partition number over
//! the group's topics (`(topic, p)` for every subscribed topic with a partition `p`), as
//! Kafka's range assignor also co-locates them today, so co-partitioned topics stay
//! together.
//!
//! `StreamsPartitionAssignor.populateActiveTaskAndPartitionsLists` then withholds, from
//! the member a task moves to, every partition another member still reports as owned:
//! the owner first revokes it (and commits), rejoins
//! (`ConsumerCoordinator.onJoinComplete` → `requestRejoin`), and the follow-up rebalance
//! hands it over. A partition that two members claim (a delayed or duplicated
//! `JoinGroup`) is invalidated for both, as `AbstractStickyAssignor` does with "multiple
//! consumers claiming the same TopicPartition in the same generation", and is given to
//! nobody until neither claims it.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::TopicPartition;

/// What the coordinator knows of one member at the end of a rebalance.
pub struct Claim<'a> {
    pub topics: &'a [String],
    pub owned: &'a [TopicPartition],
}

/// Members → partitions. `partitions_of` gives a topic's partition count (`None`: unknown,
/// not assigned). Every member appears in the result. The members must share one
/// subscription (as a Kafka Streams application's do); see [`same_subscription`].
pub fn cooperative_assignment(
    members: &BTreeMap<String, Claim<'_>>,
    partitions_of: impl Fn(&str) -> Option<u32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let units = units(members, &partitions_of);
    let claimers = claimers(members);
    let previous = previous_owners(&units, &claimers);
    let target = sticky_balanced(members.keys(), &units, &previous);
    withhold_owned(target, &claimers)
}

/// Whether every member subscribes to the same topics.
pub fn same_subscription(members: &BTreeMap<String, Claim<'_>>) -> bool {
    let mut subs = members.values().map(|c| {
        let mut t = c.topics.to_vec();
        t.sort();
        t
    });
    match subs.next() {
        Some(first) => subs.all(|s| s == first),
        None => true,
    }
}

/// Partition number → the partitions of that task, over the subscribed, known topics.
fn units(
    members: &BTreeMap<String, Claim<'_>>,
    partitions_of: &impl Fn(&str) -> Option<u32>,
) -> BTreeMap<u32, Vec<TopicPartition>> {
    let topics: BTreeSet<&str> = members
        .values()
        .flat_map(|c| c.topics.iter().map(String::as_str))
        .collect();
    let mut units: BTreeMap<u32, Vec<TopicPartition>> = BTreeMap::new();
    for topic in topics {
        for p in 0..partitions_of(topic).unwrap_or(0) {
            units
                .entry(p)
                .or_default()
                .push(TopicPartition::new(topic, p));
        }
    }
    units
}

/// Partition → the members that report it as owned.
fn claimers(members: &BTreeMap<String, Claim<'_>>) -> BTreeMap<TopicPartition, BTreeSet<String>> {
    let mut out: BTreeMap<TopicPartition, BTreeSet<String>> = BTreeMap::new();
    for (id, c) in members {
        for tp in c.owned {
            out.entry(tp.clone()).or_default().insert(id.clone());
        }
    }
    out
}

/// Task → its previous owner: the one member that claims its partitions uncontested.
fn previous_owners(
    units: &BTreeMap<u32, Vec<TopicPartition>>,
    claimers: &BTreeMap<TopicPartition, BTreeSet<String>>,
) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for (p, tps) in units {
        let owners: BTreeSet<&String> = tps
            .iter()
            .filter_map(|tp| claimers.get(tp))
            .flatten()
            .collect();
        let contested = tps
            .iter()
            .any(|tp| claimers.get(tp).is_some_and(|c| c.len() > 1));
        if let (1, false) = (owners.len(), contested) {
            out.insert(*p, (*owners.iter().next().expect("one owner")).clone());
        }
    }
    out
}

/// Every task kept by its previous owner within a balanced quota (⌊n/m⌋, or one more for
/// at most n mod m members), the rest to the least loaded member, ties by member id.
fn sticky_balanced<'a>(
    members: impl Iterator<Item = &'a String>,
    units: &BTreeMap<u32, Vec<TopicPartition>>,
    previous: &BTreeMap<u32, String>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut tasks: BTreeMap<String, Vec<u32>> = members.map(|m| (m.clone(), Vec::new())).collect();
    if tasks.is_empty() {
        return BTreeMap::new();
    }
    let (n, m) = (units.len(), tasks.len());
    let (base, mut extra) = (n / m, n % m);
    let mut kept: BTreeSet<u32> = BTreeSet::new();
    for round in [base, base + 1] {
        for (member, mine) in tasks.iter_mut() {
            let owned: Vec<u32> = previous
                .iter()
                .filter(|(p, o)| *o == member && !kept.contains(p))
                .map(|(p, _)| *p)
                .collect();
            for p in owned {
                let room = mine.len() < round && (round == base || extra > 0);
                if !room {
                    break;
                }
                if round > base {
                    extra -= 1;
                }
                mine.push(p);
                kept.insert(p);
            }
        }
    }
    for p in units.keys().filter(|p| !kept.contains(p)) {
        let (_, least) = tasks
            .iter_mut()
            .min_by_key(|(id, t)| (t.len(), (*id).clone()))
            .expect("members");
        least.push(*p);
    }
    let loads: Vec<usize> = tasks.values().map(Vec::len).collect();
    assert!(
        loads.iter().max().unwrap_or(&0) - loads.iter().min().unwrap_or(&0) <= 1,
        "broker bug: unbalanced cooperative assignment {loads:?}"
    );
    tasks
        .into_iter()
        .map(|(member, mut ps)| {
            ps.sort_unstable();
            let tps = ps.iter().flat_map(|p| units[p].iter().cloned()).collect();
            (member, tps)
        })
        .collect()
}

/// `populateActiveTaskAndPartitionsLists`: a partition another member still owns is not
/// given yet (the owner revokes it first; a follow-up rebalance hands it over).
fn withhold_owned(
    target: BTreeMap<String, Vec<TopicPartition>>,
    claimers: &BTreeMap<TopicPartition, BTreeSet<String>>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    target
        .into_iter()
        .map(|(member, tps)| {
            let given = tps
                .into_iter()
                .filter(|tp| {
                    claimers
                        .get(tp)
                        .is_none_or(|c| c.iter().all(|other| *other == member))
                })
                .collect();
            (member, given)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new("in", p)
    }

    fn assign(owned: &[(&str, &[u32])], partitions: u32) -> BTreeMap<String, Vec<u32>> {
        let topics = vec!["in".to_string()];
        let owned: Vec<(String, Vec<TopicPartition>)> = owned
            .iter()
            .map(|(m, ps)| (m.to_string(), ps.iter().map(|p| tp(*p)).collect()))
            .collect();
        let members = owned
            .iter()
            .map(|(m, o)| {
                let claim = Claim {
                    topics: &topics,
                    owned: o,
                };
                (m.clone(), claim)
            })
            .collect();
        cooperative_assignment(&members, |_| Some(partitions))
            .into_iter()
            .map(|(m, tps)| (m, tps.iter().map(|t| t.partition).collect()))
            .collect()
    }

    fn of(result: &BTreeMap<String, Vec<u32>>, m: &str) -> Vec<u32> {
        result[m].clone()
    }

    #[test]
    fn a_new_member_gets_nothing_another_still_owns() {
        // a owns all four; b joins: the balanced target moves two to b, but a still owns
        // them, so b gets them only at the follow-up rebalance.
        let r = assign(&[("a", &[0, 1, 2, 3]), ("b", &[])], 4);
        assert_eq!((of(&r, "a"), of(&r, "b")), (vec![0, 1], vec![]));
        // a revoked 2 and 3 and rejoined: now b gets them.
        let r = assign(&[("a", &[0, 1]), ("b", &[])], 4);
        assert_eq!((of(&r, "a"), of(&r, "b")), (vec![0, 1], vec![2, 3]));
    }

    #[test]
    fn owners_keep_their_tasks_and_the_surplus_goes_to_the_least_loaded() {
        let r = assign(&[("a", &[1, 3]), ("b", &[0]), ("c", &[])], 4);
        assert_eq!(of(&r, "a"), vec![1, 3]);
        assert_eq!(of(&r, "b"), vec![0]);
        assert_eq!(of(&r, "c"), vec![2]);
        // A range assignor would have moved every task: a=[0,1], b=[2], c=[3].
    }

    #[test]
    fn the_assignment_is_balanced_whatever_was_owned() {
        let r = assign(&[("a", &[0, 1, 2, 3, 4]), ("b", &[]), ("c", &[])], 5);
        // a keeps two (one above the quota of one at most, ⌈5/3⌉ = 2); nothing else is free.
        assert_eq!(of(&r, "a"), vec![0, 1]);
        let r = assign(&[("a", &[0, 1]), ("b", &[]), ("c", &[])], 5);
        let loads: Vec<usize> = r.values().map(Vec::len).collect();
        assert_eq!(loads, vec![2, 2, 1]);
    }

    #[test]
    fn a_partition_two_members_claim_goes_to_neither() {
        let r = assign(&[("a", &[0, 1]), ("b", &[1])], 2);
        assert!(!of(&r, "a").contains(&1) && !of(&r, "b").contains(&1));
        assert_eq!(of(&r, "a"), vec![0]);
    }
}
