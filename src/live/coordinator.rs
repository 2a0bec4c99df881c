//! The coordinators' own logs of a live run (`__consumer_offsets`, `__transaction_state`,
//! decoded by `live/.../CoordinatorLogs.java`) as the simulator's trace events.
//!
//! What each record supports, and nothing more:
//!
//! * an `OffsetCommitValue` is an accepted commit: offset and commit time, but no
//!   generation and no member (Kafka's group coordinator checks them,
//!   `OffsetMetadataManager.validateOffsetCommit`, and does not write them; the same under
//!   the classic protocol and KIP-848's consumer protocol). A plain commit is an
//!   `OffsetCommit` where it was written; a transactional one (`TxnOffsetCommit`, a
//!   transactional batch with its producer id and epoch) is a `TxnOffsets` where it was
//!   written and becomes an `OffsetCommit` at its COMMIT marker, or nothing at an ABORT
//!   (`GroupMetadataManager`/`OffsetMetadataManager.replayEndTransactionMarker`). Their
//!   `generation` is the group's last stored generation and their member is empty: what
//!   the coordinator held, not what the request carried — so `commit-generation` stays
//!   not judged live;
//! * a `GroupMetadataValue` (classic protocol, stored at each generation's `SyncGroup`:
//!   `GroupMetadataManager.classicGroupSyncToClassicGroup` →
//!   `GroupCoordinatorRecordHelpers.newGroupMetadataRecord`) is a `Rebalance`: generation, members, each
//!   member's assigned partitions;
//! * a `TransactionLogValue` is the transaction coordinator's state of a transactional id
//!   (`TransactionMetadata`, `TransactionStateManager.appendTransactionToLog`). When its
//!   producer id or epoch moves, the previous one is fenced (`Fenced`): an
//!   `InitProducerId` (`TransactionCoordinator.handleInitProducerId`, `Empty` at the new
//!   epoch, also a `ProducerInit`), a fenced or timed-out transaction's abort, and under
//!   transaction protocol v2 every transaction's end (`TransactionMetadata
//!   .prepareAbortOrCommit`: the epoch is bumped in `PrepareCommit`/`PrepareAbort`), as
//!   the simulator's `Broker::bump_epoch` records it. The partition leader then refuses an
//!   older epoch (`ProducerAppendInfo.checkProducerEpoch`; under v2 a transactional
//!   produce is verified with the coordinator first, KIP-890), so a data batch of a fenced
//!   epoch appended after it is what `epoch-fencing` flags.
//!
//! Times are the coordinators' write times (the brokers' clock, as the partitions' append
//! times): within one ms, the partitions' appends come first, so a write and a fence of
//! the same ms are not judged as out of order.

use super::convert::Unconvertible;
use super::history::{CoordinatorEntry, CoordinatorRecord, GroupMember, LiveHistory};
use oversell_sim::protocol::{Epoch, Generation, Offset, ProducerId};
use oversell_sim::trace::Peer;
use oversell_sim::{Event, TopicPartition};
use std::collections::BTreeMap;

/// A transactional offset commit waiting for its marker.
struct Pending {
    group: String,
    tp: TopicPartition,
    offset: Offset,
}

/// The coordinators' state as their logs are replayed.
#[derive(Default)]
pub struct Coordinators {
    /// Group → its last stored generation.
    generation: BTreeMap<String, Generation>,
    /// Transactional id → its producer id and epoch, as last written.
    txn: BTreeMap<String, (ProducerId, Epoch)>,
    /// Producer id → its transactional id.
    tid_of: BTreeMap<ProducerId, String>,
    /// (`__consumer_offsets` partition, producer id) → its open transactional commits.
    pending: BTreeMap<(u32, ProducerId), Vec<Pending>>,
    /// (group, topic-partition) → every offset committed, in order.
    committed: BTreeMap<(String, TopicPartition), Vec<Offset>>,
}

