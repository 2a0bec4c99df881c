//! `commit-generation` (always): every offset commit the group coordinator accepted
//! carried its group's current generation and came from a member of that generation.
//!
//! Kafka's group coordinator rejects an `OffsetCommit` whose generation is not the
//! group's (`OffsetMetadataManager.commitOffset` → `ClassicGroup.validateOffsetCommit` →
//! `ILLEGAL_GENERATION`), and since KIP-447 a `TxnOffsetCommit` too
//! (`OffsetMetadataManager.commitTransactionalOffset`, the same validation). A commit accepted from an older generation lets a zombie
//! move a partition's position after it lost the partition.

use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::protocol::{Generation, Offset};
use oversell_sim::{Event, Millis, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// An accepted commit, as the trace shows it.
struct Commit<'r> {
    seq: u64,
    time: Millis,
    group: &'r str,
    member: &'r str,
    generation: Generation,
    offsets: &'r [(TopicPartition, Offset)],
    what: String,
}

/// A group's last completed rebalance: its generation, the members it assigned to, and
/// the `Rebalance` event.
struct Current<'r> {
    generation: Generation,
    members: BTreeSet<&'r str>,
    seq: u64,
}

/// Walking the trace: each accepted plain `OffsetCommit`, and each accepted
/// `TxnOffsetCommit` (a `TxnOffsets` event: the KIP-447 check happens there; the
/// transactional `OffsetCommit` at `EndTxn` only materialises it), carries the
/// generation of the group's last completed rebalance and comes from a member of that
/// generation's assignment (`ClassicGroup.validateOffsetCommit`: an unknown member is
/// `UNKNOWN_MEMBER_ID`, another generation `ILLEGAL_GENERATION`).
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut current: BTreeMap<&str, Current<'_>> = BTreeMap::new();
    for r in &cx.run.trace.records {
        // A completed rebalance, or a group coordinator that loaded the group back at an
        // older generation (the later ones' records were lost before any was answered:
        // for the cluster the group is at the loaded generation again).
        if let Event::Rebalance {
            group,
            generation,
            assignment,
        }
        | Event::GroupLoaded {
            group,
            generation,
            assignment,
        } = &r.event
        {
            let members = assignment.iter().map(|(m, _)| m.as_str()).collect();
            let now = Current {
                generation: *generation,
                members,
                seq: r.seq,
            };
            current.insert(group, now);
            continue;
        }
        let Some(commit) = commit_of(r.seq, r.time, &r.event) else {
            continue;
        };
        out.extend(judge_commit(cx, &commit, current.get(commit.group)));
    }
    out
}

/// The accepted commit an event records, if it is one this invariant judges.
fn commit_of(seq: u64, time: Millis, event: &Event) -> Option<Commit<'_>> {
    match event {
        Event::OffsetCommit {
            group,
            member_id,
            generation,
            offsets,
            transactional: false,
        } => Some(Commit {
            seq,
            time,
            group,
            member: member_id,
            generation: *generation,
            offsets,
            what: "an offset commit".to_string(),
        }),
        Event::TxnOffsets {
            transactional_id,
            group,
            member_id,
            generation,
            offsets,
            ..
        } => Some(Commit {
            seq,
            time,
            group,
            member: member_id,
            generation: *generation,
            offsets,
            what: format!("a transactional offset commit of {transactional_id}"),
        }),
        _ => None,
    }
}

fn judge_commit(cx: &Cx<'_>, c: &Commit<'_>, current: Option<&Current<'_>>) -> Option<Violation> {
    let positions: Vec<String> = c.offsets.iter().map(|(tp, o)| format!("{tp}={o}")).collect();
    let (now, evidence) = match current {
        Some(g) if g.generation == c.generation && g.members.contains(c.member) => return None,
        Some(g) if g.generation == c.generation => (
            outside(c.member, g.generation),
            vec![g.seq, c.seq],
        ),
        Some(g) => (format!("the group was at generation {}", g.generation), vec![g.seq, c.seq]),
        None => ("the group had completed no rebalance".to_string(), vec![c.seq]),
    };
    let explanation = format!(
        "group {} accepted {} ({}) at t={}ms from {} of generation {}, but {now}",
        c.group,
        c.what,
        positions.join(", "),
        c.time,
        member(c.member),
        c.generation
    );
    Some(cx.violation(Invariant::CommitGeneration, c.time, explanation, evidence))
}

/// Why a commit of the current generation is not a member's.
fn outside(member: &str, generation: Generation) -> String {
    if member.is_empty() {
        "the request carried no member id".to_string()
    } else {
        format!("{member} is not in generation {generation}'s assignment")
    }
}

