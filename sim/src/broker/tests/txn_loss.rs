//! A transaction coordinator that loses its transaction's end with an unflushed suffix
//! (replication factor 1) after one of its markers was written: the outcome is per
//! partition, as the marker there says.

use super::*;
use crate::protocol::Acks;
use coordinator::{CoordRecord, Coordinator, TxnRecordState};

const S: &str = "stock";

fn client() -> ClientId {
    ClientId::new("p", "app")
}

/// Three brokers, replication factor 1: `stock-0..3`, one led by each broker.
fn rf1() -> Broker {
    let mut b = Broker::new();
    let config = TopicConfig {
        partitions: 3,
        compacted: false,
    };
    b.create_topic(S, config).unwrap();
    let config = ClusterConfig {
        brokers: 3,
        replication_factor: 1,
        min_insync_replicas: 1,
        unclean_leader_election: false,
        ..ClusterConfig::default()
    };
    b.set_cluster(config).unwrap();
    b
}

fn answer(b: &mut Broker, req: Request, events: &mut Vec<Event>) -> Response {
    match b.handle_request(0, &client(), req, events) {
        Handled::Now(r) => r,
        Handled::Delayed(id) => {
            let done = b.take_completed_produces();
            done.into_iter().find(|(i, _)| *i == id).expect("RF 1").1
        }
        Handled::Never => panic!("answered"),
    }
}

fn leader(b: &Broker, tp: &TopicPartition) -> BrokerId {
    b.cluster.as_ref().unwrap().partitions[tp].leader.unwrap()
}

fn committed_values(b: &mut Broker, tp: &TopicPartition, events: &mut Vec<Event>) -> usize {
    let req = Request::Fetch {
        tp: tp.clone(),
        offset: 0,
        max_records: 10,
        isolation: Isolation::ReadCommitted,
    };
    match b.handle(0, &client(), req, events) {
        Response::Fetch { result: Ok(d), .. } => d.records.len(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lost_prepare_commit_leaves_a_written_commit_marker_committed() {
    let mut b = rf1();
    let mut ev = Vec::new();
    let init = Request::InitProducerId {
        transactional_id: Some("t".into()),
        transaction_timeout_ms: 10_000,
    };
    let Response::InitProducerId(Ok((pid, epoch))) = answer(&mut b, init, &mut ev) else {
        panic!()
    };
    let ctp = b.coordinator_tp(Coordinator::Transaction, "t").unwrap();
    let x = leader(&b, &ctp);
    // Two data partitions on other brokers than the coordinator's.
    let others: Vec<TopicPartition> = (0..3)
        .map(|p| TopicPartition::new(S, p))
        .filter(|tp| leader(&b, tp) != x)
        .collect();
    let (a, c) = (others[0].clone(), others[1].clone());
    let id = ProducerIdentity {
        producer_id: pid,
        epoch,
        transactional_id: Some("t".into()),
    };
    for tp in [&a, &c] {
        let req = Request::Produce {
            producer: Some(id.clone()),
            batches: vec![ProduceBatch {
                tp: tp.clone(),
                base_sequence: Some(0),
                records: vec![rec("k", "v")],
            }],
            acks: Acks::All,
        };
        answer(&mut b, req, &mut ev);
    }
    let end = Request::EndTxn {
        producer: id,
        commit: true,
    };
    assert!(matches!(
        answer(&mut b, end, &mut ev),
        Response::EndTxn(Ok(_))
    ));
    // The COMMIT marker reaches `a` only.
    let markers = b.pending_markers();
    let to_a = markers
        .iter()
        .find(|m| m.target == MarkerTarget::Partition(a.clone()))
        .expect("a marker for a");
    b.write_pending_marker(0, to_a, &mut ev);
    assert_eq!(committed_values(&mut b, &a, &mut ev), 1);
    // The coordinator's broker crashes and loses the PrepareCommit record.
    let log = b.topic_log(&ctp);
    let prepare = log
        .entries
        .iter()
        .zip(&log.meta)
        .find_map(|(e, m)| match m.coord.as_deref() {
            Some(CoordRecord::Txn { value, .. })
                if matches!(value.state, TxnRecordState::Prepare { .. }) =>
            {
                Some(e.offset)
            }
            _ => None,
        });
    let prepare = prepare.expect("a PrepareCommit record");
    let keep: Vec<Offset> = b
        .replica_log_ends(x)
        .iter()
        .map(|(tp, end)| if *tp == ctp { prepare } else { *end })
        .collect();
    b.crash_broker(0, x, Some(&keep), &mut ev);
    b.restart_broker(10, x, &mut ev);
    b.tick(10 + COORDINATOR_LOAD_MS, &mut ev);
    b.check_invariants();
    // Loaded as ongoing again: `c` has no marker and stays open, `a` stays committed.
    assert_eq!(b.open_transactions(), vec!["t".to_string()]);
    assert_eq!(
        committed_values(&mut b, &a, &mut ev),
        1,
        "a's marker settled it"
    );
    assert_eq!(committed_values(&mut b, &c, &mut ev), 0, "c is open");
    assert_eq!(b.last_stable_offset(&c), 0);
    // The reloaded transaction times out and aborts: only `c` gets an ABORT marker that
    // settles anything (Kafka's `ProducerAppendInfo.appendEndTxnMarker` finds no open
    // transaction of the producer in `a`).
    b.tick(20_000, &mut ev);
    for m in b.pending_markers() {
        b.write_pending_marker(20_000, &m, &mut ev);
    }
    b.check_invariants();
    assert!(b.open_transactions().is_empty());
    assert_eq!(committed_values(&mut b, &a, &mut ev), 1, "still committed");
    assert_eq!(committed_values(&mut b, &c, &mut ev), 0, "aborted");
    assert!(b.is_aborted(&c, 0));
    assert!(!b.is_aborted(&a, 0));
}
