//! Producer state: producer ids, idempotence (a sequence number per producer and
//! partition, Kafka's `ProducerStateManager` / `ProducerAppendInfo`), the duplicate cache
//! of the last [`PRODUCER_BATCH_CACHE`] batches, and the `Produce` request, which appends
//! through the partition log and joins transactions implicitly (KIP-890).

use std::collections::VecDeque;

use super::log::EntryMeta;
use super::{reject, Broker};
use crate::protocol::{
    Acks, Epoch, KafkaError, LogEntry, Millis, Offset, PartitionProduceResult, ProduceBatch,
    ProducerId, ProducerIdentity, TopicPartition,
};
use crate::trace::Event;

/// How many appended batches per producer and partition the broker remembers for
/// duplicate detection (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
pub const PRODUCER_BATCH_CACHE: usize = 5;

/// One appended batch remembered for duplicate detection.
#[derive(Clone, Copy, Debug)]
pub(super) struct CachedBatch {
    base_sequence: i32,
    count: i32,
    base_offset: Offset,
}

/// Kafka's `ProducerStateEntry`: what a partition knows of one producer id.
#[derive(Clone, Debug)]
pub(super) struct ProducerState {
    pub(super) epoch: Epoch,
    pub(super) last_sequence: i32,
    pub(super) batches: VecDeque<CachedBatch>,
}

impl ProducerState {
    /// Remember a batch of `count` records from `base_sequence` appended at `base_offset`
    /// at `epoch` (a new epoch forgets the batches of the old one).
    pub(super) fn record(
        &mut self,
        epoch: Epoch,
        base_sequence: i32,
        count: i32,
        base_offset: Offset,
    ) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        self.last_sequence = increment_sequence(base_sequence, count - 1);
        self.batches.push_back(CachedBatch {
            base_sequence,
            count,
            base_offset,
        });
        if self.batches.len() > PRODUCER_BATCH_CACHE {
            self.batches.pop_front();
        }
        assert!(
            !self.batches.is_empty() && self.batches.len() <= PRODUCER_BATCH_CACHE,
            "broker bug: duplicate cache of {} batches",
            self.batches.len()
        );
    }
}

/// What the broker knows of a producer id.
#[derive(Clone, Debug)]
pub(super) struct ProducerEntry {
    pub(super) transactional_id: Option<String>,
    /// Current epoch of an idempotent producer (transactional ones: see `TxnIdState`).
    pub(super) epoch: Epoch,
}

/// Producer id, epoch and base sequence of an idempotent batch that passed its checks.
type Ident = (ProducerId, Epoch, i32);

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub(super) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Kafka's `ProducerAppendInfo.checkSequence` with duplicate detection, for a batch of
/// `count` records from sequence `base` at `epoch`, given what the partition knows of its
/// producer: `Ok(Some(offset))` for a batch already appended at `offset`, `Ok(None)` for
/// the next batch in sequence.
fn check_sequence(
    state: Option<&ProducerState>,
    epoch: Epoch,
    base: i32,
    count: i32,
) -> Result<Option<Offset>, (KafkaError, String)> {
    match state {
        Some(s) if s.epoch > epoch => Err((
            KafkaError::InvalidProducerEpoch,
            format!("epoch {epoch} is older than epoch {} seen here", s.epoch),
        )),
        Some(s) if s.epoch == epoch => {
            let cached = s
                .batches
                .iter()
                .find(|b| b.base_sequence == base && b.count == count);
            if let Some(dup) = cached {
                return Ok(Some(dup.base_offset));
            }
            let expected = increment_sequence(s.last_sequence, 1);
            if base == expected {
                Ok(None)
            } else {
                Err((
                    KafkaError::OutOfOrderSequenceNumber,
                    format!("sequence {base}, expected {expected}"),
                ))
            }
        }
        // A new epoch of a producer this partition knows starts at sequence 0.
        Some(_) if base == 0 => Ok(None),
        Some(_) => Err((
            KafkaError::OutOfOrderSequenceNumber,
            format!("the first batch of epoch {epoch} starts at sequence {base}, not 0"),
        )),
        // A producer this partition has no state for: any sequence is accepted
        // (ProducerAppendInfo.checkSequence: "If there is no current producer epoch ...
        // accept writes with any sequence number").
        None => Ok(None),
    }
}

/// What the idempotence check decided for one batch.
enum Sequenced {
    /// No producer identity: append without sequence numbers.
    Plain,
    /// The next batch in sequence: append it.
    Next(Ident),
    /// A retry of a batch already appended: acknowledge it there.
    Duplicate(PartitionProduceResult),
}

