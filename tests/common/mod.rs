//! Scenario generators shared by the tests.
#![allow(dead_code)]

use oversell::scenario::*;
use oversell::sim::{FaultRates, Millis, ScheduledFault};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The question's exact case: product1 with one unit, two orders of one unit back to back,
/// one partition, no faults.
pub fn last_unit() -> Scenario {
    Scenario {
        name: "last-unit".into(),
        description: "the question's exact case".into(),
        products: vec![Product {
            id: "product1".into(),
            stock: 1,
        }],
        orders: vec![
            order("o1", "product1", 1, 100),
            order("o2", "product1", 1, 100),
        ],
        restocks: vec![],
        topology: TopologySpec::default(),
        streams: StreamsSpec::default(),
        payments: Payments::default(),
        saga: SagaSpec::default(),
        kafka: Default::default(),
        cluster: Default::default(),
        producer: Default::default(),
        faults: FaultSpec::default(),
        run: RunSpec::default(),
        expect: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        expect_probes: BTreeMap::new(),
    }
}

pub fn order(id: &str, product: &str, quantity: u64, at: Millis) -> Order {
    Order {
        id: id.into(),
        product: product.into(),
        quantity,
        user: None,
        at,
    }
}

/// The fault kinds of the kernel, one generated sweep each (plus none and a mix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// No fault: the design's own races.
    None,
    /// Random crashes (restart after 50..400 ms).
    Crash,
    /// Random pauses of 200..1500 ms (past the session timeout: zombies).
    Pause,
    /// Lost messages, requests and responses.
    Drop,
    /// Duplicated messages.
    Duplicate,
    /// Delayed messages (held 10..300 ms).
    Delay,
    /// Lost, duplicated and delayed messages together.
    Network,
    /// Explicit crashes, pauses and lost produce acknowledgements at fixed times.
    Scheduled,
    /// An order producer without idempotence whose produce acknowledgements get lost.
    NonIdempotentProducer,
    /// Two or three instances of each service over two or three partitions.
    Instances,
    /// All of the above at once, at lower rates, but with an idempotent order producer
    /// (whose duplicated orders would mask everything else; it has its own kind).
    Mixed,
    /// Swarm faults: each run draws its own mix of crash, pause, drop, duplicate and
    /// delay rates from ranges (`oversell::swarm`), over one to three instances.
    Swarm,
    /// Broker faults on three brokers at the safe settings (replication factor 3,
    /// `min.insync.replicas = 2`, no unclean election, `acks=all`): crashes, half of them
    /// losing the broker's unflushed data, network partitions and slow followers, one at
    /// a time (the matrix's `broker` class, at generated rates).
    Broker,
}

impl FaultKind {
    pub const ALL: [FaultKind; 13] = [
        FaultKind::None,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Drop,
        FaultKind::Duplicate,
        FaultKind::Delay,
        FaultKind::Network,
        FaultKind::Scheduled,
        FaultKind::NonIdempotentProducer,
        FaultKind::Instances,
        FaultKind::Mixed,
        FaultKind::Swarm,
        FaultKind::Broker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::None => "none",
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Drop => "drop",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Delay => "delay",
            FaultKind::Network => "network",
            FaultKind::Scheduled => "scheduled",
            FaultKind::NonIdempotentProducer => "non-idempotent-producer",
            FaultKind::Instances => "instances",
            FaultKind::Mixed => "mixed",
            FaultKind::Swarm => "swarm",
            FaultKind::Broker => "broker",
        }
    }
}

/// The workload of a generated scenario: products, stock, orders, restocks, payment
/// failures. Orders arrive once the initial stock (written at time 0) is in: an order
/// that races its product's very first inventory row is its own story (tests/designs.rs).
fn workload() -> impl Strategy<Value = (Vec<Product>, Vec<Order>, Vec<Restock>, Vec<String>)> {
    (1usize..=3)
        .prop_flat_map(|n| {
            let stock = proptest::collection::vec(0u64..=4, n);
            let orders =
                proptest::collection::vec((0..n, 1u64..=2, 50u64..450, any::<bool>()), 1..=6);
            let restocks = proptest::collection::vec((0..n, 1u64..=3, 0u64..400), 0..=2);
            (stock, orders, restocks)
        })
        .prop_map(|(stock, orders, restocks)| {
            let products = (0..stock.len())
                .map(|i| Product {
                    id: format!("p{i}"),
                    stock: stock[i],
                })
                .collect();
            let mut fail = Vec::new();
            let orders = orders
                .iter()
                .enumerate()
                .map(|(i, (p, q, at, fails))| {
                    if *fails {
                        fail.push(format!("o{i}"));
                    }
                    order(&format!("o{i}"), &format!("p{p}"), *q, *at)
                })
                .collect();
            let restocks = restocks
                .iter()
                .map(|(p, q, at)| Restock {
                    product: format!("p{p}"),
                    quantity: *q,
                    at: *at,
                })
                .collect();
            (products, orders, restocks, fail)
        })
}

