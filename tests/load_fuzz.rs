//! Fuzzing the scenario loader: it must never panic, and every error it returns must
//! point inside the text (line ≥ 1, column ≥ 1, within that line). Three sources of
//! input:
//!
//! * (a) arbitrary strings, and strings over TOML's punctuation;
//! * (b) valid scenario files (the shipped ones and a kitchen-sink one) with random
//!   mutations: lines deleted, duplicated or inserted, characters swapped or inserted,
//!   values replaced by negative, huge or wrongly typed ones, truncation;
//! * (c) random well-formed TOML built from the format's own keys with random, often
//!   nearly right values — this reaches the semantic checks. Whatever loads must also
//!   survive a round trip through serde.
//!
//! `OVERSELL_FUZZ=N` sets the number of inputs over the four fuzz tests together
//! (default 1,200: a few seconds). The full run, at least a million inputs:
//!
//! ```sh
//! OVERSELL_FUZZ=1000000 cargo test --release --test load_fuzz -- --nocapture
//! ```

use oversell::load::{load_str, LoadError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Inputs per fuzz test: a quarter of `OVERSELL_FUZZ` (default 1,200 in all).
fn cases() -> u32 {
    let total: u64 = std::env::var("OVERSELL_FUZZ")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_200);
    u32::try_from(total.div_ceil(4).max(1)).unwrap_or(u32::MAX)
}

fn runner(seed: u8) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases: cases(),
            failure_persistence: None,
            max_shrink_iters: 4000,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    )
}

/// The loader's answer to `text` is sound: no panic (proptest reports one as a failure),
/// and an error points inside the text and displays.
fn judge(text: &str, loaded: &AtomicU64, refused: &AtomicU64) -> Result<(), TestCaseError> {
    match load_str(text, "fuzz.toml") {
        Ok(s) => {
            loaded.fetch_add(1, Ordering::Relaxed);
            // What loads is written back and reads the same.
            let written =
                toml::to_string(&s).map_err(|e| TestCaseError::fail(format!("serialise: {e}")))?;
            let again = load_str(&written, "fuzz.toml").map_err(|e| {
                TestCaseError::fail(format!(
                    "written back, it no longer loads:\n{e}\n---\n{written}"
                ))
            })?;
            prop_assert_eq!(again, s);
        }
        Err(e) => {
            refused.fetch_add(1, Ordering::Relaxed);
            check_position(text, &e)?;
        }
    }
    Ok(())
}

fn check_position(text: &str, e: &LoadError) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(e.line >= 1 && e.column >= 1, "no position: {e:?}");
    prop_assert!(
        e.line <= lines.len(),
        "line {} past the end ({} lines): {e:?}",
        e.line,
        lines.len()
    );
    let line = lines[e.line - 1].trim_end_matches('\r');
    prop_assert!(
        e.column <= line.chars().count() + 1,
        "column {} past the end of line {} ({:?}): {e:?}",
        e.column,
        e.line,
        line
    );
    prop_assert_eq!(&e.source_line, line);
    prop_assert!(!e.message.is_empty());
    let shown = e.to_string();
    let head = format!("fuzz.toml:{}:{}: error: ", e.line, e.column);
    prop_assert!(shown.starts_with(&head), "{}", shown);
    Ok(())
}

