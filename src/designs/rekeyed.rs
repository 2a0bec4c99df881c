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
//! The warehouse writes each product's *absolute* count to `warehouse-inventory`, and the
//! inventory table holds the latest one, as Confluent's code does: `AddInventory` sends
//! `(product, count)` records with `Serdes.Integer()` values, `InventoryService` reads the
//! topic with `builder.table(Topics.WAREHOUSE_INVENTORY...)` and joins each order with
//! the product's row (confluentinc/kafka-streams-examples,
//! `src/main/java/io/confluent/examples/streams/microservices/{AddInventory,InventoryService}.java`).
//! Replaying an inventory record writes the same row again, so only the `reserved-stock`
//! store can be doubled by a replay.
//!
//! `rekeyed-alo` runs with `at_least_once`, as the example ships; `rekeyed-eos` with
//! `exactly_once_v2`. `rekeyed-alo-delta` is a variant that is *not* Confluent's: the
//! warehouse writes stock additions and the table sums them, so a replayed addition
//! counts twice (at least once, a crash between the store write and the offset commit).

use super::{Count, Decoder, Design, Mutation, Schema, Store};
use crate::domain::{InventoryRow, Msg, Validation};
use crate::kit::{create_topics, service, streams_config, world_config, Frontend, StockRecords};
use crate::scenario::Scenario;
use oversell_sim::{
    changelog_topic, Broker, Client, Context, Guarantee, Input, Processed, Processor,
    StreamsClient, SubTopology, Topology, World,
};
use std::sync::Arc;

pub struct Rekeyed {
    pub guarantee: Guarantee,
    /// What the warehouse writes: absolute counts (Confluent) or additions (a variant).
    pub inventory: StockRecords,
}

pub(crate) const APP: &str = "inventory-service";
const REPARTITION: &str = "inventory-service-orders-by-product-repartition";
pub(crate) const INVENTORY: &str = "warehouse-inventory";
pub(crate) const INVENTORY_STORE: &str = "warehouse-inventory-store";
pub(crate) const RESERVED_STORE: &str = "reserved-stock";
pub(crate) const VALIDATIONS: &str = "order-validations";

/// `selectKey(order.product)`: forward each order to the repartition topic.
#[derive(Clone)]
struct SelectKey;

impl Processor for SelectKey {
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

/// The join with the inventory table and `InventoryValidator`.
/// The validate-and-reserve decision over the two stores (shared with the madsim
/// driver's async service): PASS, with the new reserved count, when the inventory
/// covers what is reserved plus this order; FAIL otherwise.
pub(crate) fn reserve(inventory: i64, reserved: i64, quantity: u64) -> (Validation, Option<i64>) {
    if inventory - reserved - quantity as i64 >= 0 {
        (Validation::Pass, Some(reserved + quantity as i64))
    } else {
        (Validation::Fail, None)
    }
}

#[derive(Clone)]
struct Validate {
    inventory: StockRecords,
}

impl Validate {
    /// The KTable side: keep the product's inventory row.
    fn inventory_row(
        &self,
        ctx: &mut Context<'_, '_>,
        value: &str,
        product_id: &str,
        quantity: u64,
    ) {
        let row = match self.inventory {
            // Confluent: the row is the warehouse's latest absolute count.
            StockRecords::AbsoluteCounts => {
                InventoryRow::decode(value)
                    .expect("the warehouse writes counted rows")
                    .count
            }
            // The variant: the row is the running sum of additions.
            StockRecords::Deltas => {
                let total: u64 = ctx
                    .get(INVENTORY_STORE, product_id)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                total + quantity
            }
        };
        ctx.put(INVENTORY_STORE, product_id, Some(row.to_string()));
    }
}

impl Processor for Validate {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, _state: &mut dyn std::hash::Hasher) -> bool {
        true // nothing outside its stores (its configuration is fixed at build)
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(value) = input.value.as_deref() else {
            return Processed::Done;
        };
        match Msg::decode(value) {
            Some(Msg::StockAdded {
                product_id,
                quantity,
            }) => self.inventory_row(ctx, value, &product_id, quantity),
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
                let (result, now_reserved) = reserve(inventory, reserved, quantity);
                if let Some(now_reserved) = now_reserved {
                    ctx.put(RESERVED_STORE, &product_id, Some(now_reserved.to_string()));
                }
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
        match (self.guarantee, self.inventory) {
            (Guarantee::AtLeastOnce, StockRecords::AbsoluteCounts) => "rekeyed-alo",
            (Guarantee::ExactlyOnceV2, StockRecords::AbsoluteCounts) => "rekeyed-eos",
            (Guarantee::AtLeastOnce, StockRecords::Deltas) => "rekeyed-alo-delta",
            (Guarantee::ExactlyOnceV2, StockRecords::Deltas) => "rekeyed-eos-delta",
        }
    }

    fn summary(&self) -> &'static str {
        match (self.guarantee, self.inventory) {
            (Guarantee::AtLeastOnce, StockRecords::AbsoluteCounts) => {
                "Confluent's InventoryService as it ships: re-keyed by product, at_least_once"
            }
            (Guarantee::ExactlyOnceV2, StockRecords::AbsoluteCounts) => {
                "the same under exactly_once_v2: output, changelog and offsets in one transaction"
            }
            (_, StockRecords::Deltas) => {
                "not Confluent's: the inventory table sums stock additions, so a replay inflates it"
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
        let frontend = Frontend {
            stock_records: self.inventory,
            ..Frontend::new("orders", INVENTORY)
        };
        let mut instances = vec![frontend.instance(scenario, mutations)];
        let config = streams_config(APP, self.guarantee, scenario, mutations);
        let inventory = self.inventory;
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
                    processor: Arc::new(move |_| Box::new(Validate { inventory })),
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
