//! `ledger`: a reservation ledger keyed by order, written outside oversell against its
//! public API only (`oversell::designs`, `oversell::kit`, `oversell::domain`,
//! `oversell::sim`).
//!
//! ```text
//! orders (keyed by order id)
//!   .selectKey(order.product)                         // through a repartition topic
//!   .process(Reserve, [on-hand, ledger])              // one task per product partition
//!   .to(order-validations)                            // PASS / FAIL
//! stock (StockAdded, keyed by product) ──▶ Reserve    // same task: on-hand += units
//! ```
//!
//! Two stores, under `exactly_once_v2`:
//!
//! * `on-hand`, keyed by product: units available to new orders (decimal text);
//! * `ledger`, keyed by **order id**: `{"product":…,"units":…,"state":"reserved"|"rejected"}`,
//!   the decision taken for the order.
//!
//! An order already in the ledger is not decided again: a duplicated `OrderPlaced` (a
//! producer retry without idempotence) is a no-op, where Confluent's `InventoryService`
//! reserves it twice. Reservations are held for good, as Confluent's are.

use oversell::designs::{Book, Count, Decoder, Design, Mutation, Schema, Store};

use oversell::domain::{Msg, Validation};
use oversell::kit::{self, Frontend};
use oversell::scenario::Scenario;
use oversell::sim::{
    changelog_topic, Broker, Client, Context, Guarantee, Input, Processed, Processor,
    StreamsClient, SubTopology, Topology, World,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The design; register it with `Registry::builtin().with(Box::new(Ledger))`.
pub struct Ledger;

const APP: &str = "ledger-service";
const ORDERS: &str = "orders";
const STOCK: &str = "stock";
const REPARTITION: &str = "ledger-service-orders-by-product-repartition";
const VALIDATIONS: &str = "order-validations";
const ON_HAND: &str = "on-hand";
const LEDGER: &str = "ledger";

/// One order's entry in the ledger store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub product: String,
    pub units: u64,
    pub state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Reserved,
    Rejected,
}

impl Entry {
    /// The ledger store's decoder: an order's entry is a [`Book`] of its product that
    /// holds the order's units (nothing for a rejected order) and adds nothing available.
    pub fn decode(key: &str, value: &str) -> Result<Book, String> {
        let e: Entry =
            serde_json::from_str(value).map_err(|e| format!("{value:?} is not an entry: {e}"))?;
        let mut book = Book {
            product: e.product,
            ..Book::default()
        };
        if e.state == State::Reserved {
            book.confirmed.insert(key.to_string(), e.units);
        }
        Ok(book)
    }
}

/// The on-hand store's decoder: the available column of the product's books (the
/// checker merges the books of every store, so the ledger's entries add the holds).
pub fn on_hand(key: &str, value: &str) -> Result<Book, String> {
    let Count { product, units } = Count::of_product_key(key, value)?;
    Ok(Book {
        product,
        available: units,
        ..Book::default()
    })
}

/// `selectKey(order.product)`.
#[derive(Clone)]
struct ByProduct;

impl Processor for ByProduct {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, _state: &mut dyn std::hash::Hasher) -> bool {
        true // nothing outside its stores (its configuration is fixed at build)
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        if let Some(value) = &input.value {
            if let Some(Msg::OrderPlaced { product_id, .. }) = Msg::decode(value) {
                ctx.send(REPARTITION, &product_id, value.clone());
            }
        }
        Processed::Done
    }
}

/// Stock arrivals and orders of one product partition.
#[derive(Clone)]
struct Reserve;

impl Reserve {
    fn on_hand(ctx: &mut Context<'_, '_>, product: &str) -> u64 {
        ctx.get(ON_HAND, product)
            .map(|v| v.parse().expect("on-hand holds whole numbers"))
            .unwrap_or(0)
    }

    fn order(ctx: &mut Context<'_, '_>, order: String, product: String, units: u64) {
        if ctx.get(LEDGER, &order).is_some() {
            ctx.note(format!(
                "order {order} is in the ledger already: not decided again"
            ));
            return;
        }
        let on_hand = Self::on_hand(ctx, &product);
        let state = if on_hand >= units {
            ctx.put(ON_HAND, &product, Some((on_hand - units).to_string()));
            State::Reserved
        } else {
            State::Rejected
        };
        let entry = Entry {
            product: product.clone(),
            units,
            state,
        };
        let value = serde_json::to_string(&entry).expect("entries serialise");
        ctx.put(LEDGER, &order, Some(value));
        let result = match state {
            State::Reserved => Validation::Pass,
            State::Rejected => Validation::Fail,
        };
        let out = Msg::OrderValidation {
            order_id: order.clone(),
            product_id: product,
            quantity: units,
            result,
        };
        ctx.send(VALIDATIONS, &order, out.encode());
    }
}

impl Processor for Reserve {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, _state: &mut dyn std::hash::Hasher) -> bool {
        true // nothing outside its stores (its configuration is fixed at build)
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        match input.value.as_deref().and_then(Msg::decode) {
            Some(Msg::StockAdded {
                product_id,
                quantity,
            }) => {
                let on_hand = Self::on_hand(ctx, &product_id);
                ctx.put(ON_HAND, &product_id, Some((on_hand + quantity).to_string()));
            }
            Some(Msg::OrderPlaced {
                order_id,
                product_id,
                quantity,
                ..
            }) => Self::order(ctx, order_id, product_id, quantity),
            _ => {}
        }
        Processed::Done
    }
}

impl Design for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn summary(&self) -> &'static str {
        "a reservation ledger keyed by order, re-keyed by product, exactly_once_v2"
    }

    fn schema(&self) -> Schema {
        Schema {
            stores: vec![
                Store {
                    application: APP.into(),
                    name: ON_HAND.into(),
                    changelog: changelog_topic(APP, ON_HAND),
                    decoder: Decoder::Book(on_hand),
                },
                Store {
                    application: APP.into(),
                    name: LEDGER.into(),
                    changelog: changelog_topic(APP, LEDGER),
                    decoder: Decoder::Book(Entry::decode),
                },
            ],
            copies: vec![REPARTITION.into()],
            decisions: &["OrderValidation"],
            reservations_settle: false,
        }
    }

    fn build(&self, scenario: &Scenario, mutations: &[Mutation]) -> World {
        let mut broker = Broker::new();
        kit::create_topics(
            &mut broker,
            scenario,
            &[ORDERS, STOCK, REPARTITION, VALIDATIONS],
            &[changelog_topic(APP, ON_HAND), changelog_topic(APP, LEDGER)],
        );
        let mut instances = vec![Frontend::new(ORDERS, STOCK).instance(scenario, mutations)];
        let config = kit::streams_config(APP, Guarantee::ExactlyOnceV2, scenario, mutations);
        let topology = Topology {
            subtopologies: vec![
                SubTopology {
                    name: "by-product".into(),
                    sources: vec![ORDERS.into()],
                    stores: vec![],
                    processor: Arc::new(|_| Box::new(ByProduct)),
                    punctuate: None,
                },
                SubTopology {
                    name: "reserve".into(),
                    sources: vec![REPARTITION.into(), STOCK.into()],
                    stores: vec![ON_HAND.into(), LEDGER.into()],
                    processor: Arc::new(|_| Box::new(Reserve)),
                    punctuate: None,
                },
            ],
        };
        instances.extend(kit::service(scenario, "product-service", move |name| {
            vec![
                Box::new(StreamsClient::new(name, config.clone(), topology.clone()))
                    as Box<dyn Client>,
            ]
        }));
        World::new(broker, instances, kit::world_config(scenario, 1000))
    }
}
