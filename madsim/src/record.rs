//! The run's record: every broker and client event, in the order they happened, at
//! madsim's simulated time.
//!
//! madsim runs every node's tasks on one thread, one poll at a time, so a shared
//! recorder sees events in one deterministic order for a seed. Each broker request and
//! each client action is one *step* (the simulator's "choice"): the events it causes
//! share its number, as the events of one scheduler choice do in the simulator's trace.

use oversell_sim::{Event, Millis, Trace};
use std::sync::{Arc, Mutex, MutexGuard};

/// A shared, cloneable handle on the run's trace.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    trace: Trace,
    steps: u64,
    next_corr: u64,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic in a node's task poisons nothing worth keeping apart: the run is lost.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record the events of one step at the current simulated time; returns the step.
    pub fn step(&self, events: Vec<Event>) -> u64 {
        let now = now_ms();
        let mut inner = self.lock();
        let step = inner.steps;
        inner.steps += 1;
        for event in events {
            inner.trace.push(now, step, event);
        }
        step
    }

    /// Record one event as a step of its own.
    pub fn event(&self, event: Event) {
        self.step(vec![event]);
    }

    /// A fresh request correlation id, unique in the run.
    pub fn next_corr(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_corr += 1;
        inner.next_corr
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> u64 {
        self.lock().steps
    }

    /// A copy of the trace so far.
    pub fn trace(&self) -> Trace {
        self.lock().trace.clone()
    }
}

/// madsim's simulated time since the runtime started, in ms.
///
/// # Panics
/// Outside a madsim runtime.
pub fn now_ms() -> Millis {
    madsim::time::TimeHandle::current().elapsed().as_millis() as Millis
}
