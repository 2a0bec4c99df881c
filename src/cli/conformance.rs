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
        let kept = summary.cell(&cell.scenario, &cell.design);
        if cell.runs == 0 && kept.is_some_and(|c| c.runs > 0) {
            say!(
                "{} × {}: no run completed; the summary keeps the earlier series",
                cell.scenario,
                cell.design
            );
        } else if cell.runs > 0 || !cell.interrupted.is_empty() {
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
    let mut walls = attempts(&mut cell, a.runs, &mut |cell| {
        if super::progress::interrupted() || !cluster.alive() {
            return Ok(None);
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
        Ok(Some(match done {
            Ok(done) => {
                judge_run(registry, plan, &done, cell)?;
                Attempt::Completed(done.wall)
            }
            Err(e) => Attempt::Interrupted(failed_run(cell, &e.to_string())),
        }))
    })?;
    walls.sort();
    cell.median_seconds = walls
        .get(walls.len() / 2)
        .map_or(0.0, |d: &Duration| (d.as_secs_f64() * 10.0).round() / 10.0);
    say!(
        "{} × {}: {} run(s), {} judged, {:?}, {} without verdict, {} interrupted",
        cell.scenario,
        cell.design,
        cell.runs,
        cell.judged,
        cell.violations,
        cell.runs - cell.judged,
        cell.interrupted.values().sum::<u32>()
    );
    Ok(cell)
}

/// What one attempt at a live run came to.
enum Attempt {
    /// Its history was recorded (and judged into the cell): its wall time.
    Completed(Duration),
    /// It did not complete (failed to start, killed, interrupted): why.
    Interrupted(String),
}

/// Attempts until `runs` completed, or `runs` were interrupted, or `attempt` says stop
/// (`None`: Ctrl-C, the cluster gone): the completed runs' wall times. An interrupted
/// attempt is counted apart (`interrupted`), never as a run and never as a verdict.
fn attempts(
    cell: &mut LiveCell,
    runs: u32,
    attempt: &mut dyn FnMut(&mut LiveCell) -> Result<Option<Attempt>, Error>,
) -> Result<Vec<Duration>, Error> {
    let mut walls = Vec::new();
    let mut stopped = 0;
    while cell.runs < runs && stopped < runs {
        match attempt(cell)? {
            None => break,
            Some(Attempt::Completed(wall)) => {
                cell.runs += 1;
                walls.push(wall);
            }
            Some(Attempt::Interrupted(why)) => {
                stopped += 1;
                *cell.interrupted.entry(why).or_default() += 1;
            }
        }
    }
    assert!(cell.judged <= cell.runs, "only a completed run is judged");
    Ok(walls)
}

/// A run that failed before its history was recorded: its first line, said.
fn failed_run(cell: &LiveCell, text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    // Without the path of its scratch directory's log.
    let first = first.split("; the end of ").next().unwrap_or(first);
    say!(
        "{} × {}: run interrupted: {first}",
        cell.scenario,
        cell.design
    );
    format!("the run failed: {first}")
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
    use super::{attempts, reason_class, twin_guarantee, Attempt, Guarantee, LiveCell};
    use std::time::Duration;

    /// An interrupted attempt is not a run: the series goes on until its runs completed
    /// (or as many were interrupted), and the interrupted ones are counted apart.
    #[test]
    fn an_interrupted_run_is_counted_apart_and_not_as_a_run() {
        let mut script = vec![
            Some(Attempt::Interrupted("the run failed: did not start".into())),
            Some(Attempt::Completed(Duration::from_secs(20))),
            Some(Attempt::Interrupted("the run failed: did not start".into())),
            Some(Attempt::Completed(Duration::from_secs(30))),
            Some(Attempt::Completed(Duration::from_secs(25))),
            Some(Attempt::Completed(Duration::from_secs(99))),
        ]
        .into_iter();
        let mut cell = LiveCell::default();
        let mut tried = 0;
        let walls = attempts(&mut cell, 3, &mut |c| {
            tried += 1;
            let next = script.next().expect("no attempt past the script");
            if matches!(next, Some(Attempt::Completed(_))) {
                c.judged += 1;
            }
            Ok(next)
        })
        .expect("no error");
        assert_eq!(tried, 5, "stops once 3 runs completed");
        assert_eq!((cell.runs, cell.judged), (3, 3));
        assert_eq!(walls.len(), 3);
        assert_eq!(cell.interrupted["the run failed: did not start"], 2);
        // Every attempt interrupted: no run, `runs` interruptions, then it gives up.
        let mut cell = LiveCell::default();
        let walls = attempts(&mut cell, 3, &mut |_| {
            Ok(Some(Attempt::Interrupted("killed".into())))
        })
        .expect("no error");
        assert!(walls.is_empty());
        assert_eq!((cell.runs, cell.interrupted["killed"]), (0, 3));
        // Ctrl-C: nothing more is tried.
        let mut cell = LiveCell::default();
        attempts(&mut cell, 3, &mut |_| Ok(None)).expect("no error");
        assert_eq!((cell.runs, cell.interrupted.len()), (0, 0));
    }

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
