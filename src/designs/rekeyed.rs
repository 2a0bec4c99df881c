//! `rekeyed-alo` and `rekeyed-eos`: Confluent's `InventoryService`.
//!
//! ```text
//! orders.selectKey(order -> order.product)           // through a repartition topic
//!       .join(warehouseInventory)                     // KStream-KTable inner join
//!       .transform(InventoryValidator, RESERVED_STOCK) // check and reserve in one step
//!       .to(ORDER_VALIDATIONS)                        // PASS / FAIL
//! ```
//!
//! Orders are keyed by order id, re-keyed by product id so that one task handles every
//! order of a product, one at a time. The validator reads the inventory row and the
//! product's reserved units and, if `inventory − reserved − quantity ≥ 0`, adds the
//! quantity to the reserved store and emits PASS; otherwise FAIL. Reserved units are
//! never released. An order whose product has no inventory row yet is dropped by the
//! inner join, as in the original.
//!
//! The warehouse topic carries stock *additions*; the inventory table holds their
//! running total (the original's table holds absolute counts written by the warehouse).
//!
//! `rekeyed-alo` runs with `at_least_once`, as the example ships; `rekeyed-eos` with
//! `exactly_once_v2`.

use super::{
    create_topics, frontend, service, streams_config, world_config, Design, FrontendTopics,
    Mutation, Schema,
};
use super::{Count, Decoder, Store};
use crate::domain::{Msg, Validation};
use crate::scenario::Scenario;
use oversell_sim::{
    changelog_topic, Broker, Client, Context, Guarantee, Input, Processed, Processor,
    StreamsClient, SubTopology, Topology, World,
};
use std::sync::Arc;

pub struct Rekeyed {
    pub guarantee: Guarantee,
}

const APP: &str = "inventory-service";
const REPARTITION: &str = "inventory-service-orders-by-product-repartition";
const INVENTORY: &str = "warehouse-inventory";
const INVENTORY_STORE: &str = "warehouse-inventory-store";
const RESERVED_STORE: &str = "reserved-stock";
const VALIDATIONS: &str = "order-validations";

/// `selectKey(order.product)`: forward each order to the repartition topic.
struct SelectKey;

impl Processor for SelectKey {
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        if let Some(value) = &input.value {
            if let Some(Msg::OrderPlaced { product_id, .. }) = Msg::decode(value) {
                ctx.send(REPARTITION, &product_id, value.clone());
            }
        }
        Processed::Done
    }
}

/// The join with the inventory table and `InventoryValidator`.
struct Validate;

impl Processor for Validate {
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        match input.value.as_deref().and_then(Msg::decode) {
            Some(Msg::StockAdded {
                product_id,
                quantity,
            }) => {
                // The KTable side: keep the product's inventory row.
                let total: u64 = ctx
                    .get(INVENTORY_STORE, &product_id)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                ctx.put(
                    INVENTORY_STORE,
                    &product_id,
                    Some((total + quantity).to_string()),
                );
            }
            Some(Msg::OrderPlaced {
                order_id,
                product_id,
                quantity,
                ..
            }) => {
                let Some(inventory) = ctx.get(INVENTORY_STORE, &product_id) else {
                    ctx.note(format!(
                        "inner join: no inventory row for {product_id}; order {order_id} dropped"
                    ));
                    return Processed::Done;
                };
                let inventory: i64 = inventory.parse().unwrap_or(0);
                let reserved: i64 = ctx
                    .get(RESERVED_STORE, &product_id)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let result = if inventory - reserved - quantity as i64 >= 0 {
                    ctx.put(
                        RESERVED_STORE,
                        &product_id,
                        Some((reserved + quantity as i64).to_string()),
                    );
                    Validation::Pass
                } else {
                    Validation::Fail
                };
                let out = Msg::OrderValidation {
                    order_id: order_id.clone(),
                    product_id,
                    quantity,
                    result,
                };
                ctx.send(VALIDATIONS, &order_id, out.encode());
            }
            _ => {}
        }
        Processed::Done
    }
}

impl Design for Rekeyed {
    fn name(&self) -> &'static str {
        match self.guarantee {
            Guarantee::AtLeastOnce => "rekeyed-alo",
            Guarantee::ExactlyOnceV2 => "rekeyed-eos",
        }
    }

    fn summary(&self) -> &'static str {
        match self.guarantee {
            Guarantee::AtLeastOnce => {
                "Confluent's InventoryService as it ships: re-keyed by product, at_least_once"
            }
            Guarantee::ExactlyOnceV2 => {
                "the same under exactly_once_v2: output, changelog and offsets in one transaction"
            }
        }
    }

    fn schema(&self) -> Schema {
        Schema {
            stores: vec![
                Store {
                    application: APP.into(),
                    name: INVENTORY_STORE.into(),
                    changelog: changelog_topic(APP, INVENTORY_STORE),
                    decoder: Decoder::InStock(Count::of_product_key),
                },
                Store {
                    application: APP.into(),
                    name: RESERVED_STORE.into(),
                    changelog: changelog_topic(APP, RESERVED_STORE),
                    decoder: Decoder::Reserved(Count::of_product_key),
                },
            ],
            copies: vec![REPARTITION.into()],
            decisions: &["OrderValidation"],
            reservations_settle: false,
        }
    }

    fn build(&self, scenario: &Scenario, mutations: &[Mutation]) -> World {
        let mut broker = Broker::new();
        create_topics(
            &mut broker,
            scenario,
            &["orders", INVENTORY, REPARTITION, VALIDATIONS],
            &[
                changelog_topic(APP, INVENTORY_STORE),
                changelog_topic(APP, RESERVED_STORE),
            ],
        );
        let mut instances = vec![frontend(
            scenario,
            FrontendTopics {
                orders: "orders",
                orders_by_product: false,
                stock: INVENTORY,
            },
            mutations,
        )];
        let config = streams_config(APP, self.guarantee, scenario, mutations);
        let topology = Topology {
            subtopologies: vec![
                SubTopology {
                    name: "select-key".into(),
                    sources: vec!["orders".into()],
                    stores: vec![],
                    processor: Arc::new(|_| Box::new(SelectKey)),
                    punctuate: None,
                },
                SubTopology {
                    name: "validate".into(),
                    sources: vec![REPARTITION.into(), INVENTORY.into()],
                    stores: vec![INVENTORY_STORE.into(), RESERVED_STORE.into()],
                    processor: Arc::new(|_| Box::new(Validate)),
                    punctuate: None,
                },
            ],
        };
        instances.extend(service(scenario, "product-service", move |name| {
            vec![
                Box::new(StreamsClient::new(name, config.clone(), topology.clone()))
                    as Box<dyn Client>,
            ]
        }));
        World::new(broker, instances, world_config(scenario, 1000))
    }
}
