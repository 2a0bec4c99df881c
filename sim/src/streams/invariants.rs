//! Phase invariants of the streams client, asserted after every step and every response
//! (and at the points where a phase's precondition matters: processing, committing); the
//! walk over tasks, buffers and positions in debug and test builds only.
//!
//! A broken invariant is a bug in the runtime: it panics with the client's name, its
//! phase and what broke, so the run's seed reproduces it.

use super::{Phase, StreamsClient};
use crate::protocol::{Offset, TopicPartition};

impl StreamsClient {
    fn broken(&self, what: &str) -> ! {
        panic!(
            "streams invariant broken in {} (phase {:?}, generation {}, member {:?}): {what}",
            self.id, self.phase, self.generation, self.member_id
        )
    }

    fn require(&self, ok: bool, what: &str) {
        if !ok {
            self.broken(what);
        }
    }

    /// The client's state is consistent with its phase. The walk over every task, buffer
    /// and position (`check_tasks`) runs in debug and test builds only, as the world's
    /// and the broker's walks do; the checks of the phase, membership and transaction
    /// always run.
    pub(super) fn check_invariants(&self) {
        self.check_membership();
        self.check_rebalance();
        if cfg!(debug_assertions) {
            self.check_tasks();
        }
        self.check_transaction();
        self.check_fetch_lane();
    }

    /// The long poll's fetch is in flight on its own lane only, one at a time, and only
    /// under the long poll; the processing loop's lane never carries it (a held fetch
    /// does not block processing, commits or the poll interval).
    fn check_fetch_lane(&self) {
        use crate::protocol::Request;
        if let Some(w) = &self.fetching {
            self.require(self.long_poll(), "a long-poll fetch without the long poll");
            self.require(
                matches!(&w.request, Request::FetchMany { partitions, .. } if !partitions.is_empty()),
                "the fetch lane carries something else than a fetch of partitions",
            );
        }
        let main_fetch =
            matches!(&self.main, Some(w) if matches!(w.request, Request::FetchMany { .. }));
        self.require(
            !main_fetch,
            "the processing loop waits on a long-poll fetch",
        );
        if self.long_poll() {
            let polling =
                matches!(&self.main, Some(w) if matches!(w.request, Request::Fetch { .. }));
            self.require(
                !polling || self.phase == Phase::Restore,
                "the processing loop fetches input itself under the long poll",
            );
        }
    }

    /// Whoever holds tasks, fetches their offsets, restores or commits is a member of
    /// the group with a generation; without tasks there is nothing to commit.
    fn check_membership(&self) {
        let member = self.in_group && self.member_id.is_some() && self.generation > 0;
        match &self.phase {
            Phase::FetchOffsets { .. } | Phase::Restore | Phase::Run => {
                self.require(member, "tasks held outside the group")
            }
            Phase::CommitOffsets { .. } | Phase::EndTxn { commit: true, .. } => {
                self.require(member, "commit without a generation")
            }
            Phase::InitProducer | Phase::Join { .. } => {
                self.require(
                    self.tasks.is_empty() && self.restoring.is_empty(),
                    "tasks kept while (re)joining",
                );
                self.require(!self.dirty, "uncommitted work kept while (re)joining");
                self.require(
                    self.txn.is_none(),
                    "a transaction left open while (re)joining",
                );
            }
            Phase::EndTxn { commit: false, .. } => {}
        }
    }

    /// A cooperative rebalance keeps tasks running or restoring; a handover (the commit of
    /// revoked tasks) happens after the assignment arrived; tasks that fetch offsets or
    /// restore leave nothing uncommitted behind them.
    fn check_rebalance(&self) {
        let holding = matches!(
            self.phase,
            Phase::Run | Phase::FetchOffsets { .. } | Phase::Restore
        );
        if self.rebalancing {
            self.require(
                self.config.cooperative() && holding,
                "a rebalance in progress outside the cooperative protocol's running phases",
            );
            self.require(self.handover.is_none(), "a handover during a rebalance");
        }
        if self.handover.is_some() {
            let committing = matches!(
                self.phase,
                Phase::Run | Phase::CommitOffsets { .. } | Phase::EndTxn { .. }
            );
            self.require(committing, "a handover outside the running loop");
        }
        // Nothing is held past a commit: `StreamTask.prepareCommit` flushes the producer
        // before the offsets (or `EndTxn`) are sent.
        if matches!(
            self.phase,
            Phase::CommitOffsets { .. } | Phase::EndTxn { .. }
        ) {
            self.require(self.outputs.is_empty(), "outputs held through a commit");
        }
        self.require(
            self.held_since.is_some() != self.outputs.is_empty(),
            "the linger clock disagrees with what is held",
        );
        if matches!(self.phase, Phase::FetchOffsets { .. } | Phase::Restore) {
            self.require(
                !self.dirty && self.outputs.is_empty() && self.txn.is_none(),
                "uncommitted work kept while tasks restore",
            );
        }
    }

