//! The scheduler: one thread, one seeded chooser, the whole world.
//!
//! The world holds the broker, the service instances (each a set of clients), the
//! messages in flight and the faults. At each step it lists what could happen now —
//! deliver a message, step a ready lane of a client, let a millisecond pass — and lets
//! the [`Chooser`] pick one. Faults are choices too: during the fault phase, each
//! step may crash or pause an instance, and each delivery may drop, duplicate or delay
//! its message. When nothing can happen, time jumps to the next deadline. A run ends
//! when the world is quiescent after the fault phase, or at a bound.
//!
//! - `mod.rs` — the step loop, the run and what it records;
//! - `quiescence.rs` — when the world is quiet, and the next deadline;
//! - `network.rs` — messages in flight, drop / duplicate / delay;
//! - `faults.rs` — random and scheduled faults, fault phase and heal phase;
//! - `instances.rs` — instances: start, crash, restart, pause, resume, client steps.

mod brokers;
mod config;
mod exhaustive;
mod faults;
mod instances;
mod network;
mod overlap;
mod pct;
mod por;
mod quiescence;
mod snapshot;

pub use config::{FaultRates, ScheduledFault, WorldConfig};
pub use instances::{InstanceFactory, InstanceSpec};
pub use pct::{PctStats, Strategy};

use crate::broker::{Broker, BrokerId, FollowerFetch, PendingMarker};
use crate::choice::{ChoiceLog, Chooser, ReplayDiverged};
use crate::protocol::{Millis, Request};
use crate::state_hash::Cached;
use crate::trace::{Event, Peer, Trace};
use instances::Instance;
use network::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;

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
    /// What a PCT run's probability bound is computed from (`None` under random).
    pub pct: Option<PctStats>,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Deliver(u64),
    Step {
        instance: usize,
        client: usize,
        lane: usize,
    },
    /// Write the `n`th of the broker's pending transaction markers.
    Marker(usize),
    /// The `n`th follower fetch of this step (several brokers only).
    Replicate(usize),
    Tick,
}

/// The exhaustive search's visitor: `(fingerprint, the chooser as far as it went, sleep
/// set)` → go on. The chooser gives the depth (`Chooser::index`) and the deviations from
/// the default schedule so far (`Chooser::deviations`).
pub type Visit<'a> = dyn FnMut(Option<u64>, &Chooser, &[u64]) -> bool + 'a;

pub struct World {
    /// The broker, its state digest kept between steps that leave it alone (the
    /// exhaustive search's fingerprint, `exhaustive.rs`).
    broker: Cached<Broker>,
    meta: BTreeMap<String, u32>,
    instances: Vec<Instance>,
    /// Messages in flight, by id (ids are never reused).
    net: BTreeMap<u64, Message>,
    next_msg: u64,
    next_corr: u64,
    now: Millis,
    config: WorldConfig,
    /// Scheduled faults still to come, the next one last.
    scheduled: Vec<ScheduledFault>,
    /// Produce acknowledgements still to lose, per instance name.
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
    /// The broker's pending transaction markers at this step, in its order.
    markers: Vec<PendingMarker>,
    /// `broker.next_deadline()`, kept up to date after every `handle` and `tick` (the
    /// only calls that change the broker) instead of recomputed at every step.
    broker_deadline: Option<Millis>,
    /// The follower fetches possible at this step, in the broker's order.
    fetches: Vec<FollowerFetch>,
    /// Answers the broker holds back (`acks=all` under replication), by its id.
    held: BTreeMap<u64, brokers::Held>,
    /// Crashed brokers and when they restart.
    brokers_down: BTreeMap<BrokerId, Millis>,
    /// Partitioned brokers, with the time their partition heals.
    partitioned: BTreeMap<BrokerId, Millis>,
    /// Slow followers, with the time their fetches resume.
    slowed: BTreeMap<BrokerId, Millis>,
    /// The run's chance per mille that a random broker fault brings a follow-up, once
    /// drawn (`overlap.rs`).
    overlap: Option<u32>,
    /// Follow-up broker faults still to strike, by time (`overlap.rs`).
    follow_ups: Vec<Millis>,
    /// Whether events are kept in the trace ([`World::without_trace`] turns it off).
    tracing: bool,
    /// The PCT scheduler's state, under [`Strategy::Pct`].
    pct: Option<pct::Pct>,
    /// The fault budget, under [`Strategy::Exhaustive`].
    exhaustive: Option<exhaustive::Budget>,
    /// The exhaustive search's partial-order reduction, when on (see `por.rs`).
    por: Option<por::Por>,
    /// Whether clients read other instances' stores ([`World::declare_interactive_queries`]).
    interactive_queries: bool,
}

