//! The shared history: the committed records of a run, in global append order.

use super::commitment::{Commitment, Fate, Slots};
use super::survival::Survival;
use super::verdict::KernelBug;
use crate::designs::Schema;
use crate::domain::Msg;
use oversell_sim::protocol::{Offset, ProducerId};
use oversell_sim::{ClientId, Event, Millis, RunResult, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// A committed record, in its place in the run.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Trace sequence number of its `Append` event.
    pub seq: u64,
    /// Simulated time of the append.
    pub time: Millis,
    /// The scheduler choice that appended it: records of one produce request share it,
    /// and their order across partitions within the request carries no meaning.
    pub choice: u64,
    pub tp: TopicPartition,
    pub offset: Offset,
    pub key: Option<String>,
    pub value: Option<String>,
    /// The domain event, for records of non-internal topics that decode as one.
    pub msg: Option<Msg>,
}

impl Rec {
    /// `orders-0@3`
    pub fn place(&self) -> String {
        format!("{}@{}", self.tp, self.offset)
    }

    /// `orders-0@3 (t=12ms)`
    pub fn at(&self) -> String {
        format!("{}@{} (t={}ms)", self.tp, self.offset, self.time)
    }

    /// `OrderValidation PASS at order-validations-0@3 (t=12ms)`
    pub fn event_at(&self) -> String {
        match &self.msg {
            Some(m) => format!("{} at {}", super::words::label(m), self.at()),
            None => format!("a record at {}", self.at()),
        }
    }
}

/// The committed history of a run, rebuilt from its trace and final broker.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Committed data records in global append order.
    pub records: Vec<Rec>,
    /// Every appended record, committed or not: partition → offset → (trace seq, producer
    /// id of an idempotent or transactional producer).
    appended: BTreeMap<TopicPartition, Slots<(u64, Option<ProducerId>)>>,
    /// Which records committed, from the logs' markers.
    commitment: Commitment,
    /// Indices into `records`, per partition.
    by_tp: BTreeMap<TopicPartition, Vec<usize>>,
    /// Order → index of its first committed `OrderPlaced`.
    placed: BTreeMap<String, usize>,
    /// Records handed to a processor (`Process` events): partition → application →
    /// offsets; by partition and application first, so that a look-up borrows them.
    processed: BTreeMap<TopicPartition, BTreeMap<String, BTreeSet<Offset>>>,
    /// Producer ids handed out for a transactional id (`ProducerInit` events).
    transactional_pids: BTreeSet<ProducerId>,
    /// Clients acknowledged a write by a transactional producer id (`Acked` → `Append`).
    transactional_clients: BTreeSet<ClientId>,
    /// Which appends are still in the final log.
    survival: Survival,
}

impl History {
    /// The history of a run, every topic read for domain events.
    pub fn from_run(run: &RunResult) -> History {
        History::build(run, |_| false)
    }

    /// The history of a run of a design: domain events are read from every topic but the
    /// schema's internal ones (store changelogs, repartition copies).
    pub fn of(run: &RunResult, schema: &Schema) -> History {
        History::build(run, |topic| schema.is_internal(topic))
    }

    /// Walk the trace's `Append` events in order and keep the committed ones that
    /// survived in the final log (see [`Survival`]).
    fn build(run: &RunResult, internal: impl Fn(&str) -> bool) -> History {
        let survival = Survival::of(run);
        let mut h = History {
            commitment: Commitment::of(run, &survival),
            ..History::default()
        };
        for r in &run.trace.records {
            match &r.event {
                Event::Process {
                    client, tp, offset, ..
                } => {
                    h.processed_insert(&client.app, tp, *offset);
                }
                Event::ProducerInit {
                    transactional_id: Some(_),
                    producer_id,
                    ..
                } => {
                    h.transactional_pids.insert(*producer_id);
                }
                Event::Acked {
                    client,
                    tp,
                    base_offset,
                    ..
                } => {
                    let pid = h.appended_at(tp, *base_offset).and_then(|(_, pid)| pid);
                    if pid.is_some_and(|p| h.transactional_pids.contains(&p)) {
                        h.transactional_clients.insert(client.clone());
                    }
                }
                Event::Append {
                    tp,
                    offset,
                    key,
                    value,
                    producer_id,
                    ..
                } => {
                    let at_tp = match h.appended.get_mut(tp) {
                        Some(at_tp) => at_tp,
                        None => h.appended.entry(tp.clone()).or_default(),
                    };
                    at_tp.set(*offset, (r.seq, *producer_id));
                    let kept = survival.survives(tp, *offset, r.seq);
                    if !kept || !h.commitment.is_committed(tp, *offset) {
                        continue;
                    }
                    let msg = if internal(&tp.topic) {
                        None
                    } else {
                        value.as_deref().and_then(Msg::decode)
                    };
                    h.push(Rec {
                        seq: r.seq,
                        time: r.time,
                        choice: r.choice,
                        tp: tp.clone(),
                        offset: *offset,
                        key: key.clone(),
                        value: value.clone(),
                        msg,
                    });
                }
                _ => {}
            }
        }
        h.survival = survival;
        h
    }

