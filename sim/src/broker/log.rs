//! The partition log: topics, dense offsets, append, high watermark, last stable offset,
//! fetch at both isolation levels, and compaction as Kafka's log cleaner does it.
//!
//! On a single broker the high watermark is the log end offset; with replication
//! (`cluster.rs`) it moves as the in-sync replicas fetch.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::txn::{TxnOutcome, TxnSerial};
use super::{reject, Broker};
use crate::client::ClientId;
use crate::protocol::{
    FetchData, FetchedRecord, Isolation, KafkaError, LogEntry, Offset, ProducerId, TopicPartition,
};
use crate::trace::Event;

use super::producer::ProducerState;
use crate::state_hash::Cached;

/// Static configuration of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub partitions: u32,
    /// `cleanup.policy=compact`: [`Broker::compact`] keeps the last record per key.
    pub compacted: bool,
}

/// What a replica needs besides the entry itself to rebuild a leader's state from its log
/// (Kafka keeps it in the record batch headers): the batch an idempotent record opened,
/// and the transaction a marker closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct EntryMeta {
    /// On the first record of an idempotent batch: its base sequence and record count.
    pub(super) batch: Option<(i32, i32)>,
    /// On a transaction marker: the transaction it ends.
    pub(super) marker_of: Option<TxnSerial>,
    /// On a record of `__transaction_state` or `__consumer_offsets`: the coordinator
    /// state it carries (Kafka's `TransactionLog` / `GroupCoordinatorRecordSerde` key and
    /// value).
    pub(super) coord: Option<std::sync::Arc<super::coordinator::CoordRecord>>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct PartitionLog {
    pub(super) entries: Vec<LogEntry>,
    /// Parallel to `entries`: the transaction that wrote each transactional data record.
    pub(super) txn: Vec<Option<TxnSerial>>,
    /// Parallel to `entries`: batch and marker bookkeeping (see [`EntryMeta`]).
    pub(super) meta: Vec<EntryMeta>,
    /// Offset the next entry gets: the log end offset.
    pub(super) log_end: Offset,
    /// The high watermark: the log end on a single broker; under replication the offset
    /// below which every in-sync replica has the log (`Partition.maybeIncrementLeaderHW`).
    pub(super) hw: Offset,
    /// Whether the high watermark moves by replication only (a replicated partition).
    pub(super) replicated: bool,
    /// The leader epochs of this log: (epoch, first offset written in it), ascending
    /// (Kafka's `LeaderEpochFileCache`).
    pub(super) epochs: Vec<(u32, Offset)>,
    /// Open transactions with records here: transaction → its first offset here. A
    /// transaction whose marker is written but not yet below the high watermark stays here
    /// (Kafka's `ProducerStateManager.unreplicatedTxns` hold back the LSO too).
    pub(super) ongoing: BTreeMap<TxnSerial, Offset>,
    /// Transactions whose marker is in this log at an offset not yet below the HW.
    pub(super) unreplicated: BTreeMap<TxnSerial, Offset>,
    /// Settled transactions with records here whose marker was lost with a log suffix
    /// (unclean election, lost unflushed data): they hold back the LSO for good, as a
    /// hanging transaction does in Kafka.
    pub(super) hanging: BTreeSet<TxnSerial>,
    /// Idempotence state per producer id.
    pub(super) producers: BTreeMap<ProducerId, ProducerState>,
}

impl PartitionLog {
    pub(super) fn last_stable_offset(&self) -> Offset {
        let lso = self.ongoing.values().copied().min().unwrap_or(self.hw);
        let lso = lso.min(self.hw);
        assert!(
            lso <= self.hw && self.hw <= self.log_end,
            "broker bug: LSO {lso}, HW {}, log end {}",
            self.hw,
            self.log_end
        );
        lso
    }

