//! `rdkafka::consumer`: a consumer in a consumer group (`StreamConsumer`), its context
//! with the rebalance callbacks, offset commits and group metadata.
//!
//! The group protocol is Kafka's classic one with an eager assignor (`range`): on a
//! rebalance the member revokes every partition (`pre_rebalance(Revoke)`), joins
//! (`JoinGroup`, the coordinator assigns, as oversell's broker does), reads the committed
//! offsets (`OffsetFetch`, `require_stable` under `read_committed`, KIP-447) and is given
//! its partitions (`post_rebalance(Assign)`) — `ConsumerCoordinator.onJoinPrepare` /
//! `onJoinComplete`. A heartbeat task on the consumer's node (`AbstractCoordinator`'s
//! heartbeat thread) learns of a rebalance or of its expulsion; the next `recv` rejoins.

use super::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use super::conn::Conn;
use super::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use super::message::{Message, OwnedMessage};
use super::TopicPartitionList;
use crate::cluster::partitions;
use madsim::time::{sleep, Duration};
use oversell_sim::protocol::{
    FetchData, Generation, GroupMetadata, Isolation, JoinOutcome, KafkaError as WireError,
    RebalanceProtocol, Request, Response,
};
use oversell_sim::{Event, TopicPartition};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// `rdkafka::consumer::Rebalance`.
#[derive(Debug)]
pub enum Rebalance<'a> {
    Assign(&'a TopicPartitionList),
    Revoke(&'a TopicPartitionList),
    Error(KafkaError),
}

/// `rdkafka::consumer::ConsumerContext`: the rebalance callbacks.
pub trait ConsumerContext: Send + Sync + 'static {
    fn pre_rebalance(&self, _rebalance: &Rebalance<'_>) {}
    fn post_rebalance(&self, _rebalance: &Rebalance<'_>) {}
}

/// `rdkafka::consumer::DefaultConsumerContext`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultConsumerContext;

impl ConsumerContext for DefaultConsumerContext {}

/// `rdkafka::consumer::CommitMode` (both wait for the answer here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    Sync,
    Async,
}

/// `rdkafka::consumer::ConsumerGroupMetadata`: what a transactional producer sends with
/// its offsets so that a zombie's commit is rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) generation: Generation,
}

struct Settings {
    group: String,
    isolation: Isolation,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    rebalance_timeout_ms: u64,
    fetch_wait_ms: u64,
}

#[derive(Default)]
struct State {
    topics: Vec<String>,
    member_id: Option<String>,
    /// The current generation, once joined.
    generation: Option<Generation>,
    assignment: Vec<TopicPartition>,
    positions: BTreeMap<TopicPartition, u64>,
    buffer: VecDeque<OwnedMessage>,
    rejoin: bool,
    next: usize,
    /// Partitions given by `assign`, not by a group.
    manual: bool,
}

/// A consumer in a group (`rdkafka::consumer::StreamConsumer`).
pub struct StreamConsumer<C: ConsumerContext = DefaultConsumerContext> {
    conn: Arc<Conn>,
    settings: Arc<Settings>,
    state: Arc<Mutex<State>>,
    context: C,
}

const KNOWN: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "group.id",
    "enable.auto.commit",
    "auto.offset.reset",
    "isolation.level",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "request.timeout.ms",
    "retry.backoff.ms",
    "fetch.wait.max.ms",
    "partition.assignment.strategy",
];

