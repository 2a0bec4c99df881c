//! Task creation and restoration: the committed offsets of the assignment
//! (`OffsetFetch`), then every store of every new task rebuilt from its changelog.

use super::{Phase, StreamsClient, Task, TaskId};
use crate::client::Env;
use crate::protocol::*;
use crate::trace::Event;
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Debug)]
pub(super) struct RestoreItem {
    pub(super) task: TaskId,
    pub(super) store: String,
    pub(super) tp: TopicPartition,
    pub(super) position: Offset,
    pub(super) records: usize,
    /// Under exactly-once: the changelog's high watermark when restoration began, which
    /// restoration must reach (KAFKA-10167). Read-committed fetches stop at the LSO, so
    /// this waits out transactions still open below it — a zombie's, whose records may
    /// precede committed ones — instead of declaring the store restored at a pinned LSO.
    pub(super) end: Option<Offset>,
    /// No progress possible before this time (an open transaction pins the LSO).
    pub(super) backoff_until: Millis,
}

impl StreamsClient {
    /// Fetch the committed offsets of the assignment, unless a rebalance came first.
    pub(super) fn step_fetch_offsets(&mut self, env: &mut Env<'_>) {
        if self.rejoin_at_poll(env) {
            return;
        }
        // `ConsumerCoordinator.sendOffsetFetchRequest` always sets `requireStable` (since
        // KIP-447), whatever the isolation level or processing guarantee.
        // Only the partitions without a position: under the cooperative protocol a
        // retained task keeps its own (`TaskManager.handleAssignment`).
        let partitions = self
            .assignment
            .iter()
            .filter(|tp| !self.fetch_positions.contains_key(*tp))
            .cloned()
            .collect();
        let request = Request::OffsetFetch {
            group: self.config.application_id.clone(),
            partitions,
            require_stable: true,
        };
        self.send_main(request, env);
    }

    /// Fetch the next changelog records of the first store still restoring, unless a
    /// rebalance came first; with every store restored, start running.
    pub(super) fn step_restore(&mut self, env: &mut Env<'_>) {
        if self.rejoin_at_poll(env) {
            return;
        }
        match self.restoring.front() {
            None => self.start_running(env),
            Some(item) => {
                // Answered at once, even under the long poll: Kafka's restore consumer
                // learns the end offset from `ListOffsets` (`StoreChangelogReader.
                // endOffsetForChangelogs`) and stops polling a changelog restored to it
                // (`hasRestoredToEnd`), so it never waits on a changelog with nothing
                // past its position; here the first fetch's high watermark is that end.
                let request = Request::Fetch {
                    tp: item.tp.clone(),
                    offset: item.position,
                    max_records: 500,
                    isolation: self.config.isolation(),
                };
                self.send_main(request, env);
            }
        }
    }

    /// Tasks for the assigned partitions that have none yet; their stores are queued for
    /// restoration.
    pub(super) fn create_tasks(&mut self) {
        let mut restoring = VecDeque::new();
        for tp in &self.assignment {
            let Some(sub) = self.topology.subtopology_of(&tp.topic) else {
                continue;
            };
            let id = TaskId {
                subtopology: sub,
                partition: tp.partition,
            };
            if self.tasks.contains_key(&id) {
                continue;
            }
            let s = &self.topology.subtopologies[sub];
            let mut stores = BTreeMap::new();
            for store in &s.stores {
                stores.insert(store.clone(), BTreeMap::new());
                restoring.push_back(RestoreItem {
                    task: id,
                    store: store.clone(),
                    tp: TopicPartition::new(self.config.changelog(store), tp.partition),
                    position: 0,
                    records: 0,
                    end: None,
                    backoff_until: 0,
                });
            }
            self.tasks.insert(
                id,
                Task {
                    processor: (s.processor)(tp.partition),
                    stores,
                    stream_time: 0,
                    next_stream_punctuation: 0,
                },
            );
        }
        self.restoring.extend(restoring);
    }

