//! Swarm faults (TigerBeetle's VOPR, "swarm testing"): each run draws its own fault mix
//! from ranges, so that one sweep covers calm and stormy runs alike.
//!
//! The mix is drawn from the run's own [`Chooser`] before the world is built: the draws
//! are the first choices of the run, recorded in its choice log like every other, so a
//! swarm run replays exactly from its seed or its log. Each kind is switched on or off
//! by a coin (swarm testing's point: a fault that masks another is sometimes absent),
//! then given a rate from its range. Rebalances come from the drawn pauses (a pause
//! longer than the session timeout expels the member) and crashes (the member's session
//! expires). Broker faults will be drawn here once the broker has any.

use crate::scenario::Scenario;
use oversell_sim::choice::ReplayDiverged;
use oversell_sim::{Chooser, FaultRates, Millis};

/// The range of each random fault kind's rate, per mille, when the coin turns it on.
pub const RATE_RANGES: [(&str, u32, u32); 5] = [
    ("crash", 1, 8),
    ("pause", 1, 8),
    ("drop", 5, 40),
    ("duplicate", 5, 40),
    ("delay", 5, 40),
];

/// The upper end of the restart delay, ms: drawn in this range (the lower end stays 50).
pub const RESTART_MAX: (Millis, Millis) = (100, 800);
/// The upper end of a pause, ms: drawn in this range (the lower end stays 200), so that
/// some runs' pauses all stay under the default session timeout and others outlast it.
pub const PAUSE_MAX: (Millis, Millis) = (300, 2500);

/// The fault phase of a swarm run of a scenario without one: its arrivals, and 500 ms.
pub fn phase_of(scenario: &Scenario) -> Millis {
    if scenario.faults.phase_ms > 0 {
        scenario.faults.phase_ms
    } else {
        scenario.last_arrival() + 500
    }
}

/// Draw a fault mix: for each kind a coin, then a rate; then the durations' upper ends.
pub fn draw(chooser: &mut Chooser) -> Result<FaultRates, ReplayDiverged> {
    let mut rates = FaultRates::default();
    for ((name, rate), (range_name, lo, hi)) in rates.named_mut().into_iter().zip(RATE_RANGES) {
        assert_eq!(name, range_name, "RATE_RANGES follows FaultRates::named");
        *rate = if chooser.choose(2)? == 1 {
            lo + chooser.choose(hi - lo + 1)?
        } else {
            0
        };
    }
    rates.restart_after.1 = pick(chooser, RESTART_MAX)?;
    rates.pause_for.1 = pick(chooser, PAUSE_MAX)?;
    debug_assert!(rates.restart_after.0 <= rates.restart_after.1);
    debug_assert!(rates.pause_for.0 <= rates.pause_for.1);
    Ok(rates)
}

fn pick(chooser: &mut Chooser, (lo, hi): (Millis, Millis)) -> Result<Millis, ReplayDiverged> {
    let span = u32::try_from(hi - lo + 1).expect("a small range");
    Ok(lo + Millis::from(chooser.choose(span)?))
}

/// The scenario a swarm run plays: its own workload and schedule, with `rates` as its
/// random faults during its fault phase.
pub fn apply(scenario: &Scenario, rates: &FaultRates) -> Scenario {
    let mut s = scenario.clone();
    s.faults.phase_ms = phase_of(scenario);
    s.faults.rates = rates.clone();
    s
}

/// The mix in one line, as `replay` prints it first.
pub fn describe(rates: &FaultRates) -> String {
    let kinds: Vec<String> = rates
        .named()
        .iter()
        .map(|(name, rate)| format!("{name} {rate}‰"))
        .collect();
    format!(
        "{}; restart after {}..{} ms; pause {}..{} ms",
        kinds.join(", "),
        rates.restart_after.0,
        rates.restart_after.1,
        rates.pause_for.0,
        rates.pause_for.1
    )
}

/// The mix a run drawing from `chooser` will play (the same first draws): for printing
/// it before the run starts. `None` when the choices do not fit the draws.
pub fn preview(mut chooser: Chooser) -> Option<FaultRates> {
    draw(&mut chooser).ok()
}
