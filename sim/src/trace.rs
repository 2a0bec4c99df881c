//! The trace: every event of a run, structured, serialisable, with a stable hash.
//!
//! Events are produced by the broker (appends, markers, fences, rebalances, commits),
//! by the clients (processing, store writes, application events) and by the scheduler
//! (deliveries, faults). Each is stamped with simulated time and the index of the
//! scheduler choice that caused it, and emitted through `tracing` as it is recorded.

use crate::client::ClientId;
use crate::protocol::{
    ControlType, Generation, Isolation, Millis, Offset, ProducerId, TopicPartition,
};
use crate::protocol::{Epoch, KafkaError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

mod json_hash;
mod label;

pub use label::Label;

/// Who did something that is not a broker event: a client, the broker (one end of a
/// message) or the scheduler (a note on how a run ended). Written `broker`, `scheduler`
/// or `instance/app`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Broker,
    Scheduler,
    Client(ClientId),
}

impl Peer {
    /// The client at this end, if it is not the broker.
    pub fn client(&self) -> Option<&ClientId> {
        match self {
            Peer::Broker | Peer::Scheduler => None,
            Peer::Client(c) => Some(c),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Broker => f.write_str("broker"),
            Peer::Scheduler => f.write_str("scheduler"),
            Peer::Client(c) => c.fmt(f),
        }
    }
}

impl Serialize for Peer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Peer::Broker => s.serialize_str("broker"),
            Peer::Scheduler => s.serialize_str("scheduler"),
            Peer::Client(c) => c.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Peer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Peer, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "broker" => return Ok(Peer::Broker),
            "scheduler" => return Ok(Peer::Scheduler),
            _ => {}
        }
        let id = ClientId::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&text))?;
        Ok(Peer::Client(id))
    }
}

