//! Group membership: joining (eager protocol: every task is closed and recreated at each
//! assignment), the heartbeat lane, the generation, and closing tasks when the member
//! loses them.

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
        self.fetch_positions.clear();
        self.processed.clear();
        self.committed.clear();
        self.caught_up.clear();
        self.assignment.clear();
        self.dirty = false;
        self.commit_now = false;
    }

    /// The task was migrated away or the producer fenced: drop everything, rejoin.
    pub(super) fn task_migrated(&mut self, env: &mut Env<'_>, why: &str, reset_member: bool) {
        self.error(
            env,
            format!("task migrated ({why}): closing tasks dirty and rejoining"),
        );
        self.close_tasks_dirty();
        self.in_group = false;
        self.rejoin_needed = false;
        if reset_member {
            self.member_id = None;
        }
        if self.config.eos() && self.txn.is_some() {
            // The open transaction is aborted by the re-initialisation of the producer.
            self.txn = None;
            self.producer = None;
        }
        if self.config.eos() && self.producer.is_none() {
            self.sequences.clear();
            self.phase = Phase::InitProducer;
        } else {
            self.phase = Phase::Join { backoff_until: 0 };
        }
    }

    pub(super) fn revoke_and_rejoin(&mut self) {
        self.close_tasks_dirty();
        self.in_group = false;
        self.phase = Phase::Join { backoff_until: 0 };
    }

    pub(super) fn on_join(&mut self, result: Result<JoinOutcome, KafkaError>, env: &mut Env<'_>) {
        match result {
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
            }) => {
                self.member_id = Some(member_id);
                self.generation = generation;
                self.in_group = true;
                self.rejoin_needed = false;
                self.member_lost = false;
                self.next_heartbeat = env.now + self.config.heartbeat_interval_ms;
                self.close_tasks_dirty();
                self.assignment = assignment;
                self.create_tasks();
                env.event(Event::Assigned {
                    client: self.name.clone(),
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

    pub(super) fn step_heartbeat(&mut self, env: &mut Env<'_>) {
        if let Some(w) = self.heartbeat.take() {
            // Unanswered heartbeat: send the next one.
            let _ = w;
        }
        let Some(member_id) = self.member_id.clone() else {
            return;
        };
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
            Err(KafkaError::RebalanceInProgress) | Err(KafkaError::IllegalGeneration) => {
                if self.in_group && !self.rejoin_needed {
                    self.rejoin_needed = true;
                }
            }
            Err(KafkaError::UnknownMemberId) => {
                if self.in_group && !self.member_lost {
                    // The group moved on without this member: its tasks are lost. The
                    // processing loop learns of it at its next poll; until then it keeps
                    // its stale member id and generation, which the broker rejects.
                    self.rejoin_needed = true;
                    self.member_lost = true;
                    self.error(
                        env,
                        "heartbeat: unknown member; tasks lost, will rejoin as a new member".into(),
                    );
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
}
