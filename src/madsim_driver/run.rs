//! One run on madsim: the cluster, the frontend and the service instances as nodes,
//! the scenario's scheduled faults and the network's, and the run record at the end.

use super::random::{self, Downs, Targets};
use super::services::{self, Ctx};
use super::spawned;
use super::store::Stores;
use super::streams;
use crate::checker::check;
use crate::designs::saga;
use crate::designs::{Design, Saga};
use crate::kit::{streams_config, world_config, Frontend, StockRecords};
use crate::run::{build_world, Judged};
use crate::scenario::Scenario;
use oversell_madsim::cluster::Cluster;
use oversell_madsim::madsim::net::NetSim;
use oversell_madsim::madsim::runtime::{Handle, NodeHandle, Runtime};
use oversell_madsim::madsim::task;
use oversell_madsim::madsim::time::{sleep, Duration};
use oversell_madsim::record::{now_ms, Recorder};
use oversell_sim::protocol::Acks;
use oversell_sim::{Guarantee, Millis, Outcome, RunResult, ScheduledFault};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The network's faults for a run: madsim's packet loss and latency, and a window in
/// which one instance's node is clogged (a network partition of that node).
#[derive(Clone, Debug, PartialEq)]
pub struct NetFaults {
    pub packet_loss_rate: f64,
    pub latency_ms: (u64, u64),
    /// (instance, from, until): the node's links clogged in both directions.
    pub clog: Option<(String, Millis, Millis)>,
}

impl Default for NetFaults {
    /// madsim's own defaults: no loss, 1 to 10 ms per message.
    fn default() -> Self {
        NetFaults {
            packet_loss_rate: 0.0,
            latency_ms: (1, 10),
            clog: None,
        }
    }
}

impl NetFaults {
    fn config(&self) -> oversell_madsim::madsim::Config {
        let mut config = oversell_madsim::madsim::Config::default();
        config.net.packet_loss_rate = self.packet_loss_rate;
        config.net.send_latency = Duration::from_millis(self.latency_ms.0)
            ..Duration::from_millis(self.latency_ms.1.max(self.latency_ms.0 + 1));
        config
    }
}

/// Run `design` on `scenario` under madsim with `seed` and judge the run. The caller has
/// checked [`super::unsupported`].
pub fn run_seed(design: &dyn Design, scenario: &Scenario, seed: u64, net: &NetFaults) -> Judged {
    run_service_seed(design, scenario, seed, net, Service::Design)
}

/// [`run_seed`] with the instances running `service`.
pub fn run_service_seed(
    design: &dyn Design,
    scenario: &Scenario,
    seed: u64,
    net: &NetFaults,
    service: Service,
) -> Judged {
    let runtime = Runtime::with_seed_and_config(seed, net.config());
    let result = runtime.block_on(simulate_service(design, scenario, net, service));
    let verdict = check(&design.schema(), &result, scenario.run.decision_bound_ms);
    Judged {
        seed: Some(seed),
        result,
        verdict,
        swarm: None,
    }
}

/// What each service instance's node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The design's own async service (`naive`, `rekeyed-eos`).
    Design,
    /// `rekeyed-alo`'s stores and topics with a task per order that awaits between its
    /// check and its reservation (`spawned.rs`): a user's bug of the async form.
    SpawnPerOrder,
}

/// The run itself, inside a madsim runtime (a `#[madsim::test]` calls this directly).
pub async fn simulate(design: &dyn Design, scenario: &Scenario, net: &NetFaults) -> RunResult {
    simulate_service(design, scenario, net, Service::Design).await
}

