//! Unit tests of the transaction and group coordinators.

use super::*;

#[test]
fn committed_transaction_becomes_visible_with_markers_skipped() {
    let mut r = Run::new(2, false);
    let p = r.init(Some("tx"), 10_000);
    r.produce(None, vec![(0, None, vec![rec("k", "before")])]);
    r.produce(
        Some(&p),
        vec![
            (0, Some(0), vec![rec("k", "t1")]),
            (1, Some(0), vec![rec("k", "t2")]),
        ],
    );
    assert_eq!(r.b.open_transactions(), ["tx"]);
    assert_eq!(r.b.last_stable_offset(&tp(0)), 1);
    r.produce(None, vec![(0, None, vec![rec("k", "after")])]);
    // read_committed stops at the LSO; read_uncommitted sees the open record.
    assert_eq!(r.values(0, Isolation::ReadCommitted), ["before"]);
    assert_eq!(
        r.values(0, Isolation::ReadUncommitted),
        ["before", "t1", "after"]
    );
    assert!(!r.b.is_committed(&tp(0), 1) && !r.b.is_aborted(&tp(0), 1));
    r.end(&p, true).unwrap();
    assert!(r.b.open_transactions().is_empty());
    assert_eq!(r.b.log(&tp(0))[3].control, Some(ControlType::Commit));
    assert_eq!(r.b.log(&tp(1))[1].control, Some(ControlType::Commit));
    assert_eq!(
        r.values(0, Isolation::ReadCommitted),
        ["before", "t1", "after"]
    );
    assert_eq!(r.values(1, Isolation::ReadCommitted), ["t2"]);
    assert!(r.b.is_committed(&tp(0), 1) && r.b.is_committed(&tp(1), 0));
    // The fetch passes over the marker.
    assert_eq!(
        r.fetch(1, 0, Isolation::ReadCommitted).unwrap().next_offset,
        2
    );
    assert_eq!(
        r.fetch(1, 1, Isolation::ReadCommitted).unwrap().next_offset,
        2
    );
    // A retried commit is fine; an abort now is not.
    assert_eq!(r.end(&p, true), Ok(()));
    assert_eq!(r.end(&p, false), Err(KafkaError::InvalidTxnState));
}

/// Transaction protocol v1 (its v2 counterpart is in `txn_v2.rs`).
#[test]
fn aborted_transaction_is_skipped_by_read_committed_only() {
    let mut r = Run::v1(1, false);
    let p = r.init(Some("tx"), 10_000);
    r.produce(
        Some(&p),
        vec![(0, Some(0), vec![rec("k", "a1"), rec("k", "a2")])],
    );
    r.end(&p, false).unwrap();
    r.produce(Some(&p), vec![(0, Some(2), vec![rec("k", "c1")])]);
    r.end(&p, true).unwrap();
    assert_eq!(r.values(0, Isolation::ReadCommitted), ["c1"]);
    assert_eq!(r.values(0, Isolation::ReadUncommitted), ["a1", "a2", "c1"]);
    assert!(r.b.is_aborted(&tp(0), 0) && r.b.is_aborted(&tp(0), 1));
    assert!(
        !r.b.is_aborted(&tp(0), 2),
        "a marker is not an aborted record"
    );
    // Skipped aborted records and markers still move next_offset.
    let d = r.fetch(0, 0, Isolation::ReadCommitted).unwrap();
    assert_eq!((d.records[0].offset, d.next_offset), (3, 5));
    assert!(r.events.iter().any(
        |e| matches!(e, Event::TxnAbort { reason, .. } if reason == "requested by the producer")
    ));
}

