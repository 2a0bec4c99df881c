//! OrderService: the process manager. It consumes `orders` and `order-replies`, keeps
//! each order's state in `order-state`, sends commands to ProductService, runs the
//! payment step, and ends each order with `OrderConfirmed` or `OrderCancelled`.

use super::timers::{Pending, Timers};
use super::{COMMANDS, ORDER_STORE, OUTCOMES, REPLIES};
use crate::domain::canonical::Reader;
use crate::domain::Msg;
use oversell_sim::{Context, Input, Millis, Processed, Processor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

/// Which payments fail and how long each takes (scenario data).
#[derive(Clone)]
pub(super) struct PaymentPlan {
    pub fail: BTreeSet<String>,
    pub delay_ms: Millis,
    pub delays: BTreeMap<String, Millis>,
}

#[derive(Clone)]
pub(super) struct ProcessManager {
    pub payments: Arc<PaymentPlan>,
    pub timers: Timers,
    /// `PaymentSettled` records sent to ourselves and not yet processed.
    pub pending: Pending,
    /// The orders of `order-state` waiting for their payment (order → due): what a
    /// punctuation acts on, kept beside the store so that a punctuation reads only them,
    /// not every order ever placed. Built from the store at the task's first use (after
    /// its restore), updated after every write.
    pub paying: Option<BTreeMap<String, Millis>>,
}

impl OrderState {
    /// The state `text` holds, as `serde_json` reads it: a text exactly as `save` writes
    /// it (`{"product":"p1","quantity":1,"status":"Reserving"}`, a payment's status
    /// `{"Paying":{"due":120}}`) read directly, anything else by `serde_json`.
    fn decode(text: &str) -> Option<OrderState> {
        if let Some(state) = OrderState::read(text) {
            debug_assert_eq!(
                serde_json::to_string(&state).ok().as_deref(),
                Some(text),
                "only save's own text is read directly"
            );
            return Some(state);
        }
        serde_json::from_str(text).ok()
    }

    /// `serde_json`'s own text of a state, and nothing else (see `domain::canonical`:
    /// what it accepts is byte for byte the serialisation of what it returns).
    fn read(text: &str) -> Option<OrderState> {
        let mut r = Reader::new(text);
        r.lit("{\"product\":")?;
        let product = r.str()?.to_string();
        r.lit(",\"quantity\":")?;
        let quantity = r.number()?;
        r.lit(",\"status\":")?;
        let status = if r.lit("{\"Paying\":{\"due\":").is_some() {
            let due = r.number()?;
            r.lit("}}")?;
            Status::Paying { due }
        } else {
            match r.str()? {
                "Reserving" => Status::Reserving,
                "Confirming" => Status::Confirming,
                "Confirmed" => Status::Confirmed,
                "Cancelled" => Status::Cancelled,
                _ => return None,
            }
        };
        r.lit("}")?;
        r.at_end().then_some(OrderState {
            product,
            quantity,
            status,
        })
    }
}

fn load(ctx: &mut Context<'_, '_>, order: &str) -> Option<OrderState> {
    ctx.get(ORDER_STORE, order)
        .and_then(|v| OrderState::decode(&v))
}

fn save(ctx: &mut Context<'_, '_>, order: &str, state: &OrderState) {
    let v = serde_json::to_string(state).expect("order state serialises");
    ctx.put(ORDER_STORE, order, Some(v));
}

/// Whenever an order is cancelled after a reservation, release whatever is still held
/// for it; the product service must treat a repeated release as a no-op.
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
    save(ctx, order, &state);
    ctx.send(OUTCOMES, order, outcome.encode());
}

fn cancel(ctx: &mut Context<'_, '_>, order: &str, state: OrderState, reason: String) {
    let outcome = Msg::OrderCancelled {
        order_id: order.to_string(),
        reason,
    };
    finish(ctx, order, state, outcome);
}

/// An order placed: remember it and ask for its units.
fn placed(ctx: &mut Context<'_, '_>, order: &str, product: String, quantity: u64) {
    let state = OrderState {
        product: product.clone(),
        quantity,
        status: Status::Reserving,
    };
    save(ctx, order, &state);
    let cmd = Msg::ReserveStock {
        order_id: order.to_string(),
        product_id: product.clone(),
        quantity,
    };
    ctx.send(COMMANDS, &product, cmd.encode());
}

