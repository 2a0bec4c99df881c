//! Expectations and regression seeds: everything a scenario file claims, judged by runs.
//! The design × fault-class matrix lives in [`crate::matrix`] (re-exported here).

use crate::checker::outcomes::{judge as judge_outcomes, Judgement};
use crate::checker::{Invariant, Probe};
use crate::designs::{Design, Mutation, Registry};
use crate::run::{sweep, Judged, Sweep};
use crate::scenario::Scenario;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use crate::matrix::*;

/// How a design's sweep compared with what its scenario expects.
#[derive(Clone, Debug)]
pub struct ExpectationCheck {
    pub design: String,
    pub expected: BTreeSet<String>,
    pub found: BTreeSet<String>,
    pub sweep: Sweep,
    /// The seed, when the range holds one seed only: the expectation then pins a
    /// regression, it is not a verdict on the design.
    pub pin: Option<u64>,
    /// The platform hazards the expectation relies on being closed.
    pub hazards: Vec<String>,
    /// The promised outcomes over the same runs.
    pub outcomes: OutcomeCheck,
    /// The probes the scenario expects of this design (`[expect_probes]`).
    pub expected_probes: Vec<String>,
    /// Those among them that never fired: the sweep is vacuous if any.
    pub vacuous: Vec<String>,
}

/// How the runs of a sweep met the outcomes their scenario promises.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OutcomeCheck {
    /// Whether the scenario promises any outcome for the design.
    pub promised: bool,
    /// Settled runs judged.
    pub judged: u64,
    /// Runs that missed some promise.
    pub missed: u64,
    /// The lowest seed that missed, with what it missed.
    pub first_miss: Option<(u64, Vec<String>)>,
}

impl OutcomeCheck {
    pub fn met(&self) -> bool {
        self.missed == 0
    }

    fn add(&mut self, seed: u64, judgement: &Judgement) {
        match judgement {
            Judgement::NotJudged => {}
            Judgement::Met => self.judged += 1,
            Judgement::Missed(m) => {
                self.judged += 1;
                self.missed += 1;
                if self.first_miss.as_ref().is_none_or(|(s, _)| seed < *s) {
                    self.first_miss = Some((seed, m.clone()));
                }
            }
        }
    }
}

impl ExpectationCheck {
    /// Whether the runs violated exactly the expected invariants and met every promised
    /// outcome.
    pub fn matches(&self) -> bool {
        self.expected == self.found && self.outcomes.met()
    }

    /// Whether some expected probe never fired: a clean result over these runs did not
    /// reach the situation the scenario was written for.
    pub fn is_vacuous(&self) -> bool {
        !self.vacuous.is_empty()
    }

