//! Unit tests of transaction protocol v2 (KIP-890 part 2), after the table in Kafka's
//! `TransactionCoordinator.endTransaction`.

use super::*;

/// Adopt the producer id and epoch an `EndTxn` answered, as the client does.
fn adopt(p: &ProducerIdentity, answer: Option<(ProducerId, Epoch)>) -> ProducerIdentity {
    let (producer_id, epoch) = answer.expect("a v2 EndTxn answers the new epoch");
    ProducerIdentity {
        producer_id,
        epoch,
        transactional_id: p.transactional_id.clone(),
    }
}

#[test]
fn every_commit_and_abort_bumps_the_epoch_and_answers_it() {
    let mut r = Run::new(1, false);
    let p0 = r.init(Some("tx"), 10_000);
    r.produce(Some(&p0), vec![(0, Some(0), vec![rec("k", "a")])]);
    let p1 = adopt(&p0, r.end_txn(&p0, true).unwrap());
    assert_eq!((p1.producer_id, p1.epoch), (p0.producer_id, p0.epoch + 1));
    assert_eq!(r.b.producer_epoch("tx"), Some((p1.producer_id, p1.epoch)));
    // The marker carries the bumped epoch.
    assert_eq!(
        r.b.log(&tp(0))[1].producer,
        Some((p1.producer_id, p1.epoch))
    );
    // The new epoch starts its sequences at 0.
    r.produce(Some(&p1), vec![(0, Some(0), vec![rec("k", "b")])]);
    let p2 = adopt(&p1, r.end_txn(&p1, false).unwrap());
    assert_eq!(p2.epoch, p0.epoch + 2);
    assert_eq!(r.values(0, Isolation::ReadCommitted), ["a"]);
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::Fenced {
            fenced_epoch: 1,
            ..
        }
    )));
}

#[test]
fn a_retried_end_txn_with_the_previous_epoch_succeeds_once() {
    let mut r = Run::new(1, false);
    let p0 = r.init(Some("tx"), 10_000);
    r.produce(Some(&p0), vec![(0, Some(0), vec![rec("k", "a")])]);
    let first = r.end_txn(&p0, true).unwrap();
    let log_len = r.b.log(&tp(0)).len();
    // The same outcome again: the retry is answered with the current epoch, nothing moves.
    assert_eq!(r.end_txn(&p0, true), Ok(first));
    assert_eq!(r.b.log(&tp(0)).len(), log_len);
    assert_eq!(r.b.producer_epoch("tx"), first);
    // The other outcome with the previous epoch is not a retry of anything.
    assert_eq!(r.end_txn(&p0, false), Err(KafkaError::InvalidTxnState));
    // With the current epoch and nothing open: a commit is invalid, an abort bumps.
    let p1 = adopt(&p0, first);
    assert_eq!(r.end_txn(&p1, true), Err(KafkaError::InvalidTxnState));
    let p2 = adopt(&p1, r.end_txn(&p1, false).unwrap());
    assert_eq!(p2.epoch, p1.epoch + 1);
    assert_eq!(
        r.b.log(&tp(0)).len(),
        log_len,
        "an empty abort writes no marker"
    );
    // Now p0's retry is two epochs behind: fenced.
    assert_eq!(r.end_txn(&p0, true), Err(KafkaError::ProducerFenced));
}

#[test]
fn a_late_end_txn_cannot_end_the_next_transaction() {
    let mut r = Run::new(1, false);
    let p0 = r.init(Some("tx"), 10_000);
    r.produce(Some(&p0), vec![(0, Some(0), vec![rec("k", "first")])]);
    let p1 = adopt(&p0, r.end_txn(&p0, true).unwrap());
    r.produce(Some(&p1), vec![(0, Some(0), vec![rec("k", "second")])]);
    for commit in [true, false] {
        assert_eq!(r.end_txn(&p0, commit), Err(KafkaError::ProducerFenced));
    }
    assert_eq!(r.b.open_transactions(), ["tx"]);
    // Data requests of the old epoch are fenced as INVALID_PRODUCER_EPOCH.
    let res = r.produce(Some(&p0), vec![(0, Some(1), vec![rec("k", "zombie")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(
            KafkaError::InvalidProducerEpoch
        )]
    );
    let resp = r.req(
        "p",
        Request::TxnOffsetCommit {
            producer: p0.clone(),
            group: GroupMetadata {
                group: "g".into(),
                member_id: String::new(),
                generation: 0,
            },
            offsets: vec![(tp(0), 1)],
        },
    );
    assert_eq!(
        resp,
        Response::TxnOffsetCommit(Err(KafkaError::InvalidProducerEpoch))
    );
    r.end_txn(&p1, true).unwrap();
    assert_eq!(r.values(0, Isolation::ReadCommitted), ["first", "second"]);
}

#[test]
fn a_timeout_abort_fences_with_two_bumps_and_init_with_an_open_transaction_with_three() {
    let mut r = Run::new(1, false);
    let p0 = r.init(Some("tx"), 1_000);
    r.produce(Some(&p0), vec![(0, Some(0), vec![rec("k", "slow")])]);
    // At its deadline the transaction is not yet timed out (`start + timeout < now`), and
    // the next scan runs at 2 000.
    r.tick(1_000);
    assert_eq!(r.b.open_transactions(), ["tx"]);
    r.tick(2_000);
    assert!(r.b.is_aborted(&tp(0), 0));
    // prepareFenceProducerEpoch, then the abort's own bump.
    assert_eq!(r.b.producer_epoch("tx"), Some((p0.producer_id, 2)));
    assert_eq!(r.b.log(&tp(0))[1].producer, Some((p0.producer_id, 2)));
    // Not a retry (epoch − 2), so the old producer is fenced, whatever it asks.
    assert_eq!(r.end_txn(&p0, false), Err(KafkaError::ProducerFenced));
    assert_eq!(r.end_txn(&p0, true), Err(KafkaError::ProducerFenced));

    let q = r.init(Some("tx"), 1_000);
    assert_eq!(q.epoch, 3);
    r.produce(Some(&q), vec![(0, Some(0), vec![rec("k", "open")])]);
    let q2 = r.init(Some("tx"), 1_000);
    assert_eq!(q2.epoch, q.epoch + 3);
    assert!(r.b.is_aborted(&tp(0), 2));
    assert!(r.b.open_transactions().is_empty());
}

#[test]
fn an_exhausted_epoch_moves_to_a_fresh_producer_id_at_end_txn_and_its_retry_is_known() {
    let mut r = Run::new(1, false);
    let p = r.init(Some("tx"), 10_000);
    r.b.txn_ids.get_mut("tx").unwrap().epoch = MAX_EPOCH;
    let last = ProducerIdentity {
        epoch: MAX_EPOCH,
        ..p.clone()
    };
    r.produce(Some(&last), vec![(0, Some(0), vec![rec("k", "a")])]);
    let next = r.end_txn(&last, true).unwrap().expect("v2 answer");
    assert_ne!(next.0, p.producer_id);
    assert_eq!(next.1, 0);
    // The markers went out under the old producer id with the epoch after the last.
    assert_eq!(
        r.b.log(&tp(0))[1].producer,
        Some((p.producer_id, MAX_EPOCH + 1))
    );
    // A retry from the old producer id at the last epoch (retryOnOverflow).
    assert_eq!(r.end_txn(&last, true), Ok(Some(next)));
    // Any other request of the old producer id is fenced.
    let res = r.produce(Some(&last), vec![(0, Some(1), vec![rec("k", "b")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(
            KafkaError::InvalidProducerEpoch
        )]
    );
}