    /// Move the high watermark up to `hw`; transactions whose marker is now below it stop
    /// holding back the LSO (`ProducerStateManager.onHighWatermarkUpdated`). Returns them.
    pub(super) fn advance_hw(&mut self, hw: Offset) -> Vec<TxnSerial> {
        assert!(
            self.hw <= hw && hw <= self.log_end,
            "broker bug: HW from {} to {hw} (log end {})",
            self.hw,
            self.log_end
        );
        self.hw = hw;
        let done: Vec<TxnSerial> = self
            .unreplicated
            .iter()
            .filter(|(_, marker)| **marker < hw)
            .map(|(s, _)| *s)
            .collect();
        for s in &done {
            self.unreplicated.remove(s);
            self.ongoing.remove(s);
        }
        done
    }

    /// The latest leader epoch of this log and its end offset for `epoch`: Kafka's
    /// `LeaderEpochFileCache.endOffsetFor` (the largest epoch <= `epoch`, and the start of
    /// the next epoch, or the log end). `None` when the log knows no epoch <= `epoch`.
    pub(super) fn end_offset_for(&self, epoch: u32) -> Option<(u32, Offset)> {
        let i = self.epochs.partition_point(|(e, _)| *e <= epoch);
        if i == 0 {
            return None;
        }
        let end = self.epochs.get(i).map_or(self.log_end, |(_, start)| *start);
        Some((self.epochs[i - 1].0, end))
    }

    /// Remember that entries from `offset` on are written in leader epoch `epoch`.
    pub(super) fn note_epoch(&mut self, epoch: u32, offset: Offset) {
        match self.epochs.last() {
            Some((e, _)) if *e >= epoch => {}
            _ => self.epochs.push((epoch, offset)),
        }
    }

    /// Index of the first entry with an offset >= `offset`.
    pub(super) fn index_from(&self, offset: Offset) -> usize {
        self.entries.partition_point(|e| e.offset < offset)
    }

    pub(super) fn index_of(&self, offset: Offset) -> Option<usize> {
        let i = self.index_from(offset);
        (i < self.entries.len() && self.entries[i].offset == offset).then_some(i)
    }

    pub(super) fn append(
        &mut self,
        entry: LogEntry,
        txn: Option<TxnSerial>,
        meta: EntryMeta,
        compacted: bool,
    ) {
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
        self.meta.push(meta);
        self.log_end += 1;
        if !self.replicated {
            self.hw = self.log_end;
        }
    }
}

/// Whether `topic` is one of the coordinators' internal topics.
pub fn is_internal(topic: &str) -> bool {
    topic == super::coordinator::TRANSACTION_STATE_TOPIC
        || topic == super::coordinator::OFFSETS_TOPIC
}

#[derive(Clone, Debug)]
pub(super) struct Topic {
    pub(super) config: TopicConfig,
    /// Each log with its state digest, shared by copies of the broker until changed
    /// (the exhaustive search's snapshots and fingerprint, `digest.rs`).
    pub(super) partitions: Vec<Cached<PartitionLog>>,
}

