//! The second phase of a transaction's end, and the timeout scan.
//!
//! `EndTxn`, an `InitProducerId` that fences an ongoing transaction and the timeout scan
//! first move a transaction to `PrepareCommit` / `PrepareAbort` ([`Broker::prepare_end`]):
//! its outcome is decided and the client is answered. Its markers, one per partition it
//! wrote to and one per group whose offsets it carries, are then written one at a time,
//! each a step of its own that the driver chooses ([`Broker::pending_markers`],
//! [`Broker::write_pending_marker`]), as Kafka's `TransactionMarkerChannelManager`
//! (`addTxnMarkersToSend`, `core/src/main/scala/kafka/coordinator/transaction/`) sends
//! `WriteTxnMarkers` to each partition leader and group coordinator. Until its own marker lands, a partition's LSO stays put and a group's
//! offsets stay pending (`UNSTABLE_OFFSET_COMMIT` for a `require_stable` `OffsetFetch`).
//! The last marker completes the transaction (`CompleteCommit` / `CompleteAbort`).
//!
//! Timeouts: Kafka does not abort a transaction at its deadline but in a scan every
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms`
//! (`TransactionCoordinator.abortTimedOutTransactions`, scheduled at a fixed rate from
//! start-up; `TransactionStateManager.timedOutTransactions`: `Ongoing`, no pending
//! transition, `txnStartTimestamp + txnTimeoutMs < now`).

use std::collections::BTreeMap;

use super::coordinator::Coordinator;
use super::log::EntryMeta;
use super::txn::{EndingTxn, PendingOffsets, TxnOutcome};
use super::Broker;
use crate::protocol::{
    ControlType, Epoch, LogEntry, Millis, Offset, ProducerId, Record, TopicPartition,
};
use crate::trace::Event;

use super::txn::TxnSerial;

/// Where a pending transaction marker goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkerTarget {
    /// A partition the transaction wrote to: the marker is a control record there.
    Partition(TopicPartition),
    /// A group whose offsets the transaction carries: the marker makes them committed
    /// (or drops them, on abort).
    Group(String),
}

/// A group marker the group coordinator has applied, waiting for the high watermark of
/// its `__consumer_offsets` partition to pass what it wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GroupMarkerWrite {
    /// The group's coordinator partition.
    pub(super) tp: TopicPartition,
    /// The log end after the write: the high watermark must reach it.
    pub(super) required: Offset,
    /// The partition's leader epoch at the write.
    pub(super) leader_epoch: u32,
    /// The offsets the marker commits (or drops), to send again if the write is lost.
    pub(super) pending: PendingOffsets,
}

/// A transaction marker the coordinator has yet to write.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingMarker {
    pub transactional_id: String,
    pub target: MarkerTarget,
}

impl Broker {
    /// Move the ongoing transaction of `tid` to `PrepareCommit` / `PrepareAbort`: its
    /// outcome is decided (and recorded as `TxnCommit` / `TxnAbort`), its markers, carrying
    /// `marker_epoch`, are pending. The caller bumps the epoch as the protocol wants, then
    /// calls [`Broker::complete_if_written`].
    pub(super) fn prepare_end(
        &mut self,
        tid: &str,
        commit: bool,
        reason: &str,
        marker_epoch: Epoch,
        events: &mut Vec<Event>,
    ) {
        let st = self.txn_ids.get_mut(tid).expect("known transactional id");
        let open = st.open.take().expect("an ongoing transaction");
        assert!(st.ending.is_none(), "broker bug: {tid} ends twice");
        let (pid, epoch) = (st.producer_id, st.epoch);
        assert!(
            marker_epoch >= epoch,
            "broker bug: a marker older than its transaction"
        );
        st.last_completed = None;
        st.ending = Some(EndingTxn {
            serial: open.serial,
            commit,
            marker: (pid, marker_epoch),
            partitions: open.partitions.keys().cloned().collect(),
            groups: open.offsets.clone(),
            awaiting: BTreeMap::new(),
            group_awaiting: BTreeMap::new(),
            prepared: (open.partitions.keys().cloned().collect(), open.offsets),
        });
        assert_eq!(
            self.txn_outcomes[open.serial],
            TxnOutcome::Open,
            "broker bug: transaction settled twice"
        );
        self.txn_outcomes[open.serial] = if commit {
            TxnOutcome::Committed
        } else {
            TxnOutcome::Aborted
        };
        events.push(if commit {
            Event::TxnCommit {
                transactional_id: tid.to_string(),
                producer_id: pid,
                epoch,
            }
        } else {
            Event::TxnAbort {
                transactional_id: tid.to_string(),
                producer_id: pid,
                epoch,
                reason: reason.to_string(),
            }
        });
    }

    /// Complete the ending transaction of `tid` if every marker is written
    /// (`TransactionMetadata.prepareComplete`: `CompleteCommit` / `CompleteAbort`).
    pub(super) fn complete_if_written(&mut self, tid: &str) {
        let st = self.txn_ids.get_mut(tid).expect("known transactional id");
        let done = st.ending.as_ref().is_some_and(|e| {
            e.partitions.is_empty()
                && e.groups.is_empty()
                && e.awaiting.is_empty()
                && e.group_awaiting.is_empty()
        });
        if done {
            let ending = st.ending.take().expect("checked above");
            st.last_completed = Some((st.epoch, ending.commit));
        }
    }

    /// Whether any transaction marker is waiting to be written.
    pub fn has_pending_markers(&self) -> bool {
        self.txn_ids.values().any(|st| st.ending.is_some())
    }

    /// Every marker waiting to be written, sorted (by transactional id, then partitions
    /// before groups).
    pub fn pending_markers(&self) -> Vec<PendingMarker> {
        let mut out = Vec::new();
        for (tid, st) in &self.txn_ids {
            let Some(ending) = &st.ending else { continue };
            if !self.coordinator_sends_markers(tid) {
                continue;
            }
            let partitions = ending
                .partitions
                .iter()
                .filter(|tp| self.leader_reachable(tp, false, true))
                .cloned();
            let groups = ending
                .groups
                .keys()
                .filter(|g| self.coordinator_ready(Coordinator::Group, g))
                .cloned();
            let targets = partitions
                .map(MarkerTarget::Partition)
                .chain(groups.map(MarkerTarget::Group));
            out.extend(targets.map(|target| PendingMarker {
                transactional_id: tid.clone(),
                target,
            }));
        }
        out
    }

    /// Write one pending marker at `now` (`WriteTxnMarkers` to a partition leader or a
    /// group coordinator); the last one completes its transaction. Panics if `marker` is
    /// not pending: the driver offers only what [`Broker::pending_markers`] lists.
    pub fn write_pending_marker(
        &mut self,
        now: Millis,
        marker: &PendingMarker,
        events: &mut Vec<Event>,
    ) {
        let tid = marker.transactional_id.as_str();
        let ending = self
            .txn_ids
            .get_mut(tid)
            .and_then(|st| st.ending.as_mut())
            .expect("a pending marker belongs to an ending transaction");
        let (serial, commit, ids) = (ending.serial, ending.commit, ending.marker);
        match &marker.target {
            MarkerTarget::Partition(tp) => {
                assert!(
                    ending.partitions.remove(tp),
                    "broker bug: no marker for {tp}"
                );
                let control = if commit {
                    ControlType::Commit
                } else {
                    ControlType::Abort
                };
                let offset = self.write_marker(tp, serial, ids, control, now, events);
                // WriteTxnMarkers appends with acks=-1 (`KafkaApis.handleWriteTxnMarkersRequest`):
                // under replication the marker is done once it is below the high watermark.
                if self.awaits_replication(tp, serial) {
                    let st = self.txn_ids.get_mut(tid).expect("known transactional id");
                    let ending = st.ending.as_mut().expect("an ending transaction");
                    ending.awaiting.insert(tp.clone(), offset);
                }
            }
            MarkerTarget::Group(group) => {
                let pending = ending.groups.remove(group).expect("a pending group marker");
                if commit {
                    // `OffsetMetadataManager.replayEndTransactionMarker`: the offsets commit.
                    let offsets = BTreeMap::from([(group.clone(), pending.clone())]);
                    self.commit_pending_offsets(offsets, events);
                }
                self.await_group_marker(tid, group, pending, now);
            }
        }
        self.complete_if_written(tid);
        self.persist_coordinators(now);
        self.forget_written();
        self.debug_check();
    }

    /// On a replicated cluster, the group coordinator's write of a group marker is done
    /// only once the high watermark of its `__consumer_offsets` partition passes it
    /// (Kafka 4.x: `KafkaApis.handleWriteTxnMarkersRequest` hands a `__consumer_offsets`
    /// marker to `GroupCoordinator.completeTransaction`; `CoordinatorRuntime`'s
    /// `CoordinatorCompleteTransactionEvent` appends it and waits in the
    /// `deferredEventQueue` for the high watermark,
    /// `coordinator-common/src/main/java/org/apache/kafka/coordinator/common/runtime/CoordinatorRuntime.java`).
    /// The offsets' record is written here; the marker waits for the log end.
    fn await_group_marker(&mut self, tid: &str, group: &str, pending: PendingOffsets, now: Millis) {
        let Some(tp) = self.coordinator_tp(Coordinator::Group, group) else {
            return; // one broker: written at once
        };
        self.persist_coordinators(now);
        let required = self.topic_log(&tp).log_end;
        let cluster = self.cluster.as_mut().expect("replicated");
        let leader_epoch = cluster.partitions[&tp].leader_epoch;
        let st = self.txn_ids.get_mut(tid).expect("known transactional id");
        let ending = st.ending.as_mut().expect("an ending transaction");
        let write = GroupMarkerWrite {
            tp,
            required,
            leader_epoch,
            pending,
        };
        ending.group_awaiting.insert(group.to_string(), write);
        self.settle_group_markers();
    }

    /// Group markers whose write is settled: below the high watermark, done (the
    /// deferred event completes, `CoordinatorRuntime.onHighWatermarkUpdated`); with the
    /// coordinator's leadership moved or its leader down first, lost and due again (the
    /// unloaded coordinator fails its deferred events with `NOT_COORDINATOR`,
    /// `CoordinatorRuntime.CoordinatorContext.unload`, which `KafkaApis` answers as
    /// `NOT_LEADER_OR_FOLLOWER`, and `TransactionMarkerRequestCompletionHandler` retries
    /// the marker with the new coordinator). A new coordinator that loaded the offsets
    /// already applies them again to the same effect.
    pub(super) fn settle_group_markers(&mut self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let mut settled = Vec::new();
        for (tid, st) in &self.txn_ids {
            let Some(e) = &st.ending else { continue };
            for (group, w) in &e.group_awaiting {
                let r = &cluster.partitions[&w.tp];
                let lost =
                    r.leader_epoch != w.leader_epoch || !self.leader_reachable(&w.tp, false, false);
                if lost || self.topic_log(&w.tp).hw >= w.required {
                    settled.push((tid.clone(), group.clone(), lost, e.serial));
                }
            }
        }
        for (tid, group, lost, serial) in settled {
            let st = self.txn_ids.get_mut(&tid).expect("listed");
            let e = st.ending.as_mut().expect("listed");
            let w = e.group_awaiting.remove(&group).expect("listed");
            if lost {
                e.groups.insert(group, w.pending);
            } else {
                let coord = &mut self.cluster.as_mut().expect("a cluster").coordinators;
                coord.applied_group_markers.insert((group, serial));
                self.complete_if_written(&tid);
            }
        }
    }

    /// Write every pending marker, in [`Broker::pending_markers`] order: for drivers that
    /// do not interleave markers with other work (unit tests, single-client harnesses).
    pub fn write_all_pending_markers(&mut self, now: Millis, events: &mut Vec<Event>) {
        for marker in self.pending_markers() {
            self.write_pending_marker(now, &marker, events);
        }
        assert!(!self.has_pending_markers(), "broker bug: markers left");
    }

    /// Write a commit or abort marker of transaction `serial` into `tp`; it stops holding
    /// back the partition's LSO once it is below the high watermark (at once on a single
    /// broker). Returns the marker's offset.
    fn write_marker(
        &mut self,
        tp: &TopicPartition,
        serial: TxnSerial,
        (pid, epoch): (ProducerId, Epoch),
        control: ControlType,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Offset {
        let (log, compacted) = self.partition_mut(tp);
        assert!(
            log.ongoing.contains_key(&serial),
            "broker bug: {tp} did not know its open transaction"
        );
        let offset = log.log_end;
        let leader_epoch = log.epochs.last().map_or(0, |(e, _)| *e);
        log.note_epoch(leader_epoch, offset);
        log.append(
            LogEntry {
                offset,
                record: Record {
                    key: None,
                    value: None,
                    timestamp: now,
                    headers: Vec::new(),
                },
                producer: Some((pid, epoch)),
                sequence: None,
                transactional: true,
                control: Some(control),
            },
            None,
            EntryMeta {
                batch: None,
                marker_of: Some(serial),
                coord: None,
            },
            compacted,
        );
        log.unreplicated.insert(serial, offset);
        let hw = log.hw;
        log.advance_hw(hw);
        self.maybe_increment_hw(tp);
        events.push(Event::Marker {
            tp: tp.clone(),
            offset,
            producer_id: pid,
            control,
        });
        offset
    }

    /// Whether transaction `serial`'s marker is still to be written into `tp`.
    pub(super) fn marker_pending(&self, serial: TxnSerial, tp: &TopicPartition) -> bool {
        self.txn_ids.values().any(|st| {
            st.ending
                .as_ref()
                .is_some_and(|e| e.serial == serial && e.partitions.contains(tp))
        })
    }

    /// The first run of the timeout scan that finds a transaction with deadline `d` timed
    /// out: scans run at every multiple of the interval from start-up, and time out what
    /// is strictly past its deadline.
    pub(super) fn scan_after(&self, d: Millis) -> Millis {
        let interval = self.config.abort_scan_interval_ms;
        (d / interval).saturating_add(1).saturating_mul(interval)
    }

    /// The timeout scan, at `now`: abort (and fence) every ongoing transaction whose scan is
    /// due, by transactional id. Transactions whose markers are pending are skipped, as
    /// Kafka skips a pending transition.
    pub(super) fn abort_timed_out_transactions(&mut self, now: Millis, events: &mut Vec<Event>) {
        let timed_out: Vec<String> = self
            .txn_ids
            .iter()
            .filter(|(tid, _)| self.coordinator_ready(Coordinator::Transaction, tid))
            .filter(|(_, st)| st.deadline().is_some_and(|d| self.scan_after(d) <= now))
            .map(|(tid, _)| tid.clone())
            .collect();
        for tid in timed_out {
            self.abort_and_fence(&tid, "timeout", events);
        }
    }
}
