//! Committing: `at_least_once` (produce, then `OffsetCommit`) and `exactly_once_v2` (one
//! transaction per commit interval: produce, `TxnOffsetCommit` with the group generation,
//! `EndTxn`), and the producer's state (producer id, epoch, sequences, open transaction).

use super::{AfterCommit, Phase, StreamsClient};
use crate::client::Env;
use crate::protocol::*;
use crate::trace::Event;

impl StreamsClient {
    pub(super) fn send_outputs(&mut self, env: &mut Env<'_>) {
        let eos = self.config.eos();
        let mut batches: Vec<ProduceBatch> = Vec::new();
        assert!(!self.outputs.is_empty(), "a produce with nothing held");
        self.release_outputs();
        for (tp, record) in self.outputs.drain(..) {
            match batches.iter_mut().find(|b| b.tp == tp) {
                Some(b) => b.records.push(record),
                None => batches.push(ProduceBatch {
                    tp,
                    base_sequence: None,
                    records: vec![record],
                }),
            }
        }
        if self.producer.is_some() {
            for b in &mut batches {
                let seq = self.sequences.entry(b.tp.clone()).or_insert(0);
                b.base_sequence = Some(*seq);
                *seq += b.records.len() as i32;
            }
        }
        if eos {
            self.begin_txn();
        }
        let request = Request::Produce {
            producer: self.identity(),
            batches,
            // Kafka Streams' producers keep Kafka's default `acks=all` (exactly-once
            // requires it: `StreamsConfig` refuses any other value under EOS).
            acks: Acks::All,
        };
        self.send_main(request, env);
    }

    /// Whether a commit now would move a committed offset (a punctuation alone makes a
    /// task commit-needed, but with nothing consumed or written its commit sends nothing).
    pub(super) fn offsets_changed(&self) -> bool {
        self.consumed
            .iter()
            .any(|tp| self.processed.get(tp) != self.committed.get(tp))
    }

    pub(super) fn send_offsets(&mut self, then: AfterCommit, env: &mut Env<'_>) {
        // As Kafka Streams' committable offsets: every partition a record was consumed from
        // since the assignment, changed or not. Under exactly-once this is what carries the
        // group generation to the broker (KIP-447); a transaction with no consumed
        // partition (punctuation only, on a task that consumed nothing) commits unchecked.
        let offsets: Vec<(TopicPartition, Offset)> = self
            .processed
            .iter()
            .filter(|(tp, _)| self.consumed.contains(*tp))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        let unchanged = offsets
            .iter()
            .all(|(tp, o)| self.committed.get(tp) == Some(o));
        if self.config.eos() {
            self.send_offsets_to_transaction(offsets, unchanged, then, env);
            return;
        }
        if unchanged || offsets.is_empty() {
            self.finish_commit(then, env);
            return;
        }
        self.assert_may_commit(&offsets);
        let request = Request::OffsetCommit {
            group: self.group_metadata(),
            offsets,
        };
        self.send_main(request, env);
    }

    /// `exactly_once_v2`: the offsets go into the open transaction (`TxnOffsetCommit`,
    /// with the group metadata), or, with no consumed partition, the transaction is ended
    /// as it is (`TaskExecutor.commitOffsetsOrTransaction`).
    fn send_offsets_to_transaction(
        &mut self,
        offsets: Vec<(TopicPartition, Offset)>,
        unchanged: bool,
        then: AfterCommit,
        env: &mut Env<'_>,
    ) {
        if unchanged && self.txn.is_none() {
            self.finish_commit(then, env);
            return;
        }
        let Some(producer) = self.identity() else {
            self.task_migrated(env, "no transactional producer", false);
            return;
        };
        self.assert_may_commit(&offsets);
        if offsets.is_empty() {
            self.phase = Phase::EndTxn { commit: true, then };
            self.send_main(
                Request::EndTxn {
                    producer,
                    commit: true,
                },
                env,
            );
            return;
        }
        let mut group = self.group_metadata();
        if self.config.unfenced_offsets {
            // Mutation: a pre-KIP-447 offset commit, without member id or generation.
            group.member_id.clear();
            group.generation = 0;
        }
        self.begin_txn();
        self.send_main(
            Request::TxnOffsetCommit {
                producer,
                group,
                offsets,
            },
            env,
        );
    }

