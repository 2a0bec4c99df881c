//! The processing loop: poll → process → produce → commit, and punctuation.

use super::{AfterCommit, Context, Phase, Processed, Punctuation, StreamsClient, TaskId};
use crate::client::Env;
use crate::protocol::*;
use crate::trace::Event;

impl StreamsClient {
    pub(super) fn commit_due(&self, now: Millis) -> bool {
        // `TaskManager.commit` commits nothing while a rebalance is in progress.
        self.dirty && !self.rebalancing && now >= self.last_commit + self.config.commit_interval_ms
    }

    pub(super) fn wall_punctuation(&self) -> Option<Millis> {
        self.topology
            .subtopologies
            .iter()
            .find_map(|s| match s.punctuate {
                Some(Punctuation::WallClock(every)) => Some(every),
                _ => None,
            })
    }

    pub(super) fn start_running(&mut self, env: &mut Env<'_>) {
        self.phase = Phase::Run;
        self.last_commit = env.now;
        self.idle_until = env.now;
        if let Some(every) = self.wall_punctuation() {
            self.next_wall_punctuation = env.now + every;
        }
    }

    /// `StreamThread.maybeCommit`: once the commit interval has elapsed at an iteration
    /// of the loop, `lastCommitMs` restarts whether any task needed a commit or not
    /// (`TaskManager.commit` commits only the commit-needed ones; only its -1, a rebalance
    /// in progress, keeps the old time). Without it, the first record processed after a
    /// quiet spell would be committed at once, its outputs flushed with no linger.
    /// Part of the producer model: only with `linger.ms` above 0.
    fn tick_commit_timer(&mut self, now: Millis) {
        if self.config.linger_ms > 0
            && !self.dirty
            && !self.rebalancing
            && now >= self.last_commit + self.config.commit_interval_ms
        {
            self.last_commit = now;
        }
    }

    pub(super) fn step_run(&mut self, env: &mut Env<'_>) {
        let now = env.now;
        self.tick_commit_timer(now);
        if self.rejoin_if_lost(env) {
            return;
        }
        if self.config.cooperative() {
            if self.step_cooperative(env) {
                return;
            }
        } else if self.rejoin_needed {
            // Eager rebalance: commit what was processed, then revoke everything and rejoin.
            self.rejoin_needed = false;
            if self.dirty || !self.outputs.is_empty() || self.txn.is_some() {
                if !self.outputs.is_empty() {
                    self.send_outputs(env);
                    self.rejoin_needed = true; // come back here once the produce is acked
                    return;
                }
                self.phase = Phase::CommitOffsets {
                    then: AfterCommit::Rejoin,
                };
                self.send_offsets(AfterCommit::Rejoin, env);
            } else {
                self.revoke_and_rejoin();
            }
            return;
        }
        if self.commit_now && !self.rebalancing {
            if !self.outputs.is_empty() {
                self.send_outputs(env); // a commit flushes first
                return;
            }
            self.commit_now = false;
            self.phase = Phase::CommitOffsets {
                then: AfterCommit::Continue,
            };
            self.send_offsets(AfterCommit::Continue, env);
            return;
        }
        if let Some(tp) = self.next_input() {
            if now >= self.retry_until {
                self.process_one(tp, env);
                return;
            }
        }
        // `RecordAccumulator.batchReady`: lingered, full, or flushed by the commit that is
        // due (`StreamTask.prepareCommit` → `RecordCollectorImpl.flush`).
        if self.linger_due(now) || (self.commit_due(now) && !self.outputs.is_empty()) {
            self.send_outputs(env);
            return;
        }
        if self.commit_due(now) {
            self.phase = Phase::CommitOffsets {
                then: AfterCommit::Continue,
            };
            self.send_offsets(AfterCommit::Continue, env);
            return;
        }
        if let Some(every) = self.wall_punctuation() {
            if !self.tasks.is_empty() && now >= self.next_wall_punctuation {
                self.next_wall_punctuation = now + every;
                self.punctuate_all(env, |p| matches!(p, Some(Punctuation::WallClock(_))));
                return;
            }
        }
        self.poll_without_long_poll(env);
    }

    /// Without the long poll, the loop's own poll: the next partition's fetch once no
    /// record waits and the idle backoff has passed.
    fn poll_without_long_poll(&mut self, env: &mut Env<'_>) {
        if !self.long_poll()
            && !self.assignment.is_empty()
            && !self.has_next_input()
            && env.now >= self.idle_until
        {
            self.fetch_next(env);
        }
    }

