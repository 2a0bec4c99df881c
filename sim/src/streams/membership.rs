//! Group membership: joining (eager protocol: every task is closed and recreated at each
//! assignment; the cooperative protocol is in `cooperative`), the heartbeat lane, the
//! generation, and closing tasks when the member loses them.

use super::{Phase, StreamsClient, Waiting};
use crate::client::Env;
use crate::protocol::*;
use crate::trace::Event;

impl StreamsClient {
    /// Close every task without committing (Kafka Streams' "close dirty" after a task
    /// migration): in-memory state, buffered records and unsent outputs are dropped.
    pub(super) fn close_tasks_dirty(&mut self) {
        self.tasks.clear();
        self.restoring.clear();
        self.buffer.clear();
        self.consumed.clear();
        self.outputs.clear();
        self.release_outputs();
        self.fetch_positions.clear();
        self.processed.clear();
        self.committed.clear();
        self.caught_up.clear();
        self.assignment.clear();
        self.dirty = false;
        self.commit_now = false;
        self.rebalancing = false;
        self.join_retry = None;
        self.handover = None;
    }

    /// The task was migrated away or the producer fenced: drop everything, rejoin.
    ///
    /// As `StreamThread.handleTaskMigrated` → `TaskManager.handleLostAll`: every active
    /// task is closed dirty (its stores are rebuilt from the committed changelog when it is
    /// assigned again), and under `exactly_once_v2` the thread producer is re-initialised
    /// (`reInitializeThreadProducer` → `StreamsProducer.resetProducer`, then
    /// `initTransactions`): the new `InitProducerId` aborts whatever transaction is still
    /// open and bumps the epoch, so no request of the old epoch still in flight (a delayed
    /// `EndTxn`) can end a transaction of the new one.
    pub(super) fn task_migrated(&mut self, env: &mut Env<'_>, why: &str, reset_member: bool) {
        self.error(
            env,
            format!("task migrated ({why}): closing tasks dirty and rejoining"),
        );
        self.close_tasks_dirty();
        self.in_group = false;
        self.rejoin_needed = false;
        self.left_group = false;
        if reset_member {
            self.member_id = None;
        }
        if self.config.eos() {
            self.txn = None;
            self.producer = None;
            self.sequences.clear();
            self.phase = Phase::InitProducer;
        } else {
            self.phase = Phase::Join { backoff_until: 0 };
        }
    }

    /// At a poll, after the heartbeat reset the generation: the partitions are lost
    /// (`ConsumerCoordinator.onJoinPrepare` → `onPartitionsLost`), closed without a commit.
    pub(super) fn rejoin_if_lost(&mut self, env: &mut Env<'_>) -> bool {
        if !(self.rejoin_needed && self.member_lost) {
            return false;
        }
        if self.config.linger_ms > 0 && !self.config.eos() && !self.outputs.is_empty() {
            // `RecordCollectorImpl.closeDirty` aborts only under exactly-once: the records
            // the at-least-once producer holds are still sent by its `Sender`. Sent here,
            // before the tasks close; the loss is handled when the answer is in. (Part of
            // the producer model: with `linger.ms` 0 they are dropped, as before it.)
            self.send_outputs(env);
            return true;
        }
        self.member_lost = false;
        let why = if self.forget_member {
            "member expired from the group"
        } else {
            "generation reset by the group"
        };
        self.task_migrated(env, why, self.forget_member);
        true
    }

    /// At a poll while tasks are not running yet (offsets, restoration): a rebalance the
    /// heartbeat asked for is joined now; those tasks have nothing to commit.
    pub(super) fn rejoin_at_poll(&mut self, env: &mut Env<'_>) -> bool {
        if self.rejoin_if_lost(env) {
            return true;
        }
        if self.config.cooperative() {
            return self.cooperative_join(env);
        }
        if !self.rejoin_needed {
            return false;
        }
        self.rejoin_needed = false;
        self.revoke_and_rejoin();
        true
    }

