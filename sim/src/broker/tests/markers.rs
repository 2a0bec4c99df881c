//! Unit tests of the asynchronous markers and the timeout scan (Kafka's
//! `TransactionMarkerChannelManager`, `TransactionCoordinator.abortTimedOutTransactions`),
//! on both transaction protocol versions.

use super::*;

fn run(version: TransactionVersion) -> Run {
    let mut r = Run::new(2, false);
    r.b.set_transaction_version(version);
    r.markers_by_hand = true;
    r
}

fn offsets_request(p: &ProducerIdentity, generation: Generation) -> Request {
    Request::TxnOffsetCommit {
        producer: p.clone(),
        group: GroupMetadata {
            group: "g".into(),
            member_id: String::new(),
            generation,
        },
        offsets: vec![(tp(0), 7)],
    }
}

fn stable_fetch(r: &mut Run) -> Response {
    r.req(
        "c",
        Request::OffsetFetch {
            group: "g".into(),
            partitions: vec![tp(0)],
            require_stable: true,
        },
    )
}

fn partition_marker(tid: &str, p: u32) -> PendingMarker {
    PendingMarker {
        transactional_id: tid.into(),
        target: MarkerTarget::Partition(tp(p)),
    }
}

/// The producer identity at the epoch an `EndTxn` answered (v2), or unchanged (v1).
fn after_end(p: &ProducerIdentity, answer: Option<(ProducerId, Epoch)>) -> ProducerIdentity {
    let mut next = p.clone();
    if let Some((producer_id, epoch)) = answer {
        (next.producer_id, next.epoch) = (producer_id, epoch);
    }
    next
}

#[test]
fn an_end_txn_prepares_and_each_marker_lands_on_its_own() {
    for version in [TransactionVersion::V1, TransactionVersion::V2] {
        let mut r = run(version);
        let p = r.init(Some("tx"), 10_000);
        r.produce(Some(&p), vec![(0, Some(0), vec![rec("k", "a")])]);
        r.produce(Some(&p), vec![(1, Some(0), vec![rec("k", "b")])]);
        assert_eq!(
            r.req("p", offsets_request(&p, 0)),
            Response::TxnOffsetCommit(Ok(()))
        );
        let answer = r.end_txn(&p, true).expect("PrepareCommit answers at once");
        let next = after_end(&p, answer);
        // PrepareCommit: three markers pending, nothing stable yet.
        assert_eq!(r.b.pending_markers().len(), 3, "{version:?}");
        assert_eq!(r.b.open_transactions(), ["tx"]);
        assert_eq!(
            (
                r.b.last_stable_offset(&tp(0)),
                r.b.last_stable_offset(&tp(1))
            ),
            (0, 0)
        );
        assert!(!r.b.is_committed(&tp(0), 0), "no marker in tp 0 yet");
        assert_eq!(
            stable_fetch(&mut r),
            Response::OffsetFetch(Err(KafkaError::UnstableOffsetCommit))
        );
        // Meanwhile: a retried EndTxn, a new InitProducerId, the next transaction's
        // offsets get CONCURRENT_TRANSACTIONS; its produce, NOT_ENOUGH_REPLICAS.
        assert_eq!(r.end_txn(&p, true), Err(KafkaError::ConcurrentTransactions));
        assert_eq!(
            r.init_request(Some("tx"), 10_000),
            Response::InitProducerId(Err(KafkaError::ConcurrentTransactions))
        );
        assert_eq!(
            r.req("p", offsets_request(&next, 0)),
            Response::TxnOffsetCommit(Err(KafkaError::ConcurrentTransactions))
        );
        let res = r.produce(Some(&next), vec![(0, Some(0), vec![rec("k", "c")])]);
        assert_eq!(
            res,
            [PartitionProduceResult::Error(KafkaError::NotEnoughReplicas)]
        );
        // The marker of tp 1 lands: its LSO moves, tp 0's stays.
        let mut events = Vec::new();
        r.b.write_pending_marker(5, &partition_marker("tx", 1), &mut events);
        assert_eq!(
            (
                r.b.last_stable_offset(&tp(0)),
                r.b.last_stable_offset(&tp(1))
            ),
            (0, 2)
        );
        assert!(r.b.is_committed(&tp(1), 0) && !r.b.is_committed(&tp(0), 0));
        // The group's marker: its offsets commit and are stable.
        let group = PendingMarker {
            transactional_id: "tx".into(),
            target: MarkerTarget::Group("g".into()),
        };
        r.b.write_pending_marker(6, &group, &mut events);
        assert_eq!(
            stable_fetch(&mut r),
            Response::OffsetFetch(Ok(vec![(tp(0), Some(7))]))
        );
        assert_eq!(r.b.open_transactions(), ["tx"], "tp 0 still waits");
        // The last marker completes the transaction; the retry is then answered Ok.
        r.b.write_pending_marker(7, &partition_marker("tx", 0), &mut events);
        assert!(r.b.open_transactions().is_empty() && !r.b.has_pending_markers());
        assert_eq!(r.end_txn(&p, true), Ok(answer), "{version:?}");
        let res = r.produce(Some(&next), vec![(0, Some(0), vec![rec("k", "c")])]);
        assert!(matches!(res[..], [PartitionProduceResult::Appended { .. }]));
    }
}

