//! Faults: random ones during the fault phase (crash, pause; the network's drop,
//! duplicate and delay live in `network.rs`) and scheduled ones at fixed times.
//!
//! Before `fault_phase_ms` every scheduler step may crash or pause a faulty instance
//! and every delivery may be struck by the network; after it comes the heal phase, in
//! which only the scenario's explicit schedule still strikes. `healed_at` is the time at
//! which the last fault healed (the last restart or resume, or the end of the fault
//! phase); quiescence is judged from it.

use super::instances::Status;
use super::World;
use crate::choice::{Chooser, ReplayDiverged};
use crate::protocol::Millis;
use crate::world::ScheduledFault;

impl World {
    pub(super) fn in_fault_phase(&self) -> bool {
        self.now < self.config.fault_phase_ms
    }

    /// At most one random crash or pause of a faulty running instance, drawn per step.
    pub(super) fn maybe_instance_fault(
        &mut self,
        chooser: &mut Chooser,
    ) -> Result<(), ReplayDiverged> {
        debug_assert!(self.in_fault_phase());
        let rates = self.config.rates.clone();
        if rates.crash == 0 && rates.pause == 0 {
            return Ok(());
        }
        // Counted, not collected: this runs at every step of the fault phase.
        let count = self.faulty_instances().count();
        if count == 0 {
            return Ok(());
        }
        let nth = |w: &World, k: u32| w.faulty_instances().nth(k as usize).expect("k < count");
        if chooser.chance(rates.crash)? {
            let i = nth(self, chooser.choose(count as u32)?);
            let d = pick_range(chooser, rates.restart_after)?;
            let choice = chooser.index();
            self.crash(i, self.now + d, choice);
        } else if chooser.chance(rates.pause)? {
            let i = nth(self, chooser.choose(count as u32)?);
            let d = pick_range(chooser, rates.pause_for)?;
            let choice = chooser.index();
            self.pause(i, self.now + d, choice);
        }
        Ok(())
    }

    /// Scheduled faults that are due now, in order of their times. A crash or pause of
    /// an instance that is not up is skipped.
    pub(super) fn scheduled_due(&mut self, chooser: &mut Chooser) -> Result<(), ReplayDiverged> {
        let now = self.now;
        let choice = chooser.index();
        while self.scheduled.last().is_some_and(|f| f.at() <= now) {
            let fault = self.scheduled.pop().expect("checked");
            match fault {
                ScheduledFault::Crash {
                    instance,
                    restart_after,
                    ..
                } => {
                    if let Some(i) = self.up_instance(&instance) {
                        self.crash(i, now + restart_after, choice);
                    }
                }
                ScheduledFault::Pause {
                    instance, duration, ..
                } => {
                    if let Some(i) = self.up_instance(&instance) {
                        self.pause(i, now + duration, choice);
                    }
                }
                ScheduledFault::DropProduceAck {
                    instance, count, ..
                } => {
                    *self.drop_acks.entry(instance).or_insert(0) += count;
                }
                ScheduledFault::BrokerCrash { .. }
                | ScheduledFault::BrokerPartition { .. }
                | ScheduledFault::SlowFollower { .. } => self.scheduled_broker(fault, chooser)?,
            }
        }
        debug_assert!(self.scheduled.iter().all(|f| f.at() > now));
        Ok(())
    }

    fn up_instance(&self, name: &str) -> Option<usize> {
        self.instance_index(name)
            .filter(|&i| self.instances[i].status == Status::Up)
    }

    /// Whether a scheduled `DropProduceAck` takes this produce acknowledgement to
    /// `instance` (and counts it).
    pub(super) fn scheduled_ack_drop(&mut self, instance: usize) -> bool {
        let name = &self.instances[instance].spec.name;
        match self.drop_acks.get_mut(name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// The fault schedule's invariant: sorted so that the next fault is last.
    pub(super) fn check_schedule(&self) {
        debug_assert!(
            self.scheduled.windows(2).all(|w| w[0].at() >= w[1].at()),
            "the fault schedule is out of order"
        );
        assert!(
            self.healed_at >= self.config.fault_phase_ms,
            "healed before the fault phase ended"
        );
    }
}

/// A duration drawn from an inclusive range.
pub(super) fn pick_range(
    chooser: &mut Chooser,
    (lo, hi): (Millis, Millis),
) -> Result<Millis, ReplayDiverged> {
    if hi <= lo {
        return Ok(lo);
    }
    let span = (hi - lo + 1).min(u64::from(u32::MAX)) as u32;
    Ok(lo + u64::from(chooser.choose(span)?))
}
