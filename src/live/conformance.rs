//! The conformance table: for each shipped scenario and each design with a live twin,
//! the simulator's verdict over the scenario's seeds beside the live verdict over real
//! runs.
//!
//! Live runs are slow and not deterministic, so their side is kept as a small committed
//! summary ([`Summary`], `docs/live/conformance.json`, written by `oversell conformance
//! --runs N --write FILE`); the simulator's side is recomputed fresh ([`simulate`]) and
//! the two are rendered into one table ([`markdown`]). A row where they differ needs a
//! reason, kept by hand in `docs/live/conformance-reasons.toml` ([`Reasons`]).
//!
//! What is compared: the set of invariants that broke in at least one run, plus
//! `outcomes` (a scenario's promised endings missed in a quiescent run), leaving out
//! what the live side could not judge.

use super::run::{supported, Plan};
use super::TWINS;
use crate::checker::outcomes::{judge as judge_outcomes, Judgement};
use crate::designs::{Design, Registry};
use crate::scenario::{Scenario, SeedRange};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The format tag of a summary file.
pub const FORMAT: &str = "oversell-conformance/1";

/// The name under which a missed promised outcome is counted, beside the invariants.
pub const OUTCOMES: &str = "outcomes";

/// The live side: one cell per scenario × design that was run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub format: String,
    pub cells: Vec<LiveCell>,
}

/// What N live runs of one scenario with one design showed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveCell {
    pub scenario: String,
    pub design: String,
    /// Runs that completed (their history recorded); an interrupted run is not one.
    pub runs: u32,
    /// Runs whose history was judged by the checker.
    pub judged: u32,
    /// Invariant (or `outcomes`) → judged runs that broke it.
    pub violations: BTreeMap<String, u32>,
    /// Judged runs that ended at their time bound (not quiescent).
    pub unsettled: u32,
    /// Invariants a live run cannot show (reported as not judged, never as holding).
    pub not_judged: Vec<String>,
    /// Why completed runs had no verdict (distinct reasons, each with its count).
    pub no_verdict: BTreeMap<String, u32>,
    /// Runs that did not complete (failed to start, killed, interrupted), by reason: never
    /// counted in `runs`, never a verdict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub interrupted: BTreeMap<String, u32>,
    pub kafka_version: String,
    pub brokers: u32,
    /// UTC date of the series, `YYYY-MM-DD`.
    pub date: String,
    /// Median wall-clock seconds per run (the service's start to the history written).
    pub median_seconds: f64,
    /// FNV-1a 64 of each recorded history file, in run order.
    pub histories: Vec<String>,
    /// The live time scale of the series ([`super::scale`]); 1 for series recorded
    /// before it existed.
    #[serde(default = "one")]
    pub time_scale: u64,
}

fn one() -> u64 {
    1
}

impl Summary {
    pub fn read(path: &Path) -> Result<Summary, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let s: Summary = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: not a conformance summary ({FORMAT}): {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if s.format != FORMAT {
            return Err(format!(
                "{}: format {:?}, expected {FORMAT:?}",
                path.display(),
                s.format
            ));
        }
        Ok(s)
    }

    pub fn cell(&self, scenario: &str, design: &str) -> Option<&LiveCell> {
        self.cells
            .iter()
            .find(|c| c.scenario == scenario && c.design == design)
    }

    /// Put `cell` in, replacing the same scenario × design; cells kept sorted.
    pub fn put(&mut self, cell: LiveCell) {
        self.cells
            .retain(|c| !(c.scenario == cell.scenario && c.design == cell.design));
        self.cells.push(cell);
        self.cells
            .sort_by(|a, b| (&a.scenario, &a.design).cmp(&(&b.scenario, &b.design)));
    }
}

/// The hand-kept reasons for rows where the columns differ: `[scenario] design = "why"`.
#[derive(Clone, Debug, Default)]
pub struct Reasons(pub BTreeMap<String, BTreeMap<String, String>>);

impl Reasons {
    pub fn read(path: &Path) -> Result<Reasons, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text)
            .map(Reasons)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn get(&self, scenario: &str, design: &str) -> Option<&str> {
        self.0.get(scenario)?.get(design).map(String::as_str)
    }
}

/// The simulator's side of one row: what broke over the scenario's seeds.
#[derive(Clone, Debug)]
pub struct SimCell {
    pub seeds: SeedRange,
    pub violations: BTreeMap<String, u64>,
}

