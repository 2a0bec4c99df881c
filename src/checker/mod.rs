//! The invariant checker: judges a run from its record alone.
//!
//! The checker reads what a run left behind — the trace, the final broker's partition logs
//! (data records and transaction markers) and the final state stores — plus the design's
//! declared [`Schema`]. It never asks a design what happened. Everything is rebuilt from
//! a shared [`History`]: the committed records in global append order, commitment read
//! from the control markers in the logs ([`commitment`]), with domain events decoded by
//! [`Msg::decode`](crate::domain::Msg::decode) and store records by the schema's decoders
//! ([`stores`]).
//!
//! Layout:
//!
//! * [`invariants`] — one module per invariant, and the registry: one table row per
//!   invariant gives its name, property, description and module;
//! * [`history`] — the committed records; [`commitment`] — which records committed,
//!   from the logs' markers, cross-checked against the broker's own table;
//! * [`books`] — the stock accounting of the committed domain events;
//! * [`stores`] — what the declared stock stores say, through their decoders;
//! * [`outcomes`] — the endings a scenario promises (orders' decisions and releases,
//!   products' units), judged apart from the invariants;
//! * [`words`] — the prose helpers of explanations.

pub mod books;
pub mod commitment;
pub mod history;
pub mod invariants;
pub mod outcomes;
pub mod probes;
pub mod stores;
pub mod survival;
mod verdict;
pub mod words;

#[cfg(test)]
mod testkit;

pub use history::{History, Rec};
pub use invariants::{Invariant, Property};
pub use probes::{Probe, Probes};
pub use verdict::{KernelBug, NotJudged, Status, Verdict, Violation};

use crate::designs::Schema;
use oversell_sim::{Millis, Outcome, RunResult};

/// At most this many violations are reported per invariant (the first ones, by time);
/// the last one reported says how many more there were.
pub const MAX_REPORTED: usize = 3;

/// Everything an invariant reads.
pub struct Cx<'a> {
    pub schema: &'a Schema,
    pub run: &'a RunResult,
    pub h: &'a History,
    /// How long after an order is placed (or the last fault healed) it must be decided.
    pub bound: Millis,
}

impl Cx<'_> {
    pub fn violation(
        &self,
        invariant: Invariant,
        time: Millis,
        explanation: String,
        mut evidence: Vec<u64>,
    ) -> Violation {
        evidence.sort_unstable();
        evidence.dedup();
        Violation {
            invariant,
            time,
            explanation,
            evidence,
        }
    }

    /// `o1 (orders-0@0)`, naming where the order was placed.
    pub fn order(&self, order: &str) -> String {
        match self.h.placed(order) {
            Some(p) => format!("{order} ({})", p.place()),
            None => order.to_string(),
        }
    }

    pub fn quiescent(&self) -> bool {
        self.run.outcome == Outcome::Quiescent
    }
}

/// What one invariant found: its violations, and what it could not judge.
#[derive(Debug, Default)]
pub struct Judged {
    pub violations: Vec<Violation>,
    pub not_judged: Option<NotJudged>,
}

impl From<Vec<Violation>> for Judged {
    fn from(violations: Vec<Violation>) -> Judged {
        Judged {
            violations,
            not_judged: None,
        }
    }
}

/// Judge a run. `decision_bound_ms`: how long after an order is placed (or after the last
/// fault healed, whichever is later) it must be decided.
///
/// Panics when the run used a state store its design's schema does not declare: the
/// checker refuses to judge a store it cannot read rather than skip it.
pub fn check(schema: &Schema, run: &RunResult, decision_bound_ms: Millis) -> Verdict {
    refuse_undeclared_stores(schema, run);
    let history = History::of(run, schema);
    let cx = Cx {
        schema,
        run,
        h: &history,
        bound: decision_bound_ms,
    };
    let mut verdict = Verdict {
        kernel_bugs: history.kernel_bugs().to_vec(),
        ..Verdict::default()
    };
    for invariant in Invariant::ALL {
        let judged = invariants::judge(invariant, &cx);
        verdict.violations.extend(first_few(judged.violations));
        verdict.not_judged.extend(judged.not_judged);
    }
    verdict.probes = probes::probe(&cx);
    verdict
}

