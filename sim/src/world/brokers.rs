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
use crate::trace::Label;
use crate::world::ScheduledFault;
use std::collections::BTreeMap;

/// Where the answer of a held-back request goes.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub(super) to: Endpoint,
    pub(super) corr: u64,
    pub(super) what: Label,
    pub(super) client: ClientId,
    /// A fetch the broker holds until it has something to return or `fetch.max.wait.ms`
    /// runs out (`broker/delayed_fetch.rs`), not an answer held back for replication.
    pub(super) fetch: bool,
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
    /// it held back that are now complete (replicated produces and coordinator writes,
    /// fetches that have something to return or whose `fetch.max.wait.ms` ran out), in
    /// the broker's order of ids.
    pub(super) fn after_broker_change(&mut self, choice: u64) {
        self.broker_deadline = self.broker.next_deadline();
        self.flush_scratch(choice);
        if self.held.is_empty() {
            return;
        }
        let mut completed = self.broker.take_completed_fetches(&mut self.scratch);
        completed.extend(self.broker.take_completed_produces());
        completed.sort_by_key(|(id, _)| *id);
        for (id, response) in completed {
            let h = self.held.remove(&id).expect("a held answer");
            let what = h.what.reply();
            self.enqueue(
                Endpoint::Broker,
                h.to,
                h.corr,
                Payload::Response(response),
                what,
                h.client,
            );
        }
        self.flush_scratch(choice);
    }

    /// At most one random broker fault per step of the fault phase (a crash, a network
    /// partition, a slow follower), and only while the cluster is healthy (every broker
    /// up and reachable, every ISR full); and the follow-ups that are due, which strike
    /// whatever the cluster's state (`overlap.rs`). A kind whose rate is 0 draws nothing.
    pub(super) fn maybe_broker_fault(
        &mut self,
        chooser: &mut Chooser,
    ) -> Result<(), ReplayDiverged> {
        let rates = self.config.rates.clone();
        let n = self.broker.broker_count();
        let any = rates.broker_crash + rates.broker_partition + rates.slow_follower > 0;
        if !any || n == 1 {
            return Ok(());
        }
        self.overlap_chance(chooser)?;
        self.follow_ups_due(chooser)?;
        if !self.broker.cluster_healthy() {
            return Ok(());
        }
        let heal_at = if rates.broker_crash > 0 && chooser.chance(rates.broker_crash)? {
            let b = chooser.choose(n)?;
            self.random_crash(b, chooser)?
        } else if rates.broker_partition > 0 && chooser.chance(rates.broker_partition)? {
            let b = chooser.choose(n)?;
            self.random_partition(b, chooser)?
        } else if rates.slow_follower > 0 && chooser.chance(rates.slow_follower)? {
            let b = chooser.choose(n)?;
            self.random_slow(b, chooser)?
        } else {
            return Ok(());
        };
        self.maybe_follow_up(heal_at, chooser)
    }

    /// Crash broker `b` for a downtime drawn from the rates, losing its unflushed data
    /// with the `fsync_loss` chance; when it restarts.
    pub(super) fn random_crash(
        &mut self,
        b: BrokerId,
        chooser: &mut Chooser,
    ) -> Result<Millis, ReplayDiverged> {
        let rates = &self.config.rates;
        let (restart, fsync_loss) = (rates.broker_restart_after, rates.fsync_loss);
        let d = pick_range(chooser, restart)?;
        let lose = chooser.chance(fsync_loss)?;
        self.crash_broker(b, self.now + d, lose, chooser)?;
        Ok(self.now + d)
    }

    /// Partition broker `b` from the brokers, the clients, or both (drawn), for a length
    /// drawn from the rates; when it heals.
    pub(super) fn random_partition(
        &mut self,
        b: BrokerId,
        chooser: &mut Chooser,
    ) -> Result<Millis, ReplayDiverged> {
        let d = pick_range(chooser, self.config.rates.broker_partition_for)?;
        // From the brokers, from the clients, or from both.
        let (from_brokers, from_clients) = match chooser.choose(3)? {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        let choice = chooser.index();
        self.partition_broker(b, self.now + d, from_brokers, from_clients, choice);
        Ok(self.now + d)
    }

    /// Stall broker `b`'s follower fetches for a length drawn from the rates; when they
    /// resume.
    pub(super) fn random_slow(
        &mut self,
        b: BrokerId,
        chooser: &mut Chooser,
    ) -> Result<Millis, ReplayDiverged> {
        let d = pick_range(chooser, self.config.rates.slow_follower_for)?;
        let choice = chooser.index();
        self.slow_follower(b, self.now + d, choice);
        Ok(self.now + d)
    }

    /// A scheduled broker fault; one on a broker that does not exist, is down, already
    /// partitioned or slow is skipped.
    pub(super) fn scheduled_broker(
        &mut self,
        fault: ScheduledFault,
        chooser: &mut Chooser,
    ) -> Result<(), ReplayDiverged> {
        let now = self.now;
        let choice = chooser.index();
        match fault {
            ScheduledFault::BrokerCrash {
                broker,
                restart_after,
                lose_unflushed,
                ..
            } if self.broker.broker_intact(broker) => {
                self.crash_broker(broker, now + restart_after, lose_unflushed, chooser)?;
            }
            ScheduledFault::BrokerPartition {
                broker,
                duration,
                from_brokers,
                from_clients,
                ..
            } if self.broker.broker_intact(broker) && (from_brokers || from_clients) => {
                self.partition_broker(broker, now + duration, from_brokers, from_clients, choice);
            }
            ScheduledFault::SlowFollower {
                broker, duration, ..
            } if self.broker.broker_intact(broker) => {
                self.slow_follower(broker, now + duration, choice);
            }
            _ => {}
        }
        Ok(())
    }

    /// Partition broker `b` now until `heal_at`.
    fn partition_broker(
        &mut self,
        b: BrokerId,
        heal_at: Millis,
        from_brokers: bool,
        from_clients: bool,
        choice: u64,
    ) {
        let now = self.now;
        self.broker
            .partition_broker(now, b, from_brokers, from_clients, &mut self.scratch);
        self.partitioned.insert(b, heal_at);
        self.healed_at = self.healed_at.max(heal_at);
        self.after_broker_change(choice);
    }

    /// Stall broker `b`'s follower fetches now until `resume_at`.
    fn slow_follower(&mut self, b: BrokerId, resume_at: Millis, choice: u64) {
        self.broker
            .set_slow_follower(self.now, b, true, &mut self.scratch);
        self.slowed.insert(b, resume_at);
        self.healed_at = self.healed_at.max(resume_at);
        self.after_broker_change(choice);
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

    /// Restart every broker whose downtime is over, heal every partition and resume
    /// every slow follower whose time has come.
    pub(super) fn brokers_due(&mut self, choice: u64) {
        let now = self.now;
        let due = |m: &BTreeMap<BrokerId, Millis>| -> Vec<BrokerId> {
            m.iter()
                .filter(|(_, at)| **at <= now)
                .map(|(b, _)| *b)
                .collect()
        };
        for b in due(&self.brokers_down) {
            self.brokers_down.remove(&b);
            self.broker.restart_broker(now, b, &mut self.scratch);
            self.after_broker_change(choice);
        }
        for b in due(&self.partitioned) {
            self.partitioned.remove(&b);
            self.broker.heal_broker(now, b, &mut self.scratch);
            self.after_broker_change(choice);
        }
        for b in due(&self.slowed) {
            self.slowed.remove(&b);
            self.broker
                .set_slow_follower(now, b, false, &mut self.scratch);
            self.after_broker_change(choice);
        }
    }
}
