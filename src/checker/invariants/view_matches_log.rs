//! `view-matches-log` (at quiescence): every state store equals the fold of its committed
//! changelog.

use crate::checker::history::Rec;
use crate::checker::{Cx, Invariant, Violation};
use oversell_sim::TopicPartition;
use std::collections::{BTreeMap, BTreeSet};

/// At quiescence, every store of every instance equals the fold of its committed changelog
/// partition (the changelog topic the schema declares for the store).
pub fn judge(cx: &Cx<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for (instance, stores) in &cx.run.stores {
        for ((store, partition), contents) in stores {
            let mut diffs_of_first = None;
            for declared in cx.schema.stores_named(store) {
                let tp = TopicPartition::new(declared.changelog.as_str(), *partition);
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

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;

    #[test]
    fn view_matches_log_compares_each_store_with_its_committed_changelog() {
        let mut s = Sim::new();
        s.put(STOCK_LOG, 1, "p1", Some("3".into()));
        s.put(STOCK_LOG, 1, "p2", Some("1".into()));
        s.put(STOCK_LOG, 1, "p2", None); // tombstone
        s.txn(&[(STOCK_LOG, 1, "p1", "2".into())], false); // aborted: not in the fold
        s.store("product-service-0", "ProductStock", 1, &[("p1", "3")]);
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

    #[test]
    #[should_panic(expected = "does not declare the state stores [\"OtherStore\"]")]
    fn a_store_the_schema_does_not_declare_is_refused_not_skipped() {
        let mut s = Sim::new();
        s.store("product-service-1", "OtherStore", 0, &[("x", "1")]);
        check(&naive(), &s.run(), 1000);
    }
}
