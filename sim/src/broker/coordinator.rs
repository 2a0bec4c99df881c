//! The coordinators on a replicated cluster: the transaction coordinator of a
//! `transactional.id` is the leader of its `__transaction_state` partition, the group
//! coordinator of a group the leader of its `__consumer_offsets` partition.
//!
//! After Kafka 4.x's transaction coordinator
//! (`core/src/main/scala/kafka/coordinator/transaction/TransactionStateManager.scala`) and
//! group coordinator (`group-coordinator/src/main/java/org/apache/kafka/coordinator/group/`:
//! `GroupCoordinatorService`, `GroupMetadataManager`, `OffsetMetadataManager`, run by
//! `coordinator-common`'s `CoordinatorRuntime`):
//!
//! - an id maps to its partition by `Utils.abs(id.hashCode) % partitions`
//!   (`TransactionStateManager.partitionFor`, `GroupCoordinatorService.partitionFor`);
//! - every change of a coordinator's state is a record appended to that partition
//!   (`TransactionLog` key and value: the whole metadata of a transactional id; a group's
//!   generation, members and assignment; its committed offsets), and the request that made
//!   it is answered once the record is below the high watermark
//!   (`TransactionStateManager.appendTransactionToLog` appends with `acks=-1`; the group
//!   coordinator's `OffsetMetadataManager.commitOffset` records are appended by
//!   `CoordinatorPartitionWriter.append` with `acks=1` and `CoordinatorRuntime` completes
//!   the response when the high watermark passes them), or `NOT_COORDINATOR` if the
//!   partition's leadership moved first (`NOT_LEADER_OR_FOLLOWER` mapped to
//!   `NOT_COORDINATOR`: `appendTransactionToLog`,
//!   `CoordinatorOperationExceptionHelper.handleOperationException`);
//! - a new leader loads the state by replaying its log (`coord_load.rs`), answering
//!   `COORDINATOR_LOAD_IN_PROGRESS` until it has
//!   (`TransactionStateManager.getAndMaybeAddTransactionState`, `CoordinatorRuntime`'s
//!   loading state), and a partition with no live leader answers `NOT_COORDINATOR` (in
//!   Kafka the client's connection to the dead coordinator fails and `FindCoordinator`
//!   answers `COORDINATOR_NOT_AVAILABLE` until a leader is elected; every client treats
//!   both alike: it looks the coordinator up again and retries).
//!
//! Records are written by comparing the coordinators' state after each request, tick and
//! marker with what was last written for each id: the state machines of `txn.rs`,
//! `group.rs` and `markers.rs` are the same as on a single broker. With one broker none of
//! this exists: no internal topic, every coordinator always available.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::group::{Group, GroupState};
use super::log::{EntryMeta, TopicConfig};
use super::txn::{PendingOffsets, TxnIdState, TxnSerial};
use super::{reject, Broker, Handled};
use crate::protocol::{
    Epoch, KafkaError, LogEntry, Millis, Offset, ProducerId, Record, Request, Response,
    TopicPartition,
};
use crate::trace::Event;

/// Kafka's `Topic.TRANSACTION_STATE_TOPIC_NAME`
/// (`clients/src/main/java/org/apache/kafka/common/internals/Topic.java`).
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's `Topic.GROUP_METADATA_TOPIC_NAME`.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How long a new leader takes to load a coordinator partition (Kafka reads the log on its
/// scheduler thread; a few milliseconds here, whatever the log's length).
pub const COORDINATOR_LOAD_MS: Millis = 5;

/// Which coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Coordinator {
    Transaction,
    Group,
}

/// A record of a coordinator partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum CoordRecord {
    /// `TransactionLogKey` (the transactional id) and `TransactionLogValue`.
    Txn { tid: String, value: TxnRecord },
    /// `GroupMetadataKey` and `GroupMetadataValue`: the group as it stood at the end of a
    /// rebalance (members, generation, assignment; no offsets).
    Group { group: String, value: Group },
    /// `OffsetCommitKey` / `OffsetCommitValue`: the offsets one commit changed.
    Offsets {
        group: String,
        offsets: BTreeMap<TopicPartition, Offset>,
    },
}

