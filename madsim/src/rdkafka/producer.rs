//! `rdkafka::producer`: `FutureProducer`, `FutureRecord`, and the transactional API.
//!
//! Modelled on Kafka's producer: an idempotent producer obtains a producer id
//! (`InitProducerId`) and numbers its batches per partition (`RecordAccumulator` /
//! `TransactionManager`); a transactional one is fenced by a newer `InitProducerId` of
//! its `transactional.id`, sends its offsets with the consumer's group metadata
//! (KIP-447, `TransactionManager.sendOffsetsToTransaction`), and after each `EndTxn`
//! takes the producer id and epoch the coordinator returns (transaction protocol v2,
//! KIP-890, `TransactionManager.handleEndTxn`), with sequences restarting at 0.

use super::client::{Client, ClientContext, DefaultClientContext};
use super::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use super::conn::Conn;
use super::consumer::ConsumerGroupMetadata;
use super::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use super::message::{OwnedMessage, Timestamp, ToBytes};
use super::util::Timeout;
use super::TopicPartitionList;
use crate::cluster::partitions;
use futures_util::lock::Mutex;
use oversell_sim::partitioner::partition_for_key_bytes;
use oversell_sim::protocol::{
    Acks, GroupMetadata, PartitionProduceResult, ProduceBatch, ProducerIdentity, Record, Request,
    Response,
};
use oversell_sim::{Event, TopicPartition};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// `rdkafka::producer::Producer`, with madsim-rdkafka's signatures
/// (`madsim-rdkafka/src/std/producer/mod.rs`: rdkafka 0.34's trait with `flush`,
/// `init_transactions`, `send_offsets_to_transaction`, `commit_transaction` and
/// `abort_transaction` made `async`; `begin_transaction` stays synchronous). madsim-rdkafka
/// declares it with `async_trait`; here the methods return `impl Future + Send`. Its type
/// parameter is the client's context (rdkafka's is the `ProducerContext`, for a
/// `FutureProducer<C>` `FutureProducerContext<C>`); `purge` (no `PurgeConfig`) is absent.
/// The `timeout` arguments are accepted and not applied: a call waits for the broker's
/// answer, its request resent every `request.timeout.ms` as librdkafka resends it.
pub trait Producer<C: ClientContext = DefaultClientContext> {
    fn client(&self) -> &Client<C>;

    fn context(&self) -> &Arc<C> {
        self.client().context()
    }

    /// Sends under way (`send` waits for its acknowledgement, so none is queued).
    fn in_flight_count(&self) -> i32;

