//! The reductions of a shrink pass, and the run that judges each candidate.

use super::Options;
use crate::checker::{check, check_one, History, Invariant, Property};
use crate::designs::{Design, Mutation};
use crate::run::run_unjudged;
use crate::scenario::Scenario;
use oversell_sim::{Chooser, FaultRates, Millis, Outcome, RunResult, ScheduledFault};
use std::collections::BTreeSet;

pub(super) struct Shrinker<'a> {
    pub(super) design: &'a dyn Design,
    pub(super) mutations: &'a [Mutation],
    pub(super) invariant: Invariant,
    pub(super) original_seed: u64,
    pub(super) options: &'a Options,
    pub(super) current: Scenario,
    pub(super) seed: u64,
    /// End time, steps and violations of the current scenario's failing run.
    pub(super) end_time: Millis,
    pub(super) steps: u64,
    pub(super) quiescent: bool,
    pub(super) violated: BTreeSet<Invariant>,
    pub(super) runs: u64,
    pub(super) reductions: u64,
    pub(super) exhausted: bool,
    /// Run count at which to report that the shrink is still going.
    pub(super) next_heartbeat: u64,
    /// Candidates (as JSON, with the seed they were tried after) that failed no run.
    pub(super) rejected: BTreeSet<(u64, String)>,
    pub(super) progress: &'a mut dyn FnMut(&str),
}

