//! The exhaustive strategy's side of the scheduler: its bounds, its fault points, and the
//! world's state fingerprint for state matching.
//!
//! Under [`Strategy::Exhaustive`] every choice of a run is a branch the search may take
//! (`oversell`'s `src/exhaustive.rs` drives a depth-first search over choice prefixes
//! with [`Chooser::guided`]). To keep the tree finite and honest about what it covers:
//!
//! - time is not a choice: no "a millisecond passes" action is offered; time jumps to the
//!   next deadline only when nothing else can happen (processing takes no time);
//! - a fault point is every scheduler step of the fault phase: at most `max_crashes`
//!   crashes and `max_pauses` pauses of faulty instances in all; a crashed instance
//!   restarts after the lower end of `restart_after`, a pause lasts the upper end of
//!   `pause_for`;
//! - a network fault point is every delivery of a request to the broker in the fault
//!   phase: at most `max_net_faults` requests delayed (by the upper end of `delay_for`)
//!   or duplicated in all, of the kinds whose rate the fault class sets (the rates
//!   themselves are not drawn); no drop and no broker fault;
//! - with ephemeral state directories a start's process id is its incarnation, not a
//!   draw.
//!
//! The fingerprint ([`World::fingerprint`]) is a 64-bit hash ([`StateHash`]) of the
//! state that the future depends on. Two states with one fingerprint are searched once,
//! so everything that can change what happens next must be in it. Field by field:
//!
//! - in it: time, the last progress and the end of the fault phase, the scheduled faults
//!   still to come, the produce acknowledgements still to lose, the groups joined, the
//!   crashed, partitioned and slowed brokers and the follow-up broker faults (none under
//!   this strategy), the fault budget used;
//! - the broker: every field (`Broker::state_digest` destructures it, so a new field does
//!   not compile until it is placed), each partition log by its own digest, kept between
//!   steps that leave it alone; the broker's digest is kept likewise
//!   ([`crate::state_hash::Cached`]: any mutable access forgets it);
//! - each instance: its status (with its restart or resume time) and incarnation, and
//!   each client's own [`Client::fingerprint`](crate::Client::fingerprint): the streams
//!   client every field but its configuration and topology (fixed at build), each task's
//!   stores, stream time and punctuation time, and what its processor holds outside its
//!   stores ([`Processor::fingerprint`](crate::Processor::fingerprint): the saga's timer
//!   records sent and not seen back; a processor that cannot say makes the world
//!   unhashable and the search runs without state matching); the source client its
//!   place in its schedule, producer, sequences, request in flight and backoff;
//! - the messages in flight as a sorted multiset of (content key, awaiting lane): the
//!   content key (`network.rs`) hashes when the message is due, its two ends and what it
//!   carries; the lane stands for the correlation id (stale when no lane awaits it), so
//!   two runs that sent the same requests in another order meet. The answers the broker
//!   holds back, by their receiver and lane (their content is the broker's state).
//!   Under a deviation bound (`Budget::ordered`) both in their order (by id) instead:
//!   the first option of a choice follows that order, and a bounded search's future
//!   from a state depends on which option is first (`src/exhaustive.rs`).
//!
//! Left out, and why: message ids and correlation ids and the counters that issue them
//! (fresh names, only compared for equality; the order of one step's actions follows
//! message ids, and every action of a step is searched, so only a counterexample's
//! choice log depends on it); the configuration (one for the whole search); the trace and
//! the step count (history: the checker judges a run that ends from its trace and final
//! logs, and a run cut at a state searched before is not judged, the state's future being
//! searched from its first visit — an invariant read from trace events alone, not from
//! the logs and stores, is judged on the first history that reached a state); this
//! step's action, marker and follower-fetch lists and the broker's next deadline (derived
//! from the state at every step); the reduction's sleep set (the search keeps it beside
//! the fingerprint, `src/exhaustive.rs`); the chooser (past its prefix a guided chooser
//! takes option 0; its depth is the search's business). The saga's caches of open
//! reservations and paying orders are functions of their stores, checked against them at
//! every use in debug and test builds. The trace is not state: two runs that meet in one
//! state are searched on once.

use super::network::Endpoint;
use super::{Strategy, World};
use crate::broker::Broker;
use crate::choice::{Chooser, ReplayDiverged};
use crate::protocol::Millis;
use crate::state_hash::StateHash;
use std::fmt::Write;
use std::hash::Hasher;

/// The exhaustive search's fault budget, and how much of it a run has used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Budget {
    pub(super) max_crashes: u32,
    pub(super) max_pauses: u32,
    pub(super) max_net_faults: u32,
    pub(super) crashes: u32,
    pub(super) pauses: u32,
    pub(super) net_faults: u32,
    /// The network faults the fault class allows: delay, duplicate.
    pub(super) net_kinds: (bool, bool),
    /// The fingerprint keeps the messages in flight in their order (see the module doc).
    pub(super) ordered: bool,
}

impl Budget {
    pub(super) fn of(strategy: Strategy) -> Option<Budget> {
        match strategy {
            Strategy::Exhaustive {
                max_crashes,
                max_pauses,
                max_net_faults,
                ordered,
                ..
            } => Some(Budget {
                max_crashes,
                max_pauses,
                max_net_faults,
                ordered,
                ..Budget::default()
            }),
            _ => None,
        }
    }
}