/// Run the simulator over the scenario's own seeds (`[run] seeds`).
pub fn simulate(design: &dyn Design, scenario: &Scenario) -> SimCell {
    let seeds = scenario.run.seeds;
    let promised = scenario
        .outcomes
        .get(design.name())
        .cloned()
        .unwrap_or_default();
    let schema = design.schema();
    let mut violations: BTreeMap<String, u64> = BTreeMap::new();
    for seed in seeds.start..seeds.end {
        let judged = crate::run::run_seed(design, scenario, &[], seed);
        for i in judged.verdict.violated() {
            *violations.entry(i.name().to_string()).or_default() += 1;
        }
        if let Judgement::Missed(_) = judge_outcomes(&schema, &judged.result, &promised) {
            *violations.entry(OUTCOMES.to_string()).or_default() += 1;
        }
    }
    SimCell { seeds, violations }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub scenario: String,
    pub design: String,
    pub sim: String,
    pub live: String,
    pub not_judged: String,
    /// `agrees`, `differs`, `not judged live`, `not playable live`, `not run live`.
    pub status: &'static str,
    pub reason: String,
}

/// Every shipped scenario × every design with a live twin.
pub fn rows(
    scenarios: &[(PathBuf, Scenario)],
    summary: &Summary,
    reasons: &Reasons,
    registry: &Registry,
) -> Vec<Row> {
    let mut out = Vec::new();
    for (path, s) in scenarios {
        for design in TWINS {
            let Some(d) = registry.get(design) else {
                continue;
            };
            let sim = simulate(d, s);
            let plan = Plan {
                scenario: s,
                scenario_path: path,
                design,
                time_scale: None,
            };
            let playable = supported(&plan).err().map(|e| e.to_string());
            let live = summary.cell(&s.name, design);
            out.push(row(s, design, &sim, live, playable, reasons));
        }
    }
    out
}

fn row(
    s: &Scenario,
    design: &str,
    sim: &SimCell,
    live: Option<&LiveCell>,
    unplayable: Option<String>,
    reasons: &Reasons,
) -> Row {
    let mut r = Row {
        scenario: s.name.clone(),
        design: design.to_string(),
        sim: counts(&sim.violations, sim.seeds.len(), "seeds"),
        live: String::new(),
        not_judged: String::new(),
        status: "not playable live",
        reason: String::new(),
    };
    if let Some(why) = unplayable {
        r.live = "—".into();
        r.reason = why;
        return r;
    }
    let Some(c) = live.filter(|c| c.runs > 0) else {
        r.live = "—".into();
        r.status = "not run live";
        r.reason = match live.filter(|c| !c.interrupted.is_empty()) {
            Some(c) => format!("no live run completed: {}", interrupted(c)),
            None => {
                "no live run recorded yet (`oversell conformance --runs N --write FILE`)".into()
            }
        };
        return r;
    };
    r.not_judged = c.not_judged.join(", ");
    if c.judged == 0 {
        r.live = format!("no verdict in {} runs", c.runs);
        r.status = "not judged live";
        r.reason = no_verdict(c);
        return r;
    }
    r.live = live_words(c);
    let unjudged: BTreeSet<&str> = c.not_judged.iter().map(String::as_str).collect();
    let sim_broke: BTreeSet<&str> = sim
        .violations
        .keys()
        .map(String::as_str)
        .filter(|i| !unjudged.contains(i))
        .collect();
    let live_broke: BTreeSet<&str> = c.violations.keys().map(String::as_str).collect();
    if sim_broke == live_broke {
        r.status = "agrees";
        r.reason = reasons.get(&s.name, design).unwrap_or("").to_string();
    } else {
        r.status = "differs";
        r.reason = reasons
            .get(&s.name, design)
            .map_or_else(|| UNEXPLAINED.to_string(), str::to_string);
    }
    r
}

