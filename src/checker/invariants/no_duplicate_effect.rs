//! `no-duplicate-effect` (always): no reservation applied twice; no duplicate outcome
//! event.

use crate::checker::books::{role, Books, Product, Role};
use crate::checker::history::Rec;
use crate::checker::stores;
use crate::checker::words::{and_list, label, orders_word, units};
use crate::checker::{Cx, Invariant, Violation};
use crate::designs::{Book, Decoder, StockFact, Store};
use oversell_sim::Millis;
use std::collections::BTreeMap;

/// No outcome event (hold, reject, release, confirm, final) is committed twice for the
/// same order; and no store applied a reservation twice: a reserved store above the units
/// of the orders that passed (each counted once), an available store below stock minus
/// the units held (each order once), or a book that reserved an order again or whose
/// available plus its own holds exceeds the units in stock.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = duplicate_outcomes(cx);
    let books = Books::of(cx.h);
    for store in cx.schema.stock_stores() {
        match store.decoder {
            // Reserved units only grow, together with the PASS they back: sound at any time.
            Decoder::Reserved(_) => out.extend(reserved_twice(cx, store, &books)),
            // A store that lags its events is not yet a duplicate: judged once quiescent.
            Decoder::Available(_) if cx.quiescent() => out.extend(taken_twice(cx, store, &books)),
            Decoder::Available(_) => {}
            Decoder::Book(_) => out.extend(book_reapplied(cx, store)),
            // Units in stock are not taken by orders: an in-stock count applied twice is a
            // phantom unit, conservation's business.
            Decoder::InStock(_) => {}
            Decoder::NoStock => unreachable!("stock_stores holds stock"),
        }
    }
    if cx.quiescent() {
        out.extend(book_given_back_twice(cx, &books));
    }
    out
}

/// The same outcome event committed twice for an order.
fn duplicate_outcomes(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<(&str, &str), &Rec> = BTreeMap::new();
    for (rec, msg) in cx.h.domain() {
        let r = role(msg);
        if matches!(r, Role::Stock | Role::Placed | Role::Other) {
            continue;
        }
        let Some(order) = msg.order_id() else {
            continue;
        };
        let key = (order, label(msg));
        let Some(first) = seen.get(&key) else {
            seen.insert(key, rec);
            continue;
        };
        let explanation = format!(
            "order {}: {} committed twice, at {} and again at {}",
            cx.order(order),
            key.1,
            first.at(),
            rec.at()
        );
        out.push(cx.violation(
            Invariant::NoDuplicateEffect,
            rec.time,
            explanation,
            vec![first.seq, rec.seq],
        ));
    }
    out
}

/// A reserved store holding more than the orders that passed, each counted once.
fn reserved_twice(cx: &Cx<'_>, store: &Store, books: &Books<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let empty = Product::default();
    for (rec, fact) in stores::contents(cx.h, store).into_values() {
        let Ok(StockFact::Reserved(count)) = fact else {
            continue;
        };
        let (product, reserved) = (count.product.as_str(), count.units);
        let p = books.products.get(product).unwrap_or(&empty);
        let once: u64 = p
            .held
            .values()
            .filter(|h| !h.all_holds.is_empty())
            .map(|h| h.once)
            .sum();
        if reserved <= once as i64 {
            continue;
        }
        let passed: Vec<String> = p
            .held
            .iter()
            .filter(|(_, h)| !h.all_holds.is_empty())
            .map(|(o, h)| format!("{o} ({}, {})", units(h.once), h.all_holds[0].event_at()))
            .collect();
        let who = if passed.is_empty() {
            "no order passed".to_string()
        } else {
            format!("only {} {} passed", orders_word(passed.len()), and_list(&passed))
        };
        let explanation = format!(
            "{} holds {} reserved for {product} (at {}), but {who}: {} reserved twice",
            store.label(),
            units(reserved),
            rec.at(),
            units(reserved - once as i64)
        );
        let mut evidence = vec![rec.seq];
        evidence.extend(p.held.values().flat_map(|h| h.all_holds.iter().map(|r| r.seq)));
        out.push(cx.violation(Invariant::NoDuplicateEffect, rec.time, explanation, evidence));
    }
    out
}

