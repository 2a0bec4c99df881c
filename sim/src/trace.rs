//! The trace: every event of a run, structured, serialisable, with a stable hash.
//!
//! Events are produced by the broker (appends, markers, fences, rebalances, commits),
//! by the clients (processing, store writes, application events) and by the scheduler
//! (deliveries, faults). Each is stamped with simulated time and the index of the
//! scheduler choice that caused it, and emitted through `tracing` as it is recorded.

use crate::protocol::{
    ControlType, Generation, Isolation, Millis, Offset, ProducerId, TopicPartition,
};
use crate::protocol::{Epoch, KafkaError};
use serde::{Deserialize, Serialize};

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
    TxnOffsets {
        transactional_id: String,
        group: String,
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
        client: String,
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
    OffsetCommit {
        group: String,
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
    // ----- network and faults (scheduler) -----
    Deliver {
        id: u64,
        from: String,
        to: String,
        what: String,
    },
    Drop {
        id: u64,
        what: String,
    },
    Duplicate {
        id: u64,
        copy: u64,
        what: String,
    },
    Delay {
        id: u64,
        until: Millis,
        what: String,
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
        client: String,
        what: String,
    },
    // ----- clients and applications -----
    /// A client finished (re)joining: the tasks it now owns.
    Assigned {
        client: String,
        generation: Generation,
        tasks: Vec<TopicPartition>,
    },
    /// A store restored from its changelog.
    Restored {
        client: String,
        store: String,
        tp: TopicPartition,
        records: usize,
        upto: Offset,
    },
    /// A record handed to a processor.
    Process {
        client: String,
        tp: TopicPartition,
        offset: Offset,
        key: Option<String>,
        value: Option<String>,
    },
    /// A state store write (becomes a changelog record).
    StorePut {
        client: String,
        store: String,
        key: String,
        value: Option<String>,
    },
    /// A read of a state store, with the value seen.
    StoreGet {
        client: String,
        store: String,
        key: String,
        value: Option<String>,
    },
    Punctuate {
        client: String,
        task: TopicPartition,
        at: Millis,
    },
    /// A client's produce request acknowledged.
    Acked {
        client: String,
        tp: TopicPartition,
        base_offset: Offset,
        count: usize,
    },
    /// A client's own view of an error it handles (fenced, commit failed, ...).
    ClientError {
        client: String,
        what: String,
    },
    /// Free-form application note (a design explaining a decision).
    Note {
        client: String,
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
    pub fn hash(&self) -> u64 {
        let mut h = Fnv64::default();
        for r in &self.records {
            serde_json::to_writer(&mut h, r).expect("trace records serialise");
            h.write(b"\n");
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
