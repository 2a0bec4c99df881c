//! The cooperative rebalance protocol (KIP-429, Kafka Streams' default): a member joins
//! with its tasks kept and reports their partitions as owned; retained tasks keep running
//! through the rebalance and keep their stores, positions and consumed offsets; commits
//! wait until the assignment arrives; revoked tasks are committed, then closed; only new
//! tasks fetch offsets and restore; a member that revoked something rejoins at once so
//! that the follow-up rebalance hands those partitions over.
//!
//! Kafka's code followed: `ConsumerCoordinator.onJoinPrepare` (no revocation before a
//! cooperative join), `ConsumerCoordinator.onJoinComplete` (revoke the difference, then
//! `requestRejoin`), `TaskManager.handleRebalanceStart` / `handleRebalanceComplete`
//! (`rebalanceInProgress`), `TaskManager.commit` (returns -1 while a rebalance is in
//! progress), `TaskManager.handleRevocation` (revoked tasks are committed — with every
//! other commit-needed task, as one transaction under `exactly_once_v2` — with the
//! consumer's group metadata, that is the new generation), `TaskManager.handleAssignment`
//! (tasks kept, closed, created), `AbstractCoordinator.HeartbeatThread` (a
//! `REBALANCE_IN_PROGRESS` heartbeat asks for a rejoin only while the member is stable).
//!
//! One simplification: a new task restores before any task processes again (Kafka's
//! state updater restores it while retained tasks run), so retained tasks' uncommitted
//! work is committed before new tasks start restoring.

use super::{AfterCommit, Event, Phase, StreamsClient};
use crate::client::Env;
use crate::protocol::*;

impl StreamsClient {
    /// A pending cooperative `JoinGroup` is due again.
    pub(super) fn join_due(&self, now: Millis) -> bool {
        self.rebalancing && self.join_retry.is_some_and(|t| now >= t)
    }

    /// At a poll, under the cooperative protocol: join with the tasks kept (or join again
    /// after a pending answer). Whether a `JoinGroup` was sent.
    pub(super) fn cooperative_join(&mut self, env: &mut Env<'_>) -> bool {
        if self.rejoin_needed && !self.rebalancing {
            // `TaskManager.handleRebalanceStart`: from here until the assignment arrives,
            // `TaskManager.commit` commits nothing.
            self.rejoin_needed = false;
            self.rebalancing = true;
            self.join_retry = None;
            self.send_join(env);
            return true;
        }
        if self.join_due(env.now) {
            self.join_retry = None;
            self.send_join(env);
            return true;
        }
        false
    }

    /// At a poll of the running loop: a pending handover first, then the join.
    pub(super) fn step_cooperative(&mut self, env: &mut Env<'_>) -> bool {
        if self.handover.is_some() {
            self.step_handover(env);
            return true;
        }
        self.cooperative_join(env)
    }

    /// `TaskManager.handleRevocation`: flush the outputs, commit, then apply.
    fn step_handover(&mut self, env: &mut Env<'_>) {
        if !self.outputs.is_empty() {
            self.send_outputs(env);
            return;
        }
        if self.dirty || self.txn.is_some() {
            self.phase = Phase::CommitOffsets {
                then: AfterCommit::Handover,
            };
            self.send_offsets(AfterCommit::Handover, env);
            return;
        }
        self.apply_handover(env);
    }

    /// The handover's commit is done (or there was nothing to commit).
    pub(super) fn apply_handover(&mut self, env: &mut Env<'_>) {
        let next = self.handover.take().expect("a handover to apply");
        self.phase = Phase::Run;
        self.apply_assignment(next, env);
    }

    /// A cooperative assignment arrived (generation and membership already taken).
    pub(super) fn on_cooperative_assignment(
        &mut self,
        next: Vec<TopicPartition>,
        env: &mut Env<'_>,
    ) {
        // `TaskManager.handleRebalanceComplete` comes with the assignment.
        self.rebalancing = false;
        self.join_retry = None;
        let changed = next.len() != self.assignment.len()
            || next.iter().any(|tp| !self.assignment.contains(tp));
        let uncommitted = self.dirty || !self.outputs.is_empty() || self.txn.is_some();
        if changed && uncommitted && self.phase == Phase::Run {
            self.handover = Some(next);
        } else {
            self.apply_assignment(next, env);
        }
    }

