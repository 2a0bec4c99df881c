//! `rdkafka::error`: the errors a client returns, by `rdkafka`'s names (rust-rdkafka
//! `src/error.rs`, `rdkafka-sys/src/types.rs`; madsim-rdkafka `src/std/error.rs`).

use oversell_sim::protocol::KafkaError as Wire;

/// The broker's error codes, by librdkafka's names and numbers (`RDKafkaErrorCode`:
/// Kafka's protocol error codes, librdkafka's local errors negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
#[repr(i32)]
pub enum RDKafkaErrorCode {
    /// A local state error (librdkafka's `__STATE`): a call out of order.
    State = -172,
    /// A call this client does not implement (`__NOT_IMPLEMENTED`).
    NotImplemented = -170,
    /// A conflicting call is in progress (`__CONFLICT`).
    Conflict = -173,
    OffsetOutOfRange = 1,
    UnknownTopicOrPartition = 3,
    NotLeaderForPartition = 6,
    RequestTimedOut = 7,
    CoordinatorLoadInProgress = 14,
    NotCoordinator = 16,
    NotEnoughReplicas = 19,
    IllegalGeneration = 22,
    UnknownMemberId = 25,
    RebalanceInProgress = 27,
    OutOfOrderSequenceNumber = 45,
    DuplicateSequenceNumber = 46,
    InvalidProducerEpoch = 47,
    InvalidTransactionalState = 48,
    ConcurrentTransactions = 51,
    UnknownProducerId = 59,
    OffsetNotAvailable = 78,
    UnstableOffsetCommit = 88,
    ProducerFenced = 90,
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

impl std::fmt::Display for RDKafkaErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?} ({})", *self as i32)
    }
}

/// `rdkafka::error::RDKafkaError`: a transactional call's error with librdkafka's
/// classification (`rd_kafka_error_is_fatal`, `_is_retriable`, `_txn_requires_abort`).
/// Here fencing (`ProducerFenced`, `InvalidProducerEpoch`) is fatal, as in
/// `TransactionManager` (Kafka's producer), a coordinator that is moving or loading and
/// `ConcurrentTransactions` are retriable, and any other broker error inside a
/// transaction requires an abort.
#[derive(Clone, PartialEq, Eq)]
pub struct RDKafkaError {
    code: RDKafkaErrorCode,
    message: String,
}

impl RDKafkaError {
    pub(crate) fn new(code: RDKafkaErrorCode, message: impl Into<String>) -> RDKafkaError {
        RDKafkaError {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> RDKafkaErrorCode {
        self.code
    }

    /// The code's name, librdkafka-style (`ERR_PRODUCER_FENCED`).
    pub fn name(&self) -> String {
        let mut name = String::from("ERR_");
        for (i, c) in format!("{:?}", self.code).chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
        }
        name
    }

    pub fn string(&self) -> String {
        self.message.clone()
    }

    pub fn is_fatal(&self) -> bool {
        matches!(
            self.code,
            RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
        )
    }

    pub fn is_retriable(&self) -> bool {
        matches!(
            self.code,
            RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::ConcurrentTransactions
                | RDKafkaErrorCode::RequestTimedOut
        )
    }

    pub fn txn_requires_abort(&self) -> bool {
        !self.is_fatal()
            && !self.is_retriable()
            && !matches!(
                self.code,
                RDKafkaErrorCode::State
                    | RDKafkaErrorCode::Conflict
                    | RDKafkaErrorCode::NotImplemented
            )
    }
}

impl std::fmt::Debug for RDKafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RDKafkaError({self})")
    }
}

impl std::fmt::Display for RDKafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name(), self.message)
    }
}

impl std::error::Error for RDKafkaError {}

/// `rdkafka::error::KafkaError`, the variants this client returns. As in `rdkafka` it
/// is `#[non_exhaustive]`; `Unsupported` is this client's own: a call `rdkafka` has and
/// this client refuses, named in its text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KafkaError {
    /// A setting this client does not support, or a bad value: the setting and why
    /// (`rdkafka`'s `ClientCreation`; its `ClientConfig` carries librdkafka's own codes).
    ClientCreation(String),
    /// An offset commit was rejected (a stale generation: the member must rejoin).
    ConsumerCommit(RDKafkaErrorCode),
    /// A fetch, join or offset read failed.
    MessageConsumption(RDKafkaErrorCode),
    /// A record could not be written.
    MessageProduction(RDKafkaErrorCode),
    /// Committed offsets could not be read.
    OffsetFetch(RDKafkaErrorCode),
    /// `seek` / `seek_partitions` of a partition not assigned, or of no absolute offset.
    Seek(String),
    /// `subscribe` with no topic, or `recv` before `subscribe`.
    Subscription(String),
    /// A transactional call failed. `is_fatal` (fenced): the producer is unusable.
    Transaction(RDKafkaError),
    /// A call of `rdkafka`'s API this client refuses: which, and why.
    Unsupported(String),
}

impl KafkaError {
    /// `KafkaError::rdkafka_error_code`: the code, where the error has one.
    pub fn rdkafka_error_code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            KafkaError::ConsumerCommit(c)
            | KafkaError::MessageConsumption(c)
            | KafkaError::MessageProduction(c)
            | KafkaError::OffsetFetch(c) => Some(*c),
            KafkaError::Transaction(e) => Some(e.code()),
            KafkaError::Unsupported(_) => Some(RDKafkaErrorCode::NotImplemented),
            KafkaError::ClientCreation(_) | KafkaError::Seek(_) | KafkaError::Subscription(_) => {
                None
            }
        }
    }

    /// A transactional error for `code`, with what the call was doing.
    pub(crate) fn txn(code: RDKafkaErrorCode, what: &str) -> KafkaError {
        KafkaError::Transaction(RDKafkaError::new(code, format!("{what}: {code}")))
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KafkaError::ClientCreation(why) => write!(f, "client creation error: {why}"),
            KafkaError::ConsumerCommit(c) => write!(f, "consumer commit error: {c}"),
            KafkaError::MessageConsumption(c) => write!(f, "message consumption error: {c}"),
            KafkaError::MessageProduction(c) => write!(f, "message production error: {c}"),
            KafkaError::OffsetFetch(c) => write!(f, "offset fetch error: {c}"),
            KafkaError::Seek(why) => write!(f, "seek error: {why}"),
            KafkaError::Subscription(why) => write!(f, "subscription error: {why}"),
            KafkaError::Transaction(e) => write!(f, "transaction error: {e}"),
            KafkaError::Unsupported(why) => write!(f, "not supported: {why}"),
        }
    }
}

impl std::error::Error for KafkaError {}

/// `rdkafka::error::KafkaResult`.
pub type KafkaResult<T> = Result<T, KafkaError>;

/// A refused call: `call` and why.
pub(crate) fn unsupported<T>(call: &str, why: &str) -> KafkaResult<T> {
    Err(KafkaError::Unsupported(format!(
        "{call}: not supported by oversell's client ({why})"
    )))
}
