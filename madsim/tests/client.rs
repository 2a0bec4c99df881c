//! The rdkafka-shaped client against the broker node: keys and the partitioner, groups
//! and commits, transactions, fencing, and the settings it refuses.
#![cfg(madsim)]

use madsim::runtime::Handle;
use oversell_madsim::cluster::Cluster;
use oversell_madsim::rdkafka::config::ClientConfig;
use oversell_madsim::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use oversell_madsim::rdkafka::error::{KafkaError, RDKafkaErrorCode};
use oversell_madsim::rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use oversell_madsim::rdkafka::{Message, Offset, TopicPartitionList};
use oversell_madsim::record::Recorder;
use oversell_sim::partitioner::partition_for_key;
use oversell_sim::{Broker, TopicConfig, TopicPartition};
use std::future::Future;
use std::time::Duration;

const T: Duration = Duration::from_secs(1);

fn cluster(partitions: u32) -> Cluster {
    let mut broker = Broker::new();
    for topic in ["in", "out"] {
        let config = TopicConfig {
            partitions,
            compacted: false,
        };
        broker.create_topic(topic, config).unwrap();
    }
    Cluster::start(broker, Recorder::new())
}

/// Run `f` on a client node of its own (the supervisor node has no name).
async fn on_node<F: Future<Output = ()> + Send + 'static>(
    name: &str,
    ip: [u8; 4],
    f: impl Fn() -> F + Send + Sync + 'static,
) {
    let node = Handle::current()
        .create_node()
        .name(name)
        .ip(ip.into())
        .build();
    node.spawn(f()).await.unwrap();
}

async fn producer(extra: &[(&str, &str)]) -> Result<FutureProducer, KafkaError> {
    let mut c = ClientConfig::new();
    c.set("client.id", "app").set("enable.idempotence", "true");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().await
}

async fn consumer(group: &str, isolation: &str) -> StreamConsumer {
    config(group, isolation).create().await.unwrap()
}

async fn consumer_with_session(group: &str, session_ms: u64) -> StreamConsumer {
    config(group, "read_committed")
        .set("session.timeout.ms", session_ms.to_string())
        .create()
        .await
        .unwrap()
}

fn config(group: &str, isolation: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("client.id", group)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("session.timeout.ms", "300")
        .set("heartbeat.interval.ms", "100")
        .set("max.poll.interval.ms", "1000")
        .set("fetch.wait.max.ms", "10");
    c
}

#[madsim::test]
async fn keys_go_to_the_murmur2_partition_and_are_read_back_in_order() {
    let _c = cluster(3);
    on_node("p", [10, 0, 0, 2], || async {
        let p = producer(&[]).await.unwrap();
        for key in ["a", "b", "product1", "product2"] {
            let (partition, _) = p
                .send(FutureRecord::to("in").key(key).payload("v"), T)
                .await
                .unwrap();
            assert_eq!(partition as u32, partition_for_key(key, 3), "key {key}");
        }
        let c = consumer("g", "read_committed").await;
        c.subscribe(&["in"]).unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let m = c.recv().await.unwrap();
            seen.push(String::from_utf8(m.key().unwrap().to_vec()).unwrap());
        }
        seen.sort();
        assert_eq!(seen, ["a", "b", "product1", "product2"]);
    })
    .await;
}

#[madsim::test]
async fn a_new_member_resumes_from_the_committed_offset() {
    let _c = cluster(1);
    on_node("p", [10, 0, 0, 2], || async {
        let p = producer(&[]).await.unwrap();
        for v in ["0", "1", "2"] {
            p.send(FutureRecord::to("in").key("k").payload(v), T)
                .await
                .unwrap();
        }
        let first = consumer("g", "read_committed").await;
        first.subscribe(&["in"]).unwrap();
        let m = first.recv().await.unwrap();
        assert_eq!(m.offset(), 0);
        first.commit_message(&m, CommitMode::Sync).await.unwrap();
        drop(first);
        // A new member of the same group: once the old one's session expired, it
        // gets the partition and starts after the committed record.
        let second = consumer("g", "read_committed").await;
        second.subscribe(&["in"]).unwrap();
        assert_eq!(second.recv().await.unwrap().offset(), 1);
    })
    .await;
}

