//! The partition group: which buffered record a task processes next (lowest timestamp
//! among partitions with data or known to be caught up, KIP-695), and the fetches that
//! fill the buffers.

use super::{Input, Phase, StreamsClient, Waiting};
use crate::client::Env;
use crate::protocol::*;
use crate::trace::Event;

/// `buffered.records.per.partition` (Kafka Streams' default 1000): a partition whose
/// record queue holds more is paused, left out of fetches until its queue drains
/// (`StreamTask.addRecords` → `mainConsumer.pause`, resumed in `StreamTask.process`).
const BUFFERED_RECORDS_PER_PARTITION: usize = 1000;

impl StreamsClient {
    /// The partition whose head record is processed next, as Kafka Streams' partition
    /// group chooses it: among tasks whose every input partition has buffered data or is
    /// known to be caught up (KIP-695), the head record with the smallest timestamp.
    pub(super) fn next_input(&self) -> Option<TopicPartition> {
        let mut best: Option<(Millis, &TopicPartition)> = None;
        for (tp, queue) in &self.buffer {
            let Some(head) = queue.front() else { continue };
            if best.is_none_or(|(ts, _)| head.timestamp < ts) && self.task_ready(tp) {
                best = Some((head.timestamp, tp));
            }
        }
        best.map(|(_, tp)| tp.clone())
    }

    /// Whether [`StreamsClient::next_input`] would name a partition, without choosing it:
    /// some buffered head record's task is ready.
    pub(super) fn has_next_input(&self) -> bool {
        self.buffer
            .iter()
            .any(|(tp, queue)| !queue.is_empty() && self.task_ready(tp))
    }

    /// KIP-695: the task of `tp` may process, every input partition of it having buffered
    /// data or being known to be caught up.
    fn task_ready(&self, tp: &TopicPartition) -> bool {
        let sub = self.topology.subtopology_of(&tp.topic);
        self.assignment
            .iter()
            .filter(|t| {
                t.partition == tp.partition && self.topology.subtopology_of(&t.topic) == sub
            })
            .all(|t| {
                self.buffer.get(t).is_some_and(|q| !q.is_empty())
                    || self.caught_up.get(t) == Some(&true)
            })
    }

    pub(super) fn buffered(&self) -> bool {
        self.buffer.values().any(|q| !q.is_empty())
    }

    /// Long poll: the partitions the next fetch asks for, at their positions. Kafka's
    /// consumer fetches every assigned partition that is not paused, has a valid
    /// position, has no fetched data still in the consumer's own buffer, and whose
    /// leader has no fetch in flight (`AbstractFetch.fetchablePartitions`,
    /// `prepareFetchRequests`). Kafka Streams moves the consumer's buffer into its
    /// record queues at every poll, so each fetch asks for every assigned partition but
    /// those paused for a full queue; the clients here send one fetch to the cluster for
    /// all of them, one at a time.
    fn fetchable(&self) -> Vec<(TopicPartition, Offset)> {
        self.assignment
            .iter()
            .filter(|tp| {
                self.buffer
                    .get(*tp)
                    .is_none_or(|q| q.len() <= BUFFERED_RECORDS_PER_PARTITION)
            })
            .map(|tp| (tp.clone(), *self.fetch_positions.get(tp).unwrap_or(&0)))
            .collect()
    }

    /// Long poll: the fetch lane may act. A fetch is sent while the processing loop runs
    /// (`StreamThread.runOnce` polls at every iteration; the classic consumer sends its
    /// fetches from `poll`) and none is in flight; an unanswered one is given up at
    /// `request.timeout.ms`.
    pub(super) fn fetch_ready(&self, now: Millis) -> bool {
        if let Some(w) = &self.fetching {
            return now >= w.deadline;
        }
        self.phase == Phase::Run
            && now >= self.fetch_backoff_until
            && self.assignment.iter().any(|tp| {
                self.buffer
                    .get(tp)
                    .is_none_or(|q| q.len() <= BUFFERED_RECORDS_PER_PARTITION)
            })
    }

    /// Long poll: when the fetch lane next may act.
    pub(super) fn fetch_wakeup(&self) -> Option<Millis> {
        if !self.long_poll() {
            return None;
        }
        if let Some(w) = &self.fetching {
            return Some(w.deadline);
        }
        (self.phase == Phase::Run && !self.assignment.is_empty())
            .then_some(self.fetch_backoff_until)
    }

