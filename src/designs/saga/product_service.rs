//! ProductService: re-keyed by product, it keeps a [`Ledger`] per product in
//! `stock-ledger` (units available and the open reservations), and each decided order
//! under its own key ([`Decided`]) in the same store, so that no value grows with the
//! orders a product has seen. It reserves or rejects, confirms, releases on cancel, and a
//! wall-clock punctuation releases reservations not confirmed within the timeout. Every
//! command is idempotent: a repeated one gets the same answer and no second effect.
//!
//! An order's commands are keyed by its product, so they reach the task that owns the
//! product's ledger and the order's decision alike: one store of one task, written in
//! the same transaction (Kafka Streams keeps one changelog partition per store and task,
//! `ProcessorStateManager.registerStore`; any key may be put in a task's store).

use super::timers::{Pending, Timers};
use super::{COMMANDS, LEDGER_STORE, REPLIES};
use crate::designs::{Decided, Decision, Ledger};
use crate::domain::Msg;
use oversell_sim::{Context, Input, Millis, Processed, Processor};
use std::collections::BTreeMap;

/// Why a reservation released by its timer is released.
const TIMEOUT: &str = crate::domain::TIMEOUT_REASON;

#[derive(Clone)]
pub(super) struct ProductLedger {
    pub timeout_ms: Millis,
    pub idempotent: bool,
    pub timers: Timers,
    /// `CancelReservation { reason: "timeout" }` records sent to ourselves, by order, and
    /// not yet processed.
    pub pending: Pending,
    /// The open reservations of every ledger of `stock-ledger` (product → order → units,
    /// expiry): what a punctuation acts on, kept beside the store so that a punctuation
    /// reads only them, not every key of every order the store ever decided. Built from
    /// the store at the task's first use (after its restore), updated after every write.
    pub reservations: Option<Reservations>,
}

/// A ledger's open reservations: order → (units, expiry).
type Reserved = BTreeMap<String, (u64, Millis)>;

/// Product → its ledger's open reservations.
pub(super) type Reservations = BTreeMap<String, Reserved>;

/// The open reservations of every ledger of a store, read from every product's value.
fn reservations(ledgers: &BTreeMap<String, String>) -> Reservations {
    ledgers
        .iter()
        .filter(|(key, _)| Decided::order_of(key).is_none())
        .filter_map(|(product, v)| {
            let l = serde_json::from_str::<Ledger>(v).ok()?;
            Some((product.clone(), l.reserved)).filter(|(_, r)| !r.is_empty())
        })
        .collect()
}

fn load(ctx: &mut Context<'_, '_>, product: &str) -> Ledger {
    ctx.get(LEDGER_STORE, product)
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default()
}

/// How the ledger decided an order, if it did.
fn decided(ctx: &mut Context<'_, '_>, order: &str) -> Option<Decided> {
    ctx.get(LEDGER_STORE, &Decided::key(order))
        .and_then(|v| serde_json::from_str(&v).ok())
}

/// Write how the ledger decided an order.
fn decide(ctx: &mut Context<'_, '_>, order: &str, product: &str, decision: Decision, units: u64) {
    let d = Decided {
        product: product.to_string(),
        decision,
        units,
    };
    let v = serde_json::to_string(&d).expect("a decision serialises");
    ctx.put(LEDGER_STORE, &Decided::key(order), Some(v));
}

fn reply(ctx: &mut Context<'_, '_>, order: &str, msg: Msg) {
    ctx.send(REPLIES, order, msg.encode());
}

fn released(order: &str, product: &str, quantity: u64, reason: String) -> Msg {
    Msg::ReservationReleased {
        order_id: order.to_string(),
        product_id: product.to_string(),
        quantity,
        reason,
    }
}

/// Reservations of a ledger whose timeout has passed at `now`: order → (units, expiry).
fn expired(reserved: &Reserved, now: Millis) -> impl Iterator<Item = (&String, u64, Millis)> {
    reserved
        .iter()
        .filter(move |(_, (_, expiry))| *expiry <= now)
        .map(|(o, (q, expiry))| (o, *q, *expiry))
}

