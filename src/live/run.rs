//! One live run: the run's topics, the design's service instances (one JVM each), the
//! workload played by the order producer, the scenario's faults played on the real
//! processes ([`super::player`]), and the history read back — all on a running
//! [`Cluster`].

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::cluster::Cluster;
use super::faults::{self, FaultPlan, LiveFault};
use super::history::{DriverOut, LiveEvent, LiveHistory, LiveStores, FORMAT};
use super::java::{JavaProc, Toolchain};
use super::player::{Instance, Player};
use super::{LiveError, TWINS};

use crate::kit::{streams_config, Frontend, StockRecords};
use crate::scenario::Scenario;
use oversell_sim::{Guarantee, Millis, ScheduledFault, StreamsConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to run.
pub struct Plan<'a> {
    pub scenario: &'a Scenario,
    pub scenario_path: &'a Path,
    pub design: &'a str,
    /// The live time scale ([`super::scale`]); `None`: the scenario's default.
    pub time_scale: Option<u64>,
}

impl Plan<'_> {
    /// The factor every time of the story is multiplied by live.
    pub fn scale(&self) -> u64 {
        self.time_scale
            .unwrap_or_else(|| super::scale::default_scale(self.scenario))
    }
}

/// One finished live run.
pub struct Finished {
    pub history: LiveHistory,
    pub file: PathBuf,
    /// From the service's start to the history written.
    pub wall: Duration,
}

/// A design's live twin: the `live/` command, its topics and applications.
pub struct Twin {
    /// `live/`'s command.
    pub command: &'static str,
    pub guarantee: Guarantee,
    /// The topics the driver creates (the twin's others are Kafka Streams' own).
    pub topics: &'static str,
    /// `application:input,input;...`: what the driver waits on to call a run quiescent.
    pub groups: &'static str,
    /// The outside world's records, as the simulated design's frontend writes them.
    pub frontend: Frontend,
    /// The services, one JVM per instance each: (service, `app=` argument if the command
    /// runs one application of several).
    pub services: &'static [(&'static str, Option<&'static str>)],
    /// `saga-direct-timers`: the punctuations write their effects themselves.
    pub direct_timers: bool,
}

/// The product service alone (the naive and re-keyed designs).
const PRODUCT_SERVICE: &[(&str, Option<&str>)] = &[("product-service", None)];

/// The live twin of `design`, if it has one.
pub fn twin(design: &str) -> Option<Twin> {
    let rekeyed = |guarantee| Twin {
        command: "rekeyed",
        guarantee,
        topics: "orders,warehouse-inventory,order-validations",
        groups: "inventory-service:orders,warehouse-inventory,\
                 inventory-service-orders-by-product-repartition",
        frontend: Frontend {
            stock_records: StockRecords::AbsoluteCounts,
            ..Frontend::new("orders", "warehouse-inventory")
        },
        services: PRODUCT_SERVICE,
        direct_timers: false,
    };
    // src/designs/saga/mod.rs: OrderService and ProductService, each its own instances,
    // both exactly_once_v2; orders keyed by order id, stock deltas on product-commands.
    let saga = |direct_timers| Twin {
        command: "saga",
        guarantee: Guarantee::ExactlyOnceV2,
        topics: "orders,product-commands,order-replies,order-outcomes",
        groups: "order-service:orders,order-replies;product-service:product-commands",
        frontend: Frontend::new("orders", "product-commands"),
        services: &[
            ("order-service", Some("order-service")),
            ("product-service", Some("product-service")),
        ],
        direct_timers,
    };
    match design {
        "naive" => Some(Twin {
            command: "naive",
            guarantee: Guarantee::AtLeastOnce,
            topics: "orders,stock",
            groups: "product-checker:orders;product-stock:orders,stock",
            frontend: Frontend {
                orders: "orders".into(),
                orders_by_product: true,
                stock: "stock".into(),
                stock_records: StockRecords::Deltas,
            },
            services: PRODUCT_SERVICE,
            direct_timers: false,
        }),
        "rekeyed-alo" => Some(rekeyed(Guarantee::AtLeastOnce)),
        "rekeyed-eos" => Some(rekeyed(Guarantee::ExactlyOnceV2)),
        "saga" => Some(saga(false)),
        "saga-direct-timers" => Some(saga(true)),
        _ => None,
    }
}

