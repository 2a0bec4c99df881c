//! The design × fault-class matrix and the design × settings table: runs over the
//! shipped scenarios' workloads, as markdown for the README.

mod settings;

pub use settings::*;

use crate::checker::Invariant;
use crate::designs::Registry;
use crate::run::{sweep, Sweep};
use crate::scenario::{Scenario, SeedRange};
use oversell_sim::{FaultRates, Millis};
use std::collections::BTreeMap;

/// A class of faults for the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultClass {
    None,
    Crash,
    Pause,
    Network,
    All,
    /// Broker faults: crashes (half of them losing the broker's unflushed data), network
    /// partitions (from the other brokers and the controller, from the clients, or both)
    /// and slow followers, on a three-broker cluster (a scenario of one broker gets three,
    /// replication factor 3, `min.insync.replicas = 2`, no unclean election:
    /// [`Profile::Safe`]; [`Profile::apply`] puts other settings on it). Each run draws
    /// whether its faults stay one at a time or may overlap ([`BROKER_OVERLAP`]).
    Broker,
}

/// The `broker` class's `broker_overlap`: half its runs keep their broker faults one at
/// a time (the run's coin), the other half give each fault a second one before it heals
/// with a chance drawn in 1..=300 per mille (15% on average). The faults heal within
/// 50..600 ms, about the cluster's `replica_lag_time_max_ms` (200 ms): a second failure
/// within the replica lag window of the first, as correlated failures (a rack's power, a
/// rolling restart, an overloaded cluster) bring them.
pub const BROKER_OVERLAP: u32 = 300;

impl FaultClass {
    /// The matrix's columns.
    pub const ALL: [FaultClass; 6] = FaultClass::EVERY;

    /// Every class `--fault-class` takes: the matrix's columns.
    pub const EVERY: [FaultClass; 6] = [
        FaultClass::None,
        FaultClass::Crash,
        FaultClass::Pause,
        FaultClass::Network,
        FaultClass::All,
        FaultClass::Broker,
    ];

    /// The name on the command line (`--fault-class`).
    pub fn flag(self) -> &'static str {
        match self {
            FaultClass::None => "none",
            FaultClass::Crash => "crash",
            FaultClass::Pause => "pause",
            FaultClass::Network => "network",
            FaultClass::All => "all",
            FaultClass::Broker => "broker",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultClass::None => "no faults",
            FaultClass::Crash => "crash",
            FaultClass::Pause => "pause (zombie)",
            FaultClass::Network => "network (drop, duplicate, delay)",
            FaultClass::All => "all together",
            FaultClass::Broker => {
                "broker (crash, fsync loss, partition, slow follower; overlapping in some runs)"
            }
        }
    }

    /// Random fault rates of the class.
    pub fn rates(self) -> FaultRates {
        let base = FaultRates::default();
        match self {
            FaultClass::None => base,
            FaultClass::Crash => FaultRates { crash: 4, ..base },
            FaultClass::Pause => FaultRates { pause: 4, ..base },
            FaultClass::Network => FaultRates {
                drop: 20,
                duplicate: 20,
                delay: 20,
                ..base
            },
            FaultClass::All => FaultRates {
                crash: 2,
                pause: 2,
                drop: 10,
                duplicate: 10,
                delay: 10,
                ..base
            },
            FaultClass::Broker => FaultRates {
                broker_crash: 4,
                fsync_loss: 500,
                broker_partition: 4,
                slow_follower: 4,
                broker_overlap: BROKER_OVERLAP,
                ..base
            },
        }
    }

    /// The scenario with its own faults replaced by this class during its arrivals.
    pub fn apply(self, scenario: &Scenario) -> Scenario {
        let mut s = scenario.clone();
        s.faults.schedule.clear();
        s.faults.rates = self.rates();
        let phase: Millis = scenario.last_arrival() + 500;
        s.faults.phase_ms = if self == FaultClass::None { 0 } else { phase };
        if self == FaultClass::Broker && s.cluster.brokers == 1 {
            s.cluster = crate::scenario::ClusterSpec {
                brokers: 3,
                replication_factor: Some(3),
                min_insync_replicas: 2,
                ..crate::scenario::ClusterSpec::default()
            };
        }
        s
    }
}

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    pub design: String,
    pub class: FaultClass,
    pub sweep: Sweep,
    /// Per violated invariant: the first scenario and seed that show it.
    pub first: BTreeMap<Invariant, (String, u64)>,
}

impl Cell {
    pub fn text(&self) -> String {
        cell_text(
            &self.sweep,
            &self.first,
            &format!("--fault-class {}", self.class.flag()),
        )
    }
}

/// A cell's text: "holds (N runs)", or the invariants violated with their counts and one
/// scenario and seed that shows them, replayed with `flags`.
pub fn cell_text(sweep: &Sweep, first: &BTreeMap<Invariant, (String, u64)>, flags: &str) -> String {
    if sweep.violations.is_empty() {
        let mut t = format!("holds ({} runs)", sweep.runs);
        if sweep.unsettled > 0 {
            t.push_str(&format!(", {} unsettled", sweep.unsettled));
        }
        return t;
    }
    let parts: Vec<String> = sweep
        .violations
        .iter()
        .map(|(inv, (n, _))| format!("{} {n}", inv.name()))
        .collect();
    let example = first
        .values()
        .min_by_key(|(_, seed)| *seed)
        .map(|(scenario, seed)| format!(", e.g. {scenario} seed {seed} `{flags}`"))
        .unwrap_or_default();
    format!("{} of {} runs{example}", parts.join(", "), sweep.runs)
}