    pub(super) fn revoke_and_rejoin(&mut self) {
        self.close_tasks_dirty();
        self.in_group = false;
        self.phase = Phase::Join { backoff_until: 0 };
    }

    pub(super) fn on_join(&mut self, result: Result<JoinOutcome, KafkaError>, env: &mut Env<'_>) {
        match result {
            Ok(JoinOutcome::Pending { member_id }) if self.rebalancing => {
                self.member_id = Some(member_id);
                self.join_retry = Some(env.now + self.config.retry_backoff_ms);
            }
            Ok(JoinOutcome::Pending { member_id }) => {
                self.member_id = Some(member_id);
                self.phase = Phase::Join {
                    backoff_until: env.now + self.config.retry_backoff_ms,
                };
            }
            Ok(JoinOutcome::Joined {
                member_id,
                generation,
                assignment,
            }) if self.config.cooperative() => {
                self.joined(member_id, generation, env.now);
                self.on_cooperative_assignment(assignment, env);
            }
            Err(e) if self.rebalancing => {
                // `AbstractCoordinator.resetGenerationOnResponseError`: the next poll's
                // `onJoinPrepare` finds no generation and declares the partitions lost.
                let why = format!("join failed: {e:?}");
                self.task_migrated(env, &why, true);
            }
            Ok(JoinOutcome::Joined {
                member_id,
                generation,
                assignment,
            }) => {
                self.joined(member_id, generation, env.now);
                self.close_tasks_dirty();
                self.assignment = assignment;
                self.create_tasks();
                env.event(Event::Assigned {
                    client: self.id.clone(),
                    generation,
                    tasks: self.assignment.clone(),
                });
                self.phase = Phase::FetchOffsets { backoff_until: 0 };
            }
            Err(e) => {
                self.error(
                    env,
                    format!("join failed: {e:?}; rejoining as a new member"),
                );
                self.member_id = None;
                self.phase = Phase::Join {
                    backoff_until: env.now + self.config.retry_backoff_ms,
                };
            }
        }
    }

    /// The heartbeat lane runs while the member is in the group and has not left it, and
    /// not while its own `JoinGroup` is under way (`AbstractCoordinator.HeartbeatThread`
    /// is disabled while `state.hasNotJoinedGroup()`, which includes
    /// `PREPARING_REBALANCE`; the coordinator sees the member alive through its joins).
    pub(super) fn heartbeating(&self) -> bool {
        self.in_group && self.member_id.is_some() && !self.left_group && !self.rebalancing
    }

    /// `AbstractCoordinator.HeartbeatThread`: `heartbeat.pollTimeoutExpired(now)` — the
    /// processing loop has not polled for `max.poll.interval.ms` — so `maybeLeaveGroup`
    /// sends `LeaveGroup` and resets the generation: the next poll declares the
    /// partitions lost (`ConsumerCoordinator.onJoinPrepare`) and joins as a new member.
    fn poll_timeout_expired(&self, now: Millis) -> bool {
        self.blocked_since
            .is_some_and(|t| now >= t.saturating_add(self.config.rebalance_timeout_ms))
    }

    /// A `JoinGroup` answered with an assignment: the member is in the group at
    /// `generation`, and its heartbeats start again.
    fn joined(&mut self, member_id: String, generation: Generation, now: Millis) {
        self.member_id = Some(member_id);
        self.generation = generation;
        self.in_group = true;
        self.rejoin_needed = false;
        self.member_lost = false;
        self.next_heartbeat = now + self.config.heartbeat_interval_ms;
    }

    fn leave_group(&mut self, member_id: String, env: &mut Env<'_>) {
        let request = Request::LeaveGroup {
            group: self.config.application_id.clone(),
            member_id,
        };
        let corr = env.send(request.clone());
        self.heartbeat = Some(Waiting {
            corr,
            request,
            deadline: env.now + self.config.request_timeout_ms,
        });
        self.left_group = true;
        self.rejoin_needed = true;
        self.member_lost = true;
        self.forget_member = true;
        self.error(
            env,
            "poll timeout: max.poll.interval.ms passed without a poll; left the group".into(),
        );
    }

