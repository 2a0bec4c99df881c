//! The brokers of a replicated cluster as the scheduler drives them: follower fetches
//! are choices like deliveries, answers a leader holds back (`acks=all`) go out when they
//! complete, and brokers crash (losing their unflushed suffix or not) and restart.
//!
//! With one broker none of this does anything: no fetch is offered, no answer is held
//! back, no broker fault is drawn, so runs are what they were before replication.

use super::faults::pick_range;
use super::network::{Endpoint, Payload};
use super::{Action, World};
use crate::broker::BrokerId;
use crate::choice::{Chooser, ReplayDiverged};
use crate::client::ClientId;
use crate::protocol::Millis;
use std::sync::Arc;

/// Where the answer of a held-back request goes.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub(super) to: Endpoint,
    pub(super) corr: u64,
    pub(super) what: String,
    pub(super) client: Arc<ClientId>,
}

impl World {
    /// Push a fetch action for every follower fetch that would do something now.
    pub(super) fn collect_fetches(&mut self) {
        self.fetches.clear();
        if self.broker.broker_count() == 1 {
            return;
        }
        self.fetches = self.broker.follower_fetches();
        self.actions
            .extend((0..self.fetches.len()).map(Action::Replicate));
    }

    /// Follower fetch `n` of this step's list.
    pub(super) fn replicate(&mut self, n: usize, choice: u64) {
        let fetch = self.fetches[n].clone();
        self.broker
            .follower_fetch(self.now, &fetch, &mut self.scratch);
        self.after_broker_change(choice);
    }

    /// After anything that changed the broker: its deadline, its events, and the answers
    /// it held back that are now complete.
    pub(super) fn after_broker_change(&mut self, choice: u64) {
        self.broker_deadline = self.broker.next_deadline();
        self.flush_scratch(choice);
        if self.held.is_empty() {
            return;
        }
        for (id, response) in self.broker.take_completed_produces() {
            let h = self.held.remove(&id).expect("a held answer");
            let what = format!("re:{}", h.what);
            self.enqueue(
                Endpoint::Broker,
                h.to,
                h.corr,
                Payload::Response(response),
                what,
                h.client,
            );
        }
    }

    /// At most one random broker crash per step of the fault phase, and only while the
    /// cluster is healthy (every broker up, every ISR full): one fault at a time.
    pub(super) fn maybe_broker_fault(
        &mut self,
        chooser: &mut Chooser,
    ) -> Result<(), ReplayDiverged> {
        let rates = &self.config.rates;
        let n = self.broker.broker_count();
        if rates.broker_crash == 0 || n == 1 || !self.broker.cluster_healthy() {
            return Ok(());
        }
        let (crash, loss, restart) = (
            rates.broker_crash,
            rates.fsync_loss,
            rates.broker_restart_after,
        );
        if !chooser.chance(crash)? {
            return Ok(());
        }
        let b = chooser.choose(n)?;
        let d = pick_range(chooser, restart)?;
        let lose = chooser.chance(loss)?;
        self.crash_broker(b, self.now + d, lose, chooser)
    }

    /// Crash broker `b` now until `restart_at`; with `lose`, each of its logs keeps a
    /// prefix drawn from the seed.
    pub(super) fn crash_broker(
        &mut self,
        b: BrokerId,
        restart_at: Millis,
        lose: bool,
        chooser: &mut Chooser,
    ) -> Result<(), ReplayDiverged> {
        let keep = if lose {
            let ends = self.broker.replica_log_ends(b);
            let mut keep = Vec::with_capacity(ends.len());
            for (_, end) in ends {
                keep.push(pick_range(chooser, (0, end))?);
            }
            Some(keep)
        } else {
            None
        };
        let choice = chooser.index();
        self.broker
            .crash_broker(self.now, b, keep.as_deref(), &mut self.scratch);
        self.brokers_down.insert(b, restart_at);
        self.healed_at = self.healed_at.max(restart_at);
        self.after_broker_change(choice);
        Ok(())
    }

    /// Restart every broker whose downtime is over.
    pub(super) fn brokers_due(&mut self, choice: u64) {
        let now = self.now;
        let due: Vec<BrokerId> = self
            .brokers_down
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(b, _)| *b)
            .collect();
        for b in due {
            self.brokers_down.remove(&b);
            self.broker.restart_broker(now, b, &mut self.scratch);
            self.after_broker_change(choice);
        }
    }
}
