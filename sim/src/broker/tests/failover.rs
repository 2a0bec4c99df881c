//! Coordinator failover on three brokers: the coordinators on the leaders of
//! `__transaction_state` and `__consumer_offsets`, answers held until their records are
//! replicated, `NOT_COORDINATOR` / `COORDINATOR_LOAD_IN_PROGRESS`, and the state a new
//! leader loads from its log.

use super::cluster::{rec, tp, Cl};
use super::*;
use crate::protocol::{Acks, GroupMetadata, JoinOutcome, ProduceBatch, RebalanceProtocol};
use coordinator::Coordinator;

fn client() -> ClientId {
    ClientId::new("p", "app")
}

/// Every follower fetch until none is useful.
fn replicate_all(c: &mut Cl) {
    for _ in 0..20 {
        let fetches = c.b.follower_fetches();
        if fetches.is_empty() {
            return;
        }
        for f in fetches {
            c.b.follower_fetch(c.now, &f, &mut c.events);
        }
    }
    panic!("replication never settled");
}

fn coordinator_of(c: &Cl, kind: Coordinator, id: &str) -> BrokerId {
    let ctp = c.b.coordinator_tp(kind, id).expect("replicated");
    c.b.cluster.as_ref().unwrap().partitions[&ctp]
        .leader
        .expect("led")
}

fn init(t: &str) -> Request {
    Request::InitProducerId {
        transactional_id: Some(t.into()),
        transaction_timeout_ms: 10_000,
    }
}

fn now_answer(c: &mut Cl, req: Request) -> Response {
    match c.b.handle_request(c.now, &client(), req, &mut c.events) {
        Handled::Now(r) => r,
        other => panic!("{other:?}"),
    }
}

fn loaded(c: &Cl) -> usize {
    let loads = c.events.iter();
    loads
        .filter(|e| matches!(e, Event::CoordinatorLoaded { .. }))
        .count()
}

#[test]
fn an_id_maps_to_its_partition_as_java_hashes_it() {
    assert_eq!(java_hash_code(""), 0);
    assert_eq!(java_hash_code("hello"), 99_162_322);
    // `Utils.abs(Integer.MIN_VALUE)` is 0.
    assert_eq!(java_hash_code("polygenelubricants"), i32::MIN);
    assert_eq!(coordinator_partition("polygenelubricants", 50), 0);
    // "app-1": a negative hash code, taken absolute.
    let h = java_hash_code("app-1-producer");
    assert_eq!(
        coordinator_partition("app-1-producer", 7),
        h.unsigned_abs() % 7
    );
}

#[test]
fn a_new_transaction_coordinator_completes_a_prepared_commit_from_its_log() {
    let mut c = Cl::new(2, false);
    let Response::InitProducerId(Ok((pid, epoch))) = c.coord(init("t")) else {
        panic!()
    };
    let id = ProducerIdentity {
        producer_id: pid,
        epoch,
        transactional_id: Some("t".into()),
    };
    let req = Request::Produce {
        producer: Some(id.clone()),
        batches: vec![ProduceBatch {
            tp: tp(),
            base_sequence: Some(0),
            records: vec![rec("a")],
        }],
        acks: Acks::All,
    };
    c.b.handle_request(c.now, &client(), req, &mut c.events);
    replicate_all(&mut c);
    c.b.take_completed_produces();
    let end = Request::EndTxn {
        producer: id,
        commit: true,
    };
    assert!(matches!(c.coord(end), Response::EndTxn(Ok(_))));
    assert!(
        !c.b.pending_markers().is_empty(),
        "PrepareCommit is durable"
    );
    let old = coordinator_of(&c, Coordinator::Transaction, "t");
    c.crash(old, None);
    assert!(
        c.b.pending_markers().is_empty(),
        "a coordinator that is down sends no marker"
    );
    assert_eq!(
        now_answer(&mut c, init("t")),
        Response::InitProducerId(Err(KafkaError::NotCoordinator))
    );
    let fenced = c.session();
    c.tick_to(fenced);
    assert_ne!(coordinator_of(&c, Coordinator::Transaction, "t"), old);
    assert_eq!(
        now_answer(&mut c, init("t")),
        Response::InitProducerId(Err(KafkaError::CoordinatorLoadInProgress))
    );
    assert!(c.b.pending_markers().is_empty(), "still loading");
    c.tick_to(fenced + COORDINATOR_LOAD_MS);
    assert!(loaded(&c) >= 1);
    assert_eq!(c.b.open_transactions(), vec!["t".to_string()]);
    // The new leader's high watermark passes the record once its follower fetches.
    replicate_all(&mut c);
    let markers = c.b.pending_markers();
    assert_eq!(markers.len(), 1, "the marker is sent again");
    c.b.write_pending_marker(c.now, &markers[0], &mut c.events);
    replicate_all(&mut c);
    assert!(c.b.open_transactions().is_empty(), "committed");
    let marker = c.b.log(&tp()).last().and_then(|e| e.control);
    assert_eq!(marker, Some(ControlType::Commit));
    assert_eq!(
        c.b.last_stable_offset(&tp()),
        c.b.log_end_offset(&tp()),
        "the LSO passed the transaction"
    );
}