fn report(name: &str, loaded: &AtomicU64, refused: &AtomicU64) {
    let (l, r) = (
        loaded.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!(
        "{name}: {} inputs survived ({l} loaded, {r} refused with a placed error)",
        l + r
    );
}

// ----- (a) arbitrary text -----

#[test]
fn arbitrary_strings_never_panic() {
    let (loaded, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let text = prop_oneof![
        any::<String>(),
        // TOML's punctuation and the format's words, to get past the first character.
        "([\\[\\]{}=\".,#'\\n\\t \\-0-9a-z_]|products|orders|stock|id|faults|schedule|seeds|\\.\\.){0,120}",
    ];
    let result = runner(1).run(&text, |t| judge(&t, &loaded, &refused));
    if let Err(e) = result {
        panic!("{e}");
    }
    report("arbitrary strings", &loaded, &refused);
}

// ----- (b) mutated valid files -----

/// Every part of the format in one file.
const KITCHEN_SINK: &str = r#"# Every key.
name = "kitchen-sink"
description = "all of it"

[[products]]
id = "p1"
stock = 2

[[products]]
id = "p2"
stock = 0

[[orders]]
id = "o1"
product = "p1"
quantity = 1
user = "alice"
at = 100

[[orders]]
id = "o2"
product = "p2"
quantity = 2
at = 150

[[restocks]]
product = "p2"
quantity = 3
at = 120

[topology]
partitions = 2
instances = 2
order_producer_idempotent = false

[streams]
commit_interval_ms = 100
session_timeout_ms = 300
heartbeat_interval_ms = 100
transaction_timeout_ms = 1000
request_timeout_ms = 200

[payments]
fail = ["o2"]
delay_ms = 50
delays = { o1 = 700 }

[saga]
reservation_timeout_ms = 500
punctuate_every_ms = 50

[faults]
phase_ms = 1000
crash = 1
pause = 1
drop = 5
duplicate = 5
delay = 5
restart_after = [50, 400]
pause_for = [200, 1500]
delay_for = [10, 300]

[[faults.schedule]]
kind = "crash"
at = 300
instance = "product-service-1"
restart_after = 100

[[faults.schedule]]
kind = "pause"
at = 400
instance = "order-service-0"
duration = 900

[[faults.schedule]]
kind = "drop_produce_ack"
at = 90
instance = "frontend"
count = 2

[run]
seeds = "0..10"
max_time_ms = 20000
decision_bound_ms = 5000

[kafka]
transaction_version = 1

[expect]
naive = { violates = ["no-oversell", "conservation"] }
rekeyed-eos = "holds"

[expect.saga]
violates = []
"#;

fn valid_files() -> Vec<String> {
    let mut files = vec![KITCHEN_SINK.to_string()];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for p in paths {
        files.push(std::fs::read_to_string(p).expect("read"));
    }
    files
}

#[test]
fn the_unmutated_files_load() {
    for f in valid_files() {
        if let Err(e) = load_str(&f, "fuzz.toml") {
            panic!("{e}");
        }
    }
}

/// Keys of the format, and a few that are not.
const KEYS: &[&str] = &[
    "name",
    "description",
    "products",
    "orders",
    "restocks",
    "topology",
    "streams",
    "payments",
    "saga",
    "faults",
    "run",
    "expect",
    "id",
    "stock",
    "product",
    "quantity",
    "user",
    "at",
    "partitions",
    "instances",
    "order_producer_idempotent",
    "commit_interval_ms",
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "transaction_timeout_ms",
    "request_timeout_ms",
    "fail",
    "delay_ms",
    "delays",
    "reservation_timeout_ms",
    "punctuate_every_ms",
    "phase_ms",
    "crash",
    "pause",
    "drop",
    "duplicate",
    "delay",
    "restart_after",
    "pause_for",
    "delay_for",
    "schedule",
    "kind",
    "instance",
    "duration",
    "count",
    "seeds",
    "max_time_ms",
    "decision_bound_ms",
    "violates",
    "kafka",
    "transaction_version",
    "abort_scan_interval_ms",
    "state_dir",
    "naive",
    "rekeyed-alo",
    "rekeyed-eos",
    "saga",
    "stok",
    "x",
    "",
];

/// Values as they would be written in TOML: right, wrong, negative, huge, odd.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "99999999999999999999",
    "1000000001",
    "1e400",
    "1.5",
    "nan",
    "inf",
    "true",
    "\"\"",
    "\"p1\"",
    "\"p2\"",
    "\"o1\"",
    "\"holds\"",
    "\"5..5\"",
    "\"0..3\"",
    "\"9..3\"",
    "\"0..=3\"",
    "\"crash\"",
    "\"pause\"",
    "\"drop_produce_ack\"",
    "\"frontend\"",
    "\"product-service-0\"",
    "\"product-service-9\"",
    "\"order-service-01\"",
    "[]",
    "[1, 2]",
    "[2, 1]",
    "[\"no-oversell\"]",
    "[\"nope\"]",
    "{}",
    "{ violates = [\"no-oversell\"] }",
    "{ id = \"p9\", stock = 1 }",
    "1979-05-27T07:32:00Z",
    "'''x'''",
    "\"\\u0000\"",
];

const HEADERS: &[&str] = &[
    "[[products]]",
    "[[orders]]",
    "[[restocks]]",
    "[topology]",
    "[streams]",
    "[payments]",
    "[payments.delays]",
    "[saga]",
    "[faults]",
    "[[faults.schedule]]",
    "[run]",
    "[expect]",
    "[expect.naive]",
    "[kafka]",
    "[products]",
    "[[topology]]",
    "[a.b.c]",
];

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertLine(usize, String),
    ReplaceValue(usize, String),
    SwapChars(usize, usize),
    InsertChar(usize, char),
    DeleteChar(usize),
    Truncate(usize),
}