    /// Long poll: send a fetch of every fetchable partition, or give up the one in
    /// flight (`request.timeout.ms`; the next is built from the positions then).
    pub(super) fn step_fetch(&mut self, env: &mut Env<'_>) {
        if self.fetching.take().is_some() {
            env.event(Event::Timeout {
                client: self.id.clone(),
                what: "request unanswered: Fetch".to_string(),
            });
            return;
        }
        let partitions = self.fetchable();
        assert!(!partitions.is_empty(), "a fetch with no partition");
        let request = Request::FetchMany {
            partitions,
            max_records: self.config.max_poll_records,
            isolation: self.config.isolation(),
            max_wait_ms: self.config.fetch_max_wait_ms,
        };
        let corr = env.send(request.clone());
        self.fetching = Some(Waiting {
            corr,
            request,
            deadline: env.now + self.config.request_timeout_ms,
        });
    }

    /// Long poll, for `idle`: a fetch is in flight for exactly the assignment, each
    /// partition at its position (or nothing is assigned, and nothing is fetched).
    pub(super) fn fetch_covers_assignment(&self) -> bool {
        if self.assignment.is_empty() {
            return self.fetching.is_none();
        }
        let Some(Waiting {
            request: Request::FetchMany { partitions, .. },
            ..
        }) = &self.fetching
        else {
            return false;
        };
        partitions.len() == self.assignment.len()
            && partitions
                .iter()
                .zip(&self.assignment)
                .all(|((tp, offset), a)| {
                    tp == a && *offset == *self.fetch_positions.get(tp).unwrap_or(&0)
                })
    }

    /// Long poll: the answer to a fetch. The records of a partition still assigned,
    /// fetched from its position now, go to its record queue (Kafka Streams' poll moves
    /// them there at once: `StreamThread.pollRequests` → `TaskManager.addRecordsToTasks`);
    /// data for a partition no longer assigned, or fetched from an offset that is no
    /// longer its position (a seek, a reset, a rebalance), is dropped
    /// (`FetchCollector.initialize`, `FetchCollector.collectFetch`: the consumer ignores a
    /// completed fetch whose offset does not match the current position), as is all of it
    /// while no task processes (restoring, rejoining: the position stays, and the
    /// partition is fetched again).
    pub(super) fn on_fetch_many(&mut self, results: Vec<FetchResult>, env: &mut Env<'_>) {
        let running = matches!(
            self.phase,
            Phase::Run | Phase::CommitOffsets { .. } | Phase::EndTxn { .. }
        );
        if !running {
            return;
        }
        let mut failed = false;
        for FetchResult { tp, offset, result } in results {
            if !self.assignment.contains(&tp)
                || *self.fetch_positions.get(&tp).unwrap_or(&0) != offset
            {
                continue;
            }
            match result {
                Ok(data) => self.take_fetched(tp, offset, data),
                Err(e) => {
                    failed |= self.fetch_failed(tp, e, env);
                }
            }
        }
        if failed {
            self.fetch_backoff_until = env.now + self.config.retry_backoff_ms;
        }
    }

    /// Long poll: records fetched from `tp` at `offset`, its position.
    fn take_fetched(&mut self, tp: TopicPartition, offset: Offset, mut data: FetchData) {
        let empty = data.records.is_empty();
        let next = self.buffer_fetched(&tp, offset, &mut data);
        // KIP-695: caught up when the fetched lag is 0 (`ConsumerRecords.nextOffsets`,
        // `KafkaConsumer.currentLag`: the high watermark under read_uncommitted, the last
        // stable offset under read_committed, less the position).
        let end = match self.config.isolation() {
            Isolation::ReadUncommitted => data.high_watermark,
            Isolation::ReadCommitted => data.last_stable_offset,
        };
        self.caught_up.insert(tp.clone(), next >= end);
        if !empty {
            self.commit_at_fetch(tp, data.next_offset);
        }
    }

    /// The records of a fetch of `tp` from `fetched_at` into its buffer, and the position
    /// past them, which it returns. `data.records` is left empty.
    fn buffer_fetched(
        &mut self,
        tp: &TopicPartition,
        fetched_at: Offset,
        data: &mut FetchData,
    ) -> Offset {
        let records = std::mem::take(&mut data.records);
        let empty = records.is_empty();
        let count = records.len() as Offset;
        let queue = self.buffer.entry(tp.clone()).or_default();
        for r in records {
            queue.push_back(Input {
                tp: tp.clone(),
                offset: r.offset,
                key: r.record.key,
                value: r.record.value,
                timestamp: r.record.timestamp,
            });
        }
        let next = if self.config.position_by_count && !empty {
            fetched_at + count // MUTATION HOOK: markers are not counted
        } else {
            data.next_offset
        };
        self.fetch_positions.insert(tp.clone(), next);
        next
    }