impl Shrinker<'_> {
    /// Try a candidate: keep it if a run of it violates the invariant.
    fn attempt(&mut self, what: &str, candidate: Scenario) -> bool {
        let candidate = repair(candidate);
        if candidate == self.current || candidate.products.is_empty() || self.exhausted {
            return false;
        }
        let key = (
            self.seed,
            serde_json::to_string(&candidate).expect("a scenario serialises to JSON"),
        );
        if self.rejected.contains(&key) {
            return false;
        }
        let mut seeds = vec![self.seed];
        for s in std::iter::once(self.original_seed).chain(self.options.extra_seeds.iter().copied())
        {
            if !seeds.contains(&s) {
                seeds.push(s);
            }
        }
        for seed in seeds {
            if self.runs >= self.options.max_runs {
                self.exhausted = true;
                return false;
            }
            self.runs += 1;
            if self.runs >= self.next_heartbeat {
                self.next_heartbeat += 100;
                (self.progress)(&format!("run {}: trying {what} (seed {seed})", self.runs));
            }
            // Judged on the target invariant alone; the whole verdict (every invariant and
            // probe) only for a candidate kept, on the same recorded run.
            let chooser = Chooser::seeded(seed);
            let (run, _) = run_unjudged(self.design, &candidate, self.mutations, chooser);
            let bound = candidate.run.decision_bound_ms;
            let schema = self.design.schema();
            if !check_one(self.invariant, &schema, &run, bound).is_empty()
                && fair(self.invariant, &candidate, &run)
            {
                let violated = check(&schema, &run, bound).violated();
                debug_assert!(violated.contains(&self.invariant));
                self.reductions += 1;
                (self.progress)(&format!(
                    "run {}: kept {what} (seed {seed}): {} orders, {} products, {} restocks, {} faults, {} steps",
                    self.runs,
                    candidate.orders.len(),
                    candidate.products.len(),
                    candidate.restocks.len(),
                    candidate.faults.schedule.len(),
                    run.steps
                ));
                self.current = candidate;
                self.seed = seed;
                self.end_time = run.end_time;
                self.steps = run.steps;
                self.quiescent = run.outcome == Outcome::Quiescent;
                self.violated = violated;
                return true;
            }
        }
        self.rejected.insert(key);
        false
    }

    /// One pass of every reduction, in order.
    pub(super) fn pass(&mut self) {
        self.drop_scheduled_faults();
        self.reduce_random_faults();
        self.drop_products();
        self.drop_chunks(
            "order",
            |s| s.orders.len(),
            |s, r| {
                s.orders.drain(r);
            },
        );
        self.drop_chunks(
            "restock",
            |s| s.restocks.len(),
            |s, r| {
                s.restocks.drain(r);
            },
        );
        self.reduce_topology();
        self.lower_quantities();
        self.pull_arrivals_earlier();
        self.lower_max_time();
    }

    fn drop_scheduled_faults(&mut self) {
        let mut i = 0;
        while i < self.current.faults.schedule.len() {
            let mut c = self.current.clone();
            let f = c.faults.schedule.remove(i);
            if !self.attempt(&format!("drop scheduled fault {}", describe_fault(&f)), c) {
                i += 1;
            }
        }
    }

    fn reduce_random_faults(&mut self) {
        let f = &self.current.faults;
        if f.phase_ms == 0 && f.rates == FaultRates::default() {
            return;
        }
        let mut c = self.current.clone();
        c.faults.phase_ms = 0;
        c.faults.rates = FaultRates::default();
        if self.attempt("no random faults", c) {
            return;
        }
        let kinds = self.current.faults.rates.named().len();
        for kind in 0..kinds {
            let mut c = self.current.clone();
            let (name, rate) = c
                .faults
                .rates
                .named_mut()
                .into_iter()
                .nth(kind)
                .expect("a kind");
            if *rate != 0 {
                *rate = 0;
                self.attempt(&format!("{name} rate 0"), c);
            }
        }
        while self.current.faults.phase_ms > 1 {
            let mut c = self.current.clone();
            c.faults.phase_ms /= 2;
            let what = format!("fault phase {} ms", c.faults.phase_ms);
            if !self.attempt(&what, c) {
                break;
            }
        }
    }

    fn drop_products(&mut self) {
        let used: BTreeSet<&str> = (self.current.orders.iter().map(|o| o.product.as_str()))
            .chain(self.current.restocks.iter().map(|r| r.product.as_str()))
            .collect();
        if self
            .current
            .products
            .iter()
            .any(|p| !used.contains(p.id.as_str()))
        {
            let mut c = self.current.clone();
            c.products.retain(|p| used.contains(p.id.as_str()));
            self.attempt("drop products nobody orders or restocks", c);
        }
        self.drop_chunks(
            "product",
            |s| s.products.len(),
            |s, r| {
                s.products.drain(r);
            },
        );
    }

    /// ddmin over a list: remove chunks of half its length, then quarters, … then single
    /// items.
    fn drop_chunks(
        &mut self,
        what: &str,
        len: impl Fn(&Scenario) -> usize,
        remove: impl Fn(&mut Scenario, std::ops::Range<usize>),
    ) {
        let mut chunk = len(&self.current).div_ceil(2);
        while chunk >= 1 {
            let mut start = 0;
            while start < len(&self.current) {
                let end = (start + chunk).min(len(&self.current));
                let mut c = self.current.clone();
                remove(&mut c, start..end);
                let label = if end - start == 1 {
                    format!("drop {what} #{start}")
                } else {
                    format!("drop {what}s #{start}..#{}", end - 1)
                };
                if !self.attempt(&label, c) {
                    start += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2).min(len(&self.current).div_ceil(2)).max(1);
        }
    }

    fn reduce_topology(&mut self) {
        for n in smaller_counts(self.current.topology.instances) {
            let mut c = self.current.clone();
            c.topology.instances = n;
            if self.attempt(
                &format!("instances {} -> {n}", self.current.topology.instances),
                c,
            ) {
                break;
            }
        }
        for n in smaller_counts(self.current.topology.partitions) {
            let mut c = self.current.clone();
            c.topology.partitions = n;
            if self.attempt(
                &format!("partitions {} -> {n}", self.current.topology.partitions),
                c,
            ) {
                break;
            }
        }
    }

    fn lower_quantities(&mut self) {
        for i in 0..self.current.products.len() {
            for q in smaller(self.current.products[i].stock, 0) {
                let mut c = self.current.clone();
                c.products[i].stock = q;
                if self.attempt(&format!("stock of {} {q}", c.products[i].id), c) {
                    break;
                }
            }
        }
        for i in 0..self.current.orders.len() {
            for q in smaller(self.current.orders[i].quantity, 1) {
                let mut c = self.current.clone();
                c.orders[i].quantity = q;
                if self.attempt(&format!("order {} quantity {q}", c.orders[i].id), c) {
                    break;
                }
            }
        }
        for i in 0..self.current.restocks.len() {
            for q in smaller(self.current.restocks[i].quantity, 1) {
                let mut c = self.current.clone();
                c.restocks[i].quantity = q;
                if self.attempt(&format!("restock #{i} quantity {q}"), c) {
                    break;
                }
            }
        }
    }

    fn pull_arrivals_earlier(&mut self) {
        let times = |s: &Scenario| -> Vec<Millis> {
            s.orders
                .iter()
                .map(|o| o.at)
                .chain(s.restocks.iter().map(|r| r.at))
                .collect()
        };
        let set_times = |s: &mut Scenario, t: &[Millis]| {
            let n = s.orders.len();
            for (o, &at) in s.orders.iter_mut().zip(t) {
                o.at = at;
            }
            for (r, &at) in s.restocks.iter_mut().zip(&t[n..]) {
                r.at = at;
            }
        };
        let t = times(&self.current);
        let Some(&min) = t.iter().min() else {
            return;
        };
        // Everything at once.
        if t.iter().any(|&x| x != min) {
            let mut c = self.current.clone();
            set_times(&mut c, &vec![min; t.len()]);
            if self.attempt(&format!("every arrival at {min} ms"), c) {
                return;
            }
        }
        // Every time halved, while that keeps failing.
        loop {
            let t = times(&self.current);
            if t.iter().all(|&x| x == 0) {
                break;
            }
            let mut c = self.current.clone();
            set_times(&mut c, &t.iter().map(|x| x / 2).collect::<Vec<_>>());
            if !self.attempt("every arrival time halved", c) {
                break;
            }
        }
        // Each arrival pulled to its predecessor's time, or halfway there.
        let n = times(&self.current).len();
        for i in 0..n {
            let t = times(&self.current);
            let prev = t.iter().copied().filter(|&x| x < t[i]).max().unwrap_or(0);
            if prev == t[i] {
                continue;
            }
            for at in [prev, prev + (t[i] - prev) / 2] {
                if at >= t[i] {
                    continue;
                }
                let mut c = self.current.clone();
                let mut nt = t.clone();
                nt[i] = at;
                set_times(&mut c, &nt);
                if self.attempt(&format!("arrival #{i} at {at} ms (was {})", t[i]), c) {
                    break;
                }
            }
        }
    }

    /// Bisect `run.max_time_ms` down: toward the failing run's end time when it went
    /// quiet (never below it, so the story still ends on its own), from half the bound
    /// when the run ran into it.
    fn lower_max_time(&mut self) {
        const ROUND: Millis = 100;
        let round = |t: Millis| t.div_ceil(ROUND) * ROUND;
        let floor = if self.quiescent {
            round(self.end_time)
        } else {
            0
        };
        // Every target tried is above `lo`, which did not fail (or is below the floor).
        let mut lo = floor.saturating_sub(1);
        let mut target = if self.quiescent {
            floor
        } else {
            round(self.current.run.max_time_ms / 2)
        };
        while lo < target && target < self.current.run.max_time_ms && !self.exhausted {
            let mut c = self.current.clone();
            c.run.max_time_ms = target;
            if !self.attempt(&format!("max time {target} ms"), c) {
                lo = target;
            }
            target = round((lo + self.current.run.max_time_ms) / 2).max(floor);
        }
    }
}

