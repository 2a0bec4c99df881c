//! The invariant checker: judges a run from its record alone.
//!
//! The checker reads what a run left behind — the trace, the final broker (logs, markers)
//! and the final state stores — plus the design's declared [`Schema`]. It never asks a
//! design what happened. Everything is rebuilt from a shared [`History`]: the committed
//! records in global append order (each trace `Append` whose record the broker committed),
//! with domain events decoded by [`Msg::decode`].
//!
//! One function per invariant, kept apart (as TigerBeetle's `state_checker` and sled's
//! `event_verifier` are): each reads the history and returns its violations, each
//! explained in plain words with the orders, products, offsets and times involved, and
//! the trace sequence numbers of the events that prove it.
//!
//! Domain accounting (committed records only, in append order):
//!
//! * units in stock per product: the sum of `StockAdded.quantity` so far;
//! * a *hold* takes units for an order: `ProductReserved`, `OrderValidation` PASS,
//!   `StockReserved`; a *release* gives them back: `ReservationReleased`; a confirmation
//!   (`ReservationConfirmed`) keeps them held; rejections (`OrderRejected`,
//!   `OrderValidation` FAIL, `StockRejected`) hold nothing;
//! * domain events are read from every topic except internal ones: changelog topics
//!   (`…-changelog`, which hold store values) and repartition topics (`…-repartition`,
//!   which hold copies of events already counted where they were first written). A design
//!   writes each domain event once, to one topic.

use crate::designs::{Ledger, Schema, StockView};
use crate::domain::{Msg, Validation};
use oversell_sim::protocol::{ControlType, Isolation, Offset, ProducerId};
use oversell_sim::{Event, Millis, Outcome, RunResult, TopicPartition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// At most this many violations are reported per invariant (the first ones, by time);
/// the last one reported says how many more there were.
pub const MAX_REPORTED: usize = 3;

/// When a property must hold (stateright's always / eventually).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    /// At every point of the committed history.
    Always,
    /// Once the run is quiescent (judged only when it ended quiescent).
    AtQuiescence,
    /// Within a bounded time after the last fault healed.
    Eventually,
}

impl Property {
    pub fn name(self) -> &'static str {
        match self {
            Property::Always => "always",
            Property::AtQuiescence => "at quiescence",
            Property::Eventually => "eventually",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The invariants every run is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    NoOversell,
    Conservation,
    OneDecision,
    NoDuplicateEffect,
    EventualDecision,
    ViewMatchesLog,
    NoAbortedRead,
    NoLostWrite,
    MonotonicOffsets,
}

impl Invariant {
    pub const ALL: [Invariant; 9] = [
        Invariant::NoOversell,
        Invariant::Conservation,
        Invariant::OneDecision,
        Invariant::NoDuplicateEffect,
        Invariant::EventualDecision,
        Invariant::ViewMatchesLog,
        Invariant::NoAbortedRead,
        Invariant::NoLostWrite,
        Invariant::MonotonicOffsets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoOversell => "no-oversell",
            Invariant::Conservation => "conservation",
            Invariant::OneDecision => "one-decision",
            Invariant::NoDuplicateEffect => "no-duplicate-effect",
            Invariant::EventualDecision => "eventual-decision",
            Invariant::ViewMatchesLog => "view-matches-log",
            Invariant::NoAbortedRead => "no-aborted-read",
            Invariant::NoLostWrite => "no-lost-write",
            Invariant::MonotonicOffsets => "monotonic-offsets",
        }
    }

    pub fn parse(name: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == name)
    }

    pub fn property(self) -> Property {
        match self {
            Invariant::NoOversell
            | Invariant::OneDecision
            | Invariant::NoDuplicateEffect
            | Invariant::NoAbortedRead
            | Invariant::NoLostWrite
            | Invariant::MonotonicOffsets => Property::Always,
            Invariant::Conservation | Invariant::ViewMatchesLog => Property::AtQuiescence,
            Invariant::EventualDecision => Property::Eventually,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Invariant::NoOversell => "per product, units held for orders never exceed the units that were in stock",
            Invariant::Conservation => {
                "per product, available plus held units equal the units put in stock, and nothing is negative"
            }
            Invariant::OneDecision => "no order gets two decisions, or contradictory ones",
            Invariant::NoDuplicateEffect => {
                "no outcome event is committed twice for an order, and no reservation is applied twice to a store"
            }
            Invariant::EventualDecision => {
                "once faults heal, every placed order is decided (and every reservation settled) within a bound"
            }
            Invariant::ViewMatchesLog => "every state store equals the fold of its committed changelog",
            Invariant::NoAbortedRead => "no exactly-once (read_committed) consumer processes an aborted record",
            Invariant::NoLostWrite => {
                "every acknowledged write is in the log, committed, and processed by each application reading it"
            }
            Invariant::MonotonicOffsets => {
                "each consumer processes a partition's offsets in increasing order between rebalances and restarts"
            }
        }
    }

    /// Whether a run can be judged on this invariant: at-quiescence invariants only when
    /// the run ended quiescent.
    pub fn judged_on(self, run: &RunResult) -> bool {
        self.property() != Property::AtQuiescence || run.outcome == Outcome::Quiescent
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken invariant, with the events that prove it.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    /// Simulated time at which the invariant was seen broken.
    pub time: Millis,
    /// Plain words: orders, products, offsets (topic-partition@offset) and times.
    pub explanation: String,
    /// Trace sequence numbers of the events that prove it, ascending.
    pub evidence: Vec<u64>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] t={}ms: {}",
            self.invariant, self.time, self.explanation
        )?;
        if !self.evidence.is_empty() {
            let seqs: Vec<String> = self.evidence.iter().map(|s| format!("#{s}")).collect();
            write!(f, " (trace {})", seqs.join(", "))?;
        }
        Ok(())
    }
}

/// The checker's judgement of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// Per invariant (in [`Invariant::ALL`] order), the first few violations by time.
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// The invariants with at least one violation.
    pub fn violated(&self) -> BTreeSet<Invariant> {
        self.violations.iter().map(|v| v.invariant).collect()
    }

    /// No invariant was violated.
    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations of one invariant.
    pub fn of(&self, invariant: Invariant) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(move |v| v.invariant == invariant)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.holds() {
            return f.write_str("every invariant holds");
        }
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// Judge a run. `decision_bound_ms`: how long after an order is placed (or after the last
/// fault healed, whichever is later) it must be decided.
pub fn check(schema: &Schema, run: &RunResult, decision_bound_ms: Millis) -> Verdict {
    let history = History::from_run(run);
    let cx = Cx {
        schema,
        run,
        h: &history,
        bound: decision_bound_ms,
    };
    let mut violations = Vec::new();
    for invariant in Invariant::ALL {
        if invariant.judged_on(run) {
            violations.extend(first_few(judge(invariant, &cx)));
        }
    }
    Verdict { violations }
}

/// Judge a run on one invariant only (every violation, not just the first few).
pub fn check_one(
    invariant: Invariant,
    schema: &Schema,
    run: &RunResult,
    decision_bound_ms: Millis,
) -> Vec<Violation> {
    if !invariant.judged_on(run) {
        return Vec::new();
    }
    let history = History::from_run(run);
    let cx = Cx {
        schema,
        run,
        h: &history,
        bound: decision_bound_ms,
    };
    let mut all = judge(invariant, &cx);
    all.sort_by_key(|v| v.time);
    all
}

fn judge(invariant: Invariant, cx: &Cx<'_>) -> Vec<Violation> {
    match invariant {
        Invariant::NoOversell => no_oversell(cx),
        Invariant::Conservation => conservation(cx),
        Invariant::OneDecision => one_decision(cx),
        Invariant::NoDuplicateEffect => no_duplicate_effect(cx),
        Invariant::EventualDecision => eventual_decision(cx),
        Invariant::ViewMatchesLog => view_matches_log(cx),
        Invariant::NoAbortedRead => no_aborted_read(cx),
        Invariant::NoLostWrite => no_lost_write(cx),
        Invariant::MonotonicOffsets => monotonic_offsets(cx),
    }
}

/// The first [`MAX_REPORTED`] violations by time; the last says how many more there were.
fn first_few(mut all: Vec<Violation>) -> Vec<Violation> {
    all.sort_by_key(|v| v.time); // stable: ties keep the checker's order
    let more = all.len().saturating_sub(MAX_REPORTED);
    all.truncate(MAX_REPORTED);
    if more > 0 {
        if let Some(last) = all.last_mut() {
            let s = if more == 1 { "" } else { "s" };
            last.explanation.push_str(&format!(
                " (and {more} more violation{s} of {})",
                last.invariant
            ));
        }
    }
    all
}

// ====================================================================== history

/// A committed record, in its place in the run.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Trace sequence number of its `Append` event.
    pub seq: u64,
    /// Simulated time of the append.
    pub time: Millis,
    /// The scheduler choice that appended it: records of one produce request share it,
    /// and their order across partitions within the request carries no meaning.
    pub choice: u64,
    pub tp: TopicPartition,
    pub offset: Offset,
    pub key: Option<String>,
    pub value: Option<String>,
    /// The domain event, for records of non-internal topics that decode as one.
    pub msg: Option<Msg>,
}

impl Rec {
    /// `orders-0@3`
    pub fn place(&self) -> String {
        format!("{}@{}", self.tp, self.offset)
    }

    /// `orders-0@3 (t=12ms)`
    pub fn at(&self) -> String {
        format!("{}@{} (t={}ms)", self.tp, self.offset, self.time)
    }

    /// `OrderValidation PASS at order-validations-0@3 (t=12ms)`
    fn event_at(&self) -> String {
        match &self.msg {
            Some(m) => format!("{} at {}", label(m), self.at()),
            None => format!("a record at {}", self.at()),
        }
    }
}

/// The application of a client named `<instance>/<application>`.
fn app_of(client: &str) -> &str {
    client.split_once('/').map_or(client, |(_, app)| app)
}

/// The instance of a client named `<instance>/<application>`.
fn instance_of(client: &str) -> &str {
    client
        .split_once('/')
        .map_or(client, |(instance, _)| instance)
}

/// Changelog topics hold store values; repartition topics hold copies of events.
pub fn is_internal_topic(topic: &str) -> bool {
    topic.ends_with("-changelog") || topic.ends_with("-repartition")
}

/// The committed history of a run, rebuilt from its trace and final broker.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Committed data records in global append order.
    pub records: Vec<Rec>,
    /// Every appended record, committed or not: (partition, offset) → trace seq.
    appended: BTreeMap<(TopicPartition, Offset), u64>,
    /// Transaction outcomes as the trace tells them: (partition, offset) → (marker, its seq).
    markers: BTreeMap<(TopicPartition, Offset), (ControlType, u64)>,
    /// Indices into `records`, per partition.
    by_tp: BTreeMap<TopicPartition, Vec<usize>>,
    /// Order → index of its first committed `OrderPlaced`.
    placed: BTreeMap<String, usize>,
    /// Records handed to a processor (`Process` events): (application, partition, offset).
    processed: BTreeSet<(String, TopicPartition, Offset)>,
}

