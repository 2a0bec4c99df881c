//! `commit-generation` (always): every offset commit the group coordinator accepted
//! carried its group's current generation.
//!
//! Kafka's group coordinator rejects an `OffsetCommit` whose generation is not the
//! group's (`GroupCoordinator.handleCommitOffsets` → `ILLEGAL_GENERATION`), and since
//! KIP-447 a `TxnOffsetCommit` too (`GroupCoordinator.handleTxnCommitOffsets`,
//! `validateOffsetCommit`). A commit accepted from an older generation lets a zombie
//! move a partition's position after it lost the partition.

use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::protocol::{Generation, Offset};
use oversell_sim::{Event, Millis, TopicPartition};
use std::collections::BTreeMap;

/// An accepted commit, as the trace shows it.
struct Commit<'r> {
    seq: u64,
    time: Millis,
    group: &'r str,
    generation: Generation,
    offsets: &'r [(TopicPartition, Offset)],
    what: String,
}

/// Walking the trace: each accepted plain `OffsetCommit`, and each accepted
/// `TxnOffsetCommit` (a `TxnOffsets` event: the KIP-447 check happens there; the
/// transactional `OffsetCommit` at `EndTxn` only materialises it), carries the
/// generation of the group's last completed rebalance.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut current: BTreeMap<&str, (Generation, u64)> = BTreeMap::new();
    for r in &cx.run.trace.records {
        let commit = match &r.event {
            Event::Rebalance {
                group, generation, ..
            } => {
                current.insert(group, (*generation, r.seq));
                continue;
            }
            Event::OffsetCommit {
                group,
                generation,
                offsets,
                transactional: false,
            } => Commit {
                seq: r.seq,
                time: r.time,
                group,
                generation: *generation,
                offsets,
                what: "an offset commit".to_string(),
            },
            Event::TxnOffsets {
                transactional_id,
                group,
                generation,
                offsets,
            } => Commit {
                seq: r.seq,
                time: r.time,
                group,
                generation: *generation,
                offsets,
                what: format!("a transactional offset commit of {transactional_id}"),
            },
            _ => continue,
        };
        out.extend(judge_commit(cx, &commit, current.get(commit.group)));
    }
    out
}

fn judge_commit(cx: &Cx<'_>, c: &Commit<'_>, current: Option<&(Generation, u64)>) -> Option<Violation> {
    let positions: Vec<String> = c.offsets.iter().map(|(tp, o)| format!("{tp}={o}")).collect();
    let (now, evidence) = match current {
        Some((g, _)) if *g == c.generation => return None,
        Some((g, rebalance)) => (format!("the group was at generation {g}"), vec![*rebalance, c.seq]),
        None => ("the group had completed no rebalance".to_string(), vec![c.seq]),
    };
    let explanation = format!(
        "group {} accepted {} ({}) at t={}ms from generation {}, but {now}",
        c.group,
        c.what,
        positions.join(", "),
        c.time,
        c.generation
    );
    Some(cx.violation(Invariant::CommitGeneration, c.time, explanation, evidence))
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    fn rebalance(s: &mut Sim, generation: u32) -> u64 {
        s.event(Event::Rebalance {
            group: "app".into(),
            generation,
            assignment: vec![],
        })
    }

    fn commit(s: &mut Sim, generation: u32, transactional: bool) -> u64 {
        s.event(Event::OffsetCommit {
            group: "app".into(),
            generation,
            offsets: vec![(tp("orders", 0), 4)],
            transactional,
        })
    }

    #[test]
    fn commit_generation_flags_a_commit_accepted_from_a_stale_generation() {
        let mut s = Sim::new();
        rebalance(&mut s, 1);
        commit(&mut s, 1, false);
        let r2 = rebalance(&mut s, 2);
        commit(&mut s, 2, false);
        // The materialised transactional commit is judged where it was checked (TxnOffsets).
        commit(&mut s, 1, true);
        assert!(violations(Invariant::CommitGeneration, &naive(), &s, 1000).is_empty());
        let stale = s.at(7).event(Event::OffsetCommit {
            group: "app".into(),
            generation: 1,
            offsets: vec![(tp("orders", 0), 2)],
            transactional: false,
        });
        // A pre-KIP-447 transactional commit carries no generation at all.
        s.at(8).event(Event::TxnOffsets {
            transactional_id: "app-ps-0".into(),
            group: "app".into(),
            generation: 0,
            offsets: vec![(tp("orders", 1), 3)],
        });
        let v = violations(Invariant::CommitGeneration, &naive(), &s, 1000);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].explanation,
            "group app accepted an offset commit (orders-0=2) at t=7ms from generation 1, but the group was at \
             generation 2"
        );
        assert_eq!(v[0].evidence, vec![r2, stale]);
        assert_eq!(
            v[1].explanation,
            "group app accepted a transactional offset commit of app-ps-0 (orders-1=3) at t=8ms from generation \
             0, but the group was at generation 2"
        );
    }
}
