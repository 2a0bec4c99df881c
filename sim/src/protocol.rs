//! The wire protocol between clients and the simulated broker.
//!
//! A simplified but faithful subset of Kafka's request/response APIs. Every request
//! is answered by exactly one response; the broker handles a request atomically
//! when the scheduler delivers it. Names follow Kafka's so that a reader who knows
//! the protocol recognises each message.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::Deref;
use std::sync::Arc;

/// Simulated time, in milliseconds since the start of a run.
pub type Millis = u64;
pub type ProducerId = u64;
pub type Epoch = u16;
pub type Offset = u64;
pub type Generation = u32;

/// A topic and a partition number.
///
/// A shared handle: a partition is named in every fetch, record, offset and trace event
/// about it, and a copy is a reference count, not a string. Ordered, compared, hashed and
/// written (`{"topic":..,"partition":..}`) by its fields, as the plain struct it was.
#[derive(Clone)]
pub struct TopicPartition(Arc<Named>);

/// The fields, and the topic's first eight bytes as a big-endian number (zero-padded):
/// two topics whose first eight bytes differ are ordered by it as by their names, so
/// most comparisons in a map keyed by partitions read no string.
struct Named {
    name: TopicPartitionName,
    prefix: u64,
}

fn prefix(topic: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = topic.len().min(8);
    bytes[..n].copy_from_slice(&topic.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

impl Ord for TopicPartition {
    /// By topic, then partition; two copies of one handle without reading them.
    fn cmp(&self, other: &TopicPartition) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        // Topics whose padded first eight bytes differ first differ at a byte below
        // eight, where a shorter topic's padding (0) is below any byte the longer one
        // has that its own bytes do not match: the order of the names.
        match self.0.prefix.cmp(&other.0.prefix) {
            std::cmp::Ordering::Equal => self.0.name.cmp(&other.0.name),
            unequal => unequal,
        }
    }
}

impl PartialOrd for TopicPartition {
    fn partial_cmp(&self, other: &TopicPartition) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for TopicPartition {
    fn eq(&self, other: &TopicPartition) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.prefix == other.0.prefix && self.0.name == other.0.name)
    }
}

impl Eq for TopicPartition {}

impl std::hash::Hash for TopicPartition {
    /// As the fields hash: the same as before the prefix was kept beside them.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

/// The fields of a [`TopicPartition`], read through it (`tp.topic`, `tp.partition`).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename = "TopicPartition")]
pub struct TopicPartitionName {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition::named(TopicPartitionName {
            topic: topic.into(),
            partition,
        })
    }

    fn named(name: TopicPartitionName) -> Self {
        TopicPartition(Arc::new(Named {
            prefix: prefix(&name.topic),
            name,
        }))
    }
}

impl Deref for TopicPartition {
    type Target = TopicPartitionName;
    fn deref(&self) -> &TopicPartitionName {
        &self.0.name
    }
}

impl std::fmt::Debug for TopicPartition {
    /// As the plain struct it was: `TopicPartition { topic: "..", partition: .. }`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicPartition")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish()
    }
}

