//! A scenario's faults as actions on real processes: what `oversell live` plays, when,
//! and on which process ([`plan`]), and the record of what it played ([`LiveFault`]).
//!
//! | scenario | played live |
//! |---|---|
//! | `[[faults.schedule]] kind = "crash"` | SIGKILL of the instance's JVM at `at`; the same instance (name, state directory) started again `restart_after` later, so Kafka Streams restores from its checkpoint and changelog as a restarted process does |
//! | `kind = "pause"` | SIGSTOP of the instance's JVM at `at`, SIGCONT `duration` later: every thread stops, heartbeats included, so past the session timeout it is a real zombie |
//! | `[faults] crash = R` / `pause = R` during `phase_ms` | as many SIGKILLs (SIGSTOPs) as the simulator's own runs of the same scenario and design strike on average in the fault phase (seeds 0..[`CALIBRATION_SEEDS`]), at uniformly drawn times of the phase, on uniformly drawn instances, with the rates' downtime (pause length) ranges; drawn from the run's number, so a run's plan is fixed and recorded |
//! | `[faults.live] crash_point = "..."` | the first scheduled `crash` of its instance is played by the instance itself at that point of its processing (it halts once per run), then restarted after the entry's `restart_after` |
//! | `[[faults.live.broker_crash]]` | SIGKILL of broker `broker`'s JVM, restarted on the same log directory and ports `restart_after` later |
//! | `drop_produce_ack`, `[faults] drop`, `duplicate`, `delay` | refused: a real network cannot lose, copy or hold back one chosen message on command |
//!
//! Times are ms after the workload's time 0, as in the scenario.

use super::LiveError;
use crate::designs::Design;
use crate::scenario::{CrashPoint, Scenario};
use oversell_sim::{Event, Millis, ScheduledFault};
use serde::{Deserialize, Serialize};

/// Simulated seeds whose faults calibrate the live mode's random ones.
pub const CALIBRATION_SEEDS: u64 = 20;

/// A process a fault acts on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A service instance, e.g. `product-service-0`.
    Instance(String),
    /// A broker, by node id (1-based).
    Broker(u32),
}

/// What is done to a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// SIGKILL.
    Kill,
    /// Start it again, same name, same directory.
    Restart,
    /// SIGSTOP.
    Stop,
    /// SIGCONT.
    Cont,
}

/// One action at its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: Millis,
    pub action: Action,
    pub target: Target,
    /// Where it comes from, for the record: `schedule`, `random`, `broker_crash`.
    pub origin: &'static str,
}

/// An instance that halts itself at a crash point, and when it is restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Armed {
    pub instance: String,
    pub point: CrashPoint,
    pub restart_after: Millis,
}

/// Every fault of one live run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// In time order.
    pub steps: Vec<Step>,
    pub crash_point: Option<Armed>,
    /// `[faults.live] pause_holder`, with the twin's application reading its topic: a
    /// scheduled pause strikes that task's holder ([`super::holder`]).
    pub pause_holder: Option<super::holder::Checked>,
}

/// One fault as it was played, in the history file (`faults`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveFault {
    /// Wall-clock ms when it was issued (the signal sent, the JVM spawned; for a crash
    /// point, when the instance reported it was about to halt).
    pub t: u64,
    /// Wall-clock ms when the action had completed (the killed process reaped, the
    /// signal delivered, the broker up again); absent in older histories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    /// `crash`, `restart`, `pause`, `resume`, `broker-crash`, `broker-restart`,
    /// `crash-point` (the instance halted itself), or `skipped` (its target was down).
    pub kind: String,
    /// The instance's name, or `broker-<node>`.
    pub target: String,
    /// A pause's planned end (wall ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// The planned time (ms after time 0) and origin, or what happened.
    pub note: String,
}