/// The live column of a cell with judged runs: what broke, over how many runs, and what
/// else the series says (runs without verdict, unsettled, interrupted, the time scale).
fn live_words(c: &LiveCell) -> String {
    let live_counts: BTreeMap<String, u64> = c
        .violations
        .iter()
        .map(|(k, v)| (k.clone(), *v as u64))
        .collect();
    let mut live = counts(&live_counts, c.judged as u64, "runs");
    if c.judged < c.runs {
        live.push_str(&format!(" ({} without verdict)", c.runs - c.judged));
    }
    if c.unsettled > 0 {
        live.push_str(&format!(", {} unsettled", c.unsettled));
    }
    let stopped: u32 = c.interrupted.values().sum();
    if stopped > 0 {
        live.push_str(&format!(", {stopped} interrupted (not counted)"));
    }
    if c.time_scale > 1 {
        live.push_str(&format!(", times ×{}", c.time_scale));
    }
    live
}

/// The reason of a differing row that has none in the reasons file.
pub const UNEXPLAINED: &str = "UNEXPLAINED: add a reason to docs/live/conformance-reasons.toml";

fn no_verdict(c: &LiveCell) -> String {
    let words: Vec<String> = c
        .no_verdict
        .iter()
        .map(|(why, n)| format!("{n} of {}: {why}", c.runs))
        .collect();
    words.join("; ")
}

/// `2 interrupted: 1 the run failed: …; 1 …`.
fn interrupted(c: &LiveCell) -> String {
    let n: u32 = c.interrupted.values().sum();
    let words: Vec<String> = c
        .interrupted
        .iter()
        .map(|(why, k)| format!("{k} {why}"))
        .collect();
    format!("{n} interrupted: {}", words.join("; "))
}

/// `holds (30 seeds)` or `no-oversell 28, conservation 28 of 30 seeds`.
fn counts(v: &BTreeMap<String, u64>, of: u64, unit: &str) -> String {
    if v.is_empty() {
        return format!("holds ({of} {unit})");
    }
    let words: Vec<String> = v.iter().map(|(i, n)| format!("`{i}` {n}")).collect();
    format!("{} of {of} {unit}", words.join(", "))
}

/// The table, as the README holds it.
pub fn markdown(rows: &[Row], summary: &Summary) -> String {
    let mut out = String::from(
        "| scenario | design | simulated (the scenario's seeds) | live (real runs) | agreement | reason |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} | {} |\n",
            r.scenario,
            r.design,
            r.sim,
            r.live,
            r.status,
            r.reason.replace('|', "\\|").replace('\n', " ")
        ));
    }
    // Invariant → the cells that could not judge it (a history before format 3 holds
    // neither the coordinators' logs nor the polls).
    let mut not_judged: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &summary.cells {
        for i in &c.not_judged {
            *not_judged.entry(i.as_str()).or_default() += 1;
        }
    }
    if !not_judged.is_empty() {
        let cells = summary.cells.len();
        let list: Vec<String> = not_judged
            .iter()
            .map(|(i, n)| {
                if *n == cells {
                    format!("`{i}`")
                } else {
                    format!("`{i}` (in {n} of {cells} cells)")
                }
            })
            .collect();
        out.push_str(&format!(
            "\nNot judged live (not recorded, never counted as holding): {}.\n",
            list.join(", ")
        ));
    }
    out.push_str(&series_line(summary));
    out
}

/// Kafka version, brokers, dates, runs and seconds per run behind the live column.
fn series_line(summary: &Summary) -> String {
    let cells: Vec<&LiveCell> = summary
        .cells
        .iter()
        .filter(|c| c.runs > 0 && c.median_seconds > 0.0 && !c.kafka_version.is_empty())
        .collect();
    if cells.is_empty() {
        return String::new();
    }
    let set = |f: &dyn Fn(&LiveCell) -> String| -> String {
        let s: BTreeSet<String> = cells.iter().map(|c| f(c)).collect();
        s.into_iter().collect::<Vec<_>>().join(", ")
    };
    let runs: u32 = summary.cells.iter().map(|c| c.runs).sum();
    let mut secs: Vec<f64> = cells.iter().map(|c| c.median_seconds).collect();
    secs.sort_by(f64::total_cmp);
    format!(
        "Live: Kafka {} on {} broker(s), {}; {runs} runs in {} cells, median {:.1} s per run \
         (cells' medians {:.1}–{:.1} s, over the cells with a finished run).\n",
        set(&|c| c.kafka_version.clone()),
        set(&|c| c.brokers.to_string()),
        set(&|c| c.date.clone()),
        summary.cells.iter().filter(|c| c.runs > 0).count(),
        secs[secs.len() / 2],
        secs[0],
        secs[secs.len() - 1],
    )
}