    /// `verdict`, or `regression-pin` for an expectation over one seed.
    pub fn kind(&self) -> &'static str {
        if self.pin.is_some() {
            "regression-pin"
        } else {
            "verdict"
        }
    }

    /// One line for people: what was expected, what the runs showed, which seed to replay.
    pub fn describe(&self, scenario_path: &str) -> String {
        let show = |s: &BTreeSet<String>| {
            if s.is_empty() {
                "holds".to_string()
            } else {
                format!(
                    "violates {}",
                    s.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        };
        let mut line = format!(
            "{:<12} expected {:<40} found {} ({} runs)",
            self.design,
            show(&self.expected),
            show(&self.found),
            self.sweep.runs
        );
        if let Some(seed) = self.pin {
            line.push_str(&format!(" — regression pin of seed {seed}, not a verdict"));
        }
        if !self.hazards.is_empty() {
            line.push_str(&format!(
                " — relies on the closed hazard {}",
                self.hazards.join(", ")
            ));
        }
        let o = &self.outcomes;
        if o.promised {
            line.push_str(&format!(
                "\n             outcomes: met in {} of {} settled runs",
                o.judged - o.missed,
                o.judged
            ));
            if let Some((seed, missed)) = &o.first_miss {
                line.push_str(&format!(
                    "; seed {seed}: {}\n             replay: {}",
                    missed.join("; "),
                    crate::run::replay_command(scenario_path, &self.design, *seed)
                ));
            }
        }
        if self.is_vacuous() {
            line.push_str(&format!(
                "\n             VACUOUS: expected probe(s) {} never fired in {} runs: the runs never reached the situation they were written for",
                self.vacuous.join(", "),
                self.sweep.runs
            ));
        }
        if self.expected != self.found {
            if let Some(seed) = self.sweep.first_failing_seed() {
                line.push_str(&format!(
                    "\n             replay: {}",
                    crate::run::replay_command(scenario_path, &self.design, seed)
                ));
            }
        }
        line
    }
}

/// Sweep every design named in the scenario's `[expect]` over its seed range
/// (the shipped designs; [`check_expectations_in`] for a registry of one's own).
pub fn check_expectations(
    scenario: &Scenario,
    jobs: usize,
) -> Result<Vec<ExpectationCheck>, String> {
    check_expectations_in(&Registry::builtin(), scenario, jobs)
}

/// Sweep every design named in the scenario's `[expect]` over its seed range, looking the
/// names up in `registry`.
pub fn check_expectations_in(
    registry: &Registry,
    scenario: &Scenario,
    jobs: usize,
) -> Result<Vec<ExpectationCheck>, String> {
    check_expectations_with(registry, scenario, &[], jobs)
}

/// [`check_expectations_in`] with deliberate defects switched on: the scenario's
/// expectations and promised outcomes judged against a mutant.
pub fn check_expectations_with(
    registry: &Registry,
    scenario: &Scenario,
    mutations: &[Mutation],
    jobs: usize,
) -> Result<Vec<ExpectationCheck>, String> {
    let mut out = Vec::new();
    for (name, expectation) in &scenario.expect {
        let design = design_in(registry, name)?;
        let promised = scenario.outcomes.get(name).cloned().unwrap_or_default();
        let schema = design.schema();
        let outcomes = Mutex::new(OutcomeCheck {
            promised: !promised.is_empty(),
            ..OutcomeCheck::default()
        });
        let on_run = |seed: u64, judged: &Judged| {
            let j = judge_outcomes(&schema, &judged.result, &promised);
            outcomes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(seed, &j);
            true
        };
        let sweep = sweep(
            design,
            scenario,
            mutations,
            scenario.run.seeds,
            jobs,
            &on_run,
        );
        let found = sweep
            .violations
            .keys()
            .map(|i| i.name().to_string())
            .collect();
        let seeds = scenario.run.seeds;
        let expected_probes = scenario
            .expect_probes
            .get(name)
            .cloned()
            .unwrap_or_default();
        let probes: Vec<Probe> = expected_probes
            .iter()
            .map(|n| Probe::parse(n).ok_or_else(|| format!("unknown probe {n:?}")))
            .collect::<Result<_, _>>()?;
        let vacuous = sweep
            .vacuous(&probes)
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        out.push(ExpectationCheck {
            expected_probes,
            vacuous,
            design: name.clone(),
            expected: expectation.violates.iter().cloned().collect(),
            found,
            sweep,
            pin: (seeds.len() == 1).then_some(seeds.start),
            hazards: expectation.hazards.clone(),
            outcomes: outcomes.into_inner().unwrap_or_else(|e| e.into_inner()),
        });
    }
    Ok(out)
}

// ----- regression seeds -----

/// A failing seed kept beside its scenario: `scenarios/<name>.seeds`, one per line,
/// `<design> <seed> <invariant>[,<invariant>...]  # note`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegressionSeed {
    pub design: String,
    pub seed: u64,
    pub violated: BTreeSet<String>,
    pub note: String,
}

/// Whether a kept seed still shows what it was kept for: exactly the invariants recorded
/// with it (`recorded`; empty for a seed kept because it holds), and nothing its scenario
/// does not expect of the design (`expected`; empty where the design must hold). A seed
/// that now violates fewer invariants than it was recorded with fails too: a checker that
/// stopped seeing one of them must not pass by the others.
pub fn regression_ok(
    now: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
    expected: &BTreeSet<String>,
) -> bool {
    now == recorded && now.is_subset(expected)
}

pub struct Replayed {
    pub seed: RegressionSeed,
    pub now: BTreeSet<String>,
    pub expected: BTreeSet<String>,
}

impl Replayed {
    pub fn ok(&self) -> bool {
        regression_ok(&self.now, &self.seed.violated, &self.expected)
    }
}

/// Replay the regression seeds kept beside `scenario_path` (none if it has no file).
pub fn replay_regressions(
    scenario_path: &Path,
    scenario: &Scenario,
) -> Result<Vec<Replayed>, String> {
    replay_regressions_in(&Registry::builtin(), scenario_path, scenario)
}

