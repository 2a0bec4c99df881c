//! Quiescence accounts for every pending timer: a run is not declared quiet while a
//! client still holds a timer that will act without any new input.

use oversell_sim::protocol::Response;
use oversell_sim::{
    Broker, Client, ClientId, Env, Event, InstanceSpec, Millis, Outcome, Peer, RunResult, World,
    WorldConfig,
};
use std::sync::Arc;

/// A client with a periodic punctuation (every 10 ms) and one timer: at `due` its
/// punctuation does its one piece of work. Idle throughout: nothing in flight.
struct Timer {
    id: ClientId,
    due: Millis,
    next: Millis,
    fired: bool,
    declares: bool,
    /// A broken punctuation that never does its work.
    stuck: bool,
}

impl Client for Timer {
    fn id(&self) -> &ClientId {
        &self.id
    }
    fn ready(&self, _lane: usize, now: Millis) -> bool {
        now >= self.next
    }
    fn step(&mut self, _lane: usize, env: &mut Env<'_>) {
        self.next = env.now + 10;
        if !self.stuck && !self.fired && env.now >= self.due {
            self.fired = true;
            env.event(Event::Note {
                client: Peer::Client(self.id.clone()),
                text: "timer fired".into(),
            });
        }
    }
    fn on_response(&mut self, _corr: u64, _response: Response, _env: &mut Env<'_>) {}
    fn wakeup(&self) -> Option<Millis> {
        Some(self.next)
    }
    fn idle(&self) -> bool {
        true
    }
    fn next_timer(&self) -> Option<Millis> {
        (self.declares && !self.fired).then_some(self.due)
    }
}

fn run(due: Millis, declares: bool, max_time: Millis) -> RunResult {
    run_timer(due, declares, false, max_time)
}

fn run_timer(due: Millis, declares: bool, stuck: bool, max_time: Millis) -> RunResult {
    let spec = InstanceSpec {
        name: "timer".into(),
        build: Arc::new(move |_: &str| {
            vec![Box::new(Timer {
                id: ClientId::new("timer", "app"),
                due,
                next: 0,
                fired: false,
                declares,
                stuck,
            }) as Box<dyn Client>]
        }),
        faulty: false,
        start_at: 0,
    };
    let config = WorldConfig {
        max_time,
        ..WorldConfig::default()
    };
    World::new(Broker::new(), vec![spec], config).run_seed(1)
}

fn fired(r: &RunResult) -> bool {
    r.trace
        .records
        .iter()
        .any(|rec| matches!(&rec.event, Event::Note { text, .. } if text == "timer fired"))
}

#[test]
fn a_run_is_not_quiet_while_a_timer_is_pending() {
    let r = run(5_000, true, 60_000);
    assert_eq!(r.outcome, Outcome::Quiescent);
    assert!(
        fired(&r),
        "the run ended at {}ms before its timer",
        r.end_time
    );
    assert!(r.end_time >= 5_000);
}

/// The control: a client that does not declare its timer lets the run end early,
/// which is the false alarm the declaration prevents.
#[test]
fn an_undeclared_timer_is_cut_short() {
    let r = run(5_000, false, 60_000);
    assert_eq!(r.outcome, Outcome::Quiescent);
    assert!(!fired(&r));
    assert!(r.end_time < 5_000, "ended at {}ms", r.end_time);
}

/// A timer at or past the time bound cannot act within the run: it does not hold the
/// run open, and the run is quiescent before the bound.
#[test]
fn a_timer_past_the_bound_does_not_hold_the_run() {
    let r = run(90_000, true, 60_000);
    assert_eq!(r.outcome, Outcome::Quiescent);
    assert!(r.end_time < 60_000);
}

/// A run that ends at its time bound with a timer pending (its punctuation never does
/// the work) says so.
#[test]
fn a_run_at_its_bound_names_the_pending_timer() {
    let r = run_timer(15_000, true, true, 20_000);
    assert_eq!(r.outcome, Outcome::TimeBound);
    let last = r.trace.records.last().expect("a last note");
    let Event::Note { text, .. } = &last.event else {
        panic!("the last record is not a note: {last:?}");
    };
    assert!(
        text.contains("timer/app has a timer pending at 15000ms"),
        "{text}"
    );
}
