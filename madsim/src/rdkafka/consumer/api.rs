//! `Consumer` for `StreamConsumer`: subscriptions, assignments, positions, commits.

use super::stream_consumer::lock;
use super::{
    CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, RebalanceProtocol, StreamConsumer,
};
use crate::rdkafka::client::Client;
use crate::rdkafka::error::{unsupported, KafkaError, KafkaResult, RDKafkaErrorCode};
use crate::rdkafka::message::{BorrowedMessage, Message};
use crate::rdkafka::util::Timeout;
use crate::rdkafka::{Offset, TopicPartitionList};
use oversell_sim::protocol::{GroupMetadata, Isolation, Request, Response};
use oversell_sim::TopicPartition;

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition.max(0) as u32)
}

impl<C: ConsumerContext> Consumer<C> for StreamConsumer<C> {
    fn client(&self) -> &Client<C> {
        &self.client
    }

    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let st = lock(&self.state);
        Some(ConsumerGroupMetadata {
            group: self.settings.group.clone(),
            member_id: st.member_id.clone()?,
            generation: st.generation?,
        })
    }

    fn subscribe(&self, topics: &[&str]) -> KafkaResult<()> {
        self.subscribe_topics(topics)
    }

    /// `KafkaConsumer.unsubscribe`: the partitions are revoked (both callbacks)
    /// and the member leaves the group (`AbstractCoordinator.maybeLeaveGroup`).
    fn unsubscribe(&self) {
        let revoked = {
            let mut st = lock(&self.state);
            st.topics.clear();
            st.buffer.clear();
            st.positions.clear();
            std::mem::take(&mut st.assignment)
        };
        if !revoked.is_empty() {
            let tpl = TopicPartitionList::from_tps(&revoked);
            self.context()
                .pre_rebalance(&super::Rebalance::Revoke(&tpl));
            self.context()
                .post_rebalance(&super::Rebalance::Revoke(&tpl));
        }
        self.leave();
    }

    fn assign(&self, assignment: &TopicPartitionList) -> KafkaResult<()> {
        let mut st = lock(&self.state);
        st.topics.clear();
        st.assignment.clear();
        st.positions.clear();
        st.buffer.clear();
        for e in assignment.elements() {
            let at = tp(e.topic(), e.partition());
            let offset = match e.offset() {
                Offset::Offset(o) => o.max(0) as u64,
                _ => 0,
            };
            st.positions.insert(at.clone(), offset);
            st.assignment.push(at);
        }
        st.manual = true;
        Ok(())
    }

    fn unassign(&self) -> KafkaResult<()> {
        let mut st = lock(&self.state);
        st.assignment.clear();
        st.positions.clear();
        st.buffer.clear();
        Ok(())
    }

    fn incremental_assign(&self, _assignment: &TopicPartitionList) -> KafkaResult<()> {
        unsupported(
            "incremental_assign",
            "the cooperative protocol; this client's is eager",
        )
    }

    fn incremental_unassign(&self, _assignment: &TopicPartitionList) -> KafkaResult<()> {
        unsupported(
            "incremental_unassign",
            "the cooperative protocol; this client's is eager",
        )
    }

    async fn seek<T: Into<Timeout> + Send>(
        &self,
        topic: &str,
        partition: i32,
        offset: Offset,
        _timeout: T,
    ) -> KafkaResult<()> {
        let to = match offset {
            Offset::Offset(o) if o >= 0 => o as u64,
            Offset::Beginning => 0,
            other => {
                return Err(KafkaError::Seek(format!(
                    "{topic}-{partition}: {other:?}: only an absolute offset or Beginning"
                )))
            }
        };
        let at = tp(topic, partition);
        let mut st = lock(&self.state);
        if !st.assignment.contains(&at) {
            return Err(KafkaError::Seek(format!("{at}: not assigned")));
        }
        st.buffer
            .retain(|m| !(m.topic() == topic && m.partition() == partition));
        st.positions.insert(at, to);
        Ok(())
    }

    async fn seek_partitions<T: Into<Timeout> + Send>(
        &self,
        topic_partition_list: TopicPartitionList,
        _timeout: T,
    ) -> KafkaResult<TopicPartitionList> {
        for e in topic_partition_list.elements() {
            self.seek(e.topic(), e.partition(), e.offset(), Timeout::Never)
                .await?;
        }
        Ok(topic_partition_list)
    }

    async fn commit(
        &self,
        topic_partition_list: &TopicPartitionList,
        _mode: CommitMode,
    ) -> KafkaResult<()> {
        let result = self.commit_offsets(topic_partition_list).await;
        self.context()
            .commit_callback(result.clone(), topic_partition_list);
        result
    }

    async fn commit_consumer_state(&self, mode: CommitMode) -> KafkaResult<()> {
        let positions = self.position()?;
        self.commit(&positions, mode).await
    }

    async fn commit_message(
        &self,
        message: &BorrowedMessage<'_>,
        mode: CommitMode,
    ) -> KafkaResult<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            message.topic(),
            message.partition(),
            Offset::Offset(message.offset() + 1),
        )?;
        self.commit(&tpl, mode).await
    }

    fn store_offset(&self, _topic: &str, _partition: i32, _offset: i64) -> KafkaResult<()> {
        unsupported("store_offset", "commit offsets with Consumer::commit")
    }

    fn store_offset_from_message(&self, _message: &BorrowedMessage<'_>) -> KafkaResult<()> {
        unsupported(
            "store_offset_from_message",
            "commit offsets with Consumer::commit_message",
        )
    }

    fn store_offsets(&self, _tpl: &TopicPartitionList) -> KafkaResult<()> {
        unsupported("store_offsets", "commit offsets with Consumer::commit")
    }

    fn subscription(&self) -> KafkaResult<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for t in &lock(&self.state).topics {
            tpl.add_partition(t, -1);
        }
        Ok(tpl)
    }

    fn assignment(&self) -> KafkaResult<TopicPartitionList> {
        Ok(TopicPartitionList::from_tps(&lock(&self.state).assignment))
    }

    fn assignment_lost(&self) -> bool {
        lock(&self.state).lost
    }

    async fn committed<T>(&self, timeout: T) -> KafkaResult<TopicPartitionList>
    where
        T: Into<Timeout> + Send,
        Self: Sized,
    {
        let assigned = self.assignment()?;
        self.committed_offsets(assigned, timeout).await
    }

    async fn committed_offsets<T>(
        &self,
        tpl: TopicPartitionList,
        _timeout: T,
    ) -> KafkaResult<TopicPartitionList>
    where
        T: Into<Timeout> + Send,
    {
        let request = Request::OffsetFetch {
            group: self.settings.group.clone(),
            partitions: tpl
                .elements()
                .iter()
                .map(|e| tp(e.topic(), e.partition()))
                .collect(),
            require_stable: self.settings.isolation == Isolation::ReadCommitted,
        };
        match self.conn.call(request).await {
            Response::OffsetFetch(Ok(offsets)) => {
                let mut out = TopicPartitionList::new();
                for (at, o) in offsets {
                    let o = o.map_or(Offset::Invalid, |o| Offset::Offset(o as i64));
                    out.add_partition_offset(&at.topic, at.partition as i32, o)?;
                }
                Ok(out)
            }
            Response::OffsetFetch(Err(e)) => Err(KafkaError::OffsetFetch(e.into())),
            other => unreachable!("OffsetFetch answered by {other:?}"),
        }
    }

    async fn offsets_for_timestamp<T>(
        &self,
        _timestamp: i64,
        _timeout: T,
    ) -> KafkaResult<TopicPartitionList>
    where
        T: Into<Timeout> + Send,
        Self: Sized,
    {
        unsupported("offsets_for_timestamp", "the broker keeps no time index")
    }

    async fn offsets_for_times<T>(
        &self,
        _timestamps: TopicPartitionList,
        _timeout: T,
    ) -> KafkaResult<TopicPartitionList>
    where
        T: Into<Timeout> + Send,
        Self: Sized,
    {
        unsupported("offsets_for_times", "the broker keeps no time index")
    }

    /// Per assigned partition, the offset of the next message `recv` returns (past
    /// skipped control records once nothing is buffered).
    fn position(&self) -> KafkaResult<TopicPartitionList> {
        let st = lock(&self.state);
        let mut tpl = TopicPartitionList::new();
        for at in &st.assignment {
            let buffered = st
                .buffer
                .iter()
                .find(|m| m.topic() == at.topic && m.partition() == at.partition as i32);
            let next = buffered.map_or(*st.positions.get(at).unwrap_or(&0) as i64, |m| m.offset());
            tpl.add_partition_offset(&at.topic, at.partition as i32, Offset::Offset(next))?;
        }
        Ok(tpl)
    }

    /// `ListOffsets` with the consumer's `isolation_level`, modelled as an empty fetch.
    async fn fetch_watermarks<T>(
        &self,
        topic: &str,
        partition: i32,
        _timeout: T,
    ) -> KafkaResult<(i64, i64)>
    where
        T: Into<Timeout> + Send + 'static,
        Self: Sized,
    {
        let request = Request::Fetch {
            tp: tp(topic, partition),
            offset: 0,
            max_records: 0,
            isolation: self.settings.isolation,
        };
        match self.conn.call(request).await {
            Response::Fetch {
                result: Ok(data), ..
            } => {
                let end = match self.settings.isolation {
                    Isolation::ReadCommitted => data.last_stable_offset,
                    Isolation::ReadUncommitted => data.high_watermark,
                };
                Ok((0, end as i64))
            }
            Response::Fetch { result: Err(e), .. } => Err(KafkaError::MessageConsumption(e.into())),
            other => unreachable!("Fetch answered by {other:?}"),
        }
    }

    fn pause(&self, _partitions: &TopicPartitionList) -> KafkaResult<()> {
        unsupported("pause", "every assigned partition is fetched")
    }

    fn resume(&self, _partitions: &TopicPartitionList) -> KafkaResult<()> {
        unsupported("resume", "every assigned partition is fetched")
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }
}

impl<C: ConsumerContext> StreamConsumer<C> {
    /// `OffsetCommit` with this member's generation; a rejected commit (a stale
    /// generation) makes the member rejoin.
    async fn commit_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
        let offsets = offsets.offsets()?;
        let Some(group) = self.group_metadata() else {
            return Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::State));
        };
        let group = GroupMetadata {
            group: group.group,
            member_id: group.member_id,
            generation: group.generation,
        };
        match self
            .conn
            .call(Request::OffsetCommit { group, offsets })
            .await
        {
            Response::OffsetCommit(Ok(())) => Ok(()),
            Response::OffsetCommit(Err(e)) => {
                self.conn.error(format!("commit: {e:?}"));
                lock(&self.state).rejoin = true;
                Err(KafkaError::ConsumerCommit(e.into()))
            }
            other => unreachable!("OffsetCommit answered by {other:?}"),
        }
    }
}
