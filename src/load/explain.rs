//! serde's errors, placed by [`super::de`], in the loader's words: what is wrong at that
//! key or value, and what would be right.

use super::de::{fields_of, DeError, Fault, Found, Path, Seg, Span, Want};
use super::validate::{limit, Limit};
use super::words::{describe, list, nearest, quote, quote_str};
use super::{problem, Problem};
use crate::scenario::{
    FaultSpec, KafkaSpec, Order, Payments, Product, Restock, RunSpec, SagaSpec, Scenario,
    SeedRange, StreamsSpec, TopologySpec,
};
use oversell_sim::ScheduledFault;
use serde::de::value::MapDeserializer;
use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

type Value<'a> = Spanned<DeValue<'a>>;

/// The value at a key path.
pub(super) fn lookup<'a, 'i>(root: &'a Value<'i>, path: &[Seg]) -> Option<&'a Value<'i>> {
    let mut v = root;
    for seg in path {
        v = match (seg, v.get_ref()) {
            (Seg::Key(k), DeValue::Table(t)) => t.get(k.as_str())?,
            (Seg::Index(i), DeValue::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The span of the last key of a path (the value's when the last step is an index).
pub(super) fn key_span(root: &Value<'_>, path: &[Seg]) -> Option<Span> {
    let (Some(Seg::Key(k)), Some(parent)) = (path.last(), path.len().checked_sub(1)) else {
        return lookup(root, path).map(|v| v.span());
    };
    match lookup(root, &path[..parent])?.get_ref() {
        DeValue::Table(t) => t.get_key_value(k.as_str()).map(|(k, _)| k.span()),
        _ => None,
    }
}

fn keys(path: &[Seg]) -> Vec<&str> {
    path.iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect()
}

/// How messages name the setting at a path: `stock`, `topology.partitions`, ...
pub(super) fn what(path: &[Seg]) -> String {
    use Seg::{Index, Key};
    match path {
        [Key(k)] => k.clone(),
        [Key(l), Index(_), Key(id)] if id == "id" && (l == "products" || l == "orders") => {
            format!("{} id", l.trim_end_matches('s'))
        }
        [Key(_), Index(_), Key(k)] | [Key(_), Key(_), Index(_), Key(k)] => k.clone(),
        [Key(s), Key(k), Index(0)] if s == "faults" && k != "schedule" => {
            format!("the low end of faults.{k}")
        }
        [Key(s), Key(k), Index(_)] if s == "faults" && k != "schedule" => {
            format!("the high end of faults.{k}")
        }
        [Key(p), Key(d), Key(o)] if p == "payments" && d == "delays" => {
            format!("the payment delay of {}", quote(o))
        }
        [Key(e), Key(_), Key(k)] if e == "expect" => k.clone(),
        [.., Index(_)] => format!("each entry of {}", keys(path).join(".")),
        _ => keys(path).join("."),
    }
}

/// How messages name the table at a path: `the scenario`, `[[products]]`, `[topology]`.
fn table_name(root: &Value<'_>, path: &[Seg]) -> String {
    use Seg::{Index, Key};
    match path {
        [] => "the scenario".into(),
        [Key(l), Index(_)] => format!("[[{l}]]"),
        [Key(f), Key(s), Index(_)] if f == "faults" && s == "schedule" => {
            match fault_kind(root, path) {
                Some(kind) => format!("a {kind} fault"),
                None => "[[faults.schedule]]".into(),
            }
        }
        [Key(e), Key(_)] if e == "expect" => "an expectation".into(),
        _ => format!("[{}]", keys(path).join(".")),
    }
}

/// The valid kind of the scheduled fault at `path`, if it has one.
fn fault_kind(root: &Value<'_>, path: &[Seg]) -> Option<String> {
    let [Seg::Key(f), Seg::Key(s), Seg::Index(_)] = path else {
        return None;
    };
    if f != "faults" || s != "schedule" {
        return None;
    }
    let kind = lookup(root, path)?
        .get_ref()
        .get("kind")?
        .get_ref()
        .as_str()?;
    fault_kinds().contains(&kind).then(|| kind.to_string())
}

/// The kinds of scheduled fault, from `ScheduledFault`'s own derive.
pub(super) fn fault_kinds() -> &'static [&'static str] {
    probe_fault("\u{1}").map_or(&[], |f| match f {
        Fault::UnknownVariant { expected, .. } => expected,
        _ => &[],
    })
}

/// The keys a scheduled fault of `kind` takes besides `kind`, from the derive.
pub(super) fn fault_fields(kind: &str) -> &'static [&'static str] {
    probe_fault(kind).map_or(&[], |f| match f {
        Fault::UnknownField { expected, .. } => expected,
        _ => &[],
    })
}

fn probe_fault(kind: &str) -> Option<Fault> {
    let entries = [("kind", kind), ("\u{1}", "")];
    let d = MapDeserializer::<_, DeError>::new(entries.into_iter());
    ScheduledFault::deserialize(d).err().map(|e| e.fault)
}

/// The keys of `[faults]`, its own and the flattened rates, in declared order: from
/// the serialised default (the derive flattens, so no field list is passed to serde).
fn faults_keys() -> Vec<String> {
    let text = toml::to_string(&FaultSpec::default()).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_string()))
        .collect()
}

/// The keys a table takes, by where it is.
fn table_keys(path: &[Seg]) -> Vec<String> {
    let owned = |f: &[&str]| f.iter().map(|s| s.to_string()).collect();
    match keys(path).as_slice() {
        [] => owned(fields_of::<Scenario>()),
        ["products"] => owned(fields_of::<Product>()),
        ["orders"] => owned(fields_of::<Order>()),
        ["restocks"] => owned(fields_of::<Restock>()),
        ["topology"] => owned(fields_of::<TopologySpec>()),
        ["streams"] => owned(fields_of::<StreamsSpec>()),
        ["payments"] => owned(fields_of::<Payments>()),
        ["saga"] => owned(fields_of::<SagaSpec>()),
        ["run"] => owned(fields_of::<RunSpec>()),
        ["kafka"] => owned(fields_of::<KafkaSpec>()),
        ["faults"] => faults_keys(),
        _ => Vec::new(),
    }
}

/// Every section, and the keys it takes, to tell where a misplaced key belongs.
fn sections() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = [
        "products", "orders", "restocks", "topology", "streams", "payments", "saga", "faults",
        "run", "kafka",
    ]
    .iter()
    .map(|s| {
        let path = [Seg::Key(s.to_string())];
        let name = match *s {
            "products" | "orders" | "restocks" => format!("[[{s}]]"),
            _ => format!("[{s}]"),
        };
        (name, table_keys(&path))
    })
    .collect();
    let mut schedule: Vec<String> = vec!["kind".into()];
    for kind in fault_kinds() {
        for f in fault_fields(kind) {
            if !schedule.iter().any(|s| s == f) {
                schedule.push(f.to_string());
            }
        }
    }
    out.push(("[[faults.schedule]]".into(), schedule));
    out
}

