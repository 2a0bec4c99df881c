//! Playing a [`FaultPlan`] on the real processes of a run while its workload plays: the
//! service instances (each its own JVM, restarted under the same name and state
//! directory) and the cluster's brokers. Every fault is recorded with its wall time.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::cluster::Cluster;
use super::faults::{Action, Armed, FaultPlan, LiveFault, Step, Target};
use super::holder::{holder, move_pause, Checked};
use super::java::{JavaProc, Toolchain};
use super::LiveError;
use oversell_sim::Millis;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A service instance: its JVM while it runs, and how to start it again.
pub struct Instance {
    pub name: String,
    /// `live/`'s command (`naive`, `rekeyed`, ...).
    pub command: &'static str,
    /// Its arguments, without `events=`, which is per start.
    pub args: Vec<String>,
    pub proc: Option<JavaProc>,
    /// How often it was started.
    pub starts: u32,
    /// SIGSTOPped and not yet continued.
    pub stopped: bool,
}

impl Instance {
    pub fn new(name: &str, command: &'static str, args: Vec<String>) -> Instance {
        Instance {
            name: name.into(),
            command,
            args,
            proc: None,
            starts: 0,
            stopped: false,
        }
    }

    /// The event log of start `n` (1-based).
    pub fn events_file(dir: &Path, name: &str, n: u32) -> PathBuf {
        dir.join(format!("events-{name}-{n}.jsonl"))
    }

    /// Start it (again): same name, same state directory, a fresh event log.
    pub fn start(&mut self, tc: &Toolchain, dir: &Path) -> Result<(), LiveError> {
        assert!(
            self.proc.is_none(),
            "{} is started while it runs",
            self.name
        );
        self.starts += 1;
        let mut args = self.args.clone();
        let events = Self::events_file(dir, &self.name, self.starts);
        args.push(format!("events={}", events.display()));
        let label = format!("{}.{}", self.name, self.starts);
        self.proc = Some(JavaProc::spawn(tc, &label, 384, self.command, &args, dir)?);
        self.stopped = false;
        Ok(())
    }
}

/// The wall clock in ms since the epoch (what the Java side stamps).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Plays a plan: [`Player::play`] until the driver says `SETTLED`.
pub struct Player<'a> {
    pub tc: &'a Toolchain,
    pub dir: &'a Path,
    pub instances: &'a mut [Instance],
    pub cluster: &'a mut Cluster,
    /// Wall ms of workload time 0.
    pub t0: u64,
    pub pending: Vec<Step>,
    pub armed: Option<Armed>,
    /// A scheduled pause strikes this task's holder ([`super::holder`]).
    pub pause_holder: Option<Checked>,
    pub played: Vec<LiveFault>,
    /// Whether the command was interrupted (Ctrl-C): stop playing.
    pub interrupted: &'a dyn Fn() -> bool,
}

