//! Outcome expectations: how each named order and product must end in a run.
//!
//! Apart from the invariants (which say what must never happen), a scenario can promise
//! what must happen: `[outcomes.DESIGN]` names orders with the decision they end with and
//! whether their units were released, and products with their final `available` and
//! `held` units. They are judged from the committed history only (the logs' records and
//! markers, read as the invariants read them), never from a design's trace notes:
//!
//! * an order's **decision** is the polarity of its committed decision events (the
//!   schema's `decisions`): `accepted` (`ProductReserved`, `OrderValidation` PASS,
//!   `OrderConfirmed`), `rejected` (`OrderRejected`, FAIL, `OrderCancelled`), `undecided`
//!   (none). An order with decisions of both polarities ended with no single decision,
//!   and meets no expectation;
//! * an order was **released** when a committed release (`ReservationReleased`) gave back
//!   everything it held and it holds nothing at the end;
//! * a product's **available** units are what its stock stores' committed changelogs say
//!   (as `conservation` reads them); its **held** units are the committed holds minus the
//!   committed releases of every order.
//!
//! Outcomes are judged on runs that went quiet only: a run that ended at a bound may not
//! have finished deciding.

use super::books::{polarity, Books};
use super::history::History;
use super::stores;
use crate::designs::Schema;
use crate::scenario::{Decision, OrderOutcome, Outcomes, ProductOutcome};
use oversell_sim::{Outcome, RunResult};
use std::collections::BTreeSet;

/// What one run says about the promised outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Every promised outcome is met.
    Met,
    /// The promises not met, one line each (`order1: ended accepted, expected rejected`).
    Missed(Vec<String>),
    /// The run did not go quiet, so its endings are not final.
    NotJudged,
}

impl Judgement {
    pub fn missed(&self) -> Option<&[String]> {
        match self {
            Judgement::Missed(m) => Some(m),
            _ => None,
        }
    }
}

/// Judge a run against the outcomes its scenario promises for its design.
pub fn judge(schema: &Schema, run: &RunResult, promised: &Outcomes) -> Judgement {
    if promised.is_empty() {
        return Judgement::Met;
    }
    if run.outcome != Outcome::Quiescent {
        return Judgement::NotJudged;
    }
    let h = History::of(run, schema);
    let books = Books::of(&h);
    let mut missed = Vec::new();
    for (order, want) in &promised.orders {
        missed.extend(order_misses(schema, &h, &books, order, want));
    }
    for (product, want) in &promised.products {
        missed.extend(product_misses(schema, &h, &books, product, want));
    }
    if missed.is_empty() {
        Judgement::Met
    } else {
        Judgement::Missed(missed)
    }
}

/// The decisions an order's committed decision events give it (empty: undecided).
pub fn decisions(schema: &Schema, h: &History, order: &str) -> BTreeSet<Decision> {
    h.domain()
        .filter(|(_, m)| m.order_id() == Some(order) && schema.decisions.contains(&m.kind()))
        .filter_map(|(_, m)| polarity(m))
        .map(|yes| {
            if yes {
                Decision::Accepted
            } else {
                Decision::Rejected
            }
        })
        .collect()
}

/// Whether a committed release gave back everything the order held.
pub fn released(books: &Books<'_>, order: &str) -> bool {
    let mut any = false;
    for p in books.products.values() {
        if let Some(held) = p.held.get(order) {
            if held.units > 0 {
                return false;
            }
            any |= !held.releases.is_empty();
        }
    }
    any
}

fn order_misses(
    schema: &Schema,
    h: &History,
    books: &Books<'_>,
    order: &str,
    want: &OrderOutcome,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(wanted) = &want.decision {
        let got = decisions(schema, h, order);
        let ended = match got.iter().collect::<Vec<_>>().as_slice() {
            [] => Some(Decision::Undecided),
            [one] => Some(**one),
            _ => None,
        };
        if !ended.is_some_and(|d| wanted.0.contains(&d)) {
            let ended = match ended {
                Some(d) => format!("ended {}", d.name()),
                None => "was both accepted and rejected".to_string(),
            };
            let names: Vec<&str> = wanted.0.iter().map(|d| d.name()).collect();
            out.push(format!("{order}: {ended}, expected {}", names.join(" or ")));
        }
    }
    if let Some(wanted) = want.released {
        let got = released(books, order);
        if got != wanted {
            let (is, not) = if got { ("", " not") } else { (" not", "") };
            out.push(format!(
                "{order}: its units were{is} released, expected them{not} to be"
            ));
        }
    }
    out
}

fn product_misses(
    schema: &Schema,
    h: &History,
    books: &Books<'_>,
    product: &str,
    want: &ProductOutcome,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(wanted) = want.held {
        let got = books.products.get(product).map_or(0, |p| p.held_units());
        if got != wanted {
            out.push(format!("{product}: {got} held, expected {wanted}"));
        }
    }
    if let Some(wanted) = want.available {
        let names = BTreeSet::from([product]);
        match stores::views(schema, h, &names).remove(product) {
            Some(Ok(view)) if view.available == wanted => {}
            Some(Ok(view)) => out.push(format!(
                "{product}: {} available, expected {wanted}",
                view.available
            )),
            Some(Err(why)) => out.push(format!("{product}: cannot read the store: {why}")),
            None => out.push(format!("{product}: no store mentions it")),
        }
    }
    out
}
