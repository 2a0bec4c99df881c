//! `oversell shrink`: a failing run cuts down to a small story that still fails, and the
//! scenario file it writes replays the same violation.

use oversell::checker::Invariant;
use oversell::designs::Naive;
use oversell::run::run_seed;
use oversell::scenario::{FaultSpec, Order, Product, Restock, Scenario, TopologySpec};
use oversell::shrink::{scenario_toml, shrink, to_toml};
use oversell::sim::ScheduledFault;

/// 8 orders across 3 products, 3 partitions, 2 instances, restocks and a crash.
fn busy() -> Scenario {
    let product = |id: &str, stock| Product {
        id: id.into(),
        stock,
    };
    let order = |id: &str, p: &str, quantity, at| Order {
        id: id.into(),
        product: p.into(),
        quantity,
        user: None,
        at,
    };
    let mut s: Scenario =
        toml::from_str("name = \"busy\"\nproducts = []").expect("minimal scenario");
    s.description = "Three products, eight orders, restocks and a crash.".into();
    s.products = vec![product("apple", 2), product("pear", 1), product("plum", 3)];
    s.orders = vec![
        order("o1", "apple", 1, 100),
        order("o2", "pear", 1, 100),
        order("o3", "apple", 2, 120),
        order("o4", "plum", 2, 150),
        order("o5", "pear", 1, 150),
        order("o6", "plum", 2, 300),
        order("o7", "apple", 1, 400),
        order("o8", "pear", 1, 500),
    ];
    s.restocks = vec![
        Restock {
            product: "plum".into(),
            quantity: 1,
            at: 250,
        },
        Restock {
            product: "apple".into(),
            quantity: 1,
            at: 600,
        },
    ];
    s.topology = TopologySpec {
        partitions: 3,
        instances: 2,
        order_producer_idempotent: true,
    };
    s.faults = FaultSpec {
        schedule: vec![ScheduledFault::Crash {
            at: 200,
            instance: "product-service-1".into(),
            restart_after: 300,
        }],
        ..FaultSpec::default()
    };
    s
}

#[test]
fn a_failing_naive_run_shrinks_to_two_orders_and_replays_from_the_file() {
    let scenario = busy();
    let seed = (0..50)
        .find(|&s| {
            run_seed(&Naive, &scenario, &[], s)
                .verdict
                .violated()
                .contains(&Invariant::NoOversell)
        })
        .expect("naive oversells the busy scenario within 50 seeds");

    let mut lines = Vec::new();
    let shrunk = shrink(
        &Naive,
        &scenario,
        &[],
        seed,
        Some(Invariant::NoOversell),
        &mut |l| lines.push(l.to_string()),
    )
    .expect("the run fails, so it shrinks");
    let summary = shrunk.summary();
    eprintln!("{summary}\n{}", lines.join("\n"));

    let s = &shrunk.scenario;
    assert_eq!(shrunk.invariant, Invariant::NoOversell);
    assert!(
        s.orders.len() <= 2,
        "{} orders left:\n{summary}",
        s.orders.len()
    );
    assert_eq!(s.products.len(), 1, "{summary}");
    assert!(s.orders.iter().all(|o| o.product == s.products[0].id));
    assert!(
        s.faults.schedule.is_empty() && s.faults.phase_ms == 0,
        "{summary}"
    );
    assert!(shrunk.steps_after < shrunk.steps_before, "{summary}");
    assert!(shrunk.runs <= 2_000);
    assert_eq!(s.run.seeds.start, shrunk.seed);
    assert_eq!(s.run.seeds.len(), 1);
    assert!(s.expect["naive"]
        .violates
        .contains(&"no-oversell".to_string()));
    assert!(!lines.is_empty(), "progress is reported");

    // The written file documents itself, re-loads and replays the same violation.
    let text = to_toml(&shrunk, "scenarios/busy.toml", "naive");
    eprintln!("{text}");
    assert!(text.starts_with("# Shrunk by `oversell shrink` from scenarios/busy.toml"));
    assert!(text.contains(&format!(
        "replay <this file> --design naive --seed {}",
        shrunk.seed
    )));
    let reloaded: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&reloaded, s);
    let loaded = oversell::load::load_str(&text, "busy-shrunk.toml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        &loaded, s,
        "the command's loader reads the file as serde does"
    );
    let replayed = run_seed(&Naive, &reloaded, &[], reloaded.run.seeds.start);
    assert!(replayed.verdict.violated().contains(&Invariant::NoOversell));
    assert_eq!(replayed.result.steps, shrunk.steps_after);

    // Same inputs, same output.
    let again = shrink(
        &Naive,
        &scenario,
        &[],
        seed,
        Some(Invariant::NoOversell),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(again.scenario, shrunk.scenario);
    assert_eq!((again.seed, again.runs), (shrunk.seed, shrunk.runs));
}

#[test]
fn a_run_that_does_not_fail_does_not_shrink() {
    let mut scenario = busy();
    scenario.faults = FaultSpec::default();
    // Plenty of stock: nothing can be oversold.
    for p in &mut scenario.products {
        p.stock = 100;
    }
    let err = shrink(
        &Naive,
        &scenario,
        &[],
        0,
        Some(Invariant::NoOversell),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.contains("does not violate no-oversell"), "{err}");
}

#[test]
fn a_single_order_cannot_oversell() {
    let mut scenario = busy();
    scenario.orders.truncate(1);
    scenario.restocks.clear();
    scenario.faults = FaultSpec::default();
    let err = shrink(&Naive, &scenario, &[], 0, None, &mut |_| {}).unwrap_err();
    assert!(err.contains("nothing to shrink"), "{err}");
}

#[test]
fn every_part_of_a_scenario_survives_the_trip_through_toml() {
    let mut scenario = busy();
    scenario.faults.phase_ms = 1_000;
    scenario.faults.rates.crash = 2;
    scenario.faults.rates.delay_for = (5, 50);
    scenario.faults.schedule.extend([
        ScheduledFault::Pause {
            at: 300,
            instance: "order-service-0".into(),
            duration: 2_000,
        },
        ScheduledFault::DropProduceAck {
            at: 10,
            instance: "product-service-0".into(),
            count: 2,
        },
    ]);
    scenario.payments.fail = vec!["o3".into()];
    scenario.payments.delays.insert("o4".into(), 70);
    scenario.streams.commit_interval_ms = Some(250);
    scenario.orders[0].user = Some("alice".into());
    let text = scenario_toml(&scenario);
    let back: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, scenario, "{text}");
    let loaded =
        oversell::load::load_str(&text, "busy.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(loaded, scenario, "{text}");
    assert!(text.contains("kind = \"drop_produce_ack\""), "{text}");
    // Settings left at their defaults are left out.
    assert!(
        !text.contains("[saga]") && !text.contains("decision_bound_ms"),
        "{text}"
    );
}
