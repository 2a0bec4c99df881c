//! The streams client's state, written for the exhaustive search's state hashing
//! (`Client::fingerprint`): every field its future behaviour depends on, in a fixed
//! order, except the topology (fixed at build). A task's processor is in it through its
//! own [`crate::Processor::fingerprint`] (what it holds outside its stores: the saga's
//! pending timer records and its caches), hashed to 64 bits beside the task's stores; a
//! processor that cannot say what it holds makes the client's state unwritable, and the
//! world is then searched without state matching. The correlation ids of the requests in flight are left out: the
//! world names the messages that carry them by the lane that awaits them
//! (`Client::awaits`), so that two runs that sent the same requests in another order
//! meet in one state.
//!
//! And its copy for the search's snapshots ([`StreamsClient::try_clone`]): possible when
//! every task's processor can be copied (`Processor::clone_boxed`).

use super::{StreamsClient, Task, FETCH, HEARTBEAT, MAIN};
use crate::state_hash::StateHash;
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
            (&self.outputs, self.held_since),
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
        if self.long_poll() {
            let fetching = self.fetching.as_ref().map(|w| (&w.request, w.deadline));
            write!(out, "{:?}", (fetching, self.fetch_backoff_until))?;
        }
        for (id, task) in &self.tasks {
            let mut held = StateHash::new();
            if !task.processor.fingerprint(&mut held) {
                return Err(fmt::Error);
            }
            let t = (
                id,
                &task.stores,
                task.stream_time,
                task.next_stream_punctuation,
                held.finish(),
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
        } else if self.fetching.as_ref().is_some_and(|w| w.corr == corr) {
            Some(FETCH)
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
            held_since: self.held_since,
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
            fetching: self.fetching.clone(),
            fetch_backoff_until: self.fetch_backoff_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{running_client, STORE};
    use super::super::*;
    use crate::state_hash::StateHash;
    use std::sync::Arc;

    /// A processor that holds a number outside its stores (as the saga's timers hold the
    /// records they sent), or, with `says: false`, cannot say what it holds.
    #[derive(Clone)]
    struct Holds {
        held: u64,
        says: bool,
    }

    impl Processor for Holds {
        fn process(&mut self, _ctx: &mut Context<'_, '_>, _input: &Input) -> Processed {
            Processed::Done
        }

        fn fingerprint(&self, state: &mut dyn std::hash::Hasher) -> bool {
            state.write_u64(self.held);
            self.says
        }
    }

    fn fingerprint_with(held: u64, says: bool) -> Option<u64> {
        let topology = Topology {
            subtopologies: vec![SubTopology {
                name: "count".into(),
                sources: vec!["in".into()],
                stores: vec![STORE.into()],
                processor: Arc::new(move |_| Box::new(Holds { held, says })),
                punctuate: None,
            }],
        };
        let config = StreamsConfig::new("app", Guarantee::ExactlyOnceV2);
        let (c, _) = running_client(StreamsClient::new("i0", config, topology), &[0], &[]);
        assert_eq!(c.tasks.len(), 1, "one task, its processor built");
        let mut h = StateHash::new();
        c.fingerprint(&mut h).then(|| h.finish())
    }

    #[test]
    fn two_clients_differing_only_in_what_a_processor_holds_differ() {
        let a = fingerprint_with(0, true).expect("says what it holds");
        let b = fingerprint_with(1, true).expect("says what it holds");
        assert_ne!(a, b, "a processor's own state is in the fingerprint");
        assert_eq!(Some(a), fingerprint_with(0, true), "and only it differs");
    }

    #[test]
    fn a_processor_that_cannot_say_what_it_holds_leaves_the_client_unhashed() {
        assert_eq!(fingerprint_with(0, false), None);
    }
}
