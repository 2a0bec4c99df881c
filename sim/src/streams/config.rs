//! Configuration of a streams application instance: `processing.guarantee` and the
//! consumer, producer and Streams settings the runtime models.

use crate::protocol::{Isolation, Millis, RebalanceProtocol};

/// `processing.guarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Guarantee {
    AtLeastOnce,
    ExactlyOnceV2,
}

/// Configuration of one streams application instance. Defaults are scaled down from
/// Kafka's so that runs stay short; each is named after the Kafka setting it models.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group, and the prefix of changelog topics.
    pub application_id: String,
    /// `processing.guarantee`.
    pub guarantee: Guarantee,
    /// `commit.interval.ms`. Default 100.
    pub commit_interval_ms: Millis,
    /// `session.timeout.ms`. Default 300.
    pub session_timeout_ms: Millis,
    /// `heartbeat.interval.ms`. Default 100.
    pub heartbeat_interval_ms: Millis,
    /// `max.poll.interval.ms`: sent as the rebalance timeout of `JoinGroup`, and the
    /// longest the processing loop may go without polling before the heartbeat lane
    /// leaves the group. Default 1000.
    pub rebalance_timeout_ms: Millis,
    /// The rebalance protocol (`upgrade.from` selects eager in Kafka Streams; cooperative
    /// is the default since 2.4, `AssignorConfiguration.rebalanceProtocol`). Default
    /// cooperative.
    pub rebalance_protocol: RebalanceProtocol,
    /// `request.timeout.ms`: an unanswered request is retried after this. Default 200.
    pub request_timeout_ms: Millis,
    /// `retry.backoff.ms`, also the wait after an empty fetch. Default 10.
    pub retry_backoff_ms: Millis,
    /// The consumer's `fetch.max.wait.ms`: how long the broker holds a fetch that has
    /// nothing to return. Above 0 the processing loop fetches as Kafka's consumer does:
    /// one fetch of every assigned partition in flight at a time, on its own lane, held
    /// by the broker (see `partition_group`). 0: the loop itself fetches one partition
    /// at a time, round robin, answered at once, and waits `retry.backoff.ms` after an
    /// empty fetch once caught up (the model before the long poll). Kafka's default is
    /// 500 against a `request.timeout.ms` of 30 000, which must exceed it; scaled, 100
    /// fits below this `request_timeout_ms` of 200. Default 0 (off) until the verdicts
    /// under it are settled: see `BENCHMARKS.md`.
    pub fetch_max_wait_ms: Millis,
    /// `transaction.timeout.ms`. Default 1000.
    pub transaction_timeout_ms: Millis,
    /// `max.poll.records`. Default 50.
    pub max_poll_records: usize,
    /// The producer's `linger.ms`: a partition's held records are sent once the oldest
    /// has waited this long (`RecordAccumulator.batchReady`). Kafka Streams' own is 100
    /// (`StreamsConfig.PRODUCER_DEFAULT_OVERRIDES`, exactly-once included). Default 0
    /// here: outputs go out once the input buffer is empty, the commit timer restarts only
    /// at a commit, and a lost member drops what it holds, as before the producer model;
    /// the shipped expectations are written against that. Above 0 the whole model of
    /// `linger` applies (see its module); its verdict changes are not yet settled.
    pub linger_ms: Millis,
    /// The producer's `batch.size` in bytes: a partition whose held records reach it is
    /// sent at once (`RecordAccumulator.batchReady`'s `full`). Default 16384, Kafka's.
    pub batch_size: usize,
    /// `enable.idempotence` of the at-least-once producer. Default true (Kafka >= 3.0).
    pub idempotent_producer: bool,
    /// Test-only mutation: offsets are committed when records are fetched, before they are
    /// processed (at most once). Default false.
    pub commit_before_process: bool,
    /// Test-only mutation: under exactly-once, skip the generation check of the offset
    /// commit (a pre-KIP-447 zombie is not fenced). Default false.
    pub unfenced_offsets: bool,
    /// Test-only mutation: read with `read_uncommitted` even under exactly-once. Default false.
    pub read_uncommitted: bool,
    /// Test-only mutation: after a fetch, the position is the fetched offset plus the
    /// number of records returned, not the next offset (control markers are not counted,
    /// so the consumer fetches records again). Default false.
    pub position_by_count: bool,
    /// Test-only mutation: a task resumes one past its committed offset, as if the
    /// committed offset were the last record processed rather than the next to read.
    /// Default false.
    pub resume_after_committed: bool,
}

impl StreamsConfig {
    pub fn new(application_id: impl Into<String>, guarantee: Guarantee) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            guarantee,
            commit_interval_ms: 100,
            session_timeout_ms: 300,
            heartbeat_interval_ms: 100,
            rebalance_timeout_ms: 1000,
            rebalance_protocol: RebalanceProtocol::Cooperative,
            request_timeout_ms: 200,
            retry_backoff_ms: 10,
            fetch_max_wait_ms: 0,
            transaction_timeout_ms: 1000,
            max_poll_records: 50,
            linger_ms: 0,
            batch_size: 16384,
            idempotent_producer: true,
            commit_before_process: false,
            unfenced_offsets: false,
            read_uncommitted: false,
            position_by_count: false,
            resume_after_committed: false,
        }
    }

    pub(crate) fn eos(&self) -> bool {
        self.guarantee == Guarantee::ExactlyOnceV2
    }

    pub(crate) fn cooperative(&self) -> bool {
        self.rebalance_protocol == RebalanceProtocol::Cooperative
    }

    pub(crate) fn isolation(&self) -> Isolation {
        if self.eos() && !self.read_uncommitted {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }

    /// The changelog topic of a store.
    pub fn changelog(&self, store: &str) -> String {
        changelog_topic(&self.application_id, store)
    }
}

/// `<application.id>-<store>-changelog`, as Kafka Streams names it.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    // `{application_id}-{store}-changelog`, built without the formatting machinery: a
    // store's every write names it.
    const SUFFIX: &str = "-changelog";
    let mut topic = String::with_capacity(application_id.len() + 1 + store.len() + SUFFIX.len());
    topic.push_str(application_id);
    topic.push('-');
    topic.push_str(store);
    topic.push_str(SUFFIX);
    topic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_once_reads_committed_unless_mutated() {
        let mut c = StreamsConfig::new("app", Guarantee::ExactlyOnceV2);
        assert!(c.eos());
        assert_eq!(c.isolation(), Isolation::ReadCommitted);
        c.read_uncommitted = true;
        assert_eq!(c.isolation(), Isolation::ReadUncommitted);
        let alo = StreamsConfig::new("app", Guarantee::AtLeastOnce);
        assert_eq!(alo.isolation(), Isolation::ReadUncommitted);
    }

    #[test]
    fn changelogs_are_named_as_kafka_streams_names_them() {
        let c = StreamsConfig::new("inventory", Guarantee::AtLeastOnce);
        assert_eq!(c.changelog("reserved"), "inventory-reserved-changelog");
    }
}