/// The service instances of a run, each its own JVM: `<service>-<i>` for each of the
/// twin's services and the scenario's `topology.instances`, as the simulator names them
/// (`kit::service`); with each one's `app=` argument, if any.
pub fn instances_of(twin: &Twin, s: &Scenario) -> Vec<(String, Option<&'static str>)> {
    twin.services
        .iter()
        .flat_map(|(service, app)| {
            (0..s.topology.instances).map(move |i| (format!("{service}-{i}"), *app))
        })
        .collect()
}

/// Why a scenario cannot be played on Kafka 4.x whatever the twin, if it cannot.
fn unplayable(s: &Scenario) -> Option<String> {
    // StreamsConfig.UPGRADE_FROM_CONFIG (UpgradeFromValues) accepts 2.4 and later only
    // in Kafka Streams 4.x, all cooperative: no setting rebalances eagerly.
    (s.streams.rebalance_protocol == Some(oversell_sim::protocol::RebalanceProtocol::Eager)).then(
        || {
            format!(
                "scenario {} rebalances eagerly, which Kafka Streams 4.x cannot: `upgrade.from` \
             accepts 2.4 and later only, all cooperative",
                s.name
            )
        },
    )
}

/// Whether the live mode can play this scenario with this design: a twin exists and
/// every fault can be played on real processes.
pub fn supported(plan: &Plan<'_>) -> Result<(), LiveError> {
    fault_plan(plan, 5, 0).map(|_| ())
}

/// The fault plan of run `index` on a cluster of `brokers`.
pub fn fault_plan(plan: &Plan<'_>, brokers: u32, index: u32) -> Result<FaultPlan, LiveError> {
    let registry = crate::designs::Registry::builtin();
    let design = registry
        .get(plan.design)
        .filter(|_| twin(plan.design).is_some());
    let Some(design) = design else {
        return Err(LiveError::Unsupported(format!(
            "design {:?} has no live twin yet; live twins: {}",
            plan.design,
            TWINS.join(", ")
        )));
    };
    let s = plan.scenario;
    if let Some(why) = unplayable(s) {
        return Err(LiveError::Unsupported(why));
    }
    let twin = twin(plan.design).expect("checked above");
    let names: Vec<String> = instances_of(&twin, s).into_iter().map(|(n, _)| n).collect();
    let mut out = faults::plan(s, design, &names, brokers, index)?;
    if let Some(d) = s
        .faults
        .live
        .pause_holder
        .keys()
        .find(|d| !TWINS.contains(&d.as_str()))
    {
        return Err(LiveError::Unsupported(format!(
            "scenario {}: [faults.live.pause_holder] names {d:?}, which has no live twin; \
             live twins: {}",
            s.name,
            TWINS.join(", ")
        )));
    }
    if let Some(task) = s.faults.live.pause_holder.get(plan.design) {
        let app = super::holder::reader_of(twin.groups, &task.topic).ok_or_else(|| {
            LiveError::Unsupported(format!(
                "scenario {}: [faults.live] pause_holder names topic {:?}, which no application \
                 of the {} twin reads",
                s.name, task.topic, plan.design
            ))
        })?;
        out.pause_holder = Some(super::holder::Checked {
            app,
            topic: task.topic.clone(),
            partition: task.partition,
        });
    }
    Ok(out)
}