/// The live plan of `scenario`'s faults for run `index` of `design`, on `instances`
/// service instances and `brokers` brokers. Unplayable kinds are an error naming them.
pub fn plan(
    scenario: &Scenario,
    design: &dyn Design,
    instances: &[String],
    brokers: u32,
    index: u32,
) -> Result<FaultPlan, LiveError> {
    refuse_unplayable(scenario)?;
    let live = &scenario.faults.live;
    let mut out = FaultPlan::default();
    if let Some(point) = live.crash_point {
        out.crash_point = Some(armed(scenario, point)?);
    }
    for f in &scenario.faults.schedule {
        match f {
            ScheduledFault::Crash {
                at,
                instance,
                restart_after,
            } => {
                let by_point = out
                    .crash_point
                    .as_ref()
                    .is_some_and(|a| first_crash_of(scenario, &a.instance) == Some(f));
                if !by_point {
                    out.pair(*at, *restart_after, Action::Kill, instance, "schedule");
                }
            }
            ScheduledFault::Pause {
                at,
                instance,
                duration,
            } => out.pair(*at, *duration, Action::Stop, instance, "schedule"),
            ScheduledFault::DropProduceAck { .. }
            | ScheduledFault::BrokerCrash { .. }
            | ScheduledFault::BrokerPartition { .. }
            | ScheduledFault::SlowFollower { .. } => {
                unreachable!("refused above")
            }
        }
    }
    for b in &live.broker_crash {
        if !(1..=brokers).contains(&b.broker) {
            return Err(LiveError::Unsupported(format!(
                "scenario {}: [[faults.live.broker_crash]] names broker {}, but the cluster has \
                 brokers 1..={brokers} (--brokers)",
                scenario.name, b.broker
            )));
        }
        let target = Target::Broker(b.broker);
        out.push(b.at, Action::Kill, target.clone(), "broker_crash");
        out.push(
            b.at + b.restart_after,
            Action::Restart,
            target,
            "broker_crash",
        );
    }
    random(scenario, design, instances, index, &mut out);
    out.steps.sort_by_key(|s| (s.at, s.action));
    Ok(out)
}

impl FaultPlan {
    fn push(&mut self, at: Millis, action: Action, target: Target, origin: &'static str) {
        self.steps.push(Step {
            at,
            action,
            target,
            origin,
        });
    }

    /// A kill and its restart, or a stop and its continuation.
    fn pair(
        &mut self,
        at: Millis,
        length: Millis,
        first: Action,
        instance: &str,
        origin: &'static str,
    ) {
        let second = match first {
            Action::Kill => Action::Restart,
            Action::Stop => Action::Cont,
            _ => unreachable!("pairs start with a kill or a stop"),
        };
        let target = Target::Instance(instance.to_string());
        self.push(at, first, target.clone(), origin);
        self.push(at + length, second, target, origin);
    }

    /// The plan with every time and length multiplied by `k` (the live time scale,
    /// [`super::scale`]).
    pub fn scaled(mut self, k: Millis) -> FaultPlan {
        for s in &mut self.steps {
            s.at *= k;
        }
        if let Some(a) = &mut self.crash_point {
            a.restart_after *= k;
        }
        self
    }

    /// When the last fault heals (its restart or continuation), ms after time 0.
    pub fn heals_at(&self) -> Millis {
        self.steps.iter().map(|s| s.at).max().unwrap_or(0)
    }
}

/// Fault kinds a real cluster cannot be told to do.
fn refuse_unplayable(scenario: &Scenario) -> Result<(), LiveError> {
    let f = &scenario.faults;
    let mut kinds: Vec<String> = Vec::new();
    if f.phase_ms > 0 {
        for (name, rate) in f.rates.named() {
            if rate > 0 && !matches!(name, "crash" | "pause") {
                kinds.push(format!("[faults] {name} = {rate}"));
            }
        }
    }
    for s in &f.schedule {
        match s {
            ScheduledFault::DropProduceAck { at, instance, .. } => {
                kinds.push(format!("drop_produce_ack at {at} on {instance}"));
            }
            // The simulated cluster's broker crashes (losing unflushed data or not) are
            // not the live cluster's: [[faults.live.broker_crash]] plays those.
            ScheduledFault::BrokerCrash { at, broker, .. } => {
                kinds.push(format!("broker_crash at {at} of simulated broker {broker}"));
            }
            ScheduledFault::BrokerPartition { at, broker, .. } => {
                kinds.push(format!(
                    "broker_partition at {at} of simulated broker {broker}"
                ));
            }
            ScheduledFault::SlowFollower { at, broker, .. } => {
                kinds.push(format!(
                    "slow_follower at {at} of simulated broker {broker}"
                ));
            }
            _ => {}
        }
    }
    if kinds.is_empty() {
        return Ok(());
    }
    Err(LiveError::Unsupported(format!(
        "scenario {} has faults the live mode cannot play on real processes: {} (a real network \
         cannot lose, copy or hold back one chosen message on command); live faults are crash, \
         pause, [faults] crash and pause rates, and [faults.live]",
        scenario.name,
        kinds.join(", ")
    )))
}

