//! Shrinking a failing run: cut a scenario down, while the same invariant still fails,
//! to the smallest story that reproduces it (what `oversell shrink` does).
//!
//! # How
//!
//! Greedy delta debugging to a fixpoint. Each pass tries these reductions, in this
//! order, on the current scenario; a reduction is kept as soon as one run of it violates
//! the target invariant, and the pass goes on from the reduced scenario:
//!
//! 1. drop scheduled faults, one at a time;
//! 2. random faults: end the fault phase (`phase_ms = 0`), zero each rate, halve the phase;
//! 3. drop products, with all their orders and restocks: first every product nobody
//!    orders or restocks, then ddmin style (halves first, … then one at a time);
//! 4. drop orders, ddmin style: halves first, then quarters, … then one at a time;
//! 5. drop restocks, the same way;
//! 6. fewer instances (1, then one fewer);
//! 7. fewer partitions (1, then one fewer);
//! 8. lower quantities: stock (0, half, one less), order and restock quantities (1, half,
//!    one less);
//! 9. earlier arrivals: everything at the first arrival time, every time halved, then each
//!    arrival pulled to its predecessor's time or halfway there;
//! 10. lower `run.max_time_ms`: bisect between the end time of the failing run and the
//!     bound (from half the bound when the run ran into it).
//!
//! A liveness failure (`eventual-decision`) only counts when its run went quiet or ran past
//! every order's deadline: a run cut short by a lowered time bound fails that invariant in
//! the checker's eyes too, but for the wrong reason.
//!
//! Passes repeat until one keeps nothing, or the run budget ([`Options::max_runs`],
//! 2,000 by default) is spent.
//!
//! # Seeds
//!
//! A reduction changes the schedule a seed produces, so the failure may survive only
//! under another seed. A candidate is therefore run with the current seed first, then the
//! seed the user gave, then each of [`Options::extra_seeds`] (0..8 by default), and kept
//! with the first seed that fails; that seed is the one kept from then on. Keeping the
//! user's seed is thus preferred, but not required.
//!
//! The result names itself `<name>-shrunk`, runs its one seed (`run.seeds = seed..seed+1`)
//! and expects the design to violate what that run violates; [`to_toml`] writes it as a
//! scenario file with a header that tells its story and the command that replays it.
//!
//! Every reduction also keeps the scenario valid: orders, restocks and payment outcomes of
//! removed products or orders go too, and scheduled faults of instances that no longer
//! exist are dropped. The result is deterministic: same inputs, same output.

use crate::checker::{History, Invariant, Property};
use crate::designs::{Design, Mutation};
use crate::run::run_seed;
use crate::scenario::{Expectation, Scenario, SeedRange};
use oversell_sim::{FaultRates, Millis, Outcome, RunResult, ScheduledFault};
use std::collections::{BTreeMap, BTreeSet};

/// Bounds and seeds of a shrink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// At most this many runs in all (the first run of the given seed included).
    pub max_runs: u64,
    /// Seeds tried after the current and the given seed, when they do not fail.
    pub extra_seeds: Vec<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_runs: 2_000,
            extra_seeds: (0..8).collect(),
        }
    }
}

/// A shrunk failure: the smallest scenario found, and the seed that makes it fail.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The reduced scenario, with `run.seeds = seed..seed+1` and `expect` set to the
    /// invariants its run violates under the design (the target among them), so that
    /// `oversell check` passes on it; without `expect` when shrunk with mutations, as
    /// `check` runs designs without them.
    pub scenario: Scenario,
    pub seed: u64,
    /// The seed the shrink started from.
    pub original_seed: u64,
    /// The invariant that still fails.
    pub invariant: Invariant,
    /// Everything the final run violates (`invariant` among them).
    pub violated: BTreeSet<Invariant>,
    pub design: String,
    pub mutations: Vec<Mutation>,
    /// Runs taken, the first one included.
    pub runs: u64,
    /// Reductions kept.
    pub reductions: u64,
    /// The run budget ran out before a fixpoint was reached.
    pub budget_exhausted: bool,
    pub steps_before: u64,
    pub steps_after: u64,
    pub end_time_before: Millis,
    pub end_time_after: Millis,
    pub orders_before: usize,
    pub orders_after: usize,
    pub products_before: usize,
    pub products_after: usize,
    pub restocks_before: usize,
    pub restocks_after: usize,
    pub faults_before: usize,
    pub faults_after: usize,
}

