//! A live history into the run record the simulator produces, for the same checker.
//!
//! The record is rebuilt, not invented:
//!
//! * the partition logs are replayed, record by record in the order the real brokers
//!   appended them, into a simulated [`Broker`] as plain appends; each must land at the
//!   offset it had on the real broker, or the history is refused (a gap is a control
//!   record or a compacted record, which this converter does not rebuild yet);
//! * trace events come from what was recorded: `Append` from the logs (time: the broker's
//!   append time), `Acked` from the order producer, `Process`, `StoreGet`, `StorePut` and
//!   `Assigned` from the applications; times are ms after the workload's time 0, and
//!   events of the same ms keep a fixed order (appends, acknowledgements, assignments,
//!   then processing);
//! * the stores are the instances' final contents;
//! * the outcome is `Quiescent` only when the driver saw every application commit the end
//!   of its inputs and stay there.
//!
//! What the live recorder does not see is declared in [`NOT_RECORDED`]: those invariants
//! are reported as not judged, never as holding.

use super::history::{LiveEvent, LiveHistory, LiveRecord};
use crate::checker::{Invariant, NotJudged, Verdict};
use oversell_sim::protocol::{PartitionProduceResult, ProduceBatch, Record, Request, Response};
use oversell_sim::trace::Peer;
use oversell_sim::{Broker, ChoiceLog, Event, Millis, Outcome, RunResult, TopicConfig};
use oversell_sim::{ClientId, TopicPartition, Trace};
use std::collections::BTreeMap;

/// Invariants a live history cannot be judged on, and why.
pub const NOT_RECORDED: [(Invariant, &str); 4] = [
    (
        Invariant::NoAbortedRead,
        "the live recorder does not see the applications' fetches and their isolation level",
    ),
    (
        Invariant::CommitGeneration,
        "the live recorder sees each group's final committed offsets, not each offset commit \
         with its generation",
    ),
    (
        Invariant::MonotonicCommits,
        "the live recorder sees each group's final committed offsets, not each offset commit",
    ),
    (
        Invariant::EpochFencing,
        "the live recorder does not see producer ids, epochs and transaction ends (the consumer \
         API does not expose them)",
    ),
];

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
    Ack(TopicPartition, u64),
    Event(&'h LiveEvent),
}

impl Item<'_> {
    /// Order among things of the same ms.
    fn rank(&self) -> u8 {
        match self {
            Item::Append(_) => 0,
            Item::Ack(..) => 1,
            Item::Event(e) if e.kind == "assigned" => 2,
            Item::Event(_) => 3,
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
    let mut items = appends(h)?;
    for a in &h.acks {
        items.push((
            h.rel(a.t),
            Item::Ack(TopicPartition::new(a.topic.as_str(), a.partition), a.offset),
        ));
    }
    for e in &h.events {
        items.push((h.rel(e.t), Item::Event(e)));
    }
    items.sort_by_key(|(t, item)| (*t, item.rank())); // stable: a partition keeps its order
    let mut trace = Trace::default();
    let mut end_time = 0;
    for (choice, (time, item)) in items.iter().enumerate() {
        end_time = end_time.max(*time);
        let choice = choice as u64;
        match item {
            Item::Append(r) => replay_append(&mut broker, &mut trace, *time, choice, r)?,
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
        }
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
        healed_at: 0,
    })
}

/// The checker's verdict, with the invariants a live history cannot show taken out:
/// reported as not judged, with the reason.
pub fn live_verdict(mut verdict: Verdict) -> Verdict {
    for (invariant, why) in NOT_RECORDED {
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

/// An application's event as the simulator's trace event.
fn event(e: &LiveEvent) -> Result<Event, Unconvertible> {
    let missing =
        |what: &str| Unconvertible(format!("a {} event of {} without {what}", e.kind, e.client));
    let client = match e.client.split_once('/') {
        Some((instance, app)) if !instance.is_empty() && !app.is_empty() => {
            ClientId::new(instance, app)
        }
        _ => {
            return Err(Unconvertible(format!(
                "a {} event's client {:?} is not instance/application",
                e.kind, e.client
            )))
        }
    };
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
