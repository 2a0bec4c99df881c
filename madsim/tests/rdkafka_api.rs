//! The client's API against madsim-rdkafka's, the API a madsim user's service already
//! compiles against: every signature below is copied by hand from madsim-rdkafka
//! (<https://github.com/madsim-rs/madsim>, crate `madsim-rdkafka` 0.4.4+0.34.0, commit
//! 66e049a: `src/std/consumer/mod.rs` for `Consumer`, `ConsumerContext`, `Rebalance`,
//! `CommitMode`, `RebalanceProtocol`; `src/std/producer/mod.rs` for `Producer`;
//! `src/std/config.rs` for `ClientConfig::create`; `src/std/consumer/stream_consumer.rs`
//! for `StreamConsumer::recv`; `src/sim/producer/future_producer.rs` for
//! `FutureProducer::send` and `FutureRecord`; `src/sim/message.rs` for `Message`,
//! `BorrowedMessage`, `Timestamp`; `src/sim/topic_partition_list.rs`; `src/sim/util.rs`
//! for `Timeout`; `src/std/client.rs` for `ClientContext::error`) and must compile
//! against `oversell_madsim::rdkafka`. A signature that drifts from madsim-rdkafka's (a
//! call made sync or async, an argument or result type changed, a trait method turned
//! inherent) fails this build. Synchronous methods are pinned exactly by coercion to a
//! function pointer of madsim-rdkafka's type; `async` ones by a call whose result is
//! bound to madsim-rdkafka's output type. The tests then run the calls whose semantics
//! the client supports and check the ones it refuses say so by name.
#![cfg(madsim)]

use madsim::runtime::Handle;
use oversell_madsim::cluster::Cluster;
use oversell_madsim::rdkafka;
use oversell_madsim::record::Recorder;
use oversell_sim::{Broker, TopicConfig};
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, DefaultConsumerContext,
    Rebalance, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, OwnedDeliveryResult, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message, Offset, Timestamp, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A context overriding every callback madsim-rdkafka's `ConsumerContext` and
/// `ClientContext` share with this client, with their signatures as declared there.
#[derive(Clone, Default)]
struct Ctx(Arc<Mutex<Vec<String>>>);

impl ClientContext for Ctx {
    // src/std/client.rs: `fn error(&self, error: KafkaError, reason: &str)`
    fn error(&self, error: KafkaError, reason: &str) {
        self.note(format!("error {error} {reason}"));
    }
}

impl ConsumerContext for Ctx {
    // src/std/consumer/mod.rs: `fn pre_rebalance<'a>(&self, rebalance: &Rebalance<'a>) {}`
    fn pre_rebalance<'a>(&self, rebalance: &Rebalance<'a>) {
        self.note(format!("pre {}", describe(rebalance)));
    }
    // `fn post_rebalance<'a>(&self, rebalance: &Rebalance<'a>) {}`
    fn post_rebalance<'a>(&self, rebalance: &Rebalance<'a>) {
        self.note(format!("post {}", describe(rebalance)));
    }
    // `fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {}`
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        self.note(format!("commit {} {}", result.is_ok(), offsets.count()));
    }
}

