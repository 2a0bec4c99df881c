//! Coverage probes ("sometimes" properties): how often each interesting situation really
//! happened in a run, read from the recorded run like the invariants are.
//!
//! A clean sweep proves something only if it reached the race it was written for. A probe
//! names one such situation; a scenario declares the probes it expects
//! (`[expect_probes]`), and a sweep in which one never fired is *vacuous*
//! (FoundationDB's `TEST()` coverage probes, stateright's `sometimes`). Every probe here
//! is computed from the trace and the committed history, never from a counter a design
//! keeps, so it cannot claim a situation the record does not show.

use super::commitment::Fate;
use super::Cx;
use crate::domain::{Msg, Validation};
use oversell_sim::protocol::Offset;
use oversell_sim::{ClientId, Event, TopicPartition, TraceRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

macro_rules! probes {
    ($( $variant:ident = $name:literal, $describe:literal; )*) => {
        /// A named situation a run may reach.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Probe {
            $( #[serde(rename = $name)] $variant, )*
        }

        impl Probe {
            /// Every probe, in report order.
            pub const ALL: &'static [Probe] = &[$( Probe::$variant, )*];

            /// The probe's name in scenario files, reports and JSON.
            pub fn name(self) -> &'static str {
                match self { $( Probe::$variant => $name, )* }
            }

            /// What the probe counts, in one sentence.
            pub fn describe(self) -> &'static str {
                match self { $( Probe::$variant => $describe, )* }
            }
        }
    };
}

probes! {
    StaleRead = "stale-read",
        "a step processing one order read a product's keys exactly as the step that decided an earlier committed reservation of that product (of another order) did, with no write of them in between";
    CrashBeforeCommit = "crash-before-offset-commit",
        "an instance crashed after writing a store for an input record whose offset its group had not committed";
    ZombieFenced = "zombie-fenced",
        "a client resumed from a pause during which its group rebalanced, processed a record before it rejoined, and no write it got acknowledged meanwhile committed";
    ZombieWrote = "zombie-wrote",
        "a client resumed from a pause during which its group rebalanced, and a write of it committed before it rejoined";
    TxnAborted = "txn-aborted",
        "a transaction was aborted";
    RebalanceMidBatch = "rebalance-mid-batch",
        "a group finished a rebalance while records it had processed were not committed";
    ReservationTimedOut = "reservation-timed-out",
        "a reservation was released by its timeout (a committed ReservationReleased with reason \"timeout\")";
    ProduceRetryDeduplicated = "produce-retry-deduplicated",
        "the broker recognised a retried idempotent batch and acknowledged it without a second append";
    OrderWrittenTwice = "order-written-twice",
        "an OrderPlaced was committed twice for one order (a retried or duplicated produce without idempotence)";
    BrokerFaultsOverlap = "broker-faults-overlap",
        "a broker fault (a crash, a network partition, a slow follower) struck while another broker's fault had not healed";
    LossyReplicaElected = "lossy-replica-elected",
        "a replica that had lost unflushed data in a crash was elected leader from the ISR before it fetched again";
}

impl Probe {
    pub fn parse(name: &str) -> Option<Probe> {
        Probe::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// Every probe's name.
    pub fn names() -> Vec<&'static str> {
        Probe::ALL.iter().map(|p| p.name()).collect()
    }
}

/// How many times each probe fired in one run (probes that never fired are absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Probes(pub BTreeMap<Probe, u64>);

impl Probes {
    fn hit(&mut self, probe: Probe) {
        *self.0.entry(probe).or_insert(0) += 1;
    }

    pub fn count(&self, probe: Probe) -> u64 {
        self.0.get(&probe).copied().unwrap_or(0)
    }

    pub fn fired(&self) -> impl Iterator<Item = Probe> + '_ {
        self.0.keys().copied()
    }
}

/// Every probe of a run.
pub fn probe<'r>(cx: &Cx<'r>) -> Probes {
    let mut p = Probes::default();
    let mut walk = Walk::default();
    for (order, product) in reservations(cx) {
        walk.reserved.entry(product).or_default().insert(order);
    }
    let run = cx.run;
    for r in &run.trace.records {
        walk.record(cx, r, &mut p);
    }
    walk.finish(cx, &mut p);
    committed_probes(cx, &mut p);
    broker_probes(cx, &mut p);
    p
}

