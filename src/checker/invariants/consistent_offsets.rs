//! `consistent-offsets` (always): every read of one offset of a partition returns the same
//! record — Jepsen's "inconsistent offsets" at the broker level.
//!
//! Kafka never changes a record below the high watermark unless it loses it: an unclean
//! election, or the last in-sync replica losing its unflushed data, truncates committed
//! records, and the offsets they had are taken by later appends. A consumer that read
//! the old record and one that reads the new one at the same offset then disagree about
//! what the log holds.

use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::protocol::Offset;
use oversell_sim::{ClientId, Event, Millis, TopicPartition};
use std::collections::BTreeMap;

/// What a read saw at an offset: key, value, and who read it when.
struct Seen<'a> {
    key: &'a Option<String>,
    value: &'a Option<String>,
    client: &'a ClientId,
    seq: u64,
    time: Millis,
}

/// Every `Process` of a (partition, offset) carries the key and value of the first.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut first: BTreeMap<(&TopicPartition, Offset), Seen<'_>> = BTreeMap::new();
    for r in &cx.run.trace.records {
        let Event::Process {
            client,
            tp,
            offset,
            key,
            value,
        } = &r.event
        else {
            continue;
        };
        let Some(seen) = first.get(&(tp, *offset)) else {
            let seen = Seen {
                key,
                value,
                client,
                seq: r.seq,
                time: r.time,
            };
            first.insert((tp, *offset), seen);
            continue;
        };
        if seen.key == key && seen.value == value {
            continue;
        }
        let explanation = format!(
            "{client} read {tp}@{offset} = {} at t={}ms, where {} had read {} at t={}ms: two \
             records at one offset",
            show(key, value),
            r.time,
            seen.client,
            show(seen.key, seen.value),
            seen.time
        );
        out.push(cx.violation(
            Invariant::ConsistentOffsets,
            r.time,
            explanation,
            vec![seen.seq, r.seq],
        ));
    }
    out
}

fn show(key: &Option<String>, value: &Option<String>) -> String {
    let k = key.as_deref().unwrap_or("null");
    let v = value.as_deref().unwrap_or("null");
    format!("{k}:{v}")
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    fn read(s: &mut Sim, client: &str, offset: u64, value: &str) -> u64 {
        s.event(Event::Process {
            client: cid(client),
            tp: tp("orders", 0),
            offset,
            key: Some("o1".into()),
            value: Some(value.into()),
        })
    }

    #[test]
    fn consistent_offsets_flags_two_records_read_at_one_offset() {
        let mut s = Sim::new();
        read(&mut s, "ps-0/app", 0, "a");
        read(&mut s, "ps-0/app", 1, "b");
        read(&mut s, "ps-1/app", 0, "a"); // reprocessed: the same record
        assert!(violations(Invariant::ConsistentOffsets, &naive(), &s, 1000).is_empty());
        let p = s.at(5).event(Event::Process {
            client: cid("ps-1/app"),
            tp: tp("orders", 1),
            offset: 1,
            key: Some("o1".into()),
            value: Some("c".into()),
        });
        assert!(
            violations(Invariant::ConsistentOffsets, &naive(), &s, 1000).is_empty(),
            "another partition, another log: {p}"
        );
        s.at(7);
        let q = read(&mut s, "ps-1/app", 1, "c");
        let v = violations(Invariant::ConsistentOffsets, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].evidence, vec![1, q]);
        assert!(
            v[0].explanation.contains("orders-0@1 = o1:c")
                && v[0].explanation.contains("had read o1:b"),
            "{}",
            v[0].explanation
        );
    }
}
