//! `eventual-decision` (eventually): every order decided (saga: every reservation
//! settled) within the bound after it is placed or the last fault heals.

use crate::checker::books::{role, Role};
use crate::checker::history::Rec;
use crate::checker::words::{join_list, orders_word};
use crate::checker::{Cx, Invariant, Judged, NotJudged, Violation};
use oversell_sim::{Millis, Outcome};
use std::collections::{BTreeMap, BTreeSet};

/// When each order was decided, first held and settled, per the committed events.
#[derive(Default)]
struct Outcomes<'h> {
    decision: BTreeMap<&'h str, &'h Rec>,
    first_hold: BTreeMap<&'h str, &'h Rec>,
    settled: BTreeMap<&'h str, &'h Rec>,
}

/// Every committed `OrderPlaced` gets a committed decision (its first event of a type in
/// `schema.decisions`) — and, if `schema.reservations_settle`, every order that holds units
/// gets a `ReservationConfirmed` or `ReservationReleased` — within the bound after
/// max(placed, healed). Undecided at the end of a run that went quiet: a violation, since
/// nothing will ever decide it. Undecided when a run that ended at a bound (or diverged)
/// ended before the deadline: not judged.
pub fn judge(cx: &Cx<'_>) -> Judged {
    let o = outcomes(cx);
    let kinds: Vec<String> = cx.schema.decisions.iter().map(|k| k.to_string()).collect();
    let kinds = join_list(&kinds, "or");
    let mut j = Judge {
        cx,
        out: Vec::new(),
        unjudged: BTreeSet::new(),
    };
    for (order, placed) in cx.h.orders() {
        let wanted = || format!("decision ({kinds})");
        j.order(order, placed, o.decision.get(order), "decided", &wanted);
    }
    if cx.schema.reservations_settle {
        for (order, hold) in &o.first_hold {
            let start = cx.h.placed(order).unwrap_or(hold);
            let wanted = || {
                format!(
                    "ReservationConfirmed or ReservationReleased for its hold ({})",
                    hold.event_at()
                )
            };
            j.order(order, start, o.settled.get(order), "settled", &wanted);
        }
    }
    let not_judged = (!j.unjudged.is_empty()).then(|| {
        let n = j.unjudged.len();
        NotJudged {
            invariant: Invariant::EventualDecision,
            orders: n,
            reason: format!(
                "{n} {} still open when the run ended {} at t={}ms, before {} deadline",
                orders_word(n),
                crate::checker::invariants::ending(&cx.run.outcome),
                cx.run.end_time,
                if n == 1 { "its" } else { "their" }
            ),
        }
    });
    Judged {
        violations: j.out,
        not_judged,
    }
}

fn outcomes<'h>(cx: &Cx<'h>) -> Outcomes<'h> {
    let mut o = Outcomes::default();
    for (rec, msg) in cx.h.domain() {
        let Some(order) = msg.order_id() else {
            continue;
        };
        if cx.schema.decisions.contains(&msg.kind()) {
            o.decision.entry(order).or_insert(rec);
        }
        match role(msg) {
            Role::Hold => {
                o.first_hold.entry(order).or_insert(rec);
            }
            Role::Confirm | Role::Release if o.first_hold.contains_key(order) => {
                o.settled.entry(order).or_insert(rec);
            }
            _ => {}
        }
    }
    o
}

struct Judge<'c, 'h> {
    cx: &'c Cx<'h>,
    out: Vec<Violation>,
    /// Orders whose deadline falls after the end of a run that did not go quiet.
    unjudged: BTreeSet<String>,
}