/// The payment's result: cancel (and release) or confirm the reservation.
fn settle(ctx: &mut Context<'_, '_>, order: &str, mut state: OrderState, succeeded: bool) {
    if succeeded {
        let cmd = Msg::ConfirmReservation {
            order_id: order.to_string(),
            product_id: state.product.clone(),
        };
        ctx.send(COMMANDS, &state.product, cmd.encode());
        state.status = Status::Confirming;
        save(ctx, order, &state);
    } else {
        compensate(ctx, order, &state, "payment failed");
        cancel(ctx, order, state, "payment failed".into());
    }
}

impl ProcessManager {
    fn payment_delay(&self, order: &str) -> Millis {
        let p = &self.payments;
        p.delays.get(order).copied().unwrap_or(p.delay_ms)
    }

    /// One step of an order's saga for one input message.
    fn step(
        &mut self,
        ctx: &mut Context<'_, '_>,
        order: &str,
        msg: Msg,
        state: Option<OrderState>,
    ) {
        match (msg, state) {
            (
                Msg::OrderPlaced {
                    product_id,
                    quantity,
                    ..
                },
                None,
            ) => placed(ctx, order, product_id, quantity),
            (Msg::StockReserved { .. }, Some(mut state)) if state.status == Status::Reserving => {
                let due = ctx.now() + self.payment_delay(order);
                state.status = Status::Paying { due };
                save(ctx, order, &state);
            }
            (Msg::StockRejected { reason, .. }, Some(state))
                if state.status == Status::Reserving =>
            {
                cancel(ctx, order, state, reason)
            }
            (Msg::PaymentSettled { succeeded, .. }, Some(state))
                if matches!(state.status, Status::Paying { .. }) =>
            {
                settle(ctx, order, state, succeeded)
            }
            (Msg::ReservationConfirmed { .. }, Some(state))
                if state.status == Status::Confirming =>
            {
                let outcome = Msg::OrderConfirmed {
                    order_id: order.to_string(),
                };
                finish(ctx, order, state, outcome);
            }
            (Msg::ConfirmRejected { .. }, Some(state)) if state.status == Status::Confirming => {
                compensate(ctx, order, &state, "reservation expired");
                let reason = "reservation expired before confirmation; payment refunded";
                cancel(ctx, order, state, reason.into());
            }
            (Msg::ReservationReleased { reason, .. }, Some(state))
                if matches!(state.status, Status::Paying { .. } | Status::Confirming) =>
            {
                compensate(ctx, order, &state, "order cancelled");
                cancel(
                    ctx,
                    order,
                    state,
                    format!("reservation released ({reason})"),
                );
            }
            _ => {} // repeated or late: already handled
        }
    }

    /// A payment that is due: settle it here (direct), or send its result to ourselves.
    fn payment_due(&mut self, ctx: &mut Context<'_, '_>, order: &str, state: OrderState) {
        let succeeded = !self.payments.fail.contains(order);
        match self.timers {
            Timers::Direct => settle(ctx, order, state, succeeded),
            Timers::SelfAddressed => {
                if self.pending.due(order, ctx.now()) {
                    let msg = Msg::PaymentSettled {
                        order_id: order.to_string(),
                        succeeded,
                    };
                    ctx.send(REPLIES, order, msg.encode());
                    self.pending.sent(order, ctx.now());
                }
            }
        }
    }
}

/// When an order's stored state waits for its payment: its due time.
fn payment_due_at(value: &str) -> Option<Millis> {
    match OrderState::decode(value)?.status {
        Status::Paying { due } => Some(due),
        _ => None,
    }
}

/// The orders of a store that wait for their payment, read from every value: order → due.
fn paying(orders: &BTreeMap<String, String>) -> BTreeMap<String, Millis> {
    orders
        .iter()
        .filter_map(|(order, v)| Some((order.clone(), payment_due_at(v)?)))
        .collect()
}

impl ProcessManager {
    /// The orders waiting for their payment, built from the store on first use. In debug
    /// and test builds, checked against the whole store at every use.
    fn paying(&mut self, ctx: &mut Context<'_, '_>) -> &mut BTreeMap<String, Millis> {
        let store = ctx.view(ORDER_STORE);
        let index = self.paying.get_or_insert_with(|| paying(store));
        debug_assert_eq!(
            *index,
            paying(store),
            "paying orders out of step with the store"
        );
        index
    }

