//! The controller (KRaft's `QuorumController` / `ReplicationControlManager`, as a state
//! machine of its own inside the cluster): broker liveness, fencing after
//! `broker.session.timeout.ms`, leader election from the ISR, unclean election from any
//! live replica when allowed, leader epochs; and what a broker crash does to its logs.
//!
//! The coordinators (transactions, groups) are the leaders of the partitions of
//! `__transaction_state` and `__consumer_offsets`: a leader change there moves them, and
//! the new leader loads their state from its log (`coordinator.rs`, `coord_load.rs`).

use crate::state_hash::Cached;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::cluster::{BrokerId, Follower, Liveness};
use super::producer::ProducerState;
use super::txn::TxnSerial;
use super::Broker;
use crate::protocol::{Millis, Offset, TopicPartition};
use crate::trace::Event;

impl Broker {
    /// The brokers of the cluster (1 without replication).
    pub fn broker_count(&self) -> u32 {
        self.cluster.as_ref().map_or(1, |c| c.config.brokers)
    }

    /// Whether every broker is up.
    pub fn brokers_all_up(&self) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|c| c.brokers.iter().all(|l| *l == Liveness::Up))
    }

    /// Every broker up and every partition led with its full replica set in sync: the
    /// state a one-fault-at-a-time schedule waits for before it strikes again.
    pub fn cluster_healthy(&self) -> bool {
        let Some(c) = &self.cluster else {
            return true;
        };
        self.brokers_all_up()
            && c.cut_from_clients.is_empty()
            && c.slow.is_empty()
            && c.partitions
                .values()
                .all(|r| r.leader.is_some() && r.isr.len() == r.replicas.len())
    }

    /// Every replica log on broker `b`, with its log end: (partition, log end).
    pub fn replica_log_ends(&self, b: BrokerId) -> Vec<(TopicPartition, Offset)> {
        let Some(c) = &self.cluster else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (tp, r) in &c.partitions {
            if !r.replicas.contains(&b) {
                continue;
            }
            let end = match r.followers.get(&b) {
                Some(f) => f.log.log_end,
                None => self.topic_log(tp).log_end,
            };
            out.push((tp.clone(), end));
        }
        out
    }

    /// Crash broker `b` at `now`. With `keep`, the broker loses what it had not flushed:
    /// each of its replica logs (in [`Broker::replica_log_ends`] order) keeps only that
    /// many first offsets (Kafka does not fsync per write, `log.flush.interval.messages`
    /// is unbounded by default: a machine that loses power loses its page cache).
    pub fn crash_broker(
        &mut self,
        now: Millis,
        b: BrokerId,
        keep: Option<&[Offset]>,
        events: &mut Vec<Event>,
    ) {
        let cluster = self
            .cluster
            .as_mut()
            .expect("a cluster to crash a broker of");
        assert_eq!(
            cluster.brokers[b as usize],
            Liveness::Up,
            "crashing a broker that is down"
        );
        let fence_at = now + cluster.config.broker_session_timeout_ms;
        cluster.brokers[b as usize] = Liveness::Down {
            fence_at,
            fenced: false,
        };
        let mut lost = 0;
        if let Some(keep) = keep {
            let ends = self.replica_log_ends(b);
            assert_eq!(ends.len(), keep.len(), "one length per replica log");
            for ((tp, end), k) in ends.into_iter().zip(keep) {
                assert!(*k <= end, "keeping more than the log has");
                lost += self.truncate_replica(&tp, b, *k, events);
            }
        }
        events.push(Event::BrokerCrashed { broker: b, lost });
        self.debug_check();
    }

    /// Truncate the replica of `tp` on `b` to `to` (a crashed broker's lost suffix).
    fn truncate_replica(
        &mut self,
        tp: &TopicPartition,
        b: BrokerId,
        to: Offset,
        events: &mut Vec<Event>,
    ) -> usize {
        let cluster = self.cluster.as_mut().expect("replicated");
        let r = cluster
            .partitions
            .get_mut(tp)
            .expect("replicated partition");
        let removed = match r.followers.get_mut(&b) {
            Some(f) => f.log.truncate_to(to),
            // The leader's log: the broker is down, nobody reads it until an election,
            // which applies the loss (`Replication::lost_on_crash`).
            None => {
                r.lost_on_crash = Some(to);
                let log = &self.topics[&tp.topic].partitions[tp.partition as usize];
                log.entries.len() - log.index_from(to)
            }
        };
        if removed > 0 {
            events.push(Event::Truncated {
                tp: tp.clone(),
                broker: b,
                to,
                removed,
            });
        }
        removed
    }

    /// Restart broker `b` at `now`: it registers again, so the controller fences its old
    /// incarnation first if its session had not expired yet (a new incarnation id,
    /// KIP-966's unclean shutdown detection: `ClusterControlManager.registerBroker` calls
    /// `ReplicationControlManager.handleBrokerUncleanShutdown`,
    /// `metadata/src/main/java/org/apache/kafka/controller/`), then unfences it; partitions without a
    /// leader get one if it is eligible. Its followers reconcile at their next fetch.
    pub fn restart_broker(&mut self, now: Millis, b: BrokerId, events: &mut Vec<Event>) {
        let cluster = self.cluster.as_ref().expect("a cluster");
        let Liveness::Down { fenced, .. } = cluster.brokers[b as usize] else {
            panic!("restarting broker {b}, which is up")
        };
        if !fenced {
            self.fence(b, now, events);
        }
        self.cluster.as_mut().expect("a cluster").brokers[b as usize] = Liveness::Up;
        self.mark_caught_up(b, now);
        events.push(Event::BrokerRestarted { broker: b });
        self.elect_offline(now, events);
        self.debug_check();
    }

    /// Broker `b`'s followers count as caught up from `now` (a broker back in the
    /// cluster): they reconcile with the leader epoch at their next fetch.
    pub(super) fn mark_caught_up(&mut self, b: BrokerId, now: Millis) {
        let cluster = self.cluster.as_mut().expect("a cluster");
        for f in cluster
            .partitions
            .values_mut()
            .filter_map(|r| r.followers.get_mut(&b))
        {
            f.last_caught_up = now;
        }
    }

    /// Elect a leader for every partition that has none (the newly eligible broker may
    /// be one of its replicas).
    pub(super) fn elect_offline(&mut self, now: Millis, events: &mut Vec<Event>) {
        let cluster = self.cluster.as_ref().expect("a cluster");
        let offline: Vec<TopicPartition> = cluster
            .partitions
            .iter()
            .filter(|(_, r)| r.leader.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in offline {
            self.elect(&tp, now, events);
        }
    }

    /// The controller's timed work at `now`: fence brokers whose session expired, and the
    /// leaders' ISR shrink.
    pub(super) fn tick_cluster(&mut self, now: Millis, events: &mut Vec<Event>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let due: Vec<BrokerId> = (0..cluster.config.brokers)
            .filter(|b| {
                cluster.brokers[*b as usize]
                    .fence_due()
                    .is_some_and(|at| at <= now)
            })
            .collect();
        for b in due {
            self.fence(b, now, events);
        }
        self.shrink_isrs(now, events);
    }

    /// The next time the controller or a leader has timed work.
    pub(super) fn cluster_deadline(&self) -> Option<Millis> {
        let cluster = self.cluster.as_ref()?;
        let fence = cluster.brokers.iter().filter_map(|l| l.fence_due()).min();
        [fence, self.next_isr_shrink()].into_iter().flatten().min()
    }

    /// `ReplicationControlManager.handleBrokerFenced`
    /// (`metadata/src/main/java/org/apache/kafka/controller/ReplicationControlManager.java`):
    /// broker `b` leaves every ISR (the
    /// last member stays: an ISR is never empty), and every partition it led elects. A
    /// broker cut off from the controller is fenced the same way
    /// (`BrokerHeartbeatManager.findOneStaleBroker`, then
    /// `ReplicationControlManager.maybeFenceOneStaleBroker`: its heartbeats stopped
    /// arriving).
    pub(super) fn fence(&mut self, b: BrokerId, now: Millis, events: &mut Vec<Event>) {
        let cluster = self.cluster.as_mut().expect("a cluster");
        match cluster.brokers[b as usize] {
            Liveness::Down { fence_at, .. } => {
                cluster.brokers[b as usize] = Liveness::Down {
                    fence_at,
                    fenced: true,
                };
            }
            Liveness::Isolated { fence_at, .. } => {
                cluster.brokers[b as usize] = Liveness::Isolated {
                    fence_at,
                    fenced: true,
                };
            }
            Liveness::Up => {}
        }
        events.push(Event::BrokerFenced { broker: b });
        let mut led = Vec::new();
        let mut shrunk = Vec::new();
        for (tp, r) in cluster.partitions.iter_mut() {
            if r.isr.len() > 1 && r.isr.remove(&b) {
                let isr = r.isr.iter().copied().collect();
                events.push(Event::IsrChanged {
                    tp: tp.clone(),
                    isr,
                });
                shrunk.push(tp.clone());
            }
            if r.leader == Some(b) {
                led.push(tp.clone());
            }
        }
        for tp in led {
            self.elect(&tp, now, events);
        }
        for tp in shrunk {
            self.maybe_increment_hw(&tp);
        }
    }

    /// `PartitionLeaderElectionAlgorithms`: the first replica in assignment order that is
    /// up and in the ISR; else, when the topic allows unclean election, the first replica
    /// up, which becomes the whole ISR; else no leader (offline).
    pub(super) fn elect(&mut self, tp: &TopicPartition, now: Millis, events: &mut Vec<Event>) {
        let cluster = self.cluster.as_ref().expect("a cluster");
        let r = &cluster.partitions[tp];
        let up = |b: &BrokerId| cluster.brokers[*b as usize] == Liveness::Up;
        let clean = r
            .replicas
            .iter()
            .copied()
            .find(|b| up(b) && r.isr.contains(b));
        let unclean = cluster.config.unclean_leader_election;
        let (leader, was_unclean) = match clean {
            Some(l) => (Some(l), false),
            None if unclean => (r.replicas.iter().copied().find(up), true),
            None => (None, false),
        };
        if leader.is_none() && r.leader.is_none() {
            return; // still offline: nothing changes
        }
        self.set_leader(tp, leader, was_unclean && leader.is_some(), now, events);
    }

    /// Move the leadership of `tp` to `leader` (or none) in a new leader epoch.
    fn set_leader(
        &mut self,
        tp: &TopicPartition,
        leader: Option<BrokerId>,
        unclean: bool,
        now: Millis,
        events: &mut Vec<Event>,
    ) {
        let cluster = self.cluster.as_mut().expect("a cluster");
        let r = cluster
            .partitions
            .get_mut(tp)
            .expect("replicated partition");
        let old = r.leader;
        let epoch = r.leader_epoch + 1;
        assert!(epoch > r.leader_epoch, "leader epochs only increase");
        r.leader_epoch = epoch;
        r.leader = leader;
        if unclean {
            r.isr = BTreeSet::from([leader.expect("an unclean leader")]);
        }
        let isr: Vec<BrokerId> = r.isr.iter().copied().collect();
        let owner = old.unwrap_or(r.log_owner);
        let lost = if leader.is_some() {
            r.lost_on_crash.take()
        } else {
            None
        };
        if let Some(to) = lost {
            self.partition_mut(tp).0.truncate_to(to);
        }
        if let Some(new) = leader.filter(|n| *n != owner) {
            self.swap_leader_log(tp, owner, new, epoch);
        }
        // A new leader knows nothing of its followers' logs until they fetch
        // (`Partition.makeLeader`, `core/src/main/scala/kafka/cluster/Partition.scala`,
        // resets every remote replica's state).
        let cluster = self.cluster.as_mut().expect("a cluster");
        let r = cluster
            .partitions
            .get_mut(tp)
            .expect("replicated partition");
        for f in r.followers.values_mut() {
            f.fetched_end = 0;
        }
        events.push(Event::LeaderElected {
            tp: tp.clone(),
            leader,
            epoch,
            isr,
            unclean,
        });
        if leader.is_some() {
            let (log, _) = self.partition_mut(tp);
            let end = log.log_end;
            log.note_epoch(epoch, end);
            self.rebuild_leader_state(tp, events);
            self.maybe_increment_hw(tp);
        }
        self.coordinator_leader_changed(tp, now);
    }

    /// The partition's leader log becomes `new`'s (a follower until now), and the old
    /// owner's log a follower's, known to have reached epoch `epoch - 1`.
    fn swap_leader_log(&mut self, tp: &TopicPartition, owner: BrokerId, new: BrokerId, epoch: u32) {
        let cluster = self.cluster.as_mut().expect("a cluster");
        let r = cluster
            .partitions
            .get_mut(tp)
            .expect("replicated partition");
        let incoming = r
            .followers
            .remove(&new)
            .expect("the new leader was a follower");
        r.log_owner = new;
        let topic = self.topics.get_mut(&tp.topic).expect("a known topic");
        let main = &mut topic.partitions[tp.partition as usize];
        let outgoing = std::mem::replace(main, Cached::new(incoming.log)).into_inner();
        let cluster = self.cluster.as_mut().expect("a cluster");
        let r = cluster
            .partitions
            .get_mut(tp)
            .expect("replicated partition");
        r.followers.insert(
            owner,
            Follower {
                fetched_end: outgoing.log_end,
                log: outgoing,
                last_caught_up: 0,
                epoch_checked: epoch - 1,
            },
        );
    }

    /// A new leader's state from its log, as Kafka's `ProducerStateManager` holds it
    /// (`storage/src/main/java/org/apache/kafka/storage/internals/log/ProducerStateManager.java`:
    /// a follower's is updated by every `UnifiedLog.appendAsFollower` and rebuilt by
    /// `UnifiedLog.rebuildProducerState` after a truncation or a restart, so it is its
    /// log's):
    /// idempotent producers' last batches, open transactions; and the transaction
    /// coordinator's view of this partition made to agree with the log.
    fn rebuild_leader_state(&mut self, tp: &TopicPartition, events: &mut Vec<Event>) {
        let (log, _) = self.partition_mut(tp);
        log.producers = BTreeMap::new();
        let mut firsts: BTreeMap<TxnSerial, Offset> = BTreeMap::new();
        let mut markers: BTreeMap<TxnSerial, Offset> = BTreeMap::new();
        for (i, e) in log.entries.iter().enumerate() {
            if let (Some((pid, epoch)), Some((base, count))) = (e.producer, log.meta[i].batch) {
                let state = log.producers.entry(pid).or_insert(ProducerState {
                    epoch,
                    last_sequence: -1,
                    batches: VecDeque::new(),
                });
                state.record(epoch, base, count, e.offset);
            }
            if let Some(s) = log.txn[i] {
                firsts.entry(s).or_insert(e.offset);
            }
            if let Some(s) = log.meta[i].marker_of {
                markers.insert(s, e.offset);
            }
        }
        log.ongoing.clear();
        log.unreplicated.clear();
        log.hanging.clear();
        let serials: BTreeSet<TxnSerial> = firsts.keys().chain(markers.keys()).copied().collect();
        for s in serials {
            self.reconcile_txn(
                tp,
                s,
                firsts.get(&s).copied(),
                markers.get(&s).copied(),
                events,
            );
        }
        self.forget_missing_txns(tp, &firsts);
    }

    /// One transaction's state in a new leader's log of `tp`: its first record here
    /// (`first`) and its marker (`marker`), against what the coordinator knows.
    fn reconcile_txn(
        &mut self,
        tp: &TopicPartition,
        s: TxnSerial,
        first: Option<Offset>,
        marker: Option<Offset>,
        events: &mut Vec<Event>,
    ) {
        let tid = self.txn_id_of(s);
        let hw = self.topic_log(tp).hw;
        let (log, _) = self.partition_mut(tp);
        match (first, marker) {
            (_, Some(m)) if m < hw => {}
            (first, Some(m)) => {
                // The marker is here but not yet replicated: it holds the LSO until it is.
                log.unreplicated.insert(s, m);
                if let Some(f) = first {
                    log.ongoing.insert(s, f);
                }
                if let Some(tid) = &tid {
                    let st = self.txn_ids.get_mut(tid).expect("known");
                    if let Some(e) = st.ending.as_mut().filter(|e| e.serial == s) {
                        e.partitions.remove(tp);
                        e.awaiting.insert(tp.clone(), m);
                    }
                }
            }
            (Some(f), None) => {
                log.ongoing.insert(s, f);
                self.reopen_marker(tp, s, f, tid.as_deref(), events);
            }
            (None, None) => unreachable!("a transaction with nothing here"),
        }
    }

    /// A transaction with records in `tp` but no marker there: still open, its marker to
    /// be written (again, if it was lost with the old leader's suffix), or, when the
    /// coordinator has completed it, hanging.
    fn reopen_marker(
        &mut self,
        tp: &TopicPartition,
        s: TxnSerial,
        first: Offset,
        tid: Option<&str>,
        events: &mut Vec<Event>,
    ) {
        let Some(tid) = tid else {
            // Completed, or (a coordinator that lost its record of it after a failover)
            // known to no coordinator: either way no marker will come.
            self.partition_mut(tp).0.hanging.insert(s);
            events.push(Event::HangingTransaction {
                tp: tp.clone(),
                first,
            });
            return;
        };
        let st = self.txn_ids.get_mut(tid).expect("known");
        if let Some(open) = st.open.as_mut().filter(|o| o.serial == s) {
            open.partitions.insert(tp.clone(), first);
        } else if let Some(e) = st.ending.as_mut().filter(|e| e.serial == s) {
            e.awaiting.remove(tp);
            e.partitions.insert(tp.clone());
        }
    }

    /// Transactions the coordinator believes have records in `tp` that the new leader's
    /// log does not have: they no longer do (their records were lost with a suffix; a
    /// marker there would mark nothing).
    fn forget_missing_txns(&mut self, tp: &TopicPartition, firsts: &BTreeMap<TxnSerial, Offset>) {
        let markers_here = self.topic_log(tp).unreplicated.clone();
        let mut touched = Vec::new();
        for (tid, st) in self.txn_ids.iter_mut() {
            if let Some(open) = st.open.as_mut() {
                if !firsts.contains_key(&open.serial) {
                    open.partitions.remove(tp);
                }
            }
            if let Some(e) = st.ending.as_mut() {
                if !firsts.contains_key(&e.serial) && !markers_here.contains_key(&e.serial) {
                    e.partitions.remove(tp);
                    e.awaiting.remove(tp);
                    touched.push(tid.clone());
                } else if e.awaiting.contains_key(tp) && !markers_here.contains_key(&e.serial) {
                    // Its marker is below the new high watermark: done.
                    e.awaiting.remove(tp);
                    touched.push(tid.clone());
                }
            }
        }
        for tid in touched {
            self.complete_if_written(&tid);
        }
    }

    /// The transactional id whose open or ending transaction is `s`, if any.
    fn txn_id_of(&self, s: TxnSerial) -> Option<String> {
        self.txn_ids
            .iter()
            .find(|(_, st)| {
                st.open.as_ref().is_some_and(|o| o.serial == s)
                    || st.ending.as_ref().is_some_and(|e| e.serial == s)
            })
            .map(|(tid, _)| tid.clone())
    }
}