/// The problem a serde error stands for.
pub(super) fn explain(e: DeError, root: &Value<'_>) -> Problem {
    let (span, path) = e.at.clone().unwrap_or_else(|| (root.span(), Vec::new()));
    let (fault, span, path) = refine(e.fault, span, path, root);
    let value = lookup(root, &path);
    match fault {
        Fault::UnknownField { field, expected } => unknown_key(root, &path, span, &field, expected),
        Fault::MissingField(field) => missing(root, &path, span, field),
        Fault::UnknownVariant { variant, expected } => {
            let kinds = list(expected.iter().copied());
            // Unit variants: `[streams] state_dir` and `rebalance_protocol`; every other one
            // is a fault's `kind`.
            let (what, noun) = match path.last() {
                Some(Seg::Key(k)) if k == "state_dir" => ("state directory", "values"),
                Some(Seg::Key(k)) if k == "rebalance_protocol" => {
                    ("rebalance protocol", "protocols")
                }
                _ => ("fault kind", "kinds"),
            };
            let help = match nearest(&variant, expected.iter().copied()) {
                Some(s) => format!("did you mean \"{s}\"? {noun}: {kinds}"),
                None => format!("{noun}: {kinds}"),
            };
            problem(
                span,
                format!("unknown {what} {}", quote_str(&variant)),
                Some(help),
            )
        }
        Fault::Mismatch(want) => match value {
            Some(v) => mismatch(&path, span, v.get_ref(), want),
            None => problem(span, format!("{} has the wrong type", what(&path)), None),
        },
        Fault::OutOfRange => out_of_range(&path, span, value),
        Fault::Length(n) => length(&path, span, n),
        Fault::Invalid { found, expected } => invalid(&path, span, value, &found, &expected),
        Fault::Custom(message) => custom(&path, span, value, message),
        Fault::Fields(_) => problem(span, "the scenario could not be read".into(), None),
    }
}