impl Serialize for TopicPartition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.name.serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopicPartition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TopicPartition, D::Error> {
        TopicPartitionName::deserialize(d).map(TopicPartition::named)
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record as a producer hands it over. `value == None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: Option<String>,
    pub value: Option<String>,
    pub timestamp: Millis,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

/// Marker written by the transaction coordinator at the end of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlType {
    Commit,
    Abort,
}

/// One entry of a partition log: a data record or a control (marker) record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub offset: Offset,
    pub record: Record,
    /// Producer id and epoch of an idempotent or transactional producer.
    pub producer: Option<(ProducerId, Epoch)>,
    /// Sequence number of this record within its producer's partition stream.
    pub sequence: Option<i32>,
    /// Written inside a transaction.
    pub transactional: bool,
    /// `Some` for a transaction marker (a control record, never returned to applications).
    pub control: Option<ControlType>,
}

/// Which records a fetch may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Isolation {
    /// Up to the high watermark, including open and aborted transactional records.
    ReadUncommitted,
    /// Up to the last stable offset; aborted records and control records skipped.
    ReadCommitted,
}

/// A record returned by a fetch, with its offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedRecord {
    pub offset: Offset,
    pub record: Record,
}

/// The producer identity a produce request carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdentity {
    pub producer_id: ProducerId,
    pub epoch: Epoch,
    /// `Some` for a transactional producer.
    pub transactional_id: Option<String>,
}

/// The records sent to one partition in one produce request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceBatch {
    pub tp: TopicPartition,
    /// Sequence of the first record; `None` for a producer without idempotence.
    pub base_sequence: Option<i32>,
    pub records: Vec<Record>,
}

/// A producer's `acks` (Kafka's `ProducerConfig.ACKS_CONFIG`, `requiredAcks` of a
/// `ProduceRequest`): how many replicas must have a batch before the leader answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// `acks=0`: the producer does not wait for any answer (the broker sends none).
    #[serde(rename = "0")]
    Zero,
    /// `acks=1`: the leader answers once the batch is in its own log.
    #[serde(rename = "1")]
    Leader,
    /// `acks=all` (-1), Kafka's default since 3.0: the leader answers once every
    /// in-sync replica has the batch (the high watermark passed it), or
    /// `NOT_ENOUGH_REPLICAS` when the ISR is smaller than `min.insync.replicas`.
    #[default]
    All,
}

impl std::str::FromStr for Acks {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "0" => Ok(Acks::Zero),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("acks {other:?}: expected 0, 1 or all")),
        }
    }
}

impl std::fmt::Display for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Acks::Zero => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

/// A consumer's rebalance protocol (`ConsumerPartitionAssignor.RebalanceProtocol`): under
/// `Eager` a member revokes every partition before it rejoins; under `Cooperative`
/// (KIP-429, Kafka Streams' default since 2.4, `AssignorConfiguration.rebalanceProtocol`)
/// it keeps them, reports them as owned, and gives up only those the new assignment
/// takes away. A group rebalances cooperatively only when every member supports it
/// (`ConsumerCoordinator` picks the protocol common to all members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebalanceProtocol {
    Eager,
    #[default]
    Cooperative,
}

/// Group membership that accompanies an offset commit (KIP-447: consumer group metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMetadata {
    pub group: String,
    pub member_id: String,
    pub generation: Generation,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Obtain a producer id. With a `transactional_id`, bump its epoch, abort the
    /// previous epoch's open transaction and fence the previous producer.
    InitProducerId {
        transactional_id: Option<String>,
        transaction_timeout_ms: Millis,
    },
    /// Append batches. A transactional producer implicitly adds each partition to its
    /// open transaction (beginning one if none is open), as with KIP-890.
    Produce {
        producer: Option<ProducerIdentity>,
        batches: Vec<ProduceBatch>,
        /// The producer's `acks`: when the partition leader answers (see [`Acks`]).
        #[serde(default)]
        acks: Acks,
    },
    /// `sendOffsetsToTransaction`: offsets become committed when the transaction commits.
    TxnOffsetCommit {
        producer: ProducerIdentity,
        group: GroupMetadata,
        offsets: Vec<(TopicPartition, Offset)>,
    },
    /// Commit or abort the open transaction of `producer`. Under transaction protocol v2
    /// the coordinator bumps the epoch and answers with the new one; a retry carries the
    /// epoch before the bump.
    EndTxn {
        producer: ProducerIdentity,
        commit: bool,
    },
    /// One partition, answered at once (`fetch.max.wait.ms` 0): the restore path's
    /// fetch, and the processing loop's with `fetch_max_wait_ms` 0.
    Fetch {
        tp: TopicPartition,
        offset: Offset,
        max_records: usize,
        isolation: Isolation,
    },
    /// A consumer's fetch of every fetchable partition at its position, as Kafka's
    /// consumer sends one per broker node (`AbstractFetch.prepareFetchRequests`). Up to
    /// `max_records` per partition. The broker answers at once when any partition has
    /// something to return or an error, else holds it up to `max_wait_ms`
    /// (`fetch.max.wait.ms`; `ReplicaManager.fetchMessages` → `DelayedFetch`).
    FetchMany {
        partitions: Vec<(TopicPartition, Offset)>,
        max_records: usize,
        isolation: Isolation,
        max_wait_ms: Millis,
    },
    /// Join (or rejoin) a group. `member_id == None` for a new member. The subscription
    /// carries the member's rebalance protocol and, under the cooperative one, the
    /// partitions it still owns (`ConsumerProtocolSubscription.ownedPartitions`, KIP-429).
    JoinGroup {
        group: String,
        member_id: Option<String>,
        topics: Vec<String>,
        session_timeout_ms: Millis,
        rebalance_timeout_ms: Millis,
        protocol: RebalanceProtocol,
        owned: Vec<TopicPartition>,
    },
    Heartbeat {
        group: String,
        member_id: String,
        generation: Generation,
    },
    LeaveGroup {
        group: String,
        member_id: String,
    },
    OffsetCommit {
        group: GroupMetadata,
        offsets: Vec<(TopicPartition, Offset)>,
    },
    /// Committed offsets of a group. With `require_stable` (KIP-447), a partition with
    /// a pending transactional offset commit answers `UnstableOffsetCommit`.
    OffsetFetch {
        group: String,
        partitions: Vec<TopicPartition>,
        require_stable: bool,
    },
}

/// Errors, with Kafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KafkaError {
    UnknownTopicOrPartition,
    OffsetOutOfRange,
    OutOfOrderSequenceNumber,
    /// A retried batch: already appended. Reported as success with the original offset.
    DuplicateSequenceNumber,
    ProducerFenced,
    InvalidProducerEpoch,
    InvalidTxnState,
    UnknownProducerId,
    IllegalGeneration,
    UnknownMemberId,
    RebalanceInProgress,
    UnstableOffsetCommit,
    CoordinatorLoadInProgress,
    /// The transaction coordinator is writing the markers of the previous transaction
    /// (`PrepareCommit` / `PrepareAbort`): retry after `retry.backoff.ms`.
    ConcurrentTransactions,
    /// Kafka's answer to a transactional `Produce` whose verification with the coordinator
    /// failed with a retriable error such as `CONCURRENT_TRANSACTIONS`
    /// (`ReplicaManager.handleProduceAppend`): the producer retries the batch as it was.
    NotEnoughReplicas,
    /// The partition has no live leader, or this broker is not it
    /// (`NOT_LEADER_OR_FOLLOWER`): the client refreshes its metadata and retries.
    NotLeaderOrFollower,
    /// A new leader whose high watermark has not yet reached the start of its epoch does
    /// not tell end offsets (`OFFSET_NOT_AVAILABLE`, KIP-207): retry.
    OffsetNotAvailable,
    /// The broker asked is not the coordinator of this transactional id or group, or the
    /// coordinator's partition has no live leader (`NOT_COORDINATOR`,
    /// `COORDINATOR_NOT_AVAILABLE`): the client looks the coordinator up again and retries
    /// (`TransactionManager.lookupCoordinator`, `AbstractCoordinator.markCoordinatorUnknown`).
    NotCoordinator,
}

impl KafkaError {
    /// `NOT_COORDINATOR` or `COORDINATOR_LOAD_IN_PROGRESS`: the coordinator moved or is
    /// loading; a client finds it again and retries.
    pub fn coordinator_unavailable(self) -> bool {
        matches!(
            self,
            KafkaError::NotCoordinator | KafkaError::CoordinatorLoadInProgress
        )
    }

    /// Whether a client retries the request as it was after `retry.backoff.ms` (Kafka's
    /// `RetriableException` subclasses among these errors).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            KafkaError::ConcurrentTransactions
                | KafkaError::NotEnoughReplicas
                | KafkaError::NotLeaderOrFollower
                | KafkaError::OffsetNotAvailable
                | KafkaError::CoordinatorLoadInProgress
                | KafkaError::NotCoordinator
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionProduceResult {
    /// Appended (or recognised as a duplicate of an appended batch) at `base_offset`.
    Appended {
        base_offset: Offset,
        duplicate: bool,
    },
    Error(KafkaError),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// `ConcurrentTransactions` while the previous transaction's markers are being written,
    /// or after this request aborted an ongoing transaction (the retry bumps the epoch).
    InitProducerId(Result<(ProducerId, Epoch), KafkaError>),
    Produce(Vec<(TopicPartition, PartitionProduceResult)>),
    TxnOffsetCommit(Result<(), KafkaError>),
    /// `Ok(Some((producer_id, epoch)))` under transaction protocol v2 (KIP-890 part 2,
    /// `EndTxnResponse` v5+): the producer id and epoch the producer must use from now on;
    /// `Ok(None)` under v1, where the epoch does not change (Kafka sends -1 there).
    EndTxn(Result<Option<(ProducerId, Epoch)>, KafkaError>),
    Fetch {
        tp: TopicPartition,
        result: Result<FetchData, KafkaError>,
    },
    /// The answer to a [`Request::FetchMany`]: one result per partition asked, in the
    /// request's order.
    FetchMany(Vec<FetchResult>),
    JoinGroup(Result<JoinOutcome, KafkaError>),
    Heartbeat(Result<(), KafkaError>),
    LeaveGroup(Result<(), KafkaError>),
    OffsetCommit(Result<(), KafkaError>),
    OffsetFetch(Result<Vec<(TopicPartition, Option<Offset>)>, KafkaError>),
}

/// One partition's part of a [`Response::FetchMany`]: the offset it was fetched from
/// (the consumer drops data fetched from an offset that is no longer its position,
/// `FetchCollector.initialize`) and what the broker read there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResult {
    pub tp: TopicPartition,
    pub offset: Offset,
    pub result: Result<FetchData, KafkaError>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchData {
    pub records: Vec<FetchedRecord>,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    /// Offset the next fetch should start from (past skipped aborted and control records).
    pub next_offset: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinOutcome {
    /// The rebalance is still waiting for other members; join again after a backoff,
    /// with this member id.
    Pending { member_id: String },
    /// The rebalance completed: this member's generation and assignment.
    Joined {
        member_id: String,
        generation: Generation,
        assignment: Vec<TopicPartition>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partitions order, compare and hash as their fields do, whatever their topics'
    /// first eight bytes share.
    #[test]
    fn partitions_order_as_their_names() {
        let topics = [
            "",
            "a",
            "ab",
            "ab\0",
            "ab\0x",
            "order",
            "orders",
            "order-replies",
            "order-outcomes",
            "order-service-order-state-changelog",
            "order-service-order-state-changelog2",
            "product-commands",
            "__consumer_offsets",
            "__transaction_state",
            "\u{e9}t\u{e9}",
            "zzzzzzzzz",
            "zzzzzzzz",
            "zzzzzzz",
        ];
        let tps: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|t| [0, 1, 10].map(|p| TopicPartition::new(*t, p)))
            .collect();
        let hash = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            x(&mut h);
            std::hash::Hasher::finish(&h)
        };
        for a in &tps {
            for b in &tps {
                let (na, nb): (&TopicPartitionName, &TopicPartitionName) = (a, b);
                assert_eq!(a.cmp(b), na.cmp(nb), "{a} against {b}");
                assert_eq!(a == b, na == nb, "{a} against {b}");
                let copy = TopicPartition::new(a.topic.clone(), a.partition);
                assert_eq!(copy.cmp(a), std::cmp::Ordering::Equal);
            }
            assert_eq!(
                hash(&|h| std::hash::Hash::hash(a, h)),
                hash(&|h| std::hash::Hash::hash(&**a, h))
            );
        }
    }
}
