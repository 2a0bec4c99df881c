//! `monotonic-commits` (always): a group's committed offsets never move backwards.
//!
//! Kafka has no request that moves a committed offset back except an explicit reset by an
//! administrator (`kafka-consumer-groups --reset-offsets`, an `OffsetCommit` to an empty
//! group), which no scenario issues. A position that goes back means records will be
//! processed again by whoever resumes from it: a fencing failure somewhere upstream.

use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::protocol::Offset;
use oversell_sim::{Event, Millis, TopicPartition};
use std::collections::BTreeMap;

/// Per group and partition, each committed offset (plain, or transactional once its
/// transaction committed) is at least the one committed before.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut last: BTreeMap<(&str, &TopicPartition), (Offset, u64, Millis)> = BTreeMap::new();
    for r in &cx.run.trace.records {
        let Event::OffsetCommit {
            group,
            generation,
            offsets,
            ..
        } = &r.event
        else {
            continue;
        };
        for (tp, offset) in offsets {
            let key = (group.as_str(), tp);
            if let Some((prev, prev_seq, prev_time)) = last.get(&key).copied() {
                if *offset < prev {
                    let explanation = format!(
                        "group {group} committed {tp}={offset} at t={}ms (generation {generation}) after {tp}={prev} at \
                         t={prev_time}ms: its committed offset went backwards",
                        r.time
                    );
                    out.push(cx.violation(
                        Invariant::MonotonicCommits,
                        r.time,
                        explanation,
                        vec![prev_seq, r.seq],
                    ));
                }
            }
            last.insert(key, (*offset, r.seq, r.time));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    fn commit(s: &mut Sim, group: &str, partition: u32, offset: u64) -> u64 {
        s.event(Event::OffsetCommit {
            member_id: "m".into(),
            group: group.into(),
            generation: 1,
            offsets: vec![(tp("orders", partition), offset)],
            transactional: false,
        })
    }

    #[test]
    fn monotonic_commits_flags_a_committed_offset_that_goes_back() {
        let mut s = Sim::new();
        commit(&mut s, "a", 0, 3);
        commit(&mut s, "a", 0, 3); // the same position again
        commit(&mut s, "a", 1, 1); // another partition
        commit(&mut s, "b", 0, 0); // another group
        let p = commit(&mut s, "a", 0, 5);
        assert!(violations(Invariant::MonotonicCommits, &naive(), &s, 1000).is_empty());
        let q = s.at(9).event(Event::OffsetCommit {
            member_id: "m".into(),
            group: "a".into(),
            generation: 1,
            offsets: vec![(tp("orders", 0), 4)],
            transactional: true,
        });
        let v = violations(Invariant::MonotonicCommits, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "group a committed orders-0=4 at t=9ms (generation 1) after orders-0=5 at t=0ms: its committed offset \
             went backwards"
        );
        assert_eq!(v[0].evidence, vec![p, q]);
    }

    #[test]
    fn committing_before_processing_fails_it_on_a_real_run() {
        use crate::designs::Mutation;
        let m = [Mutation::CommitBeforeProcess];
        let v = real_run("scenarios/zombie-after-rebalance.toml", "rekeyed-eos", &m, 0, None);
        assert!(v.violated().contains(&Invariant::MonotonicCommits), "{v}");
        let v = real_run("scenarios/zombie-after-rebalance.toml", "rekeyed-eos", &[], 0, None);
        assert!(!v.violated().contains(&Invariant::MonotonicCommits), "{v}");
    }
}