/// What `__transaction_state` keeps of a transactional id (`TransactionLogValue`:
/// producer id and epoch, timeout, state, partitions, start time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TxnRecord {
    pub(super) producer_id: ProducerId,
    pub(super) epoch: Epoch,
    pub(super) timeout_ms: Millis,
    pub(super) last_completed: Option<(Epoch, bool)>,
    pub(super) previous_producer_id: Option<ProducerId>,
    pub(super) state: TxnRecordState,
}

/// `TransactionState`: `Empty` / `CompleteCommit` / `CompleteAbort` are `Idle`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TxnRecordState {
    Idle,
    Ongoing {
        serial: TxnSerial,
        started: Millis,
        partitions: BTreeSet<TopicPartition>,
        /// The offsets sent to the transaction (Kafka keeps them as transactional records
        /// of `__consumer_offsets`; here with the transaction's own record).
        offsets: BTreeMap<String, PendingOffsets>,
    },
    Prepare {
        serial: TxnSerial,
        commit: bool,
        marker: (ProducerId, Epoch),
        partitions: BTreeSet<TopicPartition>,
        groups: BTreeMap<String, PendingOffsets>,
    },
}

impl TxnRecord {
    /// The record of `st` as it stands.
    pub(super) fn of(st: &TxnIdState) -> TxnRecord {
        let state = match (&st.open, &st.ending) {
            (Some(o), _) => TxnRecordState::Ongoing {
                serial: o.serial,
                started: o.started,
                partitions: o.partitions.keys().cloned().collect(),
                offsets: o.offsets.clone(),
            },
            (None, Some(e)) => TxnRecordState::Prepare {
                serial: e.serial,
                commit: e.commit,
                marker: e.marker,
                partitions: e.prepared.0.clone(),
                groups: e.prepared.1.clone(),
            },
            (None, None) => TxnRecordState::Idle,
        };
        TxnRecord {
            producer_id: st.producer_id,
            epoch: st.epoch,
            timeout_ms: st.timeout_ms,
            last_completed: st.last_completed,
            previous_producer_id: st.previous_producer_id,
            state,
        }
    }
}

/// An answer waiting for its coordinator records to be below the high watermark.
#[derive(Clone, Debug)]
pub(super) struct DelayedAnswer {
    pub(super) response: Response,
    /// (partition, offset the high watermark must pass, leader epoch of the append).
    pub(super) waiting: Vec<(TopicPartition, Offset, u32)>,
}

/// The coordinators' bookkeeping on a replicated cluster.
#[derive(Clone, Debug, Default)]
pub(super) struct Coordinators {
    /// The last record written per transactional id, and where.
    pub(super) txns: BTreeMap<String, (TxnRecord, TopicPartition, Offset)>,
    /// The last group metadata record written per group.
    pub(super) groups: BTreeMap<String, Group>,
    /// The committed offsets written per group.
    pub(super) offsets: BTreeMap<String, BTreeMap<TopicPartition, Offset>>,
    /// Coordinator partitions whose new leader is loading them, until when.
    pub(super) loading: BTreeMap<TopicPartition, Millis>,
    /// Records written while the current request is handled.
    pub(super) written: Vec<(TopicPartition, Offset, u32)>,
    /// Answers held until their records are replicated, by delayed-answer id.
    pub(super) answers: BTreeMap<u64, DelayedAnswer>,
    /// Group markers already applied and below the high watermark of the group's
    /// coordinator partition, by (group, transaction): the group coordinator's pending
    /// transactional offsets are gone for them, so a marker sent again by a new
    /// transaction coordinator changes nothing
    /// (`OffsetMetadataManager.replayEndTransactionMarker`).
    pub(super) applied_group_markers: BTreeSet<(String, TxnSerial)>,
    /// Open transactions a load forgot (their coordinator's log lost them): undecided for
    /// ever, unless a later load finds them again.
    pub(super) orphaned: BTreeSet<TxnSerial>,
    /// The highest high watermark each coordinator partition has had: a record below it
    /// was acknowledged.
    pub(super) max_hw: BTreeMap<TopicPartition, Offset>,
}

