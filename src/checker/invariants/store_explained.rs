//! `store-explained` (always): a store never holds a value that nothing in the log
//! explains.
//!
//! Kafka Streams keeps a store equal to its changelog: under exactly-once, a task whose
//! transaction ends other than by its own commit is closed dirty, its stores wiped and
//! restored from the committed changelog (`StreamTask.closeDirty`,
//! `ProcessorStateManager`'s wipe on `TaskCorruptedException`). So at any moment a
//! store's value for a key is a value some committed changelog record gave the key, or a
//! write of the task's own still open work: a record of a transaction not yet settled, or
//! a `put` not yet flushed to the changelog.

use crate::checker::commitment::Fate;
use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::{Event, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// Values that explain a store's key: store → (partition, key) → values (by store first,
/// so that a look-up compares keys, not the store's name again at every node).
type Explained<'r> = BTreeMap<&'r str, BTreeMap<(u32, &'r str), BTreeSet<&'r str>>>;

/// At the end of the run, every value of every store is explained by a committed record
/// of its changelog partition for that key, by a record of a still open transaction, or
/// by a `put` of that value with no later write of the key to the changelog.
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let explained = explanations(cx);
    let mut out = Vec::new();
    for (instance, stores) in &cx.run.stores {
        for ((store, partition), contents) in stores {
            let mut unexplained = Vec::new();
            let of_store = explained.get(store.as_str());
            for (key, value) in contents {
                let ok = of_store
                    .and_then(|keys| keys.get(&(*partition, key.as_str())))
                    .is_some_and(|vs| vs.contains(value.as_str()));
                if !ok {
                    unexplained.push(format!("key {key} is {value:?}"));
                }
            }
            if unexplained.is_empty() {
                continue;
            }
            let n = unexplained.len();
            let more = if n > 3 {
                format!(" (and {} more keys)", n - 3)
            } else {
                String::new()
            };
            unexplained.truncate(3);
            let explanation = format!(
                "{instance}'s {store} store (partition {partition}) holds what no committed changelog record and \
                 no open write explains: {}{more}",
                unexplained.join("; ")
            );
            out.push(cx.violation(Invariant::StoreExplained, cx.run.end_time, explanation, vec![]));
        }
    }
    out
}

/// Every value the log or an unflushed `put` explains, per store, partition and key.
fn explanations<'r>(cx: &Cx<'r>) -> Explained<'r> {
    let mut out: Explained<'r> = BTreeMap::new();
    // Changelog records: committed, or of a transaction still open.
    let store_of: BTreeMap<&str, &str> = cx
        .schema
        .stores
        .iter()
        .map(|s| (s.changelog.as_str(), s.name.as_str()))
        .collect();
    // Per store, per key: the last changelog append, by trace seq.
    let mut last_append: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut puts: Vec<(&str, &str, &str, u64)> = Vec::new();
    for r in &cx.run.trace.records {
        match &r.event {
            Event::Append {
                tp,
                offset,
                key: Some(key),
                value: Some(value),
                ..
            } => {
                let Some(store) = store_of.get(tp.topic.as_str()).copied() else {
                    continue;
                };
                last_append.entry(store).or_default().insert(key, r.seq);
                if matches!(cx.h.fate(tp, *offset), Some(Fate::Committed | Fate::Open)) {
                    explain(&mut out, store, tp, key, value);
                }
            }
            Event::StorePut {
                store,
                key,
                value: Some(value),
                ..
            } => puts.push((store, key, value, r.seq)),
            _ => {}
        }
    }
    // A put not yet flushed: no changelog write of its key came after it.
    for (store, key, value, seq) in puts {
        let last = last_append.get(store).and_then(|keys| keys.get(key));
        if last.is_some_and(|a| *a > seq) {
            continue;
        }
        for declared in cx.schema.stores_named(store) {
            let partitions = cx.run.broker.partition_count(&declared.changelog).unwrap_or(0);
            for p in 0..partitions {
                let tp = TopicPartition::new(declared.changelog.as_str(), p);
                explain(&mut out, store, &tp, key, value);
            }
        }
    }
    out
}

fn explain<'r>(out: &mut Explained<'r>, store: &'r str, tp: &TopicPartition, key: &'r str, value: &'r str) {
    let of_store = match out.get_mut(store) {
        Some(of_store) => of_store,
        None => out.entry(store).or_default(),
    };
    of_store.entry((tp.partition, key)).or_default().insert(value);
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    fn put(s: &mut Sim, key: &str, value: &str) -> u64 {
        s.event(Event::StorePut {
            client: cid("product-service-0/ps"),
            store: "ProductStock".into(),
            key: key.into(),
            value: Some(value.into()),
        })
    }

    #[test]
    fn store_explained_flags_a_value_only_an_aborted_transaction_wrote() {
        let mut s = Sim::new();
        s.put(STOCK_LOG, 0, "p1", Some("3".into()));
        s.put(STOCK_LOG, 0, "p1", Some("2".into()));
        // An older committed value explains a key (a stale store is view-matches-log's).
        s.store("product-service-0", "ProductStock", 0, &[("p1", "3")]);
        assert!(violations(Invariant::StoreExplained, &naive(), &s, 1000).is_empty());
        // A put not yet flushed to the changelog explains its value.
        put(&mut s, "p2", "9");
        s.store("product-service-0", "ProductStock", 0, &[("p1", "2"), ("p2", "9")]);
        s.outcome = Outcome::TimeBound;
        assert!(violations(Invariant::StoreExplained, &naive(), &s, 1000).is_empty());
        // A put whose transaction then aborted explains nothing.
        put(&mut s, "p1", "1");
        s.txn(&[(STOCK_LOG, 0, "p1", "1".into())], false);
        s.store("product-service-0", "ProductStock", 0, &[("p1", "1"), ("p2", "9")]);
        let v = violations(Invariant::StoreExplained, &naive(), &s, 1000);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].explanation,
            "product-service-0's ProductStock store (partition 0) holds what no committed changelog record and no \
             open write explains: key p1 is \"1\""
        );
    }

    /// A store that restored records of aborted transactions (`--mutation
    /// read-uncommitted`: restore reads the changelog read_uncommitted): order-service's
    /// store says `Cancelled` where no committed changelog record does. (The same symptom
    /// on the unchanged kernel, seed 116 of this scenario, was a streams runtime defect,
    /// now fixed and kept in `tests/regression.rs`.) The run is the saga's before its
    /// timers' fix (`saga-direct-timers`), where the defect first showed.
    #[test]
    fn a_store_that_kept_uncommitted_writes_fails_it_on_a_real_run() {
        use crate::designs::Mutation;
        use crate::expect::FaultClass;
        let path = "scenarios/saga-payment-failure.toml";
        let mutations = [Mutation::ReadUncommitted];
        // Seed 4 (seed 1 before transaction markers were written asynchronously, which
        // changed every transactional schedule).
        let v = real_run(path, "saga-direct-timers", &mutations, 4, Some(FaultClass::Network));
        let found: Vec<_> = v.of(Invariant::StoreExplained).collect();
        assert_eq!(found.len(), 1, "{v}");
        let says = &found[0].explanation;
        assert!(says.contains("order-state store") && says.contains("key order2 is"), "{v}");
        assert!(says.contains("Cancelled"), "{v}");
    }
}
