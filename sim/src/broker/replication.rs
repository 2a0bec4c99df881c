//! Followers fetching from their leader, one fetch per scheduler step: truncation to the
//! leader's epoch end offset (KIP-101 / KIP-279), copying, ISR expansion, the high
//! watermark, and the leader's ISR shrink after `replica.lag.time.max.ms`.

use super::cluster::{BrokerId, FollowerFetch, Liveness, Replication};
use super::log::PartitionLog;
use super::txn::TxnSerial;
use super::Broker;
use crate::protocol::{Millis, Offset, TopicPartition};
use crate::trace::Event;

impl PartitionLog {
    /// The leader epoch in which the entry at `offset` was written.
    pub(super) fn epoch_at(&self, offset: Offset) -> u32 {
        let i = self.epochs.partition_point(|(_, start)| *start <= offset);
        i.checked_sub(1).map_or(0, |i| self.epochs[i].0)
    }

    /// Drop every entry at or past `offset` (`UnifiedLog.truncateTo`,
    /// `storage/src/main/java/org/apache/kafka/storage/internals/log/UnifiedLog.java`);
    /// returns how many.
    /// The leader state (producers, transactions) is rebuilt by the caller if it leads.
    pub(super) fn truncate_to(&mut self, offset: Offset) -> usize {
        if offset >= self.log_end {
            return 0;
        }
        let i = self.index_from(offset);
        let removed = self.entries.len() - i;
        self.entries.truncate(i);
        self.txn.truncate(i);
        self.meta.truncate(i);
        self.log_end = offset;
        self.hw = self.hw.min(offset);
        self.epochs.retain(|(_, start)| *start < offset);
        self.unreplicated.retain(|_, m| *m < offset);
        self.ongoing.retain(|_, first| *first < offset);
        removed
    }

    /// KIP-279: where a follower with this log truncates before fetching from `leader`:
    /// the leader's end offset for the follower's last epoch, or, when the leader knows
    /// only an older epoch, the smaller of both end offsets for that epoch
    /// (`AbstractFetcherThread.truncateToEpochEndOffsets`,
    /// `core/src/main/scala/kafka/server/AbstractFetcherThread.scala`; the leader answers
    /// with `LeaderEpochFileCache.endOffsetFor`). When every epoch the leader knows is
    /// newer (its older ones lost with a log suffix), `endOffsetFor` answers the start of
    /// its first epoch: the follower truncates there. Its high watermark when the leader
    /// knows no epoch at all.
    pub(super) fn divergence_with(&self, leader: &PartitionLog) -> Offset {
        let Some(&(last, _)) = self.epochs.last() else {
            return 0;
        };
        let point = match leader.end_offset_for(last) {
            None => leader.epochs.first().map_or(self.hw, |(_, start)| *start),
            Some((epoch, end)) if epoch == last => end,
            Some((epoch, end)) => self.end_offset_for(epoch).map_or(0, |(_, e)| e).min(end),
        };
        point.min(self.log_end)
    }

    /// Copy the leader's entries from this log's end (`UnifiedLog.appendAsFollower`).
    pub(super) fn copy_from(&mut self, leader: &PartitionLog) -> usize {
        let from = leader.index_from(self.log_end);
        for i in from..leader.entries.len() {
            let entry = leader.entries[i].clone();
            self.note_epoch(leader.epoch_at(entry.offset), entry.offset);
            self.log_end = entry.offset + 1;
            self.entries.push(entry);
            self.txn.push(leader.txn[i]);
            self.meta.push(leader.meta[i].clone());
        }
        self.log_end = self.log_end.max(leader.log_end);
        self.hw = leader.hw.min(self.log_end);
        leader.entries.len() - from
    }
}

impl Replication {
    /// Whether follower `b` has anything to do at a fetch now.
    fn fetch_useful(&self, b: BrokerId, leader_end: Offset) -> bool {
        let f = &self.followers[&b];
        f.epoch_checked != self.leader_epoch
            || f.log.log_end != leader_end
            || !self.isr.contains(&b)
    }
}

