//! A false alarm, fixed: a run is not declared quiet while a service still holds a
//! pending timer. With the saga's reservation timeout off (`no-timeout`) and a payment
//! that answers after 5 s, the order is decided at about 5.3 s; the run used to go quiet
//! at about 3.1 s and report it "never decided".

mod common;

use common::{last_unit, order};
use oversell::checker::Invariant;
use oversell::designs::{self, Mutation};
use oversell::domain::Msg;
use oversell::run::run_seed;
use oversell::scenario::Scenario;
use oversell::sim::{Event, Outcome};

fn slow_payment(timeout_ms: u64) -> Scenario {
    let mut s = last_unit();
    s.name = "slow-payment".into();
    s.orders = vec![order("order1", "product1", 1, 100)];
    s.payments.delays.insert("order1".into(), 5_000);
    s.saga.reservation_timeout_ms = timeout_ms;
    s
}

/// The time of the order's decision (`OrderConfirmed` or `OrderCancelled` appended).
fn decided_at(judged: &oversell::run::Judged) -> Option<u64> {
    judged
        .result
        .trace
        .records
        .iter()
        .find_map(|r| match &r.event {
            Event::Append { value: Some(v), .. } => match Msg::decode(v) {
                Some(Msg::OrderConfirmed { .. } | Msg::OrderCancelled { .. }) => Some(r.time),
                _ => None,
            },
            _ => None,
        })
}

fn assert_decided_in_a_quiet_run(judged: &oversell::run::Judged) {
    let r = &judged.result;
    assert_eq!(
        r.outcome,
        Outcome::Quiescent,
        "ended {:?} at {}ms",
        r.outcome,
        r.end_time
    );
    assert!(
        judged
            .verdict
            .of(Invariant::EventualDecision)
            .next()
            .is_none(),
        "false alarm: {:?}",
        judged.verdict.violations
    );
    let at = decided_at(judged).expect("order1 decided");
    assert!((5_000..6_000).contains(&at), "decided at {at}ms");
    assert!(r.end_time > at, "the run ended at {}ms", r.end_time);
}

#[test]
fn a_slow_payment_without_timeout_is_decided_not_reported_lost() {
    let saga = designs::by_name("saga").expect("saga");
    for seed in 0..5 {
        let judged = run_seed(
            saga.as_ref(),
            &slow_payment(1_000),
            &[Mutation::NoTimeout],
            seed,
        );
        assert_decided_in_a_quiet_run(&judged);
        assert!(
            judged.verdict.holds(),
            "seed {seed}: {:?}",
            judged.verdict.violations
        );
    }
}