fn line_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(KEYS), prop::sample::select(VALUES)).prop_map(|(k, v)| format!("{k} = {v}")),
        2 => prop::sample::select(HEADERS).prop_map(str::to_string),
        1 => (prop::sample::select(KEYS), any::<i64>()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => "[ -~]{0,30}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<usize>();
    prop_oneof![
        2 => i.prop_map(Mutation::DeleteLine),
        2 => i.prop_map(Mutation::DuplicateLine),
        1 => (i, i).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        3 => (i, line_text()).prop_map(|(a, l)| Mutation::InsertLine(a, l)),
        4 => (i, prop_oneof![
            prop::sample::select(VALUES).prop_map(str::to_string),
            any::<i64>().prop_map(|v| v.to_string()),
        ])
            .prop_map(|(a, v)| Mutation::ReplaceValue(a, v)),
        2 => (i, i).prop_map(|(a, b)| Mutation::SwapChars(a, b)),
        2 => (i, any::<char>()).prop_map(|(a, c)| Mutation::InsertChar(a, c)),
        2 => i.prop_map(Mutation::DeleteChar),
        1 => i.prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len();
    match m {
        Mutation::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::InsertLine(i, l) => lines.insert(i % (n + 1), l.clone()),
        Mutation::ReplaceValue(i, v) => {
            // The i-th line with a value (cyclically).
            let with_value: Vec<usize> = (0..n).filter(|&k| lines[k].contains('=')).collect();
            if let Some(&k) = with_value.get(i % with_value.len().max(1)) {
                let key = lines[k].split('=').next().unwrap_or("").to_string();
                lines[k] = format!("{key}= {v}");
            }
        }
        Mutation::SwapChars(a, b) => {
            let mut chars: Vec<char> = text.chars().collect();
            if !chars.is_empty() {
                let len = chars.len();
                chars.swap(a % len, b % len);
            }
            return chars.into_iter().collect();
        }
        Mutation::InsertChar(i, c) => {
            let mut chars: Vec<char> = text.chars().collect();
            let at = i % (chars.len() + 1);
            chars.insert(at, *c);
            return chars.into_iter().collect();
        }
        Mutation::DeleteChar(i) => {
            let mut chars: Vec<char> = text.chars().collect();
            if !chars.is_empty() {
                let len = chars.len();
                chars.remove(i % len);
            }
            return chars.into_iter().collect();
        }
        Mutation::Truncate(i) => {
            let chars: Vec<char> = text.chars().collect();
            return chars[..i % (chars.len() + 1)].iter().collect();
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_scenario_files_never_panic() {
    let files = valid_files();
    let (loaded, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let input = (0..files.len(), prop::collection::vec(mutation(), 1..6));
    let result = runner(2).run(&input, |(f, ms)| {
        let mut text = files[f].clone();
        for m in &ms {
            text = apply(&text, m);
        }
        judge(&text, &loaded, &refused)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    report("mutated scenario files", &loaded, &refused);
}

// ----- (c) well-formed TOML from the format's keys -----

use toml::{Table, Value};

fn int(v: u64) -> Value {
    Value::Integer(v as i64)
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// A valid scenario, drawn at random, as a TOML table (`[expect]` in both forms).
fn valid_scenario() -> impl Strategy<Value = Table> {
    (
        prop::collection::vec(0u64..6, 1..5), // stock per product
        prop::collection::vec((any::<usize>(), 1u64..4, 0u64..3000, any::<bool>()), 0..6), // orders
        prop::collection::vec((any::<usize>(), 1u64..4, 0u64..3000), 0..3), // restocks
        (1u64..5, 1u64..4, any::<bool>()),    // topology
        (
            prop::option::of((0u64..2000, 0u64..2000)),
            prop::option::of((200u64..1000, 1u64..200)),
            1u64..3,
        ), // streams (commit interval and transaction timeout), kafka
        (
            prop::collection::vec(any::<bool>(), 6),
            0u64..500,
            prop::collection::vec(any::<bool>(), 6),
        ), // payments
        prop::option::of((1u64..3000, 1u64..300)), // saga
        (
            0u64..3000,
            prop::collection::vec(0u64..1001, 5),
            prop::collection::vec((0u64..500, 0u64..500), 3),
        ),
        prop::collection::vec(
            (
                0usize..3,
                0u64..3000,
                any::<usize>(),
                0u64..2000,
                any::<bool>(),
            ),
            0..4,
        ), // schedule
        (0u64..1000, 1u64..50, 3001u64..60000, 0u64..20000), // run
        prop::collection::vec(
            (
                0usize..4,
                prop::option::of(prop::collection::vec(0usize..9, 0..3)),
            ),
            0..4,
        ), // expect
    )
        .prop_map(
            |(
                stocks,
                orders,
                restocks,
                topo,
                streams,
                pay,
                saga,
                faults,
                schedule,
                run,
                expect,
            )| {
                let mut t = Table::new();
                t.insert("name".into(), string("generated"));
                let products: Vec<Value> = stocks
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let mut p = Table::new();
                        p.insert("id".into(), string(format!("p{i}")));
                        p.insert("stock".into(), int(*s));
                        Value::Table(p)
                    })
                    .collect();
                t.insert("products".into(), Value::Array(products));
                let n = stocks.len();
                let order_ids: Vec<String> = (0..orders.len()).map(|i| format!("o{i}")).collect();
                let orders: Vec<Value> = orders
                    .iter()
                    .enumerate()
                    .map(|(i, (p, q, at, user))| {
                        let mut o = Table::new();
                        o.insert("id".into(), string(format!("o{i}")));
                        o.insert("product".into(), string(format!("p{}", p % n)));
                        o.insert("quantity".into(), int(*q));
                        o.insert("at".into(), int(*at));
                        if *user {
                            o.insert("user".into(), string(format!("u{i}")));
                        }
                        Value::Table(o)
                    })
                    .collect();
                if !orders.is_empty() {
                    t.insert("orders".into(), Value::Array(orders));
                }
                let restocks: Vec<Value> = restocks
                    .iter()
                    .map(|(p, q, at)| {
                        let mut r = Table::new();
                        r.insert("product".into(), string(format!("p{}", p % n)));
                        r.insert("quantity".into(), int(*q));
                        r.insert("at".into(), int(*at));
                        Value::Table(r)
                    })
                    .collect();
                if !restocks.is_empty() {
                    t.insert("restocks".into(), Value::Array(restocks));
                }
                let (partitions, instances, idempotent) = topo;
                let mut topology = Table::new();
                topology.insert("partitions".into(), int(partitions));
                topology.insert("instances".into(), int(instances));
                topology.insert(
                    "order_producer_idempotent".into(),
                    Value::Boolean(idempotent),
                );
                t.insert("topology".into(), Value::Table(topology));
                let mut st = Table::new();
                if let Some((a, b)) = streams.0 {
                    // Kafka Streams refuses a transaction timeout below the commit interval.
                    st.insert("commit_interval_ms".into(), int(a.min(b)));
                    st.insert("transaction_timeout_ms".into(), int(a.max(b).max(1)));
                }
                if let Some((session, heartbeat)) = streams.1 {
                    st.insert("session_timeout_ms".into(), int(session));
                    st.insert("heartbeat_interval_ms".into(), int(heartbeat));
                }
                t.insert("streams".into(), Value::Table(st));
                let mut kafka = Table::new();
                kafka.insert("transaction_version".into(), int(streams.2));
                t.insert("kafka".into(), Value::Table(kafka));
                let (fail, delay, delays) = pay;
                let mut payments = Table::new();
                let failing: Vec<Value> = order_ids
                    .iter()
                    .zip(&fail)
                    .filter(|(_, f)| **f)
                    .map(|(o, _)| string(o.clone()))
                    .collect();
                payments.insert("fail".into(), Value::Array(failing));
                payments.insert("delay_ms".into(), int(delay));
                let mut per_order = Table::new();
                for (i, (o, d)) in order_ids.iter().zip(&delays).enumerate() {
                    if *d {
                        per_order.insert(o.clone(), int(100 * i as u64));
                    }
                }
                payments.insert("delays".into(), Value::Table(per_order));
                t.insert("payments".into(), Value::Table(payments));
                if let Some((timeout, every)) = saga {
                    let mut s = Table::new();
                    s.insert("reservation_timeout_ms".into(), int(timeout));
                    s.insert("punctuate_every_ms".into(), int(every));
                    t.insert("saga".into(), Value::Table(s));
                }
                let (phase, rates, ranges) = faults;
                let mut f = Table::new();
                f.insert("phase_ms".into(), int(phase));
                if phase > 0 {
                    for (k, r) in ["crash", "pause", "drop", "duplicate", "delay"]
                        .iter()
                        .zip(&rates)
                    {
                        f.insert(k.to_string(), int(*r));
                    }
                }
                for (k, (a, b)) in ["restart_after", "pause_for", "delay_for"]
                    .iter()
                    .zip(&ranges)
                {
                    f.insert(
                        k.to_string(),
                        Value::Array(vec![int(*a.min(b)), int(*a.max(b))]),
                    );
                }
                let schedule: Vec<Value> = schedule
                    .iter()
                    .map(|(kind, at, who, d, frontend)| {
                        let mut e = Table::new();
                        let kind = ["crash", "pause", "drop_produce_ack"][*kind];
                        e.insert("kind".into(), string(kind));
                        e.insert("at".into(), int(*at));
                        let service = ["order-service", "product-service"][who % 2];
                        let instance = if kind == "drop_produce_ack" && *frontend {
                            "frontend".to_string()
                        } else {
                            format!("{service}-{}", (who / 2) % instances as usize)
                        };
                        e.insert("instance".into(), string(instance));
                        match kind {
                            "crash" => e.insert("restart_after".into(), int(*d)),
                            "pause" => e.insert("duration".into(), int(d + 1)),
                            _ => e.insert("count".into(), int(d % 5 + 1)),
                        };
                        Value::Table(e)
                    })
                    .collect();
                if !schedule.is_empty() {
                    f.insert("schedule".into(), Value::Array(schedule));
                }
                t.insert("faults".into(), Value::Table(f));
                let (start, len, max_time, bound) = run;
                let mut r = Table::new();
                r.insert("seeds".into(), string(format!("{start}..{}", start + len)));
                r.insert("max_time_ms".into(), int(max_time));
                r.insert("decision_bound_ms".into(), int(bound));
                t.insert("run".into(), Value::Table(r));
                let mut ex = Table::new();
                for (d, violates) in expect {
                    let design = ["naive", "rekeyed-alo", "rekeyed-eos", "saga"][d];
                    let v = match violates {
                        None => string("holds"),
                        Some(list) => {
                            let mut names: Vec<&str> =
                                list.iter().map(|i| INVARIANTS[*i]).collect();
                            names.dedup();
                            let mut e = Table::new();
                            e.insert(
                                "violates".into(),
                                Value::Array(names.into_iter().map(string).collect()),
                            );
                            Value::Table(e)
                        }
                    };
                    ex.insert(design.into(), v);
                }
                t.insert("expect".into(), Value::Table(ex));
                t
            },
        )
}

const INVARIANTS: [&str; 9] = [
    "no-oversell",
    "conservation",
    "one-decision",
    "no-duplicate-effect",
    "eventual-decision",
    "view-matches-log",
    "no-aborted-read",
    "no-lost-write",
    "monotonic-offsets",
];

/// Values that are wrong somewhere (or right somewhere else).
fn odd_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        3 => prop::sample::select(&[-1i64, 0, 1, 2, 999, 1000, 1001, 1_000_000_001, i64::MIN, i64::MAX][..])
            .prop_map(Value::Integer),
        1 => any::<i64>().prop_map(Value::Integer),
        1 => any::<bool>().prop_map(Value::Boolean),
        1 => any::<f64>().prop_map(Value::Float),
        2 => prop::sample::select(&[
            "", "p0", "p9", "o0", "o9", "holds", "5..5", "9..3", "0..=3", "crash", "pause", "drop_produce_ack",
            "frontend", "product-service-0", "product-service-7", "order-service-01", "no-oversel", "naive",
        ][..])
            .prop_map(string),
        1 => ".{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(KEYS).prop_map(str::to_string),
                inner,
                0..3
            )
            .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
    .boxed()
}

#[derive(Clone, Debug)]
enum Change {
    /// Replace the n-th value (in a walk of the tree) with another.
    Replace(usize, Value),
    /// Remove the n-th key.
    Remove(usize),
    /// Add a key to the n-th table.
    Add(usize, String, Value),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (any::<usize>(), odd_value()).prop_map(|(i, v)| Change::Replace(i, v)),
        1 => any::<usize>().prop_map(Change::Remove),
        1 => (any::<usize>(), prop::sample::select(KEYS), odd_value()).prop_map(|(i, k, v)| Change::Add(i, k.into(), v)),
    ]
}

/// Counts values (for Replace and Remove) and tables (for Add) in a walk.
fn count(v: &Value, values: &mut usize, tables: &mut usize) {
    match v {
        Value::Table(t) => {
            *tables += 1;
            for x in t.values() {
                *values += 1;
                count(x, values, tables);
            }
        }
        Value::Array(a) => {
            for x in a {
                *values += 1;
                count(x, values, tables);
            }
        }
        _ => {}
    }
}

/// Applies a change at the `target`-th value or table; `seen` counts as it walks.
fn change_at(v: &mut Value, c: &Change, target: usize, seen: &mut usize) -> bool {
    match v {
        Value::Table(t) => {
            if let Change::Add(_, k, x) = c {
                if *seen == target {
                    t.insert(k.clone(), x.clone());
                    return true;
                }
                *seen += 1;
            }
            let keys: Vec<String> = t.keys().cloned().collect();
            for k in keys {
                if !matches!(c, Change::Add(..)) {
                    if *seen == target {
                        match c {
                            Change::Replace(_, x) => {
                                t.insert(k, x.clone());
                            }
                            _ => {
                                t.remove(&k);
                            }
                        }
                        return true;
                    }
                    *seen += 1;
                }
                if let Some(x) = t.get_mut(&k) {
                    if change_at(x, c, target, seen) {
                        return true;
                    }
                }
            }
            false
        }
        Value::Array(a) => {
            for i in 0..a.len() {
                if !matches!(c, Change::Add(..)) {
                    if *seen == target {
                        match c {
                            Change::Replace(_, x) => a[i] = x.clone(),
                            _ => {
                                a.remove(i);
                            }
                        }
                        return true;
                    }
                    *seen += 1;
                }
                if change_at(&mut a[i], c, target, seen) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

#[test]
fn generated_valid_scenarios_load() {
    let (loaded, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let result = runner(3).run(&valid_scenario(), |t| {
        let text =
            toml::to_string(&t).map_err(|e| TestCaseError::fail(format!("serialise: {e}")))?;
        if let Err(e) = load_str(&text, "fuzz.toml") {
            return Err(TestCaseError::fail(format!(
                "a valid scenario was refused:\n{e}\n---\n{text}"
            )));
        }
        judge(&text, &loaded, &refused)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    report("generated valid scenarios", &loaded, &refused);
}

#[test]
fn generated_scenarios_with_changes_never_panic() {
    let (loaded, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let input = (valid_scenario(), prop::collection::vec(change(), 1..4));
    let result = runner(4).run(&input, |(t, changes)| {
        let mut v = Value::Table(t);
        for c in &changes {
            let (mut values, mut tables) = (0, 0);
            count(&v, &mut values, &mut tables);
            let (n, i) = match c {
                Change::Add(i, ..) => (tables, *i),
                Change::Replace(i, _) | Change::Remove(i) => (values, *i),
            };
            if n > 0 {
                change_at(&mut v, c, i % n, &mut 0);
            }
        }
        let Ok(text) = toml::to_string(&v) else {
            return Ok(());
        };
        judge(&text, &loaded, &refused)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    report("generated scenarios with changes", &loaded, &refused);
}
