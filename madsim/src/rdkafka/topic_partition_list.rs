//! `rdkafka::TopicPartitionList` and `rdkafka::Offset`, as madsim-rdkafka's
//! (`madsim-rdkafka/src/sim/topic_partition_list.rs`: `new`, `with_capacity`, `count`,
//! `add_partition`, `add_partition_offset`, `elements`, `elements_for_topic`).

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
    /// An offset relative to the end (not accepted by this client's calls).
    OffsetTail(i64),
}

/// One element of a [`TopicPartitionList`], borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicPartitionListElem<'a> {
    e: &'a Elem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Elem {
    topic: String,
    partition: i32,
    offset: Offset,
}

impl TopicPartitionListElem<'_> {
    pub fn topic(&self) -> &str {
        &self.e.topic
    }
    pub fn partition(&self) -> i32 {
        self.e.partition
    }
    pub fn offset(&self) -> Offset {
        self.e.offset
    }
}

/// Partitions with offsets (`rdkafka::TopicPartitionList`), in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPartitionList {
    list: Vec<Elem>,
}

impl TopicPartitionList {
    pub fn new() -> TopicPartitionList {
        TopicPartitionList::default()
    }

    pub fn with_capacity(capacity: usize) -> TopicPartitionList {
        TopicPartitionList {
            list: Vec::with_capacity(capacity),
        }
    }

    pub fn add_partition<'a>(
        &'a mut self,
        topic: &str,
        partition: i32,
    ) -> TopicPartitionListElem<'a> {
        self.list.push(Elem {
            topic: topic.to_string(),
            partition,
            offset: Offset::Invalid,
        });
        TopicPartitionListElem {
            e: self.list.last().expect("just pushed"),
        }
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
            None => self.list.push(Elem {
                topic: topic.to_string(),
                partition,
                offset,
            }),
        }
        Ok(())
    }

    pub fn elements(&self) -> Vec<TopicPartitionListElem<'_>> {
        self.list
            .iter()
            .map(|e| TopicPartitionListElem { e })
            .collect()
    }

    pub fn elements_for_topic<'a>(&'a self, topic: &str) -> Vec<TopicPartitionListElem<'a>> {
        self.list
            .iter()
            .filter(|e| e.topic == topic)
            .map(|e| TopicPartitionListElem { e })
            .collect()
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
                other => Err(KafkaError::Unsupported(format!(
                    "committing {}-{} at {other:?}: only absolute offsets can be committed",
                    e.topic, e.partition
                ))),
            })
            .collect()
    }
}
