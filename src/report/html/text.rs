//! Small text helpers of the timeline: escaping, clipping, short labels of records.

use oversell_sim::{Outcome, TopicPartition};
use std::fmt::Write as _;

/// Text for HTML content and attribute values.
pub(super) fn esc(s: &str) -> String {
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
pub(super) fn script_safe(json: &str) -> String {
    json.replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
}

pub(super) fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Quiescent => "quiescent".into(),
        Outcome::TimeBound => "stopped at the time bound".into(),
        Outcome::StepBound => "stopped at the step bound".into(),
        Outcome::Diverged(why) => format!("replay diverged: {why}"),
    }
}

/// At most `max` characters, with an ellipsis if cut.
pub(super) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// A sort key that orders `x-2` before `x-10`.
pub(super) fn natural(s: &str) -> Vec<(String, u64)> {
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

pub(super) fn offsets(list: &[(TopicPartition, u64)]) -> String {
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
pub(super) fn describe(key: Option<&str>, value: Option<&str>) -> String {
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
            return format!("{key}: avail {a}, held {}", count("reserved"));
        }
        if let (Some(d), Some(p)) = (text("decision"), text("product")) {
            let units = m.get("units").and_then(|v| v.as_u64()).unwrap_or(0);
            return format!("{key}: {d} ×{units} of {p}");
        }
    }
    if key.is_empty() {
        clip(value, 60)
    } else {
        format!("{key} = {}", clip(value, 60))
    }
}

/// The `type` of a domain event value.
pub(super) fn domain_type(value: Option<&str>) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(value?) {
        Ok(serde_json::Value::Object(m)) => m.get("type")?.as_str().map(str::to_string),
        _ => None,
    }
}