/// Faults of one kind: phase length, random rates, explicit schedule, topology.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    pub phase_ms: Millis,
    pub rates: FaultRates,
    pub schedule: Vec<ScheduledFault>,
    pub partitions: u32,
    pub instances: u32,
    pub idempotent: bool,
}

/// A fault at a fixed time on one of `services`' instances (or, for a lost produce
/// acknowledgement, on the frontend when `frontend_acks`).
fn scheduled_fault(
    services: &'static [&'static str],
    frontend_acks: bool,
) -> impl Strategy<Value = (u32, u32, usize, u64, u64)> {
    let kinds = if frontend_acks { 3u32 } else { 2u32 };
    (
        0..kinds,
        0u32..3,
        0..services.len(),
        50u64..600,
        0u64..1_000,
    )
}

fn build_schedule(
    services: &'static [&'static str],
    instances: u32,
    faults: &[(u32, u32, usize, u64, u64)],
) -> Vec<ScheduledFault> {
    faults
        .iter()
        .map(|&(kind, i, svc, at, x)| {
            let instance = format!("{}-{}", services[svc], i % instances);
            match kind {
                0 => ScheduledFault::Crash {
                    at,
                    instance,
                    restart_after: 50 + x % 351,
                },
                1 => ScheduledFault::Pause {
                    at,
                    instance,
                    duration: 200 + x,
                },
                _ => ScheduledFault::DropProduceAck {
                    at: at / 2,
                    instance: "frontend".into(),
                    count: 1 + (x % 2) as u32,
                },
            }
        })
        .collect()
}

