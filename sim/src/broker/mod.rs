//! A simulated single Kafka broker: sans-IO, synchronous, deterministic.
//!
//! The broker is a plain state machine. [`Broker::handle`] applies one [`Request`]
//! atomically at a simulated time and returns its [`Response`]; [`Broker::tick`] does the
//! time-driven work (transaction timeouts, session and rebalance timeouts), and
//! [`Broker::next_deadline`] says when that work is next due. What happened is pushed to
//! an event vector as [`Event`]s. Nothing here reads a clock, draws randomness or iterates
//! a hash map: the same inputs give the same outputs and events, always.
//!
//! What it models, after Kafka (one durable broker, no replication, so the high watermark
//! is the log end offset):
//!
//! - **Logs**: topics of N partitions, dense offsets from 0; data records and
//!   transaction markers (control records) share the offset space.
//! - **Idempotent producers**: producer id and epoch, a sequence number per partition,
//!   the last [`PRODUCER_BATCH_CACHE`] batches remembered so a retried batch is
//!   acknowledged at its original offset without a second append; a sequence gap is
//!   `OutOfOrderSequenceNumber`. Without a producer identity every request appends.
//! - **Transactions** (KIP-98, KIP-447 `exactly_once_v2`, KIP-890 implicit partition
//!   adds): a `transactional.id` maps to a stable producer id; `InitProducerId` bumps the
//!   epoch, aborts the previous epoch's open transaction and fences it. Produce and
//!   `TxnOffsetCommit` begin a transaction implicitly; `EndTxn` writes a commit or abort
//!   marker into every partition the transaction touched, and on commit makes its pending
//!   group offsets committed. A transaction open longer than its timeout is aborted by
//!   [`Broker::tick`]'s periodic scan, which bumps the epoch so the old producer is fenced.
//! - **Markers** are written after the transaction's outcome is decided, one at a time,
//!   each when the driver chooses ([`Broker::pending_markers`],
//!   [`Broker::write_pending_marker`]); meanwhile the transactional id answers
//!   `CONCURRENT_TRANSACTIONS` (and a `Produce`, `NOT_ENOUGH_REPLICAS`).
//! - **Last stable offset**: the first offset of the earliest open transaction in a
//!   partition, else the high watermark. `read_committed` fetches stop there and skip
//!   aborted records; no fetch ever returns a control record.
//! - **Consumer groups** (classic eager protocol; the coordinator computes the assignment
//!   with Kafka's `RangeAssignor`): join, rejoin during a rebalance, heartbeat, leave,
//!   session timeout, rebalance timeout, generations; offset commits are fenced by member
//!   id and generation, transactional ones too (KIP-447).
//! - **Compaction** of compacted topics ([`Broker::compact`]), as the log cleaner does it.
//!
//! Deterministic orders: [`Broker::tick`] handles timed-out transactions by
//! transactional id, then groups by name; markers are written to partitions in
//! (topic, partition) order.

//!
//! Layout, after Kafka's own subsystems: [`log`] (partition logs, fetch, compaction),
//! `producer` (producer ids, idempotence, the duplicate cache, `Produce`), `txn` (the
//! transaction coordinator), [`group`] (the group coordinator), `invariants` (checked
//! after every request and tick in debug and test builds); this file dispatches
//! requests and drives time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::ClientId;
use crate::protocol::{KafkaError, Millis, ProducerId, Request, Response};
use crate::trace::Event;

pub mod assignor;
mod cluster;
mod controller;
mod coord_load;
mod coordinator;
mod delayed_fetch;
mod digest;
pub mod group;
mod invariants;
pub mod log;
mod markers;
mod netfault;
mod producer;
mod replication;
mod restore;
pub mod routing;
#[cfg(test)]
mod tests;
mod txn;

pub use cluster::{
    BrokerId, ClusterConfig, FollowerFetch, Handled, DEFAULT_COORDINATOR_PARTITIONS,
};
pub use coordinator::{
    coordinator_partition, java_hash_code, COORDINATOR_LOAD_MS, OFFSETS_TOPIC,
    TRANSACTION_STATE_TOPIC,
};

pub use group::{range_assignment, GroupState};
pub use log::TopicConfig;
pub use markers::{MarkerTarget, PendingMarker};
pub use producer::PRODUCER_BATCH_CACHE;

use cluster::Cluster;
use coordinator::Coordinator;
use group::Group;
use log::Topic;
use producer::ProducerEntry;
use txn::{TxnIdState, TxnOutcome};

