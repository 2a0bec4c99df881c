//! Live histories with the coordinators' logs and the polls (format 3): epoch-fencing,
//! monotonic-commits and no-aborted-read judged from them.

use super::*;

/// A decoded entry of a coordinator's log.
fn coord(log: &str, offset: u64, t: u64, record: CoordinatorRecord) -> CoordinatorEntry {
    CoordinatorEntry {
        log: log.into(),
        partition: 0,
        offset,
        timestamp: T0 + t,
        producer_id: None,
        epoch: None,
        transactional: false,
        control: None,
        record: Some(record),
    }
}

/// The transaction coordinator's record of `TID` at producer 7, `epoch`, in `state`.
fn txn_state(offset: u64, t: u64, epoch: u16, state: &str) -> CoordinatorEntry {
    coord(
        "__transaction_state",
        offset,
        t,
        CoordinatorRecord::Transaction {
            transactional_id: TID.into(),
            producer_id: Some(7),
            epoch: Some(epoch),
            state: Some(state.into()),
            last_update: Some(T0 + t),
            timeout_ms: Some(10_000),
            partitions: vec![],
        },
    )
}

/// `with_txn`'s history with `TID` initialised at epoch 3 (t=500) and fenced at `fence_t`
/// (an `InitProducerId` of a new instance: epoch 4).
fn fenced_at(fence_t: u64) -> LiveHistory {
    let mut h = with_txn("ABORT", false);
    h.format = FORMAT.into();
    h.events.extend([
        fetch(150, CHECKER, "orders", 0, 4, "read_committed"),
        fetch(150, STOCK, "stock", 0, 1, "read_uncommitted"),
        fetch(150, STOCK, "orders", 0, 5, "read_uncommitted"),
    ]);
    h.coordinator = vec![
        txn_state(0, 500, 3, "Empty"),
        txn_state(1, 590, 3, "Ongoing"),
        txn_state(2, fence_t, 4, "PrepareAbort"),
        txn_state(3, fence_t + 60, 4, "CompleteAbort"),
        txn_state(4, fence_t + 61, 5, "Empty"),
    ];
    h
}

#[test]
fn a_write_of_a_fenced_epoch_that_landed_after_the_fence_fails_epoch_fencing() {
    // The epoch-3 write at orders@4 (t=600) before the coordinator fenced epoch 3: holds.
    let v = verdict(&fenced_at(700));
    assert!(v.holds(), "{v}");
    assert_eq!(
        v.unjudged(),
        [Invariant::CommitGeneration, Invariant::OwnEndTxn].into()
    );
    let run = to_run(&fenced_at(700)).unwrap();
    let inits: Vec<(u64, u16)> = run
        .trace
        .records
        .iter()
        .filter_map(|r| match &r.event {
            oversell_sim::Event::ProducerInit {
                producer_id, epoch, ..
            } => Some((*producer_id, *epoch)),
            _ => None,
        })
        .collect();
    assert_eq!(
        inits,
        vec![(7, 3), (7, 5)],
        "an InitProducerId is an Empty state"
    );
    // The same write landing after the fence: the broker accepted a fenced epoch.
    let v = verdict(&fenced_at(580));
    let broke: Vec<_> = v.of(Invariant::EpochFencing).collect();
    assert_eq!(broke.len(), 1, "{v}");
    assert_eq!(
        broke[0].explanation,
        "the broker accepted a write to orders-0@4 from inventory-service-1-0 pid 7 epoch 3 at t=600ms, but \
         epoch 3 of inventory-service-1-0 (pid 7) was fenced"
    );
    // A transactional batch whose producer id no transactional id holds: refused.
    let mut unknown = fenced_at(700);
    unknown.coordinator.clear();
    let e = refused(&unknown);
    assert!(
        e.0.contains("producer id 7, which no transactional id"),
        "{e}"
    );
}

/// An offset commit of group `inventory-service` for orders-0.
fn offset_commit(offset: u64, t: u64, committed: u64, pid: Option<u64>) -> CoordinatorEntry {
    CoordinatorEntry {
        producer_id: pid,
        epoch: pid.map(|_| 3),
        transactional: pid.is_some(),
        ..coord(
            "__consumer_offsets",
            offset,
            t,
            CoordinatorRecord::OffsetCommit {
                group: "inventory-service".into(),
                topic: "orders".into(),
                partition: 0,
                offset: Some(committed),
                commit_timestamp: Some(T0 + t),
                leader_epoch: Some(0),
            },
        )
    }
}

