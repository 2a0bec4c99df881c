//! A simulated single Kafka broker: sans-IO, synchronous, deterministic.
//!
//! The broker is a plain state machine. [`Broker::handle`] applies one [`Request`]
//! atomically at a simulated time and returns its [`Response`]; [`Broker::tick`] does the
//! time-driven work (transaction timeouts, session and rebalance timeouts), and
//! [`Broker::next_deadline`] says when that work is next due. What happened is pushed to
//! an event vector as [`Event`]s. Nothing here reads a clock, draws randomness or iterates
//! a hash map: the same inputs give the same outputs and events, always.
//!
//! What it models, after Kafka (one durable broker, no replication, so the high watermark
//! is the log end offset):
//!
//! - **Logs**: topics of N partitions, dense offsets from 0; data records and
//!   transaction markers (control records) share the offset space.
//! - **Idempotent producers**: producer id and epoch, a sequence number per partition,
//!   the last [`PRODUCER_BATCH_CACHE`] batches remembered so a retried batch is
//!   acknowledged at its original offset without a second append; a sequence gap is
//!   `OutOfOrderSequenceNumber`. Without a producer identity every request appends.
//! - **Transactions** (KIP-98, KIP-447 `exactly_once_v2`, KIP-890 implicit partition
//!   adds): a `transactional.id` maps to a stable producer id; `InitProducerId` bumps the
//!   epoch, aborts the previous epoch's open transaction and fences it. Produce and
//!   `TxnOffsetCommit` begin a transaction implicitly; `EndTxn` writes a commit or abort
//!   marker into every partition the transaction touched, and on commit makes its pending
//!   group offsets committed. A transaction open longer than its timeout is aborted by
//!   [`Broker::tick`], which bumps the epoch so the old producer is fenced.
//! - **Last stable offset**: the first offset of the earliest open transaction in a
//!   partition, else the high watermark. `read_committed` fetches stop there and skip
//!   aborted records; no fetch ever returns a control record.
//! - **Consumer groups** (classic eager protocol; the coordinator computes the assignment
//!   with Kafka's `RangeAssignor`): join, rejoin during a rebalance, heartbeat, leave,
//!   session timeout, rebalance timeout, generations; offset commits are fenced by member
//!   id and generation, transactional ones too (KIP-447).
//! - **Compaction** of compacted topics ([`Broker::compact`]), as the log cleaner does it.
//!
//! Deterministic orders: [`Broker::tick`] handles timed-out transactions by
//! transactional id, then groups by name; markers are written to partitions in
//! (topic, partition) order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::protocol::{
    ControlType, Epoch, FetchData, FetchedRecord, Generation, GroupMetadata, Isolation,
    JoinOutcome, KafkaError, LogEntry, Millis, Offset, PartitionProduceResult, ProduceBatch,
    ProducerId, ProducerIdentity, Record, Request, Response, TopicPartition,
};
use crate::trace::Event;

/// How many appended batches per producer and partition the broker remembers for
/// duplicate detection (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
pub const PRODUCER_BATCH_CACHE: usize = 5;

/// Past this epoch a transactional id gets a fresh producer id at epoch 0 (Kafka bumps the
/// producer id when the epoch would reach `Short.MAX_VALUE`).
const MAX_EPOCH: Epoch = (i16::MAX - 1) as Epoch;

/// Static configuration of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub partitions: u32,
    /// `cleanup.policy=compact`: [`Broker::compact`] keeps the last record per key.
    pub compacted: bool,
}

/// State of a consumer group, as Kafka's classic group coordinator names it (the
/// `CompletingRebalance` phase does not exist here: the coordinator assigns partitions
/// itself when the last member rejoins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting, since `since`, for every member to send `JoinGroup` again.
    PreparingRebalance { since: Millis },
    /// Every member has the current generation's assignment.
    Stable,
}

/// Index into [`Broker::txn_outcomes`]: one per transaction ever begun.
type TxnSerial = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxnOutcome {
    Open,
    Committed,
    Aborted,
}

/// One appended batch remembered for duplicate detection.
#[derive(Clone, Copy, Debug)]
struct CachedBatch {
    base_sequence: i32,
    count: i32,
    base_offset: Offset,
}

/// Kafka's `ProducerStateEntry`: what a partition knows of one producer id.
#[derive(Clone, Debug)]
struct ProducerState {
    epoch: Epoch,
    last_sequence: i32,
    batches: VecDeque<CachedBatch>,
}

#[derive(Clone, Debug, Default)]
struct PartitionLog {
    entries: Vec<LogEntry>,
    /// Parallel to `entries`: the transaction that wrote each transactional data record.
    txn: Vec<Option<TxnSerial>>,
    /// Offset the next entry gets: the log end offset, which is the high watermark.
    log_end: Offset,
    /// Open transactions with records here: transaction → its first offset here.
    ongoing: BTreeMap<TxnSerial, Offset>,
    /// Idempotence state per producer id.
    producers: BTreeMap<ProducerId, ProducerState>,
}

impl PartitionLog {
    fn last_stable_offset(&self) -> Offset {
        let lso = self.ongoing.values().copied().min().unwrap_or(self.log_end);
        assert!(
            lso <= self.log_end,
            "broker bug: LSO {lso} past HW {}",
            self.log_end
        );
        lso
    }

    /// Index of the first entry with an offset >= `offset`.
    fn index_from(&self, offset: Offset) -> usize {
        self.entries.partition_point(|e| e.offset < offset)
    }

    fn index_of(&self, offset: Offset) -> Option<usize> {
        let i = self.index_from(offset);
        (i < self.entries.len() && self.entries[i].offset == offset).then_some(i)
    }

    fn append(&mut self, entry: LogEntry, txn: Option<TxnSerial>, compacted: bool) {
        assert_eq!(
            entry.offset, self.log_end,
            "broker bug: append out of place"
        );
        assert!(
            compacted || self.entries.len() as u64 == self.log_end,
            "broker bug: a non-compacted log is not dense"
        );
        self.entries.push(entry);
        self.txn.push(txn);
        self.log_end += 1;
    }
}

#[derive(Clone, Debug)]
struct Topic {
    config: TopicConfig,
    partitions: Vec<PartitionLog>,
}

/// What the broker knows of a producer id.
#[derive(Clone, Debug)]
struct ProducerEntry {
    transactional_id: Option<String>,
    /// Current epoch of an idempotent producer (transactional ones: see `TxnIdState`).
    epoch: Epoch,
}

#[derive(Clone, Debug, Default)]
struct PendingOffsets {
    generation: Generation,
    offsets: BTreeMap<TopicPartition, Offset>,
}

#[derive(Clone, Debug)]
struct OpenTxn {
    serial: TxnSerial,
    started: Millis,
    /// Partitions with records of this transaction → first offset there.
    partitions: BTreeMap<TopicPartition, Offset>,
    /// Offsets sent to the transaction, per group.
    offsets: BTreeMap<String, PendingOffsets>,
}

/// The transaction coordinator's state of one `transactional.id`.
#[derive(Clone, Debug)]
struct TxnIdState {
    producer_id: ProducerId,
    epoch: Epoch,
    timeout_ms: Millis,
    open: Option<OpenTxn>,
    /// How the last transaction of the current epoch ended (`true` = committed), so a
    /// retried `EndTxn` is answered `Ok`.
    last_completed: Option<(Epoch, bool)>,
}

#[derive(Clone, Debug)]
struct Member {
    topics: Vec<String>,
    session_timeout_ms: Millis,
    rebalance_timeout_ms: Millis,
    last_seen: Millis,
    /// Has sent `JoinGroup` during the current rebalance.
    rejoined: bool,
}

#[derive(Clone, Debug)]
struct Group {
    state: GroupState,
    generation: Generation,
    members: BTreeMap<String, Member>,
    /// Assignment of the current generation (kept as it was computed until the next one).
    assignment: BTreeMap<String, Vec<TopicPartition>>,
    committed: BTreeMap<TopicPartition, Offset>,
}

impl Group {
    fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            members: BTreeMap::new(),
            assignment: BTreeMap::new(),
            committed: BTreeMap::new(),
        }
    }

    /// Enter `PreparingRebalance` (if not already there): every member must rejoin.
    fn prepare_rebalance(&mut self, now: Millis) {
        if !matches!(self.state, GroupState::PreparingRebalance { .. }) {
            self.state = GroupState::PreparingRebalance { since: now };
            for m in self.members.values_mut() {
                m.rejoined = false;
            }
        }
    }

    fn all_rejoined(&self) -> bool {
        self.members.values().all(|m| m.rejoined)
    }

    fn rebalance_deadline(&self) -> Option<Millis> {
        match self.state {
            GroupState::PreparingRebalance { since } => {
                let timeout = self
                    .members
                    .values()
                    .map(|m| m.rebalance_timeout_ms)
                    .max()
                    .unwrap_or(0);
                Some(since.saturating_add(timeout))
            }
            _ => None,
        }
    }
}

