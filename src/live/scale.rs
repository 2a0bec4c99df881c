//! The live time scale: a scenario played on real Kafka with every time of its story
//! multiplied by one factor, so that the real run plays the same story as the simulated
//! one, slower.
//!
//! The simulator's Kafka Streams defaults are scaled down (a 300 ms session, a 100 ms
//! heartbeat and commit interval, a 1 s transaction timeout) because a simulated step
//! costs nothing. A real session that short expires in a GC or scheduling stall; Kafka's
//! own default (45 s) instead keeps a SIGKILLed member's tasks for 45 s, a different
//! story from the simulator's (a crash that the group notices within 300 ms). Scaling
//! every time by `k` keeps their ratios: the workload's times, the faults' times and
//! lengths, the fault phase, the session timeout, heartbeat, commit interval and
//! transaction timeout, the saga's reservation timeout, punctuation interval and payment
//! delays, and the decision bound. What is not scaled is the real processing speed, which
//! is what a live run measures: relative to the scaled story, real processing is `k`
//! times faster, closer to the simulator's near-instant steps.
//!
//! `k` is the smallest factor that makes the session timeout at least
//! [`MIN_LIVE_SESSION_MS`] (Kafka's `group.min.session.timeout.ms` default, 6 s, which
//! the live brokers lower), unless the command names one (`--time-scale`). It is printed
//! and recorded in the history (`time_scale`).

use crate::kit::streams_config;
use crate::scenario::Scenario;
use oversell_sim::{Guarantee, Millis, ScheduledFault};

/// The shortest session timeout a live run uses by default: Kafka's own
/// `group.min.session.timeout.ms` default (`GroupCoordinatorConfig`, 6000 ms).
pub const MIN_LIVE_SESSION_MS: Millis = 6_000;

/// The default factor for `scenario`: the smallest `k ≥ 1` that makes its session timeout
/// (the scenario's `[streams] session_timeout_ms`, or the simulator's default) at least
/// [`MIN_LIVE_SESSION_MS`].
pub fn default_scale(scenario: &Scenario) -> u64 {
    let session = streams_config("live", Guarantee::AtLeastOnce, scenario, &[]).session_timeout_ms;
    assert!(session > 0, "the loader refuses a zero session timeout");
    MIN_LIVE_SESSION_MS.div_ceil(session).max(1)
}

/// `scenario` with every time of its story multiplied by `k`; the Kafka Streams times it
/// leaves to the simulator's defaults are written out, scaled. Request timeouts and
/// retry back-offs stay Kafka's own (they are about the network, not the story).
pub fn scaled(scenario: &Scenario, k: u64) -> Scenario {
    assert!(k >= 1, "a time scale is at least 1");
    let mut s = scenario.clone();
    let config = streams_config("live", Guarantee::AtLeastOnce, scenario, &[]);
    for o in &mut s.orders {
        o.at *= k;
    }
    for r in &mut s.restocks {
        r.at *= k;
    }
    s.streams.commit_interval_ms = Some(config.commit_interval_ms * k);
    s.streams.session_timeout_ms = Some(config.session_timeout_ms * k);
    s.streams.heartbeat_interval_ms = Some(config.heartbeat_interval_ms * k);
    s.streams.transaction_timeout_ms = Some(config.transaction_timeout_ms * k);
    s.payments.delay_ms *= k;
    for d in s.payments.delays.values_mut() {
        *d *= k;
    }
    s.saga.reservation_timeout_ms *= k;
    s.saga.punctuate_every_ms *= k;
    s.run.decision_bound_ms *= k;
    s.run.max_time_ms *= k;
    s.faults.phase_ms *= k;
    for f in &mut s.faults.schedule {
        scale_fault(f, k);
    }
    for b in &mut s.faults.live.broker_crash {
        b.at *= k;
        b.restart_after *= k;
    }
    s
}

/// The longest a live run waits for its story: 15 minutes, whatever the scenario says.
pub const MAX_LIVE_BOUND_MS: Millis = 900_000;

/// The shortest: real start-up and the first commits take seconds whatever the story.
pub const MIN_LIVE_BOUND_MS: Millis = 10_000;

/// A live run's time bound: when the driver stops waiting for the run to settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeBound {
    pub ms: Millis,
    /// The scenario's own bound, before [`MIN_LIVE_BOUND_MS`] and [`MAX_LIVE_BOUND_MS`].
    pub scenario_ms: Millis,
}

impl TimeBound {
    /// Whether [`MAX_LIVE_BOUND_MS`] cut the scenario's bound short.
    pub fn capped(&self) -> bool {
        self.ms < self.scenario_ms
    }
}

/// The time bound of a live run of `s`, the scenario already [`scaled`]; `heals`: when
/// its last fault heals (ms after time 0). The scenario's own bound is the earlier of
/// the simulator's (`run.max_time_ms`, where a simulated run stops) and the time at which
/// every order's decision deadline has passed (the last order or the last heal, whichever
/// is later, plus `run.decision_bound_ms`, as the checker counts it): past that a longer
/// run can decide nothing the checker would count. Kept within [`MIN_LIVE_BOUND_MS`] and
/// [`MAX_LIVE_BOUND_MS`].
pub fn time_bound(s: &Scenario, heals: Millis) -> TimeBound {
    let last_at = s
        .orders
        .iter()
        .map(|o| o.at)
        .chain(s.restocks.iter().map(|r| r.at))
        .max()
        .unwrap_or(0);
    let deadlines = last_at.max(heals) + s.run.decision_bound_ms;
    let scenario_ms = deadlines.min(s.run.max_time_ms);
    let ms = scenario_ms.clamp(MIN_LIVE_BOUND_MS, MAX_LIVE_BOUND_MS);
    assert!((MIN_LIVE_BOUND_MS..=MAX_LIVE_BOUND_MS).contains(&ms));
    TimeBound { ms, scenario_ms }
}

