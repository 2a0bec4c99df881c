//! The transaction coordinator: `transactional.id` → producer id and epoch,
//! `InitProducerId` (epoch bump, abort of the previous epoch's transaction, fencing),
//! implicit begin and partition adds (KIP-890), `TxnOffsetCommit` (KIP-447), and `EndTxn`,
//! which moves a transaction to `PrepareCommit` / `PrepareAbort`; its markers are written
//! afterwards, one by one (`markers.rs`), as Kafka's `TransactionMarkerChannelManager`
//! does.
//!
//! Kafka 4.x sources: `TransactionCoordinator`, `TransactionStateManager` and
//! `TransactionMarkerChannelManager` in `core/src/main/scala/kafka/coordinator/transaction/`;
//! `TransactionMetadata` (its `prepare...` transitions) in
//! `transaction-coordinator/src/main/java/org/apache/kafka/coordinator/transaction/`.

use std::collections::{BTreeMap, BTreeSet};

use super::{reject, Broker};
use crate::protocol::{
    Epoch, Generation, GroupMetadata, KafkaError, Millis, Offset, ProducerId, ProducerIdentity,
    TopicPartition,
};
use crate::trace::Event;

/// Past this epoch a transactional id gets a fresh producer id at epoch 0 (Kafka bumps the
/// producer id when the epoch would reach `Short.MAX_VALUE`).
pub(super) const MAX_EPOCH: Epoch = (i16::MAX - 1) as Epoch;