/// The transaction protocol the coordinator speaks (Kafka's `transaction.version` feature,
/// `TransactionVersion` in `server-common`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum TransactionVersion {
    /// Before KIP-890 part 2: the epoch stays the same across transactions, so a late
    /// `EndTxn` of transaction N completes transaction N+1.
    V1,
    /// KIP-890 part 2, the default of Kafka 4.x: the coordinator bumps the producer epoch
    /// at every commit or abort and returns it in the `EndTxn` response; a retry is
    /// recognised by its epoch − 1, any other request with an old epoch is fenced.
    #[default]
    V2,
}

impl TransactionVersion {
    /// The feature level: 1 or 2.
    pub fn level(self) -> u8 {
        match self {
            TransactionVersion::V1 => 1,
            TransactionVersion::V2 => 2,
        }
    }

    fn bumps_epoch_at_every_end(self) -> bool {
        self == TransactionVersion::V2
    }
}

impl TryFrom<u8> for TransactionVersion {
    type Error = String;

    fn try_from(level: u8) -> Result<Self, String> {
        match level {
            1 => Ok(TransactionVersion::V1),
            2 => Ok(TransactionVersion::V2),
            other => Err(format!("transaction version {other}: expected 1 or 2")),
        }
    }
}

impl From<TransactionVersion> for u8 {
    fn from(v: TransactionVersion) -> u8 {
        v.level()
    }
}

impl std::str::FromStr for TransactionVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let level: u8 = s
            .trim()
            .parse()
            .map_err(|_| format!("transaction version {s:?}: expected 1 or 2"))?;
        TransactionVersion::try_from(level)
    }
}

impl std::fmt::Display for TransactionVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.level())
    }
}

/// Settings of the broker (defaults: Kafka 4.x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerConfig {
    /// `transaction.version`: 1 or 2 (default 2).
    #[serde(default)]
    pub transaction_version: TransactionVersion,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often the
    /// coordinator scans for timed-out transactions. Default 1 000: Kafka's 10 s scaled as
    /// the kernel scales the transaction timeout (Kafka Streams' 10 s under exactly-once,
    /// `transaction.timeout.ms` 1 000 here).
    #[serde(default = "default_abort_scan_interval_ms")]
    pub abort_scan_interval_ms: Millis,
}

/// The default of [`BrokerConfig::abort_scan_interval_ms`].
pub const DEFAULT_ABORT_SCAN_INTERVAL_MS: Millis = 1_000;

fn default_abort_scan_interval_ms() -> Millis {
    DEFAULT_ABORT_SCAN_INTERVAL_MS
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            transaction_version: TransactionVersion::default(),
            abort_scan_interval_ms: DEFAULT_ABORT_SCAN_INTERVAL_MS,
        }
    }
}

/// Deliberate defects of the coordinators, each one check left out as a careless change
/// would leave it out. Never on in a real run: the harness switches them on through its
/// `Mutation`s to show that the checker sees what they break. Default: none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defects {
    /// The group coordinator accepts a plain `OffsetCommit` of a member at a stale
    /// generation (the check of Kafka's `ClassicGroup.validateOffsetCommit` left out).
    pub stale_generation_accepted: bool,
    /// The transaction coordinator and the partition leader accept an older epoch of the
    /// current producer id (the fencing of `TransactionMetadata` / `checkProducerEpoch`
    /// left out): an epoch bumped by `InitProducerId` does not fence the old one.
    pub stale_epoch_accepted: bool,
}

/// Record a rejected request as an event; returns its error.
fn reject(events: &mut Vec<Event>, request: &str, error: KafkaError, detail: String) -> KafkaError {
    events.push(Event::Rejected {
        request: request.to_string(),
        error,
        detail,
    });
    error
}

/// A simulated single Kafka broker. See the module documentation.
#[derive(Clone, Debug)]
pub struct Broker {
    config: BrokerConfig,
    topics: BTreeMap<String, Topic>,
    producers: BTreeMap<ProducerId, ProducerEntry>,
    next_producer_id: ProducerId,
    txn_ids: BTreeMap<String, TxnIdState>,
    txn_outcomes: Vec<TxnOutcome>,
    groups: BTreeMap<String, Group>,
    members_created: u64,
    /// MUTATION HOOK: deliberate defects, none by default ([`Defects`]).
    defects: Defects,
    /// Replication over several brokers (`cluster.rs`); `None` for a single broker.
    cluster: Option<Cluster>,
    /// Fetches held until they have something to answer or `fetch.max.wait.ms` runs out
    /// (`delayed_fetch.rs`).
    delayed_fetches: delayed_fetch::DelayedFetches,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// A broker with the default settings (transaction protocol v2).
    pub fn new() -> Self {
        Self::with_config(BrokerConfig::default())
    }

