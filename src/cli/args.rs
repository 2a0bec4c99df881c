//! The command line's grammar (clap).

use crate::designs::Mutation;
use crate::expect::{FaultClass, Profile};
use crate::scenario::SeedRange;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "oversell",
    version,
    about = "Deterministic simulation of event-sourced inventory services on Kafka",
    after_help = "Exit status: 0 holds, 1 violation (check: an expectation not met), 2 bad input, \
                  3 unsettled (a run ended at a bound: liveness not judged), 4 vacuous (check: an expected \
                  coverage probe never fired), 70 a bug in oversell \
                  (a run panicked), 130 interrupted, 141 output pipe closed."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// One run per design: verdict and a short summary.
    Run {
        scenario: PathBuf,
        #[command(flatten)]
        design: DesignArg,
        /// Seed of the run.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        mutations: MutationArg,
        #[command(flatten)]
        driver: DriverArg,
    },
    /// Sweep seeds; a table per design of violations per invariant.
    Explore(ExploreArgs),
    /// Reproduce one run exactly; print its trace and its violations in plain words.
    Replay(ReplayArgs),
    /// Cut a failing run down to a minimal scenario and seed that still fail.
    Shrink {
        scenario: PathBuf,
        #[arg(long)]
        design: String,
        #[arg(long)]
        seed: u64,
        /// The invariant that must keep failing (default: the first one violated).
        #[arg(long)]
        invariant: Option<String>,
        /// Where to write the minimal scenario (default: print it).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        mutations: MutationArg,
    },
    /// Check every scenario's declared expectations (default: scenarios/*.toml).
    Check {
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        jobs: JobsArg,
        /// Write every file's result as JSON (schema `oversell-check/1`, docs/check-json.md).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Play a scenario on a real Kafka 4.x cluster with real Kafka Streams applications
    /// (the design's live twin in live/), N times; judge each recorded history with the
    /// same checker. Needs Java 17+ (and Maven for the first build: scripts/live-setup).
    ///
    /// A run ends when every application has settled, or at its time bound: the scaled
    /// scenario's own (the earlier of `run.max_time_ms` and the last order or heal plus
    /// `run.decision_bound_ms`, every time ×--time-scale), at least 10 s and at most
    /// 15 minutes (a bound above that is said, and cut there).
    Live(LiveArgs),
    /// The conformance table: for each shipped scenario and each design with a live twin,
    /// the simulator's verdict over the scenario's seeds (fresh) beside the live verdict
    /// (from the summary file; `--runs N --write FILE` runs the live side again).
    ///
    /// Each live run has the time bound `oversell live --help` describes (at most 15
    /// minutes). A run that does not complete (fails to start, is killed, Ctrl-C) is
    /// counted apart as interrupted, never as a run nor a verdict; a cell tries again
    /// until N runs completed or N were interrupted.
    Conformance(ConformanceArgs),
    /// The saga's zombie punctuation on real Kafka: a product-service instance SIGSTOPped
    /// right after its ledger task is restored, its task moved, then SIGCONTed; does its
    /// wall-clock punctuation commit unfenced? (docs/live/zombie-punctuation.toml)
    LiveZombie(LiveZombieArgs),
    /// Combine the JSON reports of `explore --shard i/n` (every shard once) into the
    /// report of the whole sweep, as one machine would have printed and written it.
    Merge {
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Write the merged per-design results as JSON (the same file `explore --json`
        /// writes for the whole range).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The design × fault-class table, produced by runs, as markdown.
    Matrix {
        scenarios: Vec<PathBuf>,
        /// Seeds per scenario and cell.
        #[arg(long, value_parser = parse_seeds, default_value = "0..350")]
        seeds: SeedRange,
        /// Seeds per scenario in the `broker` column (its runs cost about five times a
        /// single-broker one).
        #[arg(long = "broker-seeds", value_parser = parse_seeds, default_value = "0..35")]
        broker_seeds: SeedRange,
        /// Run every scenario on this transaction protocol version instead of its own
        /// `[kafka] transaction_version` (1: before KIP-890 part 2; 2: Kafka 4.x).
        #[arg(long = "transaction-version", value_parser = clap::value_parser!(u8).range(1..=2))]
        transaction_version: Option<u8>,
        #[command(flatten)]
        jobs: JobsArg,
    },
    /// The design × settings table, produced by runs, as markdown: every design under
    /// the `broker` fault class with each settings profile (as shipped on Kafka's
    /// defaults, RF 3 with min ISR 1, acks=1, safe, safe with unclean election), then what
    /// an inventory service must configure, written from the table.
    Settings {
        scenarios: Vec<PathBuf>,
        /// Seeds per scenario and cell.
        #[arg(long, value_parser = parse_seeds, default_value = "0..35")]
        seeds: SeedRange,
        #[command(flatten)]
        jobs: JobsArg,
    },
}

#[derive(Args)]
pub struct ExploreArgs {
    pub scenario: PathBuf,
    #[command(flatten)]
    pub design: DesignArg,
    /// Seeds to sweep, `A..B` (default: the scenario's `run.seeds`).
    #[arg(long, value_parser = parse_seeds)]
    pub seeds: Option<SeedRange>,
    #[command(flatten)]
    pub jobs: JobsArg,
    /// Write the per-design results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Stop each design's sweep at its first violating seed.
    #[arg(long)]
    pub stop_on_first: bool,
    /// Keep the first failing seed of each design in the scenario's regression file.
    #[arg(long)]
    pub save: bool,
    /// Run only the i-th of n contiguous parts of the seed range (1 <= i <= n); with
    /// `--json`, write a shard report for `oversell merge`.
    #[arg(long, value_parser = crate::shard::Shard::parse, conflicts_with = "stop_on_first")]
    pub shard: Option<crate::shard::Shard>,
    /// `--strategy exhaustive`: the most runs (choice prefixes) the search may make; past
    /// it the search stops and proves nothing.
    #[arg(long = "max-runs", default_value_t = 1_000_000)]
    pub max_runs: u64,
    /// `--strategy exhaustive`: re-run every run's prefix from the start instead of
    /// resuming a copy of the world where it branches off (the same search, slower; for
    /// comparison).
    #[arg(long = "rerun-prefixes")]
    pub rerun_prefixes: bool,
    /// `--strategy exhaustive`: write the shortest counterexample's choice log here (for
    /// `replay --choices`).
    #[arg(long = "counterexample")]
    pub counterexample: Option<PathBuf>,
    #[command(flatten)]
    pub mutations: MutationArg,
    #[command(flatten)]
    pub driver: DriverArg,
}

/// Which driver runs the designs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    /// oversell's own scheduler over the sans-IO state machines.
    #[default]
    Simulator,
    /// The designs as async services on the rdkafka-shaped client, run by madsim
    /// (needs a `--cfg madsim` build; designs: naive, rekeyed-eos, saga, saga-direct-timers).
    Madsim,
}

#[derive(Args)]
pub struct DriverArg {
    /// The driver: `simulator` (default) or `madsim`.
    #[arg(long, value_enum, default_value_t = Driver::Simulator)]
    pub driver: Driver,
}

#[derive(Args)]
pub struct LiveArgs {
    pub scenario: PathBuf,
    /// The design (one with a live twin: naive).
    #[arg(long)]
    pub design: String,
    /// How many live runs (each on fresh topics of the same cluster).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Brokers in the cluster (KRaft, each its own JVM on 127.0.0.1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub brokers: u32,
    /// First of the ports to use (two per broker); default: free ports.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Directory of the history files.
    #[arg(long, default_value = "runs/live")]
    pub out: PathBuf,
    /// Every time of the scenario's story multiplied by this live (default: the smallest
    /// factor that makes the session timeout at least 6 s; 1 plays the times as written).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub time_scale: Option<u64>,
}

#[derive(Args)]
pub struct ConformanceArgs {
    /// The live summary the table is rendered from.
    #[arg(long, default_value = "docs/live/conformance.json")]
    pub summary: PathBuf,
    /// The hand-kept reasons for rows where the two sides differ.
    #[arg(long, default_value = "docs/live/conformance-reasons.toml")]
    pub reasons: PathBuf,
    /// Live runs per playable scenario × design (0: render from the summary only).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub runs: u32,
    /// Where to write the summary after the live runs (cells not run are kept from
    /// `--summary`); required with `--runs`.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Only these scenarios' live cells (file names or names; default: all).
    #[arg(long = "only", value_name = "SCENARIO")]
    pub only: Vec<String>,
    /// Only these designs' live cells (default: every design with a twin).
    #[arg(long = "design", value_name = "DESIGN")]
    pub designs: Vec<String>,
    /// Brokers in the cluster.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub brokers: u32,
    /// First of the ports to use (two per broker); default: free ports.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Directory of the history files.
    #[arg(long, default_value = "runs/live")]
    pub out: PathBuf,
    /// Every time of the scenario's story multiplied by this live (default: the smallest
    /// factor that makes the session timeout at least 6 s; 1 plays the times as written).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub time_scale: Option<u64>,
}

#[derive(Args)]
pub struct LiveZombieArgs {
    /// The experiment's workload.
    #[arg(long, default_value = "docs/live/zombie-punctuation.toml")]
    pub scenario: PathBuf,
    /// `saga-direct-timers` (the punctuation writes its effects) or `saga`.
    #[arg(long, default_value = "saga-direct-timers")]
    pub design: String,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// First of the ports to use (two per broker); default: free ports.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Directory of the history files.
    #[arg(long, default_value = "runs/live")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[arg(required_unless_present = "history")]
    pub scenario: Option<PathBuf>,
    /// The design (required, except with --history).
    #[arg(long, required_unless_present = "history", default_value = "")]
    pub design: String,
    #[arg(long, required_unless_present_any = ["choices", "history"])]
    pub seed: Option<u64>,
    /// Re-judge a live run's recorded history file (from `oversell live`) instead.
    #[arg(long, conflicts_with_all = ["seed", "choices", "scenario", "trace", "html", "json"])]
    pub history: Option<PathBuf>,
    /// Replay a recorded choice log (from --json output) instead of a seed.
    #[arg(long, conflicts_with = "seed")]
    pub choices: Option<PathBuf>,
    /// Print every trace event (RUST_LOG filters it further).
    #[arg(long)]
    pub trace: bool,
    /// Include message deliveries and fetches in the printed trace.
    #[arg(long)]
    pub all: bool,
    /// Write a self-contained HTML timeline.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the whole trace and verdict as JSON (schema: docs/run-json.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub mutations: MutationArg,
    /// The driver of the replayed run (`madsim`: `--seed` is madsim's seed, the value of a
    /// `MADSIM_TEST_SEED`).
    #[command(flatten)]
    pub driver: DriverArg,
}

#[derive(Args)]
pub struct DesignArg {
    /// A design name, or `all`.
    #[arg(long, default_value = "all")]
    pub design: String,
}

#[derive(Args)]
pub struct JobsArg {
    /// Worker threads, at least 1 (default: available cores); capped at the number of
    /// seeds and at 256.
    #[arg(long, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
}

impl JobsArg {
    pub fn get(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[derive(Args)]
pub struct MutationArg {
    /// Deliberate defect to inject (repeatable): commit-before-process, unfenced,
    /// read-uncommitted, non-idempotent-retry, no-timeout, non-idempotent-compensation.
    #[arg(long = "mutation", value_parser = parse_mutation)]
    pub mutations: Vec<Mutation>,
    /// Replace the scenario's faults with a fault class of the matrix: none, crash,
    /// pause, network, all, broker.
    #[arg(long = "fault-class", value_parser = parse_fault_class)]
    pub fault_class: Option<FaultClass>,
    /// Run under the `broker` fault class with a settings profile of `oversell settings`:
    /// as-shipped, min-isr-1, acks-1, safe, safe-unclean (replaces `--fault-class`).
    #[arg(long = "settings", value_parser = parse_profile, conflicts_with = "fault_class")]
    pub settings: Option<Profile>,
    /// `swarm`: every run draws its own fault mix (crash, pause, drop, duplicate, delay
    /// rates and durations) from ranges, deterministically from its seed, and prints it
    /// first (the scenario key `[faults] swarm = true`).
    #[arg(long = "faults", value_parser = ["swarm"])]
    pub faults: Option<String>,
    /// How the scheduler picks: `random` (the default), `pct` (priority-based) or
    /// `exhaustive` (a bounded search over every choice; `explore` searches, `replay
    /// --choices` replays its counterexample); the scenario key `[run] strategy`.
    #[arg(long = "strategy", value_parser = ["random", "pct", "exhaustive"])]
    pub strategy: Option<String>,
    /// The exhaustive search's bound on crashes per run (`[run] max_crashes`).
    #[arg(long = "max-crashes", value_parser = clap::value_parser!(u32).range(0..=4))]
    pub max_crashes: Option<u32>,
    /// The exhaustive search's bound on pauses per run (`[run] max_pauses`).
    #[arg(long = "max-pauses", value_parser = clap::value_parser!(u32).range(0..=4))]
    pub max_pauses: Option<u32>,
    /// The exhaustive search's bound on network faults per run (`[run] max_net_faults`):
    /// a request delayed (by the upper end of its delay range) or duplicated, at any
    /// delivery before the fault phase ends, of the kinds the fault class has (none
    /// otherwise); default 0; without the partial-order reduction.
    #[arg(long = "max-net-faults", value_parser = clap::value_parser!(u32).range(0..=4))]
    pub max_net_faults: Option<u32>,
    /// The exhaustive search's bound on deviations from the default schedule per run
    /// (`[run] max_deviations`): every fault placement with the default schedule first,
    /// then with 1, 2, … up to N deviations; without the partial-order reduction.
    #[arg(long = "max-deviations", value_parser = parse_deviations)]
    pub max_deviations: Option<u32>,
    /// The exhaustive search without its partial-order reduction (sleep sets and fault
    /// points moved to the crashed instance's next own action): every interleaving of
    /// independent actions searched (slower; for comparison). A choice log replays only
    /// with the setting it was found with.
    #[arg(long = "no-reduction")]
    pub no_reduction: bool,
    /// PCT's depth d: d - 1 priority change points (the scenario key `[run] pct_depth`).
    #[arg(long = "pct-depth", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub pct_depth: Option<u32>,
    /// Model the transaction coordinator of this protocol version instead of the
    /// scenario's `[kafka] transaction_version`: 2 (KIP-890 part 2, Kafka 4.x's default)
    /// or 1 (before it: a late `EndTxn` can complete the next transaction).
    #[arg(long = "transaction-version", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub transaction_version: Option<u8>,
}

impl MutationArg {
    /// The flags that repeat these options in a printed command.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for m in &self.mutations {
            flags.extend(["--mutation".to_string(), m.name().to_string()]);
        }
        if let Some(class) = self.fault_class {
            flags.extend(["--fault-class".to_string(), class.flag().to_string()]);
        }
        if let Some(profile) = self.settings {
            flags.extend(["--settings".to_string(), profile.flag().to_string()]);
        }
        if let Some(faults) = &self.faults {
            flags.extend(["--faults".to_string(), faults.clone()]);
        }
        if let Some(strategy) = &self.strategy {
            flags.extend(["--strategy".to_string(), strategy.clone()]);
        }
        if let Some(depth) = self.pct_depth {
            flags.extend(["--pct-depth".to_string(), depth.to_string()]);
        }
        if let Some(n) = self.max_crashes {
            flags.extend(["--max-crashes".to_string(), n.to_string()]);
        }
        if let Some(n) = self.max_pauses {
            flags.extend(["--max-pauses".to_string(), n.to_string()]);
        }
        if let Some(n) = self.max_net_faults {
            flags.extend(["--max-net-faults".to_string(), n.to_string()]);
        }
        if let Some(n) = self.max_deviations {
            flags.extend(["--max-deviations".to_string(), n.to_string()]);
        }
        if self.no_reduction {
            flags.push("--no-reduction".to_string());
        }
        if let Some(version) = self.transaction_version {
            flags.extend(["--transaction-version".to_string(), version.to_string()]);
        }
        flags
    }
}

fn parse_deviations(text: &str) -> Result<u32, String> {
    let max = crate::scenario::MAX_DEVIATIONS;
    match text.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of deviations from the default schedule (0 to {max})"
        )),
    }
}

fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number of threads (1 or more)")),
    }
}

fn parse_fault_class(text: &str) -> Result<FaultClass, String> {
    FaultClass::EVERY
        .into_iter()
        .find(|c| c.flag() == text)
        .ok_or_else(|| {
            format!("unknown fault class {text:?}; known: none, crash, pause, network, all, broker")
        })
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    Profile::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Profile::EVERY.iter().map(|p| p.flag()).collect();
        format!(
            "unknown settings profile {text:?}; known: {}",
            names.join(", ")
        )
    })
}

fn parse_seeds(text: &str) -> Result<SeedRange, String> {
    SeedRange::parse(text)
}

fn parse_mutation(text: &str) -> Result<Mutation, String> {
    Mutation::ALL
        .into_iter()
        .find(|m| m.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
            format!("unknown mutation {text:?}; known: {}", names.join(", "))
        })
}

impl ReplayArgs {
    /// The scenario file (clap requires one unless `--history` is given, which is
    /// handled before this is asked).
    pub fn scenario_path(&self) -> &std::path::Path {
        self.scenario.as_deref().unwrap_or(std::path::Path::new(""))
    }
}
