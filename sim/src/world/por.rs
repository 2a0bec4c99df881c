//! Partial-order reduction for the exhaustive search: sleep sets over the scheduler's
//! actions, and fault points only where a fault is not equivalent to a later one.
//!
//! **Independence.** Every action has an *actor*: a client step or a delivery to a
//! client belongs to that client's instance (it reads and writes that instance's
//! clients, and puts requests on the wire); a delivery to the broker, a transaction
//! marker and a follower fetch belong to the broker (they read and write the broker and
//! put responses on the wire). Two actions are independent when their actors differ and
//! at least one is the broker, or both are instances, different ones, in a world whose
//! clients make no interactive queries (a query reads another instance's stores;
//! [`World::declare_interactive_queries`], checked at every query). Independent actions
//! commute: the messages in flight are a multiset whose state leaves ids out
//! (`World::fingerprint`), neither action reads what the other writes, neither enables
//! or disables the other (an action changes no time, and readiness depends only on the
//! actor's own state and the time), so both orders reach one state. A crash or pause of
//! instance `i` depends on `i`'s own actions and, with interactive queries, on every
//! instance's actions; it is independent of the rest, the broker's actions included (the
//! broker answers a request the same whether its sender lives or not, and under the
//! exhaustive strategy an answer to a dead incarnation is dropped as it is sent, as a
//! crash drops those already in flight). Time passing, and anything the scheduler's lifecycle does
//! (starts, restarts, resumes, scheduled faults, broker timeouts), depends on everything.
//!
//! **Sleep sets** (Godefroid, *Partial-Order Methods for the Verification of Concurrent
//! Systems*, ch. 5). At each choice the options are explored in order (the search pops
//! option `v` only after the subtrees of options `0..v`). Option `v` is taken with the
//! sleep set `{x ∈ sleep ∪ options[0..v] : x independent of options[v]}`: a run that
//! takes an action asleep is equivalent (same events, independent ones swapped) to one
//! already searched, so asleep actions are not offered. Time passing, or any lifecycle
//! event, empties the sleep set. When every action the world could take is asleep, the
//! run is *blocked*: everything past it has been searched from an earlier state.
//!
//! **Fault points.** The fault point of a step comes before its action. "No fault" is
//! explored first; a fault `f` is taken with the sleep set `{x ∈ sleep ∪ awake : x
//! independent of f}` (`awake`: the actions the "no fault" branch offers): `f` then `a`
//! is `a` then `f`, searched on the "no fault" branch, where the fault point after `a`
//! offers `f` again (the time, and so the fault phase and the fault's restart or resume
//! time, are the same). A fault is offered only when it is not blocked at once: when,
//! once it struck, no action would be left (time passes: it depends on the fault) or
//! some action left depends on it. A crash is thus moved to the last step before the
//! crashed instance's next own action, or before time passes.
//!
//! **With state matching**, a state is searched again when reached with a sleep set that
//! is not a superset of the one it was searched with (then with the new one: the
//! standard care of combining sleep sets with a state cache), and, in the search for
//! the shortest counterexample, when reached at a smaller depth. The
//! reduction visits every state the unreduced search visits that a run can reach with
//! some action awake (sleep sets prune transitions, not states), minus the states right
//! after a fault that is equivalent to a later one.
//!
//! What the reduction assumes beyond the state: a verdict does not depend on the order of
//! two independent events in the trace (the checker judges the broker's logs, the stores
//! and each client's own events), as state matching already assumes that a verdict does
//! not depend on how a state was reached.

use super::network::{Endpoint, Payload};
use super::{Action, Outcome, World};
use crate::choice::{Chooser, ReplayDiverged};
use crate::protocol::Millis;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Who an action belongs to, for the independence relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Footprint {
    /// `None`: the broker; `Some(i)`: instance `i`.
    actor: Option<usize>,
}

