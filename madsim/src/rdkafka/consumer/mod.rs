//! `rdkafka::consumer`: the `Consumer` trait, a consumer in a consumer group
//! (`StreamConsumer`), its context with the rebalance callbacks, offset commits and group
//! metadata.
//!
//! The signatures are madsim-rdkafka's (`madsim-rdkafka/src/std/consumer/mod.rs`, rdkafka
//! 0.34's API with the calls that block made `async`: `seek`, `seek_partitions`,
//! `commit`, `commit_consumer_state`, `commit_message`, `committed`, `committed_offsets`,
//! `offsets_for_timestamp`, `offsets_for_times`, `fetch_watermarks`), which is what a
//! madsim user's service compiles against in both its builds. madsim-rdkafka declares the
//! trait with `async_trait`; here the methods return `impl Future + Send`, which a caller
//! `.await`s the same way. Absent: `fetch_metadata` and `fetch_group_list` (no `Metadata`
//! / `GroupList` here) and `ConsumerContext::rebalance` (it takes librdkafka's native
//! handle). Refused with `KafkaError::Unsupported` naming the call: `incremental_assign`,
//! `incremental_unassign` (the cooperative protocol), `store_offset`,
//! `store_offset_from_message`, `store_offsets` (`enable.auto.offset.store`),
//! `offsets_for_timestamp`, `offsets_for_times` (no time index), `pause`, `resume`.

mod api;
mod stream_consumer;

pub use stream_consumer::StreamConsumer;

use super::client::{Client, ClientContext};
use super::error::{KafkaError, KafkaResult};
use super::message::BorrowedMessage;
use super::util::Timeout;
use super::{Offset, TopicPartitionList};
use oversell_sim::protocol::Generation;
use std::future::Future;
use std::sync::Arc;

/// `rdkafka::consumer::Rebalance`.
#[derive(Clone, Debug)]
pub enum Rebalance<'a> {
    Assign(&'a TopicPartitionList),
    Revoke(&'a TopicPartitionList),
    Error(KafkaError),
}

/// `rdkafka::consumer::ConsumerContext`: the rebalance and commit callbacks.
pub trait ConsumerContext: ClientContext {
    /// Before the consumer gives up a revocation's partitions or takes an assignment's.
    fn pre_rebalance<'a>(&self, _rebalance: &Rebalance<'a>) {}
    /// After it did.
    fn post_rebalance<'a>(&self, _rebalance: &Rebalance<'a>) {}
    /// After every `commit` with its result (`OffsetCommitCallback.onComplete`).
    fn commit_callback(&self, _result: KafkaResult<()>, _offsets: &TopicPartitionList) {}
}

/// `rdkafka::consumer::DefaultConsumerContext`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultConsumerContext;

impl ClientContext for DefaultConsumerContext {}
impl ConsumerContext for DefaultConsumerContext {}

/// `rdkafka::consumer::CommitMode` (both wait for the answer here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    Sync = 0,
    Async = 1,
}

/// `rdkafka::consumer::RebalanceProtocol`: this client speaks the eager one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebalanceProtocol {
    None,
    Eager,
    Cooperative,
}

/// `rdkafka::consumer::ConsumerGroupMetadata`: what a transactional producer sends with
/// its offsets so that a zombie's commit is rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) generation: Generation,
}

/// `rdkafka::consumer::Consumer`, with madsim-rdkafka's signatures (see the module).
pub trait Consumer<C: ConsumerContext = DefaultConsumerContext> {
    fn client(&self) -> &Client<C>;

    fn context(&self) -> &Arc<C> {
        self.client().context()
    }

    /// `None` until the member has joined.
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata>;

    /// The topics to consume; the group is joined at the next `recv`.
    fn subscribe(&self, topics: &[&str]) -> KafkaResult<()>;

    /// Revoke the assignment (both callbacks, `Revoke`) and leave the group.
    fn unsubscribe(&self);

    /// Read these partitions without a group, from each element's absolute offset or
    /// the log start.
    fn assign(&self, assignment: &TopicPartitionList) -> KafkaResult<()>;

    fn unassign(&self) -> KafkaResult<()>;

    fn incremental_assign(&self, assignment: &TopicPartitionList) -> KafkaResult<()>;

    fn incremental_unassign(&self, assignment: &TopicPartitionList) -> KafkaResult<()>;

    /// Move an assigned partition's position (an absolute offset or `Beginning`).
    fn seek<T: Into<Timeout> + Send>(
        &self,
        topic: &str,
        partition: i32,
        offset: Offset,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    fn seek_partitions<T: Into<Timeout> + Send>(
        &self,
        topic_partition_list: TopicPartitionList,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<TopicPartitionList>> + Send;

    /// Commit `topic_partition_list` with this member's generation; a stale one is
    /// rejected (`ILLEGAL_GENERATION`) and the member rejoins.
    fn commit(
        &self,
        topic_partition_list: &TopicPartitionList,
        mode: CommitMode,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    /// Commit the position of every assigned partition.
    fn commit_consumer_state(
        &self,
        mode: CommitMode,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    /// Commit the offset after `message`.
    fn commit_message(
        &self,
        message: &BorrowedMessage<'_>,
        mode: CommitMode,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    fn store_offset(&self, topic: &str, partition: i32, offset: i64) -> KafkaResult<()>;

    fn store_offset_from_message(&self, message: &BorrowedMessage<'_>) -> KafkaResult<()>;

    fn store_offsets(&self, tpl: &TopicPartitionList) -> KafkaResult<()>;

    fn subscription(&self) -> KafkaResult<TopicPartitionList>;

    fn assignment(&self) -> KafkaResult<TopicPartitionList>;

    /// Whether the coordinator expelled this member (its session expired, or its
    /// generation was fenced) since it last joined: librdkafka's
    /// `rd_kafka_assignment_lost`. Lost partitions are revoked as any others
    /// (`Rebalance::Revoke`, at the `recv` that rejoins), and this stays true from the
    /// heartbeat that learns of the expulsion until the next assignment, so a service
    /// tells a loss (Java's `onPartitionsLost`) from a revocation by asking here.
    fn assignment_lost(&self) -> bool;

    /// The group's committed offsets of the assigned partitions (`Offset::Invalid` where
    /// none is committed).
    fn committed<T>(
        &self,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<TopicPartitionList>> + Send
    where
        T: Into<Timeout> + Send,
        Self: Sized;

    fn committed_offsets<T>(
        &self,
        tpl: TopicPartitionList,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<TopicPartitionList>> + Send
    where
        T: Into<Timeout> + Send;

    fn offsets_for_timestamp<T>(
        &self,
        timestamp: i64,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<TopicPartitionList>> + Send
    where
        T: Into<Timeout> + Send,
        Self: Sized;

    fn offsets_for_times<T>(
        &self,
        timestamps: TopicPartitionList,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<TopicPartitionList>> + Send
    where
        T: Into<Timeout> + Send,
        Self: Sized;

    /// Per assigned partition, the offset of the next message `recv` returns.
    fn position(&self) -> KafkaResult<TopicPartitionList>;

    /// (log start, end) of a partition, the end as this consumer's isolation level sees
    /// it (the last stable offset under `read_committed`, else the high watermark).
    fn fetch_watermarks<T>(
        &self,
        topic: &str,
        partition: i32,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<(i64, i64)>> + Send
    where
        T: Into<Timeout> + Send + 'static,
        Self: Sized;

    fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()>;

    fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()>;

    fn rebalance_protocol(&self) -> RebalanceProtocol;
}
