//! One live run: the run's topics, the design's service instance, the workload played by
//! the order producer, and the history read back — all on a running [`Cluster`].

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::cluster::Cluster;
use super::history::{DriverOut, LiveEvent, LiveHistory, LiveStores, FORMAT};
use super::java::{JavaProc, Toolchain};
use super::twins::{self, Twin};
use super::{LiveError, TWINS};

use crate::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to run.
pub struct Plan<'a> {
    pub scenario: &'a Scenario,
    pub scenario_path: &'a Path,
    pub design: &'a str,
}

/// One finished live run.
pub struct Finished {
    pub history: LiveHistory,
    pub file: PathBuf,
    /// From the service's start to the history written.
    pub wall: Duration,
}

/// Whether the live mode can play this scenario with this design: a twin exists, one
/// service instance, no faults (fault injection on real processes is not built yet), a
/// rebalance protocol Kafka 4.x has. The twin.
pub fn supported(plan: &Plan<'_>) -> Result<&'static Twin, LiveError> {
    let Some(twin) = twins::twin(plan.design).filter(|_| TWINS.contains(&plan.design)) else {
        return Err(LiveError::Unsupported(format!(
            "design {:?} has no live twin yet; live twins: {}",
            plan.design,
            TWINS.join(", ")
        )));
    };
    let s = plan.scenario;
    if let Some(why) = twin.refuses(s) {
        return Err(LiveError::Unsupported(why));
    }
    if s.topology.instances != 1 {
        return Err(LiveError::Unsupported(format!(
            "scenario {} runs {} instances; the live mode runs one service instance so far",
            s.name, s.topology.instances
        )));
    }
    if s.faults.rates.any() || !s.faults.schedule.is_empty() {
        return Err(LiveError::Unsupported(format!(
            "scenario {} has faults; fault injection on real processes (SIGKILL, SIGSTOP, broker \
             restarts) is not built in the live mode yet",
            s.name
        )));
    }
    Ok(twin)
}

/// The workload as the driver plays it: the simulator's own frontend schedule of the
/// design (initial stock at 0, restocks, orders), in time order.
fn workload(twin: &Twin, scenario: &Scenario) -> serde_json::Value {
    let mut schedule = twin.frontend().schedule(scenario);
    schedule.sort_by_key(|r| r.at); // stable: the producer's order for equal times
    serde_json::Value::Array(
        schedule
            .into_iter()
            .map(|r| serde_json::json!({"at": r.at, "topic": r.topic, "key": r.key, "value": r.value}))
            .collect(),
    )
}

/// Kafka Streams' session timeout and heartbeat interval of a live instance: the
/// scenario's own `[streams]` values if it sets them, otherwise Kafka's defaults (45 s,
/// 3 s). The simulator's scaled-down defaults (300 ms, 100 ms) are not used live: on a
/// shared machine a real 300 ms session expires in a GC or scheduling stall, a rebalance
/// the scenario did not ask for.
fn membership(s: &Scenario) -> (u64, u64) {
    let session = s.streams.session_timeout_ms.unwrap_or(45_000);
    let heartbeat = s
        .streams
        .heartbeat_interval_ms
        .unwrap_or(3_000.min(session / 3));
    (session, heartbeat)
}

/// Run the plan once on `cluster`; `index` numbers the run (its topic prefix).
pub fn run_once(
    tc: &Toolchain,
    cluster: &mut Cluster,
    plan: &Plan<'_>,
    index: u32,
    out: &Path,
) -> Result<Finished, LiveError> {
    let twin = supported(plan)?;
    let started = Instant::now();
    let s = plan.scenario;
    let dir = cluster.dir.join(format!("run-{index}"));
    std::fs::create_dir_all(&dir).map_err(|e| LiveError::io(&dir, e))?;
    let prefix = prefix(index);
    write(&dir.join("workload.json"), &workload(twin, s).to_string())?;
    write(
        &dir.join("payments.json"),
        &twins::payments_json(s).to_string(),
    )?;
    let commit_ms = twin.commit_interval_ms(s);
    let last_at = s
        .orders
        .iter()
        .map(|o| o.at)
        .chain(s.restocks.iter().map(|r| r.at))
        .max();
    let bound_ms = (last_at.unwrap_or(0) + s.run.decision_bound_ms).clamp(10_000, 120_000);
    let args = driver_args(twin, cluster, s, index, &dir, bound_ms, commit_ms);
    let mut driver = JavaProc::spawn(tc, &format!("driver-{index}"), 256, "driver", &args, &dir)?;
    driver.expect("TOPICS", Duration::from_secs(90))?;
    let mut services = Vec::new();
    let mut instances = Vec::new();
    for (service, app) in twin.services {
        let instance = format!("{service}-0");
        let mut args = service_args(cluster, s, index, &instance, &dir, commit_ms);
        let payments = dir.join("payments.json").display().to_string();
        args.extend(twin.service_args(s, *app, &payments));
        services.push(JavaProc::spawn(
            tc,
            &instance,
            384,
            twin.command,
            &args,
            &dir,
        )?);
        instances.push(instance);
    }
    for service in &mut services {
        service.expect("RUNNING", Duration::from_secs(90))?;
    }
    driver.send("play")?;
    driver.expect("DONE", Duration::from_millis(bound_ms + 90_000))?;
    for service in &mut services {
        service.send("stop")?;
    }
    for mut service in services {
        service.expect("STOPPED", Duration::from_secs(60))?;
        service.finish(Duration::from_secs(10));
    }
    driver.finish(Duration::from_secs(10));
    let history = assemble(plan, index, &prefix, cluster.size, &dir, &instances)?;
    let file = out.join(format!("{}-{}-run{index}.json", s.name, plan.design));
    let text = serde_json::to_string_pretty(&history).expect("a history serialises");
    write(&file, &text)?;
    Ok(Finished {
        history,
        file,
        wall: started.elapsed(),
    })
}

/// A run's topic prefix on the shared cluster.
fn prefix(index: u32) -> String {
    format!("r{index}.")
}

/// The driver's arguments: topics, workload, quiescence, where to write.
fn driver_args(
    twin: &Twin,
    cluster: &Cluster,
    s: &Scenario,
    index: u32,
    dir: &Path,
    bound_ms: u64,
    commit_ms: u64,
) -> Vec<String> {
    vec![
        format!("bootstrap={}", cluster.bootstrap),
        format!("prefix={}", prefix(index)),
        format!("brokers={}", cluster.size),
        format!("replication={}", cluster.size.min(3)),
        format!("partitions={}", s.topology.partitions),
        format!("topics={}", twin.topics.join(",")),
        format!("warmup=warmup-r{index}"),
        format!("workload={}", dir.join("workload.json").display()),
        format!("history={}", dir.join("driver.json").display()),
        format!("idempotent={}", s.topology.order_producer_idempotent),
        format!("groups={}", twin.groups),
        format!("quiet-ms={}", (3 * commit_ms).max(500)),
        format!("time-bound-ms={bound_ms}"),
        "start-timeout-ms=60000".into(),
    ]
}

/// A service JVM's common arguments, with the scenario's Kafka Streams settings.
fn service_args(
    cluster: &Cluster,
    s: &Scenario,
    index: u32,
    instance: &str,
    dir: &Path,
    commit_ms: u64,
) -> Vec<String> {
    let (session_ms, heartbeat_ms) = membership(s);
    vec![
        format!("bootstrap={}", cluster.bootstrap),
        format!("prefix={}", prefix(index)),
        format!("instance={instance}"),
        format!(
            "events={}",
            dir.join(format!("events-{instance}.jsonl")).display()
        ),
        format!(
            "stores={}",
            dir.join(format!("stores-{instance}.json")).display()
        ),
        format!("state={}", dir.join("state").display()),
        format!("partitions={}", s.topology.partitions),
        format!("commit-interval-ms={}", commit_ms),
        format!("session-timeout-ms={session_ms}"),
        format!("heartbeat-interval-ms={heartbeat_ms}"),
    ]
}

/// The driver's record, the instances' event logs and stores, as one history.
fn assemble(
    plan: &Plan<'_>,
    index: u32,
    prefix: &str,
    brokers: u32,
    dir: &Path,
    instances: &[String],
) -> Result<LiveHistory, LiveError> {
    let driver: DriverOut = parse(&dir.join("driver.json"))?;
    let mut events = Vec::new();
    let mut stores = Vec::new();
    for instance in instances {
        let events_file = dir.join(format!("events-{instance}.jsonl"));
        let text =
            std::fs::read_to_string(&events_file).map_err(|e| LiveError::io(&events_file, e))?;
        for line in text.lines() {
            events.push(
                serde_json::from_str::<LiveEvent>(line)
                    .map_err(|e| LiveError::Process(format!("{}: {e}", events_file.display())))?,
            );
        }
        stores.push(parse::<LiveStores>(
            &dir.join(format!("stores-{instance}.json")),
        )?);
    }
    events.sort_by_key(|e| e.t); // stable: each instance's own order for equal times
    Ok(LiveHistory {
        format: FORMAT.into(),
        scenario: plan.scenario.name.clone(),
        scenario_path: plan.scenario_path.display().to_string(),
        design: plan.design.into(),
        run: index,
        prefix: prefix.into(),
        kafka_version: driver.kafka_version,
        brokers,
        decision_bound_ms: plan.scenario.run.decision_bound_ms,
        t0: driver.t0,
        outcome: driver.outcome,
        recorded_at: driver.recorded_at,
        records: driver.records,
        end_offsets: driver.end_offsets,
        acks: driver.acks,
        events,
        stores,
        group_offsets: driver.group_offsets,
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LiveError> {
    let text = std::fs::read_to_string(path).map_err(|e| LiveError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| LiveError::Process(format!("{}: {e}", path.display())))
}

fn write(path: &Path, text: &str) -> Result<(), LiveError> {
    std::fs::write(path, text).map_err(|e| LiveError::io(path, e))
}