impl History {
    /// Walk the trace's `Append` events in order and keep the committed ones. Commitment
    /// is the final broker's (`is_committed`); for a record no longer in the log (removed by
    /// compaction), the trace's transaction markers decide.
    pub fn from_run(run: &RunResult) -> History {
        let broker = &run.broker;
        let mut h = History::default();
        let mut pending: BTreeMap<(TopicPartition, ProducerId), Vec<Offset>> = BTreeMap::new();
        for r in &run.trace.records {
            match &r.event {
                Event::Process {
                    client, tp, offset, ..
                } => {
                    h.processed
                        .insert((app_of(client).to_string(), tp.clone(), *offset));
                }
                Event::Append {
                    tp,
                    offset,
                    producer_id: Some(pid),
                    transactional: true,
                    ..
                } => pending.entry((tp.clone(), *pid)).or_default().push(*offset),
                Event::Marker {
                    tp,
                    producer_id,
                    control,
                    ..
                } => {
                    for o in pending
                        .remove(&(tp.clone(), *producer_id))
                        .unwrap_or_default()
                    {
                        h.markers.insert((tp.clone(), o), (*control, r.seq));
                    }
                }
                _ => {}
            }
        }
        for r in &run.trace.records {
            let Event::Append {
                tp,
                offset,
                key,
                value,
                transactional,
                ..
            } = &r.event
            else {
                continue;
            };
            h.appended.insert((tp.clone(), *offset), r.seq);
            let in_log = broker
                .log(tp)
                .binary_search_by_key(offset, |e| e.offset)
                .is_ok();
            let committed = if in_log {
                broker.is_committed(tp, *offset)
            } else {
                !*transactional
                    || matches!(
                        h.markers.get(&(tp.clone(), *offset)),
                        Some((ControlType::Commit, _))
                    )
            };
            if !committed {
                continue;
            }
            let msg = if is_internal_topic(&tp.topic) {
                None
            } else {
                value.as_deref().and_then(Msg::decode)
            };
            let index = h.records.len();
            if let Some(Msg::OrderPlaced { order_id, .. }) = &msg {
                h.placed.entry(order_id.clone()).or_insert(index);
            }
            h.by_tp.entry(tp.clone()).or_default().push(index);
            h.records.push(Rec {
                seq: r.seq,
                time: r.time,
                choice: r.choice,
                tp: tp.clone(),
                offset: *offset,
                key: key.clone(),
                value: value.clone(),
                msg,
            });
        }
        h
    }

    /// Committed domain events, in append order.
    pub fn domain(&self) -> impl Iterator<Item = (&Rec, &Msg)> {
        self.records
            .iter()
            .filter_map(|r| r.msg.as_ref().map(|m| (r, m)))
    }

    /// The first committed `OrderPlaced` of an order.
    pub fn placed(&self, order: &str) -> Option<&Rec> {
        self.placed.get(order).map(|i| &self.records[*i])
    }

    /// Every order with a committed `OrderPlaced`, with its first one.
    pub fn orders(&self) -> impl Iterator<Item = (&str, &Rec)> {
        self.placed
            .iter()
            .map(|(o, i)| (o.as_str(), &self.records[*i]))
    }

    /// Committed records of one partition, in offset order.
    pub fn partition(&self, tp: &TopicPartition) -> impl Iterator<Item = &Rec> {
        self.by_tp
            .get(tp)
            .into_iter()
            .flatten()
            .map(|i| &self.records[*i])
    }

    /// The fold of a changelog partition's committed records: key → its last record
    /// (a tombstone deletes the key).
    pub fn fold_partition(&self, tp: &TopicPartition) -> BTreeMap<&str, &Rec> {
        let mut out = BTreeMap::new();
        for r in self.partition(tp) {
            let Some(key) = r.key.as_deref() else {
                continue;
            };
            if r.value.is_some() {
                out.insert(key, r);
            } else {
                out.remove(key);
            }
        }
        out
    }

    /// The fold of a changelog topic, all partitions: key → its last record in append
    /// order (a tombstone deletes the key).
    pub fn fold_topic(&self, topic: &str) -> BTreeMap<&str, &Rec> {
        let mut out = BTreeMap::new();
        for r in self.records.iter().filter(|r| r.tp.topic == topic) {
            let Some(key) = r.key.as_deref() else {
                continue;
            };
            if r.value.is_some() {
                out.insert(key, r);
            } else {
                out.remove(key);
            }
        }
        out
    }

    /// Whether a record was appended at all (committed or not).
    pub fn was_appended(&self, tp: &TopicPartition, offset: Offset) -> Option<u64> {
        self.appended.get(&(tp.clone(), offset)).copied()
    }

    /// The application that owns a changelog topic (`<application.id>-<store>-changelog`),
    /// among the applications that processed anything.
    fn owner_of(&self, changelog: &str) -> Option<&str> {
        let apps: BTreeSet<&str> = self.processed.iter().map(|(a, _, _)| a.as_str()).collect();
        apps.into_iter()
            .filter(|a| {
                changelog.len() > a.len()
                    && changelog.starts_with(a)
                    && changelog[a.len()..].starts_with('-')
            })
            .max_by_key(|a| a.len())
    }

    /// Committed `StockAdded` records of `product` that `app` never processed.
    fn unprocessed_restocks<'h>(&'h self, app: &str, product: &Product<'h>) -> Vec<&'h Rec> {
        product
            .stock_recs
            .iter()
            .copied()
            .filter(|r| {
                !self
                    .processed
                    .contains(&(app.to_string(), r.tp.clone(), r.offset))
            })
            .collect()
    }

    /// The transaction marker that settled a transactional record, if the trace shows one.
    fn marker(&self, tp: &TopicPartition, offset: Offset) -> Option<(ControlType, u64)> {
        self.markers.get(&(tp.clone(), offset)).copied()
    }
}

/// Everything a checker reads.
struct Cx<'a> {
    schema: &'a Schema,
    run: &'a RunResult,
    h: &'a History,
    bound: Millis,
}

impl Cx<'_> {
    fn violation(
        &self,
        invariant: Invariant,
        time: Millis,
        explanation: String,
        mut evidence: Vec<u64>,
    ) -> Violation {
        evidence.sort_unstable();
        evidence.dedup();
        Violation {
            invariant,
            time,
            explanation,
            evidence,
        }
    }

    /// `o1 (orders-0@0)`, naming where the order was placed.
    fn order(&self, order: &str) -> String {
        match self.h.placed(order) {
            Some(p) => format!("{order} ({})", p.place()),
            None => order.to_string(),
        }
    }

    fn quiescent(&self) -> bool {
        self.run.outcome == Outcome::Quiescent
    }
}

// ====================================================================== domain roles

/// What a domain event does to the stock books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Stock,
    Placed,
    Hold,
    Reject,
    Release,
    Confirm,
    FinalConfirmed,
    FinalCancelled,
    /// Commands and other events that change nothing by themselves.
    Other,
}

fn role(msg: &Msg) -> Role {
    match msg {
        Msg::StockAdded { .. } => Role::Stock,
        Msg::OrderPlaced { .. } => Role::Placed,
        Msg::ProductReserved { .. } | Msg::StockReserved { .. } => Role::Hold,
        Msg::OrderValidation { result, .. } => match result {
            Validation::Pass => Role::Hold,
            Validation::Fail => Role::Reject,
        },
        Msg::OrderRejected { .. } | Msg::StockRejected { .. } => Role::Reject,
        Msg::ReservationReleased { .. } => Role::Release,
        Msg::ReservationConfirmed { .. } => Role::Confirm,
        Msg::OrderConfirmed { .. } => Role::FinalConfirmed,
        Msg::OrderCancelled { .. } => Role::FinalCancelled,
        Msg::ReserveStock { .. }
        | Msg::ConfirmReservation { .. }
        | Msg::CancelReservation { .. }
        | Msg::ConfirmRejected { .. } => Role::Other,
    }
}

/// Whether an outcome says yes (true) or no (false) to an order.
fn polarity(msg: &Msg) -> Option<bool> {
    match role(msg) {
        Role::Hold | Role::Confirm | Role::FinalConfirmed => Some(true),
        Role::Reject | Role::Release | Role::FinalCancelled => Some(false),
        _ => None,
    }
}

fn product_of(msg: &Msg) -> Option<&str> {
    match msg {
        Msg::OrderPlaced { product_id, .. }
        | Msg::StockAdded { product_id, .. }
        | Msg::ProductReserved { product_id, .. }
        | Msg::OrderRejected { product_id, .. }
        | Msg::OrderValidation { product_id, .. }
        | Msg::ReserveStock { product_id, .. }
        | Msg::ConfirmReservation { product_id, .. }
        | Msg::CancelReservation { product_id, .. }
        | Msg::StockReserved { product_id, .. }
        | Msg::StockRejected { product_id, .. }
        | Msg::ReservationConfirmed { product_id, .. }
        | Msg::ReservationReleased { product_id, .. }
        | Msg::ConfirmRejected { product_id, .. } => Some(product_id),
        Msg::OrderConfirmed { .. } | Msg::OrderCancelled { .. } => None,
    }
}

fn units_of(msg: &Msg) -> u64 {
    match msg {
        Msg::OrderPlaced { quantity, .. }
        | Msg::StockAdded { quantity, .. }
        | Msg::ProductReserved { quantity, .. }
        | Msg::OrderValidation { quantity, .. }
        | Msg::ReserveStock { quantity, .. }
        | Msg::StockReserved { quantity, .. }
        | Msg::ReservationConfirmed { quantity, .. }
        | Msg::ReservationReleased { quantity, .. } => *quantity,
        _ => 0,
    }
}

/// `OrderValidation PASS`, `ProductReserved`, ...
fn label(msg: &Msg) -> String {
    match msg {
        Msg::OrderValidation { result, .. } => {
            let r = match result {
                Validation::Pass => "PASS",
                Validation::Fail => "FAIL",
            };
            format!("OrderValidation {r}")
        }
        other => other.kind().to_string(),
    }
}

// ====================================================================== stock books

/// Units an order holds of a product, and the events behind them.
#[derive(Clone, Debug, Default)]
struct Held<'h> {
    /// Outstanding units: holds − releases (never below zero).
    units: u64,
    /// Units of the order's first hold (what one application of it takes).
    once: u64,
    /// Hold events still (partly) outstanding.
    holds: Vec<&'h Rec>,
    /// Every hold event, outstanding or not.
    all_holds: Vec<&'h Rec>,
    releases: Vec<&'h Rec>,
}

/// One product's books, from the committed events.
#[derive(Clone, Debug, Default)]
struct Product<'h> {
    stock: u64,
    stock_recs: Vec<&'h Rec>,
    held: BTreeMap<&'h str, Held<'h>>,
}

impl<'h> Product<'h> {
    fn held_units(&self) -> u64 {
        self.held.values().map(|h| h.units).sum()
    }

    /// Units held counting each order's reservation once.
    fn held_once(&self) -> u64 {
        self.held
            .values()
            .filter(|h| h.units > 0)
            .map(|h| h.once.min(h.units))
            .sum()
    }

    fn holders(&self) -> Vec<(&'h str, &Held<'h>)> {
        self.held
            .iter()
            .filter(|(_, h)| h.units > 0)
            .map(|(o, h)| (*o, h))
            .collect()
    }

    fn evidence(&self) -> Vec<u64> {
        let mut e: Vec<u64> = self.stock_recs.iter().map(|r| r.seq).collect();
        for h in self.held.values().filter(|h| h.units > 0) {
            e.extend(h.holds.iter().map(|r| r.seq));
        }
        e
    }
}

#[derive(Clone, Debug, Default)]
struct Books<'h> {
    products: BTreeMap<&'h str, Product<'h>>,
}

