//! Replication: a partition's replicas on N brokers, its leader, leader epoch, in-sync
//! replicas (ISR) and high watermark; followers that replicate by fetching, one fetch per
//! scheduler step; `acks` and `min.insync.replicas` on `Produce`.
//!
//! After Kafka's `core/src/main/scala/kafka/cluster/Partition.scala` and
//! `core/src/main/scala/kafka/server/ReplicaManager.scala`:
//!
//! - the leader's log is the partition's [`PartitionLog`]; every follower keeps a log of
//!   its own ([`Follower`]) and copies the leader's entries when the scheduler lets it
//!   fetch ([`Broker::follower_fetches`], [`Broker::follower_fetch`]);
//! - the high watermark is the smallest log end among the leader and the ISR, and does
//!   not move while the ISR is smaller than `min.insync.replicas` (KIP-966,
//!   `Partition.maybeIncrementLeaderHW`, `Partition.isUnderMinIsr`); consumers read up to
//!   it, and to the LSO under `read_committed`;
//! - `acks=all` is answered once the high watermark passes the batch, or
//!   `NOT_ENOUGH_REPLICAS` when the ISR is smaller than `min.insync.replicas`
//!   (`Partition.appendRecordsToLeader`, `Partition.checkEnoughReplicasReachOffset`,
//!   `core/src/main/scala/kafka/server/DelayedProduce.scala`); `acks=1` at the leader's
//!   append;
//! - a follower that has not caught up for `replica.lag.time.max.ms` leaves the ISR
//!   (`Partition.maybeShrinkIsr`), one that reaches the high watermark rejoins it
//!   (`Partition.maybeExpandIsr`);
//! - before its first fetch from a new leader epoch a follower truncates its log to the
//!   leader's end offset for its last epoch (KIP-101 / KIP-279,
//!   `core/src/main/scala/kafka/server/AbstractFetcherThread.scala`,
//!   `truncateToEpochEndOffsets`).
//!
//! The controller's part (broker liveness, elections) is `controller.rs`. With one broker
//! (the default) none of this exists: `Broker::cluster` is `None`, the high watermark is
//! the log end, and every request is answered at once, exactly as before replication.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::coordinator::Coordinators;
use super::log::PartitionLog;
use super::{reject, Broker};
use crate::protocol::{
    Acks, KafkaError, Millis, Offset, PartitionProduceResult, Response, TopicPartition,
};
use crate::trace::Event;

/// A broker's id: 0..brokers.
pub type BrokerId = u32;

/// The cluster's settings (`[cluster]`). Time settings are Kafka's defaults scaled as the
/// clients' are (Kafka's 45 s `session.timeout.ms` is 300 ms here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Number of brokers. Default 1 (a single broker, no replication).
    pub brokers: u32,
    /// `default.replication.factor` of every topic. Default: 1 (at most `brokers`).
    pub replication_factor: u32,
    /// `min.insync.replicas`: an `acks=all` write needs this many in-sync replicas.
    /// Default 1.
    pub min_insync_replicas: u32,
    /// `unclean.leader.election.enable`: elect a replica outside the ISR when no in-sync
    /// replica is alive. Default false.
    pub unclean_leader_election: bool,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    /// Default 200 (Kafka's 30 s, scaled).
    pub replica_lag_time_max_ms: Millis,
    /// `broker.session.timeout.ms`: the controller fences a broker it has not heard from
    /// for this long. Default 60 (Kafka's 9 s, scaled).
    pub broker_session_timeout_ms: Millis,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`, whose
    /// leaders are the transaction coordinators. Default 2 (Kafka's 50, scaled down).
    #[serde(default = "default_coordinator_partitions")]
    pub transaction_state_partitions: u32,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`, whose leaders
    /// are the group coordinators. Default 2 (Kafka's 50, scaled down).
    #[serde(default = "default_coordinator_partitions")]
    pub offsets_partitions: u32,
}

/// The default of [`ClusterConfig::transaction_state_partitions`] and
/// [`ClusterConfig::offsets_partitions`].
pub const DEFAULT_COORDINATOR_PARTITIONS: u32 = 2;

