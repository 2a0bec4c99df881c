//! `conservation` (at quiescence): available + held = units put in stock; nothing
//! negative.

use crate::checker::books::{Books, Product};
use crate::checker::stores::{self, View};
use crate::checker::words::{and_list, orders_word, units, units_adj};
use crate::checker::{Cx, Invariant, Violation};
use crate::designs::Book;
use std::collections::BTreeSet;

/// At quiescence, per product: the stores' available units plus the units held per the
/// committed events equal the units put in stock; nothing in the stores is negative; for a
/// store that keeps holds per order (a book), its own books balance too and its holds
/// match the events order by order.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let books = Books::of(cx.h);
    let products: BTreeSet<&str> = books.products.keys().copied().collect();
    let empty = Product::default();
    for (product, view) in stores::views(cx.schema, cx.h, &products) {
        let p = books.products.get(product.as_str()).unwrap_or(&empty);
        match view {
            Ok(view) => out.extend(judge_product(cx, &product, p, &view)),
            Err(why) => {
                let explanation = format!("{product}: cannot read the store: {why}");
                out.push(cx.violation(
                    Invariant::Conservation,
                    cx.run.end_time,
                    explanation,
                    p.evidence(),
                ));
            }
        }
    }
    out
}

fn judge_product(cx: &Cx<'_>, product: &str, p: &Product<'_>, view: &View<'_>) -> Option<Violation> {
    let stock = p.stock as i64;
    let held = p.held_units() as i64;
    let mut problems = balance(view, stock, held);
    if let Some(book) = &view.book {
        problems.extend(book_problems(book, p, stock, view.available, held));
    }
    if problems.is_empty() {
        return None;
    }
    let holders: Vec<&str> = p.holders().iter().map(|(o, _)| *o).collect();
    let held_words = if holders.is_empty() {
        "no units are held".to_string()
    } else {
        format!(
            "{} {} held by {} {}",
            units(held),
            if held == 1 { "is" } else { "are" },
            orders_word(holders.len()),
            holders.join(", ")
        )
    };
    let explanation = format!(
        "{product}: {} in stock, but {} while {held_words}; {}",
        units(stock),
        view.says,
        problems.join("; ")
    );
    let mut evidence = p.evidence();
    evidence.extend(view.recs.iter().map(|r| r.seq));
    Some(cx.violation(
        Invariant::Conservation,
        cx.run.end_time,
        explanation,
        evidence,
    ))
}

/// Negative parts, and available + held against stock.
fn balance(view: &View<'_>, stock: i64, held: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let sum = view.available + held;
    if !view.negative.is_empty() {
        // Balanced books with a negative store: units promised that never existed.
        let phantom = if sum == stock {
            (-view.available).max(0)
        } else {
            0
        };
        let tail = if phantom > 0 {
            format!(": {}", units_adj(phantom, "phantom"))
        } else {
            String::new()
        };
        problems.push(format!("negative: {}{tail}", view.negative.join(", ")));
    }
    if sum != stock {
        let diff = sum - stock;
        let what = if diff > 0 {
            format!("{} (counted but never in stock)", units_adj(diff, "phantom"))
        } else {
            format!("{} (neither available nor held)", units_adj(-diff, "leaked"))
        };
        problems.push(format!(
            "{} available + {held} held = {sum}, not {stock}: {what}",
            view.available
        ));
    }
    problems
}

/// The stores' own balance (available per the stores + held per the book), and the
/// book's holds order by order against the events'.
fn book_problems(
    l: &Book,
    p: &Product<'_>,
    stock: i64,
    available: i64,
    held: i64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let ledger_held = l.held();
    let own = available + ledger_held as i64;
    if own != stock && own != available + held {
        problems.push(format!(
            "the ledger's own books give {available} available + {ledger_held} reserved or confirmed = {own}, not {stock}"
        ));
    }
    let orders: BTreeSet<&str> = l
        .reserved
        .keys()
        .chain(l.confirmed.keys())
        .map(String::as_str)
        .chain(p.held.keys().copied())
        .collect();
    for order in orders {
        let in_ledger = l.held_by(order);
        let by_events = p.held.get(order).map_or(0, |h| h.units);
        if in_ledger == by_events {
            continue;
        }
        let events: Vec<String> = p
            .held
            .get(order)
            .map(|h| {
                h.all_holds
                    .iter()
                    .chain(&h.releases)
                    .map(|r| r.event_at())
                    .collect()
            })
            .unwrap_or_default();
        let events = if events.is_empty() {
            "no hold or release events".to_string()
        } else {
            and_list(&events)
        };
        problems.push(format!(
            "the ledger holds {} for order {order}, but its committed events leave {} ({events})",
            units(in_ledger),
            units(by_events)
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn conservation_flags_a_negative_store() {
        let s = last_unit(true);
        let v = violations(Invariant::Conservation, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "product1: 1 unit in stock, but the ps-ProductStock store says -1 available while 2 units are held by \
             orders o1, o2; negative: -1 available: 1 phantom unit"
        );
        assert_eq!(v[0].time, 2000);
    }

    #[test]
    fn conservation_flags_leaked_units_and_is_judged_only_at_quiescence() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 3));
        s.msg("orders", reserved("o1", "p1", 1));
        s.put(STOCK_LOG, 0, "p1", Some("1".into())); // 1 available + 1 held, of 3
        let v = violations(Invariant::Conservation, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.ends_with(
                "1 available + 1 held = 2, not 3: 1 leaked unit (neither available nor held)"
            ),
            "{}",
            v[0].explanation
        );
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::Conservation, &naive(), &s, 1000).is_empty());
        assert!(!Invariant::Conservation.judged_on(&s.run()));
    }

    #[test]
    fn conservation_holds_for_balanced_stores_of_every_view() {
        let s = last_unit(false);
        assert!(violations(Invariant::Conservation, &naive(), &s, 1000).is_empty());

        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.put(TOTAL_LOG, 0, "p1", Some("2".into()));
        s.put(RESERVED_LOG, 0, "p1", Some("1".into()));
        assert!(violations(Invariant::Conservation, &rekeyed(), &s, 1000).is_empty());
        // The reserved store lost the reservation: a phantom unit.
        s.put(RESERVED_LOG, 0, "p1", Some("0".into()));
        let v = violations(Invariant::Conservation, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(v[0]
            .explanation
            .contains("2 in total (inv-total) − 0 reserved (inv-reserved) = 2 available"));
        assert!(
            v[0].explanation.contains("1 phantom unit"),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn conservation_cross_checks_a_ledger_with_the_events() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(1, &[("o1", 1)])));
        assert!(violations(Invariant::Conservation, &saga(), &s, 1000).is_empty());
        // The ledger released o1, but no ReservationReleased was ever committed.
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(2, &[])));
        let v = violations(Invariant::Conservation, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.contains("1 phantom unit"),
            "{}",
            v[0].explanation
        );
        assert!(
            v[0].explanation.contains(
                "the ledger holds 0 units for order o1, but its committed events leave 1 unit"
            ),
            "{}",
            v[0].explanation
        );
    }
}