#[test]
fn an_answer_waits_for_its_record_and_a_record_lost_with_the_leader_is_forgotten() {
    let mut c = Cl::new(2, false);
    let h =
        c.b.handle_request(c.now, &client(), init("t"), &mut c.events);
    let Handled::Delayed(id) = h else {
        panic!("{h:?}: InitProducerId waits for acks=-1")
    };
    let old = coordinator_of(&c, Coordinator::Transaction, "t");
    c.crash(old, None);
    let fenced = c.session();
    c.tick_to(fenced);
    let answers = c.b.take_completed_produces();
    assert_eq!(
        answers,
        vec![(
            id,
            Response::InitProducerId(Err(KafkaError::NotCoordinator))
        )],
        "the leader moved before the record was replicated"
    );
    c.tick_to(fenced + COORDINATOR_LOAD_MS);
    assert_eq!(c.b.producer_epoch("t"), None, "the new leader never had it");
    let Response::InitProducerId(Ok((_, epoch))) = c.coord(init("t")) else {
        panic!()
    };
    assert_eq!(epoch, 0, "a first producer id again");
}

fn join(c: &mut Cl) -> (String, Generation) {
    let req = Request::JoinGroup {
        group: "g".into(),
        member_id: None,
        topics: vec![tp().topic.clone()],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 500,
        protocol: RebalanceProtocol::Eager,
        owned: Vec::new(),
    };
    match c.coord(req) {
        Response::JoinGroup(Ok(JoinOutcome::Joined {
            member_id,
            generation,
            ..
        })) => (member_id, generation),
        other => panic!("{other:?}"),
    }
}

fn offset_commit(member: &str, generation: Generation, offset: Offset) -> Request {
    Request::OffsetCommit {
        group: GroupMetadata {
            group: "g".into(),
            member_id: member.into(),
            generation,
        },
        offsets: vec![(tp(), offset)],
    }
}

fn offset_fetch() -> Request {
    Request::OffsetFetch {
        group: "g".into(),
        partitions: vec![tp()],
        require_stable: true,
    }
}

#[test]
fn a_new_group_coordinator_loads_the_generation_and_the_committed_offsets() {
    let mut c = Cl::new(2, false);
    let (member, generation) = join(&mut c);
    let commit = offset_commit(&member, generation, 7);
    assert_eq!(c.coord(commit), Response::OffsetCommit(Ok(())));
    let old = coordinator_of(&c, Coordinator::Group, "g");
    c.crash(old, None);
    assert_eq!(
        now_answer(&mut c, offset_fetch()),
        Response::OffsetFetch(Err(KafkaError::NotCoordinator))
    );
    let fenced = c.session();
    c.tick_to(fenced);
    assert_eq!(
        now_answer(&mut c, offset_fetch()),
        Response::OffsetFetch(Err(KafkaError::CoordinatorLoadInProgress))
    );
    let heartbeat = Request::Heartbeat {
        group: "g".into(),
        member_id: member.clone(),
        generation,
    };
    assert_eq!(
        now_answer(&mut c, heartbeat.clone()),
        Response::Heartbeat(Ok(())),
        "a loading coordinator answers heartbeats blindly"
    );
    c.tick_to(fenced + COORDINATOR_LOAD_MS);
    assert_eq!(
        now_answer(&mut c, offset_fetch()),
        Response::OffsetFetch(Ok(vec![(tp(), Some(7))]))
    );
    assert_eq!(c.b.group_generation("g"), Some(generation));
    assert_eq!(now_answer(&mut c, heartbeat), Response::Heartbeat(Ok(())));
}

