//! What the design's stock stores say, read through the decoders its schema declares.
//!
//! Each stock-holding store's committed changelog is folded (key → last record) and every
//! live record decoded into a [`StockFact`]. Per product, the facts of every stock store
//! combine into one [`View`]: units available (available + in stock − reserved + a book's
//! available), and the per-order holds of any [`Book`].

use super::history::{History, Rec};
use crate::designs::{Book, Decoder, Schema, StockFact, Store};
use std::collections::{BTreeMap, BTreeSet};

/// One record of a store, decoded (`Err`: why its value cannot be read).
pub type Decoded<'h> = (&'h Rec, Result<StockFact, String>);

/// The committed contents of a store (its changelog's fold), decoded: key → fact.
pub fn contents<'h>(h: &'h History, store: &Store) -> BTreeMap<&'h str, Decoded<'h>> {
    h.fold_topic(&store.changelog)
        .into_iter()
        .map(|(key, rec)| (key, (rec, decode(store, key, rec))))
        .collect()
}

/// Every committed record of a store in append order, decoded (`None` for a tombstone).
pub fn records<'h>(
    h: &'h History,
    store: &Store,
) -> impl Iterator<Item = (&'h Rec, Option<Result<StockFact, String>>)> + 'h {
    let store = store.clone();
    h.records.iter().filter_map(move |r| {
        if r.tp.topic != store.changelog {
            return None;
        }
        {
            let key = r.key.as_deref()?;
            Some((r, r.value.as_ref().map(|_| decode(&store, key, r))))
        }
    })
}

fn decode(store: &Store, key: &str, rec: &Rec) -> Result<StockFact, String> {
    let value = rec.value.as_deref().unwrap_or_default();
    store.decoder.decode(key, value).map_err(|why| {
        format!(
            "the {} value at {} cannot be read: {why}",
            store.label(),
            rec.at()
        )
    })
}

/// What the stores say about one product.
#[derive(Clone, Debug)]
pub struct View<'h> {
    /// Units available per the stores.
    pub available: i64,
    /// How the stores arrive at it, in words.
    pub says: String,
    /// Negative parts, in words.
    pub negative: Vec<String>,
    /// Store records read.
    pub recs: Vec<&'h Rec>,
    /// Units held per order, when some store keeps them (a book; empty if it has no entry).
    pub book: Option<Book>,
}

/// One stock store's part in a product's view.
struct Part<'h> {
    store: &'h Store,
    fact: Option<StockFact>,
    /// The records behind the fact (several for a book kept under several keys).
    recs: Vec<&'h Rec>,
}

/// Add a record's fact to a product's parts: a book's records of one store add up into
/// one book (a ledger may keep a product's available units under the product's key and
/// each order's holds under the order's own key).
fn add_part<'h>(parts: &mut Vec<Part<'h>>, store: &'h Store, fact: StockFact, rec: &'h Rec) {
    let same = parts
        .iter_mut()
        .find(|p| std::ptr::eq(p.store, store) && matches!(p.fact, Some(StockFact::Book(_))));
    match (same, &fact) {
        (Some(part), StockFact::Book(b)) => {
            if let Some(StockFact::Book(into)) = &mut part.fact {
                merge(into, b);
            }
            part.recs.push(rec);
        }
        _ => parts.push(Part {
            store,
            fact: Some(fact),
            recs: vec![rec],
        }),
    }
}