/// [`simulate`] with the instances running `service`, judged by `design`'s schema.
pub async fn simulate_service(
    design: &dyn Design,
    scenario: &Scenario,
    net: &NetFaults,
    service: Service,
) -> RunResult {
    let broker = build_world(design, scenario, &[]).broker_mut().clone();
    let recorder = Recorder::new();
    let cluster = Cluster::start(broker, recorder.clone());
    let stores = Stores::default();
    let sent = Arc::new(AtomicBool::new(false));
    start_frontend(design.name(), scenario, sent.clone());
    let saga = streams::saga_apps(design.name(), scenario);
    let nodes = match &saga {
        Some(apps) => streams::start_saga(apps, scenario, &stores, &recorder),
        None => start_services(design.name(), service, scenario, &stores, &recorder),
    };
    let t = Targets {
        nodes,
        brokers: cluster.nodes().cloned(),
        stores: stores.clone(),
        recorder: recorder.clone(),
        downs: Downs::default(),
        struck: Arc::new(AtomicU64::new(0)),
    };
    let healed_at = play_faults(scenario, &t).max(play_clog(net, &t.nodes));
    t.struck.fetch_max(healed_at, Ordering::SeqCst);
    let struck = t.struck.clone();
    let planned = healed_at.max(super::brokers::play(scenario, &cluster, &struck));
    random::play(&scenario.faults.rates, scenario.faults.phase_ms, &t);
    let extra = saga.as_ref().map_or(1000, |_| Saga::settle_ms(scenario));
    let world = world_config(scenario, extra);
    sleep(Duration::from_millis(world.settle_until)).await;
    let groups = groups(design.name());
    let outcome = loop {
        let timers = || (saga.as_ref()).is_some_and(|a| streams::timers_pending(a, &stores));
        // The last fault healed `quiet_ms` ago, as the simulator's quiescence asks
        // (`World::quiescent`): an instance resumed from a pause has time to learn from
        // its heartbeat that it was expelled, and to close its lost tasks.
        let healed_at = planned.max(struck.load(Ordering::SeqCst));
        let healed = now_ms() >= healed_at + world.quiet_ms;
        if sent.load(Ordering::SeqCst) && healed && cluster.quiescent(groups) && !timers() {
            break Outcome::Quiescent;
        }
        if now_ms() >= scenario.run.max_time_ms {
            break Outcome::TimeBound;
        }
        sleep(Duration::from_millis(50)).await;
    };
    cluster.result(outcome, struck.load(Ordering::SeqCst), stores.snapshot())
}

fn start_frontend(design: &str, scenario: &Scenario, sent: Arc<AtomicBool>) {
    let frontend = match design {
        "naive" => Frontend {
            orders_by_product: true,
            ..Frontend::new("orders", "stock")
        },
        "saga" | "saga-direct-timers" => Frontend::new("orders", saga::COMMANDS),
        _ => Frontend {
            orders_by_product: true,
            stock_records: StockRecords::AbsoluteCounts,
            ..Frontend::new("orders", crate::designs::rekeyed::INVENTORY)
        },
    };
    let schedule = frontend.schedule(scenario);
    let streams = streams_config("frontend", Guarantee::AtLeastOnce, scenario, &[]);
    let acks = scenario.producer.acks;
    let idempotent = scenario.topology.order_producer_idempotent && acks == Acks::All;
    Handle::current()
        .create_node()
        .name(crate::designs::FRONTEND)
        .ip(IpAddr::V4(Ipv4Addr::new(10, 9, 1, 1)))
        .init(move || {
            let (schedule, streams, sent) = (schedule.clone(), streams.clone(), sent.clone());
            async move {
                services::frontend(schedule, streams, acks, idempotent).await;
                sent.store(true, Ordering::SeqCst);
            }
        })
        .build();
}

