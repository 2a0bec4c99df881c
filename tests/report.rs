//! The run reports: the HTML timeline is self-contained, escapes what the trace holds,
//! shows the checker's words and highlights its evidence; the JSON report carries the
//! whole trace, exactly.

use oversell::designs;
use oversell::report;
use oversell::run::{run_seed, Judged};
use oversell::scenario::*;
use oversell::sim::{ClientId, Event, Peer, Trace, TraceRecord};
use std::collections::BTreeMap;

/// The question's exact case: one unit of product1, two orders for it back to back.
fn last_unit() -> Scenario {
    let order = |id: &str| Order {
        id: id.into(),
        product: "product1".into(),
        quantity: 1,
        user: None,
        at: 100,
    };
    Scenario {
        name: "last-unit".into(),
        description: "Two orders for the last unit of product1, back to back.".into(),
        products: vec![Product {
            id: "product1".into(),
            stock: 1,
        }],
        orders: vec![order("o1"), order("o2")],
        restocks: vec![],
        topology: TopologySpec::default(),
        streams: StreamsSpec::default(),
        payments: Payments::default(),
        saga: SagaSpec::default(),
        faults: FaultSpec::default(),
        run: RunSpec::default(),
        kafka: Default::default(),
        cluster: Default::default(),
        producer: Default::default(),
        expect: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        expect_probes: BTreeMap::new(),
    }
}

/// The first seed under which `naive` oversells the last unit.
fn failing_naive_run(scenario: &Scenario) -> (u64, Judged) {
    let design = designs::by_name("naive").expect("naive design");
    (0..50)
        .map(|seed| (seed, run_seed(design.as_ref(), scenario, &[], seed)))
        .find(|(_, j)| !j.verdict.holds())
        .expect("naive oversells the last unit within 50 seeds")
}