impl<'a> Player<'a> {
    pub fn new(
        tc: &'a Toolchain,
        dir: &'a Path,
        instances: &'a mut [Instance],
        cluster: &'a mut Cluster,
        plan: FaultPlan,
        interrupted: &'a dyn Fn() -> bool,
    ) -> Player<'a> {
        Player {
            tc,
            dir,
            instances,
            cluster,
            t0: 0,
            pending: plan.steps,
            armed: plan.crash_point,
            pause_holder: plan.pause_holder,
            played: Vec::new(),
            interrupted,
        }
    }

    /// Play the faults at their times until `driver` reports `SETTLED` (quiescent or at its
    /// time bound; or `bound` passes).
    pub fn play(&mut self, driver: &mut JavaProc, bound: Duration) -> Result<(), LiveError> {
        let deadline = Instant::now() + bound;
        loop {
            match driver.next_line(Duration::from_millis(10))? {
                Some(line) if line == "SETTLED" => return Ok(()),
                Some(line) => {
                    if let Some(t0) = line.strip_prefix("T0 ") {
                        self.t0 = t0
                            .trim()
                            .parse()
                            .map_err(|_| LiveError::Process(format!("the driver said {line:?}")))?;
                    }
                }
                None => {}
            }
            if Instant::now() > deadline {
                return Err(driver.failure(&format!(
                    "did not report SETTLED within {} s",
                    bound.as_secs()
                )));
            }
            if (self.interrupted)() {
                return Err(LiveError::Process("interrupted".into()));
            }
            if self.t0 > 0 {
                self.tick()?;
            }
        }
    }

    /// Ms after time 0, now.
    fn now(&self) -> Millis {
        wall_ms().saturating_sub(self.t0)
    }

    /// Do what is due; notice instances that halted at their crash point.
    fn tick(&mut self) -> Result<(), LiveError> {
        while self.pending.first().is_some_and(|s| s.at <= self.now()) {
            let step = self.pending.remove(0);
            self.act(&step)?;
        }
        for i in 0..self.instances.len() {
            self.watch(i)?;
        }
        Ok(())
    }

    /// An instance's reports: a crash point fired (restart it later), or it died.
    fn watch(&mut self, i: usize) -> Result<(), LiveError> {
        let inst = &mut self.instances[i];
        let Some(proc) = inst.proc.as_mut() else {
            return Ok(());
        };
        while let Some(line) = proc.try_line() {
            let Some(at) = line.strip_prefix("CRASH-POINT ") else {
                continue;
            };
            let t: u64 = at.trim().parse().unwrap_or_else(|_| wall_ms());
            let armed = self.armed.take().ok_or_else(|| {
                LiveError::Process(format!(
                    "{} halted at a crash point nobody armed",
                    inst.name
                ))
            })?;
            if let Some(p) = inst.proc.take() {
                p.finish(Duration::from_secs(5));
            }
            self.played.push(LiveFault {
                t,
                done: Some(wall_ms()),
                kind: "crash".into(),
                target: inst.name.clone(),
                until: None,
                note: format!(
                    "crash point {} (the instance halted itself)",
                    armed.point.name()
                ),
            });
            let restart = Step {
                at: t.saturating_sub(self.t0) + armed.restart_after,
                action: Action::Restart,
                target: Target::Instance(inst.name.clone()),
                origin: "crash_point",
            };
            let pos = self.pending.partition_point(|s| s.at <= restart.at);
            self.pending.insert(pos, restart);
            return Ok(());
        }
        if !inst.stopped && !proc.alive() {
            return Err(proc.failure("exited during the run"));
        }
        Ok(())
    }

    /// Record a fault issued at `issued` (wall ms) and completed now.
    fn record(
        &mut self,
        issued: u64,
        kind: &str,
        target: String,
        until: Option<u64>,
        note: String,
    ) {
        self.played.push(LiveFault {
            t: issued,
            done: Some(wall_ms()),
            kind: kind.into(),
            target,
            until,
            note,
        });
    }

    fn act(&mut self, step: &Step) -> Result<(), LiveError> {
        let mut note = format!("planned at {} ms ({})", step.at, step.origin);
        let mut step = step.clone();
        if step.action == Action::Stop && step.origin == "schedule" {
            if let Some(checked) = self.pause_holder.clone() {
                note += &self.retarget(&mut step, &checked)?;
            }
        }
        let step = &step;
        match &step.target {
            Target::Broker(node) => {
                let issued = wall_ms();
                let (kind, done) = match step.action {
                    Action::Kill => ("broker-crash", self.cluster.kill(*node)),
                    _ => ("broker-restart", self.cluster.restart(*node)),
                };
                done?;
                self.record(issued, kind, format!("broker-{node}"), None, note);
            }
            Target::Instance(name) => {
                let i = self
                    .instances
                    .iter()
                    .position(|x| &x.name == name)
                    .ok_or_else(|| LiveError::Unsupported(format!("no instance {name} runs")))?;
                self.act_on(i, step, note)?;
            }
        }
        Ok(())
    }

    /// Point a scheduled pause, and the resume that ends it, at whichever instance holds
    /// `checked` now, by the event logs of the instances' current starts; what was chosen,
    /// for the record.
    fn retarget(&mut self, step: &mut Step, checked: &Checked) -> Result<String, LiveError> {
        let mut logs = Vec::new();
        for inst in self.instances.iter().filter(|i| i.proc.is_some()) {
            let file = Instance::events_file(self.dir, &inst.name, inst.starts);
            logs.push((inst.name.clone(), super::run::read_events(&file)?));
        }
        let task = format!("{}'s {}-{}", checked.app, checked.topic, checked.partition);
        let found = holder(
            logs.iter().map(|(n, e)| (n.as_str(), e.as_slice())),
            checked,
        );
        let Target::Instance(named) = step.target.clone() else {
            return Ok(String::new());
        };
        let Some(found) = found else {
            return Ok(format!(
                "; nobody was seen holding {task}: the named instance"
            ));
        };
        if found == named {
            return Ok(format!("; {named}, named, holds {task}"));
        }
        move_pause(step, &mut self.pending, &found);
        Ok(format!("; {found} holds {task}, not the named {named}"))
    }

    fn act_on(&mut self, i: usize, step: &Step, note: String) -> Result<(), LiveError> {
        let name = self.instances[i].name.clone();
        let up = self.instances[i].proc.is_some();
        let stopped = self.instances[i].stopped;
        let skip = match step.action {
            Action::Kill | Action::Stop => !up || (stopped && step.action == Action::Stop),
            Action::Restart => up,
            Action::Cont => !up || !stopped,
        };
        let issued = wall_ms();
        if skip {
            let what = format!("{:?}: {note}", step.action);
            self.record(issued, "skipped", name, None, what);
            return Ok(());
        }
        let inst = &mut self.instances[i];
        match step.action {
            Action::Kill => {
                let mut p = inst.proc.take().expect("up");
                p.signal("KILL")?;
                p.reap();
                inst.stopped = false;
                self.record(issued, "crash", name, None, format!("SIGKILL, {note}"));
            }
            Action::Restart => {
                inst.start(self.tc, self.dir)?;
                self.record(issued, "restart", name, None, note);
            }
            Action::Stop => {
                inst.proc.as_mut().expect("up").signal("STOP")?;
                inst.stopped = true;
                let until = self
                    .pending
                    .iter()
                    .find(|s| s.action == Action::Cont && s.target == step.target)
                    .map(|s| self.t0 + s.at);
                self.record(issued, "pause", name, until, format!("SIGSTOP, {note}"));
            }
            Action::Cont => {
                inst.proc.as_mut().expect("up").signal("CONT")?;
                inst.stopped = false;
                self.record(issued, "resume", name, None, format!("SIGCONT, {note}"));
            }
        }
        Ok(())
    }

    /// After the run: continue what is stopped, so that every instance can be asked for
    /// its stores.
    pub fn heal(&mut self) -> Result<(), LiveError> {
        for i in 0..self.instances.len() {
            if self.instances[i].stopped {
                let step = Step {
                    at: self.now(),
                    action: Action::Cont,
                    target: Target::Instance(self.instances[i].name.clone()),
                    origin: "end of run",
                };
                self.act_on(i, &step, "at the end of the run".into())?;
            }
        }
        Ok(())
    }
}