    pub fn with_config(config: BrokerConfig) -> Self {
        assert!(
            config.abort_scan_interval_ms >= 1,
            "the abort scan interval is at least 1 ms"
        );
        Broker {
            config,
            topics: BTreeMap::new(),
            producers: BTreeMap::new(),
            next_producer_id: 1,
            txn_ids: BTreeMap::new(),
            txn_outcomes: Vec::new(),
            groups: BTreeMap::new(),
            members_created: 0,
            defects: Defects::default(),
            cluster: None,
            delayed_fetches: delayed_fetch::DelayedFetches::default(),
        }
    }

    pub fn config(&self) -> BrokerConfig {
        self.config
    }

    /// The transaction protocol in use.
    pub fn transaction_version(&self) -> TransactionVersion {
        self.config.transaction_version
    }

    /// Change the transaction protocol (before the first request; a builder-style setter
    /// for the worlds the designs build with [`Broker::new`]).
    /// MUTATION HOOK: switch deliberate defects on ([`Defects`]); before any request.
    pub fn set_defects(&mut self, defects: Defects) {
        assert!(
            self.txn_ids.is_empty() && self.groups.is_empty(),
            "defects are set before any producer or group exists"
        );
        self.defects = defects;
    }

    pub fn set_transaction_version(&mut self, version: TransactionVersion) {
        assert!(
            self.txn_ids.is_empty(),
            "the transaction version is set before any producer exists"
        );
        self.config.transaction_version = version;
    }

    /// Change the interval of the timeout scan (before the first request, like
    /// [`Broker::set_transaction_version`]).
    pub fn set_abort_scan_interval(&mut self, interval_ms: Millis) {
        assert!(
            self.txn_ids.is_empty() && interval_ms >= 1,
            "the abort scan interval (at least 1 ms) is set before any producer exists"
        );
        self.config.abort_scan_interval_ms = interval_ms;
    }

    /// Handle one request from `client` (a stable client name, used for member ids)
    /// atomically at simulated time `now`; events describing what happened are pushed to
    /// `events`. Bad requests are answered with errors (and a `Rejected` event), never a
    /// panic. In debug and test builds every invariant is checked afterwards.
    pub fn handle(
        &mut self,
        now: Millis,
        client: &ClientId,
        req: Request,
        events: &mut Vec<Event>,
    ) -> Response {
        match self.handle_request(now, client, req, events) {
            Handled::Now(response) => response,
            other => panic!("handle: the answer is {other:?}; use handle_request"),
        }
    }

    /// [`Broker::handle`] for a driver that can wait: a `Produce` with `acks=all` on a
    /// replicated partition is answered later ([`Broker::take_completed_produces`]), one
    /// with `acks=0` never; a `FetchMany` with nothing to return is held up to its
    /// `max_wait_ms` ([`Broker::take_completed_fetches`]).
    pub fn handle_request(
        &mut self,
        now: Millis,
        client: &ClientId,
        req: Request,
        events: &mut Vec<Event>,
    ) -> Handled {
        let handled = match req {
            Request::Produce {
                producer,
                batches,
                acks,
            } => {
                let counts = batches
                    .iter()
                    .map(|b| (b.tp.clone(), b.records.len() as u64))
                    .collect();
                let results = self.produce(now, producer, batches, acks, events);
                self.persist_coordinators(now);
                self.forget_written();
                self.answer_produce(results, &counts, acks)
            }
            Request::FetchMany {
                partitions,
                max_records,
                isolation,
                max_wait_ms,
            } => self.fetch_many(
                now,
                client,
                partitions,
                max_records,
                isolation,
                max_wait_ms,
                events,
            ),
            req => {
                let response = self.dispatch(now, client, req, events);
                self.persist_coordinators(now);
                self.answer_coordinator(response)
            }
        };
        self.debug_check();
        handled
    }

