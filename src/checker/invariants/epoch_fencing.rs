//! `epoch-fencing` (always): no write, `TxnOffsetCommit` or `EndTxn` from a fenced
//! producer epoch is accepted.
//!
//! `InitProducerId` bumps the epoch of a transactional id and fences every older one
//! (`TransactionCoordinator.handleInitProducerId`; the partition leader then rejects an
//! older epoch's append in `ProducerAppendInfo.checkProducerEpoch`, the coordinator
//! an older epoch's `EndTxn` in `TransactionCoordinator.handleEndTransaction`). A timed
//! out transaction's abort bumps the epoch too (`Fenced`).

use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::protocol::{Epoch, Offset, ProducerId};
use oversell_sim::{Event, TopicPartition};
use std::collections::BTreeMap;

/// Per transactional id: the producer id and epoch of its latest `InitProducerId`, and
/// the highest epoch fenced since.
#[derive(Default)]
struct Ids<'r> {
    current: BTreeMap<&'r str, (ProducerId, Epoch, u64)>,
    fenced: BTreeMap<&'r str, (ProducerId, Epoch, u64)>,
    tid_of: BTreeMap<ProducerId, &'r str>,
}

impl Ids<'_> {
    /// Why `(pid, epoch)` of `tid` is fenced, with the event that fenced it.
    fn stale(&self, tid: &str, pid: ProducerId, epoch: Epoch) -> Option<(String, u64)> {
        if let Some((cp, ce, seq)) = self.current.get(tid) {
            if pid != *cp || epoch < *ce {
                let why = format!("the latest InitProducerId of {tid} gave pid {cp} epoch {ce}");
                return Some((why, *seq));
            }
        }
        match self.fenced.get(tid) {
            Some((fp, fe, seq)) if pid == *fp && epoch <= *fe => {
                Some((format!("epoch {fe} of {tid} (pid {fp}) was fenced"), *seq))
            }
            _ => None,
        }
    }
}

/// Walking the trace: every accepted transactional `Append`, `TxnOffsets` (a
/// `TxnOffsetCommit`: `GroupCoordinatorService.commitTransactionalOffsets` writes the
/// offsets as a transactional batch of `__consumer_offsets`, whose append
/// `ProducerAppendInfo.checkProducerEpoch` checks), `TxnCommit` and `TxnAbort` carries its transactional id's
/// current producer id and epoch.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut ids = Ids::default();
    for r in &cx.run.trace.records {
        if ids.observe(&r.event, r.seq) {
            continue;
        }
        let Some((tid, pid, epoch, what)) = request(&ids, &r.event) else {
            continue;
        };
        let Some((why, fence)) = ids.stale(tid, pid, epoch) else {
            continue;
        };
        let what = what.describe();
        let explanation = format!(
            "the broker accepted {what} from {tid} pid {pid} epoch {epoch} at t={}ms, but {why}",
            r.time
        );
        out.push(cx.violation(Invariant::EpochFencing, r.time, explanation, vec![fence, r.seq]));
    }
    out
}

impl<'r> Ids<'r> {
    /// Takes in an event that sets or fences an epoch; false for any other event.
    fn observe(&mut self, event: &'r Event, seq: u64) -> bool {
        match event {
            Event::ProducerInit {
                transactional_id: Some(tid),
                producer_id,
                epoch,
            } => {
                self.current.insert(tid, (*producer_id, *epoch, seq));
                self.tid_of.insert(*producer_id, tid);
            }
            // A new coordinator whose log lost records that were never acknowledged
            // enforces the epoch it loaded: the fences in those records never happened
            // for the cluster. Lost acknowledged records leave the fences standing.
            Event::TxnStateLoaded {
                transactional_id,
                producer_id,
                epoch,
                acknowledged: false,
            } => {
                let tid = transactional_id.as_str();
                self.current.insert(tid, (*producer_id, *epoch, seq));
                self.tid_of.insert(*producer_id, tid);
                self.fenced.remove(tid);
            }
            Event::Fenced {
                transactional_id,
                producer_id,
                fenced_epoch,
            } => {
                self.fenced.insert(transactional_id, (*producer_id, *fenced_epoch, seq));
            }
            _ => return false,
        }
        true
    }
}

/// What an accepted request was, put in words only when it is reported.
enum What<'r> {
    Write(&'r TopicPartition, Offset),
    Offsets(&'r str),
    Commit,
    Abort,
}

impl What<'_> {
    fn describe(&self) -> String {
        match self {
            What::Write(tp, offset) => format!("a write to {tp}@{offset}"),
            What::Offsets(group) => format!("offsets of group {group}"),
            What::Commit => "a commit".to_string(),
            What::Abort => "an abort".to_string(),
        }
    }
}