/// The scheduled crash a crash point plays: the first one in time (the one the
/// simulator plays at its `at`).
fn armed(scenario: &Scenario, point: CrashPoint) -> Result<Armed, LiveError> {
    let first = scenario
        .faults
        .schedule
        .iter()
        .filter(|f| matches!(f, ScheduledFault::Crash { .. }))
        .min_by_key(|f| f.at());
    match first {
        Some(ScheduledFault::Crash {
            instance,
            restart_after,
            ..
        }) => Ok(Armed {
            instance: instance.clone(),
            point,
            restart_after: *restart_after,
        }),
        _ => Err(LiveError::Unsupported(format!(
            "scenario {}: [faults.live] crash_point = {:?} plays a scheduled crash, but \
             [[faults.schedule]] has no kind = \"crash\" entry",
            scenario.name,
            point.name()
        ))),
    }
}

fn first_crash_of<'s>(scenario: &'s Scenario, instance: &str) -> Option<&'s ScheduledFault> {
    scenario
        .faults
        .schedule
        .iter()
        .filter(|f| matches!(f, ScheduledFault::Crash { instance: i, .. } if i == instance))
        .min_by_key(|f| f.at())
}

/// The random crashes and pauses of the fault phase: as many as the simulator strikes.
fn random(
    scenario: &Scenario,
    design: &dyn Design,
    instances: &[String],
    index: u32,
    out: &mut FaultPlan,
) {
    let f = &scenario.faults;
    if f.phase_ms == 0 || (f.rates.crash == 0 && f.rates.pause == 0) || instances.is_empty() {
        return;
    }
    let (crashes, pauses) = calibrate(scenario, design);
    let mut rng = SplitMix(u64::from(index) ^ 0x6f76_6572_7365_6c6c);
    for _ in 0..crashes {
        let at = rng.below(f.phase_ms);
        let down = rng.within(f.rates.restart_after);
        let who = &instances[rng.below(instances.len() as u64) as usize];
        out.pair(at, down, Action::Kill, who, "random");
    }
    for _ in 0..pauses {
        let at = rng.below(f.phase_ms);
        let length = rng.within(f.rates.pause_for);
        let who = &instances[rng.below(instances.len() as u64) as usize];
        out.pair(at, length, Action::Stop, who, "random");
    }
}

/// Random crashes and pauses per run in the simulator (rounded means over
/// [`CALIBRATION_SEEDS`] seeds): every `Crash`/`Pause` of the trace before the phase ends,
/// less the scheduled ones.
pub fn calibrate(scenario: &Scenario, design: &dyn Design) -> (u64, u64) {
    let scheduled = |crash: bool| {
        scenario
            .faults
            .schedule
            .iter()
            .filter(|f| {
                f.at() < scenario.faults.phase_ms
                    && matches!(
                        (crash, f),
                        (true, ScheduledFault::Crash { .. })
                            | (false, ScheduledFault::Pause { .. })
                    )
            })
            .count() as u64
    };
    let (mut crashes, mut pauses) = (0u64, 0u64);
    for seed in 0..CALIBRATION_SEEDS {
        let judged = crate::run::run_seed(design, scenario, &[], seed);
        let (mut c, mut p) = (0u64, 0u64);
        for r in &judged.result.trace.records {
            if r.time >= scenario.faults.phase_ms {
                continue;
            }
            match r.event {
                Event::Crash { .. } => c += 1,
                Event::Pause { .. } => p += 1,
                _ => {}
            }
        }
        crashes += c.saturating_sub(scheduled(true));
        pauses += p.saturating_sub(scheduled(false));
    }
    let mean = |n: u64| (n + CALIBRATION_SEEDS / 2) / CALIBRATION_SEEDS;
    (mean(crashes), mean(pauses))
}