#[test]
fn an_offset_commit_not_replicated_when_its_coordinator_crashes_is_not_acknowledged() {
    let mut c = Cl::new(2, false);
    let (member, generation) = join(&mut c);
    let commit = offset_commit(&member, generation, 7);
    let h = c.b.handle_request(c.now, &client(), commit, &mut c.events);
    let Handled::Delayed(id) = h else {
        panic!("{h:?}: an offset commit waits for acks=-1")
    };
    let old = coordinator_of(&c, Coordinator::Group, "g");
    // The leader's page cache is lost with it: its record is gone everywhere.
    let ends = c.b.replica_log_ends(old);
    let keep: Vec<Offset> = ends
        .iter()
        .map(|(t, end)| if t.topic == OFFSETS_TOPIC { 0 } else { *end })
        .collect();
    c.b.crash_broker(c.now, old, Some(&keep), &mut c.events);
    let fenced = c.session();
    c.tick_to(fenced);
    let answers = c.b.take_completed_produces();
    assert_eq!(
        answers,
        vec![(id, Response::OffsetCommit(Err(KafkaError::NotCoordinator)))]
    );
    c.tick_to(fenced + COORDINATOR_LOAD_MS);
    assert!(c.b.committed_offsets("g").is_empty(), "never acknowledged");
}

/// Follower fetches of the data partitions only, until none is useful: the coordinator
/// partitions' followers stall.
fn replicate_data(c: &mut Cl) {
    for _ in 0..20 {
        let fetches: Vec<_> = c.b.follower_fetches();
        let data: Vec<_> = fetches
            .into_iter()
            .filter(|f| !log::is_internal(&f.tp.topic))
            .collect();
        if data.is_empty() {
            return;
        }
        for f in data {
            c.b.follower_fetch(c.now, &f, &mut c.events);
        }
    }
    panic!("replication never settled");
}

fn txn_produce(c: &mut Cl, id: &ProducerIdentity, sequence: i32, value: &str) -> Handled {
    let req = Request::Produce {
        producer: Some(id.clone()),
        batches: vec![ProduceBatch {
            tp: tp(),
            base_sequence: Some(sequence),
            records: vec![rec(value)],
        }],
        acks: Acks::All,
    };
    let h = c.b.handle_request(c.now, &client(), req, &mut c.events);
    c.b.check_invariants();
    h
}

/// The `CompleteCommit` of the last transaction is written but not replicated when the
/// producer's next transaction reaches a partition: the leader's verification answers
/// `NOT_ENOUGH_REPLICAS` (the coordinator's transition is pending), so nothing is
/// appended, and the coordinator that takes over from the log never meets a transaction
/// it does not know. Before, the batch was appended at once; the new coordinator loaded
/// the `PrepareCommit`, completed it, and never ended the transaction that batch had
/// begun: the partition's LSO stayed behind it for ever.
#[test]
fn a_transaction_waits_for_the_last_ones_completion_to_be_durable() {
    let mut c = Cl::new(2, false);
    let stock_leader = c.b.cluster.as_ref().unwrap().partitions[&tp()].leader;
    let tid = (0..)
        .map(|i| format!("t{i}"))
        .find(|t| Some(coordinator_of(&c, Coordinator::Transaction, t)) != stock_leader)
        .expect("some id is coordinated elsewhere");
    let Response::InitProducerId(Ok((pid, epoch))) = c.coord(init(&tid)) else {
        panic!()
    };
    let id = ProducerIdentity {
        producer_id: pid,
        epoch,
        transactional_id: Some(tid.clone()),
    };
    txn_produce(&mut c, &id, 0, "a");
    replicate_all(&mut c);
    c.b.take_completed_produces();
    let end = Request::EndTxn {
        producer: id.clone(),
        commit: true,
    };
    let Response::EndTxn(Ok(Some((pid, epoch)))) = c.coord(end) else {
        panic!("EndTxn")
    };
    let next = ProducerIdentity {
        producer_id: pid,
        epoch,
        transactional_id: Some(tid.clone()),
    };
    let markers = c.b.pending_markers();
    assert_eq!(markers.len(), 1);
    c.b.write_pending_marker(c.now, &markers[0], &mut c.events);
    replicate_data(&mut c);
    assert!(c.b.open_transactions().is_empty(), "CompleteCommit");
    assert!(
        c.b.txn_transition_pending(&tid),
        "its record is not replicated"
    );
    let h = txn_produce(&mut c, &next, 0, "b");
    let Handled::Now(Response::Produce(r)) = &h else {
        panic!("{h:?}")
    };
    assert_eq!(
        r[0].1,
        PartitionProduceResult::Error(KafkaError::NotEnoughReplicas),
        "the verification waits for the coordinator's pending transition"
    );
    let end = c.b.log_end_offset(&tp());
    // The coordinator's broker fails before its record is replicated.
    let old = coordinator_of(&c, Coordinator::Transaction, &tid);
    c.crash(old, None);
    let fenced = c.session();
    c.tick_to(fenced);
    c.tick_to(fenced + COORDINATOR_LOAD_MS);
    assert_ne!(coordinator_of(&c, Coordinator::Transaction, &tid), old);
    replicate_all(&mut c);
    assert!(!c.b.txn_transition_pending(&tid));
    // The producer's retry is appended, and its commit ends it everywhere.
    assert!(matches!(
        txn_produce(&mut c, &next, 0, "b"),
        Handled::Delayed(_)
    ));
    replicate_all(&mut c);
    c.b.take_completed_produces();
    assert_eq!(c.b.log_end_offset(&tp()), end + 1);
    let commit = Request::EndTxn {
        producer: next,
        commit: true,
    };
    assert!(matches!(c.coord(commit), Response::EndTxn(Ok(_))));
    for m in c.b.pending_markers() {
        c.b.write_pending_marker(c.now, &m, &mut c.events);
    }
    replicate_all(&mut c);
    assert!(c.b.open_transactions().is_empty(), "committed");
    assert_eq!(
        c.b.last_stable_offset(&tp()),
        c.b.log_end_offset(&tp()),
        "no transaction hangs in {}",
        tp()
    );
}

