//! The network's random faults on a client's messages: each request a client sends and
//! each answer it receives may be dropped, delayed or duplicated during the fault phase,
//! at the scenario's per-mille rates, drawn from madsim's RNG, and recorded as the
//! simulator's `Drop` / `Delay` / `Duplicate` events (id: the request's correlation id).
//!
//! The simulator strikes a message at its delivery (`sim/src/world/network.rs`,
//! `World::network_fault`: drop, else delay, else duplicate, in that order of draws);
//! this does the same at the client's end of madsim's network, because madsim's own
//! packet loss drops silently (nothing to record) and cannot duplicate or hold a
//! message. A dropped request is never sent (the client times out and sends it again);
//! a delayed one is sent later by a task of its own, so that it can arrive after its
//! retry; a duplicated one is sent twice (the broker handles both, as Kafka's would a
//! request its network delivered twice). A dropped answer is never read; a delayed one
//! is read later, or not at all if the request times out first; a duplicated answer's
//! copy is not read, as the simulator's client drops an answer to a request it no
//! longer awaits.

use crate::record::{now_ms, Recorder};
use oversell_sim::trace::Label;
use oversell_sim::{Event, Millis};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The rates, per mille per message, and until when they strike.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFaults {
    pub drop: u32,
    pub duplicate: u32,
    pub delay: u32,
    /// How long a delayed message is held, ms (inclusive range).
    pub delay_for: (Millis, Millis),
    /// The end of the fault phase: no message is struck from then on.
    pub until: Millis,
}

thread_local! {
    /// The network faults of the run on this thread (madsim runs a runtime on one
    /// thread); `Cluster::start` clears them, [`set`] sets them.
    static CURRENT: RefCell<NetworkFaults> = RefCell::new(NetworkFaults::default());
    /// Per instance (node name), how many of its next produce acknowledgements are lost
    /// (the scenario's scheduled `drop_produce_ack`).
    static ACK_DROPS: RefCell<BTreeMap<String, u32>> = const { RefCell::new(BTreeMap::new()) };
}

/// Lose the next `count` produce acknowledgements to `instance`'s clients, as the
/// simulator's scheduled `drop_produce_ack` does (`World::scheduled_ack_drop`, at the
/// answer's delivery: the broker wrote the records, the client never hears so).
pub fn drop_produce_acks(instance: &str, count: u32) {
    ACK_DROPS.with(|d| *d.borrow_mut().entry(instance.to_string()).or_insert(0) += count);
}

/// Whether a scheduled ack drop takes this produce answer to `instance` (and counts it).
pub(crate) fn take_ack_drop(instance: &str) -> bool {
    ACK_DROPS.with(|d| match d.borrow_mut().get_mut(instance) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    })
}

/// Strike the clients' messages with `faults` in this run (after `Cluster::start`).
pub fn set(faults: NetworkFaults) {
    assert!(
        faults.delay_for.0 <= faults.delay_for.1,
        "a delay range runs upwards"
    );
    CURRENT.with(|c| *c.borrow_mut() = faults);
}

/// No network faults, no lost acknowledgements (a new cluster's default).
pub(crate) fn clear() {
    set(NetworkFaults::default());
    ACK_DROPS.with(|d| d.borrow_mut().clear());
}

/// What the network does to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Deliver,
    Drop,
    /// Held this long, ms.
    Delay(Millis),
    /// Delivered, and a copy too.
    Duplicate,
}

/// A chance of `per_mille` in 1000 from madsim's RNG (no draw at 0, as the simulator's
/// `Chooser::chance`).
fn chance(per_mille: u32) -> bool {
    per_mille > 0 && (madsim::rand::random::<u32>() % 1000) < per_mille
}

/// The fate of the message `corr` labelled `what`, recorded when it is not `Deliver`.
pub(crate) fn strike(recorder: &Recorder, corr: u64, what: impl FnOnce() -> Label) -> Fate {
    let f = CURRENT.with(|c| c.borrow().clone());
    let now = now_ms();
    if now >= f.until {
        return Fate::Deliver;
    }
    let fate = if chance(f.drop) {
        Fate::Drop
    } else if chance(f.delay) {
        let (lo, hi) = f.delay_for;
        Fate::Delay(lo + madsim::rand::random::<u64>() % (hi - lo + 1))
    } else if chance(f.duplicate) {
        Fate::Duplicate
    } else {
        return Fate::Deliver;
    };
    let what = what();
    recorder.event(match fate {
        Fate::Drop => Event::Drop { id: corr, what },
        Fate::Delay(d) => Event::Delay {
            id: corr,
            until: now + d,
            what,
        },
        Fate::Duplicate => Event::Duplicate {
            id: corr,
            copy: recorder.next_corr(),
            what,
        },
        Fate::Deliver => unreachable!("returned above"),
    });
    fate
}