impl Broker {
    /// Every follower fetch that would do something now, sorted: followers up, of a
    /// leader up, behind it, not yet reconciled with its epoch, or outside the ISR.
    pub fn follower_fetches(&self) -> Vec<FollowerFetch> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        // A leader or follower behind a partition from the other brokers does not
        // replicate; a slow follower's fetches are stalled.
        let mut out = Vec::new();
        for (tp, r) in &cluster.partitions {
            let Some(leader) = r.leader.filter(|l| cluster.up(*l)) else {
                continue;
            };
            debug_assert!(r.replicas.contains(&leader));
            let end = self.partition(tp).expect("replicated partition").log_end;
            for b in r.followers.keys().copied() {
                if cluster.fetching(b) && r.fetch_useful(b, end) {
                    out.push(FollowerFetch {
                        tp: tp.clone(),
                        broker: b,
                    });
                }
            }
        }
        out
    }

    /// One fetch of follower `fetch.broker` from the leader of `fetch.tp` at `now`:
    /// truncate if its leader epoch is new to it, copy what the leader has, join the ISR
    /// when caught up to the high watermark, and let the leader move its high watermark.
    pub fn follower_fetch(&mut self, now: Millis, fetch: &FollowerFetch, events: &mut Vec<Event>) {
        let tp = &fetch.tp;
        let b = fetch.broker;
        // Disjoint fields: the leader's log is read while the follower's is written.
        let topic = self.topics.get(&tp.topic).expect("a known topic");
        let leader_log = &topic.partitions[tp.partition as usize];
        let cluster = self.cluster.as_mut().expect("replicated");
        let r = cluster
            .partitions
            .get_mut(tp)
            .expect("replicated partition");
        assert!(
            r.leader.is_some_and(|l| l != b),
            "broker bug: fetch from no leader"
        );
        let epoch = r.leader_epoch;
        let f = r.followers.get_mut(&b).expect("a follower");
        if f.epoch_checked != epoch {
            let to = f.log.divergence_with(leader_log);
            let removed = f.log.truncate_to(to);
            f.epoch_checked = epoch;
            if removed > 0 {
                events.push(Event::Truncated {
                    tp: tp.clone(),
                    broker: b,
                    to,
                    removed,
                });
            }
        }
        let from = f.log.log_end;
        let copied = f.log.copy_from(leader_log);
        f.fetched_end = f.log.log_end;
        if f.log.log_end == leader_log.log_end {
            f.last_caught_up = now;
        }
        let end = f.log.log_end;
        if copied > 0 {
            events.push(Event::Replicated {
                tp: tp.clone(),
                broker: b,
                from,
                to: end,
            });
        }
        // `Partition.maybeExpandIsr` / `Partition.isFollowerInSync`: caught up to the high
        // watermark, and to the start of the leader's epoch.
        let epoch_start = leader_log.epochs.last().map_or(0, |(_, s)| *s);
        if !r.isr.contains(&b) && end >= leader_log.hw && end >= epoch_start {
            r.isr.insert(b);
            let isr = r.isr.iter().copied().collect();
            events.push(Event::IsrChanged {
                tp: tp.clone(),
                isr,
            });
        }
        self.maybe_increment_hw(tp);
        self.persist_coordinators(now);
        self.forget_written();
        self.debug_check();
    }

    /// The leader's log of a partition (validated).
    pub(super) fn topic_log(&self, tp: &TopicPartition) -> &PartitionLog {
        self.partition(tp).expect("a known partition")
    }

    /// `Partition.maybeIncrementLeaderHW`: the high watermark is the smallest log end
    /// among the leader and its ISR, and it does not move while the ISR is smaller than
    /// `min.insync.replicas` (capped by the replication factor: `Partition.isUnderMinIsr`,
    /// `effectiveMinIsr`, KIP-966), whatever `acks` the writes had; a marker now below it
    /// completes its transaction's part here.
    pub(super) fn maybe_increment_hw(&mut self, tp: &TopicPartition) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let r = &cluster.partitions[tp];
        let min_isr = (cluster.config.min_insync_replicas as usize).min(r.replicas.len());
        if r.leader.is_none() || r.isr.len() < min_isr {
            return;
        }
        let log = self.topic_log(tp);
        let hw = r
            .isr
            .iter()
            .filter(|b| Some(**b) != r.leader)
            .map(|b| r.followers[b].fetched_end)
            .fold(log.log_end, Offset::min);
        if hw <= log.hw {
            return;
        }
        let (log, _) = self.partition_mut(tp);
        let released = log.advance_hw(hw);
        self.markers_replicated(tp, &released);
    }

    /// Transactions whose marker in `tp` reached the high watermark: that marker is done.
    pub(super) fn markers_replicated(&mut self, tp: &TopicPartition, released: &[TxnSerial]) {
        if released.is_empty() {
            return;
        }
        let tids: Vec<String> = self
            .txn_ids
            .iter()
            .filter(|(_, st)| {
                st.ending
                    .as_ref()
                    .is_some_and(|e| released.contains(&e.serial) && e.awaiting.contains_key(tp))
            })
            .map(|(tid, _)| tid.clone())
            .collect();
        for tid in tids {
            let st = self.txn_ids.get_mut(&tid).expect("listed");
            st.ending.as_mut().expect("ending").awaiting.remove(tp);
            self.complete_if_written(&tid);
        }
    }

    /// Whether the marker of `serial` in `tp` waits for the high watermark.
    pub(super) fn awaits_replication(&self, tp: &TopicPartition, serial: TxnSerial) -> bool {
        self.topic_log(tp).unreplicated.contains_key(&serial)
    }

    /// `Partition.maybeShrinkIsr` (`Partition.getOutOfSyncReplicas`,
    /// `ReplicaState.isCaughtUp`): at `now`, remove from the ISR every follower that has
    /// not caught up for more than `replica.lag.time.max.ms` (the leader asks the
    /// controller, which agrees at once here). A leader cut off from the controller
    /// cannot shrink its ISR: its `AlterPartition` request does not arrive
    /// (`Partition.prepareIsrShrink`, `AlterPartitionManager`), so its high watermark
    /// stays where its unreachable followers are.
    pub(super) fn shrink_isrs(&mut self, now: Millis, events: &mut Vec<Event>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let lag = cluster.config.replica_lag_time_max_ms;
        let mut changed = Vec::new();
        for (tp, r) in &cluster.partitions {
            let Some(leader) = r.leader else { continue };
            if cluster.brokers[leader as usize] != Liveness::Up {
                continue;
            }
            let end = self.topic_log(tp).log_end;
            let out: Vec<BrokerId> = r
                .isr
                .iter()
                .copied()
                .filter(|b| *b != leader)
                .filter(|b| {
                    let f = &r.followers[b];
                    f.fetched_end < end && now > f.last_caught_up + lag
                })
                .collect();
            if !out.is_empty() {
                changed.push((tp.clone(), out));
            }
        }
        for (tp, out) in changed {
            let cluster = self.cluster.as_mut().expect("replicated");
            let r = cluster.partitions.get_mut(&tp).expect("listed");
            for b in out {
                r.isr.remove(&b);
            }
            let isr = r.isr.iter().copied().collect();
            events.push(Event::IsrChanged {
                tp: tp.clone(),
                isr,
            });
            self.maybe_increment_hw(&tp);
        }
    }

    /// When the next ISR shrink is due, if any.
    pub(super) fn next_isr_shrink(&self) -> Option<Millis> {
        let cluster = self.cluster.as_ref()?;
        let lag = cluster.config.replica_lag_time_max_ms;
        let mut next: Option<Millis> = None;
        for (tp, r) in &cluster.partitions {
            let Some(leader) = r.leader else { continue };
            if cluster.brokers[leader as usize] != Liveness::Up {
                continue;
            }
            let end = self.topic_log(tp).log_end;
            for b in r.isr.iter().filter(|b| **b != leader) {
                let f = &r.followers[b];
                if f.fetched_end < end {
                    let due = f.last_caught_up + lag + 1;
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::PartitionLog;

    fn log_with_epochs(epochs: &[(u32, u64)], log_end: u64, hw: u64) -> PartitionLog {
        PartitionLog {
            epochs: epochs.to_vec(),
            log_end,
            hw,
            ..PartitionLog::default()
        }
    }

    /// A leader that lost every entry of the follower's epoch (a lossy crash, then
    /// elected again) and wrote on in a newer one: `LeaderEpochFileCache.endOffsetFor`
    /// answers the start of its first known epoch, and the follower truncates there, not
    /// to its own high watermark, which would keep records the leader overwrote.
    #[test]
    fn a_follower_truncates_to_the_start_of_a_leaders_only_newer_epoch() {
        let follower = log_with_epochs(&[(1, 0)], 2, 1);
        let leader = log_with_epochs(&[(3, 0)], 2, 0);
        assert_eq!(follower.divergence_with(&leader), 0);
        let leader_knows_nothing = log_with_epochs(&[], 0, 0);
        assert_eq!(follower.divergence_with(&leader_knows_nothing), 1);
    }
}