/// Java's `String.hashCode`: over UTF-16 code units, `h = 31 * h + c`, wrapping.
pub fn java_hash_code(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// `Utils.abs(id.hashCode) % partitions` (`Utils.abs` maps `Integer.MIN_VALUE` to 0).
pub fn coordinator_partition(id: &str, partitions: u32) -> u32 {
    assert!(partitions > 0, "a coordinator topic has partitions");
    let h = java_hash_code(id);
    let abs = if h == i32::MIN { 0 } else { h.unsigned_abs() };
    abs % partitions
}

impl Broker {
    /// Create `__transaction_state` and `__consumer_offsets`, replicated like any topic.
    pub(super) fn create_coordinator_topics(&mut self) {
        let config = self.cluster.as_ref().expect("a cluster").config;
        for (name, partitions) in [
            (TRANSACTION_STATE_TOPIC, config.transaction_state_partitions),
            (OFFSETS_TOPIC, config.offsets_partitions),
        ] {
            let topic = TopicConfig {
                partitions,
                compacted: false,
            };
            self.create_topic(name, topic)
                .expect("the coordinator topics are new");
        }
    }

    /// The partition whose leader coordinates `id`, on a replicated cluster.
    pub(super) fn coordinator_tp(&self, kind: Coordinator, id: &str) -> Option<TopicPartition> {
        let config = self.cluster.as_ref()?.config;
        let (topic, n) = match kind {
            Coordinator::Transaction => {
                (TRANSACTION_STATE_TOPIC, config.transaction_state_partitions)
            }
            Coordinator::Group => (OFFSETS_TOPIC, config.offsets_partitions),
        };
        Some(TopicPartition::new(topic, coordinator_partition(id, n)))
    }

    /// Whether the coordinator of `id` is up and loaded (always on a single broker).
    pub(super) fn coordinator_ready(&self, kind: Coordinator, id: &str) -> bool {
        self.coordinator_error(kind, id).is_none()
    }

    fn coordinator_error(&self, kind: Coordinator, id: &str) -> Option<KafkaError> {
        let tp = self.coordinator_tp(kind, id)?;
        if !self.leader_available(&tp) {
            return Some(KafkaError::NotCoordinator);
        }
        let loading = self
            .coordinators()
            .is_some_and(|c| c.loading.contains_key(&tp));
        loading.then_some(KafkaError::CoordinatorLoadInProgress)
    }

    /// `NOT_COORDINATOR` when the coordinator of `id` has no live leader,
    /// `COORDINATOR_LOAD_IN_PROGRESS` while its new leader loads it.
    pub(super) fn check_coordinator(
        &self,
        kind: Coordinator,
        id: &str,
        request: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        match self.coordinator_error(kind, id) {
            None => Ok(()),
            Some(error) => {
                let tp = self.coordinator_tp(kind, id).expect("replicated");
                let detail = match error {
                    KafkaError::NotCoordinator => format!("{tp} has no live leader"),
                    _ => format!("the leader of {tp} is loading it"),
                };
                Err(reject(events, request, error, detail))
            }
        }
    }

    /// Whether the transaction coordinator of `tid` sends its markers: it is up and
    /// loaded, and its `PrepareCommit` / `PrepareAbort` is below the high watermark (the
    /// markers go out from the append's callback, `TransactionCoordinator.endTransaction`,
    /// `core/src/main/scala/kafka/coordinator/transaction/TransactionCoordinator.scala`).
    pub(super) fn coordinator_sends_markers(&self, tid: &str) -> bool {
        if !self.coordinator_ready(Coordinator::Transaction, tid) {
            return false;
        }
        let Some(coord) = self.coordinators() else {
            return true;
        };
        coord
            .txns
            .get(tid)
            .is_some_and(|(_, tp, offset)| self.topic_log(tp).hw > *offset)
    }

    /// Whether the last record the transaction coordinator wrote for `tid` is not yet
    /// below its partition's high watermark: Kafka's `TransactionMetadata.pendingState`,
    /// set while `TransactionStateManager.appendTransactionToLog` waits for `acks=-1` (the
    /// in-memory state moves only in its callback, `completeTransitionTo`). Never on a
    /// single broker.
    pub(super) fn txn_transition_pending(&self, tid: &str) -> bool {
        let Some(coord) = self.coordinators() else {
            return false;
        };
        let last = coord.txns.get(tid);
        last.is_some_and(|(_, tp, offset)| self.topic_log(tp).hw <= *offset)
    }

    pub(super) fn coordinators(&self) -> Option<&Coordinators> {
        self.cluster.as_ref().map(|c| &c.coordinators)
    }

    fn coordinators_mut(&mut self) -> &mut Coordinators {
        &mut self.cluster.as_mut().expect("a cluster").coordinators
    }

    /// Write a record for every coordinator state that changed since its last record
    /// (and whose coordinator is available: one that is not is reloaded from its log).
    pub(super) fn persist_coordinators(&mut self, now: Millis) {
        if self.cluster.is_none() {
            return;
        }
        self.settle_group_markers();
        let cluster = self.cluster.as_ref().expect("checked above");
        let hws: Vec<(TopicPartition, Offset)> = cluster
            .partitions
            .keys()
            .filter(|tp| super::log::is_internal(&tp.topic))
            .map(|tp| (tp.clone(), self.topic_log(tp).hw))
            .collect();
        let max_hw = &mut self.coordinators_mut().max_hw;
        for (tp, hw) in hws {
            let m = max_hw.entry(tp).or_insert(0);
            *m = (*m).max(hw);
        }
        let coord = self.coordinators().expect("a cluster");
        let changed: Vec<(String, TxnRecord)> = self
            .txn_ids
            .iter()
            .map(|(tid, st)| (tid, TxnRecord::of(st)))
            .filter(|(tid, rec)| coord.txns.get(*tid).is_none_or(|(r, _, _)| r != rec))
            .map(|(tid, rec)| (tid.clone(), rec))
            .collect();
        for (tid, value) in changed {
            if self.coordinator_ready(Coordinator::Transaction, &tid) {
                let tp = self.coordinator_tp(Coordinator::Transaction, &tid);
                let tp = tp.expect("replicated");
                let record = CoordRecord::Txn {
                    tid: tid.clone(),
                    value: value.clone(),
                };
                let offset = self.append_coordinator_record(&tp, &tid, record, now);
                let coord = self.coordinators_mut();
                coord.txns.insert(tid, (value, tp, offset));
            }
        }
        self.persist_groups(now);
    }

    /// [`Broker::persist_coordinators`] for groups: a metadata record when a rebalance
    /// ended (or the group emptied), an offsets record for the offsets a commit changed.
    fn persist_groups(&mut self, now: Millis) {
        let coord = self.coordinators().expect("a cluster");
        let mut records = Vec::new();
        for (name, g) in &self.groups {
            if let Some(meta) = g.metadata_record() {
                if coord.groups.get(name) != Some(&meta) {
                    records.push((
                        name.clone(),
                        CoordRecord::Group {
                            group: name.clone(),
                            value: meta,
                        },
                    ));
                }
            }
            let written = coord.offsets.get(name);
            let offsets: BTreeMap<TopicPartition, Offset> = g
                .committed
                .iter()
                .filter(|(tp, o)| written.and_then(|w| w.get(*tp)) != Some(*o))
                .map(|(tp, o)| (tp.clone(), *o))
                .collect();
            if !offsets.is_empty() {
                records.push((
                    name.clone(),
                    CoordRecord::Offsets {
                        group: name.clone(),
                        offsets,
                    },
                ));
            }
        }
        for (name, record) in records {
            if !self.coordinator_ready(Coordinator::Group, &name) {
                continue;
            }
            let tp = self.coordinator_tp(Coordinator::Group, &name);
            let tp = tp.expect("replicated");
            let coord = self.coordinators_mut();
            match &record {
                CoordRecord::Group { value, .. } => {
                    coord.groups.insert(name.clone(), value.clone());
                }
                CoordRecord::Offsets { offsets, .. } => {
                    let w = coord.offsets.entry(name.clone()).or_default();
                    w.extend(offsets.iter().map(|(tp, o)| (tp.clone(), *o)));
                }
                CoordRecord::Txn { .. } => unreachable!("a group record"),
            }
            self.append_coordinator_record(&tp, &name, record, now);
        }
    }

    /// Append one coordinator record at the leader of `tp`; returns its offset.
    fn append_coordinator_record(
        &mut self,
        tp: &TopicPartition,
        key: &str,
        record: CoordRecord,
        now: Millis,
    ) -> Offset {
        let value = match &record {
            CoordRecord::Txn { value, .. } => format!("{:?}", value.state)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
            CoordRecord::Group { value, .. } => format!("generation {}", value.generation),
            CoordRecord::Offsets { offsets, .. } => format!("{} offsets", offsets.len()),
        };
        let epoch = self.cluster.as_ref().expect("a cluster").partitions[tp].leader_epoch;
        let (log, compacted) = self.partition_mut(tp);
        let offset = log.log_end;
        log.note_epoch(epoch, offset);
        let entry = LogEntry {
            offset,
            record: Record {
                key: Some(key.to_string()),
                value: Some(value),
                timestamp: now,
                headers: Vec::new(),
            },
            producer: None,
            sequence: None,
            transactional: false,
            control: None,
        };
        let meta = EntryMeta {
            coord: Some(Arc::new(record)),
            ..EntryMeta::default()
        };
        log.append(entry, None, meta, compacted);
        self.note_leader_append(tp, offset, now);
        self.maybe_increment_hw(tp);
        self.coordinators_mut()
            .written
            .push((tp.clone(), offset + 1, epoch));
        offset
    }

    /// The answer to a coordinator request: now if it wrote no record (or every record is
    /// already replicated), else held until its records are below the high watermark.
    pub(super) fn answer_coordinator(&mut self, response: Response) -> Handled {
        let Some(cluster) = self.cluster.as_mut() else {
            return Handled::Now(response);
        };
        let waiting = std::mem::take(&mut cluster.coordinators.written);
        let mut answer = DelayedAnswer { response, waiting };
        if self.settle_answer(&mut answer) {
            return Handled::Now(answer.response);
        }
        let cluster = self.cluster.as_mut().expect("a cluster");
        let id = cluster.next_delayed;
        cluster.next_delayed += 1;
        cluster.coordinators.answers.insert(id, answer);
        Handled::Delayed(id)
    }

    /// Records written by anything but a request (a tick, a marker, a fetch) answer no
    /// one: forget them.
    pub(super) fn forget_written(&mut self) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.coordinators.written.clear();
        }
    }

    /// True when nothing is waited for any more; a moved leadership turns the answer into
    /// `NOT_COORDINATOR` (the append failed with `NOT_LEADER_OR_FOLLOWER`, which the
    /// coordinators answer as `NOT_COORDINATOR`).
    fn settle_answer(&self, answer: &mut DelayedAnswer) -> bool {
        let cluster = self.cluster.as_ref().expect("a cluster");
        let mut moved = false;
        answer.waiting.retain(|(tp, required, epoch)| {
            let r = &cluster.partitions[tp];
            if r.leader_epoch != *epoch || !self.leader_available(tp) {
                moved = true;
                return false;
            }
            self.topic_log(tp).hw < *required
        });
        if moved {
            answer.waiting.clear();
            answer.response = with_error(&answer.response, KafkaError::NotCoordinator);
        }
        answer.waiting.is_empty()
    }

    /// The held coordinator answers that can go out now, by id.
    pub(super) fn take_completed_answers(&mut self) -> Vec<(u64, Response)> {
        let Some(cluster) = self.cluster.as_mut() else {
            return Vec::new();
        };
        let mut answers = std::mem::take(&mut cluster.coordinators.answers);
        let done: Vec<u64> = answers
            .iter_mut()
            .filter_map(|(id, a)| self.settle_answer(a).then_some(*id))
            .collect();
        let out = done
            .into_iter()
            .map(|id| (id, answers.remove(&id).expect("settled").response))
            .collect();
        self.coordinators_mut().answers = answers;
        out
    }

    /// A new leader (or none) for `tp`: a coordinator partition is loaded
    /// [`COORDINATOR_LOAD_MS`] after its election.
    pub(super) fn coordinator_leader_changed(&mut self, tp: &TopicPartition, now: Millis) {
        if tp.topic != TRANSACTION_STATE_TOPIC && tp.topic != OFFSETS_TOPIC {
            return;
        }
        if tp.topic == OFFSETS_TOPIC {
            self.settle_group_markers();
        }
        let led = self.leader_available(tp);
        let coord = self.coordinators_mut();
        if led {
            coord.loading.insert(tp.clone(), now + COORDINATOR_LOAD_MS);
        } else {
            coord.loading.remove(tp);
        }
    }

    /// The next load to finish, if any.
    pub(super) fn load_deadline(&self) -> Option<Millis> {
        self.coordinators()?.loading.values().copied().min()
    }

    /// Finish every load due at `now`.
    pub(super) fn finish_loads(&mut self, now: Millis, events: &mut Vec<Event>) {
        let Some(coord) = self.coordinators() else {
            return;
        };
        let due: Vec<TopicPartition> = coord
            .loading
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            self.coordinators_mut().loading.remove(&tp);
            self.load_coordinator(&tp, now, events);
        }
    }
}

