//! The designs under test: plug-ins over the simulated platform.
//!
//! A design builds a [`World`] from a [`Scenario`]: it creates its topics, and its
//! service instances with their stream applications. It also declares its [`Schema`]:
//! which of its stores hold stock and which events decide an order, so that the checker
//! can read its history. The checker never asks a design what happened.
//!
//! To add a design: write a module with a type implementing [`Design`], and add it to
//! [`all`].

pub(crate) mod naive;
mod registry;
pub(crate) mod rekeyed;
pub(crate) mod saga;
mod schema;

use crate::scenario::Scenario;
use oversell_sim::World;

pub use naive::Naive;
pub use registry::Registry;
pub use rekeyed::Rekeyed;
pub use saga::Saga;
pub use schema::{
    Book, Count, Decided, Decision, Decode, Decoder, Ledger, Schema, StockFact, Store,
};

/// The services every design has; instances are named `<service>-<index>`.
pub const SERVICES: [&str; 2] = ["order-service", "product-service"];

/// The non-faulty instance that stands for the outside world: customers placing orders
/// and the warehouse adding stock.
pub const FRONTEND: &str = "frontend";

/// Deliberate defects, so that tests can show the checker bites.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mutation {
    /// Commit input offsets when records are fetched, before processing them.
    CommitBeforeProcess,
    /// Exactly-once without zombie fencing: offset commits skip the generation check.
    Unfenced,
    /// Consumers read uncommitted data even under exactly-once.
    ReadUncommitted,
    /// Producers without idempotence: a retried produce writes twice.
    NonIdempotentRetry,
    /// The saga without its reservation timeout.
    NoTimeout,
    /// The saga's product service applies a repeated command again.
    NonIdempotentCompensation,
    /// Kernel: a consumer's position after a fetch is counted from the records returned,
    /// not taken from the next offset (control markers are skipped in the count).
    PositionByCount,
    /// Kernel: a task resumes one past its committed offset.
    ResumeAfterCommitted,
    /// Kernel: the transaction coordinator and the partition leader accept an older
    /// epoch of a transactional id after a new `InitProducerId`.
    StaleEpochAccepted,
    /// Kernel: the group coordinator accepts a plain `OffsetCommit` from a stale
    /// generation.
    StaleGenerationAccepted,
}

impl Mutation {
    pub const ALL: [Mutation; 10] = [
        Mutation::CommitBeforeProcess,
        Mutation::Unfenced,
        Mutation::ReadUncommitted,
        Mutation::NonIdempotentRetry,
        Mutation::NoTimeout,
        Mutation::NonIdempotentCompensation,
        Mutation::PositionByCount,
        Mutation::ResumeAfterCommitted,
        Mutation::StaleEpochAccepted,
        Mutation::StaleGenerationAccepted,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Mutation::CommitBeforeProcess => "commit-before-process",
            Mutation::Unfenced => "unfenced",
            Mutation::ReadUncommitted => "read-uncommitted",
            Mutation::NonIdempotentRetry => "non-idempotent-retry",
            Mutation::NoTimeout => "no-timeout",
            Mutation::NonIdempotentCompensation => "non-idempotent-compensation",
            Mutation::PositionByCount => "position-by-count",
            Mutation::ResumeAfterCommitted => "resume-after-committed",
            Mutation::StaleEpochAccepted => "stale-epoch-accepted",
            Mutation::StaleGenerationAccepted => "stale-generation-accepted",
        }
    }

    /// The broker's deliberate defects among `mutations`.
    pub fn broker_defects(mutations: &[Mutation]) -> oversell_sim::broker::Defects {
        oversell_sim::broker::Defects {
            stale_generation_accepted: mutations.contains(&Mutation::StaleGenerationAccepted),
            stale_epoch_accepted: mutations.contains(&Mutation::StaleEpochAccepted),
        }
    }
}

/// A design: builds a world from a scenario, and declares its schema.
pub trait Design: Send + Sync {
    /// Name used on the command line and in scenario files.
    fn name(&self) -> &'static str;
    /// One line: what the design is.
    fn summary(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Topics, instances and applications for one run.
    fn build(&self, scenario: &Scenario, mutations: &[Mutation]) -> World;
}

/// Every design, in the order tables show them ([`Registry::builtin`]).
pub fn all() -> Vec<Box<dyn Design>> {
    Registry::builtin().into_designs()
}

/// The design called `name` ([`Registry::builtin`]).
pub fn by_name(name: &str) -> Option<Box<dyn Design>> {
    all().into_iter().find(|d| d.name() == name)
}

/// Names of every design ([`Registry::builtin`]).
pub fn names() -> Vec<&'static str> {
    Registry::builtin().names()
}