/// Replay the regression seeds kept beside `scenario_path`, looking designs up in
/// `registry`.
pub fn replay_regressions_in(
    registry: &Registry,
    scenario_path: &Path,
    scenario: &Scenario,
) -> Result<Vec<Replayed>, String> {
    let file = seeds_path(scenario_path);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for seed in parse_seeds_in(registry, &text, &file.display().to_string())? {
        let design = design_in(registry, &seed.design)?;
        let judged = crate::run::run_seed(design, scenario, &[], seed.seed);
        let now = judged
            .verdict
            .violated()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let expected = scenario
            .expect
            .get(&seed.design)
            .map(|e| e.violates.iter().cloned().collect())
            .unwrap_or_default();
        out.push(Replayed {
            seed,
            now,
            expected,
        });
    }
    Ok(out)
}

/// The regression file of a scenario file.
pub fn seeds_path(scenario_path: &Path) -> PathBuf {
    scenario_path.with_extension("seeds")
}

/// Parse a regression file whose designs are shipped ones.
pub fn parse_seeds(text: &str, file: &str) -> Result<Vec<RegressionSeed>, String> {
    parse_seeds_in(&Registry::builtin(), text, file)
}

/// Parse a regression file, checking design names against `registry`.
pub fn parse_seeds_in(
    registry: &Registry,
    text: &str,
    file: &str,
) -> Result<Vec<RegressionSeed>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (data, note) = match line.split_once('#') {
            Some((d, n)) => (d, n.trim().to_string()),
            None => (line, String::new()),
        };
        let fields: Vec<&str> = data.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let bad = |what: &str| {
            format!(
                "{file}:{}:1: error: {what}\n  help: write `<design> <seed> <invariant>[,<invariant>...]  # note`",
                i + 1
            )
        };
        if fields.len() != 3 {
            return Err(bad(&format!("expected 3 fields, found {}", fields.len())));
        }
        if registry.get(fields[0]).is_none() {
            return Err(bad(&format!(
                "unknown design {:?}; known: {}",
                fields[0],
                registry.names().join(", ")
            )));
        }
        let seed: u64 = fields[1]
            .parse()
            .map_err(|_| bad(&format!("{:?} is not a seed", fields[1])))?;
        let mut violated = BTreeSet::new();
        for name in fields[2].split(',') {
            if Invariant::parse(name).is_none() {
                return Err(bad(&format!("unknown invariant {name:?}")));
            }
            violated.insert(name.to_string());
        }
        out.push(RegressionSeed {
            design: fields[0].to_string(),
            seed,
            violated,
            note,
        });
    }
    Ok(out)
}

pub fn format_seed(r: &RegressionSeed) -> String {
    let invs: Vec<&str> = r.violated.iter().map(String::as_str).collect();
    let mut line = format!("{} {} {}", r.design, r.seed, invs.join(","));
    if !r.note.is_empty() {
        line.push_str(&format!("  # {}", r.note));
    }
    line
}

/// Append seeds to a scenario's regression file, skipping ones already there.
pub fn save_seeds(scenario_path: &Path, seeds: &[RegressionSeed]) -> Result<usize, String> {
    let path = seeds_path(scenario_path);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => parse_seeds(&text, &path.display().to_string())?,
        Err(_) => Vec::new(),
    };
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut added = 0;
    for s in seeds {
        if existing
            .iter()
            .any(|e| e.design == s.design && e.seed == s.seed)
        {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format_seed(s));
        text.push('\n');
        added += 1;
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(added)
}

/// The shipped design a name refers to, or a clear error listing the known ones.
pub fn design_named(name: &str) -> Result<Box<dyn Design>, String> {
    crate::designs::by_name(name).ok_or_else(|| unknown_design(&Registry::builtin(), name))
}

/// The design of `registry` a name refers to, or a clear error listing the known ones.
pub fn design_in<'r>(registry: &'r Registry, name: &str) -> Result<&'r dyn Design, String> {
    registry
        .get(name)
        .ok_or_else(|| unknown_design(registry, name))
}

fn unknown_design(registry: &Registry, name: &str) -> String {
    format!(
        "unknown design {name:?}; known designs: {}",
        registry.names().join(", ")
    )
}
