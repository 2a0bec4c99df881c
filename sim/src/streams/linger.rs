//! The Streams producer's record accumulator: outputs and changelog writes are held, not
//! sent as soon as a record is processed.
//!
//! Kafka Streams' producers linger: `StreamsConfig.PRODUCER_DEFAULT_OVERRIDES` sets
//! `linger.ms` = 100 (exactly-once included, `PRODUCER_EOS_OVERRIDES` starts from it).
//! `RecordAccumulator.batchReady` makes a partition's leader ready when its batch has
//! waited `linger.ms`, is full (`batch.size`), or a flush (`flushInProgress`) or a
//! transaction's end (`TransactionManager.isCompleting`) is under way; `drain` /
//! `drainBatchesForOneNode` then takes a batch of every partition of that leader, lingered
//! or not. A commit flushes first (`TaskManager.commit` → `StreamTask.prepareCommit` →
//! `StreamTask.flush` → `RecordCollectorImpl.flush` → `KafkaProducer.flush`), before the
//! offsets or `EndTxn` are sent; so does a revocation (`TaskManager.handleRevocation`
//! prepares the revoked tasks' commit). A task lost under `at_least_once` closes dirty
//! without aborting anything (`RecordCollectorImpl.closeDirty` aborts only under
//! exactly-once), so its held records are still sent by the producer's `Sender`.
//!
//! Opt-in: with `linger.ms` 0 (the default, `StreamsConfig`) outputs go out as soon as the
//! input buffer is empty, the commit timer restarts only at a commit, and a lost member
//! drops what it holds, as before this model.
//!
//! The model holds every output in one accumulator (one request goes to the broker, as
//! with a single leader): all of it goes out when the oldest record has lingered, when
//! one partition's records fill a batch, or at a flush. One difference from Kafka stays:
//! the processing loop waits for the produce answer (Kafka's `Sender` sends on its own
//! thread, and only `flush` waits).

use super::StreamsClient;
use crate::protocol::{Millis, Record, TopicPartition};
use std::collections::BTreeMap;

/// `DefaultRecordBatch.RECORD_BATCH_OVERHEAD`: a batch's header, in bytes.
const BATCH_OVERHEAD: usize = 61;
/// A record's framing besides key, value and headers (`DefaultRecord.sizeInBytes`: length,
/// attributes, timestamp and offset deltas, key and value lengths, header count as
/// varints), at its usual small-record size.
const RECORD_OVERHEAD: usize = 8;

/// A record's size in a batch, as `DefaultRecord.sizeInBytes` counts it (approximately:
/// varints taken at one byte).
fn record_size(r: &Record) -> usize {
    let key = r.key.as_ref().map_or(0, String::len);
    let value = r.value.as_ref().map_or(0, String::len);
    let headers: usize = r.headers.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    RECORD_OVERHEAD + key + value + headers
}

impl StreamsClient {
    /// After processing or punctuating: the outputs just written start lingering now if
    /// nothing was held before (`RecordAccumulator.append` opens a batch with its
    /// creation time).
    pub(super) fn hold_outputs(&mut self, now: Millis) {
        if self.outputs.is_empty() {
            assert!(
                self.held_since.is_none(),
                "a linger clock with nothing held"
            );
        } else if self.held_since.is_none() {
            self.held_since = Some(now);
        }
    }

    /// The held records are sent (drained, or dropped by a dirty close).
    pub(super) fn release_outputs(&mut self) {
        self.held_since = None;
    }

    /// When the oldest held record will have lingered `linger.ms`.
    pub(super) fn linger_deadline(&self) -> Option<Millis> {
        self.held_since.map(|t| t + self.config.linger_ms)
    }

    /// `RecordAccumulator.batchReady` without a flush: lingered long enough, or a batch
    /// full.
    pub(super) fn linger_due(&self, now: Millis) -> bool {
        self.linger_deadline().is_some_and(|t| now >= t) || self.batch_full()
    }

