//! `own-end-txn` (always): a transaction ends only by its own producer's `EndTxn` for
//! that transaction, or by the coordinator's own abort (a timeout, a new producer).
//!
//! Kafka's `EndTxn` names no transaction: it carries the transactional id, the producer
//! id and epoch and commit or abort (`EndTxnRequest`). Before KIP-890 part 2 (transaction
//! protocol v1) the epoch stays the same from one transaction to the next, so the
//! coordinator cannot tell a late `EndTxn` of transaction N (delayed, its retry already
//! answered) from the producer's `EndTxn` of N+1: `TransactionCoordinator.endTransaction`
//! accepts any request with the current epoch (`producerEpoch == txnMetadata.producerEpoch`,
//! the v1 branch of `isValidEpoch`), and in `Ongoing` it prepares the commit or abort of
//! whatever transaction is open. KIP-890 part 2 (`TransactionVersion.TV_2`) closes it: every
//! end bumps the epoch (`TransactionMetadata.prepareAbortOrCommit`), a retry is recognised
//! by the epoch just before the current one (`endTxnEpochBumped`, `retryOnEpochBump`), and
//! an end request of an earlier transaction is `PRODUCER_FENCED`.
//!
//! Judged from the recorded history: the request whose delivery began a transaction
//! (`TxnBegin`, the first partition or offsets added) and the request whose delivery ended
//! it (`TxnCommit`, or `TxnAbort` in the same step as the delivery of an `EndTxn`). Message
//! ids are numbered in the order the messages were sent (a duplicate's copy takes the id
//! of the message it copies), and a producer sends the end of a transaction only after the
//! request that began it. So an end request from another client, or with an id below the
//! beginning request's, was meant for an earlier transaction.

use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::{ClientId, Event, Peer, TraceRecord};
use std::collections::BTreeMap;

/// A request delivered to the broker: its step, its (original) message id, its sender,
/// whether it was an `EndTxn`, and its trace position.
struct Delivered<'r> {
    choice: u64,
    id: u64,
    client: &'r ClientId,
    end_txn: bool,
    seq: u64,
}

/// The open transaction of a transactional id: the request that began it.
struct Begun<'r> {
    client: &'r ClientId,
    id: u64,
    seq: u64,
    time: u64,
}

/// Walking the trace: each transaction's beginning request against its ending one.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut original: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last: Option<Delivered<'_>> = None;
    let mut open: BTreeMap<&str, Begun<'_>> = BTreeMap::new();
    for r in &cx.run.trace.records {
        match &r.event {
            Event::Duplicate { id, copy, .. } => {
                let first = original.get(id).copied().unwrap_or(*id);
                original.insert(*copy, first);
            }
            Event::Deliver {
                id,
                from: Peer::Client(client),
                to: Peer::Broker,
                what,
            } => {
                last = Some(Delivered {
                    choice: r.choice,
                    id: original.get(id).copied().unwrap_or(*id),
                    client,
                    end_txn: *what == "EndTxn[commit]" || *what == "EndTxn[abort]",
                    seq: r.seq,
                });
            }
            Event::TxnBegin {
                transactional_id, ..
            } => match last.as_ref().filter(|d| d.choice == r.choice) {
                Some(d) => {
                    let begun = Begun {
                        client: d.client,
                        id: d.id,
                        seq: r.seq,
                        time: r.time,
                    };
                    open.insert(transactional_id, begun);
                }
                // Not begun by a request (never in the simulator): nothing to judge it by.
                None => {
                    open.remove(transactional_id.as_str());
                }
            },
            Event::TxnCommit {
                transactional_id, ..
            }
            | Event::TxnAbort {
                transactional_id, ..
            } => {
                let begun = open.remove(transactional_id.as_str());
                let ender = last.as_ref().filter(|d| d.choice == r.choice && d.end_txn);
                if let (Some(b), Some(d)) = (begun, ender) {
                    out.extend(judge_end(cx, transactional_id, &b, d, r));
                }
            }
            _ => {}
        }
    }
    out
}