impl Ctx {
    fn note(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
    fn notes(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn describe(rebalance: &Rebalance<'_>) -> String {
    match rebalance {
        Rebalance::Assign(tpl) => format!("assign {}", tpl.count()),
        Rebalance::Revoke(tpl) => format!("revoke {}", tpl.count()),
        Rebalance::Error(e) => format!("error {e}"),
    }
}

type C = StreamConsumer<Ctx>;

/// The synchronous methods, each coerced to madsim-rdkafka's signature.
#[allow(clippy::type_complexity)]
fn synchronous_signatures() {
    // trait Consumer<C = DefaultConsumerContext> where C: ConsumerContext
    let _: fn(&C) -> &Client<Ctx> = <C as Consumer<Ctx>>::client;
    let _: fn(&C) -> &Arc<Ctx> = <C as Consumer<Ctx>>::context;
    let _: fn(&C) -> Option<ConsumerGroupMetadata> = <C as Consumer<Ctx>>::group_metadata;
    let _: fn(&C, &[&str]) -> KafkaResult<()> = <C as Consumer<Ctx>>::subscribe;
    let _: fn(&C) = <C as Consumer<Ctx>>::unsubscribe;
    let _: fn(&C, &TopicPartitionList) -> KafkaResult<()> = <C as Consumer<Ctx>>::assign;
    let _: fn(&C) -> KafkaResult<()> = <C as Consumer<Ctx>>::unassign;
    let _: fn(&C, &TopicPartitionList) -> KafkaResult<()> =
        <C as Consumer<Ctx>>::incremental_assign;
    let _: fn(&C, &TopicPartitionList) -> KafkaResult<()> =
        <C as Consumer<Ctx>>::incremental_unassign;
    let _: fn(&C, &str, i32, i64) -> KafkaResult<()> = <C as Consumer<Ctx>>::store_offset;
    let _: fn(&C, &BorrowedMessage<'_>) -> KafkaResult<()> =
        <C as Consumer<Ctx>>::store_offset_from_message;
    let _: fn(&C, &TopicPartitionList) -> KafkaResult<()> = <C as Consumer<Ctx>>::store_offsets;
    let _: fn(&C) -> KafkaResult<TopicPartitionList> = <C as Consumer<Ctx>>::subscription;
    let _: fn(&C) -> KafkaResult<TopicPartitionList> = <C as Consumer<Ctx>>::assignment;
    let _: fn(&C) -> bool = <C as Consumer<Ctx>>::assignment_lost;
    let _: fn(&C) -> KafkaResult<TopicPartitionList> = <C as Consumer<Ctx>>::position;
    let _: fn(&C, &TopicPartitionList) -> KafkaResult<()> = <C as Consumer<Ctx>>::pause;
    let _: fn(&C, &TopicPartitionList) -> KafkaResult<()> = <C as Consumer<Ctx>>::resume;
    let _: fn(&C) -> RebalanceProtocol = <C as Consumer<Ctx>>::rebalance_protocol;
    // trait Producer: `fn in_flight_count(&self) -> i32;`,
    // `fn begin_transaction(&self) -> KafkaResult<()>;`
    let _: fn(&FutureProducer) -> i32 = <FutureProducer as Producer>::in_flight_count;
    let _: fn(&FutureProducer) -> KafkaResult<()> = <FutureProducer as Producer>::begin_transaction;
    message_signatures();
    // src/sim/topic_partition_list.rs
    let _: fn() -> TopicPartitionList = TopicPartitionList::new;
    let _: fn(usize) -> TopicPartitionList = TopicPartitionList::with_capacity;
    let _: fn(&TopicPartitionList) -> usize = TopicPartitionList::count;
    let _: for<'a> fn(
        &'a mut TopicPartitionList,
        &str,
        i32,
    ) -> rdkafka::TopicPartitionListElem<'a> = TopicPartitionList::add_partition;
    let _: fn(&mut TopicPartitionList, &str, i32, Offset) -> KafkaResult<()> =
        TopicPartitionList::add_partition_offset;
    let _: fn(&TopicPartitionList) -> Vec<rdkafka::TopicPartitionListElem<'_>> =
        TopicPartitionList::elements;
    let _: for<'a> fn(&'a TopicPartitionList, &str) -> Vec<rdkafka::TopicPartitionListElem<'a>> =
        TopicPartitionList::elements_for_topic;
    // src/sim/util.rs: `impl From<Duration> for Timeout`, `impl From<Option<Duration>>`
    let _: Timeout = Duration::ZERO.into();
    let _: Timeout = None::<Duration>.into();
    // src/std/error.rs: `KafkaError::Transaction(RDKafkaError)` and its classification.
    let _ = |e: &KafkaError| match e {
        KafkaError::Transaction(e) => (e.code(), e.is_fatal(), e.is_retriable()),
        KafkaError::ConsumerCommit(c) | KafkaError::MessageProduction(c) => (*c, false, false),
        _ => (
            RDKafkaErrorCode::State,
            e.rdkafka_error_code().is_some(),
            false,
        ),
    };
}

/// `src/sim/message.rs`, for a message borrowed for `'m`.
#[allow(clippy::extra_unused_lifetimes)]
fn message_signatures<'m>() {
    let _: for<'s> fn(&'s BorrowedMessage<'m>) -> Option<&'s [u8]> =
        <BorrowedMessage<'m> as Message>::key;
    let _: for<'s> fn(&'s BorrowedMessage<'m>) -> Option<&'s [u8]> =
        <BorrowedMessage<'m> as Message>::payload;
    let _: for<'s> fn(&'s BorrowedMessage<'m>) -> &'s str = <BorrowedMessage<'m> as Message>::topic;
    let _: fn(&BorrowedMessage<'m>) -> i32 = <BorrowedMessage<'m> as Message>::partition;
    let _: fn(&BorrowedMessage<'m>) -> i64 = <BorrowedMessage<'m> as Message>::offset;
    let _: fn(&BorrowedMessage<'m>) -> Timestamp = <BorrowedMessage<'m> as Message>::timestamp;
    let _: fn(&BorrowedMessage<'m>) -> OwnedMessage = BorrowedMessage::detach;
    let _: fn(&OwnedMessage) -> Timestamp = <OwnedMessage as Message>::timestamp;
    let _: fn(Timestamp) -> Option<i64> = Timestamp::to_millis;
}

/// Every `async` method, called as madsim-rdkafka declares it and bound to its output
/// type; the futures must be `Send` (madsim-rdkafka's are `async_trait`'s boxed `Send`
/// futures), checked with a generic context as a user's generic code would have it.
async fn asynchronous_signatures<X: ConsumerContext>(c: &StreamConsumer<X>, p: &FutureProducer) {
    fn send<F: std::future::Future + Send>(f: F) -> F {
        f
    }
    let tpl = TopicPartitionList::new();
    let t = Duration::from_millis(10);
    // src/std/config.rs: `pub async fn create<T: FromClientConfig>(&self) -> KafkaResult<T>`
    let _: KafkaResult<StreamConsumer> = send(ClientConfig::new().create()).await;
    let _: KafkaResult<StreamConsumer<Ctx>> =
        send(ClientConfig::new().create_with_context(Ctx::default())).await;
    let _: KafkaResult<FutureProducer> = send(ClientConfig::new().create()).await;
    // src/std/consumer/stream_consumer.rs:
    // `pub async fn recv(&self) -> Result<BorrowedMessage<'_>, KafkaError>`
    let m: Result<BorrowedMessage<'_>, KafkaError> = send(c.recv()).await;
    let _: KafkaResult<()> = send(c.seek("t", 0, Offset::Beginning, t)).await;
    let _: KafkaResult<TopicPartitionList> = send(c.seek_partitions(tpl.clone(), t)).await;
    let _: KafkaResult<()> = send(c.commit(&tpl, CommitMode::Sync)).await;
    let _: KafkaResult<()> = send(c.commit_consumer_state(CommitMode::Async)).await;
    if let Ok(m) = &m {
        let _: KafkaResult<()> = send(c.commit_message(m, CommitMode::Sync)).await;
    }
    let _: KafkaResult<TopicPartitionList> = send(c.committed(t)).await;
    let _: KafkaResult<TopicPartitionList> = send(c.committed_offsets(tpl.clone(), t)).await;
    let _: KafkaResult<TopicPartitionList> = send(c.offsets_for_timestamp(0, t)).await;
    let _: KafkaResult<TopicPartitionList> = send(c.offsets_for_times(tpl.clone(), t)).await;
    let _: KafkaResult<(i64, i64)> = send(c.fetch_watermarks("t", 0, t)).await;
    // src/std/producer/mod.rs (trait Producer) and src/sim/producer/future_producer.rs.
    let _: KafkaResult<()> = send(p.flush(t)).await;
    let _: KafkaResult<()> = send(p.init_transactions(t)).await;
    if let Some(cgm) = c.group_metadata() {
        let _: KafkaResult<()> = send(p.send_offsets_to_transaction(&tpl, &cgm, t)).await;
    }
    let _: KafkaResult<()> = send(p.commit_transaction(t)).await;
    let _: KafkaResult<()> = send(p.abort_transaction(Timeout::Never)).await;
    let record: FutureRecord<'_, str, [u8]> = FutureRecord::to("t").key("k").payload(b"v");
    let _: OwnedDeliveryResult = send(p.send(record, t)).await;
    let _: OwnedDeliveryResult =
        send(p.send(FutureRecord::<(), str>::to("t").payload("v"), t)).await;
}

fn cluster() -> Cluster {
    let mut broker = Broker::new();
    let config = TopicConfig {
        partitions: 2,
        compacted: false,
    };
    broker.create_topic("in", config).unwrap();
    Cluster::start(broker, Recorder::new())
}

async fn on_node<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    let node = Handle::current()
        .create_node()
        .name("user")
        .ip([10, 0, 0, 2].into())
        .build();
    node.spawn(f).await.unwrap();
}

fn consumer_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("client.id", "g")
        .set("group.id", "g")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "300")
        .set("heartbeat.interval.ms", "100")
        .set("fetch.wait.max.ms", "10");
    c
}

#[madsim::test]
async fn the_signatures_compile_and_the_calls_run() {
    synchronous_signatures();
    let _c = cluster();
    on_node(async {
        let consumer: StreamConsumer<DefaultConsumerContext> =
            consumer_config().create().await.unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set("client.id", "p")
            .create()
            .await
            .unwrap();
        producer
            .send(FutureRecord::to("in").key("k").payload("v"), Timeout::Never)
            .await
            .unwrap();
        consumer.subscribe(&["in"]).unwrap();
        // Not transactional: the transactional calls fail; the others run.
        asynchronous_signatures(&consumer, &producer).await;
    })
    .await;
}

/// `commit_consumer_state` commits the positions, `committed` reads them back, the
/// callbacks see the rebalance and the commit, `seek` moves back, and `unsubscribe`
/// revokes and leaves the group.
#[madsim::test]
async fn the_supported_consumer_calls_do_what_rdkafka_does() {
    let c = cluster();
    on_node(async {
        let producer: FutureProducer = ClientConfig::new().create().await.unwrap();
        for v in ["0", "1"] {
            producer
                .send(FutureRecord::to("in").key("k").payload(v), Duration::ZERO)
                .await
                .unwrap();
        }
        let ctx = Ctx::default();
        let consumer: StreamConsumer<Ctx> = consumer_config()
            .create_with_context(ctx.clone())
            .await
            .unwrap();
        consumer.subscribe(&["in"]).unwrap();
        assert_eq!(consumer.subscription().unwrap().count(), 1);
        let first = consumer.recv().await.unwrap().detach();
        let second = consumer.recv().await.unwrap();
        assert_eq!((first.offset(), second.offset()), (0, 1));
        assert!(matches!(second.timestamp(), Timestamp::CreateTime(_)));
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .await
            .unwrap();
        let committed = consumer.committed(Duration::from_secs(1)).await.unwrap();
        let at = committed.elements_for_topic("in");
        assert!(
            at.iter().any(|e| e.offset() == Offset::Offset(2)),
            "{committed:?}"
        );
        let (topic, partition) = (first.topic().to_string(), first.partition());
        consumer
            .seek(&topic, partition, Offset::Offset(1), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            consumer.recv().await.unwrap().offset(),
            1,
            "read again after seek"
        );
        assert_eq!(consumer.rebalance_protocol(), RebalanceProtocol::Eager);
        assert!(!consumer.assignment_lost());
        consumer.unsubscribe();
        assert_eq!(consumer.assignment().unwrap().count(), 0);
        assert_eq!(
            ctx.notes(),
            [
                "pre assign 2",
                "post assign 2",
                "commit true 2",
                "pre revoke 2",
                "post revoke 2"
            ]
        );
        madsim::time::sleep(Duration::from_millis(100)).await;
    })
    .await;
    assert_eq!(
        c.broker().group_members("g").len(),
        0,
        "unsubscribe left the group"
    );
}

/// The calls the client refuses say which, by name.
#[madsim::test]
async fn the_refused_calls_name_themselves() {
    let _c = cluster();
    on_node(async {
        let consumer: StreamConsumer = consumer_config().create().await.unwrap();
        let tpl = TopicPartitionList::new();
        let named = |r: KafkaResult<()>, call: &str| {
            assert!(
                matches!(&r, Err(KafkaError::Unsupported(why)) if why.starts_with(call)),
                "{call}: {r:?}"
            );
        };
        named(consumer.pause(&tpl), "pause");
        named(consumer.resume(&tpl), "resume");
        named(consumer.incremental_assign(&tpl), "incremental_assign");
        named(consumer.incremental_unassign(&tpl), "incremental_unassign");
        named(consumer.store_offset("in", 0, 1), "store_offset");
        named(consumer.store_offsets(&tpl), "store_offsets");
        let times = consumer
            .offsets_for_times(tpl.clone(), Duration::ZERO)
            .await;
        named(times.map(|_| ()), "offsets_for_times");
        let plain: FutureProducer = ClientConfig::new().create().await.unwrap();
        let Err(KafkaError::Transaction(e)) = plain.begin_transaction() else {
            panic!("begin_transaction without transactional.id must fail");
        };
        assert_eq!(e.code(), RDKafkaErrorCode::State);
        assert!(e.string().contains("transactional.id"), "{e}");
    })
    .await;
}

/// A fenced producer's transactional error is fatal, as librdkafka classifies it.
#[madsim::test]
async fn a_fenced_producer_reports_a_fatal_error() {
    let _c = cluster();
    on_node(async {
        let config = || {
            let mut c = ClientConfig::new();
            c.set("transactional.id", "t");
            c
        };
        let zombie: FutureProducer = config().create().await.unwrap();
        zombie.init_transactions(Duration::ZERO).await.unwrap();
        zombie.begin_transaction().unwrap();
        let fresh: FutureProducer = config().create().await.unwrap();
        fresh.init_transactions(Duration::ZERO).await.unwrap();
        let record = FutureRecord::to("in").key("k").payload("late");
        let _ = zombie.send(record, Duration::ZERO).await;
        let Err(KafkaError::Transaction(e)) = zombie.commit_transaction(Duration::ZERO).await
        else {
            panic!("a fenced producer cannot commit");
        };
        assert!(e.is_fatal() && !e.txn_requires_abort(), "{e}");
        assert_eq!(zombie.in_flight_count(), 0);
        zombie.flush(Duration::ZERO).await.unwrap();
    })
    .await;
}
