//! What a design declares about its data, so that the checker can read a run alone.
//!
//! A design names every state store of its applications, the changelog topic that backs
//! each, and a [`Decoder`]: a pure function from one store record (key, value) to typed
//! stock facts. The checker folds each declared changelog's committed records through
//! its decoder; it never asks a design what happened, and never guesses a topic from a
//! name. A store the run used but the schema does not declare is refused at check time
//! ([`Schema::undeclared_stores`]); a stock-holding store cannot be declared without a
//! decoder (the decoder is the variant's field, so leaving it out does not compile).
//!
//! ```
//! use oversell::designs::{Count, Decoder, Schema, Store};
//!
//! let schema = Schema {
//!     stores: vec![Store {
//!         application: "product-stock".into(),
//!         name: "ProductStock".into(),
//!         changelog: "product-stock-ProductStock-changelog".into(),
//!         // key: product id, value: units available, as decimal text
//!         decoder: Decoder::Available(Count::of_product_key),
//!     }],
//!     copies: vec![],
//!     decisions: &["ProductReserved", "OrderRejected"],
//!     reservations_settle: false,
//! };
//! let fact = schema.stores[0].decoder.decode("p1", "3").unwrap();
//! assert_eq!(fact.product(), "p1");
//! ```

use oversell_sim::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the checker needs to know about a design's data, declared up front.
#[derive(Clone, Debug)]
pub struct Schema {
    /// Every state store of the design's applications (stock-holding or not).
    pub stores: Vec<Store>,
    /// Topics that carry copies of events first written to another topic (repartition
    /// topics): their records are not domain events of their own.
    pub copies: Vec<String>,
    /// Event types that decide an order (its first such committed event is the decision).
    pub decisions: &'static [&'static str],
    /// Every reservation must end confirmed or released (the saga's promise).
    pub reservations_settle: bool,
}

impl Schema {
    /// Whether a topic holds store values or copies of events, not domain events.
    pub fn is_internal(&self, topic: &str) -> bool {
        self.stores.iter().any(|s| s.changelog == topic) || self.copies.iter().any(|t| t == topic)
    }

    /// The declared stores called `name` (in declaration order).
    pub fn stores_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Store> + 's {
        self.stores.iter().filter(move |s| s.name == name)
    }

    /// The stores that hold stock.
    pub fn stock_stores(&self) -> impl Iterator<Item = &Store> {
        self.stores.iter().filter(|s| s.decoder.holds_stock())
    }

    /// Names of `used` stores that no declared store has: a run that used them cannot be
    /// judged (the checker refuses rather than skip them).
    pub fn undeclared_stores<'u>(&self, used: impl IntoIterator<Item = &'u str>) -> Vec<String> {
        let used: BTreeSet<&str> = used.into_iter().collect();
        used.into_iter()
            .filter(|u| self.stores_named(u).next().is_none())
            .map(str::to_string)
            .collect()
    }
}

/// One state store, the changelog topic that backs it, and how to read its records.
#[derive(Clone, Debug)]
pub struct Store {
    /// The application (`application.id`) whose tasks own the store.
    pub application: String,
    /// The store's name, as processors open it.
    pub name: String,
    /// The compacted changelog topic that backs it (one partition per task).
    pub changelog: String,
    /// What one of its records says about stock.
    pub decoder: Decoder,
}

impl Store {
    /// How explanations name the store: `<application>-<store>`, the prefix of its
    /// changelog in Kafka Streams.
    pub fn label(&self) -> String {
        format!("{}-{}", self.application, self.name)
    }
}

/// Reads one store record (key, value; tombstones are never decoded) into a typed fact.
/// Pure: the same bytes always give the same fact. `Err` says why a value is unreadable.
pub type Decode<T> = fn(key: &str, value: &str) -> Result<T, String>;

/// What a store's records state, and the pure function that reads them.
#[derive(Clone, Copy, Debug)]
pub enum Decoder {
    /// A record states a product's units available to new orders.
    Available(Decode<Count>),
    /// A record states a product's units in stock in all, held or not: available is
    /// in-stock minus reserved (Confluent's inventory table).
    InStock(Decode<Count>),
    /// A record states a product's units reserved by all orders together (Confluent's
    /// `reserved stock` store).
    Reserved(Decode<Count>),
    /// A record states a product's units available and its units held per order.
    Book(Decode<Book>),
    /// The store's records say nothing about stock (an order's saga state, ...).
    NoStock,
}