#[madsim::test]
async fn read_committed_skips_an_aborted_transaction_and_sees_a_committed_one() {
    let _c = cluster(1);
    on_node("p", [10, 0, 0, 2], || async {
        let p = producer(&[("transactional.id", "t")]).await.unwrap();
        p.init_transactions(T).await.unwrap();
        p.begin_transaction().unwrap();
        p.send(FutureRecord::to("in").key("k").payload("aborted"), T)
            .await
            .unwrap();
        p.abort_transaction(T).await.unwrap();
        p.begin_transaction().unwrap();
        p.send(FutureRecord::to("in").key("k").payload("committed"), T)
            .await
            .unwrap();
        p.commit_transaction(T).await.unwrap();
        let c = consumer("g", "read_committed").await;
        c.subscribe(&["in"]).unwrap();
        let m = c.recv().await.unwrap();
        assert_eq!(m.payload_view::<str>().unwrap().unwrap(), "committed");
        let u = consumer("u", "read_uncommitted").await;
        u.subscribe(&["in"]).unwrap();
        assert_eq!(
            u.recv()
                .await
                .unwrap()
                .payload_view::<str>()
                .unwrap()
                .unwrap(),
            "aborted"
        );
    })
    .await;
}

#[madsim::test]
async fn a_second_init_fences_the_first_producer() {
    let _c = cluster(1);
    on_node("p", [10, 0, 0, 2], || async {
        let zombie = producer(&[("transactional.id", "t")]).await.unwrap();
        zombie.init_transactions(T).await.unwrap();
        zombie.begin_transaction().unwrap();
        zombie
            .send(FutureRecord::to("in").key("k").payload("z"), T)
            .await
            .unwrap();
        let fresh = producer(&[("transactional.id", "t")]).await.unwrap();
        fresh.init_transactions(T).await.unwrap();
        let late = zombie
            .send(FutureRecord::to("in").key("k").payload("late"), T)
            .await;
        let Err((KafkaError::MessageProduction(code), _)) = late else {
            panic!("the zombie's send must fail, got {late:?}");
        };
        assert!(
            matches!(
                code,
                RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
            ),
            "{code:?}"
        );
        assert!(
            zombie.commit_transaction(T).await.is_err(),
            "a fenced producer is unusable"
        );
    })
    .await;
}

#[madsim::test]
async fn offsets_sent_to_a_transaction_commit_with_it() {
    let c = cluster(1);
    on_node("p", [10, 0, 0, 2], || async {
        let p = producer(&[]).await.unwrap();
        p.send(FutureRecord::to("in").key("k").payload("x"), T)
            .await
            .unwrap();
        let consumer = consumer("g", "read_committed").await;
        consumer.subscribe(&["in"]).unwrap();
        let m = consumer.recv().await.unwrap();
        let t = producer(&[("transactional.id", "t")]).await.unwrap();
        t.init_transactions(T).await.unwrap();
        t.begin_transaction().unwrap();
        t.send(FutureRecord::to("out").key("k").payload("y"), T)
            .await
            .unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("in", 0, Offset::Offset(m.offset() + 1))
            .unwrap();
        let group = consumer.group_metadata().unwrap();
        t.send_offsets_to_transaction(&offsets, &group, T)
            .await
            .unwrap();
        t.commit_transaction(T).await.unwrap();
    })
    .await;
    // The markers are written by the coordinator's own task, a few ms later.
    madsim::time::sleep(Duration::from_millis(100)).await;
    let committed = c.broker().committed_offsets("g");
    assert_eq!(committed.get(&TopicPartition::new("in", 0)), Some(&1));
}

