//! Unit tests of the broker, one Kafka rule each.

use super::producer::increment_sequence;
use super::txn::MAX_EPOCH;
use super::*;
use crate::protocol::{
    ControlType, Epoch, FetchData, Generation, GroupMetadata, Isolation, JoinOutcome, Offset,
    PartitionProduceResult, ProduceBatch, ProducerId, ProducerIdentity, RebalanceProtocol, Record,
    TopicPartition,
};

mod cluster;
mod cooperative;
mod coordinators;
mod delayed_fetch;
mod failover;
mod markers;
mod txn_loss;
mod txn_v2;

const T: &str = "orders";

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new(T, p)
}

fn rec(key: &str, value: &str) -> Record {
    Record {
        key: Some(key.to_string()),
        value: Some(value.to_string()),
        timestamp: 0,
        headers: Vec::new(),
    }
}

fn broker(partitions: u32, compacted: bool) -> Broker {
    let mut b = Broker::new();
    b.create_topic(
        T,
        TopicConfig {
            partitions,
            compacted,
        },
    )
    .unwrap();
    b
}

struct Run {
    b: Broker,
    now: Millis,
    events: Vec<Event>,
    /// Leave transaction markers pending after each request and tick (the tests of the
    /// asynchronous markers); otherwise every marker is written right away.
    markers_by_hand: bool,
}

impl Run {
    fn new(partitions: u32, compacted: bool) -> Self {
        Run {
            b: broker(partitions, compacted),
            now: 0,
            events: Vec::new(),
            markers_by_hand: false,
        }
    }

    fn req(&mut self, client: &str, req: Request) -> Response {
        let client = crate::client::ClientId::new(client, "app");
        let r = self.b.handle(self.now, &client, req, &mut self.events);
        self.b.check_invariants();
        self.settle();
        r
    }

    /// Write every pending marker, unless the test writes them by hand.
    fn settle(&mut self) {
        if !self.markers_by_hand {
            self.b.write_all_pending_markers(self.now, &mut self.events);
            self.b.check_invariants();
        }
    }

    fn init_request(&mut self, tid: Option<&str>, timeout: Millis) -> Response {
        self.req(
            "p",
            Request::InitProducerId {
                transactional_id: tid.map(str::to_string),
                transaction_timeout_ms: timeout,
            },
        )
    }

    /// `InitProducerId`, retried as a client does after `CONCURRENT_TRANSACTIONS` (once
    /// the markers of the transaction it aborted are written).
    fn init(&mut self, tid: Option<&str>, timeout: Millis) -> ProducerIdentity {
        let mut r = self.init_request(tid, timeout);
        if r == Response::InitProducerId(Err(KafkaError::ConcurrentTransactions)) {
            self.b.write_all_pending_markers(self.now, &mut self.events);
            r = self.init_request(tid, timeout);
        }
        let Response::InitProducerId(Ok((producer_id, epoch))) = r else {
            panic!("{r:?}")
        };
        ProducerIdentity {
            producer_id,
            epoch,
            transactional_id: tid.map(str::to_string),
        }
    }