/// One traced event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    // ----- broker -----
    /// A data record appended to a partition log.
    Append {
        tp: TopicPartition,
        offset: Offset,
        key: Option<String>,
        value: Option<String>,
        producer_id: Option<ProducerId>,
        epoch: Option<Epoch>,
        sequence: Option<i32>,
        transactional: bool,
    },
    /// A retried idempotent batch recognised and acknowledged without a second append.
    DuplicateBatch {
        tp: TopicPartition,
        producer_id: ProducerId,
        base_sequence: i32,
        base_offset: Offset,
    },
    /// A request rejected by the broker.
    Rejected {
        request: String,
        error: KafkaError,
        detail: String,
    },
    /// A producer id handed out (epoch bumped for a transactional id).
    ProducerInit {
        transactional_id: Option<String>,
        producer_id: ProducerId,
        epoch: Epoch,
    },
    /// The previous epoch of a transactional id is fenced.
    Fenced {
        transactional_id: String,
        producer_id: ProducerId,
        fenced_epoch: Epoch,
    },
    /// First partition added to a new transaction.
    TxnBegin {
        transactional_id: String,
        producer_id: ProducerId,
        epoch: Epoch,
    },
    /// A `TxnOffsetCommit` accepted: offsets added to the open transaction, with who sent
    /// them (the producer's id and epoch, the group member and its generation; an empty
    /// member id is a request without group metadata, before KIP-447).
    TxnOffsets {
        transactional_id: String,
        producer_id: ProducerId,
        epoch: Epoch,
        group: String,
        member_id: String,
        generation: Generation,
        offsets: Vec<(TopicPartition, Offset)>,
    },
    /// A transaction marker written to a partition.
    Marker {
        tp: TopicPartition,
        offset: Offset,
        producer_id: ProducerId,
        control: ControlType,
    },
    TxnCommit {
        transactional_id: String,
        producer_id: ProducerId,
        epoch: Epoch,
    },
    TxnAbort {
        transactional_id: String,
        producer_id: ProducerId,
        epoch: Epoch,
        reason: String,
    },
    Fetch {
        client: ClientId,
        tp: TopicPartition,
        from: Offset,
        count: usize,
        next: Offset,
        isolation: Isolation,
    },
    /// A group finished a rebalance.
    Rebalance {
        group: String,
        generation: Generation,
        assignment: Vec<(String, Vec<TopicPartition>)>,
    },
    MemberJoined {
        group: String,
        member_id: String,
    },
    MemberLeft {
        group: String,
        member_id: String,
        reason: String,
    },
    /// Offsets became a group's committed offsets: an `OffsetCommit` accepted from
    /// `member_id`, or a committed transaction's `TxnOffsetCommit` (`transactional`).
    OffsetCommit {
        group: String,
        member_id: String,
        generation: Generation,
        offsets: Vec<(TopicPartition, Offset)>,
        transactional: bool,
    },
    /// A log-cleaner run on a compacted partition removed `removed` records below `below`
    /// (the LSO at the time); survivors keep their offsets.
    Compacted {
        tp: TopicPartition,
        removed: usize,
        below: Offset,
    },
    // ----- replication and the controller (several brokers only) -----
    /// A follower copied `from..to` of its leader's log.
    Replicated {
        tp: TopicPartition,
        broker: u32,
        from: Offset,
        to: Offset,
    },
    /// A replica's log lost `removed` entries from `to` on: truncated to its new leader's
    /// epoch end offset (KIP-279), or the unflushed suffix lost in a crash.
    Truncated {
        tp: TopicPartition,
        broker: u32,
        to: Offset,
        removed: usize,
    },
    /// The in-sync replicas of a partition changed.
    IsrChanged {
        tp: TopicPartition,
        isr: Vec<u32>,
    },
    /// The controller moved a partition's leadership (`None`: offline), in a new epoch;
    /// `unclean` when the leader was not in the ISR.
    LeaderElected {
        tp: TopicPartition,
        leader: Option<u32>,
        epoch: u32,
        isr: Vec<u32>,
        unclean: bool,
    },
    /// A broker process crashed, losing `lost` unflushed entries over its logs.
    BrokerCrashed {
        broker: u32,
        lost: usize,
    },
    /// The controller fenced a broker (its session expired, or it registered again).
    BrokerFenced {
        broker: u32,
    },
    BrokerRestarted {
        broker: u32,
    },
    /// A network partition cut a broker off from the other brokers and the controller
    /// (`from_brokers`), from the clients (`from_clients`), or both.
    BrokerPartitioned {
        broker: u32,
        from_brokers: bool,
        from_clients: bool,
    },
    /// A broker's network partition healed.
    PartitionHealed {
        broker: u32,
    },
    /// A broker's follower fetches stopped (`slow`) or resumed.
    SlowFollower {
        broker: u32,
        slow: bool,
    },
    /// A new leader's log has records of a completed transaction but lost its marker:
    /// the transaction hangs there, holding back the LSO from `first`.
    HangingTransaction {
        tp: TopicPartition,
        first: Offset,
    },
    /// A new leader of a `__transaction_state` or `__consumer_offsets` partition finished
    /// loading the coordinator state from its log (`transactions` transactional ids and
    /// `groups` groups found there).
    CoordinatorLoaded {
        tp: TopicPartition,
        broker: u32,
        transactions: usize,
        groups: usize,
    },
    /// A new transaction coordinator loaded a transactional id at an older producer id or
    /// epoch than its predecessor had reached: the fences since were in records its log
    /// lost. `acknowledged` when one of those records had been below the high watermark
    /// (its request was answered: a write lost after it was acknowledged).
    TxnStateLoaded {
        transactional_id: String,
        producer_id: ProducerId,
        epoch: Epoch,
        acknowledged: bool,
    },
    /// A new group coordinator loaded a group at an older generation than its predecessor
    /// had reached in memory: the rebalances since were in records its log lost. With
    /// clean elections those records were never below the high watermark, so no
    /// `JoinGroup` or `SyncGroup` of them was answered (Kafka's `CoordinatorRuntime`
    /// answers a write once it is committed and reverts the uncommitted state when it
    /// loses the partition): for the cluster those generations never happened.
    GroupLoaded {
        group: String,
        generation: Generation,
        assignment: Vec<(String, Vec<TopicPartition>)>,
    },
    // ----- network and faults (scheduler) -----
    Deliver {
        id: u64,
        from: Peer,
        to: Peer,
        what: Label,
    },
    Drop {
        id: u64,
        what: Label,
    },
    Duplicate {
        id: u64,
        copy: u64,
        what: Label,
    },
    Delay {
        id: u64,
        until: Millis,
        what: Label,
    },
    Crash {
        instance: String,
    },
    Restart {
        instance: String,
    },
    Pause {
        instance: String,
        until: Millis,
    },
    Resume {
        instance: String,
    },
    /// A timer of a client fired (request timeout, commit interval, punctuation...).
    Timeout {
        client: ClientId,
        what: String,
    },
    // ----- clients and applications -----
    /// A client finished (re)joining: the tasks it now owns.
    Assigned {
        client: ClientId,
        generation: Generation,
        tasks: Vec<TopicPartition>,
    },
    /// A store restored from its changelog.
    Restored {
        client: ClientId,
        store: String,
        tp: TopicPartition,
        records: usize,
        upto: Offset,
    },
    /// A record handed to a processor.
    Process {
        client: ClientId,
        tp: TopicPartition,
        offset: Offset,
        key: Option<String>,
        value: Option<String>,
    },
    /// A state store write (becomes a changelog record).
    StorePut {
        client: ClientId,
        store: String,
        key: String,
        value: Option<String>,
    },
    /// A read of a state store, with the value seen.
    StoreGet {
        client: ClientId,
        store: String,
        key: String,
        value: Option<String>,
    },
    Punctuate {
        client: ClientId,
        task: TopicPartition,
        at: Millis,
    },
    /// A client's produce request acknowledged.
    Acked {
        client: ClientId,
        tp: TopicPartition,
        base_offset: Offset,
        count: usize,
    },
    /// A client's own view of an error it handles (fenced, commit failed, ...).
    ClientError {
        client: ClientId,
        what: String,
    },
    /// Free-form note: a design explaining a decision, or the scheduler saying why a run
    /// ended at a bound.
    Note {
        client: Peer,
        text: String,
    },
}

