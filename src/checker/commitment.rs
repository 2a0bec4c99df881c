//! Which records committed, read from the partition logs' transaction markers.
//!
//! A data record written outside a transaction is committed once appended. A
//! transactional record belongs to its producer id's open transaction in that partition,
//! and is settled by the next control record (marker) of the same producer id in the same
//! partition: COMMIT or ABORT. This is Kafka's own rule: the broker indexes aborted
//! transactions by producer id from the ABORT markers (`LocalLog.collectAbortedTransactions`
//! in `core/src/main/scala/kafka/log/LocalLog.scala`), and a `read_committed` consumer
//! skips a producer id's batches until that producer's ABORT marker
//! (`CompletedFetch.nextFetchedRecord`: `containsAbortMarker` removes the producer id from
//! `abortedProducerIds`, `isBatchAborted` skips).
//!
//! The final broker's logs are read first. A record no longer there (removed by
//! compaction) is settled from the log as it was written: the trace's `Append` and
//! `Marker` events, in order. The broker's private transaction table
//! (`Broker::is_committed`, `Broker::is_aborted`) is only a cross-check: where it, the
//! final logs and the written logs disagree, the kernel has a bug, reported as such.

use super::survival::Survival;
use super::verdict::KernelBug;
use oversell_sim::protocol::{ControlType, LogEntry, Offset, ProducerId};
use oversell_sim::{Event, RunResult, TopicPartition};
use std::collections::BTreeMap;

/// How a data record's transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Written outside a transaction, or in one that committed.
    Committed,
    Aborted,
    /// Its transaction had no marker when the run ended.
    Open,
}

impl Fate {
    fn of(control: ControlType) -> Fate {
        match control {
            ControlType::Commit => Fate::Committed,
            ControlType::Abort => Fate::Aborted,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Fate::Committed => "committed",
            Fate::Aborted => "aborted",
            Fate::Open => "open",
        }
    }
}

type At = (TopicPartition, Offset);

/// Values by offset in one partition: offsets run from 0 and are dense, so a vector
/// indexed by offset (a gap is `None`) stands for an ordered map of offsets.
#[derive(Clone, Debug)]
pub struct Slots<T>(Vec<Option<T>>);

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots(Vec::new())
    }
}

impl<T> Slots<T> {
    fn index(offset: Offset) -> usize {
        usize::try_from(offset).expect("an offset fits in memory")
    }

    pub fn get(&self, offset: Offset) -> Option<&T> {
        self.0.get(Self::index(offset))?.as_ref()
    }

    /// Set the value at `offset`, replacing any.
    pub fn set(&mut self, offset: Offset, value: T) {
        let i = Self::index(offset);
        if i >= self.0.len() {
            self.0.resize_with(i + 1, || None);
        }
        self.0[i] = Some(value);
    }

    /// Forget every value at and past `offset`.
    fn truncate(&mut self, offset: Offset) {
        self.0.truncate(Self::index(offset));
    }

    /// The values in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (Offset, &T)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as Offset, v)))
    }
}

/// Every data record's fate, and the marker that settled it.
#[derive(Clone, Debug, Default)]
pub struct Commitment {
    /// partition → offset → fate, and the trace seq of its marker (if the trace shows it);
    /// by partition first, so that a look-up borrows its partition instead of copying it.
    fates: BTreeMap<TopicPartition, Slots<(Fate, Option<u64>)>>,
    bugs: Vec<KernelBug>,
}

impl Commitment {
    /// Read the run's logs: the final ones first, the written ones for what compaction
    /// removed; then cross-check with the broker's own table.
    pub fn of(run: &RunResult, survival: &Survival) -> Commitment {
        let mut written = written_log(run);
        let mut c = Commitment::default();
        for (tp, entries) in final_logs(run) {
            let as_written = written.get(&tp);
            let mut fates = Slots::default();
            for (offset, fate) in settle(entries) {
                let (as_written, marker, seq) = as_written
                    .and_then(|w| w.fates.get(offset))
                    .copied()
                    .unwrap_or((fate, None, None));
                // Compared only where the record written last at this offset is the one
                // the log holds (a replicated log may have lost it, or brought back an
                // older one).
                let same = seq.is_none_or(|seq| survival.survives(&tp, offset, seq));
                if same && as_written != fate {
                    c.bug(
                        &(tp.clone(), offset),
                        format!(
                            "its log's markers say {}, the markers written say {}",
                            fate.word(),
                            as_written.word()
                        ),
                        marker,
                    );
                }
                fates.set(offset, (fate, marker));
            }
            c.fates.insert(tp, fates);
        }
        for (tp, w) in std::mem::take(&mut written) {
            let fates = c.fates.entry(tp).or_default();
            for (offset, (fate, marker, _)) in w.fates.iter() {
                if fates.get(offset).is_none() {
                    fates.set(offset, (*fate, *marker));
                }
            }
        }
        c.cross_check(run);
        c
    }

    /// The fate of the data record at `offset`, if one was ever appended there.
    pub fn fate(&self, tp: &TopicPartition, offset: Offset) -> Option<Fate> {
        self.at(tp, offset).map(|(f, _)| *f)
    }

