//! `naive`: the question's design, as written.
//!
//! OrderService publishes `OrderPlaced` (keyed by product) to `orders`. ProductService
//! runs two things side by side:
//!
//! * a plain consumer of `orders` (its own consumer group, at least once) that asks the
//!   `ProductStock` store, by interactive query, whether stock covers the order, and
//!   publishes `ProductReserved` to `orders` if so, `OrderRejected` otherwise;
//! * a Kafka Streams processor that consumes `orders` and `stock` and keeps the
//!   changelog-backed `ProductStock` store: `StockAdded` adds units, `ProductReserved`
//!   takes them.
//!
//! The store only changes when the processor gets to the `ProductReserved` event, so a
//! second order checked before that sees the old stock.

use super::{Count, Decoder, Store};
use super::{Design, Mutation, Schema};
use crate::domain::Msg;
use crate::kit::{create_topics, service, streams_config, world_config, Frontend};
use crate::scenario::Scenario;
use oversell_sim::{
    changelog_topic, Broker, Client, Context, Guarantee, Input, Processed, Processor,
    StreamsClient, SubTopology, Topology, World,
};
use std::sync::Arc;

pub struct Naive;

pub(crate) const CHECKER_APP: &str = "product-checker";
pub(crate) const STOCK_APP: &str = "product-stock";
pub(crate) const STORE: &str = "ProductStock";

/// The question's check (shared with the madsim driver's async service): reserve when
/// the stock seen covers the order, reject otherwise.
pub(crate) fn reply(stock: i64, order_id: String, product_id: &str, quantity: u64) -> Msg {
    if stock >= quantity as i64 {
        Msg::ProductReserved {
            order_id,
            product_id: product_id.to_string(),
            quantity,
        }
    } else {
        Msg::OrderRejected {
            order_id,
            product_id: product_id.to_string(),
            reason: format!("stock {stock} < {quantity}"),
        }
    }
}

/// What a record does to `ProductStock` (shared with the madsim driver): a product and
/// a delta, for `StockAdded` and `ProductReserved`.
pub(crate) fn stock_change(value: &str) -> Option<(String, i64)> {
    match Msg::decode(value)? {
        Msg::StockAdded {
            product_id,
            quantity,
        } => Some((product_id, quantity as i64)),
        Msg::ProductReserved {
            product_id,
            quantity,
            ..
        } => Some((product_id, -(quantity as i64))),
        _ => None,
    }
}

/// The question's consumer: check stock by interactive query, then publish.
#[derive(Clone)]
struct CheckStock;

impl Processor for CheckStock {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, _state: &mut dyn std::hash::Hasher) -> bool {
        true // nothing outside its stores (its configuration is fixed at build)
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(Msg::OrderPlaced {
            order_id,
            product_id,
            quantity,
            ..
        }) = input.value.as_deref().and_then(Msg::decode)
        else {
            return Processed::Done; // not an order: the other processor's business
        };
        // Integer productStock = getProductStock(order.getProductId());
        let stock: i64 = match ctx.query(STORE, &product_id) {
            Ok(v) => v.and_then(|v| v.parse().ok()).unwrap_or(0),
            Err(_) => return Processed::Retry,
        };
        let reply = reply(stock, order_id, &product_id, quantity);
        ctx.send("orders", &product_id, reply.encode());
        Processed::Done
    }
}

/// The question's stream processor: fold stock changes into `ProductStock`.
#[derive(Clone)]
struct UpdateStock;

impl Processor for UpdateStock {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, _state: &mut dyn std::hash::Hasher) -> bool {
        true // nothing outside its stores (its configuration is fixed at build)
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some((product, delta)) = input.value.as_deref().and_then(stock_change) else {
            return Processed::Done;
        };
        let stock: i64 = ctx
            .get(STORE, &product)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        ctx.put(STORE, &product, Some((stock + delta).to_string()));
        Processed::Done
    }
}

impl Design for Naive {
    fn name(&self) -> &'static str {
        "naive"
    }

    fn summary(&self) -> &'static str {
        "the question's design: check stock by query, reserve through a separate stream processor"
    }

    fn schema(&self) -> Schema {
        Schema {
            stores: vec![Store {
                application: STOCK_APP.into(),
                name: STORE.into(),
                changelog: changelog_topic(STOCK_APP, STORE),
                decoder: Decoder::Available(Count::of_product_key),
            }],
            copies: vec![],
            decisions: &["ProductReserved", "OrderRejected"],
            reservations_settle: false,
        }
    }

    fn build(&self, scenario: &Scenario, mutations: &[Mutation]) -> World {
        let mut broker = Broker::new();
        create_topics(
            &mut broker,
            scenario,
            &["orders", "stock"],
            &[changelog_topic(STOCK_APP, STORE)],
        );
        let frontend = Frontend {
            orders_by_product: true,
            ..Frontend::new("orders", "stock")
        };
        let mut instances = vec![frontend.instance(scenario, mutations)];
        let checker_config =
            streams_config(CHECKER_APP, Guarantee::AtLeastOnce, scenario, mutations);
        let stock_config = streams_config(STOCK_APP, Guarantee::AtLeastOnce, scenario, mutations);
        let checker = Topology {
            subtopologies: vec![SubTopology {
                name: "check-stock".into(),
                sources: vec!["orders".into()],
                stores: vec![],
                processor: Arc::new(|_| Box::new(CheckStock)),
                punctuate: None,
            }],
        };
        let stock = Topology {
            subtopologies: vec![SubTopology {
                name: "update-stock".into(),
                sources: vec!["orders".into(), "stock".into()],
                stores: vec![STORE.into()],
                processor: Arc::new(|_| Box::new(UpdateStock)),
                punctuate: None,
            }],
        };
        instances.extend(service(scenario, "product-service", move |name| {
            vec![
                Box::new(StreamsClient::new(
                    name,
                    checker_config.clone(),
                    checker.clone(),
                )) as Box<dyn Client>,
                Box::new(StreamsClient::new(
                    name,
                    stock_config.clone(),
                    stock.clone(),
                )),
            ]
        }));
        let mut world = World::new(broker, instances, world_config(scenario, 1000));
        // The stock check reads the stock store wherever it is hosted.
        world.declare_interactive_queries();
        world
    }
}
