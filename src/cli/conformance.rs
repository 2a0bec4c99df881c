//! `oversell conformance`: the simulator's verdicts beside real Kafka's
//! ([`crate::live::conformance`]); with `--runs N --write FILE`, the live side is run
//! again on one real cluster and its summary written.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::args::{ConformanceArgs, LiveZombieArgs};
use super::error::{Error, Exit};
use super::out::say;
use crate::checker::{self, outcomes};
use crate::designs::Registry;
use crate::live::conformance::{self as table, LiveCell, Reasons, Summary, FORMAT, OUTCOMES};
use crate::live::run::{run_once, supported, Finished, Plan};
use crate::live::{self, cluster::Cluster, java::Toolchain, NOT_RECORDED};
use crate::scenario::Scenario;
use oversell_sim::Guarantee;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn conformance(registry: &Registry, a: &ConformanceArgs) -> Result<Exit, Error> {
    let scenarios = crate::load::load_dir(Path::new("scenarios"))
        .map_err(|e| Error::Scenario(e.to_string()))?;
    let mut summary = if a.summary.exists() {
        Summary::read(&a.summary).map_err(Error::Live)?
    } else {
        Summary {
            format: FORMAT.into(),
            cells: Vec::new(),
        }
    };
    let reasons = if a.reasons.exists() {
        Reasons::read(&a.reasons).map_err(Error::Live)?
    } else {
        Reasons::default()
    };
    let mut status = Exit::Holds;
    if a.runs > 0 {
        let Some(write) = &a.write else {
            return Err(Error::Live(
                "--runs needs --write FILE (where the live summary goes)".into(),
            ));
        };
        status = run_live(registry, a, &scenarios, &mut summary, write)?;
    }
    let rows = table::rows(&scenarios, &summary, &reasons, registry);
    print!("{}", table::markdown(&rows, &summary));
    Ok(status)
}

/// The live cells to run: playable scenario × design pairs the filters keep.
fn cells<'s>(a: &ConformanceArgs, scenarios: &'s [(PathBuf, Scenario)]) -> Vec<Plan<'s>> {
    let wanted = |path: &Path, s: &Scenario| {
        a.only.is_empty()
            || a.only.iter().any(|o| {
                *o == s.name
                    || Path::new(o) == path
                    || path.file_stem().is_some_and(|f| f == o.as_str())
            })
    };
    let mut out = Vec::new();
    for (path, s) in scenarios.iter().filter(|(p, s)| wanted(p, s)) {
        for design in live::TWINS {
            if !a.designs.is_empty() && !a.designs.iter().any(|d| d == design) {
                continue;
            }
            let plan = Plan {
                scenario: s,
                scenario_path: path,
                design,
                time_scale: a.time_scale,
            };
            if supported(&plan).is_ok() {
                out.push(plan);
            }
        }
    }
    out
}