#[test]
fn init_producer_id_on_an_ongoing_transaction_aborts_it_and_the_retry_bumps_again() {
    // v1: +1 at the fence, +1 at the retry; v2: +2 at the fence (the abort's own bump),
    // +1 at the retry (TransactionCoordinator.prepareInitProducerIdTransit).
    for (version, fence, retry) in [
        (TransactionVersion::V1, 1, 2),
        (TransactionVersion::V2, 2, 3),
    ] {
        let mut r = run(version);
        let p = r.init(Some("tx"), 10_000);
        r.produce(Some(&p), vec![(0, Some(0), vec![rec("k", "a")])]);
        let concurrent = Response::InitProducerId(Err(KafkaError::ConcurrentTransactions));
        assert_eq!(r.init_request(Some("tx"), 10_000), concurrent);
        // Its marker is not written yet: the record is not aborted there, the LSO stays.
        assert!(!r.b.is_aborted(&tp(0), 0) && r.b.last_stable_offset(&tp(0)) == 0);
        assert_eq!(
            r.b.producer_epoch("tx"),
            Some((p.producer_id, p.epoch + fence))
        );
        // The retry while the abort's marker is pending is answered the same.
        assert_eq!(r.init_request(Some("tx"), 10_000), concurrent);
        r.b.write_all_pending_markers(1, &mut r.events);
        assert!(r.b.is_aborted(&tp(0), 0));
        assert_eq!(
            r.b.log(&tp(0))[1].producer,
            Some((p.producer_id, p.epoch + fence))
        );
        let again = r.init_request(Some("tx"), 10_000);
        assert_eq!(
            again,
            Response::InitProducerId(Ok((p.producer_id, p.epoch + retry)))
        );
    }
}

#[test]
fn a_commit_racing_a_timeout_abort_is_fenced() {
    for version in [TransactionVersion::V1, TransactionVersion::V2] {
        let mut r = run(version);
        let p = r.init(Some("tx"), 1_000);
        r.produce(Some(&p), vec![(0, Some(0), vec![rec("k", "a")])]);
        r.tick(2_000); // the scan: PrepareAbort, its marker pending
        assert!(r.b.has_pending_markers());
        // The commit arrives while the abort's markers are written, then after: fenced
        // both times, never a retry (v2: the epoch moved by two; v1: by one).
        assert_eq!(
            r.end_txn(&p, true),
            Err(KafkaError::ProducerFenced),
            "{version:?}"
        );
        r.b.write_all_pending_markers(2_000, &mut r.events);
        assert_eq!(
            r.end_txn(&p, true),
            Err(KafkaError::ProducerFenced),
            "{version:?}"
        );
        assert!(r.b.is_aborted(&tp(0), 0));
    }
}

#[test]
fn the_scan_runs_at_multiples_of_its_interval_and_skips_ending_transactions() {
    let mut r = run(TransactionVersion::V2);
    r.b.set_abort_scan_interval(300);
    let p = r.init(Some("tx"), 1_000);
    r.produce(Some(&p), vec![(0, Some(0), vec![rec("k", "a")])]);
    // Deadline 1 000; scans at 900 (not yet), 1 200 (strictly past it).
    assert_eq!(r.b.next_deadline(), Some(1_200));
    r.tick(1_199);
    assert!(!r.b.has_pending_markers());
    // An EndTxn just before the scan: the transaction is ending, so the scan skips it.
    let answer = r.end_txn(&p, true).unwrap();
    assert_eq!(r.b.next_deadline(), None);
    r.tick(1_200);
    let pending = r.b.pending_markers();
    assert_eq!(pending, [partition_marker("tx", 0)]);
    r.b.write_all_pending_markers(1_200, &mut r.events);
    assert!(r.b.is_committed(&tp(0), 0));
    assert_eq!(r.b.producer_epoch("tx"), answer);
}