fn offsets_marker(offset: u64, t: u64, control: &str) -> CoordinatorEntry {
    CoordinatorEntry {
        log: "__consumer_offsets".into(),
        partition: 0,
        offset,
        timestamp: T0 + t,
        producer_id: Some(7),
        epoch: Some(4),
        transactional: true,
        control: Some(control.into()),
        record: None,
    }
}

/// Commits of orders-0: 2, then 4, then a transactional 3 settled by `marker`.
fn commits(marker: &str) -> LiveHistory {
    let mut h = fenced_at(700);
    let group = coord(
        "__consumer_offsets",
        0,
        200,
        CoordinatorRecord::GroupMetadata {
            group: "inventory-service".into(),
            generation: Some(2),
            protocol_type: Some("consumer".into()),
            protocol: Some("stream".into()),
            leader: Some("m1".into()),
            members: vec![GroupMember {
                member_id: "m1".into(),
                client_id: "c1".into(),
                assignment: vec![LiveTask {
                    topic: "orders".into(),
                    partition: 0,
                }],
            }],
        },
    );
    h.coordinator.extend([
        group,
        offset_commit(1, 300, 2, None),
        offset_commit(2, 500, 4, None),
        offset_commit(3, 610, 3, Some(7)),
        offsets_marker(4, 660, marker),
    ]);
    let orders = BTreeMap::from([("orders-0".to_string(), 4)]);
    h.group_offsets = BTreeMap::from([("inventory-service".to_string(), orders)]);
    h
}

#[test]
fn offset_commits_from_consumer_offsets_are_judged_for_going_backwards() {
    // The transactional commit of 3 aborted: the commits went 2, 4.
    let v = verdict(&commits("ABORT"));
    assert!(v.holds(), "{v}");
    assert!(!v.unjudged().contains(&Invariant::MonotonicCommits), "{v}");
    assert!(v.unjudged().contains(&Invariant::CommitGeneration), "{v}");
    let run = to_run(&commits("ABORT")).unwrap();
    assert!(run.trace.records.iter().any(|r| matches!(
        &r.event,
        oversell_sim::Event::Rebalance { generation: 2, assignment, .. } if assignment.len() == 1
    )));
    // Committed at its marker (t=660): the group's offset went back from 4 to 3.
    let mut back = commits("COMMIT");
    back.group_offsets
        .get_mut("inventory-service")
        .unwrap()
        .insert("orders-0".into(), 3);
    let v = verdict(&back);
    let broke: Vec<_> = v.of(Invariant::MonotonicCommits).collect();
    assert_eq!(broke.len(), 1, "{v}");
    assert_eq!(
        broke[0].explanation,
        "group inventory-service committed orders-0=3 at t=660ms (generation 2) after orders-0=4 at t=500ms: \
         its committed offset went backwards"
    );
    // A final committed offset that no decoded commit holds: the decoding is wrong.
    let mut wrong = commits("ABORT");
    wrong
        .group_offsets
        .get_mut("inventory-service")
        .unwrap()
        .insert("orders-0".into(), 3);
    let e = refused(&wrong);
    assert!(
        e.0.contains(
            "had orders-0=3 committed at the end, but __consumer_offsets holds no such commit"
        ),
        "{e}"
    );
}

/// A poll of `client` that returned orders-0 `from..next`.
fn fetch(t: u64, client: &str, topic: &str, from: u64, next: u64, isolation: &str) -> LiveEvent {
    LiveEvent {
        topic: Some(topic.into()),
        partition: Some(0),
        offset: Some(from),
        count: Some((next - from) as u32),
        next: Some(next),
        value: Some(isolation.into()),
        ..ev(t, "fetch", client)
    }
}

/// `fenced_at(700)`: every processed record fetched, by the checker `read_committed`, by
/// the stock application `read_uncommitted`.
fn fetched() -> LiveHistory {
    fenced_at(700)
}