fn run_live(
    registry: &Registry,
    a: &ConformanceArgs,
    scenarios: &[(PathBuf, Scenario)],
    summary: &mut Summary,
    write: &Path,
) -> Result<Exit, Error> {
    let plans = cells(a, scenarios);
    if plans.is_empty() {
        return Err(Error::Live(
            "no playable scenario × design is selected".into(),
        ));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let tc = live::java::toolchain()?;
    let work = std::env::temp_dir().join(format!("oversell-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let _interruptible = super::progress::Sweeping::start();
    let ran = series(registry, &tc, a, &plans, summary, write, &work);
    let _ = std::fs::remove_dir_all(&work);
    ran
}

fn series(
    registry: &Registry,
    tc: &Toolchain,
    a: &ConformanceArgs,
    plans: &[Plan<'_>],
    summary: &mut Summary,
    write: &Path,
    work: &Path,
) -> Result<Exit, Error> {
    let mut cluster = Cluster::start(tc, a.brokers, work, a.base_port)?;
    say!(
        "conformance: {} cell(s) × {} run(s) on {} real broker(s) at {}",
        plans.len(),
        a.runs,
        a.brokers,
        cluster.bootstrap
    );
    let mut index = 0;
    for plan in plans {
        let cell = run_cell(registry, tc, a, plan, &mut cluster, &mut index)?;
        if cell.runs > 0 {
            summary.put(cell);
            let text = serde_json::to_string_pretty(summary)? + "\n";
            std::fs::write(write, text).map_err(|e| Error::io(write, e))?;
        }
    }
    cluster.stop();
    if super::progress::interrupted() {
        return Ok(Exit::Interrupted);
    }
    Ok(Exit::Holds)
}

/// `a.runs` live runs of one scenario × design, numbered from `*index` on.
fn run_cell(
    registry: &Registry,
    tc: &Toolchain,
    a: &ConformanceArgs,
    plan: &Plan<'_>,
    cluster: &mut Cluster,
    index: &mut u32,
) -> Result<LiveCell, Error> {
    let mut cell = LiveCell {
        scenario: plan.scenario.name.clone(),
        design: plan.design.to_string(),
        brokers: a.brokers,
        date: today(),
        time_scale: plan.scale(),
        not_judged: NOT_RECORDED
            .iter()
            .map(|(i, _)| i.name().to_string())
            .collect(),
        ..LiveCell::default()
    };
    say!(
        "{} × {}: every time of the story ×{} (session timeout {} ms live)",
        plan.scenario.name,
        plan.design,
        plan.scale(),
        crate::live::scale::scaled(plan.scenario, plan.scale())
            .streams
            .session_timeout_ms
            .unwrap_or_default()
    );
    let mut walls = Vec::new();
    for _ in 0..a.runs {
        if super::progress::interrupted() || !cluster.alive() {
            break;
        }
        let done = run_once(
            tc,
            cluster,
            plan,
            *index,
            &a.out,
            &super::progress::interrupted,
        );
        *index += 1;
        cell.runs += 1;
        match done {
            Ok(done) => {
                walls.push(done.wall);
                judge_run(registry, plan, &done, &mut cell)?;
            }
            Err(e) => failed_run(&mut cell, &e.to_string()),
        }
    }
    walls.sort();
    cell.median_seconds = walls
        .get(walls.len() / 2)
        .map_or(0.0, |d: &Duration| (d.as_secs_f64() * 10.0).round() / 10.0);
    say!(
        "{} × {}: {} run(s), {} judged, {:?}, {} without verdict",
        cell.scenario,
        cell.design,
        cell.runs,
        cell.judged,
        cell.violations,
        cell.runs - cell.judged
    );
    Ok(cell)
}

/// A run that failed before its history was recorded: counted with its first line.
fn failed_run(cell: &mut LiveCell, text: &str) {
    let first = text.lines().next().unwrap_or("");
    // Without the path of its scratch directory's log.
    let first = first.split("; the end of ").next().unwrap_or(first);
    say!("{} × {}: run failed: {first}", cell.scenario, cell.design);
    *cell
        .no_verdict
        .entry(format!("the run failed: {first}"))
        .or_default() += 1;
}

/// Judge one recorded run into its cell: invariants, promised outcomes, or no verdict.
fn judge_run(
    registry: &Registry,
    plan: &Plan<'_>,
    done: &Finished,
    cell: &mut LiveCell,
) -> Result<(), Error> {
    let h = &done.history;
    cell.kafka_version.clone_from(&h.kafka_version);
    let bytes = std::fs::read(&done.file).map_err(|e| Error::io(&done.file, e))?;
    cell.histories.push(table::fnv64(&bytes));
    let d = super::design(registry, plan.design)?;
    let run = match live::to_run(h) {
        Ok(run) => run,
        Err(why) => {
            let short = reason_class(&why.0, twin_guarantee(plan.design));
            say!(
                "{} × {} run {}: no verdict: {why}",
                cell.scenario,
                cell.design,
                h.run
            );
            *cell
                .no_verdict
                .entry(format!("history not convertible: {short}"))
                .or_default() += 1;
            return Ok(());
        }
    };
    let schema = d.schema();
    let verdict = live::live_verdict(checker::check(&schema, &run, h.decision_bound_ms), h);
    cell.judged += 1;
    for i in verdict.violated() {
        *cell.violations.entry(i.name().to_string()).or_default() += 1;
    }
    let promised = plan
        .scenario
        .outcomes
        .get(plan.design)
        .cloned()
        .unwrap_or_default();
    if let outcomes::Judgement::Missed(m) = outcomes::judge(&schema, &run, &promised) {
        say!(
            "{} × {} run {}: outcomes missed: {}",
            cell.scenario,
            cell.design,
            h.run,
            m.join("; ")
        );
        *cell.violations.entry(OUTCOMES.to_string()).or_default() += 1;
    }
    if run.outcome != oversell_sim::Outcome::Quiescent {
        cell.unsettled += 1;
    }
    Ok(())
}

/// One reason per kind of unconvertible history, without the run's offsets.
/// A refusal's class for the summary, without its offsets. Only an `exactly_once_v2`
/// twin writes transaction markers: an `at_least_once` twin's refusal is said as it is.
fn reason_class(why: &str, guarantee: Guarantee) -> String {
    let transactional = ["control record", "end offset is", "read_committed"];
    if guarantee == Guarantee::ExactlyOnceV2 && transactional.iter().any(|w| why.contains(w)) {
        "its logs hold transaction markers (exactly_once_v2), which the converter does not rebuild yet"
            .into()
    } else {
        why.rsplit(": ").next().unwrap_or(why).to_string()
    }
}

/// The processing guarantee of `design`'s live twin (every played design has one).
fn twin_guarantee(design: &str) -> Guarantee {
    live::run::twin(design).map_or(Guarantee::AtLeastOnce, |t| t.guarantee)
}

fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    table::date_of((secs / 86_400) as i64)
}

/// `oversell live-zombie`: the saga's zombie punctuation, N times on one real cluster.
pub fn zombie(registry: &Registry, a: &LiveZombieArgs) -> Result<Exit, Error> {
    let scenario = super::load_scenario(&a.scenario)?;
    let d = super::design(registry, &a.design)?;
    let plan = Plan {
        scenario: &scenario,
        scenario_path: &a.scenario,
        design: d.name(),
        // The experiment's triggers are the instances' own events, at the scenario's times.
        time_scale: Some(1),
    };
    supported(&plan)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let tc = live::java::toolchain()?;
    let work = std::env::temp_dir().join(format!("oversell-zombie-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let _interruptible = super::progress::Sweeping::start();
    let ran = zombie_series(&tc, a, &plan, &work);
    match ran {
        Ok(Exit::Holds | Exit::Violated) => {
            let _ = std::fs::remove_dir_all(&work);
        }
        _ => say!("the runs' working files are kept in {}", work.display()),
    }
    ran
}

fn zombie_series(
    tc: &Toolchain,
    a: &LiveZombieArgs,
    plan: &Plan<'_>,
    work: &Path,
) -> Result<Exit, Error> {
    let mut cluster = Cluster::start(tc, 1, work, a.base_port)?;
    say!(
        "live-zombie: {} on {}, {} run(s) on a real broker at {}",
        plan.design,
        plan.scenario.name,
        a.runs,
        cluster.bootstrap
    );
    let (mut unfenced, mut fenced, mut failed) = (0, 0, 0);
    for index in 0..a.runs {
        if super::progress::interrupted() || !cluster.alive() {
            break;
        }
        let t = std::time::Instant::now();
        match live::zombie::run_once(tc, &mut cluster, plan, index, &a.out) {
            Ok(run) => {
                let f = &run.finding;
                say!(
                    "run {index}: {:.1} s · Kafka {} · history {}",
                    t.elapsed().as_secs_f64(),
                    run.history.kafka_version,
                    run.file.display()
                );
                say!(
                    "  task moved while paused: {} · o1 released {} time(s) committed, {} aborted · p1's last committed ledger {}",
                    f.moved,
                    f.releases_committed,
                    f.releases_aborted,
                    f.final_ledger.as_deref().unwrap_or("none")
                );
                for n in &f.zombie_notes {
                    say!("  product-service-1 after SIGCONT: {n}");
                }
                if f.unfenced() {
                    unfenced += 1;
                } else {
                    fenced += 1;
                }
            }
            Err(e) => {
                failed += 1;
                say!("run {index}: FAILED: {e}");
            }
        }
    }
    cluster.stop();
    say!(
        "live-zombie: the paused instance's punctuation committed a second release in {unfenced} run(s), \
         did not in {fenced}; {failed} run(s) failed"
    );
    Ok(if unfenced > 0 {
        Exit::Violated
    } else {
        Exit::Holds
    })
}

#[cfg(test)]
mod tests {
    use super::{reason_class, twin_guarantee, Guarantee};

    /// An at_least_once twin writes no transaction markers: its refusal is its own words.
    #[test]
    fn an_at_least_once_refusal_is_not_labelled_as_transaction_markers() {
        let why = "inventory-service-orders-by-product-repartition-0@3: the read_committed \
                   consumer skipped it, but the markers on disk say it is committed";
        let alo = reason_class(why, twin_guarantee("rekeyed-alo"));
        assert!(!alo.contains("exactly_once_v2"), "{alo}");
        assert_eq!(
            alo,
            "the read_committed consumer skipped it, but the markers on disk say it is committed"
        );
        let naive = reason_class(why, twin_guarantee("naive"));
        assert!(!naive.contains("transaction markers"), "{naive}");
        let eos = reason_class(why, twin_guarantee("rekeyed-eos"));
        assert!(eos.contains("exactly_once_v2"), "{eos}");
        assert!(reason_class(why, twin_guarantee("saga")).contains("exactly_once_v2"));
        assert_eq!(twin_guarantee("rekeyed-alo"), Guarantee::AtLeastOnce);
    }
}