/// An available store below stock minus the units held (each order once).
fn taken_twice(cx: &Cx<'_>, store: &Store, books: &Books<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let empty = Product::default();
    for (rec, fact) in stores::contents(cx.h, store).into_values() {
        let Ok(StockFact::Available(count)) = fact else {
            continue;
        };
        let (product, available) = (count.product.as_str(), count.units);
        let p = books.products.get(product).unwrap_or(&empty);
        let expected = p.stock as i64 - p.held_once() as i64;
        if available >= expected || restock_lost(cx, store, p) {
            continue;
        }
        let holders: Vec<String> = p
            .holders()
            .iter()
            .map(|(o, h)| format!("{o} ({})", units(h.once.min(h.units))))
            .collect();
        let held = if holders.is_empty() {
            "no order holds any".to_string()
        } else {
            format!(
                "{} {} hold {}",
                orders_word(holders.len()),
                and_list(&holders),
                units(p.held_once())
            )
        };
        let explanation = format!(
            "the {} store says {available} available for {product} (at {}), but {} were in stock and {held}: \
             {} taken twice",
            store.label(),
            rec.at(),
            units(p.stock),
            units(expected - available)
        );
        let mut evidence = p.evidence();
        evidence.push(rec.seq);
        out.push(cx.violation(
            Invariant::NoDuplicateEffect,
            cx.run.end_time,
            explanation,
            evidence,
        ));
    }
    out
}

/// Whether some restock of the product never reached the store's application (which
/// processed other records): then a shortfall in the store is a lost write, not a
/// duplicate.
fn restock_lost(cx: &Cx<'_>, store: &Store, p: &Product<'_>) -> bool {
    let app = store.application.as_str();
    cx.h.processed_any(app)
        && p.stock_recs
            .iter()
            .any(|r| !cx.h.processed_by(app, &r.tp, r.offset))
}

/// Walking each product's committed book records: an order reserved again — with a new
/// expiry while still reserved, or after its units were confirmed or released — is a
/// reservation applied twice. A book may keep a product under several keys (its
/// available units and open reservations under the product's, each decided order under
/// its own): an order's confirmation or release is known from whichever key holds it.
fn book_reapplied(cx: &Cx<'_>, store: &Store) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut decided = Decided::default();
    for (rec, fact) in stores::records(cx.h, store) {
        let Some(key) = rec.key.as_deref() else {
            continue;
        };
        let prev = decided.last.remove(key);
        let Some(Ok(StockFact::Book(l))) = fact else {
            if let Some((prev, prev_rec)) = &prev {
                decided.forget(prev, prev_rec);
            }
            continue;
        };
        for (order, (units_now, expiry)) in &l.reserved {
            let why = reapplied(prev.as_ref(), &decided, &l, order, *expiry);
            let Some((before, before_rec)) = why else {
                continue;
            };
            let explanation = format!(
                "the {} ledger of {} reserved {} for order {} again at {}, when the previous \
                 ledger record ({}) had it {before}: {} taken from available twice",
                store.label(),
                l.product,
                units(*units_now),
                cx.order(order),
                rec.at(),
                before_rec.place(),
                units(*units_now)
            );
            out.push(cx.violation(
                Invariant::NoDuplicateEffect,
                rec.time,
                explanation,
                vec![before_rec.seq, rec.seq],
            ));
        }
        if let Some((prev, prev_rec)) = &prev {
            decided.forget(prev, prev_rec);
        }
        decided.learn(&l, rec);
        decided.last.insert(key, (l, rec));
    }
    out
}

/// Why an order reserved in a book record was already taken care of, and the record
/// that says so: reserved under the same key with another expiry, or decided.
fn reapplied<'h>(
    prev: Option<&(Book, &'h Rec)>,
    decided: &Decided<'h>,
    l: &Book,
    order: &str,
    expiry: Millis,
) -> Option<(String, &'h Rec)> {
    if let Some((prev, prev_rec)) = prev {
        if let Some((_, e)) = prev.reserved.get(order).filter(|(_, e)| *e != expiry) {
            return Some((format!("already reserved (expiring at t={e}ms)"), prev_rec));
        }
    }
    let (what, rec) = decided.of.get(l.product.as_str())?.get(order)?;
    Some((format!("already {what}"), rec))
}

/// The live book records' confirmed and released orders, per product: what a record
/// reserving one of them again applies twice.
#[derive(Default)]
struct Decided<'h> {
    /// Product → order → "confirmed" or "released", and the record that says so (by
    /// product first, so that a look-up borrows its names).
    of: BTreeMap<String, BTreeMap<String, (&'static str, &'h Rec)>>,
    /// key → its last book record.
    last: BTreeMap<&'h str, (Book, &'h Rec)>,
}

impl<'h> Decided<'h> {
    fn learn(&mut self, l: &Book, rec: &'h Rec) {
        // A record both confirming and releasing an order reads as confirmed, as before.
        for (what, orders) in [("released", &l.released), ("confirmed", &l.confirmed)] {
            if orders.is_empty() {
                continue;
            }
            let of_product = match self.of.get_mut(l.product.as_str()) {
                Some(of_product) => of_product,
                None => self.of.entry(l.product.clone()).or_default(),
            };
            for order in orders.keys() {
                of_product.insert(order.clone(), (what, rec));
            }
        }
    }