/// Transaction protocol v1 (its v2 counterpart is in `txn_v2.rs`).
#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let mut r = Run::v1(2, false);
    let old = r.init(Some("tx"), 10_000);
    r.produce(Some(&old), vec![(0, Some(0), vec![rec("k", "zombie")])]);
    let new = r.init(Some("tx"), 10_000);
    // Under v1 the fence bumps once (the abort's markers carry it) and the retry after
    // CONCURRENT_TRANSACTIONS once more (TransactionCoordinator.prepareInitProducerIdTransit).
    assert_eq!(
        (new.producer_id, new.epoch),
        (old.producer_id, old.epoch + 2)
    );
    assert_eq!(r.b.log(&tp(0))[1].producer, Some((old.producer_id, 1)));
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::Fenced {
            fenced_epoch: 0,
            ..
        }
    )));
    assert!(r.b.is_aborted(&tp(0), 0));
    assert_eq!(r.b.log(&tp(0))[1].control, Some(ControlType::Abort));
    assert!(r.b.open_transactions().is_empty());
    // Every later request of the old epoch fails as fenced.
    let res = r.produce(Some(&old), vec![(1, Some(1), vec![rec("k", "late")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(KafkaError::ProducerFenced)]
    );
    assert_eq!(r.end(&old, true), Err(KafkaError::ProducerFenced));
    let resp = r.req(
        "p",
        Request::TxnOffsetCommit {
            producer: old.clone(),
            group: GroupMetadata {
                group: "g".into(),
                member_id: "m".into(),
                generation: 1,
            },
            offsets: vec![(tp(0), 1)],
        },
    );
    assert_eq!(
        resp,
        Response::TxnOffsetCommit(Err(KafkaError::ProducerFenced))
    );
    assert_eq!(r.b.log(&tp(1)).len(), 0);
    // The new epoch starts its sequences at 0.
    let res = r.produce(Some(&new), vec![(0, Some(0), vec![rec("k", "fresh")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Appended {
            base_offset: 2,
            duplicate: false
        }]
    );
    r.end(&new, true).unwrap();
    assert_eq!(r.values(0, Isolation::ReadCommitted), ["fresh"]);
    // After an init no transaction ended in this epoch: EndTxn with nothing open is invalid.
    let newer = r.init(Some("tx"), 10_000);
    assert_eq!(r.end(&newer, true), Err(KafkaError::InvalidTxnState));
}

/// Transaction protocol v1 (its v2 counterpart is in `txn_v2.rs`).
#[test]
fn a_transaction_open_past_its_timeout_is_aborted_and_its_epoch_fenced() {
    let mut r = Run::v1(1, false);
    let p = r.init(Some("tx"), 1_000);
    r.now = 100;
    r.produce(Some(&p), vec![(0, Some(0), vec![rec("k", "slow")])]);
    // The deadline is 1 100; the scan runs every 1 000 ms and finds it past at 2 000.
    assert_eq!(r.b.next_deadline(), Some(2_000));
    r.tick(1_999);
    assert_eq!(r.b.open_transactions(), ["tx"]);
    r.tick(2_000);
    assert!(r.b.open_transactions().is_empty());
    assert!(r.b.is_aborted(&tp(0), 0));
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::TxnAbort { reason, .. } if reason == "timeout")));
    assert_eq!(r.b.producer_epoch("tx"), Some((p.producer_id, 1)));
    assert_eq!(r.end(&p, true), Err(KafkaError::ProducerFenced));
    let res = r.produce(Some(&p), vec![(0, Some(1), vec![rec("k", "late")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(KafkaError::ProducerFenced)]
    );
    assert_eq!(r.b.next_deadline(), None);
    assert_eq!(r.values(0, Isolation::ReadCommitted), Vec::<String>::new());
}

#[test]
fn epoch_exhaustion_moves_to_a_fresh_producer_id() {
    let mut r = Run::new(1, false);
    let p = r.init(Some("tx"), 1_000);
    r.b.txn_ids.get_mut("tx").unwrap().epoch = MAX_EPOCH;
    let q = r.init(Some("tx"), 1_000);
    assert_ne!(q.producer_id, p.producer_id);
    assert_eq!(q.epoch, 0);
    let stale = ProducerIdentity {
        epoch: MAX_EPOCH,
        ..p
    };
    assert_eq!(r.end(&stale, true), Err(KafkaError::ProducerFenced));
}

#[test]
fn rebalance_on_join_uses_range_assignment() {
    let mut r = Run::new(3, false);
    let (a, gen, parts) = joined(r.join("a", None));
    assert_eq!(
        (a.as_str(), gen, parts),
        ("a/app-1", 1, vec![tp(0), tp(1), tp(2)])
    );
    assert_eq!(r.b.group_state("g"), Some(GroupState::Stable));
    // A second member: the group waits for the first one to rejoin.
    let b = match r.join("b", None) {
        Ok(JoinOutcome::Pending { member_id }) => member_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.heartbeat(&a, 1), Err(KafkaError::RebalanceInProgress));
    // Commits of the current generation are still accepted while preparing.
    assert_eq!(r.commit_offsets(&a, 1, 5), Ok(()));
    let (_, gen, parts) = joined(r.join("a", Some(&a)));
    assert_eq!((gen, parts), (2, vec![tp(0), tp(1)]));
    let (_, gen, parts) = joined(r.join("b", Some(&b)));
    assert_eq!((gen, parts), (2, vec![tp(2)]));
    assert_eq!(r.heartbeat(&a, 2), Ok(()));
    assert_eq!(r.heartbeat(&a, 1), Err(KafkaError::IllegalGeneration));
    assert_eq!(r.heartbeat("nobody", 2), Err(KafkaError::UnknownMemberId));
    // A stale-generation commit is rejected; the current one is accepted.
    assert_eq!(
        r.commit_offsets(&a, 1, 9),
        Err(KafkaError::IllegalGeneration)
    );
    assert_eq!(r.b.committed_offsets("g")[&tp(0)], 5);
    assert_eq!(r.commit_offsets(&a, 2, 9), Ok(()));
    assert_eq!(r.b.committed_offsets("g")[&tp(0)], 9);
    // Leaving rebalances the rest.
    let resp = r.req(
        "b",
        Request::LeaveGroup {
            group: "g".into(),
            member_id: b.clone(),
        },
    );
    assert_eq!(resp, Response::LeaveGroup(Ok(())));
    let (_, gen, parts) = joined(r.join("a", Some(&a)));
    assert_eq!((gen, parts.len()), (3, 3));
    assert_eq!(r.join("b", Some(&b)), Err(KafkaError::UnknownMemberId));
}

#[test]
fn range_assignor_matches_kafka() {
    let subs: BTreeMap<String, Vec<String>> = [
        ("m1".to_string(), vec!["t".to_string(), "u".to_string()]),
        ("m2".to_string(), vec!["t".to_string()]),
        (
            "m3".to_string(),
            vec!["t".to_string(), "u".to_string(), "missing".to_string()],
        ),
    ]
    .into_iter()
    .collect();
    let a = range_assignment(&subs, |t| match t {
        "t" => Some(7),
        "u" => Some(1),
        _ => None,
    });
    let names = |m: &str| a[m].iter().map(|tp| tp.to_string()).collect::<Vec<_>>();
    assert_eq!(names("m1"), ["t-0", "t-1", "t-2", "u-0"]);
    assert_eq!(names("m2"), ["t-3", "t-4"]);
    assert_eq!(names("m3"), ["t-5", "t-6"]);
    // More members than partitions: the last ones get nothing.
    let subs: BTreeMap<String, Vec<String>> = ["a", "b", "c"]
        .iter()
        .map(|m| (m.to_string(), vec!["u".to_string()]))
        .collect();
    let a = range_assignment(&subs, |_| Some(2));
    assert_eq!(a["a"].len() + a["b"].len(), 2);
    assert!(a["c"].is_empty());
}

#[test]
fn a_member_missing_its_session_timeout_is_expired_and_the_group_rebalances() {
    let mut r = Run::new(2, false);
    let (a, _, _) = joined(r.join("a", None));
    r.join("b", None).unwrap();
    let (_, _, _) = joined(r.join("a", Some(&a)));
    let b = r.b.group_members("g")[1].clone();
    assert_eq!(r.b.group_generation("g"), Some(2));
    r.now = 600;
    joined(r.join("b", Some(&b))); // refreshes b's session (Stable: idempotent)
    r.now = 900;
    assert_eq!(r.heartbeat(&b, 2), Ok(()));
    // a's session (last seen at 0, timeout 1000) expires first.
    assert_eq!(r.b.next_deadline(), Some(1_000));
    r.tick(1_000);
    assert!(left(&r.events, &a, "session timeout"));
    assert_eq!(
        r.b.group_state("g"),
        Some(GroupState::PreparingRebalance { since: 1_000 })
    );
    assert_eq!(r.b.group_members("g"), std::slice::from_ref(&b));
    // The zombie's commit is refused.
    assert_eq!(r.commit_offsets(&a, 2, 1), Err(KafkaError::UnknownMemberId));
    let (_, gen, parts) = joined(r.join("b", Some(&b)));
    assert_eq!((gen, parts), (3, vec![tp(0), tp(1)]));
}

#[test]
fn a_member_not_rejoining_within_the_rebalance_timeout_is_removed() {
    let mut r = Run::new(2, false);
    let (a, _, _) = joined(r.join("a", None));
    r.now = 100;
    let b = match r.join("b", None).unwrap() {
        JoinOutcome::Pending { member_id } => member_id,
        other => panic!("{other:?}"),
    };
    // Rebalance timeout 500 from 100; a's session would end at 1000.
    assert_eq!(r.b.next_deadline(), Some(600));
    r.tick(600);
    assert!(left(&r.events, &a, "rebalance timeout"));
    assert_eq!(r.b.group_state("g"), Some(GroupState::Stable));
    let (_, gen, parts) = joined(r.join("b", Some(&b)));
    assert_eq!((gen, parts.len()), (2, 2));
    // The last member leaving empties the group and bumps the generation.
    r.req(
        "b",
        Request::LeaveGroup {
            group: "g".into(),
            member_id: b,
        },
    );
    assert_eq!(r.b.group_state("g"), Some(GroupState::Empty));
    assert_eq!(r.b.group_generation("g"), Some(3));
}

/// Transaction protocol v1 (its v2 counterpart is in `txn_v2.rs`).
#[test]
fn transactional_offsets_are_fenced_by_generation_and_committed_with_the_transaction() {
    let mut r = Run::v1(1, false);
    let (m, gen, _) = joined(r.join("a", None));
    let p = r.init(Some("tx"), 10_000);
    let send = |r: &mut Run, generation: Generation, offset: Offset| {
        let resp = r.req(
            "p",
            Request::TxnOffsetCommit {
                producer: p.clone(),
                group: GroupMetadata {
                    group: "g".into(),
                    member_id: m.clone(),
                    generation,
                },
                offsets: vec![(tp(0), offset)],
            },
        );
        let Response::TxnOffsetCommit(res) = resp else {
            panic!()
        };
        res
    };
    assert_eq!(send(&mut r, gen + 1, 3), Err(KafkaError::IllegalGeneration));
    assert!(
        r.b.open_transactions().is_empty(),
        "a rejected commit begins nothing"
    );
    assert_eq!(send(&mut r, gen, 3), Ok(()));
    assert_eq!(r.b.open_transactions(), ["tx"]);
    assert!(r.b.committed_offsets("g").is_empty());
    let fetch = |r: &mut Run, require_stable| {
        r.req(
            "c",
            Request::OffsetFetch {
                group: "g".into(),
                partitions: vec![tp(0)],
                require_stable,
            },
        )
    };
    assert_eq!(
        fetch(&mut r, true),
        Response::OffsetFetch(Err(KafkaError::UnstableOffsetCommit))
    );
    assert_eq!(
        fetch(&mut r, false),
        Response::OffsetFetch(Ok(vec![(tp(0), None)]))
    );
    r.end(&p, true).unwrap();
    assert_eq!(r.b.committed_offsets("g")[&tp(0)], 3);
    assert_eq!(
        fetch(&mut r, true),
        Response::OffsetFetch(Ok(vec![(tp(0), Some(3))]))
    );
    // Aborted offsets are dropped.
    assert_eq!(send(&mut r, gen, 7), Ok(()));
    r.end(&p, false).unwrap();
    assert_eq!(r.b.committed_offsets("g")[&tp(0)], 3);
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::OffsetCommit {
            transactional: true,
            ..
        }
    )));
}

/// Kafka's `GroupCoordinator.validateOffsetCommit`: a commit with a generation but no
/// member id is `UNKNOWN_MEMBER_ID` (here it used to pass the member checks unchecked).
#[test]
fn an_offset_commit_with_an_empty_member_id_is_rejected() {
    let mut r = Run::new(1, false);
    assert_eq!(
        r.commit_offsets("", 0, 1),
        Err(KafkaError::UnknownMemberId),
        "no group yet"
    );
    let (member, generation, _) = joined(r.join("c", None));
    assert_eq!(
        r.commit_offsets("", generation, 1),
        Err(KafkaError::UnknownMemberId)
    );
    assert!(r.b.committed_offsets("g").is_empty());
    assert_eq!(r.commit_offsets(&member, generation, 1), Ok(()));
}
