//! The fetch purgatory (`DelayedFetch`): a fetch with nothing to return is held until a
//! partition has something visible past its offset, or `fetch.max.wait.ms` runs out.

use super::*;
use crate::protocol::FetchResult;

impl Run {
    /// A `FetchMany` of `partitions` at their offsets: `Ok` with the answer now, or
    /// `Err(id)` when the broker holds it.
    fn fetch_many(
        &mut self,
        partitions: &[(u32, Offset)],
        isolation: Isolation,
        max_wait_ms: Millis,
    ) -> Result<Vec<FetchResult>, u64> {
        let client = crate::client::ClientId::new("c", "app");
        let req = Request::FetchMany {
            partitions: partitions.iter().map(|(p, o)| (tp(*p), *o)).collect(),
            max_records: 100,
            isolation,
            max_wait_ms,
        };
        let handled = self
            .b
            .handle_request(self.now, &client, req, &mut self.events);
        self.b.check_invariants();
        match handled {
            Handled::Now(Response::FetchMany(results)) => Ok(results),
            Handled::Delayed(id) => Err(id),
            other => panic!("{other:?}"),
        }
    }

    /// The held fetches answered now.
    fn completed(&mut self) -> Vec<(u64, Vec<FetchResult>)> {
        let out = self.b.take_completed_fetches(&mut self.events);
        out.into_iter()
            .map(|(id, r)| {
                let Response::FetchMany(results) = r else {
                    panic!("{r:?}")
                };
                (id, results)
            })
            .collect()
    }
}

fn counts(results: &[FetchResult]) -> Vec<usize> {
    (results.iter())
        .map(|r| r.result.as_ref().map_or(usize::MAX, |d| d.records.len()))
        .collect()
}

#[test]
fn a_fetch_with_data_for_any_partition_is_answered_at_once() {
    // ReplicaManager.fetchMessages: bytesReadable >= fetch.min.bytes.
    let mut run = Run::new(2, false);
    run.produce(None, vec![(1, None, vec![rec("k", "v")])]);
    let results = run
        .fetch_many(&[(0, 0), (1, 0)], Isolation::ReadUncommitted, 100)
        .expect("answered at once");
    assert_eq!(counts(&results), vec![0, 1]);
    assert_eq!(results[1].offset, 0);
}

#[test]
fn an_empty_fetch_is_held_until_an_append_or_its_wait_runs_out() {
    let mut run = Run::new(2, false);
    let id = run
        .fetch_many(&[(0, 0), (1, 0)], Isolation::ReadUncommitted, 100)
        .expect_err("held");
    assert_eq!(
        run.b.next_deadline(),
        Some(100),
        "the wait is a broker deadline"
    );
    assert!(run.completed().is_empty(), "nothing to answer yet");
    // An append to either partition completes it (DelayedFetch.tryComplete, case G).
    run.now = 30;
    run.produce(None, vec![(1, None, vec![rec("k", "v")])]);
    let done = run.completed();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, id);
    assert_eq!(
        counts(&done[0].1),
        vec![0, 1],
        "the logs are read at completion"
    );
    assert_eq!(run.b.next_deadline(), None);

    // Nothing new: held, then answered empty at the deadline (onExpiration).
    run.fetch_many(&[(0, 0), (1, 1)], Isolation::ReadUncommitted, 100)
        .expect_err("held");
    run.tick(129);
    assert!(run.completed().is_empty(), "not before its wait ran out");
    run.tick(130);
    let done = run.completed();
    assert_eq!(done.len(), 1);
    assert_eq!(counts(&done[0].1), vec![0, 0]);
}

#[test]
fn a_read_committed_fetch_waits_for_the_last_stable_offset() {
    // The end visible to read_committed is the LSO: an open transaction's records do
    // not complete the fetch, its commit marker does.
    let mut run = Run::new(1, false);
    let p = run.init(Some("t"), 1000);
    run.fetch_many(&[(0, 0)], Isolation::ReadCommitted, 100)
        .expect_err("held");
    run.produce(Some(&p), vec![(0, Some(0), vec![rec("k", "v")])]);
    assert!(
        run.completed().is_empty(),
        "an open transaction is not visible"
    );
    run.end_txn(&p, true).unwrap();
    let done = run.completed();
    assert_eq!(done.len(), 1, "the marker moved the LSO past the offset");
    assert_eq!(counts(&done[0].1), vec![1]);
}

#[test]
fn max_wait_zero_answers_an_empty_fetch_at_once() {
    let mut run = Run::new(1, false);
    let results = run
        .fetch_many(&[(0, 0)], Isolation::ReadUncommitted, 0)
        .expect("answered");
    assert_eq!(counts(&results), vec![0]);
}