    /// A key's record replaced or deleted: what it alone said is no longer said.
    fn forget(&mut self, prev: &Book, prev_rec: &Rec) {
        let Some(of_product) = self.of.get_mut(prev.product.as_str()) else {
            return;
        };
        for order in prev.confirmed.keys().chain(prev.released.keys()) {
            if of_product.get(order).is_some_and(|(_, r)| r.seq == prev_rec.seq) {
                of_product.remove(order);
            }
        }
    }
}

/// A book record and the store it is in.
type Placed<'h> = (&'h Rec, &'h Store);

/// At quiescence, a book whose available plus its own reserved and confirmed units
/// exceed the units put in stock gave units back twice (a release or a restock applied
/// twice). The opposite shortfall may be a lost update or a lost restock: conservation's.
/// A product's book records add up into one book, whatever their keys and stores (a
/// ledger may keep the available units under the product's key and each decided order
/// under its own, or in another store).
fn book_given_back_twice(cx: &Cx<'_>, books: &Books<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let empty = Product::default();
    let mut ledgers: BTreeMap<String, (Book, Vec<Placed<'_>>)> = BTreeMap::new();
    let book_stores = cx.schema.stock_stores();
    for store in book_stores.filter(|s| matches!(s.decoder, Decoder::Book(_))) {
        for (rec, fact) in stores::contents(cx.h, store).into_values() {
            let Ok(StockFact::Book(l)) = fact else {
                continue;
            };
            let (book, recs) = ledgers.entry(l.product.clone()).or_default();
            stores::merge(book, &l);
            recs.push((rec, store));
        }
    }
    for (l, recs) in ledgers.into_values() {
        let p = books.products.get(l.product.as_str()).unwrap_or(&empty);
        let held = l.held() as i64;
        let own = l.available + held;
        let stock = p.stock as i64;
        if own <= stock {
            continue;
        }
        let releases: Vec<String> = p
            .held
            .values()
            .flat_map(|h| h.releases.iter().map(|r| r.event_at()))
            .collect();
        let releases = if releases.is_empty() {
            String::new()
        } else {
            format!(" (releases: {})", and_list(&releases))
        };
        let (latest, store) = recs.iter().max_by_key(|(r, _)| r.seq).expect("a record");
        let explanation = format!(
            "the {} ledger of {} (at {}) has {} available + {held} reserved or confirmed = {own}, \
             but {} were in stock: {} given back to available twice{releases}",
            store.label(),
            l.product,
            latest.at(),
            l.available,
            units(stock),
            units(own - stock)
        );
        let mut evidence = p.evidence();
        evidence.extend(p.held.values().flat_map(|h| h.releases.iter().map(|r| r.seq)));
        evidence.extend(recs.iter().map(|(r, _)| r.seq));
        out.push(cx.violation(
            Invariant::NoDuplicateEffect,
            cx.run.end_time,
            explanation,
            evidence,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn no_duplicate_effect_flags_a_duplicate_outcome_event() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.msg("orders", placed("o1", "p1", 1));
        s.at(10).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.put(RESERVED_LOG, 0, "p1", Some("1".into()));
        assert!(violations(Invariant::NoDuplicateEffect, &rekeyed(), &s, 1000).is_empty());
        s.at(30).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        let v = violations(Invariant::NoDuplicateEffect, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "order o1 (orders-0@0): OrderValidation PASS committed twice, at order-validations-0@0 (t=10ms) and \
             again at order-validations-0@1 (t=30ms)"
        );
    }

    #[test]
    fn no_duplicate_effect_flags_a_reservation_applied_twice_in_the_reserved_store() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.msg("orders", placed("o1", "p1", 1));
        s.at(10).put(RESERVED_LOG, 0, "p1", Some("1".into()));
        s.at(10).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        // Reprocessed after a crash: the store takes the unit again; the PASS is lost.
        s.at(40).put(RESERVED_LOG, 0, "p1", Some("2".into()));
        s.outcome = Outcome::TimeBound; // judged at any time
        let v = violations(Invariant::NoDuplicateEffect, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "inv-reserved holds 2 units reserved for p1 (at inv-reserved-changelog-0@1 (t=40ms)), but only order \
             o1 (1 unit, OrderValidation PASS at order-validations-0@0 (t=10ms)) passed: 1 unit reserved twice"
        );
        assert_eq!(v[0].time, 40);
    }

    #[test]
    fn no_duplicate_effect_flags_units_taken_twice_from_an_available_store() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 1));
        s.msg("orders", reserved("o1", "p1", 1));
        s.put(STOCK_LOG, 0, "p1", Some("1".into()));
        s.put(STOCK_LOG, 0, "p1", Some("0".into()));
        assert!(violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).is_empty());
        s.put(STOCK_LOG, 0, "p1", Some("-1".into()));
        let v = violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.ends_with("1 unit taken twice"),
            "{}",
            v[0].explanation
        );
        // A lagging store is no duplicate until the run is quiescent.
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).is_empty());
        // The question's oversell is not a duplicate: each order took its unit once.
        assert!(violations(
            Invariant::NoDuplicateEffect,
            &naive(),
            &last_unit(true),
            1000
        )
        .is_empty());
    }

    #[test]
    fn no_duplicate_effect_flags_a_ledger_that_applied_a_command_twice() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg("orders", placed("o1", "p1", 1));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.at(10).put(LEDGER_LOG, 0, "p1", Some(ledger(2, &[])));
        s.at(20)
            .put(LEDGER_LOG, 0, "p1", Some(ledger(1, &[("o1", 1)])));
        assert!(violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000).is_empty());
        // The repeated ReserveStock applied again: a new expiry, one more unit taken.
        let mut l: Ledger = serde_json::from_str(&ledger(0, &[("o1", 1)])).unwrap();
        l.reserved.insert("o1".into(), (1, 2000));
        s.at(30).put(
            LEDGER_LOG,
            0,
            "p1",
            Some(serde_json::to_string(&l).unwrap()),
        );
        let v = violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "the ps-ledger ledger of p1 reserved 1 unit for order o1 (orders-0@0) again at \
             ps-ledger-changelog-0@2 (t=30ms), when the previous ledger record (ps-ledger-changelog-0@1) \
             had it already reserved (expiring at t=1000ms): 1 unit taken from available twice"
        );
        // Not once quiescent either: a shortfall alone is conservation's business.
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(0, &[("o1", 1)])));
        assert!(violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000).is_empty());
        assert_eq!(
            violations(Invariant::Conservation, &saga(), &s, 1000).len(),
            1
        );
        // A release applied twice gives units back twice.
        s.msg("orders", released("o1", "p1", 1));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(3, &[])));
        let v = violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.contains(
                "1 unit given back to available twice (releases: ReservationReleased at orders-0@1"
            ),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn no_duplicate_effect_reads_decided_orders_under_their_own_keys() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 3));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.msg("orders", stock_reserved("o2", "p1", 1));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(1, &[("o1", 1), ("o2", 1)])));
        // o1 confirmed: its units leave the product's value for the order's own key.
        s.at(20).put(LEDGER_LOG, 0, "p1", Some(ledger(1, &[("o2", 1)])));
        let (key, value) = decided("o1", "p1", Decision::Confirmed, 1);
        s.at(20).put(LEDGER_LOG, 0, &key, Some(value));
        assert!(violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000).is_empty());
        assert!(violations(Invariant::Conservation, &saga(), &s, 1000).is_empty());
        // The repeated ReserveStock of o1 applied again after its confirmation.
        s.at(30)
            .put(LEDGER_LOG, 0, "p1", Some(ledger(0, &[("o1", 1), ("o2", 1)])));
        let v = violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].explanation,
            "the ps-ledger ledger of p1 reserved 1 unit for order o1 again at ps-ledger-changelog-0@3 \
             (t=30ms), when the previous ledger record (ps-ledger-changelog-0@2) had it already confirmed: \
             1 unit taken from available twice"
        );
        // A release given back twice, counted against the units confirmed under o1's key.
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.msg("orders", stock_reserved("o2", "p1", 1));
        s.msg("orders", released("o2", "p1", 1));
        let (key, value) = decided("o1", "p1", Decision::Confirmed, 1);
        s.put(LEDGER_LOG, 0, &key, Some(value));
        let (key, value) = decided("o2", "p1", Decision::Released, 1);
        s.put(LEDGER_LOG, 0, &key, Some(value));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(1, &[])));
        assert!(violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000).is_empty());
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(2, &[])));
        let v = violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].explanation.starts_with(
                "the ps-ledger ledger of p1 (at ps-ledger-changelog-0@3 (t=0ms)) has 2 available + 1 \
                 reserved or confirmed = 3, but 2 units were in stock: 1 unit given back to available twice"
            ),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn no_duplicate_effect_blames_a_lost_restock_on_no_lost_write_not_a_duplicate() {
        let mut s = Sim::new();
        let first = s.msg("stock", stock("p1", 1));
        s.msg("stock", stock("p1", 1));
        s.msg("orders", reserved("o1", "p1", 1));
        s.put(STOCK_LOG, 0, "p1", Some("1".into()));
        s.put(STOCK_LOG, 0, "p1", Some("0".into()));
        // The store's application processed the first restock only.
        s.process("ps-0/ps", "stock", 0, first);
        assert!(violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).is_empty());
        assert_eq!(
            violations(Invariant::Conservation, &naive(), &s, 1000).len(),
            1
        );
        s.process("ps-0/ps", "stock", 0, first + 1);
        assert_eq!(
            violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).len(),
            1
        );
    }
}
