//! `rdkafka::consumer::StreamConsumer`: a consumer in a consumer group.
//!
//! The group protocol is Kafka's classic one with an eager assignor (`range`): on a
//! rebalance the member revokes every partition (`pre_rebalance(Revoke)`, then
//! `post_rebalance(Revoke)`), joins (`JoinGroup`, the coordinator assigns, as oversell's
//! broker does), reads the committed offsets (`OffsetFetch`, `require_stable` under
//! `read_committed`, KIP-447) and is given its partitions (`pre_rebalance(Assign)`, then
//! `post_rebalance(Assign)`) — `ConsumerCoordinator.onJoinPrepare` / `onJoinComplete`;
//! each callback pair around the change, as rdkafka's `ConsumerContext::rebalance` calls
//! them. A heartbeat task on the consumer's node (`AbstractCoordinator`'s
//! heartbeat thread) learns of a rebalance or of its expulsion; the next `recv` rejoins.

use super::{ConsumerContext, DefaultConsumerContext, Rebalance};
use crate::cluster::partitions;
use crate::rdkafka::client::Client;
use crate::rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use crate::rdkafka::conn::Conn;
use crate::rdkafka::error::{KafkaError, KafkaResult};
use crate::rdkafka::message::{BorrowedMessage, Message, OwnedMessage, Timestamp};
use crate::rdkafka::TopicPartitionList;
use madsim::time::{sleep, Duration};
use oversell_sim::protocol::{
    FetchData, Generation, Isolation, JoinOutcome, KafkaError as WireError, RebalanceProtocol,
    Request, Response,
};
use oversell_sim::{Event, TopicPartition};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

pub(super) struct Settings {
    pub(super) group: String,
    pub(super) isolation: Isolation,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    rebalance_timeout_ms: u64,
    fetch_wait_ms: u64,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) topics: Vec<String>,
    pub(super) member_id: Option<String>,
    /// The current generation, once joined.
    pub(super) generation: Option<Generation>,
    pub(super) assignment: Vec<TopicPartition>,
    pub(super) positions: BTreeMap<TopicPartition, u64>,
    pub(super) buffer: VecDeque<OwnedMessage>,
    pub(super) rejoin: bool,
    next: usize,
    /// Partitions given by `assign`, not by a group.
    pub(super) manual: bool,
    /// The coordinator expelled the member since it last joined (`assignment_lost`).
    pub(super) lost: bool,
}

/// A consumer in a group (`rdkafka::consumer::StreamConsumer`).
pub struct StreamConsumer<C: ConsumerContext = DefaultConsumerContext> {
    pub(super) conn: Arc<Conn>,
    pub(super) settings: Arc<Settings>,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) client: Client<C>,
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
    async fn from_config_and_context(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        config.only("consumer", KNOWN)?;
        // Needed for subscribe and commit only; a consumer that only `assign`s has none.
        let group = config.get("group.id").unwrap_or("").to_string();
        if config.flag("enable.auto.commit", true)? {
            return Err(KafkaError::ClientCreation(
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
            client: Client::new(context),
        })
    }
}

impl FromClientConfig for StreamConsumer<DefaultConsumerContext> {
    async fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
        Self::from_config_and_context(config, DefaultConsumerContext).await
    }
}

pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C: ConsumerContext> StreamConsumer<C> {
    /// `Consumer::subscribe`: the topics to consume; the group is joined at the first `recv`.
    pub(super) fn subscribe_topics(&self, topics: &[&str]) -> KafkaResult<()> {
        if self.settings.group.is_empty() {
            return Err(KafkaError::Subscription("subscribe needs group.id".into()));
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
    pub async fn recv(&self) -> Result<BorrowedMessage<'_>, KafkaError> {
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
                return Ok(BorrowedMessage::new(m));
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
                timestamp: Timestamp::CreateTime(r.record.timestamp as i64),
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
            let revoked = TopicPartitionList::from_tps(&revoked);
            let context = self.client.context();
            context.pre_rebalance(&Rebalance::Revoke(&revoked));
            context.post_rebalance(&Rebalance::Revoke(&revoked));
        }
        let (generation, assignment) = self.join().await;
        let positions = self.committed_positions(&assignment).await;
        let assigned = TopicPartitionList::from_tps(&assignment);
        self.client
            .context()
            .pre_rebalance(&Rebalance::Assign(&assigned));
        {
            let mut st = lock(&self.state);
            st.lost = false;
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
        self.client
            .context()
            .post_rebalance(&Rebalance::Assign(&assigned));
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
    async fn committed_positions(
        &self,
        assignment: &[TopicPartition],
    ) -> BTreeMap<TopicPartition, u64> {
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
        self.leave();
    }
}

impl<C: ConsumerContext> StreamConsumer<C> {
    /// Stop the heartbeats and, for a member of a group, send `LeaveGroup` from a task.
    pub(super) fn leave(&self) {
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

/// The heartbeat task of one generation: it ends when the generation does (the member
/// rejoins, leaves or is expelled), and asks for a rejoin when the coordinator answers
/// that a rebalance began or the member is gone. After `REBALANCE_IN_PROGRESS` it goes on
/// heartbeating until the member rejoins, as `AbstractCoordinator.HeartbeatThread` does
/// ("it is valid to continue heartbeating while the group is rebalancing ... If we stop
/// sending heartbeats, however, then the session timeout may expire before we can
/// rejoin"): a member busy between two polls (restoring its stores) stays in the group
/// for the rebalance timeout, not for one session.
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
            if st.generation != Some(generation) {
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
                if st.generation != Some(generation) {
                    return;
                }
                st.rejoin = true;
                if e == WireError::RebalanceInProgress {
                    continue;
                }
                st.lost = matches!(e, WireError::UnknownMemberId | WireError::IllegalGeneration);
                if e == WireError::UnknownMemberId {
                    st.member_id = None;
                }
                return;
            }
            other => unreachable!("Heartbeat answered by {other:?}"),
        }
    }
}
