//! A small counting topology, the kernel's own example and test subject.
//!
//! A feeder writes `records` records keyed `k0..k{keys}` to `input`; the `counter`
//! application counts records per key in the `counts` store (changelog-backed) and emits
//! each new count to `counts`. A record counted twice means the count in the committed
//! changelog exceeds the number of committed input records with that key.

use crate::broker::{Broker, TopicConfig};
use crate::protocol::{Millis, TopicPartition};
use crate::source::{Scheduled, SourceClient, SourceConfig};
use crate::streams::{
    changelog_topic, Context, Guarantee, Input, Processed, Processor, StreamsClient, StreamsConfig,
    SubTopology, Topology,
};
use crate::world::{FaultRates, InstanceSpec, World, WorldConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const APP: &str = "counter";
pub const STORE: &str = "counts";

/// Shape of a counting world.
#[derive(Clone, Debug)]
pub struct CountingSetup {
    pub guarantee: Guarantee,
    pub partitions: u32,
    pub instances: usize,
    pub records: usize,
    pub keys: usize,
    /// Records arrive spread over this many ms.
    pub spread_ms: Millis,
    pub rates: FaultRates,
    pub fault_phase_ms: Millis,
    /// The instances' `fetch.max.wait.ms` (0, the default: no long poll).
    pub fetch_max_wait_ms: Millis,
}

impl Default for CountingSetup {
    fn default() -> Self {
        CountingSetup {
            guarantee: Guarantee::AtLeastOnce,
            partitions: 2,
            instances: 2,
            records: 20,
            keys: 3,
            spread_ms: 400,
            rates: FaultRates::default(),
            fault_phase_ms: 0,
            fetch_max_wait_ms: 0,
        }
    }
}

#[derive(Clone)]
struct Count;

impl Processor for Count {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, _state: &mut dyn std::hash::Hasher) -> bool {
        true // nothing outside its stores (its configuration is fixed at build)
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let Some(key) = &input.key else {
            return Processed::Done;
        };
        let n: u64 = ctx
            .get(STORE, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            + 1;
        ctx.put(STORE, key, Some(n.to_string()));
        ctx.send("counts", key, n.to_string());
        Processed::Done
    }
}

/// The broker with the counting topics: `input`, `counts` and the store's changelog.
fn broker(partitions: u32) -> Broker {
    let mut broker = Broker::new();
    for (topic, compacted) in [
        ("input".to_string(), false),
        ("counts".to_string(), false),
        (changelog_topic(APP, STORE), true),
    ] {
        let config = TopicConfig {
            partitions,
            compacted,
        };
        broker.create_topic(&topic, config).expect("fresh broker");
    }
    broker
}

/// Build the world.
pub fn world(setup: &CountingSetup) -> World {
    let broker = broker(setup.partitions);
    let schedule: Vec<Scheduled> = (0..setup.records)
        .map(|i| Scheduled {
            at: (i as Millis * setup.spread_ms) / setup.records.max(1) as Millis,
            topic: "input".into(),
            key: format!("k{}", i % setup.keys.max(1)),
            value: format!("r{i}"),
        })
        .collect();
    let feeder = InstanceSpec {
        name: "feeder".into(),
        build: Arc::new(move |name| {
            vec![Box::new(SourceClient::new(
                crate::client::ClientId::new(name, "producer"),
                SourceConfig::default(),
                schedule.clone(),
            )) as Box<dyn crate::client::Client>]
        }),
        faulty: false,
        start_at: 0,
    };
    let topology = Topology {
        subtopologies: vec![SubTopology {
            name: "count".into(),
            sources: vec!["input".into()],
            stores: vec![STORE.into()],
            processor: Arc::new(|_| Box::new(Count)),
            punctuate: None,
        }],
    };
    let mut instances = vec![feeder];
    for i in 0..setup.instances {
        let topology = topology.clone();
        let guarantee = setup.guarantee;
        let fetch_max_wait_ms = setup.fetch_max_wait_ms;
        instances.push(InstanceSpec {
            name: format!("counter-{i}"),
            build: Arc::new(move |name| {
                let mut config = StreamsConfig::new(APP, guarantee);
                config.fetch_max_wait_ms = fetch_max_wait_ms;
                vec![Box::new(StreamsClient::new(name, config, topology.clone()))
                    as Box<dyn crate::client::Client>]
            }),
            faulty: true,
            start_at: 0,
        });
    }
    let config = WorldConfig {
        fault_phase_ms: setup.fault_phase_ms,
        rates: setup.rates.clone(),
        settle_until: setup.spread_ms,
        ..WorldConfig::default()
    };
    World::new(broker, instances, config)
}

/// Keys whose committed count exceeds their committed input records: (key, counted, records).
pub fn double_counts(broker: &Broker, partitions: u32) -> Vec<(String, u64, u64)> {
    let mut inputs: BTreeMap<String, u64> = BTreeMap::new();
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for p in 0..partitions {
        let tp = TopicPartition::new("input", p);
        for e in broker.log(&tp) {
            if e.control.is_none() && broker.is_committed(&tp, e.offset) {
                if let Some(k) = &e.record.key {
                    *inputs.entry(k.clone()).or_default() += 1;
                }
            }
        }
        let tp = TopicPartition::new(changelog_topic(APP, STORE), p);
        for e in broker.log(&tp) {
            if e.control.is_none() && broker.is_committed(&tp, e.offset) {
                if let (Some(k), Some(v)) = (&e.record.key, &e.record.value) {
                    counted.insert(k.clone(), v.parse().unwrap_or(0));
                }
            }
        }
    }
    counted
        .into_iter()
        .filter_map(|(k, c)| {
            let n = inputs.get(&k).copied().unwrap_or(0);
            (c > n).then_some((k, c, n))
        })
        .collect()
}