/// The workload as the driver plays it: the simulator's own frontend schedule (initial
/// stock at 0, restocks, orders), in time order.
pub(super) fn workload(scenario: &Scenario, frontend: &Frontend) -> serde_json::Value {
    let mut schedule = frontend.schedule(scenario);
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
/// `interrupted` says when to give up (Ctrl-C).
pub fn run_once(
    tc: &Toolchain,
    cluster: &mut Cluster,
    plan: &Plan<'_>,
    index: u32,
    out: &Path,
    interrupted: &dyn Fn() -> bool,
) -> Result<Finished, LiveError> {
    let k = plan.scale();
    let faults = fault_plan(plan, cluster.size, index)?.scaled(k);
    let twin = twin(plan.design).expect("checked by fault_plan");
    let started = Instant::now();
    let scaled = super::scale::scaled(plan.scenario, k);
    let s = &scaled;
    let dir = run_dir(cluster, s, &twin, index)?;
    let config = streams_config(plan.design, twin.guarantee, s, &[]);
    let heals = faults.heals_at().max(armed_heal(s, &faults));
    let bound = super::scale::time_bound(s, heals);
    if bound.capped() {
        eprintln!(
            "live: {}'s time bound ({} s scaled) is above the live maximum; the run is cut at {} s",
            s.name,
            bound.scenario_ms / 1000,
            bound.ms / 1000
        );
    }
    let bound_ms = bound.ms;
    let extra = [format!("not-before-ms={heals}")];
    let run = DriverRun {
        index,
        dir: &dir,
        bound_ms,
        commit_ms: config.commit_interval_ms,
    };
    let mut driver = start_driver(tc, cluster, s, &twin, &run, &extra)?;
    let mut instances = instances(cluster, s, index, &dir, &config, &twin, &faults);
    for inst in &mut instances {
        inst.start(tc, &dir)?;
    }
    for inst in &mut instances {
        let proc = inst.proc.as_mut().expect("started");
        proc.expect("RUNNING", Duration::from_secs(180))?;
    }
    driver.send("play")?;
    let mut player = Player::new(tc, &dir, &mut instances, cluster, faults, interrupted);
    player.play(&mut driver, Duration::from_millis(bound_ms + 90_000))?;
    player.heal()?;
    let played = std::mem::take(&mut player.played);
    stop_all(&mut instances)?;
    record(driver)?;
    let mut history = assemble(plan, index, cluster.size, &dir, &instances, played)?;
    history.time_scale = k;
    history.decision_bound_ms = s.run.decision_bound_ms;
    let file = out.join(format!("{}-{}-run{index}.json", s.name, plan.design));
    let text = serde_json::to_string_pretty(&history).expect("a history serialises");
    write(&file, &text)?;
    Ok(Finished {
        history,
        file,
        wall: started.elapsed(),
    })
}

/// Run `index`'s directory, with the workload and the payments the driver plays.
pub(super) fn run_dir(
    cluster: &Cluster,
    s: &Scenario,
    twin: &Twin,
    index: u32,
) -> Result<PathBuf, LiveError> {
    let dir = cluster.dir.join(format!("run-{index}"));
    std::fs::create_dir_all(&dir).map_err(|e| LiveError::io(&dir, e))?;
    write(
        &dir.join("workload.json"),
        &workload(s, &twin.frontend).to_string(),
    )?;
    write(&dir.join("payments.json"), &payments_json(s).to_string())?;
    Ok(dir)
}

/// Which run the driver records: its number, directory, time bound and commit interval.
pub(super) struct DriverRun<'a> {
    pub index: u32,
    pub dir: &'a Path,
    pub bound_ms: u64,
    pub commit_ms: u64,
}

/// The driver, started with the twin's topics and groups, `extra` arguments and the
/// brokers' log directories (the transactional history), once its topics exist.
pub(super) fn start_driver(
    tc: &Toolchain,
    cluster: &Cluster,
    s: &Scenario,
    twin: &Twin,
    run: &DriverRun<'_>,
    extra: &[String],
) -> Result<JavaProc, LiveError> {
    let mut args = driver_args(cluster, s, run.index, run.dir, run.bound_ms, run.commit_ms);
    args.push(format!("topics={}", twin.topics));
    args.push(format!("groups={}", twin.groups));
    args.extend(extra.iter().cloned());
    let dirs: Vec<String> = cluster
        .log_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    args.push(format!("log-dirs={}", dirs.join(",")));
    let name = format!("driver-{}", run.index);
    let mut driver = JavaProc::spawn(tc, &name, 256, "driver", &args, run.dir)?;
    driver.expect("TOPICS", Duration::from_secs(90))?;
    Ok(driver)
}