impl Broker {
    /// The answer of the group coordinator of a group request's group when it is not
    /// available.
    pub(super) fn group_coordinator_error(
        &self,
        req: &Request,
        events: &mut Vec<Event>,
    ) -> Option<Response> {
        let (group, name) = match req {
            Request::JoinGroup { group, .. } => (group.as_str(), "JoinGroup"),
            Request::Heartbeat { group, .. } => (group.as_str(), "Heartbeat"),
            Request::LeaveGroup { group, .. } => (group.as_str(), "LeaveGroup"),
            Request::OffsetCommit { group, .. } => (group.group.as_str(), "OffsetCommit"),
            Request::OffsetFetch { group, .. } => (group.as_str(), "OffsetFetch"),
            _ => return None,
        };
        if matches!(req, Request::Heartbeat { .. })
            && self.coordinator_error(Coordinator::Group, group)
                == Some(KafkaError::CoordinatorLoadInProgress)
        {
            // `GroupCoordinatorService.heartbeat`: `COORDINATOR_LOAD_IN_PROGRESS` becomes
            // `NONE`, "The group is still loading, so blindly respond".
            return Some(Response::Heartbeat(Ok(())));
        }
        let error = self
            .check_coordinator(Coordinator::Group, group, name, events)
            .err()?;
        Some(match req {
            Request::OffsetFetch { .. } => Response::OffsetFetch(Err(error)),
            Request::JoinGroup { .. } => Response::JoinGroup(Err(error)),
            Request::Heartbeat { .. } => Response::Heartbeat(Err(error)),
            Request::LeaveGroup { .. } => Response::LeaveGroup(Err(error)),
            _ => Response::OffsetCommit(Err(error)),
        })
    }
}

/// `response` with `error` in place of its result (the coordinator requests only).
fn with_error(response: &Response, error: KafkaError) -> Response {
    match response {
        Response::InitProducerId(_) => Response::InitProducerId(Err(error)),
        Response::TxnOffsetCommit(_) => Response::TxnOffsetCommit(Err(error)),
        Response::EndTxn(_) => Response::EndTxn(Err(error)),
        Response::OffsetCommit(_) => Response::OffsetCommit(Err(error)),
        Response::JoinGroup(_) => Response::JoinGroup(Err(error)),
        Response::Heartbeat(_) => Response::Heartbeat(Err(error)),
        Response::LeaveGroup(_) => Response::LeaveGroup(Err(error)),
        other => unreachable!("no coordinator record is written for {other:?}"),
    }
}

/// Whether a group state is one Kafka stores (`Stable` after a rebalance, or `Empty`).
pub(super) fn stored_state(state: GroupState) -> bool {
    !matches!(state, GroupState::PreparingRebalance { .. })
}