    pub(super) fn on_restore_fetch(
        &mut self,
        tp: TopicPartition,
        result: Result<FetchData, KafkaError>,
        env: &mut Env<'_>,
    ) {
        let eos = self.config.eos() && !self.config.read_uncommitted;
        let Some(item) = self.restoring.front_mut() else {
            return;
        };
        if item.tp != tp {
            return;
        }
        match result {
            Ok(data) => {
                let task = self
                    .tasks
                    .get_mut(&item.task)
                    .expect("restoring task exists");
                let store = task.stores.get_mut(&item.store).expect("declared store");
                for r in &data.records {
                    let Some(key) = &r.record.key else { continue };
                    match &r.record.value {
                        Some(v) => store.insert(key.clone(), v.clone()),
                        None => store.remove(key),
                    };
                }
                item.records += data.records.len();
                let progress = data.next_offset > item.position;
                item.position = data.next_offset;
                let end = if eos {
                    *item.end.get_or_insert(data.high_watermark)
                } else {
                    data.high_watermark
                };
                if item.position < end && !progress {
                    item.backoff_until = env.now + self.config.retry_backoff_ms;
                }
                if item.position >= end {
                    env.event(Event::Restored {
                        client: self.id.clone(),
                        store: item.store.clone(),
                        tp: item.tp.clone(),
                        records: item.records,
                        upto: item.position,
                    });
                    self.restoring.pop_front();
                }
            }
            Err(e) => {
                self.error(env, format!("restore fetch of {tp}: {e:?}"));
            }
        }
    }

    pub(super) fn on_offset_fetch(
        &mut self,
        result: Result<Vec<(TopicPartition, Option<Offset>)>, KafkaError>,
        env: &mut Env<'_>,
    ) {
        match result {
            Ok(offsets) => {
                // An empty request asks for every partition of the group (the broker's
                // reading of OffsetFetch); only the assignment's offsets are kept.
                let assigned = offsets.into_iter().filter(|(tp, _)| {
                    self.assignment.contains(tp) && !self.fetch_positions.contains_key(tp)
                });
                for (tp, offset) in assigned.collect::<Vec<_>>() {
                    // auto.offset.reset = earliest
                    let o = offset.unwrap_or(0);
                    // MUTATION HOOK: resume one past the committed offset.
                    let skip = Offset::from(self.config.resume_after_committed && offset.is_some());
                    self.fetch_positions.insert(tp.clone(), o + skip);
                    self.processed.insert(tp.clone(), o);
                    self.committed.insert(tp, o);
                }
                self.phase = Phase::Restore;
            }
            Err(e) => {
                self.error(env, format!("offset fetch: {e:?}; retrying after backoff"));
                self.phase = Phase::FetchOffsets {
                    backoff_until: env.now + self.config.retry_backoff_ms,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn a_new_task_restores_its_store_from_the_changelog_before_running() {
        let log = vec![
            record("k", "1", 0),
            record("k", "2", 1),
            record("j", "1", 2),
        ];
        let (c, _) = running(Guarantee::AtLeastOnce, &[0], &[(0, log)]);
        let store = &c.stores()[&(STORE.to_string(), 0)];
        assert_eq!((store["k"].as_str(), store["j"].as_str()), ("2", "1"));
    }

    #[test]
    fn under_exactly_once_restoration_reaches_the_first_high_watermark() {
        let (mut c, mut d) = (client(Guarantee::ExactlyOnceV2), driver());
        let (corr, _) = step(&mut c, &mut d);
        answer(&mut c, &mut d, corr, Response::InitProducerId(Ok((1, 0))));
        let (corr, _) = step(&mut c, &mut d);
        let joined = JoinOutcome::Joined {
            member_id: "m".into(),
            generation: 1,
            assignment: vec![tp("in", 0)],
        };
        answer(&mut c, &mut d, corr, Response::JoinGroup(Ok(joined)));
        let (corr, _) = step(&mut c, &mut d);
        let offsets = Response::OffsetFetch(Ok(vec![(tp("in", 0), None)]));
        answer(&mut c, &mut d, corr, offsets);
        // An open transaction pins the LSO at 1 while the high watermark is 3.
        let (corr, _) = step(&mut c, &mut d);
        let mut r = fetched(tp("app-s-changelog", 0), 0, vec![record("k", "1", 0)], 3);
        if let Response::Fetch {
            result: Ok(data), ..
        } = &mut r
        {
            data.last_stable_offset = 1;
        }
        answer(&mut c, &mut d, corr, r);
        assert_eq!(c.phase, Phase::Restore);
        assert_eq!(c.restoring.front().map(|i| i.end), Some(Some(3)));
    }
}
