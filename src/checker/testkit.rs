//! Hand-built runs for the checker's unit tests: a real broker, and a trace mirroring what
//! it did, as the world would record it.

pub use super::{check, check_one, Invariant, Status, Violation, MAX_REPORTED};
pub use crate::designs::{Decided, Decision, Ledger, Schema};
pub use crate::domain::{Msg, Validation};
pub use oversell_sim::protocol::Isolation;
pub use oversell_sim::{ClientId, Event, Millis, Outcome};

use crate::checker::books::product_of;
use crate::designs::{Count, Decoder, Store};
use oversell_sim::protocol::{
    Offset, PartitionProduceResult, ProduceBatch, ProducerIdentity, Record, Request, Response,
};
use oversell_sim::{Broker, ChoiceLog, RunResult, TopicConfig, TopicPartition, Trace};
use std::collections::BTreeMap;

/// A client id from its written form `instance/app` (test input only).
pub fn cid(written: &str) -> ClientId {
    let (instance, app) = written.split_once('/').expect("instance/app");
    ClientId::new(instance, app)
}

pub const STOCK_LOG: &str = "ps-ProductStock-changelog";
pub const TOTAL_LOG: &str = "inv-total-changelog";
pub const RESERVED_LOG: &str = "inv-reserved-changelog";
pub const LEDGER_LOG: &str = "ps-ledger-changelog";

fn store(application: &str, name: &str, changelog: &str, decoder: Decoder) -> Store {
    Store {
        application: application.into(),
        name: name.into(),
        changelog: changelog.into(),
        decoder,
    }
}

pub fn naive() -> Schema {
    Schema {
        stores: vec![store(
            "ps",
            "ProductStock",
            STOCK_LOG,
            Decoder::Available(Count::of_product_key),
        )],
        copies: vec![],
        decisions: &["ProductReserved", "OrderRejected"],
        reservations_settle: false,
    }
}

pub fn rekeyed() -> Schema {
    Schema {
        stores: vec![
            store(
                "inv",
                "total",
                TOTAL_LOG,
                Decoder::InStock(Count::of_product_key),
            ),
            store(
                "inv",
                "reserved",
                RESERVED_LOG,
                Decoder::Reserved(Count::of_product_key),
            ),
        ],
        copies: vec![],
        decisions: &["OrderValidation"],
        reservations_settle: false,
    }
}

pub fn saga() -> Schema {
    Schema {
        stores: vec![store(
            "ps",
            "ledger",
            LEDGER_LOG,
            Decoder::Book(Ledger::decode),
        )],
        copies: vec![],
        decisions: &["StockReserved", "StockRejected"],
        reservations_settle: true,
    }
}