/// The violation, if the `EndTxn` `d` that ended `tid`'s transaction `b` (at `r`) was not
/// that transaction's own.
fn judge_end(
    cx: &Cx<'_>,
    tid: &str,
    b: &Begun<'_>,
    d: &Delivered<'_>,
    r: &TraceRecord,
) -> Option<Violation> {
    let what = if matches!(r.event, Event::TxnCommit { .. }) {
        "committed"
    } else {
        "aborted"
    };
    let why = if d.client != b.client {
        format!("from {}, not {}, the producer that began it", d.client, b.client)
    } else if d.id < b.id {
        format!(
            "sent before that transaction's first request #{}: an end meant for an earlier \
             transaction (a late EndTxn)",
            b.id
        )
    } else {
        return None;
    };
    let explanation = format!(
        "the coordinator {what} the transaction of {tid} begun at t={}ms on EndTxn request #{} \
         at t={}ms, {why}",
        b.time, d.id, r.time
    );
    Some(cx.violation(Invariant::OwnEndTxn, r.time, explanation, vec![b.seq, d.seq, r.seq]))
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use oversell_sim::Peer;

    /// A request of `client` delivered to the broker in step `choice`, then what the broker
    /// recorded in the same step.
    fn deliver(s: &mut Sim, choice: u64, id: u64, client: &str, what: &str, then: Vec<Event>) {
        let from = Peer::Client(cid(client));
        let (to, what) = (Peer::Broker, what.into());
        s.trace.push(s.now, choice, Event::Deliver { id, from, to, what });
        for e in then {
            s.trace.push(s.now, choice, e);
        }
    }

    fn begin() -> Event {
        Event::TxnBegin {
            transactional_id: "t".into(),
            producer_id: 7,
            epoch: 0,
        }
    }

    fn commit() -> Event {
        Event::TxnCommit {
            transactional_id: "t".into(),
            producer_id: 7,
            epoch: 0,
        }
    }

    /// Transaction 1 begins with request 0; its `EndTxn` (1) is delayed, the retry (2)
    /// commits it, transaction 2 begins with request 3; then request `late` arrives and
    /// commits transaction 2.
    fn story(late: u64) -> Sim {
        let mut s = Sim::new();
        deliver(&mut s, 1, 0, "ps-0/app", "Produce[orders-0x1]", vec![begin()]);
        deliver(&mut s, 2, 2, "ps-0/app", "EndTxn[commit]", vec![commit()]);
        s.at(5);
        deliver(&mut s, 3, 3, "ps-0/app", "Produce[orders-0x1]", vec![begin()]);
        s.at(9);
        deliver(&mut s, 4, late, "ps-0/app", "EndTxn[commit]", vec![commit()]);
        s
    }

    #[test]
    fn a_late_end_txn_that_ends_the_next_transaction_is_flagged() {
        let s = story(1);
        let v = violations(Invariant::OwnEndTxn, &naive(), &s, 1000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].explanation,
            "the coordinator committed the transaction of t begun at t=5ms on EndTxn request #1 \
             at t=9ms, sent before that transaction's first request #3: an end meant for an \
             earlier transaction (a late EndTxn)"
        );
        assert_eq!(v[0].evidence, vec![5, 6, 7]);
    }

    #[test]
    fn the_producers_own_end_holds_and_a_duplicate_counts_as_its_original() {
        let s = story(4);
        assert!(violations(Invariant::OwnEndTxn, &naive(), &s, 1000).is_empty());
        // A copy made late of request 1 is still request 1.
        let mut s = story(9);
        s.trace.records.truncate(6);
        s.trace.push(
            9,
            4,
            Event::Duplicate {
                id: 1,
                copy: 9,
                what: "EndTxn[commit]".into(),
            },
        );
        deliver(&mut s, 5, 9, "ps-0/app", "EndTxn[commit]", vec![commit()]);
        assert_eq!(violations(Invariant::OwnEndTxn, &naive(), &s, 1000).len(), 1);
    }

    #[test]
    fn another_clients_end_is_flagged_and_coordinator_aborts_are_not_judged() {
        let mut s = Sim::new();
        deliver(&mut s, 1, 0, "ps-0/app", "Produce[orders-0x1]", vec![begin()]);
        deliver(&mut s, 2, 5, "ps-1/app", "EndTxn[commit]", vec![commit()]);
        let v = violations(Invariant::OwnEndTxn, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(v[0].explanation.ends_with("from ps-1/app, not ps-0/app, the producer that began it"));
        // A new producer's InitProducerId aborts the open transaction: not an EndTxn.
        let mut s = Sim::new();
        deliver(&mut s, 1, 0, "ps-0/app", "Produce[orders-0x1]", vec![begin()]);
        let abort = Event::TxnAbort {
            transactional_id: "t".into(),
            producer_id: 7,
            epoch: 0,
            reason: "a new producer".into(),
        };
        deliver(&mut s, 2, 5, "ps-1/app", "InitProducerId", vec![abort]);
        assert!(violations(Invariant::OwnEndTxn, &naive(), &s, 1000).is_empty());
    }
}
