//! What serde cannot know: limits, references, duplicate ids, reversed ranges, timing
//! rules and configurations Kafka refuses. Runs on the typed [`Scenario`] and finds
//! positions by key path in the spanned document.

use super::de::{Path, Seg, Span};
use super::explain::{key_span, lookup, out_of_range, what};
use super::words::{list, list_capped, quote, suggest};
use super::{invariant_names, problem, Problem};
use crate::designs;
use crate::scenario::{Hazard, Scenario};
use oversell_sim::ScheduledFault;
use std::collections::BTreeMap;
use toml::de::DeValue;
use toml::Spanned;

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

/// The range of a whole-number setting; `rate`: a chance per mille.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
    pub min: u64,
    pub max: u64,
    pub rate: bool,
}

const RATE: u64 = u64::MAX;

/// Every whole-number setting's range, by key path (`*`: any index or key). A max of
/// `RATE` marks a chance per mille (0..=1000).
const LIMITS: &[(&[&str], u64, u64)] = &[
    (&["products", "*", "stock"], 0, MAX_UNITS),
    (&["orders", "*", "quantity"], 1, MAX_UNITS),
    (&["orders", "*", "at"], 0, MAX_MS),
    (&["restocks", "*", "quantity"], 1, MAX_UNITS),
    (&["restocks", "*", "at"], 0, MAX_MS),
    (&["topology", "partitions"], 1, MAX_PARTITIONS),
    (&["topology", "instances"], 1, MAX_INSTANCES),
    (&["streams", "commit_interval_ms"], 0, MAX_MS),
    (&["streams", "linger_ms"], 0, MAX_MS),
    (&["streams", "fetch_max_wait_ms"], 0, MAX_MS),
    (&["streams", "*"], 1, MAX_MS),
    (&["payments", "delay_ms"], 0, MAX_MS),
    (&["payments", "delays", "*"], 0, MAX_MS),
    (&["saga", "*"], 1, MAX_MS),
    (&["faults", "phase_ms"], 0, MAX_MS),
    // Every other whole number directly under [faults] is a random fault's rate
    // (`FaultRates::named`).
    (&["faults", "*"], 0, RATE),
    (&["faults", "*", "*"], 0, MAX_MS),
    (&["faults", "schedule", "*", "duration"], 1, MAX_MS),
    (&["faults", "schedule", "*", "count"], 1, MAX_DROP_COUNT),
    (&["faults", "schedule", "*", "*"], 0, MAX_MS),
    (&["run", "max_time_ms"], 1, MAX_MS),
    (&["run", "decision_bound_ms"], 0, MAX_MS),
    (&["run", "pct_depth"], 1, 16),
    (&["run", "pct_steps"], 1, u32::MAX as u64),
    (&["run", "max_crashes"], 0, 4),
    (&["run", "max_pauses"], 0, 4),
    (&["run", "max_net_faults"], 0, 4),
    (
        &["run", "max_deviations"],
        0,
        crate::scenario::MAX_DEVIATIONS as u64,
    ),
    (&["kafka", "transaction_version"], 1, 2),
    (&["kafka", "abort_scan_interval_ms"], 1, MAX_MS),
    (&["cluster", "brokers"], 1, 9),
    (&["cluster", "replication_factor"], 1, 9),
    (&["cluster", "min_insync_replicas"], 1, 9),
    (&["cluster", "*"], 1, MAX_MS),
    (
        &["outcomes", "*", "products", "*", "available"],
        0,
        MAX_UNITS,
    ),
    (&["outcomes", "*", "products", "*", "held"], 0, MAX_UNITS),
];

/// The range of the setting at `path`, if it is a whole number with limits.
pub(super) fn limit(path: &[Seg]) -> Option<Limit> {
    let fits = |pattern: &[&str]| {
        pattern.len() == path.len()
            && pattern.iter().zip(path).all(|(p, s)| match s {
                _ if *p == "*" => true,
                Seg::Key(k) => k == p,
                Seg::Index(_) => false,
            })
    };
    let (_, min, max) = LIMITS.iter().find(|(p, ..)| fits(p))?;
    Some(match *max {
        RATE => Limit {
            min: *min,
            max: 1000,
            rate: true,
        },
        max => Limit {
            min: *min,
            max,
            rate: false,
        },
    })
}