impl Coordinators {
    /// The trace events of one entry, in order.
    pub fn events(&mut self, e: &CoordinatorEntry) -> Result<Vec<Event>, Unconvertible> {
        let at = || format!("{}-{}@{}", e.log, e.partition, e.offset);
        if let Some(control) = &e.control {
            let pid = e.producer_id.ok_or_else(|| {
                Unconvertible(format!("{}: a marker without a producer id", at()))
            })?;
            return self
                .marker(e.partition, pid, control)
                .map_err(|why| Unconvertible(format!("{}: {why}", at())));
        }
        let Some(record) = &e.record else {
            return Err(Unconvertible(format!(
                "{}: neither a record nor a marker",
                at()
            )));
        };
        self.record_events(e, record)
    }

    /// The trace events of a decoded record (not a marker).
    fn record_events(
        &mut self,
        e: &CoordinatorEntry,
        record: &CoordinatorRecord,
    ) -> Result<Vec<Event>, Unconvertible> {
        Ok(match record {
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                offset: Some(offset),
                ..
            } => self.commit(
                e,
                group,
                TopicPartition::new(topic.as_str(), *partition),
                *offset,
            )?,
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                ..
            } => vec![note(format!(
                "{group}'s offset of {topic}-{partition} deleted (a tombstone)"
            ))],
            CoordinatorRecord::GroupMetadata {
                group,
                generation: Some(generation),
                members,
                ..
            } => {
                self.generation.insert(group.clone(), *generation);
                vec![rebalance(group, *generation, members)]
            }
            CoordinatorRecord::GroupMetadata { group, .. } => {
                vec![note(format!("group {group} deleted (a tombstone)"))]
            }
            CoordinatorRecord::Transaction {
                transactional_id,
                producer_id: Some(pid),
                epoch: Some(epoch),
                state,
                ..
            } => self.transaction(
                transactional_id,
                *pid,
                *epoch,
                state.as_deref().unwrap_or("?"),
            ),
            CoordinatorRecord::Transaction {
                transactional_id, ..
            } => {
                vec![note(format!(
                    "transactional id {transactional_id} expired (a tombstone)"
                ))]
            }
            CoordinatorRecord::Other { name } => {
                vec![note(format!("group record {name} (not decoded)"))]
            }
        })
    }

    /// An accepted offset commit: plain, an `OffsetCommit` now; transactional, a
    /// `TxnOffsets` now and an `OffsetCommit` at its COMMIT marker.
    fn commit(
        &mut self,
        e: &CoordinatorEntry,
        group: &str,
        tp: TopicPartition,
        offset: Offset,
    ) -> Result<Vec<Event>, Unconvertible> {
        let generation = self.generation.get(group).copied().unwrap_or(0);
        if !e.transactional {
            self.committed
                .entry((group.to_string(), tp.clone()))
                .or_default()
                .push(offset);
            return Ok(vec![Event::OffsetCommit {
                group: group.to_string(),
                member_id: String::new(),
                generation,
                offsets: vec![(tp, offset)],
                transactional: false,
            }]);
        }
        let (Some(pid), Some(epoch)) = (e.producer_id, e.epoch) else {
            return Err(Unconvertible(format!(
                "{}-{}@{}: a transactional offset commit without a producer id",
                e.log, e.partition, e.offset
            )));
        };
        let pending = Pending {
            group: group.to_string(),
            tp: tp.clone(),
            offset,
        };
        self.pending
            .entry((e.partition, pid))
            .or_default()
            .push(pending);
        let Some(tid) = self.tid_of.get(&pid) else {
            return Ok(Vec::new());
        };
        Ok(vec![Event::TxnOffsets {
            transactional_id: tid.clone(),
            producer_id: pid,
            epoch,
            group: group.to_string(),
            member_id: String::new(),
            generation,
            offsets: vec![(tp, offset)],
        }])
    }

    /// A marker settles its producer's transactional commits in this partition.
    fn marker(
        &mut self,
        partition: u32,
        pid: ProducerId,
        control: &str,
    ) -> Result<Vec<Event>, String> {
        let pending = self.pending.remove(&(partition, pid)).unwrap_or_default();
        match control {
            "ABORT" => return Ok(Vec::new()),
            "COMMIT" => {}
            other => return Err(format!("unknown control record {other:?}")),
        }
        let mut by_group: BTreeMap<String, Vec<(TopicPartition, Offset)>> = BTreeMap::new();
        for p in pending {
            self.committed
                .entry((p.group.clone(), p.tp.clone()))
                .or_default()
                .push(p.offset);
            by_group.entry(p.group).or_default().push((p.tp, p.offset));
        }
        Ok(by_group
            .into_iter()
            .map(|(group, offsets)| Event::OffsetCommit {
                generation: self.generation.get(&group).copied().unwrap_or(0),
                group,
                member_id: String::new(),
                offsets,
                transactional: true,
            })
            .collect())
    }

    /// A transactional id's state: a moved producer id or epoch fences the previous one.
    fn transaction(&mut self, tid: &str, pid: ProducerId, epoch: Epoch, state: &str) -> Vec<Event> {
        self.tid_of.insert(pid, tid.to_string());
        let previous = self.txn.insert(tid.to_string(), (pid, epoch));
        let mut out = Vec::new();
        match previous {
            Some(p) if p == (pid, epoch) => return out,
            Some((old_pid, old_epoch)) => out.push(Event::Fenced {
                transactional_id: tid.to_string(),
                producer_id: old_pid,
                fenced_epoch: old_epoch,
            }),
            None if state != "Empty" => {
                out.push(note(format!(
                    "{tid}'s first state in the log is {state} at pid {pid} epoch {epoch}: its InitProducerId \
                     is not in the log, and its writes are not judged"
                )));
                return out;
            }
            None => {}
        }
        if state == "Empty" {
            out.push(Event::ProducerInit {
                transactional_id: Some(tid.to_string()),
                producer_id: pid,
                epoch,
            });
        }
        out
    }

    /// Each group's committed offsets read back at the end must be among the commits
    /// decoded, and each transactional batch's producer id must be a transactional id's
    /// in `__transaction_state`: otherwise the decoding is wrong, and the history is
    /// refused.
    pub fn check_final(&self, h: &LiveHistory) -> Result<(), Unconvertible> {
        let data = h
            .log
            .iter()
            .filter(|e| e.transactional && e.control.is_none());
        for e in data {
            if let Some(pid) = e.producer_id.filter(|p| !self.tid_of.contains_key(p)) {
                return Err(Unconvertible(format!(
                    "{}-{}@{} was written in a transaction by producer id {pid}, which no transactional id \
                     holds in __transaction_state",
                    e.topic, e.partition, e.offset
                )));
            }
        }
        for (group, offsets) in &h.group_offsets {
            for (name, offset) in offsets {
                let tp = name
                    .rsplit_once('-')
                    .and_then(|(t, p)| Some(TopicPartition::new(t, p.parse::<u32>().ok()?)))
                    .ok_or_else(|| {
                        Unconvertible(format!("group {group}: {name:?} is not topic-partition"))
                    })?;
                let seen = self.committed.get(&(group.clone(), tp.clone()));
                if !seen.is_some_and(|s| s.contains(offset)) {
                    return Err(Unconvertible(format!(
                        "group {group} had {tp}={offset} committed at the end, but __consumer_offsets holds no such \
                         commit (decoded: {seen:?})"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn note(text: String) -> Event {
    Event::Note {
        client: Peer::Broker,
        text,
    }
}

/// A group's stored generation and assignment as the simulator's `Rebalance`.
fn rebalance(group: &str, generation: Generation, members: &[GroupMember]) -> Event {
    Event::Rebalance {
        group: group.to_string(),
        generation,
        assignment: members
            .iter()
            .map(|m| {
                let tps = m
                    .assignment
                    .iter()
                    .map(|t| TopicPartition::new(t.topic.as_str(), t.partition));
                (m.member_id.clone(), tps.collect())
            })
            .collect(),
    }
}
