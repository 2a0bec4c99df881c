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
//! - no network fault (drop, duplicate, delay) and no broker fault is drawn;
//! - with ephemeral state directories a start's process id is its incarnation, not a
//!   draw.
//!
//! The fingerprint ([`World::fingerprint`]) is a 64-bit hash ([`StateHash`]) of the written form of the state
//! that the future depends on: time, the broker (logs, producers, transactions, groups),
//! every instance's status and its clients' own fingerprints, the messages in flight as
//! a sorted multiset (a correlation id written as the lane that awaits it, or as stale),
//! the fault schedule and the fault budget used. The trace is not state: two runs that
//! meet in one state are searched on once.

use super::network::{Endpoint, Message, Payload};
use super::{Strategy, World};
use crate::choice::{Chooser, ReplayDiverged};
use crate::protocol::Millis;
use std::fmt::{self, Write};

/// The exhaustive search's fault budget, and how much of it a run has used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Budget {
    pub(super) max_crashes: u32,
    pub(super) max_pauses: u32,
    pub(super) crashes: u32,
    pub(super) pauses: u32,
}

impl Budget {
    pub(super) fn of(strategy: Strategy) -> Option<Budget> {
        match strategy {
            Strategy::Exhaustive {
                max_crashes,
                max_pauses,
                ..
            } => Some(Budget {
                max_crashes,
                max_pauses,
                ..Budget::default()
            }),
            _ => None,
        }
    }
}

/// A 64-bit hash of a written form, fed through `fmt::Write` (no allocation for the
/// written form): the bytes taken eight at a time as little-endian words, each mixed in
/// by a bijection of the state (xor, multiply by an odd constant, rotate), the length
/// and the last partial word at the end, then MurmurHash3's 64-bit finaliser. Equal
/// written forms hash equal however `fmt` splits them into pieces; the state's
/// fingerprint is written once per step of the search, so this is its inner loop.
pub(super) struct StateHash {
    h: u64,
    /// The bytes of the word being filled, and how many.
    word: u64,
    filled: u32,
    len: u64,
}

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl StateHash {
    pub(super) fn new() -> StateHash {
        StateHash {
            h: 0xcbf2_9ce4_8422_2325,
            word: 0,
            filled: 0,
            len: 0,
        }
    }

    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(MIX).rotate_left(29);
    }

    fn byte(&mut self, b: u8) {
        self.word |= u64::from(b) << (8 * self.filled);
        self.filled += 1;
        if self.filled == 8 {
            self.mix(self.word);
            (self.word, self.filled) = (0, 0);
        }
    }

    /// The hash of everything written.
    pub(super) fn finish(&self) -> u64 {
        let mut h = (self.h ^ self.word).wrapping_mul(MIX).rotate_left(29) ^ self.len;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl Write for StateHash {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        self.len += bytes.len() as u64;
        while self.filled != 0 && !bytes.is_empty() {
            self.byte(bytes[0]);
            bytes = &bytes[1..];
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("eight bytes")));
        }
        for &b in words.remainder() {
            self.byte(b);
        }
        Ok(())
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
        let pick = chooser.choose(1 + crashes + pauses)?;
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
        write!(h, "{head:?}{:?}", self.broker).ok()?;
        for inst in &self.instances {
            write!(h, "|{:?} {}", inst.status, inst.incarnation).ok()?;
            for c in inst.clients.iter().flatten() {
                h.write_char('/').ok()?;
                if !c.fingerprint(&mut h) {
                    return None;
                }
            }
        }
        let mut messages: Vec<String> = self.net.values().map(|m| self.message_state(m)).collect();
        let mut held: Vec<String> = self
            .held
            .values()
            .map(|x| format!("{:?}{:?}", x.to, self.lane_of(x.to, x.corr)))
            .collect();
        messages.sort();
        held.sort();
        write!(h, "{messages:?}{held:?}").ok()?;
        Some(h.finish())
    }

    /// A message in flight without its id and correlation id: the lane that awaits it.
    pub(super) fn message_state(&self, m: &Message) -> String {
        let lane = self.lane_of(m.lane_end(), m.corr);
        let payload = match &m.payload {
            Payload::Request(r) => format!("{r:?}"),
            Payload::Response(r) => format!("{r:?}"),
        };
        format!(
            "{} {:?}>{:?} {lane:?} {payload}",
            m.deliver_at, m.from, m.to
        )
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
