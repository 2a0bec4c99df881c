//! `no-lost-write` (always / at quiescence): every acknowledged write is in the log,
//! committed, and consumed.

use crate::checker::commitment::Fate;
use crate::checker::words::label;
use crate::checker::{Cx, Invariant, Violation};
use crate::domain::Msg;
use oversell_sim::protocol::Offset;
use oversell_sim::{Event, TopicPartition, TraceRecord};

/// Every write acknowledged to any producer (every `Acked` event of the trace) is in the
/// log; and, unless its transaction aborted (an aborted transaction's writes were never
/// promised), at quiescence every application (its client id's `app`)
/// that processed any record of that partition processed this one too.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for r in &cx.run.trace.records {
        let Event::Acked {
            tp,
            base_offset,
            count,
            ..
        } = &r.event
        else {
            continue;
        };
        for offset in *base_offset..*base_offset + *count as u64 {
            out.extend(judge_write(cx, r, tp, offset));
        }
    }
    out
}

/// One acknowledged write.
fn judge_write(
    cx: &Cx<'_>,
    ack: &TraceRecord,
    tp: &TopicPartition,
    offset: Offset,
) -> Vec<Violation> {
    let Event::Acked { client, .. } = &ack.event else {
        unreachable!("an Acked event")
    };
    if let Some(v) = lost_with_a_suffix(cx, ack, tp, offset) {
        return vec![v];
    }
    match cx.h.fate(tp, offset) {
        None => {
            let explanation = format!(
                "the write to {tp}@{offset}, acknowledged to {client} at t={}ms, is not in the log",
                ack.time
            );
            return vec![cx.violation(Invariant::NoLostWrite, ack.time, explanation, vec![ack.seq])];
        }
        Some(Fate::Aborted | Fate::Open) => return Vec::new(),
        Some(Fate::Committed) => {}
    }
    if !cx.quiescent() {
        return Vec::new();
    }
    let append = cx.h.was_appended(tp, offset);
    // What was written, in words: read (decoded) only for a write that was never processed.
    let what = || {
        append
        .and_then(|seq| cx.run.trace.records.get(seq as usize))
        .and_then(|a| match &a.event {
            Event::Append { value, .. } => value.as_deref().and_then(Msg::decode),
            _ => None,
        })
        .map(|m| match m.order_id() {
            Some(o) => format!(" ({} {o})", m.kind()),
            None => format!(" ({})", label(&m)),
        })
        .unwrap_or_default()
    };
    let mut out = Vec::new();
    // Every application handed records of the partition (`Process` events), in name order.
    for (app, offsets) in cx.h.processed_at(tp) {
        if offsets.contains(&offset) {
            continue;
        }
        let last = offsets.last().copied().unwrap_or_default();
        let what = what();
        let explanation = format!(
            "the write to {tp}@{offset}{what}, acknowledged to {client} at t={}ms, was never processed by \
             {app}, which processed other records of {tp} (up to @{last})",
            ack.time
        );
        let mut evidence = vec![ack.seq];
        evidence.extend(append);
        out.push(cx.violation(Invariant::NoLostWrite, cx.run.end_time, explanation, evidence));
    }
    out
}

/// An acknowledged write the final log no longer holds at its offset (a replicated log
/// lost a suffix, and perhaps gave the offset to another record).
fn lost_with_a_suffix(
    cx: &Cx<'_>,
    ack: &TraceRecord,
    tp: &TopicPartition,
    offset: Offset,
) -> Option<Violation> {
    let Event::Acked { client, .. } = &ack.event else {
        unreachable!("an Acked event")
    };
    let (append, false) = cx.h.survival().kept_before(tp, offset, ack.seq)? else {
        return None;
    };
    let end = cx.run.broker.log_end_offset(tp);
    let how = if offset >= end {
        format!("the log of {tp} now ends at @{end}")
    } else {
        format!("another record now holds @{offset}")
    };
    let explanation = format!(
        "the write to {tp}@{offset}, acknowledged to {client} at t={}ms, was lost: {how}",
        ack.time
    );
    let evidence = vec![append, ack.seq];
    Some(cx.violation(Invariant::NoLostWrite, ack.time, explanation, evidence))
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn no_lost_write_flags_acknowledged_writes_missing_or_unprocessed() {
        let mut s = Sim::new();
        let o1 = s.msg("orders", placed("o1", "p1", 1));
        let o2 = s.msg("orders", placed("o2", "p1", 1));
        for o in [o1, o2] {
            s.event(Event::Acked {
                client: cid("frontend/producer"),
                tp: tp("orders", 0),
                base_offset: o,
                count: 1,
            });
        }
        // Streams acks (count 0) are not judged.
        s.event(Event::Acked {
            client: cid("ps-0/app"),
            tp: tp("orders", 1),
            base_offset: 9,
            count: 0,
        });
        s.process("ps-0/app", "orders", 0, o1);
        s.process("ps-1/app", "orders", 0, o2);
        s.process("ps-0/checker", "orders", 0, o1);
        s.process("ps-0/checker", "orders", 0, o2);
        assert!(violations(Invariant::NoLostWrite, &naive(), &s, 1000).is_empty());
        // An acknowledged write that is not in the log.
        s.at(40).event(Event::Acked {
            client: cid("frontend/producer"),
            tp: tp("orders", 0),
            base_offset: 7,
            count: 1,
        });
        let v = violations(Invariant::NoLostWrite, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "the write to orders-0@7, acknowledged to frontend/producer at t=40ms, is not in the log"
        );
        // One that an application skipped.
        let mut s = Sim::new();
        let o1 = s.msg("orders", placed("o1", "p1", 1));
        let o2 = s.msg("orders", placed("o2", "p1", 1));
        s.event(Event::Acked {
            client: cid("frontend/producer"),
            tp: tp("orders", 0),
            base_offset: o1,
            count: 1,
        });
        s.process("ps-0/app", "orders", 0, o2);
        s.at(100);
        let v = violations(Invariant::NoLostWrite, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "the write to orders-0@0 (OrderPlaced o1), acknowledged to frontend/producer at t=0ms, was never \
             processed by app, which processed other records of orders-0 (up to @1)"
        );
        s.outcome = Outcome::TimeBound; // not judged before quiescence
        assert!(violations(Invariant::NoLostWrite, &naive(), &s, 1000).is_empty());
    }

    #[test]
    fn no_lost_write_judges_every_acknowledged_producer_by_its_acks_not_its_name() {
        let mut s = Sim::new();
        // A transactional producer of an application: its committed write was acknowledged.
        let o = s.txn(&[("orders", 0, "o1", placed("o1", "p1", 1).encode())], true)[0];
        // Its aborted write was acknowledged too, but never promised.
        let a = s.txn(&[("orders", 0, "o2", placed("o2", "p1", 1).encode())], false)[0];
        let later = s.msg("orders", placed("o3", "p1", 1));
        s.process("svc-0/reader", "orders", 0, later);
        let v = violations(Invariant::NoLostWrite, &naive(), &s, 1000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].explanation,
            format!(
                "the write to orders-0@{o} (OrderPlaced o1), acknowledged to ps-0/app at t=0ms, was never processed \
                 by reader, which processed other records of orders-0 (up to @{later})"
            )
        );
        assert!(a > o);
        s.process("svc-1/reader", "orders", 0, o);
        assert!(violations(Invariant::NoLostWrite, &naive(), &s, 1000).is_empty());
    }
}