/// One node per service instance, `<service>-<i>`; a restart runs the service afresh.
fn start_services(
    design: &str,
    service: Service,
    scenario: &Scenario,
    stores: &Stores,
    recorder: &Recorder,
) -> BTreeMap<String, NodeHandle> {
    let (app, guarantee) = match (design, service) {
        ("naive", _) => (crate::designs::naive::STOCK_APP, Guarantee::AtLeastOnce),
        (_, Service::SpawnPerOrder) => (crate::designs::rekeyed::APP, Guarantee::AtLeastOnce),
        _ => (crate::designs::rekeyed::APP, Guarantee::ExactlyOnceV2),
    };
    let streams = streams_config(app, guarantee, scenario, &[]);
    let naive = design == "naive";
    let mut nodes = BTreeMap::new();
    for i in 0..scenario.topology.instances {
        let ctx = Ctx {
            instance: format!("product-service-{i}"),
            streams: streams.clone(),
            stores: stores.clone(),
            recorder: recorder.clone(),
            partitions: scenario.topology.partitions,
        };
        let name = ctx.instance.clone();
        let node = Handle::current()
            .create_node()
            .name(name.as_str())
            .ip(IpAddr::V4(Ipv4Addr::new(10, 9, 2, 1 + i as u8)))
            .init(move || {
                let ctx = ctx.clone();
                ctx.stores.forget(&ctx.instance);
                async move {
                    match (naive, service) {
                        (true, _) => services::naive_instance(ctx).await,
                        (false, Service::Design) => services::inventory_instance(ctx).await,
                        (false, Service::SpawnPerOrder) => spawned::spawning_instance(ctx).await,
                    }
                }
            })
            .build();
        nodes.insert(name, node);
    }
    nodes
}

/// The consumer groups whose committed offsets must reach the end of their inputs.
fn groups(design: &str) -> &'static [(&'static str, &'static [&'static str])] {
    use crate::designs::{naive, rekeyed};
    match design {
        "saga" | "saga-direct-timers" => &[
            (saga::ORDER_APP, &["orders", saga::REPLIES]),
            (saga::PRODUCT_APP, &[saga::COMMANDS]),
        ],
        "naive" => &[
            (naive::CHECKER_APP, &["orders"]),
            (naive::STOCK_APP, &["orders", "stock"]),
        ],
        _ => &[(rekeyed::APP, &["orders", rekeyed::INVENTORY])],
    }
}

/// Schedule the scenario's crashes, pauses and lost produce acknowledgements on tasks of
/// the supervisor; when the last of them heals. A crash or pause of an instance that is
/// not up then is skipped, as in the simulator (`World::scheduled_due`).
fn play_faults(scenario: &Scenario, t: &Targets) -> Millis {
    let mut healed_at = 0;
    for fault in &scenario.faults.schedule {
        let (at, instance, until, crash) = match fault {
            ScheduledFault::Crash {
                at,
                instance,
                restart_after,
            } => (*at, instance, at + restart_after, true),
            ScheduledFault::Pause {
                at,
                instance,
                duration,
            } => (*at, instance, at + duration, false),
            ScheduledFault::DropProduceAck {
                at,
                instance,
                count,
            } => {
                let (at, instance, count) = (*at, instance.clone(), *count);
                task::spawn(async move {
                    sleep(Duration::from_millis(at)).await;
                    oversell_madsim::netfaults::drop_produce_acks(&instance, count);
                });
                continue;
            }
            // The brokers' faults: `brokers.rs`.
            _ => continue,
        };
        if !t.nodes.contains_key(instance) {
            continue;
        }
        healed_at = healed_at.max(until);
        let (t, instance) = (t.clone(), instance.clone());
        task::spawn(async move {
            sleep(Duration::from_millis(at)).await;
            if let Some(heal) = random::strike_instance(&t, &instance, until, crash) {
                heal.await;
            }
        });
    }
    healed_at
}

/// Schedule the network's clog of one node; when it heals (0 without one).
fn play_clog(net: &NetFaults, nodes: &BTreeMap<String, NodeHandle>) -> Millis {
    let Some((instance, from, until)) = net.clog.clone() else {
        return 0;
    };
    let Some(node) = nodes.get(&instance) else {
        return 0;
    };
    let id = node.id();
    task::spawn(async move {
        sleep(Duration::from_millis(from)).await;
        NetSim::current().clog_node(id);
        sleep(Duration::from_millis(until.saturating_sub(from))).await;
        NetSim::current().unclog_node(id);
    });
    until
}
