//! A live history into the run record the simulator produces, for the same checker.
//!
//! The record is rebuilt, not invented:
//!
//! * the partition logs are rebuilt, entry by entry in the order the real brokers
//!   appended them, in a simulated [`Broker`] ([`Broker::restore`]): each data record at
//!   its real offset with its batch's producer id, epoch, sequence and transactional flag,
//!   and each control record (COMMIT/ABORT marker) where it was, all as the segment files
//!   hold them (format 2); what the `read_committed` consumer read must be exactly what
//!   the markers committed, or the history is refused. A format-1 history (no segment
//!   files) is replayed as plain appends, and refused at a gap or an uncommitted record;
//! * trace events come from what was recorded: `Append` from the logs (time: the broker's
//!   append time), `Acked` from the order producer, `Process`, `StoreGet`, `StorePut` and
//!   `Assigned` from the applications; times are ms after the workload's time 0, and
//!   events of the same ms keep a fixed order (appends, acknowledgements, assignments,
//!   then processing);
//! * the faults played on real processes become the simulator's `Crash`, `Restart`,
//!   `Pause` and `Resume` events (a broker's crash and restart, notes), and the last
//!   restart or continuation is when the faults healed;
//! * the stores are the instances' final contents;
//! * the outcome is `Quiescent` only when the driver saw every application commit the end
//!   of its inputs and stay there.
//!
//! What the live recorder does not see is declared in [`NOT_RECORDED`]: those invariants
//! are reported as not judged, never as holding.

use super::coordinator::Coordinators;
use super::history::{
    CoordinatorEntry, LiveEvent, LiveFault, LiveHistory, LiveLogEntry, LiveRecord,
};
use crate::checker::{Invariant, NotJudged, Verdict};
use oversell_sim::protocol::{
    ControlType, Isolation, LogEntry, PartitionProduceResult, ProduceBatch, Record, Request,
    Response,
};
use oversell_sim::trace::Peer;
use oversell_sim::{Broker, ChoiceLog, Event, Millis, Outcome, RunResult, TopicConfig};
use oversell_sim::{ClientId, TopicPartition, Trace};
use std::collections::BTreeMap;

/// Invariants a live history cannot be judged on, and why.
pub const NOT_RECORDED: [(Invariant, &str); 2] = [
    (
        Invariant::CommitGeneration,
        "an offset commit in __consumer_offsets carries its offset and time but not the \
         generation and member of its request (the coordinator checks them and does not write \
         them, under the classic protocol and KIP-848's consumer protocol alike)",
    ),
    (
        Invariant::OwnEndTxn,
        "__transaction_state and the markers show when a transaction ended, not which EndTxn \
         request ended it nor when its producer sent that request",
    ),
];

/// What a history of a format before 3 does not hold either, and why.
pub const NOT_RECORDED_BEFORE_3: [(Invariant, &str); 3] = [
    (
        Invariant::NoAbortedRead,
        "this history (format before 3) has no fetches of the applications' consumers and their \
         isolation level",
    ),
    (
        Invariant::MonotonicCommits,
        "this history (format before 3) has each group's final committed offsets, not each offset \
         commit (__consumer_offsets not decoded)",
    ),
    (
        Invariant::EpochFencing,
        "this history (format before 3) has every batch's producer id and epoch and every marker, \
         but not the transaction coordinator's InitProducerId and fencing decisions \
         (__transaction_state not decoded)",
    ),
];

/// The invariants `h` cannot be judged on, and why.
pub fn not_recorded(h: &LiveHistory) -> Vec<(Invariant, &'static str)> {
    let mut out = NOT_RECORDED.to_vec();
    if h.format != super::history::FORMAT {
        out.extend(NOT_RECORDED_BEFORE_3);
    }
    out.sort_by_key(|(i, _)| Invariant::ALL.iter().position(|x| x == i));
    out
}

/// Why a history could not be rebuilt into a run record.
#[derive(Debug, PartialEq, Eq)]
pub struct Unconvertible(pub String);