impl ProductLedger {
    /// The open reservations, built from the store on first use. In debug and test
    /// builds, checked against the whole store at every use.
    fn reservations(&mut self, ctx: &mut Context<'_, '_>) -> &mut Reservations {
        let store = ctx.view(LEDGER_STORE);
        let index = self.reservations.get_or_insert_with(|| reservations(store));
        debug_assert_eq!(*index, reservations(store), "reservations out of step");
        index
    }

    /// Write `product`'s ledger, and its open reservations beside the store.
    fn save(&mut self, ctx: &mut Context<'_, '_>, product: &str, ledger: &Ledger) {
        self.reservations(ctx); // built (and checked) before the write
        let v = serde_json::to_string(ledger).expect("ledger serialises");
        ctx.put(LEDGER_STORE, product, Some(v));
        let index = self.reservations.as_mut().expect("built above");
        if ledger.reserved.is_empty() {
            index.remove(product);
        } else {
            index.insert(product.to_string(), ledger.reserved.clone());
        }
    }

    fn add_stock(&mut self, ctx: &mut Context<'_, '_>, product: &str, quantity: u64) {
        let mut l = load(ctx, product);
        l.available += quantity as i64;
        self.save(ctx, product, &l);
    }

    fn reserve(&mut self, ctx: &mut Context<'_, '_>, order: &str, product: String, quantity: u64) {
        let mut l = load(ctx, &product);
        let seen = l.reserved.contains_key(order) || decided(ctx, order).is_some();
        if seen && self.idempotent {
            ctx.note(format!("ReserveStock for {order} again: already handled"));
            return;
        }
        let msg = if l.available >= quantity as i64 {
            l.available -= quantity as i64;
            let expiry = ctx.now() + self.timeout_ms;
            l.reserved.insert(order.to_string(), (quantity, expiry));
            self.save(ctx, &product, &l);
            let order_id = order.to_string();
            Msg::StockReserved {
                order_id,
                product_id: product.clone(),
                quantity,
            }
        } else {
            decide(ctx, order, &product, Decision::Rejected, 0);
            let reason = format!("{} available, {quantity} wanted", l.available);
            let order_id = order.to_string();
            Msg::StockRejected {
                order_id,
                product_id: product.clone(),
                reason,
            }
        };
        reply(ctx, order, msg);
    }

    fn confirm(&mut self, ctx: &mut Context<'_, '_>, order: &str, product: String) {
        let mut l = load(ctx, &product);
        let order_id = order.to_string();
        if let Some((quantity, _)) = l.reserved.remove(order) {
            self.save(ctx, &product, &l);
            decide(ctx, order, &product, Decision::Confirmed, quantity);
            let msg = Msg::ReservationConfirmed {
                order_id,
                product_id: product,
                quantity,
            };
            reply(ctx, order, msg);
        } else if decided(ctx, order).is_some_and(|d| d.decision == Decision::Released) {
            reply(
                ctx,
                order,
                Msg::ConfirmRejected {
                    order_id,
                    product_id: product,
                },
            );
        }
    }

    fn cancel(&mut self, ctx: &mut Context<'_, '_>, order: &str, product: String, reason: String) {
        let mut l = load(ctx, &product);
        let quantity = match l.reserved.remove(order) {
            Some((q, _)) => Some(q),
            // Mutation: a compensation for an already released reservation gives the
            // units back again.
            None if !self.idempotent => decided(ctx, order)
                .filter(|d| d.decision == Decision::Released)
                .map(|d| d.units),
            None => None,
        };
        if let Some(quantity) = quantity {
            l.available += quantity as i64;
            self.save(ctx, &product, &l);
            decide(ctx, order, &product, Decision::Released, quantity);
            reply(ctx, order, released(order, &product, quantity, reason));
        }
    }

