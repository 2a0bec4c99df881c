//! The live twins: for each design with one, what a live run creates and starts — the
//! topics the driver makes, the groups whose commits end the run, the workload's
//! frontend, and the service JVMs (`live/`'s `naive` and `saga` commands) with their
//! arguments.

use crate::kit::{streams_config, Frontend, StockRecords};
use crate::scenario::Scenario;
use oversell_sim::protocol::RebalanceProtocol;
use oversell_sim::Guarantee;

/// A design's live twin.
#[derive(Clone, Debug)]
pub struct Twin {
    pub design: &'static str,
    /// The Java command (`oversell.live.Main <command>`).
    pub command: &'static str,
    /// The input topics the driver creates (Kafka Streams creates its changelogs).
    pub topics: &'static [&'static str],
    /// Application → its input topics, as the driver's `groups=` argument.
    pub groups: &'static str,
    pub guarantee: Guarantee,
    /// The application whose commit interval paces the run's quiet period.
    pub app: &'static str,
    /// The services, one JVM per instance: (instance name prefix, `app=` argument or none).
    pub services: &'static [(&'static str, Option<&'static str>)],
    /// `saga-direct-timers`: the punctuations write their effects themselves.
    pub direct_timers: bool,
}

const NAIVE: Twin = Twin {
    design: "naive",
    command: "naive",
    topics: &["orders", "stock"],
    groups: "product-checker:orders;product-stock:orders,stock",
    guarantee: Guarantee::AtLeastOnce,
    app: "naive",
    services: &[("product-service", None)],
    direct_timers: false,
};

const SAGA: Twin = Twin {
    design: "saga",
    command: "saga",
    topics: &[
        "orders",
        "product-commands",
        "order-replies",
        "order-outcomes",
    ],
    groups: "order-service:orders,order-replies;product-service:product-commands",
    guarantee: Guarantee::ExactlyOnceV2,
    app: "product-service",
    services: &[
        ("order-service", Some("order-service")),
        ("product-service", Some("product-service")),
    ],
    direct_timers: false,
};

/// Every live twin, by design name.
pub const ALL: [Twin; 3] = [
    NAIVE,
    SAGA,
    Twin {
        design: "saga-direct-timers",
        direct_timers: true,
        ..SAGA
    },
];

/// The twin of `design`, if it has one.
pub fn twin(design: &str) -> Option<&'static Twin> {
    ALL.iter().find(|t| t.design == design)
}

impl Twin {
    /// The outside world as the simulated design builds it: the naive design's orders
    /// keyed by product on `orders` and stock deltas on `stock` (`src/designs/naive.rs`);
    /// the saga's orders keyed by order, stock deltas on `product-commands`
    /// (`src/designs/saga/mod.rs`).
    pub fn frontend(&self) -> Frontend {
        match self.command {
            "naive" => Frontend {
                orders: "orders".into(),
                orders_by_product: true,
                stock: "stock".into(),
                stock_records: StockRecords::Deltas,
            },
            _ => Frontend::new("orders", "product-commands"),
        }
    }

    /// The commit interval the simulated design gives its applications.
    pub fn commit_interval_ms(&self, s: &Scenario) -> u64 {
        streams_config(self.app, self.guarantee, s, &[]).commit_interval_ms
    }

    /// Why this twin cannot play `s` on Kafka 4.x, if it cannot.
    pub fn refuses(&self, s: &Scenario) -> Option<String> {
        if s.streams.rebalance_protocol == Some(RebalanceProtocol::Eager) {
            // StreamsConfig.UPGRADE_FROM_CONFIG (UpgradeFromValues) accepts 2.4 and later
            // only in Kafka Streams 4.x, all of them cooperative: no setting of Kafka
            // Streams 4.4 rebalances eagerly.
            return Some(format!(
                "scenario {} rebalances eagerly, which Kafka Streams 4.x cannot: `upgrade.from` \
                 accepts 2.4 and later only, all cooperative",
                s.name
            ));
        }
        None
    }

    /// The arguments a service JVM of this twin takes beyond the common ones.
    pub fn service_args(&self, s: &Scenario, app: Option<&str>, payments: &str) -> Vec<String> {
        let Some(app) = app else {
            return Vec::new();
        };
        vec![
            format!("app={app}"),
            format!("direct-timers={}", self.direct_timers),
            format!("timeout-ms={}", s.saga.reservation_timeout_ms),
            format!("punctuate-ms={}", s.saga.punctuate_every_ms),
            format!("payments={payments}"),
        ]
    }
}

/// The scenario's payment plan as the saga twin reads it.
pub fn payments_json(s: &Scenario) -> serde_json::Value {
    serde_json::json!({
        "fail": s.payments.fail,
        "delay_ms": s.payments.delay_ms,
        "delays": s.payments.delays,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_file;

    fn scenario(name: &str) -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(format!("{name}.toml"));
        load_file(&path).expect("a shipped scenario")
    }

    /// The outside world's records in a simulated run of the design: (topic, key, value).
    fn simulated_inputs(design: &str, s: &Scenario) -> Vec<(String, Option<String>, String)> {
        let d = crate::expect::design_named(design).expect("a design");
        let judged = crate::run::run_seed(d.as_ref(), s, &[], 0);
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
                } if v.contains("\"OrderPlaced\"") || v.contains("\"StockAdded\"") => {
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
        for t in &ALL {
            let mut ours: Vec<_> = t
                .frontend()
                .schedule(&s)
                .into_iter()
                .map(|r| (r.topic.to_string(), Some(r.key), r.value))
                .collect();
            ours.sort();
            assert_eq!(ours, simulated_inputs(t.design, &s), "{}", t.design);
        }
    }

    #[test]
    fn an_eager_scenario_is_refused_because_kafka_streams_4_cannot_rebalance_eagerly() {
        let s = scenario("saga-zombie-punctuation");
        let why = twin("saga-direct-timers")
            .unwrap()
            .refuses(&s)
            .expect("refused");
        assert!(why.contains("upgrade.from"), "{why}");
        assert_eq!(twin("saga").unwrap().refuses(&scenario("last-unit")), None);
        assert!(twin("rekeyed-eos").is_none());
    }
}