/// Index into [`Broker::txn_outcomes`]: one per transaction ever begun.
pub(super) type TxnSerial = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TxnOutcome {
    Open,
    Committed,
    Aborted,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PendingOffsets {
    pub(super) member_id: String,
    pub(super) generation: Generation,
    pub(super) offsets: BTreeMap<TopicPartition, Offset>,
}

#[derive(Clone, Debug)]
pub(super) struct OpenTxn {
    pub(super) serial: TxnSerial,
    pub(super) started: Millis,
    /// Partitions with records of this transaction → first offset there.
    pub(super) partitions: BTreeMap<TopicPartition, Offset>,
    /// Offsets sent to the transaction, per group.
    pub(super) offsets: BTreeMap<String, PendingOffsets>,
}

/// A transaction in `PrepareCommit` / `PrepareAbort`: its outcome is decided, its markers
/// are still to be written (`TransactionMarkerChannelManager.addTxnMarkersToSend`).
#[derive(Clone, Debug)]
pub(super) struct EndingTxn {
    pub(super) serial: TxnSerial,
    pub(super) commit: bool,
    /// Producer id and epoch the markers carry.
    pub(super) marker: (ProducerId, Epoch),
    /// Partitions whose marker is still to be written: each holds back its LSO.
    pub(super) partitions: BTreeSet<TopicPartition>,
    /// Groups whose marker is still to be written: their offsets stay pending.
    pub(super) groups: BTreeMap<String, PendingOffsets>,
    /// Partitions whose marker is written at this offset but not yet below the high
    /// watermark (replicated partitions only): the transaction completes when it is.
    pub(super) awaiting: BTreeMap<TopicPartition, Offset>,
    /// Groups whose marker the group coordinator applied but has not yet replicated
    /// (replicated clusters only): their offsets stay pending until it has, and go back to
    /// `groups` if the coordinator's leadership moves first.
    pub(super) group_awaiting: BTreeMap<String, super::markers::GroupMarkerWrite>,
    /// Every partition and group the transaction ends in, as `PrepareCommit` /
    /// `PrepareAbort` recorded them in `__transaction_state`.
    pub(super) prepared: (BTreeSet<TopicPartition>, BTreeMap<String, PendingOffsets>),
}

/// The transaction coordinator's state of one `transactional.id`.
#[derive(Clone, Debug)]
pub(super) struct TxnIdState {
    pub(super) producer_id: ProducerId,
    pub(super) epoch: Epoch,
    pub(super) timeout_ms: Millis,
    /// `Ongoing`: a transaction has begun and is not ended.
    pub(super) open: Option<OpenTxn>,
    /// `PrepareCommit` / `PrepareAbort`: markers still to be written. Never together with
    /// `open`.
    pub(super) ending: Option<EndingTxn>,
    /// How the last transaction of the current epoch ended (`true` = committed), so a
    /// retried `EndTxn` is answered `Ok` (Kafka's `CompleteCommit` / `CompleteAbort`).
    pub(super) last_completed: Option<(Epoch, bool)>,
    /// The producer id before the last rotation on epoch exhaustion, so that a retried v2
    /// `EndTxn` from it is recognised (`TransactionMetadata.prevProducerId`).
    pub(super) previous_producer_id: Option<ProducerId>,
}

impl TxnIdState {
    /// When this transactional id's open transaction times out, if one is open.
    pub(super) fn deadline(&self) -> Option<Millis> {
        self.open
            .as_ref()
            .map(|o| o.started.saturating_add(self.timeout_ms))
    }

    /// Not `Empty`, `CompleteCommit` or `CompleteAbort`: ongoing, or its markers pending.
    pub(super) fn in_transaction(&self) -> bool {
        self.open.is_some() || self.ending.is_some()
    }
}

impl Broker {
    /// `InitProducerId`, after Kafka's `TransactionCoordinator.handleInitProducerId` and
    /// `prepareInitProducerIdTransit`: while the markers of the last transaction are being
    /// written, `CONCURRENT_TRANSACTIONS`; with a transaction ongoing, fence its epoch and
    /// abort it (`prepareFenceProducerEpoch`, then `endTransaction(isFromClient = false)`),
    /// answering `CONCURRENT_TRANSACTIONS` so that the client's retry, once the abort's
    /// markers are written, bumps the epoch once more (v1: +1 at the fence, +1 at the retry;
    /// v2: +2 at the fence, the abort bumping again, +1 at the retry); otherwise bump the
    /// epoch (`prepareIncrementProducerEpoch`).
    pub(super) fn init_producer_id(
        &mut self,
        transactional_id: Option<String>,
        transaction_timeout_ms: Millis,
        events: &mut Vec<Event>,
    ) -> Result<(ProducerId, Epoch), KafkaError> {
        const REQ: &str = "InitProducerId";
        let Some(tid) = transactional_id else {
            let pid = self.allocate_producer_id(None);
            events.push(Event::ProducerInit {
                transactional_id: None,
                producer_id: pid,
                epoch: 0,
            });
            return Ok((pid, 0));
        };
        let (pid, epoch) = match self.txn_ids.get(&tid) {
            None => self.first_producer_id(&tid, transaction_timeout_ms),
            Some(st) if st.ending.is_some() => {
                let detail = format!("{tid} is writing the markers of its last transaction");
                let error = KafkaError::ConcurrentTransactions;
                return Err(reject(events, REQ, error, detail));
            }
            Some(st) if st.open.is_some() => {
                self.abort_and_fence(&tid, "fenced by a new producer (InitProducerId)", events);
                let detail = format!("{tid} had a transaction ongoing: aborting it");
                let error = KafkaError::ConcurrentTransactions;
                return Err(reject(events, REQ, error, detail));
            }
            Some(_) => {
                self.bump_epoch(&tid, events);
                let st = self.txn_ids.get_mut(&tid).expect("checked above");
                st.timeout_ms = transaction_timeout_ms;
                st.last_completed = None;
                (st.producer_id, st.epoch)
            }
        };
        assert!(
            !self.txn_ids[&tid].in_transaction(),
            "broker bug: {tid} initialised in a transaction"
        );
        events.push(Event::ProducerInit {
            transactional_id: Some(tid),
            producer_id: pid,
            epoch,
        });
        Ok((pid, epoch))
    }

    /// A transactional id's first producer id, at epoch 0.
    fn first_producer_id(&mut self, tid: &str, timeout_ms: Millis) -> (ProducerId, Epoch) {
        let pid = self.allocate_producer_id(Some(tid.to_string()));
        self.txn_ids.insert(
            tid.to_string(),
            TxnIdState {
                producer_id: pid,
                epoch: 0,
                timeout_ms,
                open: None,
                ending: None,
                last_completed: None,
                previous_producer_id: None,
            },
        );
        (pid, 0)
    }

    /// Fence the current epoch of `tid`: the next epoch (or a fresh producer id at epoch 0
    /// when the epoch is exhausted) becomes current. The transaction must be closed.
    pub(super) fn bump_epoch(&mut self, tid: &str, events: &mut Vec<Event>) {
        let st = self.txn_ids.get(tid).expect("known transactional id");
        assert!(
            st.open.is_none(),
            "broker bug: bumping the epoch of an ongoing transaction"
        );
        let (old_pid, old_epoch) = (st.producer_id, st.epoch);
        events.push(Event::Fenced {
            transactional_id: tid.to_string(),
            producer_id: old_pid,
            fenced_epoch: old_epoch,
        });
        let (pid, epoch) = if old_epoch >= MAX_EPOCH {
            (self.allocate_producer_id(Some(tid.to_string())), 0)
        } else {
            (old_pid, old_epoch + 1)
        };
        let st = self.txn_ids.get_mut(tid).expect("known transactional id");
        if pid != old_pid {
            st.previous_producer_id = Some(old_pid);
        }
        st.producer_id = pid;
        st.epoch = epoch;
        st.last_completed = None;
        assert!(
            (pid, epoch) > (old_pid, old_epoch),
            "broker bug: {tid} went from {old_pid}/{old_epoch} back to {pid}/{epoch}"
        );
    }

    /// The epoch check of a transactional producer `p` of `owner` (Kafka's
    /// `TransactionMetadata` fencing: an older epoch or producer id is fenced).
    pub(super) fn check_transactional_epoch(
        &self,
        owner: &str,
        p: &ProducerIdentity,
    ) -> Result<(), (KafkaError, String)> {
        let (pid, epoch) = (p.producer_id, p.epoch);
        // A coordinator that lost the id's records in a failover no longer knows it
        // (Kafka: `INVALID_PRODUCER_ID_MAPPING`, which Kafka Streams handles as fencing).
        let Some(st) = self.txn_ids.get(owner) else {
            let detail = format!("{owner} is unknown to its coordinator");
            return Err((KafkaError::ProducerFenced, detail));
        };
        // MUTATION HOOK (`Defects::stale_epoch_accepted`): an older epoch passes.
        let stale = epoch < st.epoch && !self.defects.stale_epoch_accepted;
        if st.producer_id != pid || stale {
            Err((
                KafkaError::ProducerFenced,
                format!(
                    "{owner} producer {pid} epoch {epoch} is fenced by {} epoch {}",
                    st.producer_id, st.epoch
                ),
            ))
        } else if epoch > st.epoch {
            Err((
                KafkaError::InvalidProducerEpoch,
                format!(
                    "epoch {epoch} of {owner} was never handed out (now {})",
                    st.epoch
                ),
            ))
        } else {
            Ok(())
        }
    }

    fn not_transactional(
        &self,
        request: &str,
        producer: &ProducerIdentity,
        events: &mut Vec<Event>,
    ) -> KafkaError {
        reject(
            events,
            request,
            KafkaError::InvalidTxnState,
            format!("producer {} is not transactional", producer.producer_id),
        )
    }

    /// Begin a transaction for `tid` if none is open; returns its serial.
    pub(super) fn ensure_txn(
        &mut self,
        tid: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> TxnSerial {
        let st = self.txn_ids.get_mut(tid).expect("known transactional id");
        if let Some(open) = &st.open {
            return open.serial;
        }
        assert!(
            st.ending.is_none(),
            "broker bug: {tid} begins a transaction while the last one's markers are pending"
        );
        self.txn_outcomes.push(TxnOutcome::Open);
        let serial = self.txn_outcomes.len() - 1;
        events.push(Event::TxnBegin {
            transactional_id: tid.to_string(),
            producer_id: st.producer_id,
            epoch: st.epoch,
        });
        st.open = Some(OpenTxn {
            serial,
            started: now,
            partitions: BTreeMap::new(),
            offsets: BTreeMap::new(),
        });
        serial
    }

    /// Implicit `AddPartitionsToTxn` (KIP-890): begin a transaction for `tid` if none is
    /// open and add `tp`, whose records start at `first`, to it; returns its serial.
    pub(super) fn add_partition_to_txn(
        &mut self,
        tid: &str,
        tp: &TopicPartition,
        first: Offset,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> TxnSerial {
        let serial = self.ensure_txn(tid, now, events);
        let st = self
            .txn_ids
            .get_mut(tid)
            .expect("validated transactional id");
        let open = st.open.as_mut().expect("transaction just ensured");
        let first = *open.partitions.entry(tp.clone()).or_insert(first);
        assert!(
            first <= self.partition(tp).expect("checked partition").log_end,
            "broker bug: {tid} starts in {tp} past its end"
        );
        serial
    }

    pub(super) fn txn_offset_commit(
        &mut self,
        now: Millis,
        producer: &ProducerIdentity,
        meta: GroupMetadata,
        offsets: Vec<(TopicPartition, Offset)>,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        const REQ: &str = "TxnOffsetCommit";
        let tid = match self.check_producer(producer) {
            Ok(Some(tid)) => tid,
            Ok(None) => return Err(self.not_transactional(REQ, producer, events)),
            Err((e, detail)) => {
                return Err(reject(events, REQ, self.data_request_error(e), detail))
            }
        };
        self.check_not_ending(REQ, &tid, events)?;
        // TxnOffsetCommit before v3 (pre KIP-447) carried no member id or generation, so
        // the coordinator could not fence a zombie on it: an empty member id stands for
        // such a request.
        if !meta.member_id.is_empty() {
            self.check_group_member(&meta)
                .map_err(|(e, d)| reject(events, REQ, e, d))?;
        }
        self.check_offset_partitions(REQ, &offsets, events)?;
        self.ensure_txn(&tid, now, events);
        let open = self
            .txn_ids
            .get_mut(&tid)
            .and_then(|st| st.open.as_mut())
            .expect("transaction just ensured");
        let pending = open.offsets.entry(meta.group.clone()).or_default();
        pending.generation = meta.generation;
        pending.member_id.clone_from(&meta.member_id);
        pending.offsets.extend(offsets.iter().cloned());
        events.push(Event::TxnOffsets {
            transactional_id: tid,
            producer_id: producer.producer_id,
            epoch: producer.epoch,
            group: meta.group,
            member_id: meta.member_id,
            generation: meta.generation,
            offsets,
        });
        Ok(())
    }

    pub(super) fn end_txn_request(
        &mut self,
        producer: &ProducerIdentity,
        commit: bool,
        events: &mut Vec<Event>,
    ) -> Result<Option<(ProducerId, Epoch)>, KafkaError> {
        if self.config.transaction_version.bumps_epoch_at_every_end() {
            return self.end_txn_v2(producer, commit, events).map(Some);
        }
        const REQ: &str = "EndTxn";
        let tid = match self.check_producer(producer) {
            Ok(Some(tid)) => tid,
            Ok(None) => return Err(self.not_transactional(REQ, producer, events)),
            Err((e, detail)) => return Err(reject(events, REQ, e, detail)),
        };
        self.check_not_ending(REQ, &tid, events)?;
        let st = self.txn_ids.get(&tid).expect("validated transactional id");
        if st.open.is_none() {
            return if st.last_completed == Some((st.epoch, commit)) {
                Ok(None) // a retry of the EndTxn that completed the last transaction
            } else {
                Err(no_transaction(events, &tid, commit))
            };
        }
        let epoch = st.epoch;
        self.prepare_end(&tid, commit, "requested by the producer", epoch, events);
        self.complete_if_written(&tid);
        Ok(None)
    }

    /// `CONCURRENT_TRANSACTIONS` while the markers of `tid`'s last transaction are being
    /// written (`TransactionCoordinator.endTransaction`, `handleAddPartitionsToTransaction`:
    /// a pending transition, or `PrepareCommit` / `PrepareAbort`).
    pub(super) fn check_not_ending(
        &self,
        request: &str,
        tid: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        match &self.txn_ids[tid].ending {
            None => Ok(()),
            Some(e) => {
                let state = if e.commit {
                    "PrepareCommit"
                } else {
                    "PrepareAbort"
                };
                let detail = format!("{tid} is in {state}: its markers are being written");
                Err(reject(
                    events,
                    request,
                    KafkaError::ConcurrentTransactions,
                    detail,
                ))
            }
        }
    }

    /// `EndTxn` under transaction protocol v2, after Kafka's
    /// `TransactionCoordinator.endTransaction` (the branch where
    /// `clientTransactionVersion.supportsEpochBump()`): the epoch of an open transaction
    /// must be the current one, and ending it bumps the epoch; in `CompleteCommit` /
    /// `CompleteAbort` a request with epoch − 1 (`retryOnEpochBump`, or the old producer id
    /// at the last epoch after a rotation, `retryOnOverflow`) is a retry, answered `Ok`
    /// with the current producer id and epoch when it asks for the same outcome; an abort
    /// at the current epoch with no transaction open bumps the epoch again; in
    /// `PrepareCommit` / `PrepareAbort` (markers pending) a retry is answered
    /// `CONCURRENT_TRANSACTIONS`. Everything else with an old epoch is `PRODUCER_FENCED`.
    /// Answers the producer id and epoch to use.
    fn end_txn_v2(
        &mut self,
        producer: &ProducerIdentity,
        commit: bool,
        events: &mut Vec<Event>,
    ) -> Result<(ProducerId, Epoch), KafkaError> {
        const REQ: &str = "EndTxn";
        let tid = match self.producer_owner(producer) {
            Ok(Some(tid)) => tid,
            Ok(None) => return Err(self.not_transactional(REQ, producer, events)),
            Err((e, detail)) => return Err(reject(events, REQ, e, detail)),
        };
        let Some(st) = self.txn_ids.get(&tid) else {
            let detail = format!("{tid} is unknown to its coordinator");
            return Err(reject(events, REQ, KafkaError::ProducerFenced, detail));
        };
        let current = (st.producer_id, st.epoch);
        let retry = is_retry_v2(st, producer);
        let valid_epoch = match (&st.open, &st.ending, st.last_completed) {
            // PrepareCommit / PrepareAbort: only a retry (`retryOnEpochBump`) is valid.
            (None, Some(_), _) => retry,
            (None, None, Some(_)) => retry || producer.epoch == st.epoch,
            // MUTATION HOOK (`Defects::stale_epoch_accepted`): an older epoch ends the
            // open transaction.
            (Some(_), _, _) if self.defects.stale_epoch_accepted => producer.epoch <= st.epoch,
            _ => producer.epoch == st.epoch,
        };
        if (producer.producer_id != st.producer_id && !retry) || !valid_epoch {
            let detail = format!(
                "{tid} producer {} epoch {} is fenced by {} epoch {}",
                producer.producer_id, producer.epoch, current.0, current.1
            );
            return Err(reject(events, REQ, KafkaError::ProducerFenced, detail));
        }
        self.check_not_ending(REQ, &tid, events)?;
        let st = &self.txn_ids[&tid];
        match (st.open.is_some(), st.last_completed) {
            (true, _) => self.end_with_bump(&tid, commit, "requested by the producer", events),
            (false, Some((_, done))) if retry => {
                if done != commit {
                    return Err(no_transaction(events, &tid, commit));
                }
                return Ok(current); // a retry of the EndTxn that completed the last one
            }
            (false, _) if !commit => self.end_with_bump(&tid, false, "", events),
            (false, _) => return Err(no_transaction(events, &tid, commit)),
        }
        let st = &self.txn_ids[&tid];
        assert!(
            (st.producer_id, st.epoch) > current || st.producer_id != current.0,
            "broker bug: {tid} ended a transaction without a new epoch"
        );
        Ok((st.producer_id, st.epoch))
    }

    /// Under v2: end the open transaction of `tid` (or, with none open, an empty abort),
    /// its markers to carry the next epoch, and bump the epoch
    /// (`TransactionMetadata.prepareAbortOrCommit`, which moves to `nextProducerId` at epoch
    /// 0 when the epoch was exhausted: here at once).
    fn end_with_bump(&mut self, tid: &str, commit: bool, reason: &str, events: &mut Vec<Event>) {
        let ending = self.txn_ids[tid].open.is_some();
        if ending {
            let marker_epoch = self.epoch_after(tid, 1);
            self.prepare_end(tid, commit, reason, marker_epoch, events);
        }
        self.bump_epoch(tid, events);
        if ending {
            self.complete_if_written(tid);
        } else {
            let st = self.txn_ids.get_mut(tid).expect("known transactional id");
            st.last_completed = Some((st.epoch, commit));
        }
    }

    /// The epoch `bumps` bumps after the current one, as the markers of an ending
    /// transaction carry it (at most `Short.MAX_VALUE`).
    fn epoch_after(&self, tid: &str, bumps: Epoch) -> Epoch {
        let epoch = self.txn_ids[tid].epoch.saturating_add(bumps);
        epoch.min(i16::MAX as Epoch)
    }

    /// Abort the open transaction of `tid` on the coordinator's own initiative (a timeout,
    /// a new producer) and fence its epoch: Kafka's `prepareFenceProducerEpoch` (+1), then
    /// `endTransaction(isFromClient = false)` with the server's transaction version, whose
    /// `prepareAbortOrCommit` bumps once more under v2. The markers carry the epoch reached.
    pub(super) fn abort_and_fence(&mut self, tid: &str, reason: &str, events: &mut Vec<Event>) {
        assert!(
            self.txn_ids[tid].open.is_some(),
            "broker bug: fencing {tid} with no transaction ongoing"
        );
        let bumps = if self.config.transaction_version.bumps_epoch_at_every_end() {
            2
        } else {
            1
        };
        let marker_epoch = self.epoch_after(tid, bumps);
        self.prepare_end(tid, false, reason, marker_epoch, events);
        for _ in 0..bumps {
            self.bump_epoch(tid, events);
        }
        self.complete_if_written(tid);
    }

    /// Transactional ids with a transaction not completed (ongoing, or its markers still
    /// being written), sorted.
    pub fn open_transactions(&self) -> Vec<String> {
        self.txn_ids
            .iter()
            .filter(|(_, st)| st.in_transaction())
            .map(|(tid, _)| tid.clone())
            .collect()
    }

    /// Current producer id and epoch of a transactional id.
    pub fn producer_epoch(&self, transactional_id: &str) -> Option<(ProducerId, Epoch)> {
        self.txn_ids
            .get(transactional_id)
            .map(|st| (st.producer_id, st.epoch))
    }
}

/// Kafka's v2 retry conditions (`TransactionCoordinator.endTransaction`): the request
/// carries the epoch just before the current one (`retryOnEpochBump`), or the previous
/// producer id at the last epoch while the current one starts again at 0
/// (`retryOnOverflow`).
fn is_retry_v2(st: &TxnIdState, p: &ProducerIdentity) -> bool {
    let on_bump = p.producer_id == st.producer_id && p.epoch.checked_add(1) == Some(st.epoch);
    let on_overflow =
        st.previous_producer_id == Some(p.producer_id) && p.epoch == MAX_EPOCH && st.epoch == 0;
    on_bump || on_overflow
}

/// `INVALID_TXN_STATE`: nothing to commit or abort, and not a retry.
fn no_transaction(events: &mut Vec<Event>, tid: &str, commit: bool) -> KafkaError {
    let what = if commit { "commit" } else { "abort" };
    reject(
        events,
        "EndTxn",
        KafkaError::InvalidTxnState,
        format!("{tid} has no open transaction to {what}"),
    )
}
