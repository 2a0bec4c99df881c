//! Overlapping broker faults: a second random broker fault while the first is unhealed.
//!
//! Alone, the random broker faults strike only a healthy cluster (every broker up and
//! reachable, every ISR full; `brokers.rs`), so one at a time. Kafka's durability promise
//! is narrower than "one at a time": an acknowledged `acks=all` write is on every member
//! of the ISR it was written under, and it survives while one of them keeps it
//! (`Partition.maybeIncrementLeaderHW`, `core/src/main/scala/kafka/cluster/Partition.scala`;
//! the election picks from the ISR, `PartitionLeaderElectionAlgorithms`). Two failures
//! close together are what break it: a follower out of the ISR and then a leader crash,
//! two brokers down at once, the last in-sync replica losing its unflushed suffix (Kafka
//! does not fsync each write).
//!
//! With `broker_overlap` above 0 each run draws, at the first step of its fault phase, a
//! coin (tails: its broker faults stay one at a time) and on heads its chance per fault,
//! `1..=broker_overlap` per mille; a scheduler note records the draw. Every random broker
//! fault then brings, with that chance, a follow-up: a time drawn from the next
//! millisecond up to the fault's heal, at which another fault strikes, its kind drawn in
//! proportion to the kinds' own rates (a crash loses unflushed data with the
//! `fsync_loss` chance), on one of the brokers still intact (up, reachable and fetching;
//! the last one too: three brokers may all be down at once). A follow-up may bring its
//! own. A follow-up due after the fault phase is dropped. Scheduled faults bring none.

use super::World;
use crate::broker::BrokerId;
use crate::choice::{Chooser, ReplayDiverged};
use crate::protocol::Millis;
use crate::trace::{Event, Peer};

impl World {
    /// The run's chance (per mille) that a random broker fault brings a follow-up, drawn
    /// at the first call; 0 without `broker_overlap`, and then nothing is drawn.
    pub(super) fn overlap_chance(&mut self, chooser: &mut Chooser) -> Result<u32, ReplayDiverged> {
        if let Some(chance) = self.overlap {
            return Ok(chance);
        }
        let max = self.config.rates.broker_overlap.min(1000);
        let chance = if max == 0 || chooser.choose(2)? == 0 {
            0
        } else {
            1 + chooser.choose(max)?
        };
        debug_assert!(chance <= max);
        self.overlap = Some(chance);
        if max > 0 {
            let text = if chance == 0 {
                "broker faults one at a time (this run's overlap coin: off)".to_string()
            } else {
                format!("broker faults may overlap: a follow-up after {chance}‰ of them")
            };
            let choice = chooser.index();
            self.record(
                choice,
                Event::Note {
                    client: Peer::Scheduler,
                    text,
                },
            );
        }
        Ok(chance)
    }

    /// After a random broker fault that heals at `heal_at`: with the run's chance, a
    /// follow-up between the next millisecond and `heal_at`.
    pub(super) fn maybe_follow_up(
        &mut self,
        heal_at: Millis,
        chooser: &mut Chooser,
    ) -> Result<(), ReplayDiverged> {
        let chance = self.overlap.unwrap_or(0);
        if !chooser.chance(chance)? {
            return Ok(());
        }
        let span = heal_at
            .saturating_sub(self.now)
            .clamp(1, u64::from(u32::MAX));
        let at = self.now + 1 + Millis::from(chooser.choose(span as u32)?);
        debug_assert!(at > self.now && at <= heal_at.max(self.now + 1));
        if at < self.config.fault_phase_ms {
            self.follow_ups.push(at);
        }
        Ok(())
    }

    /// Strike every follow-up that is due, earliest first; one that finds no intact
    /// broker strikes nothing.
    pub(super) fn follow_ups_due(&mut self, chooser: &mut Chooser) -> Result<(), ReplayDiverged> {
        while let Some(i) = self.next_follow_up_due() {
            self.follow_ups.swap_remove(i);
            let intact: Vec<BrokerId> = (0..self.broker.broker_count())
                .filter(|b| self.broker.broker_intact(*b))
                .collect();
            if intact.is_empty() {
                continue;
            }
            self.strike_follow_up(&intact, chooser)?;
        }
        Ok(())
    }

    /// The index of the earliest due follow-up.
    fn next_follow_up_due(&self) -> Option<usize> {
        self.follow_ups
            .iter()
            .enumerate()
            .filter(|(_, at)| **at <= self.now)
            .min_by_key(|(i, at)| (**at, *i))
            .map(|(i, _)| i)
    }

    /// One follow-up on one of `intact`: its kind in proportion to the kinds' rates.
    fn strike_follow_up(
        &mut self,
        intact: &[BrokerId],
        chooser: &mut Chooser,
    ) -> Result<(), ReplayDiverged> {
        let r = self.config.rates.clone();
        let total = r.broker_crash + r.broker_partition + r.slow_follower;
        assert!(total > 0, "a follow-up without a broker fault kind");
        let kind = chooser.choose(total)?;
        let b = intact[chooser.choose(intact.len() as u32)? as usize];
        let heal_at = if kind < r.broker_crash {
            self.random_crash(b, chooser)?
        } else if kind < r.broker_crash + r.broker_partition {
            self.random_partition(b, chooser)?
        } else {
            self.random_slow(b, chooser)?
        };
        self.maybe_follow_up(heal_at, chooser)
    }

    /// The earliest follow-up still to come, for the scheduler's next deadline.
    pub(super) fn next_follow_up(&self) -> Option<Millis> {
        self.follow_ups
            .iter()
            .copied()
            .filter(|at| *at > self.now)
            .min()
    }
}