    /// The trace seq of the marker that settled a transactional record, if any.
    pub fn marker(&self, tp: &TopicPartition, offset: Offset) -> Option<u64> {
        self.at(tp, offset).and_then(|(_, m)| *m)
    }

    fn at(&self, tp: &TopicPartition, offset: Offset) -> Option<&(Fate, Option<u64>)> {
        self.fates.get(tp)?.get(offset)
    }

    pub fn is_committed(&self, tp: &TopicPartition, offset: Offset) -> bool {
        self.fate(tp, offset) == Some(Fate::Committed)
    }

    /// Contradictions found in the record: kernel bugs.
    pub fn kernel_bugs(&self) -> &[KernelBug] {
        &self.bugs
    }

    /// The broker's own transaction table must agree with the markers in its logs.
    fn cross_check(&mut self, run: &RunResult) {
        let mut bugs = Vec::new();
        let fates = self.fates.iter().flat_map(|(tp, o)| {
            let log = run.broker.log(tp);
            o.iter().map(move |(o, f)| (tp, log, o, f))
        });
        for (tp, log, offset, (fate, marker)) in fates {
            let offset = &offset;
            if log.binary_search_by_key(offset, |e| e.offset).is_err() {
                continue; // compacted away: the broker keeps no outcome for it
            }
            let table = match (
                run.broker.is_committed(tp, *offset),
                run.broker.is_aborted(tp, *offset),
            ) {
                (true, false) => Fate::Committed,
                (false, true) => Fate::Aborted,
                (false, false) => Fate::Open,
                (true, true) => panic!("broker bug: {tp}@{offset} both committed and aborted"),
            };
            if table != *fate {
                let why = format!(
                    "the broker's transaction table says {}, but its log's markers say {}",
                    table.word(),
                    fate.word()
                );
                bugs.push(((tp.clone(), *offset), why, *marker));
            }
        }
        for (at, why, marker) in bugs {
            self.bug(&at, why, marker);
        }
    }

    fn bug(&mut self, (tp, offset): &At, why: String, marker: Option<u64>) {
        self.bugs.push(KernelBug {
            explanation: format!("the record at {tp}@{offset}: {why}"),
            evidence: marker.into_iter().collect(),
        });
    }
}

/// The final broker's logs, every partition of every topic.
fn final_logs(run: &RunResult) -> Vec<(TopicPartition, &[LogEntry])> {
    let mut out = Vec::new();
    for (topic, config) in run.broker.topics() {
        for p in 0..config.partitions {
            let tp = TopicPartition::new(topic, p);
            let entries = run.broker.log(&tp);
            out.push((tp, entries));
        }
    }
    out
}

/// Settle one log's data records by its markers, in offset order.
fn settle(entries: &[LogEntry]) -> Vec<(Offset, Fate)> {
    let mut out: Vec<(Offset, Fate)> = Vec::new();
    let mut open: BTreeMap<Option<ProducerId>, Vec<usize>> = BTreeMap::new();
    for e in entries {
        let pid = e.producer.map(|(pid, _)| pid);
        match e.control {
            Some(control) => {
                for i in open.remove(&pid).unwrap_or_default() {
                    out[i] = (out[i].0, Fate::of(control));
                }
            }
            None if e.transactional => {
                open.entry(pid).or_default().push(out.len());
                out.push((e.offset, Fate::Open));
            }
            None => out.push((e.offset, Fate::Committed)),
        }
    }
    out
}

/// One partition's log as written: offset → (fate, marker seq, append seq), and the
/// offsets of each producer id's open transaction.
#[derive(Default)]
struct Written {
    fates: Slots<(Fate, Option<u64>, Option<u64>)>,
    open: BTreeMap<ProducerId, Vec<Offset>>,
}

impl Written {
    /// An append at `offset` (trace seq `seq`); a rewrite of an offset (after a
    /// replicated log lost its suffix) forgets what was written at and past it.
    fn append(&mut self, offset: Offset, seq: u64, txn: Option<ProducerId>) {
        if self.fates.get(offset).is_some() {
            self.fates.truncate(offset);
            for offsets in self.open.values_mut() {
                offsets.retain(|o| *o < offset);
            }
        }
        let fate = match txn {
            Some(pid) => {
                self.open.entry(pid).or_default().push(offset);
                Fate::Open
            }
            None => Fate::Committed,
        };
        self.fates.set(offset, (fate, None, Some(seq)));
    }

    /// A marker of `pid` (trace seq `seq`) settles its open records.
    fn marker(&mut self, pid: ProducerId, control: ControlType, seq: u64) {
        for o in self.open.remove(&pid).unwrap_or_default() {
            let append = self.fates.get(o).and_then(|(_, _, seq)| *seq);
            self.fates.set(o, (Fate::of(control), Some(seq), append));
        }
    }
}

