//! Shared fixtures of the runtime's unit tests: a counting topology over `in` (two
//! partitions), a client, and the answers that bring it to `Run`.

use super::harness::Driver;
use super::*;
use std::sync::Arc;

pub const STORE: &str = "s";

#[derive(Clone)]
pub struct Count;

impl Processor for Count {
    fn clone_boxed(&self) -> Option<Box<dyn Processor>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, _state: &mut dyn std::hash::Hasher) -> bool {
        true // nothing outside its stores (its configuration is fixed at build)
    }

    fn process(&mut self, ctx: &mut Context<'_, '_>, input: &Input) -> Processed {
        let key = input.key.clone().unwrap_or_default();
        let n: u64 = ctx.get(STORE, &key).map_or(0, |v| v.parse().unwrap_or(0)) + 1;
        ctx.put(STORE, &key, Some(n.to_string()));
        ctx.send("out", &key, n.to_string());
        Processed::Done
    }
}

pub fn topology(punctuate: Option<Punctuation>) -> Topology {
    Topology {
        subtopologies: vec![SubTopology {
            name: "count".into(),
            sources: vec!["in".into()],
            stores: vec![STORE.into()],
            processor: Arc::new(|_| Box::new(Count)),
            punctuate,
        }],
    }
}

/// A client whose producer does not linger (`linger.ms` = 0): outputs go out as soon as
/// the input buffer is empty, so each test sees its produce at once (the `linger` module's
/// tests take Kafka Streams' 100 ms).
pub fn client(guarantee: Guarantee) -> StreamsClient {
    StreamsClient::new("i0", config(guarantee), topology(None))
}

/// The unit tests' configuration: no linger, and the processing loop fetching one
/// partition at a time (`fetch_max_wait_ms` 0), so that each step of the main lane sends
/// the one request the tests answer; the long poll's own tests are in `partition_group`.
pub fn config(guarantee: Guarantee) -> StreamsConfig {
    let mut config = StreamsConfig::new("app", guarantee);
    config.linger_ms = 0;
    config.fetch_max_wait_ms = 0;
    config
}

/// A client of the eager protocol (every task closed and recreated at a rebalance).
pub fn eager_client(guarantee: Guarantee) -> StreamsClient {
    let mut config = config(guarantee);
    config.rebalance_protocol = RebalanceProtocol::Eager;
    StreamsClient::new("i0", config, topology(None))
}

pub fn driver() -> Driver {
    let meta = [("in", 2), ("out", 2), ("app-s-changelog", 2)]
        .into_iter()
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    Driver::new(meta)
}

pub fn tp(topic: &str, p: u32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

pub fn record(key: &str, value: &str, timestamp: Millis) -> Record {
    Record {
        key: Some(key.into()),
        value: Some(value.into()),
        timestamp,
        headers: Vec::new(),
    }
}

pub fn fetched(tp: TopicPartition, from: Offset, records: Vec<Record>, hw: Offset) -> Response {
    let n = records.len() as Offset;
    let records = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| FetchedRecord {
            offset: from + i as Offset,
            record,
        })
        .collect();
    Response::Fetch {
        tp,
        result: Ok(FetchData {
            records,
            high_watermark: hw,
            last_stable_offset: hw,
            next_offset: from + n,
        }),
    }
}

/// Step the main lane once; the one request it sent.
pub fn step(c: &mut StreamsClient, d: &mut Driver) -> (u64, Request) {
    let mut sent = d.step(c, MAIN);
    assert_eq!(sent.len(), 1, "one request per step: {sent:?}");
    sent.remove(0)
}

/// Answer the request in flight; the requests sent in reaction.
pub fn answer(c: &mut StreamsClient, d: &mut Driver, corr: u64, r: Response) -> Vec<Request> {
    d.respond(c, corr, r).into_iter().map(|(_, r)| r).collect()
}

/// Bring a client to `Run` with `partitions` of `in` assigned, generation 1, nothing
/// committed, and changelogs holding `changelog` (per partition).
pub fn running(
    guarantee: Guarantee,
    partitions: &[u32],
    changelog: &[(u32, Vec<Record>)],
) -> (StreamsClient, Driver) {
    running_client(client(guarantee), partitions, changelog)
}

/// As [`running`], for a client built by the test.
pub fn running_client(
    c: StreamsClient,
    partitions: &[u32],
    changelog: &[(u32, Vec<Record>)],
) -> (StreamsClient, Driver) {
    running_client_as(c, partitions, changelog, 0)
}

/// As [`running_client`], with the consumer's `fetch.max.wait.ms` (0: the processing
/// loop fetches; above 0: the long poll's fetch lane).
pub fn running_client_as(
    mut c: StreamsClient,
    partitions: &[u32],
    changelog: &[(u32, Vec<Record>)],
    fetch_max_wait_ms: Millis,
) -> (StreamsClient, Driver) {
    c.config.fetch_max_wait_ms = fetch_max_wait_ms;
    let mut d = driver();
    let (corr, _) = step(&mut c, &mut d);
    answer(&mut c, &mut d, corr, Response::InitProducerId(Ok((1, 0))));
    let (corr, _) = step(&mut c, &mut d);
    let assignment: Vec<TopicPartition> = partitions.iter().map(|p| tp("in", *p)).collect();
    let joined = JoinOutcome::Joined {
        member_id: "m".into(),
        generation: 1,
        assignment: assignment.clone(),
    };
    answer(&mut c, &mut d, corr, Response::JoinGroup(Ok(joined)));
    let (corr, _) = step(&mut c, &mut d);
    let none = assignment.iter().map(|t| (t.clone(), None)).collect();
    answer(&mut c, &mut d, corr, Response::OffsetFetch(Ok(none)));
    for p in partitions {
        let (corr, _) = step(&mut c, &mut d);
        let records = changelog
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        let hw = records.len() as Offset;
        answer(
            &mut c,
            &mut d,
            corr,
            fetched(tp("app-s-changelog", *p), 0, records, hw),
        );
    }
    let _ = d.step(&mut c, MAIN); // leaves Restore
    assert_eq!(c.phase, Phase::Run);
    (c, d)
}

/// Every batch of a produce request appended: the answer a healthy broker gives.
pub fn ok_acks(batches: &[ProduceBatch]) -> Response {
    let acks = batches
        .iter()
        .map(|b| {
            let ok = PartitionProduceResult::Appended {
                base_offset: 0,
                duplicate: false,
            };
            (b.tp.clone(), ok)
        })
        .collect();
    Response::Produce(acks)
}