type Value<'a> = Spanned<DeValue<'a>>;

struct Check<'a, 'i> {
    root: &'a Value<'i>,
    text: &'a str,
    problems: Vec<Problem>,
}

/// The first problem (by position) of a scenario that serde has read.
pub(super) fn validate(s: &Scenario, root: &Value<'_>, text: &str) -> Result<(), Problem> {
    let mut c = Check {
        root,
        text,
        problems: Vec::new(),
    };
    c.limits(root, &mut Vec::new());
    c.ids(s);
    c.references(s);
    c.payments(s);
    c.streams(s);
    c.faults(s);
    c.cluster(s);
    c.late(s);
    c.expect(s);
    c.outcomes(s);
    c.expect_probes(s);
    c.problems.sort_by_key(|p| (p.span.start, p.span.end));
    match c.problems.into_iter().next() {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

fn at(list: &str, i: usize, k: &str) -> Path {
    vec![key(list), Seg::Index(i), key(k)]
}

impl Check<'_, '_> {
    fn span(&self, path: &[Seg]) -> Span {
        lookup(self.root, path).map_or(0..0, |v| v.span())
    }

    fn key_span(&self, path: &[Seg]) -> Span {
        key_span(self.root, path).unwrap_or_else(|| self.span(path))
    }

    fn given(&self, path: &[Seg]) -> bool {
        lookup(self.root, path).is_some()
    }

    fn err(&mut self, span: Span, message: String, help: Option<String>) {
        self.problems.push(problem(span, message, help));
    }

    /// ` on line N`, to point back at a first definition.
    fn line_of(&self, span: &Span) -> String {
        let start = super::floor_boundary(self.text, span.start);
        format!(" on line {}", self.text[..start].matches('\n').count() + 1)
    }

    /// Every whole number within its setting's range.
    fn limits(&mut self, v: &Value<'_>, path: &mut Path) {
        match v.get_ref() {
            DeValue::Table(t) => {
                for (k, x) in t.iter() {
                    path.push(key(k.get_ref()));
                    self.limits(x, path);
                    path.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.limits(x, path);
                    path.pop();
                }
            }
            DeValue::Integer(i) => {
                let (Some(lim), Ok(n)) = (limit(path), u64::from_str_radix(i.as_str(), i.radix()))
                else {
                    return;
                };
                if lim.rate && n > lim.max {
                    let w = what(path);
                    self.err(
                        v.span(),
                        format!("{w} is a chance per mille, so at most 1000 (always), found {n}"),
                        Some(format!(
                            "{n} per mille is more than certain; e.g. 5 means 0.5%"
                        )),
                    );
                } else if path == &[key("kafka"), key("transaction_version")]
                    && !(1..=2).contains(&n)
                {
                    self.err(
                        v.span(),
                        format!("kafka.transaction_version must be 1 or 2, found {n}"),
                        Some("1: the transaction coordinator before KIP-890 part 2 (a late EndTxn can complete the next transaction); 2: KIP-890 part 2, the default since Kafka 4.0".into()),
                    );
                } else if n < lim.min || n > lim.max {
                    let p = out_of_range(path, v.span(), Some(v));
                    self.problems.push(p);
                }
            }
            _ => {}
        }
    }

    fn ids(&mut self, s: &Scenario) {
        let products: Vec<&str> = s.products.iter().map(|p| p.id.as_str()).collect();
        let orders: Vec<&str> = s.orders.iter().map(|o| o.id.as_str()).collect();
        self.unique("products", "product", &products);
        self.unique("orders", "order", &orders);
    }

    /// Ids are non-empty and unique.
    fn unique(&mut self, list: &str, one: &str, ids: &[&str]) {
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let span = self.span(&at(list, i, "id"));
            if id.trim().is_empty() {
                let help = format!("give it a name, e.g. \"{one}1\"");
                self.err(span, format!("{one} id must not be empty"), Some(help));
            } else if let Some(first) = seen.get(id) {
                let help = format!(
                    "{one} ids must be unique; {} is already defined{}",
                    quote(id),
                    self.line_of(first)
                );
                self.err(
                    span,
                    format!("duplicate {one} id {}", quote(id)),
                    Some(help),
                );
            } else {
                seen.insert(id, span);
            }
        }
    }

    fn references(&mut self, s: &Scenario) {
        let products: Vec<&str> = s.products.iter().map(|p| p.id.as_str()).collect();
        for (i, o) in s.orders.iter().enumerate() {
            let whose = format!("order {}", quote(&o.id));
            self.product_ref(&at("orders", i, "product"), &o.product, &whose, &products);
        }
        for (i, r) in s.restocks.iter().enumerate() {
            self.product_ref(
                &at("restocks", i, "product"),
                &r.product,
                "this restock",
                &products,
            );
        }
    }

    fn product_ref(&mut self, path: &[Seg], p: &str, whose: &str, products: &[&str]) {
        let span = self.span(path);
        if p.trim().is_empty() {
            let help = Some("name a declared product, e.g. \"product1\"".into());
            return self.err(span, "product must not be empty".into(), help);
        }
        if products.contains(&p) {
            return;
        }
        let known = format!("known products: {}", list_capped(products.iter().copied()));
        let help = suggest(p, products.iter().copied(), known);
        self.err(
            span,
            format!("{whose} is for unknown product {}", quote(p)),
            Some(help),
        );
    }

    fn order_help(orders: &[&str], name: &str) -> String {
        let known = if orders.is_empty() {
            "no orders are defined".to_string()
        } else {
            format!("known orders: {}", list_capped(orders.iter().copied()))
        };
        suggest(name, orders.iter().copied(), known)
    }

    fn payments(&mut self, s: &Scenario) {
        let orders: Vec<&str> = s.orders.iter().map(|o| o.id.as_str()).collect();
        for (i, name) in s.payments.fail.iter().enumerate() {
            let span = self.span(&[key("payments"), key("fail"), Seg::Index(i)]);
            if !orders.contains(&name.as_str()) {
                let message = format!("payments.fail names unknown order {}", quote(name));
                self.err(span, message, Some(Self::order_help(&orders, name)));
            } else if s.payments.fail[..i].contains(name) {
                let message = format!("payments.fail lists order {} twice", quote(name));
                self.err(span, message, Some("list each failing order once".into()));
            }
        }
        for name in s.payments.delays.keys() {
            if !orders.contains(&name.as_str()) {
                let span = self.key_span(&[key("payments"), key("delays"), key(name)]);
                let message = format!("payments.delays names unknown order {}", quote(name));
                self.err(span, message, Some(Self::order_help(&orders, name)));
            }
        }
    }

    /// Kafka's start-up checks on the streams settings.
    fn streams(&mut self, s: &Scenario) {
        let d = oversell_sim::StreamsConfig::new("defaults", oversell_sim::Guarantee::AtLeastOnce);
        let st = &s.streams;
        let session = st.session_timeout_ms.unwrap_or(d.session_timeout_ms);
        let heartbeat = st.heartbeat_interval_ms.unwrap_or(d.heartbeat_interval_ms);
        let path = |k: &str| vec![key("streams"), key(k)];
        // Kafka's consumer refuses heartbeat.interval.ms >= session.timeout.ms.
        if heartbeat >= session {
            let on_heartbeat = st.heartbeat_interval_ms.is_some();
            let at = if on_heartbeat {
                "heartbeat_interval_ms"
            } else {
                "session_timeout_ms"
            };
            let help = if on_heartbeat {
                format!(
                    "as in Kafka, heartbeat more often than the session times out: use at most {}",
                    session - 1
                )
            } else {
                format!("as in Kafka, the session must outlast a heartbeat interval: use more than {heartbeat}")
            };
            self.err(
                self.span(&path(at)),
                format!("streams.heartbeat_interval_ms ({heartbeat}) must be lower than streams.session_timeout_ms ({session})"),
                Some(help),
            );
        }
        // A held fetch must be answered before the consumer gives it up: Kafka documents
        // `request.timeout.ms` above `fetch.max.wait.ms` (30 000 and 500 by default; the
        // consumer's `ConsumerNetworkClient` times a fetch out like any request).
        let request = st.request_timeout_ms.unwrap_or(d.request_timeout_ms);
        if let Some(wait) = st.fetch_max_wait_ms.filter(|w| *w >= request) {
            self.err(
                self.span(&path("fetch_max_wait_ms")),
                format!("streams.fetch_max_wait_ms ({wait}) must be lower than streams.request_timeout_ms ({request})"),
                Some(format!("a held fetch is answered within fetch_max_wait_ms, before the request times out: use at most {}", request - 1)),
            );
        }
        // Kafka Streams refuses, under exactly-once, a transaction timeout below the commit
        // interval: StreamsConfig's constructor calls verifyEOSTransactionTimeoutCompatibility()
        // (apache/kafka streams/src/main/java/org/apache/kafka/streams/StreamsConfig.java),
        // which throws IllegalArgumentException when transactionTimeout < commitInterval.
        // Every scenario runs exactly-once designs too, so the loader refuses it.
        let commit = st.commit_interval_ms.unwrap_or(d.commit_interval_ms);
        let txn = st
            .transaction_timeout_ms
            .unwrap_or(d.transaction_timeout_ms);
        if txn < commit {
            let at = if st.commit_interval_ms.is_some() {
                "commit_interval_ms"
            } else {
                "transaction_timeout_ms"
            };
            self.err(
                self.span(&path(at)),
                format!(
                    "streams.transaction_timeout_ms ({txn}) is lower than streams.commit_interval_ms ({commit}); \
                     Kafka Streams refuses this under exactly-once: \"This will cause ongoing transaction \
                     always timeout due to inactivity caused by long commit interval\""
                ),
                Some(format!(
                    "lower commit_interval_ms to at most {txn}, or raise transaction_timeout_ms to at least {commit}"
                )),
            );
        }
    }

    fn faults(&mut self, s: &Scenario) {
        let f = &s.faults;
        let r = &f.rates;
        for (k, v) in r.named() {
            if v > 0 && f.phase_ms == 0 {
                self.err(
                    self.key_span(&[key("faults"), key(k)]),
                    format!("faults.{k} is {v} but faults.phase_ms is 0, so no random fault would ever happen"),
                    Some("random faults happen only during the fault phase: set faults.phase_ms, e.g. phase_ms = 2000".into()),
                );
            }
        }
        let ranges = [
            ("restart_after", r.restart_after),
            ("pause_for", r.pause_for),
            ("delay_for", r.delay_for),
            ("broker_restart_after", r.broker_restart_after),
            ("broker_partition_for", r.broker_partition_for),
            ("slow_follower_for", r.slow_follower_for),
        ];
        for (k, (lo, hi)) in ranges {
            if lo > hi {
                self.err(
                    self.span(&[key("faults"), key(k)]),
                    format!(
                        "faults.{k} is [{lo}, {hi}]: the low end {lo} is above the high end {hi}"
                    ),
                    Some(format!("write {k} = [{hi}, {lo}]")),
                );
            }
        }
        for (i, fault) in f.schedule.iter().enumerate() {
            let (name, kind) = match fault {
                ScheduledFault::Crash { instance, .. } => (instance, "crash"),
                ScheduledFault::Pause { instance, .. } => (instance, "pause"),
                ScheduledFault::DropProduceAck { instance, .. } => (instance, "drop_produce_ack"),
                ScheduledFault::BrokerCrash { broker, .. }
                | ScheduledFault::BrokerPartition { broker, .. }
                | ScheduledFault::SlowFollower { broker, .. } => {
                    self.scheduled_broker(s, i, *broker);
                    continue;
                }
            };
            if let Err((message, help)) = check_instance(name, kind, s.topology.instances) {
                let span = self.span(&[
                    key("faults"),
                    key("schedule"),
                    Seg::Index(i),
                    key("instance"),
                ]);
                self.err(span, message, Some(help));
            }
        }
    }

    /// The cluster's settings agree with each other (Kafka refuses a replication factor
    /// above the broker count, and a `min.insync.replicas` above the replication factor),
    /// and broker faults have brokers to strike.
    fn cluster(&mut self, s: &Scenario) {
        if let Err(message) = s.cluster.config().validate() {
            let span = self.key_span(&[key("cluster")]);
            let help = "e.g. brokers = 3, replication_factor = 3, min_insync_replicas = 2";
            self.err(span, format!("[cluster]: {message}"), Some(help.into()));
        }
        let r = &s.faults.rates;
        for (k, v) in [
            ("broker_crash", r.broker_crash),
            ("fsync_loss", r.fsync_loss),
            ("broker_partition", r.broker_partition),
            ("slow_follower", r.slow_follower),
            ("broker_overlap", r.broker_overlap),
        ] {
            if v > 0 && s.cluster.brokers == 1 {
                self.err(
                    self.key_span(&[key("faults"), key(k)]),
                    format!("faults.{k} is {v} but cluster.brokers is 1: there is no broker fault to strike a single broker here"),
                    Some("set [cluster] brokers = 3 (or more)".into()),
                );
            }
        }
    }

    /// A scheduled broker crash names a broker of a cluster of several.
    fn scheduled_broker(&mut self, s: &Scenario, i: usize, broker: u32) {
        let brokers = s.cluster.brokers;
        if broker < brokers && brokers > 1 {
            return;
        }
        let span = self.span(&[key("faults"), key("schedule"), Seg::Index(i), key("broker")]);
        let message = if brokers == 1 {
            "a broker fault needs a cluster of several brokers, and cluster.brokers is 1"
                .to_string()
        } else {
            format!(
                "broker {broker} does not exist: cluster.brokers is {brokers} (brokers 0 to {})",
                brokers - 1
            )
        };
        let help = "set [cluster] brokers = 3, and name a broker below it".to_string();
        self.err(span, message, Some(help));
    }

    /// Nothing may happen after the end of the run.
    fn late(&mut self, s: &Scenario) {
        let max = s.run.max_time_ms;
        let setting = if self.given(&[key("run"), key("max_time_ms")]) {
            "run.max_time_ms"
        } else {
            "the default run.max_time_ms"
        };
        let mut late: Vec<(Path, String)> = Vec::new();
        for (i, o) in s.orders.iter().enumerate().filter(|(_, o)| o.at >= max) {
            late.push((
                at("orders", i, "at"),
                format!("this order arrives at {} ms", o.at),
            ));
        }
        for (i, r) in s.restocks.iter().enumerate().filter(|(_, r)| r.at >= max) {
            late.push((
                at("restocks", i, "at"),
                format!("this restock arrives at {} ms", r.at),
            ));
        }
        for (i, f) in s
            .faults
            .schedule
            .iter()
            .enumerate()
            .filter(|(_, f)| f.at() >= max)
        {
            let path = vec![key("faults"), key("schedule"), Seg::Index(i), key("at")];
            late.push((path, format!("this fault is scheduled at {} ms", f.at())));
        }
        for (path, what) in late {
            self.err(
                self.span(&path),
                format!("{what}, but runs end at {max} ms ({setting}), so it would never happen"),
                Some(format!(
                    "move it earlier, or raise run.max_time_ms above {max}"
                )),
            );
        }
    }

    fn expect(&mut self, s: &Scenario) {
        let designs = designs::names();
        let invariants = invariant_names();
        for (design, e) in &s.expect {
            let path = vec![key("expect"), key(design)];
            if !designs.contains(&design.as_str()) {
                let known = format!("designs: {}", list(designs.iter().copied()));
                let help = suggest(design, designs.iter().copied(), known);
                self.err(
                    self.key_span(&path),
                    format!("unknown design {} in [expect]", quote(design)),
                    Some(help),
                );
                continue;
            }
            for (i, name) in e.violates.iter().enumerate() {
                let mut p = path.clone();
                p.extend([key("violates"), Seg::Index(i)]);
                let span = self.span(&p);
                if !invariants.contains(&name.as_str()) {
                    let known = format!("invariants: {}", list(invariants.iter().copied()));
                    let help = suggest(name, invariants.iter().copied(), known);
                    self.err(
                        span,
                        format!("unknown invariant {}", quote(name)),
                        Some(help),
                    );
                } else if e.violates[..i].contains(name) {
                    let help = Some("list each invariant once".into());
                    self.err(
                        span,
                        format!("invariant {} is listed twice", quote(name)),
                        help,
                    );
                }
            }
            self.hazards(s, &path, &e.hazards);
        }
    }

    /// Each hazard an expectation relies on is known, and closed by the scenario's settings.
    fn hazards(&mut self, s: &Scenario, path: &[Seg], hazards: &[String]) {
        let names: Vec<&str> = Hazard::ALL.iter().map(|h| h.name()).collect();
        for (i, name) in hazards.iter().enumerate() {
            let mut p = path.to_vec();
            p.extend([key("hazards"), Seg::Index(i)]);
            let span = self.span(&p);
            let Some(hazard) = Hazard::parse(name) else {
                let known = format!("known hazards: {}", list(names.iter().copied()));
                let help = suggest(name, names.iter().copied(), known);
                self.err(span, format!("unknown hazard {}", quote(name)), Some(help));
                continue;
            };
            if !hazard.closed_in(s) {
                self.err(
                    span,
                    format!(
                        "this expectation relies on the hazard {} being closed, but the scenario leaves it open",
                        quote(name)
                    ),
                    Some(format!(
                        "run the scenario under the setting that closes it: {}",
                        hazard.closing_setting()
                    )),
                );
            }
        }
    }

    /// `[outcomes.DESIGN]`: a design with an `[expect]` entry; declared orders and
    /// products; decisions listed once; something promised for each.
    /// Each design of `[expect_probes]` is swept by `[expect]`, and each probe is known
    /// and listed once.
    fn expect_probes(&mut self, s: &Scenario) {
        let probes = crate::checker::Probe::names();
        for (design, names) in &s.expect_probes {
            let path = vec![key("expect_probes"), key(design)];
            if !s.expect.contains_key(design) {
                self.err(
                    self.key_span(&path),
                    format!("expected probes for {} but no [expect] entry for it", quote(design)),
                    Some(format!(
                        "probes are counted over the runs of an expectation: add {design} = \"holds\" (or what it violates) under [expect]"
                    )),
                );
                continue;
            }
            for (i, name) in names.iter().enumerate() {
                let mut p = path.clone();
                p.push(Seg::Index(i));
                let span = self.span(&p);
                if !probes.contains(&name.as_str()) {
                    let known = format!("probes: {}", list(probes.iter().copied()));
                    let help = suggest(name, probes.iter().copied(), known);
                    self.err(span, format!("unknown probe {}", quote(name)), Some(help));
                } else if names[..i].contains(name) {
                    let help = Some("list each probe once".into());
                    self.err(span, format!("probe {} is listed twice", quote(name)), help);
                }
            }
        }
    }

    fn outcomes(&mut self, s: &Scenario) {
        let designs = designs::names();
        let orders: Vec<&str> = s.orders.iter().map(|o| o.id.as_str()).collect();
        let products: Vec<&str> = s.products.iter().map(|p| p.id.as_str()).collect();
        for (design, o) in &s.outcomes {
            let path = vec![key("outcomes"), key(design)];
            if !designs.contains(&design.as_str()) {
                let known = format!("designs: {}", list(designs.iter().copied()));
                let help = suggest(design, designs.iter().copied(), known);
                let message = format!("unknown design {} in [outcomes]", quote(design));
                self.err(self.key_span(&path), message, Some(help));
                continue;
            }
            if !s.expect.contains_key(design) {
                self.err(
                    self.key_span(&path),
                    format!("outcomes for {} but no [expect] entry for it", quote(design)),
                    Some(format!(
                        "`oversell check` judges outcomes on the runs of an expectation: add {design} = \"holds\" (or what it violates) under [expect]"
                    )),
                );
            }
            for (order, want) in &o.orders {
                let mut p = path.clone();
                p.extend([key("orders"), key(order)]);
                if !orders.contains(&order.as_str()) {
                    let message = format!("outcome for unknown order {}", quote(order));
                    self.err(
                        self.key_span(&p),
                        message,
                        Some(Self::order_help(&orders, order)),
                    );
                } else if want.decision.is_none() && want.released.is_none() {
                    let help = "e.g. { decision = \"rejected\", released = true }".to_string();
                    let message = format!("the outcome of order {} promises nothing", quote(order));
                    self.err(self.key_span(&p), message, Some(help));
                }
                self.decisions(&p, want);
            }
            for (product, want) in &o.products {
                let mut p = path.clone();
                p.extend([key("products"), key(product)]);
                if !products.contains(&product.as_str()) {
                    let known =
                        format!("known products: {}", list_capped(products.iter().copied()));
                    let help = suggest(product, products.iter().copied(), known);
                    let message = format!("outcome for unknown product {}", quote(product));
                    self.err(self.key_span(&p), message, Some(help));
                } else if want.available.is_none() && want.held.is_none() {
                    let help = "e.g. { available = 0, held = 1 }".to_string();
                    let message =
                        format!("the outcome of product {} promises nothing", quote(product));
                    self.err(self.key_span(&p), message, Some(help));
                }
            }
        }
    }

    fn decisions(&mut self, order: &[Seg], want: &crate::scenario::OrderOutcome) {
        let Some(list) = &want.decision else {
            return;
        };
        let mut p = order.to_vec();
        p.push(key("decision"));
        if list.0.is_empty() {
            let help =
                "name one (\"accepted\", \"rejected\", \"undecided\") or several".to_string();
            self.err(
                self.span(&p),
                "an empty list of decisions".into(),
                Some(help),
            );
        }
        for (i, d) in list.0.iter().enumerate() {
            if list.0[..i].contains(d) {
                let mut at = p.clone();
                at.push(Seg::Index(i));
                let message = format!("decision {} is listed twice", quote(d.name()));
                self.err(
                    self.span(&at),
                    message,
                    Some("list each decision once".into()),
                );
            }
        }
    }
}

/// Whether `name` is a valid instance for a fault of `kind`: (what is wrong, what is right).
fn check_instance(name: &str, kind: &str, instances: u32) -> Result<(), (String, String)> {
    if name == designs::FRONTEND {
        if kind == "drop_produce_ack" {
            return Ok(());
        }
        return Err((
            format!("the {} stands for the outside world and cannot {kind}", designs::FRONTEND),
            "crash or pause a service instance such as product-service-0 (drop_produce_ack may target the frontend)".into(),
        ));
    }
    let n = instances.max(1);
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
        if index.parse::<u64>().is_ok_and(|i| i < u64::from(n)) {
            return Ok(());
        }
        let help = match index.parse::<u64>().ok().filter(|i| *i < MAX_INSTANCES) {
            Some(i) => format!(
                "raise topology.instances to {}, or pick {}",
                i + 1,
                named(service)
            ),
            None => format!("pick {}", named(service)),
        };
        return Err((
            format!(
                "instance {name} is out of range: topology.instances = {n}, so use {}",
                named(service)
            ),
            help,
        ));
    }
    let mut candidates: Vec<String> = Vec::new();
    for service in designs::SERVICES {
        candidates.extend((0..n.min(16)).map(|i| format!("{service}-{i}")));
    }
    if kind == "drop_produce_ack" {
        candidates.push(designs::FRONTEND.to_string());
    }
    let services = designs::SERVICES.join(" or ");
    let rest =
        format!(
        "instances are named <service>-<index> with service {services}, e.g. product-service-0{}",
        if kind == "drop_produce_ack" { ", or frontend" } else { "" }
    );
    let help = suggest(name, candidates.iter().map(String::as_str), rest);
    Err((format!("unknown instance {}", quote(name)), help))
}
