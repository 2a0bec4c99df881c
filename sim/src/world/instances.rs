//! Service instances: start, crash, restart, pause, resume; stepping their clients.
//!
//! An instance is a process of a service: a set of clients built afresh by its factory at
//! every start. A crash drops the clients (and the messages on their way to this
//! incarnation); a restart builds new ones under a new incarnation number, so that
//! responses to the dead incarnation are recognised and dropped. A paused instance keeps
//! its clients but neither steps nor receives until it resumes.

use super::network::Endpoint;
use super::{Action, StoreContents, World};
use crate::choice::{Chooser, ReplayDiverged};
use crate::client::{Client, Env, Metadata, StoreQuery, StoreUnavailable};
use crate::protocol::Millis;
use crate::trace::Event;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds the clients of an instance, afresh at start and at every restart.
pub type InstanceFactory = Arc<dyn Fn(&str) -> Vec<Box<dyn Client>> + Send + Sync>;

/// One process of a service.
#[derive(Clone)]
pub struct InstanceSpec {
    /// Unique name, e.g. `product-service-0`.
    pub name: String,
    pub build: InstanceFactory,
    /// Whether random faults may crash or pause it (the outside world placing orders is
    /// not a service under test).
    pub faulty: bool,
    /// Simulated time at which the instance starts (a later start forces a rebalance).
    pub start_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Status {
    NotStarted,
    Up,
    Paused { until: Millis },
    Down { restart_at: Millis },
}

pub(super) struct Instance {
    pub(super) spec: InstanceSpec,
    pub(super) status: Status,
    /// 0 before the first start, then one more at every (re)start.
    pub(super) incarnation: u32,
    /// `None` only while the client is being stepped.
    pub(super) clients: Vec<Option<Box<dyn Client>>>,
    /// Each client's ready lanes, as last asked (one per client).
    pub(super) readiness: Vec<Readiness>,
}

/// Which lanes of a client were ready at `at`. [`Client::ready`] depends on the client's
/// state and the time alone, so the answer holds until time passes or the client is
/// stepped or answered (`World::with_client` forgets it): on the many steps that do
/// neither to it (a delivery to the broker, another client's step), it is not asked again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Readiness {
    at: Option<Millis>,
    /// Bit `lane` set: that lane was ready.
    lanes: u64,
}

/// Most lanes a client may have ([`Readiness::lanes`] holds one bit each).
const MAX_LANES: usize = 64;

/// The lanes of `client` ready at `now`, one bit each.
fn ready_lanes(client: &dyn Client, now: Millis) -> u64 {
    let lanes = client.lanes();
    assert!(
        lanes <= MAX_LANES,
        "{}: {lanes} lanes, more than {MAX_LANES}",
        client.id()
    );
    (0..lanes)
        .filter(|&lane| client.ready(lane, now))
        .fold(0, |bits, lane| bits | 1 << lane)
}

impl Instance {
    pub(super) fn new(spec: InstanceSpec) -> Instance {
        Instance {
            spec,
            status: Status::NotStarted,
            incarnation: 0,
            clients: Vec::new(),
            readiness: Vec::new(),
        }
    }

    /// The instance's own invariants, between two scheduler steps.
    pub(super) fn check_invariants(&self) {
        assert_eq!(
            self.readiness.len(),
            self.clients.len(),
            "{}: readiness kept for other clients",
            self.spec.name
        );
        match self.status {
            Status::NotStarted => {
                assert_eq!(self.incarnation, 0, "{}: started before", self.spec.name);
                assert!(
                    self.clients.is_empty(),
                    "{}: clients before start",
                    self.spec.name
                );
            }
            Status::Down { .. } => {
                assert!(
                    self.incarnation >= 1,
                    "{}: down before start",
                    self.spec.name
                );
                assert!(
                    self.clients.is_empty(),
                    "{}: a dead process has clients",
                    self.spec.name
                );
            }
            Status::Up | Status::Paused { .. } => {
                assert!(
                    self.incarnation >= 1,
                    "{}: running unstarted",
                    self.spec.name
                );
                assert!(
                    self.clients.iter().all(Option::is_some),
                    "{}: a client was not put back after its step",
                    self.spec.name
                );
            }
        }
    }
}