/// Kafka's `RangeAssignor`: for each topic, its partitions in order are split into
/// contiguous ranges over the members subscribed to it, sorted by member id; the first
/// `partitions % members` members get one partition more. Every member appears in the
/// result, possibly with no partition. `partitions_of` gives a topic's partition count
/// (`None` for an unknown topic, which is not assigned).
pub fn range_assignment(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions_of: impl Fn(&str) -> Option<u32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut result: BTreeMap<String, Vec<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let topics: BTreeSet<&str> = subscriptions
        .values()
        .flat_map(|ts| ts.iter().map(String::as_str))
        .collect();
    for topic in topics {
        let Some(n) = partitions_of(topic) else {
            continue;
        };
        // BTreeMap keys: already sorted by member id.
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.iter().any(|t| t == topic))
            .map(|(m, _)| m)
            .collect();
        let count = members.len() as u32;
        let per = n / count;
        let extra = n % count;
        for (i, member) in members.into_iter().enumerate() {
            let i = i as u32;
            let start = per * i + i.min(extra);
            let len = per + u32::from(i < extra);
            let parts = result.get_mut(member).expect("member is a key");
            parts.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
        }
    }
    result
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
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
        // First batch of this producer epoch on this partition.
        _ if base == 0 => Ok(None),
        _ => Err((
            KafkaError::OutOfOrderSequenceNumber,
            format!("the first batch of epoch {epoch} starts at sequence {base}, not 0"),
        )),
    }
}

fn reject(events: &mut Vec<Event>, request: &str, error: KafkaError, detail: String) -> KafkaError {
    events.push(Event::Rejected {
        request: request.to_string(),
        error,
        detail,
    });
    error
}

/// A simulated single Kafka broker. See the module documentation.
#[derive(Clone, Debug)]
pub struct Broker {
    topics: BTreeMap<String, Topic>,
    producers: BTreeMap<ProducerId, ProducerEntry>,
    next_producer_id: ProducerId,
    txn_ids: BTreeMap<String, TxnIdState>,
    txn_outcomes: Vec<TxnOutcome>,
    groups: BTreeMap<String, Group>,
    members_created: u64,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    pub fn new() -> Self {
        Broker {
            topics: BTreeMap::new(),
            producers: BTreeMap::new(),
            next_producer_id: 1,
            txn_ids: BTreeMap::new(),
            txn_outcomes: Vec::new(),
            groups: BTreeMap::new(),
            members_created: 0,
        }
    }

    // ------------------------------------------------------------------ topics

    /// Create a topic. Creating it again with the same configuration is a no-op; with a
    /// different one, or with zero partitions or an empty name, an error.
    pub fn create_topic(&mut self, name: &str, config: TopicConfig) -> Result<(), String> {
        if name.is_empty() {
            return Err("a topic name cannot be empty".to_string());
        }
        if config.partitions == 0 {
            return Err(format!(
                "topic {name}: a topic needs at least one partition"
            ));
        }
        if let Some(existing) = self.topics.get(name) {
            return if existing.config == config {
                Ok(())
            } else {
                Err(format!(
                    "topic {name} already exists with {:?}, not {:?}",
                    existing.config, config
                ))
            };
        }
        let partitions = (0..config.partitions)
            .map(|_| PartitionLog::default())
            .collect();
        self.topics
            .insert(name.to_string(), Topic { config, partitions });
        Ok(())
    }

    pub fn topic_config(&self, name: &str) -> Option<&TopicConfig> {
        self.topics.get(name).map(|t| &t.config)
    }

    /// Every topic with its configuration, sorted by name.
    pub fn topics(&self) -> impl Iterator<Item = (&str, &TopicConfig)> {
        self.topics.iter().map(|(n, t)| (n.as_str(), &t.config))
    }

