//! The stock books: what the committed domain events do to each product.
//!
//! Domain accounting (committed records only, in append order):
//!
//! * units in stock per product: the sum of `StockAdded.quantity` so far;
//! * a *hold* takes units for an order: `ProductReserved`, `OrderValidation` PASS,
//!   `StockReserved`; a *release* gives them back: `ReservationReleased`; a confirmation
//!   (`ReservationConfirmed`) keeps them held; rejections (`OrderRejected`,
//!   `OrderValidation` FAIL, `StockRejected`) hold nothing;
//! * domain events are read from every topic except the schema's internal ones: store
//!   changelogs and repartition topics (which hold copies of events already counted where
//!   they were first written). A design writes each domain event once, to one topic.

use super::history::{History, Rec};
use crate::domain::{InventoryRow, Msg, Validation};

use std::collections::BTreeMap;

// ---------------------------------------------------------------- roles of domain events

/// What a domain event does to the stock books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Stock,
    Placed,
    Hold,
    Reject,
    Release,
    Confirm,
    FinalConfirmed,
    FinalCancelled,
    /// Commands and other events that change nothing by themselves.
    Other,
}

pub fn role(msg: &Msg) -> Role {
    match msg {
        Msg::StockAdded { .. } => Role::Stock,
        Msg::OrderPlaced { .. } => Role::Placed,
        Msg::ProductReserved { .. } | Msg::StockReserved { .. } => Role::Hold,
        Msg::OrderValidation { result, .. } => match result {
            Validation::Pass => Role::Hold,
            Validation::Fail => Role::Reject,
        },
        Msg::OrderRejected { .. } | Msg::StockRejected { .. } => Role::Reject,
        Msg::ReservationReleased { .. } => Role::Release,
        Msg::ReservationConfirmed { .. } => Role::Confirm,
        Msg::OrderConfirmed { .. } => Role::FinalConfirmed,
        Msg::OrderCancelled { .. } => Role::FinalCancelled,
        Msg::ReserveStock { .. }
        | Msg::ConfirmReservation { .. }
        | Msg::CancelReservation { .. }
        | Msg::ConfirmRejected { .. }
        | Msg::PaymentSettled { .. } => Role::Other,
    }
}

/// Whether an outcome says yes (true) or no (false) to an order.
pub fn polarity(msg: &Msg) -> Option<bool> {
    match role(msg) {
        Role::Hold | Role::Confirm | Role::FinalConfirmed => Some(true),
        Role::Reject | Role::Release | Role::FinalCancelled => Some(false),
        _ => None,
    }
}

pub fn product_of(msg: &Msg) -> Option<&str> {
    match msg {
        Msg::OrderPlaced { product_id, .. }
        | Msg::StockAdded { product_id, .. }
        | Msg::ProductReserved { product_id, .. }
        | Msg::OrderRejected { product_id, .. }
        | Msg::OrderValidation { product_id, .. }
        | Msg::ReserveStock { product_id, .. }
        | Msg::ConfirmReservation { product_id, .. }
        | Msg::CancelReservation { product_id, .. }
        | Msg::StockReserved { product_id, .. }
        | Msg::StockRejected { product_id, .. }
        | Msg::ReservationConfirmed { product_id, .. }
        | Msg::ReservationReleased { product_id, .. }
        | Msg::ConfirmRejected { product_id, .. } => Some(product_id),
        Msg::OrderConfirmed { .. } | Msg::OrderCancelled { .. } | Msg::PaymentSettled { .. } => {
            None
        }
    }
}

pub fn units_of(msg: &Msg) -> u64 {
    match msg {
        Msg::OrderPlaced { quantity, .. }
        | Msg::StockAdded { quantity, .. }
        | Msg::ProductReserved { quantity, .. }
        | Msg::OrderValidation { quantity, .. }
        | Msg::ReserveStock { quantity, .. }
        | Msg::StockReserved { quantity, .. }
        | Msg::ReservationConfirmed { quantity, .. }
        | Msg::ReservationReleased { quantity, .. } => *quantity,
        _ => 0,
    }
}

// ---------------------------------------------------------------- books

/// Units an order holds of a product, and the events behind them.
#[derive(Clone, Debug, Default)]
pub struct Held<'h> {
    /// Outstanding units: holds − releases (never below zero).
    pub units: u64,
    /// Units of the order's first hold (what one application of it takes).
    pub once: u64,
    /// Hold events still (partly) outstanding.
    pub holds: Vec<&'h Rec>,
    /// Every hold event, outstanding or not.
    pub all_holds: Vec<&'h Rec>,
    pub releases: Vec<&'h Rec>,
}

/// One product's books, from the committed events.
#[derive(Clone, Debug, Default)]
pub struct Product<'h> {
    pub stock: u64,
    pub stock_recs: Vec<&'h Rec>,
    pub held: BTreeMap<&'h str, Held<'h>>,
}

impl<'h> Product<'h> {
    pub fn held_units(&self) -> u64 {
        self.held.values().map(|h| h.units).sum()
    }

    /// Units held counting each order's reservation once.
    pub fn held_once(&self) -> u64 {
        self.held
            .values()
            .filter(|h| h.units > 0)
            .map(|h| h.once.min(h.units))
            .sum()
    }

    pub fn holders(&self) -> Vec<(&'h str, &Held<'h>)> {
        self.held
            .iter()
            .filter(|(_, h)| h.units > 0)
            .map(|(o, h)| (*o, h))
            .collect()
    }

    pub fn evidence(&self) -> Vec<u64> {
        let mut e: Vec<u64> = self.stock_recs.iter().map(|r| r.seq).collect();
        for h in self.held.values().filter(|h| h.units > 0) {
            e.extend(h.holds.iter().map(|r| r.seq));
        }
        e
    }
}

#[derive(Clone, Debug, Default)]
pub struct Books<'h> {
    pub products: BTreeMap<&'h str, Product<'h>>,
}

impl<'h> Books<'h> {
    /// Apply one committed domain event; returns the product and role it touched.
    pub fn apply(&mut self, rec: &'h Rec, msg: &'h Msg) -> Option<(&'h str, Role)> {
        let r = role(msg);
        let product = product_of(msg)?;
        let units = units_of(msg);
        match r {
            Role::Stock => {
                let p = self.products.entry(product).or_default();
                // A warehouse row states the absolute count (a repeated row changes nothing).
                match rec.value.as_deref().and_then(InventoryRow::decode) {
                    Some(row) => p.stock = row.count,
                    None => p.stock += units,
                }
                p.stock_recs.push(rec);
            }
            Role::Hold => {
                let order = msg.order_id()?;
                let held = self
                    .products
                    .entry(product)
                    .or_default()
                    .held
                    .entry(order)
                    .or_default();
                if held.all_holds.is_empty() {
                    held.once = units;
                }
                held.units += units;
                held.holds.push(rec);
                held.all_holds.push(rec);
            }
            Role::Release => {
                let order = msg.order_id()?;
                let held = self
                    .products
                    .entry(product)
                    .or_default()
                    .held
                    .entry(order)
                    .or_default();
                held.units = held.units.saturating_sub(units);
                held.releases.push(rec);
                if held.units == 0 {
                    held.holds.clear();
                }
            }
            _ => {}
        }
        Some((product, r))
    }

    pub fn of(h: &'h History) -> Books<'h> {
        let mut b = Books::default();
        for (rec, msg) in h.domain() {
            b.apply(rec, msg);
        }
        b
    }
}