    fn produce(
        &mut self,
        producer: Option<&ProducerIdentity>,
        batches: Vec<(u32, Option<i32>, Vec<Record>)>,
    ) -> Vec<PartitionProduceResult> {
        let batches = batches
            .into_iter()
            .map(|(p, base_sequence, records)| ProduceBatch {
                tp: tp(p),
                base_sequence,
                records,
            })
            .collect();
        let r = self.req(
            "p",
            Request::Produce {
                producer: producer.cloned(),
                batches,
                acks: Default::default(),
            },
        );
        let Response::Produce(results) = r else {
            panic!("{r:?}")
        };
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// A broker on transaction protocol v1.
    fn v1(partitions: u32, compacted: bool) -> Self {
        let mut r = Run::new(partitions, compacted);
        r.b.set_transaction_version(TransactionVersion::V1);
        r
    }

    /// `EndTxn`; its success without the producer id and epoch it may carry.
    fn end(&mut self, producer: &ProducerIdentity, commit: bool) -> Result<(), KafkaError> {
        self.end_txn(producer, commit).map(|_| ())
    }

    fn end_txn(
        &mut self,
        producer: &ProducerIdentity,
        commit: bool,
    ) -> Result<Option<(ProducerId, Epoch)>, KafkaError> {
        let r = self.req(
            "p",
            Request::EndTxn {
                producer: producer.clone(),
                commit,
            },
        );
        let Response::EndTxn(r) = r else {
            panic!("{r:?}")
        };
        r
    }

    fn fetch(
        &mut self,
        p: u32,
        offset: Offset,
        isolation: Isolation,
    ) -> Result<FetchData, KafkaError> {
        let r = self.req(
            "c",
            Request::Fetch {
                tp: tp(p),
                offset,
                max_records: 100,
                isolation,
            },
        );
        let Response::Fetch { result, .. } = r else {
            panic!("{r:?}")
        };
        result
    }

    fn values(&mut self, p: u32, isolation: Isolation) -> Vec<String> {
        let data = self.fetch(p, 0, isolation).unwrap();
        data.records
            .into_iter()
            .map(|r| r.record.value.unwrap_or_default())
            .collect()
    }

    fn join(&mut self, client: &str, member: Option<&str>) -> Result<JoinOutcome, KafkaError> {
        let r = self.req(
            client,
            Request::JoinGroup {
                group: "g".into(),
                member_id: member.map(str::to_string),
                topics: vec![T.into()],
                session_timeout_ms: 1_000,
                rebalance_timeout_ms: 500,
                protocol: RebalanceProtocol::Eager,
                owned: Vec::new(),
            },
        );
        let Response::JoinGroup(r) = r else {
            panic!("{r:?}")
        };
        r
    }

    fn heartbeat(&mut self, member: &str, generation: Generation) -> Result<(), KafkaError> {
        let r = self.req(
            "c",
            Request::Heartbeat {
                group: "g".into(),
                member_id: member.into(),
                generation,
            },
        );
        let Response::Heartbeat(r) = r else {
            panic!("{r:?}")
        };
        r
    }

    fn commit_offsets(
        &mut self,
        member: &str,
        generation: Generation,
        offset: Offset,
    ) -> Result<(), KafkaError> {
        let r = self.req(
            "c",
            Request::OffsetCommit {
                group: GroupMetadata {
                    group: "g".into(),
                    member_id: member.into(),
                    generation,
                },
                offsets: vec![(tp(0), offset)],
            },
        );
        let Response::OffsetCommit(r) = r else {
            panic!("{r:?}")
        };
        r
    }

    fn tick(&mut self, now: Millis) {
        self.now = now;
        self.b.tick(now, &mut self.events);
        self.b.check_invariants();
        self.settle();
    }
}

fn left(events: &[Event], member: &str, why: &str) -> bool {
    events.iter().any(|e| {
        matches!(e, Event::MemberLeft { reason, member_id, .. }
            if reason == why && member_id == member)
    })
}

fn joined(r: Result<JoinOutcome, KafkaError>) -> (String, Generation, Vec<TopicPartition>) {
    match r {
        Ok(JoinOutcome::Joined {
            member_id,
            generation,
            assignment,
        }) => (member_id, generation, assignment),
        other => panic!("expected Joined, got {other:?}"),
    }
}

#[test]
fn topics_are_created_once_with_one_config() {
    let mut b = broker(3, false);
    assert!(b
        .create_topic(
            T,
            TopicConfig {
                partitions: 3,
                compacted: false
            }
        )
        .is_ok());
    assert!(b
        .create_topic(
            T,
            TopicConfig {
                partitions: 4,
                compacted: false
            }
        )
        .is_err());
    assert!(b
        .create_topic(
            "x",
            TopicConfig {
                partitions: 0,
                compacted: false
            }
        )
        .is_err());
    b.create_topic(
        "a",
        TopicConfig {
            partitions: 1,
            compacted: true,
        },
    )
    .unwrap();
    let names: Vec<&str> = b.topics().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", T]);
    assert_eq!(b.topic_config("a").unwrap().partitions, 1);
    assert!(b.log(&TopicPartition::new("nope", 0)).is_empty());
}

#[test]
fn plain_produce_appends_dense_offsets_and_fetch_reads_them() {
    let mut r = Run::new(2, false);
    let res = r.produce(
        None,
        vec![
            (0, None, vec![rec("a", "1"), rec("b", "2")]),
            (1, None, vec![rec("c", "3")]),
        ],
    );
    assert_eq!(
        res,
        [
            PartitionProduceResult::Appended {
                base_offset: 0,
                duplicate: false
            },
            PartitionProduceResult::Appended {
                base_offset: 0,
                duplicate: false
            }
        ]
    );
    let res = r.produce(None, vec![(0, None, vec![rec("a", "4")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Appended {
            base_offset: 2,
            duplicate: false
        }]
    );
    assert_eq!(r.b.high_watermark(&tp(0)), 3);
    assert_eq!(r.b.last_stable_offset(&tp(0)), 3);
    let data = r.fetch(0, 1, Isolation::ReadCommitted).unwrap();
    assert_eq!(
        data.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(data.next_offset, 3);
    // At the end: nothing, next offset unchanged; past the end: out of range.
    assert_eq!(
        r.fetch(0, 3, Isolation::ReadUncommitted)
            .unwrap()
            .next_offset,
        3
    );
    assert_eq!(
        r.fetch(0, 4, Isolation::ReadUncommitted),
        Err(KafkaError::OffsetOutOfRange)
    );
    assert_eq!(
        r.fetch(7, 0, Isolation::ReadUncommitted),
        Err(KafkaError::UnknownTopicOrPartition)
    );
    let res = r.produce(None, vec![(9, None, vec![rec("a", "1")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(
            KafkaError::UnknownTopicOrPartition
        )]
    );
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::Rejected { request, .. } if request == "Produce")));
    // A producer without idempotence that retries writes twice.
    r.produce(None, vec![(1, None, vec![rec("c", "3")])]);
    assert_eq!(r.values(1, Isolation::ReadCommitted), ["3", "3"]);
}

#[test]
fn idempotent_retry_is_acknowledged_once_and_gaps_are_errors() {
    let mut r = Run::new(1, false);
    let p = r.init(None, 0);
    let batch = vec![rec("a", "1"), rec("a", "2")];
    let first = r.produce(Some(&p), vec![(0, Some(0), batch.clone())]);
    assert_eq!(
        first,
        [PartitionProduceResult::Appended {
            base_offset: 0,
            duplicate: false
        }]
    );
    let retry = r.produce(Some(&p), vec![(0, Some(0), batch.clone())]);
    assert_eq!(
        retry,
        [PartitionProduceResult::Appended {
            base_offset: 0,
            duplicate: true
        }]
    );
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::DuplicateBatch { base_offset: 0, .. })));
    assert_eq!(r.b.high_watermark(&tp(0)), 2);
    // Gap: expected 2.
    let gap = r.produce(Some(&p), vec![(0, Some(3), vec![rec("a", "x")])]);
    assert_eq!(
        gap,
        [PartitionProduceResult::Error(
            KafkaError::OutOfOrderSequenceNumber
        )]
    );
    // Only the last five batches are remembered.
    for i in 0..5 {
        r.produce(Some(&p), vec![(0, Some(2 + i), vec![rec("a", "y")])]);
    }
    let old = r.produce(Some(&p), vec![(0, Some(0), batch)]);
    assert_eq!(
        old,
        [PartitionProduceResult::Error(
            KafkaError::OutOfOrderSequenceNumber
        )]
    );
    let recent = r.produce(Some(&p), vec![(0, Some(2), vec![rec("a", "y")])]);
    assert_eq!(
        recent,
        [PartitionProduceResult::Appended {
            base_offset: 2,
            duplicate: true
        }]
    );
    // Unknown producer id and a made-up epoch.
    let ghost = ProducerIdentity {
        producer_id: 999,
        ..p.clone()
    };
    let res = r.produce(Some(&ghost), vec![(0, Some(0), vec![rec("a", "z")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(KafkaError::UnknownProducerId)]
    );
    let future = ProducerIdentity { epoch: 3, ..p };
    let res = r.produce(Some(&future), vec![(0, Some(7), vec![rec("a", "z")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(
            KafkaError::InvalidProducerEpoch
        )]
    );
}

#[test]
fn sequences_wrap_like_kafka() {
    assert_eq!(increment_sequence(5, 1), 6);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
}

/// One producer identity over several transactions: transaction protocol v1.
#[test]
fn compaction_keeps_the_last_committed_value_per_key() {
    let mut r = Run::v1(1, true);
    let p = r.init(Some("tx"), 10_000);
    r.produce(
        None,
        vec![(
            0,
            None,
            vec![rec("a", "a1"), rec("b", "b1"), rec("a", "a2")],
        )],
    ); // 0..3
    r.produce(Some(&p), vec![(0, Some(0), vec![rec("a", "a-aborted")])]); // 3
    r.end(&p, false).unwrap(); // marker 4
    let tomb = Record {
        value: None,
        ..rec("b", "")
    };
    r.produce(None, vec![(0, None, vec![tomb])]); // 5: tombstone for b
    r.produce(Some(&p), vec![(0, Some(1), vec![rec("c", "c-open")])]); // 6, open: LSO = 6
    r.produce(None, vec![(0, None, vec![rec("a", "a3")])]); // 7, above the LSO
    let removed = r.b.compact(&tp(0), &mut r.events);
    // Removed: a1 (0), b1 (1), a-aborted (3). a2 stays: a3 is above the LSO.
    assert_eq!(removed, 3);
    let offsets: Vec<Offset> = r.b.log(&tp(0)).iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [2, 4, 5, 6, 7]);
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::Compacted {
            removed: 3,
            below: 6,
            ..
        }
    )));
    r.end(&p, true).unwrap(); // marker 8
    assert_eq!(r.b.compact(&tp(0), &mut r.events), 1); // now a2 is superseded by a3
    let offsets: Vec<Offset> = r.b.log(&tp(0)).iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [4, 5, 6, 7, 8]);
    // Fetching across the gaps; the high watermark is unchanged.
    assert_eq!(r.b.high_watermark(&tp(0)), 9);
    let d = r.fetch(0, 0, Isolation::ReadCommitted).unwrap();
    let got: Vec<(Offset, Option<String>)> = d
        .records
        .into_iter()
        .map(|f| (f.offset, f.record.value))
        .collect();
    assert_eq!(
        got,
        [
            (5, None),
            (6, Some("c-open".into())),
            (7, Some("a3".into()))
        ]
    );
    assert_eq!(d.next_offset, 9);
    assert_eq!(r.b.compact(&tp(0), &mut r.events), 0);
    // A delete-policy topic is never compacted.
    let mut plain = Run::new(1, false);
    plain.produce(None, vec![(0, None, vec![rec("a", "1"), rec("a", "2")])]);
    assert_eq!(plain.b.compact(&tp(0), &mut plain.events), 0);
}

