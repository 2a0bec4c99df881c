//! The saga's zombie punctuation on real Kafka (`oversell live-zombie`), the live form
//! of `scenarios/saga-zombie-punctuation.toml`, with faults injected at the story's
//! moments rather than at fixed times:
//!
//! 1. `product-service-0` runs alone and reserves `p1`'s unit for `o1` (whose payment
//!    outlasts the reservation timeout); once it has processed that `ReserveStock`, it is
//!    SIGKILLed;
//! 2. `product-service-1` starts with the trigger `pause-on-init`: when its ledger task
//!    is initialised — its store restored, on the stream thread, before any record or
//!    punctuation (`StreamTask.completeRestoration` → `initializeTopology`) — it says
//!    `INITIALISED` and oversell SIGSTOPs it at once;
//! 3. `product-service-2` starts; the group moves the task to it once the paused
//!    member's session expired; it releases `o1`'s expired reservation, and `o2` takes
//!    the unit;
//! 4. `product-service-1` is SIGCONTed: its wall-clock punctuation may run on its stale
//!    ledger (`o1` still reserved) before its heartbeat learns it was expelled.
//!
//! The recorded history says whether that punctuation's writes were committed:
//! [`analyse`] counts the committed `ReservationReleased` records of `o1` and reads the
//! ledger's last committed changelog value.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::cluster::Cluster;
use super::history::{LiveEvent, LiveHistory};
use super::java::Toolchain;
use super::player::Instance;
use super::run::Twin;
use super::run::{
    assemble, fault_plan, record, run_dir, saga_args, service_args, start_driver, stop_all, twin,
    write, DriverRun, Plan,
};
use super::LiveError;
use crate::kit::streams_config;
use crate::scenario::Scenario;
use oversell_sim::StreamsConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One finished experiment run.
pub struct ZombieRun {
    pub history: LiveHistory,
    pub file: PathBuf,
    pub finding: Finding,
}

/// What the history shows about the paused instance's punctuation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    /// The paused instance's trace notes after it was resumed (its punctuation's).
    pub zombie_notes: Vec<String>,
    /// `ReservationReleased` records of `o1`: committed, and aborted (seen only by
    /// `read_uncommitted`).
    pub releases_committed: u32,
    pub releases_aborted: u32,
    /// The last committed changelog value of `p1`'s ledger.
    pub final_ledger: Option<String>,
    /// Whether the preconditions held: the task moved to `product-service-2` while
    /// `product-service-1` was stopped, and `product-service-2` released `o1`.
    pub moved: bool,
}

impl Finding {
    /// The zombie's punctuation committed an effect that no one fenced.
    pub fn unfenced(&self) -> bool {
        self.releases_committed > 1
    }
}

/// Read what the story needs from a recorded history.
pub fn analyse(h: &LiveHistory, resumed_at: u64) -> Finding {
    let zombie = "product-service-1/product-service";
    let mut f = Finding::default();
    for e in &h.events {
        if e.client == zombie && e.kind == "note" && e.t >= resumed_at {
            f.zombie_notes.extend(e.value.clone());
        }
    }
    for r in h.records.iter().filter(|r| r.topic == "order-replies") {
        let v = r.value.as_deref().unwrap_or("");
        if v.contains("\"ReservationReleased\"") && v.contains("\"o1\"") {
            if r.committed {
                f.releases_committed += 1;
            } else {
                f.releases_aborted += 1;
            }
        }
    }
    f.final_ledger = h
        .records
        .iter()
        .filter(|r| r.topic.ends_with("stock-ledger-changelog") && r.committed)
        .filter(|r| r.key.as_deref() == Some("p1"))
        .max_by_key(|r| r.offset)
        .and_then(|r| r.value.clone());
    let released_by_2 = h.events.iter().any(|e| {
        e.client == "product-service-2/product-service"
            && e.kind == "note"
            && e.value.as_deref().is_some_and(|v| v.contains("o1"))
    });
    f.moved = released_by_2;
    f
}

