//! `monotonic-offsets` (always): a consumer's offsets never go back within one
//! assignment.

use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::protocol::Offset;
use oversell_sim::{ClientId, Event, Millis, TopicPartition};
use std::collections::BTreeMap;


/// Per client and partition, `Process` offsets never decrease between the client's
/// (re)assignments (`Assigned`) and its instance's crashes and restarts. Equal offsets are
/// allowed: a processor may ask for a record to be retried.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut last: BTreeMap<(&ClientId, &TopicPartition), (Offset, u64, Millis)> = BTreeMap::new();
    for r in &cx.run.trace.records {
        match &r.event {
            Event::Assigned { client, .. } => last.retain(|(c, _), _| *c != client),
            Event::Crash { instance } | Event::Restart { instance } => {
                last.retain(|(c, _), _| c.instance != *instance)
            }
            Event::Process {
                client, tp, offset, ..
            } => {
                if let Some((prev, prev_seq, prev_time)) = last.get(&(client, tp)).copied()
                {
                    if *offset < prev {
                        let explanation = format!(
                            "{client} processed {tp}@{offset} at t={}ms after {tp}@{prev} at t={prev_time}ms, with no \
                             rebalance or restart in between: its offsets went backwards",
                            r.time
                        );
                        out.push(cx.violation(
                            Invariant::MonotonicOffsets,
                            r.time,
                            explanation,
                            vec![prev_seq, r.seq],
                        ));
                    }
                }
                last.insert((client, tp), (*offset, r.seq, r.time));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn monotonic_offsets_flags_a_rewind_without_rebalance_or_restart() {
        let mut s = Sim::new();
        let c = "ps-0/app";
        s.process(c, "orders", 0, 0);
        s.process(c, "orders", 0, 1);
        s.process(c, "orders", 0, 1); // a retry
        s.process(c, "orders", 1, 0); // another partition
        s.event(Event::Assigned {
            client: cid(c),
            generation: 2,
            tasks: vec![tp("orders", 0)],
        });
        s.process(c, "orders", 0, 0);
        s.event(Event::Crash {
            instance: "ps-0".into(),
        });
        s.event(Event::Restart {
            instance: "ps-0".into(),
        });
        s.process(c, "orders", 0, 0);
        assert!(violations(Invariant::MonotonicOffsets, &naive(), &s, 1000).is_empty());
        let p = s.at(5).process(c, "orders", 0, 3);
        let q = s.at(6).process(c, "orders", 0, 2);
        let v = violations(Invariant::MonotonicOffsets, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "ps-0/app processed orders-0@2 at t=6ms after orders-0@3 at t=5ms, with no rebalance or restart in \
             between: its offsets went backwards"
        );
        assert_eq!(v[0].evidence, vec![p, q]);
    }
}