    /// Mutation `commit-before-process`: a fetched position is committed at once, before
    /// its records are processed (at most once). Nothing without the mutation.
    fn commit_at_fetch(&mut self, tp: TopicPartition, next_offset: Offset) {
        if self.config.commit_before_process {
            self.processed.insert(tp.clone(), next_offset);
            self.consumed.insert(tp);
            self.dirty = true;
            self.commit_now = true;
        }
    }

    /// The log lost what this client had read (a replicated log truncated by an unclean
    /// election or lost data): what it committed is past the new log end, and its next
    /// commit may well be lower. The position goes back to the earliest offset.
    fn reset_out_of_range(&mut self, tp: TopicPartition, env: &mut Env<'_>) {
        self.error(
            env,
            format!("fetch {tp}: offset out of range; resetting to earliest"),
        );
        self.committed.remove(&tp);
        self.processed.remove(&tp);
        self.fetch_positions.insert(tp, 0);
    }

    /// Long poll: a partition's fetch failed; whether to back off before the next.
    fn fetch_failed(&mut self, tp: TopicPartition, e: KafkaError, env: &mut Env<'_>) -> bool {
        if e == KafkaError::OffsetOutOfRange {
            self.reset_out_of_range(tp, env);
            return false;
        }
        self.error(env, format!("fetch {tp}: {e:?}"));
        true
    }

    pub(super) fn fetch_next(&mut self, env: &mut Env<'_>) {
        let n = self.assignment.len();
        let tp = self.assignment[self.next_fetch % n].clone();
        self.next_fetch = (self.next_fetch + 1) % n;
        let offset = *self.fetch_positions.get(&tp).unwrap_or(&0);
        let request = Request::Fetch {
            tp,
            offset,
            max_records: self.config.max_poll_records,
            isolation: self.config.isolation(),
        };
        self.send_main(request, env);
    }