/// The reduction's state along one run.
#[derive(Clone, Debug, Default)]
pub(super) struct Por {
    /// Whether clients read other instances' stores (interactive queries).
    pub(super) queries: bool,
    /// The actions asleep, by key.
    sleep: BTreeMap<u64, Footprint>,
    /// This step's actions: key and footprint, by index in `World::actions`.
    keyed: Vec<(u64, Footprint)>,
    /// The indices (in `World::actions`) of the actions awake at this step, in order.
    pub(super) awake: Vec<usize>,
    /// Set when every action of a step was asleep: the run ends there.
    pub(super) blocked: bool,
}

impl Por {
    pub(super) fn new(queries: bool) -> Por {
        Por {
            queries,
            ..Por::default()
        }
    }

    fn independent(&self, a: Footprint, b: Footprint) -> bool {
        match (a.actor, b.actor) {
            (None, None) => false,
            (Some(i), Some(j)) => i != j && !self.queries,
            _ => true,
        }
    }

    /// Whether a crash or pause of `instance` and action `a` are independent.
    fn independent_of_fault(&self, instance: usize, a: Footprint) -> bool {
        match a.actor {
            Some(j) => j != instance && !self.queries,
            None => true,
        }
    }

    /// The sleep set's keys, in order (for the state cache).
    pub(super) fn sleep_keys(&self) -> Vec<u64> {
        self.sleep.keys().copied().collect()
    }

    /// Time passed or the lifecycle acted: every action is awake again.
    pub(super) fn wake_all(&mut self) {
        self.sleep.clear();
    }

    /// Option `v` of the awake actions is taken: the sleep set of the next step.
    pub(super) fn take(&mut self, v: usize) {
        let (_, taken) = self.keyed[self.awake[v]];
        for &a in &self.awake[..v] {
            let (key, f) = self.keyed[a];
            self.sleep.insert(key, f);
        }
        let sleep = std::mem::take(&mut self.sleep);
        self.sleep = sleep
            .into_iter()
            .filter(|(_, f)| self.independent(*f, taken))
            .collect();
    }

    /// Whether a fault of `instance` is worth offering: once it struck, no action would
    /// be left, or one would be left that depends on it.
    pub(super) fn fault_useful(&self, instance: usize) -> bool {
        let mut left = self.keyed.iter().filter(|(_, f)| f.actor != Some(instance));
        let mut left2 = left.clone();
        left.next().is_none() || left2.any(|(_, f)| !self.independent_of_fault(instance, *f))
    }

    /// A fault of `instance` struck after this step's actions were keyed: the awake ones
    /// go to sleep with the rest, and what depends on the fault wakes.
    pub(super) fn fault(&mut self, instance: usize) {
        for &a in &self.awake {
            let (key, f) = self.keyed[a];
            self.sleep.insert(key, f);
        }
        let sleep = std::mem::take(&mut self.sleep);
        self.sleep = sleep
            .into_iter()
            .filter(|(_, f)| self.independent_of_fault(instance, *f))
            .collect();
    }
}

/// A message's content key: when it is due, its ends and what it carries (no ids).
pub(super) fn content_key(at: Millis, from: Endpoint, to: Endpoint, payload: &Payload) -> u64 {
    match payload {
        Payload::Request(r) => key_of(format_args!("{at} {from:?}>{to:?} {r:?}")),
        Payload::Response(r) => key_of(format_args!("{at} {from:?}>{to:?} {r:?}")),
    }
}

/// The hash of a written form.
fn key_of(parts: std::fmt::Arguments<'_>) -> u64 {
    let mut h = crate::state_hash::StateHash::new();
    h.write_fmt(parts).expect("writing to a hash");
    h.finish()
}

impl World {
    /// Interactive queries: clients of this world read other instances' stores, so the
    /// exhaustive search's reduction treats every two instances' actions as dependent.
    /// A query in a world that did not declare them panics while the reduction is on.
    pub fn declare_interactive_queries(&mut self) {
        self.interactive_queries = true;
        if let Some(p) = self.por.as_mut() {
            p.queries = true;
        }
    }

