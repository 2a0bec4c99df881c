//! `no-aborted-read` (always): no consumer of committed data processed an aborted record
//! (Jepsen G1a).

use crate::checker::commitment::Fate;
use crate::checker::words::label;
use crate::checker::{Cx, Invariant, Violation};
use crate::domain::Msg;
use oversell_sim::protocol::Isolation;
use oversell_sim::{ClientId, Event};
use std::collections::BTreeSet;

/// No client of an exactly-once application — one that fetches with `read_committed`, or
/// one whose writes were acknowledged under a transactional producer id — processes a
/// record of an aborted transaction (Jepsen G1a).
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut read_committed: BTreeSet<&ClientId> = BTreeSet::new();
    let mut read_uncommitted: BTreeSet<&ClientId> = BTreeSet::new();
    for r in &cx.run.trace.records {
        if let Event::Fetch {
            client, isolation, ..
        } = &r.event
        {
            match isolation {
                Isolation::ReadCommitted => read_committed.insert(client),
                Isolation::ReadUncommitted => read_uncommitted.insert(client),
            };
        }
    }
    for r in &cx.run.trace.records {
        let Event::Process {
            client, tp, offset, ..
        } = &r.event
        else {
            continue;
        };
        let committed_reader = read_committed.contains(client);
        if !committed_reader && !cx.h.is_transactional_client(client) {
            continue;
        }
        if cx.h.fate(tp, *offset) != Some(Fate::Aborted) {
            continue;
        }
        let append = cx.h.was_appended(tp, *offset);
        let what = append
            .and_then(|seq| cx.run.trace.records.get(seq as usize))
            .and_then(|a| match &a.event {
                Event::Append { value, .. } => value.as_deref().and_then(Msg::decode),
                _ => None,
            })
            .map(|m| match m.order_id() {
                Some(o) => format!(" ({} for order {o})", label(&m)),
                None => format!(" ({})", label(&m)),
            })
            .unwrap_or_default();
        let how = if committed_reader && !read_uncommitted.contains(client) {
            "a read_committed consumer"
        } else {
            "a consumer of an exactly-once application, fetching with read_uncommitted"
        };
        let marker = cx.h.marker(tp, *offset);
        let aborted_at = marker
            .and_then(|seq| cx.run.trace.records.get(seq as usize))
            .map(|m| format!(", aborted at t={}ms", m.time))
            .unwrap_or_default();
        let explanation = format!(
            "{client}, {how}, processed {tp}@{offset}{what} at t={}ms, a record of an aborted transaction{aborted_at}",
            r.time
        );
        let mut evidence = vec![r.seq];
        evidence.extend(append);
        evidence.extend(marker);
        out.push(cx.violation(Invariant::NoAbortedRead, r.time, explanation, evidence));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn no_aborted_read_flags_a_committed_reader_that_processed_an_aborted_record() {
        let mut s = Sim::new();
        let committed = s.msg("orders", placed("o1", "p1", 1));
        let aborted = s.txn(
            &[("orders", 0, "o2", stock_reserved("o2", "p1", 1).encode())],
            false,
        )[0];
        s.event(Event::Fetch {
            client: cid("order-service-0/orders-app"),
            tp: tp("orders", 0),
            from: 0,
            count: 2,
            next: 3,
            isolation: Isolation::ReadCommitted,
        });
        s.at(30)
            .process("order-service-0/orders-app", "orders", 0, committed);
        // A read_uncommitted consumer of an at-least-once application may see it.
        s.event(Event::Fetch {
            client: cid("x-0/alo"),
            tp: tp("orders", 0),
            from: 0,
            count: 2,
            next: 3,
            isolation: Isolation::ReadUncommitted,
        });
        s.process("x-0/alo", "orders", 0, aborted);
        assert!(violations(Invariant::NoAbortedRead, &saga(), &s, 1000).is_empty());
        s.at(31)
            .process("order-service-0/orders-app", "orders", 0, aborted);
        // `ps-0/app` has the transactional id `app-ps-0`: exactly-once, whatever it fetches with.
        s.at(32).process("ps-0/app", "orders", 0, aborted);
        let v = violations(Invariant::NoAbortedRead, &saga(), &s, 1000);
        assert_eq!(v.len(), 2);
        assert!(
            v[0].explanation.starts_with(
                "order-service-0/orders-app, a read_committed consumer, processed orders-0@1 (StockReserved for \
                 order o2) at t=31ms, a record of an aborted transaction, aborted at t=0ms"
            ),
            "{}",
            v[0].explanation
        );
        assert!(
            v[1].explanation
                .starts_with("ps-0/app, a consumer of an exactly-once application"),
            "{}",
            v[1].explanation
        );
    }
}