    fn dispatch(
        &mut self,
        now: Millis,
        client: &ClientId,
        req: Request,
        events: &mut Vec<Event>,
    ) -> Response {
        match req {
            Request::InitProducerId {
                transactional_id,
                transaction_timeout_ms,
            } => Response::InitProducerId(
                self.txn_coordinator("InitProducerId", transactional_id.as_deref(), events)
                    .and_then(|()| {
                        self.init_producer_id(transactional_id, transaction_timeout_ms, events)
                    }),
            ),
            Request::TxnOffsetCommit {
                producer,
                group,
                offsets,
            } => Response::TxnOffsetCommit(
                self.txn_coordinator(
                    "TxnOffsetCommit",
                    producer.transactional_id.as_deref(),
                    events,
                )
                .and_then(|()| {
                    let g = Coordinator::Group;
                    self.check_coordinator(g, &group.group, "TxnOffsetCommit", events)
                })
                .and_then(|()| self.txn_offset_commit(now, &producer, group, offsets, events)),
            ),
            Request::EndTxn { producer, commit } => Response::EndTxn(
                self.txn_coordinator("EndTxn", producer.transactional_id.as_deref(), events)
                    .and_then(|()| self.end_txn_request(&producer, commit, events)),
            ),
            Request::Fetch {
                tp,
                offset,
                max_records,
                isolation,
            } => {
                let result = self.fetch(client, &tp, offset, max_records, isolation, events);
                Response::Fetch { tp, result }
            }
            req => self.dispatch_group(now, client, req, events),
        }
    }

    /// `NOT_COORDINATOR` / `COORDINATOR_LOAD_IN_PROGRESS` from the transaction coordinator
    /// of `tid`, if the request has one.
    fn txn_coordinator(
        &self,
        request: &str,
        tid: Option<&str>,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        match tid {
            Some(tid) => self.check_coordinator(Coordinator::Transaction, tid, request, events),
            None => Ok(()),
        }
    }

    /// The group coordinator's requests.
    fn dispatch_group(
        &mut self,
        now: Millis,
        client: &ClientId,
        req: Request,
        events: &mut Vec<Event>,
    ) -> Response {
        if let Some(error) = self.group_coordinator_error(&req, events) {
            return error;
        }
        match req {
            Request::JoinGroup {
                group,
                member_id,
                topics,
                session_timeout_ms,
                rebalance_timeout_ms,
                protocol,
                owned,
            } => {
                let sub = group::Subscription {
                    topics,
                    session_timeout_ms,
                    rebalance_timeout_ms,
                    protocol,
                    owned,
                };
                Response::JoinGroup(self.join_group(now, client, &group, member_id, sub, events))
            }
            Request::Heartbeat {
                group,
                member_id,
                generation,
            } => Response::Heartbeat(self.heartbeat(now, &group, &member_id, generation, events)),
            Request::LeaveGroup { group, member_id } => {
                Response::LeaveGroup(self.leave_group(now, &group, &member_id, events))
            }
            Request::OffsetCommit { group, offsets } => {
                Response::OffsetCommit(self.offset_commit(now, group, offsets, events))
            }
            Request::OffsetFetch {
                group,
                partitions,
                require_stable,
            } => {
                Response::OffsetFetch(self.offset_fetch(&group, partitions, require_stable, events))
            }
            other => unreachable!("not a group coordinator request: {other:?}"),
        }
    }

    /// Time-driven work at `now`: the timeout scan (abort and fence transactions whose
    /// timeout had passed at a scan due now), expire group members whose session timed out, complete
    /// rebalances whose rebalance timeout passed. A deadline `d` is due when `now >= d`.
    /// In debug and test builds every invariant is checked afterwards.
    pub fn tick(&mut self, now: Millis, events: &mut Vec<Event>) {
        self.tick_cluster(now, events);
        self.finish_loads(now, events);
        self.expire_fetches(now);
        self.abort_timed_out_transactions(now, events);
        self.expire_group_members(now, events);
        self.persist_coordinators(now);
        self.forget_written();
        // An append above (a marker, a coordinator record) can put a follower that has
        // stopped fetching (slow, partitioned) past its lag time at once.
        self.shrink_isrs(now, events);
        assert!(
            self.next_deadline().is_none_or(|d| d > now),
            "broker bug: a deadline at or before {now} survived its tick (cluster {:?}, \
             loads {:?})",
            self.cluster_deadline(),
            self.load_deadline()
        );
        self.debug_check();
    }

    /// Earliest simulated time at which [`Broker::tick`] would do something, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        let txns = self
            .txn_ids
            .iter()
            .filter(|(tid, _)| self.coordinator_ready(Coordinator::Transaction, tid))
            .filter_map(|(_, st)| st.deadline())
            .map(|d| self.scan_after(d));
        let groups = self
            .groups
            .iter()
            .filter(|(g, _)| self.coordinator_ready(Coordinator::Group, g))
            .filter_map(|(_, g)| g.deadline());
        let cluster = self.cluster_deadline();
        let loads = self.load_deadline();
        let fetches = self.fetch_deadline();
        txns.chain(groups)
            .chain(cluster)
            .chain(loads)
            .chain(fetches)
            .min()
    }
}
