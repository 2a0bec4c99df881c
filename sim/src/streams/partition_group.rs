//! The partition group: which buffered record a task processes next (lowest timestamp
//! among partitions with data or known to be caught up, KIP-695), and the fetches that
//! fill the buffers.

use super::{Input, StreamsClient};
use crate::client::Env;
use crate::protocol::*;

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
            Ok(data) => {
                let empty = data.records.is_empty();
                let fetched_at = *self.fetch_positions.get(&tp).unwrap_or(&0);
                let count = data.records.len() as Offset;
                self.caught_up.insert(tp.clone(), empty);
                let queue = self.buffer.entry(tp.clone()).or_default();
                for r in data.records {
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
                if self.config.commit_before_process && !empty {
                    // Mutation: the fetched position is committed at once, before the
                    // records are processed (at most once).
                    self.processed.insert(tp.clone(), data.next_offset);
                    self.consumed.insert(tp.clone());
                    self.dirty = true;
                    self.commit_now = true;
                }
                if empty && self.caught_up.values().all(|c| *c) {
                    self.idle_until = env.now + self.config.retry_backoff_ms;
                }
            }
            Err(KafkaError::OffsetOutOfRange) => {
                self.error(
                    env,
                    format!("fetch {tp}: offset out of range; resetting to earliest"),
                );
                // The log lost what this client had read (a replicated log truncated by an
                // unclean election or lost data): what it committed is past the new log
                // end, and its next commit may well be lower.
                self.committed.remove(&tp);
                self.processed.remove(&tp);
                self.fetch_positions.insert(tp, 0);
            }
            Err(e) => self.error(env, format!("fetch {tp}: {e:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

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
}