/// Errors from serde's buffered paths (an internally tagged or flattened type) are
/// placed at the whole table: find the key or value they are about.
fn refine(fault: Fault, span: Span, path: Path, root: &Value<'_>) -> (Fault, Span, Path) {
    let Some(node) = lookup(root, &path) else {
        return (fault, span, path);
    };
    let DeValue::Table(t) = node.get_ref() else {
        return (fault, span, path);
    };
    let unknown = match &fault {
        Fault::UnknownField { field, .. } if path.last() != Some(&Seg::Key(field.clone())) => {
            Some(field.clone())
        }
        // serde reports a key left over by a flattened struct as a custom error: find
        // the key that the table does not take.
        Fault::Custom(_) => {
            let valid = table_keys(&path);
            let mut extra: Vec<_> = t
                .iter()
                .filter(|(k, _)| !valid.is_empty() && !valid.iter().any(|v| v == k.get_ref()))
                .map(|(k, _)| (k.span(), k.get_ref().to_string()))
                .collect();
            extra.sort_by_key(|(s, _)| s.start);
            extra.into_iter().next().map(|(_, k)| k)
        }
        _ => None,
    };
    if let Some(field) = unknown {
        let Some((k, _)) = t.get_key_value(field.as_str()) else {
            return (fault, span, path);
        };
        let expected = match fault {
            Fault::UnknownField { expected, .. } => expected,
            _ => &[],
        };
        let mut p = path.clone();
        p.push(Seg::Key(field.clone()));
        return (Fault::UnknownField { field, expected }, k.span(), p);
    }
    let matches = |v: &DeValue<'_>| match (&fault, v) {
        (Fault::Invalid { found, .. }, v) => same(found, v),
        (Fault::Length(n), DeValue::Array(a)) => a.len() == *n,
        _ => false,
    };
    let mut hits = Vec::new();
    search(node, &path, &matches, &mut hits);
    match hits.as_slice() {
        [(s, p)] => (fault, s.clone(), p.clone()),
        _ => (fault, span, path),
    }
}

fn same(found: &Found, v: &DeValue<'_>) -> bool {
    match (found, v) {
        (Found::Int(n), DeValue::Integer(i)) => {
            i128::from_str_radix(i.as_str(), i.radix()).ok() == Some(*n)
        }
        (Found::Str(s), DeValue::String(x)) => s == x.as_ref(),
        (Found::Bool(b), DeValue::Boolean(x)) => b == x,
        (Found::Float(f), DeValue::Float(x)) => x.as_str().parse::<f64>().ok() == Some(*f),
        _ => false,
    }
}

fn search(
    v: &Value<'_>,
    path: &[Seg],
    pred: &dyn Fn(&DeValue<'_>) -> bool,
    hits: &mut Vec<(Span, Path)>,
) {
    let mut visit = |seg: Seg, x: &Value<'_>| {
        let mut p = path.to_vec();
        p.push(seg);
        if pred(x.get_ref()) {
            hits.push((x.span(), p.clone()));
        }
        search(x, &p, pred, hits);
    };
    match v.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .for_each(|(k, x)| visit(Seg::Key(k.get_ref().to_string()), x)),
        DeValue::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| visit(Seg::Index(i), x)),
        _ => {}
    }
}

