//! Loading scenario files: TOML text in, a checked [`Scenario`] out — or one
//! [`LoadError`] that points at the line and column of the mistake, says what is wrong
//! and, where it can, what would be right.
//!
//! The loader never panics, whatever the input (`tests/load_fuzz.rs`). It works in two
//! passes:
//!
//! 1. The TOML is parsed into a tree that keeps the byte span of every key and value
//!    (through `serde_spanned`'s protocol, which the `toml` crate honours), so syntax
//!    errors come with toml's own position.
//! 2. The tree is walked against the scenario format, key by key: unknown keys (with the
//!    nearest valid key), wrong types, numbers out of range, references to unknown
//!    products, orders, instances, designs or invariants, duplicate ids, empty or
//!    reversed ranges. The first problem in the file (by position) is returned.
//!
//! The format, key by key, is documented on [`Scenario`] and its parts. Limits that the
//! types alone do not say: times and durations are at most [`MAX_MS`] ms, stock and
//! quantities at most [`MAX_UNITS`], `topology.partitions` at most [`MAX_PARTITIONS`],
//! `topology.instances` at most [`MAX_INSTANCES`]; fault rates are per mille (0..=1000);
//! random fault rates need `faults.phase_ms > 0`; `streams.heartbeat_interval_ms` must
//! stay below `streams.session_timeout_ms` (as Kafka's consumer requires); nothing may
//! happen after `run.max_time_ms`. `[expect]` takes `design = "holds"` or
//! `design = { violates = ["invariant", ...] }`. A missing `name` defaults to the file
//! name without `.toml`.

use crate::designs;
use crate::scenario::{
    Expectation, Order, Payments, Product, Restock, RunSpec, SagaSpec, Scenario, SeedRange,
    StreamsSpec, TopologySpec,
};
use oversell_sim::{FaultRates, Millis, ScheduledFault};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Largest time or duration accepted, in simulated ms (about 11.5 days).
pub const MAX_MS: u64 = 1_000_000_000;
/// Largest stock or quantity accepted.
pub const MAX_UNITS: u64 = 1_000_000_000;
/// Largest `topology.partitions` accepted.
pub const MAX_PARTITIONS: u64 = 1024;
/// Largest `topology.instances` accepted.
pub const MAX_INSTANCES: u64 = 256;
/// Largest `count` of a `drop_produce_ack` fault.
pub const MAX_DROP_COUNT: u64 = 1_000_000;

/// A scenario file that cannot be used: where, what is wrong, and what would be right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file (or the origin given to [`load_str`]).
    pub file: String,
    /// 1-based line of the offending key or value; 0 when the error has no position
    /// (the file could not be read).
    pub line: usize,
    /// 1-based column, in characters; 0 when the error has no position.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What would be right, when the loader can tell.
    pub help: Option<String>,
    /// The text of the offending line (empty when the error has no position).
    pub source_line: String,
    /// How many characters of the offending line to underline (at least 1).
    pub width: usize,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.column, self.message
            )?;
            let (shown, caret_at) = window(&self.source_line, self.column.saturating_sub(1));
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            // Keep tabs under tabs so that the caret lines up.
            let lead: String = shown
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let room = shown.chars().count().saturating_sub(caret_at).max(1);
            let carets = "^".repeat(self.width.clamp(1, room));
            write!(
                f,
                "\n {pad} |\n {number} | {shown}\n {pad} | {lead}{carets}"
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// A long line cut to a window around the column: the text shown and the caret position.
fn window(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().filter(|c| *c != '\r').collect();
    const MAX: usize = 160;
    if chars.len() <= MAX {
        let caret = col.min(chars.len());
        return (chars.into_iter().collect(), caret);
    }
    let start = col.saturating_sub(60).min(chars.len());
    let end = (start + MAX).min(chars.len());
    let mut shown = String::new();
    let mut caret = col - start.min(col);
    if start > 0 {
        shown.push('…');
        caret += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret)
}

/// Load one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| LoadError::unplaced(&file, format!("cannot read the file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        // Positions in the lossy copy: every valid byte before the bad one is unchanged.
        problem(
            offset..offset + 1,
            "the file is not UTF-8 text".to_string(),
            Some("save it as UTF-8".into()),
        )
        .place(&file, &text)
    })?;
    load_str(&text, &file)
}

/// Load a scenario from text; `origin` names it in errors (a path, or e.g. `<stdin>`).
pub fn load_str(text: &str, origin: &str) -> Result<Scenario, LoadError> {
    let root = parse(text).map_err(|p| p.place(origin, text))?;
    let default_name = Path::new(origin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "scenario".to_string());
    let mut w = Walker {
        problems: Vec::new(),
        text,
    };
    let scenario = w.scenario(&root, &default_name);
    match w.first() {
        Some(p) => Err(p.place(origin, text)),
        None => scenario.ok_or_else(|| {
            // Every path that yields no scenario records a problem; this is a backstop.
            problem(0..0, "the scenario could not be read".into(), None).place(origin, text)
        }),
    }
}

/// Load every `*.toml` file directly in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Scenario)>, LoadError> {
    let name = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LoadError::unplaced(&name, format!("cannot read the directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| LoadError::unplaced(&name, format!("cannot read the directory: {e}")))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| load_file(&path).map(|s| (path, s)))
        .collect()
}

impl LoadError {
    fn unplaced(file: &str, message: String) -> LoadError {
        LoadError {
            file: file.to_string(),
            line: 0,
            column: 0,
            message,
            help: None,
            source_line: String::new(),
            width: 1,
        }
    }
}

// ----- problems and positions -----

type Span = Range<usize>;

/// A problem found at a byte span of the text.
#[derive(Clone, Debug)]
struct Problem {
    span: Span,
    message: String,
    help: Option<String>,
    /// Shown only when there is no other problem (a consequence of another one).
    weak: bool,
}

fn problem(span: Span, message: String, help: Option<String>) -> Problem {
    Problem {
        span,
        message,
        help,
        weak: false,
    }
}

impl Problem {
    fn place(self, file: &str, text: &str) -> LoadError {
        let mut start = floor_boundary(text, self.span.start);
        // An error at the very end, after the final newline, points at the last line.
        if start == text.len() && text.ends_with('\n') {
            start = floor_boundary(text, start - 1);
            if start > 0 && text[..start].ends_with('\r') {
                start -= 1;
            }
        }
        let end = floor_boundary(text, self.span.end.max(start));
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..start].chars().count() + 1;
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source_line = text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let width = text[start..end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        LoadError {
            file: file.to_string(),
            line,
            column,
            message: self.message,
            help: self.help,
            source_line,
            width,
        }
    }
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

// ----- pass 1: TOML to a tree with spans -----

/// A value with the span of its text.
#[derive(Clone, Debug)]
struct Val {
    span: Span,
    node: Node,
}

#[derive(Clone, Debug)]
enum Node {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Val>),
    Table(Vec<Item>),
}

/// A key and its value.
#[derive(Clone, Debug)]
struct Item {
    key: String,
    key_span: Span,
    val: Val,
}

/// What the deserializer hands over before spans are filled in: toml gives no span for
/// implicit tables (`[a.b]` makes `a`) and for some keys.
struct RawVal {
    span: Option<Span>,
    node: RawNode,
}

enum RawNode {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<RawVal>),
    Table(Vec<(RawKey, RawVal)>),
}

struct RawKey {
    name: String,
    span: Option<Span>,
}

const DATETIME_FIELD: &str = "$__toml_private_datetime";
static SPANNED_FIELDS: [&str; 3] = [
    serde_spanned::__unstable::START_FIELD,
    serde_spanned::__unstable::END_FIELD,
    serde_spanned::__unstable::VALUE_FIELD,
];