/// Wait until an instance's event log has a line `pred` accepts.
fn await_event(
    file: &Path,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&LiveEvent) -> bool,
) -> Result<(), LiveError> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let seen = text
            .lines()
            .filter_map(|l| serde_json::from_str::<LiveEvent>(l).ok())
            .any(|e| pred(&e));
        if seen {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LiveError::Process(format!(
                "{what} did not happen within {} s ({})",
                timeout.as_secs(),
                file.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn processed(e: &LiveEvent, client: &str, needle: &str) -> bool {
    e.client == client
        && e.kind == "process"
        && e.value.as_deref().is_some_and(|v| v.contains(needle))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The story's instances: one order service, three product services.
const NAMES: [&str; 4] = [
    "order-service-0",
    "product-service-0",
    "product-service-1",
    "product-service-2",
];

/// The story's instances, product-service-1 set to stop itself at its task's start.
fn instances(
    cluster: &Cluster,
    s: &Scenario,
    twin: &Twin,
    index: u32,
    dir: &Path,
    config: &StreamsConfig,
) -> Vec<Instance> {
    NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let app = if name.starts_with("order") {
                "order-service"
            } else {
                "product-service"
            };
            let mut args = service_args(cluster, s, index, name, dir, config);
            args.push(format!("application-server=localhost:{}", i + 1));
            args.extend(saga_args(twin, s, Some(app), dir));
            if *name == "product-service-1" {
                args.push("pause-on-init=true".into());
            }
            Instance::new(name, twin.command, args)
        })
        .collect()
}

/// Run the experiment once on `cluster` with the twin of `plan.design`.
pub fn run_once(
    tc: &Toolchain,
    cluster: &mut Cluster,
    plan: &Plan<'_>,
    index: u32,
    out: &Path,
) -> Result<ZombieRun, LiveError> {
    fault_plan(plan, cluster.size, index)?;
    let twin = twin(plan.design)
        .filter(|t| t.command == "saga")
        .ok_or_else(|| {
            LiveError::Unsupported("the zombie-punctuation experiment runs a saga twin".into())
        })?;
    let s = plan.scenario;
    let dir = run_dir(cluster, s, &twin, index)?;
    let config = streams_config(plan.design, twin.guarantee, s, &[]);
    let bound_ms = 120_000;
    let run = DriverRun {
        index,
        dir: &dir,
        bound_ms,
        commit_ms: config.commit_interval_ms,
    };
    let mut driver = start_driver(tc, cluster, s, &twin, &run, &[])?;
    let mut instances = instances(cluster, s, &twin, index, &dir, &config);
    let resumed_at = story(tc, &dir, &mut instances, &mut driver, &NAMES)?;
    driver.expect("SETTLED", Duration::from_millis(bound_ms + 90_000))?;
    stop_all(&mut instances)?;
    record(driver)?;
    // product-service-0 was killed: it wrote no store dump.
    write(
        &dir.join("stores-product-service-0.json"),
        r#"{"instance":"product-service-0","stores":[]}"#,
    )?;
    let history = assemble(plan, index, cluster.size, &dir, &instances, Vec::new())?;
    let file = out.join(format!("{}-{}-run{index}.json", s.name, plan.design));
    let text = serde_json::to_string_pretty(&history).expect("a history serialises");
    write(&file, &text)?;
    let finding = analyse(&history, resumed_at);
    Ok(ZombieRun {
        history,
        file,
        finding,
    })
}

/// Steps 1 to 4 of the story, each when the instances' own events say so; the wall time
/// of the SIGCONT.
fn story(
    tc: &Toolchain,
    dir: &Path,
    instances: &mut [Instance],
    driver: &mut super::java::JavaProc,
    names: &[&str; 4],
) -> Result<u64, LiveError> {
    let events = |i: usize| Instance::events_file(dir, names[i], 1);
    let minute = Duration::from_secs(60);
    for inst in &mut instances[..2] {
        inst.start(tc, dir)?;
    }
    for inst in &mut instances[..2] {
        proc(inst).expect("RUNNING", Duration::from_secs(90))?;
    }
    driver.send("play")?;
    await_event(&events(1), "o1's reservation", minute, |e| {
        processed(e, "product-service-0/product-service", "\"ReserveStock\"")
    })?;
    std::thread::sleep(Duration::from_millis(500)); // its transaction committed
    proc(&mut instances[1]).signal("KILL")?;
    instances[1].proc = None;
    instances[2].start(tc, dir)?;
    proc(&mut instances[2]).expect("INITIALISED", Duration::from_secs(90))?;
    proc(&mut instances[2]).signal("STOP")?;
    instances[3].start(tc, dir)?;
    let p2 = "product-service-2/product-service";
    await_event(
        &events(3),
        "the task's move to product-service-2",
        Duration::from_secs(90),
        |e| {
            e.client == p2
                && e.kind == "note"
                && e.value
                    .as_deref()
                    .is_some_and(|v| v.contains("initialised"))
        },
    )?;
    await_event(
        &events(3),
        "o2's reservation by product-service-2",
        minute,
        |e| processed(e, p2, "\"o2\""),
    )?;
    std::thread::sleep(Duration::from_millis(1000));
    let resumed_at = now_ms();
    proc(&mut instances[2]).signal("CONT")?;
    Ok(resumed_at)
}

fn proc(i: &mut Instance) -> &mut super::java::JavaProc {
    i.proc.as_mut().expect("a started instance")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(releases: &[bool], zombie_note_at: u64) -> LiveHistory {
        let release = r#"{"type":"ReservationReleased","order_id":"o1","product_id":"p1","quantity":1,"reason":"timeout"}"#;
        let records: Vec<serde_json::Value> = releases
            .iter()
            .enumerate()
            .map(|(i, committed)| {
                serde_json::json!({"topic": "order-replies", "partition": 0, "offset": i,
                    "key": "o1", "value": release, "timestamp": 10, "timestamp_type": "LogAppendTime",
                    "committed": committed})
            })
            .collect();
        let note = |client: &str, t: u64, text: &str| serde_json::json!({"t": t, "kind": "note", "client": client, "value": text});
        serde_json::from_value(serde_json::json!({
            "format": super::super::history::FORMAT, "scenario": "s", "scenario_path": "s.toml",
            "design": "saga-direct-timers", "run": 0, "prefix": "r0.", "kafka_version": "4.4.0",
            "brokers": 1, "decision_bound_ms": 1000, "t0": 0, "outcome": "quiescent",
            "recorded_at": 100, "records": records, "end_offsets": {}, "acks": [],
            "events": [
                note("product-service-2/product-service", 5, "punctuation releases [o1] of p1"),
                note("product-service-1/product-service", zombie_note_at, "punctuation releases [o1] of p1"),
            ],
            "stores": [], "group_offsets": {}
        }))
        .expect("a history")
    }

    #[test]
    fn a_second_committed_release_is_the_unfenced_zombie_and_an_aborted_one_is_not() {
        let f = analyse(&history(&[true, true], 50), 40);
        assert!(f.unfenced() && f.moved, "{f:?}");
        assert_eq!(f.zombie_notes.len(), 1);
        let f = analyse(&history(&[true, false], 50), 40);
        assert!(!f.unfenced(), "{f:?}");
        assert_eq!((f.releases_committed, f.releases_aborted), (1, 1));
        assert!(analyse(&history(&[true], 30), 40).zombie_notes.is_empty());
    }
}
