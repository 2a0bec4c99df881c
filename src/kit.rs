//! Building blocks for a design's [`Design::build`](crate::designs::Design::build): the
//! outside world (customers and the warehouse), topics, service instances and their
//! Kafka Streams settings, all taken from the scenario the same way for every design.
//!
//! ```
//! use oversell::kit::{self, Frontend};
//! use oversell::scenario::Scenario;
//! use oversell::sim::{Broker, World};
//!
//! fn build(scenario: &Scenario) -> World {
//!     let mut broker = Broker::new();
//!     kit::create_topics(&mut broker, scenario, &["orders", "stock"], &[]);
//!     let frontend = Frontend::new("orders", "stock").instance(scenario, &[]);
//!     World::new(broker, vec![frontend], kit::world_config(scenario, 1000))
//! }
//! # let scenario = oversell::load::load_str(
//! #     "name = \"x\"\n[[products]]\nid = \"p\"\nstock = 1\n[expect]\nnaive = \"holds\"\n",
//! #     "x.toml",
//! # ).unwrap();
//! # let _ = build(&scenario);
//! ```

use crate::designs::Mutation;
use crate::domain::{InventoryRow, Msg};
use crate::scenario::Scenario;
use oversell_sim::protocol::Acks;
use oversell_sim::{
    Broker, Client, FaultRates, Guarantee, InstanceSpec, Millis, Scheduled, SourceClient,
    SourceConfig, StreamsConfig, TopicConfig, WorldConfig,
};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::designs::{FRONTEND, SERVICES};

/// How the warehouse writes stock to its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockRecords {
    /// A [`Msg::StockAdded`] per arrival: the units that arrived (initial stock at time 0,
    /// then each restock). A consumer that sums them must not sum a replayed one twice.
    Deltas,
    /// An [`InventoryRow`] per arrival: the units that arrived and the product's absolute
    /// count after them, as Confluent's `warehouse-inventory` topic holds it.
    AbsoluteCounts,
}

/// The outside world: customers placing orders and the warehouse adding stock, written
/// by one non-faulty producer (`frontend`) at the scenario's times.
#[derive(Clone, Debug)]
pub struct Frontend {
    /// Topic of `OrderPlaced` events.
    pub orders: String,
    /// Key orders by product id (`true`) or by order id (`false`).
    pub orders_by_product: bool,
    /// Topic of the warehouse's stock records, keyed by product id.
    pub stock: String,
    pub stock_records: StockRecords,
}

impl Frontend {
    /// Orders keyed by order id, stock as deltas.
    pub fn new(orders: &str, stock: &str) -> Frontend {
        Frontend {
            orders: orders.into(),
            orders_by_product: false,
            stock: stock.into(),
            stock_records: StockRecords::Deltas,
        }
    }

    /// The records of the scenario, each at its time: initial stock at time 0, restocks,
    /// orders (the producer writes records of equal time in this order).
    pub fn schedule(&self, scenario: &Scenario) -> Vec<Scheduled> {
        let mut schedule = self.stock_schedule(scenario);
        for o in &scenario.orders {
            let key = if self.orders_by_product {
                &o.product
            } else {
                &o.id
            };
            let value = Msg::OrderPlaced {
                order_id: o.id.clone(),
                product_id: o.product.clone(),
                quantity: o.quantity,
                user_id: o.user_id(),
            };
            schedule.push(self.record(o.at, &self.orders, key, value.encode()));
        }
        schedule
    }

    fn stock_schedule(&self, scenario: &Scenario) -> Vec<Scheduled> {
        let mut arrivals: Vec<(Millis, &str, u64)> = Vec::new();
        for p in &scenario.products {
            arrivals.push((0, &p.id, p.stock));
        }
        for r in &scenario.restocks {
            arrivals.push((r.at, &r.product, r.quantity));
        }
        // The producer writes in this order (stable by time), so counts follow it.
        let mut order: Vec<usize> = (0..arrivals.len()).collect();
        order.sort_by_key(|&i| arrivals[i].0);
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut values = vec![String::new(); arrivals.len()];
        for i in order {
            let (_, product, quantity) = arrivals[i];
            let count = counts.entry(product).or_insert(0);
            *count += quantity;
            values[i] = self.stock_value(product, quantity, *count);
        }
        arrivals
            .iter()
            .zip(values)
            .map(|(&(at, product, _), value)| self.record(at, &self.stock, product, value))
            .collect()
    }

