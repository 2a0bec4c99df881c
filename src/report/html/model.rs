//! What the timeline draws: lanes (per instance, client, partition, group, broker) and
//! their items and spans, built from the trace.

use super::text::natural;
use super::Cited;
use oversell_sim::{ClientId, Event, Millis, Peer, TopicPartition, TraceRecord};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Instance,
    Client,
    Net,
    Partition,
    Group,
    Broker,
}

pub(super) struct Item {
    pub seq: u64,
    pub time: Millis,
    /// CSS classes.
    pub class: String,
    /// Small first line: what happened.
    pub top: String,
    /// Second line: the domain event's type (if any), then what it is about.
    pub kind: String,
    pub main: String,
    /// Violations citing it.
    pub cited: Vec<usize>,
    pub x: u64,
}

pub(super) struct Span {
    pub from: Millis,
    pub to: Millis,
    pub class: &'static str,
    pub label: String,
    pub seq: u64,
}

pub(super) struct Lane {
    pub kind: Kind,
    pub title: String,
    pub sub: String,
    pub items: Vec<Item>,
    pub spans: Vec<Span>,
}

pub(super) struct Col {
    pub t: Millis,
    pub x: u64,
    pub w: u64,
}

pub(super) struct Model {
    pub lanes: Vec<Lane>,
    /// Group headings: (index of the first lane, title).
    pub headings: Vec<(usize, &'static str)>,
    pub key: BTreeMap<String, usize>,
    /// Instance → its client and network lanes (for downtime shading).
    pub instance_lanes: BTreeMap<String, Vec<usize>>,
    pub txn_client: BTreeMap<String, ClientId>,
    pub pid_client: BTreeMap<u64, ClientId>,
    pub cites: BTreeMap<u64, Vec<usize>>,
    pub cols: Vec<Col>,
    pub end: Millis,
    pub end_x: u64,
    pub width: u64,
}

/// Who and what a run involved.
#[derive(Default)]
struct Actors<'r> {
    clients: BTreeSet<ClientId>,
    instances: BTreeSet<String>,
    partitions: BTreeSet<TopicPartition>,
    groups: BTreeSet<String>,
    appended_by: BTreeMap<(&'r TopicPartition, u64), u64>,
    pid_client: BTreeMap<u64, ClientId>,
    /// Transactional id → the client whose `InitProducerId` the broker was handling.
    txn_client: BTreeMap<String, ClientId>,
    /// The client whose request the broker is handling: the broker's events that follow
    /// a request's delivery are its effects.
    requester: Option<ClientId>,
}

impl<'r> Actors<'r> {
    fn collect(records: &'r [TraceRecord]) -> Actors<'r> {
        let mut actors = Actors::default();
        for r in records {
            actors.note(&r.event);
        }
        for c in &actors.clients {
            actors.instances.insert(c.instance.clone());
        }
        actors
    }

    fn note(&mut self, event: &'r Event) {
        match event {
            Event::Append {
                tp,
                offset,
                producer_id,
                ..
            } => {
                self.partitions.insert(tp.clone());
                if let Some(pid) = producer_id {
                    self.appended_by.insert((tp, *offset), *pid);
                }
            }
            Event::ProducerInit {
                transactional_id: Some(t),
                ..
            } => {
                if let Some(c) = &self.requester {
                    self.txn_client.insert(t.clone(), c.clone());
                }
            }
            Event::DuplicateBatch { tp, .. }
            | Event::Marker { tp, .. }
            | Event::Compacted { tp, .. } => {
                self.partitions.insert(tp.clone());
            }
            Event::Rebalance { group, .. }
            | Event::MemberJoined { group, .. }
            | Event::MemberLeft { group, .. }
            | Event::OffsetCommit { group, .. }
            | Event::TxnOffsets { group, .. } => {
                self.groups.insert(group.clone());
            }
            Event::Crash { instance }
            | Event::Restart { instance }
            | Event::Pause { instance, .. }
            | Event::Resume { instance } => {
                self.instances.insert(instance.clone());
            }
            _ => self.note_client(event),
        }
    }

    fn note_client(&mut self, event: &'r Event) {
        match event {
            Event::Deliver { from, to, .. } => {
                for end in [from, to] {
                    if let Some(c) = end.client() {
                        self.clients.insert(c.clone());
                    }
                }
                self.requester = from.client().cloned();
            }
            Event::Acked {
                client,
                tp,
                base_offset,
                ..
            } => {
                self.clients.insert(client.clone());
                if let Some(pid) = self.appended_by.get(&(tp, *base_offset)) {
                    self.pid_client
                        .entry(*pid)
                        .or_insert_with(|| client.clone());
                }
            }
            Event::Fetch { client, .. }
            | Event::Timeout { client, .. }
            | Event::Assigned { client, .. }
            | Event::Restored { client, .. }
            | Event::Process { client, .. }
            | Event::StorePut { client, .. }
            | Event::StoreGet { client, .. }
            | Event::Punctuate { client, .. }
            | Event::ClientError { client, .. } => {
                self.clients.insert(client.clone());
            }
            Event::Note {
                client: Peer::Client(client),
                ..
            } => {
                self.clients.insert(client.clone());
            }
            _ => {}
        }
    }
}

impl Model {
    pub fn build(records: &[TraceRecord], violations: &[Cited], end_time: Millis) -> Model {
        let actors = Actors::collect(records);
        let mut model = Model {
            lanes: Vec::new(),
            headings: Vec::new(),
            key: BTreeMap::new(),
            instance_lanes: BTreeMap::new(),
            txn_client: actors.txn_client.clone(),
            pid_client: actors.pid_client.clone(),
            cites: BTreeMap::new(),
            cols: Vec::new(),
            end: end_time,
            end_x: 0,
            width: 0,
        };
        for (n, v) in violations.iter().enumerate() {
            for s in &v.evidence {
                model.cites.entry(*s).or_default().push(n);
            }
        }
        model.add_service_lanes(&actors);
        model.add_partition_lanes(&actors);
        model.add_group_lanes(&actors);
        model.add_broker_lanes();
        model.place_all(records, end_time);
        model
    }

