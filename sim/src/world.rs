//! The scheduler: one thread, one seeded chooser, the whole world.
//!
//! The world holds the broker, the service instances (each a set of clients), the
//! messages in flight and the faults. At each step it lists what could happen now —
//! deliver a message, step a ready lane of a client, let a millisecond pass — and lets
//! the [`Chooser`] pick one. Faults are choices too: during the fault phase, each
//! step may crash or pause an instance, and each delivery may drop, duplicate or delay
//! its message. When nothing can happen, time jumps to the next deadline. A run ends
//! when the world is quiescent after the fault phase, or at a bound.

use crate::broker::{Broker, GroupState};
use crate::choice::{ChoiceLog, Chooser, ReplayDiverged};
use crate::client::{Client, Env, Metadata, StoreQuery, StoreUnavailable};
use crate::protocol::{Millis, Request, Response};
use crate::streams::describe_request;
use crate::trace::{Event, Trace};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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

/// Random faults. Rates are per mille; durations are inclusive ranges in ms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    /// Chance per scheduler step that a running instance crashes. Default 0.
    pub crash: u32,
    /// Chance per scheduler step that a running instance pauses. Default 0.
    pub pause: u32,
    /// Chance per delivery that the message is lost. Default 0.
    pub drop: u32,
    /// Chance per delivery that the message is delivered twice. Default 0.
    pub duplicate: u32,
    /// Chance per delivery that the message is held back. Default 0.
    pub delay: u32,
    /// Downtime of a crashed instance before it restarts. Default 50..=400.
    pub restart_after: (Millis, Millis),
    /// Length of a pause. Default 200..=1500 (past the default session timeout).
    pub pause_for: (Millis, Millis),
    /// How long a delayed message is held. Default 10..=300.
    pub delay_for: (Millis, Millis),
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            crash: 0,
            pause: 0,
            drop: 0,
            duplicate: 0,
            delay: 0,
            restart_after: (50, 400),
            pause_for: (200, 1500),
            delay_for: (10, 300),
        }
    }
}

impl FaultRates {
    pub fn any(&self) -> bool {
        self.crash + self.pause + self.drop + self.duplicate + self.delay > 0
    }
}

/// A fault at a fixed time, from a scenario's explicit schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduledFault {
    /// Crash an instance at `at`; it restarts `restart_after` ms later.
    Crash {
        at: Millis,
        instance: String,
        restart_after: Millis,
    },
    /// Pause an instance at `at` for `duration` ms (a zombie if longer than its session timeout).
    Pause {
        at: Millis,
        instance: String,
        duration: Millis,
    },
    /// Lose the next `count` produce acknowledgements sent to an instance after `at`.
    DropProduceAck {
        at: Millis,
        instance: String,
        count: u32,
    },
}

impl ScheduledFault {
    pub fn at(&self) -> Millis {
        match self {
            ScheduledFault::Crash { at, .. }
            | ScheduledFault::Pause { at, .. }
            | ScheduledFault::DropProduceAck { at, .. } => *at,
        }
    }
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Random faults happen only before this time (the fault phase); after it, the heal
    /// phase. Default 0 (no random faults).
    pub fault_phase_ms: Millis,
    pub rates: FaultRates,
    pub scheduled: Vec<ScheduledFault>,
    /// The run may stop once quiescent, but not before this time. Default 0.
    pub settle_until: Millis,
    /// Quiescent means: no append or processing for this long, at least this long after
    /// the last fault healed, with every client idle and no consumer group rebalancing.
    /// Keep it above the clients' session timeouts, so that a crashed incarnation's
    /// group member has expired (and its partitions moved) before the run may end.
    /// Default 500.
    pub quiet_ms: Millis,
    /// Hard bound on simulated time. Default 60 000.
    pub max_time: Millis,
    /// Hard bound on scheduler steps. Default 2 000 000.
    pub max_steps: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            fault_phase_ms: 0,
            rates: FaultRates::default(),
            scheduled: Vec::new(),
            settle_until: 0,
            quiet_ms: 500,
            max_time: 60_000,
            max_steps: 2_000_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    NotStarted,
    Up,
    Paused { until: Millis },
    Down { restart_at: Millis },
}

struct Instance {
    spec: InstanceSpec,
    status: Status,
    incarnation: u32,
    clients: Vec<Option<Box<dyn Client>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Broker,
    Client {
        instance: usize,
        client: usize,
        incarnation: u32,
    },
}

#[derive(Clone, Debug)]
enum Payload {
    Request(Request),
    Response(Response),
}

