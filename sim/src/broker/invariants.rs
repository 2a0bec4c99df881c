//! The broker's own invariants, checked by tests and, in debug and test builds, after
//! every request and every tick (a broken one is a bug in the broker: it panics, and the
//! run's driver adds the seed).

use std::collections::BTreeSet;

use super::group::GroupState;
use super::log::{PartitionLog, Topic};
use super::txn::{EndingTxn, TxnIdState, TxnOutcome};
use super::Broker;
use crate::protocol::TopicPartition;

impl Broker {
    /// Check every invariant of every partition, transaction and group (O(size of all
    /// logs)): offsets strictly increasing and below the log end, dense on non-compacted
    /// logs, no open transaction's record below the LSO, LSO <= HW; every open transaction
    /// known to the partitions it touched and to nothing else, every transactional id's
    /// producer ids (current and previous) owned by it, a remembered transaction outcome at
    /// the current epoch; groups `Empty` exactly when they have no member. Panics on
    /// a violation.
    pub fn check_invariants(&self) {
        for (name, topic) in &self.topics {
            for (p, log) in topic.partitions.iter().enumerate() {
                let tp = TopicPartition::new(name.clone(), p as u32);
                self.check_log(&tp, topic, log);
            }
        }
        self.check_transactions();
        self.check_groups();
        self.check_replication();
    }

    /// After a request or a tick, in debug and test builds.
    pub(super) fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    fn check_log(&self, tp: &TopicPartition, topic: &Topic, log: &PartitionLog) {
        assert_eq!(
            log.entries.len(),
            log.txn.len(),
            "{tp}: txn index out of step"
        );
        assert_eq!(log.entries.len(), log.meta.len(), "{tp}: meta out of step");
        assert!(log.hw <= log.log_end, "{tp}: HW past the log end");
        assert!(
            log.replicated || log.hw == log.log_end,
            "{tp}: a single broker's HW is its log end"
        );
        assert!(
            log.epochs
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{tp}: leader epochs not increasing"
        );
        if !topic.config.compacted {
            assert_eq!(log.entries.len() as u64, log.log_end, "{tp}: not dense");
        }
        for (i, e) in log.entries.iter().enumerate() {
            assert!(
                e.offset < log.log_end,
                "{tp}: offset {} past the end",
                e.offset
            );
            if !topic.config.compacted {
                assert_eq!(e.offset, i as u64, "{tp}: offsets not dense");
            }
            if i > 0 {
                assert!(
                    e.offset > log.entries[i - 1].offset,
                    "{tp}: offsets not increasing"
                );
            }
        }
        let lso = log.last_stable_offset();
        for (i, e) in log.entries.iter().enumerate() {
            if e.offset >= lso {
                break;
            }
            if let Some(s) = log.txn[i] {
                assert_ne!(
                    self.txn_outcomes[s],
                    TxnOutcome::Open,
                    "{tp}: open below LSO"
                );
            }
        }
        for (&serial, &first) in &log.ongoing {
            assert!(
                self.txn_outcomes[serial] == TxnOutcome::Open
                    || self.marker_pending(serial, tp)
                    || log.unreplicated.contains_key(&serial)
                    || log.hanging.contains(&serial),
                "{tp}: a settled transaction still holds its LSO with no marker to come"
            );
            assert!(first < log.log_end, "{tp}: ongoing offset past the end");
        }
    }

    /// Open transactions and the partitions' `ongoing` sets agree; every transactional id's
    /// current producer id belongs to it.
    fn check_transactions(&self) {
        let mut open_serials = BTreeSet::new();
        for (tid, st) in &self.txn_ids {
            let owner = self.producers.get(&st.producer_id);
            assert!(
                owner.is_some_and(|e| e.transactional_id.as_deref() == Some(tid.as_str())),
                "{tid}: producer id {} is not its own",
                st.producer_id
            );
            if let Some((epoch, _)) = st.last_completed {
                assert_eq!(
                    epoch, st.epoch,
                    "{tid}: a completed transaction remembered at epoch {epoch}, current {}",
                    st.epoch
                );
            }
            if let Some(previous) = st.previous_producer_id {
                let entry = self.producers.get(&previous);
                assert!(
                    previous != st.producer_id
                        && entry
                            .is_some_and(|e| e.transactional_id.as_deref() == Some(tid.as_str())),
                    "{tid}: previous producer id {previous} is not an earlier one of its own"
                );
            }
            assert!(
                st.open.is_none() || st.ending.is_none(),
                "{tid}: ongoing and ending at once"
            );
            if let Some(ending) = &st.ending {
                self.check_ending(tid, ending, st);
            }
            let Some(open) = &st.open else { continue };
            assert_eq!(
                self.txn_outcomes[open.serial],
                TxnOutcome::Open,
                "{tid}: its open transaction is settled"
            );
            open_serials.insert(open.serial);
            for (tp, first) in &open.partitions {
                let log = self.partition(tp).expect("touched partition exists");
                assert_eq!(
                    log.ongoing.get(&open.serial),
                    Some(first),
                    "{tid}: {tp} does not hold back its LSO at {first}"
                );
            }
        }
        let orphaned = self.coordinators().map_or(0, |c| c.orphaned.len());
        let open_count = self
            .txn_outcomes
            .iter()
            .filter(|o| **o == TxnOutcome::Open)
            .count()
            - orphaned;
        assert_eq!(
            open_count,
            open_serials.len(),
            "a transaction is open with no transactional id to end it"
        );
    }