fn replay(seed: u64) -> String {
    format!("cargo run --release -- replay scenarios/last-unit.toml --design naive --seed {seed}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The run's JSON as the page embeds it.
fn embedded_json(page: &str) -> serde_json::Value {
    let open = "<script type=\"application/json\" id=\"run\">";
    let start = page.find(open).expect("embedded run data") + open.len();
    let len = page[start..]
        .find("</script>")
        .expect("end of embedded run data");
    serde_json::from_str(&page[start..start + len]).expect("embedded run data is JSON")
}

#[test]
fn html_is_self_contained() {
    let scenario = last_unit();
    let (seed, judged) = failing_naive_run(&scenario);
    let page = report::html(&scenario, "naive", &judged, &replay(seed));
    assert!(page.starts_with("<!DOCTYPE html>"));
    for needle in [
        "http://", "https://", "<link", "@import", "url(", "src=", "//fonts.",
    ] {
        assert!(
            !page.contains(needle),
            "the page refers to something outside itself: {needle}"
        );
    }
    // Everything it needs is inline: styles, script, data.
    assert!(page.contains("<style>") && page.contains("<script>"));
    assert_eq!(
        embedded_json(&page),
        report::json(&scenario, "naive", &judged)
    );
}

#[test]
fn html_header_names_the_run_and_how_to_replay_it() {
    let scenario = last_unit();
    let (seed, judged) = failing_naive_run(&scenario);
    let command = replay(seed);
    let page = report::html(&scenario, "naive", &judged, &command);
    assert!(page.contains("<b>last-unit</b>"));
    assert!(page.contains("<b>naive</b>"));
    assert!(page.contains(&format!("<b>{seed}</b>")));
    assert!(page.contains("VIOLATES") && page.contains("NO-OVERSELL"));
    assert!(page.contains(&esc(&command)));
}

#[test]
fn html_escapes_what_the_trace_holds() {
    let scenario = last_unit();
    let (seed, mut judged) = failing_naive_run(&scenario);
    let evil = "</script><script>alert('owned')</script><img onerror=x>";
    // A record value, a record key and an application note, all hostile.
    let mut touched = 0;
    for r in &mut judged.result.trace.records {
        match &mut r.event {
            Event::Append { key, value, .. } if touched == 0 => {
                *key = Some(format!("k\"{evil}"));
                *value = Some(evil.to_string());
                touched += 1;
            }
            Event::Process { value, .. } if touched == 1 => {
                *value = Some(format!(
                    "{{\"type\":\"{evil}\",\"order_id\":\"<b>o1</b>\"}}"
                ));
                touched += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        touched, 2,
        "the run has appends and processing to tamper with"
    );
    let seq = judged.result.trace.records.len() as u64;
    judged.result.trace.records.push(TraceRecord {
        seq,
        time: 2000,
        choice: 0,
        event: Event::Note {
            client: Peer::Client(ClientId::new("product-service-0", evil)),
            text: evil.into(),
        },
    });
    let page = report::html(
        &scenario,
        "naive",
        &judged,
        &format!("{} # {evil}", replay(seed)),
    );
    assert!(
        !page.contains("<script>alert"),
        "a trace value became markup"
    );
    assert!(!page.contains("<img"), "a trace value became markup");
    assert!(!page.contains("<b>o1</b>"), "a trace value became markup");
    assert_eq!(
        page.matches("<script").count(),
        2,
        "only the page's own two scripts"
    );
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "nothing closes the page's scripts early"
    );
    assert!(
        page.contains("&lt;script&gt;alert(&#39;owned&#39;)"),
        "the value is shown, escaped"
    );
    // The embedded data still says exactly what the trace says.
    let data = embedded_json(&page);
    let records: Vec<TraceRecord> = serde_json::from_value(data["trace"].clone()).unwrap();
    assert_eq!(records, judged.result.trace.records);
}

#[test]
fn html_shows_the_explanation_and_highlights_the_evidence() {
    let scenario = last_unit();
    let (seed, judged) = failing_naive_run(&scenario);
    let page = report::html(&scenario, "naive", &judged, &replay(seed));
    assert!(!judged.verdict.violations.is_empty());
    for (n, v) in judged.verdict.violations.iter().enumerate() {
        assert!(
            page.contains(&esc(&v.explanation)),
            "the explanation of {} is on the page",
            v.invariant.name()
        );
        assert!(
            !v.evidence.is_empty(),
            "{} cites evidence",
            v.invariant.name()
        );
        for seq in &v.evidence {
            // The event's element carries the evidence class and names the violation.
            let marker = format!("data-s=\"{seq}\" data-v=\"");
            let at = page.find(&marker).unwrap_or_else(|| {
                panic!("evidence #{seq} of {} is highlighted", v.invariant.name())
            });
            let element = &page[page[..at].rfind("<div ").unwrap()..at + marker.len() + 40];
            assert!(
                element.contains(" ev\""),
                "evidence #{seq} has the evidence class: {element}"
            );
            let cited = &page[at + marker.len()..];
            let cited = &cited[..cited.find('"').unwrap()];
            assert!(
                cited.split(' ').any(|c| c == n.to_string()),
                "evidence #{seq} names violation {n}: {cited}"
            );
        }
    }
    // A callout for the first violation sits on the timeline.
    assert!(page.contains("<div class=\"call\""));
}

#[test]
fn html_draws_crashes_and_downtime() {
    let mut scenario = last_unit();
    scenario.faults.schedule = vec![oversell::sim::ScheduledFault::Crash {
        at: 118,
        instance: "product-service-0".into(),
        restart_after: 120,
    }];
    let design = designs::by_name("naive").unwrap();
    let judged = run_seed(design.as_ref(), &scenario, &[], 1);
    let crashes = judged
        .result
        .trace
        .records
        .iter()
        .filter(|r| matches!(r.event, Event::Crash { .. }))
        .count();
    assert_eq!(crashes, 1);
    let page = report::html(&scenario, "naive", &judged, "replay");
    assert!(page.contains(">CRASH</div>"));
    assert!(page.contains(">RESTART</div>"));
    assert!(
        page.contains("<div class=\"s down\""),
        "downtime is drawn as a span"
    );
    assert!(page.contains("class=\"heal\""), "the heal time is marked");
}

#[test]
fn html_of_a_run_that_holds() {
    let scenario = last_unit();
    let design = designs::by_name("rekeyed-eos").unwrap();
    let judged = run_seed(design.as_ref(), &scenario, &[], 0);
    assert!(judged.verdict.holds());
    let page = report::html(&scenario, "rekeyed-eos", &judged, "replay");
    assert!(page.contains("HOLDS"));
    assert!(!page.contains("class=\"call\""));
    // Transactions show: begin, commit markers on the partitions, committed records.
    assert!(page.contains("txn begin"));
    assert!(page.contains(">COMMIT</div>"));
    assert!(page.contains("ap tx cm"));
}

#[test]
fn json_carries_the_whole_run() {
    let scenario = last_unit();
    let (seed, judged) = failing_naive_run(&scenario);
    let value = report::json(&scenario, "naive", &judged);
    assert_eq!(value["schema"], report::SCHEMA);
    assert_eq!(value["scenario"], "last-unit");
    assert_eq!(value["design"], "naive");
    assert_eq!(value["seed"], seed);
    assert_eq!(value["outcome"], "quiescent");
    assert_eq!(value["end_time"], judged.result.end_time);
    assert_eq!(value["steps"], judged.result.steps);
    assert_eq!(value["choices"], judged.result.choices.encode());

    // The trace round-trips through serde, and hashes to the recorded hash.
    let records: Vec<TraceRecord> =
        serde_json::from_value(value["trace"].clone()).expect("trace records");
    assert_eq!(records, judged.result.trace.records);
    let hash = Trace { records }.hash();
    assert_eq!(value["trace_hash"], format!("{hash:016x}"));
    assert_eq!(hash, judged.result.trace.hash());

    // The verdict, with the checker's words and evidence.
    assert_eq!(value["verdict"]["holds"], false);
    let violations = value["verdict"]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), judged.verdict.violations.len());
    for (j, v) in violations.iter().zip(&judged.verdict.violations) {
        assert_eq!(j["invariant"], v.invariant.name());
        assert_eq!(j["time"], v.time);
        assert_eq!(j["explanation"], v.explanation.as_str());
        assert_eq!(j["evidence"], serde_json::json!(v.evidence));
    }

    // Serialised and parsed again, nothing changes.
    let text = serde_json::to_string_pretty(&value).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        value
    );
}