/// Probes of the broker faults, from the trace: faults that overlap, and a clean election
/// of a replica whose log lost its unflushed suffix in a crash (the crash's `Truncated`
/// events come just before its `BrokerCrashed`) and which has not fetched since.
fn broker_probes(cx: &Cx<'_>, p: &mut Probes) {
    let mut unhealed: BTreeSet<(u32, &'static str)> = BTreeSet::new();
    let mut truncated: Vec<(&TopicPartition, u32)> = Vec::new();
    let mut lossy: BTreeSet<(&TopicPartition, u32)> = BTreeSet::new();
    for r in &cx.run.trace.records {
        let mut struck = None;
        match &r.event {
            Event::Truncated { tp, broker, .. } => {
                truncated.push((tp, *broker));
                continue;
            }
            Event::BrokerCrashed { broker, lost } => {
                if *lost > 0 {
                    lossy.extend(truncated.iter().filter(|(_, b)| b == broker));
                }
                struck = Some((*broker, "down"));
            }
            Event::BrokerPartitioned { broker, .. } => struck = Some((*broker, "cut")),
            Event::SlowFollower { broker, slow: true } => struck = Some((*broker, "slow")),
            Event::BrokerRestarted { broker } => {
                unhealed.remove(&(*broker, "down"));
            }
            Event::PartitionHealed { broker } => {
                unhealed.remove(&(*broker, "cut"));
            }
            Event::SlowFollower {
                broker,
                slow: false,
            } => {
                unhealed.remove(&(*broker, "slow"));
            }
            Event::Replicated { tp, broker, .. } => {
                lossy.remove(&(tp, *broker));
            }
            Event::LeaderElected {
                tp,
                leader: Some(b),
                unclean: false,
                ..
            } if lossy.contains(&(tp, *b)) => p.hit(Probe::LossyReplicaElected),
            _ => {}
        }
        truncated.clear();
        if let Some(fault) = struck {
            if unhealed.iter().any(|(b, _)| *b != fault.0) {
                p.hit(Probe::BrokerFaultsOverlap);
            }
            unhealed.insert(fault);
        }
    }
}

/// The committed reservations (`ProductReserved`, a PASS, a `StockReserved`): (order,
/// product).
fn reservations<'r>(cx: &Cx<'r>) -> Vec<(&'r str, &'r str)> {
    let mut out = Vec::new();
    let h = cx.h;
    for (_, msg) in h.domain() {
        let (order, product) = match msg {
            Msg::ProductReserved {
                order_id,
                product_id,
                ..
            }
            | Msg::StockReserved {
                order_id,
                product_id,
                ..
            }
            | Msg::OrderValidation {
                order_id,
                product_id,
                result: Validation::Pass,
                ..
            } => (order_id, product_id),
            _ => continue,
        };
        out.push((order.as_str(), product.as_str()));
    }
    out
}

/// Probes read from the committed history alone.
fn committed_probes(cx: &Cx<'_>, p: &mut Probes) {
    let mut placed = BTreeSet::new();
    for (_, msg) in cx.h.domain() {
        match msg {
            Msg::ReservationReleased { reason, .. } if reason == crate::domain::TIMEOUT_REASON => {
                p.hit(Probe::ReservationTimedOut)
            }
            Msg::OrderPlaced { order_id, .. } if !placed.insert(order_id.clone()) => {
                p.hit(Probe::OrderWrittenTwice)
            }
            _ => {}
        }
    }
}

/// A client that resumed after its group moved on, until it rejoins.
#[derive(Debug, Default)]
struct Zombie {
    /// It processed a record (and so tried to write) meanwhile.
    processed: bool,
    /// Records it got acknowledged meanwhile.
    acked: Vec<(TopicPartition, Offset)>,
}

/// One processing step of a client: the seq of its `Process`, the order of its record,
/// and what it read: (store, key) → value. Names and values are the trace's, borrowed.
#[derive(Clone, Debug, Default)]
struct Step<'r> {
    start: u64,
    order: Option<String>,
    reads: BTreeMap<(&'r str, &'r str), Option<&'r str>>,
    /// The seq of the last write of each key read, when it was read.
    written: BTreeMap<(&'r str, &'r str), u64>,
}

