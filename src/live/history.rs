//! The history file of a live run: what the real cluster and the real applications did,
//! as recorded (`live/`'s driver and services), in one JSON document.
//!
//! Times are wall-clock milliseconds since the epoch; `t0` is the wall-clock time of the
//! workload's time 0 (when the order producer started its clock). Topic names carry no
//! run prefix. Schema `oversell-live-history/3` (`/2` and `/1` are read too: `/2` has no
//! `coordinator` and no `fetch` events, `/1` no `log` and no `faults` either):
//!
//! * `records`: every record of every topic of the run, read back to the end with a
//!   `read_uncommitted` consumer; `committed` says whether a `read_committed` consumer
//!   read it too; `timestamp` is the broker's append time (`LogAppendTime` on every topic);
//! * `end_offsets`: per topic and partition, the log end offset when it was read back;
//! * `acks`: the order producer's acknowledged writes;
//! * `events`: what each application instance did (`process`, `get`, `put`, `assigned`,
//!   and `fetch`: what a stream thread's consumer returned from a partition in one poll,
//!   with its isolation level);
//! * `stores`: every store's final contents per instance and partition (interactive
//!   queries before the instances closed);
//! * `group_offsets`: each application's committed offsets at the end;
//! * `log`: every entry of every partition as the brokers' segment files hold it
//!   (`live/.../Segments.java`, Kafka's `FileRecords`): offset, producer id, epoch and
//!   sequence, whether transactional, and for a control record its type (`COMMIT`,
//!   `ABORT`);
//! * `faults`: the faults played on real processes, with their wall times;
//! * `coordinator`: the run's entries of the coordinators' own logs, `__consumer_offsets`
//!   and `__transaction_state`, decoded with Kafka's serdes (`live/.../CoordinatorLogs.java`):
//!   offset commits, classic group metadata (generation, members, assignment), the
//!   transaction coordinator's state per transactional id, and the COMMIT/ABORT markers of
//!   transactional offset commits.

pub use super::faults::LiveFault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format tag of a history file.
pub const FORMAT: &str = "oversell-live-history/3";

/// The earlier formats, still read.
pub const FORMAT_2: &str = "oversell-live-history/2";
pub const FORMAT_1: &str = "oversell-live-history/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveHistory {
    pub format: String,
    /// The scenario's name and the file it was read from.
    pub scenario: String,
    pub scenario_path: String,
    pub design: String,
    /// The run's number in its series (0-based), and its topic prefix.
    pub run: u32,
    pub prefix: String,
    /// Kafka's version, as the clients report it.
    pub kafka_version: String,
    pub brokers: u32,
    /// How long after an order is placed it must be decided (the scenario's).
    pub decision_bound_ms: u64,
    /// Wall-clock ms of workload time 0.
    pub t0: u64,
    /// `quiescent`: every application committed the end of its inputs and stayed there;
    /// `time-bound`: that did not happen within the bound.
    pub outcome: String,
    /// Wall-clock ms when the topics were read back.
    pub recorded_at: u64,
    pub records: Vec<LiveRecord>,
    pub end_offsets: BTreeMap<String, BTreeMap<u32, u64>>,
    pub acks: Vec<LiveAck>,
    pub events: Vec<LiveEvent>,
    pub stores: Vec<LiveStores>,
    pub group_offsets: BTreeMap<String, BTreeMap<String, u64>>,
    /// The faults played on real processes, in the order they were played.
    #[serde(default)]
    pub faults: Vec<LiveFault>,
    /// Every partition's entries as on disk (empty in format 1).
    #[serde(default)]
    pub log: Vec<LiveLogEntry>,
    /// The coordinators' logs, decoded (empty before format 3).
    #[serde(default)]
    pub coordinator: Vec<CoordinatorEntry>,
}