impl<'h> Books<'h> {
    /// Apply one committed domain event; returns the product and role it touched.
    fn apply(&mut self, rec: &'h Rec, msg: &'h Msg) -> Option<(&'h str, Role)> {
        let r = role(msg);
        let product = product_of(msg)?;
        let units = units_of(msg);
        match r {
            Role::Stock => {
                let p = self.products.entry(product).or_default();
                p.stock += units;
                p.stock_recs.push(rec);
            }
            Role::Hold => {
                let order = msg.order_id()?;
                let held = self
                    .products
                    .entry(product)
                    .or_default()
                    .held
                    .entry(order)
                    .or_default();
                if held.all_holds.is_empty() {
                    held.once = units;
                }
                held.units += units;
                held.holds.push(rec);
                held.all_holds.push(rec);
            }
            Role::Release => {
                let order = msg.order_id()?;
                let held = self
                    .products
                    .entry(product)
                    .or_default()
                    .held
                    .entry(order)
                    .or_default();
                held.units = held.units.saturating_sub(units);
                held.releases.push(rec);
                if held.units == 0 {
                    held.holds.clear();
                }
            }
            _ => {}
        }
        Some((product, r))
    }

    fn of(h: &'h History) -> Books<'h> {
        let mut b = Books::default();
        for (rec, msg) in h.domain() {
            b.apply(rec, msg);
        }
        b
    }
}

// ====================================================================== words

fn units<N: Into<i128>>(n: N) -> String {
    let n: i128 = n.into();
    if n == 1 {
        format!("{n} unit")
    } else {
        format!("{n} units")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    join_list(items, "and")
}

/// `1 phantom unit`, `2 leaked units`.
fn units_adj<N: Into<i128>>(n: N, adjective: &str) -> String {
    let n: i128 = n.into();
    if n == 1 {
        format!("{n} {adjective} unit")
    } else {
        format!("{n} {adjective} units")
    }
}

fn join_list(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// The store behind a changelog topic, for explanations.
fn store_name(changelog: &str) -> &str {
    changelog.strip_suffix("-changelog").unwrap_or(changelog)
}

fn orders_word(n: usize) -> &'static str {
    if n == 1 {
        "order"
    } else {
        "orders"
    }
}

// ====================================================================== 1. no-oversell

/// Walking the committed history in append order, per product, units held (holds −
/// releases; confirmed units stay held; a duplicate hold counts twice) never exceed the
/// units in stock so far.
fn no_oversell(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut books = Books::default();
    let mut over: BTreeSet<&str> = BTreeSet::new();
    let domain: Vec<(&Rec, &Msg)> = cx.h.domain().collect();
    // Products touched by the current produce request, with the record that last did.
    let mut touched: BTreeMap<&str, (&Rec, &Msg)> = BTreeMap::new();
    for (i, (rec, msg)) in domain.iter().copied().enumerate() {
        if let Some((product, role)) = books.apply(rec, msg) {
            if matches!(role, Role::Stock | Role::Hold | Role::Release) {
                touched.insert(product, (rec, msg));
            }
        }
        // One produce request is appended at once: judge it whole, since a release it
        // carries may sit on a later partition than the hold it made room for.
        if domain
            .get(i + 1)
            .is_some_and(|(next, _)| next.choice == rec.choice)
        {
            continue;
        }
        for (product, (rec, msg)) in std::mem::take(&mut touched) {
            out.extend(judge_oversell(cx, &books, &mut over, product, rec, msg));
        }
    }
    out
}

/// The oversell of one product after a produce request, if it begins there.
fn judge_oversell<'h>(
    cx: &Cx<'h>,
    books: &Books<'h>,
    over: &mut BTreeSet<&'h str>,
    product: &'h str,
    rec: &'h Rec,
    msg: &'h Msg,
) -> Option<Violation> {
    {
        let p = books.products.get(product)?;
        let held = p.held_units();
        if held <= p.stock {
            over.remove(product);
            return None;
        }
        if !over.insert(product) {
            return None; // still oversold: reported when it began
        }
        let holders = p.holders();
        let names: Vec<String> = holders.iter().map(|(o, _)| cx.order(o)).collect();
        let mut holds: Vec<&Rec> = holders
            .iter()
            .flat_map(|(_, h)| h.holds.iter().copied())
            .collect();
        holds.sort_by_key(|r| r.seq);
        let what = if holds
            .iter()
            .all(|r| r.msg.as_ref().map(label) == rec.msg.as_ref().map(label))
        {
            let places: Vec<String> = holds.iter().map(|r| r.at()).collect();
            format!("{} at {}", label(msg), and_list(&places))
        } else {
            let places: Vec<String> = holds.iter().map(|r| r.event_at()).collect();
            and_list(&places)
        };
        let verb = if holders.len() == 1 { "holds" } else { "hold" };
        let explanation = format!(
            "{product} had {} in stock, but {} {} {verb} {}: {what}",
            units(p.stock),
            orders_word(holders.len()),
            and_list(&names),
            units(held),
        );
        Some(cx.violation(Invariant::NoOversell, rec.time, explanation, p.evidence()))
    }
}

// ====================================================================== 2. conservation

/// What the design's stores say about one product (from the committed changelog).
struct StoreView<'h> {
    /// Units available per the stores.
    available: i64,
    /// How the stores arrive at it, in words.
    says: String,
    /// Negative parts, in words.
    negative: Vec<String>,
    /// Changelog records read.
    recs: Vec<&'h Rec>,
    /// The ledger, for a ledger store.
    ledger: Option<Ledger>,
}

/// Read an integer store value.
fn int_value(rec: Option<&&Rec>) -> Result<i64, String> {
    match rec {
        None => Ok(0),
        Some(r) => {
            let v = r.value.as_deref().unwrap_or_default();
            v.trim()
                .parse()
                .map_err(|_| format!("the value {v:?} at {} is not a number", r.at()))
        }
    }
}

/// The store views of every product the stores mention, or a reason they cannot be read.
fn store_views<'h>(
    cx: &Cx<'h>,
    products: &BTreeSet<&'h str>,
) -> BTreeMap<&'h str, Result<StoreView<'h>, String>> {
    let mut out = BTreeMap::new();
    match &cx.schema.stock {
        StockView::Available { changelog } => {
            let fold = cx.h.fold_topic(changelog);
            let keys: BTreeSet<&str> = products
                .iter()
                .copied()
                .chain(fold.keys().copied())
                .collect();
            let name = store_name(changelog);
            for product in keys {
                let rec = fold.get(product);
                let view = int_value(rec).map(|available| StoreView {
                    available,
                    says: if rec.is_some() {
                        format!("the {name} store says {available} available")
                    } else {
                        format!("the {name} store has no entry (0 available)")
                    },
                    negative: if available < 0 {
                        vec![format!("{available} available")]
                    } else {
                        vec![]
                    },
                    recs: rec.into_iter().copied().collect(),
                    ledger: None,
                });
                out.insert(product, view);
            }
        }
        StockView::TotalMinusReserved {
            total_changelog,
            reserved_changelog,
        } => {
            let totals = cx.h.fold_topic(total_changelog);
            let reserved = cx.h.fold_topic(reserved_changelog);
            let keys: BTreeSet<&str> = products
                .iter()
                .copied()
                .chain(totals.keys().copied())
                .chain(reserved.keys().copied())
                .collect();
            for product in keys {
                let (t, r) = (totals.get(product), reserved.get(product));
                let view = int_value(t).and_then(|total| {
                    int_value(r).map(|res| {
                        let mut negative = Vec::new();
                        if total < 0 {
                            negative.push(format!("{total} in total"));
                        }
                        if res < 0 {
                            negative.push(format!("{res} reserved"));
                        }
                        if total - res < 0 {
                            negative.push(format!("{} available", total - res));
                        }
                        StoreView {
                            available: total - res,
                            says: format!(
                                "the stores say {total} in total ({}) − {res} reserved ({}) = {} available",
                                store_name(total_changelog),
                                store_name(reserved_changelog),
                                total - res
                            ),
                            negative,
                            recs: t.into_iter().chain(r).copied().collect(),
                            ledger: None,
                        }
                    })
                });
                out.insert(product, view);
            }
        }
        StockView::Ledger { changelog } => {
            let fold = cx.h.fold_topic(changelog);
            let keys: BTreeSet<&str> = products
                .iter()
                .copied()
                .chain(fold.keys().copied())
                .collect();
            let name = store_name(changelog);
            for product in keys {
                let rec = fold.get(product);
                let ledger = match rec {
                    None => Ok(Ledger::default()),
                    Some(r) => {
                        serde_json::from_str::<Ledger>(r.value.as_deref().unwrap_or_default())
                            .map_err(|e| {
                                format!("the {name} value at {} is not a ledger: {e}", r.at())
                            })
                    }
                };
                let view = ledger.map(|l| {
                    let reserved: u64 = l.reserved.values().map(|(u, _)| *u).sum();
                    let confirmed: u64 = l.confirmed.values().sum();
                    StoreView {
                        available: l.available,
                        says: if rec.is_some() {
                            format!(
                                "the {name} ledger says {} available ({reserved} reserved, {confirmed} confirmed)",
                                l.available
                            )
                        } else {
                            format!("the {name} store has no ledger (0 available)")
                        },
                        negative: if l.available < 0 { vec![format!("{} available", l.available)] } else { vec![] },
                        recs: rec.into_iter().copied().collect(),
                        ledger: Some(l),
                    }
                });
                out.insert(product, view);
            }
        }
    }
    out
}

/// At quiescence, per product: the stores' available units plus the units held per the
/// committed events equal the units put in stock; nothing in the stores is negative; for a
/// ledger, its own books balance too and its reservations match the events order by order.
fn conservation(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let books = Books::of(cx.h);
    let products: BTreeSet<&str> = books.products.keys().copied().collect();
    let empty = Product::default();
    for (product, view) in store_views(cx, &products) {
        let p = books.products.get(product).unwrap_or(&empty);
        let view = match view {
            Ok(v) => v,
            Err(why) => {
                let explanation = format!("{product}: cannot read the store: {why}");
                out.push(cx.violation(
                    Invariant::Conservation,
                    cx.run.end_time,
                    explanation,
                    p.evidence(),
                ));
                continue;
            }
        };
        let stock = p.stock as i64;
        let held = p.held_units() as i64;
        let holders: Vec<&str> = p.holders().iter().map(|(o, _)| *o).collect();
        let held_words = if holders.is_empty() {
            "no units are held".to_string()
        } else {
            format!(
                "{} {} held by {} {}",
                units(held),
                if held == 1 { "is" } else { "are" },
                orders_word(holders.len()),
                holders.join(", ")
            )
        };
        let mut problems = Vec::new();
        let sum = view.available + held;
        if !view.negative.is_empty() {
            // Balanced books with a negative store: units promised that never existed.
            let phantom = if sum == stock {
                (-view.available).max(0)
            } else {
                0
            };
            let tail = if phantom > 0 {
                format!(": {}", units_adj(phantom, "phantom"))
            } else {
                String::new()
            };
            problems.push(format!("negative: {}{tail}", view.negative.join(", ")));
        }
        if sum != stock {
            let diff = sum - stock;
            let what = if diff > 0 {
                format!(
                    "{} (counted but never in stock)",
                    units_adj(diff, "phantom")
                )
            } else {
                format!(
                    "{} (neither available nor held)",
                    units_adj(-diff, "leaked")
                )
            };
            problems.push(format!(
                "{} available + {held} held = {sum}, not {stock}: {what}",
                view.available
            ));
        }
        if let Some(l) = &view.ledger {
            let ledger_held: u64 = l.reserved.values().map(|(u, _)| *u).sum::<u64>()
                + l.confirmed.values().sum::<u64>();
            let own = l.available + ledger_held as i64;
            if own != stock && own != sum {
                problems.push(format!(
                    "the ledger's own books give {} available + {ledger_held} reserved or confirmed = {own}, not {stock}",
                    l.available
                ));
            }
            let orders: BTreeSet<&str> = l
                .reserved
                .keys()
                .chain(l.confirmed.keys())
                .map(String::as_str)
                .chain(p.held.keys().copied())
                .collect();
            for order in orders {
                let in_ledger = l.reserved.get(order).map_or(0, |(u, _)| *u)
                    + l.confirmed.get(order).copied().unwrap_or(0);
                let by_events = p.held.get(order).map_or(0, |h| h.units);
                if in_ledger != by_events {
                    let events: Vec<String> = p
                        .held
                        .get(order)
                        .map(|h| {
                            h.all_holds
                                .iter()
                                .chain(&h.releases)
                                .map(|r| r.event_at())
                                .collect()
                        })
                        .unwrap_or_default();
                    let events = if events.is_empty() {
                        "no hold or release events".to_string()
                    } else {
                        and_list(&events)
                    };
                    problems.push(format!(
                        "the ledger holds {} for order {order}, but its committed events leave {} ({events})",
                        units(in_ledger),
                        units(by_events)
                    ));
                }
            }
        }
        if problems.is_empty() {
            continue;
        }
        let explanation = format!(
            "{product}: {} in stock, but {} while {held_words}; {}",
            units(stock),
            view.says,
            problems.join("; ")
        );
        let mut evidence = p.evidence();
        evidence.extend(view.recs.iter().map(|r| r.seq));
        out.push(cx.violation(
            Invariant::Conservation,
            cx.run.end_time,
            explanation,
            evidence,
        ));
    }
    out
}