impl<'r> Step<'r> {
    /// Its reads of `key`, in every store (in store order).
    fn view(&self, key: &str) -> View<'r> {
        self.reads
            .iter()
            .filter(|((_, k), _)| *k == key)
            .map(|((s, _), v)| (*s, *v))
            .collect()
    }

    /// The last write of `key` (in any store) seen before the step read it.
    fn last_write(&self, key: &str) -> Option<u64> {
        self.written
            .iter()
            .filter(|((_, k), _)| *k == key)
            .map(|(_, w)| *w)
            .max()
    }
}

/// What a step read of one key: (store, value) in store order.
type View<'r> = Vec<(&'r str, Option<&'r str>)>;

/// The deciding steps of committed reservations, by what they read: (product, view) →
/// decider's start → its order. Kept equal to `Walk::decided` restricted to the orders
/// `Walk::reserved` holds for the product, so that a step's staleness is a range query
/// instead of a scan of every order of the product.
#[derive(Default)]
struct Deciders<'r>(BTreeMap<(&'r str, View<'r>), BTreeMap<u64, String>>);

impl<'r> Deciders<'r> {
    fn insert(&mut self, key: &'r str, view: View<'r>, start: u64, order: &str) {
        let old = self
            .0
            .entry((key, view))
            .or_default()
            .insert(start, order.to_string());
        assert!(old.is_none(), "one deciding step per start");
    }

    fn remove(&mut self, key: &'r str, view: View<'r>, start: u64) {
        let k = (key, view);
        let starts = self.0.get_mut(&k).expect("indexed view");
        assert!(starts.remove(&start).is_some(), "indexed decider");
        if starts.is_empty() {
            self.0.remove(&k);
        }
    }

    /// Whether a decider of another order than `order` read `view` of `key` and started
    /// within `after..before`.
    fn any_within(
        &self,
        key: &'r str,
        view: View<'r>,
        after: u64,
        before: u64,
        order: Option<&String>,
    ) -> bool {
        if after >= before {
            return false;
        }
        self.0
            .get(&(key, view))
            .is_some_and(|starts| starts.range(after..before).any(|(_, o)| Some(o) != order))
    }
}

/// The order a processed record is about (`OrderPlaced`, `ReserveStock`).
fn order_of(value: Option<&str>) -> Option<String> {
    match value.and_then(Msg::decode)? {
        Msg::OrderPlaced { order_id, .. } | Msg::ReserveStock { order_id, .. } => Some(order_id),
        _ => None,
    }
}

/// State of the one pass over the trace.
#[derive(Default)]
struct Walk<'r> {
    /// Per client, its current processing step.
    steps: BTreeMap<ClientId, Step<'r>>,
    /// Order → the first step that processed a record of it (the one that decided it).
    decided: BTreeMap<String, Step<'r>>,
    /// Store → key → seq of the last write (by store first: a look-up compares keys).
    writes: BTreeMap<&'r str, BTreeMap<&'r str, u64>>,
    /// Product → the orders it has a committed reservation for.
    reserved: BTreeMap<&'r str, BTreeSet<&'r str>>,
    /// `decided`, indexed by product and view, for the orders `reserved` holds.
    deciders: Deciders<'r>,
    /// (group, partition) → committed offset (the next to read).
    committed: BTreeMap<(String, TopicPartition), Offset>,
    /// Per client: the records it processed that wrote a store, and its last processed one.
    dirty: BTreeMap<ClientId, BTreeSet<(TopicPartition, Offset)>>,
    last_processed: BTreeMap<ClientId, (TopicPartition, Offset)>,
    /// Group → (generation, seq) of its last finished rebalance.
    generation: BTreeMap<String, u32>,
    /// Per client: the group generation it last joined.
    joined: BTreeMap<ClientId, u32>,
    /// Instance → the group generations when it paused (group → generation).
    paused: BTreeMap<String, BTreeMap<String, u32>>,
    zombies: BTreeMap<ClientId, Zombie>,
}

