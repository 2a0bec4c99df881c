//! PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
//! "A Randomized Scheduler with Probabilistic Guarantees of Finding Bugs", ASPLOS 2010;
//! shuttle's `PctScheduler`): priority-based scheduling over message deliveries and
//! client steps.
//!
//! Every thread (a client of an instance, with the messages it sends and receives; the
//! transaction coordinator's marker writes; the followers' replica fetches) gets a random priority when first seen, above
//! `depth`. Among the actions that may happen, the one of the highest-priority thread
//! happens. At `depth - 1` change points, drawn uniformly from the first `steps`
//! scheduling decisions, the thread that has just been scheduled drops to a priority below
//! every initial one (`depth - 1`, then `depth - 2`, ...). A bug of depth `d` among `n`
//! threads and `k` decisions is then found with probability at least `1 / (n · k^(d-1))`.
//!
//! Time is not a thread: whether a millisecond passes instead is the same draw as under
//! the random strategy (one chance in the number of actions), so timers, timeouts and
//! faults keep their meaning. Every draw goes through the run's [`Chooser`] and is
//! logged, so a PCT run replays exactly from its seed or its choice log.

use crate::choice::{Chooser, ReplayDiverged};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the scheduler picks among the actions that may happen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Strategy {
    /// Uniformly at random (the default).
    #[default]
    Random,
    /// Priority-based, with `depth - 1` priority change points among the first `steps`
    /// scheduling decisions.
    Pct { depth: u32, steps: u64 },
    /// Every choice is a branch of a depth-first search (`World::run_guided` with a guided
    /// chooser): no time-passing action, and at most `max_crashes` crashes and
    /// `max_pauses` pauses as fault points, and `max_net_faults` delayed or duplicated
    /// requests (see `world/exhaustive.rs`); with `reduce`,
    /// the partial-order reduction of `world/por.rs`; with `ordered`, the state
    /// fingerprint keeps the order of the messages in flight (which the first option of
    /// a choice follows: a search that bounds deviations from it needs it).
    Exhaustive {
        max_crashes: u32,
        max_pauses: u32,
        /// Requests delayed or duplicated at most (the kinds the fault rates allow).
        #[serde(default)]
        max_net_faults: u32,
        #[serde(default)]
        reduce: bool,
        #[serde(default)]
        ordered: bool,
    },
}

/// What the probability bound of a PCT run is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PctStats {
    pub depth: u32,
    /// Threads that were scheduled at least once (n).
    pub threads: u64,
    /// Scheduling decisions among deliveries, steps and markers (k).
    pub decisions: u64,
}

impl PctStats {
    /// PCT's lower bound on finding a bug of depth `depth` in one run: 1 / (n · k^(d-1)).
    pub fn bound(&self) -> f64 {
        let n = self.threads.max(1) as f64;
        let k = self.decisions.max(1) as f64;
        1.0 / (n * k.powi(self.depth.saturating_sub(1) as i32))
    }
}

/// A scheduling thread: a client (instance, client index), or the coordinator's markers.
pub(super) type Thread = (usize, usize);

/// The thread of the transaction coordinator's marker writes.
pub(super) const COORDINATOR: Thread = (usize::MAX, 0);

/// The thread of the followers' replica fetches (a replicated cluster).
pub(super) const REPLICATION: Thread = (usize::MAX, 1);

/// Priorities above this are initial ones; change points use `1..depth`.
const SPREAD: u32 = 1 << 20;

pub(super) struct Pct {
    depth: u32,
    steps: u64,
    priorities: BTreeMap<Thread, u64>,
    /// The decisions (1-based) at which the scheduled thread drops, in order.
    changes: Vec<u64>,
    decisions: u64,
    drawn: bool,
}

impl Pct {
    pub(super) fn new(depth: u32, steps: u64) -> Pct {
        assert!(depth >= 1, "PCT needs a depth of at least 1");
        assert!(steps >= 1, "PCT needs at least one step");
        Pct {
            depth,
            steps,
            priorities: BTreeMap::new(),
            changes: Vec::new(),
            decisions: 0,
            drawn: false,
        }
    }

    fn draw_changes(&mut self, chooser: &mut Chooser) -> Result<(), ReplayDiverged> {
        let span = u32::try_from(self.steps).unwrap_or(u32::MAX);
        for _ in 1..self.depth {
            self.changes.push(1 + u64::from(chooser.choose(span)?));
        }
        self.drawn = true;
        Ok(())
    }

    fn priority(&mut self, t: Thread, chooser: &mut Chooser) -> Result<u64, ReplayDiverged> {
        if let Some(p) = self.priorities.get(&t) {
            return Ok(*p);
        }
        let p = u64::from(self.depth) + u64::from(chooser.choose(SPREAD)?);
        self.priorities.insert(t, p);
        Ok(p)
    }

    /// The index (into `threads`) of the action to take: the highest-priority thread's,
    /// the first one on a tie.
    pub(super) fn pick(
        &mut self,
        threads: &[Thread],
        chooser: &mut Chooser,
    ) -> Result<usize, ReplayDiverged> {
        assert!(!threads.is_empty(), "PCT picks among at least one action");
        if !self.drawn {
            self.draw_changes(chooser)?;
        }
        let mut best = 0;
        let mut best_p = 0;
        for (i, t) in threads.iter().enumerate() {
            let p = self.priority(*t, chooser)?;
            if i == 0 || p > best_p {
                best = i;
                best_p = p;
            }
        }
        self.decisions += 1;
        let low = self.changes.iter().position(|c| *c == self.decisions);
        if let Some(j) = low {
            // The j-th change point: below every initial priority and every earlier drop.
            self.priorities
                .insert(threads[best], u64::from(self.depth) - 1 - j as u64);
        }
        Ok(best)
    }

    pub(super) fn stats(&self) -> PctStats {
        PctStats {
            depth: self.depth,
            threads: self.priorities.len() as u64,
            decisions: self.decisions,
        }
    }
}