    pub(super) fn on_fetch(
        &mut self,
        tp: TopicPartition,
        result: Result<FetchData, KafkaError>,
        env: &mut Env<'_>,
    ) {
        if !self.assignment.contains(&tp) {
            return;
        }
        match result {
            Ok(mut data) => {
                let empty = data.records.is_empty();
                let fetched_at = *self.fetch_positions.get(&tp).unwrap_or(&0);
                self.caught_up.insert(tp.clone(), empty);
                self.buffer_fetched(&tp, fetched_at, &mut data);
                if !empty {
                    self.commit_at_fetch(tp, data.next_offset);
                }
                if empty && self.caught_up.values().all(|c| *c) {
                    self.idle_until = env.now + self.config.retry_backoff_ms;
                }
            }
            Err(KafkaError::OffsetOutOfRange) => self.reset_out_of_range(tp, env),
            Err(e) => self.error(env, format!("fetch {tp}: {e:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;
    use crate::client::Client;

    fn input(tp: &TopicPartition, timestamp: Millis) -> Input {
        Input {
            tp: tp.clone(),
            offset: 0,
            key: None,
            value: None,
            timestamp,
        }
    }

    #[test]
    fn the_head_record_with_the_lowest_timestamp_goes_first() {
        let (mut c, _) = running(Guarantee::AtLeastOnce, &[0, 1], &[]);
        let (p0, p1) = (tp("in", 0), tp("in", 1));
        c.buffer
            .entry(p0.clone())
            .or_default()
            .push_back(input(&p0, 50));
        c.buffer
            .entry(p1.clone())
            .or_default()
            .push_back(input(&p1, 10));
        assert_eq!(c.next_input(), Some(p1));
    }

    #[test]
    fn a_task_waits_for_each_input_partition_to_have_data_or_be_caught_up() {
        // KIP-695: a two-source task does not process `a` while `b` is unknown.
        let mut t = topology(None);
        t.subtopologies[0].sources = vec!["a".into(), "b".into()];
        let mut c = StreamsClient::new("i0", StreamsConfig::new("app", Guarantee::AtLeastOnce), t);
        let (a, b) = (tp("a", 0), tp("b", 0));
        c.assignment = vec![a.clone(), b.clone()];
        c.buffer
            .entry(a.clone())
            .or_default()
            .push_back(input(&a, 10));
        assert_eq!(c.next_input(), None);
        c.caught_up.insert(b, true);
        assert_eq!(c.next_input(), Some(a));
    }

    fn long_polling(partitions: &[u32]) -> (StreamsClient, harness::Driver) {
        let c = client(Guarantee::AtLeastOnce);
        running_client_as(c, partitions, &[], 100)
    }

    fn many(results: Vec<(TopicPartition, Offset, Vec<Record>, Offset)>) -> Response {
        Response::FetchMany(
            results
                .into_iter()
                .map(|(tp, offset, records, hw)| {
                    let Response::Fetch { result, .. } = fetched(tp.clone(), offset, records, hw)
                    else {
                        unreachable!()
                    };
                    FetchResult { tp, offset, result }
                })
                .collect(),
        )
    }

    #[test]
    fn the_long_poll_fetches_every_assigned_partition_on_its_own_lane() {
        let (mut c, mut d) = long_polling(&[0, 1]);
        assert_eq!(c.lanes(), 3);
        assert!(
            !c.ready(MAIN, d.now),
            "the processing loop does not poll by itself"
        );
        assert!(c.ready(FETCH, d.now));
        let sent = d.step(&mut c, FETCH);
        let [(
            corr,
            Request::FetchMany {
                partitions,
                max_wait_ms,
                ..
            },
        )] = &sent[..]
        else {
            panic!("one fetch of partitions: {sent:?}");
        };
        assert_eq!(partitions, &vec![(tp("in", 0), 0), (tp("in", 1), 0)]);
        assert_eq!(*max_wait_ms, 100);
        assert!(!c.ready(FETCH, d.now), "one fetch in flight at a time");
        assert!(!c.idle() || c.fetch_covers_assignment());
        // Data for one partition: its queue fills, the other is caught up (lag 0).
        let answer = many(vec![
            (tp("in", 0), 0, vec![record("k", "v", 5)], 1),
            (tp("in", 1), 0, vec![], 0),
        ]);
        d.respond(&mut c, *corr, answer);
        assert_eq!(c.fetch_positions[&tp("in", 0)], 1);
        assert_eq!(
            c.caught_up.get(&tp("in", 0)),
            Some(&true),
            "fetched up to the HW"
        );
        assert!(c.ready(MAIN, d.now), "the fetched record is processed");
        assert!(
            c.ready(FETCH, d.now),
            "and the next fetch goes out meanwhile"
        );
    }

    #[test]
    fn data_fetched_from_an_offset_that_is_no_longer_the_position_is_dropped() {
        // FetchCollector.initialize: a completed fetch whose offset is not the position.
        let (mut c, mut d) = long_polling(&[0, 1]);
        let sent = d.step(&mut c, FETCH);
        let corr = sent[0].0;
        c.fetch_positions.insert(tp("in", 0), 3); // a seek while the fetch was held
        let answer = many(vec![
            (tp("in", 0), 0, vec![record("k", "v", 5)], 1),
            (tp("in", 1), 0, vec![record("k", "v", 5)], 1),
        ]);
        d.respond(&mut c, corr, answer);
        assert!(c.buffer.get(&tp("in", 0)).is_none_or(|q| q.is_empty()));
        assert_eq!(c.fetch_positions[&tp("in", 0)], 3);
        assert_eq!(c.fetch_positions[&tp("in", 1)], 1, "the other taken");
    }

    #[test]
    fn a_lagging_partition_is_not_caught_up_until_its_lag_is_read() {
        // KIP-695 from the fetched lag: max_records short of the high watermark.
        let (mut c, mut d) = long_polling(&[0]);
        let corr = d.step(&mut c, FETCH)[0].0;
        d.respond(
            &mut c,
            corr,
            many(vec![(tp("in", 0), 0, vec![record("k", "v", 5)], 4)]),
        );
        assert_eq!(c.caught_up.get(&tp("in", 0)), Some(&false));
    }

    #[test]
    fn an_unanswered_fetch_is_given_up_at_the_request_timeout() {
        let (mut c, mut d) = long_polling(&[0]);
        let _ = d.step(&mut c, FETCH);
        d.now += c.config.request_timeout_ms;
        assert!(c.ready(FETCH, d.now));
        assert!(d.step(&mut c, FETCH).is_empty());
        assert!(c.fetching.is_none());
        assert_eq!(
            d.step(&mut c, FETCH).len(),
            1,
            "a new fetch from the positions"
        );
    }
}