impl<'de> de::Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(serde_spanned::__unstable::NAME, &SPANNED_FIELDS, KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = RawKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKey, E> {
        Ok(RawKey {
            name: v.to_string(),
            span: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKey, A::Error> {
        let (start, end, name) = read_spanned(&mut map, |m| m.next_value::<String>())?;
        Ok(RawKey {
            name,
            span: Some(start..end),
        })
    }
}

/// Reads serde_spanned's protocol: start, end, then the value.
fn read_spanned<'de, A: MapAccess<'de>, T>(
    map: &mut A,
    value: impl FnOnce(&mut A) -> Result<T, A::Error>,
) -> Result<(usize, usize, T), A::Error> {
    let expect = |map: &mut A, field: &str| -> Result<(), A::Error> {
        match map.next_key::<String>()? {
            Some(k) if k == field => Ok(()),
            _ => Err(de::Error::custom("malformed spanned value")),
        }
    };
    expect(map, serde_spanned::__unstable::START_FIELD)?;
    let start = map.next_value::<usize>()?;
    expect(map, serde_spanned::__unstable::END_FIELD)?;
    let end = map.next_value::<usize>()?;
    expect(map, serde_spanned::__unstable::VALUE_FIELD)?;
    let v = value(map)?;
    Ok((start, end, v))
}

impl<'de> de::Deserialize<'de> for RawVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(serde_spanned::__unstable::NAME, &SPANNED_FIELDS, ValVisitor)
    }
}

/// The value inside a spanned wrapper: asked for with `deserialize_any`, since asking
/// for a spanned struct again would wrap it again.
struct Inner;