fn unknown_key(
    root: &Value<'_>,
    path: &[Seg],
    span: Span,
    field: &str,
    expected: &[&str],
) -> Problem {
    let table = &path[..path.len().saturating_sub(1)];
    let name = table_name(root, table);
    let allowed: Vec<String> = if expected.is_empty() {
        table_keys(table)
    } else {
        expected.iter().map(|s| s.to_string()).collect()
    };
    let allowed_str: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let message = format!("unknown key {} in {name}", quote(field));
    if let Some(kind) = fault_kind(root, table) {
        return problem(
            span,
            message,
            Some(other_kind_help(&kind, field, &allowed_str)),
        );
    }
    let top = table_keys(&[]);
    let help = if let Some(s) = nearest(field, allowed_str.iter().copied()) {
        format!("did you mean `{s}`?")
    } else if !table.is_empty() && top.iter().any(|k| k == field) {
        let is_table = matches!(
            lookup(root, path).map(|v| v.get_ref()),
            Some(DeValue::Table(_))
        );
        format!(
            "`{field}` belongs at the top level, but in TOML every key after a {name} header belongs \
             to that table: move it above the first [header]{}",
            if is_table { ", or give it a header of its own" } else { "" }
        )
    } else {
        let valid = format!(
            "valid keys in {name} are: {}",
            list(allowed_str.iter().copied())
        );
        match sections()
            .into_iter()
            .find(|(s, k)| *s != name && k.iter().any(|k| k == field))
        {
            Some((section, _)) => format!("`{field}` belongs in {section}; {valid}"),
            None => valid,
        }
    };
    problem(span, message, Some(help))
}

/// A key of another kind of scheduled fault, or a typo.
fn other_kind_help(kind: &str, field: &str, allowed: &[&str]) -> String {
    let other = fault_kinds()
        .iter()
        .find(|k| **k != kind && fault_fields(k).contains(&field) && !allowed.contains(&field));
    let extra: Vec<String> = allowed
        .iter()
        .filter(|a| fault_kinds().iter().any(|k| !fault_fields(k).contains(a)))
        .map(|a| format!("`{a}`"))
        .collect();
    match (other, nearest(field, allowed.iter().copied())) {
        (Some(other), _) => format!(
            "`{field}` is for {other} faults; a {kind} fault takes {}",
            extra.join(", ")
        ),
        (None, Some(s)) => format!("did you mean `{s}`?"),
        (None, None) => format!("a {kind} fault takes: {}", list(allowed.iter().copied())),
    }
}