/// The view of every product the events or the stores mention, or why it cannot be read.
pub fn views<'h>(
    schema: &'h Schema,
    h: &'h History,
    products: &BTreeSet<&'h str>,
) -> BTreeMap<String, Result<View<'h>, String>> {
    let stores: Vec<&Store> = schema.stock_stores().collect();
    let mut facts: BTreeMap<String, Vec<Part<'h>>> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for p in products {
        facts.insert(p.to_string(), Vec::new());
    }
    for store in &stores {
        for (key, (rec, fact)) in contents(h, store) {
            match fact {
                Ok(fact) => {
                    let parts = facts.entry(fact.product().to_string()).or_default();
                    add_part(parts, store, fact, rec);
                }
                Err(why) => {
                    errors.entry(key.to_string()).or_insert(why);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for (product, parts) in facts {
        let view = match errors.remove(&product) {
            Some(why) => Err(why),
            None => Ok(view(&stores, parts)),
        };
        out.insert(product, view);
    }
    for (key, why) in errors {
        out.insert(key, Err(why));
    }
    out
}

/// Combine a product's facts, one part per stock store (a store without an entry for
/// the product takes part with nothing).
fn view<'h>(stores: &[&'h Store], mut found: Vec<Part<'h>>) -> View<'h> {
    let mut parts: Vec<Part<'h>> = Vec::new();
    for s in stores {
        match found.iter().position(|p| std::ptr::eq(p.store, *s)) {
            Some(i) => parts.push(found.remove(i)),
            None => parts.push(Part {
                store: s,
                fact: None,
                recs: vec![],
            }),
        }
    }
    parts.extend(found); // a second record of the same product in one store
    let mut available = 0;
    let mut negative = Vec::new();
    let mut book: Option<Book> = None;
    for part in &parts {
        let (delta, neg) = contribution(part);
        available += delta;
        negative.extend(neg);
        if let Decoder::Book(_) = part.store.decoder {
            let b = book.get_or_insert_with(Book::default);
            if let Some(StockFact::Book(f)) = &part.fact {
                merge(b, f);
            }
        }
    }
    if available < 0 {
        negative.push(format!("{available} available"));
    }
    View {
        available,
        says: says(&parts, available),
        negative,
        recs: parts.iter().flat_map(|p| p.recs.iter().copied()).collect(),
        book,
    }
}

/// A part's units toward available, and its own negative parts in words.
fn contribution(part: &Part<'_>) -> (i64, Vec<String>) {
    match &part.fact {
        None => (0, vec![]),
        Some(StockFact::Available(c)) => (c.units, vec![]),
        Some(StockFact::InStock(c)) => (c.units, negative(c.units, "in total")),
        Some(StockFact::Reserved(c)) => (-c.units, negative(c.units, "reserved")),
        Some(StockFact::Book(b)) => (b.available, vec![]),
    }
}

fn negative(units: i64, what: &str) -> Vec<String> {
    if units < 0 {
        vec![format!("{units} {what}")]
    } else {
        vec![]
    }
}

/// Add book `b` (of the same product) to `into`.
pub fn merge(into: &mut Book, b: &Book) {
    into.product.clone_from(&b.product);
    into.available += b.available;
    for (o, (u, e)) in &b.reserved {
        let r = into.reserved.entry(o.clone()).or_insert((0, *e));
        r.0 += u;
    }
    for (o, u) in &b.confirmed {
        *into.confirmed.entry(o.clone()).or_default() += u;
    }
    for (o, u) in &b.released {
        *into.released.entry(o.clone()).or_default() += u;
    }
}

/// How the stores arrive at `available`, in words.
fn says(parts: &[Part<'_>], available: i64) -> String {
    if let [one] = parts {
        let name = one.store.label();
        match &one.fact {
            Some(StockFact::Available(c)) => {
                return format!("the {name} store says {} available", c.units)
            }
            Some(StockFact::Book(b)) => {
                let reserved: u64 = b.reserved.values().map(|(u, _)| *u).sum();
                let confirmed: u64 = b.confirmed.values().sum();
                return format!(
                    "the {name} ledger says {} available ({reserved} reserved, {confirmed} confirmed)",
                    b.available
                );
            }
            None => {
                let what = match one.store.decoder {
                    Decoder::Book(_) => "ledger",
                    _ => "entry",
                };
                return format!("the {name} store has no {what} (0 available)");
            }
            Some(StockFact::InStock(_) | StockFact::Reserved(_)) => {}
        }
    }
    let mut text = String::from("the stores say");
    for (i, part) in parts.iter().enumerate() {
        let name = part.store.label();
        let (sign, term) = match (&part.store.decoder, &part.fact) {
            (_, Some(StockFact::Reserved(c))) => ("−", format!("{} reserved ({name})", c.units)),
            (Decoder::Reserved(_), None) => ("−", format!("0 reserved ({name})")),
            (_, Some(StockFact::InStock(c))) => ("+", format!("{} in total ({name})", c.units)),
            (Decoder::InStock(_), None) => ("+", format!("0 in total ({name})")),
            (_, Some(StockFact::Available(c))) => ("+", format!("{} available ({name})", c.units)),
            (_, Some(StockFact::Book(b))) => {
                ("+", format!("{} available ({name} ledger)", b.available))
            }
            (_, None) => ("+", format!("0 available ({name})")),
        };
        match (i, sign) {
            (0, "+") => text.push_str(&format!(" {term}")),
            _ => text.push_str(&format!(" {sign} {term}")),
        }
    }
    format!("{text} = {available} available")
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::designs::{Book, Count, Decoder, Store};

    const AVAILABLE_LOG: &str = "ps-ProductStock-changelog";
    const HOLDS_LOG: &str = "orders-holds-changelog";

    /// A layout no shipped design has: holds keyed by order, `"<product>:<units>"`.
    fn hold_by_order(key: &str, value: &str) -> Result<Book, String> {
        let (product, units) = value
            .split_once(':')
            .ok_or_else(|| format!("{value:?} is not <product>:<units>"))?;
        let units: u64 = units
            .parse()
            .map_err(|_| format!("{units:?} is not a number"))?;
        Ok(Book {
            product: product.into(),
            reserved: [(key.to_string(), (units, 0))].into(),
            ..Book::default()
        })
    }

    fn by_order() -> Schema {
        let store = |app: &str, name: &str, changelog: &str, decoder| Store {
            application: app.into(),
            name: name.into(),
            changelog: changelog.into(),
            decoder,
        };
        Schema {
            stores: vec![
                store(
                    "ps",
                    "ProductStock",
                    AVAILABLE_LOG,
                    Decoder::Available(Count::of_product_key),
                ),
                store("orders", "holds", HOLDS_LOG, Decoder::Book(hold_by_order)),
            ],
            copies: vec![],
            decisions: &["ProductReserved", "OrderRejected"],
            reservations_settle: false,
        }
    }

    fn sim() -> Sim {
        let mut s = Sim::new();
        s.broker
            .create_topic(
                HOLDS_LOG,
                oversell_sim::TopicConfig {
                    partitions: 1,
                    compacted: true,
                },
            )
            .unwrap();
        s.msg("stock", stock("p1", 3));
        s.msg("orders", placed("o1", "p1", 1));
        s.msg("orders", reserved("o1", "p1", 1));
        s.put(AVAILABLE_LOG, 0, "p1", Some("2".into()));
        s.put(HOLDS_LOG, 0, "o1", Some("p1:1".into()));
        s
    }

    #[test]
    fn a_new_store_layout_is_judged_through_its_decoder() {
        let mut s = sim();
        let verdict = check(&by_order(), &s.run(), 100_000);
        assert!(verdict.holds(), "{verdict}");
        // A hold the events never made: the book, keyed by order, is read per product (its
        // records add up into one book).
        s.put(HOLDS_LOG, 0, "o2", Some("p1:1".into()));
        let v = check_one(Invariant::Conservation, &by_order(), &s.run(), 100_000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "p1: 3 units in stock, but the stores say 2 available (ps-ProductStock) + 0 available (orders-holds \
             ledger) = 2 available while 1 unit is held by order o1; the \
             ledger's own books give 2 available + 2 reserved or confirmed = 4, not 3; the ledger holds 1 unit \
             for order o2, but its committed events leave 0 units (no hold or release events)"
        );
        // The order's hold grown in its book, with no event behind it.
        let mut s = sim();
        s.put(HOLDS_LOG, 0, "o1", Some("p1:2".into()));
        let v = check_one(Invariant::Conservation, &by_order(), &s.run(), 100_000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.ends_with(
                "the ledger holds 2 units for order o1, but its committed events leave 1 unit \
                            (ProductReserved at orders-0@1 (t=0ms))"
            ),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn an_unreadable_store_value_is_a_violation_not_a_skip() {
        let mut s = sim();
        s.put(HOLDS_LOG, 0, "o3", Some("garbage".into()));
        let v = check_one(Invariant::Conservation, &by_order(), &s.run(), 100_000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "o3: cannot read the store: the orders-holds value at orders-holds-changelog-0@1 (t=0ms) cannot be \
             read: \"garbage\" is not <product>:<units>"
        );
    }
}
