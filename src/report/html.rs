//! The HTML timeline: one self-contained page (inline CSS and JS, no network).
//!
//! Layout. Time runs left to right. Every simulated millisecond at which something
//! labelled happens gets a column wide enough for the events of the busiest lane at that
//! millisecond (side by side, in trace order); the idle time between two columns is
//! drawn compressed, its width growing with the logarithm of its length, and the axis
//! prints every column's time and every long gap's length. Spans (downtime, pauses, open
//! transactions) are placed on the same scale. The page zooms by scaling one CSS variable.
//!
//! Lanes, top to bottom: per service instance a header lane (crashes, restarts, pauses)
//! followed by a lane per client of that instance (processing, store reads and writes,
//! acks, transactions, errors, notes) and, hidden until asked for, a lane of its
//! background chatter (network messages, fetches, timers, punctuations) drawn as ticks;
//! an event a violation cites is always shown on its client's lane. Per topic-partition
//! a lane of its log (appends with their offsets and the decoded domain event, markers,
//! duplicates, compaction); per consumer group a lane (joins, leaves, rebalances, offset
//! commits); then the broker's rejections and the network faults.
//!
//! Evidence. Events a violation cites are drawn red, with a numbered badge and a band
//! through every lane; a callout with the checker's words ends over the last cited event
//! at or before the time the invariant broke, and the page opens there. Hovering or
//! clicking any event shows its full record (from the embedded run JSON) and the
//! violations citing it. The address may say where to open: `#seq=N`, `#fit`, `#z=0.5`,
//! `#net` (combined with `&`).
//!
//! Text from the trace is escaped everywhere; the run's JSON is embedded with `<`, `>`
//! and `&` written as JSON escapes, so no record value can close a tag.

use super::{cited, json::json_text, trace_hash_hex, Cited};
use crate::run::Judged;
use crate::scenario::Scenario;
use oversell_sim::protocol::ControlType;
use oversell_sim::{Event, Millis, Outcome, TopicPartition, TraceRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

const CSS: &str = include_str!("timeline.css");
const JS: &str = include_str!("timeline.js");

/// Width of one labelled event's slot at zoom 1, in px (the CSS draws the box 6 px narrower).
const SLOT: u64 = 176;
/// Width of a network tick's slot, px.
const TICK: u64 = 7;
/// Callouts (one per invariant) take at most this many rows; the header lists every violation.
const MAX_CALLOUT_ROWS: usize = 2;
/// Width of a callout (as in the CSS) and height of its row, px.
const CALLOUT_W: u64 = 640;
const CALLOUT_H: usize = 40;

/// The self-contained HTML timeline of a judged run. `replay_command` is printed in the
/// header, as the way to reproduce the run.
pub fn html(scenario: &Scenario, design: &str, judged: &Judged, replay_command: &str) -> String {
    let violations = cited(judged);
    let result = &judged.result;
    let records = &result.trace.records;
    let mut model = Model::build(records, &violations, result.end_time);
    model.layout();

    let mut out = String::with_capacity(4096 + records.len() * 360);
    let seed = judged
        .seed
        .map_or_else(|| "replayed log".to_string(), |s| s.to_string());
    let verdict = if violations.is_empty() {
        "holds".to_string()
    } else {
        let names: BTreeSet<&str> = violations.iter().map(|v| v.invariant.as_str()).collect();
        format!(
            "violates {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · {} · seed {} · {}</title><style>{CSS}</style></head><body>\n",
        esc(&scenario.name),
        esc(design),
        esc(&seed),
        esc(&verdict)
    );

    // ----- header -----
    out.push_str("<header>");
    let _ = write!(
        out,
        "<div class=\"top\"><h1><span class=\"brand\">oversell</span>\
         <span class=\"k\">scenario</span> <b>{}</b> <span class=\"k\">design</span> <b>{}</b> \
         <span class=\"k\">seed</span> <b>{}</b></h1>",
        esc(&scenario.name),
        esc(design),
        esc(&seed)
    );
    let _ = write!(
        out,
        "<div class=\"verdict {}\">{}</div>",
        if violations.is_empty() { "ok" } else { "bad" },
        esc(&verdict.to_uppercase())
    );
    let _ = write!(
        out,
        "</div><div class=\"sub\"><p class=\"desc\">{}</p><div class=\"meta\"><span>{}</span>\
         <span>ended at {} ms</span><span>{} steps</span><span>{} events</span><span>trace {}</span></div></div>",
        esc(scenario.description.trim()),
        esc(&outcome_text(&result.outcome)),
        result.end_time,
        result.steps,
        records.len(),
        trace_hash_hex(result.trace.hash())
    );
    let _ = write!(
        out,
        "<div class=\"replay\"><span class=\"k\">replay</span><code id=\"cmd\">{}</code>\
         <button type=\"button\" id=\"copy\">copy</button></div>",
        esc(replay_command)
    );
    if !violations.is_empty() {
        out.push_str("<ol class=\"viol\">");
        for (n, v) in violations.iter().enumerate() {
            let first = model.anchor(n, v.time).map(|it| it.seq);
            let _ = write!(
                out,
                "<li{} title=\"{}\"><span class=\"bd\">{}</span><b>{}</b> <span class=\"at\">at {} ms</span> {}",
                first.map_or(String::new(), |s| format!(" data-jump=\"{s}\"")),
                esc(&v.explanation),
                n + 1,
                esc(&v.invariant),
                v.time,
                esc(&v.explanation)
            );
            if !v.evidence.is_empty() {
                out.push_str(" <span class=\"evs\">evidence:");
                for s in &v.evidence {
                    let _ = write!(out, " <a data-jump=\"{s}\">#{s}</a>");
                }
                out.push_str("</span>");
            }
            out.push_str("</li>");
        }
        out.push_str("</ol>");
    }
    out.push_str(
        "<div class=\"tools\"><span class=\"k\">zoom</span>\
         <button type=\"button\" data-zoom=\"out\">−</button>\
         <button type=\"button\" data-zoom=\"in\">+</button>\
         <button type=\"button\" data-zoom=\"fit\">fit</button>\
         <button type=\"button\" data-zoom=\"one\">1:1</button>\
         <label><input type=\"checkbox\" id=\"net\"> network, fetches &amp; timers</label>\
         <span class=\"legend\">\
         <span class=\"i ap\">append</span><span class=\"i ap tx cm\">txn, committed</span>\
         <span class=\"i ap tx ab\">txn, aborted</span><span class=\"i mk cm\">marker</span>\
         <span class=\"i pr\">process</span><span class=\"i sg\">store get</span>\
         <span class=\"i sp\">store put</span><span class=\"i oc\">offset commit</span>\
         <span class=\"i rb\">group</span><span class=\"i cr\">crash</span>\
         <span class=\"i pa\">pause</span><span class=\"i ev\">evidence</span></span>\
         <span class=\"hint\">idle time compressed · hover or click an event</span>\
         </div>",
    );
    out.push_str("</header>\n");

    // ----- timeline -----
    model.render(&mut out, &violations, result.healed_at);

    out.push_str(
        "<section id=\"det\"><div class=\"dh\">Hover over an event to see it in full; click to pin it.</div></section>\n",
    );
    let data = json_text(scenario, design, judged);
    out.push_str("<script type=\"application/json\" id=\"run\">");
    out.push_str(&script_safe(&data));
    out.push_str("</script>\n<script>");
    out.push_str(JS);
    out.push_str("</script>\n</body></html>\n");
    out
}

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text that may sit inside a `<script>` element: `<`, `>` and `&` only ever occur
/// inside JSON strings, where their `\u` escapes mean the same.
fn script_safe(json: &str) -> String {
    json.replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Quiescent => "quiescent".into(),
        Outcome::TimeBound => "stopped at the time bound".into(),
        Outcome::StepBound => "stopped at the step bound".into(),
        Outcome::Diverged(why) => format!("replay diverged: {why}"),
    }
}

/// At most `max` characters, with an ellipsis if cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// A sort key that orders `x-2` before `x-10`.
fn natural(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(u64::from(d)),
            );
        } else {
            if let Some(n) = num.take() {
                out.push((std::mem::take(&mut text), n));
            }
            text.push(c);
        }
    }
    out.push((text, num.unwrap_or(0)));
    out
}