impl Shrunk {
    /// One line per measure: before → after.
    pub fn summary(&self) -> String {
        format!(
            "{} violates {} with seed {} (was seed {})\n\
             orders    {} -> {}\nproducts  {} -> {}\nrestocks  {} -> {}\n\
             faults    {} -> {} scheduled\nsteps     {} -> {}\nend time  {} -> {} ms\n\
             {} runs, {} reductions kept{}",
            self.design,
            self.invariant.name(),
            self.seed,
            self.original_seed,
            self.orders_before,
            self.orders_after,
            self.products_before,
            self.products_after,
            self.restocks_before,
            self.restocks_after,
            self.faults_before,
            self.faults_after,
            self.steps_before,
            self.steps_after,
            self.end_time_before,
            self.end_time_after,
            self.runs,
            self.reductions,
            if self.budget_exhausted {
                " (run budget spent before a fixpoint)"
            } else {
                ""
            }
        )
    }
}

/// Shrink the run of `design` on `scenario` with `seed`, keeping `target` (or, if `None`,
/// the first invariant the run violates) violated, with the default [`Options`].
///
/// Errs if the run violates nothing, or does not violate `target`.
pub fn shrink(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seed: u64,
    target: Option<Invariant>,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, String> {
    shrink_with(
        design,
        scenario,
        mutations,
        seed,
        target,
        &Options::default(),
        progress,
    )
}

/// [`shrink`] with explicit bounds and seeds.
pub fn shrink_with(
    design: &dyn Design,
    scenario: &Scenario,
    mutations: &[Mutation],
    seed: u64,
    target: Option<Invariant>,
    options: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, String> {
    let first = run_seed(design, scenario, mutations, seed);
    let violated = first.verdict.violated();
    let invariant = match target {
        None => *violated.iter().next().ok_or_else(|| {
            format!(
                "seed {seed} of design {} on scenario {:?} violates no invariant: nothing to shrink",
                design.name(),
                scenario.name
            )
        })?,
        Some(t) if violated.contains(&t) => t,
        Some(t) => {
            let found = if violated.is_empty() {
                "nothing".to_string()
            } else {
                violated.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            };
            return Err(format!(
                "seed {seed} of design {} on scenario {:?} does not violate {} (it violates {found}): nothing to shrink",
                design.name(),
                scenario.name,
                t.name()
            ));
        }
    };
    progress(&format!(
        "seed {seed} violates {} ({} orders, {} products, {} steps); shrinking",
        invariant.name(),
        scenario.orders.len(),
        scenario.products.len(),
        first.result.steps
    ));

    let mut s = Shrinker {
        design,
        mutations,
        invariant,
        original_seed: seed,
        options,
        current: scenario.clone(),
        seed,
        end_time: first.result.end_time,
        steps: first.result.steps,
        quiescent: first.result.outcome == Outcome::Quiescent,
        violated,
        runs: 1,
        reductions: 0,
        exhausted: false,
        next_heartbeat: 100,
        rejected: BTreeSet::new(),
        progress,
    };
    let mut pass = 0;
    loop {
        pass += 1;
        let before = s.reductions;
        s.pass();
        (s.progress)(&format!(
            "pass {pass}: {} reductions kept, {} runs so far",
            s.reductions - before,
            s.runs
        ));
        if s.reductions == before || s.exhausted {
            break;
        }
    }

    let mut out = s.current.clone();
    out.name = format!("{}-shrunk", scenario.name);
    out.description = format!(
        "Shrunk by `oversell shrink` from scenario {:?} (design {}, seed {}): the smallest story found \
         that still violates {}.",
        scenario.name,
        design.name(),
        seed,
        invariant.name()
    );
    out.run.seeds = SeedRange {
        start: s.seed,
        end: s.seed + 1,
    };
    // `check` runs designs without mutations, so a mutant's failure is no expectation.
    out.expect = if mutations.is_empty() {
        BTreeMap::from([(
            design.name().to_string(),
            Expectation {
                violates: s.violated.iter().map(|i| i.name().to_string()).collect(),
                hazards: scenario
                    .expect
                    .get(design.name())
                    .map(|e| e.hazards.clone())
                    .unwrap_or_default(),
            },
        )])
    } else {
        BTreeMap::new()
    };
    // The outcomes were promised for the original story; the shrunk one is another story
    // (orders and products gone, times moved), so it promises none.
    out.outcomes = BTreeMap::new();
    Ok(Shrunk {
        seed: s.seed,
        original_seed: seed,
        invariant,
        violated: s.violated.clone(),
        design: design.name().to_string(),
        mutations: mutations.to_vec(),
        runs: s.runs,
        reductions: s.reductions,
        budget_exhausted: s.exhausted,
        steps_before: first.result.steps,
        steps_after: s.steps,
        end_time_before: first.result.end_time,
        end_time_after: s.end_time,
        orders_before: scenario.orders.len(),
        orders_after: out.orders.len(),
        products_before: scenario.products.len(),
        products_after: out.products.len(),
        restocks_before: scenario.restocks.len(),
        restocks_after: out.restocks.len(),
        faults_before: scenario.faults.schedule.len(),
        faults_after: out.faults.schedule.len(),
        scenario: out,
    })
}

struct Shrinker<'a> {
    design: &'a dyn Design,
    mutations: &'a [Mutation],
    invariant: Invariant,
    original_seed: u64,
    options: &'a Options,
    current: Scenario,
    seed: u64,
    /// End time, steps and violations of the current scenario's failing run.
    end_time: Millis,
    steps: u64,
    quiescent: bool,
    violated: BTreeSet<Invariant>,
    runs: u64,
    reductions: u64,
    exhausted: bool,
    /// Run count at which to report that the shrink is still going.
    next_heartbeat: u64,
    /// Candidates (as JSON, with the seed they were tried after) that failed no run.
    rejected: BTreeSet<(u64, String)>,
    progress: &'a mut dyn FnMut(&str),
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
            let judged = run_seed(self.design, &candidate, self.mutations, seed);
            let violated = judged.verdict.violated();
            if violated.contains(&self.invariant)
                && fair(self.invariant, &candidate, &judged.result)
            {
                self.reductions += 1;
                (self.progress)(&format!(
                    "run {}: kept {what} (seed {seed}): {} orders, {} products, {} restocks, {} faults, {} steps",
                    self.runs,
                    candidate.orders.len(),
                    candidate.products.len(),
                    candidate.restocks.len(),
                    candidate.faults.schedule.len(),
                    judged.result.steps
                ));
                self.current = candidate;
                self.seed = seed;
                self.end_time = judged.result.end_time;
                self.steps = judged.result.steps;
                self.quiescent = judged.result.outcome == Outcome::Quiescent;
                self.violated = violated;
                return true;
            }
        }
        self.rejected.insert(key);
        false
    }

    /// One pass of every reduction, in order.
    fn pass(&mut self) {
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
    s.faults
        .schedule
        .retain(|f| !matches!(instance_index(fault_instance(f)), Some(i) if i >= instances));
    s
}