// ====================================================================== 3. one-decision

/// Per order, at most one committed event of the types in `schema.decisions`.
fn one_decision(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut decided: BTreeMap<&str, Vec<(&Rec, &Msg)>> = BTreeMap::new();
    for (rec, msg) in cx.h.domain() {
        if !cx.schema.decisions.contains(&msg.kind()) {
            continue;
        }
        let Some(order) = msg.order_id() else {
            continue;
        };
        let list = decided.entry(order).or_default();
        list.push((rec, msg));
        if list.len() < 2 {
            continue;
        }
        let (first, first_msg) = list[0];
        let contradictory = match (polarity(first_msg), polarity(msg)) {
            (Some(a), Some(b)) => a != b,
            _ => label(first_msg) != label(msg),
        };
        let explanation = if contradictory {
            format!(
                "order {} got contradictory decisions: {}, then {}",
                cx.order(order),
                first.event_at(),
                rec.event_at()
            )
        } else if label(first_msg) == label(msg) {
            format!(
                "order {} was decided twice: {} at {} and again at {}",
                cx.order(order),
                label(msg),
                first.at(),
                rec.at()
            )
        } else {
            format!(
                "order {} got two decisions: {}, then {}",
                cx.order(order),
                first.event_at(),
                rec.event_at()
            )
        };
        let evidence = list.iter().map(|(r, _)| r.seq).collect();
        out.push(cx.violation(Invariant::OneDecision, rec.time, explanation, evidence));
    }
    out
}

// ====================================================================== 4. no-duplicate-effect

/// No outcome event (hold, reject, release, confirm, final) is committed twice for the
/// same order; and no store applied a reservation twice: the reserved store above the units
/// of the orders that passed (each counted once), the available store below stock minus
/// the units held (each order once), or a ledger whose available plus its own reservations
/// differs from the units in stock.
fn no_duplicate_effect(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    // Duplicate outcome events.
    let mut seen: BTreeMap<(&str, String), &Rec> = BTreeMap::new();
    for (rec, msg) in cx.h.domain() {
        let r = role(msg);
        if matches!(r, Role::Stock | Role::Placed | Role::Other) {
            continue;
        }
        let Some(order) = msg.order_id() else {
            continue;
        };
        let key = (order, label(msg));
        match seen.get(&key) {
            None => {
                seen.insert(key, rec);
            }
            Some(first) => {
                let explanation = format!(
                    "order {}: {} committed twice, at {} and again at {}",
                    cx.order(order),
                    key.1,
                    first.at(),
                    rec.at()
                );
                out.push(cx.violation(
                    Invariant::NoDuplicateEffect,
                    rec.time,
                    explanation,
                    vec![first.seq, rec.seq],
                ));
            }
        }
    }
    // Reservations applied twice in a store.
    let books = Books::of(cx.h);
    let empty = Product::default();
    match &cx.schema.stock {
        StockView::TotalMinusReserved {
            reserved_changelog, ..
        } => {
            // Reserved units only grow, together with the PASS they back: sound at any time.
            for (product, rec) in cx.h.fold_topic(reserved_changelog) {
                let Ok(reserved) = int_value(Some(&rec)) else {
                    continue;
                };
                let p = books.products.get(product).unwrap_or(&empty);
                let once: u64 = p
                    .held
                    .values()
                    .filter(|h| !h.all_holds.is_empty())
                    .map(|h| h.once)
                    .sum();
                if reserved <= once as i64 {
                    continue;
                }
                let passed: Vec<String> = p
                    .held
                    .iter()
                    .filter(|(_, h)| !h.all_holds.is_empty())
                    .map(|(o, h)| format!("{o} ({}, {})", units(h.once), h.all_holds[0].event_at()))
                    .collect();
                let who = if passed.is_empty() {
                    "no order passed".to_string()
                } else {
                    format!(
                        "only {} {} passed",
                        orders_word(passed.len()),
                        and_list(&passed)
                    )
                };
                let explanation = format!(
                    "{} holds {} reserved for {product} (at {}), but {who}: {} reserved twice",
                    store_name(reserved_changelog),
                    units(reserved),
                    rec.at(),
                    units(reserved - once as i64)
                );
                let mut evidence = vec![rec.seq];
                evidence.extend(
                    p.held
                        .values()
                        .flat_map(|h| h.all_holds.iter().map(|r| r.seq)),
                );
                out.push(cx.violation(
                    Invariant::NoDuplicateEffect,
                    rec.time,
                    explanation,
                    evidence,
                ));
            }
        }
        // A store that lags its events is not yet a duplicate: judged once quiescent.
        StockView::Available { changelog } if cx.quiescent() => {
            for (product, rec) in cx.h.fold_topic(changelog) {
                let Ok(available) = int_value(Some(&rec)) else {
                    continue;
                };
                let p = books.products.get(product).unwrap_or(&empty);
                let expected = p.stock as i64 - p.held_once() as i64;
                if available >= expected || restock_lost(cx, changelog, p) {
                    continue;
                }
                let holders: Vec<String> = p
                    .holders()
                    .iter()
                    .map(|(o, h)| format!("{o} ({})", units(h.once.min(h.units))))
                    .collect();
                let held = if holders.is_empty() {
                    "no order holds any".to_string()
                } else {
                    format!(
                        "{} {} hold {}",
                        orders_word(holders.len()),
                        and_list(&holders),
                        units(p.held_once())
                    )
                };
                let explanation = format!(
                    "the {} store says {available} available for {product} (at {}), but {} were in stock and {held}: \
                     {} taken twice",
                    store_name(changelog),
                    rec.at(),
                    units(p.stock),
                    units(expected - available)
                );
                let mut evidence = p.evidence();
                evidence.push(rec.seq);
                out.push(cx.violation(
                    Invariant::NoDuplicateEffect,
                    cx.run.end_time,
                    explanation,
                    evidence,
                ));
            }
        }
        StockView::Ledger { changelog } => {
            out.extend(ledger_reapplied(cx, changelog));
            if cx.quiescent() {
                out.extend(ledger_given_back_twice(cx, changelog, &books));
            }
        }
        _ => {}
    }
    out
}

/// Whether some restock of the product never reached the store's application: then a
/// shortfall in the store is a lost write, not a duplicate.
fn restock_lost(cx: &Cx<'_>, changelog: &str, p: &Product<'_>) -> bool {
    cx.h.owner_of(changelog)
        .is_some_and(|app| !cx.h.unprocessed_restocks(app, p).is_empty())
}

/// Walking each product's committed ledger records: an order reserved again — with a new
/// expiry while still reserved, or after its units were confirmed or released — is a
/// reservation applied twice.
fn ledger_reapplied(cx: &Cx<'_>, changelog: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut last: BTreeMap<&str, (Ledger, &Rec)> = BTreeMap::new();
    for rec in cx.h.records.iter().filter(|r| r.tp.topic == changelog) {
        let Some(product) = rec.key.as_deref() else {
            continue;
        };
        let Some(l) = rec
            .value
            .as_deref()
            .and_then(|v| serde_json::from_str::<Ledger>(v).ok())
        else {
            last.remove(product);
            continue;
        };
        if let Some((prev, prev_rec)) = last.get(product) {
            for (order, (units_now, expiry)) in &l.reserved {
                let before =
                    if let Some((_, e)) = prev.reserved.get(order).filter(|(_, e)| e != expiry) {
                        format!("already reserved (expiring at t={e}ms)")
                    } else if prev.confirmed.contains_key(order) {
                        "already confirmed".to_string()
                    } else if prev.released.contains_key(order) {
                        "already released".to_string()
                    } else {
                        continue;
                    };
                let explanation = format!(
                    "the {} ledger of {product} reserved {} for order {} again at {}, when the previous \
                     ledger record ({}) had it {before}: {} taken from available twice",
                    store_name(changelog),
                    units(*units_now),
                    cx.order(order),
                    rec.at(),
                    prev_rec.place(),
                    units(*units_now)
                );
                out.push(cx.violation(
                    Invariant::NoDuplicateEffect,
                    rec.time,
                    explanation,
                    vec![prev_rec.seq, rec.seq],
                ));
            }
        }
        last.insert(product, (l, rec));
    }
    out
}

/// At quiescence, a ledger whose available plus its own reserved and confirmed units
/// exceed the units put in stock gave units back twice (a release or a restock applied
/// twice). The opposite shortfall may be a lost update or a lost restock: conservation's.
fn ledger_given_back_twice(cx: &Cx<'_>, changelog: &str, books: &Books<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let empty = Product::default();
    for (product, rec) in cx.h.fold_topic(changelog) {
        let Ok(l) = serde_json::from_str::<Ledger>(rec.value.as_deref().unwrap_or_default()) else {
            continue;
        };
        let p = books.products.get(product).unwrap_or(&empty);
        let held: i64 = l.reserved.values().map(|(u, _)| *u as i64).sum::<i64>()
            + l.confirmed.values().map(|u| *u as i64).sum::<i64>();
        let own = l.available + held;
        let stock = p.stock as i64;
        if own <= stock {
            continue;
        }
        let releases: Vec<String> = p
            .held
            .values()
            .flat_map(|h| h.releases.iter().map(|r| r.event_at()))
            .collect();
        let releases = if releases.is_empty() {
            String::new()
        } else {
            format!(" (releases: {})", and_list(&releases))
        };
        let explanation = format!(
            "the {} ledger of {product} (at {}) has {} available + {held} reserved or confirmed = {own}, \
             but {} were in stock: {} given back to available twice{releases}",
            store_name(changelog),
            rec.at(),
            l.available,
            units(stock),
            units(own - stock)
        );
        let mut evidence = p.evidence();
        evidence.extend(
            p.held
                .values()
                .flat_map(|h| h.releases.iter().map(|r| r.seq)),
        );
        evidence.push(rec.seq);
        out.push(cx.violation(
            Invariant::NoDuplicateEffect,
            cx.run.end_time,
            explanation,
            evidence,
        ));
    }
    out
}

// ====================================================================== 5. eventual-decision