impl<'r> Walk<'r> {
    fn record(&mut self, cx: &Cx<'_>, r: &'r TraceRecord, p: &mut Probes) {
        match &r.event {
            Event::StoreGet {
                client,
                store,
                key,
                value,
            } => self.read(client, store, key, value.as_deref()),
            Event::StorePut {
                client, store, key, ..
            } => self.put(client, store, key, r.seq),
            Event::Process {
                client,
                tp,
                offset,
                value,
                ..
            } => {
                let order = order_of(value.as_deref());
                self.process(client, tp, *offset, order, r.seq, p)
            }
            Event::OffsetCommit { group, offsets, .. } => {
                for (tp, o) in offsets {
                    self.committed.insert((group.clone(), tp.clone()), *o);
                }
            }
            Event::Crash { instance } => self.crash(instance, p),
            Event::TxnAbort { .. } => p.hit(Probe::TxnAborted),
            Event::DuplicateBatch { .. } => p.hit(Probe::ProduceRetryDeduplicated),
            Event::Rebalance {
                group, generation, ..
            } => {
                if self.uncommitted_in(group) {
                    p.hit(Probe::RebalanceMidBatch);
                }
                self.generation.insert(group.clone(), *generation);
            }
            Event::Pause { instance, .. } => {
                self.paused
                    .insert(instance.clone(), self.generation.clone());
            }
            Event::Resume { instance } => self.resume(instance),
            Event::Assigned {
                client, generation, ..
            } => self.assigned(cx, client, *generation, p),
            Event::Acked {
                client,
                tp,
                base_offset,
                ..
            } => {
                if let Some(z) = self.zombies.get_mut(client) {
                    z.acked.push((tp.clone(), *base_offset));
                }
            }
            _ => {}
        }
    }

    /// A store write: remembered, and the step's input marked as having written.
    fn put(&mut self, client: &ClientId, store: &'r str, key: &'r str, seq: u64) {
        match self.writes.get_mut(store) {
            Some(keys) => keys.insert(key, seq),
            None => self.writes.entry(store).or_default().insert(key, seq),
        };
        if let Some(last) = self.last_processed.get(client) {
            match self.dirty.get_mut(client) {
                Some(dirty) => {
                    if !dirty.contains(last) {
                        dirty.insert(last.clone());
                    }
                }
                None => {
                    self.dirty
                        .insert(client.clone(), BTreeSet::from([last.clone()]));
                }
            }
        }
    }

    /// A record processed: the client's previous step ends, a new one starts.
    fn process(
        &mut self,
        client: &ClientId,
        tp: &TopicPartition,
        offset: u64,
        order: Option<String>,
        seq: u64,
        p: &mut Probes,
    ) {
        self.end_step(client, p);
        let step = Step {
            start: seq,
            order,
            ..Step::default()
        };
        self.steps.insert(client.clone(), step);
        self.last_processed
            .insert(client.clone(), (tp.clone(), offset));
        if let Some(z) = self.zombies.get_mut(client) {
            z.processed = true;
        }
    }

    /// A client joined a generation: a zombie of that client is settled.
    fn assigned(&mut self, cx: &Cx<'_>, client: &ClientId, generation: u32, p: &mut Probes) {
        self.joined.insert(client.clone(), generation);
        if let Some(z) = self.zombies.remove(client) {
            self.settle(cx, z, p);
        }
    }

    /// A read in a client's processing step (a read outside one, in a punctuation, is
    /// no check).
    fn read(&mut self, client: &ClientId, store: &'r str, key: &'r str, value: Option<&'r str>) {
        let Some(step) = self.steps.get_mut(client) else {
            return;
        };
        let k = (store, key);
        if let Some(w) = self.writes.get(store).and_then(|keys| keys.get(key)) {
            step.written.entry(k).or_insert(*w);
        }
        step.reads.entry(k).or_insert(value);
        let Some(order) = &step.order else {
            return;
        };
        // The first step of the order decided it; later ones (a duplicate record, a
        // replay) only repeat it. Its reads are kept as they come.
        let indexed = self
            .reserved
            .get(key)
            .is_some_and(|o| o.contains(order.as_str()));
        match self.decided.get_mut(order.as_str()) {
            None => {
                self.decided.insert(order.clone(), step.clone());
                if indexed {
                    self.deciders.insert(key, step.view(key), step.start, order);
                }
            }
            Some(decider) if decider.start == step.start => {
                let (old, new) = (decider.view(key), step.view(key));
                decider.clone_from(step);
                if indexed && old != new {
                    if !old.is_empty() {
                        self.deciders.remove(key, old, step.start);
                    }
                    self.deciders.insert(key, new, step.start, order);
                }
            }
            Some(_) => {}
        }
    }

