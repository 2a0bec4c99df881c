//! Network faults of a replicated cluster: a broker partitioned from the other brokers
//! and the controller, from the clients, or both, until the partition heals; and a slow
//! follower, whose fetches stall for a while.
//!
//! After Kafka's KRaft controller (`metadata/src/main/java/org/apache/kafka/controller/`)
//! and `core/src/main/scala/kafka/server/ReplicaManager.scala`:
//!
//! - a broker cut off from the controller stops heartbeating; the controller fences it
//!   after `broker.session.timeout.ms` (`BrokerHeartbeatManager.findOneStaleBroker`,
//!   `ReplicationControlManager.maybeFenceOneStaleBroker`), which takes it out of every ISR
//!   and moves the leadership of what it led (`ReplicationControlManager.handleBrokerFenced`);
//! - until then it still leads: clients that reach it write to it, `acks=1` writes are
//!   answered at its append, and `acks=all` writes wait, since its followers cannot fetch
//!   and it cannot shrink its ISR without the controller (`Partition.maybeShrinkIsr`,
//!   `core/src/main/scala/kafka/server/AlterPartitionManager.scala`); once the partition heals it learns the new leader epoch
//!   and truncates what the new leader does not have
//!   (`AbstractFetcherThread.truncateToEpochEndOffsets`), losing those `acks=1` writes;
//! - a follower cut off from its leader, or whose fetches stall, stops catching up and
//!   leaves the ISR after `replica.lag.time.max.ms` (`Partition.maybeShrinkIsr`,
//!   `ReplicaState.lastCaughtUpTimeMs`); it rejoins once caught up
//!   (`Partition.maybeExpandIsr`);
//! - a leader cut off from the clients is still the leader: their requests time out
//!   (`request.timeout.ms`, answered here at once with `NOT_LEADER_OR_FOLLOWER`), and
//!   they retry after refreshing their metadata (`Sender.completeBatch`,
//!   `clients/src/main/java/org/apache/kafka/clients/producer/internals/Sender.java`).
//!
//! Limits: a fenced leader stops taking writes at once, where a real one behind a
//! partition keeps taking them until it hears of the new epoch or its clients refresh
//! their metadata (so this model loses fewer `acks=1` writes than Kafka can); answers
//! already on their way to a client when it is cut off still arrive.

use super::cluster::{BrokerId, Liveness};
use super::Broker;
use crate::protocol::{Millis, Offset, TopicPartition};
use crate::trace::Event;

impl Broker {
    /// Whether broker `b` is up, reachable by everyone, and fetching at its pace: a
    /// broker fault may strike it.
    pub fn broker_intact(&self, b: BrokerId) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            (b as usize) < c.brokers.len() && c.fetching(b) && !c.cut_from_clients.contains(&b)
        })
    }

    /// Partition broker `b` at `now` from the other brokers and the controller
    /// (`from_brokers`), from the clients (`from_clients`), or both.
    pub fn partition_broker(
        &mut self,
        now: Millis,
        b: BrokerId,
        from_brokers: bool,
        from_clients: bool,
        events: &mut Vec<Event>,
    ) {
        assert!(from_brokers || from_clients, "a partition from someone");
        assert!(
            self.broker_intact(b),
            "partitioning broker {b}, which is not intact"
        );
        if from_brokers {
            self.caught_up_until_now(b, now);
        }
        let cluster = self.cluster.as_mut().expect("a cluster");
        if from_brokers {
            let fence_at = now + cluster.config.broker_session_timeout_ms;
            cluster.brokers[b as usize] = Liveness::Isolated {
                fence_at,
                fenced: false,
            };
        }
        if from_clients {
            cluster.cut_from_clients.insert(b);
        }
        events.push(Event::BrokerPartitioned {
            broker: b,
            from_brokers,
            from_clients,
        });
        self.debug_check();
    }

    /// Heal broker `b`'s partition at `now`. A broker the controller fenced meanwhile
    /// heartbeats again and is unfenced (`ReplicationControlManager.processBrokerHeartbeat`,
    /// `BrokerHeartbeatManager.touch`, `ReplicationControlManager.handleBrokerUnfenced`); like a restarted
    /// broker, its followers count as caught up from now and reconcile with the leader
    /// epoch at their next fetch, and partitions without a leader elect one.
    pub fn heal_broker(&mut self, now: Millis, b: BrokerId, events: &mut Vec<Event>) {
        let cluster = self.cluster.as_mut().expect("a cluster");
        let liveness = cluster.brokers[b as usize];
        assert!(liveness.serving(), "healing broker {b}, which is down");
        let was_cut = cluster.cut_from_clients.remove(&b);
        assert!(
            was_cut || liveness != Liveness::Up,
            "healing broker {b}, which is not partitioned"
        );
        cluster.brokers[b as usize] = Liveness::Up;
        if matches!(liveness, Liveness::Isolated { fenced: true, .. }) {
            self.mark_caught_up(b, now);
        }
        events.push(Event::PartitionHealed { broker: b });
        self.elect_offline(now, events);
        self.debug_check();
    }

    /// Stall (`slow`) or resume broker `b`'s follower fetches at `now`.
    pub fn set_slow_follower(
        &mut self,
        now: Millis,
        b: BrokerId,
        slow: bool,
        events: &mut Vec<Event>,
    ) {
        if slow {
            self.caught_up_until_now(b, now);
        }
        let cluster = self.cluster.as_mut().expect("a cluster");
        let changed = if slow {
            cluster.slow.insert(b)
        } else {
            cluster.slow.remove(&b)
        };
        assert!(
            changed,
            "broker {b} is already {}",
            if slow { "slow" } else { "fetching" }
        );
        events.push(Event::SlowFollower { broker: b, slow });
        self.debug_check();
    }

    /// Broker `b`'s followers that are caught up were so until `now`, when their fetches
    /// stop: a caught-up follower fetches continuously, so its `lastCaughtUpTimeMs` is
    /// its last fetch (`Replica.updateFetchStateOrThrow`,
    /// `core/src/main/scala/kafka/cluster/Replica.scala`), which the model otherwise
    /// refreshes at the leader's appends only.
    fn caught_up_until_now(&mut self, b: BrokerId, now: Millis) {
        let ends: Vec<(TopicPartition, Offset)> = self
            .cluster
            .as_ref()
            .expect("a cluster")
            .partitions
            .keys()
            .map(|tp| (tp.clone(), self.topic_log(tp).log_end))
            .collect();
        let cluster = self.cluster.as_mut().expect("a cluster");
        for (tp, end) in ends {
            let r = cluster.partitions.get_mut(&tp).expect("listed");
            let epoch = r.leader_epoch;
            if let Some(f) = r.followers.get_mut(&b) {
                if f.epoch_checked == epoch && f.fetched_end >= end {
                    f.last_caught_up = now;
                }
            }
        }
    }
}