impl Decoder {
    pub fn holds_stock(&self) -> bool {
        !matches!(self, Decoder::NoStock)
    }

    /// Decode a record (`Err` for an unreadable value, or a store that holds no stock).
    pub fn decode(&self, key: &str, value: &str) -> Result<StockFact, String> {
        match self {
            Decoder::Available(f) => f(key, value).map(StockFact::Available),
            Decoder::InStock(f) => f(key, value).map(StockFact::InStock),
            Decoder::Reserved(f) => f(key, value).map(StockFact::Reserved),
            Decoder::Book(f) => f(key, value).map(StockFact::Book),
            Decoder::NoStock => Err("the store holds no stock".into()),
        }
    }
}

/// A typed stock fact, decoded from one store record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StockFact {
    Available(Count),
    InStock(Count),
    Reserved(Count),
    Book(Book),
}

impl StockFact {
    /// The product the fact is about.
    pub fn product(&self) -> &str {
        match self {
            StockFact::Available(c) | StockFact::InStock(c) | StockFact::Reserved(c) => &c.product,
            StockFact::Book(b) => &b.product,
        }
    }
}

/// A number of units of a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Count {
    pub product: String,
    pub units: i64,
}

impl Count {
    /// The common layout: key = product id, value = a whole number as decimal text.
    pub fn of_product_key(key: &str, value: &str) -> Result<Count, String> {
        let units = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not a number"))?;
        Ok(Count {
            product: key.to_string(),
            units,
        })
    }
}

/// A product's units: available, and held per order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    pub product: String,
    pub available: i64,
    /// order → (units, expiry time): reserved, not yet confirmed.
    pub reserved: BTreeMap<String, (u64, Millis)>,
    /// order → units confirmed (held for good).
    pub confirmed: BTreeMap<String, u64>,
    /// order → units given back (kept so that a repeated compensation is a no-op).
    pub released: BTreeMap<String, u64>,
}

impl Book {
    /// Units held for orders: reserved plus confirmed.
    pub fn held(&self) -> u64 {
        self.reserved.values().map(|(u, _)| *u).sum::<u64>() + self.confirmed.values().sum::<u64>()
    }

    /// Units one order holds here.
    pub fn held_by(&self, order: &str) -> u64 {
        self.reserved.get(order).map_or(0, |(u, _)| *u)
            + self.confirmed.get(order).copied().unwrap_or(0)
    }
}

/// A product's ledger in the saga's store (the value of the product's key, as JSON): the
/// units available and the open reservations. Decided orders are not kept here but under
/// their own keys ([`Decided`]), so that a product's value, written whole to the changelog
/// at every update, stays as small as its open reservations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub available: i64,
    /// order → (units, expiry time)
    pub reserved: BTreeMap<String, (u64, Millis)>,
}

/// How the saga's ledger decided an order: the value of the order's own key in the ledger
/// store ([`Decided::key`]), as JSON. Kept so that a repeated command gets the same answer
/// and no second effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub product: String,
    pub decision: Decision,
    /// Units confirmed or released (0 for a rejection).
    pub units: u64,
}

/// What became of an order at the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Reserved, then confirmed: its units held for good.
    Confirmed,
    /// Reserved, then given back (a cancel, or its timeout).
    Released,
    /// Refused for want of stock.
    Rejected,
}

/// Key prefix of a decided order in the ledger store (product keys have none).
const DECIDED: &str = "order/";

impl Decided {
    /// The ledger store's key of an order's decision.
    pub fn key(order: &str) -> String {
        format!("{DECIDED}{order}")
    }

    /// The order a ledger store key names, if it is an order's key.
    pub fn order_of(key: &str) -> Option<&str> {
        key.strip_prefix(DECIDED)
    }
}

