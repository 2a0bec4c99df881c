//! Which appended records are still in the final log.
//!
//! On one broker every append stays (compaction aside). On a replicated cluster a
//! partition's log can lose a suffix (an `acks=1` leader that crashed before its followers
//! fetched, an unclean election, a broker that lost its unflushed data), and a later
//! append can take the same offset with another record. An append *survives* when the
//! final log holds an equal record at its offset (the last such append, if several
//! equal ones were written there); an offset below the final log end with no record was
//! compacted away, and its last append survives; an offset at or past the final log end
//! was lost.

use oversell_sim::protocol::{LogEntry, Offset};
use oversell_sim::{Event, RunResult, TopicPartition};
use std::collections::BTreeMap;

type At = (TopicPartition, Offset);

/// Every append of the run, per offset, and which one survived.
#[derive(Clone, Debug, Default)]
pub struct Survival {
    /// One broker: nothing is ever lost, every append survives (and nothing is walked).
    single: bool,
    /// (partition, offset) → every `Append` there in trace order: (seq, equal to the
    /// final record there).
    appends: BTreeMap<At, Vec<(u64, bool)>>,
    survivors: BTreeMap<At, u64>,
}

impl Survival {
    pub fn of(run: &RunResult) -> Survival {
        if run.broker.broker_count() == 1 {
            return Survival {
                single: true,
                ..Survival::default()
            };
        }
        let mut s = Survival::default();
        let mut ends: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
        for r in &run.trace.records {
            let Event::Append { tp, offset, .. } = &r.event else {
                continue;
            };
            let log = run.broker.log(tp);
            let held = log
                .binary_search_by_key(offset, |e| e.offset)
                .ok()
                .map(|i| &log[i]);
            let equal = held.is_some_and(|e| same_record(&r.event, e));
            s.appends
                .entry((tp.clone(), *offset))
                .or_default()
                .push((r.seq, equal));
            ends.entry(tp.clone())
                .or_insert_with(|| run.broker.log_end_offset(tp));
        }
        for ((tp, offset), list) in &s.appends {
            let in_log = run
                .broker
                .log(tp)
                .binary_search_by_key(offset, |e| e.offset)
                .is_ok();
            let survivor = if in_log {
                list.iter().rev().find(|(_, eq)| *eq).map(|(seq, _)| *seq)
            } else if *offset < ends[tp] {
                list.last().map(|(seq, _)| *seq) // compacted away
            } else {
                None // lost with a log suffix
            };
            if let Some(seq) = survivor {
                s.survivors.insert((tp.clone(), *offset), seq);
            }
        }
        s
    }

    /// Whether the `Append` with trace seq `seq` at `tp`@`offset` survived.
    pub fn survives(&self, tp: &TopicPartition, offset: Offset, seq: u64) -> bool {
        self.single || self.survivors.get(&(tp.clone(), offset)) == Some(&seq)
    }

    /// The last append at `tp`@`offset` before trace seq `before`, and whether the final
    /// log still holds it (or an equal record at that offset); `None` on one broker.
    pub fn kept_before(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        before: u64,
    ) -> Option<(u64, bool)> {
        let list = self.appends.get(&(tp.clone(), offset))?;
        let (seq, equal) = list.iter().rev().find(|(seq, _)| *seq < before)?;
        Some((*seq, *equal || self.survives(tp, offset, *seq)))
    }

    /// Whether any appended record was lost or replaced (never on one broker).
    pub fn any_lost(&self) -> bool {
        !self.single
            && self.appends.iter().any(|(at, list)| {
                list.iter()
                    .any(|(seq, _)| self.survivors.get(at) != Some(seq))
            })
    }
}

/// Whether an `Append` event wrote this log entry.
fn same_record(append: &Event, e: &LogEntry) -> bool {
    let Event::Append {
        key,
        value,
        producer_id,
        epoch,
        sequence,
        transactional,
        ..
    } = append
    else {
        return false;
    };
    e.control.is_none()
        && e.record.key == *key
        && e.record.value == *value
        && e.producer == producer_id.zip(*epoch)
        && e.sequence == *sequence
        && e.transactional == *transactional
}