/// A transaction's offsets are committed by its group marker, which the group
/// coordinator writes to `__consumer_offsets` and which is done only below the high
/// watermark (`CoordinatorRuntime`'s `CoordinatorCompleteTransactionEvent`). Here the
/// coordinator's leader crashes with the marker's write unreplicated and lost from its
/// page cache: the transaction is not complete, the offsets stay pending to a
/// `require_stable` read, and the marker is sent again to the new coordinator
/// (`TransactionMarkerRequestCompletionHandler` retries `NOT_LEADER_OR_FOLLOWER`), so the
/// committed offset survives. It was lost before: the marker counted as written at once.
#[test]
fn a_group_marker_lost_with_its_coordinator_is_sent_again() {
    let mut c = Cl::new(2, false);
    let (member, generation) = join(&mut c);
    let Response::InitProducerId(Ok((pid, epoch))) = c.coord(init("t")) else {
        panic!()
    };
    let producer = ProducerIdentity {
        producer_id: pid,
        epoch,
        transactional_id: Some("t".into()),
    };
    let offsets = Request::TxnOffsetCommit {
        producer: producer.clone(),
        group: GroupMetadata {
            group: "g".into(),
            member_id: member,
            generation,
        },
        offsets: vec![(tp(), 7)],
    };
    assert_eq!(c.coord(offsets), Response::TxnOffsetCommit(Ok(())));
    let end = Request::EndTxn {
        producer,
        commit: true,
    };
    assert!(matches!(c.coord(end), Response::EndTxn(Ok(_))));
    replicate_all(&mut c);
    let ctp = c.b.coordinator_tp(Coordinator::Group, "g").unwrap();
    let before = c.b.log_end_offset(&ctp);
    let markers = c.b.pending_markers();
    assert_eq!(markers.len(), 1, "the group's marker: {markers:?}");
    c.b.write_pending_marker(c.now, &markers[0], &mut c.events);
    assert!(c.b.log_end_offset(&ctp) > before, "the offsets' record");
    assert!(c.b.has_pending_markers(), "done only once replicated");
    assert_eq!(
        now_answer(&mut c, offset_fetch()),
        Response::OffsetFetch(Err(KafkaError::UnstableOffsetCommit)),
        "a read sees the group as of its high watermark"
    );
    let old = coordinator_of(&c, Coordinator::Group, "g");
    let keep: Vec<Offset> = (c.b.replica_log_ends(old).iter())
        .map(|(t, end)| if *t == ctp { before } else { *end })
        .collect();
    c.b.crash_broker(c.now, old, Some(&keep), &mut c.events);
    let fenced = c.session();
    c.tick_to(fenced);
    c.tick_to(fenced + COORDINATOR_LOAD_MS);
    replicate_all(&mut c);
    assert!(c.b.committed_offsets("g").is_empty(), "the write was lost");
    let markers = c.b.pending_markers();
    assert_eq!(markers.len(), 1, "the marker is sent again: {markers:?}");
    c.b.write_pending_marker(c.now, &markers[0], &mut c.events);
    replicate_all(&mut c);
    c.tick_to(c.now + 1);
    assert!(!c.b.has_pending_markers(), "complete once replicated");
    assert_eq!(c.b.committed_offsets("g")[&tp()], 7);
    assert_eq!(
        now_answer(&mut c, offset_fetch()),
        Response::OffsetFetch(Ok(vec![(tp(), Some(7))]))
    );
}
