//! The inventory domain: the events and commands every design writes, as JSON values.
//!
//! One vocabulary for all designs, so that one checker can read any design's committed
//! history. Each design uses the subset that its story needs.

use serde::{Deserialize, Serialize};

/// Result of Confluent's inventory check (`OrderValidationResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Validation {
    Pass,
    Fail,
}

/// The `reason` of a [`Msg::ReservationReleased`] or [`Msg::CancelReservation`] sent
/// because a reservation was not confirmed in time.
pub const TIMEOUT_REASON: &str = "timeout";

/// Every record value written by the designs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Msg {
    // ----- inputs from the outside world -----
    /// A customer placed an order.
    OrderPlaced {
        order_id: String,
        product_id: String,
        quantity: u64,
        user_id: String,
    },
    /// Units arrived at the warehouse (initial stock is written this way at time 0).
    StockAdded {
        product_id: String,
        quantity: u64,
    },
    // ----- naive: the question's events -----
    /// The question's `ProductReserved`: units held for an order.
    ProductReserved {
        order_id: String,
        product_id: String,
        quantity: u64,
    },
    /// The question's "cancel order" branch: not enough stock.
    OrderRejected {
        order_id: String,
        product_id: String,
        reason: String,
    },
    // ----- rekeyed: Confluent's InventoryService output -----
    /// `OrderValidation(orderId, INVENTORY_CHECK, PASS|FAIL)`; PASS holds the units.
    OrderValidation {
        order_id: String,
        product_id: String,
        quantity: u64,
        result: Validation,
    },
    // ----- saga: commands to the product service -----
    ReserveStock {
        order_id: String,
        product_id: String,
        quantity: u64,
    },
    ConfirmReservation {
        order_id: String,
        product_id: String,
    },
    CancelReservation {
        order_id: String,
        product_id: String,
        reason: String,
    },
    /// The order service's own payment timer, sent to its own input (`order-replies`) so
    /// that the payment's effects are processed from an input record.
    PaymentSettled {
        order_id: String,
        succeeded: bool,
    },
    // ----- saga: replies of the product service -----
    StockReserved {
        order_id: String,
        product_id: String,
        quantity: u64,
    },
    StockRejected {
        order_id: String,
        product_id: String,
        reason: String,
    },
    ReservationConfirmed {
        order_id: String,
        product_id: String,
        quantity: u64,
    },
    ReservationReleased {
        order_id: String,
        product_id: String,
        quantity: u64,
        reason: String,
    },
    /// A confirmation that came after the reservation was released.
    ConfirmRejected {
        order_id: String,
        product_id: String,
    },
    // ----- saga: the order's final outcome -----
    OrderConfirmed {
        order_id: String,
    },
    OrderCancelled {
        order_id: String,
        reason: String,
    },
}

/// A record of Confluent's `warehouse-inventory` topic: the product's *absolute* count
/// (`AddInventory` writes `(product, count)` with `Serdes.Integer()`, and
/// `InventoryService` reads the topic as a `KTable`), so that replaying it is harmless.
///
/// It travels as a [`Msg::StockAdded`] event (the units that arrived, which the checker
/// counts as stock) with the warehouse's count after the arrival beside it:
/// `{"type":"StockAdded","product_id":"p1","quantity":2,"count":5}`. [`Msg::decode`]
/// reads it as the `StockAdded` event; [`InventoryRow::decode`] reads the count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRow {
    pub product_id: String,
    /// Units that arrived with this record.
    pub quantity: u64,
    /// Units the warehouse holds for the product after this record: the table's value.
    pub count: u64,
}

impl InventoryRow {
    pub fn encode(&self) -> String {
        #[derive(Serialize)]
        struct Tagged<'a> {
            r#type: &'static str,
            #[serde(flatten)]
            row: &'a InventoryRow,
        }
        let text = serde_json::to_string(&Tagged {
            r#type: "StockAdded",
            row: self,
        })
        .expect("inventory rows serialise");
        debug_assert!(
            matches!(Msg::decode(&text), Some(Msg::StockAdded { quantity, .. }) if quantity == self.quantity)
        );
        text
    }

    /// The row, if `text` is a `StockAdded` event that carries a count.
    pub fn decode(text: &str) -> Option<InventoryRow> {
        match Msg::decode(text)? {
            Msg::StockAdded { .. } => serde_json::from_str(text).ok(),
            _ => None,
        }
    }
}

impl Msg {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("domain messages serialise")
    }

    pub fn decode(text: &str) -> Option<Msg> {
        serde_json::from_str(text).ok()
    }

    /// The event's type name, as written in its `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::OrderPlaced { .. } => "OrderPlaced",
            Msg::StockAdded { .. } => "StockAdded",
            Msg::ProductReserved { .. } => "ProductReserved",
            Msg::OrderRejected { .. } => "OrderRejected",
            Msg::OrderValidation { .. } => "OrderValidation",
            Msg::ReserveStock { .. } => "ReserveStock",
            Msg::ConfirmReservation { .. } => "ConfirmReservation",
            Msg::CancelReservation { .. } => "CancelReservation",
            Msg::StockReserved { .. } => "StockReserved",
            Msg::StockRejected { .. } => "StockRejected",
            Msg::ReservationConfirmed { .. } => "ReservationConfirmed",
            Msg::ReservationReleased { .. } => "ReservationReleased",
            Msg::ConfirmRejected { .. } => "ConfirmRejected",
            Msg::PaymentSettled { .. } => "PaymentSettled",
            Msg::OrderConfirmed { .. } => "OrderConfirmed",
            Msg::OrderCancelled { .. } => "OrderCancelled",
        }
    }

    /// The order this message is about, if any.
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Msg::StockAdded { .. } => None,
            Msg::OrderPlaced { order_id, .. }
            | Msg::ProductReserved { order_id, .. }
            | Msg::OrderRejected { order_id, .. }
            | Msg::OrderValidation { order_id, .. }
            | Msg::ReserveStock { order_id, .. }
            | Msg::ConfirmReservation { order_id, .. }
            | Msg::CancelReservation { order_id, .. }
            | Msg::StockReserved { order_id, .. }
            | Msg::StockRejected { order_id, .. }
            | Msg::ReservationConfirmed { order_id, .. }
            | Msg::ReservationReleased { order_id, .. }
            | Msg::ConfirmRejected { order_id, .. }
            | Msg::PaymentSettled { order_id, .. }
            | Msg::OrderConfirmed { order_id }
            | Msg::OrderCancelled { order_id, .. } => Some(order_id),
        }
    }
}
