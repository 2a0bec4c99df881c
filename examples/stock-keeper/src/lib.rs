//! `stock-keeper`: a team's own inventory service, an ordinary async Kafka service written
//! against `rdkafka`'s API, tested in this crate's own `cargo test` on madsim against
//! oversell's cluster and judged by oversell's checker (`tests/stock_keeper.rs`).
//!
//! It is none of oversell's designs: one consumer of `orders` and `stock` (both keyed by
//! product), one store of the units *on hand* per product (units left to sell, not units
//! in stock minus units reserved), and a rule of its own — an order for more than
//! [`MAX_UNITS_PER_ORDER`] units is refused whatever the stock. Each record is handled in
//! one Kafka transaction with its outputs, its store's changelog record and its offset
//! ([`Delivery::ExactlyOnce`]), or, at least once, with offsets committed every
//! [`COMMIT_INTERVAL_MS`] ([`Delivery::AtLeastOnce`]).
//!
//! The service itself ([`run`]) exists in the simulated build only (`--cfg madsim`, which
//! the workspace's `.cargo/config.toml` sets): its import switch names oversell's client
//! there and `rdkafka` in a real build, and this crate does not build librdkafka.

#[cfg(madsim)]
mod service;
#[cfg(madsim)]
pub use service::{run, OnHand};

use oversell::{Count, Decoder, Schema, Store};

/// The service's application id: its consumer group, its clients' `client.id`.
pub const APP: &str = "stock-keeper";
/// Orders in (`OrderPlaced`, keyed by product).
pub const ORDERS: &str = "orders";
/// Stock in (`StockAdded`, keyed by product).
pub const STOCK: &str = "stock";
/// Decisions out (`OrderValidation`, keyed by order).
pub const VALIDATIONS: &str = "order-validations";
/// The store of units on hand per product.
pub const ON_HAND: &str = "on-hand";
/// Its changelog (compacted, one partition per input partition).
pub const CHANGELOG: &str = "stock-keeper-on-hand-changelog";
/// The most units one order may take.
pub const MAX_UNITS_PER_ORDER: u64 = 2;
/// How often offsets are committed at least once.
pub const COMMIT_INTERVAL_MS: u64 = 200;

/// How the service delivers its effects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One transaction per record: outputs, changelog record and offset together.
    ExactlyOnce,
    /// Outputs sent one by one, offsets committed every [`COMMIT_INTERVAL_MS`].
    AtLeastOnce,
}

/// The service's one decision: an order of `quantity` units with `on_hand` units left is
/// accepted when it is within [`MAX_UNITS_PER_ORDER`] and the units cover it —
/// `Some(units left)` — and refused otherwise (`None`).
pub fn decide(on_hand: u64, quantity: u64) -> Option<u64> {
    if quantity == 0 || quantity > MAX_UNITS_PER_ORDER {
        return None;
    }
    on_hand.checked_sub(quantity)
}

/// What the checker must know of the service's data: its one store holds the units
/// available per product (decimal text), and an `OrderValidation` decides an order.
pub fn schema() -> Schema {
    Schema {
        stores: vec![Store {
            application: APP.into(),
            name: ON_HAND.into(),
            changelog: CHANGELOG.into(),
            decoder: Decoder::Available(Count::of_product_key),
        }],
        copies: vec![],
        decisions: &["OrderValidation"],
        reservations_settle: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_accepted_within_the_limit_and_the_units_on_hand() {
        assert_eq!(decide(3, 2), Some(1));
        assert_eq!(decide(1, 2), None, "not enough on hand");
        assert_eq!(decide(9, 3), None, "over the per-order limit");
        assert_eq!(decide(9, 0), None, "an empty order");
    }
}
