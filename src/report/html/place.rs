//! Where each trace record goes on the timeline, and how it is labelled.

use super::model::{Item, Kind, Model};
use super::text::{clip, describe, domain_type, offsets};
use oversell_sim::protocol::ControlType;
use oversell_sim::{Event, Millis, Peer, TopicPartition, TraceRecord};
use std::collections::BTreeMap;

/// One record's place: its lane, CSS classes, first line and main text.
struct Placed {
    lane: usize,
    class: &'static str,
    top: String,
    main: String,
}

fn placed(lane: usize, class: &'static str, top: impl Into<String>, main: String) -> Placed {
    Placed {
        lane,
        class,
        top: top.into(),
        main,
    }
}

/// What is still open while the trace is read.
#[derive(Default)]
struct Open {
    /// Transactional appends waiting for their marker: (partition, producer) → items.
    pending: BTreeMap<(TopicPartition, u64), Vec<(usize, usize)>>,
    /// Downtime per instance: since when, and the record that began it.
    down: BTreeMap<String, (Millis, u64)>,
    /// Open transactions per transactional id: lane, since when, the record.
    txn: BTreeMap<String, (usize, Millis, u64)>,
}

impl Model {
    /// Every item and span of the run, in trace order.
    pub(super) fn place_all(&mut self, records: &[TraceRecord], end_time: Millis) {
        let mut open = Open::default();
        for r in records {
            let p = self.place(r, &mut open);
            self.push_item(r, p);
        }
        for (inst, (from, seq)) in open.down {
            self.instance_span(&inst, from, end_time, "down", seq);
        }
        for (_, (lane, from, seq)) in open.txn {
            self.span(lane, from, end_time, "txs op", seq);
        }
        for items in open.pending.into_values() {
            for (lane, item) in items {
                let it = &mut self.lanes[lane].items[item];
                it.class.push_str(" op");
                it.top.push_str(" · open");
            }
        }
    }

    fn place(&mut self, r: &TraceRecord, open: &mut Open) -> Placed {
        match &r.event {
            Event::Append { .. }
            | Event::DuplicateBatch { .. }
            | Event::Marker { .. }
            | Event::Compacted { .. } => self.place_log(&r.event, open),
            Event::Rejected { .. } | Event::ProducerInit { .. } | Event::Fenced { .. } => {
                self.place_producer(&r.event)
            }
            Event::TxnBegin { .. }
            | Event::TxnOffsets { .. }
            | Event::TxnCommit { .. }
            | Event::TxnAbort { .. } => self.place_txn(r, open),
            Event::Rebalance { .. }
            | Event::MemberJoined { .. }
            | Event::MemberLeft { .. }
            | Event::OffsetCommit { .. } => self.place_group(&r.event),
            Event::Fetch { .. }
            | Event::Deliver { .. }
            | Event::Drop { .. }
            | Event::Duplicate { .. }
            | Event::Delay { .. }
            | Event::Timeout { .. }
            | Event::Punctuate { .. } => self.place_network(&r.event),
            Event::Crash { .. }
            | Event::Restart { .. }
            | Event::Pause { .. }
            | Event::Resume { .. } => self.place_instance(r, open),
            Event::Replicated { .. }
            | Event::Truncated { .. }
            | Event::IsrChanged { .. }
            | Event::LeaderElected { .. }
            | Event::BrokerCrashed { .. }
            | Event::BrokerFenced { .. }
            | Event::BrokerRestarted { .. }
            | Event::BrokerPartitioned { .. }
            | Event::PartitionHealed { .. }
            | Event::SlowFollower { .. }
            | Event::HangingTransaction { .. }
            | Event::CoordinatorLoaded { .. }
            | Event::TxnStateLoaded { .. }
            | Event::GroupLoaded { .. } => {
                placed(self.lane("cluster"), "cl", "cluster", r.event.to_string())
            }
            Event::Assigned { .. }
            | Event::Restored { .. }
            | Event::Process { .. }
            | Event::StorePut { .. }
            | Event::StoreGet { .. }
            | Event::Acked { .. }
            | Event::ClientError { .. }
            | Event::Note { .. } => self.place_client(&r.event),
        }
    }