    /// Which appends are still in the final log.
    pub fn survival(&self) -> &Survival {
        &self.survival
    }

    fn processed_insert(&mut self, app: &str, tp: &TopicPartition, offset: Offset) {
        if !self.processed.contains_key(tp) {
            self.processed.insert(tp.clone(), BTreeMap::new());
        }
        let by_app = self.processed.get_mut(tp).expect("just inserted");
        match by_app.get_mut(app) {
            Some(seen) => {
                seen.insert(offset);
            }
            None => {
                by_app.insert(app.to_string(), BTreeSet::from([offset]));
            }
        }
    }

    fn push(&mut self, rec: Rec) {
        let index = self.records.len();
        if let Some(Msg::OrderPlaced { order_id, .. }) = &rec.msg {
            self.placed.entry(order_id.clone()).or_insert(index);
        }
        self.by_tp.entry(rec.tp.clone()).or_default().push(index);
        self.records.push(rec);
    }

    /// Committed domain events, in append order.
    pub fn domain(&self) -> impl Iterator<Item = (&Rec, &Msg)> {
        self.records
            .iter()
            .filter_map(|r| r.msg.as_ref().map(|m| (r, m)))
    }

    /// The first committed `OrderPlaced` of an order.
    pub fn placed(&self, order: &str) -> Option<&Rec> {
        self.placed.get(order).map(|i| &self.records[*i])
    }

    /// Every order with a committed `OrderPlaced`, with its first one.
    pub fn orders(&self) -> impl Iterator<Item = (&str, &Rec)> {
        self.placed
            .iter()
            .map(|(o, i)| (o.as_str(), &self.records[*i]))
    }

    /// Committed records of one partition, in offset order.
    pub fn partition(&self, tp: &TopicPartition) -> impl Iterator<Item = &Rec> {
        self.by_tp
            .get(tp)
            .into_iter()
            .flatten()
            .map(|i| &self.records[*i])
    }

    /// The fold of a changelog partition's committed records: key → its last record
    /// (a tombstone deletes the key).
    pub fn fold_partition(&self, tp: &TopicPartition) -> BTreeMap<&str, &Rec> {
        fold(self.partition(tp))
    }

    /// The fold of a changelog topic, all partitions: key → its last record in append
    /// order (a tombstone deletes the key).
    pub fn fold_topic(&self, topic: &str) -> BTreeMap<&str, &Rec> {
        fold(self.records.iter().filter(|r| r.tp.topic == topic))
    }

    /// Whether a record was appended at all (committed or not): its `Append` seq.
    pub fn was_appended(&self, tp: &TopicPartition, offset: Offset) -> Option<u64> {
        self.appended_at(tp, offset).map(|(seq, _)| seq)
    }

    fn appended_at(
        &self,
        tp: &TopicPartition,
        offset: Offset,
    ) -> Option<(u64, Option<ProducerId>)> {
        self.appended.get(tp)?.get(offset).copied()
    }

    /// How the record at `offset` ended (`None`: nothing was ever appended there).
    pub fn fate(&self, tp: &TopicPartition, offset: Offset) -> Option<Fate> {
        self.commitment.fate(tp, offset)
    }

    /// The trace seq of the marker that settled a transactional record, if any.
    pub fn marker(&self, tp: &TopicPartition, offset: Offset) -> Option<u64> {
        self.commitment.marker(tp, offset)
    }

    /// Whether `application` was handed the record at `offset`.
    pub fn processed_by(&self, application: &str, tp: &TopicPartition, offset: Offset) -> bool {
        self.processed
            .get(tp)
            .and_then(|by_app| by_app.get(application))
            .is_some_and(|seen| seen.contains(&offset))
    }

    /// The applications handed records of `tp`, in name order, with the offsets each
    /// was handed.
    pub fn processed_at(
        &self,
        tp: &TopicPartition,
    ) -> impl Iterator<Item = (&str, &BTreeSet<Offset>)> {
        let apps = self.processed.get(tp).into_iter().flatten();
        apps.map(|(app, offsets)| (app.as_str(), offsets))
    }

    /// Whether a client got a write acknowledged under a transactional id's producer id:
    /// a client of an exactly-once application (from `ProducerInit`, `Append` and
    /// `Acked` events, not from its name).
    pub fn is_transactional_client(&self, client: &ClientId) -> bool {
        self.transactional_clients.contains(client)
    }

    /// Whether `application` was handed any record at all.
    pub fn processed_any(&self, application: &str) -> bool {
        self.processed
            .values()
            .any(|by_app| by_app.get(application).is_some_and(|seen| !seen.is_empty()))
    }

    /// Contradictions between the logs and the broker's own table.
    pub fn kernel_bugs(&self) -> &[KernelBug] {
        self.commitment.kernel_bugs()
    }
}

fn fold<'h>(records: impl Iterator<Item = &'h Rec>) -> BTreeMap<&'h str, &'h Rec> {
    let mut out = BTreeMap::new();
    for r in records {
        let Some(key) = r.key.as_deref() else {
            continue;
        };
        if r.value.is_some() {
            out.insert(key, r);
        } else {
            out.remove(key);
        }
    }
    out
}