/// An example of a key's value, for "add ..." help.
fn example(table: &[Seg], field: &str) -> String {
    let owner = keys(table).first().copied().unwrap_or("");
    match field {
        "id" if owner == "orders" => "id = \"order1\"".into(),
        "id" => "id = \"product1\"".into(),
        "product" => "product = \"product1\"".into(),
        "kind" => format!(
            "kind = {}",
            fault_kinds()
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        "instance" => "instance = \"product-service-0\"".into(),
        "at" => "at = 100".into(),
        "duration" => "duration = 1000".into(),
        "restart_after" => "restart_after = 200".into(),
        f => format!("{f} = 1"),
    }
}

fn missing(root: &Value<'_>, path: &[Seg], span: Span, field: &str) -> Problem {
    if path.is_empty() && field == "products" {
        return problem(
            0..0,
            "the scenario has no products".into(),
            Some("add at least one: [[products]] with id = \"product1\" and stock = 1".into()),
        );
    }
    let owner = keys(path).first().copied().unwrap_or("");
    let thing = match (owner, fault_kind(root, path)) {
        ("products", _) => "a product".to_string(),
        ("orders", _) => "an order".to_string(),
        ("restocks", _) => "a restock".to_string(),
        ("faults", Some(kind)) => format!("a {kind} fault"),
        ("faults", None) => "a scheduled fault".to_string(),
        _ => table_name(root, path),
    };
    problem(
        span,
        format!(
            "{thing} needs {} (in {})",
            quote(field),
            table_name_plain(path)
        ),
        Some(format!("add {}", example(path, field))),
    )
}

fn table_name_plain(path: &[Seg]) -> String {
    match path {
        [] => "the scenario".into(),
        [.., Seg::Index(_)] => format!("[[{}]]", keys(path).join(".")),
        _ => format!("[{}]", keys(path).join(".")),
    }
}

fn last_key(path: &[Seg]) -> String {
    keys(path)
        .last()
        .map_or_else(String::new, |k| k.to_string())
}

fn range_help(lim: Option<Limit>) -> String {
    match lim {
        Some(l) => format!("write a whole number between {} and {}", l.min, l.max),
        None => "write a whole number".into(),
    }
}

fn mismatch(path: &[Seg], span: Span, v: &DeValue<'_>, want: Want) -> Problem {
    let (w, key) = (what(path), last_key(path));
    if keys(path) == ["run", "seeds"] {
        return seeds_mismatch(span, v);
    }
    let found = describe(v);
    let (message, help) = match (want, v) {
        (Want::Number, DeValue::String(s)) => (
            format!("{w} must be a number, found {found}"),
            match s.trim().parse::<i64>() {
                Ok(n) => Some(format!("drop the quotes: {key} = {n}")),
                Err(_) => Some(range_help(limit(path))),
            },
        ),
        (Want::Number, DeValue::Float(_)) => (
            format!(
                "{w} must be a whole number, found {}",
                found.trim_start_matches("the number ")
            ),
            Some(range_help(limit(path))),
        ),
        (Want::Number, _) => (format!("{w} must be a number, found {found}"), None),
        (Want::Str, DeValue::Integer(i)) if !matches!(path.last(), Some(Seg::Index(_))) => (
            format!("{w} must be a string, found {found}"),
            Some(format!("put it in double quotes: {key} = \"{i}\"")),
        ),
        (Want::Str, _) if matches!(path.last(), Some(Seg::Index(_))) => (
            format!("{w} must be a string, found {found}"),
            Some(match keys(path).last() {
                Some(&"violates") => format!("invariants: {}", list(super::invariant_names())),
                _ => "write each entry in double quotes, e.g. [\"order1\"]".into(),
            }),
        ),
        (Want::Str, _) => (
            format!("{w} must be a string, found {found}"),
            Some(format!("write it in double quotes, e.g. {key} = \"text\"")),
        ),
        (Want::Bool, DeValue::String(s)) if s == "true" || s == "false" => (
            format!("{w} must be true or false, found {found}"),
            Some(format!("drop the quotes: {key} = {s}")),
        ),
        (Want::Bool, _) => (format!("{w} must be true or false, found {found}"), None),
        (Want::List, _) => list_mismatch(path, v),
        (Want::Table, _) => (
            format!("{w} must be a table, found {found}"),
            Some(format!("write it as a section: [{}]", keys(path).join("."))),
        ),
        (Want::NotDate, _) => (
            format!("{w} cannot be a date, found {found}"),
            Some("scenario times are simulated ms, e.g. at = 100".into()),
        ),
    };
    problem(span, message, help)
}

fn list_mismatch(path: &[Seg], v: &DeValue<'_>) -> (String, Option<String>) {
    let (w, key) = (what(path), last_key(path));
    let dotted = keys(path).join(".");
    if matches!(keys(path).as_slice(), ["faults", _]) {
        return (
            format!("{w} must be a range [low, high], found {}", describe(v)),
            Some(format!(
                "write it as [low, high] in ms, e.g. {key} = [50, 400]"
            )),
        );
    }
    match v {
        DeValue::Table(_) => (
            format!("{w} must be a list of tables, found a table"),
            Some(format!("write each entry under its own [[{dotted}]] header, e.g. [[products]] with id = \"product1\" and stock = 1")),
        ),
        DeValue::String(s) => (
            format!("{w} must be a list, found {}", describe(v)),
            Some(format!("write a list: {key} = [{}]", quote_str(s))),
        ),
        _ => (format!("{w} must be a list, found {}", describe(v)), None),
    }
}

fn seeds_mismatch(span: Span, v: &DeValue<'_>) -> Problem {
    let message = format!(
        "run.seeds must be a range written \"A..B\", found {}",
        describe(v)
    );
    let help = match v {
        DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n >= 0 => format!("for seed {n} alone write seeds = \"{n}..{}\"", n + 1),
            _ => "write e.g. seeds = \"0..100\" (B excluded)".into(),
        },
        _ => "write e.g. seeds = \"0..100\" (B excluded)".into(),
    };
    problem(span, message, Some(help))
}