/// The logs as written, from the trace's `Append` and `Marker` events in order, per
/// partition. Each offset's fate comes with the marker's seq and the append's.
fn written_log(run: &RunResult) -> BTreeMap<TopicPartition, Written> {
    let mut logs: BTreeMap<TopicPartition, Written> = BTreeMap::new();
    for r in &run.trace.records {
        match &r.event {
            Event::Append {
                tp,
                offset,
                producer_id,
                transactional,
                ..
            } => {
                let txn = (*producer_id).filter(|_| *transactional);
                written_at(&mut logs, tp).append(*offset, r.seq, txn);
            }
            Event::Marker {
                tp,
                producer_id,
                control,
                ..
            } => written_at(&mut logs, tp).marker(*producer_id, *control, r.seq),
            _ => {}
        }
    }
    logs
}

/// The written log of `tp`, made empty the first time.
fn written_at<'a>(
    logs: &'a mut BTreeMap<TopicPartition, Written>,
    tp: &TopicPartition,
) -> &'a mut Written {
    if !logs.contains_key(tp) {
        logs.insert(tp.clone(), Written::default());
    }
    logs.get_mut(tp).expect("just inserted")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::*;
    use oversell_sim::protocol::Record;

    fn entry(
        offset: Offset,
        pid: Option<ProducerId>,
        txn: bool,
        control: Option<ControlType>,
    ) -> LogEntry {
        LogEntry {
            offset,
            record: Record {
                key: None,
                value: None,
                timestamp: 0,
                headers: Vec::new(),
            },
            producer: pid.map(|p| (p, 0)),
            sequence: None,
            transactional: txn,
            control,
        }
    }

    #[test]
    fn a_marker_settles_the_open_records_of_its_producer_only() {
        let log = [
            entry(0, None, false, None),
            entry(1, Some(1), true, None),
            entry(2, Some(2), true, None),
            entry(3, Some(1), false, Some(ControlType::Commit)),
            entry(4, Some(1), true, None),
            entry(5, Some(2), false, Some(ControlType::Abort)),
            entry(6, Some(3), false, None), // idempotent, not transactional
        ];
        assert_eq!(
            settle(&log),
            vec![
                (0, Fate::Committed),
                (1, Fate::Committed),
                (2, Fate::Aborted),
                (4, Fate::Open),
                (6, Fate::Committed),
            ]
        );
    }

    #[test]
    fn commitment_agrees_with_the_broker_and_survives_compaction() {
        let mut s = Sim::new();
        let committed = s.txn(&[(LEDGER_LOG, 0, "p1", "a".into())], true)[0];
        let aborted = s.txn(&[(LEDGER_LOG, 0, "p1", "b".into())], false)[0];
        let plain = s.put(LEDGER_LOG, 0, "p1", Some("c".into()));
        let run = s.run();
        let c = Commitment::of(&run, &Survival::of(&run));
        assert!(c.kernel_bugs().is_empty(), "{:?}", c.kernel_bugs());
        let at = |o| c.fate(&tp(LEDGER_LOG, 0), o);
        assert_eq!(
            (at(committed), at(aborted), at(plain)),
            (
                Some(Fate::Committed),
                Some(Fate::Aborted),
                Some(Fate::Committed)
            )
        );
        assert_eq!(at(99), None);
        assert!(c.marker(&tp(LEDGER_LOG, 0), aborted).is_some());
        // Compaction removes the aborted and the superseded records; the trace still
        // settles them.
        let mut events = Vec::new();
        assert_eq!(s.broker.compact(&tp(LEDGER_LOG, 0), &mut events), 2);
        let run = s.run();
        let c = Commitment::of(&run, &Survival::of(&run));
        assert!(c.kernel_bugs().is_empty(), "{:?}", c.kernel_bugs());
        let at = |o| c.fate(&tp(LEDGER_LOG, 0), o);
        assert_eq!(
            (at(committed), at(aborted)),
            (Some(Fate::Committed), Some(Fate::Aborted))
        );
    }

    #[test]
    fn logs_that_contradict_each_other_are_a_kernel_bug_not_a_violation() {
        let mut s = Sim::new();
        let o = s.txn(&[("orders", 0, "k", "not an event".into())], true)[0];
        // A forged record of the log as written: an ABORT marker the final log lacks.
        let pid = s.broker.log(&tp("orders", 0))[0]
            .producer
            .expect("transactional")
            .0;
        let mut run = s.run();
        run.trace
            .records
            .retain(|r| !matches!(r.event, Event::Marker { .. }));
        run.trace.push(
            0,
            0,
            Event::Marker {
                tp: tp("orders", 0),
                offset: o + 1,
                producer_id: pid,
                control: ControlType::Abort,
            },
        );
        let verdict = check(&naive(), &run, 1000);
        assert_eq!(verdict.kernel_bugs.len(), 1, "{verdict}");
        assert_eq!(
            verdict.kernel_bugs[0].explanation,
            "the record at orders-0@0: its log's markers say committed, the markers written say aborted"
        );
        assert_eq!(verdict.status(), crate::checker::Status::KernelBug);
        assert!(!verdict.holds());
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert!(verdict
            .to_string()
            .starts_with("KERNEL BUG: the record at orders-0@0"));
    }
}