impl<C: ConsumerContext> FromClientConfigAndContext<C> for StreamConsumer<C> {
    fn from_config_and_context(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        config.only("consumer", KNOWN)?;
        // Needed for subscribe and commit only; a consumer that only `assign`s has none.
        let group = config.get("group.id").unwrap_or("").to_string();
        if config.flag("enable.auto.commit", true)? {
            return Err(KafkaError::ClientConfig(
                "enable.auto.commit=true is not supported: set it to false and commit with \
                 Consumer::commit"
                    .into(),
            ));
        }
        config.one_of("auto.offset.reset", &["earliest", "smallest", "beginning"])?;
        config.one_of("partition.assignment.strategy", &["range"])?;
        let isolation = match config
            .one_of("isolation.level", &["read_committed", "read_uncommitted"])?
            .as_str()
        {
            "read_committed" => Isolation::ReadCommitted,
            _ => Isolation::ReadUncommitted,
        };
        let settings = Settings {
            group,
            isolation,
            session_timeout_ms: config.millis("session.timeout.ms", 45_000)?,
            heartbeat_interval_ms: config.millis("heartbeat.interval.ms", 3_000)?,
            rebalance_timeout_ms: config.millis("max.poll.interval.ms", 300_000)?,
            fetch_wait_ms: config.millis("fetch.wait.max.ms", 500)?,
        };
        let conn = Conn::new(
            config.get("client.id").unwrap_or("rdkafka"),
            config.millis("request.timeout.ms", 30_000)?,
            config.millis("retry.backoff.ms", 100)?,
        )?;
        Ok(StreamConsumer {
            conn: Arc::new(conn),
            settings: Arc::new(settings),
            state: Arc::new(Mutex::new(State::default())),
            context,
        })
    }
}