    /// Tasks, buffers and positions belong to the assignment; nothing is processed
    /// before every store is restored; committed positions never pass processed ones.
    fn check_tasks(&self) {
        if self.phase == Phase::Run {
            self.require(self.restoring.is_empty(), "running while restoring");
        }
        let assigned = |tp: &TopicPartition| self.assignment.contains(tp);
        self.require(
            self.buffer.keys().all(assigned),
            "records buffered for an unassigned partition",
        );
        self.require(
            self.consumed.iter().all(assigned),
            "consumed from an unassigned partition",
        );
        self.require(
            self.processed.keys().all(assigned),
            "a position kept for an unassigned partition",
        );
        // (The `commit_before_process` and `resume_after_committed` mutations break this
        // one on purpose, so that the checker, not this assertion, is shown to see them.)
        let honest = !self.config.commit_before_process && !self.config.resume_after_committed;
        for (tp, committed) in self.committed.iter().filter(|_| honest) {
            let processed = self.processed.get(tp).copied().unwrap_or(0);
            self.require(processed >= *committed, "committed past what was processed");
        }
        for id in self.tasks.keys() {
            let owned = self.assignment.iter().any(|tp| {
                tp.partition == id.partition
                    && self.topology.subtopology_of(&tp.topic) == Some(id.subtopology)
            });
            self.require(owned, "a task without an assigned partition");
        }
    }

    /// At most one transaction is open, under exactly-once only, by the current producer.
    fn check_transaction(&self) {
        let Some(txn) = self.txn else { return };
        self.require(self.config.eos(), "a transaction under at_least_once");
        self.require(
            self.producer == Some(txn),
            "the open transaction belongs to another producer",
        );
    }

    /// Begin (or continue) the transaction of the current producer.
    pub(super) fn begin_txn(&mut self) {
        let Some(producer) = self.producer else {
            self.broken("a transaction without a transactional producer")
        };
        if let Some(open) = self.txn {
            self.require(open == producer, "a second transaction opened");
        }
        self.txn = Some(producer);
    }

    /// Before a record is processed or a task punctuated.
    pub(super) fn assert_may_process(&self) {
        self.require(
            self.phase == Phase::Run && self.restoring.is_empty(),
            "processing while restoring",
        );
    }

    /// Before offsets are sent: a generation, no rebalance in progress (`TaskManager.commit`
    /// returns -1 then), and assigned partitions only.
    pub(super) fn assert_may_commit(&self, offsets: &[(TopicPartition, Offset)]) {
        self.require(
            self.in_group && self.generation > 0,
            "commit without a generation",
        );
        self.require(!self.rebalancing, "commit during a rebalance");
        self.require(
            offsets.iter().all(|(tp, _)| self.assignment.contains(tp)),
            "offsets committed for an unassigned partition",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    #[should_panic(expected = "commit without a generation")]
    fn a_commit_without_a_generation_panics() {
        client(Guarantee::AtLeastOnce).assert_may_commit(&[]);
    }

    #[test]
    #[should_panic(expected = "commit during a rebalance")]
    fn a_commit_during_a_rebalance_panics() {
        let (mut c, _) = running(Guarantee::AtLeastOnce, &[0], &[]);
        c.rebalancing = true;
        c.assert_may_commit(&[(tp("in", 0), 1)]);
    }

    #[test]
    #[should_panic(expected = "processing while restoring")]
    fn processing_while_restoring_panics() {
        let (mut c, _) = running(Guarantee::AtLeastOnce, &[0], &[]);
        c.phase = Phase::Restore;
        c.assert_may_process();
    }

    #[test]
    #[should_panic(expected = "a second transaction opened")]
    fn a_second_transaction_panics() {
        let (mut c, _) = running(Guarantee::ExactlyOnceV2, &[0], &[]);
        c.begin_txn();
        c.producer = Some((2, 0));
        c.begin_txn();
    }

    #[test]
    #[should_panic(expected = "offsets committed for an unassigned partition")]
    fn offsets_of_an_unassigned_partition_panic() {
        let (c, _) = running(Guarantee::AtLeastOnce, &[0], &[]);
        c.assert_may_commit(&[(tp("in", 1), 3)]);
    }
}