    /// Number of partitions of a topic.
    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).map(|t| t.config.partitions)
    }

    fn partition(&self, tp: &TopicPartition) -> Option<&PartitionLog> {
        self.topics
            .get(&tp.topic)?
            .partitions
            .get(tp.partition as usize)
    }

    fn has_partition(&self, tp: &TopicPartition) -> bool {
        self.partition(tp).is_some()
    }

    // ------------------------------------------------------------------ requests

    /// Handle one request from `client` (a stable client name, used for member ids)
    /// atomically at simulated time `now`; events describing what happened are pushed to
    /// `events`. Bad requests are answered with errors (and a `Rejected` event), never a
    /// panic.
    pub fn handle(
        &mut self,
        now: Millis,
        client: &str,
        req: Request,
        events: &mut Vec<Event>,
    ) -> Response {
        match req {
            Request::InitProducerId {
                transactional_id,
                transaction_timeout_ms,
            } => Response::InitProducerId(Ok(self.init_producer_id(
                now,
                transactional_id,
                transaction_timeout_ms,
                events,
            ))),
            Request::Produce { producer, batches } => {
                Response::Produce(self.produce(now, producer, batches, events))
            }
            Request::TxnOffsetCommit {
                producer,
                group,
                offsets,
            } => Response::TxnOffsetCommit(
                self.txn_offset_commit(now, &producer, group, offsets, events),
            ),
            Request::EndTxn { producer, commit } => {
                Response::EndTxn(self.end_txn_request(now, &producer, commit, events))
            }
            Request::Fetch {
                tp,
                offset,
                max_records,
                isolation,
            } => {
                let result = self.fetch(client, &tp, offset, max_records, isolation, events);
                Response::Fetch { tp, result }
            }
            Request::JoinGroup {
                group,
                member_id,
                topics,
                session_timeout_ms,
                rebalance_timeout_ms,
            } => Response::JoinGroup(self.join_group(
                now,
                client,
                &group,
                member_id,
                topics,
                session_timeout_ms,
                rebalance_timeout_ms,
                events,
            )),
            Request::Heartbeat {
                group,
                member_id,
                generation,
            } => Response::Heartbeat(self.heartbeat(now, &group, &member_id, generation, events)),
            Request::LeaveGroup { group, member_id } => {
                Response::LeaveGroup(self.leave_group(now, &group, &member_id, events))
            }
            Request::OffsetCommit { group, offsets } => {
                Response::OffsetCommit(self.offset_commit(now, group, offsets, events))
            }
            Request::OffsetFetch {
                group,
                partitions,
                require_stable,
            } => {
                Response::OffsetFetch(self.offset_fetch(&group, partitions, require_stable, events))
            }
        }
    }

    // ------------------------------------------------------------------ producers

    fn allocate_producer_id(&mut self, transactional_id: Option<String>) -> ProducerId {
        let pid = self.next_producer_id;
        self.next_producer_id += 1;
        self.producers.insert(
            pid,
            ProducerEntry {
                transactional_id,
                epoch: 0,
            },
        );
        pid
    }

    fn init_producer_id(
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
        events.push(Event::ProducerInit {
            transactional_id: Some(tid),
            producer_id: pid,
            epoch,
        });
        (pid, epoch)
    }

    /// Fence the current epoch of `tid`: the next epoch (or a fresh producer id at epoch 0
    /// when the epoch is exhausted) becomes current. The transaction must be closed.
    fn bump_epoch(&mut self, tid: &str, events: &mut Vec<Event>) {
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
    }

    /// Validate a producer identity: `Ok(Some(tid))` for the current epoch of a
    /// transactional producer, `Ok(None)` for a current idempotent producer.
    fn check_producer(&self, p: &ProducerIdentity) -> Result<Option<String>, (KafkaError, String)> {
        let (pid, epoch) = (p.producer_id, p.epoch);
        let Some(entry) = self.producers.get(&pid) else {
            return Err((
                KafkaError::UnknownProducerId,
                format!("producer id {pid} was never handed out"),
            ));
        };
        match (&entry.transactional_id, &p.transactional_id) {
            (None, None) => {
                if p.epoch < entry.epoch {
                    Err((
                        KafkaError::InvalidProducerEpoch,
                        format!("epoch {epoch} is older than the current {}", entry.epoch),
                    ))
                } else if p.epoch > entry.epoch {
                    Err((
                        KafkaError::InvalidProducerEpoch,
                        format!(
                            "epoch {epoch} was never handed out (current {})",
                            entry.epoch
                        ),
                    ))
                } else {
                    Ok(None)
                }
            }
            (Some(owner), Some(claimed)) if owner == claimed => {
                let st = self
                    .txn_ids
                    .get(owner)
                    .expect("transactional producer has a state");
                if st.producer_id != p.producer_id || p.epoch < st.epoch {
                    Err((
                        KafkaError::ProducerFenced,
                        format!(
                            "{owner} producer {pid} epoch {epoch} is fenced by {} epoch {}",
                            st.producer_id, st.epoch
                        ),
                    ))
                } else if p.epoch > st.epoch {
                    Err((
                        KafkaError::InvalidProducerEpoch,
                        format!(
                            "epoch {epoch} of {owner} was never handed out (now {})",
                            st.epoch
                        ),
                    ))
                } else {
                    Ok(Some(owner.clone()))
                }
            }
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

    fn produce(
        &mut self,
        now: Millis,
        producer: Option<ProducerIdentity>,
        batches: Vec<ProduceBatch>,
        events: &mut Vec<Event>,
    ) -> Vec<(TopicPartition, PartitionProduceResult)> {
        let tid = match &producer {
            None => None,
            Some(p) => match self.check_producer(p) {
                Ok(tid) => tid,
                Err((error, detail)) => {
                    reject(events, "Produce", error, detail);
                    return batches
                        .into_iter()
                        .map(|b| (b.tp, PartitionProduceResult::Error(error)))
                        .collect();
                }
            },
        };
        batches
            .into_iter()
            .map(|batch| {
                let result =
                    self.produce_batch(now, producer.as_ref(), tid.as_deref(), &batch, events);
                (batch.tp, result)
            })
            .collect()
    }

    /// Append one batch of an already validated producer.
    fn produce_batch(
        &mut self,
        now: Millis,
        producer: Option<&ProducerIdentity>,
        tid: Option<&str>,
        batch: &ProduceBatch,
        events: &mut Vec<Event>,
    ) -> PartitionProduceResult {
        let tp = &batch.tp;
        let Some(topic) = self.topics.get_mut(&tp.topic) else {
            let e = reject(
                events,
                "Produce",
                KafkaError::UnknownTopicOrPartition,
                format!("no topic {}", tp.topic),
            );
            return PartitionProduceResult::Error(e);
        };
        let compacted = topic.config.compacted;
        let Some(log) = topic.partitions.get_mut(tp.partition as usize) else {
            let e = reject(
                events,
                "Produce",
                KafkaError::UnknownTopicOrPartition,
                format!("topic {} has no partition {}", tp.topic, tp.partition),
            );
            return PartitionProduceResult::Error(e);
        };
        if batch.records.is_empty() {
            // Kafka answers INVALID_RECORD; the protocol has no such error, and an empty
            // batch changes nothing: acknowledge it at the log end.
            return PartitionProduceResult::Appended {
                base_offset: log.log_end,
                duplicate: false,
            };
        }
        let count = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);

        // Idempotence: sequence checks against this partition's producer state.
        let ident = match producer {
            None => None,
            Some(p) => {
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
                        return PartitionProduceResult::Error(reject(
                            events, "Produce", error, detail,
                        ));
                    }
                    Ok((base_sequence, Some(base_offset))) => {
                        events.push(Event::DuplicateBatch {
                            tp: tp.clone(),
                            producer_id: p.producer_id,
                            base_sequence,
                            base_offset,
                        });
                        return PartitionProduceResult::Appended {
                            base_offset,
                            duplicate: true,
                        };
                    }
                    Ok((base_sequence, None)) => Some((p.producer_id, p.epoch, base_sequence)),
                }
            }
        };

        let base_offset = log.log_end;
        // Transactions: begin one implicitly, add this partition implicitly (KIP-890).
        let serial = tid.map(|tid| {
            let serial = self.ensure_txn(tid, now, events);
            let open = self.txn_ids[tid]
                .open
                .as_ref()
                .map(|o| o.partitions.contains_key(tp));
            if open == Some(false) {
                let st = self
                    .txn_ids
                    .get_mut(tid)
                    .expect("validated transactional id");
                let open = st.open.as_mut().expect("transaction just ensured");
                open.partitions.insert(tp.clone(), base_offset);
            }
            serial
        });
        let topic = self.topics.get_mut(&tp.topic).expect("checked above");
        let log = &mut topic.partitions[tp.partition as usize];
        if let Some(serial) = serial {
            log.ongoing.entry(serial).or_insert(base_offset);
        }

        for (i, record) in batch.records.iter().enumerate() {
            let offset = log.log_end;
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
                compacted,
            );
        }

        if let Some((pid, epoch, base_sequence)) = ident {
            let state = log.producers.entry(pid).or_insert(ProducerState {
                epoch,
                last_sequence: -1,
                batches: VecDeque::new(),
            });
            if state.epoch != epoch {
                state.epoch = epoch;
                state.batches.clear();
            }
            state.last_sequence = increment_sequence(base_sequence, count - 1);
            state.batches.push_back(CachedBatch {
                base_sequence,
                count,
                base_offset,
            });
            if state.batches.len() > PRODUCER_BATCH_CACHE {
                state.batches.pop_front();
            }
        }
        PartitionProduceResult::Appended {
            base_offset,
            duplicate: false,
        }
    }

    // ------------------------------------------------------------------ transactions

    /// Begin a transaction for `tid` if none is open; returns its serial.
    fn ensure_txn(&mut self, tid: &str, now: Millis, events: &mut Vec<Event>) -> TxnSerial {
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

    fn txn_offset_commit(
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
            Ok(None) => {
                return Err(reject(
                    events,
                    REQ,
                    KafkaError::InvalidTxnState,
                    format!("producer {} is not transactional", producer.producer_id),
                ))
            }
            Err((e, detail)) => return Err(reject(events, REQ, e, detail)),
        };
        // TxnOffsetCommit before v3 (pre KIP-447) carried no member id or generation, so
        // the coordinator could not fence a zombie on it: an empty member id stands for
        // such a request.
        if !meta.member_id.is_empty() {
            self.check_group_member(&meta)
                .map_err(|(e, d)| reject(events, REQ, e, d))?;
        }
        if let Some((tp, _)) = offsets.iter().find(|(tp, _)| !self.has_partition(tp)) {
            return Err(reject(
                events,
                REQ,
                KafkaError::UnknownTopicOrPartition,
                format!("offset for unknown partition {tp}"),
            ));
        }
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

    fn end_txn_request(
        &mut self,
        now: Millis,
        producer: &ProducerIdentity,
        commit: bool,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        const REQ: &str = "EndTxn";
        let tid = match self.check_producer(producer) {
            Ok(Some(tid)) => tid,
            Ok(None) => {
                return Err(reject(
                    events,
                    REQ,
                    KafkaError::InvalidTxnState,
                    format!("producer {} is not transactional", producer.producer_id),
                ))
            }
            Err((e, detail)) => return Err(reject(events, REQ, e, detail)),
        };
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

    fn abort_open_txn(&mut self, tid: &str, now: Millis, reason: &str, events: &mut Vec<Event>) {
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
        let control = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
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
        for tp in open.partitions.keys() {
            let topic = self
                .topics
                .get_mut(&tp.topic)
                .expect("touched partition exists");
            let compacted = topic.config.compacted;
            let log = &mut topic.partitions[tp.partition as usize];
            let removed = log.ongoing.remove(&open.serial);
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
        if commit {
            for (group, pending) in open.offsets {
                let g = self.groups.entry(group.clone()).or_insert_with(Group::new);
                g.committed
                    .extend(pending.offsets.iter().map(|(tp, o)| (tp.clone(), *o)));
                events.push(Event::OffsetCommit {
                    group,
                    generation: pending.generation,
                    offsets: pending.offsets.into_iter().collect(),
                    transactional: true,
                });
            }
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

    // ------------------------------------------------------------------ fetch

    fn fetch(
        &self,
        client: &str,
        tp: &TopicPartition,
        offset: Offset,
        max_records: usize,
        isolation: Isolation,
        events: &mut Vec<Event>,
    ) -> Result<FetchData, KafkaError> {
        let Some(log) = self.partition(tp) else {
            return Err(reject(
                events,
                "Fetch",
                KafkaError::UnknownTopicOrPartition,
                format!("no partition {tp}"),
            ));
        };
        let high_watermark = log.log_end;
        let last_stable_offset = log.last_stable_offset();
        if offset > high_watermark {
            return Err(reject(
                events,
                "Fetch",
                KafkaError::OffsetOutOfRange,
                format!("offset {offset} is past the high watermark {high_watermark} of {tp}"),
            ));
        }
        let limit = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        };
        let mut records = Vec::new();
        let mut next_offset = offset;
        for i in log.index_from(offset)..log.entries.len() {
            let entry = &log.entries[i];
            if entry.offset >= limit || records.len() >= max_records {
                break;
            }
            next_offset = entry.offset + 1;
            if entry.control.is_some() {
                continue;
            }
            if isolation == Isolation::ReadCommitted {
                let outcome = log.txn[i].map(|s| self.txn_outcomes[s]);
                assert_ne!(
                    outcome,
                    Some(TxnOutcome::Open),
                    "broker bug: an open transaction's record below the LSO of {tp}"
                );
                if outcome == Some(TxnOutcome::Aborted) {
                    continue;
                }
            }
            records.push(FetchedRecord {
                offset: entry.offset,
                record: entry.record.clone(),
            });
        }
        events.push(Event::Fetch {
            client: client.to_string(),
            tp: tp.clone(),
            from: offset,
            count: records.len(),
            next: next_offset,
            isolation,
        });
        Ok(FetchData {
            records,
            high_watermark,
            last_stable_offset,
            next_offset,
        })
    }

    // ------------------------------------------------------------------ groups

    /// KIP-447 fencing of an offset commit: the member must be in the group, at the
    /// group's current generation.
    fn check_group_member(&self, meta: &GroupMetadata) -> Result<(), (KafkaError, String)> {
        let Some(group) = self.groups.get(&meta.group) else {
            return Err((
                KafkaError::UnknownMemberId,
                format!("group {} does not exist", meta.group),
            ));
        };
        if !group.members.contains_key(&meta.member_id) {
            return Err((
                KafkaError::UnknownMemberId,
                format!("{} is not a member of group {}", meta.member_id, meta.group),
            ));
        }
        if meta.generation != group.generation {
            return Err((
                KafkaError::IllegalGeneration,
                format!(
                    "{} sent generation {} but group {} is at generation {}",
                    meta.member_id, meta.generation, meta.group, group.generation
                ),
            ));
        }
        Ok(())
    }

    /// Finish the rebalance of `name` if every member has rejoined: next generation,
    /// range assignment, `Stable` (or `Empty` without members).
    fn maybe_complete_rebalance(&mut self, name: &str, events: &mut Vec<Event>) -> bool {
        let topics = &self.topics;
        let group = self.groups.get_mut(name).expect("known group");
        if !matches!(group.state, GroupState::PreparingRebalance { .. }) || !group.all_rejoined() {
            return false;
        }
        group.generation += 1;
        let subscriptions: BTreeMap<String, Vec<String>> = group
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        group.assignment = range_assignment(&subscriptions, |t| {
            topics.get(t).map(|t| t.config.partitions)
        });
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        for m in group.members.values_mut() {
            m.rejoined = false;
        }
        events.push(Event::Rebalance {
            group: name.to_string(),
            generation: group.generation,
            assignment: group
                .assignment
                .iter()
                .map(|(m, tps)| (m.clone(), tps.clone()))
                .collect(),
        });
        true
    }

    /// A member left (leave, session timeout): rebalance.
    fn remove_member(
        &mut self,
        now: Millis,
        name: &str,
        member_id: &str,
        reason: &str,
        events: &mut Vec<Event>,
    ) {
        let group = self.groups.get_mut(name).expect("known group");
        let removed = group.members.remove(member_id);
        assert!(removed.is_some(), "broker bug: removing an unknown member");
        events.push(Event::MemberLeft {
            group: name.to_string(),
            member_id: member_id.to_string(),
            reason: reason.to_string(),
        });
        group.prepare_rebalance(now);
        self.maybe_complete_rebalance(name, events);
    }

    #[allow(clippy::too_many_arguments)]
    fn join_group(
        &mut self,
        now: Millis,
        client: &str,
        name: &str,
        member_id: Option<String>,
        topics: Vec<String>,
        session_timeout_ms: Millis,
        rebalance_timeout_ms: Millis,
        events: &mut Vec<Event>,
    ) -> Result<JoinOutcome, KafkaError> {
        let member_id = match member_id {
            None => {
                self.members_created += 1;
                let id = format!("{client}-{}", self.members_created);
                let group = self
                    .groups
                    .entry(name.to_string())
                    .or_insert_with(Group::new);
                group.prepare_rebalance(now);
                group.members.insert(
                    id.clone(),
                    Member {
                        topics,
                        session_timeout_ms,
                        rebalance_timeout_ms,
                        last_seen: now,
                        rejoined: true,
                    },
                );
                events.push(Event::MemberJoined {
                    group: name.to_string(),
                    member_id: id.clone(),
                });
                id
            }
            Some(id) => {
                let Some(group) = self
                    .groups
                    .get_mut(name)
                    .filter(|g| g.members.contains_key(&id))
                else {
                    return Err(reject(
                        events,
                        "JoinGroup",
                        KafkaError::UnknownMemberId,
                        format!("{id} is not a member of group {name}"),
                    ));
                };
                let member = group.members.get_mut(&id).expect("checked");
                member.last_seen = now;
                member.session_timeout_ms = session_timeout_ms;
                member.rebalance_timeout_ms = rebalance_timeout_ms;
                let changed = member.topics != topics;
                member.topics = topics;
                match group.state {
                    GroupState::Stable if !changed => {
                        return Ok(JoinOutcome::Joined {
                            member_id: id.clone(),
                            generation: group.generation,
                            assignment: group.assignment.get(&id).cloned().unwrap_or_default(),
                        });
                    }
                    GroupState::Empty => unreachable!("broker bug: an Empty group with a member"),
                    _ => {
                        // A changed subscription rebalances, as in Kafka.
                        group.prepare_rebalance(now);
                        group.members.get_mut(&id).expect("checked").rejoined = true;
                    }
                }
                id
            }
        };
        if self.maybe_complete_rebalance(name, events) {
            let group = &self.groups[name];
            Ok(JoinOutcome::Joined {
                generation: group.generation,
                assignment: group
                    .assignment
                    .get(&member_id)
                    .cloned()
                    .unwrap_or_default(),
                member_id,
            })
        } else {
            Ok(JoinOutcome::Pending { member_id })
        }
    }

    fn heartbeat(
        &mut self,
        now: Millis,
        name: &str,
        member_id: &str,
        generation: Generation,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        const REQ: &str = "Heartbeat";
        let Some(group) = self.groups.get_mut(name) else {
            return Err(reject(
                events,
                REQ,
                KafkaError::UnknownMemberId,
                format!("group {name} does not exist"),
            ));
        };
        let current = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return Err(reject(
                events,
                REQ,
                KafkaError::UnknownMemberId,
                format!("{member_id} is not a member of group {name}"),
            ));
        };
        if generation != current {
            return Err(reject(
                events,
                REQ,
                KafkaError::IllegalGeneration,
                format!("{member_id} is at generation {generation}, group {name} at {current}"),
            ));
        }
        member.last_seen = now;
        if matches!(group.state, GroupState::PreparingRebalance { .. }) {
            // Kafka refreshes the session and tells the member to rejoin.
            return Err(reject(
                events,
                REQ,
                KafkaError::RebalanceInProgress,
                format!("group {name} is rebalancing: {member_id} must rejoin"),
            ));
        }
        Ok(())
    }

    fn leave_group(
        &mut self,
        now: Millis,
        name: &str,
        member_id: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        if !self
            .groups
            .get(name)
            .is_some_and(|g| g.members.contains_key(member_id))
        {
            return Err(reject(
                events,
                "LeaveGroup",
                KafkaError::UnknownMemberId,
                format!("{member_id} is not a member of group {name}"),
            ));
        }
        self.remove_member(now, name, member_id, "left the group", events);
        Ok(())
    }

    fn offset_commit(
        &mut self,
        now: Millis,
        meta: GroupMetadata,
        offsets: Vec<(TopicPartition, Offset)>,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        const REQ: &str = "OffsetCommit";
        // TxnOffsetCommit before v3 (pre KIP-447) carried no member id or generation, so
        // the coordinator could not fence a zombie on it: an empty member id stands for
        // such a request.
        if !meta.member_id.is_empty() {
            self.check_group_member(&meta)
                .map_err(|(e, d)| reject(events, REQ, e, d))?;
        }
        if let Some((tp, _)) = offsets.iter().find(|(tp, _)| !self.has_partition(tp)) {
            return Err(reject(
                events,
                REQ,
                KafkaError::UnknownTopicOrPartition,
                format!("offset for unknown partition {tp}"),
            ));
        }
        let group = self.groups.get_mut(&meta.group).expect("checked member");
        // Kafka treats an accepted commit as a heartbeat.
        group
            .members
            .get_mut(&meta.member_id)
            .expect("checked member")
            .last_seen = now;
        group.committed.extend(offsets.iter().cloned());
        events.push(Event::OffsetCommit {
            group: meta.group,
            generation: meta.generation,
            offsets,
            transactional: false,
        });
        Ok(())
    }

    fn offset_fetch(
        &self,
        name: &str,
        partitions: Vec<TopicPartition>,
        require_stable: bool,
        events: &mut Vec<Event>,
    ) -> Result<Vec<(TopicPartition, Option<Offset>)>, KafkaError> {
        let committed = self.groups.get(name).map(|g| &g.committed);
        let partitions: Vec<TopicPartition> = if partitions.is_empty() {
            committed
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default()
        } else {
            partitions
        };
        if require_stable {
            let unstable = self
                .txn_ids
                .values()
                .filter_map(|st| st.open.as_ref())
                .filter_map(|open| open.offsets.get(name))
                .flat_map(|pending| pending.offsets.keys())
                .find(|tp| partitions.contains(tp));
            if let Some(tp) = unstable {
                return Err(reject(
                    events,
                    "OffsetFetch",
                    KafkaError::UnstableOffsetCommit,
                    format!("group {name} has a pending transactional offset for {tp}"),
                ));
            }
        }
        Ok(partitions
            .into_iter()
            .map(|tp| {
                let o = committed.and_then(|c| c.get(&tp).copied());
                (tp, o)
            })
            .collect())
    }

    // ------------------------------------------------------------------ time

    /// Time-driven work at `now`: abort transactions open for their timeout or longer
    /// (and fence their epoch), expire group members whose session timed out, complete
    /// rebalances whose rebalance timeout passed. A deadline `d` is due when `now >= d`.
    pub fn tick(&mut self, now: Millis, events: &mut Vec<Event>) {
        let timed_out: Vec<String> = self
            .txn_ids
            .iter()
            .filter(|(_, st)| {
                st.open
                    .as_ref()
                    .is_some_and(|o| now >= o.started.saturating_add(st.timeout_ms))
            })
            .map(|(tid, _)| tid.clone())
            .collect();
        for tid in timed_out {
            self.complete_txn(&tid, now, false, "timeout", events);
            self.bump_epoch(&tid, events);
        }

        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let expired: Vec<String> = self.groups[&name]
                .members
                .iter()
                .filter(|(_, m)| now >= m.last_seen.saturating_add(m.session_timeout_ms))
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                self.remove_member(now, &name, &id, "session timeout", events);
            }
            let group = &self.groups[&name];
            if group.rebalance_deadline().is_some_and(|d| now >= d) {
                let laggards: Vec<String> = group
                    .members
                    .iter()
                    .filter(|(_, m)| !m.rejoined)
                    .map(|(id, _)| id.clone())
                    .collect();
                let group = self.groups.get_mut(&name).expect("known group");
                for id in laggards {
                    group.members.remove(&id);
                    events.push(Event::MemberLeft {
                        group: name.clone(),
                        member_id: id,
                        reason: "rebalance timeout".to_string(),
                    });
                }
                let completed = self.maybe_complete_rebalance(&name, events);
                assert!(
                    completed,
                    "broker bug: rebalance of {name} not completed at its timeout"
                );
            }
        }
    }

    /// Earliest simulated time at which [`Broker::tick`] would do something, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        let txns = self.txn_ids.values().filter_map(|st| {
            st.open
                .as_ref()
                .map(|o| o.started.saturating_add(st.timeout_ms))
        });
        let groups = self.groups.values().flat_map(|g| {
            g.members
                .values()
                .map(|m| m.last_seen.saturating_add(m.session_timeout_ms))
                .chain(g.rebalance_deadline())
        });
        txns.chain(groups).min()
    }

    // ------------------------------------------------------------------ inspection

    /// The log of a partition, data and control records (empty for an unknown partition).
    pub fn log(&self, tp: &TopicPartition) -> &[LogEntry] {
        self.partition(tp)
            .map(|l| l.entries.as_slice())
            .unwrap_or(&[])
    }

    /// The high watermark: the log end offset (0 for an unknown partition).
    pub fn high_watermark(&self, tp: &TopicPartition) -> Offset {
        self.partition(tp).map(|l| l.log_end).unwrap_or(0)
    }

    /// The last stable offset: first offset of the earliest open transaction, else the
    /// high watermark (0 for an unknown partition).
    pub fn last_stable_offset(&self, tp: &TopicPartition) -> Offset {
        self.partition(tp)
            .map(PartitionLog::last_stable_offset)
            .unwrap_or(0)
    }

    fn outcome_at(
        &self,
        tp: &TopicPartition,
        offset: Offset,
    ) -> Option<(Option<TxnOutcome>, bool)> {
        let log = self.partition(tp)?;
        let i = log.index_of(offset)?;
        Some((
            log.txn[i].map(|s| self.txn_outcomes[s]),
            log.entries[i].control.is_some(),
        ))
    }

    /// Whether the data record at `offset` was written in a transaction that was aborted
    /// (`false` for control records and offsets without a record).
    pub fn is_aborted(&self, tp: &TopicPartition, offset: Offset) -> bool {
        matches!(
            self.outcome_at(tp, offset),
            Some((Some(TxnOutcome::Aborted), false))
        )
    }

    /// Whether the data record at `offset` is committed: non-transactional, or its
    /// transaction committed (`false` for control records and offsets without a record).
    pub fn is_committed(&self, tp: &TopicPartition, offset: Offset) -> bool {
        matches!(
            self.outcome_at(tp, offset),
            Some((None | Some(TxnOutcome::Committed), false))
        )
    }

    /// Committed offsets of a group (empty for an unknown group).
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<TopicPartition, Offset> {
        self.groups
            .get(group)
            .map(|g| g.committed.clone())
            .unwrap_or_default()
    }

    /// Current generation of a group (`None` for a group never joined).
    pub fn group_generation(&self, group: &str) -> Option<Generation> {
        self.groups.get(group).map(|g| g.generation)
    }

    pub fn group_state(&self, group: &str) -> Option<GroupState> {
        self.groups.get(group).map(|g| g.state)
    }

    /// Current members of a group, sorted.
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Member → partitions of the current generation, as computed when it began (a member
    /// that left since keeps its entry until the next generation).
    pub fn group_assignment(&self, group: &str) -> BTreeMap<String, Vec<TopicPartition>> {
        self.groups
            .get(group)
            .map(|g| g.assignment.clone())
            .unwrap_or_default()
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

    /// Check every invariant of every partition (O(size of all logs); for tests):
    /// offsets strictly increasing and below the log end, dense on non-compacted logs, no
    /// open transaction's record below the LSO, LSO <= HW. Panics on a violation.
    pub fn check_invariants(&self) {
        for (name, topic) in &self.topics {
            for (p, log) in topic.partitions.iter().enumerate() {
                assert_eq!(
                    log.entries.len(),
                    log.txn.len(),
                    "{name}-{p}: txn index out of step"
                );
                if !topic.config.compacted {
                    assert_eq!(
                        log.entries.len() as u64,
                        log.log_end,
                        "{name}-{p}: not dense"
                    );
                }
                for (i, e) in log.entries.iter().enumerate() {
                    assert!(
                        e.offset < log.log_end,
                        "{name}-{p}: offset {} past the end",
                        e.offset
                    );
                    if !topic.config.compacted {
                        assert_eq!(e.offset, i as u64, "{name}-{p}: offsets not dense");
                    }
                    if i > 0 {
                        assert!(
                            e.offset > log.entries[i - 1].offset,
                            "{name}-{p}: offsets not increasing"
                        );
                    }
                }
                let lso = log.last_stable_offset();
                for (i, e) in log.entries.iter().enumerate() {
                    if e.offset < lso {
                        if let Some(s) = log.txn[i] {
                            assert_ne!(
                                self.txn_outcomes[s],
                                TxnOutcome::Open,
                                "{name}-{p}: open below LSO"
                            );
                        }
                    }
                }
                for (&serial, &first) in &log.ongoing {
                    assert_eq!(
                        self.txn_outcomes[serial],
                        TxnOutcome::Open,
                        "{name}-{p}: settled txn still ongoing"
                    );
                    assert!(
                        first < log.log_end,
                        "{name}-{p}: ongoing offset past the end"
                    );
                }
            }
        }
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

    // ------------------------------------------------------------------ compaction

    /// Log compaction of a compacted topic partition (a cleaner run): below the LSO, drop
    /// data records of aborted transactions and every record superseded by a later
    /// committed record with the same key below the LSO; keep the latest record of each
    /// key (tombstones included: there is no `delete.retention.ms` here), keyless records
    /// and control markers. Offsets of survivors are unchanged (gaps appear). Returns how
    /// many records were removed (0 for a non-compacted or unknown topic).
    pub fn compact(&mut self, tp: &TopicPartition, events: &mut Vec<Event>) -> usize {
        let outcomes = &self.txn_outcomes;
        let Some(topic) = self.topics.get_mut(&tp.topic) else {
            return 0;
        };
        if !topic.config.compacted {
            return 0;
        }
        let Some(log) = topic.partitions.get_mut(tp.partition as usize) else {
            return 0;
        };
        let lso = log.last_stable_offset();
        let aborted = |i: usize| log.txn[i].is_some_and(|s| outcomes[s] == TxnOutcome::Aborted);
        let mut latest: BTreeMap<&str, Offset> = BTreeMap::new();
        for (i, e) in log.entries.iter().enumerate() {
            if e.offset >= lso {
                break;
            }
            if let (None, Some(key)) = (e.control, &e.record.key) {
                if !aborted(i) {
                    latest.insert(key.as_str(), e.offset);
                }
            }
        }
        let keep: Vec<bool> = log
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                if e.offset >= lso || e.control.is_some() {
                    return true;
                }
                if aborted(i) {
                    return false;
                }
                match &e.record.key {
                    // Superseded: a later surviving record has the same key.
                    Some(key) => latest.get(key.as_str()).copied().unwrap_or(e.offset) <= e.offset,
                    None => true,
                }
            })
            .collect();
        let removed = keep.iter().filter(|k| !**k).count();
        if removed > 0 {
            let mut it = keep.iter();
            log.entries
                .retain(|_| *it.next().expect("one flag per entry"));
            let mut it = keep.iter();
            log.txn.retain(|_| *it.next().expect("one flag per entry"));
            events.push(Event::Compacted {
                tp: tp.clone(),
                removed,
                below: lso,
            });
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "orders";

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new(T, p)
    }

    fn rec(key: &str, value: &str) -> Record {
        Record {
            key: Some(key.to_string()),
            value: Some(value.to_string()),
            timestamp: 0,
            headers: Vec::new(),
        }
    }

    fn broker(partitions: u32, compacted: bool) -> Broker {
        let mut b = Broker::new();
        b.create_topic(
            T,
            TopicConfig {
                partitions,
                compacted,
            },
        )
        .unwrap();
        b
    }

    struct Run {
        b: Broker,
        now: Millis,
        events: Vec<Event>,
    }

    impl Run {
        fn new(partitions: u32, compacted: bool) -> Self {
            Run {
                b: broker(partitions, compacted),
                now: 0,
                events: Vec::new(),
            }
        }

        fn req(&mut self, client: &str, req: Request) -> Response {
            let r = self.b.handle(self.now, client, req, &mut self.events);
            self.b.check_invariants();
            r
        }

        fn init(&mut self, tid: Option<&str>, timeout: Millis) -> ProducerIdentity {
            let r = self.req(
                "p",
                Request::InitProducerId {
                    transactional_id: tid.map(str::to_string),
                    transaction_timeout_ms: timeout,
                },
            );
            let Response::InitProducerId(Ok((producer_id, epoch))) = r else {
                panic!("{r:?}")
            };
            ProducerIdentity {
                producer_id,
                epoch,
                transactional_id: tid.map(str::to_string),
            }
        }

        fn produce(
            &mut self,
            producer: Option<&ProducerIdentity>,
            batches: Vec<(u32, Option<i32>, Vec<Record>)>,
        ) -> Vec<PartitionProduceResult> {
            let batches = batches
                .into_iter()
                .map(|(p, base_sequence, records)| ProduceBatch {
                    tp: tp(p),
                    base_sequence,
                    records,
                })
                .collect();
            let r = self.req(
                "p",
                Request::Produce {
                    producer: producer.cloned(),
                    batches,
                },
            );
            let Response::Produce(results) = r else {
                panic!("{r:?}")
            };
            results.into_iter().map(|(_, r)| r).collect()
        }

        fn end(&mut self, producer: &ProducerIdentity, commit: bool) -> Result<(), KafkaError> {
            let r = self.req(
                "p",
                Request::EndTxn {
                    producer: producer.clone(),
                    commit,
                },
            );
            let Response::EndTxn(r) = r else {
                panic!("{r:?}")
            };
            r
        }

        fn fetch(
            &mut self,
            p: u32,
            offset: Offset,
            isolation: Isolation,
        ) -> Result<FetchData, KafkaError> {
            let r = self.req(
                "c",
                Request::Fetch {
                    tp: tp(p),
                    offset,
                    max_records: 100,
                    isolation,
                },
            );
            let Response::Fetch { result, .. } = r else {
                panic!("{r:?}")
            };
            result
        }

        fn values(&mut self, p: u32, isolation: Isolation) -> Vec<String> {
            let data = self.fetch(p, 0, isolation).unwrap();
            data.records
                .into_iter()
                .map(|r| r.record.value.unwrap_or_default())
                .collect()
        }

        fn join(&mut self, client: &str, member: Option<&str>) -> Result<JoinOutcome, KafkaError> {
            let r = self.req(
                client,
                Request::JoinGroup {
                    group: "g".into(),
                    member_id: member.map(str::to_string),
                    topics: vec![T.into()],
                    session_timeout_ms: 1_000,
                    rebalance_timeout_ms: 500,
                },
            );
            let Response::JoinGroup(r) = r else {
                panic!("{r:?}")
            };
            r
        }

        fn heartbeat(&mut self, member: &str, generation: Generation) -> Result<(), KafkaError> {
            let r = self.req(
                "c",
                Request::Heartbeat {
                    group: "g".into(),
                    member_id: member.into(),
                    generation,
                },
            );
            let Response::Heartbeat(r) = r else {
                panic!("{r:?}")
            };
            r
        }

        fn commit_offsets(
            &mut self,
            member: &str,
            generation: Generation,
            offset: Offset,
        ) -> Result<(), KafkaError> {
            let r = self.req(
                "c",
                Request::OffsetCommit {
                    group: GroupMetadata {
                        group: "g".into(),
                        member_id: member.into(),
                        generation,
                    },
                    offsets: vec![(tp(0), offset)],
                },
            );
            let Response::OffsetCommit(r) = r else {
                panic!("{r:?}")
            };
            r
        }

        fn tick(&mut self, now: Millis) {
            self.now = now;
            self.b.tick(now, &mut self.events);
            self.b.check_invariants();
        }
    }

    fn left(events: &[Event], member: &str, why: &str) -> bool {
        events.iter().any(|e| {
            matches!(e, Event::MemberLeft { reason, member_id, .. }
                if reason == why && member_id == member)
        })
    }

    fn joined(r: Result<JoinOutcome, KafkaError>) -> (String, Generation, Vec<TopicPartition>) {
        match r {
            Ok(JoinOutcome::Joined {
                member_id,
                generation,
                assignment,
            }) => (member_id, generation, assignment),
            other => panic!("expected Joined, got {other:?}"),
        }
    }

    #[test]
    fn topics_are_created_once_with_one_config() {
        let mut b = broker(3, false);
        assert!(b
            .create_topic(
                T,
                TopicConfig {
                    partitions: 3,
                    compacted: false
                }
            )
            .is_ok());
        assert!(b
            .create_topic(
                T,
                TopicConfig {
                    partitions: 4,
                    compacted: false
                }
            )
            .is_err());
        assert!(b
            .create_topic(
                "x",
                TopicConfig {
                    partitions: 0,
                    compacted: false
                }
            )
            .is_err());
        b.create_topic(
            "a",
            TopicConfig {
                partitions: 1,
                compacted: true,
            },
        )
        .unwrap();
        let names: Vec<&str> = b.topics().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", T]);
        assert_eq!(b.topic_config("a").unwrap().partitions, 1);
        assert!(b.log(&TopicPartition::new("nope", 0)).is_empty());
    }

    #[test]
    fn plain_produce_appends_dense_offsets_and_fetch_reads_them() {
        let mut r = Run::new(2, false);
        let res = r.produce(
            None,
            vec![
                (0, None, vec![rec("a", "1"), rec("b", "2")]),
                (1, None, vec![rec("c", "3")]),
            ],
        );
        assert_eq!(
            res,
            [
                PartitionProduceResult::Appended {
                    base_offset: 0,
                    duplicate: false
                },
                PartitionProduceResult::Appended {
                    base_offset: 0,
                    duplicate: false
                }
            ]
        );
        let res = r.produce(None, vec![(0, None, vec![rec("a", "4")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Appended {
                base_offset: 2,
                duplicate: false
            }]
        );
        assert_eq!(r.b.high_watermark(&tp(0)), 3);
        assert_eq!(r.b.last_stable_offset(&tp(0)), 3);
        let data = r.fetch(0, 1, Isolation::ReadCommitted).unwrap();
        assert_eq!(
            data.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(data.next_offset, 3);
        // At the end: nothing, next offset unchanged; past the end: out of range.
        assert_eq!(
            r.fetch(0, 3, Isolation::ReadUncommitted)
                .unwrap()
                .next_offset,
            3
        );
        assert_eq!(
            r.fetch(0, 4, Isolation::ReadUncommitted),
            Err(KafkaError::OffsetOutOfRange)
        );
        assert_eq!(
            r.fetch(7, 0, Isolation::ReadUncommitted),
            Err(KafkaError::UnknownTopicOrPartition)
        );
        let res = r.produce(None, vec![(9, None, vec![rec("a", "1")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Error(
                KafkaError::UnknownTopicOrPartition
            )]
        );
        assert!(r
            .events
            .iter()
            .any(|e| matches!(e, Event::Rejected { request, .. } if request == "Produce")));
        // A producer without idempotence that retries writes twice.
        r.produce(None, vec![(1, None, vec![rec("c", "3")])]);
        assert_eq!(r.values(1, Isolation::ReadCommitted), ["3", "3"]);
    }

    #[test]
    fn idempotent_retry_is_acknowledged_once_and_gaps_are_errors() {
        let mut r = Run::new(1, false);
        let p = r.init(None, 0);
        let batch = vec![rec("a", "1"), rec("a", "2")];
        let first = r.produce(Some(&p), vec![(0, Some(0), batch.clone())]);
        assert_eq!(
            first,
            [PartitionProduceResult::Appended {
                base_offset: 0,
                duplicate: false
            }]
        );
        let retry = r.produce(Some(&p), vec![(0, Some(0), batch.clone())]);
        assert_eq!(
            retry,
            [PartitionProduceResult::Appended {
                base_offset: 0,
                duplicate: true
            }]
        );
        assert!(r
            .events
            .iter()
            .any(|e| matches!(e, Event::DuplicateBatch { base_offset: 0, .. })));
        assert_eq!(r.b.high_watermark(&tp(0)), 2);
        // Gap: expected 2.
        let gap = r.produce(Some(&p), vec![(0, Some(3), vec![rec("a", "x")])]);
        assert_eq!(
            gap,
            [PartitionProduceResult::Error(
                KafkaError::OutOfOrderSequenceNumber
            )]
        );
        // Only the last five batches are remembered.
        for i in 0..5 {
            r.produce(Some(&p), vec![(0, Some(2 + i), vec![rec("a", "y")])]);
        }
        let old = r.produce(Some(&p), vec![(0, Some(0), batch)]);
        assert_eq!(
            old,
            [PartitionProduceResult::Error(
                KafkaError::OutOfOrderSequenceNumber
            )]
        );
        let recent = r.produce(Some(&p), vec![(0, Some(2), vec![rec("a", "y")])]);
        assert_eq!(
            recent,
            [PartitionProduceResult::Appended {
                base_offset: 2,
                duplicate: true
            }]
        );
        // Unknown producer id and a made-up epoch.
        let ghost = ProducerIdentity {
            producer_id: 999,
            ..p.clone()
        };
        let res = r.produce(Some(&ghost), vec![(0, Some(0), vec![rec("a", "z")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Error(KafkaError::UnknownProducerId)]
        );
        let future = ProducerIdentity { epoch: 3, ..p };
        let res = r.produce(Some(&future), vec![(0, Some(7), vec![rec("a", "z")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Error(
                KafkaError::InvalidProducerEpoch
            )]
        );
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(5, 1), 6);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn committed_transaction_becomes_visible_with_markers_skipped() {
        let mut r = Run::new(2, false);
        let p = r.init(Some("tx"), 10_000);
        r.produce(None, vec![(0, None, vec![rec("k", "before")])]);
        r.produce(
            Some(&p),
            vec![
                (0, Some(0), vec![rec("k", "t1")]),
                (1, Some(0), vec![rec("k", "t2")]),
            ],
        );
        assert_eq!(r.b.open_transactions(), ["tx"]);
        assert_eq!(r.b.last_stable_offset(&tp(0)), 1);
        r.produce(None, vec![(0, None, vec![rec("k", "after")])]);
        // read_committed stops at the LSO; read_uncommitted sees the open record.
        assert_eq!(r.values(0, Isolation::ReadCommitted), ["before"]);
        assert_eq!(
            r.values(0, Isolation::ReadUncommitted),
            ["before", "t1", "after"]
        );
        assert!(!r.b.is_committed(&tp(0), 1) && !r.b.is_aborted(&tp(0), 1));
        r.end(&p, true).unwrap();
        assert!(r.b.open_transactions().is_empty());
        assert_eq!(r.b.log(&tp(0))[3].control, Some(ControlType::Commit));
        assert_eq!(r.b.log(&tp(1))[1].control, Some(ControlType::Commit));
        assert_eq!(
            r.values(0, Isolation::ReadCommitted),
            ["before", "t1", "after"]
        );
        assert_eq!(r.values(1, Isolation::ReadCommitted), ["t2"]);
        assert!(r.b.is_committed(&tp(0), 1) && r.b.is_committed(&tp(1), 0));
        // The fetch passes over the marker.
        assert_eq!(
            r.fetch(1, 0, Isolation::ReadCommitted).unwrap().next_offset,
            2
        );
        assert_eq!(
            r.fetch(1, 1, Isolation::ReadCommitted).unwrap().next_offset,
            2
        );
        // A retried commit is fine; an abort now is not.
        assert_eq!(r.end(&p, true), Ok(()));
        assert_eq!(r.end(&p, false), Err(KafkaError::InvalidTxnState));
    }

    #[test]
    fn aborted_transaction_is_skipped_by_read_committed_only() {
        let mut r = Run::new(1, false);
        let p = r.init(Some("tx"), 10_000);
        r.produce(
            Some(&p),
            vec![(0, Some(0), vec![rec("k", "a1"), rec("k", "a2")])],
        );
        r.end(&p, false).unwrap();
        r.produce(Some(&p), vec![(0, Some(2), vec![rec("k", "c1")])]);
        r.end(&p, true).unwrap();
        assert_eq!(r.values(0, Isolation::ReadCommitted), ["c1"]);
        assert_eq!(r.values(0, Isolation::ReadUncommitted), ["a1", "a2", "c1"]);
        assert!(r.b.is_aborted(&tp(0), 0) && r.b.is_aborted(&tp(0), 1));
        assert!(
            !r.b.is_aborted(&tp(0), 2),
            "a marker is not an aborted record"
        );
        // Skipped aborted records and markers still move next_offset.
        let d = r.fetch(0, 0, Isolation::ReadCommitted).unwrap();
        assert_eq!((d.records[0].offset, d.next_offset), (3, 5));
        assert!(r.events.iter().any(
            |e| matches!(e, Event::TxnAbort { reason, .. } if reason == "requested by the producer")
        ));
    }

    #[test]
    fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
        let mut r = Run::new(2, false);
        let old = r.init(Some("tx"), 10_000);
        r.produce(Some(&old), vec![(0, Some(0), vec![rec("k", "zombie")])]);
        let new = r.init(Some("tx"), 10_000);
        assert_eq!(
            (new.producer_id, new.epoch),
            (old.producer_id, old.epoch + 1)
        );
        assert!(r.events.iter().any(|e| matches!(
            e,
            Event::Fenced {
                fenced_epoch: 0,
                ..
            }
        )));
        assert!(r.b.is_aborted(&tp(0), 0));
        assert_eq!(r.b.log(&tp(0))[1].control, Some(ControlType::Abort));
        assert!(r.b.open_transactions().is_empty());
        // Every later request of the old epoch fails as fenced.
        let res = r.produce(Some(&old), vec![(1, Some(1), vec![rec("k", "late")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Error(KafkaError::ProducerFenced)]
        );
        assert_eq!(r.end(&old, true), Err(KafkaError::ProducerFenced));
        let resp = r.req(
            "p",
            Request::TxnOffsetCommit {
                producer: old.clone(),
                group: GroupMetadata {
                    group: "g".into(),
                    member_id: "m".into(),
                    generation: 1,
                },
                offsets: vec![(tp(0), 1)],
            },
        );
        assert_eq!(
            resp,
            Response::TxnOffsetCommit(Err(KafkaError::ProducerFenced))
        );
        assert_eq!(r.b.log(&tp(1)).len(), 0);
        // The new epoch starts its sequences at 0.
        let res = r.produce(Some(&new), vec![(0, Some(0), vec![rec("k", "fresh")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Appended {
                base_offset: 2,
                duplicate: false
            }]
        );
        r.end(&new, true).unwrap();
        assert_eq!(r.values(0, Isolation::ReadCommitted), ["fresh"]);
        // After an init no transaction ended in this epoch: EndTxn with nothing open is invalid.
        let newer = r.init(Some("tx"), 10_000);
        assert_eq!(r.end(&newer, true), Err(KafkaError::InvalidTxnState));
    }

    #[test]
    fn a_transaction_open_past_its_timeout_is_aborted_and_its_epoch_fenced() {
        let mut r = Run::new(1, false);
        let p = r.init(Some("tx"), 1_000);
        r.now = 100;
        r.produce(Some(&p), vec![(0, Some(0), vec![rec("k", "slow")])]);
        assert_eq!(r.b.next_deadline(), Some(1_100));
        r.tick(1_099);
        assert_eq!(r.b.open_transactions(), ["tx"]);
        r.tick(1_100);
        assert!(r.b.open_transactions().is_empty());
        assert!(r.b.is_aborted(&tp(0), 0));
        assert!(r
            .events
            .iter()
            .any(|e| matches!(e, Event::TxnAbort { reason, .. } if reason == "timeout")));
        assert_eq!(r.b.producer_epoch("tx"), Some((p.producer_id, 1)));
        assert_eq!(r.end(&p, true), Err(KafkaError::ProducerFenced));
        let res = r.produce(Some(&p), vec![(0, Some(1), vec![rec("k", "late")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Error(KafkaError::ProducerFenced)]
        );
        assert_eq!(r.b.next_deadline(), None);
        assert_eq!(r.values(0, Isolation::ReadCommitted), Vec::<String>::new());
    }

    #[test]
    fn epoch_exhaustion_moves_to_a_fresh_producer_id() {
        let mut r = Run::new(1, false);
        let p = r.init(Some("tx"), 1_000);
        r.b.txn_ids.get_mut("tx").unwrap().epoch = MAX_EPOCH;
        let q = r.init(Some("tx"), 1_000);
        assert_ne!(q.producer_id, p.producer_id);
        assert_eq!(q.epoch, 0);
        let stale = ProducerIdentity {
            epoch: MAX_EPOCH,
            ..p
        };
        assert_eq!(r.end(&stale, true), Err(KafkaError::ProducerFenced));
    }

    #[test]
    fn rebalance_on_join_uses_range_assignment() {
        let mut r = Run::new(3, false);
        let (a, gen, parts) = joined(r.join("a", None));
        assert_eq!(
            (a.as_str(), gen, parts),
            ("a-1", 1, vec![tp(0), tp(1), tp(2)])
        );
        assert_eq!(r.b.group_state("g"), Some(GroupState::Stable));
        // A second member: the group waits for the first one to rejoin.
        let b = match r.join("b", None) {
            Ok(JoinOutcome::Pending { member_id }) => member_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.heartbeat(&a, 1), Err(KafkaError::RebalanceInProgress));
        // Commits of the current generation are still accepted while preparing.
        assert_eq!(r.commit_offsets(&a, 1, 5), Ok(()));
        let (_, gen, parts) = joined(r.join("a", Some(&a)));
        assert_eq!((gen, parts), (2, vec![tp(0), tp(1)]));
        let (_, gen, parts) = joined(r.join("b", Some(&b)));
        assert_eq!((gen, parts), (2, vec![tp(2)]));
        assert_eq!(r.heartbeat(&a, 2), Ok(()));
        assert_eq!(r.heartbeat(&a, 1), Err(KafkaError::IllegalGeneration));
        assert_eq!(r.heartbeat("nobody", 2), Err(KafkaError::UnknownMemberId));
        // A stale-generation commit is rejected; the current one is accepted.
        assert_eq!(
            r.commit_offsets(&a, 1, 9),
            Err(KafkaError::IllegalGeneration)
        );
        assert_eq!(r.b.committed_offsets("g")[&tp(0)], 5);
        assert_eq!(r.commit_offsets(&a, 2, 9), Ok(()));
        assert_eq!(r.b.committed_offsets("g")[&tp(0)], 9);
        // Leaving rebalances the rest.
        let resp = r.req(
            "b",
            Request::LeaveGroup {
                group: "g".into(),
                member_id: b.clone(),
            },
        );
        assert_eq!(resp, Response::LeaveGroup(Ok(())));
        let (_, gen, parts) = joined(r.join("a", Some(&a)));
        assert_eq!((gen, parts.len()), (3, 3));
        assert_eq!(r.join("b", Some(&b)), Err(KafkaError::UnknownMemberId));
    }

    #[test]
    fn range_assignor_matches_kafka() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("m1".to_string(), vec!["t".to_string(), "u".to_string()]),
            ("m2".to_string(), vec!["t".to_string()]),
            (
                "m3".to_string(),
                vec!["t".to_string(), "u".to_string(), "missing".to_string()],
            ),
        ]
        .into_iter()
        .collect();
        let a = range_assignment(&subs, |t| match t {
            "t" => Some(7),
            "u" => Some(1),
            _ => None,
        });
        let names = |m: &str| a[m].iter().map(|tp| tp.to_string()).collect::<Vec<_>>();
        assert_eq!(names("m1"), ["t-0", "t-1", "t-2", "u-0"]);
        assert_eq!(names("m2"), ["t-3", "t-4"]);
        assert_eq!(names("m3"), ["t-5", "t-6"]);
        // More members than partitions: the last ones get nothing.
        let subs: BTreeMap<String, Vec<String>> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), vec!["u".to_string()]))
            .collect();
        let a = range_assignment(&subs, |_| Some(2));
        assert_eq!(a["a"].len() + a["b"].len(), 2);
        assert!(a["c"].is_empty());
    }

    #[test]
    fn a_member_missing_its_session_timeout_is_expired_and_the_group_rebalances() {
        let mut r = Run::new(2, false);
        let (a, _, _) = joined(r.join("a", None));
        r.join("b", None).unwrap();
        let (_, _, _) = joined(r.join("a", Some(&a)));
        let b = r.b.group_members("g")[1].clone();
        assert_eq!(r.b.group_generation("g"), Some(2));
        r.now = 600;
        joined(r.join("b", Some(&b))); // refreshes b's session (Stable: idempotent)
        r.now = 900;
        assert_eq!(r.heartbeat(&b, 2), Ok(()));
        // a's session (last seen at 0, timeout 1000) expires first.
        assert_eq!(r.b.next_deadline(), Some(1_000));
        r.tick(1_000);
        assert!(left(&r.events, &a, "session timeout"));
        assert_eq!(
            r.b.group_state("g"),
            Some(GroupState::PreparingRebalance { since: 1_000 })
        );
        assert_eq!(r.b.group_members("g"), std::slice::from_ref(&b));
        // The zombie's commit is refused.
        assert_eq!(r.commit_offsets(&a, 2, 1), Err(KafkaError::UnknownMemberId));
        let (_, gen, parts) = joined(r.join("b", Some(&b)));
        assert_eq!((gen, parts), (3, vec![tp(0), tp(1)]));
    }

    #[test]
    fn a_member_not_rejoining_within_the_rebalance_timeout_is_removed() {
        let mut r = Run::new(2, false);
        let (a, _, _) = joined(r.join("a", None));
        r.now = 100;
        let b = match r.join("b", None).unwrap() {
            JoinOutcome::Pending { member_id } => member_id,
            other => panic!("{other:?}"),
        };
        // Rebalance timeout 500 from 100; a's session would end at 1000.
        assert_eq!(r.b.next_deadline(), Some(600));
        r.tick(600);
        assert!(left(&r.events, &a, "rebalance timeout"));
        assert_eq!(r.b.group_state("g"), Some(GroupState::Stable));
        let (_, gen, parts) = joined(r.join("b", Some(&b)));
        assert_eq!((gen, parts.len()), (2, 2));
        // The last member leaving empties the group and bumps the generation.
        r.req(
            "b",
            Request::LeaveGroup {
                group: "g".into(),
                member_id: b,
            },
        );
        assert_eq!(r.b.group_state("g"), Some(GroupState::Empty));
        assert_eq!(r.b.group_generation("g"), Some(3));
    }

    #[test]
    fn transactional_offsets_are_fenced_by_generation_and_committed_with_the_transaction() {
        let mut r = Run::new(1, false);
        let (m, gen, _) = joined(r.join("a", None));
        let p = r.init(Some("tx"), 10_000);
        let send = |r: &mut Run, generation: Generation, offset: Offset| {
            let resp = r.req(
                "p",
                Request::TxnOffsetCommit {
                    producer: p.clone(),
                    group: GroupMetadata {
                        group: "g".into(),
                        member_id: m.clone(),
                        generation,
                    },
                    offsets: vec![(tp(0), offset)],
                },
            );
            let Response::TxnOffsetCommit(res) = resp else {
                panic!()
            };
            res
        };
        assert_eq!(send(&mut r, gen + 1, 3), Err(KafkaError::IllegalGeneration));
        assert!(
            r.b.open_transactions().is_empty(),
            "a rejected commit begins nothing"
        );
        assert_eq!(send(&mut r, gen, 3), Ok(()));
        assert_eq!(r.b.open_transactions(), ["tx"]);
        assert!(r.b.committed_offsets("g").is_empty());
        let fetch = |r: &mut Run, require_stable| {
            r.req(
                "c",
                Request::OffsetFetch {
                    group: "g".into(),
                    partitions: vec![tp(0)],
                    require_stable,
                },
            )
        };
        assert_eq!(
            fetch(&mut r, true),
            Response::OffsetFetch(Err(KafkaError::UnstableOffsetCommit))
        );
        assert_eq!(
            fetch(&mut r, false),
            Response::OffsetFetch(Ok(vec![(tp(0), None)]))
        );
        r.end(&p, true).unwrap();
        assert_eq!(r.b.committed_offsets("g")[&tp(0)], 3);
        assert_eq!(
            fetch(&mut r, true),
            Response::OffsetFetch(Ok(vec![(tp(0), Some(3))]))
        );
        // Aborted offsets are dropped.
        assert_eq!(send(&mut r, gen, 7), Ok(()));
        r.end(&p, false).unwrap();
        assert_eq!(r.b.committed_offsets("g")[&tp(0)], 3);
        assert!(r.events.iter().any(|e| matches!(
            e,
            Event::OffsetCommit {
                transactional: true,
                ..
            }
        )));
    }

    #[test]
    fn compaction_keeps_the_last_committed_value_per_key() {
        let mut r = Run::new(1, true);
        let p = r.init(Some("tx"), 10_000);
        r.produce(
            None,
            vec![(
                0,
                None,
                vec![rec("a", "a1"), rec("b", "b1"), rec("a", "a2")],
            )],
        ); // 0..3
        r.produce(Some(&p), vec![(0, Some(0), vec![rec("a", "a-aborted")])]); // 3
        r.end(&p, false).unwrap(); // marker 4
        let tomb = Record {
            value: None,
            ..rec("b", "")
        };
        r.produce(None, vec![(0, None, vec![tomb])]); // 5: tombstone for b
        r.produce(Some(&p), vec![(0, Some(1), vec![rec("c", "c-open")])]); // 6, open: LSO = 6
        r.produce(None, vec![(0, None, vec![rec("a", "a3")])]); // 7, above the LSO
        let removed = r.b.compact(&tp(0), &mut r.events);
        // Removed: a1 (0), b1 (1), a-aborted (3). a2 stays: a3 is above the LSO.
        assert_eq!(removed, 3);
        let offsets: Vec<Offset> = r.b.log(&tp(0)).iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [2, 4, 5, 6, 7]);
        assert!(r.events.iter().any(|e| matches!(
            e,
            Event::Compacted {
                removed: 3,
                below: 6,
                ..
            }
        )));
        r.end(&p, true).unwrap(); // marker 8
        assert_eq!(r.b.compact(&tp(0), &mut r.events), 1); // now a2 is superseded by a3
        let offsets: Vec<Offset> = r.b.log(&tp(0)).iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [4, 5, 6, 7, 8]);
        // Fetching across the gaps; the high watermark is unchanged.
        assert_eq!(r.b.high_watermark(&tp(0)), 9);
        let d = r.fetch(0, 0, Isolation::ReadCommitted).unwrap();
        let got: Vec<(Offset, Option<String>)> = d
            .records
            .into_iter()
            .map(|f| (f.offset, f.record.value))
            .collect();
        assert_eq!(
            got,
            [
                (5, None),
                (6, Some("c-open".into())),
                (7, Some("a3".into()))
            ]
        );
        assert_eq!(d.next_offset, 9);
        assert_eq!(r.b.compact(&tp(0), &mut r.events), 0);
        // A delete-policy topic is never compacted.
        let mut plain = Run::new(1, false);
        plain.produce(None, vec![(0, None, vec![rec("a", "1"), rec("a", "2")])]);
        assert_eq!(plain.b.compact(&tp(0), &mut plain.events), 0);
    }

    #[test]
    fn same_inputs_give_the_same_events() {
        let run = || {
            let mut r = Run::new(2, false);
            let p = r.init(Some("tx"), 100);
            r.produce(
                Some(&p),
                vec![
                    (0, Some(0), vec![rec("k", "v")]),
                    (1, Some(0), vec![rec("k", "w")]),
                ],
            );
            joined(r.join("a", None));
            r.join("b", None).unwrap();
            r.tick(1_000);
            r.events
        };
        assert_eq!(run(), run());
    }
}