/// An accepted request that carries a transactional id's producer id and epoch: the id,
/// the pid, the epoch and what it was.
fn request<'r>(
    ids: &Ids<'r>,
    event: &'r Event,
) -> Option<(&'r str, ProducerId, Epoch, What<'r>)> {
    Some(match event {
        Event::Append {
            tp,
            offset,
            producer_id: Some(pid),
            epoch: Some(epoch),
            transactional: true,
            ..
        } => {
            let tid = ids.tid_of.get(pid).copied()?;
            (tid, *pid, *epoch, What::Write(tp, *offset))
        }
        Event::TxnOffsets {
            transactional_id,
            producer_id,
            epoch,
            group,
            ..
        } => {
            (transactional_id.as_str(), *producer_id, *epoch, What::Offsets(group))
        }
        Event::TxnCommit {
            transactional_id,
            producer_id,
            epoch,
        } => (transactional_id.as_str(), *producer_id, *epoch, What::Commit),
        Event::TxnAbort {
            transactional_id,
            producer_id,
            epoch,
            ..
        } => (transactional_id.as_str(), *producer_id, *epoch, What::Abort),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    fn init(s: &mut Sim, pid: u64, epoch: u16) -> u64 {
        s.event(Event::ProducerInit {
            transactional_id: Some("t".into()),
            producer_id: pid,
            epoch,
        })
    }

    fn write(s: &mut Sim, pid: u64, epoch: u16, offset: u64) -> u64 {
        s.event(Event::Append {
            tp: tp("orders", 0),
            offset,
            key: None,
            value: None,
            producer_id: Some(pid),
            epoch: Some(epoch),
            sequence: Some(0),
            transactional: true,
        })
    }

    #[test]
    fn a_real_broker_fences_old_epochs() {
        let mut s = Sim::new();
        s.txn(&[("orders", 0, "k", "a".into())], true);
        s.txn(&[("orders", 0, "k", "b".into())], false);
        assert!(violations(Invariant::EpochFencing, &naive(), &s, 1000).is_empty());
    }

    #[test]
    fn epoch_fencing_flags_writes_and_ends_from_a_fenced_epoch() {
        let mut s = Sim::new();
        init(&mut s, 7, 0);
        write(&mut s, 7, 0, 0);
        let bump = init(&mut s, 7, 1);
        write(&mut s, 7, 1, 1);
        assert!(violations(Invariant::EpochFencing, &naive(), &s, 1000).is_empty());
        let zombie = s.at(5).event(Event::Append {
            tp: tp("orders", 0),
            offset: 2,
            key: None,
            value: None,
            producer_id: Some(7),
            epoch: Some(0),
            sequence: Some(1),
            transactional: true,
        });
        let offsets = s.at(6).event(Event::TxnOffsets {
            transactional_id: "t".into(),
            producer_id: 7,
            epoch: 0,
            group: "app".into(),
            member_id: "m1".into(),
            generation: 1,
            offsets: vec![(tp("orders", 0), 2)],
        });
        s.event(Event::TxnCommit {
            transactional_id: "t".into(),
            producer_id: 7,
            epoch: 0,
        });
        // A timed-out transaction's abort fences the current epoch without a new init.
        s.event(Event::Fenced {
            transactional_id: "t".into(),
            producer_id: 7,
            fenced_epoch: 1,
        });
        s.at(7).event(Event::TxnAbort {
            transactional_id: "t".into(),
            producer_id: 7,
            epoch: 1,
            reason: "requested by the producer".into(),
        });
        let v = violations(Invariant::EpochFencing, &naive(), &s, 1000);
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[0].explanation,
            "the broker accepted a write to orders-0@2 from t pid 7 epoch 0 at t=5ms, but the latest \
             InitProducerId of t gave pid 7 epoch 1"
        );
        assert_eq!(v[0].evidence, vec![bump, zombie]);
        assert_eq!(
            v[1].explanation,
            "the broker accepted offsets of group app from t pid 7 epoch 0 at t=6ms, but the latest \
             InitProducerId of t gave pid 7 epoch 1"
        );
        assert_eq!(v[1].evidence, vec![bump, offsets]);
        assert!(v[2].explanation.starts_with("the broker accepted a commit from t pid 7 epoch 0"));
        assert!(
            v[3].explanation.ends_with("but epoch 1 of t (pid 7) was fenced"),
            "{}",
            v[3].explanation
        );
    }
}