#[test]
fn json_choices_replay_the_run() {
    let scenario = last_unit();
    let (_, judged) = failing_naive_run(&scenario);
    let value = report::json(&scenario, "naive", &judged);
    let log = oversell::sim::ChoiceLog::decode(value["choices"].as_str().unwrap()).unwrap();
    let design = designs::by_name("naive").unwrap();
    let again = oversell::run::run_log(design.as_ref(), &scenario, &[], &log);
    assert_eq!(
        report::json(&scenario, "naive", &again)["trace_hash"],
        value["trace_hash"]
    );
    assert_eq!(again.result.trace.records, judged.result.trace.records);
}

/// Every design's trace reads back, punctuations included.
#[test]
fn json_round_trips_every_design() {
    let scenario = last_unit();
    for design in designs::all() {
        let judged = run_seed(design.as_ref(), &scenario, &[], 0);
        let value = report::json(&scenario, design.name(), &judged);
        let records: Vec<TraceRecord> = serde_json::from_value(value["trace"].clone())
            .unwrap_or_else(|e| panic!("{}: the trace reads back: {e}", design.name()));
        assert_eq!(records, judged.result.trace.records, "{}", design.name());
    }
}

/// A long run's page is bounded: it draws and embeds one page of its records, says so,
/// and the whole run stays in the JSON report.
#[test]
fn html_of_a_long_run_draws_one_page() {
    let mut scenario = last_unit();
    scenario.products[0].stock = 1000;
    scenario.orders = (0..2500)
        .map(|i| Order {
            id: format!("o{i}"),
            product: "product1".into(),
            quantity: 1,
            user: None,
            at: 100 + i,
        })
        .collect();
    let design = designs::by_name("rekeyed-eos").expect("rekeyed-eos design");
    let judged = run_seed(design.as_ref(), &scenario, &[], 0);
    let total = judged.result.trace.records.len();
    assert!(
        total > report::PAGE_RECORDS,
        "{total} records: not a long run"
    );
    let page = report::html(&scenario, "rekeyed-eos", &judged, &replay(0));
    let embedded = embedded_json(&page);
    let shown = embedded["trace"].as_array().expect("a trace").len();
    assert_eq!(shown, report::PAGE_RECORDS);
    assert!(
        page.contains(&format!("of {total} (at most")),
        "the page says it is one"
    );
    assert!(page.len() < 25_000_000, "a page of {} bytes", page.len());
    let whole = report::json(&scenario, "rekeyed-eos", &judged);
    assert_eq!(whole["trace"].as_array().expect("a trace").len(), total);
}

/// `docs/run-json.md` names every invariant a violation can carry, so a new invariant
/// cannot leave the documented schema behind.
#[test]
fn run_json_doc_names_every_invariant() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/run-json.md"))
        .expect("docs/run-json.md is readable");
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `invariant`"))
        .expect("the violation table has an `invariant` row");
    let missing: Vec<&str> = oversell::checker::invariants::Invariant::ALL
        .iter()
        .map(|i| i.name())
        .filter(|name| !row.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/run-json.md does not name {missing:?}"
    );
}