    /// Key and footprint every action of this step, and list the awake ones.
    pub(super) fn key_actions(&mut self) {
        let mut keyed = Vec::with_capacity(self.actions.len());
        for a in &self.actions {
            keyed.push(self.action_key(*a));
        }
        let por = self.por.as_mut().expect("reduction on");
        por.awake = (0..keyed.len())
            .filter(|&i| !por.sleep.contains_key(&keyed[i].0))
            .collect();
        por.keyed = keyed;
    }

    /// An action's identity across the steps of a run (and across runs): what it does,
    /// without message or correlation ids; and its footprint.
    fn action_key(&self, action: Action) -> (u64, Footprint) {
        match action {
            Action::Deliver(id) => {
                let m = &self.net[&id];
                let actor = match m.to {
                    Endpoint::Client { instance, .. } => Some(instance),
                    Endpoint::Broker => None,
                };
                let key = match self.lane_of(m.lane_end(), m.corr) {
                    Some(lane) => key_of(format_args!("d{}.{lane}", m.content)),
                    None => key_of(format_args!("d{}.stale", m.content)),
                };
                (key, Footprint { actor })
            }
            Action::Step {
                instance,
                client,
                lane,
            } => {
                let inc = self.instances[instance].incarnation;
                let key = key_of(format_args!("s{instance}.{inc}.{client}.{lane}"));
                let actor = Some(instance);
                (key, Footprint { actor })
            }
            Action::Marker(n) => {
                let key = key_of(format_args!("m{:?}", self.markers[n]));
                (key, Footprint { actor: None })
            }
            Action::Replicate(n) => {
                let key = key_of(format_args!("r{:?}", self.fetches[n]));
                (key, Footprint { actor: None })
            }
            Action::Tick => unreachable!("no time-passing action under the exhaustive search"),
        }
    }
}

impl World {
    /// What the scheduler's lifecycle may change at a step: when it changed, every
    /// action wakes (a start, restart, resume, scheduled fault or broker timeout depends
    /// on everything).
    pub(super) fn lifecycle_mark(&self) -> (usize, u32, usize, usize, bool) {
        let incarnations = self.instances.iter().map(|i| i.incarnation).sum();
        let up = self
            .instances
            .iter()
            .filter(|i| i.status == super::instances::Status::Up)
            .count();
        let brokers = self.brokers_down.len() + self.partitioned.len() + self.slowed.len();
        let tick = self.broker_deadline.is_some_and(|d| d <= self.now);
        (self.scheduled.len(), incarnations, up, brokers, tick)
    }

    /// One scheduler step under the reduction: the actions keyed, the fault point (only
    /// the faults worth offering), then one awake action, or time passes when there is no
    /// action at all; a step whose every action is asleep blocks the run.
    pub(super) fn por_step(
        &mut self,
        chooser: &mut Chooser,
        before: Millis,
    ) -> Result<Option<Outcome>, ReplayDiverged> {
        self.collect_actions();
        self.key_actions();
        if self.in_fault_phase() {
            if let Some(i) = self.exhaustive_fault(chooser)? {
                self.por.as_mut().expect("reduction on").fault(i);
                self.collect_actions();
                self.key_actions();
            }
        }
        let por = self.por.as_mut().expect("reduction on");
        if self.actions.is_empty() {
            por.wake_all();
            self.now = self.next_deadline().unwrap_or(self.config.max_time);
        } else if por.awake.is_empty() {
            por.blocked = true;
            let why = "every action asleep (blocked by the partial-order reduction)";
            return Ok(Some(Outcome::Diverged(why.into())));
        } else {
            let v = chooser.choose(por.awake.len() as u32)? as usize;
            let pick = por.awake[v];
            por.take(v);
            let choice = chooser.index();
            self.take_action(pick, chooser, choice)?;
        }
        assert!(self.now >= before, "time went back");
        self.check_invariants();
        Ok(None)
    }
}