    fn stock_value(&self, product: &str, quantity: u64, count: u64) -> String {
        match self.stock_records {
            StockRecords::Deltas => Msg::StockAdded {
                product_id: product.into(),
                quantity,
            }
            .encode(),
            StockRecords::AbsoluteCounts => InventoryRow {
                product_id: product.into(),
                quantity,
                count,
            }
            .encode(),
        }
    }

    fn record(&self, at: Millis, topic: &str, key: &str, value: String) -> Scheduled {
        Scheduled {
            at,
            topic: topic.into(),
            key: key.into(),
            value,
        }
    }

    /// The frontend instance. Its producer is idempotent unless the scenario's topology
    /// or the `non-idempotent-retry` mutation says otherwise.
    pub fn instance(&self, scenario: &Scenario, mutations: &[Mutation]) -> InstanceSpec {
        let schedule = self.schedule(scenario);
        let acks = scenario.producer.acks;
        let config = SourceConfig {
            // Kafka's producer turns idempotence off unless acks=all
            // (`ProducerConfig.postProcessAndValidateIdempotenceConfigs`).
            idempotent: scenario.topology.order_producer_idempotent
                && acks == Acks::All
                && !mutations.contains(&Mutation::NonIdempotentRetry),
            acks,
            ..SourceConfig::default()
        };
        InstanceSpec {
            name: FRONTEND.into(),
            build: Arc::new(move |name| {
                vec![Box::new(SourceClient::new(
                    oversell_sim::ClientId::new(name, "producer"),
                    config.clone(),
                    schedule.clone(),
                )) as Box<dyn Client>]
            }),
            faulty: false,
            start_at: 0,
        }
    }
}

/// Create topics, all with the scenario's partition count: `plain` ones and `compacted`
/// ones (changelogs; see [`oversell_sim::changelog_topic`]).
///
/// # Panics
/// If a topic name is repeated: a design's topics are distinct.
pub fn create_topics(
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

/// Kafka Streams settings of an application: the kernel's defaults, the scenario's
/// `[streams]` overrides, and the mutations that change the runtime
/// (`commit-before-process`, `unfenced`, `read-uncommitted`, `non-idempotent-retry`).
pub fn streams_config(
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
    if let Some(v) = s.linger_ms {
        c.linger_ms = v;
    }
    if let Some(v) = s.fetch_max_wait_ms {
        c.fetch_max_wait_ms = v;
    }
    if let Some(v) = s.rebalance_protocol {
        c.rebalance_protocol = v;
    }
    c.commit_before_process = mutations.contains(&Mutation::CommitBeforeProcess);
    c.unfenced_offsets = mutations.contains(&Mutation::Unfenced);
    c.read_uncommitted = mutations.contains(&Mutation::ReadUncommitted);
    c.position_by_count = mutations.contains(&Mutation::PositionByCount);
    c.resume_after_committed = mutations.contains(&Mutation::ResumeAfterCommitted);
    if mutations.contains(&Mutation::NonIdempotentRetry) {
        c.idempotent_producer = false;
    }
    c
}

/// The instances of one service, `<service>-<index>` for the scenario's
/// `topology.instances`; `build` makes an instance's clients, afresh at every restart.
pub fn service(
    scenario: &Scenario,
    service: &str,
    build: impl Fn(&str) -> Vec<Box<dyn Client>> + Send + Sync + 'static,
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

/// World settings from the scenario: faults, time bounds, and `settle_extra` ms after the
/// last arrival or scheduled fault before the run may end quiescent.
pub fn world_config(scenario: &Scenario, settle_extra: Millis) -> WorldConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_counts_follow_arrivals_in_time_order() {
        let text = "name = \"x\"\n[[products]]\nid = \"p\"\nstock = 3\n\
            [[restocks]]\nproduct = \"p\"\nquantity = 2\nat = 300\n\
            [[restocks]]\nproduct = \"p\"\nquantity = 1\nat = 100\n\
            [expect]\nnaive = \"holds\"\n";
        let scenario = crate::load::load_str(text, "x.toml").expect("valid");
        let frontend = Frontend {
            stock_records: StockRecords::AbsoluteCounts,
            ..Frontend::new("orders", "stock")
        };
        let rows: Vec<(Millis, u64)> = frontend
            .schedule(&scenario)
            .iter()
            .map(|s| (s.at, InventoryRow::decode(&s.value).expect("a row").count))
            .collect();
        assert_eq!(rows, vec![(0, 3), (300, 6), (100, 4)]);
    }
}
