//! `rdkafka::error`: the errors a client returns.

use oversell_sim::protocol::KafkaError as Wire;

/// The broker's error codes, by librdkafka's names (`RDKafkaErrorCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RDKafkaErrorCode {
    UnknownTopicOrPartition,
    OffsetOutOfRange,
    OutOfOrderSequenceNumber,
    DuplicateSequenceNumber,
    ProducerFenced,
    InvalidProducerEpoch,
    InvalidTransactionalState,
    UnknownProducerId,
    IllegalGeneration,
    UnknownMemberId,
    RebalanceInProgress,
    UnstableOffsetCommit,
    CoordinatorLoadInProgress,
    ConcurrentTransactions,
    NotEnoughReplicas,
    NotLeaderForPartition,
    OffsetNotAvailable,
    NotCoordinator,
    /// A local state error (librdkafka's `__STATE`): a call out of order.
    State,
}

impl From<Wire> for RDKafkaErrorCode {
    fn from(e: Wire) -> Self {
        match e {
            Wire::UnknownTopicOrPartition => Self::UnknownTopicOrPartition,
            Wire::OffsetOutOfRange => Self::OffsetOutOfRange,
            Wire::OutOfOrderSequenceNumber => Self::OutOfOrderSequenceNumber,
            Wire::DuplicateSequenceNumber => Self::DuplicateSequenceNumber,
            Wire::ProducerFenced => Self::ProducerFenced,
            Wire::InvalidProducerEpoch => Self::InvalidProducerEpoch,
            Wire::InvalidTxnState => Self::InvalidTransactionalState,
            Wire::UnknownProducerId => Self::UnknownProducerId,
            Wire::IllegalGeneration => Self::IllegalGeneration,
            Wire::UnknownMemberId => Self::UnknownMemberId,
            Wire::RebalanceInProgress => Self::RebalanceInProgress,
            Wire::UnstableOffsetCommit => Self::UnstableOffsetCommit,
            Wire::CoordinatorLoadInProgress => Self::CoordinatorLoadInProgress,
            Wire::ConcurrentTransactions => Self::ConcurrentTransactions,
            Wire::NotEnoughReplicas => Self::NotEnoughReplicas,
            Wire::NotLeaderOrFollower => Self::NotLeaderForPartition,
            Wire::OffsetNotAvailable => Self::OffsetNotAvailable,
            Wire::NotCoordinator => Self::NotCoordinator,
        }
    }
}

/// `rdkafka::error::KafkaError`, the variants this client returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KafkaError {
    /// A setting this client does not support, or a bad value: the setting and why.
    ClientConfig(String),
    /// A record could not be written.
    MessageProduction(RDKafkaErrorCode),
    /// A fetch, join or offset read failed.
    MessageConsumption(RDKafkaErrorCode),
    /// An offset commit was rejected (a stale generation: the member must rejoin).
    ConsumerCommit(RDKafkaErrorCode),
    /// A transactional call failed. `ProducerFenced` is fatal: the producer is unusable.
    Transaction(RDKafkaErrorCode),
    /// `subscribe` with no topic, or `recv` before `subscribe`.
    Subscription(String),
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KafkaError::ClientConfig(why) => write!(f, "client config error: {why}"),
            KafkaError::MessageProduction(c) => write!(f, "message production error: {c:?}"),
            KafkaError::MessageConsumption(c) => write!(f, "message consumption error: {c:?}"),
            KafkaError::ConsumerCommit(c) => write!(f, "consumer commit error: {c:?}"),
            KafkaError::Transaction(c) => write!(f, "transaction error: {c:?}"),
            KafkaError::Subscription(why) => write!(f, "subscription error: {why}"),
        }
    }
}

impl std::error::Error for KafkaError {}

/// `rdkafka::error::KafkaResult`.
pub type KafkaResult<T> = Result<T, KafkaError>;
