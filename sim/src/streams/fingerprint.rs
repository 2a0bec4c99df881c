//! The streams client's state, written for the exhaustive search's state hashing
//! (`Client::fingerprint`): every field its future behaviour depends on, in a fixed
//! order, except the topology (fixed at build) and the tasks' processors, whose state is
//! taken to be their stores (the designs' processors keep nothing else but caches built
//! from their stores). The correlation ids of the requests in flight are left out: the
//! world names the messages that carry them by the lane that awaits them
//! (`Client::awaits`), so that two runs that sent the same requests in another order
//! meet in one state.
//!
//! And its copy for the search's snapshots ([`StreamsClient::try_clone`]): possible when
//! every task's processor can be copied (`Processor::clone_boxed`).

use super::{StreamsClient, Task, HEARTBEAT, MAIN};
use std::fmt::{self, Write};

impl Task {
    fn try_clone(&self) -> Option<Task> {
        Some(Task {
            processor: self.processor.clone_boxed()?,
            stores: self.stores.clone(),
            stream_time: self.stream_time,
            next_stream_punctuation: self.next_stream_punctuation,
        })
    }
}

impl StreamsClient {
    pub(super) fn write_fingerprint(&self, out: &mut dyn Write) -> fmt::Result {
        let membership = (
            &self.phase,
            &self.member_id,
            self.generation,
            self.in_group,
            self.rejoin_needed,
            self.member_lost,
            self.forget_member,
            &self.assignment,
            self.next_heartbeat,
            self.rebalancing,
            self.join_retry,
            &self.handover,
        );
        write!(out, "{membership:?}")?;
        let producer = (
            self.blocked_since,
            self.left_group,
            self.producer,
            &self.sequences,
            self.txn,
            &self.restoring,
            &self.fetch_positions,
            &self.processed,
            &self.committed,
            &self.caught_up,
            &self.buffer,
            &self.consumed,
        );
        write!(out, "{producer:?}")?;
        let main = self.main.as_ref().map(|w| (&w.request, w.deadline));
        let heartbeat = self.heartbeat.as_ref().map(|w| (&w.request, w.deadline));
        let progress = (
            self.retry_until,
            &self.outputs,
            self.dirty,
            self.commit_now,
            self.last_commit,
            self.next_fetch,
            self.idle_until,
            self.next_wall_punctuation,
            main,
            &self.resend,
            self.process_id,
            heartbeat,
        );
        write!(out, "{progress:?}")?;
        for (id, task) in &self.tasks {
            let t = (
                id,
                &task.stores,
                task.stream_time,
                task.next_stream_punctuation,
            );
            write!(out, "{t:?}")?;
        }
        Ok(())
    }

    pub(super) fn lane_awaiting(&self, corr: u64) -> Option<usize> {
        if self.main.as_ref().is_some_and(|w| w.corr == corr) {
            Some(MAIN)
        } else if self.heartbeat.as_ref().is_some_and(|w| w.corr == corr) {
            Some(HEARTBEAT)
        } else {
            None
        }
    }

    /// A copy of this client, its tasks' processors included; `None` when one of them
    /// cannot be copied.
    pub(super) fn try_clone(&self) -> Option<StreamsClient> {
        let mut tasks = std::collections::BTreeMap::new();
        for (id, t) in &self.tasks {
            tasks.insert(*id, t.try_clone()?);
        }
        Some(StreamsClient {
            id: self.id.clone(),
            config: self.config.clone(),
            topology: self.topology.clone(),
            phase: self.phase.clone(),
            member_id: self.member_id.clone(),
            generation: self.generation,
            in_group: self.in_group,
            rejoin_needed: self.rejoin_needed,
            member_lost: self.member_lost,
            forget_member: self.forget_member,
            assignment: self.assignment.clone(),
            next_heartbeat: self.next_heartbeat,
            rebalancing: self.rebalancing,
            join_retry: self.join_retry,
            handover: self.handover.clone(),
            blocked_since: self.blocked_since,
            left_group: self.left_group,
            producer: self.producer,
            sequences: self.sequences.clone(),
            txn: self.txn,
            tasks,
            restoring: self.restoring.clone(),
            fetch_positions: self.fetch_positions.clone(),
            processed: self.processed.clone(),
            committed: self.committed.clone(),
            caught_up: self.caught_up.clone(),
            buffer: self.buffer.clone(),
            consumed: self.consumed.clone(),
            retry_until: self.retry_until,
            outputs: self.outputs.clone(),
            dirty: self.dirty,
            commit_now: self.commit_now,
            last_commit: self.last_commit,
            next_fetch: self.next_fetch,
            idle_until: self.idle_until,
            next_wall_punctuation: self.next_wall_punctuation,
            main: self.main.clone(),
            resend: self.resend.clone(),
            process_id: self.process_id,
            heartbeat: self.heartbeat.clone(),
        })
    }
}