/// Every scenario of `scenarios` swept on `design` as `prepare` makes it: the merged
/// sweep, and per violated invariant the first scenario and seed that show it.
pub fn sweep_all(
    design: &dyn crate::designs::Design,
    scenarios: &[Scenario],
    seeds: SeedRange,
    jobs: usize,
    prepare: impl Fn(&Scenario) -> Scenario,
) -> (Sweep, BTreeMap<Invariant, (String, u64)>) {
    let mut total = Sweep::default();
    let mut first = BTreeMap::new();
    for scenario in scenarios {
        let s = prepare(scenario);
        let sw = sweep(design, &s, &[], seeds, jobs, &|_, _| true);
        for (inv, (_, seed)) in &sw.violations {
            first
                .entry(*inv)
                .or_insert_with(|| (scenario.name.clone(), *seed));
        }
        total.merge(&sw);
    }
    (total, first)
}

/// Run every shipped design under every fault class over the scenarios' workloads.
pub fn matrix(
    scenarios: &[Scenario],
    seeds: MatrixSeeds,
    jobs: usize,
    progress: impl FnMut(&str),
) -> Vec<Cell> {
    matrix_in(&Registry::builtin(), scenarios, seeds, jobs, progress)
}

/// Run every design of `registry` under every fault class over the scenarios' workloads.
pub fn matrix_in(
    registry: &Registry,
    scenarios: &[Scenario],
    seeds: MatrixSeeds,
    jobs: usize,
    mut progress: impl FnMut(&str),
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for design in registry.iter() {
        for class in FaultClass::ALL {
            let range = seeds.of(class);
            let (total, first) = sweep_all(design, scenarios, range, jobs, |s| class.apply(s));
            progress(&format!("{} × {}", design.name(), class.name()));
            cells.push(Cell {
                design: design.name().to_string(),
                class,
                sweep: total,
                first,
            });
        }
    }
    cells
}

/// Seeds per scenario and cell: `seeds` for the single-broker classes, `broker` for the
/// `broker` column, whose runs cost about five times as much (three brokers' logs,
/// follower fetches, elections: 64 s against 13 s for `all` over the shipped scenarios,
/// seeds 0..35, every design, release, one thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixSeeds {
    pub seeds: SeedRange,
    pub broker: SeedRange,
}

impl MatrixSeeds {
    pub fn of(self, class: FaultClass) -> SeedRange {
        if class == FaultClass::Broker {
            self.broker
        } else {
            self.seeds
        }
    }
}

/// Seeds per scenario and cell behind the README's matrix (and `oversell matrix`'s
/// default): with the nine shipped scenarios, 3,150 runs per cell, and 315 in the
/// `broker` column (see [`MatrixSeeds`]).
pub const MATRIX_SEEDS: MatrixSeeds = MatrixSeeds {
    seeds: SeedRange { start: 0, end: 350 },
    broker: SeedRange { start: 0, end: 35 },
};

/// The lines above a matrix: where it comes from, as a comment, and the runs per cell
/// with the chance that a design breaking in 1 run in 1,000 shows in a cell; then the
/// same for the `broker` column.
pub fn matrix_header(scenarios: &[&str], seeds: MatrixSeeds) -> String {
    let (main, broker) = (seeds.seeds, seeds.broker);
    let command = format!("oversell matrix --seeds {main} --broker-seeds {broker}");
    let mut header = table_header(&command, scenarios, main);
    let runs = scenarios.len() as u64 * broker.len();
    header.truncate(header.trim_end().len());
    header.push_str(&format!(
        "\nThe broker column: {} runs per cell ({} seeds per scenario, {broker}), as a \
         broker-fault run costs about five times a single-broker one; a 1-in-1,000 break \
         shows there with probability {:.0}%.\n\n",
        thousands(runs),
        thousands(broker.len()),
        shows(runs)
    ));
    header
}

/// The chance, in percent, that a break of 1 run in 1,000 shows in `runs` runs.
fn shows(runs: u64) -> f64 {
    100.0 * (1.0 - 0.999f64.powf(runs as f64))
}

/// The lines above a table produced by `command`.
pub fn table_header(command: &str, scenarios: &[&str], seeds: SeedRange) -> String {
    let runs = scenarios.len() as u64 * seeds.len();
    let shows = shows(runs);
    format!(
        "<!-- produced by `{command}` over {} -->\n\
         {} runs per cell ({} scenarios × {} seeds, {seeds}): a design that breaks in 1 run \
         in 1,000 shows in a cell with probability {shows:.0}%.\n\n",
        scenarios.join(", "),
        thousands(runs),
        scenarios.len(),
        thousands(seeds.len()),
    )
}

/// `3150` → `3,150`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The matrix of the shipped designs as a markdown table.
pub fn matrix_markdown(cells: &[Cell]) -> String {
    matrix_markdown_in(&Registry::builtin(), cells)
}

/// The matrix as a markdown table: a row per design of `registry`, a column per fault
/// class.
pub fn matrix_markdown_in(registry: &Registry, cells: &[Cell]) -> String {
    let columns = FaultClass::ALL.map(FaultClass::name);
    design_table(registry, &columns, |design, column| {
        cells
            .iter()
            .find(|c| c.design == design && c.class == FaultClass::ALL[column])
            .map(Cell::text)
            .unwrap_or_default()
    })
}

/// A markdown table with a row per design of `registry` and one column per name of
/// `columns`; `cell(design, column)` writes each cell. The matrix and the settings table
/// are both drawn by it.
pub fn design_table(
    registry: &Registry,
    columns: &[&str],
    cell: impl Fn(&str, usize) -> String,
) -> String {
    let mut out = String::from("| design |");
    for name in columns {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for design in registry.iter() {
        out.push_str(&format!("| `{}` |", design.name()));
        for column in 0..columns.len() {
            out.push_str(&format!(" {} |", cell(design.name(), column)));
        }
        out.push('\n');
    }
    out
}
