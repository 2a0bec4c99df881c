//! A shrunk scenario written as a scenario file.

use super::Shrunk;
use crate::scenario::Scenario;
use std::collections::BTreeMap;

/// The shrunk scenario as a scenario file: a comment header that tells where it came from
/// and how to replay it, then the scenario (settings left at their defaults are omitted).
/// The replay command names the file `<this file>`; [`to_toml_at`] names it.
pub fn to_toml(shrunk: &Shrunk, original_path: &str, design: &str) -> String {
    to_toml_at(shrunk, original_path, design, None)
}

/// [`to_toml`], with the path the file will be written to in its replay command.
pub fn to_toml_at(
    shrunk: &Shrunk,
    original_path: &str,
    design: &str,
    path: Option<&str>,
) -> String {
    let mut header = vec![
        format!(
            "Shrunk by `oversell shrink` from {original_path} (design {design}, seed {}).",
            shrunk.original_seed
        ),
        format!(
            "Still violates {} with seed {}.",
            shrunk.invariant.name(),
            shrunk.seed
        ),
    ];
    let others: Vec<&str> = shrunk
        .violated
        .iter()
        .filter(|i| **i != shrunk.invariant)
        .map(|i| i.name())
        .collect();
    if !others.is_empty() {
        header.push(format!("The same run also violates {}.", others.join(", ")));
    }
    if !shrunk.mutations.is_empty() {
        header.push(format!(
            "Mutations: {}. Replay with them; [expect] is left out, as `check` runs without.",
            shrunk
                .mutations
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    header.push(sizes(shrunk));
    header.push("Reproduce:".into());
    let flags: String = shrunk
        .mutations
        .iter()
        .map(|m| format!(" --mutation {}", m.name()))
        .collect();
    header.push(format!(
        "  {}{flags}",
        crate::run::replay_command(path.unwrap_or("<this file>"), design, shrunk.seed)
    ));
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&scenario_toml(&shrunk.scenario));
    out
}

/// How much smaller the story got.
fn sizes(s: &Shrunk) -> String {
    format!(
        "orders {} -> {}, products {} -> {}, restocks {} -> {}, scheduled faults {} -> {}, steps {} -> {} ({} runs).",
        s.orders_before,
        s.orders_after,
        s.products_before,
        s.products_after,
        s.restocks_before,
        s.restocks_after,
        s.faults_before,
        s.faults_after,
        s.steps_before,
        s.steps_after,
        s.runs
    )
}

/// A scenario with every setting at its default, as TOML.
fn default_toml() -> toml::Value {
    toml::Value::try_from(Scenario {
        name: String::new(),
        description: String::new(),
        products: Vec::new(),
        orders: Vec::new(),
        restocks: Vec::new(),
        topology: Default::default(),
        streams: Default::default(),
        payments: Default::default(),
        saga: Default::default(),
        faults: Default::default(),
        run: Default::default(),
        kafka: Default::default(),
        cluster: Default::default(),
        producer: Default::default(),
        expect: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        expect_probes: BTreeMap::new(),
    })
    .expect("the default scenario serialises to TOML")
}

/// A scenario as TOML, leaving out every setting equal to its default, with its sections
/// in the order people read them: name, products, orders, restocks, settings, expectations.
pub fn scenario_toml(scenario: &Scenario) -> String {
    let value = toml::Value::try_from(scenario).expect("a scenario serialises to TOML");
    let defaults = default_toml();
    let toml::Value::Table(mut table) = value else {
        unreachable!("a scenario serialises to a TOML table")
    };
    for (key, default) in defaults.as_table().into_iter().flatten() {
        match (table.get_mut(key), default) {
            (Some(toml::Value::Table(t)), toml::Value::Table(d)) => {
                t.retain(|k, v| d.get(k) != Some(v));
                if t.is_empty() {
                    table.remove(key);
                }
            }
            (Some(v), d) if v == d && key != "name" && key != "products" => {
                table.remove(key);
            }
            _ => {}
        }
    }
    const ORDER: [&str; 13] = [
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
        "outcomes",
    ];
    let mut keys: Vec<String> = ORDER.iter().map(|k| k.to_string()).collect();
    keys.extend(
        table
            .keys()
            .filter(|k| !ORDER.contains(&k.as_str()))
            .cloned(),
    );
    let mut out = String::new();
    for key in keys {
        let Some(v) = table.remove(&key) else {
            continue;
        };
        let mut one = toml::Table::new();
        one.insert(key, v);
        let text = toml::to_string(&one).expect("a TOML value serialises");
        if !out.is_empty() && text.starts_with('[') {
            out.push('\n');
        }
        out.push_str(&text);
    }
    out
}