    /// Partition logs: appends, deduplicated batches, markers, compaction.
    fn place_log(&mut self, event: &Event, open: &mut Open) -> Placed {
        match event {
            Event::Append {
                tp,
                offset,
                key,
                value,
                producer_id,
                transactional,
                ..
            } => {
                let lane = self.lane(&format!("p:{tp}"));
                if let (true, Some(pid)) = (*transactional, producer_id) {
                    let item = self.lanes[lane].items.len();
                    open.pending
                        .entry((tp.clone(), *pid))
                        .or_default()
                        .push((lane, item));
                }
                let main = describe(key.as_deref(), value.as_deref());
                if *transactional {
                    placed(lane, "ap tx", format!("append @{offset} · txn"), main)
                } else {
                    placed(lane, "ap", format!("append @{offset}"), main)
                }
            }
            Event::DuplicateBatch {
                tp,
                base_sequence,
                base_offset,
                ..
            } => placed(
                self.lane(&format!("p:{tp}")),
                "dup",
                "retried batch, deduplicated",
                format!("seq {base_sequence} = @{base_offset}"),
            ),
            Event::Marker {
                tp,
                offset,
                producer_id,
                control,
            } => self.place_marker(
                tp,
                *offset,
                *producer_id,
                *control == ControlType::Commit,
                open,
            ),
            Event::Compacted { tp, removed, below } => placed(
                self.lane(&format!("p:{tp}")),
                "cp",
                "log cleaner",
                format!("{removed} removed below @{below}"),
            ),
            _ => unreachable!("dispatched by place"),
        }
    }

    /// A marker, which also settles the transactional appends it ends.
    fn place_marker(
        &mut self,
        tp: &TopicPartition,
        offset: u64,
        producer_id: u64,
        commit: bool,
        open: &mut Open,
    ) -> Placed {
        for (lane, item) in open
            .pending
            .remove(&(tp.clone(), producer_id))
            .unwrap_or_default()
        {
            let it = &mut self.lanes[lane].items[item];
            it.class.push_str(if commit { " cm" } else { " ab" });
            it.top.push_str(if commit {
                " · committed"
            } else {
                " · aborted"
            });
        }
        placed(
            self.lane(&format!("p:{tp}")),
            if commit { "mk cm" } else { "mk ab" },
            format!("marker @{offset}"),
            if commit { "COMMIT" } else { "ABORT" }.into(),
        )
    }

    /// The broker's rejections and producer identities.
    fn place_producer(&self, event: &Event) -> Placed {
        match event {
            Event::Rejected {
                request,
                error,
                detail,
            } => placed(
                self.lane("b:broker"),
                "rj",
                format!("rejected {request}"),
                if detail.is_empty() {
                    format!("{error:?}")
                } else {
                    format!("{error:?}: {detail}")
                },
            ),
            Event::ProducerInit {
                transactional_id,
                producer_id,
                epoch,
            } => placed(
                match transactional_id {
                    Some(t) => self.txn_lane(t),
                    None => self.pid_lane(*producer_id),
                },
                "pi",
                "init producer",
                format!("pid {producer_id} epoch {epoch}"),
            ),
            Event::Fenced {
                transactional_id,
                producer_id,
                fenced_epoch,
            } => placed(
                self.txn_lane(transactional_id),
                "fe",
                format!("fenced {transactional_id}"),
                format!("epoch {fenced_epoch} (pid {producer_id})"),
            ),
            _ => unreachable!("dispatched by place"),
        }
    }

