//! Inner-join drops, proven from a run's recorded events: the one outcome the generated
//! sweeps forgive, and only when the trace shows it.

use oversell::checker::{Invariant::EventualDecision, Violation};
use oversell::domain::Msg;
use oversell::sim::{Event, RunResult};

/// An `eventual-decision` violation of an order that the inner join with the inventory
/// table had to drop, proven from the recorded events alone: when the deciding task (the
/// client and partition that processed the order last) processed it, the product's
/// inventory record had not been processed by that task since it last rebuilt its
/// stores, nor was any record keyed by the product committed to a changelog the task
/// restored. Whatever a design writes in its notes plays no part.
pub fn inner_join_drop(result: &RunResult, v: &Violation) -> bool {
    if v.invariant != EventualDecision {
        return false;
    }
    let records = &result.trace.records;
    let decode = |value: &Option<String>| value.as_deref().and_then(Msg::decode);
    let placed = v
        .evidence
        .first()
        .and_then(|seq| records.iter().find(|r| r.seq == *seq));
    let Some(Event::Append { value, .. }) = placed.map(|r| &r.event) else {
        return false;
    };
    let Some(Msg::OrderPlaced {
        order_id,
        product_id,
        ..
    }) = decode(value)
    else {
        return false;
    };
    // The deciding task: the last processing of the order.
    let Some((order_seq, client, partition)) = records.iter().rev().find_map(|r| match &r.event {
        Event::Process {
            client, tp, value, ..
        } if matches!(decode(value), Some(Msg::OrderPlaced { order_id: o, .. }) if o == order_id) => {
            Some((r.seq, client, tp.partition))
        }
        _ => None,
    }) else {
        return false;
    };
    let before = |r: &&oversell::sim::TraceRecord| r.seq < order_seq;
    // Its last rebuild of the task's stores, and the changelogs it restored then.
    let restored: Vec<(u64, &oversell::sim::TopicPartition, u64)> = records
        .iter()
        .filter(before)
        .filter_map(|r| match &r.event {
            Event::Restored {
                client: c,
                tp,
                upto,
                ..
            } if c == client && tp.partition == partition => Some((r.seq, tp, *upto)),
            _ => None,
        })
        .collect();
    let rebuilt_at = restored.iter().map(|(seq, _, _)| *seq).max().unwrap_or(0);
    let processed_row = records.iter().filter(before).any(|r| match &r.event {
        Event::Process {
            client: c,
            tp,
            value,
            ..
        } => {
            r.seq > rebuilt_at
                && c == client
                && tp.partition == partition
                && matches!(decode(value), Some(Msg::StockAdded { product_id: p, .. }) if p == product_id)
        }
        _ => false,
    });
    let restored_row = restored.iter().any(|(_, tp, upto)| {
        records.iter().any(|r| match &r.event {
            Event::Append {
                tp: t,
                offset,
                key: Some(k),
                ..
            } => t == *tp && offset < upto && *k == product_id && committed(records, r),
            _ => false,
        })
    });
    !processed_row && !restored_row
}

/// Whether an appended record was committed: a plain append is; a transactional one
/// when the next marker its producer wrote to that partition is a commit.
fn committed(records: &[oversell::sim::TraceRecord], append: &oversell::sim::TraceRecord) -> bool {
    let Event::Append {
        tp,
        producer_id,
        transactional,
        ..
    } = &append.event
    else {
        return false;
    };
    if !transactional {
        return true;
    }
    records
        .iter()
        .filter(|r| r.seq > append.seq)
        .find_map(|r| match &r.event {
            Event::Marker {
                tp: t,
                producer_id: p,
                control,
                ..
            } if t == tp && Some(*p) == *producer_id => {
                Some(*control == oversell::sim::protocol::ControlType::Commit)
            }
            _ => None,
        })
        .unwrap_or(false)
}

/// The designs built on Confluent's KStream–KTable inner join with the inventory table,
/// which drops an order whose product has no row yet (as the original does).
pub fn joins_inventory(design: &str) -> bool {
    matches!(design, "rekeyed-alo" | "rekeyed-eos")
}
