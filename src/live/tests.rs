//! The conversion of live histories, on hand-written histories shaped as the recorder
//! writes them (see `history.rs`).

use super::convert::{live_verdict, to_run, NOT_RECORDED};
use super::history::{LiveAck, LiveEvent, LiveHistory, LiveRecord, LiveStore, LiveStores, FORMAT};
use crate::checker::{check, Invariant, Status, Verdict};
use std::collections::BTreeMap;

const T0: u64 = 1_000_000;
const CHECKER: &str = "product-service-0/product-checker";
const STOCK: &str = "product-service-0/product-stock";
const CHANGELOG: &str = "product-stock-ProductStock-changelog";

fn rec(topic: &str, offset: u64, t: u64, key: &str, value: &str) -> LiveRecord {
    LiveRecord {
        topic: topic.into(),
        partition: 0,
        offset,
        key: Some(key.into()),
        value: Some(value.into()),
        timestamp: T0 + t,
        timestamp_type: "LogAppendTime".into(),
        committed: true,
    }
}

fn ev(t: u64, kind: &str, client: &str) -> LiveEvent {
    LiveEvent {
        t: T0 + t,
        kind: kind.into(),
        client: client.into(),
        topic: None,
        partition: None,
        offset: None,
        store: None,
        key: None,
        value: None,
        tasks: Vec::new(),
    }
}

fn process(t: u64, client: &str, topic: &str, offset: u64) -> LiveEvent {
    LiveEvent {
        topic: Some(topic.into()),
        partition: Some(0),
        offset: Some(offset),
        ..ev(t, "process", client)
    }
}

fn store_op(t: u64, kind: &str, client: &str, value: &str) -> LiveEvent {
    LiveEvent {
        store: Some("ProductStock".into()),
        key: Some("product1".into()),
        value: Some(value.into()),
        ..ev(t, kind, client)
    }
}

const STOCK1: &str = r#"{"type":"StockAdded","product_id":"product1","quantity":1}"#;
const PLACED1: &str = r#"{"type":"OrderPlaced","order_id":"order1","product_id":"product1","quantity":1,"user_id":"u1"}"#;
const PLACED2: &str = r#"{"type":"OrderPlaced","order_id":"order2","product_id":"product1","quantity":1,"user_id":"u2"}"#;
const RESERVED1: &str =
    r#"{"type":"ProductReserved","order_id":"order1","product_id":"product1","quantity":1}"#;
const RESERVED2: &str =
    r#"{"type":"ProductReserved","order_id":"order2","product_id":"product1","quantity":1}"#;
const REJECTED2: &str = r#"{"type":"OrderRejected","order_id":"order2","product_id":"product1","reason":"stock 0 < 1"}"#;

/// The last unit, as a live run records it (the shape of a real run's history): both
/// orders checked against stock 1 (`both_reserved`), or the second one rejected.
fn last_unit(both_reserved: bool) -> LiveHistory {
    let second = if both_reserved { RESERVED2 } else { REJECTED2 };
    let mut records = vec![
        rec("stock", 0, 110, "product1", STOCK1),
        rec("orders", 0, 122, "product1", PLACED1),
        rec("orders", 1, 122, "product1", PLACED2),
        rec("orders", 2, 299, "product1", RESERVED1),
        rec("orders", 3, 462, "product1", second),
        rec(CHANGELOG, 0, 297, "product1", "1"),
        rec(CHANGELOG, 1, 476, "product1", "0"),
    ];
    let mut events = vec![
        ev(0, "assigned", CHECKER),
        ev(0, "assigned", STOCK),
        process(155, CHECKER, "orders", 0),
        process(161, STOCK, "stock", 0),
        store_op(247, "get", CHECKER, "1"),
        store_op(284, "put", STOCK, "1"),
        process(353, CHECKER, "orders", 1),
        store_op(358, "get", CHECKER, "1"),
        process(358, STOCK, "orders", 0),
        process(362, STOCK, "orders", 1),
        process(368, CHECKER, "orders", 2),
        process(371, STOCK, "orders", 2),
        store_op(375, "put", STOCK, "0"),
        process(475, STOCK, "orders", 3),
        process(490, CHECKER, "orders", 3),
    ];
    let mut last = "0";
    if both_reserved {
        records.push(rec(CHANGELOG, 2, 485, "product1", "-1"));
        events.push(store_op(480, "put", STOCK, "-1"));
        last = "-1";
    }
    let mut end_offsets = BTreeMap::new();
    for (topic, end) in [
        ("stock", 1),
        ("orders", 4),
        (CHANGELOG, 2 + u64::from(both_reserved)),
    ] {
        end_offsets.insert(topic.to_string(), BTreeMap::from([(0, end)]));
    }
    LiveHistory {
        format: FORMAT.into(),
        scenario: "last-unit".into(),
        scenario_path: "scenarios/last-unit.toml".into(),
        design: "naive".into(),
        run: 0,
        prefix: "r0.".into(),
        kafka_version: "4.4.0".into(),
        brokers: 1,
        decision_bound_ms: 10_000,
        t0: T0,
        outcome: "quiescent".into(),
        recorded_at: T0 + 1279,
        records,
        end_offsets,
        acks: vec![
            LiveAck {
                t: T0 + 110,
                topic: "stock".into(),
                partition: 0,
                offset: 0,
            },
            LiveAck {
                t: T0 + 122,
                topic: "orders".into(),
                partition: 0,
                offset: 0,
            },
            LiveAck {
                t: T0 + 122,
                topic: "orders".into(),
                partition: 0,
                offset: 1,
            },
        ],
        events,
        stores: vec![LiveStores {
            instance: "product-service-0".into(),
            stores: vec![LiveStore {
                application: "product-stock".into(),
                store: "ProductStock".into(),
                partition: 0,
                entries: BTreeMap::from([("product1".to_string(), last.to_string())]),
            }],
        }],
        group_offsets: BTreeMap::new(),
        faults: vec![],
    }
}

