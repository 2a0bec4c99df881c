//! ProductService: re-keyed by product, it keeps a [`Ledger`] per product in
//! `stock-ledger`. It reserves or rejects, confirms, releases on cancel, and a wall-clock
//! punctuation releases reservations not confirmed within the timeout. Every command is
//! idempotent: a repeated one gets the same answer and no second effect.

use super::timers::{Pending, Timers};
use super::{COMMANDS, LEDGER_STORE, REPLIES};
use crate::designs::Ledger;
use crate::domain::Msg;
use oversell_sim::{Context, Input, Millis, Processed, Processor};
use std::collections::BTreeMap;

/// Why a reservation released by its timer is released.
const TIMEOUT: &str = crate::domain::TIMEOUT_REASON;

pub(super) struct ProductLedger {
    pub timeout_ms: Millis,
    pub idempotent: bool,
    pub timers: Timers,
    /// `CancelReservation { reason: "timeout" }` records sent to ourselves, by order, and
    /// not yet processed.
    pub pending: Pending,
}

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

fn released(order: &str, product: &str, quantity: u64, reason: String) -> Msg {
    Msg::ReservationReleased {
        order_id: order.to_string(),
        product_id: product.to_string(),
        quantity,
        reason,
    }
}

/// Reservations of a ledger whose timeout has passed at `now`: order → (units, expiry).
fn expired(l: &Ledger, now: Millis) -> impl Iterator<Item = (&String, u64, Millis)> {
    l.reserved
        .iter()
        .filter(move |(_, (_, expiry))| *expiry <= now)
        .map(|(o, (q, expiry))| (o, *q, *expiry))
}

impl ProductLedger {
    fn add_stock(ctx: &mut Context<'_, '_>, product: &str, quantity: u64) {
        let mut l = load(ctx, product);
        l.available += quantity as i64;
        save(ctx, product, &l);
    }

    fn reserve(&self, ctx: &mut Context<'_, '_>, order: &str, product: String, quantity: u64) {
        let mut l = load(ctx, &product);
        let seen = l.reserved.contains_key(order)
            || l.confirmed.contains_key(order)
            || l.released.contains_key(order)
            || l.rejected.contains(order);
        if seen && self.idempotent {
            ctx.note(format!("ReserveStock for {order} again: already handled"));
            return;
        }
        let msg = if l.available >= quantity as i64 {
            l.available -= quantity as i64;
            let expiry = ctx.now() + self.timeout_ms;
            l.reserved.insert(order.to_string(), (quantity, expiry));
            let order_id = order.to_string();
            Msg::StockReserved {
                order_id,
                product_id: product.clone(),
                quantity,
            }
        } else {
            l.rejected.insert(order.to_string());
            let reason = format!("{} available, {quantity} wanted", l.available);
            let order_id = order.to_string();
            Msg::StockRejected {
                order_id,
                product_id: product.clone(),
                reason,
            }
        };
        save(ctx, &product, &l);
        reply(ctx, order, msg);
    }

    fn confirm(ctx: &mut Context<'_, '_>, order: &str, product: String) {
        let mut l = load(ctx, &product);
        let order_id = order.to_string();
        if let Some((quantity, _)) = l.reserved.remove(order) {
            l.confirmed.insert(order.to_string(), quantity);
            save(ctx, &product, &l);
            let msg = Msg::ReservationConfirmed {
                order_id,
                product_id: product,
                quantity,
            };
            reply(ctx, order, msg);
        } else if l.released.contains_key(order) {
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

    fn cancel(&self, ctx: &mut Context<'_, '_>, order: &str, product: String, reason: String) {
        let mut l = load(ctx, &product);
        let quantity = match l.reserved.remove(order) {
            Some((q, _)) => Some(q),
            // Mutation: a compensation for an already released reservation gives the
            // units back again.
            None if !self.idempotent => l.released.get(order).copied(),
            None => None,
        };
        if let Some(quantity) = quantity {
            l.available += quantity as i64;
            l.released.insert(order.to_string(), quantity);
            save(ctx, &product, &l);
            reply(ctx, order, released(order, &product, quantity, reason));
        }
    }

    /// The unfixed timer: release every expired reservation of a product here.
    fn release_expired(ctx: &mut Context<'_, '_>, product: &str, mut l: Ledger) {
        let now = ctx.now();
        let due: Vec<(String, u64)> = expired(&l, now).map(|(o, q, _)| (o.clone(), q)).collect();
        if due.is_empty() {
            return;
        }
        for (order, quantity) in &due {
            l.reserved.remove(order);
            l.available += *quantity as i64;
            l.released.insert(order.clone(), *quantity);
        }
        save(ctx, product, &l);
        for (order, quantity) in due {
            reply(
                ctx,
                &order,
                released(&order, product, quantity, TIMEOUT.into()),
            );
        }
    }

    /// The fixed timer: ask ourselves to cancel each expired reservation of a product.
    fn request_expiry(&mut self, ctx: &mut Context<'_, '_>, product: &str, l: &Ledger) {
        let now = ctx.now();
        for (order, _, _) in expired(l, now) {
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
    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(msg) = input.value.as_deref().and_then(Msg::decode) else {
            return Processed::Done;
        };
        match msg {
            Msg::StockAdded {
                product_id,
                quantity,
            } => Self::add_stock(ctx, &product_id, quantity),
            Msg::ReserveStock {
                order_id,
                product_id,
                quantity,
            } => self.reserve(ctx, &order_id, product_id, quantity),
            Msg::ConfirmReservation {
                order_id,
                product_id,
            } => Self::confirm(ctx, &order_id, product_id),
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
        let ledgers = stores.get(LEDGER_STORE)?.values();
        let ledgers = ledgers.filter_map(|v| serde_json::from_str::<Ledger>(v).ok());
        let timers = ledgers.flat_map(|l| {
            let reserved: Vec<(String, Millis)> = l
                .reserved
                .into_iter()
                .map(|(o, (_, expiry))| (o, expiry))
                .collect();
            reserved
        });
        timers
            .map(|(order, expiry)| match self.timers {
                Timers::Direct => expiry,
                Timers::SelfAddressed => self.pending.next(&order, expiry),
            })
            .min()
    }

    fn punctuate(&mut self, ctx: &mut Context<'_, '_>) {
        let now = ctx.now();
        let mut waiting = Vec::new();
        for (product, value) in ctx.entries(LEDGER_STORE) {
            let Ok(l) = serde_json::from_str::<Ledger>(&value) else {
                continue;
            };
            waiting.extend(expired(&l, now).map(|(o, _, _)| o.clone()));
            match self.timers {
                Timers::Direct => Self::release_expired(ctx, &product, l),
                Timers::SelfAddressed => self.request_expiry(ctx, &product, &l),
            }
        }
        self.pending.retain(|o| waiting.iter().any(|w| w == o));
    }
}