    pub(super) fn finish_commit(&mut self, then: AfterCommit, env: &mut Env<'_>) {
        self.dirty = false;
        self.last_commit = env.now;
        self.committed = self.processed.clone();
        match then {
            AfterCommit::Continue => self.phase = Phase::Run,
            AfterCommit::Rejoin => self.revoke_and_rejoin(),
            AfterCommit::Handover => self.apply_handover(env),
        }
    }

    pub(super) fn commit_continuation(&self) -> AfterCommit {
        match self.phase {
            Phase::CommitOffsets { then } | Phase::EndTxn { then, .. } => then,
            _ => AfterCommit::Continue,
        }
    }

    /// A `Produce` answer. Batches answered with a retriable error
    /// (`NOT_ENOUGH_REPLICAS` while the last transaction's markers are written) are sent
    /// again as they were, same sequences, after `retry.backoff.ms`, as Kafka's `Sender`
    /// does (`canRetry`); any other error fences or resets the producer.
    pub(super) fn on_produce(
        &mut self,
        results: Vec<(TopicPartition, PartitionProduceResult)>,
        request: Option<Request>,
        env: &mut Env<'_>,
    ) {
        let Some(Request::Produce {
            producer,
            batches,
            acks,
        }) = request
        else {
            return;
        };
        let mut failed = None;
        let mut retry: Vec<TopicPartition> = Vec::new();
        for (tp, result) in results {
            match result {
                PartitionProduceResult::Appended { base_offset, .. } => {
                    let batch = batches.iter().find(|b| b.tp == tp);
                    let count = batch.map_or(0, |b| b.records.len());
                    env.event(Event::Acked {
                        client: self.id.clone(),
                        tp,
                        base_offset,
                        count,
                    });
                }
                PartitionProduceResult::Error(e) if e.is_retriable() => retry.push(tp),
                PartitionProduceResult::Error(e) => failed = Some((tp, e)),
            }
        }
        if let Some((tp, e)) = failed {
            self.on_produce_error(tp, e, env);
            return;
        }
        if !retry.is_empty() {
            let batches = batches.into_iter().filter(|b| retry.contains(&b.tp));
            let request = Request::Produce {
                producer,
                batches: batches.collect(),
                acks,
            };
            self.resend_after_backoff(request, env);
        }
    }

    fn on_produce_error(&mut self, tp: TopicPartition, e: KafkaError, env: &mut Env<'_>) {
        match e {
            KafkaError::ProducerFenced | KafkaError::InvalidProducerEpoch => {
                self.producer = None;
                self.txn = None;
                self.task_migrated(env, &format!("produce to {tp}: producer fenced"), false);
            }
            _ => {
                // Sequence trouble or an unknown producer: a fresh producer id, and the
                // tasks are closed dirty so that their input is processed again.
                self.producer = None;
                self.txn = None;
                self.sequences.clear();
                self.task_migrated(env, &format!("produce to {tp} failed: {e:?}"), false);
                self.phase = Phase::InitProducer;
            }
        }
    }

    /// A retriable error (`CONCURRENT_TRANSACTIONS` to `InitProducerId`,
    /// `TxnOffsetCommit` or `EndTxn` while markers are written): the same request again
    /// after `retry.backoff.ms` (`TransactionManager`'s handlers re-enqueue it).
    pub(super) fn retry_after(
        &mut self,
        error: KafkaError,
        request: Option<Request>,
        env: &mut Env<'_>,
    ) {
        let Some(request) = request else { return };
        debug_assert!(error.is_retriable(), "{error:?} is not retriable");
        self.resend_after_backoff(request, env);
    }