    /// Transactions, drawn as spans from begin to commit or abort.
    fn place_txn(&mut self, r: &TraceRecord, open: &mut Open) -> Placed {
        let mut close = |model: &mut Model, id: &str, class: &'static str| {
            if let Some((l, from, seq)) = open.txn.remove(id) {
                model.span(l, from, r.time, class, seq);
            }
        };
        match &r.event {
            Event::TxnBegin {
                transactional_id,
                producer_id,
                epoch,
            } => {
                let lane = self.txn_lane(transactional_id);
                close(self, transactional_id, "txs");
                open.txn
                    .insert(transactional_id.clone(), (lane, r.time, r.seq));
                let main = format!("pid {producer_id} epoch {epoch}");
                placed(lane, "tb", "txn begin", main)
            }
            Event::TxnOffsets {
                transactional_id,
                group,
                generation,
                offsets: o,
                ..
            } => placed(
                self.txn_lane(transactional_id),
                "to",
                format!("txn offsets {group} g{generation}"),
                offsets(o),
            ),
            Event::TxnCommit {
                transactional_id,
                producer_id,
                epoch,
            } => {
                close(self, transactional_id, "txs cm");
                let main = format!("pid {producer_id} epoch {epoch}");
                placed(self.txn_lane(transactional_id), "tc", "txn commit", main)
            }
            Event::TxnAbort {
                transactional_id,
                reason,
                ..
            } => {
                close(self, transactional_id, "txs ab");
                placed(
                    self.txn_lane(transactional_id),
                    "ta",
                    "txn abort",
                    reason.clone(),
                )
            }
            _ => unreachable!("dispatched by place"),
        }
    }

    /// Consumer groups: membership, rebalances, offset commits.
    fn place_group(&self, event: &Event) -> Placed {
        match event {
            Event::Rebalance {
                group,
                generation,
                assignment,
            } => placed(
                self.lane(&format!("g:{group}")),
                "rb",
                "rebalance",
                format!("generation {generation}, {} members", assignment.len()),
            ),
            Event::MemberJoined { group, member_id } => placed(
                self.lane(&format!("g:{group}")),
                "mj",
                "member joined",
                member_id.clone(),
            ),
            Event::MemberLeft {
                group,
                member_id,
                reason,
            } => placed(
                self.lane(&format!("g:{group}")),
                "ml",
                format!("member left: {reason}"),
                member_id.clone(),
            ),
            Event::OffsetCommit {
                group,
                generation,
                offsets: o,
                transactional,
                ..
            } => placed(
                self.lane(&format!("g:{group}")),
                if *transactional { "oc tx" } else { "oc" },
                format!(
                    "offset commit g{generation}{}",
                    if *transactional { " · txn" } else { "" }
                ),
                offsets(o),
            ),
            _ => unreachable!("dispatched by place"),
        }
    }

    /// Background chatter (messages, fetches, timers, punctuations) and network faults.
    fn place_network(&self, event: &Event) -> Placed {
        match event {
            Event::Fetch {
                client,
                tp,
                from,
                count,
                next,
                ..
            } => placed(
                self.lane(&format!("n:{client}")),
                "nw",
                format!("fetch {tp}"),
                format!("{from}→{next} ({count})"),
            ),
            Event::Deliver { from, to, what, .. } => {
                let (client, top) = if *from == Peer::Broker {
                    (to, "response from broker")
                } else {
                    (from, "request to broker")
                };
                placed(
                    self.lane(&format!("n:{client}")),
                    "nw",
                    top,
                    what.to_string(),
                )
            }
            Event::Drop { what, .. } => placed(
                self.lane("b:network"),
                "nf",
                "message lost",
                what.to_string(),
            ),
            Event::Duplicate { what, .. } => placed(
                self.lane("b:network"),
                "nf",
                "message duplicated",
                what.to_string(),
            ),
            Event::Delay { until, what, .. } => placed(
                self.lane("b:network"),
                "nf",
                format!("delayed until {until} ms"),
                what.to_string(),
            ),
            Event::Timeout { client, what } => placed(
                self.lane(&format!("n:{client}")),
                "tm",
                "timer",
                what.clone(),
            ),
            Event::Punctuate {
                client,
                task,
                at: time,
            } => placed(
                self.lane(&format!("n:{client}")),
                "pu",
                "punctuate",
                format!("{task} at {time} ms"),
            ),
            _ => unreachable!("dispatched by place"),
        }
    }

    /// Crashes, restarts, pauses and resumes, with downtime and pauses as spans.
    fn place_instance(&mut self, r: &TraceRecord, open: &mut Open) -> Placed {
        match &r.event {
            Event::Crash { instance } => {
                open.down.insert(instance.clone(), (r.time, r.seq));
                let lane = self.lane(&format!("i:{instance}"));
                placed(lane, "cr", "fault", "CRASH".into())
            }
            Event::Restart { instance } => {
                if let Some((from, seq)) = open.down.remove(instance) {
                    self.instance_span(instance, from, r.time, "down", seq);
                }
                let lane = self.lane(&format!("i:{instance}"));
                placed(lane, "rs", "restart", "RESTART".into())
            }
            Event::Pause { instance, until } => {
                self.instance_span(instance, r.time, *until, "paused", r.seq);
                let lane = self.lane(&format!("i:{instance}"));
                placed(
                    lane,
                    "pa",
                    format!("fault · until {until} ms"),
                    "PAUSE".into(),
                )
            }
            Event::Resume { instance } => {
                let lane = self.lane(&format!("i:{instance}"));
                placed(lane, "rs", "resume", "RESUME".into())
            }
            _ => unreachable!("dispatched by place"),
        }
    }

    /// What a client did: assignments, restores, processing, store access, acks, notes.
    fn place_client(&self, event: &Event) -> Placed {
        match event {
            Event::Assigned {
                client,
                generation,
                tasks,
            } => placed(
                self.client_lane(client),
                "as",
                format!("assigned g{generation}"),
                if tasks.is_empty() {
                    "no tasks".into()
                } else {
                    let tasks: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
                    tasks.join(", ")
                },
            ),
            Event::Restored {
                client,
                store,
                records,
                upto,
                ..
            } => placed(
                self.client_lane(client),
                "rt",
                format!("restored {store}"),
                format!("{records} records, to @{upto}"),
            ),
            _ => self.place_processing(event),
        }
    }

    fn place_processing(&self, event: &Event) -> Placed {
        match event {
            Event::Process {
                client,
                tp,
                offset,
                key,
                value,
            } => placed(
                self.client_lane(client),
                "pr",
                format!("process {tp}@{offset}"),
                describe(key.as_deref(), value.as_deref()),
            ),
            Event::StorePut {
                client,
                store,
                key,
                value,
            } => placed(
                self.client_lane(client),
                "sp",
                format!("put {store}"),
                describe(Some(key), value.as_deref()),
            ),
            Event::StoreGet {
                client,
                store,
                key,
                value,
            } => placed(
                self.client_lane(client),
                "sg",
                format!("get {store}"),
                describe(Some(key), value.as_deref()),
            ),
            Event::Acked {
                client,
                tp,
                base_offset,
                ..
            } => placed(
                self.client_lane(client),
                "ak",
                "produce acked",
                format!("{tp}@{base_offset}"),
            ),
            Event::ClientError { client, what } => {
                placed(self.client_lane(client), "ce", "error", what.clone())
            }
            Event::Note { client, text } => {
                placed(self.client_lane(client), "nt", "note", text.clone())
            }
            _ => unreachable!("dispatched by place"),
        }
    }

    /// The item of a placed record; a cited one is marked, and moved from a background
    /// lane to its client's lane so that it always shows.
    fn push_item(&mut self, r: &TraceRecord, p: Placed) {
        let cited = self.cites.get(&r.seq).cloned().unwrap_or_default();
        let mut class = p.class.to_string();
        let mut lane = p.lane;
        if !cited.is_empty() {
            class.push_str(" ev");
            if self.lanes[lane].kind == Kind::Net {
                let client = self
                    .key
                    .iter()
                    .find(|(_, n)| **n == lane)
                    .and_then(|(k, _)| k.strip_prefix("n:").map(str::to_string));
                if let Some(c) = client {
                    lane = self.lane(&format!("c:{c}"));
                }
            }
        }
        // A domain event's type is drawn apart (smaller) from what it is about.
        let kind = match &r.event {
            Event::Append { value, .. } | Event::Process { value, .. } => {
                domain_type(value.as_deref())
            }
            _ => None,
        }
        .filter(|k| p.main.starts_with(k.as_str()));
        let main = match &kind {
            Some(k) => p.main[k.len()..].trim_start().to_string(),
            None => p.main,
        };
        self.lanes[lane].items.push(Item {
            seq: r.seq,
            time: r.time,
            class,
            top: clip(&p.top, 80),
            kind: kind.map(|k| clip(&k, 40)).unwrap_or_default(),
            main: clip(&main, 80),
            cited,
            x: 0,
        });
    }
}