/// The faults of a generated scenario of `kind`, for a design whose services are
/// `services` (instance names are `<service>-<index>`).
pub fn fault_plan(kind: FaultKind, services: &'static [&'static str]) -> BoxedStrategy<FaultPlan> {
    let plan = |phase_ms, rates, schedule, partitions, instances, idempotent| FaultPlan {
        phase_ms,
        rates,
        schedule,
        partitions,
        instances,
        idempotent,
    };
    let rates = |crash, pause, drop, duplicate, delay| FaultRates {
        crash,
        pause,
        drop,
        duplicate,
        delay,
        ..FaultRates::default()
    };
    let shape = (1u32..=3, 1u32..=2);
    match kind {
        FaultKind::None => shape
            .prop_map(move |(p, i)| plan(0, rates(0, 0, 0, 0, 0), vec![], p, i, true))
            .boxed(),
        FaultKind::Crash => (shape, 2u32..=8)
            .prop_map(move |((p, i), c)| plan(600, rates(c, 0, 0, 0, 0), vec![], p, i, true))
            .boxed(),
        // Two or three instances: a paused one's tasks move to another (a zombie).
        FaultKind::Pause => ((1u32..=3, 2u32..=3), 2u32..=6)
            .prop_map(move |((p, i), x)| plan(600, rates(0, x, 0, 0, 0), vec![], p, i, true))
            .boxed(),
        FaultKind::Drop => (shape, 10u32..=40)
            .prop_map(move |((p, i), x)| plan(600, rates(0, 0, x, 0, 0), vec![], p, i, true))
            .boxed(),
        FaultKind::Duplicate => (shape, 10u32..=40)
            .prop_map(move |((p, i), x)| plan(600, rates(0, 0, 0, x, 0), vec![], p, i, true))
            .boxed(),
        FaultKind::Delay => (shape, 10u32..=40)
            .prop_map(move |((p, i), x)| plan(600, rates(0, 0, 0, 0, x), vec![], p, i, true))
            .boxed(),
        FaultKind::Network => (shape, 0u32..=20, 30u32..=120, 30u32..=120)
            .prop_map(move |((p, i), dr, du, de)| {
                plan(600, rates(0, 0, dr, du, de), vec![], p, i, true)
            })
            .boxed(),
        FaultKind::Scheduled => (
            shape,
            proptest::collection::vec(scheduled_fault(services, true), 1..=3),
        )
            .prop_map(move |((p, i), f)| {
                let schedule = build_schedule(services, i, &f);
                plan(0, rates(0, 0, 0, 0, 0), schedule, p, i, true)
            })
            .boxed(),
        FaultKind::NonIdempotentProducer => (shape, 20u64..300, 1u32..=2)
            .prop_map(move |((p, i), at, count)| {
                let schedule = vec![ScheduledFault::DropProduceAck {
                    at,
                    instance: "frontend".into(),
                    count,
                }];
                plan(0, rates(0, 0, 0, 0, 0), schedule, p, i, false)
            })
            .boxed(),
        FaultKind::Instances => (2u32..=3, 2u32..=3)
            .prop_map(move |(p, i)| plan(0, rates(0, 0, 0, 0, 0), vec![], p, i, true))
            .boxed(),
        FaultKind::Mixed => (
            (1u32..=3, 1u32..=3, Just(true)),
            (0u32..=4, 0u32..=3, 0u32..=30, 0u32..=20, 0u32..=20),
            proptest::collection::vec(scheduled_fault(services, true), 0..=2),
        )
            .prop_map(move |((p, i, idem), (c, pa, dr, du, de), f)| {
                let schedule = build_schedule(services, i, &f);
                plan(600, rates(c, pa, dr, du, de), schedule, p, i, idem)
            })
            .boxed(),
        // The rates are drawn by each run from its seed (`faults.swarm`).
        FaultKind::Swarm => (1u32..=3, 1u32..=3)
            .prop_map(move |(p, i)| plan(600, rates(0, 0, 0, 0, 0), vec![], p, i, true))
            .boxed(),
        // The cluster's settings are the safe ones (`scenarios_of`).
        FaultKind::Broker => (shape, 2u32..=8, 0u32..=6, 0u32..=6)
            .prop_map(move |((p, i), crash, partition, slow)| {
                let rates = FaultRates {
                    broker_crash: crash,
                    fsync_loss: 500,
                    broker_partition: partition,
                    slow_follower: slow,
                    broker_overlap: oversell::matrix::BROKER_OVERLAP,
                    ..FaultRates::default()
                };
                plan(600, rates, vec![], p, i, true)
            })
            .boxed(),
    }
}

/// Generated scenarios with faults of `kind`, for a design with `services`.
pub fn scenarios_of(
    kind: FaultKind,
    services: &'static [&'static str],
) -> impl Strategy<Value = Scenario> {
    (workload(), fault_plan(kind, services)).prop_map(
        move |((products, orders, restocks, fail), plan)| Scenario {
            name: "generated".into(),
            description: String::new(),
            products,
            orders,
            restocks,
            topology: TopologySpec {
                partitions: plan.partitions,
                instances: plan.instances,
                order_producer_idempotent: plan.idempotent,
            },
            streams: StreamsSpec::default(),
            payments: Payments {
                fail,
                ..Payments::default()
            },
            saga: SagaSpec::default(),
            kafka: Default::default(),
            cluster: if kind == FaultKind::Broker {
                ClusterSpec {
                    brokers: 3,
                    replication_factor: Some(3),
                    min_insync_replicas: 2,
                    ..ClusterSpec::default()
                }
            } else {
                ClusterSpec::default()
            },
            producer: Default::default(),
            faults: FaultSpec {
                phase_ms: plan.phase_ms,
                rates: plan.rates,
                schedule: plan.schedule,
                live: Default::default(),
                swarm: kind == FaultKind::Swarm,
            },
            run: RunSpec::default(),
            expect: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            expect_probes: BTreeMap::new(),
        },
    )
}

/// How many generated cases a sweep runs: `OVERSELL_SWEEP` or the default.
pub fn sweep_cases(default: u32) -> u32 {
    std::env::var("OVERSELL_SWEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
