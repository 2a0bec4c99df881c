//! `saga`: the second answer's process manager.
//!
//! * OrderService (a process manager, exactly-once) consumes `orders` and
//!   `order-replies`, keeps each order's state in `order-state`, and sends commands to
//!   ProductService: `ReserveStock` when an order is placed; after the reservation, the
//!   payment step runs (it takes `payments.delay_ms`; which orders fail is scenario data)
//!   and then `ConfirmReservation` or `CancelReservation`. It ends each order with
//!   `OrderConfirmed` or `OrderCancelled` on `order-outcomes`.
//! * ProductService (re-keyed by product, exactly-once) keeps a [`Ledger`] per product in
//!   `stock-ledger`: it reserves or rejects, confirms, releases on cancel, and a
//!   wall-clock punctuation releases reservations not confirmed within the timeout.
//!   Every command is idempotent: a repeated one gets the same answer and no second
//!   effect.
//!
//! Both services' timers (the payment step, the reservation timeout) take effect through
//! a record each service sends to its own input (`PaymentSettled`,
//! `CancelReservation { reason: "timeout" }`), so that every state change carries input
//! offsets and the group generation check (see [`timers`]). `saga-direct-timers` is the
//! same design with the timers' effects written by the punctuation itself, which a
//! zombie's punctuation commits unfenced.

mod order_service;
mod product_service;
mod timers;

use super::{Decoder, Design, Ledger, Mutation, Schema, Store};
use crate::kit::{create_topics, service, streams_config, world_config, Frontend};
use crate::scenario::Scenario;
use order_service::{PaymentPlan, ProcessManager};
use oversell_sim::{
    changelog_topic, Broker, Client, Guarantee, InstanceSpec, Millis, Punctuation, StreamsClient,
    StreamsConfig, SubTopology, Topology, World,
};
use product_service::ProductLedger;
use std::sync::Arc;
use timers::{Pending, Timers};

/// The saga. `direct_timers`: the unfixed form (`saga-direct-timers`), whose
/// punctuations write their effects themselves.
pub struct Saga {
    pub direct_timers: bool,
}

pub const ORDER_APP: &str = "order-service";
pub const PRODUCT_APP: &str = "product-service";
const ORDER_STORE: &str = "order-state";
const LEDGER_STORE: &str = "stock-ledger";
pub const COMMANDS: &str = "product-commands";
pub const REPLIES: &str = "order-replies";
const OUTCOMES: &str = "order-outcomes";

impl Saga {
    fn timers(&self) -> Timers {
        if self.direct_timers {
            Timers::Direct
        } else {
            Timers::SelfAddressed
        }
    }

    /// The instances of one of the saga's applications: one Kafka Streams client each.
    fn instances(scenario: &Scenario, app: App) -> Vec<InstanceSpec> {
        let App {
            application_id,
            config,
            topology,
        } = app;
        service(scenario, application_id, move |client| {
            vec![
                Box::new(StreamsClient::new(client, config.clone(), topology.clone()))
                    as Box<dyn Client>,
            ]
        })
    }

    /// OrderService's application: its settings and topology.
    fn order_app(&self, scenario: &Scenario, mutations: &[Mutation]) -> App {
        let payments = Arc::new(PaymentPlan {
            fail: scenario.payments.fail.iter().cloned().collect(),
            delay_ms: scenario.payments.delay_ms,
            delays: scenario.payments.delays.clone(),
        });
        let timers = self.timers();
        let config = streams_config(ORDER_APP, Guarantee::ExactlyOnceV2, scenario, mutations);
        let topology = Topology {
            subtopologies: vec![SubTopology {
                name: "process-manager".into(),
                sources: vec!["orders".into(), REPLIES.into()],
                stores: vec![ORDER_STORE.into()],
                processor: Arc::new(move |_| {
                    Box::new(ProcessManager {
                        payments: payments.clone(),
                        timers,
                        pending: Pending::default(),
                        paying: None,
                    })
                }),
                punctuate: Some(Punctuation::WallClock(10)),
            }],
        };
        App {
            application_id: ORDER_APP,
            config,
            topology,
        }
    }