fn instance_of(client: &str) -> &str {
    client.split_once('/').map_or(client, |(i, _)| i)
}

fn offsets(list: &[(TopicPartition, u64)]) -> String {
    if list.is_empty() {
        return "(none)".into();
    }
    list.iter()
        .map(|(tp, o)| format!("{tp}→{o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A short label of a record: the domain event's type and order (or product), or
/// `key = value` for anything else.
fn describe(key: Option<&str>, value: Option<&str>) -> String {
    let key = key.unwrap_or("");
    let Some(value) = value else {
        return format!("{key} = (none)");
    };
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(value) {
        let text = |f: &str| m.get(f).and_then(|v| v.as_str());
        if let Some(kind) = text("type") {
            let mut s = kind.to_string();
            if let Some(o) = text("order_id").or_else(|| text("product_id")) {
                s.push(' ');
                s.push_str(o);
            }
            if let Some(r) = text("result") {
                s.push(' ');
                s.push_str(r);
            }
            if let Some(q) = m.get("quantity").and_then(|v| v.as_u64()) {
                if q != 1 {
                    let _ = write!(s, " ×{q}");
                }
            }
            return s;
        }
        if let Some(a) = m.get("available").and_then(|v| v.as_i64()) {
            let count = |f: &str| m.get(f).and_then(|v| v.as_object()).map_or(0, |o| o.len());
            return format!(
                "{key}: avail {a}, held {}, confirmed {}",
                count("reserved"),
                count("confirmed")
            );
        }
    }
    if key.is_empty() {
        clip(value, 60)
    } else {
        format!("{key} = {}", clip(value, 60))
    }
}

/// The `type` of a domain event value.
fn domain_type(value: Option<&str>) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(value?) {
        Ok(serde_json::Value::Object(m)) => m.get("type")?.as_str().map(str::to_string),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instance,
    Client,
    Net,
    Partition,
    Group,
    Broker,
}

struct Item {
    seq: u64,
    time: Millis,
    /// CSS classes.
    class: String,
    /// Small first line: what happened.
    top: String,
    /// Second line: the domain event's type (if any), then what it is about.
    kind: String,
    main: String,
    /// Violations citing it.
    cited: Vec<usize>,
    x: u64,
}

struct Span {
    from: Millis,
    to: Millis,
    class: &'static str,
    label: String,
    seq: u64,
}

struct Lane {
    kind: Kind,
    title: String,
    sub: String,
    items: Vec<Item>,
    spans: Vec<Span>,
}

struct Col {
    t: Millis,
    x: u64,
    w: u64,
}

struct Model {
    lanes: Vec<Lane>,
    /// Group headings: (index of the first lane, title).
    headings: Vec<(usize, &'static str)>,
    key: BTreeMap<String, usize>,
    /// Instance → its client and network lanes (for downtime shading).
    instance_lanes: BTreeMap<String, Vec<usize>>,
    txn_client: BTreeMap<String, String>,
    pid_client: BTreeMap<u64, String>,
    cites: BTreeMap<u64, Vec<usize>>,
    cols: Vec<Col>,
    end: Millis,
    end_x: u64,
    width: u64,
}

impl Model {
    fn build(records: &[TraceRecord], violations: &[Cited], end_time: Millis) -> Model {
        // Who and what the run involved.
        let mut clients = BTreeSet::new();
        let mut instances = BTreeSet::new();
        let mut partitions = BTreeSet::new();
        let mut groups = BTreeSet::new();
        let mut appended_by: BTreeMap<(&TopicPartition, u64), u64> = BTreeMap::new();
        let mut pid_client = BTreeMap::new();
        for r in records {
            match &r.event {
                Event::Append {
                    tp,
                    offset,
                    producer_id,
                    ..
                } => {
                    partitions.insert(tp.clone());
                    if let Some(pid) = producer_id {
                        appended_by.insert((tp, *offset), *pid);
                    }
                }
                Event::DuplicateBatch { tp, .. }
                | Event::Marker { tp, .. }
                | Event::Compacted { tp, .. } => {
                    partitions.insert(tp.clone());
                }
                Event::Rebalance { group, .. }
                | Event::MemberJoined { group, .. }
                | Event::MemberLeft { group, .. }
                | Event::OffsetCommit { group, .. }
                | Event::TxnOffsets { group, .. } => {
                    groups.insert(group.clone());
                }
                Event::Crash { instance }
                | Event::Restart { instance }
                | Event::Pause { instance, .. }
                | Event::Resume { instance } => {
                    instances.insert(instance.clone());
                }
                Event::Deliver { from, to, .. } => {
                    for end in [from, to] {
                        if end != "broker" {
                            clients.insert(end.clone());
                        }
                    }
                }
                Event::Acked {
                    client,
                    tp,
                    base_offset,
                    ..
                } => {
                    clients.insert(client.clone());
                    if let Some(pid) = appended_by.get(&(tp, *base_offset)) {
                        pid_client.entry(*pid).or_insert_with(|| client.clone());
                    }
                }
                Event::Fetch { client, .. }
                | Event::Timeout { client, .. }
                | Event::Assigned { client, .. }
                | Event::Restored { client, .. }
                | Event::Process { client, .. }
                | Event::StorePut { client, .. }
                | Event::StoreGet { client, .. }
                | Event::Punctuate { client, .. }
                | Event::ClientError { client, .. }
                | Event::Note { client, .. } => {
                    clients.insert(client.clone());
                }
                _ => {}
            }
        }
        for c in &clients {
            instances.insert(instance_of(c).to_string());
        }
        // Kafka Streams names a client `<instance>/<application>` and its transactional
        // id `<application>-<instance>`.
        let txn_client = clients
            .iter()
            .filter_map(|c| {
                c.split_once('/')
                    .map(|(i, a)| (format!("{a}-{i}"), c.clone()))
            })
            .collect();

        let mut model = Model {
            lanes: Vec::new(),
            headings: Vec::new(),
            key: BTreeMap::new(),
            instance_lanes: BTreeMap::new(),
            txn_client,
            pid_client,
            cites: BTreeMap::new(),
            cols: Vec::new(),
            end: end_time,
            end_x: 0,
            width: 0,
        };
        for (n, v) in violations.iter().enumerate() {
            for s in &v.evidence {
                model.cites.entry(*s).or_default().push(n);
            }
        }

        let mut instances: Vec<String> = instances.into_iter().collect();
        instances.sort_by_key(|i| natural(i));
        model.headings.push((0, "services"));
        for inst in &instances {
            model.add_lane(
                format!("i:{inst}"),
                Kind::Instance,
                inst.clone(),
                "instance".into(),
            );
            let mut mine: Vec<&String> =
                clients.iter().filter(|c| instance_of(c) == inst).collect();
            mine.sort_by_key(|c| natural(c));
            for c in mine {
                let short = c.split_once('/').map_or(c.as_str(), |(_, a)| a).to_string();
                let lane = model.add_lane(format!("c:{c}"), Kind::Client, short, inst.clone());
                let net = model.add_lane(
                    format!("n:{c}"),
                    Kind::Net,
                    "background".into(),
                    "network, fetches, timers".into(),
                );
                model
                    .instance_lanes
                    .entry(inst.clone())
                    .or_default()
                    .extend([lane, net]);
            }
        }
        let mut partitions: Vec<TopicPartition> = partitions.into_iter().collect();
        let internal = |t: &str| t.ends_with("-changelog") || t.ends_with("-repartition");
        partitions.sort_by_key(|tp| (internal(&tp.topic), natural(&tp.topic), tp.partition));
        model.headings.push((model.lanes.len(), "partitions"));
        for tp in &partitions {
            let title = tp.to_string();
            let sub = match (title.len() > 26, internal(&tp.topic)) {
                (true, _) => "",
                (false, true) => "internal topic",
                (false, false) => "topic",
            };
            model.add_lane(format!("p:{tp}"), Kind::Partition, title, sub.into());
        }
        let mut groups: Vec<String> = groups.into_iter().collect();
        groups.sort_by_key(|g| natural(g));
        model.headings.push((model.lanes.len(), "consumer groups"));
        for g in &groups {
            model.add_lane(format!("g:{g}"), Kind::Group, g.clone(), "group".into());
        }
        model
            .headings
            .push((model.lanes.len(), "broker and network"));
        model.add_lane(
            "b:broker".into(),
            Kind::Broker,
            "broker".into(),
            "rejections · producers".into(),
        );
        model.add_lane(
            "b:network".into(),
            Kind::Broker,
            "network".into(),
            "faults".into(),
        );

        model.place_all(records, end_time);
        model
    }

    fn add_lane(&mut self, key: String, kind: Kind, title: String, sub: String) -> usize {
        let n = self.lanes.len();
        self.lanes.push(Lane {
            kind,
            title,
            sub,
            items: Vec::new(),
            spans: Vec::new(),
        });
        self.key.insert(key, n);
        n
    }

    fn lane(&self, key: &str) -> usize {
        match self.key.get(key) {
            Some(n) => *n,
            None => self.key["b:broker"],
        }
    }

    fn client_lane(&self, client: &str) -> usize {
        self.lane(&format!("c:{client}"))
    }

    fn txn_lane(&self, transactional_id: &str) -> usize {
        match self.txn_client.get(transactional_id) {
            Some(c) => self.client_lane(c),
            None => self.lane("b:broker"),
        }
    }

    fn pid_lane(&self, pid: u64) -> usize {
        match self.pid_client.get(&pid) {
            Some(c) => self.client_lane(c),
            None => self.lane("b:broker"),
        }
    }

    /// Every item and span of the run, in trace order.
    fn place_all(&mut self, records: &[TraceRecord], end_time: Millis) {
        // Transactional appends waiting for their marker: (partition, producer) → items.
        let mut pending: BTreeMap<(TopicPartition, u64), Vec<(usize, usize)>> = BTreeMap::new();
        // Open downtime per instance, open transactions per transactional id.
        let mut down: BTreeMap<String, (Millis, u64)> = BTreeMap::new();
        let mut open_txn: BTreeMap<String, (usize, Millis, u64)> = BTreeMap::new();
        for r in records {
            let (lane, class, top, main): (usize, &str, String, String) = match &r.event {
                Event::Append {
                    tp,
                    offset,
                    key,
                    value,
                    producer_id,
                    transactional,
                    ..
                } => {
                    let lane = self.lane(&format!("p:{tp}"));
                    if let (true, Some(pid)) = (*transactional, producer_id) {
                        pending
                            .entry((tp.clone(), *pid))
                            .or_default()
                            .push((lane, self.lanes[lane].items.len()));
                    }
                    let (class, top) = if *transactional {
                        ("ap tx", format!("append @{offset} · txn"))
                    } else {
                        ("ap", format!("append @{offset}"))
                    };
                    (lane, class, top, describe(key.as_deref(), value.as_deref()))
                }
                Event::DuplicateBatch {
                    tp,
                    base_sequence,
                    base_offset,
                    ..
                } => (
                    self.lane(&format!("p:{tp}")),
                    "dup",
                    "retried batch, deduplicated".into(),
                    format!("seq {base_sequence} = @{base_offset}"),
                ),
                Event::Marker {
                    tp,
                    offset,
                    producer_id,
                    control,
                } => {
                    let commit = *control == ControlType::Commit;
                    for (lane, item) in pending
                        .remove(&(tp.clone(), *producer_id))
                        .unwrap_or_default()
                    {
                        let it = &mut self.lanes[lane].items[item];
                        it.class.push_str(if commit { " cm" } else { " ab" });
                        it.top.push_str(if commit {
                            " · committed"
                        } else {
                            " · aborted"
                        });
                    }
                    (
                        self.lane(&format!("p:{tp}")),
                        if commit { "mk cm" } else { "mk ab" },
                        format!("marker @{offset}"),
                        if commit {
                            "COMMIT".into()
                        } else {
                            "ABORT".into()
                        },
                    )
                }
                Event::Compacted { tp, removed, below } => (
                    self.lane(&format!("p:{tp}")),
                    "cp",
                    "log cleaner".into(),
                    format!("{removed} removed below @{below}"),
                ),
                Event::Rejected {
                    request,
                    error,
                    detail,
                } => (
                    self.lane("b:broker"),
                    "rj",
                    format!("rejected {request}"),
                    if detail.is_empty() {
                        format!("{error:?}")
                    } else {
                        format!("{error:?}: {detail}")
                    },
                ),
                Event::ProducerInit {
                    transactional_id,
                    producer_id,
                    epoch,
                } => (
                    match transactional_id {
                        Some(t) => self.txn_lane(t),
                        None => self.pid_lane(*producer_id),
                    },
                    "pi",
                    "init producer".into(),
                    format!("pid {producer_id} epoch {epoch}"),
                ),
                Event::Fenced {
                    transactional_id,
                    producer_id,
                    fenced_epoch,
                } => (
                    self.txn_lane(transactional_id),
                    "fe",
                    format!("fenced {transactional_id}"),
                    format!("epoch {fenced_epoch} (pid {producer_id})"),
                ),
                Event::TxnBegin {
                    transactional_id,
                    producer_id,
                    epoch,
                } => {
                    let lane = self.txn_lane(transactional_id);
                    if let Some((l, from, seq)) = open_txn.remove(transactional_id) {
                        self.span(l, from, r.time, "txs", String::new(), seq);
                    }
                    open_txn.insert(transactional_id.clone(), (lane, r.time, r.seq));
                    (
                        lane,
                        "tb",
                        "txn begin".into(),
                        format!("pid {producer_id} epoch {epoch}"),
                    )
                }
                Event::TxnOffsets {
                    transactional_id,
                    group,
                    generation,
                    offsets: o,
                } => (
                    self.txn_lane(transactional_id),
                    "to",
                    format!("txn offsets {group} g{generation}"),
                    offsets(o),
                ),
                Event::TxnCommit {
                    transactional_id,
                    producer_id,
                    epoch,
                } => {
                    let lane = self.txn_lane(transactional_id);
                    if let Some((l, from, seq)) = open_txn.remove(transactional_id) {
                        self.span(l, from, r.time, "txs cm", String::new(), seq);
                    }
                    (
                        lane,
                        "tc",
                        "txn commit".into(),
                        format!("pid {producer_id} epoch {epoch}"),
                    )
                }
                Event::TxnAbort {
                    transactional_id,
                    reason,
                    ..
                } => {
                    let lane = self.txn_lane(transactional_id);
                    if let Some((l, from, seq)) = open_txn.remove(transactional_id) {
                        self.span(l, from, r.time, "txs ab", String::new(), seq);
                    }
                    (lane, "ta", "txn abort".into(), reason.clone())
                }
                Event::Fetch {
                    client,
                    tp,
                    from,
                    count,
                    next,
                    ..
                } => (
                    self.lane(&format!("n:{client}")),
                    "nw",
                    format!("fetch {tp}"),
                    format!("{from}→{next} ({count})"),
                ),
                Event::Rebalance {
                    group,
                    generation,
                    assignment,
                } => (
                    self.lane(&format!("g:{group}")),
                    "rb",
                    "rebalance".into(),
                    format!("generation {generation}, {} members", assignment.len()),
                ),
                Event::MemberJoined { group, member_id } => (
                    self.lane(&format!("g:{group}")),
                    "mj",
                    "member joined".into(),
                    instance_of(member_id).to_string(),
                ),
                Event::MemberLeft {
                    group,
                    member_id,
                    reason,
                } => (
                    self.lane(&format!("g:{group}")),
                    "ml",
                    format!("member left: {reason}"),
                    instance_of(member_id).to_string(),
                ),
                Event::OffsetCommit {
                    group,
                    generation,
                    offsets: o,
                    transactional,
                } => (
                    self.lane(&format!("g:{group}")),
                    if *transactional { "oc tx" } else { "oc" },
                    format!(
                        "offset commit g{generation}{}",
                        if *transactional { " · txn" } else { "" }
                    ),
                    offsets(o),
                ),
                Event::Deliver { from, to, what, .. } => {
                    let (client, top) = if from == "broker" {
                        (to, "response from broker")
                    } else {
                        (from, "request to broker")
                    };
                    (
                        self.lane(&format!("n:{client}")),
                        "nw",
                        top.to_string(),
                        what.clone(),
                    )
                }
                Event::Drop { what, .. } => (
                    self.lane("b:network"),
                    "nf",
                    "message lost".into(),
                    what.clone(),
                ),
                Event::Duplicate { what, .. } => (
                    self.lane("b:network"),
                    "nf",
                    "message duplicated".into(),
                    what.clone(),
                ),
                Event::Delay { until, what, .. } => (
                    self.lane("b:network"),
                    "nf",
                    format!("delayed until {until} ms"),
                    what.clone(),
                ),
                Event::Crash { instance } => {
                    down.insert(instance.clone(), (r.time, r.seq));
                    (
                        self.lane(&format!("i:{instance}")),
                        "cr",
                        "fault".into(),
                        "CRASH".into(),
                    )
                }
                Event::Restart { instance } => {
                    if let Some((from, seq)) = down.remove(instance) {
                        self.instance_span(instance, from, r.time, "down", seq);
                    }
                    (
                        self.lane(&format!("i:{instance}")),
                        "rs",
                        "restart".into(),
                        "RESTART".into(),
                    )
                }
                Event::Pause { instance, until } => {
                    self.instance_span(instance, r.time, *until, "paused", r.seq);
                    (
                        self.lane(&format!("i:{instance}")),
                        "pa",
                        format!("fault · until {until} ms"),
                        "PAUSE".into(),
                    )
                }
                Event::Resume { instance } => (
                    self.lane(&format!("i:{instance}")),
                    "rs",
                    "resume".into(),
                    "RESUME".into(),
                ),
                Event::Timeout { client, what } => (
                    self.lane(&format!("n:{client}")),
                    "tm",
                    "timer".into(),
                    what.clone(),
                ),
                Event::Assigned {
                    client,
                    generation,
                    tasks,
                } => (
                    self.client_lane(client),
                    "as",
                    format!("assigned g{generation}"),
                    if tasks.is_empty() {
                        "no tasks".into()
                    } else {
                        tasks
                            .iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                ),
                Event::Restored {
                    client,
                    store,
                    records,
                    upto,
                    ..
                } => (
                    self.client_lane(client),
                    "rt",
                    format!("restored {store}"),
                    format!("{records} records, to @{upto}"),
                ),
                Event::Process {
                    client,
                    tp,
                    offset,
                    key,
                    value,
                } => (
                    self.client_lane(client),
                    "pr",
                    format!("process {tp}@{offset}"),
                    describe(key.as_deref(), value.as_deref()),
                ),
                Event::StorePut {
                    client,
                    store,
                    key,
                    value,
                } => (
                    self.client_lane(client),
                    "sp",
                    format!("put {store}"),
                    describe(Some(key), value.as_deref()),
                ),
                Event::StoreGet {
                    client,
                    store,
                    key,
                    value,
                } => (
                    self.client_lane(client),
                    "sg",
                    format!("get {store}"),
                    describe(Some(key), value.as_deref()),
                ),
                Event::Punctuate {
                    client,
                    task,
                    at: time,
                } => (
                    self.lane(&format!("n:{client}")),
                    "pu",
                    "punctuate".into(),
                    format!("{task} at {time} ms"),
                ),
                Event::Acked {
                    client,
                    tp,
                    base_offset,
                    ..
                } => (
                    self.client_lane(client),
                    "ak",
                    "produce acked".into(),
                    format!("{tp}@{base_offset}"),
                ),
                Event::ClientError { client, what } => {
                    (self.client_lane(client), "ce", "error".into(), what.clone())
                }
                Event::Note { client, text } => {
                    (self.client_lane(client), "nt", "note".into(), text.clone())
                }
            };
            let cited = self.cites.get(&r.seq).cloned().unwrap_or_default();
            let mut class = class.to_string();
            let mut lane = lane;
            if !cited.is_empty() {
                class.push_str(" ev");
                // Cited network events are shown on their client's lane.
                if self.lanes[lane].kind == Kind::Net {
                    let key = self
                        .key
                        .iter()
                        .find(|(_, n)| **n == lane)
                        .map(|(k, _)| k.clone());
                    if let Some(c) = key.and_then(|k| k.strip_prefix("n:").map(str::to_string)) {
                        lane = self.client_lane(&c);
                    }
                }
            }
            // A domain event's type is drawn apart (smaller) from what it is about.
            let kind = match &r.event {
                Event::Append { value, .. } | Event::Process { value, .. } => {
                    domain_type(value.as_deref())
                }
                _ => None,
            }
            .filter(|k| main.starts_with(k.as_str()));
            let main = match &kind {
                Some(k) => main[k.len()..].trim_start().to_string(),
                None => main,
            };
            self.lanes[lane].items.push(Item {
                seq: r.seq,
                time: r.time,
                class,
                top: clip(&top, 80),
                kind: kind.map(|k| clip(&k, 40)).unwrap_or_default(),
                main: clip(&main, 80),
                cited,
                x: 0,
            });
        }
        for (inst, (from, seq)) in down {
            self.instance_span(&inst, from, end_time, "down", seq);
        }
        for (_, (lane, from, seq)) in open_txn {
            self.span(lane, from, end_time, "txs op", String::new(), seq);
        }
        for items in pending.into_values() {
            for (lane, item) in items {
                let it = &mut self.lanes[lane].items[item];
                it.class.push_str(" op");
                it.top.push_str(" · open");
            }
        }
    }

    fn span(
        &mut self,
        lane: usize,
        from: Millis,
        to: Millis,
        class: &'static str,
        label: String,
        seq: u64,
    ) {
        self.lanes[lane].spans.push(Span {
            from,
            to,
            class,
            label,
            seq,
        });
    }

    fn instance_span(
        &mut self,
        instance: &str,
        from: Millis,
        to: Millis,
        class: &'static str,
        seq: u64,
    ) {
        let label = format!("{class} {from}–{to} ms");
        let head = self.lane(&format!("i:{instance}"));
        self.span(head, from, to, class, label, seq);
        for lane in self
            .instance_lanes
            .get(instance)
            .cloned()
            .unwrap_or_default()
        {
            self.span(lane, from, to, class, String::new(), seq);
        }
    }

    /// Columns for every millisecond with a labelled event, compressed gaps between them.
    fn layout(&mut self) {
        let mut per_time: BTreeMap<Millis, u64> = BTreeMap::new();
        let mut end = self.end;
        for lane in &self.lanes {
            if lane.kind == Kind::Net {
                continue;
            }
            let mut t = None;
            let mut n = 0;
            for it in &lane.items {
                if t != Some(it.time) {
                    t = Some(it.time);
                    n = 0;
                }
                n += 1;
                let w = per_time.entry(it.time).or_insert(0);
                *w = (*w).max(n);
            }
            for s in &lane.spans {
                end = end.max(s.to);
            }
        }
        let gap = |d: Millis| -> u64 {
            if d == 0 {
                0
            } else {
                10 + (16.0 * (d as f64).log2()).round() as u64
            }
        };
        let (mut prev_t, mut prev_end) = (0, 0);
        for (t, n) in per_time {
            let x = prev_end + gap(t - prev_t).max(if self.cols.is_empty() { 8 } else { 0 });
            let w = n * SLOT;
            self.cols.push(Col { t, x, w });
            prev_t = t;
            prev_end = x + w;
        }
        self.end = end.max(prev_t);
        self.end_x = prev_end + gap(self.end - prev_t);
        self.width = self.end_x + 40;

        for l in 0..self.lanes.len() {
            let net = self.lanes[l].kind == Kind::Net;
            let mut t = None;
            let mut n = 0;
            for i in 0..self.lanes[l].items.len() {
                let time = self.lanes[l].items[i].time;
                if t != Some(time) {
                    t = Some(time);
                    n = 0;
                }
                let x = if net {
                    let room = self.col(time).map_or(SLOT, |c| c.w.max(SLOT)) - TICK;
                    self.x_of(time) + (n * TICK).min(room)
                } else {
                    self.x_of(time) + n * SLOT
                };
                self.lanes[l].items[i].x = x;
                n += 1;
            }
        }
    }

    fn col(&self, t: Millis) -> Option<&Col> {
        self.cols
            .binary_search_by_key(&t, |c| c.t)
            .ok()
            .map(|i| &self.cols[i])
    }

    /// Where time `t` is, in px at zoom 1.
    fn x_of(&self, t: Millis) -> u64 {
        match self.cols.binary_search_by_key(&t, |c| c.t) {
            Ok(i) => self.cols[i].x,
            Err(i) => {
                let (t0, x0) = if i == 0 {
                    (0, 0)
                } else {
                    (self.cols[i - 1].t, self.cols[i - 1].x + self.cols[i - 1].w)
                };
                let (t1, x1) = match self.cols.get(i) {
                    Some(c) => (c.t, c.x),
                    None => (self.end, self.end_x),
                };
                if t >= t1 || t1 <= t0 {
                    return x1.max(x0);
                }
                x0 + ((x1 - x0) as f64 * (t - t0) as f64 / (t1 - t0) as f64).round() as u64
            }
        }
    }

    /// The event a reader of violation `n` should look at first: the last event it
    /// cites at or before the time the checker saw the invariant broken (else its first).
    fn anchor(&self, n: usize, time: Millis) -> Option<&Item> {
        let cited = || {
            self.lanes
                .iter()
                .flat_map(|l| l.items.iter())
                .filter(|it| it.cited.contains(&n))
        };
        cited()
            .filter(|it| it.time <= time)
            .max_by_key(|it| (it.time, it.seq))
            .or_else(|| cited().min_by_key(|it| (it.time, it.seq)))
    }

    fn render(&self, out: &mut String, violations: &[Cited], healed_at: Millis) {
        let _ = write!(
            out,
            "<main id=\"sc\"><div id=\"tl\" style=\"--z:1;--W:{}\" data-w=\"{}\">",
            self.width, self.width
        );
        // Axis: each column's time, each long gap's length.
        out.push_str("<div class=\"row axis\"><div class=\"lbl\">simulated time (ms)</div><div class=\"trk\">");
        let mut prev: Option<&Col> = None;
        for c in &self.cols {
            let (pt, pend) = prev.map_or((0, 0), |p| (p.t, p.x + p.w));
            if c.x - pend >= 60 && c.t > pt {
                let _ = write!(
                    out,
                    "<div class=\"gp\" style=\"--x:{pend};--w:{}\">+{} ms</div>",
                    c.x - pend,
                    c.t - pt
                );
            }
            let _ = write!(out, "<div class=\"tk\" style=\"--x:{}\">{}</div>", c.x, c.t);
            prev = Some(c);
        }
        let _ = write!(
            out,
            "<div class=\"tk end\" style=\"--x:{}\">end {}</div>",
            self.end_x, self.end
        );
        let faulty = self.lanes.iter().any(|l| {
            l.kind == Kind::Instance && !l.spans.is_empty()
                || l.title == "network" && !l.items.is_empty()
        });
        let heal = (faulty && healed_at > 0).then(|| self.x_of(healed_at));
        if let Some(x) = heal {
            let _ = write!(
                out,
                "<div class=\"heal\" style=\"--x:{x}\" title=\"faults stopped and every instance was back by {healed_at} ms\">healed {healed_at}</div>"
            );
        }
        out.push_str("</div></div>");
        if let Some(x) = heal {
            let _ = write!(out, "<div class=\"healline\" style=\"--x:{x}\"></div>");
        }

        // Callouts: the checker's words above the events they cite.
        // The first violation of each invariant, packed into as few rows as fit.
        let mut seen = BTreeSet::new();
        // Per row, the intervals taken (at zoom 1).
        let mut rows: Vec<Vec<(u64, u64)>> = Vec::new();
        let mut shown = Vec::new();
        for (n, v) in violations.iter().enumerate() {
            if !seen.insert(v.invariant.as_str()) {
                continue;
            }
            // A callout ends over its anchor event, so the story leading to it shows; when
            // that place is taken, it moves left (at most two widths) or down a row.
            let anchor = self.anchor(n, v.time);
            let want = (anchor.map_or_else(|| self.x_of(v.time), |it| it.x) + SLOT).max(CALLOUT_W);
            let fits = |row: &[(u64, u64)], end: u64| {
                end >= CALLOUT_W
                    && row
                        .iter()
                        .all(|(a, b)| end + 8 <= *a || end - CALLOUT_W >= *b + 8)
            };
            let place = |row: &[(u64, u64)]| {
                std::iter::once(want)
                    .chain(row.iter().map(|(a, _)| a.saturating_sub(8)))
                    .filter(|end| *end <= want && want - *end <= 2 * CALLOUT_W && fits(row, *end))
                    .max()
            };
            let spot = rows
                .iter()
                .enumerate()
                .find_map(|(r, row)| place(row).map(|end| (r, end)));
            let (row, end) = match spot {
                Some(spot) => spot,
                None if rows.len() < MAX_CALLOUT_ROWS => {
                    rows.push(Vec::new());
                    (rows.len() - 1, want)
                }
                None => continue,
            };
            rows[row].push((end - CALLOUT_W, end));
            shown.push((n, v, anchor.map(|it| it.seq), end, row));
        }
        if !shown.is_empty() {
            let _ = write!(
                out,
                "<div class=\"row calls\" style=\"height:{}px\"><div class=\"lbl\"><span class=\"t\">violations</span>\
                 <span class=\"u\">checker</span></div><div class=\"trk\">",
                rows.len() * CALLOUT_H + 6
            );
            for (n, v, first, end, row) in shown {
                let _ = write!(
                    out,
                    "<div class=\"call\" style=\"--x:{end};top:{}px\"{} title=\"{}\"><span class=\"bd\">{}</span>\
                     <b>{}</b> <span class=\"at\">at {} ms</span> <span class=\"ex\">{}</span></div>",
                    row * CALLOUT_H + 4,
                    first.map_or(String::new(), |s| format!(" data-jump=\"{s}\"")),
                    esc(&v.explanation),
                    n + 1,
                    esc(&v.invariant),
                    v.time,
                    esc(&v.explanation)
                );
            }
            out.push_str("</div></div>");
        }

        let shown = |lane: &Lane| {
            !(lane.items.is_empty()
                && lane.spans.is_empty()
                && matches!(lane.kind, Kind::Net | Kind::Broker))
        };
        for (n, lane) in self.lanes.iter().enumerate() {
            for (h, (at, title)) in self.headings.iter().enumerate() {
                // A heading over the lanes up to the next one, unless none of them shows.
                let upto = self
                    .headings
                    .get(h + 1)
                    .map_or(self.lanes.len(), |next| next.0);
                if *at == n && self.lanes[*at..upto].iter().any(shown) {
                    let _ = write!(
                        out,
                        "<div class=\"gh\"><div class=\"lbl\">{title}</div></div>"
                    );
                }
            }
            if !shown(lane) {
                continue;
            }
            let kind = match lane.kind {
                Kind::Instance => "inst",
                Kind::Client => "cli",
                Kind::Net => "net",
                Kind::Partition => "part",
                Kind::Group => "grp",
                Kind::Broker => "brk",
            };
            let _ = write!(
                out,
                "<div class=\"row {kind}\"><div class=\"lbl{}\" title=\"{}\"><span class=\"t\">{}</span><span class=\"u\">{}</span></div><div class=\"trk\">",
                if lane.title.chars().count() > 26 { " long" } else { "" },
                esc(&lane.title),
                esc(&lane.title),
                esc(&lane.sub)
            );
            for s in &lane.spans {
                let x = self.x_of(s.from);
                let w = self.x_of(s.to).saturating_sub(x).max(4);
                let _ = write!(
                    out,
                    "<div class=\"s {}\" style=\"--x:{x};--w:{w}\" data-s=\"{}\">{}</div>",
                    s.class,
                    s.seq,
                    esc(&s.label)
                );
            }
            for it in &lane.items {
                let _ = write!(
                    out,
                    "<div class=\"i {}\" style=\"--x:{}\" data-s=\"{}\"",
                    it.class, it.x, it.seq
                );
                if !it.cited.is_empty() {
                    let list: Vec<String> = it.cited.iter().map(|c| c.to_string()).collect();
                    let _ = write!(out, " data-v=\"{}\"", list.join(" "));
                }
                if lane.kind == Kind::Net && it.cited.is_empty() {
                    // Ticks: no room for text, the details pane shows it.
                    out.push_str("></div>");
                    continue;
                }
                out.push('>');
                if let Some(c) = it.cited.first() {
                    // One badge: the first violation citing it (the details pane lists all).
                    let more = if it.cited.len() > 1 { "+" } else { "" };
                    let _ = write!(out, "<span class=\"bd\">{}{more}</span>", c + 1);
                }
                let _ = write!(out, "<i>{}</i>", esc(&it.top));
                if !it.kind.is_empty() {
                    let _ = write!(out, "<u>{}</u> ", esc(&it.kind));
                }
                let _ = write!(out, "{}</div>", esc(&it.main));
            }
            out.push_str("</div></div>");
        }

        // Columns of cited events, through every lane.
        for lane in &self.lanes {
            for it in lane.items.iter().filter(|it| !it.cited.is_empty()) {
                let _ = write!(out, "<div class=\"evl\" style=\"--x:{}\"></div>", it.x);
            }
        }
        out.push_str("</div></main>\n");
    }
}