    /// After `order`'s state may have been written: its entry among the paying orders.
    fn reindex(&mut self, ctx: &mut Context<'_, '_>, order: &str) {
        let due = ctx
            .view(ORDER_STORE)
            .get(order)
            .and_then(|v| payment_due_at(v));
        let index = self.paying.get_or_insert_with(BTreeMap::new);
        match due {
            Some(due) => index.insert(order.to_string(), due),
            None => index.remove(order),
        };
    }
}

impl Processor for ProcessManager {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    /// The timer records sent and not yet seen back: a resend depends on them. Not
    /// `paying`: a function of the store (checked against it at every use in debug and
    /// test builds), the same whether built yet or not. The rest is fixed at build.
    fn fingerprint(&self, state: &mut dyn std::hash::Hasher) -> bool {
        std::hash::Hash::hash(&self.pending, &mut { state });
        true
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(msg) = input.value.as_deref().and_then(Msg::decode) else {
            return Processed::Done;
        };
        let Some(order) = msg.order_id().map(str::to_string) else {
            return Processed::Done;
        };
        if matches!(msg, Msg::PaymentSettled { .. }) {
            self.pending.seen(&order);
        }
        self.paying(ctx);
        let state = load(ctx, &order);
        self.step(ctx, &order, msg, state);
        self.reindex(ctx, &order);
        Processed::Done
    }

    /// The earliest payment still due (or due to be sent again): its punctuation settles it.
    fn next_timer(&self, stores: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Millis> {
        let orders = stores.get(ORDER_STORE)?;
        let scanned;
        let paying = match &self.paying {
            Some(index) => {
                debug_assert_eq!(*index, paying(orders), "paying orders out of step");
                index
            }
            None => {
                scanned = paying(orders);
                &scanned
            }
        };
        paying
            .iter()
            .map(|(order, &due)| match self.timers {
                Timers::Direct => due,
                Timers::SelfAddressed => self.pending.next(order, due),
            })
            .min()
    }

    fn punctuate(&mut self, ctx: &mut Context<'_, '_>) {
        let now = ctx.now();
        let due: Vec<String> = (self.paying(ctx).iter())
            .filter(|(_, &due)| due <= now)
            .map(|(order, _)| order.clone())
            .collect();
        let paying = self.paying.as_ref().expect("built above");
        self.pending.retain(|o| paying.contains_key(o));
        for order in due {
            let value = &ctx.view(ORDER_STORE)[&order];
            let state = OrderState::decode(value).expect("a paying order");
            self.payment_due(ctx, &order, state);
            self.reindex(ctx, &order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_state_is_read_directly_only_as_serde_json_writes_it() {
        let statuses = [
            Status::Reserving,
            Status::Paying { due: 0 },
            Status::Paying { due: u64::MAX },
            Status::Confirming,
            Status::Confirmed,
            Status::Cancelled,
        ];
        for status in statuses {
            for product in ["p1", "", "caf\u{e9}"] {
                let state = OrderState {
                    product: product.into(),
                    quantity: 3,
                    status: status.clone(),
                };
                let text = serde_json::to_string(&state).unwrap();
                let read = OrderState::read(&text).expect("read directly");
                assert_eq!(
                    (read.product, read.quantity, read.status),
                    (state.product, 3, status.clone())
                );
            }
        }
        let others = [
            r#"{"product":"p\"1","quantity":3,"status":"Reserving"}"#,
            r#"{"quantity":3,"product":"p1","status":"Reserving"}"#,
            r#"{"product":"p1","quantity":3,"status":{"Paying":{"due":07}}}"#,
            r#"{"product":"p1","quantity":3,"status":"Paying"}"#,
            r#"{"product":"p1","quantity":3,"status":"Reserving"} "#,
        ];
        for text in others {
            assert!(OrderState::read(text).is_none(), "{text}");
            let by_serde = serde_json::from_str::<OrderState>(text).ok();
            let decoded = OrderState::decode(text);
            assert_eq!(
                decoded.map(|s| (s.product, s.quantity, s.status)),
                by_serde.map(|s| (s.product, s.quantity, s.status)),
                "{text}"
            );
        }
    }
}