impl Judge<'_, '_> {
    /// `wanted` names what the order lacks; it and the order's start are put in words only
    /// for a violation.
    fn order(
        &mut self,
        order: &str,
        start: &Rec,
        done: Option<&&Rec>,
        what: &str,
        wanted: &dyn Fn() -> String,
    ) {
        let (cx, run) = (self.cx, self.cx.run);
        let deadline = start.time.max(run.healed_at) + cx.bound;
        let from = || {
            let healed = if run.healed_at > 0 {
                format!(", faults healed at t={}ms", run.healed_at)
            } else {
                String::new()
            };
            format!("placed at {}{healed}", start.at())
        };
        match done {
            Some(d) if d.time <= deadline => {}
            Some(d) => {
                let from = from();
                let explanation = format!(
                    "order {order} ({from}) was {what} only at t={}ms ({}), after its deadline t={deadline}ms ({}ms bound)",
                    d.time,
                    d.event_at(),
                    cx.bound
                );
                let v = cx.violation(Invariant::EventualDecision, d.time, explanation, vec![start.seq, d.seq]);
                self.out.push(v);
            }
            None => {
                let Some(end) = ending(run.outcome.clone(), run.end_time, deadline) else {
                    self.unjudged.insert(order.to_string());
                    return;
                };
                let (from, wanted) = (from(), wanted());
                let explanation = format!(
                    "order {order} ({from}) has no {wanted} by its deadline t={deadline}ms ({}ms bound): {end} with the order still not {what}",
                    cx.bound
                );
                let time = deadline.min(run.end_time);
                let v = cx.violation(Invariant::EventualDecision, time, explanation, vec![start.seq]);
                self.out.push(v);
            }
        }
    }
}

/// How the run's end stands to an open order's deadline, in words; `None` when the run
/// ended at a bound (or diverged) before the deadline: the order cannot be judged.
fn ending(outcome: Outcome, end: Millis, deadline: Millis) -> Option<String> {
    let how = match outcome {
        Outcome::Quiescent => "went quiet",
        Outcome::TimeBound => "hit its time bound",
        Outcome::StepBound => "hit its step bound",
        Outcome::Diverged(_) => return (end >= deadline).then(|| "diverged".to_string()),
    };
    if end >= deadline {
        Some(format!("the run ended at t={end}ms ({how}),"))
    } else if outcome == Outcome::Quiescent {
        Some(format!("the run {how} at t={end}ms, before the deadline,"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn eventual_decision_flags_an_undecided_order_and_a_late_one() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.at(10).msg("orders", placed("o1", "p1", 1));
        s.at(10).msg("orders", placed("o2", "p1", 1));
        s.at(500).msg("orders", reserved("o2", "p1", 1));
        s.at(5000);
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::EventualDecision, &naive(), &s, 1000).len() == 1);
        let v = violations(Invariant::EventualDecision, &naive(), &s, 100);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].explanation,
            "order o1 (placed at orders-0@0 (t=10ms)) has no decision (ProductReserved or OrderRejected) by its \
             deadline t=110ms (100ms bound): the run ended at t=5000ms (hit its time bound), with the order still not decided"
        );
        assert_eq!(
            v[1].explanation,
            "order o2 (placed at orders-0@1 (t=10ms)) was decided only at t=500ms (ProductReserved at orders-0@2 \
             (t=500ms)), after its deadline t=110ms (100ms bound)"
        );
        assert_eq!((v[0].time, v[1].time), (110, 500));
    }

    #[test]
    fn eventual_decision_counts_from_the_heal_and_a_quiet_run_never_decides() {
        let mut s = Sim::new();
        s.at(10).msg("orders", placed("o1", "p1", 1));
        s.at(5500).msg("orders", rejected("o1", "p1"));
        s.healed_at = 5000;
        s.at(8000);
        assert!(violations(Invariant::EventualDecision, &naive(), &s, 1000).is_empty());
        // An order placed but quiet before its deadline: nothing will ever decide it.
        s.at(7800).msg("orders", placed("o2", "p1", 1));
        s.at(8000);
        let v = violations(Invariant::EventualDecision, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation
                .contains("the run went quiet at t=8000ms, before the deadline"),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn eventual_decision_wants_saga_reservations_settled() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.at(10).msg("orders", placed("o1", "p1", 1));
        s.at(20).msg("orders", stock_reserved("o1", "p1", 1));
        s.at(3000);
        let v = violations(Invariant::EventualDecision, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation
                .contains("has no ReservationConfirmed or ReservationReleased for its hold"),
            "{}",
            v[0].explanation
        );
        s.at(900).msg("orders", released("o1", "p1", 1));
        s.at(3000);
        assert!(violations(Invariant::EventualDecision, &saga(), &s, 1000).is_empty());
    }
}