/// A product's value as the decoder reads it: a [`Ledger`], or the layout that kept every
/// decided order in the product's value too (`confirmed`, `released`, `rejected`), which
/// histories recorded before (`docs/live/`) hold.
#[derive(Deserialize)]
struct LedgerValue {
    available: i64,
    reserved: BTreeMap<String, (u64, Millis)>,
    #[serde(default)]
    confirmed: BTreeMap<String, u64>,
    #[serde(default)]
    released: BTreeMap<String, u64>,
}

impl Ledger {
    /// Decoder of the saga's ledger store: a product's key gives its available units and
    /// open reservations, an order's key the units it holds for good (confirmed) or gave
    /// back (released); the checker adds a product's records up into one [`Book`].
    pub fn decode(key: &str, value: &str) -> Result<Book, String> {
        let Some(order) = Decided::order_of(key) else {
            let l: LedgerValue = serde_json::from_str(value)
                .map_err(|e| format!("{value:?} is not a ledger: {e}"))?;
            return Ok(Book {
                product: key.to_string(),
                available: l.available,
                reserved: l.reserved,
                confirmed: l.confirmed,
                released: l.released,
            });
        };
        let d: Decided = serde_json::from_str(value)
            .map_err(|e| format!("{value:?} is not an order's decision: {e}"))?;
        let mut book = Book {
            product: d.product,
            ..Book::default()
        };
        let units = [(order.to_string(), d.units)].into();
        match d.decision {
            Decision::Confirmed => book.confirmed = units,
            Decision::Released => book.released = units,
            Decision::Rejected => {}
        }
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_are_typed_and_refuse_unreadable_values() {
        let d = Decoder::Available(Count::of_product_key);
        assert_eq!(
            d.decode("p1", " 3 "),
            Ok(StockFact::Available(Count {
                product: "p1".into(),
                units: 3
            }))
        );
        assert_eq!(d.decode("p1", "x"), Err("\"x\" is not a number".into()));
        let b = Decoder::Book(Ledger::decode);
        let l = Ledger {
            available: 1,
            reserved: [("o1".to_string(), (2, 100))].into(),
        };
        let StockFact::Book(book) = b.decode("p1", &serde_json::to_string(&l).unwrap()).unwrap()
        else {
            panic!("a book")
        };
        assert_eq!(
            (book.held(), book.held_by("o1"), book.held_by("o3")),
            (2, 2, 0)
        );
        let d = Decided {
            product: "p1".into(),
            decision: Decision::Confirmed,
            units: 3,
        };
        let value = serde_json::to_string(&d).unwrap();
        assert_eq!(
            value,
            r#"{"product":"p1","decision":"confirmed","units":3}"#
        );
        let StockFact::Book(book) = b.decode(&Decided::key("o2"), &value).unwrap() else {
            panic!("a book")
        };
        assert_eq!((book.product.as_str(), book.held_by("o2")), ("p1", 3));
        assert!(b.decode("p1", "{").unwrap_err().contains("is not a ledger"));
        // The earlier layout, decided orders in the product's value, reads the same.
        let old = r#"{"available":1,"reserved":{},"confirmed":{"o2":3},"released":{"o4":1},"rejected":["o5"]}"#;
        let StockFact::Book(book) = b.decode("p1", old).unwrap() else {
            panic!("a book")
        };
        assert_eq!((book.held(), book.released.len()), (3, 1));
        let why = b.decode(&Decided::key("o2"), "{}").unwrap_err();
        assert!(why.contains("is not an order's decision"), "{why}");
        assert!(Decoder::NoStock.decode("k", "v").is_err());
    }

    #[test]
    fn undeclared_stores_are_named() {
        let schema = Schema {
            stores: vec![Store {
                application: "a".into(),
                name: "s".into(),
                changelog: "a-s-changelog".into(),
                decoder: Decoder::NoStock,
            }],
            copies: vec!["a-r-repartition".into()],
            decisions: &[],
            reservations_settle: false,
        };
        assert_eq!(schema.undeclared_stores(["s", "t", "t"]), vec!["t"]);
        assert!(schema.is_internal("a-s-changelog") && schema.is_internal("a-r-repartition"));
        assert!(!schema.is_internal("orders"));
        assert_eq!(schema.stores[0].label(), "a-s");
    }
}