impl World {
    /// The exhaustive strategy's fault point at this step: no fault, or a crash or a pause
    /// of one faulty running instance, while the budget lasts; under the reduction, only
    /// of an instance where the fault is worth offering (`por.rs`). The instance struck.
    pub(super) fn exhaustive_fault(
        &mut self,
        chooser: &mut Chooser,
    ) -> Result<Option<usize>, ReplayDiverged> {
        let budget = self.exhaustive.expect("exhaustive strategy");
        let candidates: Vec<usize> = match &self.por {
            Some(por) => self
                .faulty_instances()
                .filter(|&i| por.fault_useful(i))
                .collect(),
            None => self.faulty_instances().collect(),
        };
        let count = candidates.len() as u32;
        let crashes = if budget.crashes < budget.max_crashes {
            count
        } else {
            0
        };
        let pauses = if budget.pauses < budget.max_pauses {
            count
        } else {
            0
        };
        if crashes + pauses == 0 {
            return Ok(None);
        }
        let pick = chooser.choose_fault(1 + crashes + pauses)?;
        if pick == 0 {
            return Ok(None);
        }
        let choice = chooser.index();
        let k = pick - 1;
        let (nth, crash) = if k < crashes {
            (k, true)
        } else {
            (k - crashes, false)
        };
        let i = candidates[nth as usize];
        let b = self.exhaustive.as_mut().expect("checked");
        if crash {
            b.crashes += 1;
            let at = self.now + self.config.rates.restart_after.0;
            self.crash(i, at, choice);
        } else {
            b.pauses += 1;
            let until = self.now + self.config.rates.pause_for.1;
            self.pause(i, until, choice);
        }
        let b = self.exhaustive.expect("checked");
        assert!(
            b.crashes <= b.max_crashes && b.pauses <= b.max_pauses,
            "over the budget"
        );
        Ok(Some(i))
    }

    /// The exhaustive strategy's network fault point at the delivery of request `id`
    /// (due now): deliver it, or delay it by the upper end of the delay range, or
    /// deliver it and keep a copy in flight, while the budget lasts. Whether it was
    /// delayed (not delivered now).
    pub(super) fn exhaustive_net_fault(
        &mut self,
        id: u64,
        chooser: &mut Chooser,
        choice: u64,
    ) -> Result<bool, ReplayDiverged> {
        let b = self.exhaustive.expect("exhaustive strategy");
        let (delay, duplicate) = b.net_kinds;
        if b.net_faults >= b.max_net_faults || !(delay || duplicate) {
            return Ok(false);
        }
        let pick = chooser.choose_fault(1 + u32::from(delay) + u32::from(duplicate))?;
        if pick == 0 {
            return Ok(false);
        }
        self.exhaustive.as_mut().expect("checked").net_faults += 1;
        if delay && pick == 1 {
            let until = self.now + self.config.rates.delay_for.1;
            self.delay_message(id, until, choice);
            return Ok(true);
        }
        self.duplicate_message(id, choice);
        let b = self.exhaustive.expect("checked");
        assert!(b.net_faults <= b.max_net_faults, "over the budget");
        Ok(false)
    }

    /// The world's state, hashed (see the module documentation); `None` when some client
    /// cannot write its state.
    pub fn fingerprint(&self) -> Option<u64> {
        let mut h = StateHash::new();
        let head = (
            self.now,
            self.last_progress,
            self.healed_at,
            &self.scheduled,
            &self.drop_acks,
            &self.groups,
            &self.brokers_down,
            self.exhaustive,
        );
        // Broker faults: none under the exhaustive strategy, in for soundness all the same.
        let broker_faults = (
            &self.partitioned,
            &self.slowed,
            self.overlap,
            &self.follow_ups,
        );
        write!(h, "{head:?}{broker_faults:?}").ok()?;
        h.write_u64(self.broker.digest(Broker::state_digest));
        for inst in &self.instances {
            write!(h, "|{:?} {}", inst.status, inst.incarnation).ok()?;
            for c in inst.clients.iter().flatten() {
                h.write_char('/').ok()?;
                if !c.fingerprint(&mut h) {
                    return None;
                }
            }
        }
        // In flight: a multiset, each message its content key (when it is due, its ends,
        // what it carries: `network.rs`) with the lane that awaits it.
        let mut messages: Vec<(u64, Option<usize>)> = (self.net.values())
            .map(|m| (m.content, self.lane_of(m.lane_end(), m.corr)))
            .collect();
        let mut held: Vec<String> = self
            .held
            .values()
            .map(|x| format!("{:?}{:?}", x.to, self.lane_of(x.to, x.corr)))
            .collect();
        if !self.exhaustive.is_some_and(|b| b.ordered) {
            messages.sort_unstable();
            held.sort();
        }
        h.write_u64(messages.len() as u64);
        for (content, lane) in messages {
            h.write_u64(content);
            h.write_u64(lane.map_or(u64::MAX, |l| l as u64));
        }
        write!(h, "{held:?}").ok()?;
        Some(h.finish())
    }

    /// The lane of the running client at `end` that awaits `corr` (`None`: stale).
    pub(super) fn lane_of(&self, end: Endpoint, corr: u64) -> Option<usize> {
        let Endpoint::Client {
            instance,
            client,
            incarnation,
        } = end
        else {
            return None;
        };
        let inst = &self.instances[instance];
        if inst.incarnation != incarnation {
            return None;
        }
        inst.clients.get(client)?.as_ref()?.awaits(corr)
    }

    /// The restart delay and pause length the exhaustive strategy fixes (for its report).
    pub fn exhaustive_fault_lengths(&self) -> (Millis, Millis) {
        (
            self.config.rates.restart_after.0,
            self.config.rates.pause_for.1,
        )
    }
}