/// FNV-1a 64 of a file's bytes, as hex (the summary's history hashes).
pub fn fnv64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (UTC; Howard Hinnant's civil-from-days).
pub fn date_of(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_hashes_are_what_they_claim() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(20_429), "2025-12-07");
        assert_eq!(date_of(11_016), "2000-02-29");
        assert_eq!(fnv64(b""), "cbf29ce484222325");
        assert_eq!(fnv64(b"a"), "af63dc4c8601ec8c");
    }

    fn cell(violations: &[(&str, u32)], judged: u32) -> LiveCell {
        LiveCell {
            scenario: "s".into(),
            design: "naive".into(),
            runs: 3,
            judged,
            violations: violations
                .iter()
                .map(|(i, n)| (i.to_string(), *n))
                .collect(),
            not_judged: vec!["epoch-fencing".into()],
            ..LiveCell::default()
        }
    }

    /// A scenario of one product with one unit, named `s`.
    fn one_product() -> Scenario {
        crate::load::load_str(
            "name = \"s\"\n[[products]]\nid = \"p\"\nstock = 1\n",
            "s.toml",
        )
        .expect("a scenario")
    }

    #[test]
    fn a_row_differs_only_on_what_both_sides_judge_and_needs_a_reason_then() {
        let s = one_product();
        let sim = SimCell {
            seeds: SeedRange { start: 0, end: 10 },
            violations: [
                ("no-oversell".to_string(), 7),
                ("epoch-fencing".to_string(), 1),
            ]
            .into(),
        };
        let none = Reasons::default();
        let agree = row(
            &s,
            "naive",
            &sim,
            Some(&cell(&[("no-oversell", 2)], 3)),
            None,
            &none,
        );
        assert_eq!(agree.status, "agrees", "{agree:?}");
        assert_eq!(agree.live, "`no-oversell` 2 of 3 runs");
        let differ = row(&s, "naive", &sim, Some(&cell(&[], 3)), None, &none);
        assert_eq!(
            (differ.status, differ.reason.as_str()),
            ("differs", UNEXPLAINED)
        );
        let why = Reasons(
            [(
                "s".to_string(),
                [("naive".to_string(), "because".to_string())].into(),
            )]
            .into(),
        );
        assert_eq!(
            row(&s, "naive", &sim, Some(&cell(&[], 3)), None, &why).reason,
            "because"
        );
        let none_judged = row(&s, "naive", &sim, Some(&cell(&[], 0)), None, &none);
        assert_eq!(none_judged.status, "not judged live");
        let refused = row(&s, "naive", &sim, None, Some("has faults".into()), &none);
        assert_eq!(
            (refused.status, refused.reason.as_str()),
            ("not playable live", "has faults")
        );
    }

    /// An interrupted run is said as such beside the completed ones, never as a run.
    #[test]
    fn interrupted_runs_are_a_note_not_a_verdict() {
        let s = one_product();
        let sim = SimCell {
            seeds: SeedRange { start: 0, end: 10 },
            violations: BTreeMap::new(),
        };
        let none = Reasons::default();
        let why = "the run failed: product-service-0 did not report RUNNING within 180 s";
        let mut c = cell(&[], 2);
        c.runs = 2;
        c.interrupted = [(why.to_string(), 1)].into();
        let r = row(&s, "naive", &sim, Some(&c), None, &none);
        assert_eq!(r.live, "holds (2 runs), 1 interrupted (not counted)");
        assert_eq!(r.status, "agrees");
        let mut all = cell(&[], 0);
        all.runs = 0;
        all.interrupted = [(why.to_string(), 3)].into();
        let r = row(&s, "naive", &sim, Some(&all), None, &none);
        assert_eq!((r.status, r.live.as_str()), ("not run live", "—"));
        assert_eq!(
            r.reason,
            format!("no live run completed: 3 interrupted: 3 {why}")
        );
        // Read back from a summary written before the field existed: none interrupted.
        let old = r#"{"scenario":"s","design":"naive","runs":1,"judged":1,"violations":{},
            "unsettled":0,"not_judged":[],"no_verdict":{},"kafka_version":"4.1.0","brokers":1,
            "date":"2026-12-07","median_seconds":1.0,"histories":[]}"#;
        let c: LiveCell = serde_json::from_str(old).expect("an older cell");
        assert!(c.interrupted.is_empty());
    }
}