#[derive(Clone, Debug)]
struct Message {
    deliver_at: Millis,
    from: Endpoint,
    to: Endpoint,
    corr: u64,
    payload: Payload,
    what: String,
    /// Name of the client at the other end from the broker.
    client: Arc<str>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Quiescent after the fault phase: every client idle, nothing in flight.
    Quiescent,
    /// Simulated time reached its bound first.
    TimeBound,
    /// The step bound was reached first.
    StepBound,
    /// A replayed choice log did not fit this world.
    Diverged(String),
}

/// The stores of one instance: (store, partition) → key → value.
pub type StoreContents = BTreeMap<(String, u32), BTreeMap<String, String>>;

/// Everything recorded of a run.
pub struct RunResult {
    pub trace: Trace,
    pub choices: ChoiceLog,
    pub outcome: Outcome,
    pub end_time: Millis,
    pub steps: u64,
    /// The broker at the end of the run: logs, markers, committed offsets.
    pub broker: Broker,
    /// Store contents at the end, per instance: (store, partition) → key → value.
    pub stores: BTreeMap<String, StoreContents>,
    /// Time at which the last fault healed (last restart or resume, end of fault phase).
    pub healed_at: Millis,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Deliver(u64),
    Step {
        instance: usize,
        client: usize,
        lane: usize,
    },
    Tick,
}

pub struct World {
    broker: Broker,
    meta: BTreeMap<String, u32>,
    instances: Vec<Instance>,
    net: BTreeMap<u64, Message>,
    next_msg: u64,
    next_corr: u64,
    now: Millis,
    config: WorldConfig,
    scheduled: Vec<ScheduledFault>,
    drop_acks: BTreeMap<String, u32>,
    trace: Trace,
    scratch: Vec<Event>,
    outbox: Vec<(u64, Request)>,
    actions: Vec<Action>,
    last_progress: Millis,
    healed_at: Millis,
    steps: u64,
    /// Consumer groups that clients have joined.
    groups: BTreeSet<String>,
    /// `broker.next_deadline()`, kept up to date after every `handle` and `tick` (the
    /// only calls that change the broker) instead of recomputed at every step.
    broker_deadline: Option<Millis>,
}

/// Interactive queries over every running client but the one being stepped.
struct Iq<'a> {
    instances: &'a [Instance],
    meta: &'a BTreeMap<String, u32>,
}