    /// A client's processing step ended: stale if, for some product it read, it saw
    /// exactly what the step deciding the product's last committed reservation saw, for
    /// another order, with no write of those keys since.
    fn end_step(&mut self, client: &ClientId, p: &mut Probes) {
        let Some(step) = self.steps.remove(client) else {
            return;
        };
        // A decider qualifies if it started before this step and after the last write of
        // the key this step saw: `Deciders` answers that as a range of starts.
        let keys: BTreeSet<&'r str> = step.reads.keys().map(|(_, k)| *k).collect();
        let stale = keys.into_iter().any(|key| {
            let after = step.last_write(key).map_or(0, |w| w + 1);
            let found = self.deciders.any_within(
                key,
                step.view(key),
                after,
                step.start,
                step.order.as_ref(),
            );
            debug_assert!(
                self.reserved.get(key).is_none_or(|o| o.len() > 64)
                    || found == self.stale_by_scan(&step, key),
                "the deciders' index disagrees with a scan for {key}"
            );
            found
        });
        if stale {
            p.hit(Probe::StaleRead);
        }
    }

    /// The definition `Deciders` indexes, by a scan of every reserved order of `key`
    /// (debug builds cross-check the index with it on products of few orders).
    fn stale_by_scan(&self, step: &Step<'r>, key: &str) -> bool {
        let unwritten_since = |start: u64| {
            step.reads
                .keys()
                .filter(|(_, k)| *k == key)
                .all(|k| step.written.get(k).is_none_or(|w| *w < start))
        };
        let orders = self.reserved.get(key).into_iter().flatten();
        orders
            .filter(|o| step.order.as_deref() != Some(**o))
            .filter_map(|o| self.decided.get(*o))
            .any(|decider| {
                decider.start < step.start
                    && decider.view(key) == step.view(key)
                    && unwritten_since(decider.start)
            })
    }

    /// Whether a client of `instance` had written a store for a record not yet committed.
    fn crash(&mut self, instance: &str, p: &mut Probes) {
        let mut hit = false;
        for (client, records) in &self.dirty {
            if client.instance != instance {
                continue;
            }
            hit |= records.iter().any(|(tp, o)| {
                let committed = self.committed.get(&(client.app.clone(), tp.clone()));
                committed.is_none_or(|c| *o >= *c)
            });
        }
        if hit {
            p.hit(Probe::CrashBeforeCommit);
        }
        let gone: Vec<ClientId> = self
            .steps
            .keys()
            .filter(|c| c.instance == instance)
            .cloned()
            .collect();
        for c in gone {
            self.end_step(&c, p);
        }
        self.dirty.retain(|c, _| c.instance != instance);
        self.last_processed.retain(|c, _| c.instance != instance);
    }

    /// Whether some record processed by `group`'s clients is not committed yet.
    fn uncommitted_in(&self, group: &str) -> bool {
        self.last_processed.iter().any(|(client, (tp, o))| {
            client.app == group
                && self
                    .committed
                    .get(&(group.to_string(), tp.clone()))
                    .is_none_or(|c| *o >= *c)
        })
    }

    /// An instance resumed: each of its clients whose group rebalanced meanwhile is a
    /// zombie until it rejoins.
    fn resume(&mut self, instance: &str) {
        let Some(before) = self.paused.remove(instance) else {
            return;
        };
        let stale: Vec<ClientId> = self
            .joined
            .keys()
            .filter(|c| c.instance == instance)
            .filter(|c| self.generation.get(&c.app) != before.get(&c.app))
            .cloned()
            .collect();
        for c in stale {
            self.zombies.insert(c, Zombie::default());
        }
    }

    /// A zombie's window closed: did it write, and did its writes stand?
    fn settle(&self, cx: &Cx<'_>, z: Zombie, p: &mut Probes) {
        let fates: Vec<Option<Fate>> = z.acked.iter().map(|(tp, o)| cx.h.fate(tp, *o)).collect();
        if fates.contains(&Some(Fate::Committed)) {
            p.hit(Probe::ZombieWrote);
        } else if z.processed {
            p.hit(Probe::ZombieFenced);
        }
    }

    /// Zombies that never rejoined before the run ended.
    fn finish(&mut self, cx: &Cx<'_>, p: &mut Probes) {
        let clients: Vec<ClientId> = self.steps.keys().cloned().collect();
        for c in clients {
            self.end_step(&c, p);
        }
        for z in std::mem::take(&mut self.zombies).into_values() {
            self.settle(cx, z, p);
        }
    }
}
