//! `rdkafka::TopicPartitionList` and `rdkafka::Offset`.

use super::error::{KafkaError, KafkaResult};
use oversell_sim::TopicPartition;

/// An offset in a partition (`rdkafka::Offset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offset {
    Beginning,
    End,
    Stored,
    Invalid,
    Offset(i64),
}

/// One element of a [`TopicPartitionList`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPartitionListElem {
    topic: String,
    partition: i32,
    offset: Offset,
}

impl TopicPartitionListElem {
    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn partition(&self) -> i32 {
        self.partition
    }
    pub fn offset(&self) -> Offset {
        self.offset
    }
}

/// Partitions with offsets (`rdkafka::TopicPartitionList`), in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPartitionList {
    list: Vec<TopicPartitionListElem>,
}

impl TopicPartitionList {
    pub fn new() -> TopicPartitionList {
        TopicPartitionList::default()
    }

    pub fn add_partition(&mut self, topic: &str, partition: i32) {
        self.list.push(TopicPartitionListElem {
            topic: topic.to_string(),
            partition,
            offset: Offset::Invalid,
        });
    }

    pub fn add_partition_offset(
        &mut self,
        topic: &str,
        partition: i32,
        offset: Offset,
    ) -> KafkaResult<()> {
        match self
            .list
            .iter_mut()
            .find(|e| e.topic == topic && e.partition == partition)
        {
            Some(e) => e.offset = offset,
            None => self.list.push(TopicPartitionListElem {
                topic: topic.to_string(),
                partition,
                offset,
            }),
        }
        Ok(())
    }

    pub fn elements(&self) -> Vec<TopicPartitionListElem> {
        self.list.clone()
    }

    pub fn count(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn from_tps(tps: &[TopicPartition]) -> TopicPartitionList {
        let mut l = TopicPartitionList::new();
        for tp in tps {
            l.add_partition(&tp.topic, tp.partition as i32);
        }
        l
    }

    /// The list as the wire's offsets: every element must carry an absolute offset.
    pub(crate) fn offsets(&self) -> KafkaResult<Vec<(TopicPartition, u64)>> {
        self.list
            .iter()
            .map(|e| match e.offset {
                Offset::Offset(o) if o >= 0 && e.partition >= 0 => {
                    Ok((TopicPartition::new(&e.topic, e.partition as u32), o as u64))
                }
                other => Err(KafkaError::ClientConfig(format!(
                    "{}-{}: offset {other:?}: only absolute offsets can be committed",
                    e.topic, e.partition
                ))),
            })
            .collect()
    }
}