impl Broker {
    pub(super) fn allocate_producer_id(&mut self, transactional_id: Option<String>) -> ProducerId {
        let pid = self.next_producer_id;
        self.next_producer_id += 1;
        let previous = self.producers.insert(
            pid,
            ProducerEntry {
                transactional_id,
                epoch: 0,
            },
        );
        assert!(previous.is_none(), "broker bug: producer id {pid} reused");
        pid
    }

    /// Validate a producer identity: `Ok(Some(tid))` for the current epoch of a
    /// transactional producer, `Ok(None)` for a current idempotent producer.
    pub(super) fn check_producer(
        &self,
        p: &ProducerIdentity,
    ) -> Result<Option<String>, (KafkaError, String)> {
        match self.producer_owner(p)? {
            None => check_idempotent_epoch(&self.producers[&p.producer_id], p).map(|()| None),
            Some(owner) => self
                .check_transactional_epoch(&owner, p)
                .map(|()| Some(owner)),
        }
    }

    /// Whose producer id a request carries, epochs aside: `Ok(Some(tid))` for a producer id
    /// of the transactional id the request claims, `Ok(None)` for an idempotent producer.
    pub(super) fn producer_owner(
        &self,
        p: &ProducerIdentity,
    ) -> Result<Option<String>, (KafkaError, String)> {
        let pid = p.producer_id;
        let Some(entry) = self.producers.get(&pid) else {
            return Err((
                KafkaError::UnknownProducerId,
                format!("producer id {pid} was never handed out"),
            ));
        };
        match (&entry.transactional_id, &p.transactional_id) {
            (None, None) => Ok(None),
            (Some(owner), Some(claimed)) if owner == claimed => Ok(Some(owner.clone())),
            (Some(owner), None) => Err((
                KafkaError::InvalidTxnState,
                format!(
                    "producer id {pid} belongs to {owner}, but the request is not transactional"
                ),
            )),
            (_, Some(claimed)) => Err((
                KafkaError::UnknownProducerId,
                format!("producer id {pid} is not a producer id of transactional id {claimed}"),
            )),
        }
    }

    /// The error a data request (`Produce`, `TxnOffsetCommit`) of a fenced epoch gets.
    /// Under transaction protocol v2 the partition leader verifies the transaction with the
    /// coordinator and answers `INVALID_PRODUCER_EPOCH` where the coordinator said
    /// `PRODUCER_FENCED` (Kafka's `AddPartitionsToTxnManager`, "Producers expect to handle
    /// INVALID_PRODUCER_EPOCH in this scenario"; `ProducerAppendInfo.checkProducerEpoch`).
    pub(super) fn data_request_error(&self, error: KafkaError) -> KafkaError {
        match error {
            KafkaError::ProducerFenced
                if self.config.transaction_version.bumps_epoch_at_every_end() =>
            {
                KafkaError::InvalidProducerEpoch
            }
            other => other,
        }
    }

    pub(super) fn produce(
        &mut self,
        now: Millis,
        producer: Option<ProducerIdentity>,
        batches: Vec<ProduceBatch>,
        acks: Acks,
        events: &mut Vec<Event>,
    ) -> Vec<(TopicPartition, PartitionProduceResult)> {
        let tid = match &producer {
            None => None,
            Some(p) => match self.check_producer(p) {
                Ok(tid) => tid,
                Err((error, detail)) => {
                    let error = self.data_request_error(error);
                    reject(events, "Produce", error, detail);
                    return fail_all(batches, error);
                }
            },
        };
        if let Some(tid) = &tid {
            // The verification of the next transaction with the coordinator answers
            // CONCURRENT_TRANSACTIONS while the last one's markers are pending
            // (`TransactionCoordinator.handleAddPartitionsToTransaction`), which the
            // partition leader answers as NOT_ENOUGH_REPLICAS so that the producer retries
            // the batch (`ReplicaManager.handleProduceAppend`).
            // So is a verification that finds no coordinator (`NOT_COORDINATOR`,
            // `COORDINATOR_LOAD_IN_PROGRESS`).
            let coordinator = super::coordinator::Coordinator::Transaction;
            if self
                .check_coordinator(coordinator, tid, "Produce", events)
                .is_err()
            {
                let error = KafkaError::NotEnoughReplicas;
                let detail = format!("{tid}: verification failed: no coordinator");
                reject(events, "Produce", error, detail);
                return fail_all(batches, error);
            }
            if self.check_not_ending("Produce", tid, events).is_err() {
                let error = KafkaError::NotEnoughReplicas;
                let detail = format!("{tid}: verification failed: CONCURRENT_TRANSACTIONS");
                reject(events, "Produce", error, detail);
                return fail_all(batches, error);
            }
        }
        let pending = tid
            .as_deref()
            .is_some_and(|t| self.txn_transition_pending(t));
        batches
            .into_iter()
            .map(|batch| {
                if pending && !self.in_open_txn(tid.as_deref(), &batch.tp) {
                    let error = self.transition_pending(tid.as_deref(), &batch.tp, events);
                    return (batch.tp, PartitionProduceResult::Error(error));
                }
                let result = self.produce_batch(
                    now,
                    (producer.as_ref(), tid.as_deref()),
                    &batch,
                    acks,
                    events,
                );
                (batch.tp, result)
            })
            .collect()
    }