impl<'de> DeserializeSeed<'de> for Inner {
    type Value = RawVal;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawVal, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

fn raw(node: RawNode) -> RawVal {
    RawVal { span: None, node }
}

impl<'de> Visitor<'de> for ValVisitor {
    type Value = RawVal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawVal, E> {
        Ok(raw(RawNode::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawVal, E> {
        Ok(raw(RawNode::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawVal, E> {
        match i64::try_from(v) {
            Ok(v) => Ok(raw(RawNode::Int(v))),
            Err(_) => Err(de::Error::custom("integer out of range")),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawVal, E> {
        Ok(raw(RawNode::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawVal, E> {
        Ok(raw(RawNode::Str(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RawVal, E> {
        Ok(raw(RawNode::Str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawVal, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<RawVal>()? {
            items.push(v);
        }
        Ok(raw(RawNode::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawVal, A::Error> {
        let Some(first) = map.next_key::<RawKey>()? else {
            return Ok(raw(RawNode::Table(Vec::new())));
        };
        if first.name == serde_spanned::__unstable::START_FIELD && first.span.is_none() {
            let start = map.next_value::<usize>()?;
            let end_key = map.next_key::<String>()?;
            if end_key.as_deref() != Some(serde_spanned::__unstable::END_FIELD) {
                return Err(de::Error::custom("malformed spanned value"));
            }
            let end = map.next_value::<usize>()?;
            let value_key = map.next_key::<String>()?;
            if value_key.as_deref() != Some(serde_spanned::__unstable::VALUE_FIELD) {
                return Err(de::Error::custom("malformed spanned value"));
            }
            let mut v = map.next_value_seed(Inner)?;
            v.span = Some(start..end);
            return Ok(v);
        }
        if first.name == DATETIME_FIELD && first.span.is_none() {
            let text = map.next_value::<String>()?;
            return Ok(raw(RawNode::Datetime(text)));
        }
        let mut items = vec![(first, map.next_value::<RawVal>()?)];
        while let Some(k) = map.next_key::<RawKey>()? {
            let v = map.next_value::<RawVal>()?;
            items.push((k, v));
        }
        Ok(raw(RawNode::Table(items)))
    }
}

/// The document root, read as a table.
struct Root(RawVal);

impl<'de> de::Deserialize<'de> for Root {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor).map(Root)
    }
}

fn parse(text: &str) -> Result<Val, Problem> {
    match toml::from_str::<Root>(text) {
        Ok(Root(v)) => Ok(resolve(v, 0..text.len())),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut lines = e.message().lines().map(str::trim).filter(|l| !l.is_empty());
            let mut message = lines.next().unwrap_or("invalid TOML").to_string();
            for l in lines {
                message.push_str(": ");
                message.push_str(l);
            }
            // A key with `=` and nothing after it reads to toml as a bad string.
            let start = floor_boundary(text, span.start);
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            let (before, after) = (&text[line_start..start], &text[start..line_end]);
            if before.trim_end().ends_with('=') && after.trim().is_empty() {
                let key = before.trim_end().trim_end_matches('=').trim();
                return Err(problem(
                    span,
                    format!("{} has no value", quote(key)),
                    Some(format!(
                        "write a value after `=`, e.g. {key} = 1 or {key} = \"text\""
                    )),
                ));
            }
            let help = syntax_help(&message);
            Err(problem(span, format!("invalid TOML: {message}"), help))
        }
    }
}

fn syntax_help(message: &str) -> Option<String> {
    if message.contains("duplicate key") {
        Some(
            "a key may appear once per table; for a list, repeat a double-bracket header such as [[orders]]"
                .into(),
        )
    } else if message.contains("string") {
        Some("strings are written in double quotes on one line, e.g. id = \"product1\" (is a quote missing?)".into())
    } else if message.contains("key with no value") || message.contains("expected `=`") {
        Some("write each setting as key = value".into())
    } else {
        None
    }
}

/// Fill in missing spans from the nearest enclosing one.
fn resolve(v: RawVal, fallback: Span) -> Val {
    let span = v.span.unwrap_or(fallback);
    let node = match v.node {
        RawNode::Str(s) => Node::Str(s),
        RawNode::Int(i) => Node::Int(i),
        RawNode::Float(f) => Node::Float(f),
        RawNode::Bool(b) => Node::Bool(b),
        RawNode::Datetime(d) => Node::Datetime(d),
        RawNode::Array(items) => Node::Array(
            items
                .into_iter()
                .map(|x| resolve(x, span.clone()))
                .collect(),
        ),
        RawNode::Table(items) => Node::Table(
            items
                .into_iter()
                .map(|(k, v)| {
                    let key_span = k
                        .span
                        .or_else(|| v.span.clone())
                        .unwrap_or_else(|| span.clone());
                    let val = resolve(v, key_span.clone());
                    Item {
                        key: k.name,
                        key_span,
                        val,
                    }
                })
                .collect(),
        ),
    };
    Val { span, node }
}

// ----- pass 2: the scenario format -----

const TOP_KEYS: [&str; 12] = [
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
];
const PRODUCT_KEYS: [&str; 2] = ["id", "stock"];
const ORDER_KEYS: [&str; 5] = ["id", "product", "quantity", "user", "at"];
const RESTOCK_KEYS: [&str; 3] = ["product", "quantity", "at"];
const TOPOLOGY_KEYS: [&str; 3] = ["partitions", "instances", "order_producer_idempotent"];
const STREAMS_KEYS: [&str; 5] = [
    "commit_interval_ms",
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "transaction_timeout_ms",
    "request_timeout_ms",
];
const PAYMENTS_KEYS: [&str; 3] = ["fail", "delay_ms", "delays"];
const SAGA_KEYS: [&str; 2] = ["reservation_timeout_ms", "punctuate_every_ms"];
const FAULTS_KEYS: [&str; 10] = [
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
];
const RUN_KEYS: [&str; 3] = ["seeds", "max_time_ms", "decision_bound_ms"];
const FAULT_KINDS: [&str; 3] = ["crash", "pause", "drop_produce_ack"];
const EXPECT_KEYS: [&str; 1] = ["violates"];

/// Sections and the keys they take, to tell where a misplaced key belongs.
const SECTIONS: [(&str, &[&str]); 10] = [
    ("[[products]]", &PRODUCT_KEYS),
    ("[[orders]]", &ORDER_KEYS),
    ("[[restocks]]", &RESTOCK_KEYS),
    ("[topology]", &TOPOLOGY_KEYS),
    ("[streams]", &STREAMS_KEYS),
    ("[payments]", &PAYMENTS_KEYS),
    ("[saga]", &SAGA_KEYS),
    ("[faults]", &FAULTS_KEYS),
    ("[run]", &RUN_KEYS),
    (
        "[[faults.schedule]]",
        &[
            "kind",
            "at",
            "instance",
            "restart_after",
            "duration",
            "count",
        ],
    ),
];

/// The invariants `violates` may name.
pub fn invariant_names() -> Vec<&'static str> {
    crate::checker::Invariant::ALL
        .iter()
        .map(|i| i.name())
        .collect()
}

struct Walker<'t> {
    problems: Vec<Problem>,
    text: &'t str,
}

/// A table being read: its items and where it is.
struct Tbl<'a> {
    items: &'a [Item],
    span: Span,
    /// How messages name it, e.g. `[topology]` or `this order`.
    name: &'a str,
}

impl<'a> Tbl<'a> {
    fn get(&self, key: &str) -> Option<&'a Item> {
        self.items.iter().find(|i| i.key == key)
    }
}

impl Walker<'_> {
    /// ` on line N` for a span, to point back at a first definition.
    fn at_line(&self, span: &Span) -> String {
        let start = floor_boundary(self.text, span.start);
        format!(" on line {}", self.text[..start].matches('\n').count() + 1)
    }

    fn first(&mut self) -> Option<Problem> {
        self.problems
            .sort_by_key(|p| (p.weak, p.span.start, p.span.end));
        self.problems.first().cloned()
    }

    fn err(&mut self, span: &Span, message: String, help: Option<String>) {
        self.problems.push(problem(span.clone(), message, help));
    }

    /// Report keys not in `allowed`, suggesting the nearest valid one.
    fn check_keys(&mut self, t: &Tbl<'_>, allowed: &[&str]) {
        for item in t.items {
            if allowed.contains(&item.key.as_str()) {
                continue;
            }
            let help = match nearest(&item.key, allowed.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if t.name != "the scenario" && TOP_KEYS.contains(&item.key.as_str()) => format!(
                    "`{}` belongs at the top level, but in TOML every key after a {} header belongs \
                     to that table: move it above the first [header]{}",
                    item.key,
                    t.name,
                    if matches!(item.val.node, Node::Table(_)) {
                        ", or give it a header of its own"
                    } else {
                        ""
                    }
                ),
                None => {
                    let elsewhere: Vec<&str> = SECTIONS
                        .iter()
                        .filter(|(section, keys)| {
                            *section != t.name && keys.contains(&item.key.as_str())
                        })
                        .map(|(section, _)| *section)
                        .collect();
                    if let Some(section) = elsewhere.first() {
                        format!(
                            "`{}` belongs in {section}; valid keys in {} are: {}",
                            item.key,
                            t.name,
                            list(allowed.iter().copied())
                        )
                    } else {
                        format!(
                            "valid keys in {} are: {}",
                            t.name,
                            list(allowed.iter().copied())
                        )
                    }
                }
            };
            self.err(
                &item.key_span,
                format!("unknown key {} in {}", quote(&item.key), t.name),
                Some(help),
            );
        }
    }

    fn table<'a>(&mut self, item: &'a Item, name: &'a str, example: &str) -> Option<Tbl<'a>> {
        match &item.val.node {
            Node::Table(items) => Some(Tbl {
                items,
                span: item.val.span.clone(),
                name,
            }),
            other => {
                self.err(
                    &item.val.span,
                    format!("{} must be a table, found {}", item.key, describe(other)),
                    Some(format!("write it as a section: {example}")),
                );
                None
            }
        }
    }

    /// An array of tables, e.g. `[[orders]]`.
    fn tables<'a>(&mut self, item: &'a Item, one: &str, example: &str) -> Vec<(Span, &'a [Item])> {
        let Node::Array(values) = &item.val.node else {
            self.err(
                &item.val.span,
                format!(
                    "{} must be a list of tables, found {}",
                    item.key,
                    describe(&item.val.node)
                ),
                Some(format!(
                    "write each {one} under its own [[{}]] header: {example}",
                    item.key
                )),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for v in values {
            match &v.node {
                Node::Table(items) => out.push((v.span.clone(), items.as_slice())),
                other => self.err(
                    &v.span,
                    format!(
                        "each entry of {} must be a table, found {}",
                        item.key,
                        describe(other)
                    ),
                    Some(format!("write each {one} as a table: {example}")),
                ),
            }
        }
        out
    }

    fn string(&mut self, item: &Item, what: &str) -> Option<String> {
        match &item.val.node {
            Node::Str(s) => Some(s.clone()),
            Node::Int(i) => {
                self.err(
                    &item.val.span,
                    format!("{what} must be a string, found the number {i}"),
                    Some(format!("put it in double quotes: {} = \"{i}\"", item.key)),
                );
                None
            }
            other => {
                self.err(
                    &item.val.span,
                    format!("{what} must be a string, found {}", describe(other)),
                    Some(format!(
                        "write it in double quotes, e.g. {} = \"text\"",
                        item.key
                    )),
                );
                None
            }
        }
    }

    /// A non-empty string naming something (an id).
    fn id(&mut self, item: &Item, what: &str) -> Option<String> {
        let s = self.string(item, what)?;
        if s.trim().is_empty() {
            self.err(
                &item.val.span,
                format!("{what} must not be empty"),
                Some("give it a name, e.g. \"product1\"".into()),
            );
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, item: &Item, what: &str) -> Option<bool> {
        match &item.val.node {
            Node::Bool(b) => Some(*b),
            Node::Str(s) if s == "true" || s == "false" => {
                self.err(
                    &item.val.span,
                    format!("{what} must be true or false, found the string \"{s}\""),
                    Some(format!("drop the quotes: {} = {s}", item.key)),
                );
                None
            }
            other => {
                self.err(
                    &item.val.span,
                    format!("{what} must be true or false, found {}", describe(other)),
                    None,
                );
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    fn uint(&mut self, item: &Item, what: &str, min: u64, max: u64) -> Option<u64> {
        self.uint_val(&item.val, &item.key, what, min, max)
    }

    fn uint_val(&mut self, val: &Val, key: &str, what: &str, min: u64, max: u64) -> Option<u64> {
        match &val.node {
            Node::Int(i) => {
                let i = *i;
                if i < 0 || (i as u64) < min {
                    let help = if min == 0 {
                        None
                    } else if min == 1 && i <= 0 {
                        Some(format!("{what} of 0 has no meaning here; use at least 1"))
                    } else {
                        None
                    };
                    self.err(
                        &val.span,
                        format!("{what} must be {min} or more, found {i}"),
                        help,
                    );
                    None
                } else if i as u64 > max {
                    self.err(
                        &val.span,
                        format!("{what} must be at most {max}, found {i}"),
                        None,
                    );
                    None
                } else {
                    Some(i as u64)
                }
            }
            Node::Float(f) => {
                self.err(
                    &val.span,
                    format!("{what} must be a whole number, found {f}"),
                    Some(format!("write a whole number between {min} and {max}")),
                );
                None
            }
            Node::Str(s) => {
                let help = if s.trim().parse::<i64>().is_ok() {
                    Some(format!("drop the quotes: {key} = {}", s.trim()))
                } else {
                    Some(format!("write a whole number between {min} and {max}"))
                };
                self.err(
                    &val.span,
                    format!("{what} must be a number, found the string {}", quote_str(s)),
                    help,
                );
                None
            }
            other => {
                self.err(
                    &val.span,
                    format!("{what} must be a number, found {}", describe(other)),
                    None,
                );
                None
            }
        }
    }

    fn ms(&mut self, item: &Item, what: &str, min: u64) -> Option<Millis> {
        self.uint(item, what, min, MAX_MS)
    }

    /// A rate per mille.
    fn rate(&mut self, item: &Item, what: &str) -> Option<u32> {
        match &item.val.node {
            Node::Int(i) if *i > 1000 => {
                self.err(
                    &item.val.span,
                    format!("{what} is a chance per mille, so at most 1000 (always), found {i}"),
                    Some(format!(
                        "{i} per mille is more than certain; e.g. 5 means 0.5%"
                    )),
                );
                None
            }
            _ => self.uint(item, what, 0, 1000).map(|v| v as u32),
        }
    }

    /// A duration range written `[lo, hi]`, lo ≤ hi.
    fn range(&mut self, item: &Item, what: &str) -> Option<(Millis, Millis)> {
        let shape = || {
            Some(format!(
                "write it as [low, high] in ms, e.g. {} = [50, 400]",
                item.key
            ))
        };
        let Node::Array(values) = &item.val.node else {
            self.err(
                &item.val.span,
                format!(
                    "{what} must be a range [low, high], found {}",
                    describe(&item.val.node)
                ),
                shape(),
            );
            return None;
        };
        if values.len() != 2 {
            self.err(
                &item.val.span,
                format!(
                    "{what} must be a range of two numbers [low, high], found {} values",
                    values.len()
                ),
                shape(),
            );
            return None;
        }
        let lo = self.uint_val(
            &values[0],
            &item.key,
            &format!("the low end of {what}"),
            0,
            MAX_MS,
        );
        let hi = self.uint_val(
            &values[1],
            &item.key,
            &format!("the high end of {what}"),
            0,
            MAX_MS,
        );
        let (lo, hi) = (lo?, hi?);
        if lo > hi {
            self.err(
                &item.val.span,
                format!("{what} is [{lo}, {hi}]: the low end {lo} is above the high end {hi}"),
                Some(format!("write {} = [{hi}, {lo}]", item.key)),
            );
            return None;
        }
        Some((lo, hi))
    }

    // ----- sections -----

    fn scenario(&mut self, root: &Val, default_name: &str) -> Option<Scenario> {
        let Node::Table(items) = &root.node else {
            self.err(
                &root.span,
                "a scenario file must be a TOML table".into(),
                None,
            );
            return None;
        };
        let top = Tbl {
            items,
            span: root.span.clone(),
            name: "the scenario",
        };
        self.check_keys(&top, &TOP_KEYS);

        let name = match top.get("name") {
            Some(i) => self.string(i, "name"),
            None => Some(default_name.to_string()),
        };
        let description = match top.get("description") {
            Some(i) => self.string(i, "description"),
            None => Some(String::new()),
        };
        let products = match top.get("products") {
            Some(i) => self.products(i),
            None => {
                self.err(
                    &(0..0),
                    "the scenario has no products".into(),
                    Some(
                        "add at least one: [[products]] with id = \"product1\" and stock = 1"
                            .into(),
                    ),
                );
                None
            }
        };
        let product_ids: Option<Vec<String>> = products
            .as_ref()
            .map(|ps| ps.iter().map(|p| p.id.clone()).collect());
        let orders = match top.get("orders") {
            Some(i) => self.orders(i, product_ids.as_deref()),
            None => Some(Vec::new()),
        };
        let restocks = match top.get("restocks") {
            Some(i) => self.restocks(i, product_ids.as_deref()),
            None => Some(Vec::new()),
        };
        let topology = match top.get("topology") {
            Some(i) => self.topology(i),
            None => Some(TopologySpec::default()),
        };
        let streams = match top.get("streams") {
            Some(i) => self.streams(i),
            None => Some(StreamsSpec::default()),
        };
        let order_ids: Option<Vec<String>> = orders
            .as_ref()
            .map(|os| os.iter().map(|o| o.id.clone()).collect());
        let payments = match top.get("payments") {
            Some(i) => self.payments(i, order_ids.as_deref()),
            None => Some(Payments::default()),
        };
        let saga = match top.get("saga") {
            Some(i) => self.saga(i),
            None => Some(SagaSpec::default()),
        };
        let instances = topology.as_ref().map(|t| t.instances);
        let faults = match top.get("faults") {
            Some(i) => self.faults(i, instances),
            None => Some((Default::default(), Vec::new())),
        };
        let run = match top.get("run") {
            Some(i) => self.run(i),
            None => Some((RunSpec::default(), None)),
        };
        let expect = match top.get("expect") {
            Some(i) => self.expect(i),
            None => Some(BTreeMap::new()),
        };

        // Nothing may happen after the end of the run.
        if let Some((run, max_item)) = &run {
            let max = run.max_time_ms;
            let setting = if max_item.is_some() {
                "run.max_time_ms"
            } else {
                "the default run.max_time_ms"
            };
            let mut late: Vec<(Span, String)> = Vec::new();
            if let Some(i) = top.get("orders") {
                for (_, items) in quiet_tables(i) {
                    if let Some((s, at)) = at_of(items) {
                        if at >= max {
                            late.push((s, format!("this order arrives at {at} ms")));
                        }
                    }
                }
            }
            if let Some(i) = top.get("restocks") {
                for (_, items) in quiet_tables(i) {
                    if let Some((s, at)) = at_of(items) {
                        if at >= max {
                            late.push((s, format!("this restock arrives at {at} ms")));
                        }
                    }
                }
            }
            if let Some(f) = top.get("faults") {
                if let Node::Table(fi) = &f.val.node {
                    if let Some(sched) = fi.iter().find(|i| i.key == "schedule") {
                        for (_, items) in quiet_tables(sched) {
                            if let Some((s, at)) = at_of(items) {
                                if at >= max {
                                    late.push((s, format!("this fault is scheduled at {at} ms")));
                                }
                            }
                        }
                    }
                }
            }
            for (span, what) in late {
                self.err(
                    &span,
                    format!(
                        "{what}, but runs end at {max} ms ({setting}), so it would never happen"
                    ),
                    Some(format!(
                        "move it earlier, or raise run.max_time_ms above {max}"
                    )),
                );
            }
        }

        Some(Scenario {
            name: name?,
            description: description?,
            products: products?,
            orders: orders?,
            restocks: restocks?,
            topology: topology?,
            streams: streams?,
            payments: payments?,
            saga: saga?,
            faults: {
                let (rates, schedule) = faults?;
                crate::scenario::FaultSpec {
                    phase_ms: rates.0,
                    rates: rates.1,
                    schedule,
                }
            },
            run: run?.0,
            expect: expect?,
        })
    }

    fn products(&mut self, item: &Item) -> Option<Vec<Product>> {
        let example = "[[products]] with id = \"product1\" and stock = 1";
        let mut out = Vec::new();
        let mut ok = matches!(item.val.node, Node::Array(_));
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        for (span, items) in self.tables(item, "product", example) {
            let t = Tbl {
                items,
                span,
                name: "[[products]]",
            };
            self.check_keys(&t, &PRODUCT_KEYS);
            let id = self
                .required(&t, "id", "a product", "id = \"product1\"")
                .and_then(|i| {
                    let id = self.id(i, "product id")?;
                    if let Some(first) = seen.get(&id) {
                        let first = first.clone();
                        self.err(
                            &i.val.span,
                            format!("duplicate product id {}", quote(&id)),
                            Some(format!(
                                "product ids must be unique; {} is already defined{}",
                                quote(&id),
                                self.at_line(&first)
                            )),
                        );
                        return None;
                    }
                    seen.insert(id.clone(), i.val.span.clone());
                    Some(id)
                });
            let stock = self
                .required(&t, "stock", "a product", "stock = 1")
                .and_then(|i| self.uint(i, "stock", 0, MAX_UNITS));
            match (id, stock) {
                (Some(id), Some(stock)) => out.push(Product { id, stock }),
                _ => ok = false,
            }
        }
        if let Node::Array(values) = &item.val.node {
            ok &= values.iter().all(|v| matches!(v.node, Node::Table(_)));
        }
        ok.then_some(out)
    }

    /// A key the table must have; reports it missing otherwise.
    fn required<'a>(
        &mut self,
        t: &Tbl<'a>,
        key: &str,
        what: &str,
        example: &str,
    ) -> Option<&'a Item> {
        let found = t.get(key);
        if found.is_none() {
            self.err(
                &t.span,
                format!("{what} needs {} (in {})", quote(key), t.name),
                Some(format!("add {example}")),
            );
            // A misspelt key is reported as unknown, with this key suggested: that is the
            // error to show first.
            if t.items
                .iter()
                .any(|i| nearest(&i.key, std::iter::once(key)).is_some())
            {
                if let Some(p) = self.problems.last_mut() {
                    p.weak = true;
                }
            }
        }
        found
    }

    fn orders(&mut self, item: &Item, products: Option<&[String]>) -> Option<Vec<Order>> {
        let example =
            "[[orders]] with id = \"order1\", product = \"product1\", quantity = 1, at = 0";
        let mut out = Vec::new();
        let mut ok = matches!(item.val.node, Node::Array(_));
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        for (span, items) in self.tables(item, "order", example) {
            let t = Tbl {
                items,
                span,
                name: "[[orders]]",
            };
            self.check_keys(&t, &ORDER_KEYS);
            let id = self
                .required(&t, "id", "an order", "id = \"order1\"")
                .and_then(|i| {
                    let id = self.id(i, "order id")?;
                    if let Some(first) = seen.get(&id) {
                        let first = first.clone();
                        self.err(
                            &i.val.span,
                            format!("duplicate order id {}", quote(&id)),
                            Some(format!(
                                "order ids must be unique; {} is already defined{}",
                                quote(&id),
                                self.at_line(&first)
                            )),
                        );
                        return None;
                    }
                    seen.insert(id.clone(), i.val.span.clone());
                    Some(id)
                });
            let whose = match &id {
                Some(id) => format!("order {}", quote(id)),
                None => "this order".to_string(),
            };
            let product = self
                .required(&t, "product", "an order", "product = \"product1\"")
                .and_then(|i| self.product_ref(i, &whose, products));
            let quantity = match t.get("quantity") {
                Some(i) => self.uint(i, "quantity", 1, MAX_UNITS),
                None => Some(1),
            };
            let user = match t.get("user") {
                Some(i) => self.string(i, "user").map(Some),
                None => Some(None),
            };
            let at = match t.get("at") {
                Some(i) => self.ms(i, "at", 0),
                None => Some(0),
            };
            match (id, product, quantity, user, at) {
                (Some(id), Some(product), Some(quantity), Some(user), Some(at)) => {
                    out.push(Order {
                        id,
                        product,
                        quantity,
                        user,
                        at,
                    })
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A reference to a product defined in `[[products]]`.
    fn product_ref(
        &mut self,
        item: &Item,
        whose: &str,
        products: Option<&[String]>,
    ) -> Option<String> {
        let p = self.id(item, "product")?;
        let products = products?;
        if products.contains(&p) {
            return Some(p);
        }
        let known = if products.is_empty() {
            "no products are defined; add a [[products]] entry".to_string()
        } else {
            format!(
                "known products: {}",
                list_capped(products.iter().map(String::as_str))
            )
        };
        let help = match nearest(&p, products.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`? {known}"),
            None => known,
        };
        self.err(
            &item.val.span,
            format!("{whose} is for unknown product {}", quote(&p)),
            Some(help),
        );
        None
    }

    fn restocks(&mut self, item: &Item, products: Option<&[String]>) -> Option<Vec<Restock>> {
        let example = "[[restocks]] with product = \"product1\", quantity = 1, at = 100";
        let mut out = Vec::new();
        let mut ok = matches!(item.val.node, Node::Array(_));
        for (span, items) in self.tables(item, "restock", example) {
            let t = Tbl {
                items,
                span,
                name: "[[restocks]]",
            };
            self.check_keys(&t, &RESTOCK_KEYS);
            let product = self
                .required(&t, "product", "a restock", "product = \"product1\"")
                .and_then(|i| self.product_ref(i, "this restock", products));
            let quantity = self
                .required(&t, "quantity", "a restock", "quantity = 1")
                .and_then(|i| self.uint(i, "quantity", 1, MAX_UNITS));
            let at = self
                .required(&t, "at", "a restock", "at = 100")
                .and_then(|i| self.ms(i, "at", 0));
            match (product, quantity, at) {
                (Some(product), Some(quantity), Some(at)) => out.push(Restock {
                    product,
                    quantity,
                    at,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn topology(&mut self, item: &Item) -> Option<TopologySpec> {
        let t = self.table(
            item,
            "[topology]",
            "[topology] with partitions = 1 and instances = 1",
        )?;
        self.check_keys(&t, &TOPOLOGY_KEYS);
        let mut out = TopologySpec::default();
        let mut ok = true;
        if let Some(i) = t.get("partitions") {
            match self.uint(i, "topology.partitions", 1, MAX_PARTITIONS) {
                Some(v) => out.partitions = v as u32,
                None => ok = false,
            }
        }
        if let Some(i) = t.get("instances") {
            match self.uint(i, "topology.instances", 1, MAX_INSTANCES) {
                Some(v) => out.instances = v as u32,
                None => ok = false,
            }
        }
        if let Some(i) = t.get("order_producer_idempotent") {
            match self.boolean(i, "topology.order_producer_idempotent") {
                Some(v) => out.order_producer_idempotent = v,
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn streams(&mut self, item: &Item) -> Option<StreamsSpec> {
        let t = self.table(item, "[streams]", "[streams] with commit_interval_ms = 100")?;
        self.check_keys(&t, &STREAMS_KEYS);
        let mut ok = true;
        let mut get = |w: &mut Walker, key: &str, min: u64| -> Option<Millis> {
            let i = t.get(key)?;
            let v = w.ms(i, &format!("streams.{key}"), min);
            ok &= v.is_some();
            v
        };
        let out = StreamsSpec {
            commit_interval_ms: get(self, "commit_interval_ms", 0),
            session_timeout_ms: get(self, "session_timeout_ms", 1),
            heartbeat_interval_ms: get(self, "heartbeat_interval_ms", 1),
            transaction_timeout_ms: get(self, "transaction_timeout_ms", 1),
            request_timeout_ms: get(self, "request_timeout_ms", 1),
        };
        if !ok {
            return None;
        }
        // Kafka's consumer refuses heartbeat.interval.ms >= session.timeout.ms.
        let defaults =
            oversell_sim::StreamsConfig::new("defaults", oversell_sim::Guarantee::AtLeastOnce);
        let session = out
            .session_timeout_ms
            .unwrap_or(defaults.session_timeout_ms);
        let heartbeat = out
            .heartbeat_interval_ms
            .unwrap_or(defaults.heartbeat_interval_ms);
        if heartbeat >= session {
            let (key, span) = match (t.get("heartbeat_interval_ms"), t.get("session_timeout_ms")) {
                (Some(h), _) => ("heartbeat_interval_ms", h.val.span.clone()),
                (None, Some(s)) => ("session_timeout_ms", s.val.span.clone()),
                (None, None) => ("session_timeout_ms", t.span.clone()),
            };
            self.err(
                &span,
                format!(
                    "streams.heartbeat_interval_ms ({heartbeat}) must be lower than streams.session_timeout_ms ({session})"
                ),
                Some(if key == "heartbeat_interval_ms" {
                    format!("as in Kafka, heartbeat more often than the session times out: use at most {}", session - 1)
                } else {
                    format!("as in Kafka, the session must outlast a heartbeat interval: use more than {heartbeat}")
                }),
            );
            return None;
        }
        Some(out)
    }

    fn payments(&mut self, item: &Item, orders: Option<&[String]>) -> Option<Payments> {
        let t = self.table(
            item,
            "[payments]",
            "[payments] with fail = [\"order2\"] and delay_ms = 50",
        )?;
        self.check_keys(&t, &PAYMENTS_KEYS);
        let mut out = Payments::default();
        let mut ok = true;
        let order_help = |orders: &[String], name: &str| -> String {
            let known = if orders.is_empty() {
                "no orders are defined".to_string()
            } else {
                format!(
                    "known orders: {}",
                    list_capped(orders.iter().map(String::as_str))
                )
            };
            match nearest(name, orders.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`? {known}"),
                None => known,
            }
        };
        if let Some(i) = t.get("fail") {
            match &i.val.node {
                Node::Array(values) => {
                    let mut seen = BTreeSet::new();
                    for v in values {
                        let Node::Str(name) = &v.node else {
                            self.err(
                                &v.span,
                                format!("payments.fail lists order ids, found {}", describe(&v.node)),
                                Some("write the order ids in double quotes, e.g. fail = [\"order2\"]".into()),
                            );
                            ok = false;
                            continue;
                        };
                        if let Some(orders) = orders {
                            if !orders.contains(name) {
                                self.err(
                                    &v.span,
                                    format!("payments.fail names unknown order {}", quote(name)),
                                    Some(order_help(orders, name)),
                                );
                                ok = false;
                                continue;
                            }
                        }
                        if !seen.insert(name.clone()) {
                            self.err(
                                &v.span,
                                format!("payments.fail lists order {} twice", quote(name)),
                                Some("list each failing order once".into()),
                            );
                            ok = false;
                            continue;
                        }
                        out.fail.push(name.clone());
                    }
                }
                other => {
                    let help = match other {
                        Node::Str(s) => format!("write a list: fail = [{}]", quote_str(s)),
                        _ => "write a list of order ids, e.g. fail = [\"order2\"]".into(),
                    };
                    self.err(
                        &i.val.span,
                        format!(
                            "payments.fail must be a list of order ids, found {}",
                            describe(other)
                        ),
                        Some(help),
                    );
                    ok = false;
                }
            }
        }
        if let Some(i) = t.get("delay_ms") {
            match self.ms(i, "payments.delay_ms", 0) {
                Some(v) => out.delay_ms = v,
                None => ok = false,
            }
        }
        if let Some(i) = t.get("delays") {
            match &i.val.node {
                Node::Table(items) => {
                    for d in items {
                        if let Some(orders) = orders {
                            if !orders.contains(&d.key) {
                                self.err(
                                    &d.key_span,
                                    format!(
                                        "payments.delays names unknown order {}",
                                        quote(&d.key)
                                    ),
                                    Some(order_help(orders, &d.key)),
                                );
                                ok = false;
                                continue;
                            }
                        }
                        match self.ms(d, &format!("the payment delay of {}", quote(&d.key)), 0) {
                            Some(v) => {
                                out.delays.insert(d.key.clone(), v);
                            }
                            None => ok = false,
                        }
                    }
                }
                other => {
                    self.err(
                        &i.val.span,
                        format!(
                            "payments.delays must be a table of order id = ms, found {}",
                            describe(other)
                        ),
                        Some("write e.g. delays = { order1 = 2000 }".into()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn saga(&mut self, item: &Item) -> Option<SagaSpec> {
        let t = self.table(item, "[saga]", "[saga] with reservation_timeout_ms = 1000")?;
        self.check_keys(&t, &SAGA_KEYS);
        let mut out = SagaSpec::default();
        let mut ok = true;
        if let Some(i) = t.get("reservation_timeout_ms") {
            match self.ms(i, "saga.reservation_timeout_ms", 1) {
                Some(v) => out.reservation_timeout_ms = v,
                None => ok = false,
            }
        }
        if let Some(i) = t.get("punctuate_every_ms") {
            match self.ms(i, "saga.punctuate_every_ms", 1) {
                Some(v) => out.punctuate_every_ms = v,
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    #[allow(clippy::type_complexity)]
    fn faults(
        &mut self,
        item: &Item,
        instances: Option<u32>,
    ) -> Option<((Millis, FaultRates), Vec<ScheduledFault>)> {
        let t = self.table(
            item,
            "[faults]",
            "[faults] with phase_ms = 2000 and crash = 5",
        )?;
        self.check_keys(&t, &FAULTS_KEYS);
        let mut rates = FaultRates::default();
        let mut ok = true;
        let mut phase = Some(0);
        if let Some(i) = t.get("phase_ms") {
            phase = self.ms(i, "faults.phase_ms", 0);
            ok &= phase.is_some();
        }
        let rate_keys: [(&str, fn(&mut FaultRates) -> &mut u32); 5] = [
            ("crash", |r| &mut r.crash),
            ("pause", |r| &mut r.pause),
            ("drop", |r| &mut r.drop),
            ("duplicate", |r| &mut r.duplicate),
            ("delay", |r| &mut r.delay),
        ];
        for (key, field) in rate_keys {
            if let Some(i) = t.get(key) {
                match self.rate(i, &format!("faults.{key}")) {
                    Some(v) => {
                        *field(&mut rates) = v;
                        if v > 0 && phase == Some(0) {
                            self.err(
                                &i.key_span,
                                format!("faults.{key} is {v} but faults.phase_ms is 0, so no random fault would ever happen"),
                                Some("random faults happen only during the fault phase: set faults.phase_ms, e.g. phase_ms = 2000".into()),
                            );
                            ok = false;
                        }
                    }
                    None => ok = false,
                }
            }
        }
        let range_keys: [(&str, fn(&mut FaultRates) -> &mut (Millis, Millis)); 3] = [
            ("restart_after", |r| &mut r.restart_after),
            ("pause_for", |r| &mut r.pause_for),
            ("delay_for", |r| &mut r.delay_for),
        ];
        for (key, field) in range_keys {
            if let Some(i) = t.get(key) {
                match self.range(i, &format!("faults.{key}")) {
                    Some(v) => *field(&mut rates) = v,
                    None => ok = false,
                }
            }
        }
        let mut schedule = Vec::new();
        if let Some(i) = t.get("schedule") {
            let example = "[[faults.schedule]] with kind = \"crash\", at = 100, instance = \"product-service-0\", restart_after = 200";
            if !matches!(i.val.node, Node::Array(_)) {
                ok = false;
            }
            for (span, items) in self.tables(i, "scheduled fault", example) {
                match self.scheduled(span, items, instances) {
                    Some(f) => schedule.push(f),
                    None => ok = false,
                }
            }
        }
        ok.then_some(((phase.unwrap_or(0), rates), schedule))
    }

    fn scheduled(
        &mut self,
        span: Span,
        items: &[Item],
        instances: Option<u32>,
    ) -> Option<ScheduledFault> {
        let t = Tbl {
            items,
            span,
            name: "[[faults.schedule]]",
        };
        let kind_item = self.required(
            &t,
            "kind",
            "a scheduled fault",
            "kind = \"crash\", \"pause\" or \"drop_produce_ack\"",
        );
        let kind = match kind_item {
            Some(i) => {
                let k = self.string(i, "kind");
                match k {
                    Some(k) if FAULT_KINDS.contains(&k.as_str()) => Some(k),
                    Some(k) => {
                        let help = match nearest(&k, FAULT_KINDS.iter().copied()) {
                            Some(s) => format!(
                                "did you mean \"{s}\"? kinds: crash, pause, drop_produce_ack"
                            ),
                            None => "kinds: crash, pause, drop_produce_ack".to_string(),
                        };
                        self.err(
                            &i.val.span,
                            format!("unknown fault kind {}", quote_str(&k)),
                            Some(help),
                        );
                        None
                    }
                    None => None,
                }
            }
            None => None,
        };
        let Some(kind) = kind else {
            // Without a kind, only say which keys are unknown to every kind.
            let all = [
                "kind",
                "at",
                "instance",
                "restart_after",
                "duration",
                "count",
            ];
            self.check_keys(&t, &all);
            return None;
        };
        let (extra, example) = match kind.as_str() {
            "crash" => ("restart_after", "restart_after = 200"),
            "pause" => ("duration", "duration = 1000"),
            _ => ("count", "count = 1"),
        };
        let allowed = ["kind", "at", "instance", extra];
        for item in t.items {
            if allowed.contains(&item.key.as_str()) {
                continue;
            }
            let other_kind = match item.key.as_str() {
                "restart_after" => Some("crash"),
                "duration" => Some("pause"),
                "count" => Some("drop_produce_ack"),
                _ => None,
            };
            let help = match (other_kind, nearest(&item.key, allowed.iter().copied())) {
                (Some(other), _) => format!(
                    "`{}` is for {other} faults; a {kind} fault takes `{extra}`",
                    item.key
                ),
                (None, Some(s)) => format!("did you mean `{s}`?"),
                (None, None) => format!("a {kind} fault takes: {}", list(allowed.iter().copied())),
            };
            self.err(
                &item.key_span,
                format!("unknown key {} in a {kind} fault", quote(&item.key)),
                Some(help),
            );
        }
        let at = self
            .required(&t, "at", &format!("a {kind} fault"), "at = 100")
            .and_then(|i| self.ms(i, "at", 0));
        let instance = self
            .required(
                &t,
                "instance",
                &format!("a {kind} fault"),
                "instance = \"product-service-0\"",
            )
            .and_then(|i| {
                let name = self.string(i, "instance")?;
                match check_instance(&name, &kind, instances) {
                    Ok(()) => Some(name),
                    Err((message, help)) => {
                        self.err(&i.val.span, message, Some(help));
                        None
                    }
                }
            });
        let other_extra = t.items.iter().any(|i| {
            ["restart_after", "duration", "count"].contains(&i.key.as_str()) && i.key != extra
        });
        let before = self.problems.len();
        let extra_item = self.required(&t, extra, &format!("a {kind} fault"), example);
        if other_extra && self.problems.len() > before {
            // The key of another kind was given instead: that error comes first.
            if let Some(p) = self.problems.last_mut() {
                p.weak = true;
            }
        }
        let extra_value = extra_item.and_then(|i| match extra {
            "count" => self.uint(i, "count", 1, MAX_DROP_COUNT),
            "restart_after" => self.ms(i, "restart_after", 0),
            _ => self.ms(i, "duration", 1),
        });
        let (at, instance, v) = (at?, instance?, extra_value?);
        if t.items.iter().any(|i| !allowed.contains(&i.key.as_str())) {
            return None;
        }
        Some(match kind.as_str() {
            "crash" => ScheduledFault::Crash {
                at,
                instance,
                restart_after: v,
            },
            "pause" => ScheduledFault::Pause {
                at,
                instance,
                duration: v,
            },
            _ => ScheduledFault::DropProduceAck {
                at,
                instance,
                count: v as u32,
            },
        })
    }

    /// The run section, and the span of `max_time_ms` when given.
    fn run(&mut self, item: &Item) -> Option<(RunSpec, Option<Span>)> {
        let t = self.table(item, "[run]", "[run] with seeds = \"0..20\"")?;
        self.check_keys(&t, &RUN_KEYS);
        let mut out = RunSpec::default();
        let mut ok = true;
        if let Some(i) = t.get("seeds") {
            match self.seeds(i) {
                Some(v) => out.seeds = v,
                None => ok = false,
            }
        }
        let mut max_span = None;
        if let Some(i) = t.get("max_time_ms") {
            match self.ms(i, "run.max_time_ms", 1) {
                Some(v) => {
                    out.max_time_ms = v;
                    max_span = Some(i.val.span.clone());
                }
                None => ok = false,
            }
        }
        if let Some(i) = t.get("decision_bound_ms") {
            match self.ms(i, "run.decision_bound_ms", 0) {
                Some(v) => out.decision_bound_ms = v,
                None => ok = false,
            }
        }
        ok.then_some((out, max_span))
    }

    fn seeds(&mut self, item: &Item) -> Option<SeedRange> {
        let span = &item.val.span;
        let text = match &item.val.node {
            Node::Str(s) => s.clone(),
            Node::Int(i) if *i >= 0 => {
                self.err(
                    span,
                    format!("run.seeds must be a range written \"A..B\", found the number {i}"),
                    Some(format!(
                        "for seed {i} alone write seeds = \"{i}..{}\"",
                        i.saturating_add(1)
                    )),
                );
                return None;
            }
            other => {
                self.err(
                    span,
                    format!(
                        "run.seeds must be a range written \"A..B\", found {}",
                        describe(other)
                    ),
                    Some("write e.g. seeds = \"0..100\" (B excluded)".into()),
                );
                return None;
            }
        };
        let Some((a, b)) = text.split_once("..") else {
            self.err(
                span,
                format!("{} is not a seed range", quote_str(&text)),
                Some("write it as \"A..B\" with B excluded, e.g. \"0..100\"".into()),
            );
            return None;
        };
        let inclusive = b.starts_with('=');
        let b = b.trim_start_matches('=');
        let parse = |s: &str| s.trim().replace('_', "").parse::<u64>();
        let (start, end) = match (parse(a), parse(b)) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(_), _) => {
                self.err(
                    span,
                    format!("{} in run.seeds is not a seed number", quote_str(a)),
                    Some(
                        "seeds are whole numbers 0 or more: write \"A..B\", e.g. \"0..100\"".into(),
                    ),
                );
                return None;
            }
            (_, Err(_)) => {
                self.err(
                    span,
                    format!("{} in run.seeds is not a seed number", quote_str(b)),
                    Some(
                        "seeds are whole numbers 0 or more: write \"A..B\", e.g. \"0..100\"".into(),
                    ),
                );
                return None;
            }
        };
        if inclusive {
            let help = match end.checked_add(1) {
                Some(e) if e > start => format!("the end is excluded: write \"{start}..{e}\""),
                _ => "write \"A..B\" with B excluded, e.g. \"0..100\"".into(),
            };
            self.err(
                span,
                format!("run.seeds {} uses ..=", quote_str(&text)),
                Some(help),
            );
            return None;
        }
        if end <= start {
            let help = if end == start {
                match start.checked_add(1) {
                    Some(e) => format!(
                        "the end is excluded: write \"{start}..{e}\" to run seed {start} alone"
                    ),
                    None => "the end is excluded and must be greater than the start".into(),
                }
            } else {
                format!("the end must be greater than the start: write \"{end}..{start}\"")
            };
            self.err(
                span,
                format!("the seed range {start}..{end} is empty"),
                Some(help),
            );
            return None;
        }
        Some(SeedRange { start, end })
    }

    fn expect(&mut self, item: &Item) -> Option<BTreeMap<String, Expectation>> {
        let t = self.table(
            item,
            "[expect]",
            "[expect] with naive = { violates = [\"no-oversell\"] }",
        )?;
        let designs = designs::names();
        let invariants = invariant_names();
        let mut out = BTreeMap::new();
        let mut ok = true;
        for d in t.items {
            if !designs.contains(&d.key.as_str()) {
                let known = format!("designs: {}", list(designs.iter().copied()));
                let help = match nearest(&d.key, designs.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? {known}"),
                    None => known,
                };
                self.err(
                    &d.key_span,
                    format!("unknown design {} in [expect]", quote(&d.key)),
                    Some(help),
                );
                ok = false;
                continue;
            }
            let form = format!(
                "write {k} = \"holds\" or {k} = {{ violates = [\"no-oversell\"] }}",
                k = d.key
            );
            match &d.val.node {
                Node::Str(s) if s == "holds" => {
                    out.insert(
                        d.key.clone(),
                        Expectation {
                            violates: Vec::new(),
                        },
                    );
                }
                Node::Str(s) => {
                    let help = if invariants.contains(&s.as_str()) {
                        format!("write {} = {{ violates = [{}] }}", d.key, quote_str(s))
                    } else {
                        form.clone()
                    };
                    self.err(
                        &d.val.span,
                        format!(
                            "expected \"holds\" or {{ violates = [...] }} for {}, found {}",
                            d.key,
                            quote_str(s)
                        ),
                        Some(help),
                    );
                    ok = false;
                }
                Node::Table(items) => {
                    let e = Tbl {
                        items,
                        span: d.val.span.clone(),
                        name: "an expectation",
                    };
                    self.check_keys(&e, &EXPECT_KEYS);
                    let mut violates = Vec::new();
                    if let Some(v) = e.get("violates") {
                        match &v.val.node {
                            Node::Array(values) => {
                                for x in values {
                                    let Node::Str(name) = &x.node else {
                                        self.err(
                                            &x.span,
                                            format!(
                                                "violates lists invariant names, found {}",
                                                describe(&x.node)
                                            ),
                                            Some(format!(
                                                "invariants: {}",
                                                list(invariants.iter().copied())
                                            )),
                                        );
                                        ok = false;
                                        continue;
                                    };
                                    if !invariants.contains(&name.as_str()) {
                                        let known = format!(
                                            "invariants: {}",
                                            list(invariants.iter().copied())
                                        );
                                        let help = match nearest(name, invariants.iter().copied()) {
                                            Some(s) => format!("did you mean `{s}`? {known}"),
                                            None => known,
                                        };
                                        self.err(
                                            &x.span,
                                            format!("unknown invariant {}", quote(name)),
                                            Some(help),
                                        );
                                        ok = false;
                                    } else if violates.contains(name) {
                                        self.err(
                                            &x.span,
                                            format!("invariant {} is listed twice", quote(name)),
                                            Some("list each invariant once".into()),
                                        );
                                        ok = false;
                                    } else {
                                        violates.push(name.clone());
                                    }
                                }
                            }
                            Node::Str(s) => {
                                self.err(
                                    &v.val.span,
                                    format!(
                                        "violates must be a list, found the string {}",
                                        quote_str(s)
                                    ),
                                    Some(format!("write violates = [{}]", quote_str(s))),
                                );
                                ok = false;
                            }
                            other => {
                                self.err(
                                    &v.val.span,
                                    format!(
                                        "violates must be a list of invariant names, found {}",
                                        describe(other)
                                    ),
                                    Some(format!(
                                        "invariants: {}",
                                        list(invariants.iter().copied())
                                    )),
                                );
                                ok = false;
                            }
                        }
                    }
                    if e.items.iter().any(|i| i.key != "violates") {
                        ok = false;
                    }
                    out.insert(d.key.clone(), Expectation { violates });
                }
                other => {
                    self.err(
                        &d.val.span,
                        format!(
                            "expected \"holds\" or {{ violates = [...] }} for {}, found {}",
                            d.key,
                            describe(other)
                        ),
                        Some(form),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// The tables of an array of tables, without reporting shape problems (already
/// reported by the section's own reader).
fn quiet_tables(item: &Item) -> Vec<(Span, &[Item])> {
    match &item.val.node {
        Node::Array(values) => values
            .iter()
            .filter_map(|v| match &v.node {
                Node::Table(items) => Some((v.span.clone(), items.as_slice())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `at` of a table, when it is a valid time.
fn at_of(items: &[Item]) -> Option<(Span, u64)> {
    let i = items.iter().find(|i| i.key == "at")?;
    match i.val.node {
        Node::Int(v) if (0..=MAX_MS as i64).contains(&v) => Some((i.val.span.clone(), v as u64)),
        _ => None,
    }
}

/// Whether `name` is a valid instance for a fault of `kind`.
fn check_instance(name: &str, kind: &str, instances: Option<u32>) -> Result<(), (String, String)> {
    if name == designs::FRONTEND {
        if kind == "drop_produce_ack" {
            return Ok(());
        }
        return Err((
            format!("the {} stands for the outside world and cannot {kind}", designs::FRONTEND),
            "crash or pause a service instance such as product-service-0 (drop_produce_ack may target the frontend)"
                .to_string(),
        ));
    }
    let n = instances.unwrap_or(1);
    let named = |service: &str| -> String {
        match n {
            1 => format!("{service}-0"),
            2 => format!("{service}-0 or {service}-1"),
            _ => format!("one of {service}-0 … {service}-{}", n - 1),
        }
    };
    for service in designs::SERVICES {
        let Some(index) = name.strip_prefix(service).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let canonical = !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && (index == "0" || !index.starts_with('0'));
        if !canonical {
            return Err((
                format!("instance {} has no valid index", quote(name)),
                format!(
                    "instances are named <service>-<index>: use {}",
                    named(service)
                ),
            ));
        }
        let Some(instances) = instances else {
            // topology.instances is itself wrong; that error is reported there.
            return Ok(());
        };
        let in_range = index.parse::<u64>().is_ok_and(|i| i < u64::from(instances));
        if !in_range {
            return Err((
                format!(
                    "instance {name} is out of range: topology.instances = {instances}, so use {}",
                    named(service)
                ),
                match index.parse::<u64>().ok().filter(|i| *i < MAX_INSTANCES) {
                    Some(i) => format!(
                        "raise topology.instances to {}, or pick {}",
                        i + 1,
                        named(service)
                    ),
                    None => format!("pick {}", named(service)),
                },
            ));
        }
        return Ok(());
    }
    let mut candidates: Vec<String> = Vec::new();
    for service in designs::SERVICES {
        for i in 0..n.min(16) {
            candidates.push(format!("{service}-{i}"));
        }
    }
    if kind == "drop_produce_ack" {
        candidates.push(designs::FRONTEND.to_string());
    }
    let services = designs::SERVICES.join(" or ");
    let help = match nearest(name, candidates.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`? instances are named <service>-<index> with service {services}"),
        None => format!(
            "instances are named <service>-<index> with service {services}, e.g. product-service-0{}",
            if kind == "drop_produce_ack" { ", or frontend" } else { "" }
        ),
    };
    Err((format!("unknown instance {}", quote(name)), help))
}

// ----- words -----

/// `key` in backticks when it is plain, else a quoted, escaped string.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 80
        && s.chars()
            .all(|c| c.is_alphanumeric() || "-_.:/".contains(c))
    {
        format!("`{s}`")
    } else {
        quote_str(s)
    }
}

fn quote_str(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        format!("{:?}…", cut)
    } else {
        format!("{s:?}")
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::Str(s) => format!("the string {}", quote_str(s)),
        Node::Int(i) => format!("the number {i}"),
        Node::Float(f) => format!("the number {f}"),
        Node::Bool(b) => format!("{b}"),
        Node::Datetime(d) => format!("the date {d}"),
        Node::Array(_) => "a list".into(),
        Node::Table(_) => "a table".into(),
    }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn list_capped<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.collect();
    if all.len() <= 12 {
        all.join(", ")
    } else {
        format!("{}, … ({} in all)", all[..10].join(", "), all.len())
    }
}

/// The candidate nearest to `word` by edit distance (ignoring case and `-`/`_`), if near
/// enough to be a likely typo.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if word.chars().count() > 64 {
        return None;
    }
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    };
    let w = norm(word);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let cn = norm(c);
        let d = edit_distance(&w, &cn);
        let limit = (cn.len().max(w.len()) / 3).max(1);
        let close =
            d <= limit || (w.len() >= 3 && (cn.starts_with(&w[..]) || w.starts_with(&cn[..])));
        let better = match best {
            None => true,
            Some((b, _)) => d < b,
        };
        if close && better {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_keys() {
        assert_eq!(nearest("stok", PRODUCT_KEYS.iter().copied()), Some("stock"));
        assert_eq!(
            nearest("commit-interval-ms", STREAMS_KEYS.iter().copied()),
            Some("commit_interval_ms")
        );
        assert_eq!(
            nearest("partition", TOPOLOGY_KEYS.iter().copied()),
            Some("partitions")
        );
        assert_eq!(nearest("zzz", TOPOLOGY_KEYS.iter().copied()), None);
    }
}