    /// The unfixed timer: release every expired reservation of a product here.
    fn release_expired(&mut self, ctx: &mut Context<'_, '_>, product: &str, mut l: Ledger) {
        let now = ctx.now();
        let due: Vec<(String, u64)> = (expired(&l.reserved, now))
            .map(|(o, q, _)| (o.clone(), q))
            .collect();
        if due.is_empty() {
            return;
        }
        for (order, quantity) in &due {
            l.reserved.remove(order);
            l.available += *quantity as i64;
        }
        self.save(ctx, product, &l);
        for (order, quantity) in &due {
            decide(ctx, order, product, Decision::Released, *quantity);
        }
        for (order, quantity) in due {
            reply(
                ctx,
                &order,
                released(&order, product, quantity, TIMEOUT.into()),
            );
        }
    }

    /// The fixed timer: ask ourselves to cancel each expired reservation of a product.
    fn request_expiry(&mut self, ctx: &mut Context<'_, '_>, product: &str, reserved: &Reserved) {
        let now = ctx.now();
        for (order, _, _) in expired(reserved, now) {
            if !self.pending.due(order, now) {
                continue;
            }
            let cmd = Msg::CancelReservation {
                order_id: order.clone(),
                product_id: product.to_string(),
                reason: TIMEOUT.into(),
            };
            ctx.send(COMMANDS, product, cmd.encode());
            self.pending.sent(order, now);
        }
    }
}

impl Processor for ProductLedger {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(msg) = input.value.as_deref().and_then(Msg::decode) else {
            return Processed::Done;
        };
        match msg {
            Msg::StockAdded {
                product_id,
                quantity,
            } => self.add_stock(ctx, &product_id, quantity),
            Msg::ReserveStock {
                order_id,
                product_id,
                quantity,
            } => self.reserve(ctx, &order_id, product_id, quantity),
            Msg::ConfirmReservation {
                order_id,
                product_id,
            } => self.confirm(ctx, &order_id, product_id),
            Msg::CancelReservation {
                order_id,
                product_id,
                reason,
            } => {
                self.pending.seen(&order_id);
                self.cancel(ctx, &order_id, product_id, reason)
            }
            _ => {}
        }
        Processed::Done
    }

    /// The earliest reservation still to expire (or whose expiry is due to be asked for
    /// again): its punctuation releases it.
    fn next_timer(&self, stores: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Millis> {
        let ledgers = stores.get(LEDGER_STORE)?;
        let scanned;
        let open = match &self.reservations {
            Some(index) => {
                debug_assert_eq!(*index, reservations(ledgers), "reservations out of step");
                index
            }
            None => {
                scanned = reservations(ledgers);
                &scanned
            }
        };
        (open.values().flatten())
            .map(|(order, &(_, expiry))| match self.timers {
                Timers::Direct => expiry,
                Timers::SelfAddressed => self.pending.next(order, expiry),
            })
            .min()
    }

    fn punctuate(&mut self, ctx: &mut Context<'_, '_>) {
        let now = ctx.now();
        let due: Vec<(String, Reserved)> = (self.reservations(ctx).iter())
            .filter(|(_, reserved)| expired(reserved, now).next().is_some())
            .map(|(product, reserved)| (product.clone(), reserved.clone()))
            .collect();
        let mut waiting = Vec::new();
        for (product, reserved) in due {
            waiting.extend(expired(&reserved, now).map(|(o, _, _)| o.clone()));
            match self.timers {
                Timers::Direct => {
                    let value = &ctx.view(LEDGER_STORE)[&product];
                    let l = serde_json::from_str(value).expect("an indexed ledger");
                    self.release_expired(ctx, &product, l)
                }
                Timers::SelfAddressed => self.request_expiry(ctx, &product, &reserved),
            }
        }
        self.pending.retain(|o| waiting.iter().any(|w| w == o));
    }
}
