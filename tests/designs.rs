//! The designs from the question, judged by the checker; and the checker shown to bite.

mod common;

use common::{last_unit, order};
use oversell::checker::Invariant;
use oversell::designs::{self, Mutation};
use oversell::run::{run_seed, Judged};
use oversell::scenario::Scenario;
use oversell::sim::{Event, FaultRates, ScheduledFault};

fn design(name: &str) -> Box<dyn designs::Design> {
    designs::by_name(name).expect("known design")
}

/// The first seed in `seeds` whose run violates `invariant`.
fn find(
    name: &str,
    scenario: &Scenario,
    mutations: &[Mutation],
    invariant: Invariant,
    seeds: std::ops::Range<u64>,
) -> Option<Judged> {
    let d = design(name);
    seeds
        .map(|seed| run_seed(d.as_ref(), scenario, mutations, seed))
        .find(|j| j.verdict.violated().contains(&invariant))
}

fn no_violation(name: &str, scenario: &Scenario, seeds: std::ops::Range<u64>) {
    let d = design(name);
    for seed in seeds {
        let j = run_seed(d.as_ref(), scenario, &[], seed);
        assert!(
            j.verdict.holds(),
            "{name} seed {seed}: {:?}",
            j.verdict
                .violations
                .iter()
                .map(|v| &v.explanation)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_questions_case_oversells_under_naive_with_no_faults() {
    let scenario = last_unit();
    let judged = find("naive", &scenario, &[], Invariant::NoOversell, 0..100)
        .expect("naive oversells the last unit within 100 seeds");
    let seed = judged.seed.expect("seeded");
    let trace = &judged.result.trace.records;
    // Both reservations are in the log...
    let reserved: Vec<u64> = trace
        .iter()
        .filter_map(|r| match &r.event {
            Event::Append { value: Some(v), .. } if v.contains("\"ProductReserved\"") => {
                Some(r.seq)
            }
            _ => None,
        })
        .collect();
    assert_eq!(reserved.len(), 2, "seed {seed}: both orders reserved");
    // ...and the stale read: the checker saw 1 unit twice, the second time after it had
    // already decided to reserve that unit for the first order, and before the stock
    // processor took it from the store.
    let checks: Vec<u64> = trace
        .iter()
        .filter_map(|r| match &r.event {
            Event::StoreGet {
                client,
                store,
                value: Some(v),
                ..
            } if client.app == "product-checker" && store == "ProductStock" && v == "1" => {
                Some(r.seq)
            }
            _ => None,
        })
        .collect();
    let taken = trace
        .iter()
        .find(|r| {
            matches!(&r.event, Event::StorePut { client, store, value: Some(v), .. }
                if client.app == "product-stock" && store == "ProductStock" && v == "0")
        })
        .map(|r| r.seq)
        .expect("the stock processor applies the first reservation");
    assert!(
        checks.len() >= 2,
        "seed {seed}: two stock checks saw 1 unit"
    );
    assert!(
        checks[1] < taken,
        "seed {seed}: the second check came before the store was updated"
    );
    let v = judged
        .verdict
        .violations
        .iter()
        .find(|v| v.invariant == Invariant::NoOversell)
        .expect("flagged");
    assert!(v.explanation.contains("product1"), "{}", v.explanation);
    assert!(!v.evidence.is_empty());
}

#[test]
fn the_rekeyed_designs_and_the_saga_hold_on_the_questions_case() {
    for name in ["rekeyed-alo", "rekeyed-eos", "saga"] {
        no_violation(name, &last_unit(), 0..30);
    }
}

fn crashy(mut s: Scenario) -> Scenario {
    s.faults.phase_ms = 800;
    s.faults.rates = FaultRates {
        crash: 5,
        ..FaultRates::default()
    };
    s
}

fn busy() -> Scenario {
    let mut s = last_unit();
    s.products[0].stock = 6;
    s.orders = (0..8)
        .map(|i| order(&format!("o{i}"), "product1", 1, 50 + 40 * i))
        .collect();
    s
}

#[test]
fn rekeyed_alo_holds_without_faults() {
    no_violation("rekeyed-alo", &busy(), 0..40);
}

#[test]
fn rekeyed_alo_breaks_under_crash_injection() {
    let judged = find(
        "rekeyed-alo",
        &crashy(busy()),
        &[],
        Invariant::OneDecision,
        0..300,
    )
    .expect("a crash between the changelog write and the offset commit gives a duplicate PASS");
    let dup = judged
        .verdict
        .violations
        .iter()
        .any(|v| v.invariant == Invariant::NoDuplicateEffect);
    assert!(dup, "the duplicate PASS is also a duplicate effect");
}

// ----- the checker bites: one broken variant per invariant -----

fn assert_flags(
    name: &str,
    scenario: &Scenario,
    mutations: &[Mutation],
    invariant: Invariant,
    seeds: std::ops::Range<u64>,
) {
    let found = find(name, scenario, mutations, invariant, seeds.clone());
    assert!(
        found.is_some(),
        "{name} with {mutations:?} should violate {} within seeds {seeds:?}",
        invariant.name()
    );
}

#[test]
fn bites_no_oversell_and_conservation_naive() {
    assert_flags("naive", &last_unit(), &[], Invariant::NoOversell, 0..50);
    assert_flags("naive", &last_unit(), &[], Invariant::Conservation, 0..50);
}

#[test]
fn bites_one_decision_and_duplicate_effect_non_idempotent_retry() {
    // A lost produce acknowledgement and a producer without idempotence: the order is
    // written twice, and even exactly-once processing decides it twice.
    let mut s = busy();
    s.topology.order_producer_idempotent = false;
    s.faults.schedule = vec![ScheduledFault::DropProduceAck {
        at: 40, // after the initial stock is written: lose the first order's acknowledgement
        instance: "frontend".into(),
        count: 3,
    }];
    assert_flags("rekeyed-eos", &s, &[], Invariant::OneDecision, 0..20);
    assert_flags("rekeyed-eos", &s, &[], Invariant::NoDuplicateEffect, 0..20);
}

#[test]
fn bites_eventual_decision_commit_before_process() {
    assert_flags(
        "rekeyed-eos",
        &crashy(busy()),
        &[Mutation::CommitBeforeProcess],
        Invariant::EventualDecision,
        0..200,
    );
}

#[test]
fn bites_eventual_decision_saga_without_timeout() {
    // A payment step that never finishes: only the reservation timeout ends the order.
    let mut s = last_unit();
    s.payments.delays.insert("o1".into(), 1_000_000);
    no_violation("saga", &s, 0..5);
    assert_flags(
        "saga",
        &s,
        &[Mutation::NoTimeout],
        Invariant::EventualDecision,
        0..5,
    );
}

#[test]
fn bites_conservation_non_idempotent_compensation() {
    // Payment fails after the reservation already timed out: the cancel must be a no-op.
    let mut s = last_unit();
    s.orders.truncate(1);
    s.payments.fail = vec!["o1".into()];
    s.payments.delays.insert("o1".into(), 1500);
    s.saga.reservation_timeout_ms = 300;
    no_violation("saga", &s, 0..5);
    assert_flags(
        "saga",
        &s,
        &[Mutation::NonIdempotentCompensation],
        Invariant::Conservation,
        0..5,
    );
}

#[test]
fn bites_zombie_without_fencing() {
    // Two instances, one paused past its session timeout while it holds orders: with the
    // generation check of KIP-447 switched off, the zombie's transaction commits.
    let mut s = busy();
    s.topology.instances = 2;
    s.faults.phase_ms = 800;
    s.faults.rates = FaultRates {
        pause: 6,
        ..FaultRates::default()
    };
    let found = [
        Invariant::OneDecision,
        Invariant::NoDuplicateEffect,
        Invariant::NoOversell,
    ]
    .into_iter()
    .any(|inv| find("rekeyed-eos", &s, &[Mutation::Unfenced], inv, 0..300).is_some());
    assert!(found, "an unfenced zombie should double-apply some order");
}

#[test]
fn bites_no_aborted_read_read_uncommitted() {
    assert_flags(
        "rekeyed-eos",
        &crashy(busy()),
        &[Mutation::ReadUncommitted],
        Invariant::NoAbortedRead,
        0..300,
    );
}

#[test]
fn bites_view_matches_log_read_uncommitted_restore() {
    assert_flags(
        "rekeyed-eos",
        &crashy(busy()),
        &[Mutation::ReadUncommitted],
        Invariant::ViewMatchesLog,
        0..300,
    );
}
