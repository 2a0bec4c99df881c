//! oversell: deterministic simulation of event-sourced inventory services on Kafka.
//!
//! The kernel ([`sim`], crate `oversell-sim`) simulates a Kafka broker, Kafka Streams'
//! processing loop and a seeded scheduler. This crate adds the inventory [`domain`], the
//! [`designs`] under test, the [`checker`] that judges runs, [`scenario`] files, the
//! [`run`] entry points, the [`cli`] and [`testing`], which checks a design of one's own
//! in one's own `cargo test`.
//!
//! # A design of your own
//!
//! Add `oversell` as a dev-dependency, write a [`Design`] whose [`Processor`]s use the
//! shared [`domain`] vocabulary, declare its stores in a [`Schema`] (each with a
//! [`Decoder`] of its records, so that the checker reads the run alone), build its world
//! from [`kit`]'s blocks, and register it: `Registry::builtin().with(Box::new(Mine))`.
//!
//! ```
//! use oversell::designs::{Book, Count, Decoder, Design, Mutation, Registry, Schema, Store};
//! use oversell::domain::{Msg, Validation};
//! use oversell::kit::{self, Frontend};
//! use oversell::scenario::Scenario;
//! use oversell::sim::{changelog_topic, Broker, Client, Context, Guarantee, Input,
//!     Processed, Processor, StreamsClient, SubTopology, Topology, World};
//! use std::sync::Arc;
//!
//! /// Orders keyed by product, checked and reserved in one step over a `stock` store.
//! struct Mine;
//!
//! struct Reserve;
//!
//! impl Processor for Reserve {
//!     fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
//!         let stock = |ctx: &mut Context<'_, '_>, p: &str| -> u64 {
//!             ctx.get("stock", p).map_or(0, |v| v.parse().unwrap())
//!         };
//!         match input.value.as_deref().and_then(Msg::decode) {
//!             Some(Msg::StockAdded { product_id, quantity }) => {
//!                 let units = stock(ctx, &product_id) + quantity;
//!                 ctx.put("stock", &product_id, Some(units.to_string()));
//!             }
//!             Some(Msg::OrderPlaced { order_id, product_id, quantity, .. }) => {
//!                 let units = stock(ctx, &product_id);
//!                 let result = if units >= quantity {
//!                     ctx.put("stock", &product_id, Some((units - quantity).to_string()));
//!                     Validation::Pass
//!                 } else {
//!                     Validation::Fail
//!                 };
//!                 let out = Msg::OrderValidation { order_id: order_id.clone(), product_id, quantity, result };
//!                 ctx.send("validations", &order_id, out.encode());
//!             }
//!             _ => {}
//!         }
//!         Processed::Done
//!     }
//! }
//!
//! impl Design for Mine {
//!     fn name(&self) -> &'static str { "mine" }
//!     fn summary(&self) -> &'static str { "check and reserve in one step, exactly once" }
//!     fn schema(&self) -> Schema {
//!         Schema {
//!             stores: vec![Store {
//!                 application: "mine".into(),
//!                 name: "stock".into(),
//!                 changelog: changelog_topic("mine", "stock"),
//!                 decoder: Decoder::Available(Count::of_product_key),
//!             }],
//!             copies: vec![],
//!             decisions: &["OrderValidation"],
//!             reservations_settle: false,
//!         }
//!     }
//!     fn build(&self, scenario: &Scenario, mutations: &[Mutation]) -> World {
//!         let mut broker = Broker::new();
//!         kit::create_topics(&mut broker, scenario, &["orders", "stock-in", "validations"],
//!             &[changelog_topic("mine", "stock")]);
//!         let frontend = Frontend { orders_by_product: true, ..Frontend::new("orders", "stock-in") };
//!         let mut instances = vec![frontend.instance(scenario, mutations)];
//!         let config = kit::streams_config("mine", Guarantee::ExactlyOnceV2, scenario, mutations);
//!         let topology = Topology { subtopologies: vec![SubTopology {
//!             name: "reserve".into(),
//!             sources: vec!["orders".into(), "stock-in".into()],
//!             stores: vec!["stock".into()],
//!             processor: Arc::new(|_| Box::new(Reserve)),
//!             punctuate: None,
//!         }] };
//!         instances.extend(kit::service(scenario, "product-service", move |name| {
//!             vec![Box::new(StreamsClient::new(name, config.clone(), topology.clone())) as Box<dyn Client>]
//!         }));
//!         World::new(broker, instances, kit::world_config(scenario, 1000))
//!     }
//! }
//!
//! let registry = Registry::builtin().with(Box::new(Mine));
//! let scenario = oversell::load::load_str(
//!     "name = \"last-unit\"\n[[products]]\nid = \"p1\"\nstock = 1\n\
//!      [[orders]]\nid = \"o1\"\nproduct = \"p1\"\nat = 100\n\
//!      [[orders]]\nid = \"o2\"\nproduct = \"p1\"\nat = 100\n",
//!     "last-unit.toml",
//! ).unwrap();
//! let judged = oversell::run::run_seed(registry.get("mine").unwrap(), &scenario, &[], 0);
//! assert!(judged.verdict.violated().is_empty(), "{:?}", judged.verdict.violations);
//! ```
//!
//! Then check it over scenario files, their regression seeds and generated scenarios
//! with [`testing::Suite`], and give it the `oversell` command with
//! `oversell::cli::main(Registry::builtin().with(Box::new(Mine)))` in a binary of your
//! own. `examples/ledger` (crate `oversell-ledger`) is a complete one.

pub mod checker;
pub mod cli;
pub mod designs;
pub mod domain;
pub mod exhaustive;
pub mod expect;
pub mod kit;
pub mod live;
pub mod load;
pub mod madsim_driver;
pub mod matrix;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod shrink;
pub mod swarm;
pub mod testing;

pub use oversell_sim as sim;

pub use checker::{check, Invariant, Verdict, Violation};
pub use designs::{Book, Count, Decoder, Design, Mutation, Registry, Schema, Store};
pub use domain::{InventoryRow, Msg, Validation};
pub use run::{run_seed, Judged};
pub use scenario::Scenario;
pub use sim::{Context, Input, Processed, Processor};
pub use testing::Suite;
