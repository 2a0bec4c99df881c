//! Rebuilding a partition log from a recorded one: the log of a real broker, read from its
//! segment files (`oversell live`), entry by entry at its real offset.
//!
//! A transactional data record joins its producer id's open transaction in the partition
//! (opening one if there is none); a control record (marker) of that producer id settles
//! it, COMMIT or ABORT — Kafka's own per-partition rule (`LocalLog.collectAbortedTransactions`,
//! `ProducerStateManager`: a transaction in a partition runs from its producer's first
//! transactional batch to its next control batch). Nothing else of the broker (groups,
//! the coordinator's transactional ids) is rebuilt: a restored broker answers `log`,
//! `high_watermark`, `last_stable_offset`, `is_committed` and `is_aborted`.

use super::log::{EntryMeta, PartitionLog};
use super::txn::{TxnOutcome, TxnSerial};
use super::Broker;
use crate::protocol::{ControlType, LogEntry, ProducerId};
use crate::TopicPartition;

impl Broker {
    /// Append a recorded entry at its own offset, which must be the partition's log end,
    /// or past it for a compacted topic (the records in between were compacted away).
    pub fn restore(&mut self, tp: &TopicPartition, entry: LogEntry) -> Result<(), String> {
        if !self.has_partition(tp) {
            return Err(format!("{tp}: no such partition"));
        }
        let (log, compacted) = self.partition_mut(tp);
        if entry.offset < log.log_end || (!compacted && entry.offset != log.log_end) {
            return Err(format!(
                "{tp}@{}: the log's end is {} (a restored log is dense and in order)",
                entry.offset, log.log_end
            ));
        }
        log.log_end = entry.offset;
        let pid = entry.producer.map(|(pid, _)| pid);
        let open = pid.and_then(|p| open_txn(log, p));
        match (entry.control, entry.transactional, pid) {
            (Some(control), _, Some(_)) => {
                if let Some(serial) = open {
                    log.ongoing.remove(&serial);
                    self.txn_outcomes[serial] = match control {
                        ControlType::Commit => TxnOutcome::Committed,
                        ControlType::Abort => TxnOutcome::Aborted,
                    };
                }
                let (log, _) = self.partition_mut(tp);
                let meta = EntryMeta {
                    batch: None,
                    marker_of: open,
                    coord: None,
                };
                log.append(entry, None, meta, compacted);
            }
            (None, true, Some(_)) => {
                let serial = open.unwrap_or_else(|| {
                    self.txn_outcomes.push(TxnOutcome::Open);
                    self.txn_outcomes.len() - 1
                });
                let (log, _) = self.partition_mut(tp);
                log.ongoing.entry(serial).or_insert(entry.offset);
                log.append(entry, Some(serial), EntryMeta::default(), compacted);
            }
            (Some(_), _, None) | (None, true, None) => {
                return Err(format!(
                    "{tp}@{}: a transactional record or marker without a producer id",
                    entry.offset
                ));
            }
            (None, false, _) => log.append(entry, None, EntryMeta::default(), compacted),
        }
        Ok(())
    }
}

/// The open transaction of producer `pid` in this partition, if any.
fn open_txn(log: &PartitionLog, pid: ProducerId) -> Option<TxnSerial> {
    log.ongoing.iter().find_map(|(serial, first)| {
        let i = log.index_of(*first)?;
        (log.entries[i].producer.map(|(p, _)| p) == Some(pid)).then_some(*serial)
    })
}