    /// Some partition's held records fill a batch (`batch.size`).
    fn batch_full(&self) -> bool {
        let mut sizes: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
        for (tp, record) in &self.outputs {
            let size = sizes.entry(tp).or_insert(BATCH_OVERHEAD);
            *size += record_size(record);
            if *size >= self.config.batch_size {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    /// Kafka Streams' producer settings: `linger.ms` 100.
    fn streams_config(guarantee: Guarantee) -> StreamsConfig {
        let mut config = StreamsConfig::new("app", guarantee);
        config.linger_ms = 100;
        config
    }

    fn lingering(guarantee: Guarantee) -> (StreamsClient, harness::Driver) {
        let c = StreamsClient::new("i0", streams_config(guarantee), topology(None));
        running_client(c, &[0], &[])
    }

    /// Fetch `n` records of `in-0` and process them: outputs are held.
    fn process(c: &mut StreamsClient, d: &mut harness::Driver, from: Offset, n: usize) {
        let (corr, fetch) = step(c, d);
        assert!(matches!(fetch, Request::Fetch { .. }), "{fetch:?}");
        let records = (0..n)
            .map(|i| record(&format!("k{i}"), "v", d.now))
            .collect();
        let hw = from + n as Offset;
        answer(c, d, corr, fetched(tp("in", 0), from, records, hw));
        for _ in 0..n {
            assert!(d.step(c, MAIN).is_empty(), "processing sends nothing");
        }
    }

    #[test]
    fn outputs_wait_for_linger_ms_while_the_loop_keeps_fetching() {
        let (mut c, mut d) = lingering(Guarantee::AtLeastOnce);
        let start = d.now;
        process(&mut c, &mut d, 0, 1);
        assert_eq!((c.outputs.len(), c.held_since), (2, Some(start)));
        assert!(c.main_wakeup().is_some_and(|t| t <= start + 100));
        // Still lingering: the loop polls again instead of producing.
        d.now = start + 99;
        let (corr, next) = step(&mut c, &mut d);
        assert!(matches!(next, Request::Fetch { .. }), "{next:?}");
        answer(&mut c, &mut d, corr, fetched(tp("in", 0), 1, vec![], 1));
        assert!(!c.linger_due(d.now));
        d.now = start + 100;
        assert!(c.ready(MAIN, d.now));
        let (_, produce) = step(&mut c, &mut d);
        let Request::Produce { batches, .. } = produce else {
            panic!("the lingered batch goes out, got {produce:?}")
        };
        assert_eq!(
            batches.len(),
            2,
            "the output and the changelog write, together"
        );
        assert_eq!((c.outputs.len(), c.held_since), (0, None));
    }

    #[test]
    fn a_commit_flushes_the_held_outputs_before_its_offsets() {
        let mut config = streams_config(Guarantee::ExactlyOnceV2);
        config.commit_interval_ms = 30;
        let c = StreamsClient::new("i0", config, topology(None));
        let (mut c, mut d) = running_client(c, &[0], &[]);
        let start = d.now;
        process(&mut c, &mut d, 0, 1);
        d.now = start + 30;
        assert!(c.commit_due(d.now) && !c.linger_due(d.now));
        let (corr, produce) = step(&mut c, &mut d);
        let Request::Produce { batches, .. } = produce else {
            panic!("a commit flushes first, got {produce:?}")
        };
        answer(&mut c, &mut d, corr, ok_acks(&batches));
        let (_, commit) = step(&mut c, &mut d);
        assert!(
            matches!(commit, Request::TxnOffsetCommit { .. }),
            "{commit:?}"
        );
    }

    #[test]
    fn a_full_batch_goes_out_without_lingering() {
        let mut config = streams_config(Guarantee::AtLeastOnce);
        config.batch_size = 200;
        let c = StreamsClient::new("i0", config, topology(None));
        let (mut c, mut d) = running_client(c, &[0], &[]);
        let (corr, _) = step(&mut c, &mut d);
        let records = (0..20).map(|i| record(&format!("k{i}"), "v", 0)).collect();
        answer(&mut c, &mut d, corr, fetched(tp("in", 0), 0, records, 20));
        for _ in 0..20 {
            assert!(d.step(&mut c, MAIN).is_empty(), "processing sends nothing");
        }
        assert!(
            c.linger_deadline().is_some_and(|t| d.now < t),
            "not lingered yet"
        );
        let (_, produce) = step(&mut c, &mut d);
        assert!(matches!(produce, Request::Produce { .. }), "{produce:?}");
        assert!(c.held_since.is_none());
    }

    #[test]
    fn a_lost_member_under_at_least_once_still_sends_what_it_held() {
        let (mut c, mut d) = lingering(Guarantee::AtLeastOnce);
        process(&mut c, &mut d, 0, 1);
        c.rejoin_needed = true;
        c.member_lost = true;
        let (corr, produce) = step(&mut c, &mut d);
        let Request::Produce { batches, .. } = produce else {
            panic!("RecordCollectorImpl.closeDirty aborts nothing under ALO, got {produce:?}")
        };
        answer(&mut c, &mut d, corr, ok_acks(&batches));
        let _ = d.step(&mut c, MAIN);
        assert!(matches!(c.phase, Phase::Join { .. }), "{:?}", c.phase);
    }

    #[test]
    fn a_lost_member_under_exactly_once_drops_what_it_held() {
        let (mut c, mut d) = lingering(Guarantee::ExactlyOnceV2);
        process(&mut c, &mut d, 0, 1);
        c.rejoin_needed = true;
        c.member_lost = true;
        assert!(
            d.step(&mut c, MAIN).is_empty(),
            "closed dirty, nothing sent"
        );
        let (_, init) = step(&mut c, &mut d);
        assert!(matches!(init, Request::InitProducerId { .. }), "{init:?}");
        assert!(c.outputs.is_empty() && c.held_since.is_none());
    }
}