    /// Whether `tp` already holds records of the open transaction of `tid`: its leader
    /// then appends without asking the coordinator (`UnifiedLog.maybeStartTransactionVerification`:
    /// `hasOngoingTransaction(producerId)` needs no verification guard).
    fn in_open_txn(&self, tid: Option<&str>, tp: &TopicPartition) -> bool {
        let open = tid.and_then(|t| self.txn_ids.get(t)?.open.as_ref());
        open.is_some_and(|o| o.partitions.contains_key(tp))
    }

    /// The answer to a batch that would add `tp` to the transaction of `tid` while the
    /// coordinator's last state change is not yet replicated: Kafka's
    /// `TransactionCoordinator.handleAddPartitionsToTransaction` answers
    /// `CONCURRENT_TRANSACTIONS` while `pendingTransitionInProgress` (the transition is
    /// completed only by `TransactionStateManager.appendTransactionToLog`'s callback, once
    /// its record is appended with `acks=-1`), and `ReplicaManager.appendRecords`'
    /// `postVerificationCallback` turns that into `NOT_ENOUGH_REPLICAS`, so the batch is
    /// not appended and the producer retries it. So a partition never holds a
    /// transaction's records before the coordinator's record of the state they follow is
    /// durable, and a coordinator that fails over cannot forget a transaction a data
    /// partition has begun.
    fn transition_pending(
        &self,
        tid: Option<&str>,
        tp: &TopicPartition,
        events: &mut Vec<Event>,
    ) -> KafkaError {
        let tid = tid.expect("a transactional produce");
        let detail = format!(
            "{tid}: verification of {tp} failed: CONCURRENT_TRANSACTIONS \
             (the coordinator's last record is not replicated yet)"
        );
        reject(events, "Produce", KafkaError::NotEnoughReplicas, detail)
    }