/// One entry of a coordinator's log (`__consumer_offsets`, `__transaction_state`) as on
/// disk: a decoded record of the run, or the control record (COMMIT, ABORT) of a
/// transactional offset commit of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorEntry {
    /// `__consumer_offsets` or `__transaction_state`.
    pub log: String,
    pub partition: u32,
    pub offset: u64,
    /// The time the coordinator wrote it.
    pub timestamp: u64,
    /// The batch's producer id and epoch (a transactional offset commit's producer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u16>,
    #[serde(default)]
    pub transactional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<CoordinatorRecord>,
}

/// A coordinator's record, decoded (Kafka's `OffsetCommitKey`/`Value`,
/// `GroupMetadataKey`/`Value`, `TransactionLogKey`/`Value`). A value-less field is a
/// tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum CoordinatorRecord {
    /// An offset commit: no generation and no member (the record has neither).
    OffsetCommit {
        group: String,
        topic: String,
        partition: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit_timestamp: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader_epoch: Option<i32>,
    },
    /// A classic group's stored generation.
    GroupMetadata {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<String>,
        #[serde(default)]
        members: Vec<GroupMember>,
    },
    /// A transactional id's state as the transaction coordinator wrote it.
    Transaction {
        transactional_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        producer_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u16>,
        /// `Empty`, `Ongoing`, `PrepareCommit`, `PrepareAbort`, `CompleteCommit`,
        /// `CompleteAbort`, `Dead`, `PrepareEpochFence`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_update: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        #[serde(default)]
        partitions: Vec<LiveTask>,
    },
    /// A group record of another kind (KIP-848 consumer groups, streams groups), named.
    Other { name: String },
}

/// A member of a classic group's generation, with its assigned partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    #[serde(default)]
    pub assignment: Vec<LiveTask>,
}

/// One entry of a partition's log on disk: a data record (its key and value are in
/// `records`) or a control record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveLogEntry {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// The broker's append time of its batch.
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
    pub transactional: bool,
    /// `COMMIT` or `ABORT` for a control record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub timestamp: u64,
    /// `LogAppendTime` or `CreateTime`.
    pub timestamp_type: String,
    pub committed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveAck {
    pub t: u64,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// One line of an instance's event log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveEvent {
    pub t: u64,
    /// `process`, `get`, `put`, `assigned` or `state` (`value`: `BEFORE -> NOW`).
    pub kind: String,
    /// `<instance>/<application>`, as the simulator names its clients.
    pub client: String,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub partition: Option<u32>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub store: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub tasks: Vec<LiveTask>,
    /// A `fetch`: how many records the poll returned from the partition, from `offset`,
    /// and the position after them (`value`: the consumer's isolation level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTask {
    pub topic: String,
    pub partition: u32,
}

/// One instance's stores at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveStores {
    pub instance: String,
    pub stores: Vec<LiveStore>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveStore {
    pub application: String,
    pub store: String,
    pub partition: u32,
    pub entries: BTreeMap<String, String>,
}

/// What the driver writes (the part of the history it records).
#[derive(Clone, Debug, Deserialize)]
pub struct DriverOut {
    pub kafka_version: String,
    pub t0: u64,
    pub outcome: String,
    pub recorded_at: u64,
    pub records: Vec<LiveRecord>,
    pub end_offsets: BTreeMap<String, BTreeMap<u32, u64>>,
    pub acks: Vec<LiveAck>,
    pub group_offsets: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default)]
    pub log: Vec<LiveLogEntry>,
    #[serde(default)]
    pub coordinator: Vec<CoordinatorEntry>,
}

impl LiveHistory {
    /// Read a history file; a file that is not one is an error in words.
    pub fn read(path: &std::path::Path) -> Result<LiveHistory, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let h: LiveHistory = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: not a live history file ({FORMAT}): {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if ![FORMAT, FORMAT_2, FORMAT_1].contains(&h.format.as_str()) {
            return Err(format!(
                "{}: history format {:?}, this oversell reads {FORMAT:?}",
                path.display(),
                h.format
            ));
        }
        Ok(h)
    }
}