    pub(super) fn punctuate_all(
        &mut self,
        env: &mut Env<'_>,
        which: impl Fn(Option<Punctuation>) -> bool,
    ) {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let sub = &self.topology.subtopologies[id.subtopology];
            if !which(sub.punctuate) {
                continue;
            }
            self.punctuate_task(id, env);
        }
    }

    pub(super) fn punctuate_task(&mut self, id: TaskId, env: &mut Env<'_>) {
        self.assert_may_process();
        let sub_name = self.topology.subtopologies[id.subtopology].name.clone();
        env.event(Event::Punctuate {
            client: self.id.clone(),
            task: TopicPartition::new(sub_name, id.partition),
            at: env.now,
        });
        let task = self.tasks.get_mut(&id).expect("task exists");
        let timestamp = env.now;
        let mut ctx = Context {
            client: &self.id,
            partition: id.partition,
            stores: &mut task.stores,
            application_id: &self.config.application_id,
            outputs: &mut self.outputs,
            env,
            timestamp,
        };
        task.processor.punctuate(&mut ctx);
        self.hold_outputs(env.now);
        // `StreamTask.maybePunctuateSystemTime` / `maybePunctuateStreamTime`: a punctuation
        // sets `commitNeeded`, whether it wrote anything or not. (With nothing consumed and
        // no transaction open, the commit it leads to sends nothing.)
        self.dirty = true;
    }

    pub(super) fn process_one(&mut self, tp: TopicPartition, env: &mut Env<'_>) {
        self.assert_may_process();
        let input = self.buffer[&tp]
            .front()
            .expect("chosen partition has a record")
            .clone();
        let Some(sub) = self.topology.subtopology_of(&input.tp.topic) else {
            unreachable!("fetched a topic no sub-topology reads");
        };
        let id = TaskId {
            subtopology: sub,
            partition: input.tp.partition,
        };
        let Some(task) = self.tasks.get_mut(&id) else {
            unreachable!("record of a partition without a task");
        };
        env.event(Event::Process {
            client: self.id.clone(),
            tp: input.tp.clone(),
            offset: input.offset,
            key: input.key.clone(),
            value: input.value.clone(),
        });
        let mut ctx = Context {
            client: &self.id,
            partition: id.partition,
            stores: &mut task.stores,
            application_id: &self.config.application_id,
            outputs: &mut self.outputs,
            env,
            timestamp: input.timestamp,
        };
        let processed = task.processor.process(&mut ctx, &input);
        self.hold_outputs(env.now);
        let task = self.tasks.get_mut(&id).expect("task exists");
        match processed {
            Processed::Retry => {
                self.retry_until = env.now + self.config.retry_backoff_ms;
            }
            Processed::Done => {
                if let Some(q) = self.buffer.get_mut(&tp) {
                    q.pop_front();
                }
                self.processed.insert(input.tp.clone(), input.offset + 1);
                self.consumed.insert(input.tp.clone());
                self.dirty = true;
                task.stream_time = task.stream_time.max(input.timestamp);
                let mut due = false;
                if let Some(Punctuation::StreamTime(every)) =
                    self.topology.subtopologies[sub].punctuate
                {
                    if task.stream_time >= task.next_stream_punctuation {
                        task.next_stream_punctuation = (task.stream_time / every + 1) * every;
                        due = true;
                    }
                }
                if due {
                    self.punctuate_task(id, env);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn a_processed_record_makes_a_commit_due_after_the_interval() {
        let (mut c, mut d) = running(Guarantee::AtLeastOnce, &[0], &[]);
        let (corr, _) = step(&mut c, &mut d);
        answer(
            &mut c,
            &mut d,
            corr,
            fetched(tp("in", 0), 0, vec![record("k", "v", 0)], 1),
        );
        let _ = d.step(&mut c, MAIN);
        assert!(c.dirty);
        assert_eq!(c.processed[&tp("in", 0)], 1);
        assert!(!c.commit_due(d.now));
        assert!(c.commit_due(d.now + c.config.commit_interval_ms));
    }

    #[test]
    fn the_commit_timer_restarts_while_nothing_needs_a_commit() {
        // StreamThread.maybeCommit sets lastCommitMs whenever the interval elapsed.
        let mut config = StreamsConfig::new("app", Guarantee::AtLeastOnce);
        config.linger_ms = 100; // part of the producer model
        let c = StreamsClient::new("i0", config, topology(None));
        let (mut c, mut d) = running_client(c, &[0], &[]);
        let interval = c.config.commit_interval_ms;
        d.now += interval + 30;
        let (corr, _) = step(&mut c, &mut d);
        assert_eq!(
            c.last_commit, d.now,
            "the quiet loop's iteration restarted the timer"
        );
        let input = fetched(tp("in", 0), 0, vec![record("k", "v", 0)], 1);
        answer(&mut c, &mut d, corr, input);
        let _ = d.step(&mut c, MAIN);
        assert!(c.dirty && !c.commit_due(d.now), "not committed at once");
        assert!(c.commit_due(c.last_commit + interval));
    }

    #[test]
    fn a_punctuation_that_writes_nothing_still_needs_a_commit() {
        // StreamTask.maybePunctuateSystemTime sets commitNeeded after any punctuation.
        let config = StreamsConfig::new("app", Guarantee::AtLeastOnce);
        let c = StreamsClient::new("i0", config, topology(Some(Punctuation::WallClock(50))));
        let (mut c, mut d) = running_client(c, &[0], &[]);
        d.now += 50;
        let sent = d.step(&mut c, MAIN);
        assert!(
            sent.is_empty() && c.outputs.is_empty(),
            "Count's punctuation writes nothing"
        );
        assert!(c.dirty, "the punctuated task needs a commit");
    }
}