pub fn placed(o: &str, p: &str, q: u64) -> Msg {
    Msg::OrderPlaced {
        order_id: o.into(),
        product_id: p.into(),
        quantity: q,
        user_id: format!("user-{o}"),
    }
}
pub fn stock(p: &str, q: u64) -> Msg {
    Msg::StockAdded {
        product_id: p.into(),
        quantity: q,
    }
}
pub fn reserved(o: &str, p: &str, q: u64) -> Msg {
    Msg::ProductReserved {
        order_id: o.into(),
        product_id: p.into(),
        quantity: q,
    }
}
pub fn rejected(o: &str, p: &str) -> Msg {
    Msg::OrderRejected {
        order_id: o.into(),
        product_id: p.into(),
        reason: "no stock".into(),
    }
}
pub fn validation(o: &str, p: &str, q: u64, result: Validation) -> Msg {
    Msg::OrderValidation {
        order_id: o.into(),
        product_id: p.into(),
        quantity: q,
        result,
    }
}
pub fn stock_reserved(o: &str, p: &str, q: u64) -> Msg {
    Msg::StockReserved {
        order_id: o.into(),
        product_id: p.into(),
        quantity: q,
    }
}
pub fn released(o: &str, p: &str, q: u64) -> Msg {
    Msg::ReservationReleased {
        order_id: o.into(),
        product_id: p.into(),
        quantity: q,
        reason: "timeout".into(),
    }
}
/// A product's ledger value: units available, and orders reserved (expiring at 1000 ms).
pub fn ledger(available: i64, reserved: &[(&str, u64)]) -> String {
    let l = Ledger {
        available,
        reserved: reserved
            .iter()
            .map(|(o, u)| (o.to_string(), (*u, 1000)))
            .collect(),
    };
    serde_json::to_string(&l).unwrap()
}
/// An order's decision in a ledger store: its key and value.
pub fn decided(order: &str, product: &str, decision: Decision, units: u64) -> (String, String) {
    let d = Decided {
        product: product.into(),
        decision,
        units,
    };
    (Decided::key(order), serde_json::to_string(&d).unwrap())
}
pub fn tp(topic: &str, p: u32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

/// Store contents per instance: (store, partition) → key → value.
pub type Stores = BTreeMap<String, BTreeMap<(String, u32), BTreeMap<String, String>>>;

/// A hand-built run: a real broker, and a trace mirroring what it did.
pub struct Sim {
    pub broker: Broker,
    pub trace: Trace,
    pub now: Millis,
    pub outcome: Outcome,
    pub healed_at: Millis,
    pub stores: Stores,
}

impl Sim {
    pub fn new() -> Sim {
        let mut broker = Broker::new();
        for t in [
            "orders",
            "stock",
            "order-validations",
            "ps-ProductStock-changelog",
        ] {
            broker
                .create_topic(
                    t,
                    TopicConfig {
                        partitions: 2,
                        compacted: t.ends_with("-changelog"),
                    },
                )
                .unwrap();
        }
        for t in [TOTAL_LOG, RESERVED_LOG, LEDGER_LOG] {
            broker
                .create_topic(
                    t,
                    TopicConfig {
                        partitions: 1,
                        compacted: true,
                    },
                )
                .unwrap();
        }
        Sim {
            broker,
            trace: Trace::default(),
            now: 0,
            outcome: Outcome::Quiescent,
            healed_at: 0,
            stores: BTreeMap::new(),
        }
    }

    pub fn at(&mut self, t: Millis) -> &mut Self {
        self.now = t;
        self
    }

    pub fn request(&mut self, client: &str, req: Request) -> Response {
        let mut events = Vec::new();
        let resp = self.broker.handle(self.now, &cid(client), req, &mut events);
        // No scheduler here: the coordinator writes an ending transaction's markers at once.
        self.broker.write_all_pending_markers(self.now, &mut events);
        for e in events {
            self.trace.push(self.now, 0, e);
        }
        resp
    }

    pub fn event(&mut self, e: Event) -> u64 {
        self.trace.push(self.now, 0, e);
        self.trace.records.len() as u64 - 1
    }

    /// A plain (non-transactional) append; returns its offset.
    pub fn put(&mut self, topic: &str, partition: u32, key: &str, value: Option<String>) -> Offset {
        let at = tp(topic, partition);
        let req = Request::Produce {
            producer: None,
            acks: Default::default(),
            batches: vec![ProduceBatch {
                tp: at.clone(),
                base_sequence: None,
                records: vec![Record {
                    key: Some(key.into()),
                    value,
                    timestamp: self.now,
                    headers: Vec::new(),
                }],
            }],
        };
        match self.request("test/producer", req) {
            Response::Produce(r) => match &r[0].1 {
                PartitionProduceResult::Appended { base_offset, .. } => *base_offset,
                other => panic!("produce failed: {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A domain event on partition 0 of `topic`.
    pub fn msg(&mut self, topic: &str, m: Msg) -> Offset {
        let key = m.order_id().or(product_of(&m)).unwrap_or("k").to_string();
        self.put(topic, 0, &key, Some(m.encode()))
    }

    /// Records written in one transaction, committed or aborted; returns their offsets.
    pub fn txn(&mut self, records: &[(&str, u32, &str, String)], commit: bool) -> Vec<Offset> {
        let tid = "app-ps-0";
        let Response::InitProducerId(Ok((pid, epoch))) = self.request(
            "ps-0/app",
            Request::InitProducerId {
                transactional_id: Some(tid.into()),
                transaction_timeout_ms: 1000,
            },
        ) else {
            panic!("init failed")
        };
        let producer = ProducerIdentity {
            producer_id: pid,
            epoch,
            transactional_id: Some(tid.into()),
        };
        let mut seqs: BTreeMap<TopicPartition, i32> = BTreeMap::new();
        let mut offsets = Vec::new();
        for (topic, p, key, value) in records {
            let at = tp(topic, *p);
            let seq = seqs.entry(at.clone()).or_insert(0);
            let req = Request::Produce {
                producer: Some(producer.clone()),
                acks: Default::default(),
                batches: vec![ProduceBatch {
                    tp: at,
                    base_sequence: Some(*seq),
                    records: vec![Record {
                        key: Some(key.to_string()),
                        value: Some(value.clone()),
                        timestamp: self.now,
                        headers: Vec::new(),
                    }],
                }],
            };
            *seq += 1;
            match self.request("ps-0/app", req) {
                Response::Produce(r) => match &r[0].1 {
                    PartitionProduceResult::Appended { base_offset, .. } => {
                        offsets.push(*base_offset);
                    }
                    other => panic!("produce failed: {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            }
            // The client learns of the append, as a producer does.
            self.event(Event::Acked {
                client: cid("ps-0/app"),
                tp: tp(topic, *p),
                base_offset: *offsets.last().expect("appended"),
                count: 1,
            });
        }
        let r = self.request("ps-0/app", Request::EndTxn { producer, commit });
        assert!(matches!(r, Response::EndTxn(Ok(_))), "{r:?}");
        offsets
    }

    pub fn process(&mut self, client: &str, topic: &str, partition: u32, offset: Offset) -> u64 {
        self.event(Event::Process {
            client: cid(client),
            tp: tp(topic, partition),
            offset,
            key: None,
            value: None,
        })
    }

    pub fn store(&mut self, instance: &str, store: &str, partition: u32, kv: &[(&str, &str)]) {
        self.stores.entry(instance.into()).or_default().insert(
            (store.into(), partition),
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    pub fn run(&self) -> RunResult {
        RunResult {
            trace: self.trace.clone(),
            choices: ChoiceLog::default(),
            outcome: self.outcome.clone(),
            end_time: self.now,
            steps: 0,
            broker: self.broker.clone(),
            stores: self.stores.clone(),
            healed_at: self.healed_at,
            pct: None,
        }
    }
}

pub fn violations(inv: Invariant, schema: &Schema, sim: &Sim, bound: Millis) -> Vec<Violation> {
    let run = sim.run();
    let all = check_one(inv, schema, &run, bound);
    // `check` reports the first few of the same.
    let verdict = check(schema, &run, bound);
    assert_eq!(
        verdict.of(inv).count(),
        all.len().min(MAX_REPORTED),
        "{verdict}"
    );
    all
}

/// The question's case: product1 has 1 unit; two orders both get `ProductReserved`.
pub fn last_unit(both_reserved: bool) -> Sim {
    let mut s = Sim::new();
    s.msg("stock", stock("product1", 1));
    s.at(5).msg("orders", placed("o1", "product1", 1));
    s.at(6).msg("orders", placed("o2", "product1", 1));
    s.at(12).msg("orders", reserved("o1", "product1", 1));
    if both_reserved {
        s.at(13).msg("orders", reserved("o2", "product1", 1));
    } else {
        s.at(13).msg("orders", rejected("o2", "product1"));
    }
    s.at(20).put(STOCK_LOG, 0, "product1", Some("1".into()));
    s.at(21).put(STOCK_LOG, 0, "product1", Some("0".into()));
    if both_reserved {
        s.at(22).put(STOCK_LOG, 0, "product1", Some("-1".into()));
    }
    s.at(2000);
    s
}

/// A real run of a shipped scenario (path from the crate root), optionally under a fault
/// class, and its verdict.
pub fn real_run(
    scenario: &str,
    design: &str,
    mutations: &[crate::designs::Mutation],
    seed: u64,
    class: Option<crate::expect::FaultClass>,
) -> super::Verdict {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario);
    let mut s = crate::load::load_file(&path).expect("a shipped scenario loads");
    if let Some(class) = class {
        s = class.apply(&s);
    }
    let design = crate::designs::by_name(design).expect("a shipped design");
    crate::run::run_seed(design.as_ref(), &s, mutations, seed).verdict
}