/// Whether a run shows `invariant` failing for the reason the original run did, as far as
/// the shrink can tell: a liveness failure only counts when the run went quiet or ran past
/// every order's deadline, never when a lowered time bound cut it short before them (the
/// checker reports that too, but it is the bound's doing, not the design's).
fn fair(invariant: Invariant, scenario: &Scenario, run: &RunResult) -> bool {
    if invariant.property() != Property::Eventually || run.outcome == Outcome::Quiescent {
        return true;
    }
    let last_placed = History::from_run(run)
        .orders()
        .map(|(_, rec)| rec.time)
        .max()
        .unwrap_or(0);
    run.end_time >= last_placed.max(run.healed_at) + scenario.run.decision_bound_ms
}

/// Candidate counts below `n` (at least 1): 1 first, then one less.
fn smaller_counts(n: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for c in [1, n.saturating_sub(1)] {
        if c >= 1 && c < n && !v.contains(&c) {
            v.push(c);
        }
    }
    v
}

/// Candidate quantities below `q` and at least `min`: `min`, half, one less.
fn smaller(q: u64, min: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for c in [min, q / 2, q.saturating_sub(1)] {
        if c >= min && c < q && !v.contains(&c) {
            v.push(c);
        }
    }
    v
}

/// Keep a reduced scenario valid: nothing refers to a removed product, order or instance.
fn repair(mut s: Scenario) -> Scenario {
    let products: BTreeSet<String> = s.products.iter().map(|p| p.id.clone()).collect();
    s.orders.retain(|o| products.contains(&o.product));
    s.restocks.retain(|r| products.contains(&r.product));
    let orders: BTreeSet<String> = s.orders.iter().map(|o| o.id.clone()).collect();
    s.payments.fail.retain(|o| orders.contains(o));
    s.payments.delays.retain(|o, _| orders.contains(o));
    s.topology.instances = s.topology.instances.max(1);
    s.topology.partitions = s.topology.partitions.max(1);
    let instances = s.topology.instances;
    s.faults.schedule.retain(
        |f| !matches!(fault_instance(f).and_then(instance_index), Some(i) if i >= instances),
    );
    s
}