fn default_coordinator_partitions() -> u32 {
    DEFAULT_COORDINATOR_PARTITIONS
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            brokers: 1,
            replication_factor: 1,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            replica_lag_time_max_ms: 200,
            broker_session_timeout_ms: 60,
            transaction_state_partitions: DEFAULT_COORDINATOR_PARTITIONS,
            offsets_partitions: DEFAULT_COORDINATOR_PARTITIONS,
        }
    }
}

impl ClusterConfig {
    /// Whether this is more than one broker (replication is modelled).
    pub fn replicated(&self) -> bool {
        self.brokers > 1
    }

    /// What is wrong with these settings, if anything (Kafka refuses the same at topic
    /// creation: `InvalidReplicationFactorException`, `InvalidConfigurationException`).
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers == 0 || self.brokers > 9 {
            return Err(format!("brokers = {}: expected 1 to 9", self.brokers));
        }
        if self.replication_factor == 0 || self.replication_factor > self.brokers {
            return Err(format!(
                "replication_factor = {}: expected 1 to brokers ({})",
                self.replication_factor, self.brokers
            ));
        }
        if self.min_insync_replicas == 0 || self.min_insync_replicas > self.replication_factor {
            return Err(format!(
                "min_insync_replicas = {}: expected 1 to replication_factor ({})",
                self.min_insync_replicas, self.replication_factor
            ));
        }
        for (name, n) in [
            (
                "transaction_state_partitions",
                self.transaction_state_partitions,
            ),
            ("offsets_partitions", self.offsets_partitions),
        ] {
            if n == 0 || n > 50 {
                return Err(format!("{name} = {n}: expected 1 to 50"));
            }
        }
        if self.replica_lag_time_max_ms == 0 || self.broker_session_timeout_ms == 0 {
            return Err(
                "replica_lag_time_max_ms and broker_session_timeout_ms are at least 1".into(),
            );
        }
        Ok(())
    }
}

/// A follower replica: its own log and what the leader knows of it.
#[derive(Clone, Debug)]
pub(super) struct Follower {
    pub(super) log: PartitionLog,
    /// The last time its log end was the leader's (`ReplicaState.lastCaughtUpTimeMs`,
    /// `core/src/main/scala/kafka/cluster/Replica.scala`).
    pub(super) last_caught_up: Millis,
    /// Its log end as the leader last learnt it, at its last fetch
    /// (`ReplicaState.logEndOffset`): what the high watermark and the ISR are computed from. A
    /// follower that lost a suffix in a crash still counts with it until it is fenced.
    pub(super) fetched_end: Offset,
    /// The leader epoch it last reconciled its log with (KIP-279): before its first fetch
    /// in a newer epoch it truncates to the leader's epoch end offset.
    pub(super) epoch_checked: u32,
}

/// The replication state of one partition (Kafka's `PartitionRegistration`,
/// `metadata/src/main/java/org/apache/kafka/metadata/PartitionRegistration.java`, and the
/// leader's `Partition`).
#[derive(Clone, Debug)]
pub(super) struct Replication {
    /// The assigned replicas, in preference order.
    pub(super) replicas: Vec<BrokerId>,
    /// The leader, `None` while the partition is offline.
    pub(super) leader: Option<BrokerId>,
    /// Whose log the partition's main log is: the leader's, or the last leader's while
    /// the partition is offline.
    pub(super) log_owner: BrokerId,
    /// Bumped at every leader change.
    pub(super) leader_epoch: u32,
    pub(super) isr: BTreeSet<BrokerId>,
    /// Every replica but the leader, with its own log (a replica that lost its
    /// leadership keeps its log here, also while its broker is down).
    pub(super) followers: BTreeMap<BrokerId, Follower>,
    /// What the main log keeps of what its owner had when it crashed losing its unflushed
    /// data: applied at the next election, when the log is read again (until then the
    /// coordinators' view of the partition stays the one the log had).
    pub(super) lost_on_crash: Option<Offset>,
}

/// A broker's liveness, as the controller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Liveness {
    Up,
    /// The process is down; the controller fences it at `fence_at` unless it already did.
    Down {
        fence_at: Millis,
        fenced: bool,
    },
    /// The process is up but a network partition cuts it off from the other brokers and
    /// the controller: it serves the clients that reach it, its heartbeats do not reach
    /// the controller, which fences it at `fence_at` unless it already did.
    Isolated {
        fence_at: Millis,
        fenced: bool,
    },
}