/// How a run under the exhaustive search's guided chooser ended.
pub enum Guided {
    /// It ran to its end.
    Ended {
        result: Box<RunResult>,
        arities: Vec<u32>,
        /// Whether each choice was a fault point (`Chooser::fault_points`).
        faults: Vec<bool>,
    },
    /// It reached a state the search had seen (or a depth it does not search), or
    /// (`blocked`) a step whose every action the reduction put to sleep.
    Pruned {
        choices: ChoiceLog,
        arities: Vec<u32>,
        faults: Vec<bool>,
        blocked: bool,
    },
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
            broker: Cached::new(broker),
            meta,
            instances: instances.into_iter().map(Instance::new).collect(),
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
            markers: Vec::new(),
            broker_deadline,
            fetches: Vec::new(),
            held: BTreeMap::new(),
            brokers_down: BTreeMap::new(),
            partitioned: BTreeMap::new(),
            slowed: BTreeMap::new(),
            overlap: None,
            follow_ups: Vec::new(),
            tracing: true,
            pct: None,
            exhaustive: None,
            por: None,
            interactive_queries: false,
        }
    }

    /// Keep no trace: the same run, its events dropped as they happen (the run's
    /// [`RunResult::trace`] stays empty). For measuring the state machines alone — a
    /// benchmark's floor, with [`Chooser::without_log`] — never for a run to be judged.
    pub fn without_trace(mut self) -> World {
        self.tracing = false;
        self
    }

    fn record(&mut self, choice: u64, event: Event) {
        if matches!(
            event,
            Event::Append { .. } | Event::Process { .. } | Event::Marker { .. }
        ) {
            self.last_progress = self.now;
        }
        if self.tracing {
            self.trace.push(self.now, choice, event);
        }
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

    /// Everything that is due now: instance starts, restarts and resumes, scheduled
    /// faults, the broker's timeouts.
    fn lifecycle(&mut self, chooser: &mut Chooser) -> Result<(), ReplayDiverged> {
        let choice = chooser.index();
        self.instances_due(chooser)?;
        if !(self.brokers_down.is_empty() && self.partitioned.is_empty() && self.slowed.is_empty())
        {
            self.brokers_due(choice);
        }
        self.scheduled_due(chooser)?;
        // `tick` does nothing before the broker's next deadline: skip the call (it walks
        // every transactional id and group) on the many steps where nothing is due.
        if self.broker_deadline.is_some_and(|d| d <= self.now) {
            self.broker.tick(self.now, &mut self.scratch);
            self.after_broker_change(choice);
        }
        Ok(())
    }

    /// Run to the end with a fresh seeded chooser.
    /// The broker before the run starts: for settings the harness applies to every
    /// design's world alike (e.g. the transaction protocol version).
    pub fn broker_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }

    /// Kafka Streams' state directories do not survive a restart: every start of an
    /// instance draws a process id (see [`WorldConfig::ephemeral_state_dirs`]).
    pub fn set_ephemeral_state_dirs(&mut self, ephemeral: bool) {
        assert_eq!(self.now, 0, "set before the run");
        self.config.ephemeral_state_dirs = ephemeral;
    }

    /// How the scheduler picks among the actions that may happen (default random).
    pub fn set_strategy(&mut self, strategy: Strategy) {
        assert_eq!(self.now, 0, "set before the run");
        self.pct = match strategy {
            Strategy::Random | Strategy::Exhaustive { .. } => None,
            Strategy::Pct { depth, steps } => Some(pct::Pct::new(depth, steps)),
        };
        self.exhaustive = exhaustive::Budget::of(strategy);
        if let Some(b) = self.exhaustive.as_mut() {
            let rates = &self.config.rates;
            b.net_kinds = (rates.delay > 0, rates.duplicate > 0);
        }
        self.por = match strategy {
            Strategy::Exhaustive { reduce: true, .. } => {
                Some(por::Por::new(self.interactive_queries))
            }
            _ => None,
        };
        if self.exhaustive.is_some() {
            // No network or broker fault is a branch of the search.
            let rates = &mut self.config.rates;
            (rates.drop, rates.duplicate, rates.delay) = (0, 0, 0);
            (rates.crash, rates.pause, rates.broker_crash) = (0, 0, 0);
            rates.broker_overlap = 0;
        }
    }

    pub fn run_seed(self, seed: u64) -> RunResult {
        self.run(Chooser::seeded(seed))
    }

    /// Run to the end, drawing every choice from `chooser`.
    ///
    /// A panic inside the kernel (a broken invariant) is raised again with the seed (or
    /// "a replayed choice log"), the simulated time, the step and the choice index, so
    /// that the failing run can be replayed.
    pub fn run(mut self, mut chooser: Chooser) -> RunResult {
        let outcome = self.run_loop(&mut chooser);
        self.finish(outcome, chooser)
    }

    /// Run with the exhaustive search's guided chooser: after every step past the
    /// chooser's prefix, `visit(fingerprint, choices made, sleep set)` says whether to go
    /// on (a world whose state cannot be fingerprinted passes `None`; the sleep set, the
    /// keys of the actions the reduction put to sleep, is empty without the reduction). A
    /// kernel panic is raised as [`World::run`] raises it.
    pub fn run_guided(self, chooser: Chooser, visit: &mut Visit<'_>) -> Guided {
        self.run_guided_with(chooser, visit, &mut |_: &World, _: &Chooser| {})
    }

    /// [`World::run_guided`], with `snapshot(world, chooser)` called at every step
    /// boundary past the prefix where the run goes on (the world between two steps, the
    /// chooser as far as it went: the search copies both to resume the run there).
    pub fn run_guided_with(
        mut self,
        mut chooser: Chooser,
        visit: &mut Visit<'_>,
        snapshot: &mut dyn FnMut(&World, &Chooser),
    ) -> Guided {
        assert!(
            self.exhaustive.is_some(),
            "a guided run is an exhaustive one"
        );
        let mut pruned = false;
        let outcome = self.run_loop_with(&mut chooser, &mut |w: &World, c: &Chooser| {
            let sleep = w.por.as_ref().map(por::Por::sleep_keys).unwrap_or_default();
            pruned = c.past_prefix() && !visit(w.fingerprint(), c, &sleep);
            if c.past_prefix() && !pruned {
                snapshot(w, c);
            }
            !pruned
        });
        let arities = chooser.arities().to_vec();
        let faults = chooser.fault_points().to_vec();
        let blocked = self.por.as_ref().is_some_and(|p| p.blocked);
        if pruned || blocked {
            let choices = chooser.into_log();
            return Guided::Pruned {
                choices,
                arities,
                faults,
                blocked,
            };
        }
        let result = Box::new(self.finish(outcome, chooser));
        Guided::Ended {
            result,
            arities,
            faults,
        }
    }

    fn finish(mut self, outcome: Outcome, chooser: Chooser) -> RunResult {
        if matches!(outcome, Outcome::TimeBound | Outcome::StepBound) {
            let text = self.why_not_quiescent();
            let choice = chooser.index();
            let client = Peer::Scheduler;
            self.record(choice, Event::Note { client, text });
        }
        RunResult {
            stores: self.final_stores(),
            trace: self.trace,
            choices: chooser.into_log(),
            outcome,
            end_time: self.now,
            steps: self.steps,
            broker: self.broker.into_inner(),
            healed_at: self.healed_at,
            pct: self.pct.as_ref().map(pct::Pct::stats),
        }
    }

    fn run_loop(&mut self, chooser: &mut Chooser) -> Outcome {
        self.run_loop_with(chooser, &mut |_: &World, _: &Chooser| true)
    }

    /// The step loop; `go_on` is asked after every step (a `false` ends the run, its
    /// outcome then meaningless).
    fn run_loop_with(
        &mut self,
        chooser: &mut Chooser,
        go_on: &mut dyn FnMut(&World, &Chooser) -> bool,
    ) -> Outcome {
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| loop {
            match self.step(chooser) {
                Ok(None) if go_on(self, chooser) => continue,
                Ok(None) => break Outcome::StepBound,
                Ok(Some(outcome)) => break outcome,
                Err(d) => break Outcome::Diverged(format!("at choice {}: {}", d.index, d.detail)),
            }
        }));
        match caught {
            Ok(outcome) => outcome,
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                let origin = match chooser.seed() {
                    Some(seed) => format!("seed {seed}"),
                    None => "a replayed choice log".to_string(),
                };
                panic!(
                    "kernel panic in the run of {origin}, at {}ms, step {}, choice {}: {what}",
                    self.now,
                    self.steps,
                    chooser.index()
                )
            }
        }
    }

    /// One scheduler step. `Ok(Some(_))` when the run is over.
    fn step(&mut self, chooser: &mut Chooser) -> Result<Option<Outcome>, ReplayDiverged> {
        let before = self.now;
        let mark = self.por.is_some().then(|| self.lifecycle_mark());
        self.lifecycle(chooser)?;
        if let Some(end) = self.end_of_run() {
            return Ok(Some(end));
        }
        self.steps += 1;
        if let Some(mark) = mark {
            if mark != self.lifecycle_mark() {
                self.por.as_mut().expect("checked").wake_all();
            }
            return self.por_step(chooser, before);
        }
        if self.in_fault_phase() && self.exhaustive.is_some() {
            self.exhaustive_fault(chooser)?;
        } else if self.in_fault_phase() {
            self.maybe_instance_fault(chooser)?;
            self.maybe_broker_fault(chooser)?;
        }
        self.collect_actions();
        if self.actions.is_empty() {
            self.now = self.next_deadline().unwrap_or(self.config.max_time);
        } else {
            if self.exhaustive.is_none() {
                // The exhaustive search offers no time-passing action (see exhaustive.rs).
                self.actions.push(Action::Tick);
            }
            let pick = self.pick_action(chooser)?;
            let choice = chooser.index();
            self.take_action(pick, chooser, choice)?;
        }
        assert!(self.now >= before, "time went back");
        self.check_invariants();
        Ok(None)
    }

    /// Every action possible now, in a fixed order.
    fn collect_actions(&mut self) {
        self.actions.clear();
        self.collect_deliveries();
        self.collect_steps();
        self.collect_markers();
        self.collect_fetches();
    }

    /// Take action `pick` of this step.
    fn take_action(
        &mut self,
        pick: usize,
        chooser: &mut Chooser,
        choice: u64,
    ) -> Result<(), ReplayDiverged> {
        match self.actions[pick] {
            Action::Tick => self.now += 1,
            Action::Deliver(id) => self.deliver(id, chooser, choice)?,
            Action::Step {
                instance,
                client,
                lane,
            } => self.step_client(instance, client, lane, choice),
            Action::Marker(n) => self.write_marker(n, choice),
            Action::Replicate(n) => self.replicate(n, choice),
        }
        Ok(())
    }

    /// The action to take. Random: one draw among all. PCT: the same draw decides
    /// whether time passes; otherwise the highest-priority thread's action goes.
    fn pick_action(&mut self, chooser: &mut Chooser) -> Result<usize, ReplayDiverged> {
        let n = self.actions.len();
        let drawn = chooser.choose(n as u32)? as usize;
        if self.pct.is_none() || matches!(self.actions[drawn], Action::Tick) {
            return Ok(drawn);
        }
        debug_assert!(matches!(self.actions[n - 1], Action::Tick));
        let threads: Vec<pct::Thread> = self.actions[..n - 1]
            .iter()
            .map(|a| self.thread_of(a))
            .collect();
        let pct = self.pct.as_mut().expect("checked");
        pct.pick(&threads, chooser)
    }

    /// The PCT thread of an action: the client that steps, sends or receives.
    fn thread_of(&self, action: &Action) -> pct::Thread {
        use network::Endpoint;
        match *action {
            Action::Step {
                instance, client, ..
            } => (instance, client),
            Action::Deliver(id) => {
                let m = &self.net[&id];
                match (m.from, m.to) {
                    (
                        Endpoint::Client {
                            instance, client, ..
                        },
                        _,
                    )
                    | (
                        _,
                        Endpoint::Client {
                            instance, client, ..
                        },
                    ) => (instance, client),
                    (Endpoint::Broker, Endpoint::Broker) => unreachable!("broker to broker"),
                }
            }
            Action::Marker(_) => pct::COORDINATOR,
            Action::Replicate(_) => pct::REPLICATION,
            Action::Tick => unreachable!("time is not a thread"),
        }
    }

    /// Push a marker action for every transaction marker the broker has yet to write
    /// (none, and no allocation, when no transaction is ending).
    fn collect_markers(&mut self) {
        self.markers.clear();
        if !self.broker.has_pending_markers() {
            return;
        }
        self.markers = self.broker.pending_markers();
        self.actions
            .extend((0..self.markers.len()).map(Action::Marker));
    }

    /// Write the `n`th pending marker: one `WriteTxnMarkers` of the coordinator, at a
    /// moment the seed chose.
    fn write_marker(&mut self, n: usize, choice: u64) {
        let marker = self.markers[n].clone();
        self.broker
            .write_pending_marker(self.now, &marker, &mut self.scratch);
        self.after_broker_change(choice);
    }

    /// Whether the run ends now, and how: a bound, or quiescence after the fault phase.
    fn end_of_run(&self) -> Option<Outcome> {
        if self.now >= self.config.max_time {
            return Some(Outcome::TimeBound);
        }
        if self.steps >= self.config.max_steps {
            return Some(Outcome::StepBound);
        }
        if self.now >= self.config.fault_phase_ms && self.quiescent() {
            self.assert_quiescent_state();
            return Some(Outcome::Quiescent);
        }
        None
    }

    /// The scheduler's own invariants between two steps: every instance consistent, every
    /// message well addressed, the schedule in order. The O(instances + messages) walk
    /// runs in debug and test builds only.
    fn check_invariants(&self) {
        assert!(
            self.last_progress <= self.now,
            "progress recorded in the future"
        );
        assert!(
            self.steps <= self.config.max_steps,
            "stepped past the bound"
        );
        if cfg!(debug_assertions) {
            for inst in &self.instances {
                inst.check_invariants();
            }
            self.check_network();
            self.check_schedule();
        }
    }
}
