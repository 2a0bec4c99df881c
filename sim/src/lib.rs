//! oversell-sim: the simulation kernel.
//!
//! Sans-IO state machines — the [`broker::Broker`], the stream-task runtime
//! ([`streams::StreamsClient`]) and a scheduled producer ([`source::SourceClient`]) —
//! driven by a single-threaded seeded scheduler ([`world::World`]). Nothing here reads
//! the wall clock, spawns a thread or draws OS randomness: a run is a pure function of
//! its world and its seed (or its recorded choice log).

pub mod broker;
pub mod choice;
pub mod client;
pub mod counting;
mod display;
pub mod partitioner;
pub mod protocol;
pub mod source;
pub mod state_hash;
pub mod streams;
pub mod trace;
pub mod world;

pub use broker::{Broker, TopicConfig};
pub use choice::{ChoiceLog, Chooser};
pub use client::{Client, ClientId, Env, Metadata, StoreQuery, StoreUnavailable};
pub use protocol::{Millis, Offset, TopicPartition};
pub use source::{Scheduled, SourceClient, SourceConfig};
pub use streams::{
    changelog_topic, Context, Detached, Guarantee, Input, Processed, Processor, ProcessorFactory,
    Punctuation, StreamsClient, StreamsConfig, SubTopology, Topology,
};
pub use trace::{Event, Label, Peer, Trace, TraceRecord};
pub use world::{
    FaultRates, Guided, InstanceSpec, Outcome, PctStats, RunResult, ScheduledFault, Strategy,
    World, WorldConfig,
};