    /// A transaction between `EndTxn` and its last marker: settled, not yet completed, and
    /// every partition still waiting for its marker holds back its LSO.
    fn check_ending(&self, tid: &str, ending: &EndingTxn, st: &TxnIdState) {
        assert_ne!(
            self.txn_outcomes[ending.serial],
            TxnOutcome::Open,
            "{tid}: an ending transaction without an outcome"
        );
        assert!(st.last_completed.is_none(), "{tid}: ending and completed");
        for tp in &ending.partitions {
            let log = self.partition(tp).expect("touched partition exists");
            assert!(
                log.ongoing.contains_key(&ending.serial),
                "{tid}: {tp} awaits a marker but does not hold back its LSO"
            );
        }
        for (tp, offset) in &ending.awaiting {
            let log = self.partition(tp).expect("touched partition exists");
            assert_eq!(
                log.unreplicated.get(&ending.serial),
                Some(offset),
                "{tid}: {tp} awaits the replication of a marker it does not have"
            );
        }
        for (group, w) in &ending.group_awaiting {
            assert!(
                !ending.groups.contains_key(group),
                "{tid}: the marker of group {group} both due and awaited"
            );
            assert_eq!(
                self.coordinator_tp(super::coordinator::Coordinator::Group, group),
                Some(w.tp.clone()),
                "{tid}: group {group}'s marker awaited in another partition"
            );
        }
    }

    fn check_groups(&self) {
        for (gname, g) in &self.groups {
            if g.state == GroupState::Empty {
                assert!(g.members.is_empty(), "group {gname}: Empty with members");
            } else {
                assert!(
                    !g.members.is_empty(),
                    "group {gname}: {:?} without members",
                    g.state
                );
            }
        }
    }
}

impl Broker {
    /// The replication invariants (several brokers only): every partition has a replica
    /// set and a non-empty ISR within it, its leader (if any) in the ISR; the high
    /// watermark is at most the log end the leader knows of every ISR member, and at most
    /// the real log end of every ISR member that is up; every record below the high
    /// watermark is on every ISR member that is up; leader epochs only increase (per log,
    /// and the partition's current one is the newest any of its logs knows).
    fn check_replication(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        for (tp, r) in &cluster.partitions {
            let log = self.partition(tp).expect("a replicated partition exists");
            assert!(!r.isr.is_empty(), "{tp}: an empty ISR");
            assert!(
                r.isr.iter().all(|b| r.replicas.contains(b)),
                "{tp}: ISR outside the replicas"
            );
            if let Some(l) = r.leader {
                assert!(r.isr.contains(&l), "{tp}: the leader {l} is not in the ISR");
                assert_eq!(l, r.log_owner, "{tp}: the main log is not the leader's");
            }
            assert_eq!(
                r.followers.len() + 1,
                r.replicas.len(),
                "{tp}: a log per replica"
            );
            for (b, f) in &r.followers {
                let last = f.log.epochs.last().map_or(0, |(e, _)| *e);
                assert!(
                    last <= r.leader_epoch,
                    "{tp}: broker {b} knows a future epoch"
                );
                if !r.isr.contains(b) || r.leader.is_none() {
                    continue;
                }
                if f.epoch_checked == r.leader_epoch {
                    assert!(
                        f.fetched_end >= log.hw,
                        "{tp}: HW {} past ISR member {b}",
                        log.hw
                    );
                }
                if cluster.brokers[*b as usize].serving() {
                    check_prefix(tp, *b, log, &f.log);
                }
            }
        }
    }
}

/// Every entry of the leader's log below its high watermark is in `follower`, the same.
fn check_prefix(tp: &TopicPartition, b: u32, leader: &PartitionLog, follower: &PartitionLog) {
    assert!(
        follower.log_end >= leader.hw,
        "{tp}: HW {} past the log end {} of ISR member {b}",
        leader.hw,
        follower.log_end
    );
    for e in leader.entries.iter().take_while(|e| e.offset < leader.hw) {
        let theirs = follower.index_of(e.offset).map(|i| &follower.entries[i]);
        assert_eq!(
            theirs,
            Some(e),
            "{tp}: the committed record @{} is not on ISR member {b}",
            e.offset
        );
    }
}
