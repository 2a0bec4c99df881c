//! The designs under test: plug-ins over the simulated platform.
//!
//! A design builds a [`World`] from a [`Scenario`]: it creates its topics, and its
//! service instances with their stream applications. It also declares its [`Schema`]:
//! which of its stores hold stock and which events decide an order, so that the checker
//! can read its history. The checker never asks a design what happened.
//!
//! To add a design: write a module with a type implementing [`Design`], and add it to
//! [`all`].

mod naive;
mod registry;
mod rekeyed;
mod saga;
mod schema;

use crate::domain::Msg;
use crate::scenario::Scenario;
use oversell_sim::{
    Broker, FaultRates, Guarantee, InstanceSpec, Millis, Scheduled, SourceClient, SourceConfig,
    StreamsConfig, TopicConfig, World, WorldConfig,
};
use std::sync::Arc;

pub use naive::Naive;
pub use registry::Registry;
pub use rekeyed::Rekeyed;
pub use saga::Saga;
pub use schema::{Book, Count, Decode, Decoder, Ledger, Schema, StockFact, Store};

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
}

impl Mutation {
    pub const ALL: [Mutation; 6] = [
        Mutation::CommitBeforeProcess,
        Mutation::Unfenced,
        Mutation::ReadUncommitted,
        Mutation::NonIdempotentRetry,
        Mutation::NoTimeout,
        Mutation::NonIdempotentCompensation,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Mutation::CommitBeforeProcess => "commit-before-process",
            Mutation::Unfenced => "unfenced",
            Mutation::ReadUncommitted => "read-uncommitted",
            Mutation::NonIdempotentRetry => "non-idempotent-retry",
            Mutation::NoTimeout => "no-timeout",
            Mutation::NonIdempotentCompensation => "non-idempotent-compensation",
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

// ----- shared building blocks -----

/// Create topics (all with the scenario's partition count).
pub(crate) fn create_topics(
    broker: &mut Broker,
    scenario: &Scenario,
    plain: &[&str],
    compacted: &[String],
) {
    let partitions = scenario.topology.partitions;
    for t in plain {
        broker
            .create_topic(
                t,
                TopicConfig {
                    partitions,
                    compacted: false,
                },
            )
            .expect("design topics are distinct");
    }
    for t in compacted {
        broker
            .create_topic(
                t,
                TopicConfig {
                    partitions,
                    compacted: true,
                },
            )
            .expect("design topics are distinct");
    }
}

/// Where the frontend writes orders and stock, and how it keys them.
pub(crate) struct FrontendTopics {
    pub orders: &'static str,
    /// Key orders by product id (the question) or by order id (Confluent, the saga).
    pub orders_by_product: bool,
    pub stock: &'static str,
}

/// The outside world: initial stock at time 0, then orders and restocks at their times.
pub(crate) fn frontend(
    scenario: &Scenario,
    topics: FrontendTopics,
    mutations: &[Mutation],
) -> InstanceSpec {
    let mut schedule = Vec::new();
    for p in &scenario.products {
        schedule.push(Scheduled {
            at: 0,
            topic: topics.stock.into(),
            key: p.id.clone(),
            value: Msg::StockAdded {
                product_id: p.id.clone(),
                quantity: p.stock,
            }
            .encode(),
        });
    }
    for r in &scenario.restocks {
        schedule.push(Scheduled {
            at: r.at,
            topic: topics.stock.into(),
            key: r.product.clone(),
            value: Msg::StockAdded {
                product_id: r.product.clone(),
                quantity: r.quantity,
            }
            .encode(),
        });
    }
    for o in &scenario.orders {
        let key = if topics.orders_by_product {
            o.product.clone()
        } else {
            o.id.clone()
        };
        schedule.push(Scheduled {
            at: o.at,
            topic: topics.orders.into(),
            key,
            value: Msg::OrderPlaced {
                order_id: o.id.clone(),
                product_id: o.product.clone(),
                quantity: o.quantity,
                user_id: o.user_id(),
            }
            .encode(),
        });
    }
    let config = SourceConfig {
        idempotent: scenario.topology.order_producer_idempotent
            && !mutations.contains(&Mutation::NonIdempotentRetry),
        ..SourceConfig::default()
    };
    InstanceSpec {
        name: FRONTEND.into(),
        build: Arc::new(move |name| {
            vec![Box::new(SourceClient::new(
                oversell_sim::ClientId::new(name, "producer"),
                config.clone(),
                schedule.clone(),
            )) as Box<dyn oversell_sim::Client>]
        }),
        faulty: false,
        start_at: 0,
    }
}

/// Streams configuration for an application of a design, with the scenario's overrides
/// and the mutations applied.
pub(crate) fn streams_config(
    application_id: &str,
    guarantee: Guarantee,
    scenario: &Scenario,
    mutations: &[Mutation],
) -> StreamsConfig {
    let mut c = StreamsConfig::new(application_id, guarantee);
    let s = &scenario.streams;
    if let Some(v) = s.commit_interval_ms {
        c.commit_interval_ms = v;
    }
    if let Some(v) = s.session_timeout_ms {
        c.session_timeout_ms = v;
    }
    if let Some(v) = s.heartbeat_interval_ms {
        c.heartbeat_interval_ms = v;
    }
    if let Some(v) = s.transaction_timeout_ms {
        c.transaction_timeout_ms = v;
    }
    if let Some(v) = s.request_timeout_ms {
        c.request_timeout_ms = v;
    }
    c.commit_before_process = mutations.contains(&Mutation::CommitBeforeProcess);
    c.unfenced_offsets = mutations.contains(&Mutation::Unfenced);
    c.read_uncommitted = mutations.contains(&Mutation::ReadUncommitted);
    if mutations.contains(&Mutation::NonIdempotentRetry) {
        c.idempotent_producer = false;
    }
    c
}

/// Instances of one service, each built by `build` (called afresh at every restart).
pub(crate) fn service(
    scenario: &Scenario,
    service: &str,
    build: impl Fn(&str) -> Vec<Box<dyn oversell_sim::Client>> + Send + Sync + 'static,
) -> Vec<InstanceSpec> {
    let build: oversell_sim::world::InstanceFactory = Arc::new(build);
    (0..scenario.topology.instances)
        .map(|i| InstanceSpec {
            name: format!("{service}-{i}"),
            build: build.clone(),
            faulty: true,
            start_at: 0,
        })
        .collect()
}

/// World settings from the scenario: faults, bounds, and how long to let it settle.
pub(crate) fn world_config(scenario: &Scenario, settle_extra: Millis) -> WorldConfig {
    let scheduled_end = scenario
        .faults
        .schedule
        .iter()
        .map(|f| f.at())
        .max()
        .unwrap_or(0);
    WorldConfig {
        fault_phase_ms: scenario.faults.phase_ms,
        rates: if scenario.faults.phase_ms > 0 {
            scenario.faults.rates.clone()
        } else {
            FaultRates::default()
        },
        scheduled: scenario.faults.schedule.clone(),
        settle_until: scenario.last_arrival().max(scheduled_end) + settle_extra,
        max_time: scenario.run.max_time_ms,
        ..WorldConfig::default()
    }
}
