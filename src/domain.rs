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

    /// The message `text` holds, as `serde_json` reads it. A text exactly as
    /// [`Msg::encode`] writes it (every record the designs write) is read by
    /// [`canonical::read`] without `serde_json`'s buffering of an internally tagged
    /// enum; anything else (other field orders, escapes, extra fields, whitespace) by
    /// `serde_json`.
    pub fn decode(text: &str) -> Option<Msg> {
        if let Some(m) = canonical::read(text) {
            debug_assert_eq!(
                m.encode(),
                text,
                "only Msg::encode's own text is read directly"
            );
            return Some(m);
        }
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

/// A reader of the one text [`Msg::encode`] writes for each message, and of nothing else:
/// `{"type":"Kind"` then the variant's fields in declaration order, each `,"name":value`,
/// then `}`; strings with no byte `serde_json` escapes (`"`, `\`, controls below 0x20),
/// integers in shortest decimal, `true`/`false`, `"PASS"`/`"FAIL"`. Whatever it accepts
/// is, byte for byte, `serde_json::to_string` of the message it returns, so
/// `serde_json::from_str` of it returns that same message: reading it directly changes
/// no result. Any other text gets `None` and is left to `serde_json`.
pub(crate) mod canonical {
    use super::{Msg, Validation};

    /// Reads a text exactly as `serde_json::to_string` writes it, piece by piece; each
    /// method returns `None` where the text is not what it expects.
    pub(crate) struct Reader<'a> {
        rest: &'a [u8],
        text: &'a str,
    }

    impl<'a> Reader<'a> {
        pub(crate) fn new(text: &'a str) -> Reader<'a> {
            Reader {
                rest: text.as_bytes(),
                text,
            }
        }

        /// Whether the whole text has been read.
        pub(crate) fn at_end(&self) -> bool {
            self.rest.is_empty()
        }

        /// These exact bytes.
        pub(crate) fn lit(&mut self, s: &str) -> Option<()> {
            self.rest = self.rest.strip_prefix(s.as_bytes())?;
            Some(())
        }

        /// `,"name":`
        fn field(&mut self, name: &str) -> Option<()> {
            self.lit(",\"")?;
            self.lit(name)?;
            self.lit("\":")
        }

        /// A quoted string with nothing to unescape.
        pub(crate) fn str(&mut self) -> Option<&'a str> {
            self.lit("\"")?;
            let end = self
                .rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            if self.rest[end] != b'"' {
                return None;
            }
            let start = self.text.len() - self.rest.len();
            // The bytes before a `"` of a `str` end on a character boundary.
            let s = self.text.get(start..start + end)?;
            self.rest = &self.rest[end + 1..];
            Some(s)
        }

        fn string(&mut self, name: &str) -> Option<String> {
            self.field(name)?;
            self.str().map(str::to_string)
        }

        fn u64(&mut self, name: &str) -> Option<u64> {
            self.field(name)?;
            self.number()
        }

        /// An unsigned integer in shortest decimal (no sign, no leading zero).
        pub(crate) fn number(&mut self) -> Option<u64> {
            let digits = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let (d, rest) = self.rest.split_at(digits);
            if d.is_empty() || (d.len() > 1 && d[0] == b'0') {
                return None;
            }
            let mut n: u64 = 0;
            for b in d {
                n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            }
            self.rest = rest;
            Some(n)
        }

        fn bool(&mut self, name: &str) -> Option<bool> {
            self.field(name)?;
            if self.lit("true").is_some() {
                Some(true)
            } else {
                self.lit("false").map(|()| false)
            }
        }

        fn validation(&mut self, name: &str) -> Option<Validation> {
            self.field(name)?;
            match self.str()? {
                "PASS" => Some(Validation::Pass),
                "FAIL" => Some(Validation::Fail),
                _ => None,
            }
        }
    }

    pub(super) fn read(text: &str) -> Option<Msg> {
        let mut r = Reader::new(text);
        r.lit("{\"type\":")?;
        let kind = r.str()?;
        let m = match order_event(kind, &mut r) {
            Some(m) => m,
            None => saga_event(kind, &mut r)?,
        };
        r.lit("}")?;
        r.at_end().then_some(m)
    }

    /// The fields of an event of the order and stock flow, after its `type`.
    fn order_event(kind: &str, r: &mut Reader<'_>) -> Option<Msg> {
        let o = "order_id";
        let p = "product_id";
        Some(match kind {
            "OrderPlaced" => Msg::OrderPlaced {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
                user_id: r.string("user_id")?,
            },
            "StockAdded" => Msg::StockAdded {
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
            },
            "ProductReserved" => Msg::ProductReserved {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
            },
            "OrderRejected" => Msg::OrderRejected {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                reason: r.string("reason")?,
            },
            "OrderValidation" => Msg::OrderValidation {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
                result: r.validation("result")?,
            },
            _ => return None,
        })
    }

    /// The fields of a saga command, reply or outcome, after its `type`.
    fn saga_event(kind: &str, r: &mut Reader<'_>) -> Option<Msg> {
        let o = "order_id";
        let p = "product_id";
        Some(match kind {
            "ReserveStock" => Msg::ReserveStock {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
            },
            "ConfirmReservation" => Msg::ConfirmReservation {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
            },
            "CancelReservation" => Msg::CancelReservation {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                reason: r.string("reason")?,
            },
            "PaymentSettled" => Msg::PaymentSettled {
                order_id: r.string(o)?,
                succeeded: r.bool("succeeded")?,
            },
            "StockReserved" => Msg::StockReserved {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
            },
            "StockRejected" => Msg::StockRejected {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                reason: r.string("reason")?,
            },
            "ReservationConfirmed" => Msg::ReservationConfirmed {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
            },
            "ReservationReleased" => Msg::ReservationReleased {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
                quantity: r.u64("quantity")?,
                reason: r.string("reason")?,
            },
            "ConfirmRejected" => Msg::ConfirmRejected {
                order_id: r.string(o)?,
                product_id: r.string(p)?,
            },
            "OrderConfirmed" => Msg::OrderConfirmed {
                order_id: r.string(o)?,
            },
            "OrderCancelled" => Msg::OrderCancelled {
                order_id: r.string(o)?,
                reason: r.string("reason")?,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind(s: &str) -> Vec<Msg> {
        let (o, p, n) = (s.to_string(), format!("p{s}"), 18_446_744_073_709_551_615);
        vec![
            Msg::OrderPlaced {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 0,
                user_id: s.into(),
            },
            Msg::StockAdded {
                product_id: p.clone(),
                quantity: n,
            },
            Msg::ProductReserved {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 10,
            },
            Msg::OrderRejected {
                order_id: o.clone(),
                product_id: p.clone(),
                reason: s.into(),
            },
            Msg::OrderValidation {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 3,
                result: Validation::Pass,
            },
            Msg::OrderValidation {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 3,
                result: Validation::Fail,
            },
            Msg::ReserveStock {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 7,
            },
            Msg::ConfirmReservation {
                order_id: o.clone(),
                product_id: p.clone(),
            },
            Msg::CancelReservation {
                order_id: o.clone(),
                product_id: p.clone(),
                reason: TIMEOUT_REASON.into(),
            },
            Msg::PaymentSettled {
                order_id: o.clone(),
                succeeded: true,
            },
            Msg::PaymentSettled {
                order_id: o.clone(),
                succeeded: false,
            },
            Msg::StockReserved {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 1,
            },
            Msg::StockRejected {
                order_id: o.clone(),
                product_id: p.clone(),
                reason: s.into(),
            },
            Msg::ReservationConfirmed {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 2,
            },
            Msg::ReservationReleased {
                order_id: o.clone(),
                product_id: p.clone(),
                quantity: 2,
                reason: s.into(),
            },
            Msg::ConfirmRejected {
                order_id: o.clone(),
                product_id: p,
            },
            Msg::OrderConfirmed {
                order_id: o.clone(),
            },
            Msg::OrderCancelled {
                order_id: o,
                reason: s.into(),
            },
        ]
    }

    #[test]
    fn the_direct_reader_reads_what_encode_writes_and_serde_json_agrees() {
        for s in ["o1", "", "caf\u{e9} / \u{7f} \u{1f600}"] {
            for m in every_kind(s) {
                let text = m.encode();
                assert_eq!(canonical::read(&text).as_ref(), Some(&m), "{text}");
                assert_eq!(serde_json::from_str::<Msg>(&text).ok(), Some(m));
            }
        }
        // Strings serde_json escapes are left to it, and still read.
        for s in ["quote \"", "back\\slash", "line\nfeed", "\u{1}"] {
            for m in every_kind(s) {
                let text = m.encode();
                assert_eq!(canonical::read(&text), None, "{text}");
                assert_eq!(Msg::decode(&text), Some(m));
            }
        }
    }

    #[test]
    fn any_other_text_is_left_to_serde_json() {
        let texts = [
            r#"{"type":"OrderConfirmed","order_id":"o1"} "#,
            r#"{ "type":"OrderConfirmed","order_id":"o1"}"#,
            r#"{"order_id":"o1","type":"OrderConfirmed"}"#,
            r#"{"type":"OrderConfirmed","order_id":"o1","extra":1}"#,
            r#"{"type":"OrderConfirmed","order_id":"o1","order_id":"o2"}"#,
            r#"{"type":"StockAdded","product_id":"p1","quantity":2,"count":5}"#,
            r#"{"type":"StockAdded","product_id":"p1","quantity":02}"#,
            r#"{"type":"StockAdded","product_id":"p1","quantity":-2}"#,
            r#"{"type":"StockAdded","product_id":"p1","quantity":2.0}"#,
            r#"{"type":"StockAdded","product_id":"p1","quantity":18446744073709551616}"#,
            r#"{"type":"OrderValidation","order_id":"o","product_id":"p","quantity":1,"result":"pass"}"#,
            r#"{"type":"PaymentSettled","order_id":"o","succeeded":1}"#,
            r#"{"type":"Nothing","order_id":"o1"}"#,
            r#"{"type":"OrderConfirmed","order_id":"o\u0031"}"#,
            r#"{"type":"OrderConfirmed"}"#,
            "",
            "5",
        ];
        for text in texts {
            assert_eq!(canonical::read(text), None, "{text}");
            assert_eq!(
                Msg::decode(text),
                serde_json::from_str::<Msg>(text).ok(),
                "{text}"
            );
        }
    }
}
