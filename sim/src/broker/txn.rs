//! The transaction coordinator: `transactional.id` → producer id and epoch,
//! `InitProducerId` (epoch bump, abort of the previous epoch's transaction, fencing),
//! implicit begin and partition adds (KIP-890), `TxnOffsetCommit` (KIP-447), `EndTxn`
//! with its markers, and transaction timeouts.

use std::collections::BTreeMap;

use super::{reject, Broker};
use crate::protocol::{
    ControlType, Epoch, Generation, GroupMetadata, KafkaError, LogEntry, Millis, Offset,
    ProducerId, ProducerIdentity, Record, TopicPartition,
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

#[derive(Clone, Debug, Default)]
pub(super) struct PendingOffsets {
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

/// The transaction coordinator's state of one `transactional.id`.
#[derive(Clone, Debug)]
pub(super) struct TxnIdState {
    pub(super) producer_id: ProducerId,
    pub(super) epoch: Epoch,
    pub(super) timeout_ms: Millis,
    pub(super) open: Option<OpenTxn>,
    /// How the last transaction of the current epoch ended (`true` = committed), so a
    /// retried `EndTxn` is answered `Ok`.
    pub(super) last_completed: Option<(Epoch, bool)>,
}

impl TxnIdState {
    /// When this transactional id's open transaction times out, if one is open.
    pub(super) fn deadline(&self) -> Option<Millis> {
        self.open
            .as_ref()
            .map(|o| o.started.saturating_add(self.timeout_ms))
    }
}

impl Broker {
    pub(super) fn init_producer_id(
        &mut self,
        now: Millis,
        transactional_id: Option<String>,
        transaction_timeout_ms: Millis,
        events: &mut Vec<Event>,
    ) -> (ProducerId, Epoch) {
        let Some(tid) = transactional_id else {
            let pid = self.allocate_producer_id(None);
            events.push(Event::ProducerInit {
                transactional_id: None,
                producer_id: pid,
                epoch: 0,
            });
            return (pid, 0);
        };
        let (pid, epoch) = if self.txn_ids.contains_key(&tid) {
            self.abort_open_txn(
                &tid,
                now,
                "fenced by a new producer (InitProducerId)",
                events,
            );
            self.bump_epoch(&tid, events);
            let st = self.txn_ids.get_mut(&tid).expect("checked above");
            st.timeout_ms = transaction_timeout_ms;
            st.last_completed = None;
            (st.producer_id, st.epoch)
        } else {
            let pid = self.allocate_producer_id(Some(tid.clone()));
            self.txn_ids.insert(
                tid.clone(),
                TxnIdState {
                    producer_id: pid,
                    epoch: 0,
                    timeout_ms: transaction_timeout_ms,
                    open: None,
                    last_completed: None,
                },
            );
            (pid, 0)
        };
        assert!(
            self.txn_ids[&tid].open.is_none(),
            "broker bug: {tid} initialised with an open transaction"
        );
        events.push(Event::ProducerInit {
            transactional_id: Some(tid),
            producer_id: pid,
            epoch,
        });
        (pid, epoch)
    }

    /// Fence the current epoch of `tid`: the next epoch (or a fresh producer id at epoch 0
    /// when the epoch is exhausted) becomes current. The transaction must be closed.
    pub(super) fn bump_epoch(&mut self, tid: &str, events: &mut Vec<Event>) {
        let st = self.txn_ids.get(tid).expect("known transactional id");
        assert!(
            st.open.is_none(),
            "broker bug: bumping the epoch of an open transaction"
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
        let st = self
            .txn_ids
            .get(owner)
            .expect("transactional producer has a state");
        if st.producer_id != pid || epoch < st.epoch {
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

    /// A transactional producer's request: the transactional id of its current epoch.
    fn transactional(
        &self,
        request: &str,
        producer: &ProducerIdentity,
        events: &mut Vec<Event>,
    ) -> Result<String, KafkaError> {
        match self.check_producer(producer) {
            Ok(Some(tid)) => Ok(tid),
            Ok(None) => Err(reject(
                events,
                request,
                KafkaError::InvalidTxnState,
                format!("producer {} is not transactional", producer.producer_id),
            )),
            Err((e, detail)) => Err(reject(events, request, e, detail)),
        }
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
        let tid = self.transactional(REQ, producer, events)?;
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
        pending.offsets.extend(offsets.iter().cloned());
        events.push(Event::TxnOffsets {
            transactional_id: tid,
            group: meta.group,
            generation: meta.generation,
            offsets,
        });
        Ok(())
    }

    pub(super) fn end_txn_request(
        &mut self,
        now: Millis,
        producer: &ProducerIdentity,
        commit: bool,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        const REQ: &str = "EndTxn";
        let tid = self.transactional(REQ, producer, events)?;
        let st = self.txn_ids.get(&tid).expect("validated transactional id");
        if st.open.is_none() {
            return if st.last_completed == Some((st.epoch, commit)) {
                Ok(()) // a retry of the EndTxn that completed the last transaction
            } else {
                let what = if commit { "commit" } else { "abort" };
                Err(reject(
                    events,
                    REQ,
                    KafkaError::InvalidTxnState,
                    format!("{tid} has no open transaction to {what}"),
                ))
            };
        }
        self.complete_txn(&tid, now, commit, "requested by the producer", events);
        Ok(())
    }

    pub(super) fn abort_open_txn(
        &mut self,
        tid: &str,
        now: Millis,
        reason: &str,
        events: &mut Vec<Event>,
    ) {
        let open = self.txn_ids.get(tid).is_some_and(|st| st.open.is_some());
        if open {
            self.complete_txn(tid, now, false, reason, events);
        }
    }

    /// Write the markers of the open transaction of `tid` and settle it.
    fn complete_txn(
        &mut self,
        tid: &str,
        now: Millis,
        commit: bool,
        reason: &str,
        events: &mut Vec<Event>,
    ) {
        let st = self.txn_ids.get_mut(tid).expect("known transactional id");
        let open = st.open.take().expect("an open transaction");
        let (pid, epoch) = (st.producer_id, st.epoch);
        st.last_completed = Some((epoch, commit));
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
        let control = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        for tp in open.partitions.keys() {
            self.write_marker(tp, open.serial, (pid, epoch), control, now, events);
        }
        if commit {
            self.commit_pending_offsets(open.offsets, events);
            events.push(Event::TxnCommit {
                transactional_id: tid.to_string(),
                producer_id: pid,
                epoch,
            });
        } else {
            events.push(Event::TxnAbort {
                transactional_id: tid.to_string(),
                producer_id: pid,
                epoch,
                reason: reason.to_string(),
            });
        }
    }

    /// Write a commit or abort marker of transaction `serial` into `tp`, which stops
    /// holding back the partition's LSO.
    fn write_marker(
        &mut self,
        tp: &TopicPartition,
        serial: TxnSerial,
        (pid, epoch): (ProducerId, Epoch),
        control: ControlType,
        now: Millis,
        events: &mut Vec<Event>,
    ) {
        let (log, compacted) = self.partition_mut(tp);
        let removed = log.ongoing.remove(&serial);
        assert!(
            removed.is_some(),
            "broker bug: {tp} did not know its open transaction"
        );
        let offset = log.log_end;
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
            compacted,
        );
        events.push(Event::Marker {
            tp: tp.clone(),
            offset,
            producer_id: pid,
            control,
        });
    }

    /// Abort every transaction open for its timeout or longer and fence its epoch, by
    /// transactional id.
    pub(super) fn abort_timed_out_transactions(&mut self, now: Millis, events: &mut Vec<Event>) {
        let timed_out: Vec<String> = self
            .txn_ids
            .iter()
            .filter(|(_, st)| st.deadline().is_some_and(|d| now >= d))
            .map(|(tid, _)| tid.clone())
            .collect();
        for tid in timed_out {
            self.complete_txn(&tid, now, false, "timeout", events);
            self.bump_epoch(&tid, events);
        }
    }

    /// Transactional ids with an open transaction, sorted.
    pub fn open_transactions(&self) -> Vec<String> {
        self.txn_ids
            .iter()
            .filter(|(_, st)| st.open.is_some())
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