#[test]
fn same_inputs_give_the_same_events() {
    let run = || {
        let mut r = Run::new(2, false);
        let p = r.init(Some("tx"), 100);
        r.produce(
            Some(&p),
            vec![
                (0, Some(0), vec![rec("k", "v")]),
                (1, Some(0), vec![rec("k", "w")]),
            ],
        );
        joined(r.join("a", None));
        r.join("b", None).unwrap();
        r.tick(1_000);
        r.events
    };
    assert_eq!(run(), run());
}

/// Kafka's `ProducerAppendInfo.checkSequence`: a partition with no state for a producer
/// accepts its first batch at any sequence; a known producer's new epoch starts at 0.
#[test]
fn an_unknown_producers_first_sequence_need_not_be_zero() {
    let mut r = Run::new(2, false);
    let p = r.init(None, 0);
    let res = r.produce(Some(&p), vec![(0, Some(7), vec![rec("k", "a")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Appended {
            base_offset: 0,
            duplicate: false
        }]
    );
    // From there on the sequence continues from 7.
    let res = r.produce(Some(&p), vec![(0, Some(9), vec![rec("k", "gap")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(
            KafkaError::OutOfOrderSequenceNumber
        )]
    );
    let res = r.produce(Some(&p), vec![(0, Some(8), vec![rec("k", "b")])]);
    assert!(matches!(res[0], PartitionProduceResult::Appended { .. }));
    // A transactional producer's next epoch on a partition that knows it starts at 0.
    let t = r.init(Some("tx"), 10_000);
    r.produce(Some(&t), vec![(1, Some(0), vec![rec("k", "t")])]);
    r.end(&t, false).unwrap();
    let t2 = r.init(Some("tx"), 10_000);
    let res = r.produce(Some(&t2), vec![(1, Some(3), vec![rec("k", "t2")])]);
    assert_eq!(
        res,
        [PartitionProduceResult::Error(
            KafkaError::OutOfOrderSequenceNumber
        )]
    );
}