fn fault_instance(f: &ScheduledFault) -> &str {
    match f {
        ScheduledFault::Crash { instance, .. }
        | ScheduledFault::Pause { instance, .. }
        | ScheduledFault::DropProduceAck { instance, .. } => instance,
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
    }
}

/// The shrunk scenario as a scenario file: a comment header that tells where it came from
/// and how to replay it, then the scenario (settings left at their defaults are omitted).
/// The replay command names the file `<this file>`; [`to_toml_at`] names it.
pub fn to_toml(shrunk: &Shrunk, original_path: &str, design: &str) -> String {
    to_toml_at(shrunk, original_path, design, None)
}

/// [`to_toml`], with the path the file will be written to in its replay command.
pub fn to_toml_at(
    shrunk: &Shrunk,
    original_path: &str,
    design: &str,
    path: Option<&str>,
) -> String {
    let mut header = vec![
        format!(
            "Shrunk by `oversell shrink` from {original_path} (design {design}, seed {}).",
            shrunk.original_seed
        ),
        format!(
            "Still violates {} with seed {}.",
            shrunk.invariant.name(),
            shrunk.seed
        ),
    ];
    let others: Vec<&str> = shrunk
        .violated
        .iter()
        .filter(|i| **i != shrunk.invariant)
        .map(|i| i.name())
        .collect();
    if !others.is_empty() {
        header.push(format!("The same run also violates {}.", others.join(", ")));
    }
    if !shrunk.mutations.is_empty() {
        header.push(format!(
            "Mutations: {}. Replay with them; [expect] is left out, as `check` runs without.",
            shrunk
                .mutations
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    header.push(format!(
        "orders {} -> {}, products {} -> {}, restocks {} -> {}, scheduled faults {} -> {}, steps {} -> {} ({} runs).",
        shrunk.orders_before,
        shrunk.orders_after,
        shrunk.products_before,
        shrunk.products_after,
        shrunk.restocks_before,
        shrunk.restocks_after,
        shrunk.faults_before,
        shrunk.faults_after,
        shrunk.steps_before,
        shrunk.steps_after,
        shrunk.runs
    ));
    header.push("Reproduce:".into());
    let flags: String = shrunk
        .mutations
        .iter()
        .map(|m| format!(" --mutation {}", m.name()))
        .collect();
    header.push(format!(
        "  {}{flags}",
        crate::run::replay_command(path.unwrap_or("<this file>"), design, shrunk.seed)
    ));
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&scenario_toml(&shrunk.scenario));
    out
}

/// A scenario as TOML, leaving out every setting equal to its default, with its sections
/// in the order people read them: name, products, orders, restocks, settings, expectations.
pub fn scenario_toml(scenario: &Scenario) -> String {
    let value = toml::Value::try_from(scenario).expect("a scenario serialises to TOML");
    let defaults = toml::Value::try_from(Scenario {
        name: String::new(),
        description: String::new(),
        products: Vec::new(),
        orders: Vec::new(),
        restocks: Vec::new(),
        topology: Default::default(),
        streams: Default::default(),
        payments: Default::default(),
        saga: Default::default(),
        faults: Default::default(),
        run: Default::default(),
        kafka: Default::default(),
        expect: BTreeMap::new(),
        outcomes: BTreeMap::new(),
    })
    .expect("the default scenario serialises to TOML");
    let toml::Value::Table(mut table) = value else {
        unreachable!("a scenario serialises to a TOML table")
    };
    for (key, default) in defaults.as_table().into_iter().flatten() {
        match (table.get_mut(key), default) {
            (Some(toml::Value::Table(t)), toml::Value::Table(d)) => {
                t.retain(|k, v| d.get(k) != Some(v));
                if t.is_empty() {
                    table.remove(key);
                }
            }
            (Some(v), d) if v == d && key != "name" && key != "products" => {
                table.remove(key);
            }
            _ => {}
        }
    }
    const ORDER: [&str; 13] = [
        "name",
        "description",
        "products",
        "orders",
        "restocks",
        "topology",
        "streams",
        "payments",
        "saga",
        "faults",
        "run",
        "expect",
        "outcomes",
    ];
    let mut keys: Vec<String> = ORDER.iter().map(|k| k.to_string()).collect();
    keys.extend(
        table
            .keys()
            .filter(|k| !ORDER.contains(&k.as_str()))
            .cloned(),
    );
    let mut out = String::new();
    for key in keys {
        let Some(v) = table.remove(&key) else {
            continue;
        };
        let mut one = toml::Table::new();
        one.insert(key, v);
        let text = toml::to_string(&one).expect("a TOML value serialises");
        if !out.is_empty() && text.starts_with('[') {
            out.push('\n');
        }
        out.push_str(&text);
    }
    out
}