    /// Wait until no send is under way.
    fn flush<T: Into<Timeout> + Send>(
        &self,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    /// A producer id for the `transactional.id`, fencing any earlier producer with it and
    /// aborting its open transaction.
    fn init_transactions<T: Into<Timeout> + Send>(
        &self,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    /// The broker adds partitions as records reach them. A transactional call still
    /// under way makes it fail with `Conflict` (librdkafka's `__CONFLICT`).
    fn begin_transaction(&self) -> KafkaResult<()>;

    /// The consumer's offsets, committed with the transaction, checked against the
    /// group's generation (KIP-447).
    fn send_offsets_to_transaction<T: Into<Timeout> + Send>(
        &self,
        offsets: &TopicPartitionList,
        cgm: &ConsumerGroupMetadata,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    fn commit_transaction<T: Into<Timeout> + Send>(
        &self,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<()>> + Send;

    fn abort_transaction<T: Into<Timeout> + Send>(
        &self,
        timeout: T,
    ) -> impl Future<Output = KafkaResult<()>> + Send;
}

/// A record to send (`rdkafka::producer::FutureRecord`).
pub struct FutureRecord<'a, K: ToBytes + ?Sized, P: ToBytes + ?Sized> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a K>,
    pub payload: Option<&'a P>,
    pub timestamp: Option<i64>,
}

impl<'a, K: ToBytes + ?Sized, P: ToBytes + ?Sized> FutureRecord<'a, K, P> {
    pub fn to(topic: &'a str) -> Self {
        FutureRecord {
            topic,
            partition: None,
            key: None,
            payload: None,
            timestamp: None,
        }
    }
    pub fn key(mut self, key: &'a K) -> Self {
        self.key = Some(key);
        self
    }
    pub fn payload(mut self, payload: &'a P) -> Self {
        self.payload = Some(payload);
        self
    }
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

/// `rdkafka::producer::future_producer::OwnedDeliveryResult`.
pub type OwnedDeliveryResult = Result<(i32, i64), (KafkaError, OwnedMessage)>;

struct Settings {
    idempotent: bool,
    acks: Acks,
    transactional_id: Option<String>,
    transaction_timeout_ms: u64,
}

#[derive(Default)]
struct State {
    identity: Option<ProducerIdentity>,
    sequences: BTreeMap<TopicPartition, i32>,
    in_transaction: bool,
    /// A fatal error (fenced): every later call fails with it.
    fatal: Option<RDKafkaErrorCode>,
}

/// An async producer (`rdkafka::producer::FutureProducer`).
pub struct FutureProducer<C: ClientContext = DefaultClientContext> {
    conn: Conn,
    settings: Settings,
    state: Mutex<State>,
    in_flight: std::sync::atomic::AtomicI32,
    client: Client<C>,
}

const KNOWN: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "enable.idempotence",
    "transactional.id",
    "transaction.timeout.ms",
    "request.timeout.ms",
    "retry.backoff.ms",
    "acks",
    "request.required.acks",
    "partitioner",
    "message.timeout.ms",
];

impl FromClientConfig for FutureProducer {
    async fn from_config(config: &ClientConfig) -> KafkaResult<FutureProducer> {
        FutureProducer::from_config_and_context(config, DefaultClientContext).await
    }
}

impl<C: ClientContext> FromClientConfigAndContext<C> for FutureProducer<C> {
    async fn from_config_and_context(
        config: &ClientConfig,
        context: C,
    ) -> KafkaResult<FutureProducer<C>> {
        config.only("producer", KNOWN)?;
        config.one_of("partitioner", &["murmur2_random", "murmur2"])?;
        let transactional_id = config.get("transactional.id").map(str::to_string);
        let idempotent = config.flag("enable.idempotence", false)? || transactional_id.is_some();
        let settings = Settings {
            acks: acks(config, idempotent)?,
            idempotent,
            transactional_id,
            transaction_timeout_ms: config.millis("transaction.timeout.ms", 60_000)?,
        };
        let conn = Conn::new(
            config.get("client.id").unwrap_or("rdkafka"),
            config.millis("request.timeout.ms", 30_000)?,
            config.millis("retry.backoff.ms", 100)?,
        )?;
        Ok(FutureProducer {
            conn,
            settings,
            state: Mutex::new(State::default()),
            in_flight: Default::default(),
            client: Client::new(context),
        })
    }
}

/// librdkafka's `acks` (alias `request.required.acks`): `all` / `-1` (the default
/// since librdkafka 1.x) or `1`, the leader's own append; `0`, an unanswered produce, is
/// refused. As librdkafka's `rd_kafka_conf_finalize` (`rdkafka_conf.c`) does, an
/// idempotent or transactional producer takes `all` only ("`acks` must be set to `all`
/// when `enable.idempotence` is true"; Kafka's
/// `ProducerConfig.postProcessAndValidateIdempotenceConfigs` likewise).
fn acks(config: &ClientConfig, idempotent: bool) -> KafkaResult<Acks> {
    let value = match (config.get("acks"), config.get("request.required.acks")) {
        (Some(a), Some(b)) if a != b => {
            return Err(KafkaError::ClientCreation(format!(
                "acks={a} and request.required.acks={b}: one setting under two names"
            )))
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => "all",
    };
    let acks = match value.trim() {
        "all" | "-1" => Acks::All,
        "1" => Acks::Leader,
        other => {
            return Err(KafkaError::ClientCreation(format!(
                "acks={other}: not supported (supported: all, -1, 1)"
            )))
        }
    };
    if idempotent && acks != Acks::All {
        return Err(KafkaError::ClientCreation(
            "`acks` must be set to `all` when `enable.idempotence` is true".into(),
        ));
    }
    Ok(acks)
}

impl<C: ClientContext> FutureProducer<C> {
    /// Send one record and wait for its acknowledgement. The queue timeout is not
    /// modelled: a record waits as long as its request is retried.
    // The error is rdkafka's `OwnedDeliveryResult`: its size is the API's.
    #[allow(clippy::result_large_err)]
    pub async fn send<K, P, T>(
        &self,
        record: FutureRecord<'_, K, P>,
        _queue_timeout: T,
    ) -> OwnedDeliveryResult
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
        T: Into<Timeout>,
    {
        let key = record.key.map(|k| k.to_bytes().to_vec());
        let payload = record.payload.map(|p| p.to_bytes().to_vec());
        let message = |partition: i32| OwnedMessage {
            key: key.clone(),
            payload: payload.clone(),
            topic: record.topic.to_string(),
            partition,
            offset: -1,
            timestamp: record
                .timestamp
                .map_or(Timestamp::NotAvailable, Timestamp::CreateTime),
        };
        let fail = |e: KafkaError, partition| Err((e, message(partition)));
        let Some(count) = partitions(record.topic) else {
            return fail(
                KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition),
                -1,
            );
        };
        let partition = match (record.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key_bytes(k, count) as i32,
            // murmur2_random: a keyless record goes to a random partition.
            (None, None) => (madsim::rand::random::<u32>() % count) as i32,
        };
        let text =
            |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        let r = Record {
            key: text(&key),
            value: text(&payload),
            timestamp: record
                .timestamp
                .map_or_else(crate::record::now_ms, |t| t.max(0) as u64),
            headers: Vec::new(),
        };
        let tp = TopicPartition::new(record.topic, partition.max(0) as u32);
        let _in_flight = InFlight::new(&self.in_flight);
        match self.produce(tp, r).await {
            Ok(offset) => Ok((partition, offset as i64)),
            Err(e) => fail(e, partition),
        }
    }

    async fn produce(&self, tp: TopicPartition, record: Record) -> KafkaResult<u64> {
        let mut st = self.state.lock().await;
        self.usable(&st, "send")?;
        if self.settings.transactional_id.is_some() && !st.in_transaction {
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::State));
        }
        if self.settings.idempotent && st.identity.is_none() {
            let (producer_id, epoch) = self.init_producer_id(None).await?;
            st.identity = Some(ProducerIdentity {
                producer_id,
                epoch,
                transactional_id: None,
            });
        }
        let base_sequence = st
            .identity
            .as_ref()
            .map(|_| *st.sequences.get(&tp).unwrap_or(&0));
        let request = Request::Produce {
            producer: st.identity.clone(),
            batches: vec![ProduceBatch {
                tp: tp.clone(),
                base_sequence,
                records: vec![record],
            }],
            acks: self.settings.acks,
        };
        let Response::Produce(results) = self.conn.call(request).await else {
            unreachable!("a produce is answered by a produce response")
        };
        let result = results.into_iter().find(|(t, _)| *t == tp).map(|(_, r)| r);
        match result {
            Some(PartitionProduceResult::Appended { base_offset, .. }) => {
                if let Some(seq) = base_sequence {
                    st.sequences.insert(tp.clone(), seq + 1);
                }
                self.conn.recorder.event(Event::Acked {
                    client: self.conn.id.clone(),
                    tp,
                    base_offset,
                    count: 1,
                });
                Ok(base_offset)
            }
            Some(PartitionProduceResult::Error(e)) => Err(KafkaError::MessageProduction(
                self.failed(&mut st, e.into()),
            )),
            None => unreachable!("the broker answers every partition of a produce"),
        }
    }

    fn usable(&self, st: &State, what: &str) -> KafkaResult<()> {
        match st.fatal {
            Some(code) => Err(KafkaError::txn(code, what)),
            None => Ok(()),
        }
    }

    /// An error from the broker; fencing makes the producer unusable (a fatal error).
    fn failed(&self, st: &mut State, code: RDKafkaErrorCode) -> RDKafkaErrorCode {
        self.conn.error(format!("{code:?}"));
        if matches!(
            code,
            RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
        ) {
            st.fatal = Some(code);
        }
        code
    }

    async fn init_producer_id(&self, transactional_id: Option<String>) -> KafkaResult<(u64, u16)> {
        let request = Request::InitProducerId {
            transactional_id,
            transaction_timeout_ms: self.settings.transaction_timeout_ms,
        };
        match self.conn.call(request).await {
            Response::InitProducerId(Ok(id)) => Ok(id),
            Response::InitProducerId(Err(e)) => Err(KafkaError::txn(e.into(), "init_transactions")),
            other => unreachable!("InitProducerId answered by {other:?}"),
        }
    }

    fn transactional(&self, what: &str) -> KafkaResult<String> {
        self.settings.transactional_id.clone().ok_or_else(|| {
            KafkaError::txn(
                RDKafkaErrorCode::State,
                &format!("{what}: the transactional API needs transactional.id"),
            )
        })
    }

    async fn end(&self, commit: bool) -> KafkaResult<()> {
        let what = if commit {
            "commit_transaction"
        } else {
            "abort_transaction"
        };
        self.transactional(what)?;
        let mut st = self.state.lock().await;
        self.usable(&st, what)?;
        let (Some(producer), true) = (st.identity.clone(), st.in_transaction) else {
            return Err(KafkaError::txn(RDKafkaErrorCode::State, what));
        };
        match self
            .conn
            .call(Request::EndTxn {
                producer: producer.clone(),
                commit,
            })
            .await
        {
            Response::EndTxn(Ok(bumped)) => {
                if let Some((producer_id, epoch)) = bumped {
                    st.identity = Some(ProducerIdentity {
                        producer_id,
                        epoch,
                        ..producer
                    });
                    st.sequences.clear();
                }
                st.in_transaction = false;
                Ok(())
            }
            Response::EndTxn(Err(e)) => Err(KafkaError::txn(self.failed(&mut st, e.into()), what)),
            other => unreachable!("EndTxn answered by {other:?}"),
        }
    }
}

impl<C: ClientContext> Producer<C> for FutureProducer<C> {
    fn client(&self) -> &Client<C> {
        &self.client
    }