    /// `TaskManager.handleAssignment`: revoked tasks closed (their work is committed),
    /// retained ones kept as they are, new ones created; the partitions without a
    /// position fetch their committed offsets, new stores restore.
    fn apply_assignment(&mut self, next: Vec<TopicPartition>, env: &mut Env<'_>) {
        let revoked: Vec<TopicPartition> = self
            .assignment
            .iter()
            .filter(|tp| !next.contains(tp))
            .cloned()
            .collect();
        self.assignment = next;
        self.close_revoked(&revoked);
        self.create_tasks();
        env.event(Event::Assigned {
            client: self.id.clone(),
            generation: self.generation,
            tasks: self.assignment.clone(),
        });
        if !revoked.is_empty() {
            // `ConsumerCoordinator.onJoinComplete`: "need to revoke partitions and re-join".
            self.rejoin_needed = true;
        }
        let lacking = self
            .assignment
            .iter()
            .any(|tp| !self.fetch_positions.contains_key(tp));
        if lacking {
            self.phase = Phase::FetchOffsets { backoff_until: 0 };
        } else if self.phase != Phase::Run {
            // `step_restore` starts running once the restore queue is empty.
            self.phase = Phase::Restore;
        }
    }

    /// Drop what belonged to the revoked partitions; tasks left without a partition close.
    fn close_revoked(&mut self, revoked: &[TopicPartition]) {
        for tp in revoked {
            self.buffer.remove(tp);
            self.consumed.remove(tp);
            self.fetch_positions.remove(tp);
            self.processed.remove(tp);
            self.committed.remove(tp);
            self.caught_up.remove(tp);
        }
        let assignment = &self.assignment;
        let topology = &self.topology;
        self.tasks.retain(|id, _| {
            assignment.iter().any(|tp| {
                tp.partition == id.partition
                    && topology.subtopology_of(&tp.topic) == Some(id.subtopology)
            })
        });
        let tasks = &self.tasks;
        self.restoring.retain(|item| tasks.contains_key(&item.task));
        if self.next_fetch >= self.assignment.len() {
            self.next_fetch = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    /// Process one record of each partition in `ps` and have the outputs acknowledged.
    fn process(c: &mut StreamsClient, d: &mut harness::Driver, ps: &[u32]) {
        for p in ps {
            // Fetch partitions in turn until `in-p` comes up.
            loop {
                let (corr, req) = step(c, d);
                let Request::Fetch { tp: t, offset, .. } = req else {
                    panic!("expected a fetch, got {req:?}")
                };
                let records = if t.partition == *p {
                    vec![record("k", "v", 0)]
                } else {
                    vec![]
                };
                let hw = offset + records.len() as Offset;
                answer(c, d, corr, fetched(t.clone(), offset, records, hw));
                if t.partition == *p {
                    break;
                }
            }
            let _ = d.step(c, MAIN);
            let (corr, produce) = step(c, d);
            let Request::Produce { batches, .. } = produce else {
                panic!("expected a produce, got {produce:?}")
            };
            answer(c, d, corr, ok_acks(&batches));
        }
    }

    /// The heartbeat says the group rebalances; the next poll's request.
    fn rebalance_starts(c: &mut StreamsClient, d: &mut harness::Driver) -> (u64, Request) {
        d.now += c.config.heartbeat_interval_ms;
        let (hb, _) = d.step(c, HEARTBEAT).remove(0);
        let busy = Response::Heartbeat(Err(KafkaError::RebalanceInProgress));
        answer(c, d, hb, busy);
        let mut sent = d.step(c, MAIN);
        if sent.is_empty() {
            // Eager: the poll first revokes everything.
            assert!(c.tasks.is_empty());
            sent = d.step(c, MAIN);
        }
        assert_eq!(sent.len(), 1, "{sent:?}");
        sent.remove(0)
    }

    fn joined(generation: Generation, ps: &[u32]) -> Response {
        Response::JoinGroup(Ok(JoinOutcome::Joined {
            member_id: "m".into(),
            generation,
            assignment: ps.iter().map(|p| tp("in", *p)).collect(),
        }))
    }

    #[test]
    fn cooperative_retains_what_eager_recreates() {
        for eager in [false, true] {
            let c = if eager {
                eager_client(Guarantee::AtLeastOnce)
            } else {
                client(Guarantee::AtLeastOnce)
            };
            let (mut c, mut d) = running_client(c, &[0], &[]);
            process(&mut c, &mut d, &[0]);
            d.now += c.config.commit_interval_ms;
            let (corr, commit) = step(&mut c, &mut d);
            assert!(matches!(commit, Request::OffsetCommit { .. }), "{commit:?}");
            answer(&mut c, &mut d, corr, Response::OffsetCommit(Ok(())));
            let (corr, join) = rebalance_starts(&mut c, &mut d);
            let Request::JoinGroup {
                protocol, owned, ..
            } = &join
            else {
                panic!("expected a join, got {join:?}")
            };
            let expected = if eager {
                (RebalanceProtocol::Eager, vec![])
            } else {
                (RebalanceProtocol::Cooperative, vec![tp("in", 0)])
            };
            assert_eq!((*protocol, owned.clone()), expected);
            answer(&mut c, &mut d, corr, joined(2, &[0]));
            let store = c.stores().get(&(STORE.to_string(), 0)).cloned();
            let (_, next) = step(&mut c, &mut d);
            if eager {
                // Every task closed and recreated: offsets fetched, the store restored.
                assert_eq!(store, Some(BTreeMap::new()));
                assert!(matches!(next, Request::OffsetFetch { .. }), "{next:?}");
            } else {
                // The task kept its store and position, and polls on.
                assert_eq!(store.expect("kept")["k"], "1");
                assert_eq!((c.processed[&tp("in", 0)], c.generation), (1, 2));
                assert!(c.consumed.contains(&tp("in", 0)), "consumed offsets kept");
                assert!(matches!(next, Request::Fetch { .. }), "{next:?}");
            }
        }
    }

    #[test]
    fn commits_wait_while_a_rebalance_is_in_progress() {
        let (mut c, mut d) = running(Guarantee::AtLeastOnce, &[0], &[]);
        process(&mut c, &mut d, &[0]);
        let (corr, join) = rebalance_starts(&mut c, &mut d);
        assert!(matches!(join, Request::JoinGroup { .. }));
        let pending = Response::JoinGroup(Ok(JoinOutcome::Pending {
            member_id: "m".into(),
        }));
        answer(&mut c, &mut d, corr, pending);
        assert!(c.rebalancing && c.dirty);
        d.now += c.config.commit_interval_ms;
        assert!(
            !c.commit_due(d.now),
            "TaskManager.commit skips during a rebalance"
        );
        // The loop keeps polling (and joins again after the backoff), but commits nothing.
        for _ in 0..4 {
            let (corr, req) = step(&mut c, &mut d);
            assert!(!matches!(req, Request::OffsetCommit { .. }), "{req:?}");
            if let Request::Fetch { tp: t, offset, .. } = req {
                answer(&mut c, &mut d, corr, fetched(t, offset, vec![], offset));
            } else {
                answer(&mut c, &mut d, corr, joined(2, &[0]));
                break;
            }
        }
        assert!(!c.rebalancing);
        let (_, commit) = step(&mut c, &mut d);
        let Request::OffsetCommit { group, .. } = commit else {
            panic!("expected the commit once the rebalance is over, got {commit:?}")
        };
        assert_eq!(group.generation, 2);
    }

    fn revocation(guarantee: Guarantee) -> (StreamsClient, harness::Driver, Request) {
        let (mut c, mut d) = running(guarantee, &[0, 1], &[]);
        process(&mut c, &mut d, &[0, 1]);
        let (corr, join) = rebalance_starts(&mut c, &mut d);
        assert!(
            matches!(&join, Request::JoinGroup { owned, .. } if owned.len() == 2),
            "{join:?}"
        );
        answer(&mut c, &mut d, corr, joined(2, &[0]));
        assert_eq!(
            c.tasks.len(),
            2,
            "the revoked task is committed before it closes"
        );
        let (_, commit) = step(&mut c, &mut d);
        (c, d, commit)
    }

    #[test]
    fn revoked_tasks_are_committed_with_the_new_generation_then_closed() {
        let (mut c, mut d, commit) = revocation(Guarantee::AtLeastOnce);
        let Request::OffsetCommit { group, offsets } = commit else {
            panic!("expected an offset commit, got {commit:?}")
        };
        assert_eq!(group.generation, 2);
        assert!(offsets.contains(&(tp("in", 1), 1)), "{offsets:?}");
        let corr = c.main.as_ref().expect("commit in flight").corr;
        answer(&mut c, &mut d, corr, Response::OffsetCommit(Ok(())));
        assert_eq!(c.assignment, vec![tp("in", 0)]);
        assert_eq!(c.tasks.len(), 1);
        assert!(!c.processed.contains_key(&tp("in", 1)));
        // ConsumerCoordinator.onJoinComplete: a member that revoked rejoins at once.
        let (_, next) = step(&mut c, &mut d);
        assert!(
            matches!(&next, Request::JoinGroup { owned, .. } if *owned == vec![tp("in", 0)]),
            "{next:?}"
        );
    }

    #[test]
    fn under_exactly_once_revoked_tasks_commit_in_the_transaction() {
        let (mut c, mut d, commit) = revocation(Guarantee::ExactlyOnceV2);
        let Request::TxnOffsetCommit { group, offsets, .. } = commit else {
            panic!("expected offsets to the transaction, got {commit:?}")
        };
        assert_eq!(group.generation, 2);
        assert_eq!(offsets, vec![(tp("in", 0), 1), (tp("in", 1), 1)]);
        let corr = c.main.as_ref().expect("in flight").corr;
        let sent = answer(&mut c, &mut d, corr, Response::TxnOffsetCommit(Ok(())));
        assert!(matches!(sent[..], [Request::EndTxn { commit: true, .. }]));
        let corr = c.main.as_ref().expect("EndTxn in flight").corr;
        answer(&mut c, &mut d, corr, Response::EndTxn(Ok(Some((1, 1)))));
        assert_eq!((c.assignment.clone(), c.txn), (vec![tp("in", 0)], None));
    }

    #[test]
    fn only_a_new_partition_fetches_offsets_and_restores() {
        let (mut c, mut d) = running(Guarantee::AtLeastOnce, &[0], &[]);
        let (corr, _) = rebalance_starts(&mut c, &mut d);
        answer(&mut c, &mut d, corr, joined(2, &[0, 1]));
        let (corr, fetch) = step(&mut c, &mut d);
        let Request::OffsetFetch { partitions, .. } = fetch else {
            panic!("expected an offset fetch, got {fetch:?}")
        };
        assert_eq!(partitions, vec![tp("in", 1)]);
        answer(
            &mut c,
            &mut d,
            corr,
            Response::OffsetFetch(Ok(vec![(tp("in", 1), Some(3))])),
        );
        let (_, restore) = step(&mut c, &mut d);
        assert!(
            matches!(&restore, Request::Fetch { tp: t, .. } if *t == tp("app-s-changelog", 1)),
            "{restore:?}"
        );
        assert_eq!(
            c.restoring.len(),
            1,
            "the retained task's store is not restored"
        );
    }

    #[test]
    fn a_loop_blocked_past_max_poll_interval_leaves_the_group() {
        let (mut c, mut d) = running(Guarantee::AtLeastOnce, &[0], &[]);
        let (corr, fetch) = step(&mut c, &mut d);
        assert!(matches!(fetch, Request::Fetch { .. }));
        d.now += c.config.rebalance_timeout_ms;
        let sent = d.step(&mut c, HEARTBEAT);
        assert!(
            matches!(&sent[..], [(_, Request::LeaveGroup { .. })]),
            "{sent:?}"
        );
        answer(&mut c, &mut d, corr, fetched(tp("in", 0), 0, vec![], 0));
        // The next poll finds the partitions lost: closed, no commit, a new member.
        assert!(d.step(&mut c, MAIN).is_empty());
        assert!(c.tasks.is_empty());
        let (_, next) = step(&mut c, &mut d);
        assert!(
            matches!(
                next,
                Request::JoinGroup {
                    member_id: None,
                    ..
                }
            ),
            "{next:?}"
        );
    }
}
