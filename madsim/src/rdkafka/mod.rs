//! An async Kafka client shaped like the `rdkafka` crate's, served by oversell's broker.
//!
//! The module paths, type names and method names are `rdkafka`'s
//! (`rdkafka::config::ClientConfig`, `rdkafka::producer::{FutureProducer, FutureRecord}`,
//! `rdkafka::consumer::{StreamConsumer, Consumer, ConsumerContext, Rebalance, CommitMode}`,
//! `rdkafka::{Message, Offset, TopicPartitionList}`), so that a service switches with
//! one `cfg(madsim)` import, as madsim-rdkafka's users do. As in madsim-rdkafka, the calls
//! that block in `rdkafka` (`commit`, the transactional API) are `async` here.
//!
//! What is supported, and what is refused (a `KafkaError::ClientConfig` at `create`):
//!
//! * producer: `bootstrap.servers` (ignored: the one cluster), `client.id` (the
//!   application name in the record), `enable.idempotence` (default `false`, as in
//!   librdkafka), `transactional.id` (implies idempotence), `transaction.timeout.ms`,
//!   `request.timeout.ms`, `retry.backoff.ms`, `acks` (`all`/`-1` only), `partitioner`
//!   (`murmur2_random`, the default here, Java's partitioner: librdkafka's own default
//!   `consistent_random` is refused, since the services under test share topics with
//!   Java-partitioned producers); one request in flight per producer
//!   (`max.in.flight.requests.per.connection=1`), one record per request, no `linger.ms`;
//! * consumer: `group.id` (required), `client.id`, `enable.auto.commit` (must be `false`:
//!   commit with `Consumer::commit`), `auto.offset.reset` (`earliest` only),
//!   `isolation.level` (`read_committed`, librdkafka's default, or `read_uncommitted`),
//!   `session.timeout.ms`, `heartbeat.interval.ms`, `request.timeout.ms`,
//!   `partition.assignment.strategy` (`range` only: the eager protocol, every partition
//!   revoked before a rejoin); `subscribe`, `recv`, `commit`, `commit_message`,
//!   `assignment`, `group_metadata`, rebalance callbacks (`ConsumerContext::pre_rebalance`,
//!   `post_rebalance`); a heartbeat task on the consumer's node;
//! * every other setting is refused, by name.
//!
//! A request unanswered within `request.timeout.ms` (a lost message, a clogged link) is
//! sent again as it was, so an idempotent producer's retry keeps its sequence number and
//! the broker deduplicates it. Every record `recv` hands to a group member is recorded as
//! the simulator's `Process` event (a manually assigned consumer's, a store's restore,
//! is not), every acknowledged write as `Acked`. Dropping a consumer sends `LeaveGroup`.

pub mod config;
mod conn;
pub mod consumer;
pub mod error;
pub mod message;
pub mod producer;
mod topic_partition_list;
pub mod util;

pub use config::ClientConfig;
pub use message::Message;
pub use topic_partition_list::{Offset, TopicPartitionList, TopicPartitionListElem};