    pub(super) fn on_init_producer(
        &mut self,
        result: Result<(ProducerId, Epoch), KafkaError>,
        env: &mut Env<'_>,
    ) {
        match result {
            Ok(pid) => {
                self.producer = Some(pid);
                self.sequences.clear();
                self.txn = None;
                self.phase = Phase::Join { backoff_until: 0 };
            }
            Err(e) => {
                self.error(env, format!("init producer id failed: {e:?}; retrying"));
            }
        }
    }

    pub(super) fn on_offset_commit(&mut self, result: Result<(), KafkaError>, env: &mut Env<'_>) {
        match result {
            Ok(()) => {
                let then = self.commit_continuation();
                self.finish_commit(then, env);
            }
            Err(e) => {
                let reset = e == KafkaError::UnknownMemberId;
                self.task_migrated(env, &format!("offset commit rejected: {e:?}"), reset);
            }
        }
    }

    pub(super) fn on_txn_offset_commit(
        &mut self,
        result: Result<(), KafkaError>,
        env: &mut Env<'_>,
    ) {
        match result {
            Ok(()) => {
                let then = self.commit_continuation();
                self.phase = Phase::EndTxn { commit: true, then };
                let producer = self.identity().expect("transactional producer");
                self.send_main(
                    Request::EndTxn {
                        producer,
                        commit: true,
                    },
                    env,
                );
            }
            Err(KafkaError::ProducerFenced) | Err(KafkaError::InvalidProducerEpoch) => {
                self.producer = None;
                self.task_migrated(env, "producer fenced", false);
            }
            Err(e) => {
                // CommitFailedException: `StreamsProducer.commitTransaction` rethrows it as a
                // TaskMigratedException, and `StreamThread.handleTaskMigrated` calls
                // `TaskManager.handleLostAll`: tasks closed dirty, the thread producer
                // re-initialised, whose `InitProducerId` aborts the open transaction. No
                // `EndTxn(abort)` is sent (one that timed out and arrived late would end the
                // next transaction of the same epoch).
                let reset = e == KafkaError::UnknownMemberId;
                let why = format!("offset commit to transaction rejected: {e:?}");
                self.task_migrated(env, &why, reset);
            }
        }
    }