    fn in_flight_count(&self) -> i32 {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every send holds the producer's state while it waits for its acknowledgement:
    /// once the state is free, nothing is under way.
    async fn flush<T: Into<Timeout> + Send>(&self, _timeout: T) -> KafkaResult<()> {
        drop(self.state.lock().await);
        Ok(())
    }

    async fn init_transactions<T: Into<Timeout> + Send>(&self, _timeout: T) -> KafkaResult<()> {
        let tid = self.transactional("init_transactions")?;
        let mut st = self.state.lock().await;
        self.usable(&st, "init_transactions")?;
        let (producer_id, epoch) = self.init_producer_id(Some(tid.clone())).await?;
        st.identity = Some(ProducerIdentity {
            producer_id,
            epoch,
            transactional_id: Some(tid),
        });
        st.sequences.clear();
        st.in_transaction = false;
        Ok(())
    }

    fn begin_transaction(&self) -> KafkaResult<()> {
        let what = "begin_transaction";
        self.transactional(what)?;
        let Some(mut st) = self.state.try_lock() else {
            return Err(KafkaError::txn(
                RDKafkaErrorCode::Conflict,
                "begin_transaction: another call is under way",
            ));
        };
        self.usable(&st, what)?;
        if st.identity.is_none() || st.in_transaction {
            return Err(KafkaError::txn(RDKafkaErrorCode::State, what));
        }
        st.in_transaction = true;
        Ok(())
    }

    async fn send_offsets_to_transaction<T: Into<Timeout> + Send>(
        &self,
        offsets: &TopicPartitionList,
        cgm: &ConsumerGroupMetadata,
        _timeout: T,
    ) -> KafkaResult<()> {
        let what = "send_offsets_to_transaction";
        self.transactional(what)?;
        let offsets = offsets.offsets()?;
        let mut st = self.state.lock().await;
        self.usable(&st, what)?;
        let (Some(producer), true) = (st.identity.clone(), st.in_transaction) else {
            return Err(KafkaError::txn(RDKafkaErrorCode::State, what));
        };
        let group = GroupMetadata {
            group: cgm.group.clone(),
            member_id: cgm.member_id.clone(),
            generation: cgm.generation,
        };
        let request = Request::TxnOffsetCommit {
            producer,
            group,
            offsets,
        };
        match self.conn.call(request).await {
            Response::TxnOffsetCommit(Ok(())) => Ok(()),
            Response::TxnOffsetCommit(Err(e)) => {
                Err(KafkaError::txn(self.failed(&mut st, e.into()), what))
            }
            other => unreachable!("TxnOffsetCommit answered by {other:?}"),
        }
    }

    async fn commit_transaction<T: Into<Timeout> + Send>(&self, _timeout: T) -> KafkaResult<()> {
        self.end(true).await
    }

    async fn abort_transaction<T: Into<Timeout> + Send>(&self, _timeout: T) -> KafkaResult<()> {
        self.end(false).await
    }
}

/// One send under way, for `in_flight_count`.
struct InFlight<'a>(&'a std::sync::atomic::AtomicI32);

impl<'a> InFlight<'a> {
    fn new(count: &'a std::sync::atomic::AtomicI32) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
