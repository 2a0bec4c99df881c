//! Check a design of your own in your own `cargo test`: over scenario files (their
//! expectations and promised `[outcomes]`), their regression seeds and generated
//! scenarios, with seed replay through environment variables.
//!
//! ```no_run
//! use oversell::designs::Registry;
//! use oversell::testing::Suite;
//! # struct Mine;
//! # impl oversell::designs::Design for Mine {
//! #     fn name(&self) -> &'static str { "mine" }
//! #     fn summary(&self) -> &'static str { "" }
//! #     fn schema(&self) -> oversell::designs::Schema { unimplemented!() }
//! #     fn build(&self, _: &oversell::scenario::Scenario, _: &[oversell::designs::Mutation])
//! #         -> oversell::sim::World { unimplemented!() }
//! # }
//!
//! #[test]
//! fn mine_holds() {
//!     Suite::new(Registry::builtin().with(Box::new(Mine)), "mine")
//!         .scenarios(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
//!         .expect("lost-produce-ack-retry", &["one-decision"]) // a known limit, say why
//!         .generated(200)
//!         .assert();
//! }
//! ```
//!
//! What a suite runs, in this order, stopping at nothing (every failure is reported):
//!
//! 1. every regression seed of the design kept beside a scenario (`NAME.seeds`, lines
//!    `<design> <seed> <invariant>[,...]  # note`): it must still show only what the
//!    scenario expects of the design (or hold, where the design is expected to hold);
//! 2. every scenario file (`*.toml`) over its `run.seeds`;
//! 3. generated scenarios: scenario `n` is [`generate(n)`](generate) run with seed `n`.
//!
//! What a design is expected to do on a scenario: what [`Suite::expect`] says, else the
//! scenario's own `[expect]` entry for it, else that it holds.
//!
//! Environment variables (as madsim's `MADSIM_TEST_SEED`):
//!
//! | variable | effect |
//! |---|---|
//! | `OVERSELL_SEED=N` | run seed `N` only (of every scenario, and generated scenario `N`) and print its trace on failure |
//! | `OVERSELL_SEEDS=A..B` | run seeds `A..B` of every scenario, and generated scenarios `A..B` |
//! | `OVERSELL_SCENARIO=NAME` | only the scenario called `NAME` (`generated` for the generated ones) |
//! | `OVERSELL_GENERATED=N` | how many generated scenarios (default: the suite's) |
//! | `OVERSELL_SAVE=1` | keep failing seeds of scenario files in their `NAME.seeds`, and failing generated scenarios as `generated-N.toml` in the scenario directory |

use crate::checker::outcomes::{self, Judgement};
use crate::designs::{Design, Registry};
use crate::expect::{self, RegressionSeed};
use crate::run::{run_seed, Judged};
use crate::scenario::{Scenario, SeedRange};
use oversell_sim::Chooser;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A design's checks; see the [module](self) documentation.
pub struct Suite {
    registry: Registry,
    design: String,
    dirs: Vec<PathBuf>,
    generated: u64,
    expect: BTreeMap<String, BTreeSet<String>>,
}

/// The seeds a run of the suite covers, from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// `OVERSELL_SEED` / `OVERSELL_SEEDS`: replaces every scenario's seed range.
    pub seeds: Option<SeedRange>,
    /// `OVERSELL_SEED` alone: print the trace of a failing run.
    pub trace: bool,
    pub scenario: Option<String>,
    pub generated: Option<u64>,
    pub save: bool,
}

impl Selection {
    /// Read `OVERSELL_SEED`, `OVERSELL_SEEDS`, `OVERSELL_SCENARIO`, `OVERSELL_GENERATED`
    /// and `OVERSELL_SAVE`.
    ///
    /// # Panics
    /// On a value that does not parse: a test run with a mistyped seed must not pass.
    pub fn from_env() -> Selection {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let seed = var("OVERSELL_SEED").map(|v| {
            let n: u64 = v.trim().parse().unwrap_or_else(|_| {
                panic!("OVERSELL_SEED={v:?} is not a seed; write OVERSELL_SEED=7")
            });
            SeedRange {
                start: n,
                end: n + 1,
            }
        });
        let seeds = var("OVERSELL_SEEDS").map(|v| {
            parse_range(v.trim())
                .unwrap_or_else(|| panic!("OVERSELL_SEEDS={v:?} is not a range; write 0..100"))
        });
        let generated = var("OVERSELL_GENERATED").map(|v| {
            v.trim().parse().unwrap_or_else(|_| {
                panic!("OVERSELL_GENERATED={v:?} is not a count; write OVERSELL_GENERATED=500")
            })
        });
        Selection {
            trace: seed.is_some(),
            seeds: seed.or(seeds),
            scenario: var("OVERSELL_SCENARIO"),
            generated,
            save: var("OVERSELL_SAVE").is_some_and(|v| v != "0"),
        }
    }
}