    /// Per instance a header lane, then per client its lane and its background lane.
    fn add_service_lanes(&mut self, actors: &Actors<'_>) {
        let mut instances: Vec<&String> = actors.instances.iter().collect();
        instances.sort_by_key(|i| natural(i));
        self.headings.push((0, "services"));
        for inst in instances {
            self.add_lane(
                format!("i:{inst}"),
                Kind::Instance,
                inst.clone(),
                "instance".into(),
            );
            let mut mine: Vec<&ClientId> = actors
                .clients
                .iter()
                .filter(|c| c.instance == *inst)
                .collect();
            mine.sort_by_key(|c| natural(&c.to_string()));
            for c in mine {
                let short = c.app.clone();
                let lane = self.add_lane(format!("c:{c}"), Kind::Client, short, inst.clone());
                let net = self.add_lane(
                    format!("n:{c}"),
                    Kind::Net,
                    "background".into(),
                    "network, fetches, timers".into(),
                );
                self.instance_lanes
                    .entry(inst.clone())
                    .or_default()
                    .extend([lane, net]);
            }
        }
    }

    fn add_partition_lanes(&mut self, actors: &Actors<'_>) {
        let mut partitions: Vec<&TopicPartition> = actors.partitions.iter().collect();
        let internal = |t: &str| t.ends_with("-changelog") || t.ends_with("-repartition");
        partitions.sort_by_key(|tp| (internal(&tp.topic), natural(&tp.topic), tp.partition));
        self.headings.push((self.lanes.len(), "partitions"));
        for tp in partitions {
            let title = tp.to_string();
            let sub = match (title.len() > 26, internal(&tp.topic)) {
                (true, _) => "",
                (false, true) => "internal topic",
                (false, false) => "topic",
            };
            self.add_lane(format!("p:{tp}"), Kind::Partition, title, sub.into());
        }
    }

    fn add_group_lanes(&mut self, actors: &Actors<'_>) {
        let mut groups: Vec<&String> = actors.groups.iter().collect();
        groups.sort_by_key(|g| natural(g));
        self.headings.push((self.lanes.len(), "consumer groups"));
        for g in groups {
            self.add_lane(format!("g:{g}"), Kind::Group, g.clone(), "group".into());
        }
    }

    fn add_broker_lanes(&mut self) {
        self.headings.push((self.lanes.len(), "broker and network"));
        self.add_lane(
            "b:broker".into(),
            Kind::Broker,
            "broker".into(),
            "rejections · producers".into(),
        );
        self.add_lane(
            "b:network".into(),
            Kind::Broker,
            "network".into(),
            "faults".into(),
        );
    }

    fn add_lane(&mut self, key: String, kind: Kind, title: String, sub: String) -> usize {
        let n = self.lanes.len();
        self.lanes.push(Lane {
            kind,
            title,
            sub,
            items: Vec::new(),
            spans: Vec::new(),
        });
        self.key.insert(key, n);
        n
    }

    pub fn lane(&self, key: &str) -> usize {
        match self.key.get(key) {
            Some(n) => *n,
            None => self.key["b:broker"],
        }
    }

    pub fn client_lane(&self, client: &dyn std::fmt::Display) -> usize {
        self.lane(&format!("c:{client}"))
    }

    pub fn txn_lane(&self, transactional_id: &str) -> usize {
        match self.txn_client.get(transactional_id) {
            Some(c) => self.client_lane(c),
            None => self.lane("b:broker"),
        }
    }

    pub fn pid_lane(&self, pid: u64) -> usize {
        match self.pid_client.get(&pid) {
            Some(c) => self.client_lane(c),
            None => self.lane("b:broker"),
        }
    }

    pub fn span(&mut self, lane: usize, from: Millis, to: Millis, class: &'static str, seq: u64) {
        self.lanes[lane].spans.push(Span {
            from,
            to,
            class,
            label: String::new(),
            seq,
        });
    }

    /// A span over an instance's header lane (labelled) and all its client lanes.
    pub fn instance_span(
        &mut self,
        instance: &str,
        from: Millis,
        to: Millis,
        class: &'static str,
        seq: u64,
    ) {
        let head = self.lane(&format!("i:{instance}"));
        self.lanes[head].spans.push(Span {
            from,
            to,
            class,
            label: format!("{class} {from}–{to} ms"),
            seq,
        });
        for lane in self
            .instance_lanes
            .get(instance)
            .cloned()
            .unwrap_or_default()
        {
            self.span(lane, from, to, class, seq);
        }
    }
}