impl StoreQuery for Iq<'_> {
    fn query(&self, store: &str, key: &str) -> Result<Option<String>, StoreUnavailable> {
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
    pub fn new(broker: Broker, instances: Vec<InstanceSpec>, config: WorldConfig) -> World {
        let meta = broker
            .topics()
            .map(|(name, c)| (name.to_string(), c.partitions))
            .collect();
        let mut names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            instances.len(),
            "instance names must be unique"
        );
        let broker_deadline = broker.next_deadline();
        let mut scheduled = config.scheduled.clone();
        scheduled.sort_by_key(|f| f.at());
        scheduled.reverse(); // pop from the end
        World {
            broker,
            meta,
            instances: instances
                .into_iter()
                .map(|spec| Instance {
                    spec,
                    status: Status::NotStarted,
                    incarnation: 0,
                    clients: Vec::new(),
                })
                .collect(),
            net: BTreeMap::new(),
            next_msg: 0,
            next_corr: 0,
            now: 0,
            scheduled,
            drop_acks: BTreeMap::new(),
            healed_at: config.fault_phase_ms,
            config,
            trace: Trace::default(),
            scratch: Vec::new(),
            outbox: Vec::new(),
            actions: Vec::new(),
            last_progress: 0,
            steps: 0,
            groups: BTreeSet::new(),
            broker_deadline,
        }
    }

    fn instance_index(&self, name: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.spec.name == name)
    }

    fn record(&mut self, choice: u64, event: Event) {
        if matches!(
            event,
            Event::Append { .. } | Event::Process { .. } | Event::Marker { .. }
        ) {
            self.last_progress = self.now;
        }
        self.trace.push(self.now, choice, event);
    }

    fn flush_scratch(&mut self, choice: u64) {
        if self.scratch.is_empty() {
            return;
        }
        // Move the events out (keeping the buffer's capacity for the next step).
        let mut events = std::mem::take(&mut self.scratch);
        for e in events.drain(..) {
            self.record(choice, e);
        }
        self.scratch = events;
    }

    fn start(&mut self, i: usize, choice: u64) {
        let inst = &mut self.instances[i];
        let restart = inst.status != Status::NotStarted;
        inst.incarnation += 1;
        inst.status = Status::Up;
        inst.clients = (inst.spec.build)(&inst.spec.name)
            .into_iter()
            .map(Some)
            .collect();
        let name = inst.spec.name.clone();
        if restart {
            self.record(choice, Event::Restart { instance: name });
        }
    }

    fn crash(&mut self, i: usize, restart_at: Millis, choice: u64) {
        let inst = &mut self.instances[i];
        inst.status = Status::Down { restart_at };
        inst.clients.clear();
        let name = inst.spec.name.clone();
        // Messages to the dead incarnation are lost; its requests already sent may still arrive.
        let inc = inst.incarnation;
        self.net.retain(|_, m| !matches!(m.to, Endpoint::Client { instance, incarnation, .. } if instance == i && incarnation == inc));
        self.healed_at = self.healed_at.max(restart_at);
        self.record(choice, Event::Crash { instance: name });
    }

    fn pause(&mut self, i: usize, until: Millis, choice: u64) {
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

    /// Lifecycle changes that are due: starts, restarts, resumes, scheduled faults.
    fn lifecycle(&mut self, choice: u64) {
        let now = self.now;
        for i in 0..self.instances.len() {
            match self.instances[i].status {
                Status::NotStarted if now >= self.instances[i].spec.start_at => {
                    self.start(i, choice)
                }
                Status::Down { restart_at } if now >= restart_at => self.start(i, choice),
                Status::Paused { until } if now >= until => {
                    self.instances[i].status = Status::Up;
                    let name = self.instances[i].spec.name.clone();
                    self.record(choice, Event::Resume { instance: name });
                }
                _ => {}
            }
        }
        while self.scheduled.last().is_some_and(|f| f.at() <= now) {
            let fault = self.scheduled.pop().expect("checked");
            match fault {
                ScheduledFault::Crash {
                    instance,
                    restart_after,
                    ..
                } => {
                    if let Some(i) = self.instance_index(&instance) {
                        if self.instances[i].status == Status::Up {
                            self.crash(i, now + restart_after, choice);
                        }
                    }
                }
                ScheduledFault::Pause {
                    instance, duration, ..
                } => {
                    if let Some(i) = self.instance_index(&instance) {
                        if self.instances[i].status == Status::Up {
                            self.pause(i, now + duration, choice);
                        }
                    }
                }
                ScheduledFault::DropProduceAck {
                    instance, count, ..
                } => {
                    *self.drop_acks.entry(instance).or_insert(0) += count;
                }
            }
        }
        // `tick` does nothing before the broker's next deadline: skip the call (it walks
        // every transactional id and group) on the many steps where nothing is due.
        if self.broker_deadline.is_some_and(|d| d <= now) {
            self.broker.tick(now, &mut self.scratch);
            self.broker_deadline = self.broker.next_deadline();
            self.flush_scratch(choice);
        }
    }

    fn in_fault_phase(&self) -> bool {
        self.now < self.config.fault_phase_ms
    }

    fn collect_actions(&mut self) {
        self.actions.clear();
        for (id, m) in &self.net {
            if m.deliver_at > self.now {
                continue;
            }
            if let Endpoint::Client { instance, .. } = m.to {
                if matches!(self.instances[instance].status, Status::Paused { .. }) {
                    continue;
                }
            }
            self.actions.push(Action::Deliver(*id));
        }
        for (i, inst) in self.instances.iter().enumerate() {
            if inst.status != Status::Up {
                continue;
            }
            for (c, client) in inst.clients.iter().enumerate() {
                let client = client.as_ref().expect("client present between steps");
                for lane in 0..client.lanes() {
                    if client.ready(lane, self.now) {
                        self.actions.push(Action::Step {
                            instance: i,
                            client: c,
                            lane,
                        });
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Millis> {
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
        t.map(|t| t.max(self.now + 1))
    }

    fn quiescent(&self) -> bool {
        self.now >= self.config.settle_until
            && self.now >= self.healed_at + self.config.quiet_ms
            && self.now >= self.last_progress + self.config.quiet_ms
            && self.scheduled.is_empty()
            && self.net.is_empty()
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
    }

    /// Why the world is not quiescent: for a run that ended at a bound.
    fn why_not_quiescent(&self) -> String {
        let mut reasons = Vec::new();
        let open = self.broker.open_transactions();
        if !open.is_empty() {
            reasons.push(format!("open transactions: {}", open.join(", ")));
        }
        for inst in &self.instances {
            if inst.status != Status::Up {
                reasons.push(format!("{} is {:?}", inst.spec.name, inst.status));
            }
            for c in inst.clients.iter().flatten() {
                if !c.idle() {
                    reasons.push(format!("{} is busy", c.name()));
                }
            }
        }
        if self.now < self.last_progress + self.config.quiet_ms {
            reasons.push(format!("last progress at {}ms", self.last_progress));
        }
        format!(
            "run ended at a bound, not quiescent: {}",
            reasons.join("; ")
        )
    }

    /// Run to the end with a fresh seeded chooser.
    pub fn run_seed(self, seed: u64) -> RunResult {
        self.run(Chooser::seeded(seed))
    }

    /// Run to the end, drawing every choice from `chooser`.
    pub fn run(mut self, mut chooser: Chooser) -> RunResult {
        let outcome = loop {
            match self.step(&mut chooser) {
                Ok(None) => continue,
                Ok(Some(outcome)) => break outcome,
                Err(d) => break Outcome::Diverged(format!("at choice {}: {}", d.index, d.detail)),
            }
        };
        if matches!(outcome, Outcome::TimeBound | Outcome::StepBound) {
            let text = self.why_not_quiescent();
            let choice = chooser.index();
            self.record(
                choice,
                Event::Note {
                    client: "scheduler".into(),
                    text,
                },
            );
        }
        let mut stores = BTreeMap::new();
        for inst in &self.instances {
            let mut s = BTreeMap::new();
            for c in inst.clients.iter().flatten() {
                s.extend(c.stores());
            }
            stores.insert(inst.spec.name.clone(), s);
        }
        RunResult {
            trace: self.trace,
            choices: chooser.into_log(),
            outcome,
            end_time: self.now,
            steps: self.steps,
            broker: self.broker,
            stores,
            healed_at: self.healed_at,
        }
    }

    /// One scheduler step. `Ok(Some(_))` when the run is over.
    fn step(&mut self, chooser: &mut Chooser) -> Result<Option<Outcome>, ReplayDiverged> {
        let choice = chooser.index();
        self.lifecycle(choice);
        if self.now >= self.config.max_time {
            return Ok(Some(Outcome::TimeBound));
        }
        if self.steps >= self.config.max_steps {
            return Ok(Some(Outcome::StepBound));
        }
        if self.now >= self.config.fault_phase_ms && self.quiescent() {
            return Ok(Some(Outcome::Quiescent));
        }
        self.steps += 1;
        if self.in_fault_phase() {
            self.maybe_instance_fault(chooser)?;
        }
        self.collect_actions();
        if self.actions.is_empty() {
            match self.next_deadline() {
                Some(t) => self.now = t,
                None => self.now = self.config.max_time,
            }
            return Ok(None);
        }
        self.actions.push(Action::Tick);
        let pick = chooser.choose(self.actions.len() as u32)? as usize;
        let choice = chooser.index();
        match self.actions[pick] {
            Action::Tick => self.now += 1,
            Action::Deliver(id) => self.deliver(id, chooser, choice)?,
            Action::Step {
                instance,
                client,
                lane,
            } => self.step_client(instance, client, lane, choice),
        }
        Ok(None)
    }

    /// Indices of the running instances that random faults may strike, in order.
    fn faulty_instances(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.instances.len())
            .filter(|&i| self.instances[i].spec.faulty && self.instances[i].status == Status::Up)
    }

    fn maybe_instance_fault(&mut self, chooser: &mut Chooser) -> Result<(), ReplayDiverged> {
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

    fn deliver(
        &mut self,
        id: u64,
        chooser: &mut Chooser,
        choice: u64,
    ) -> Result<(), ReplayDiverged> {
        let net_faults = self.in_fault_phase() && {
            let r = &self.config.rates;
            r.drop + r.duplicate + r.delay > 0
        };
        if net_faults {
            let rates = self.config.rates.clone();
            if chooser.chance(rates.drop)? {
                let m = self.net.remove(&id).expect("message in flight");
                self.record(choice, Event::Drop { id, what: m.what });
                return Ok(());
            }
            if chooser.chance(rates.delay)? {
                let d = pick_range(chooser, rates.delay_for)?;
                let until = self.now + d;
                let m = self.net.get_mut(&id).expect("message in flight");
                m.deliver_at = until;
                let what = m.what.clone();
                self.record(choice, Event::Delay { id, until, what });
                return Ok(());
            }
            if chooser.chance(rates.duplicate)? {
                let copy = self.next_msg;
                self.next_msg += 1;
                let m = self.net.get(&id).expect("message in flight").clone();
                let what = m.what.clone();
                self.net.insert(copy, m);
                self.record(choice, Event::Duplicate { id, copy, what });
            }
        }
        let m = self.net.remove(&id).expect("message in flight");
        match (m.to, m.payload) {
            (Endpoint::Broker, Payload::Request(request)) => {
                if let Request::JoinGroup { group, .. } = &request {
                    if !self.groups.contains(group) {
                        self.groups.insert(group.clone());
                    }
                }
                let name = m.client.to_string();
                self.record(
                    choice,
                    Event::Deliver {
                        id,
                        from: name.clone(),
                        to: "broker".into(),
                        what: m.what.clone(),
                    },
                );
                let response = self
                    .broker
                    .handle(self.now, &name, request, &mut self.scratch);
                self.broker_deadline = self.broker.next_deadline();
                self.flush_scratch(choice);
                let what = format!("re:{}", m.what);
                self.enqueue(
                    Endpoint::Broker,
                    m.from,
                    m.corr,
                    Payload::Response(response),
                    what,
                    m.client,
                );
            }
            (
                Endpoint::Client {
                    instance,
                    client,
                    incarnation,
                },
                Payload::Response(response),
            ) => {
                let inst = &self.instances[instance];
                if inst.incarnation != incarnation || inst.status != Status::Up {
                    self.record(
                        choice,
                        Event::Drop {
                            id,
                            what: format!("{} (receiver gone)", m.what),
                        },
                    );
                    return Ok(());
                }
                let name = inst.spec.name.clone();
                if matches!(response, Response::Produce(_)) {
                    if let Some(n) = self.drop_acks.get_mut(&name) {
                        if *n > 0 {
                            *n -= 1;
                            self.record(
                                choice,
                                Event::Drop {
                                    id,
                                    what: format!("{} (scheduled)", m.what),
                                },
                            );
                            return Ok(());
                        }
                    }
                }
                let to = m.client.to_string();
                self.record(
                    choice,
                    Event::Deliver {
                        id,
                        from: "broker".into(),
                        to,
                        what: m.what,
                    },
                );
                self.with_client(instance, client, |c, env| {
                    c.on_response(m.corr, response, env)
                });
                self.flush_scratch(choice);
                self.flush_outbox(instance, client);
            }
            _ => unreachable!("requests go to the broker, responses to clients"),
        }
        Ok(())
    }

    fn enqueue(
        &mut self,
        from: Endpoint,
        to: Endpoint,
        corr: u64,
        payload: Payload,
        what: String,
        client: Arc<str>,
    ) {
        let id = self.next_msg;
        self.next_msg += 1;
        self.net.insert(
            id,
            Message {
                deliver_at: self.now,
                from,
                to,
                corr,
                payload,
                what,
                client,
            },
        );
    }

    fn with_client(
        &mut self,
        instance: usize,
        client: usize,
        f: impl FnOnce(&mut dyn Client, &mut Env<'_>),
    ) {
        let mut c = self.instances[instance].clients[client]
            .take()
            .expect("client present");
        {
            let iq = Iq {
                instances: &self.instances,
                meta: &self.meta,
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
    }

    fn flush_outbox(&mut self, instance: usize, client: usize) {
        let incarnation = self.instances[instance].incarnation;
        let from = Endpoint::Client {
            instance,
            client,
            incarnation,
        };
        if self.outbox.is_empty() {
            return;
        }
        let name: Arc<str> = Arc::from(
            self.instances[instance].clients[client]
                .as_ref()
                .expect("client present")
                .name(),
        );
        let out = std::mem::take(&mut self.outbox);
        for (corr, request) in out {
            let what = describe_request(&request);
            self.enqueue(
                from,
                Endpoint::Broker,
                corr,
                Payload::Request(request),
                what,
                name.clone(),
            );
        }
    }

    fn step_client(&mut self, instance: usize, client: usize, lane: usize, choice: u64) {
        self.with_client(instance, client, |c, env| c.step(lane, env));
        self.flush_scratch(choice);
        self.flush_outbox(instance, client);
    }
}

fn pick_range(chooser: &mut Chooser, (lo, hi): (Millis, Millis)) -> Result<Millis, ReplayDiverged> {
    if hi <= lo {
        return Ok(lo);
    }
    let span = (hi - lo + 1).min(u64::from(u32::MAX)) as u32;
    Ok(lo + u64::from(chooser.choose(span)?))
}