/// A small fixed generator (SplitMix64): a run's random faults follow from its number.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn within(&mut self, (lo, hi): (Millis, Millis)) -> Millis {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::designs::Registry;

    fn scenario(file: &str) -> Scenario {
        let path = format!("{}/scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
        crate::load::load_file(std::path::Path::new(&path)).expect("a shipped scenario loads")
    }

    fn planned(s: &Scenario, design: &str, index: u32) -> Result<FaultPlan, LiveError> {
        let registry = Registry::builtin();
        let d = registry.get(design).expect("a built-in design");
        let names: Vec<String> = (0..s.topology.instances)
            .map(|i| format!("product-service-{i}"))
            .collect();
        plan(s, d, &names, 1, index)
    }

    fn steps(p: &FaultPlan, origin: &str) -> Vec<(Millis, Action, Target)> {
        p.steps
            .iter()
            .filter(|s| s.origin == origin)
            .map(|s| (s.at, s.action, s.target.clone()))
            .collect()
    }

    fn instance(name: &str) -> Target {
        Target::Instance(name.into())
    }

    #[test]
    fn a_scheduled_crash_is_a_sigkill_and_a_restart_and_a_pause_a_sigstop_and_a_sigcont() {
        let p = planned(&scenario("zombie-after-rebalance.toml"), "rekeyed-eos", 0).unwrap();
        assert_eq!(
            steps(&p, "schedule"),
            vec![
                (1030, Action::Stop, instance("product-service-0")),
                (3030, Action::Cont, instance("product-service-0")),
            ]
        );
        assert_eq!(p.heals_at(), 3030);
        assert!(p.crash_point.is_none());
    }

    #[test]
    fn random_crashes_are_as_many_as_the_simulator_strikes_within_the_fault_phase() {
        let s = scenario("crash-before-offset-commit.toml");
        let registry = Registry::builtin();
        let (crashes, pauses) = calibrate(&s, registry.get("rekeyed-alo").unwrap());
        assert!(
            crashes > 0,
            "crash = 2 over a 3 s phase strikes in the simulator"
        );
        assert_eq!(pauses, 0);
        let p = planned(&s, "rekeyed-alo", 3).unwrap();
        assert_eq!(
            steps(&p, "schedule"),
            vec![
                (1500, Action::Kill, instance("product-service-0")),
                (1800, Action::Restart, instance("product-service-0")),
            ]
        );
        let random = steps(&p, "random");
        let kills: Vec<_> = random.iter().filter(|s| s.1 == Action::Kill).collect();
        assert_eq!(kills.len() as u64, crashes);
        for (at, _, _) in kills {
            assert!(*at < s.faults.phase_ms);
        }
        assert!(
            p.steps.windows(2).all(|w| w[0].at <= w[1].at),
            "in time order"
        );
        // A run's plan follows from its number.
        assert_eq!(p, planned(&s, "rekeyed-alo", 3).unwrap());
        assert_ne!(
            steps(&p, "random"),
            steps(&planned(&s, "rekeyed-alo", 4).unwrap(), "random")
        );
    }

    #[test]
    fn message_faults_are_refused_by_name_never_ignored() {
        let s = scenario("lost-produce-ack-retry.toml");
        let err = planned(&s, "rekeyed-eos", 0).unwrap_err().to_string();
        assert!(err.contains("[faults] drop = 20"), "{err}");
        assert!(err.contains("drop_produce_ack at"), "{err}");
        assert!(err.contains("cannot play"), "{err}");
        // Rates outside a fault phase do nothing in the simulator either.
        let mut quiet = s.clone();
        quiet.faults.phase_ms = 0;
        quiet.faults.schedule.clear();
        assert_eq!(planned(&quiet, "naive", 0).unwrap(), FaultPlan::default());
    }

    fn with_live(extra: &str) -> Result<Scenario, String> {
        let text = format!(
            "name = \"x\"\n[[products]]\nid = \"p\"\nstock = 1\n[[orders]]\nid = \"o\"\n\
             product = \"p\"\nat = 100\n[[faults.schedule]]\nkind = \"crash\"\nat = 500\n\
             instance = \"product-service-0\"\nrestart_after = 700\n{extra}\
             [expect]\nnaive = \"holds\"\n"
        );
        crate::load::load_str(&text, "x.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_crash_point_plays_the_first_scheduled_crash_of_its_instance() {
        let s =
            with_live("[faults.live]\ncrash_point = \"after-changelog-before-commit\"\n").unwrap();
        let p = planned(&s, "rekeyed-alo", 0).unwrap();
        assert_eq!(
            p.steps,
            vec![],
            "the crash is the instance's own, not a SIGKILL"
        );
        assert_eq!(
            p.crash_point,
            Some(Armed {
                instance: "product-service-0".into(),
                point: CrashPoint::AfterChangelogBeforeCommit,
                restart_after: 700,
            })
        );
        let err = with_live("[faults.live]\ncrash_point = \"before-everything\"\n").unwrap_err();
        assert!(err.contains("after-changelog-before-commit"), "{err}");
    }

    #[test]
    fn a_broker_crash_is_a_sigkill_and_a_restart_of_a_broker_of_the_cluster() {
        let s =
            with_live("[[faults.live.broker_crash]]\nat = 300\nbroker = 1\nrestart_after = 2000\n")
                .unwrap();
        let p = planned(&s, "naive", 0).unwrap();
        assert_eq!(
            steps(&p, "broker_crash"),
            vec![
                (300, Action::Kill, Target::Broker(1)),
                (2300, Action::Restart, Target::Broker(1)),
            ]
        );
        let mut two = s.clone();
        two.faults.live.broker_crash[0].broker = 2;
        let err = planned(&two, "naive", 0).unwrap_err().to_string();
        assert!(err.contains("brokers 1..=1"), "{err}");
    }
}