impl FromClientConfig for StreamConsumer<DefaultConsumerContext> {
    fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
        Self::from_config_and_context(config, DefaultConsumerContext)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C: ConsumerContext> StreamConsumer<C> {
    /// `Consumer::subscribe`: the topics to consume; the group is joined at the first `recv`.
    pub fn subscribe(&self, topics: &[&str]) -> KafkaResult<()> {
        if self.settings.group.is_empty() {
            return Err(KafkaError::ClientConfig("subscribe needs group.id".into()));
        }
        if topics.is_empty() {
            return Err(KafkaError::Subscription("no topic".into()));
        }
        if let Some(t) = topics.iter().find(|t| partitions(t).is_none()) {
            return Err(KafkaError::Subscription(format!("unknown topic {t}")));
        }
        let mut st = lock(&self.state);
        st.topics = topics.iter().map(|t| t.to_string()).collect();
        st.rejoin = true;
        st.manual = false;
        Ok(())
    }

    /// The next message of an assigned partition, joining or rejoining the group first
    /// when needed. Each message a group member is given is recorded as processed by
    /// this application; a manually assigned consumer's (a store's restore, recorded as
    /// one `Restored` event by its store, as the simulator's restore is) is not.
    pub async fn recv(&self) -> Result<OwnedMessage, KafkaError> {
        loop {
            let (rejoin, manual, message) = {
                let mut st = lock(&self.state);
                if st.topics.is_empty() && !st.manual {
                    return Err(KafkaError::Subscription(
                        "recv before subscribe or assign".into(),
                    ));
                }
                let joined = st.manual || (!st.rejoin && st.generation.is_some());
                (!joined, st.manual, st.buffer.pop_front())
            };
            if rejoin {
                self.rejoin().await;
                continue;
            }
            if let Some(m) = message {
                if !manual {
                    self.processed(&m);
                }
                return Ok(m);
            }
            self.fetch_next().await;
        }
    }

    fn processed(&self, m: &OwnedMessage) {
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        self.conn.recorder.event(Event::Process {
            client: self.conn.id.clone(),
            tp: TopicPartition::new(m.topic(), m.partition() as u32),
            offset: m.offset() as u64,
            key: text(m.key()),
            value: text(m.payload()),
        });
    }

    /// Fetch from the next assigned partition, round robin; wait `fetch.wait.max.ms` when
    /// a whole round brought nothing (or nothing is assigned).
    async fn fetch_next(&self) {
        let Some((tp, offset, generation)) = self.next_partition() else {
            sleep(Duration::from_millis(self.settings.fetch_wait_ms)).await;
            return;
        };
        let request = Request::Fetch {
            tp: tp.clone(),
            offset,
            max_records: 100,
            isolation: self.settings.isolation,
        };
        let Response::Fetch { result, .. } = self.conn.call(request).await else {
            unreachable!("a fetch is answered by a fetch response")
        };
        match result {
            Ok(data) => {
                if self.fetched(&tp, generation, data) {
                    sleep(Duration::from_millis(self.settings.fetch_wait_ms)).await;
                }
            }
            Err(e) => {
                self.conn.error(format!("fetch {tp}: {e:?}"));
                sleep(self.conn.retry_backoff).await;
            }
        }
    }

    /// The next assigned partition, round robin, with its position and the generation.
    fn next_partition(&self) -> Option<(TopicPartition, u64, Option<Generation>)> {
        let mut st = lock(&self.state);
        if st.assignment.is_empty() {
            return None;
        }
        st.next = (st.next + 1) % st.assignment.len();
        let tp = st.assignment[st.next].clone();
        let offset = *st.positions.get(&tp).unwrap_or(&0);
        Some((tp, offset, st.generation))
    }

    /// Buffer a fetch's records and advance the position (unless the assignment changed
    /// while the fetch was out); whether a whole round brought nothing.
    fn fetched(
        &self,
        tp: &TopicPartition,
        generation: Option<Generation>,
        data: FetchData,
    ) -> bool {
        let mut st = lock(&self.state);
        if st.generation != generation || (st.rejoin && !st.manual) || !st.assignment.contains(tp) {
            return false;
        }
        let last_of_round = st.next + 1 == st.assignment.len();
        let empty = data.records.is_empty();
        st.positions.insert(tp.clone(), data.next_offset);
        for r in data.records {
            st.buffer.push_back(OwnedMessage {
                key: r.record.key.map(String::into_bytes),
                payload: r.record.value.map(String::into_bytes),
                topic: tp.topic.clone(),
                partition: tp.partition as i32,
                offset: r.offset as i64,
            });
        }
        empty && last_of_round && st.buffer.is_empty()
    }

    /// Revoke everything, join until the coordinator assigns, read the committed offsets,
    /// assign (`ConsumerCoordinator.onJoinPrepare` then `onJoinComplete`).
    async fn rejoin(&self) {
        let revoked = {
            let mut st = lock(&self.state);
            st.generation = None;
            st.buffer.clear();
            std::mem::take(&mut st.assignment)
        };
        if !revoked.is_empty() {
            self.context
                .pre_rebalance(&Rebalance::Revoke(&TopicPartitionList::from_tps(&revoked)));
        }
        let (generation, assignment) = self.join().await;
        let positions = self.committed(&assignment).await;
        {
            let mut st = lock(&self.state);
            st.generation = Some(generation);
            st.assignment = assignment.clone();
            st.positions = positions;
            st.rejoin = false;
            st.next = 0;
        }
        self.conn.recorder.event(Event::Assigned {
            client: self.conn.id.clone(),
            generation,
            tasks: assignment.clone(),
        });
        madsim::task::spawn(heartbeat(
            self.conn.clone(),
            self.settings.clone(),
            self.state.clone(),
            generation,
        ));
        self.context
            .post_rebalance(&Rebalance::Assign(&TopicPartitionList::from_tps(
                &assignment,
            )));
    }

    async fn join(&self) -> (Generation, Vec<TopicPartition>) {
        loop {
            let (member_id, topics) = {
                let st = lock(&self.state);
                (st.member_id.clone(), st.topics.clone())
            };
            let request = Request::JoinGroup {
                group: self.settings.group.clone(),
                member_id,
                topics,
                session_timeout_ms: self.settings.session_timeout_ms,
                rebalance_timeout_ms: self.settings.rebalance_timeout_ms,
                protocol: RebalanceProtocol::Eager,
                owned: Vec::new(),
            };
            match self.conn.call(request).await {
                Response::JoinGroup(Ok(JoinOutcome::Joined {
                    member_id,
                    generation,
                    assignment,
                })) => {
                    lock(&self.state).member_id = Some(member_id);
                    return (generation, assignment);
                }
                Response::JoinGroup(Ok(JoinOutcome::Pending { member_id })) => {
                    lock(&self.state).member_id = Some(member_id);
                }
                Response::JoinGroup(Err(e)) => {
                    self.conn.error(format!("join: {e:?}"));
                    if e == WireError::UnknownMemberId {
                        lock(&self.state).member_id = None;
                    }
                }
                other => unreachable!("JoinGroup answered by {other:?}"),
            }
            sleep(self.conn.retry_backoff).await;
        }
    }

    /// The committed offsets of `assignment` (the log start, 0, where none is committed:
    /// `auto.offset.reset=earliest`).
    async fn committed(&self, assignment: &[TopicPartition]) -> BTreeMap<TopicPartition, u64> {
        loop {
            let request = Request::OffsetFetch {
                group: self.settings.group.clone(),
                partitions: assignment.to_vec(),
                require_stable: self.settings.isolation == Isolation::ReadCommitted,
            };
            match self.conn.call(request).await {
                Response::OffsetFetch(Ok(offsets)) => {
                    return offsets
                        .into_iter()
                        .map(|(tp, o)| (tp, o.unwrap_or(0)))
                        .collect();
                }
                Response::OffsetFetch(Err(e)) => self.conn.error(format!("offset fetch: {e:?}")),
                other => unreachable!("OffsetFetch answered by {other:?}"),
            }
            sleep(self.conn.retry_backoff).await;
        }
    }

    /// `Consumer::commit`: commit `offsets` with this member's generation. A stale
    /// generation is rejected (`ILLEGAL_GENERATION`) and the member rejoins.
    pub async fn commit(&self, offsets: &TopicPartitionList, _mode: CommitMode) -> KafkaResult<()> {
        let offsets = offsets.offsets()?;
        let Some(group) = self.group_metadata() else {
            return Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::State));
        };
        let group = GroupMetadata {
            group: group.group,
            member_id: group.member_id,
            generation: group.generation,
        };
        match self
            .conn
            .call(Request::OffsetCommit { group, offsets })
            .await
        {
            Response::OffsetCommit(Ok(())) => Ok(()),
            Response::OffsetCommit(Err(e)) => {
                self.conn.error(format!("commit: {e:?}"));
                lock(&self.state).rejoin = true;
                Err(KafkaError::ConsumerCommit(e.into()))
            }
            other => unreachable!("OffsetCommit answered by {other:?}"),
        }
    }

    /// `Consumer::commit_message`: commit the offset after `message`.
    pub async fn commit_message<M: Message>(
        &self,
        message: &M,
        mode: CommitMode,
    ) -> KafkaResult<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            message.topic(),
            message.partition(),
            super::Offset::Offset(message.offset() + 1),
        )?;
        self.commit(&tpl, mode).await
    }

    /// `Consumer::assign`: read these partitions without a group (a restore consumer),
    /// from each element's absolute offset, or the log start.
    pub fn assign(&self, assignment: &TopicPartitionList) -> KafkaResult<()> {
        let mut st = lock(&self.state);
        st.topics.clear();
        st.assignment.clear();
        st.positions.clear();
        st.buffer.clear();
        for e in assignment.elements() {
            let tp = TopicPartition::new(e.topic(), e.partition().max(0) as u32);
            let offset = match e.offset() {
                super::Offset::Offset(o) => o.max(0) as u64,
                _ => 0,
            };
            st.positions.insert(tp.clone(), offset);
            st.assignment.push(tp);
        }
        st.manual = true;
        Ok(())
    }

    /// `Consumer::fetch_watermarks`: (log start, end) of a partition, the end as this
    /// consumer's isolation level sees it (`ListOffsets` with `isolation_level`: the last
    /// stable offset under `read_committed`, else the high watermark).
    pub async fn fetch_watermarks(&self, topic: &str, partition: i32) -> KafkaResult<(i64, i64)> {
        let tp = TopicPartition::new(topic, partition.max(0) as u32);
        let request = Request::Fetch {
            tp,
            offset: 0,
            max_records: 0,
            isolation: self.settings.isolation,
        };
        match self.conn.call(request).await {
            Response::Fetch {
                result: Ok(data), ..
            } => {
                let end = match self.settings.isolation {
                    Isolation::ReadCommitted => data.last_stable_offset,
                    Isolation::ReadUncommitted => data.high_watermark,
                };
                Ok((0, end as i64))
            }
            Response::Fetch { result: Err(e), .. } => Err(KafkaError::MessageConsumption(e.into())),
            other => unreachable!("Fetch answered by {other:?}"),
        }
    }

    /// `Consumer::position`: per assigned partition, the offset of the next message
    /// `recv` returns (past skipped control records once nothing is buffered).
    pub fn position(&self) -> KafkaResult<TopicPartitionList> {
        let st = lock(&self.state);
        let mut tpl = TopicPartitionList::new();
        for tp in &st.assignment {
            let buffered = st
                .buffer
                .iter()
                .find(|m| m.topic == tp.topic && m.partition == tp.partition as i32);
            let at = buffered.map_or(*st.positions.get(tp).unwrap_or(&0) as i64, |m| m.offset);
            tpl.add_partition_offset(&tp.topic, tp.partition as i32, super::Offset::Offset(at))?;
        }
        Ok(tpl)
    }

    /// `Consumer::assignment`.
    pub fn assignment(&self) -> KafkaResult<TopicPartitionList> {
        Ok(TopicPartitionList::from_tps(&lock(&self.state).assignment))
    }

    /// `Consumer::group_metadata`: `None` until the member has joined.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let st = lock(&self.state);
        Some(ConsumerGroupMetadata {
            group: self.settings.group.clone(),
            member_id: st.member_id.clone()?,
            generation: st.generation?,
        })
    }

    /// `Consumer::context`.
    pub fn context(&self) -> &C {
        &self.context
    }
}