    /// ProductService's application: its settings and topology.
    fn product_app(&self, scenario: &Scenario, mutations: &[Mutation]) -> App {
        let timeout_ms = scenario.saga.reservation_timeout_ms;
        let idempotent = !mutations.contains(&Mutation::NonIdempotentCompensation);
        let timers = self.timers();
        let config = streams_config(PRODUCT_APP, Guarantee::ExactlyOnceV2, scenario, mutations);
        let punctuate = (!mutations.contains(&Mutation::NoTimeout))
            .then_some(Punctuation::WallClock(scenario.saga.punctuate_every_ms));
        let topology = Topology {
            subtopologies: vec![SubTopology {
                name: "ledger".into(),
                sources: vec![COMMANDS.into()],
                stores: vec![LEDGER_STORE.into()],
                processor: Arc::new(move |_| {
                    Box::new(ProductLedger {
                        timeout_ms,
                        idempotent,
                        timers,
                        pending: Pending::default(),
                        reservations: None,
                    })
                }),
                punctuate,
            }],
        };
        App {
            application_id: PRODUCT_APP,
            config,
            topology,
        }
    }

    /// Both services' applications (OrderService, then ProductService), for a runtime
    /// other than the simulator's `StreamsClient` (the madsim driver's async services).
    pub fn apps(&self, scenario: &Scenario) -> [App; 2] {
        [
            self.order_app(scenario, &[]),
            self.product_app(scenario, &[]),
        ]
    }

    /// The ms after the last arrival or fault before a run may end: the slowest payment
    /// (up to the reservation timeout), the timeout, and a second.
    pub fn settle_ms(scenario: &Scenario) -> Millis {
        let max_delay = scenario
            .payments
            .delays
            .values()
            .copied()
            .max()
            .unwrap_or(0)
            .max(scenario.payments.delay_ms)
            .min(scenario.saga.reservation_timeout_ms);
        max_delay + scenario.saga.reservation_timeout_ms + 1000
    }
}

/// One of the saga's Kafka Streams applications: its id, settings and topology.
pub struct App {
    pub application_id: &'static str,
    pub config: StreamsConfig,
    pub topology: Topology,
}

impl Design for Saga {
    fn name(&self) -> &'static str {
        if self.direct_timers {
            "saga-direct-timers"
        } else {
            "saga"
        }
    }

    fn summary(&self) -> &'static str {
        if self.direct_timers {
            "the saga with its timers' effects written by the punctuation itself (unfenced for a zombie)"
        } else {
            "process manager: reserve, pay, confirm or cancel; a timer releases stale reservations through a record to itself"
        }
    }

    fn schema(&self) -> Schema {
        Schema {
            stores: vec![
                Store {
                    application: ORDER_APP.into(),
                    name: ORDER_STORE.into(),
                    changelog: changelog_topic(ORDER_APP, ORDER_STORE),
                    decoder: Decoder::NoStock,
                },
                Store {
                    application: PRODUCT_APP.into(),
                    name: LEDGER_STORE.into(),
                    changelog: changelog_topic(PRODUCT_APP, LEDGER_STORE),
                    decoder: Decoder::Book(Ledger::decode),
                },
            ],
            copies: vec![],
            decisions: &["OrderConfirmed", "OrderCancelled"],
            reservations_settle: true,
        }
    }

    fn build(&self, scenario: &Scenario, mutations: &[Mutation]) -> World {
        let mut broker = Broker::new();
        create_topics(
            &mut broker,
            scenario,
            &["orders", COMMANDS, REPLIES, OUTCOMES],
            &[
                changelog_topic(ORDER_APP, ORDER_STORE),
                changelog_topic(PRODUCT_APP, LEDGER_STORE),
            ],
        );
        let mut instances = vec![Frontend::new("orders", COMMANDS).instance(scenario, mutations)];
        for app in [
            self.order_app(scenario, mutations),
            self.product_app(scenario, mutations),
        ] {
            instances.extend(Saga::instances(scenario, app));
        }
        let settle = Saga::settle_ms(scenario);
        World::new(broker, instances, world_config(scenario, settle))
    }
}
