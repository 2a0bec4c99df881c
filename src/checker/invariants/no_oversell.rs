//! `no-oversell` (always): per product, units held never exceed the units in stock.

use crate::checker::books::{Books, Role};
use crate::checker::history::Rec;
use crate::checker::words::{and_list, label, orders_word, units};
use crate::checker::{Cx, Invariant, Violation};
use crate::domain::Msg;
use std::collections::{BTreeMap, BTreeSet};


/// Walking the committed history in append order, per product, units held (holds −
/// releases; confirmed units stay held; a duplicate hold counts twice) never exceed the
/// units in stock so far.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut books = Books::default();
    let mut over: BTreeSet<&str> = BTreeSet::new();
    let domain: Vec<(&Rec, &Msg)> = cx.h.domain().collect();
    // Products touched by the current produce request, with the record that last did.
    let mut touched: BTreeMap<&str, (&Rec, &Msg)> = BTreeMap::new();
    for (i, (rec, msg)) in domain.iter().copied().enumerate() {
        if let Some((product, role)) = books.apply(rec, msg) {
            if matches!(role, Role::Stock | Role::Hold | Role::Release) {
                touched.insert(product, (rec, msg));
            }
        }
        // One produce request is appended at once: judge it whole, since a release it
        // carries may sit on a later partition than the hold it made room for.
        if domain
            .get(i + 1)
            .is_some_and(|(next, _)| next.choice == rec.choice)
        {
            continue;
        }
        for (product, (rec, msg)) in std::mem::take(&mut touched) {
            out.extend(judge_oversell(cx, &books, &mut over, product, rec, msg));
        }
    }
    out
}

/// The oversell of one product after a produce request, if it begins there.
fn judge_oversell<'h>(
    cx: &Cx<'h>,
    books: &Books<'h>,
    over: &mut BTreeSet<&'h str>,
    product: &'h str,
    rec: &'h Rec,
    msg: &'h Msg,
) -> Option<Violation> {
    {
        let p = books.products.get(product)?;
        let held = p.held_units();
        if held <= p.stock {
            over.remove(product);
            return None;
        }
        if !over.insert(product) {
            return None; // still oversold: reported when it began
        }
        let holders = p.holders();
        let names: Vec<String> = holders.iter().map(|(o, _)| cx.order(o)).collect();
        let mut holds: Vec<&Rec> = holders
            .iter()
            .flat_map(|(_, h)| h.holds.iter().copied())
            .collect();
        holds.sort_by_key(|r| r.seq);
        let what = if holds
            .iter()
            .all(|r| r.msg.as_ref().map(label) == rec.msg.as_ref().map(label))
        {
            let places: Vec<String> = holds.iter().map(|r| r.at()).collect();
            format!("{} at {}", label(msg), and_list(&places))
        } else {
            let places: Vec<String> = holds.iter().map(|r| r.event_at()).collect();
            and_list(&places)
        };
        let verb = if holders.len() == 1 { "holds" } else { "hold" };
        let explanation = format!(
            "{product} had {} in stock, but {} {} {verb} {}: {what}",
            units(p.stock),
            orders_word(holders.len()),
            and_list(&names),
            units(held),
        );
        Some(cx.violation(Invariant::NoOversell, rec.time, explanation, p.evidence()))
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn no_oversell_flags_the_questions_double_reservation() {
        let s = last_unit(true);
        let v = violations(Invariant::NoOversell, &naive(), &s, 1000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].explanation,
            "product1 had 1 unit in stock, but orders o1 (orders-0@0) and o2 (orders-0@1) hold 2 units: \
             ProductReserved at orders-0@2 (t=12ms) and orders-0@3 (t=13ms)"
        );
        assert_eq!(v[0].time, 13);
        // StockAdded and both reservations.
        assert_eq!(v[0].evidence, vec![0, 3, 4]);
        let verdict = check(&naive(), &s.run(), 1000);
        assert!(verdict.violated().contains(&Invariant::NoOversell));
        assert!(!verdict.holds());
    }

    #[test]
    fn no_oversell_counts_releases_restocks_and_only_committed_holds() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 1));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.msg("orders", released("o1", "p1", 1));
        s.msg("orders", stock_reserved("o2", "p1", 1));
        // An aborted hold holds nothing.
        s.txn(
            &[("orders", 0, "o3", stock_reserved("o3", "p1", 1).encode())],
            false,
        );
        s.msg("stock", stock("p1", 1));
        s.msg("orders", stock_reserved("o4", "p1", 1));
        assert!(violations(Invariant::NoOversell, &saga(), &s, 1000).is_empty());
        // A committed one does.
        s.txn(
            &[("orders", 0, "o5", stock_reserved("o5", "p1", 1).encode())],
            true,
        );
        let v = violations(Invariant::NoOversell, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation
                .starts_with("p1 had 2 units in stock, but orders o2, o4 and o5 hold 3 units"),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn no_oversell_counts_a_duplicate_hold_twice() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 1));
        s.msg("orders", placed("o1", "p1", 1));
        s.at(7).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.at(9).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        let v = violations(Invariant::NoOversell, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "p1 had 1 unit in stock, but order o1 (orders-0@0) holds 2 units: OrderValidation PASS at \
             order-validations-0@0 (t=7ms) and order-validations-0@1 (t=9ms)"
        );
    }
}