/// Judge a run on one invariant only (every violation, not just the first few).
pub fn check_one(
    invariant: Invariant,
    schema: &Schema,
    run: &RunResult,
    decision_bound_ms: Millis,
) -> Vec<Violation> {
    refuse_undeclared_stores(schema, run);
    let history = History::of(run, schema);
    let cx = Cx {
        schema,
        run,
        h: &history,
        bound: decision_bound_ms,
    };
    let mut all = invariants::judge(invariant, &cx).violations;
    all.sort_by_key(|v| v.time);
    all
}

/// A design whose run used stores its schema does not name is a bug in the design.
fn refuse_undeclared_stores(schema: &Schema, run: &RunResult) {
    let used = run
        .stores
        .values()
        .flat_map(|stores| stores.keys().map(|(store, _)| store.as_str()));
    let undeclared = schema.undeclared_stores(used);
    assert!(
        undeclared.is_empty(),
        "the design's schema does not declare the state stores {undeclared:?}: declare each \
         store with its changelog topic and a decoder (Decoder::NoStock if it holds no stock)"
    );
}

/// The first [`MAX_REPORTED`] violations by time; the last says how many more there were.
fn first_few(mut all: Vec<Violation>) -> Vec<Violation> {
    all.sort_by_key(|v| v.time); // stable: ties keep the checker's order
    let more = all.len().saturating_sub(MAX_REPORTED);
    all.truncate(MAX_REPORTED);
    if more > 0 {
        if let Some(last) = all.last_mut() {
            let s = if more == 1 { "" } else { "s" };
            last.explanation.push_str(&format!(
                " (and {more} more violation{s} of {})",
                last.invariant
            ));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn a_clean_run_holds_everything() {
        let s = last_unit(false);
        let verdict = check(&naive(), &s.run(), 1000);
        assert!(verdict.holds(), "{verdict}");
        assert_eq!(verdict.to_string(), "every invariant holds");
    }

    #[test]
    fn only_the_first_few_violations_are_reported() {
        let mut s = Sim::new();
        let c = "ps-0/app";
        for i in 0..6 {
            s.at(i).process(c, "orders", 0, 10 - i);
        }
        let verdict = check(&naive(), &s.run(), 1000);
        let v: Vec<&Violation> = verdict.of(Invariant::MonotonicOffsets).collect();
        assert_eq!(v.len(), MAX_REPORTED);
        assert!(
            v[2].explanation
                .ends_with("(and 2 more violations of monotonic-offsets)"),
            "{}",
            v[2].explanation
        );
        assert!(verdict
            .to_string()
            .starts_with("[monotonic-offsets] t=1ms: ps-0/app processed orders-0@9"));
    }

    #[test]
    fn a_run_cut_short_by_a_bound_is_unsettled_not_holding_nor_violating() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.at(10).msg("orders", placed("o1", "p1", 1));
        s.at(20).msg("orders", placed("o2", "p1", 1));
        s.at(30).msg("orders", reserved("o2", "p1", 1));
        s.at(122);
        s.outcome = Outcome::TimeBound;
        let verdict = check(&naive(), &s.run(), 10_000);
        assert!(verdict.holds(), "{verdict}");
        assert!(!verdict.settled());
        assert_eq!(verdict.status(), Status::Unsettled);
        assert_eq!(
            verdict.unjudged().into_iter().collect::<Vec<_>>(),
            vec![
                Invariant::Conservation,
                Invariant::EventualDecision,
                Invariant::ViewMatchesLog
            ]
        );
        let ev = verdict
            .not_judged
            .iter()
            .find(|n| n.invariant == Invariant::EventualDecision)
            .unwrap();
        assert_eq!(ev.orders, 1);
        assert_eq!(
            ev.reason,
            "1 order still open when the run ended at its time bound at t=122ms, before its deadline"
        );
        assert!(verdict
            .to_string()
            .starts_with("unsettled — liveness not judged: "));
        // Past the deadline, the same open order is a violation.
        s.at(20_000);
        let verdict = check(&naive(), &s.run(), 10_000);
        assert_eq!(verdict.status(), Status::Violated);
        assert!(verdict.of(Invariant::EventualDecision).count() == 1);
        // A quiet run is judged on everything.
        s.outcome = Outcome::Quiescent;
        s.msg("orders", rejected("o1", "p1"));
        s.put(STOCK_LOG, 0, "p1", Some("4".into()));
        let verdict = check(&naive(), &s.run(), 100_000);
        assert_eq!(verdict.status(), Status::Holds, "{verdict}");
    }
}