    pub(super) fn step_heartbeat(&mut self, env: &mut Env<'_>) {
        if let Some(w) = self.heartbeat.take() {
            // Unanswered heartbeat: send the next one.
            let _ = w;
        }
        let Some(member_id) = self.member_id.clone() else {
            return;
        };
        if self.left_group {
            // The LeaveGroup went unanswered: Kafka does not send it again.
            return;
        }
        if self.poll_timeout_expired(env.now) {
            self.leave_group(member_id, env);
            return;
        }
        let request = Request::Heartbeat {
            group: self.config.application_id.clone(),
            member_id,
            generation: self.generation,
        };
        let corr = env.send(request.clone());
        self.heartbeat = Some(Waiting {
            corr,
            request,
            deadline: env.now + self.config.request_timeout_ms,
        });
        self.next_heartbeat = env.now + self.config.heartbeat_interval_ms;
    }

    pub(super) fn on_heartbeat(&mut self, result: Result<(), KafkaError>, env: &mut Env<'_>) {
        match result {
            Ok(()) => {}
            // `AbstractCoordinator.HeartbeatResponseHandler`: the coordinator is marked
            // unknown, and the next heartbeat goes to the one found again.
            Err(e) if e.coordinator_unavailable() => {}
            Err(KafkaError::RebalanceInProgress) => {
                // `AbstractCoordinator.HeartbeatResponseHandler`: a rejoin is requested
                // only while the member is stable, not while its own join is under way.
                if self.in_group && !self.rejoin_needed && !self.rebalancing {
                    self.rejoin_needed = true;
                }
            }
            Err(KafkaError::IllegalGeneration | KafkaError::UnknownMemberId)
                if self.rebalancing =>
            {
                // The answer to a heartbeat sent before this member's cooperative join:
                // the join's own answer decides (an unknown member's join is refused,
                // and its partitions are then lost).
            }
            Err(e @ (KafkaError::IllegalGeneration | KafkaError::UnknownMemberId)) => {
                // `AbstractCoordinator.resetGenerationOnResponseError`: the generation is
                // reset (and the member id too for UNKNOWN_MEMBER_ID), so that
                // `ConsumerCoordinator.onJoinPrepare` at the next poll finds no generation
                // and declares the partitions lost (`onPartitionsLost` →
                // `TaskManager.handleLostAll`): nothing is committed. Until that poll the
                // processing loop keeps its stale member id and generation, which the
                // broker rejects.
                if self.in_group && !self.member_lost {
                    self.rejoin_needed = true;
                    self.member_lost = true;
                    self.forget_member = e == KafkaError::UnknownMemberId;
                    let what = if self.forget_member {
                        "heartbeat: unknown member; tasks lost, will rejoin as a new member"
                    } else {
                        "heartbeat: illegal generation; tasks lost, will rejoin"
                    };
                    self.error(env, what.into());
                }
            }
            Err(e) => self.error(env, format!("heartbeat: {e:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn an_unknown_member_heartbeat_loses_the_tasks_without_a_commit() {
        let (mut c, mut d) = running(Guarantee::AtLeastOnce, &[0], &[]);
        let (corr, _) = step(&mut c, &mut d);
        answer(
            &mut c,
            &mut d,
            corr,
            fetched(tp("in", 0), 0, vec![record("k", "v", 0)], 1),
        );
        let _ = d.step(&mut c, MAIN);
        d.now += c.config.heartbeat_interval_ms;
        let (hb, _) = d.step(&mut c, HEARTBEAT).remove(0);
        answer(
            &mut c,
            &mut d,
            hb,
            Response::Heartbeat(Err(KafkaError::UnknownMemberId)),
        );
        assert!(
            d.step(&mut c, MAIN).is_empty(),
            "the poll closes the tasks, sends nothing"
        );
        assert!(c.tasks.is_empty() && !c.dirty);
        let (_, next) = step(&mut c, &mut d);
        assert!(
            matches!(
                next,
                Request::JoinGroup {
                    member_id: None,
                    ..
                }
            ),
            "expected a rejoin as a new member, got {next:?}"
        );
    }

    /// A heartbeat after one processed record of `in-0`.
    fn heartbeat_after_processing(
        guarantee: Guarantee,
        error: KafkaError,
    ) -> (StreamsClient, harness::Driver) {
        let (mut c, mut d) = running(guarantee, &[0], &[]);
        let (corr, _) = step(&mut c, &mut d);
        answer(
            &mut c,
            &mut d,
            corr,
            fetched(tp("in", 0), 0, vec![record("k", "v", 0)], 1),
        );
        let _ = d.step(&mut c, MAIN);
        assert!(c.dirty);
        d.now += c.config.heartbeat_interval_ms;
        let (hb, _) = d.step(&mut c, HEARTBEAT).remove(0);
        answer(&mut c, &mut d, hb, Response::Heartbeat(Err(error)));
        (c, d)
    }

    #[test]
    fn an_illegal_generation_heartbeat_loses_the_tasks_without_a_commit() {
        // The old model committed, then rejoined: an unfenced-commit path.
        let (mut c, mut d) =
            heartbeat_after_processing(Guarantee::AtLeastOnce, KafkaError::IllegalGeneration);
        assert!(
            d.step(&mut c, MAIN).is_empty(),
            "the poll closes the tasks, sends nothing"
        );
        assert!(c.tasks.is_empty() && !c.dirty);
        let (_, next) = step(&mut c, &mut d);
        assert!(
            matches!(&next, Request::JoinGroup { member_id: Some(m), .. } if m == "m"),
            "expected a rejoin keeping the member id, got {next:?}"
        );
    }

    #[test]
    fn under_exactly_once_lost_tasks_re_initialise_the_producer() {
        let (mut c, mut d) =
            heartbeat_after_processing(Guarantee::ExactlyOnceV2, KafkaError::IllegalGeneration);
        assert!(d.step(&mut c, MAIN).is_empty());
        assert_eq!((c.txn, c.producer), (None, None));
        let (_, next) = step(&mut c, &mut d);
        assert!(
            matches!(next, Request::InitProducerId { .. }),
            "got {next:?}"
        );
    }

    #[test]
    fn a_rebalance_during_restoration_is_joined_at_the_next_poll() {
        for eager in [true, false] {
            rebalance_during_restoration(eager);
        }
    }

    fn rebalance_during_restoration(eager: bool) {
        let c = if eager {
            eager_client(Guarantee::AtLeastOnce)
        } else {
            client(Guarantee::AtLeastOnce)
        };
        let mut d = driver();
        let mut c = c;
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
        answer(
            &mut c,
            &mut d,
            corr,
            Response::OffsetFetch(Ok(vec![(tp("in", 0), None)])),
        );
        assert_eq!(c.phase, Phase::Restore);
        d.now += c.config.heartbeat_interval_ms;
        let (hb, _) = d.step(&mut c, HEARTBEAT).remove(0);
        answer(
            &mut c,
            &mut d,
            hb,
            Response::Heartbeat(Err(KafkaError::RebalanceInProgress)),
        );
        assert!(c.ready(MAIN, d.now));
        if eager {
            // The restoring task is closed first.
            assert!(d.step(&mut c, MAIN).is_empty());
            assert!(c.tasks.is_empty());
        }
        let (_, next) = step(&mut c, &mut d);
        assert!(matches!(next, Request::JoinGroup { .. }), "got {next:?}");
        assert_eq!(c.tasks.len(), usize::from(!eager), "cooperative keeps it");
    }
}