impl Liveness {
    /// Whether the process is up, reachable by the brokers or not.
    pub(super) fn serving(self) -> bool {
        matches!(self, Liveness::Up | Liveness::Isolated { .. })
    }

    /// When the controller fences this broker, if it is due to.
    pub(super) fn fence_due(self) -> Option<Millis> {
        match self {
            Liveness::Down {
                fence_at,
                fenced: false,
            }
            | Liveness::Isolated {
                fence_at,
                fenced: false,
            } => Some(fence_at),
            _ => None,
        }
    }
}

/// A produce with `acks=all` waiting for its batches to be below the high watermark
/// (Kafka's `DelayedProduce` in the produce purgatory).
#[derive(Clone, Debug)]
pub(super) struct DelayedProduce {
    /// Every partition's result so far; a pending one waits for `waiting[tp]`.
    pub(super) results: Vec<(TopicPartition, PartitionProduceResult)>,
    /// Partition → (offset the high watermark must reach, leader epoch of the append).
    pub(super) waiting: BTreeMap<TopicPartition, (Offset, u32)>,
}

/// The cluster: brokers, per-partition replication, the produce purgatory.
#[derive(Clone, Debug)]
pub(super) struct Cluster {
    pub(super) config: ClusterConfig,
    pub(super) brokers: Vec<Liveness>,
    pub(super) partitions: BTreeMap<TopicPartition, Replication>,
    pub(super) delayed: BTreeMap<u64, DelayedProduce>,
    pub(super) next_delayed: u64,
    /// Brokers a network partition cuts off from the clients.
    pub(super) cut_from_clients: BTreeSet<BrokerId>,
    /// Brokers whose follower fetches are stalled (a slow follower).
    pub(super) slow: BTreeSet<BrokerId>,
    /// The transaction and group coordinators' records, loads and held answers.
    pub(super) coordinators: Coordinators,
}

impl Cluster {
    /// Whether broker `b` is up and reachable by the other brokers and the controller.
    pub(super) fn up(&self, b: BrokerId) -> bool {
        self.brokers[b as usize] == Liveness::Up
    }

    /// Whether broker `b`'s followers fetch: up, reachable, not stalled.
    pub(super) fn fetching(&self, b: BrokerId) -> bool {
        self.up(b) && !self.slow.contains(&b)
    }
}

/// How the broker answers a request: now, later (a delayed produce, by id), or never
/// (`acks=0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    Now(Response),
    Delayed(u64),
    Never,
}

/// One follower fetch the scheduler may choose.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FollowerFetch {
    pub tp: TopicPartition,
    pub broker: BrokerId,
}