impl Broker {
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
        let partitions = (0..config.partitions).map(|_| Cached::default()).collect();
        self.topics
            .insert(name.to_string(), Topic { config, partitions });
        self.replicate_topic(name);
        Ok(())
    }

    pub fn topic_config(&self, name: &str) -> Option<&TopicConfig> {
        self.topics.get(name).map(|t| &t.config)
    }

    /// Every topic with its configuration, sorted by name; not the coordinators' internal
    /// topics (`__transaction_state`, `__consumer_offsets`), as Kafka's metadata leaves
    /// them out unless asked.
    pub fn topics(&self) -> impl Iterator<Item = (&str, &TopicConfig)> {
        self.topics
            .iter()
            .filter(|(n, _)| !is_internal(n))
            .map(|(n, t)| (n.as_str(), &t.config))
    }

    /// Number of partitions of a topic.
    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).map(|t| t.config.partitions)
    }

    pub(super) fn partition(&self, tp: &TopicPartition) -> Option<&PartitionLog> {
        self.topics
            .get(&tp.topic)?
            .partitions
            .get(tp.partition as usize)
            .map(|log| &**log)
    }

    /// The log of a partition the broker has already validated (a topic is never deleted).
    pub(super) fn partition_mut(&mut self, tp: &TopicPartition) -> (&mut PartitionLog, bool) {
        let topic = self.topics.get_mut(&tp.topic).expect("validated topic");
        let compacted = topic.config.compacted;
        (&mut topic.partitions[tp.partition as usize], compacted)
    }

    pub(super) fn has_partition(&self, tp: &TopicPartition) -> bool {
        self.partition(tp).is_some()
    }

    // ------------------------------------------------------------------ fetch

    pub(super) fn fetch(
        &self,
        client: &ClientId,
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
        self.check_leader(tp, "Fetch", events)?;
        // KIP-207 (`Partition.fetchOffsetForTimestamp`): a new leader tells no end offset
        // below the start of its epoch. Consumers here learn end offsets from fetches
        // (a restoring task reads up to the first high watermark it sees), so a fetch
        // gets that answer until the high watermark has caught up.
        let epoch_start = log.epochs.last().map_or(0, |(_, start)| *start);
        if log.replicated && log.hw < epoch_start {
            let detail = format!("{tp}: HW {} below the epoch start {epoch_start}", log.hw);
            return Err(reject(
                events,
                "Fetch",
                KafkaError::OffsetNotAvailable,
                detail,
            ));
        }
        let high_watermark = log.hw;
        let last_stable_offset = log.last_stable_offset();
        if offset > log.log_end {
            return Err(reject(
                events,
                "Fetch",
                KafkaError::OffsetOutOfRange,
                format!(
                    "offset {offset} is past the log end {} of {tp}",
                    log.log_end
                ),
            ));
        }
        let (records, next_offset) = self.read(log, tp, offset, max_records, isolation);
        events.push(Event::Fetch {
            client: client.clone(),
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

    /// Up to `max_records` data records from `offset` below the isolation's limit (HW or
    /// LSO), skipping control records and, under `read_committed`, aborted ones; with the
    /// offset the next read starts from.
    fn read(
        &self,
        log: &PartitionLog,
        tp: &TopicPartition,
        offset: Offset,
        max_records: usize,
        isolation: Isolation,
    ) -> (Vec<FetchedRecord>, Offset) {
        let limit = match isolation {
            Isolation::ReadUncommitted => log.hw,
            Isolation::ReadCommitted => log.last_stable_offset(),
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
        assert!(
            next_offset <= limit.max(offset),
            "broker bug: a read of {tp} went past its limit"
        );
        (records, next_offset)
    }

    // ------------------------------------------------------------------ inspection

    /// The log of a partition, data and control records (empty for an unknown partition).
    pub fn log(&self, tp: &TopicPartition) -> &[LogEntry] {
        self.partition(tp)
            .map(|l| l.entries.as_slice())
            .unwrap_or(&[])
    }

    /// The high watermark (0 for an unknown partition): the log end on a single broker.
    pub fn high_watermark(&self, tp: &TopicPartition) -> Offset {
        self.partition(tp).map(|l| l.hw).unwrap_or(0)
    }

    /// The log end offset of the partition's leader log (0 for an unknown partition).
    pub fn log_end_offset(&self, tp: &TopicPartition) -> Offset {
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
        // Until its marker lands here, a transaction is still open in this partition.
        let outcome = log.txn[i].map(|s| match log.ongoing.contains_key(&s) {
            true => TxnOutcome::Open,
            false => self.txn_outcomes[s],
        });
        Some((outcome, log.entries[i].control.is_some()))
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
        let keep = survivors(log, outcomes, lso);
        let removed = keep.iter().filter(|k| !**k).count();
        if removed > 0 {
            let end = log.log_end;
            let mut it = keep.iter();
            log.entries
                .retain(|_| *it.next().expect("one flag per entry"));
            let mut it = keep.iter();
            log.txn.retain(|_| *it.next().expect("one flag per entry"));
            let mut it = keep.iter();
            log.meta.retain(|_| *it.next().expect("one flag per entry"));
            assert_eq!(log.log_end, end, "broker bug: compaction moved the log end");
            events.push(Event::Compacted {
                tp: tp.clone(),
                removed,
                below: lso,
            });
        }
        removed
    }
}

/// Which entries of `log` a cleaner run below `lso` keeps (one flag per entry).
fn survivors(log: &PartitionLog, outcomes: &[TxnOutcome], lso: Offset) -> Vec<bool> {
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
    log.entries
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
        .collect()
}