fn parse_range(text: &str) -> Option<SeedRange> {
    let (a, b) = text.split_once("..")?;
    let (start, end) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (start < end).then_some(SeedRange { start, end })
}

/// What one suite run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Runs made (regression seeds, scenario seeds, generated scenarios).
    pub runs: u64,
    /// Per scenario (`generated` for the generated ones): what the design violated.
    pub found: BTreeMap<String, BTreeSet<String>>,
    /// Each unmet expectation, in words, with the command that replays it.
    pub failures: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl Suite {
    /// A suite for the design called `design` in `registry`.
    ///
    /// # Panics
    /// If `registry` has no such design.
    pub fn new(registry: Registry, design: &str) -> Suite {
        assert!(
            registry.get(design).is_some(),
            "no design {design:?} in the registry; it has {}",
            registry.names().join(", ")
        );
        Suite {
            registry,
            design: design.to_string(),
            dirs: Vec::new(),
            generated: 100,
            expect: BTreeMap::new(),
        }
    }

    /// Run the scenario files (`*.toml`) of `dir` and their regression seeds.
    pub fn scenarios(mut self, dir: impl AsRef<Path>) -> Suite {
        self.dirs.push(dir.as_ref().to_path_buf());
        self
    }

    /// Run `n` generated scenarios (default 100; `OVERSELL_GENERATED` overrides).
    pub fn generated(mut self, n: u64) -> Suite {
        self.generated = n;
        self
    }

    /// Expect the design to violate exactly `violates` over the scenario called
    /// `scenario` (`generated`: over the generated ones); `&[]` expects it to hold.
    pub fn expect(mut self, scenario: &str, violates: &[&str]) -> Suite {
        let set = violates.iter().map(|s| s.to_string()).collect();
        self.expect.insert(scenario.to_string(), set);
        self
    }

    /// Run the suite with the environment's [`Selection`], and panic with every unmet
    /// expectation if there is one.
    pub fn assert(self) {
        let selection = Selection::from_env();
        let report = self.run(&selection);
        eprintln!(
            "oversell: design {} — {} runs, {} scenario(s)",
            self.design,
            report.runs,
            report.found.len()
        );
        assert!(
            report.ok(),
            "design {}: {} unmet expectation(s)\n{}",
            self.design,
            report.failures.len(),
            report.failures.join("\n")
        );
    }

    /// Run the suite with `selection` and report (no panic).
    pub fn run(&self, selection: &Selection) -> Report {
        let mut report = Report::default();
        for dir in &self.dirs {
            for (path, scenario) in self.load(dir, &mut report) {
                if selection
                    .scenario
                    .as_ref()
                    .is_some_and(|s| *s != scenario.name)
                {
                    continue;
                }
                self.regressions(&path, &scenario, &mut report);
                self.sweep_file(&path, &scenario, selection, &mut report);
            }
        }
        if matches!(selection.scenario.as_deref(), None | Some("generated")) {
            self.sweep_generated(selection, &mut report);
        }
        report
    }

    fn design(&self) -> &dyn Design {
        self.registry
            .get(&self.design)
            .expect("checked by Suite::new")
    }

    /// What the design is expected to violate on `scenario`.
    pub fn expected(&self, scenario: &Scenario) -> BTreeSet<String> {
        if let Some(e) = self.expect.get(&scenario.name) {
            return e.clone();
        }
        scenario
            .expect
            .get(&self.design)
            .map(|e| e.violates.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn load(&self, dir: &Path, report: &mut Report) -> Vec<(PathBuf, Scenario)> {
        match crate::load::load_dir(dir) {
            Ok(files) => files,
            Err(e) => {
                report.failures.push(format!("{}: {e}", dir.display()));
                Vec::new()
            }
        }
    }

    fn regressions(&self, path: &Path, scenario: &Scenario, report: &mut Report) {
        let file = expect::seeds_path(path);
        let Ok(text) = std::fs::read_to_string(&file) else {
            return;
        };
        let seeds = match expect::parse_seeds_in(&self.registry, &text, &file.display().to_string())
        {
            Ok(seeds) => seeds,
            Err(e) => return report.failures.push(e),
        };
        let expected = self.expected(scenario);
        for kept in seeds.iter().filter(|s| s.design == self.design) {
            let judged = run_seed(self.design(), scenario, &[], kept.seed);
            report.runs += 1;
            let now = violated(&judged);
            if !expect::regression_ok(&now, &kept.violated, &expected) {
                report.failures.push(format!(
                    "{}: kept seed {} ({}) was recorded violating {}; now violates {}; the scenario allows {}\n  replay: {}",
                    file.display(),
                    kept.seed,
                    kept.note,
                    show(&kept.violated),
                    show(&now),
                    show(&expected),
                    replay_env(&scenario.name, kept.seed)
                ));
            }
        }
    }

    fn sweep_file(&self, path: &Path, scenario: &Scenario, sel: &Selection, report: &mut Report) {
        let seeds = sel.seeds.unwrap_or(scenario.run.seeds);
        let expected = self.expected(scenario);
        let mut found = BTreeSet::new();
        let mut first: BTreeMap<String, u64> = BTreeMap::new();
        let mut failing = Vec::new();
        let promised = scenario
            .outcomes
            .get(&self.design)
            .cloned()
            .unwrap_or_default();
        let schema = self.design().schema();
        let mut missed: Option<(u64, Vec<String>)> = None;
        for seed in seeds.start..seeds.end {
            let judged = run_seed(self.design(), scenario, &[], seed);
            report.runs += 1;
            if let Judgement::Missed(m) = outcomes::judge(&schema, &judged.result, &promised) {
                missed.get_or_insert((seed, m));
            }
            let now = violated(&judged);
            if !now.is_subset(&expected) {
                failing.push((seed, now.clone()));
                if sel.trace {
                    eprintln!("{}", trace_text(&judged));
                }
            }
            for inv in &now {
                first.entry(inv.clone()).or_insert(seed);
            }
            found.extend(now);
        }
        report.found.insert(scenario.name.clone(), found.clone());
        if let Some((seed, m)) = missed {
            report.failures.push(format!(
                "{} (seeds {seeds}): seed {seed} misses the promised outcomes: {}\n  replay: {}",
                path.display(),
                m.join("; "),
                replay_env(&scenario.name, seed)
            ));
        }
        // Over the whole range the set must match; over a selection, no surprise.
        let whole = sel.seeds.is_none();
        if (whole && found != expected) || !failing.is_empty() {
            let seed = failing
                .first()
                .map(|f| f.0)
                .or_else(|| first.values().min().copied());
            let mut line = format!(
                "{} (seeds {seeds}): expected {}, found {}",
                path.display(),
                show(&expected),
                show(&found)
            );
            if let Some(seed) = seed {
                let _ = write!(line, "\n  replay: {}", replay_env(&scenario.name, seed));
            }
            report.failures.push(line);
            if sel.save {
                self.save(path, &failing);
            }
        }
    }

    fn save(&self, path: &Path, failing: &[(u64, BTreeSet<String>)]) {
        let seeds: Vec<RegressionSeed> = failing
            .iter()
            .map(|(seed, violated)| RegressionSeed {
                design: self.design.clone(),
                seed: *seed,
                violated: violated.clone(),
                note: "kept by OVERSELL_SAVE".into(),
            })
            .collect();
        if let Err(e) = expect::save_seeds(path, &seeds) {
            eprintln!("oversell: could not keep seeds: {e}");
        }
    }

    fn sweep_generated(&self, sel: &Selection, report: &mut Report) {
        let n = sel.generated.unwrap_or(self.generated);
        let range = sel.seeds.unwrap_or(SeedRange { start: 0, end: n });
        let expected = self.expect.get("generated").cloned().unwrap_or_default();
        let mut found = BTreeSet::new();
        for seed in range.start..range.end {
            let text = generate(seed);
            let scenario = crate::load::load_str(&text, &format!("generated-{seed}.toml"))
                .unwrap_or_else(|e| panic!("a generated scenario must load: {e}\n{text}"));
            let judged = run_seed(self.design(), &scenario, &[], seed);
            report.runs += 1;
            let now = violated(&judged);
            if !now.is_subset(&expected) {
                report.failures.push(format!(
                    "generated scenario {seed} violates {}\n  replay: {}\n{}",
                    show(&now),
                    replay_env("generated", seed),
                    indent(&text)
                ));
                if sel.trace {
                    eprintln!("{}", trace_text(&judged));
                }
                if sel.save {
                    self.save_generated(seed, &text);
                }
            }
            found.extend(now);
        }
        report.found.insert("generated".into(), found);
    }

    fn save_generated(&self, seed: u64, text: &str) {
        if let Some(dir) = self.dirs.first() {
            let path = dir.join(format!("generated-{seed}.toml"));
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("oversell: could not write {}: {e}", path.display());
            }
        }
    }
}

fn violated(judged: &Judged) -> BTreeSet<String> {
    judged
        .verdict
        .violated()
        .iter()
        .map(|i| i.name().to_string())
        .collect()
}

fn show(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "holds".into()
    } else {
        format!(
            "violates {}",
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

fn replay_env(scenario: &str, seed: u64) -> String {
    format!("OVERSELL_SCENARIO={scenario} OVERSELL_SEED={seed} cargo test")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn trace_text(judged: &Judged) -> String {
    let mut out = String::new();
    for v in &judged.verdict.violations {
        let _ = writeln!(out, "  ✗ {v}");
    }
    for r in &judged.result.trace.records {
        let _ = writeln!(out, "{:>7}ms #{:<6} {}", r.time, r.choice, r.event);
    }
    out
}

/// Generated scenario `seed`, as scenario-file text (so that a failing one can be kept
/// as a file): 1–3 products with 0–4 units, 1–6 orders of 1–2 units in the first
/// 450 ms, up to 2 restocks, 1–3 partitions, 1–2 instances of each service, and random
/// crashes, pauses and lost messages in the first 1.5 s. No duplicated or delayed
/// requests: the simulated coordinator predates KIP-890 part 2, so a late `EndTxn` there
/// is a finding of its own (README, Findings).
pub fn generate(seed: u64) -> String {
    let mut c = Chooser::seeded(seed ^ 0x6f76_6572_7365_6c6c);
    let mut pick = |lo: u32, hi: u32| lo + c.choose(hi - lo + 1).expect("a seeded chooser");
    let mut t =
        format!("name = \"generated-{seed}\"\ndescription = \"generated from seed {seed}\"\n");
    let products = pick(1, 3);
    for p in 0..products {
        let stock = pick(0, 4);
        let _ = write!(t, "\n[[products]]\nid = \"product{p}\"\nstock = {stock}\n");
    }
    for o in 0..pick(1, 6) {
        let (p, q, at) = (pick(0, products - 1), pick(1, 2), pick(50, 449));
        let _ = write!(
            t,
            "\n[[orders]]\nid = \"order{o}\"\nproduct = \"product{p}\"\nquantity = {q}\nat = {at}\n"
        );
    }
    for _ in 0..pick(0, 2) {
        let (p, q, at) = (pick(0, products - 1), pick(1, 3), pick(0, 399));
        let _ = write!(
            t,
            "\n[[restocks]]\nproduct = \"product{p}\"\nquantity = {q}\nat = {at}\n"
        );
    }
    let (partitions, instances) = (pick(1, 3), pick(1, 2));
    let _ = write!(
        t,
        "\n[topology]\npartitions = {partitions}\ninstances = {instances}\n"
    );
    let (crash, pause, drop) = (pick(0, 4), pick(0, 3), pick(0, 30));
    let _ = write!(
        t,
        "\n[faults]\nphase_ms = 1500\ncrash = {crash}\npause = {pause}\ndrop = {drop}\n\n[run]\nseeds = \"{seed}..{}\"\n",
        seed + 1
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_scenarios_load_and_depend_on_the_seed_alone() {
        for seed in 0..50 {
            let text = generate(seed);
            assert_eq!(text, generate(seed));
            crate::load::load_str(&text, "generated.toml")
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
        assert_ne!(generate(1), generate(2));
    }

    #[test]
    fn seed_ranges_parse() {
        assert_eq!(parse_range("3..5"), Some(SeedRange { start: 3, end: 5 }));
        assert_eq!(parse_range("5..5"), None);
        assert_eq!(parse_range("x"), None);
    }
}