/// Dropping a consumer closes it, as rdkafka's `Drop` does (`rd_kafka_consumer_close`;
/// Java's `KafkaConsumer.close` → `ConsumerCoordinator.close` →
/// `AbstractCoordinator.maybeLeaveGroup`): its heartbeats stop and a member of a group
/// sends `LeaveGroup`, so the coordinator rebalances at once instead of after
/// `session.timeout.ms`. The request is sent by a task of the consumer's node, given
/// `request.timeout.ms`; on a killed node that task never runs (madsim drops a killed
/// node's futures and never polls a task spawned there), so a crashed member is expired
/// by its session timeout, as in Kafka.
impl<C: ConsumerContext> Drop for StreamConsumer<C> {
    fn drop(&mut self) {
        let member_id = {
            let mut st = lock(&self.state);
            st.generation = None;
            st.rejoin = true;
            if st.manual {
                None
            } else {
                st.member_id.take()
            }
        };
        let (Some(member_id), Ok(_)) = (member_id, madsim::runtime::Handle::try_current()) else {
            return;
        };
        let request = Request::LeaveGroup {
            group: self.settings.group.clone(),
            member_id,
        };
        let conn = self.conn.clone();
        madsim::task::spawn(async move {
            let wait = conn.request_timeout;
            if let Ok(Response::LeaveGroup(Err(e))) =
                madsim::time::timeout(wait, conn.call(request)).await
            {
                conn.error(format!("leave group: {e:?}"));
            }
        });
    }
}

/// The heartbeat task of one generation: it ends when the generation does, and asks for
/// a rejoin when the coordinator answers that a rebalance began or the member is gone.
async fn heartbeat(
    conn: Arc<Conn>,
    settings: Arc<Settings>,
    state: Arc<Mutex<State>>,
    generation: Generation,
) {
    loop {
        sleep(Duration::from_millis(settings.heartbeat_interval_ms.max(1))).await;
        let member_id = {
            let st = lock(&state);
            if st.generation != Some(generation) || st.rejoin {
                return;
            }
            st.member_id.clone().expect("a joined member has an id")
        };
        let request = Request::Heartbeat {
            group: settings.group.clone(),
            member_id,
            generation,
        };
        match conn.call(request).await {
            Response::Heartbeat(Ok(())) => {}
            Response::Heartbeat(Err(e)) => {
                conn.error(format!("heartbeat: {e:?}"));
                let mut st = lock(&state);
                if st.generation == Some(generation) {
                    st.rejoin = true;
                    if e == WireError::UnknownMemberId {
                        st.member_id = None;
                    }
                }
                return;
            }
            other => unreachable!("Heartbeat answered by {other:?}"),
        }
    }
}