fn scale_fault(f: &mut ScheduledFault, k: u64) {
    match f {
        ScheduledFault::Crash {
            at, restart_after, ..
        } => {
            *at *= k;
            *restart_after *= k;
        }
        ScheduledFault::Pause { at, duration, .. } => {
            *at *= k;
            *duration *= k;
        }
        ScheduledFault::DropProduceAck { at, .. } => *at *= k,
        ScheduledFault::BrokerCrash {
            at, restart_after, ..
        } => {
            *at *= k;
            *restart_after *= k;
        }
        ScheduledFault::BrokerPartition { at, duration, .. }
        | ScheduledFault::SlowFollower { at, duration, .. } => {
            *at *= k;
            *duration *= k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_file;
    use std::path::Path;

    fn scenario(name: &str) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
        load_file(&path).expect("a shipped scenario")
    }

    #[test]
    fn the_default_scale_makes_the_session_at_least_six_seconds() {
        // The simulator's 300 ms default session: 20 times.
        assert_eq!(default_scale(&scenario("scenarios/last-unit.toml")), 20);
        // A scenario that sets a 10 s session is played as written.
        let point = scenario("scenarios/live/crash-point-double-reserve.toml");
        assert_eq!(default_scale(&point), 1);
        // 3 s: twice.
        assert_eq!(
            default_scale(&scenario("scenarios/live/zombie-fenced.toml")),
            2
        );
    }

    #[test]
    fn every_time_of_the_story_is_scaled_and_nothing_else() {
        let s = scenario("scenarios/saga-payment-failure.toml");
        let k = default_scale(&s);
        let t = scaled(&s, k);
        let at = |s: &Scenario| s.orders.iter().map(|o| o.at).collect::<Vec<_>>();
        assert_eq!(
            at(&t),
            at(&s).iter().map(|a| a * k).collect::<Vec<_>>(),
            "order times"
        );
        assert_eq!(t.faults.schedule[0].at(), s.faults.schedule[0].at() * k);
        assert_eq!(t.payments.delay_ms, s.payments.delay_ms * k);
        assert_eq!(
            t.saga.reservation_timeout_ms,
            s.saga.reservation_timeout_ms * k
        );
        assert_eq!(t.run.decision_bound_ms, s.run.decision_bound_ms * k);
        assert_eq!(t.run.max_time_ms, s.run.max_time_ms * k);
        assert_eq!(t.streams.session_timeout_ms, Some(6_000));
        assert_eq!(t.streams.heartbeat_interval_ms, Some(2_000));
        assert_eq!(t.streams.commit_interval_ms, Some(2_000));
        assert_eq!(t.streams.transaction_timeout_ms, Some(20_000));
        // Not times: untouched.
        assert_eq!(t.products, s.products);
        assert_eq!(t.payments.fail, s.payments.fail);
        assert_eq!(t.streams.request_timeout_ms, s.streams.request_timeout_ms);
        // Scale 1 changes no time of the story.
        let one = scaled(&s, 1);
        assert_eq!(at(&one), at(&s));
        assert_eq!(one.faults.schedule, s.faults.schedule);
    }

    /// The bound follows the scaled story: crash-before-offset-commit at ×20 (last order
    /// 50 s, 40 s decision bound ×20 = 800 s) waits 50 + 800 s for a run that does not
    /// settle, not the 180 s it was once clamped at.
    #[test]
    fn the_time_bound_is_the_scaled_scenarios_own() {
        let s = scenario("scenarios/crash-before-offset-commit.toml");
        let k = default_scale(&s);
        assert_eq!(k, 20);
        let t = scaled(&s, k);
        let b = time_bound(&t, 0);
        assert_eq!(b.ms, 50_000 + 800_000);
        assert!(!b.capped());
        // A heal after the last order counts from the heal.
        assert_eq!(time_bound(&t, 70_000).ms, 70_000 + 800_000);
        // The simulator's own time bound (60 s ×20) ends it earlier when it comes first.
        assert_eq!(time_bound(&t, 450_000).scenario_ms, 1_200_000);
        // Unscaled, a story shorter than the live floor still gets the floor.
        let mut one = scaled(&scenario("scenarios/last-unit.toml"), 1);
        one.run.decision_bound_ms = 100;
        let b = time_bound(&one, 0);
        assert!(b.scenario_ms < MIN_LIVE_BOUND_MS, "{b:?}");
        assert_eq!(b.ms, MIN_LIVE_BOUND_MS);
    }

    #[test]
    fn a_bound_past_the_live_maximum_is_capped_and_says_so() {
        let mut s = scaled(&scenario("scenarios/crash-before-offset-commit.toml"), 20);
        s.run.max_time_ms = 10_000_000;
        s.run.decision_bound_ms = 2_000_000;
        let b = time_bound(&s, 0);
        assert_eq!(b.ms, MAX_LIVE_BOUND_MS);
        assert_eq!(b.scenario_ms, 2_050_000);
        assert!(b.capped());
    }
}
