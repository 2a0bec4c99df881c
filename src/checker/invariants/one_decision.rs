//! `one-decision` (always): no order gets two, or contradictory, committed decisions.

use crate::checker::books::polarity;
use crate::checker::history::Rec;
use crate::checker::words::label;
use crate::checker::{Cx, Invariant, Violation};
use crate::domain::Msg;
use std::collections::BTreeMap;


/// Per order, at most one committed event of the types in `schema.decisions`.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut decided: BTreeMap<&str, Vec<(&Rec, &Msg)>> = BTreeMap::new();
    for (rec, msg) in cx.h.domain() {
        if !cx.schema.decisions.contains(&msg.kind()) {
            continue;
        }
        let Some(order) = msg.order_id() else {
            continue;
        };
        let list = decided.entry(order).or_default();
        list.push((rec, msg));
        if list.len() < 2 {
            continue;
        }
        let (first, first_msg) = list[0];
        let contradictory = match (polarity(first_msg), polarity(msg)) {
            (Some(a), Some(b)) => a != b,
            _ => label(first_msg) != label(msg),
        };
        let explanation = if contradictory {
            format!(
                "order {} got contradictory decisions: {}, then {}",
                cx.order(order),
                first.event_at(),
                rec.event_at()
            )
        } else if label(first_msg) == label(msg) {
            format!(
                "order {} was decided twice: {} at {} and again at {}",
                cx.order(order),
                label(msg),
                first.at(),
                rec.at()
            )
        } else {
            format!(
                "order {} got two decisions: {}, then {}",
                cx.order(order),
                first.event_at(),
                rec.event_at()
            )
        };
        let evidence = list.iter().map(|(r, _)| r.seq).collect();
        out.push(cx.violation(Invariant::OneDecision, rec.time, explanation, evidence));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn one_decision_flags_two_and_contradictory_decisions() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.msg("orders", placed("o1", "p1", 1));
        s.msg("orders", placed("o2", "p1", 1));
        s.at(10).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.at(11).msg(
            "order-validations",
            validation("o2", "p1", 1, Validation::Pass),
        );
        assert!(violations(Invariant::OneDecision, &rekeyed(), &s, 1000).is_empty());
        s.at(20).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.at(21).msg(
            "order-validations",
            validation("o2", "p1", 1, Validation::Fail),
        );
        let v = violations(Invariant::OneDecision, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].explanation,
            "order o1 (orders-0@0) was decided twice: OrderValidation PASS at order-validations-0@0 (t=10ms) and \
             again at order-validations-0@2 (t=20ms)"
        );
        assert_eq!(
            v[1].explanation,
            "order o2 (orders-0@1) got contradictory decisions: OrderValidation PASS at order-validations-0@1 \
             (t=11ms), then OrderValidation FAIL at order-validations-0@3 (t=21ms)"
        );
    }

    #[test]
    fn one_decision_ignores_aborted_decisions() {
        let mut s = Sim::new();
        s.msg("orders", placed("o1", "p1", 1));
        s.txn(
            &[(
                "order-validations",
                0,
                "o1",
                validation("o1", "p1", 1, Validation::Pass).encode(),
            )],
            false,
        );
        s.txn(
            &[(
                "order-validations",
                0,
                "o1",
                validation("o1", "p1", 1, Validation::Fail).encode(),
            )],
            true,
        );
        assert!(violations(Invariant::OneDecision, &rekeyed(), &s, 1000).is_empty());
    }
}
