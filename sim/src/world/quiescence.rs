//! When the world is quiet, and when something next happens if nothing can happen now.

use super::instances::Status;
use super::World;
use crate::broker::GroupState;
use crate::client::ClientId;
use crate::protocol::Millis;

impl World {
    /// The earliest time at which something becomes possible: a message falls due, an
    /// instance starts, restarts or resumes, a client wakes up, a scheduled fault strikes,
    /// the broker has a timeout. Never `now` itself: at least one millisecond ahead.
    pub(super) fn next_deadline(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        let mut at = |x: Millis| t = Some(t.map_or(x, |t: Millis| t.min(x)));
        for m in self.net.values() {
            at(m.deliver_at);
        }
        for inst in &self.instances {
            match inst.status {
                Status::NotStarted => at(inst.spec.start_at),
                Status::Down { restart_at } => at(restart_at),
                Status::Paused { until } => at(until),
                Status::Up => {
                    for c in inst.clients.iter().flatten() {
                        if let Some(w) = c.wakeup() {
                            at(w);
                        }
                    }
                }
            }
        }
        if let Some(f) = self.scheduled.last() {
            at(f.at());
        }
        if let Some(d) = self.broker_deadline {
            at(d);
        }
        if let Some(f) = self.next_follow_up() {
            at(f);
        }
        let heals = self.partitioned.values().chain(self.slowed.values());
        for restart_at in self.brokers_down.values().chain(heals) {
            at(*restart_at);
        }
        t.map(|t| t.max(self.now + 1))
    }

    /// Quiet: past the fault phase and `settle_until`, nothing appended or processed for
    /// `quiet_ms`, the last fault healed `quiet_ms` ago, no scheduled fault left, nothing
    /// in flight, no open transaction (nor one whose markers are still being written), no
    /// group rebalancing, every instance up, every
    /// client idle and no client holding a timer due before the time bound.
    pub(super) fn quiescent(&self) -> bool {
        self.now >= self.config.settle_until
            && self.now >= self.healed_at + self.config.quiet_ms
            && self.now >= self.last_progress + self.config.quiet_ms
            && self.scheduled.is_empty()
            && self.net.is_empty()
            && self.held.values().all(|h| h.fetch)
            && self.brokers_down.is_empty()
            && self.partitioned.is_empty()
            && self.slowed.is_empty()
            && self.broker.open_transactions().is_empty()
            && self.groups.iter().all(|g| {
                !matches!(
                    self.broker.group_state(g),
                    Some(GroupState::PreparingRebalance { .. })
                )
            })
            && self
                .instances
                .iter()
                .all(|i| i.status == Status::Up && i.clients.iter().flatten().all(|c| c.idle()))
            && self.pending_timer().is_none()
    }

    /// The earliest timer a running client holds that falls before the time bound (a
    /// timer at or past the bound cannot act within the run).
    fn pending_timer(&self) -> Option<(Millis, &ClientId)> {
        self.instances
            .iter()
            .filter(|i| i.status == Status::Up)
            .flat_map(|i| i.clients.iter().flatten())
            .filter_map(|c| Some((c.next_timer()?, c.id())))
            .filter(|(t, _)| *t < self.config.max_time)
            .min()
    }

    /// Why the world is not quiescent: for a run that ended at a bound.
    pub(super) fn why_not_quiescent(&self) -> String {
        let mut reasons = Vec::new();
        let open = self.broker.open_transactions();
        if !open.is_empty() {
            reasons.push(format!("open transactions: {}", open.join(", ")));
        }
        let markers = self.broker.pending_markers().len();
        if markers > 0 {
            reasons.push(format!("{markers} transaction markers to write"));
        }
        for (b, at) in &self.brokers_down {
            reasons.push(format!("broker {b} is down until {at}ms"));
        }
        let answers = self.held.values().filter(|h| !h.fetch).count();
        if answers > 0 {
            reasons.push(format!("{answers} produce answers held back"));
        }
        for inst in &self.instances {
            if inst.status != Status::Up {
                reasons.push(format!("{} is {:?}", inst.spec.name, inst.status));
            }
            for c in inst.clients.iter().flatten() {
                if !c.idle() {
                    reasons.push(format!("{} is busy", c.id()));
                }
            }
        }
        if let Some((t, client)) = self.pending_timer() {
            reasons.push(format!("{client} has a timer pending at {t}ms"));
        }
        if self.now < self.last_progress + self.config.quiet_ms {
            reasons.push(format!("last progress at {}ms", self.last_progress));
        }
        format!(
            "run ended at a bound, not quiescent: {}",
            reasons.join("; ")
        )
    }

    /// What quiescence promises, checked when a run ends quiescent.
    pub(super) fn assert_quiescent_state(&self) {
        assert!(self.net.is_empty(), "quiescent with messages in flight");
        // A held fetch is what an idle consumer has in flight: the broker holds it only
        // while none of its partitions has anything visible past its offset
        // (`Broker::take_completed_fetches` checks that after every change), and an idle
        // streams client's fetch asks for every assigned partition at its position. So a
        // quiescent world has no visible unread input for any assigned partition.
        assert!(
            self.held.values().all(|h| h.fetch),
            "quiescent with a produce answer held back"
        );
        assert!(self.scheduled.is_empty(), "quiescent with faults to come");
        assert!(
            self.instances.iter().all(|i| i.status == Status::Up),
            "quiescent with an instance down or paused"
        );
        assert!(!self.in_fault_phase(), "quiescent inside the fault phase");
    }
}