/// The run's service instances, not started yet; the armed one gets its crash point.
fn instances(
    cluster: &Cluster,
    s: &Scenario,
    index: u32,
    dir: &Path,
    config: &StreamsConfig,
    twin: &Twin,
    faults: &FaultPlan,
) -> Vec<Instance> {
    let mut out = Vec::new();
    for (i, (name, app)) in instances_of(twin, s).iter().enumerate() {
        let name = name.as_str();
        let mut args = service_args(cluster, s, index, name, dir, config);
        args.push(format!("application-server=localhost:{}", i + 1));
        args.extend(saga_args(twin, s, *app, dir));
        if let Some(a) = faults.crash_point.as_ref().filter(|a| a.instance == name) {
            args.push(format!("crash-point={}", a.point.name()));
            let marker = dir.join("crash-point.fired");
            args.push(format!("crash-marker={}", marker.display()));
        }
        out.push(Instance::new(name, twin.command, args));
    }
    out
}

/// A saga instance's own arguments: its application, the timers, the payment plan.
pub(super) fn saga_args(twin: &Twin, s: &Scenario, app: Option<&str>, dir: &Path) -> Vec<String> {
    let Some(app) = app else {
        return Vec::new();
    };
    vec![
        format!("app={app}"),
        format!("direct-timers={}", twin.direct_timers),
        format!("timeout-ms={}", s.saga.reservation_timeout_ms),
        format!("punctuate-ms={}", s.saga.punctuate_every_ms),
        format!("payments={}", dir.join("payments.json").display()),
    ]
}

/// The scenario's payment plan as the saga twin reads it.
pub(super) fn payments_json(s: &Scenario) -> serde_json::Value {
    serde_json::json!({
        "fail": s.payments.fail,
        "delay_ms": s.payments.delay_ms,
        "delays": s.payments.delays,
    })
}