/// Interactive queries over every running client but the one being stepped.
struct Iq<'a> {
    instances: &'a [Instance],
    meta: &'a BTreeMap<String, u32>,
    /// False under the exhaustive search's reduction in a world that did not declare
    /// interactive queries (`World::declare_interactive_queries`): a query is then a bug.
    allowed: bool,
}

impl StoreQuery for Iq<'_> {
    fn query(&self, store: &str, key: &str) -> Result<Option<String>, StoreUnavailable> {
        assert!(
            self.allowed,
            "a client read another instance's store in a world that did not declare \
             interactive queries: the partial-order reduction takes their actions as independent"
        );
        for inst in self.instances {
            if inst.status != Status::Up {
                continue;
            }
            for c in inst.clients.iter().flatten() {
                if let Some(v) = c.query(store, key, self.meta) {
                    return Ok(v);
                }
            }
        }
        Err(StoreUnavailable)
    }
}

impl World {
    pub(super) fn instance_index(&self, name: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.spec.name == name)
    }

    /// Start instance `i` (first start or restart): fresh clients, a new incarnation; with
    /// ephemeral state directories, a process id drawn for this start.
    pub(super) fn start(&mut self, i: usize, chooser: &mut Chooser) -> Result<(), ReplayDiverged> {
        let process_id = if self.config.ephemeral_state_dirs && self.exhaustive.is_some() {
            // The exhaustive search branches on no value draw: a start's own number.
            Some(self.instances[i].incarnation + 1)
        } else if self.config.ephemeral_state_dirs {
            Some(chooser.choose(u32::MAX)?)
        } else {
            None
        };
        let choice = chooser.index();
        let inst = &mut self.instances[i];
        assert!(
            matches!(inst.status, Status::NotStarted | Status::Down { .. }),
            "{}: started while {:?}",
            inst.spec.name,
            inst.status
        );
        let restart = inst.status != Status::NotStarted;
        inst.incarnation += 1;
        inst.status = Status::Up;
        inst.clients = (inst.spec.build)(&inst.spec.name)
            .into_iter()
            .map(|mut c| {
                if let Some(id) = process_id {
                    c.set_process_id(id);
                }
                Some(c)
            })
            .collect();
        inst.readiness = vec![Readiness::default(); inst.clients.len()];
        let name = inst.spec.name.clone();
        if restart {
            self.record(choice, Event::Restart { instance: name });
        }
        Ok(())
    }

    /// Crash instance `i`: its clients are gone; it restarts at `restart_at`.
    pub(super) fn crash(&mut self, i: usize, restart_at: Millis, choice: u64) {
        assert!(restart_at >= self.now, "a restart in the past");
        let inst = &mut self.instances[i];
        assert_eq!(
            inst.status,
            Status::Up,
            "{}: crashed while not up",
            inst.spec.name
        );
        inst.status = Status::Down { restart_at };
        inst.clients.clear();
        inst.readiness.clear();
        let name = inst.spec.name.clone();
        // Messages to the dead incarnation are lost; its requests already sent may still arrive.
        let inc = inst.incarnation;
        self.net.retain(|_, m| !matches!(m.to, Endpoint::Client { instance, incarnation, .. } if instance == i && incarnation == inc));
        self.healed_at = self.healed_at.max(restart_at);
        self.record(choice, Event::Crash { instance: name });
    }

    /// Pause instance `i` until `until`: it neither steps nor receives meanwhile.
    pub(super) fn pause(&mut self, i: usize, until: Millis, choice: u64) {
        assert!(until >= self.now, "a pause that ends in the past");
        assert_eq!(self.instances[i].status, Status::Up, "paused while not up");
        self.instances[i].status = Status::Paused { until };
        self.healed_at = self.healed_at.max(until);
        let name = self.instances[i].spec.name.clone();
        self.record(
            choice,
            Event::Pause {
                instance: name,
                until,
            },
        );
    }

    fn resume(&mut self, i: usize, choice: u64) {
        assert!(matches!(self.instances[i].status, Status::Paused { .. }));
        self.instances[i].status = Status::Up;
        let name = self.instances[i].spec.name.clone();
        self.record(choice, Event::Resume { instance: name });
    }

    /// Starts, restarts and resumes that are due now.
    pub(super) fn instances_due(&mut self, chooser: &mut Chooser) -> Result<(), ReplayDiverged> {
        let now = self.now;
        for i in 0..self.instances.len() {
            match self.instances[i].status {
                Status::NotStarted if now >= self.instances[i].spec.start_at => {
                    self.start(i, chooser)?
                }
                Status::Down { restart_at } if now >= restart_at => self.start(i, chooser)?,
                Status::Paused { until } if now >= until => self.resume(i, chooser.index()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Indices of the running instances that random faults may strike, in order.
    pub(super) fn faulty_instances(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.instances.len())
            .filter(|&i| self.instances[i].spec.faulty && self.instances[i].status == Status::Up)
    }

    /// Push a step action for every ready lane of every running client (asking a client
    /// only when time passed or it changed since it was last asked; in debug and test
    /// builds, a kept answer is checked against the client's own).
    pub(super) fn collect_steps(&mut self) {
        let now = self.now;
        for (i, inst) in self.instances.iter_mut().enumerate() {
            if inst.status != Status::Up {
                continue;
            }
            let clients = inst.clients.iter().zip(inst.readiness.iter_mut());
            for (c, (client, known)) in clients.enumerate() {
                let client = client.as_deref().expect("client present between steps");
                if known.at != Some(now) {
                    *known = Readiness {
                        at: Some(now),
                        lanes: ready_lanes(client, now),
                    };
                } else if cfg!(debug_assertions) {
                    assert_eq!(
                        known.lanes,
                        ready_lanes(client, now),
                        "{}: ready changed without a step, an answer or time passing",
                        client.id()
                    );
                }
                let mut lanes = known.lanes;
                while lanes != 0 {
                    let lane = lanes.trailing_zeros() as usize;
                    lanes &= lanes - 1;
                    self.actions.push(Action::Step {
                        instance: i,
                        client: c,
                        lane,
                    });
                }
            }
        }
    }

    /// Hand client `client` of `instance` an [`Env`] and let `f` act on it.
    pub(super) fn with_client(
        &mut self,
        instance: usize,
        client: usize,
        f: impl FnOnce(&mut dyn Client, &mut Env<'_>),
    ) {
        assert_eq!(
            self.instances[instance].status,
            Status::Up,
            "stepping a stopped client"
        );
        let mut c = self.instances[instance].clients[client]
            .take()
            .expect("client present");
        {
            let iq = Iq {
                instances: &self.instances,
                meta: &self.meta,
                allowed: self.por.is_none() || self.interactive_queries,
            };
            let mut env = Env {
                now: self.now,
                meta: &self.meta as &dyn Metadata,
                iq: &iq,
                events: &mut self.scratch,
                outbox: &mut self.outbox,
                next_corr: &mut self.next_corr,
            };
            f(c.as_mut(), &mut env);
        }
        self.instances[instance].clients[client] = Some(c);
        self.instances[instance].readiness[client] = Readiness::default();
    }

    pub(super) fn step_client(&mut self, instance: usize, client: usize, lane: usize, choice: u64) {
        self.with_client(instance, client, |c, env| c.step(lane, env));
        self.flush_scratch(choice);
        self.flush_outbox(instance, client);
    }

    /// Store contents at the end of the run, per instance.
    pub(super) fn final_stores(&self) -> BTreeMap<String, StoreContents> {
        let mut stores = BTreeMap::new();
        for inst in &self.instances {
            let mut s = BTreeMap::new();
            for c in inst.clients.iter().flatten() {
                s.extend(c.stores());
            }
            stores.insert(inst.spec.name.clone(), s);
        }
        stores
    }
}