/// An event with its place in the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Position in the trace.
    pub seq: u64,
    /// Simulated time.
    pub time: Millis,
    /// Index of the scheduler choice during which this event happened.
    pub choice: u64,
    #[serde(flatten)]
    pub event: Event,
}

impl TraceRecord {
    /// This record as `serde_json` writes it, then `\n`: `{"seq":…,"time":…,"choice":…,`
    /// and the event's fields, its internal tag `event` first, as the flattened
    /// `Serialize` writes them.
    fn write_json_line(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        write!(
            out,
            "{{\"seq\":{},\"time\":{},\"choice\":{}",
            self.seq, self.time, self.choice
        )
        .expect("a Vec takes every write");
        let event = out.len();
        serde_json::to_writer(&mut *out, &self.event).expect("trace events serialise");
        assert_eq!(out.get(event), Some(&b'{'), "an event is a JSON object");
        if out.len() - event == 2 {
            out.remove(event); // `{}`: no field to add after the record's own.
        } else {
            out[event] = b',';
        }
        out.push(b'\n');
    }
}

/// The recorded events of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Trace {
    pub records: Vec<TraceRecord>,
}

/// FNV-1a, 64 bit: a hash whose value never depends on the platform or a random key.
#[derive(Clone, Copy)]
pub struct Fnv64(pub u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv64 {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Fnv64::write(self, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Trace {
    pub fn push(&mut self, time: Millis, choice: u64, event: Event) {
        let seq = self.records.len() as u64;
        let rec = TraceRecord {
            seq,
            time,
            choice,
            event,
        };
        if matches!(rec.event, Event::Deliver { .. } | Event::Fetch { .. }) {
            tracing::trace!(target: "oversell::trace", "{time:>6}ms #{choice:<6} {}", rec.event);
        } else {
            tracing::debug!(target: "oversell::trace", "{time:>6}ms #{choice:<6} {}", rec.event);
        }
        self.records.push(rec);
    }

    /// A hash of the whole trace, stable across runs, platforms and processes.
    ///
    /// The FNV-1a of every record's JSON line (`serde_json` of the `TraceRecord`, then
    /// `\n`). Each line's bytes go straight into the hash as they are written, by a
    /// writer of the shapes events are made of (`json_hash`: the same bytes `serde_json`
    /// writes, without its buffer or the `#[serde(flatten)]` detour); a record with a
    /// shape it does not write is hashed through `serde_json` instead, from the hash's
    /// state before that record. `tests::the_hash_is_the_fnv_of_the_records_json_lines`
    /// holds it to the definition.
    pub fn hash(&self) -> u64 {
        let mut h = Fnv64::default();
        let mut line = Vec::new();
        for r in &self.records {
            let before = h;
            if json_hash::hash_record(&mut h, r).is_err() {
                h = before;
                line.clear();
                r.write_json_line(&mut line);
                h.write(&line);
            }
        }
        h.0
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_and_peers_are_written_as_before() {
        let id = ClientId::new("product-service-0", "product-checker");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"product-service-0/product-checker\"");
        assert_eq!(serde_json::from_str::<ClientId>(&json).unwrap(), id);
        let peers = [Peer::Broker, Peer::Scheduler, Peer::Client(id)];
        let json = serde_json::to_string(&peers).unwrap();
        assert_eq!(
            json,
            "[\"broker\",\"scheduler\",\"product-service-0/product-checker\"]"
        );
        assert_eq!(serde_json::from_str::<Vec<Peer>>(&json).unwrap(), peers);
        assert!(serde_json::from_str::<ClientId>("\"no-slash\"").is_err());
    }

    #[test]
    fn an_event_with_a_client_serialises_as_with_a_name() {
        let event = Event::Note {
            client: Peer::Client(ClientId::new("i0", "app")),
            text: "t".into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(json, r#"{"event":"note","client":"i0/app","text":"t"}"#);
    }

    /// What `Trace::hash` was defined as: the FNV-1a of each record serialised whole
    /// (through `#[serde(flatten)]`), then `\n`.
    fn hash_of_json_lines(trace: &Trace) -> u64 {
        let mut h = Fnv64::default();
        for r in &trace.records {
            serde_json::to_writer(&mut h, r).unwrap();
            h.write(b"\n");
        }
        h.0
    }

    #[test]
    fn the_hash_is_the_fnv_of_the_records_json_lines() {
        let id = ClientId::new("order-service-1", "order-app");
        let tp = TopicPartition::new("orders", 3);
        let events = [
            Event::Note {
                client: Peer::Scheduler,
                text: "quote \" and \u{e9}".into(),
            },
            Event::Deliver {
                id: 7,
                from: Peer::Client(id.clone()),
                to: Peer::Broker,
                what: Label::from("Fetch[orders-3@0]").reply(),
            },
            Event::Append {
                tp: tp.clone(),
                offset: 12,
                key: None,
                value: Some("{\"a\":1}".into()),
                producer_id: Some(4),
                epoch: None,
                sequence: Some(0),
                transactional: true,
            },
            Event::Rebalance {
                group: "g".into(),
                generation: 2,
                assignment: vec![("m".into(), vec![tp.clone()])],
            },
            Event::Append {
                tp: tp.clone(),
                offset: 0,
                key: Some("k\\\u{1}\u{1f}\u{7f}\u{8}\u{c}\n\r\t/".into()),
                value: None,
                producer_id: None,
                epoch: Some(3),
                sequence: Some(-1),
                transactional: false,
            },
            Event::Rejected {
                request: "Produce".into(),
                error: KafkaError::OutOfOrderSequenceNumber,
                detail: String::new(),
            },
            Event::Fetch {
                client: id.clone(),
                tp: tp.clone(),
                from: 0,
                count: 0,
                next: u64::MAX,
                isolation: Isolation::ReadCommitted,
            },
            Event::TxnOffsets {
                transactional_id: "t".into(),
                producer_id: 0,
                epoch: 0,
                group: "g".into(),
                member_id: "".into(),
                generation: 0,
                offsets: vec![(tp.clone(), 4), (tp.clone(), 5)],
            },
            Event::Marker {
                tp: tp.clone(),
                offset: 9,
                producer_id: 1,
                control: ControlType::Abort,
            },
            Event::LeaderElected {
                tp: tp.clone(),
                leader: None,
                epoch: 1,
                isr: vec![],
                unclean: true,
            },
            Event::StoreGet {
                client: id.clone(),
                store: "s".into(),
                key: "\u{e9}\"".into(),
                value: None,
            },
            Event::Timeout {
                client: id,
                what: "commit".into(),
            },
        ];
        let mut trace = Trace::default();
        for (i, e) in events.into_iter().enumerate() {
            trace.push(1000 * i as u64, u64::MAX - i as u64, e);
        }
        assert_eq!(trace.hash(), hash_of_json_lines(&trace));
        // Each record went through the direct writer (not its `serde_json` fallback),
        // and wrote exactly `serde_json`'s line.
        for r in &trace.records {
            let mut direct = Fnv64::default();
            assert!(json_hash::hash_record(&mut direct, r).is_ok(), "{r:?}");
            let mut line = Vec::new();
            r.write_json_line(&mut line);
            let mut by_serde = Fnv64::default();
            by_serde.write(&line);
            assert_eq!(direct.0, by_serde.0, "{}", String::from_utf8_lossy(&line));
        }
        let mut line = Vec::new();
        trace.records[0].write_json_line(&mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            serde_json::to_string(&trace.records[0]).unwrap() + "\n"
        );
    }
}