/// When a crash point's restart is due at the latest: its scheduled crash's `at` plus
/// `restart_after` (the crash point fires on an earlier reservation, or not at all).
fn armed_heal(s: &Scenario, plan: &FaultPlan) -> Millis {
    if plan.crash_point.is_none() {
        return 0;
    }
    s.faults
        .schedule
        .iter()
        .map(|f| match f {
            ScheduledFault::Crash {
                at, restart_after, ..
            } => at + restart_after,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// The driver, settled, reads the logs back once every application has stopped.
pub(super) fn record(mut driver: JavaProc) -> Result<(), LiveError> {
    driver.send("record")?;
    driver.expect("DONE", Duration::from_secs(120))?;
    driver.finish(Duration::from_secs(10));
    Ok(())
}

/// One cut of the run: every instance pauses its applications and writes its stores, then
/// every one closes them (a clean close commits: the stores' changelogs and the offsets
/// catch up with the dumped stores); only then does the driver read the logs ([`record`]).
/// So the stores and the logs are one state, and no store moves between the dumps.
pub(super) fn stop_all(instances: &mut [Instance]) -> Result<(), LiveError> {
    let mut running: Vec<&mut JavaProc> = instances
        .iter_mut()
        .filter_map(|i| i.proc.as_mut())
        .collect();
    for p in running.iter_mut() {
        p.send("dump")?;
    }
    for p in running.iter_mut() {
        p.expect("DUMPED", Duration::from_secs(60))?;
    }
    for p in running.iter_mut() {
        p.send("stop")?;
    }
    for p in running.iter_mut() {
        p.expect("STOPPED", Duration::from_secs(60))?;
    }
    for inst in instances.iter_mut() {
        if let Some(p) = inst.proc.take() {
            p.finish(Duration::from_secs(10));
        }
    }
    Ok(())
}

/// A run's topic prefix on the shared cluster.
fn prefix(index: u32) -> String {
    format!("r{index}.")
}

/// The driver's arguments: topics, workload, quiescence, where to write.
pub(super) fn driver_args(
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
        format!("warmup=warmup-r{index}"),
        format!("workload={}", dir.join("workload.json").display()),
        format!("history={}", dir.join("driver.json").display()),
        format!("idempotent={}", s.topology.order_producer_idempotent),
        // Three commit intervals, at most 15 s: a scaled commit interval can be long.
        format!("quiet-ms={}", (3 * commit_ms).clamp(500, 15_000)),
        format!("time-bound-ms={bound_ms}"),
        "start-timeout-ms=60000".into(),
    ]
}

/// A service instance's arguments, with the scenario's Kafka Streams settings.
pub(super) fn service_args(
    cluster: &Cluster,
    s: &Scenario,
    index: u32,
    instance: &str,
    dir: &Path,
    config: &StreamsConfig,
) -> Vec<String> {
    let (session_ms, heartbeat_ms) = membership(s);
    let guarantee = match config.guarantee {
        Guarantee::AtLeastOnce => "at_least_once",
        Guarantee::ExactlyOnceV2 => "exactly_once_v2",
    };
    let mut args = vec![
        format!("bootstrap={}", cluster.bootstrap),
        format!("prefix={}", prefix(index)),
        format!("instance={instance}"),
        format!(
            "stores={}",
            dir.join(format!("stores-{instance}.json")).display()
        ),
        format!("state={}", dir.join("state").join(instance).display()),
        format!("partitions={}", s.topology.partitions),
        format!("commit-interval-ms={}", config.commit_interval_ms),
        format!("session-timeout-ms={session_ms}"),
        format!("heartbeat-interval-ms={heartbeat_ms}"),
        format!("guarantee={guarantee}"),
    ];
    if let Some(t) = s.streams.transaction_timeout_ms {
        args.push(format!("transaction-timeout-ms={t}"));
    }
    args
}

/// The driver's record, the instances' event logs and stores, the faults played, as one
/// history.
pub(super) fn assemble(
    plan: &Plan<'_>,
    index: u32,
    brokers: u32,
    dir: &Path,
    instances: &[Instance],
    faults: Vec<LiveFault>,
) -> Result<LiveHistory, LiveError> {
    let driver: DriverOut = parse(&dir.join("driver.json"))?;
    let mut events = Vec::new();
    let mut stores = Vec::new();
    for inst in instances {
        for n in 1..=inst.starts {
            events.extend(read_events(&Instance::events_file(dir, &inst.name, n))?);
        }
        stores.push(parse::<LiveStores>(
            &dir.join(format!("stores-{}.json", inst.name)),
        )?);
    }
    events.sort_by_key(|e| e.t); // stable: each instance's own order for equal times
    Ok(LiveHistory {
        format: FORMAT.into(),
        scenario: plan.scenario.name.clone(),
        scenario_path: plan.scenario_path.display().to_string(),
        design: plan.design.into(),
        run: index,
        prefix: prefix(index),
        kafka_version: driver.kafka_version,
        brokers,
        decision_bound_ms: plan.scenario.run.decision_bound_ms,
        time_scale: 1,
        t0: driver.t0,
        outcome: driver.outcome,
        recorded_at: driver.recorded_at,
        records: driver.records,
        end_offsets: driver.end_offsets,
        acks: driver.acks,
        events,
        stores,
        group_offsets: driver.group_offsets,
        faults,
        log: driver.log,
        coordinator: driver.coordinator,
    })
}

/// One event log; a JVM killed while writing leaves at most half a last line, which is
/// dropped, and one killed before it opened its log leaves none.
pub(super) fn read_events(file: &Path) -> Result<Vec<LiveEvent>, LiveError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LiveError::io(file, e)),
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<LiveEvent>(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(LiveError::Process(format!("{}: {e}", file.display()))),
        }
    }
    Ok(out)
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LiveError> {
    let text = std::fs::read_to_string(path).map_err(|e| LiveError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| LiveError::Process(format!("{}: {e}", path.display())))
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), LiveError> {
    std::fs::write(path, text).map_err(|e| LiveError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_file;

    fn scenario(name: &str) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(format!("{name}.toml"));
        load_file(&path).expect("a shipped scenario")
    }

    /// The outside world's records in a simulated run of the design, on the twin's
    /// frontend topics: (topic, key, value).
    fn simulated_inputs(
        t: &Twin,
        design: &str,
        s: &Scenario,
    ) -> Vec<(String, Option<String>, String)> {
        let d = crate::expect::design_named(design).expect("a design");
        let judged = crate::run::run_seed(d.as_ref(), s, &[], 0);
        let topics = [t.frontend.orders.as_str(), t.frontend.stock.as_str()];
        let mut out: Vec<_> = judged
            .result
            .trace
            .records
            .iter()
            .filter_map(|r| match &r.event {
                oversell_sim::Event::Append {
                    tp,
                    key,
                    value: Some(v),
                    ..
                } if topics.contains(&tp.topic.as_str())
                    && (v.contains("\"OrderPlaced\"") || v.contains("\"StockAdded\"")) =>
                {
                    Some((tp.topic.to_string(), key.clone(), v.clone()))
                }
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn each_twin_plays_the_workload_its_simulated_design_is_given() {
        let s = scenario("saga-reservation-timeout");
        for design in TWINS {
            let t = twin(design).expect("a twin");
            let mut ours: Vec<_> = t
                .frontend
                .schedule(&s)
                .into_iter()
                .map(|r| (r.topic.to_string(), Some(r.key), r.value))
                .collect();
            ours.sort();
            assert_eq!(ours, simulated_inputs(&t, design, &s), "{design}");
        }
    }

    /// zombie-after-rebalance × naive pauses the holder of the checker's `orders-0`; the
    /// designs the scenario names no task for pause the instance it names.
    #[test]
    fn a_pause_holder_is_the_checked_application_s_task_for_the_designs_that_name_one() {
        let s = scenario("zombie-after-rebalance");
        let plan = |design| {
            let p = Plan {
                scenario: &s,
                scenario_path: Path::new("scenarios/zombie-after-rebalance.toml"),
                design,
                time_scale: None,
            };
            fault_plan(&p, 1, 0).expect("playable")
        };
        assert_eq!(
            plan("naive").pause_holder,
            Some(super::super::holder::Checked {
                app: "product-checker".into(),
                topic: "orders".into(),
                partition: 0,
            })
        );
        assert_eq!(plan("rekeyed-alo").pause_holder, None);
        let mut typo = s.clone();
        typo.faults.live.pause_holder = [(
            "naïve".to_string(),
            typo.faults.live.pause_holder["naive"].clone(),
        )]
        .into();
        let p = Plan {
            scenario: &typo,
            scenario_path: Path::new("x.toml"),
            design: "naive",
            time_scale: None,
        };
        let err = fault_plan(&p, 1, 0).expect_err("a design without a twin");
        assert!(err.to_string().contains("naïve"), "{err}");
    }

    #[test]
    fn an_eager_scenario_is_refused_because_kafka_streams_4_cannot_rebalance_eagerly() {
        let s = scenario("saga-zombie-punctuation");
        let why = unplayable(&s).expect("refused");
        assert!(why.contains("upgrade.from"), "{why}");
        assert_eq!(unplayable(&scenario("last-unit")), None);
        let saga = twin("saga").expect("a twin");
        let names: Vec<String> = instances_of(&saga, &scenario("zombie-after-rebalance"))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "order-service-0",
                "order-service-1",
                "product-service-0",
                "product-service-1"
            ]
        );
    }
}