/// A whole number outside its setting's range (or its type's).
pub(super) fn out_of_range(path: &[Seg], span: Span, value: Option<&Value<'_>>) -> Problem {
    let w = what(path);
    let text = match value.map(|v| v.get_ref()) {
        Some(DeValue::Integer(i)) => i.to_string(),
        Some(v) => describe(v),
        None => "this value".into(),
    };
    let lim = limit(path).unwrap_or(Limit {
        min: 0,
        max: u64::MAX,
        rate: false,
    });
    let negative = text.starts_with('-');
    if negative || lim.min > 0 && text == "0" {
        let help = (lim.min == 1).then(|| format!("{w} of 0 has no meaning here; use at least 1"));
        return problem(
            span,
            format!("{w} must be {} or more, found {text}", lim.min),
            help,
        );
    }
    problem(
        span,
        format!("{w} must be at most {}, found {text}", lim.max),
        None,
    )
}

fn length(path: &[Seg], span: Span, n: usize) -> Problem {
    let (w, key) = (what(path), last_key(path));
    problem(
        span,
        format!("{w} must be a range of two numbers [low, high], found {n} values"),
        Some(format!(
            "write it as [low, high] in ms, e.g. {key} = [50, 400]"
        )),
    )
}

fn invalid(
    path: &[Seg],
    span: Span,
    value: Option<&Value<'_>>,
    found_kind: &Found,
    expected: &str,
) -> Problem {
    let w = what(path);
    let found = value.map_or_else(|| "another value".into(), |v| describe(v.get_ref()));
    if let [Seg::Key(e), Seg::Key(d)] = path {
        if e == "expect" {
            let form = format!("write {d} = \"holds\" or {d} = {{ violates = [\"no-oversell\"] }}");
            let help = match value.and_then(|v| v.get_ref().as_str()) {
                Some(s) if super::invariant_names().contains(&s) => {
                    format!("write {d} = {{ violates = [{}] }}", quote_str(s))
                }
                _ => form,
            };
            return problem(
                span,
                format!("expected \"holds\" or {{ violates = [...] }} for {d}, found {found}"),
                Some(help),
            );
        }
    }
    // A visitor's complaint (on serde's buffered paths): the kind it wanted, from
    // serde's own names for the primitive types and containers.
    let want = match expected {
        e if e.starts_with('u') || e.starts_with('i') => Want::Number,
        "a string" => Want::Str,
        "a boolean" => Want::Bool,
        e if e.contains("tuple") || e.contains("sequence") => Want::List,
        e if e.contains("struct") || e.contains("map") => Want::Table,
        _ => return problem(span, format!("{w} must be {expected}, found {found}"), None),
    };
    match (want, value) {
        (Want::Number, Some(v)) if matches!(found_kind, Found::Int(_)) => {
            out_of_range(path, span, Some(v))
        }
        (_, Some(v)) => mismatch(path, span, v.get_ref(), want),
        (_, None) => problem(span, format!("{w} must be {expected}, found {found}"), None),
    }
}

fn custom(path: &[Seg], span: Span, value: Option<&Value<'_>>, message: String) -> Problem {
    if keys(path) == ["run", "seeds"] {
        if let Some(text) = value.and_then(|v| v.get_ref().as_str()) {
            if let Err((message, help)) = SeedRange::parse_named(text, "run.seeds") {
                return problem(span, message, Some(help));
            }
        }
    }
    let w = what(path);
    if w.is_empty() {
        return problem(span, message, None);
    }
    problem(span, format!("{w}: {message}"), None)
}