/// A member id in words (an empty one: a request without group metadata).
fn member(id: &str) -> String {
    if id.is_empty() {
        "no member".to_string()
    } else {
        format!("member {id}")
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    fn rebalance(s: &mut Sim, generation: u32) -> u64 {
        s.event(Event::Rebalance {
            group: "app".into(),
            generation,
            assignment: vec![("m1".into(), vec![tp("orders", 0)]), ("m2".into(), vec![])],
        })
    }

    fn commit(s: &mut Sim, member: &str, generation: u32, transactional: bool) -> u64 {
        s.event(Event::OffsetCommit {
            group: "app".into(),
            member_id: member.into(),
            generation,
            offsets: vec![(tp("orders", 0), 4)],
            transactional,
        })
    }

    fn txn_offsets(s: &mut Sim, member: &str, generation: u32) -> u64 {
        s.event(Event::TxnOffsets {
            transactional_id: "app-ps-0".into(),
            producer_id: 3,
            epoch: 0,
            group: "app".into(),
            member_id: member.into(),
            generation,
            offsets: vec![(tp("orders", 1), 3)],
        })
    }

    #[test]
    fn commit_generation_flags_a_commit_accepted_from_a_stale_generation() {
        let mut s = Sim::new();
        rebalance(&mut s, 1);
        commit(&mut s, "m1", 1, false);
        let r2 = rebalance(&mut s, 2);
        commit(&mut s, "m1", 2, false);
        // A member with no partitions is a member; a commit need not be of its partitions
        // (a cooperative member commits what it revokes).
        commit(&mut s, "m2", 2, false);
        txn_offsets(&mut s, "m2", 2);
        // The materialised transactional commit is judged where it was checked (TxnOffsets).
        commit(&mut s, "", 1, true);
        assert!(violations(Invariant::CommitGeneration, &naive(), &s, 1000).is_empty());
        let stale = s.at(7).event(Event::OffsetCommit {
            group: "app".into(),
            member_id: "m1".into(),
            generation: 1,
            offsets: vec![(tp("orders", 0), 2)],
            transactional: false,
        });
        // A pre-KIP-447 transactional commit carries no member and no generation at all.
        s.at(8);
        txn_offsets(&mut s, "", 0);
        let v = violations(Invariant::CommitGeneration, &naive(), &s, 1000);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].explanation,
            "group app accepted an offset commit (orders-0=2) at t=7ms from member m1 of generation 1, but the \
             group was at generation 2"
        );
        assert_eq!(v[0].evidence, vec![r2, stale]);
        assert_eq!(
            v[1].explanation,
            "group app accepted a transactional offset commit of app-ps-0 (orders-1=3) at t=8ms from no member of \
             generation 0, but the group was at generation 2"
        );
    }

    /// A generation whose record a coordinator failover lost never happened for the
    /// cluster: after `GroupLoaded` the loaded generation is the group's again, and the
    /// lost one is stale.
    #[test]
    fn commit_generation_follows_a_group_loaded_back_at_an_older_generation() {
        let mut s = Sim::new();
        rebalance(&mut s, 3);
        rebalance(&mut s, 4);
        s.at(5).event(Event::GroupLoaded {
            group: "app".into(),
            generation: 3,
            assignment: vec![("m1".into(), vec![tp("orders", 0)])],
        });
        s.at(6);
        commit(&mut s, "m1", 3, false);
        assert!(violations(Invariant::CommitGeneration, &naive(), &s, 1000).is_empty());
        s.at(7);
        commit(&mut s, "m1", 4, false);
        let v = violations(Invariant::CommitGeneration, &naive(), &s, 1000);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn commit_generation_flags_a_commit_from_a_member_outside_the_assignment() {
        let mut s = Sim::new();
        let r1 = rebalance(&mut s, 1);
        let plain = s.at(5).event(Event::OffsetCommit {
            group: "app".into(),
            member_id: "m3".into(),
            generation: 1,
            offsets: vec![(tp("orders", 0), 2)],
            transactional: false,
        });
        s.at(6);
        let txn = txn_offsets(&mut s, "", 1);
        let v = violations(Invariant::CommitGeneration, &naive(), &s, 1000);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].explanation,
            "group app accepted an offset commit (orders-0=2) at t=5ms from member m3 of generation 1, but m3 is \
             not in generation 1's assignment"
        );
        assert_eq!(v[0].evidence, vec![r1, plain]);
        assert_eq!(
            v[1].explanation,
            "group app accepted a transactional offset commit of app-ps-0 (orders-1=3) at t=6ms from no member of \
             generation 1, but the request carried no member id"
        );
        assert_eq!(v[1].evidence, vec![r1, txn]);
    }

    #[test]
    fn a_pre_kip_447_transactional_commit_fails_it_on_a_real_run() {
        use crate::designs::Mutation;
        let v = real_run("scenarios/zombie-after-rebalance.toml", "rekeyed-eos", &[Mutation::Unfenced], 0, None);
        assert!(v.violated().contains(&Invariant::CommitGeneration), "{v}");
        let v = real_run("scenarios/zombie-after-rebalance.toml", "rekeyed-eos", &[], 0, None);
        assert!(!v.violated().contains(&Invariant::CommitGeneration), "{v}");
    }
}
