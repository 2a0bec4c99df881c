//! The streams client's state, written for the exhaustive search's state hashing
//! (`Client::fingerprint`): every field its future behaviour depends on, in a fixed
//! order, except the topology (fixed at build) and the tasks' processors, whose state is
//! taken to be their stores (the designs' processors keep nothing else but caches built
//! from their stores). The correlation ids of the requests in flight are left out: the
//! world names the messages that carry them by the lane that awaits them
//! (`Client::awaits`), so that two runs that sent the same requests in another order
//! meet in one state.

use super::{StreamsClient, HEARTBEAT, MAIN};
use std::fmt::{self, Write};

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
}