fn verdict(h: &LiveHistory) -> Verdict {
    let design = crate::designs::by_name("naive").expect("a shipped design");
    let run = to_run(h).expect("a convertible history");
    live_verdict(check(&design.schema(), &run, h.decision_bound_ms))
}

/// Why `h` cannot be converted (it must not be convertible).
fn refused(h: &LiveHistory) -> super::Unconvertible {
    match to_run(h) {
        Ok(_) => panic!("converted a history that must be refused"),
        Err(e) => e,
    }
}

fn not_recorded() -> Vec<Invariant> {
    NOT_RECORDED.iter().map(|(i, _)| *i).collect()
}

#[test]
fn the_last_unit_sold_twice_on_a_live_run_is_judged_an_oversell_by_the_same_checker() {
    let v = verdict(&last_unit(true));
    assert_eq!(
        v.violated().into_iter().collect::<Vec<_>>(),
        vec![Invariant::NoOversell, Invariant::Conservation],
        "{v}"
    );
    let oversell = v.of(Invariant::NoOversell).next().unwrap();
    assert!(
        oversell.explanation.contains("orders-0@2"),
        "{}",
        oversell.explanation
    );
    assert_eq!(
        oversell.time, 462,
        "the second reservation's append time after t0"
    );
}

#[test]
fn a_live_run_that_rejects_the_second_order_holds_on_what_it_shows_and_no_more() {
    let v = verdict(&last_unit(false));
    assert!(v.holds(), "{v}");
    // The invariants a live history cannot show are not judged, never holding.
    assert_eq!(v.unjudged().into_iter().collect::<Vec<_>>(), {
        let mut n = not_recorded();
        n.sort();
        n
    });
    assert_eq!(v.status(), Status::Unsettled);
}

#[test]
fn records_become_appends_at_their_offsets_and_events_keep_their_order() {
    let run = to_run(&last_unit(true)).unwrap();
    let orders = oversell_sim::TopicPartition::new("orders", 0);
    let log = run.broker.log(&orders);
    assert_eq!(log.len(), 4);
    let times: Vec<u64> = run.trace.records.iter().map(|r| r.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // The two orders appended in the same ms keep their offsets' order.
    let appends: Vec<String> = run
        .trace
        .records
        .iter()
        .filter_map(|r| match &r.event {
            oversell_sim::Event::Append { tp, offset, .. } => Some(format!("{tp}@{offset}")),
            _ => None,
        })
        .collect();
    let first = appends.iter().position(|a| a == "orders-0@0").unwrap();
    let second = appends.iter().position(|a| a == "orders-0@1").unwrap();
    assert!(first < second, "{appends:?}");
    assert_eq!(run.outcome, oversell_sim::Outcome::Quiescent);
}

#[test]
fn a_processor_that_goes_back_in_a_partition_is_caught_from_its_event_log() {
    let mut h = last_unit(false);
    // product-checker handed orders@1 again after orders@2, without a new assignment.
    h.events.push(process(495, CHECKER, "orders", 1));
    let v = verdict(&h);
    assert!(v.of(Invariant::MonotonicOffsets).next().is_some(), "{v}");
}

#[test]
fn a_run_cut_at_its_time_bound_is_not_judged_at_quiescence() {
    let mut h = last_unit(false);
    h.outcome = "time-bound".into();
    let v = verdict(&h);
    let unjudged = v.unjudged();
    assert!(unjudged.contains(&Invariant::Conservation), "{v}");
    assert!(unjudged.contains(&Invariant::ViewMatchesLog), "{v}");
}

#[test]
fn histories_the_converter_cannot_rebuild_are_refused_in_words() {
    let mut gap = last_unit(true);
    gap.records
        .retain(|r| !(r.topic == "orders" && r.offset == 1));
    let e = refused(&gap);
    assert!(e.0.contains("orders-0 has no record at offset 1"), "{e}");
    assert!(e.0.contains("control record"), "{e}");

    let mut open = last_unit(true);
    open.records[3].committed = false;
    let e = refused(&open);
    assert!(e.0.contains("read_committed"), "{e}");

    let mut create_time = last_unit(true);
    create_time.records[0].timestamp_type = "CreateTime".into();
    let e = refused(&create_time);
    assert!(e.0.contains("CreateTime"), "{e}");

    let mut nameless = last_unit(true);
    nameless.events[2].client = "product-checker".into();
    let e = refused(&nameless);
    assert!(e.0.contains("is not instance/application"), "{e}");

    let mut short = last_unit(true);
    short.end_offsets.get_mut("orders").unwrap().insert(0, 5);
    let e = refused(&short);
    assert!(e.0.contains("end offset"), "{e}");
}

#[test]
fn a_history_file_reads_back_and_a_bad_one_says_where() {
    let dir = std::env::temp_dir().join(format!("oversell-live-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        serde_json::to_string_pretty(&last_unit(true)).unwrap(),
    )
    .unwrap();
    let back = LiveHistory::read(&good).unwrap();
    assert_eq!(back.records.len(), 8);
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\n  \"format\": 3\n}").unwrap();
    let e = LiveHistory::read(&bad).unwrap_err();
    assert!(e.contains("bad.json:2:"), "{e}");
    let mut other = last_unit(true);
    other.format = "something-else".into();
    std::fs::write(&bad, serde_json::to_string(&other).unwrap()).unwrap();
    let e = LiveHistory::read(&bad).unwrap_err();
    assert!(e.contains("history format"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
