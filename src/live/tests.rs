//! The conversion of live histories, on hand-written histories shaped as the recorder
//! writes them (see `history.rs`).

use super::convert::{live_verdict, to_run, NOT_RECORDED, NOT_RECORDED_BEFORE_3};
use super::history::{
    CoordinatorEntry, CoordinatorRecord, GroupMember, LiveAck, LiveEvent, LiveFault, LiveHistory,
    LiveLogEntry, LiveRecord, LiveStore, LiveStores, LiveTask, FORMAT, FORMAT_1, FORMAT_2,
};
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
        count: None,
        next: None,
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
        format: FORMAT_1.into(),
        scenario: "last-unit".into(),
        scenario_path: "scenarios/last-unit.toml".into(),
        design: "naive".into(),
        run: 0,
        prefix: "r0.".into(),
        kafka_version: "4.4.0".into(),
        brokers: 1,
        decision_bound_ms: 10_000,
        time_scale: 1,
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
        log: vec![],
        coordinator: vec![],
    }
}

fn verdict(h: &LiveHistory) -> Verdict {
    let design = crate::designs::by_name("naive").expect("a shipped design");
    let run = to_run(h).expect("a convertible history");
    live_verdict(check(&design.schema(), &run, h.decision_bound_ms), h)
}

/// Why `h` cannot be converted (it must not be convertible).
fn refused(h: &LiveHistory) -> super::Unconvertible {
    match to_run(h) {
        Ok(_) => panic!("converted a history that must be refused"),
        Err(e) => e,
    }
}

fn not_recorded(h: &LiveHistory) -> Vec<Invariant> {
    super::not_recorded(h).iter().map(|(i, _)| *i).collect()
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
        let mut n = not_recorded(&last_unit(false));
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

/// `h` as format 2: every record's entry as the segment files hold it (outside any
/// transaction), then `extra` entries.
fn with_log(mut h: LiveHistory, extra: Vec<LiveLogEntry>) -> LiveHistory {
    let covered = |r: &LiveRecord| {
        extra
            .iter()
            .any(|e| (&e.topic, e.partition, e.offset) == (&r.topic, r.partition, r.offset))
    };
    for r in h.records.iter().filter(|r| !covered(r)) {
        h.log.push(LiveLogEntry {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            producer_id: Some(1),
            epoch: Some(0),
            sequence: Some(r.offset as i32),
            transactional: false,
            control: None,
        });
    }
    for e in &extra {
        let end = h
            .end_offsets
            .entry(e.topic.clone())
            .or_default()
            .entry(e.partition)
            .or_default();
        *end = (*end).max(e.offset + 1);
    }
    h.log.extend(extra);
    h
}

fn txn_entry(offset: u64, t: u64, control: Option<&str>) -> LiveLogEntry {
    LiveLogEntry {
        topic: "orders".into(),
        partition: 0,
        offset,
        timestamp: T0 + t,
        producer_id: Some(7),
        epoch: Some(3),
        sequence: control.is_none().then_some(0),
        transactional: true,
        control: control.map(String::from),
    }
}

/// The last unit with a third decision: `RESERVED2` again at orders@4, in a transaction
/// whose marker at orders@5 is `marker`; `read_committed` read it or not.
fn with_txn(marker: &str, read_committed: bool) -> LiveHistory {
    let mut h = last_unit(false);
    h.format = FORMAT_2.into();
    h.records.push(LiveRecord {
        committed: read_committed,
        ..rec("orders", 4, 600, "product1", RESERVED2)
    });
    with_log(
        h,
        vec![txn_entry(4, 600, None), txn_entry(5, 650, Some(marker))],
    )
}

#[test]
fn markers_from_the_segment_files_settle_transactional_records_for_the_checker() {
    // Aborted: the second reservation never counts, and the run holds.
    let aborted = with_txn("ABORT", false);
    let run = to_run(&aborted).unwrap();
    let orders = oversell_sim::TopicPartition::new("orders", 0);
    assert!(run.broker.is_aborted(&orders, 4));
    let log = run.broker.log(&orders);
    assert_eq!(log.len(), 6, "the marker holds its offset");
    assert_eq!(
        log[5].control,
        Some(oversell_sim::protocol::ControlType::Abort)
    );
    assert_eq!(log[4].producer, Some((7, 3)));
    assert!(run.trace.records.iter().any(|r| matches!(
        &r.event,
        oversell_sim::Event::Marker {
            offset: 5,
            producer_id: 7,
            ..
        }
    )));
    let v = verdict(&aborted);
    assert!(v.holds(), "{v}");
    // Committed: the same record is a second reservation of the last unit.
    let v = verdict(&with_txn("COMMIT", true));
    assert!(v.of(Invariant::NoOversell).next().is_some(), "{v}");
}

#[test]
fn a_read_committed_view_that_contradicts_the_markers_is_refused() {
    let e = refused(&with_txn("COMMIT", false));
    assert!(
        e.0.contains("skipped it, but the markers on disk say it is committed"),
        "{e}"
    );
    let e = refused(&with_txn("ABORT", true));
    assert!(e.0.contains("read it, but the markers"), "{e}");
    let mut missing = with_txn("ABORT", false);
    missing
        .records
        .retain(|r| !(r.topic == "orders" && r.offset == 4));
    let e = refused(&missing);
    assert!(e.0.contains("no consumer read back"), "{e}");
}

#[test]
fn faults_played_live_are_the_simulators_crash_restart_pause_and_resume() {
    let mut h = last_unit(false);
    let fault = |t: u64, kind: &str, until: Option<u64>| LiveFault {
        t: T0 + t,
        done: None,
        kind: kind.into(),
        target: "product-service-0".into(),
        until: until.map(|u| T0 + u),
        note: String::new(),
    };
    h.faults = vec![
        fault(500, "crash", None),
        fault(800, "restart", None),
        fault(900, "pause", Some(1900)),
        fault(1905, "resume", None),
    ];
    let run = to_run(&h).unwrap();
    let faults: Vec<(u64, String)> = run
        .trace
        .records
        .iter()
        .filter_map(|r| match &r.event {
            oversell_sim::Event::Crash { instance } => Some((r.time, format!("crash {instance}"))),
            oversell_sim::Event::Restart { instance } => {
                Some((r.time, format!("restart {instance}")))
            }
            oversell_sim::Event::Pause { until, .. } => {
                Some((r.time, format!("pause until {until}")))
            }
            oversell_sim::Event::Resume { .. } => Some((r.time, "resume".into())),
            _ => None,
        })
        .collect();
    assert_eq!(
        faults,
        vec![
            (500, "crash product-service-0".into()),
            (800, "restart product-service-0".into()),
            (900, "pause until 1900".into()),
            (1905, "resume".into()),
        ]
    );
    assert_eq!(run.healed_at, 1905);
}

const TID: &str = "inventory-service-1-0";

mod coordinator;
