//! `saga`: the second answer's process manager.
//!
//! * OrderService (a process manager, exactly-once) consumes `orders` and
//!   `order-replies`, keeps each order's state in `order-state`, and sends commands to
//!   ProductService: `ReserveStock` when an order is placed; after the reservation, the
//!   payment step runs (it takes `payments.delay_ms`; which orders fail is scenario data)
//!   and then `ConfirmReservation` or `CancelReservation`. It ends each order with
//!   `OrderConfirmed` or `OrderCancelled` on `order-outcomes`.
//! * ProductService (re-keyed by product, exactly-once) keeps a [`Ledger`] per product in
//!   `stock-ledger`: it reserves or rejects, confirms, releases on cancel, and a
//!   wall-clock punctuation releases reservations not confirmed within the timeout.
//!   Every command is idempotent: a repeated one gets the same answer and no second
//!   effect.

use super::{Decoder, Store};
use super::{Design, Ledger, Mutation, Schema};
use crate::domain::Msg;
use crate::kit::{create_topics, service, streams_config, world_config, Frontend};
use crate::scenario::Scenario;
use oversell_sim::{
    changelog_topic, Broker, Client, Context, Guarantee, Input, Millis, Processed, Processor,
    Punctuation, StreamsClient, SubTopology, Topology, World,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub struct Saga;

const ORDER_APP: &str = "order-service";
const PRODUCT_APP: &str = "product-service";
const ORDER_STORE: &str = "order-state";
const LEDGER_STORE: &str = "stock-ledger";
const COMMANDS: &str = "product-commands";
const REPLIES: &str = "order-replies";
const OUTCOMES: &str = "order-outcomes";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    Reserving,
    Paying { due: Millis },
    Confirming,
    Confirmed,
    Cancelled,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OrderState {
    product: String,
    quantity: u64,
    status: Status,
}

#[derive(Clone)]
struct PaymentPlan {
    fail: BTreeSet<String>,
    delay_ms: Millis,
    delays: BTreeMap<String, Millis>,
}

struct ProcessManager {
    payments: Arc<PaymentPlan>,
}

impl ProcessManager {
    fn load(ctx: &mut Context<'_, '_>, order: &str) -> Option<OrderState> {
        ctx.get(ORDER_STORE, order)
            .and_then(|v| serde_json::from_str(&v).ok())
    }

    fn save(ctx: &mut Context<'_, '_>, order: &str, state: &OrderState) {
        let v = serde_json::to_string(state).expect("order state serialises");
        ctx.put(ORDER_STORE, order, Some(v));
    }

    /// Whenever an order is cancelled after a reservation, release whatever is still
    /// held for it; the product service must treat a repeated release as a no-op.
    fn compensate(ctx: &mut Context<'_, '_>, order: &str, state: &OrderState, reason: &str) {
        let cmd = Msg::CancelReservation {
            order_id: order.to_string(),
            product_id: state.product.clone(),
            reason: reason.into(),
        };
        ctx.send(COMMANDS, &state.product, cmd.encode());
    }

    fn finish(ctx: &mut Context<'_, '_>, order: &str, mut state: OrderState, outcome: Msg) {
        state.status = match outcome {
            Msg::OrderConfirmed { .. } => Status::Confirmed,
            _ => Status::Cancelled,
        };
        Self::save(ctx, order, &state);
        ctx.send(OUTCOMES, order, outcome.encode());
    }
}

impl Processor for ProcessManager {
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(msg) = input.value.as_deref().and_then(Msg::decode) else {
            return Processed::Done;
        };
        let Some(order) = msg.order_id().map(str::to_string) else {
            return Processed::Done;
        };
        let state = Self::load(ctx, &order);
        match (msg, state) {
            (
                Msg::OrderPlaced {
                    product_id,
                    quantity,
                    ..
                },
                None,
            ) => {
                let state = OrderState {
                    product: product_id.clone(),
                    quantity,
                    status: Status::Reserving,
                };
                Self::save(ctx, &order, &state);
                let cmd = Msg::ReserveStock {
                    order_id: order.clone(),
                    product_id: product_id.clone(),
                    quantity,
                };
                ctx.send(COMMANDS, &product_id, cmd.encode());
            }
            (Msg::StockReserved { .. }, Some(mut state)) if state.status == Status::Reserving => {
                let delay = self
                    .payments
                    .delays
                    .get(&order)
                    .copied()
                    .unwrap_or(self.payments.delay_ms);
                state.status = Status::Paying {
                    due: ctx.now() + delay,
                };
                Self::save(ctx, &order, &state);
            }
            (Msg::StockRejected { reason, .. }, Some(state))
                if state.status == Status::Reserving =>
            {
                let outcome = Msg::OrderCancelled {
                    order_id: order.clone(),
                    reason,
                };
                Self::finish(ctx, &order, state, outcome);
            }
            (Msg::ReservationConfirmed { .. }, Some(state))
                if state.status == Status::Confirming =>
            {
                let outcome = Msg::OrderConfirmed {
                    order_id: order.clone(),
                };
                Self::finish(ctx, &order, state, outcome);
            }
            (Msg::ConfirmRejected { .. }, Some(state)) if state.status == Status::Confirming => {
                Self::compensate(ctx, &order, &state, "reservation expired");
                let outcome = Msg::OrderCancelled {
                    order_id: order.clone(),
                    reason: "reservation expired before confirmation; payment refunded".into(),
                };
                Self::finish(ctx, &order, state, outcome);
            }
            (Msg::ReservationReleased { reason, .. }, Some(state))
                if matches!(state.status, Status::Paying { .. } | Status::Confirming) =>
            {
                Self::compensate(ctx, &order, &state, "order cancelled");
                let outcome = Msg::OrderCancelled {
                    order_id: order.clone(),
                    reason: format!("reservation released ({reason})"),
                };
                Self::finish(ctx, &order, state, outcome);
            }
            _ => {} // repeated or late: already handled
        }
        Processed::Done
    }

    /// The earliest payment still due: its punctuation confirms or cancels the order.
    fn next_timer(&self, stores: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Millis> {
        stores
            .get(ORDER_STORE)?
            .values()
            .filter_map(
                |v| match serde_json::from_str::<OrderState>(v).ok()?.status {
                    Status::Paying { due } => Some(due),
                    _ => None,
                },
            )
            .min()
    }

    fn punctuate(&mut self, ctx: &mut Context<'_, '_>) {
        let now = ctx.now();
        for (order, value) in ctx.entries(ORDER_STORE) {
            let Ok(mut state) = serde_json::from_str::<OrderState>(&value) else {
                continue;
            };
            let Status::Paying { due } = state.status else {
                continue;
            };
            if due > now {
                continue;
            }
            if self.payments.fail.contains(&order) {
                let cmd = Msg::CancelReservation {
                    order_id: order.clone(),
                    product_id: state.product.clone(),
                    reason: "payment failed".into(),
                };
                ctx.send(COMMANDS, &state.product.clone(), cmd.encode());
                let outcome = Msg::OrderCancelled {
                    order_id: order.clone(),
                    reason: "payment failed".into(),
                };
                Self::finish(ctx, &order, state, outcome);
            } else {
                let cmd = Msg::ConfirmReservation {
                    order_id: order.clone(),
                    product_id: state.product.clone(),
                };
                ctx.send(COMMANDS, &state.product.clone(), cmd.encode());
                state.status = Status::Confirming;
                Self::save(ctx, &order, &state);
            }
        }
    }
}

struct ProductLedger {
    timeout_ms: Millis,
    idempotent: bool,
}

impl ProductLedger {
    fn load(ctx: &mut Context<'_, '_>, product: &str) -> Ledger {
        ctx.get(LEDGER_STORE, product)
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default()
    }

    fn save(ctx: &mut Context<'_, '_>, product: &str, ledger: &Ledger) {
        let v = serde_json::to_string(ledger).expect("ledger serialises");
        ctx.put(LEDGER_STORE, product, Some(v));
    }

    fn reply(ctx: &mut Context<'_, '_>, order: &str, msg: Msg) {
        ctx.send(REPLIES, order, msg.encode());
    }
}

impl Processor for ProductLedger {
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(msg) = input.value.as_deref().and_then(Msg::decode) else {
            return Processed::Done;
        };
        match msg {
            Msg::StockAdded {
                product_id,
                quantity,
            } => {
                let mut l = Self::load(ctx, &product_id);
                l.available += quantity as i64;
                Self::save(ctx, &product_id, &l);
            }
            Msg::ReserveStock {
                order_id,
                product_id,
                quantity,
            } => {
                let mut l = Self::load(ctx, &product_id);
                let seen = l.reserved.contains_key(&order_id)
                    || l.confirmed.contains_key(&order_id)
                    || l.released.contains_key(&order_id)
                    || l.rejected.contains(&order_id);
                if seen && self.idempotent {
                    ctx.note(format!(
                        "ReserveStock for {order_id} again: already handled"
                    ));
                    return Processed::Done;
                }
                if l.available >= quantity as i64 {
                    l.available -= quantity as i64;
                    l.reserved
                        .insert(order_id.clone(), (quantity, ctx.now() + self.timeout_ms));
                    Self::save(ctx, &product_id, &l);
                    let msg = Msg::StockReserved {
                        order_id: order_id.clone(),
                        product_id,
                        quantity,
                    };
                    Self::reply(ctx, &order_id, msg);
                } else {
                    l.rejected.insert(order_id.clone());
                    Self::save(ctx, &product_id, &l);
                    let msg = Msg::StockRejected {
                        order_id: order_id.clone(),
                        product_id,
                        reason: format!("{} available, {quantity} wanted", l.available),
                    };
                    Self::reply(ctx, &order_id, msg);
                }
            }
            Msg::ConfirmReservation {
                order_id,
                product_id,
            } => {
                let mut l = Self::load(ctx, &product_id);
                if let Some((quantity, _)) = l.reserved.remove(&order_id) {
                    l.confirmed.insert(order_id.clone(), quantity);
                    Self::save(ctx, &product_id, &l);
                    let msg = Msg::ReservationConfirmed {
                        order_id: order_id.clone(),
                        product_id,
                        quantity,
                    };
                    Self::reply(ctx, &order_id, msg);
                } else if l.released.contains_key(&order_id) {
                    let msg = Msg::ConfirmRejected {
                        order_id: order_id.clone(),
                        product_id,
                    };
                    Self::reply(ctx, &order_id, msg);
                }
            }
            Msg::CancelReservation {
                order_id,
                product_id,
                reason,
            } => {
                let mut l = Self::load(ctx, &product_id);
                let quantity = match l.reserved.remove(&order_id) {
                    Some((q, _)) => Some(q),
                    None if !self.idempotent => {
                        // Mutation: a compensation for an already released reservation
                        // gives the units back again.
                        l.released.get(&order_id).copied()
                    }
                    None => None,
                };
                if let Some(quantity) = quantity {
                    l.available += quantity as i64;
                    l.released.insert(order_id.clone(), quantity);
                    Self::save(ctx, &product_id, &l);
                    let msg = Msg::ReservationReleased {
                        order_id: order_id.clone(),
                        product_id,
                        quantity,
                        reason,
                    };
                    Self::reply(ctx, &order_id, msg);
                }
            }
            _ => {}
        }
        Processed::Done
    }

    /// The earliest reservation still to expire: its punctuation releases it.
    fn next_timer(&self, stores: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Millis> {
        stores
            .get(LEDGER_STORE)?
            .values()
            .filter_map(|v| serde_json::from_str::<Ledger>(v).ok())
            .flat_map(|l| l.reserved.into_values().map(|(_, expiry)| expiry))
            .min()
    }

    fn punctuate(&mut self, ctx: &mut Context<'_, '_>) {
        let now = ctx.now();
        for (product, value) in ctx.entries(LEDGER_STORE) {
            let Ok(mut l) = serde_json::from_str::<Ledger>(&value) else {
                continue;
            };
            let expired: Vec<(String, u64)> = l
                .reserved
                .iter()
                .filter(|(_, (_, expiry))| *expiry <= now)
                .map(|(o, (q, _))| (o.clone(), *q))
                .collect();
            if expired.is_empty() {
                continue;
            }
            for (order, quantity) in &expired {
                l.reserved.remove(order);
                l.available += *quantity as i64;
                l.released.insert(order.clone(), *quantity);
            }
            Self::save(ctx, &product, &l);
            for (order, quantity) in expired {
                let msg = Msg::ReservationReleased {
                    order_id: order.clone(),
                    product_id: product.clone(),
                    quantity,
                    reason: "timeout".into(),
                };
                Self::reply(ctx, &order, msg);
            }
        }
    }
}

impl Design for Saga {
    fn name(&self) -> &'static str {
        "saga"
    }

    fn summary(&self) -> &'static str {
        "process manager: reserve, pay, confirm or cancel; a punctuation releases stale reservations"
    }

    fn schema(&self) -> Schema {
        Schema {
            stores: vec![
                Store {
                    application: ORDER_APP.into(),
                    name: ORDER_STORE.into(),
                    changelog: changelog_topic(ORDER_APP, ORDER_STORE),
                    decoder: Decoder::NoStock,
                },
                Store {
                    application: PRODUCT_APP.into(),
                    name: LEDGER_STORE.into(),
                    changelog: changelog_topic(PRODUCT_APP, LEDGER_STORE),
                    decoder: Decoder::Book(Ledger::decode),
                },
            ],
            copies: vec![],
            decisions: &["OrderConfirmed", "OrderCancelled"],
            reservations_settle: true,
        }
    }

    fn build(&self, scenario: &Scenario, mutations: &[Mutation]) -> World {
        let mut broker = Broker::new();
        create_topics(
            &mut broker,
            scenario,
            &["orders", COMMANDS, REPLIES, OUTCOMES],
            &[
                changelog_topic(ORDER_APP, ORDER_STORE),
                changelog_topic(PRODUCT_APP, LEDGER_STORE),
            ],
        );
        let mut instances = vec![Frontend::new("orders", COMMANDS).instance(scenario, mutations)];
        let payments = Arc::new(PaymentPlan {
            fail: scenario.payments.fail.iter().cloned().collect(),
            delay_ms: scenario.payments.delay_ms,
            delays: scenario.payments.delays.clone(),
        });
        let order_config = streams_config(ORDER_APP, Guarantee::ExactlyOnceV2, scenario, mutations);
        let order_topology = Topology {
            subtopologies: vec![SubTopology {
                name: "process-manager".into(),
                sources: vec!["orders".into(), REPLIES.into()],
                stores: vec![ORDER_STORE.into()],
                processor: Arc::new(move |_| {
                    Box::new(ProcessManager {
                        payments: payments.clone(),
                    })
                }),
                punctuate: Some(Punctuation::WallClock(10)),
            }],
        };
        instances.extend(service(scenario, "order-service", move |name| {
            vec![Box::new(StreamsClient::new(
                name,
                order_config.clone(),
                order_topology.clone(),
            )) as Box<dyn Client>]
        }));
        let timeout_ms = scenario.saga.reservation_timeout_ms;
        let idempotent = !mutations.contains(&Mutation::NonIdempotentCompensation);
        let product_config =
            streams_config(PRODUCT_APP, Guarantee::ExactlyOnceV2, scenario, mutations);
        let punctuate = (!mutations.contains(&Mutation::NoTimeout))
            .then_some(Punctuation::WallClock(scenario.saga.punctuate_every_ms));
        let product_topology = Topology {
            subtopologies: vec![SubTopology {
                name: "ledger".into(),
                sources: vec![COMMANDS.into()],
                stores: vec![LEDGER_STORE.into()],
                processor: Arc::new(move |_| {
                    Box::new(ProductLedger {
                        timeout_ms,
                        idempotent,
                    })
                }),
                punctuate,
            }],
        };
        instances.extend(service(scenario, "product-service", move |name| {
            vec![Box::new(StreamsClient::new(
                name,
                product_config.clone(),
                product_topology.clone(),
            )) as Box<dyn Client>]
        }));
        let max_delay = scenario
            .payments
            .delays
            .values()
            .copied()
            .max()
            .unwrap_or(0)
            .max(scenario.payments.delay_ms)
            .min(scenario.saga.reservation_timeout_ms);
        let settle = max_delay + scenario.saga.reservation_timeout_ms + 1000;
        World::new(broker, instances, world_config(scenario, settle))
    }
}
