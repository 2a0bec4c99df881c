//! What a design writes: a [`Topology`] of [`SubTopology`]s, each with its source topics,
//! its state stores and a [`Processor`] built per task.

use super::context::Context;
use crate::protocol::{Millis, Offset, TopicPartition};
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::sync::Arc;

/// A record handed to a processor.
#[derive(Clone, Debug)]
pub struct Input {
    pub tp: TopicPartition,
    pub offset: Offset,
    pub key: Option<String>,
    pub value: Option<String>,
    pub timestamp: Millis,
}

/// What a processor did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Processed {
    Done,
    /// Could not process now (a store it queries is unavailable): keep the record and
    /// retry after the backoff.
    Retry,
}

/// The application logic of one task. Built afresh per task by its sub-topology.
pub trait Processor {
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed;
    /// Called on each punctuation of the sub-topology (see [`SubTopology::punctuate`]).
    fn punctuate(&mut self, _ctx: &mut Context<'_, '_>) {}
    /// The earliest time at which a punctuation of this task has work to do, read from
    /// its stores (which survive a restart and a migration); `None` when it has none. The
    /// world does not call a run quiescent while such a timer is pending.
    fn next_timer(&self, _stores: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Millis> {
        None
    }
    /// A copy of this processor, state included, for the exhaustive search's snapshots
    /// of a world (`World::try_clone`); `None` (the default): the world cannot be copied
    /// and the search re-runs every prefix from the start instead.
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        None
    }
    /// For the exhaustive search's state hashing: feed `state` everything this processor
    /// holds outside its stores that its future behaviour can depend on (timers' pending
    /// resends, caches, counters) and return `true`; a processor that holds nothing
    /// feeds nothing. What was fixed when it was built (its configuration) may be left
    /// out: every world of one search builds it the same way. The default feeds nothing
    /// and returns `false`: a world with such a processor is searched without state
    /// matching (two states differing only in what it holds must not be merged).
    fn fingerprint(&self, _state: &mut dyn Hasher) -> bool {
        false
    }
}

/// When a sub-topology's punctuator fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Punctuation {
    /// `PunctuationType.WALL_CLOCK_TIME` (simulated wall clock), every so many ms.
    WallClock(Millis),
    /// `PunctuationType.STREAM_TIME`: when the task's stream time passes each multiple.
    StreamTime(Millis),
}

/// Builds the processor of a task.
pub type ProcessorFactory = Arc<dyn Fn(u32) -> Box<dyn Processor> + Send + Sync>;

/// A sub-topology: co-partitioned source topics, the stores of its tasks, its processor.
#[derive(Clone)]
pub struct SubTopology {
    pub name: String,
    pub sources: Vec<String>,
    pub stores: Vec<String>,
    pub processor: ProcessorFactory,
    pub punctuate: Option<Punctuation>,
}

#[derive(Clone, Default)]
pub struct Topology {
    pub subtopologies: Vec<SubTopology>,
}

impl Topology {
    pub(super) fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .subtopologies
            .iter()
            .flat_map(|s| s.sources.iter().cloned())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    pub(super) fn subtopology_of(&self, topic: &str) -> Option<usize> {
        self.subtopologies
            .iter()
            .position(|s| s.sources.iter().any(|t| t == topic))
    }
}

/// A task: a sub-topology at one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaskId {
    pub subtopology: usize,
    pub partition: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str, sources: &[&str]) -> SubTopology {
        SubTopology {
            name: name.into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            stores: Vec::new(),
            processor: Arc::new(|_| unreachable!("not built")),
            punctuate: None,
        }
    }

    #[test]
    fn topics_are_sorted_and_unique_and_each_belongs_to_one_subtopology() {
        let t = Topology {
            subtopologies: vec![sub("a", &["orders", "inventory"]), sub("b", &["payments"])],
        };
        assert_eq!(t.topics(), vec!["inventory", "orders", "payments"]);
        assert_eq!(t.subtopology_of("orders"), Some(0));
        assert_eq!(t.subtopology_of("payments"), Some(1));
        assert_eq!(t.subtopology_of("nowhere"), None);
    }
}