/// Every committed `OrderPlaced` gets a committed decision (its first event of a type in
/// `schema.decisions`) — and, if `schema.reservations_settle`, every order that holds units
/// gets a `ReservationConfirmed` or `ReservationReleased` — within the bound after
/// max(placed, healed). Undecided at the end of the run: a violation unless the run was
/// cut short (diverged) before the deadline.
fn eventual_decision(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let run = cx.run;
    let mut decision: BTreeMap<&str, &Rec> = BTreeMap::new();
    let mut first_hold: BTreeMap<&str, &Rec> = BTreeMap::new();
    let mut settled: BTreeMap<&str, &Rec> = BTreeMap::new();
    for (rec, msg) in cx.h.domain() {
        let Some(order) = msg.order_id() else {
            continue;
        };
        if cx.schema.decisions.contains(&msg.kind()) {
            decision.entry(order).or_insert(rec);
        }
        match role(msg) {
            Role::Hold => {
                first_hold.entry(order).or_insert(rec);
            }
            Role::Confirm | Role::Release if first_hold.contains_key(order) => {
                settled.entry(order).or_insert(rec);
            }
            _ => {}
        }
    }
    let kinds = join_list(
        &cx.schema
            .decisions
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
        "or",
    );
    let ending = |deadline: Millis| -> Option<String> {
        let how = match &run.outcome {
            Outcome::Quiescent => "went quiet",
            Outcome::TimeBound => "hit its time bound",
            Outcome::StepBound => "hit its step bound",
            Outcome::Diverged(_) => {
                return (run.end_time >= deadline).then(|| "diverged".to_string())
            }
        };
        Some(if run.end_time >= deadline {
            format!("the run ended at t={}ms ({how}),", run.end_time)
        } else {
            format!(
                "the run {how} at t={}ms, before the deadline,",
                run.end_time
            )
        })
    };
    let healed = if run.healed_at > 0 {
        format!(", faults healed at t={}ms", run.healed_at)
    } else {
        String::new()
    };
    let mut judge = |order: &str, start: &Rec, done: Option<&&Rec>, what: &str, wanted: &str| {
        let deadline = start.time.max(run.healed_at) + cx.bound;
        let from = format!("placed at {}{healed}", start.at());
        match done {
            Some(d) if d.time <= deadline => {}
            Some(d) => {
                let explanation = format!(
                    "order {order} ({from}) was {what} only at t={}ms ({}), after its deadline t={deadline}ms ({}ms bound)",
                    d.time,
                    d.event_at(),
                    cx.bound
                );
                out.push(cx.violation(
                    Invariant::EventualDecision,
                    d.time,
                    explanation,
                    vec![start.seq, d.seq],
                ));
            }
            None => {
                let Some(end) = ending(deadline) else { return };
                let explanation = format!(
                    "order {order} ({from}) has no {wanted} by its deadline t={deadline}ms ({}ms bound): {end} with the order still not {what}",
                    cx.bound
                );
                let time = deadline.min(run.end_time);
                out.push(cx.violation(
                    Invariant::EventualDecision,
                    time,
                    explanation,
                    vec![start.seq],
                ));
            }
        }
    };
    for (order, placed) in cx.h.orders() {
        judge(
            order,
            placed,
            decision.get(order),
            "decided",
            &format!("decision ({kinds})"),
        );
    }
    if cx.schema.reservations_settle {
        for (order, hold) in &first_hold {
            let start = cx.h.placed(order).unwrap_or(hold);
            judge(
                order,
                start,
                settled.get(order),
                "settled",
                &format!(
                    "ReservationConfirmed or ReservationReleased for its hold ({})",
                    hold.event_at()
                ),
            );
        }
    }
    out
}

// ====================================================================== 6. view-matches-log

/// At quiescence, every store of every instance equals the fold of its committed changelog
/// partition (the broker topic ending in `-<store>-changelog`).
fn view_matches_log(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let topics: Vec<&str> = cx.run.broker.topics().map(|(t, _)| t).collect();
    for (instance, stores) in &cx.run.stores {
        for ((store, partition), contents) in stores {
            let suffix = format!("-{store}-changelog");
            let candidates: Vec<&str> = topics
                .iter()
                .copied()
                .filter(|t| t.ends_with(&suffix))
                .collect();
            let mut diffs_of_first = None;
            for topic in &candidates {
                let tp = TopicPartition::new(*topic, *partition);
                let fold = cx.h.fold_partition(&tp);
                let diffs = store_diffs(contents, &fold);
                if diffs.is_empty() {
                    diffs_of_first = None;
                    break;
                }
                diffs_of_first.get_or_insert((tp, diffs));
            }
            let Some((tp, diffs)) = diffs_of_first else {
                continue;
            };
            let n = diffs.len();
            let shown: Vec<String> = diffs.iter().take(3).map(|(text, _)| text.clone()).collect();
            let more = if n > 3 {
                format!(" (and {} more keys)", n - 3)
            } else {
                String::new()
            };
            let explanation = format!(
                "{instance}'s {store} store (partition {partition}) differs from the committed changelog {tp}: {}{more}",
                shown.join("; ")
            );
            let evidence = diffs.iter().filter_map(|(_, seq)| *seq).collect();
            out.push(cx.violation(
                Invariant::ViewMatchesLog,
                cx.run.end_time,
                explanation,
                evidence,
            ));
        }
    }
    out
}

/// Keys whose value differs between a store and its changelog fold, in words, with the
/// changelog record involved.
fn store_diffs(
    store: &BTreeMap<String, String>,
    fold: &BTreeMap<&str, &Rec>,
) -> Vec<(String, Option<u64>)> {
    let mut diffs = Vec::new();
    let keys: BTreeSet<&str> = store
        .keys()
        .map(String::as_str)
        .chain(fold.keys().copied())
        .collect();
    for key in keys {
        let in_store = store.get(key);
        let in_log = fold.get(key);
        match (in_store, in_log) {
            (Some(s), Some(r)) if r.value.as_ref() == Some(s) => {}
            (Some(s), Some(r)) => diffs.push((
                format!(
                    "key {key} is {s:?} in the store but {:?} in the log (at {})",
                    r.value.as_deref().unwrap_or(""),
                    r.at()
                ),
                Some(r.seq),
            )),
            (Some(s), None) => diffs.push((
                format!("key {key} is {s:?} in the store but absent from the log"),
                None,
            )),
            (None, Some(r)) => diffs.push((
                format!(
                    "key {key} is absent from the store but {:?} in the log (at {})",
                    r.value.as_deref().unwrap_or(""),
                    r.at()
                ),
                Some(r.seq),
            )),
            (None, None) => {}
        }
    }
    diffs
}

// ====================================================================== 7. no-aborted-read

/// No client of an exactly-once application — one that fetches with `read_committed`, or
/// whose instance runs a transactional producer (`transactional.id` `<app>-<instance>` for
/// client `<instance>/<app>`) — processes a record of an aborted transaction (Jepsen G1a).
fn no_aborted_read(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut read_committed: BTreeSet<&str> = BTreeSet::new();
    let mut read_uncommitted: BTreeSet<&str> = BTreeSet::new();
    let mut transactional_ids: BTreeSet<&str> = BTreeSet::new();
    for r in &cx.run.trace.records {
        match &r.event {
            Event::Fetch {
                client, isolation, ..
            } => {
                match isolation {
                    Isolation::ReadCommitted => read_committed.insert(client),
                    Isolation::ReadUncommitted => read_uncommitted.insert(client),
                };
            }
            Event::ProducerInit {
                transactional_id: Some(tid),
                ..
            } => {
                transactional_ids.insert(tid);
            }
            _ => {}
        }
    }
    let transactional = |client: &str| -> bool {
        client.split_once('/').is_some_and(|(instance, app)| {
            transactional_ids.contains(format!("{app}-{instance}").as_str())
        })
    };
    for r in &cx.run.trace.records {
        let Event::Process {
            client, tp, offset, ..
        } = &r.event
        else {
            continue;
        };
        let committed_reader = read_committed.contains(client.as_str());
        if !committed_reader && !transactional(client) {
            continue;
        }
        let in_log = cx
            .run
            .broker
            .log(tp)
            .binary_search_by_key(offset, |e| e.offset)
            .is_ok();
        let marker = cx.h.marker(tp, *offset);
        let aborted = if in_log {
            cx.run.broker.is_aborted(tp, *offset)
        } else {
            matches!(marker, Some((ControlType::Abort, _)))
        };
        if !aborted {
            continue;
        }
        let append = cx.h.was_appended(tp, *offset);
        let what = append
            .and_then(|seq| cx.run.trace.records.get(seq as usize))
            .and_then(|a| match &a.event {
                Event::Append { value, .. } => value.as_deref().and_then(Msg::decode),
                _ => None,
            })
            .map(|m| match m.order_id() {
                Some(o) => format!(" ({} for order {o})", label(&m)),
                None => format!(" ({})", label(&m)),
            })
            .unwrap_or_default();
        let how = if committed_reader && !read_uncommitted.contains(client.as_str()) {
            "a read_committed consumer"
        } else {
            "a consumer of an exactly-once application, fetching with read_uncommitted"
        };
        let aborted_at = match marker {
            Some((_, seq)) => cx
                .run
                .trace
                .records
                .get(seq as usize)
                .map(|m| format!(", aborted at t={}ms", m.time))
                .unwrap_or_default(),
            None => String::new(),
        };
        let explanation = format!(
            "{client}, {how}, processed {tp}@{offset}{what} at t={}ms, a record of an aborted transaction{aborted_at}",
            r.time
        );
        let mut evidence = vec![r.seq];
        evidence.extend(append);
        evidence.extend(marker.map(|(_, seq)| seq));
        out.push(cx.violation(Invariant::NoAbortedRead, r.time, explanation, evidence));
    }
    out
}

// ====================================================================== 8. no-lost-write

/// Every write acknowledged to a source producer (client `…/producer`) is in the log and
/// committed; and at quiescence, every application (the part of a client name after `/`)
/// that processed any record of that partition processed this one too.
fn no_lost_write(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let run = cx.run;
    // (partition, app) → offsets processed, with the first Process seq.
    let mut processed: BTreeMap<(&TopicPartition, &str), BTreeMap<Offset, u64>> = BTreeMap::new();
    for r in &run.trace.records {
        if let Event::Process {
            client, tp, offset, ..
        } = &r.event
        {
            let app = app_of(client);
            processed
                .entry((tp, app))
                .or_default()
                .entry(*offset)
                .or_insert(r.seq);
        }
    }
    for r in &run.trace.records {
        let Event::Acked {
            client,
            tp,
            base_offset,
            count,
        } = &r.event
        else {
            continue;
        };
        if !client.ends_with("/producer") || *count == 0 {
            continue;
        }
        for offset in *base_offset..*base_offset + *count as u64 {
            let append = cx.h.was_appended(tp, offset);
            let in_log = run
                .broker
                .log(tp)
                .binary_search_by_key(&offset, |e| e.offset)
                .is_ok();
            let acked = format!(
                "the write to {tp}@{offset}, acknowledged to {client} at t={}ms,",
                r.time
            );
            if append.is_none() && !in_log {
                let explanation = format!("{acked} is not in the log");
                out.push(cx.violation(Invariant::NoLostWrite, r.time, explanation, vec![r.seq]));
                continue;
            }
            let committed = if in_log {
                run.broker.is_committed(tp, offset)
            } else {
                let transactional = append
                    .and_then(|seq| run.trace.records.get(seq as usize))
                    .is_some_and(|a| {
                        matches!(
                            a.event,
                            Event::Append {
                                transactional: true,
                                ..
                            }
                        )
                    });
                !transactional || matches!(cx.h.marker(tp, offset), Some((ControlType::Commit, _)))
            };
            if !committed {
                let explanation = format!("{acked} is not committed");
                out.push(cx.violation(Invariant::NoLostWrite, r.time, explanation, vec![r.seq]));
                continue;
            }
            if !cx.quiescent() {
                continue;
            }
            let what = append
                .and_then(|seq| run.trace.records.get(seq as usize))
                .and_then(|a| match &a.event {
                    Event::Append { value, .. } => value.as_deref().and_then(Msg::decode),
                    _ => None,
                })
                .map(|m| match m.order_id() {
                    Some(o) => format!(" ({} {o})", m.kind()),
                    None => format!(" ({})", label(&m)),
                })
                .unwrap_or_default();
            for ((ptp, app), offsets) in processed.range((tp, "")..) {
                if *ptp != tp {
                    break;
                }
                if offsets.contains_key(&offset) {
                    continue;
                }
                let last = offsets.keys().next_back().copied().unwrap_or_default();
                let explanation = format!(
                    "the write to {tp}@{offset}{what}, acknowledged to {client} at t={}ms, was never processed by \
                     {app}, which processed other records of {tp} (up to @{last})",
                    r.time
                );
                let mut evidence = vec![r.seq];
                evidence.extend(append);
                out.push(cx.violation(Invariant::NoLostWrite, run.end_time, explanation, evidence));
            }
        }
    }
    out
}