#[madsim::test]
async fn settings_it_does_not_model_are_refused_by_name() {
    let _c = cluster(1);
    let auto = ClientConfig::new()
        .set("group.id", "g")
        .create::<StreamConsumer>()
        .await;
    assert!(
        matches!(auto, Err(KafkaError::ClientCreation(ref why)) if why.contains("enable.auto.commit")),
        "{:?}",
        auto.err()
    );
    let partitioner = producer(&[("partitioner", "consistent_random")]).await;
    assert!(
        matches!(partitioner, Err(KafkaError::ClientCreation(ref why)) if why.contains("partitioner"))
    );
    let unknown = producer(&[("linger.ms", "5")]).await;
    assert!(
        matches!(unknown, Err(KafkaError::ClientCreation(ref why)) if why.starts_with("linger.ms"))
    );
}

/// `acks` (or librdkafka's `request.required.acks`): `1` without idempotence, refused
/// with it as librdkafka refuses it; `0` is refused. (That `acks=1` reaches the broker,
/// which then answers before the followers have the batch, is what the
/// `cluster/acks1-*` scenarios show on this driver: `tests/madsim.rs`.)
#[madsim::test]
async fn acks_1_is_taken_without_idempotence_and_refused_with_it() {
    let _c = cluster(1);
    let idempotent = producer(&[("acks", "1")]).await;
    assert!(
        matches!(idempotent, Err(KafkaError::ClientCreation(ref why)) if why.contains("`acks` must be set to `all`")),
        "{:?}",
        idempotent.err()
    );
    let zero = producer(&[("enable.idempotence", "false"), ("acks", "0")]).await;
    assert!(matches!(zero, Err(KafkaError::ClientCreation(ref why)) if why.contains("acks=0")));
    on_node("p", [10, 1, 0, 1], || async {
        for name in ["acks", "request.required.acks"] {
            let p = producer(&[("enable.idempotence", "false"), (name, "1")])
                .await
                .unwrap();
            let record = FutureRecord::to("in").key("k").payload("v");
            p.send(record, T).await.unwrap();
        }
    })
    .await;
}

/// A dropped consumer leaves its group (rdkafka's close sends `LeaveGroup`): the
/// coordinator forgets it at once, long before its session would expire.
#[madsim::test]
async fn a_dropped_consumer_leaves_its_group_at_once() {
    let c = cluster(1);
    let members = {
        let c = c.clone();
        move || c.broker().group_members("g").len()
    };
    on_node("p", [10, 0, 0, 2], || async {
        let p = producer(&[]).await.unwrap();
        p.send(FutureRecord::to("in").key("k").payload("x"), T)
            .await
            .unwrap();
        let joined = consumer_with_session("g", 60_000).await;
        joined.subscribe(&["in"]).unwrap();
        joined.recv().await.unwrap();
        drop(joined);
        madsim::time::sleep(Duration::from_millis(100)).await;
    })
    .await;
    assert_eq!(members(), 0, "the dropped member is gone within 100 ms");
}

/// A killed node's consumer sends nothing: the coordinator expires it only when its
/// session times out.
#[madsim::test]
async fn a_killed_consumer_stays_in_its_group_until_its_session_expires() {
    let c = cluster(1);
    let node = Handle::current()
        .create_node()
        .name("k")
        .ip([10, 0, 0, 3].into())
        .build();
    node.spawn(async {
        let joined = consumer_with_session("g", 2_000).await;
        joined.subscribe(&["in"]).unwrap();
        let _ = madsim::time::timeout(Duration::from_millis(300), joined.recv()).await;
        std::future::pending::<()>().await;
    });
    madsim::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.broker().group_members("g").len(), 1, "joined");
    Handle::current().kill(node.id());
    madsim::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        c.broker().group_members("g").len(),
        1,
        "no LeaveGroup from a killed node"
    );
    madsim::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        c.broker().group_members("g").len(),
        0,
        "expired after its session"
    );
}