    pub(super) fn on_end_txn(
        &mut self,
        result: Result<Option<(ProducerId, Epoch)>, KafkaError>,
        env: &mut Env<'_>,
    ) {
        let Phase::EndTxn { commit, then } = self.phase.clone() else {
            return;
        };
        match result {
            Ok(bumped) => {
                // Transaction protocol v2: the epoch the coordinator bumped, and fresh
                // sequences (TransactionManager.EndTxnHandler.handleResponse).
                if let Some(producer) = bumped {
                    self.producer = Some(producer);
                    self.sequences.clear();
                }
                self.txn = None;
                if commit {
                    self.finish_commit(then, env);
                } else {
                    self.task_migrated(env, "transaction aborted", false);
                }
            }
            Err(e) => {
                self.producer = None;
                self.txn = None;
                self.task_migrated(env, &format!("end transaction failed: {e:?}"), false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    /// Process one record of `in-0` and have its outputs acknowledged.
    fn processed_one(guarantee: Guarantee) -> (StreamsClient, harness::Driver) {
        let (mut c, mut d) = running(guarantee, &[0], &[]);
        let (corr, _) = step(&mut c, &mut d);
        answer(
            &mut c,
            &mut d,
            corr,
            fetched(tp("in", 0), 0, vec![record("k", "v", 0)], 1),
        );
        let _ = d.step(&mut c, MAIN);
        let (corr, produce) = step(&mut c, &mut d);
        let Request::Produce { batches, .. } = produce else {
            panic!("expected a produce")
        };
        answer(&mut c, &mut d, corr, ok_acks(&batches));
        d.now += c.config.commit_interval_ms;
        (c, d)
    }

    #[test]
    fn at_least_once_commits_the_processed_position_with_the_generation() {
        let (mut c, mut d) = processed_one(Guarantee::AtLeastOnce);
        let (corr, commit) = step(&mut c, &mut d);
        let Request::OffsetCommit { group, offsets } = commit else {
            panic!("expected an offset commit, got {commit:?}")
        };
        assert_eq!((group.generation, offsets), (1, vec![(tp("in", 0), 1)]));
        answer(&mut c, &mut d, corr, Response::OffsetCommit(Ok(())));
        assert!(!c.dirty);
        assert_eq!(c.committed[&tp("in", 0)], 1);
    }

    #[test]
    fn exactly_once_sends_offsets_to_the_transaction_then_commits_it() {
        let (mut c, mut d) = processed_one(Guarantee::ExactlyOnceV2);
        assert_eq!(c.txn, Some((1, 0)));
        let (corr, commit) = step(&mut c, &mut d);
        assert!(matches!(&commit, Request::TxnOffsetCommit { group, .. } if group.generation == 1));
        let sent = answer(&mut c, &mut d, corr, Response::TxnOffsetCommit(Ok(())));
        assert!(matches!(sent[..], [Request::EndTxn { commit: true, .. }]));
        let corr = c.main.as_ref().expect("EndTxn in flight").corr;
        answer(&mut c, &mut d, corr, Response::EndTxn(Ok(Some((1, 1)))));
        assert_eq!((c.txn, c.dirty, c.phase.clone()), (None, false, Phase::Run));
        // Transaction protocol v2: the next transaction runs at the epoch of the answer.
        assert_eq!((c.producer, c.sequences.len()), (Some((1, 1)), 0));
    }

    #[test]
    fn concurrent_transactions_resends_the_same_request_after_the_backoff() {
        let (mut c, mut d) = processed_one(Guarantee::ExactlyOnceV2);
        let (corr, commit) = step(&mut c, &mut d);
        assert!(matches!(commit, Request::TxnOffsetCommit { .. }));
        let err = Response::TxnOffsetCommit(Err(KafkaError::ConcurrentTransactions));
        assert!(answer(&mut c, &mut d, corr, err).is_empty());
        // Nothing until retry.backoff.ms has passed, then the same request again; the
        // transaction and the producer are kept.
        assert!(!c.ready(MAIN, d.now) && c.txn.is_some() && c.producer.is_some());
        assert_eq!(c.main_wakeup(), Some(d.now + c.config.retry_backoff_ms));
        d.now += c.config.retry_backoff_ms;
        let (_, again) = step(&mut c, &mut d);
        assert_eq!(again, commit);
    }

    #[test]
    fn a_produce_answered_not_enough_replicas_is_resent_with_its_sequences() {
        let (mut c, mut d) = running(Guarantee::ExactlyOnceV2, &[0], &[]);
        let (corr, _) = step(&mut c, &mut d);
        let input = fetched(tp("in", 0), 0, vec![record("k", "v", 0)], 1);
        answer(&mut c, &mut d, corr, input);
        let _ = d.step(&mut c, MAIN);
        let (corr, produce) = step(&mut c, &mut d);
        let Request::Produce { batches, .. } = &produce else {
            panic!("expected a produce, got {produce:?}")
        };
        let refused = batches
            .iter()
            .map(|b| {
                (
                    b.tp.clone(),
                    PartitionProduceResult::Error(KafkaError::NotEnoughReplicas),
                )
            })
            .collect();
        answer(&mut c, &mut d, corr, Response::Produce(refused));
        assert!(c.producer.is_some(), "a retriable error keeps the producer");
        d.now += c.config.retry_backoff_ms;
        let (_, again) = step(&mut c, &mut d);
        assert_eq!(again, produce, "the same batches, sequences and epoch");
    }
}