    /// Append one batch of an already validated producer.
    fn produce_batch(
        &mut self,
        now: Millis,
        (producer, tid): (Option<&ProducerIdentity>, Option<&str>),
        batch: &ProduceBatch,
        acks: Acks,
        events: &mut Vec<Event>,
    ) -> PartitionProduceResult {
        let tp = &batch.tp;
        let log_end = match self.produce_target(tp, events) {
            Ok(log_end) => log_end,
            Err(e) => return PartitionProduceResult::Error(e),
        };
        let leader = self.check_leader(tp, "Produce", events);
        if let Err(e) = leader.and_then(|()| self.check_min_isr(tp, acks, events)) {
            return PartitionProduceResult::Error(e);
        }
        if batch.records.is_empty() {
            // Kafka answers INVALID_RECORD; the protocol has no such error, and an empty
            // batch changes nothing: acknowledge it at the log end.
            return PartitionProduceResult::Appended {
                base_offset: log_end,
                duplicate: false,
            };
        }
        let count = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);
        let ident = match self.sequence_batch(producer, batch, count, events) {
            Ok(Sequenced::Plain) => None,
            Ok(Sequenced::Next(ident)) => Some(ident),
            Ok(Sequenced::Duplicate(result)) => return result,
            Err(e) => return PartitionProduceResult::Error(e),
        };
        // Transactions: begin one implicitly, add this partition implicitly (KIP-890).
        let serial = tid.map(|tid| self.add_partition_to_txn(tid, tp, log_end, now, events));
        let base_offset = self.append_batch(batch, ident, serial, events);
        assert_eq!(
            base_offset, log_end,
            "broker bug: batch not appended at the end"
        );
        self.note_leader_append(tp, log_end, now);
        // `Partition.appendRecordsToLeader` ends with `maybeIncrementLeaderHW`: with the
        // leader alone in the ISR the batch is committed at once.
        self.maybe_increment_hw(tp);
        if let Some((pid, epoch, base_sequence)) = ident {
            let (log, _) = self.partition_mut(tp);
            let state = log.producers.entry(pid).or_insert(ProducerState {
                epoch,
                last_sequence: -1,
                batches: VecDeque::new(),
            });
            state.record(epoch, base_sequence, count, base_offset);
        }
        PartitionProduceResult::Appended {
            base_offset,
            duplicate: false,
        }
    }

    /// The log end of the partition a batch goes to, or why it cannot go there.
    fn produce_target(
        &self,
        tp: &TopicPartition,
        events: &mut Vec<Event>,
    ) -> Result<Offset, KafkaError> {
        let Some(topic) = self.topics.get(&tp.topic) else {
            return Err(reject(
                events,
                "Produce",
                KafkaError::UnknownTopicOrPartition,
                format!("no topic {}", tp.topic),
            ));
        };
        match topic.partitions.get(tp.partition as usize) {
            Some(log) => Ok(log.log_end),
            None => Err(reject(
                events,
                "Produce",
                KafkaError::UnknownTopicOrPartition,
                format!("topic {} has no partition {}", tp.topic, tp.partition),
            )),
        }
    }

    /// Idempotence: check a batch's sequence against its partition's producer state.
    fn sequence_batch(
        &self,
        producer: Option<&ProducerIdentity>,
        batch: &ProduceBatch,
        count: i32,
        events: &mut Vec<Event>,
    ) -> Result<Sequenced, KafkaError> {
        let Some(p) = producer else {
            return Ok(Sequenced::Plain);
        };
        let tp = &batch.tp;
        let log = self.partition(tp).expect("checked partition");
        let checked = match batch.base_sequence.filter(|s| *s >= 0) {
            None => Err((
                KafkaError::OutOfOrderSequenceNumber,
                "an idempotent batch without a valid sequence number".to_string(),
            )),
            Some(base) => {
                let state = log.producers.get(&p.producer_id);
                check_sequence(state, p.epoch, base, count).map(|dup| (base, dup))
            }
        };
        match checked {
            Err((error, detail)) => {
                let detail = format!("producer {} to {tp}: {detail}", p.producer_id);
                Err(reject(events, "Produce", error, detail))
            }
            Ok((base_sequence, Some(base_offset))) => {
                events.push(Event::DuplicateBatch {
                    tp: tp.clone(),
                    producer_id: p.producer_id,
                    base_sequence,
                    base_offset,
                });
                Ok(Sequenced::Duplicate(PartitionProduceResult::Appended {
                    base_offset,
                    duplicate: true,
                }))
            }
            Ok((base_sequence, None)) => {
                Ok(Sequenced::Next((p.producer_id, p.epoch, base_sequence)))
            }
        }
    }

    /// Append the records of a checked batch (of transaction `serial`, if any); returns
    /// the base offset.
    fn append_batch(
        &mut self,
        batch: &ProduceBatch,
        ident: Option<Ident>,
        serial: Option<super::txn::TxnSerial>,
        events: &mut Vec<Event>,
    ) -> Offset {
        let tp = &batch.tp;
        let (log, compacted) = self.partition_mut(tp);
        let base_offset = log.log_end;
        if let Some(serial) = serial {
            log.ongoing.entry(serial).or_insert(base_offset);
        }
        let epoch = log.epochs.last().map_or(0, |(e, _)| *e);
        log.note_epoch(epoch, base_offset);
        for (i, record) in batch.records.iter().enumerate() {
            let offset = log.log_end;
            let meta = EntryMeta {
                batch: ident
                    .filter(|_| i == 0)
                    .map(|(_, _, base)| (base, batch.records.len() as i32)),
                marker_of: None,
                coord: None,
            };
            let sequence = ident.map(|(_, _, base)| increment_sequence(base, i as i32));
            events.push(Event::Append {
                tp: tp.clone(),
                offset,
                key: record.key.clone(),
                value: record.value.clone(),
                producer_id: ident.map(|(pid, _, _)| pid),
                epoch: ident.map(|(_, epoch, _)| epoch),
                sequence,
                transactional: serial.is_some(),
            });
            log.append(
                LogEntry {
                    offset,
                    record: record.clone(),
                    producer: ident.map(|(pid, epoch, _)| (pid, epoch)),
                    sequence,
                    transactional: serial.is_some(),
                    control: None,
                },
                serial,
                meta,
                compacted,
            );
        }
        base_offset
    }
}

/// The epoch check of an idempotent (non-transactional) producer.
fn check_idempotent_epoch(
    entry: &ProducerEntry,
    p: &ProducerIdentity,
) -> Result<(), (KafkaError, String)> {
    let epoch = p.epoch;
    if epoch < entry.epoch {
        Err((
            KafkaError::InvalidProducerEpoch,
            format!("epoch {epoch} is older than the current {}", entry.epoch),
        ))
    } else if epoch > entry.epoch {
        Err((
            KafkaError::InvalidProducerEpoch,
            format!(
                "epoch {epoch} was never handed out (current {})",
                entry.epoch
            ),
        ))
    } else {
        Ok(())
    }
}

/// Every batch of a request answered with `error`.
fn fail_all(
    batches: Vec<ProduceBatch>,
    error: KafkaError,
) -> Vec<(TopicPartition, PartitionProduceResult)> {
    batches
        .into_iter()
        .map(|b| (b.tp, PartitionProduceResult::Error(error)))
        .collect()
}