fn fault_instance(f: &ScheduledFault) -> Option<&str> {
    match f {
        ScheduledFault::Crash { instance, .. }
        | ScheduledFault::Pause { instance, .. }
        | ScheduledFault::DropProduceAck { instance, .. } => Some(instance),
        ScheduledFault::BrokerCrash { .. }
        | ScheduledFault::BrokerPartition { .. }
        | ScheduledFault::SlowFollower { .. } => None,
    }
}

/// The index of a service instance named `<service>-<index>`.
fn instance_index(name: &str) -> Option<u32> {
    let (service, index) = name.rsplit_once('-')?;
    if crate::designs::SERVICES.contains(&service) {
        index.parse().ok()
    } else {
        None
    }
}

fn describe_fault(f: &ScheduledFault) -> String {
    match f {
        ScheduledFault::Crash {
            at,
            instance,
            restart_after,
        } => format!("crash {instance} at {at} ms (restart after {restart_after} ms)"),
        ScheduledFault::Pause {
            at,
            instance,
            duration,
        } => format!("pause {instance} at {at} ms for {duration} ms"),
        ScheduledFault::DropProduceAck {
            at,
            instance,
            count,
        } => {
            format!("drop {count} produce acks to {instance} after {at} ms")
        }
        ScheduledFault::BrokerCrash {
            at,
            broker,
            restart_after,
            lose_unflushed,
        } => {
            let loss = if *lose_unflushed {
                ", losing its unflushed data"
            } else {
                ""
            };
            format!("crash broker {broker} at {at} ms (restart after {restart_after} ms{loss})")
        }
        ScheduledFault::BrokerPartition {
            at,
            broker,
            duration,
            from_brokers,
            from_clients,
        } => {
            let from = match (from_brokers, from_clients) {
                (true, true) => "brokers and clients",
                (true, false) => "brokers",
                _ => "clients",
            };
            format!("partition broker {broker} from the {from} at {at} ms for {duration} ms")
        }
        ScheduledFault::SlowFollower {
            at,
            broker,
            duration,
        } => format!("stall broker {broker}'s follower fetches at {at} ms for {duration} ms"),
    }
}