impl Broker {
    /// Replicate every topic over a cluster (before any request; topics created later are
    /// replicated too). With one broker this changes nothing.
    pub fn set_cluster(&mut self, config: ClusterConfig) -> Result<(), String> {
        config.validate()?;
        assert!(
            self.txn_ids.is_empty() && self.groups.is_empty(),
            "the cluster is set before any request"
        );
        if !config.replicated() {
            self.cluster = None;
            return Ok(());
        }
        self.cluster = Some(Cluster {
            config,
            brokers: vec![Liveness::Up; config.brokers as usize],
            partitions: BTreeMap::new(),
            delayed: BTreeMap::new(),
            next_delayed: 0,
            cut_from_clients: BTreeSet::new(),
            slow: BTreeSet::new(),
            coordinators: Coordinators::default(),
        });
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            self.replicate_topic(&name);
        }
        self.create_coordinator_topics();
        Ok(())
    }

    /// The cluster's settings, if replicated.
    pub fn cluster_config(&self) -> Option<ClusterConfig> {
        self.cluster.as_ref().map(|c| c.config)
    }

    /// Assign replicas to every partition of `topic` (round robin, as Kafka's
    /// `StripedReplicaPlacer.place`,
    /// `metadata/src/main/java/org/apache/kafka/metadata/placement/StripedReplicaPlacer.java`, does without racks, from a start broker Kafka draws at
    /// random and this model derives from the topic's name, so that a topic's leaders are
    /// the same whatever other topics a design creates); the first replica leads at
    /// epoch 0 with every replica in the ISR.
    pub(super) fn replicate_topic(&mut self, name: &str) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let topic = self.topics.get_mut(name).expect("the topic exists");
        let (n, rf) = (cluster.config.brokers, cluster.config.replication_factor);
        let start = placement_start(name, n);
        for (p, log) in topic.partitions.iter_mut().enumerate() {
            assert_eq!(log.log_end, 0, "broker bug: replicating a written log");
            log.replicated = true;
            log.note_epoch(0, 0);
            let replicas: Vec<BrokerId> = (0..rf).map(|i| (start + p as u32 + i) % n).collect();
            let followers = replicas[1..]
                .iter()
                .map(|b| {
                    let follower = Follower {
                        log: (**log).clone(),
                        last_caught_up: 0,
                        fetched_end: 0,
                        epoch_checked: 0,
                    };
                    (*b, follower)
                })
                .collect();
            let tp = TopicPartition::new(name, p as u32);
            let replication = Replication {
                leader: Some(replicas[0]),
                log_owner: replicas[0],
                leader_epoch: 0,
                isr: replicas.iter().copied().collect(),
                replicas,
                followers,
                lost_on_crash: None,
            };
            cluster.partitions.insert(tp, replication);
        }
    }

    /// Whether `tp` has a leader whose process is up (always on a single broker); with
    /// `clients`, one the clients can reach; with `brokers`, one the other brokers and
    /// the transaction coordinator can reach.
    pub(super) fn leader_reachable(
        &self,
        tp: &TopicPartition,
        clients: bool,
        brokers: bool,
    ) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        let Some(l) = cluster.partitions.get(tp).and_then(|r| r.leader) else {
            return false;
        };
        cluster.brokers[l as usize].serving()
            && !(clients && cluster.cut_from_clients.contains(&l))
            && (!brokers || cluster.up(l))
    }

    /// Whether the clients can reach a leader of `tp` (always on a single broker).
    pub(super) fn leader_available(&self, tp: &TopicPartition) -> bool {
        self.leader_reachable(tp, true, false)
    }

    /// `NOT_LEADER_OR_FOLLOWER` when the client can reach no leader of `tp`: its
    /// connection fails or, behind a network partition, its request times out
    /// (`request.timeout.ms`, answered at once here); it refreshes its metadata and
    /// retries (`Sender.completeBatch`, `Sender.canRetry`,
    /// `clients/src/main/java/org/apache/kafka/clients/producer/internals/Sender.java`).
    pub(super) fn check_leader(
        &self,
        tp: &TopicPartition,
        request: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        if self.leader_available(tp) || !self.has_partition(tp) {
            return Ok(());
        }
        let detail = format!("{tp} has no live leader");
        Err(reject(
            events,
            request,
            KafkaError::NotLeaderOrFollower,
            detail,
        ))
    }

    /// `Partition.appendRecordsToLeader`: an `acks=all` write is refused, and not
    /// appended, while the ISR is smaller than `min.insync.replicas`.
    pub(super) fn check_min_isr(
        &self,
        tp: &TopicPartition,
        acks: Acks,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let Some(r) = cluster.partitions.get(tp) else {
            return Ok(());
        };
        let min = cluster.config.min_insync_replicas as usize;
        if acks != Acks::All || r.isr.len() >= min {
            return Ok(());
        }
        let detail = format!(
            "{tp}: ISR {:?} is smaller than min.insync.replicas {min}",
            r.isr
        );
        Err(reject(
            events,
            "Produce",
            KafkaError::NotEnoughReplicas,
            detail,
        ))
    }

    /// The answer to a `Produce` under `acks=all`: now if every appended batch is below
    /// the high watermark (or there is no replication), else parked in the purgatory
    /// (`ReplicaManager.appendRecords`, `delayedProduceRequestRequired`).
    pub(super) fn answer_produce(
        &mut self,
        results: Vec<(TopicPartition, PartitionProduceResult)>,
        counts: &BTreeMap<TopicPartition, u64>,
        acks: Acks,
    ) -> Handled {
        if acks == Acks::Zero {
            return Handled::Never;
        }
        let Some(cluster) = &self.cluster else {
            return Handled::Now(Response::Produce(results));
        };
        let mut waiting = BTreeMap::new();
        for (tp, result) in &results {
            if let (Acks::All, PartitionProduceResult::Appended { base_offset, .. }) =
                (acks, result)
            {
                let required = base_offset + counts.get(tp).copied().unwrap_or(0);
                let epoch = cluster.partitions[tp].leader_epoch;
                waiting.insert(tp.clone(), (required, epoch));
            }
        }
        let mut delayed = DelayedProduce { results, waiting };
        if self.try_complete(&mut delayed) {
            return Handled::Now(Response::Produce(delayed.results));
        }
        let cluster = self.cluster.as_mut().expect("replicated");
        let id = cluster.next_delayed;
        cluster.next_delayed += 1;
        cluster.delayed.insert(id, delayed);
        Handled::Delayed(id)
    }

    /// Settle what can be settled of a delayed produce; true when nothing waits any more
    /// (`Partition.checkEnoughReplicasReachOffset`: below the HW with an ISR of at least
    /// `min.insync.replicas` is success, with a smaller one `NOT_ENOUGH_REPLICAS`
    /// (`..._AFTER_APPEND`); a leader change fails it with `NOT_LEADER_OR_FOLLOWER`).
    fn try_complete(&self, delayed: &mut DelayedProduce) -> bool {
        let cluster = self.cluster.as_ref().expect("replicated");
        let min = cluster.config.min_insync_replicas as usize;
        let mut settled = Vec::new();
        for (tp, (required, epoch)) in &delayed.waiting {
            let r = &cluster.partitions[tp];
            let serving = self.leader_reachable(tp, false, false);
            let outcome = if r.leader_epoch != *epoch || !serving {
                Some(PartitionProduceResult::Error(
                    KafkaError::NotLeaderOrFollower,
                ))
            } else if self.partition(tp).expect("replicated partition").hw >= *required {
                (r.isr.len() < min)
                    .then_some(PartitionProduceResult::Error(KafkaError::NotEnoughReplicas))
            } else {
                continue;
            };
            settled.push((tp.clone(), outcome));
        }
        for (tp, outcome) in settled {
            delayed.waiting.remove(&tp);
            if let Some(error) = outcome {
                let slot = delayed.results.iter_mut().find(|(t, _)| *t == tp);
                slot.expect("a result per partition").1 = error;
            }
        }
        delayed.waiting.is_empty()
    }

    /// The delayed answers that can be given now, by id, removed from the purgatory:
    /// produces and coordinator answers waiting for replication.
    pub fn take_completed_produces(&mut self) -> Vec<(u64, Response)> {
        let mut out = self.take_completed_answers();
        out.extend(self.take_completed_data_produces());
        out.sort_by_key(|(id, _)| *id);
        out
    }

    fn take_completed_data_produces(&mut self) -> Vec<(u64, Response)> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        if cluster.delayed.is_empty() {
            return Vec::new();
        }
        let mut delayed = std::mem::take(&mut self.cluster.as_mut().expect("replicated").delayed);
        let mut done = Vec::new();
        for (id, d) in delayed.iter_mut() {
            if self.try_complete(d) {
                done.push(*id);
            }
        }
        let out = done
            .into_iter()
            .map(|id| {
                let d = delayed.remove(&id).expect("completed");
                (id, Response::Produce(d.results))
            })
            .collect();
        self.cluster.as_mut().expect("replicated").delayed = delayed;
        out
    }

    /// After the leader appended up to `old_end`..: followers that were caught up until
    /// now stay caught up as of now (Kafka refreshes `lastCaughtUpTimeMs` at every fetch
    /// that reaches the leader's log end; a caught-up follower fetches continuously).
    pub(super) fn note_leader_append(&mut self, tp: &TopicPartition, old_end: Offset, now: Millis) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let fetching: Vec<bool> = (0..cluster.config.brokers)
            .map(|b| cluster.fetching(b))
            .collect();
        let Some(r) = cluster.partitions.get_mut(tp) else {
            return;
        };
        for (b, f) in r.followers.iter_mut() {
            let up = fetching[*b as usize];
            if up && f.epoch_checked == r.leader_epoch && f.fetched_end >= old_end {
                f.last_caught_up = now;
            }
        }
    }
}

/// The broker a topic's first partition starts on: FNV-1a of its name, modulo `brokers`.
pub fn placement_start(topic: &str, brokers: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in topic.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % brokers
}