#[test]
fn a_read_committed_consumer_that_processed_an_aborted_record_fails_no_aborted_read() {
    let mut h = fetched();
    // A read_uncommitted consumer of an at-least-once application may process it.
    h.events.push(process(700, STOCK, "orders", 4));
    let v = verdict(&h);
    assert!(v.of(Invariant::NoAbortedRead).next().is_none(), "{v}");
    assert!(!v.unjudged().contains(&Invariant::NoAbortedRead), "{v}");
    // A read_committed one returned it and processed it: Kafka let an aborted record through.
    h.events
        .push(fetch(700, CHECKER, "orders", 4, 5, "read_committed"));
    h.events.push(process(701, CHECKER, "orders", 4));
    let v = verdict(&h);
    let broke: Vec<_> = v.of(Invariant::NoAbortedRead).collect();
    assert_eq!(broke.len(), 1, "{v}");
    assert!(
        broke[0].explanation.starts_with(
            "product-service-0/product-checker, a read_committed consumer, processed orders-0@4"
        ),
        "{}",
        broke[0].explanation
    );
    // A processed record no recorded fetch returned: refused.
    let mut unfetched = fetched();
    unfetched.events.push(process(701, CHECKER, "orders", 4));
    let e = refused(&unfetched);
    assert!(
        e.0.contains("processed orders-0@4, which none of its recorded fetches returned"),
        "{e}"
    );
}

#[test]
fn a_history_before_format_3_leaves_what_it_does_not_hold_not_judged() {
    let all: Vec<Invariant> = NOT_RECORDED
        .iter()
        .chain(&NOT_RECORDED_BEFORE_3)
        .map(|(i, _)| *i)
        .collect();
    for h in [last_unit(false), with_txn("ABORT", false)] {
        let mut n = not_recorded(&h);
        n.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(n, want, "{}", h.format);
    }
    assert_eq!(
        not_recorded(&fenced_at(700)),
        vec![Invariant::CommitGeneration, Invariant::OwnEndTxn]
    );
}

/// The recorded `crash-point-double-reserve` run of `rekeyed-eos` (`docs/live/`, format 3):
/// the coordinators' logs as the real Kafka 4.4.0 wrote them, decoded and replayed.
#[test]
fn a_real_history_restores_the_coordinators_decisions() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/live/crash-point-double-reserve-rekeyed-eos-run0.json"
    );
    let h = LiveHistory::read(std::path::Path::new(path)).unwrap();
    assert_eq!(h.format, FORMAT);
    let run = to_run(&h).unwrap();
    let mut inits = Vec::new();
    let mut fenced = Vec::new();
    let mut commits = Vec::new();
    let mut fetches = 0;
    for r in &run.trace.records {
        match &r.event {
            oversell_sim::Event::ProducerInit { epoch, .. } => inits.push(*epoch),
            oversell_sim::Event::Fenced { fenced_epoch, .. } => {
                fenced.push((r.time, *fenced_epoch))
            }
            oversell_sim::Event::OffsetCommit {
                offsets,
                transactional: true,
                ..
            } => {
                commits.extend(offsets.iter().map(|(tp, o)| format!("{tp}={o}")));
            }
            oversell_sim::Event::Fetch { isolation, .. } => {
                assert_eq!(*isolation, oversell_sim::protocol::Isolation::ReadCommitted);
                fetches += 1;
            }
            _ => {}
        }
    }
    // The first instance's InitProducerId (epoch 0); the restarted one's (epoch 3), after
    // its open transaction (epoch 1) was fenced and aborted at t=11291 ms (epoch 2), before
    // the 10 s transaction timeout could have expired it (opened at t=1647 ms); under
    // transaction protocol v2 every other end bumped the epoch.
    assert_eq!(inits, vec![0, 3]);
    assert_eq!(
        fenced.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert_eq!(fenced[1].0, 11291);
    // Every transactional offset commit that committed, at its marker; the final ones are
    // what the group had committed at the end (checked by `to_run`).
    assert_eq!(
        commits,
        vec![
            "warehouse-inventory-0=1",
            "orders-0=1",
            "orders-0=2",
            "inventory-service-orders-by-product-repartition-0=2",
            "inventory-service-orders-by-product-repartition-0=4",
            "inventory-service-orders-by-product-repartition-0=4",
        ]
    );
    assert_eq!(fetches, 6);
}