impl std::fmt::Display for Unconvertible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One recorded thing, placed in time.
enum Item<'h> {
    Append(&'h LiveRecord),
    /// An entry of a log as on disk, with its record (`None` for a control record).
    Entry(&'h LiveLogEntry, Option<&'h LiveRecord>),
    Ack(TopicPartition, u64),
    Fault(&'h LiveFault),
    Event(&'h LiveEvent),
    /// An entry of a coordinator's log.
    Coordinator(&'h CoordinatorEntry),
}

impl Item<'_> {
    /// Order among things of the same ms.
    fn rank(&self) -> u8 {
        match self {
            Item::Append(_) | Item::Entry(..) => 0,
            Item::Coordinator(_) => 1,
            Item::Ack(..) => 2,
            Item::Fault(_) => 3,
            Item::Event(e) if e.kind == "assigned" => 4,
            Item::Event(_) => 5,
        }
    }
}

/// The run record of a live history.
pub fn to_run(h: &LiveHistory) -> Result<RunResult, Unconvertible> {
    let mut broker = Broker::new();
    for (topic, partitions) in &h.end_offsets {
        let config = TopicConfig {
            partitions: partitions.len() as u32,
            compacted: topic.ends_with("-changelog"),
        };
        broker
            .create_topic(topic, config)
            .map_err(|e| Unconvertible(format!("topic {topic}: {e:?}")))?;
    }
    let items = items(h)?;
    let mut trace = Trace::default();
    let mut end_time = 0;
    let mut coordinators = Coordinators::default();
    for (choice, (time, item)) in items.iter().enumerate() {
        end_time = end_time.max(*time);
        let choice = choice as u64;
        match item {
            Item::Append(r) => replay_append(&mut broker, &mut trace, *time, choice, r)?,
            Item::Entry(e, r) => {
                let event = restore(&mut broker, e, *r)?;
                trace.push(*time, choice, event);
            }
            Item::Ack(tp, offset) => trace.push(
                *time,
                choice,
                Event::Acked {
                    client: ClientId::new(crate::designs::FRONTEND, "producer"),
                    tp: tp.clone(),
                    base_offset: *offset,
                    count: 1,
                },
            ),
            Item::Event(e) => trace.push(*time, choice, event(e)?),
            Item::Fault(f) => trace.push(*time, choice, fault(h, f)?),
            Item::Coordinator(e) => {
                for event in coordinators.events(e)? {
                    trace.push(*time, choice, event);
                }
            }
        }
    }
    if !h.log.is_empty() {
        check_views(h, &broker)?;
    }
    if h.format == super::history::FORMAT {
        coordinators.check_final(h)?;
        check_fetches(h)?;
    }
    Ok(RunResult {
        trace,
        choices: ChoiceLog::default(),
        outcome: match h.outcome.as_str() {
            "quiescent" => Outcome::Quiescent,
            _ => Outcome::TimeBound,
        },
        end_time: end_time.max(h.rel(h.recorded_at)),
        steps: items.len() as u64,
        broker,
        stores: stores(h),
        healed_at: healed_at(h),
        pct: None,
    })
}

/// Everything recorded, placed in time: the logs' entries, the acknowledgements, the
/// applications' events and the faults.
fn items(h: &LiveHistory) -> Result<Vec<(Millis, Item<'_>)>, Unconvertible> {
    let mut items = if h.log.is_empty() {
        appends(h)?
    } else {
        entries(h)?
    };
    for a in &h.acks {
        items.push((
            h.rel(a.t),
            Item::Ack(TopicPartition::new(a.topic.as_str(), a.partition), a.offset),
        ));
    }
    for e in &h.events {
        items.push((h.rel(e.t), Item::Event(e)));
    }
    for f in &h.faults {
        items.push((h.rel(f.t), Item::Fault(f)));
    }
    items.extend(coordinator_entries(h));
    items.sort_by_key(|(t, item)| (*t, item.rank())); // stable: a partition keeps its order
    Ok(items)
}

/// A fault played on a real process as the simulator's trace event: an instance's
/// `Crash`, `Restart`, `Pause` (until its planned end) and `Resume`; a broker's crash and
/// restart, and a skipped fault, as notes (the simulator has no broker processes).
fn fault(h: &LiveHistory, f: &LiveFault) -> Result<Event, Unconvertible> {
    let instance = f.target.clone();
    Ok(match f.kind.as_str() {
        "crash" => Event::Crash { instance },
        "restart" => Event::Restart { instance },
        "pause" => Event::Pause {
            instance,
            until: h.rel(f.until.unwrap_or(f.t)),
        },
        "resume" => Event::Resume { instance },
        "broker-crash" | "broker-restart" => Event::Note {
            client: Peer::Broker,
            text: format!("{} {} ({})", f.target, &f.kind[7..], f.note),
        },
        "skipped" => Event::Note {
            client: Peer::Scheduler,
            text: format!("fault on {} skipped: {}", f.target, f.note),
        },
        other => {
            return Err(Unconvertible(format!(
                "unknown fault kind {other:?} on {}",
                f.target
            )))
        }
    })
}

/// When the last fault healed (a restart, a continuation), ms after time 0; 0 without
/// faults.
fn healed_at(h: &LiveHistory) -> Millis {
    h.faults
        .iter()
        .filter(|f| matches!(f.kind.as_str(), "restart" | "resume" | "broker-restart"))
        .map(|f| h.rel(f.t))
        .max()
        .unwrap_or(0)
}

/// The checker's verdict, with the invariants a live history cannot show taken out:
/// reported as not judged, with the reason.
pub fn live_verdict(mut verdict: Verdict, h: &LiveHistory) -> Verdict {
    for (invariant, why) in not_recorded(h) {
        verdict.violations.retain(|v| v.invariant != invariant);
        verdict.not_judged.retain(|n| n.invariant != invariant);
        verdict.not_judged.push(NotJudged {
            invariant,
            orders: 0,
            reason: format!("not recorded live: {why}"),
        });
    }
    verdict
        .not_judged
        .sort_by_key(|n| Invariant::ALL.iter().position(|i| *i == n.invariant));
    verdict
}

impl LiveHistory {
    /// Wall-clock ms to ms after workload time 0 (earlier is 0).
    fn rel(&self, t: u64) -> Millis {
        t.saturating_sub(self.t0)
    }
}

/// Every record as an append, each partition dense from offset 0 and in offset order,
/// its time never before the previous append of its partition.
fn appends(h: &LiveHistory) -> Result<Vec<(Millis, Item<'_>)>, Unconvertible> {
    let mut by_tp: BTreeMap<(&str, u32), Vec<&LiveRecord>> = BTreeMap::new();
    for r in &h.records {
        by_tp.entry((&r.topic, r.partition)).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((topic, partition), mut records) in by_tp {
        records.sort_by_key(|r| r.offset);
        let mut last = 0;
        for (expected, r) in records.iter().enumerate() {
            let at = format!("{topic}-{partition}@{}", r.offset);
            if r.offset != expected as u64 {
                return Err(Unconvertible(format!(
                    "{topic}-{partition} has no record at offset {expected} (the next is at {}): a \
                     control record or a compacted one, which the converter does not rebuild yet",
                    r.offset
                )));
            }
            if !r.committed {
                return Err(Unconvertible(format!(
                    "{at} was not read by a read_committed consumer: transactional histories are \
                     not converted yet"
                )));
            }
            if r.timestamp_type != "LogAppendTime" {
                return Err(Unconvertible(format!(
                    "{at} has a {} timestamp: the history orders appends by the broker's append time",
                    r.timestamp_type
                )));
            }
            last = h.rel(r.timestamp).max(last);
            out.push((last, Item::Append(r)));
        }
        let end = h
            .end_offsets
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied();
        if end != Some(records.len() as u64) {
            return Err(Unconvertible(format!(
                "{topic}-{partition}: {} records read back, but its end offset is {end:?}",
                records.len()
            )));
        }
    }
    Ok(out)
}

/// Every entry of the logs as on disk (format 2), each with its record: in offset order
/// per partition, its time never before the previous entry's. Each data entry must have
/// the record a `read_uncommitted` consumer read at its offset, and each record an entry;
/// whether `read_committed` read it is checked against the markers in [`to_run`]'s
/// broker afterwards ([`check_views`]).
fn entries(h: &LiveHistory) -> Result<Vec<(Millis, Item<'_>)>, Unconvertible> {
    let mut records: BTreeMap<(&str, u32, u64), &LiveRecord> = BTreeMap::new();
    for r in &h.records {
        records.insert((&r.topic, r.partition, r.offset), r);
    }
    let mut by_tp: BTreeMap<(&str, u32), Vec<&LiveLogEntry>> = BTreeMap::new();
    for e in &h.log {
        by_tp.entry((&e.topic, e.partition)).or_default().push(e);
    }
    let mut out = Vec::new();
    for ((topic, partition), mut log) in by_tp {
        log.sort_by_key(|e| e.offset);
        let end = h.end_offsets.get(topic).and_then(|p| p.get(&partition));
        let on_disk = log.last().map(|e| e.offset + 1);
        if end != on_disk.as_ref() {
            return Err(Unconvertible(format!(
                "{topic}-{partition}: its end offset was {end:?}, its segment files end at {on_disk:?}"
            )));
        }
        let mut last = 0;
        for e in log {
            let record = records.remove(&(topic, partition, e.offset));
            if e.control.is_none() && record.is_none() {
                return Err(Unconvertible(format!(
                    "{topic}-{partition}@{}: a data record on disk that no consumer read back",
                    e.offset
                )));
            }
            last = h.rel(e.timestamp).max(last);
            out.push((last, Item::Entry(e, record)));
        }
    }
    if let Some(((topic, partition, offset), _)) = records.into_iter().next() {
        return Err(Unconvertible(format!(
            "{topic}-{partition}@{offset}: read back by a consumer, but not in the segment files"
        )));
    }
    Ok(out)
}

/// In a history of format 3, every record an application processed was returned by one
/// of its consumer's polls (a `fetch` of the same client whose range holds the offset), or
/// the fetches were not recorded faithfully and the history is refused.
fn check_fetches(h: &LiveHistory) -> Result<(), Unconvertible> {
    // (client, topic, partition) → the offset ranges its polls returned.
    type Ranges = Vec<(u64, u64)>;
    let mut fetched: BTreeMap<(&str, &str, u32), Ranges> = BTreeMap::new();
    for e in h.events.iter().filter(|e| e.kind == "fetch") {
        if let (Some(topic), Some(partition), Some(from), Some(next)) =
            (&e.topic, e.partition, e.offset, e.next)
        {
            let at = fetched.entry((&e.client, topic, partition)).or_default();
            at.push((from, next));
        }
    }
    for e in h.events.iter().filter(|e| e.kind == "process") {
        let (Some(topic), Some(partition), Some(offset)) = (&e.topic, e.partition, e.offset) else {
            continue; // refused in words by `event`
        };
        let ranges = fetched.get(&(e.client.as_str(), topic.as_str(), partition));
        if !ranges.is_some_and(|r| {
            r.iter()
                .any(|(from, next)| (*from..*next).contains(&offset))
        }) {
            return Err(Unconvertible(format!(
                "{} processed {topic}-{partition}@{offset}, which none of its recorded fetches returned",
                e.client
            )));
        }
    }
    Ok(())
}

/// The coordinators' log entries, each partition in offset order, its time never before
/// the previous entry's.
fn coordinator_entries(h: &LiveHistory) -> Vec<(Millis, Item<'_>)> {
    let mut by_log: BTreeMap<(&str, u32), Vec<&CoordinatorEntry>> = BTreeMap::new();
    for e in &h.coordinator {
        by_log.entry((&e.log, e.partition)).or_default().push(e);
    }
    let mut out = Vec::new();
    for (_, mut entries) in by_log {
        entries.sort_by_key(|e| e.offset);
        let mut last = 0;
        for e in entries {
            last = h.rel(e.timestamp).max(last);
            out.push((last, Item::Coordinator(e)));
        }
    }
    out
}

/// Put one entry of a real log into the simulated broker at its offset
/// ([`Broker::restore`]); its trace event (`Append` or `Marker`).
fn restore(
    broker: &mut Broker,
    e: &LiveLogEntry,
    r: Option<&LiveRecord>,
) -> Result<Event, Unconvertible> {
    let tp = TopicPartition::new(e.topic.as_str(), e.partition);
    let control = match e.control.as_deref() {
        None => None,
        Some("COMMIT") => Some(ControlType::Commit),
        Some("ABORT") => Some(ControlType::Abort),
        Some(other) => {
            return Err(Unconvertible(format!(
                "{tp}@{}: unknown control record {other:?}",
                e.offset
            )))
        }
    };
    let producer = e.producer_id.zip(e.epoch);
    let entry = LogEntry {
        offset: e.offset,
        record: Record {
            key: r.and_then(|r| r.key.clone()),
            value: r.and_then(|r| r.value.clone()),
            timestamp: e.timestamp,
            headers: Vec::new(),
        },
        producer,
        sequence: e.sequence,
        transactional: e.transactional,
        control,
    };
    broker
        .restore(&tp, entry)
        .map_err(|why| Unconvertible(format!("rebuilding the log: {why}")))?;
    Ok(match control {
        Some(control) => Event::Marker {
            tp,
            offset: e.offset,
            producer_id: e.producer_id.expect("restore refuses a marker without one"),
            control,
        },
        None => Event::Append {
            tp,
            offset: e.offset,
            key: r.and_then(|r| r.key.clone()),
            value: r.and_then(|r| r.value.clone()),
            producer_id: e.producer_id,
            epoch: e.epoch,
            sequence: e.sequence,
            transactional: e.transactional,
        },
    })
}

/// What a `read_committed` consumer read must be what the markers say committed: a
/// record it read is committed, one it skipped aborted or still open.
fn check_views(h: &LiveHistory, broker: &Broker) -> Result<(), Unconvertible> {
    for r in &h.records {
        let tp = TopicPartition::new(r.topic.as_str(), r.partition);
        let committed = broker.is_committed(&tp, r.offset);
        if committed != r.committed {
            return Err(Unconvertible(format!(
                "{tp}@{}: the read_committed consumer {} it, but the markers on disk say it is {}",
                r.offset,
                if r.committed { "read" } else { "skipped" },
                if committed {
                    "committed"
                } else {
                    "not committed"
                }
            )));
        }
    }
    Ok(())
}

/// Append one live record to the simulated broker, where the real one put it.
fn replay_append(
    broker: &mut Broker,
    trace: &mut Trace,
    time: Millis,
    choice: u64,
    r: &LiveRecord,
) -> Result<(), Unconvertible> {
    let tp = TopicPartition::new(r.topic.as_str(), r.partition);
    let req = Request::Produce {
        producer: None,
        acks: Default::default(),
        batches: vec![ProduceBatch {
            tp: tp.clone(),
            base_sequence: None,
            records: vec![Record {
                key: r.key.clone(),
                value: r.value.clone(),
                timestamp: time,
                headers: Vec::new(),
            }],
        }],
    };
    let mut events = Vec::new();
    let response = broker.handle(time, &ClientId::new("live", "replay"), req, &mut events);
    let landed = match &response {
        Response::Produce(results) => match results.first().map(|(_, r)| r) {
            Some(PartitionProduceResult::Appended { base_offset, .. }) => Some(*base_offset),
            _ => None,
        },
        _ => None,
    };
    if landed != Some(r.offset) {
        return Err(Unconvertible(format!(
            "{tp}@{}: the rebuilt log put it at {landed:?} ({response:?})",
            r.offset
        )));
    }
    for e in events {
        trace.push(time, choice, e);
    }
    Ok(())
}

/// The client an application's event names, `instance/application`.
fn client_of(e: &LiveEvent) -> Result<ClientId, Unconvertible> {
    match e.client.split_once('/') {
        Some((instance, app)) if !instance.is_empty() && !app.is_empty() => {
            Ok(ClientId::new(instance, app))
        }
        _ => Err(Unconvertible(format!(
            "a {} event's client {:?} is not instance/application",
            e.kind, e.client
        ))),
    }
}

/// An application's event as the simulator's trace event.
fn event(e: &LiveEvent) -> Result<Event, Unconvertible> {
    let missing =
        |what: &str| Unconvertible(format!("a {} event of {} without {what}", e.kind, e.client));
    let client = client_of(e)?;
    Ok(match e.kind.as_str() {
        "process" => Event::Process {
            client,
            tp: TopicPartition::new(
                e.topic.clone().ok_or_else(|| missing("topic"))?,
                e.partition.ok_or_else(|| missing("partition"))?,
            ),
            offset: e.offset.ok_or_else(|| missing("offset"))?,
            key: e.key.clone(),
            value: e.value.clone(),
        },
        "get" | "put" => {
            let store = e.store.clone().ok_or_else(|| missing("store"))?;
            let key = e.key.clone().ok_or_else(|| missing("key"))?;
            let value = e.value.clone();
            if e.kind == "get" {
                Event::StoreGet {
                    client,
                    store,
                    key,
                    value,
                }
            } else {
                Event::StorePut {
                    client,
                    store,
                    key,
                    value,
                }
            }
        }
        "state" => Event::Note {
            client: Peer::Client(client),
            text: format!(
                "Kafka Streams state {}",
                e.value.as_deref().ok_or_else(|| missing("value"))?
            ),
        },
        "note" => Event::Note {
            client: Peer::Client(client),
            text: e.value.clone().ok_or_else(|| missing("value"))?,
        },
        "fetch" => fetch_event(e, client)?,
        "assigned" => Event::Assigned {
            client,
            generation: 0,
            tasks: e
                .tasks
                .iter()
                .map(|t| TopicPartition::new(t.topic.as_str(), t.partition))
                .collect(),
        },
        other => {
            return Err(Unconvertible(format!(
                "unknown event kind {other:?} of {}",
                e.client
            )))
        }
    })
}

/// A recorded poll of an application's consumer as the simulator's `Fetch`.
fn fetch_event(e: &LiveEvent, client: ClientId) -> Result<Event, Unconvertible> {
    let missing =
        |what: &str| Unconvertible(format!("a {} event of {} without {what}", e.kind, e.client));
    Ok(Event::Fetch {
        client,
        tp: TopicPartition::new(
            e.topic.clone().ok_or_else(|| missing("topic"))?,
            e.partition.ok_or_else(|| missing("partition"))?,
        ),
        from: e.offset.ok_or_else(|| missing("offset"))?,
        count: e.count.ok_or_else(|| missing("count"))? as usize,
        next: e.next.ok_or_else(|| missing("next"))?,
        isolation: match e.value.as_deref() {
            Some("read_committed") => Isolation::ReadCommitted,
            Some("read_uncommitted") => Isolation::ReadUncommitted,
            other => {
                return Err(Unconvertible(format!(
                    "a fetch of {} with isolation level {other:?}",
                    e.client
                )))
            }
        },
    })
}

/// Instance → (store, partition) → key → value.
fn stores(h: &LiveHistory) -> BTreeMap<String, oversell_sim::world::StoreContents> {
    let mut out: BTreeMap<String, oversell_sim::world::StoreContents> = BTreeMap::new();
    for instance in &h.stores {
        let mine = out.entry(instance.instance.clone()).or_default();
        for s in &instance.stores {
            mine.insert((s.store.clone(), s.partition), s.entries.clone());
        }
    }
    out
}