// ====================================================================== 9. monotonic-offsets

/// Per client and partition, `Process` offsets never decrease between the client's
/// (re)assignments (`Assigned`) and its instance's crashes and restarts. Equal offsets are
/// allowed: a processor may ask for a record to be retried.
fn monotonic_offsets(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut last: BTreeMap<(&str, &TopicPartition), (Offset, u64, Millis)> = BTreeMap::new();
    for r in &cx.run.trace.records {
        match &r.event {
            Event::Assigned { client, .. } => last.retain(|(c, _), _| *c != client.as_str()),
            Event::Crash { instance } | Event::Restart { instance } => {
                last.retain(|(c, _), _| instance_of(c) != instance.as_str())
            }
            Event::Process {
                client, tp, offset, ..
            } => {
                if let Some((prev, prev_seq, prev_time)) = last.get(&(client.as_str(), tp)).copied()
                {
                    if *offset < prev {
                        let explanation = format!(
                            "{client} processed {tp}@{offset} at t={}ms after {tp}@{prev} at t={prev_time}ms, with no \
                             rebalance or restart in between: its offsets went backwards",
                            r.time
                        );
                        out.push(cx.violation(
                            Invariant::MonotonicOffsets,
                            r.time,
                            explanation,
                            vec![prev_seq, r.seq],
                        ));
                    }
                }
                last.insert((client.as_str(), tp), (*offset, r.seq, r.time));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oversell_sim::protocol::{
        PartitionProduceResult, ProduceBatch, ProducerIdentity, Record, Request, Response,
    };
    use oversell_sim::{Broker, ChoiceLog, TopicConfig, Trace};

    const STOCK_LOG: &str = "ps-ProductStock-changelog";
    const TOTAL_LOG: &str = "inv-total-changelog";
    const RESERVED_LOG: &str = "inv-reserved-changelog";
    const LEDGER_LOG: &str = "ps-ledger-changelog";

    fn naive() -> Schema {
        Schema {
            stock: StockView::Available {
                changelog: STOCK_LOG.into(),
            },
            decisions: &["ProductReserved", "OrderRejected"],
            reservations_settle: false,
        }
    }

    fn rekeyed() -> Schema {
        Schema {
            stock: StockView::TotalMinusReserved {
                total_changelog: TOTAL_LOG.into(),
                reserved_changelog: RESERVED_LOG.into(),
            },
            decisions: &["OrderValidation"],
            reservations_settle: false,
        }
    }

    fn saga() -> Schema {
        Schema {
            stock: StockView::Ledger {
                changelog: LEDGER_LOG.into(),
            },
            decisions: &["StockReserved", "StockRejected"],
            reservations_settle: true,
        }
    }

    fn placed(o: &str, p: &str, q: u64) -> Msg {
        Msg::OrderPlaced {
            order_id: o.into(),
            product_id: p.into(),
            quantity: q,
            user_id: format!("user-{o}"),
        }
    }
    fn stock(p: &str, q: u64) -> Msg {
        Msg::StockAdded {
            product_id: p.into(),
            quantity: q,
        }
    }
    fn reserved(o: &str, p: &str, q: u64) -> Msg {
        Msg::ProductReserved {
            order_id: o.into(),
            product_id: p.into(),
            quantity: q,
        }
    }
    fn rejected(o: &str, p: &str) -> Msg {
        Msg::OrderRejected {
            order_id: o.into(),
            product_id: p.into(),
            reason: "no stock".into(),
        }
    }
    fn validation(o: &str, p: &str, q: u64, result: Validation) -> Msg {
        Msg::OrderValidation {
            order_id: o.into(),
            product_id: p.into(),
            quantity: q,
            result,
        }
    }
    fn stock_reserved(o: &str, p: &str, q: u64) -> Msg {
        Msg::StockReserved {
            order_id: o.into(),
            product_id: p.into(),
            quantity: q,
        }
    }
    fn released(o: &str, p: &str, q: u64) -> Msg {
        Msg::ReservationReleased {
            order_id: o.into(),
            product_id: p.into(),
            quantity: q,
            reason: "timeout".into(),
        }
    }
    fn ledger(available: i64, reserved: &[(&str, u64)], confirmed: &[(&str, u64)]) -> String {
        let l = Ledger {
            available,
            reserved: reserved
                .iter()
                .map(|(o, u)| (o.to_string(), (*u, 1000)))
                .collect(),
            confirmed: confirmed.iter().map(|(o, u)| (o.to_string(), *u)).collect(),
            ..Ledger::default()
        };
        serde_json::to_string(&l).unwrap()
    }
    fn tp(topic: &str, p: u32) -> TopicPartition {
        TopicPartition::new(topic, p)
    }

    /// Store contents per instance: (store, partition) → key → value.
    type Stores = BTreeMap<String, BTreeMap<(String, u32), BTreeMap<String, String>>>;

    /// A hand-built run: a real broker, and a trace mirroring what it did.
    struct Sim {
        broker: Broker,
        trace: Trace,
        now: Millis,
        outcome: Outcome,
        healed_at: Millis,
        stores: Stores,
    }

    impl Sim {
        fn new() -> Sim {
            let mut broker = Broker::new();
            for t in [
                "orders",
                "stock",
                "order-validations",
                "ps-ProductStock-changelog",
            ] {
                broker
                    .create_topic(
                        t,
                        TopicConfig {
                            partitions: 2,
                            compacted: t.ends_with("-changelog"),
                        },
                    )
                    .unwrap();
            }
            for t in [TOTAL_LOG, RESERVED_LOG, LEDGER_LOG] {
                broker
                    .create_topic(
                        t,
                        TopicConfig {
                            partitions: 1,
                            compacted: true,
                        },
                    )
                    .unwrap();
            }
            Sim {
                broker,
                trace: Trace::default(),
                now: 0,
                outcome: Outcome::Quiescent,
                healed_at: 0,
                stores: BTreeMap::new(),
            }
        }

        fn at(&mut self, t: Millis) -> &mut Self {
            self.now = t;
            self
        }

        fn request(&mut self, client: &str, req: Request) -> Response {
            let mut events = Vec::new();
            let resp = self.broker.handle(self.now, client, req, &mut events);
            for e in events {
                self.trace.push(self.now, 0, e);
            }
            resp
        }

        fn event(&mut self, e: Event) -> u64 {
            self.trace.push(self.now, 0, e);
            self.trace.records.len() as u64 - 1
        }

        /// A plain (non-transactional) append; returns its offset.
        fn put(&mut self, topic: &str, partition: u32, key: &str, value: Option<String>) -> Offset {
            let at = tp(topic, partition);
            let req = Request::Produce {
                producer: None,
                batches: vec![ProduceBatch {
                    tp: at.clone(),
                    base_sequence: None,
                    records: vec![Record {
                        key: Some(key.into()),
                        value,
                        timestamp: self.now,
                        headers: Vec::new(),
                    }],
                }],
            };
            match self.request("test/producer", req) {
                Response::Produce(r) => match &r[0].1 {
                    PartitionProduceResult::Appended { base_offset, .. } => *base_offset,
                    other => panic!("produce failed: {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            }
        }

        /// A domain event on partition 0 of `topic`.
        fn msg(&mut self, topic: &str, m: Msg) -> Offset {
            let key = m.order_id().or(product_of(&m)).unwrap_or("k").to_string();
            self.put(topic, 0, &key, Some(m.encode()))
        }

        /// Records written in one transaction, committed or aborted; returns their offsets.
        fn txn(&mut self, records: &[(&str, u32, &str, String)], commit: bool) -> Vec<Offset> {
            let tid = "app-ps-0";
            let Response::InitProducerId(Ok((pid, epoch))) = self.request(
                "ps-0/app",
                Request::InitProducerId {
                    transactional_id: Some(tid.into()),
                    transaction_timeout_ms: 1000,
                },
            ) else {
                panic!("init failed")
            };
            let producer = ProducerIdentity {
                producer_id: pid,
                epoch,
                transactional_id: Some(tid.into()),
            };
            let mut seqs: BTreeMap<TopicPartition, i32> = BTreeMap::new();
            let mut offsets = Vec::new();
            for (topic, p, key, value) in records {
                let at = tp(topic, *p);
                let seq = seqs.entry(at.clone()).or_insert(0);
                let req = Request::Produce {
                    producer: Some(producer.clone()),
                    batches: vec![ProduceBatch {
                        tp: at,
                        base_sequence: Some(*seq),
                        records: vec![Record {
                            key: Some(key.to_string()),
                            value: Some(value.clone()),
                            timestamp: self.now,
                            headers: Vec::new(),
                        }],
                    }],
                };
                *seq += 1;
                match self.request("ps-0/app", req) {
                    Response::Produce(r) => match &r[0].1 {
                        PartitionProduceResult::Appended { base_offset, .. } => {
                            offsets.push(*base_offset)
                        }
                        other => panic!("produce failed: {other:?}"),
                    },
                    other => panic!("unexpected {other:?}"),
                }
            }
            let r = self.request("ps-0/app", Request::EndTxn { producer, commit });
            assert!(matches!(r, Response::EndTxn(Ok(_))), "{r:?}");
            offsets
        }

        fn process(&mut self, client: &str, topic: &str, partition: u32, offset: Offset) -> u64 {
            self.event(Event::Process {
                client: client.into(),
                tp: tp(topic, partition),
                offset,
                key: None,
                value: None,
            })
        }

        fn store(&mut self, instance: &str, store: &str, partition: u32, kv: &[(&str, &str)]) {
            self.stores.entry(instance.into()).or_default().insert(
                (store.into(), partition),
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }

        fn run(&self) -> RunResult {
            RunResult {
                trace: self.trace.clone(),
                choices: ChoiceLog::default(),
                outcome: self.outcome.clone(),
                end_time: self.now,
                steps: 0,
                broker: self.broker.clone(),
                stores: self.stores.clone(),
                healed_at: self.healed_at,
            }
        }
    }

    fn violations(inv: Invariant, schema: &Schema, sim: &Sim, bound: Millis) -> Vec<Violation> {
        let run = sim.run();
        let all = check_one(inv, schema, &run, bound);
        // `check` reports the first few of the same.
        let verdict = check(schema, &run, bound);
        assert_eq!(
            verdict.of(inv).count(),
            all.len().min(MAX_REPORTED),
            "{verdict}"
        );
        all
    }

    /// The question's case: product1 has 1 unit; two orders both get `ProductReserved`.
    fn last_unit(both_reserved: bool) -> Sim {
        let mut s = Sim::new();
        s.msg("stock", stock("product1", 1));
        s.at(5).msg("orders", placed("o1", "product1", 1));
        s.at(6).msg("orders", placed("o2", "product1", 1));
        s.at(12).msg("orders", reserved("o1", "product1", 1));
        if both_reserved {
            s.at(13).msg("orders", reserved("o2", "product1", 1));
        } else {
            s.at(13).msg("orders", rejected("o2", "product1"));
        }
        s.at(20).put(STOCK_LOG, 0, "product1", Some("1".into()));
        s.at(21).put(STOCK_LOG, 0, "product1", Some("0".into()));
        if both_reserved {
            s.at(22).put(STOCK_LOG, 0, "product1", Some("-1".into()));
        }
        s.at(2000);
        s
    }

    // ------------------------------------------------------------------ names

    #[test]
    fn names_parse_and_serialise_alike() {
        for inv in Invariant::ALL {
            assert_eq!(Invariant::parse(inv.name()), Some(inv));
            assert_eq!(
                serde_json::to_string(&inv).unwrap(),
                format!("\"{}\"", inv.name())
            );
            assert!(!inv.describe().is_empty());
        }
        assert_eq!(Invariant::parse("oversell"), None);
        assert_eq!(Invariant::NoOversell.property(), Property::Always);
        assert_eq!(Invariant::Conservation.property(), Property::AtQuiescence);
        assert_eq!(Invariant::EventualDecision.property(), Property::Eventually);
    }

    #[test]
    fn a_clean_run_holds_everything() {
        let s = last_unit(false);
        let verdict = check(&naive(), &s.run(), 1000);
        assert!(verdict.holds(), "{verdict}");
        assert_eq!(verdict.to_string(), "every invariant holds");
    }

    // ------------------------------------------------------------------ 1. no-oversell

    #[test]
    fn no_oversell_flags_the_questions_double_reservation() {
        let s = last_unit(true);
        let v = violations(Invariant::NoOversell, &naive(), &s, 1000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].explanation,
            "product1 had 1 unit in stock, but orders o1 (orders-0@0) and o2 (orders-0@1) hold 2 units: \
             ProductReserved at orders-0@2 (t=12ms) and orders-0@3 (t=13ms)"
        );
        assert_eq!(v[0].time, 13);
        // StockAdded and both reservations.
        assert_eq!(v[0].evidence, vec![0, 3, 4]);
        let verdict = check(&naive(), &s.run(), 1000);
        assert!(verdict.violated().contains(&Invariant::NoOversell));
        assert!(!verdict.holds());
    }

    #[test]
    fn no_oversell_counts_releases_restocks_and_only_committed_holds() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 1));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.msg("orders", released("o1", "p1", 1));
        s.msg("orders", stock_reserved("o2", "p1", 1));
        // An aborted hold holds nothing.
        s.txn(
            &[("orders", 0, "o3", stock_reserved("o3", "p1", 1).encode())],
            false,
        );
        s.msg("stock", stock("p1", 1));
        s.msg("orders", stock_reserved("o4", "p1", 1));
        assert!(violations(Invariant::NoOversell, &saga(), &s, 1000).is_empty());
        // A committed one does.
        s.txn(
            &[("orders", 0, "o5", stock_reserved("o5", "p1", 1).encode())],
            true,
        );
        let v = violations(Invariant::NoOversell, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation
                .starts_with("p1 had 2 units in stock, but orders o2, o4 and o5 hold 3 units"),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn no_oversell_counts_a_duplicate_hold_twice() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 1));
        s.msg("orders", placed("o1", "p1", 1));
        s.at(7).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.at(9).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        let v = violations(Invariant::NoOversell, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "p1 had 1 unit in stock, but order o1 (orders-0@0) holds 2 units: OrderValidation PASS at \
             order-validations-0@0 (t=7ms) and order-validations-0@1 (t=9ms)"
        );
    }

    // ------------------------------------------------------------------ 2. conservation

    #[test]
    fn conservation_flags_a_negative_store() {
        let s = last_unit(true);
        let v = violations(Invariant::Conservation, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "product1: 1 unit in stock, but the ps-ProductStock store says -1 available while 2 units are held by \
             orders o1, o2; negative: -1 available: 1 phantom unit"
        );
        assert_eq!(v[0].time, 2000);
    }

    #[test]
    fn conservation_flags_leaked_units_and_is_judged_only_at_quiescence() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 3));
        s.msg("orders", reserved("o1", "p1", 1));
        s.put(STOCK_LOG, 0, "p1", Some("1".into())); // 1 available + 1 held, of 3
        let v = violations(Invariant::Conservation, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.ends_with(
                "1 available + 1 held = 2, not 3: 1 leaked unit (neither available nor held)"
            ),
            "{}",
            v[0].explanation
        );
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::Conservation, &naive(), &s, 1000).is_empty());
        assert!(!Invariant::Conservation.judged_on(&s.run()));
    }

    #[test]
    fn conservation_holds_for_balanced_stores_of_every_view() {
        let s = last_unit(false);
        assert!(violations(Invariant::Conservation, &naive(), &s, 1000).is_empty());

        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.put(TOTAL_LOG, 0, "p1", Some("2".into()));
        s.put(RESERVED_LOG, 0, "p1", Some("1".into()));
        assert!(violations(Invariant::Conservation, &rekeyed(), &s, 1000).is_empty());
        // The reserved store lost the reservation: a phantom unit.
        s.put(RESERVED_LOG, 0, "p1", Some("0".into()));
        let v = violations(Invariant::Conservation, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(v[0]
            .explanation
            .contains("2 in total (inv-total) − 0 reserved (inv-reserved) = 2 available"));
        assert!(
            v[0].explanation.contains("1 phantom unit"),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn conservation_cross_checks_a_ledger_with_the_events() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(1, &[("o1", 1)], &[])));
        assert!(violations(Invariant::Conservation, &saga(), &s, 1000).is_empty());
        // The ledger released o1, but no ReservationReleased was ever committed.
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(2, &[], &[])));
        let v = violations(Invariant::Conservation, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.contains("1 phantom unit"),
            "{}",
            v[0].explanation
        );
        assert!(
            v[0].explanation.contains(
                "the ledger holds 0 units for order o1, but its committed events leave 1 unit"
            ),
            "{}",
            v[0].explanation
        );
    }

    // ------------------------------------------------------------------ 3. one-decision

    #[test]
    fn one_decision_flags_two_and_contradictory_decisions() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.msg("orders", placed("o1", "p1", 1));
        s.msg("orders", placed("o2", "p1", 1));
        s.at(10).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.at(11).msg(
            "order-validations",
            validation("o2", "p1", 1, Validation::Pass),
        );
        assert!(violations(Invariant::OneDecision, &rekeyed(), &s, 1000).is_empty());
        s.at(20).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.at(21).msg(
            "order-validations",
            validation("o2", "p1", 1, Validation::Fail),
        );
        let v = violations(Invariant::OneDecision, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].explanation,
            "order o1 (orders-0@0) was decided twice: OrderValidation PASS at order-validations-0@0 (t=10ms) and \
             again at order-validations-0@2 (t=20ms)"
        );
        assert_eq!(
            v[1].explanation,
            "order o2 (orders-0@1) got contradictory decisions: OrderValidation PASS at order-validations-0@1 \
             (t=11ms), then OrderValidation FAIL at order-validations-0@3 (t=21ms)"
        );
    }

    #[test]
    fn one_decision_ignores_aborted_decisions() {
        let mut s = Sim::new();
        s.msg("orders", placed("o1", "p1", 1));
        s.txn(
            &[(
                "order-validations",
                0,
                "o1",
                validation("o1", "p1", 1, Validation::Pass).encode(),
            )],
            false,
        );
        s.txn(
            &[(
                "order-validations",
                0,
                "o1",
                validation("o1", "p1", 1, Validation::Fail).encode(),
            )],
            true,
        );
        assert!(violations(Invariant::OneDecision, &rekeyed(), &s, 1000).is_empty());
    }

    // ------------------------------------------------------------------ 4. no-duplicate-effect

    #[test]
    fn no_duplicate_effect_flags_a_duplicate_outcome_event() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.msg("orders", placed("o1", "p1", 1));
        s.at(10).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        s.put(RESERVED_LOG, 0, "p1", Some("1".into()));
        assert!(violations(Invariant::NoDuplicateEffect, &rekeyed(), &s, 1000).is_empty());
        s.at(30).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        let v = violations(Invariant::NoDuplicateEffect, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "order o1 (orders-0@0): OrderValidation PASS committed twice, at order-validations-0@0 (t=10ms) and \
             again at order-validations-0@1 (t=30ms)"
        );
    }

    #[test]
    fn no_duplicate_effect_flags_a_reservation_applied_twice_in_the_reserved_store() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.msg("orders", placed("o1", "p1", 1));
        s.at(10).put(RESERVED_LOG, 0, "p1", Some("1".into()));
        s.at(10).msg(
            "order-validations",
            validation("o1", "p1", 1, Validation::Pass),
        );
        // Reprocessed after a crash: the store takes the unit again; the PASS is lost.
        s.at(40).put(RESERVED_LOG, 0, "p1", Some("2".into()));
        s.outcome = Outcome::TimeBound; // judged at any time
        let v = violations(Invariant::NoDuplicateEffect, &rekeyed(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "inv-reserved holds 2 units reserved for p1 (at inv-reserved-changelog-0@1 (t=40ms)), but only order \
             o1 (1 unit, OrderValidation PASS at order-validations-0@0 (t=10ms)) passed: 1 unit reserved twice"
        );
        assert_eq!(v[0].time, 40);
    }

    #[test]
    fn no_duplicate_effect_flags_units_taken_twice_from_an_available_store() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 1));
        s.msg("orders", reserved("o1", "p1", 1));
        s.put(STOCK_LOG, 0, "p1", Some("1".into()));
        s.put(STOCK_LOG, 0, "p1", Some("0".into()));
        assert!(violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).is_empty());
        s.put(STOCK_LOG, 0, "p1", Some("-1".into()));
        let v = violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.ends_with("1 unit taken twice"),
            "{}",
            v[0].explanation
        );
        // A lagging store is no duplicate until the run is quiescent.
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).is_empty());
        // The question's oversell is not a duplicate: each order took its unit once.
        assert!(violations(
            Invariant::NoDuplicateEffect,
            &naive(),
            &last_unit(true),
            1000
        )
        .is_empty());
    }

    #[test]
    fn no_duplicate_effect_flags_a_ledger_that_applied_a_command_twice() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg("orders", placed("o1", "p1", 1));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.at(10).put(LEDGER_LOG, 0, "p1", Some(ledger(2, &[], &[])));
        s.at(20)
            .put(LEDGER_LOG, 0, "p1", Some(ledger(1, &[("o1", 1)], &[])));
        assert!(violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000).is_empty());
        // The repeated ReserveStock applied again: a new expiry, one more unit taken.
        let mut l: Ledger = serde_json::from_str(&ledger(0, &[("o1", 1)], &[])).unwrap();
        l.reserved.insert("o1".into(), (1, 2000));
        s.at(30).put(
            LEDGER_LOG,
            0,
            "p1",
            Some(serde_json::to_string(&l).unwrap()),
        );
        let v = violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "the ps-ledger ledger of p1 reserved 1 unit for order o1 (orders-0@0) again at \
             ps-ledger-changelog-0@2 (t=30ms), when the previous ledger record (ps-ledger-changelog-0@1) \
             had it already reserved (expiring at t=1000ms): 1 unit taken from available twice"
        );
        // Not once quiescent either: a shortfall alone is conservation's business.
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 2));
        s.msg("orders", stock_reserved("o1", "p1", 1));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(0, &[("o1", 1)], &[])));
        assert!(violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000).is_empty());
        assert_eq!(
            violations(Invariant::Conservation, &saga(), &s, 1000).len(),
            1
        );
        // A release applied twice gives units back twice.
        s.msg("orders", released("o1", "p1", 1));
        s.put(LEDGER_LOG, 0, "p1", Some(ledger(3, &[], &[])));
        let v = violations(Invariant::NoDuplicateEffect, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation.contains(
                "1 unit given back to available twice (releases: ReservationReleased at orders-0@1"
            ),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn no_duplicate_effect_blames_a_lost_restock_on_no_lost_write_not_a_duplicate() {
        let mut s = Sim::new();
        let first = s.msg("stock", stock("p1", 1));
        s.msg("stock", stock("p1", 1));
        s.msg("orders", reserved("o1", "p1", 1));
        s.put(STOCK_LOG, 0, "p1", Some("1".into()));
        s.put(STOCK_LOG, 0, "p1", Some("0".into()));
        // The store's application processed the first restock only.
        s.process("ps-0/ps", "stock", 0, first);
        assert!(violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).is_empty());
        assert_eq!(
            violations(Invariant::Conservation, &naive(), &s, 1000).len(),
            1
        );
        s.process("ps-0/ps", "stock", 0, first + 1);
        assert_eq!(
            violations(Invariant::NoDuplicateEffect, &naive(), &s, 1000).len(),
            1
        );
    }

    // ------------------------------------------------------------------ 5. eventual-decision

    #[test]
    fn eventual_decision_flags_an_undecided_order_and_a_late_one() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.at(10).msg("orders", placed("o1", "p1", 1));
        s.at(10).msg("orders", placed("o2", "p1", 1));
        s.at(500).msg("orders", reserved("o2", "p1", 1));
        s.at(5000);
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::EventualDecision, &naive(), &s, 1000).len() == 1);
        let v = violations(Invariant::EventualDecision, &naive(), &s, 100);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].explanation,
            "order o1 (placed at orders-0@0 (t=10ms)) has no decision (ProductReserved or OrderRejected) by its \
             deadline t=110ms (100ms bound): the run ended at t=5000ms (hit its time bound), with the order still not decided"
        );
        assert_eq!(
            v[1].explanation,
            "order o2 (placed at orders-0@1 (t=10ms)) was decided only at t=500ms (ProductReserved at orders-0@2 \
             (t=500ms)), after its deadline t=110ms (100ms bound)"
        );
        assert_eq!((v[0].time, v[1].time), (110, 500));
    }

    #[test]
    fn eventual_decision_counts_from_the_heal_and_a_quiet_run_never_decides() {
        let mut s = Sim::new();
        s.at(10).msg("orders", placed("o1", "p1", 1));
        s.at(5500).msg("orders", rejected("o1", "p1"));
        s.healed_at = 5000;
        s.at(8000);
        assert!(violations(Invariant::EventualDecision, &naive(), &s, 1000).is_empty());
        // An order placed but quiet before its deadline: nothing will ever decide it.
        s.at(7800).msg("orders", placed("o2", "p1", 1));
        s.at(8000);
        let v = violations(Invariant::EventualDecision, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation
                .contains("the run went quiet at t=8000ms, before the deadline"),
            "{}",
            v[0].explanation
        );
    }

    #[test]
    fn eventual_decision_wants_saga_reservations_settled() {
        let mut s = Sim::new();
        s.msg("stock", stock("p1", 5));
        s.at(10).msg("orders", placed("o1", "p1", 1));
        s.at(20).msg("orders", stock_reserved("o1", "p1", 1));
        s.at(3000);
        let v = violations(Invariant::EventualDecision, &saga(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].explanation
                .contains("has no ReservationConfirmed or ReservationReleased for its hold"),
            "{}",
            v[0].explanation
        );
        s.at(900).msg("orders", released("o1", "p1", 1));
        s.at(3000);
        assert!(violations(Invariant::EventualDecision, &saga(), &s, 1000).is_empty());
    }

    // ------------------------------------------------------------------ 6. view-matches-log

    #[test]
    fn view_matches_log_compares_each_store_with_its_committed_changelog() {
        let mut s = Sim::new();
        s.put(STOCK_LOG, 1, "p1", Some("3".into()));
        s.put(STOCK_LOG, 1, "p2", Some("1".into()));
        s.put(STOCK_LOG, 1, "p2", None); // tombstone
        s.txn(&[(STOCK_LOG, 1, "p1", "2".into())], false); // aborted: not in the fold
        s.store("product-service-0", "ProductStock", 1, &[("p1", "3")]);
        s.store("product-service-1", "OtherStore", 0, &[("x", "1")]); // no changelog: not judged
        assert!(violations(Invariant::ViewMatchesLog, &naive(), &s, 1000).is_empty());
        // A store that kept the aborted write.
        s.store(
            "product-service-0",
            "ProductStock",
            1,
            &[("p1", "2"), ("p2", "1")],
        );
        let v = violations(Invariant::ViewMatchesLog, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "product-service-0's ProductStock store (partition 1) differs from the committed changelog \
             ps-ProductStock-changelog-1: key p1 is \"2\" in the store but \"3\" in the log (at \
             ps-ProductStock-changelog-1@0 (t=0ms)); key p2 is \"1\" in the store but absent from the log"
        );
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::ViewMatchesLog, &naive(), &s, 1000).is_empty());
    }

    // ------------------------------------------------------------------ 7. no-aborted-read

    #[test]
    fn no_aborted_read_flags_a_committed_reader_that_processed_an_aborted_record() {
        let mut s = Sim::new();
        let committed = s.msg("orders", placed("o1", "p1", 1));
        let aborted = s.txn(
            &[("orders", 0, "o2", stock_reserved("o2", "p1", 1).encode())],
            false,
        )[0];
        s.event(Event::Fetch {
            client: "order-service-0/orders-app".into(),
            tp: tp("orders", 0),
            from: 0,
            count: 2,
            next: 3,
            isolation: Isolation::ReadCommitted,
        });
        s.at(30)
            .process("order-service-0/orders-app", "orders", 0, committed);
        // A read_uncommitted consumer of an at-least-once application may see it.
        s.event(Event::Fetch {
            client: "x-0/alo".into(),
            tp: tp("orders", 0),
            from: 0,
            count: 2,
            next: 3,
            isolation: Isolation::ReadUncommitted,
        });
        s.process("x-0/alo", "orders", 0, aborted);
        assert!(violations(Invariant::NoAbortedRead, &saga(), &s, 1000).is_empty());
        s.at(31)
            .process("order-service-0/orders-app", "orders", 0, aborted);
        // `ps-0/app` has the transactional id `app-ps-0`: exactly-once, whatever it fetches with.
        s.at(32).process("ps-0/app", "orders", 0, aborted);
        let v = violations(Invariant::NoAbortedRead, &saga(), &s, 1000);
        assert_eq!(v.len(), 2);
        assert!(
            v[0].explanation.starts_with(
                "order-service-0/orders-app, a read_committed consumer, processed orders-0@1 (StockReserved for \
                 order o2) at t=31ms, a record of an aborted transaction, aborted at t=0ms"
            ),
            "{}",
            v[0].explanation
        );
        assert!(
            v[1].explanation
                .starts_with("ps-0/app, a consumer of an exactly-once application"),
            "{}",
            v[1].explanation
        );
    }

    // ------------------------------------------------------------------ 8. no-lost-write

    #[test]
    fn no_lost_write_flags_acknowledged_writes_missing_or_unprocessed() {
        let mut s = Sim::new();
        let o1 = s.msg("orders", placed("o1", "p1", 1));
        let o2 = s.msg("orders", placed("o2", "p1", 1));
        for o in [o1, o2] {
            s.event(Event::Acked {
                client: "frontend/producer".into(),
                tp: tp("orders", 0),
                base_offset: o,
                count: 1,
            });
        }
        // Streams acks (count 0) are not judged.
        s.event(Event::Acked {
            client: "ps-0/app".into(),
            tp: tp("orders", 1),
            base_offset: 9,
            count: 0,
        });
        s.process("ps-0/app", "orders", 0, o1);
        s.process("ps-1/app", "orders", 0, o2);
        s.process("ps-0/checker", "orders", 0, o1);
        s.process("ps-0/checker", "orders", 0, o2);
        assert!(violations(Invariant::NoLostWrite, &naive(), &s, 1000).is_empty());
        // An acknowledged write that is not in the log.
        s.at(40).event(Event::Acked {
            client: "frontend/producer".into(),
            tp: tp("orders", 0),
            base_offset: 7,
            count: 1,
        });
        let v = violations(Invariant::NoLostWrite, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "the write to orders-0@7, acknowledged to frontend/producer at t=40ms, is not in the log"
        );
        // One that an application skipped.
        let mut s = Sim::new();
        let o1 = s.msg("orders", placed("o1", "p1", 1));
        let o2 = s.msg("orders", placed("o2", "p1", 1));
        s.event(Event::Acked {
            client: "frontend/producer".into(),
            tp: tp("orders", 0),
            base_offset: o1,
            count: 1,
        });
        s.process("ps-0/app", "orders", 0, o2);
        s.at(100);
        let v = violations(Invariant::NoLostWrite, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "the write to orders-0@0 (OrderPlaced o1), acknowledged to frontend/producer at t=0ms, was never \
             processed by app, which processed other records of orders-0 (up to @1)"
        );
        s.outcome = Outcome::TimeBound; // not judged before quiescence
        assert!(violations(Invariant::NoLostWrite, &naive(), &s, 1000).is_empty());
    }

    // ------------------------------------------------------------------ 9. monotonic-offsets

    #[test]
    fn monotonic_offsets_flags_a_rewind_without_rebalance_or_restart() {
        let mut s = Sim::new();
        let c = "ps-0/app";
        s.process(c, "orders", 0, 0);
        s.process(c, "orders", 0, 1);
        s.process(c, "orders", 0, 1); // a retry
        s.process(c, "orders", 1, 0); // another partition
        s.event(Event::Assigned {
            client: c.into(),
            generation: 2,
            tasks: vec![tp("orders", 0)],
        });
        s.process(c, "orders", 0, 0);
        s.event(Event::Crash {
            instance: "ps-0".into(),
        });
        s.event(Event::Restart {
            instance: "ps-0".into(),
        });
        s.process(c, "orders", 0, 0);
        assert!(violations(Invariant::MonotonicOffsets, &naive(), &s, 1000).is_empty());
        let p = s.at(5).process(c, "orders", 0, 3);
        let q = s.at(6).process(c, "orders", 0, 2);
        let v = violations(Invariant::MonotonicOffsets, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "ps-0/app processed orders-0@2 at t=6ms after orders-0@3 at t=5ms, with no rebalance or restart in \
             between: its offsets went backwards"
        );
        assert_eq!(v[0].evidence, vec![p, q]);
    }

    #[test]
    fn only_the_first_few_violations_are_reported() {
        let mut s = Sim::new();
        let c = "ps-0/app";
        for i in 0..6 {
            s.at(i).process(c, "orders", 0, 10 - i);
        }
        let verdict = check(&naive(), &s.run(), 1000);
        let v: Vec<&Violation> = verdict.of(Invariant::MonotonicOffsets).collect();
        assert_eq!(v.len(), MAX_REPORTED);
        assert!(
            v[2].explanation
                .ends_with("(and 2 more violations of monotonic-offsets)"),
            "{}",
            v[2].explanation
        );
        assert!(verdict
            .to_string()
            .starts_with("[monotonic-offsets] t=1ms: ps-0/app processed orders-0@9"));
    }
}
