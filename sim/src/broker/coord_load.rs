//! A new coordinator's load: the state of every transactional id or group of a
//! coordinator partition, rebuilt by replaying the new leader's log to its end
//! (`TransactionStateManager.loadTransactionsForTxnTopicPartition`,
//! `core/src/main/scala/kafka/coordinator/transaction/TransactionStateManager.scala`; the
//! group coordinator's `CoordinatorLoaderImpl.load`,
//! `coordinator-common/src/main/java/org/apache/kafka/coordinator/common/runtime/`, replaying
//! each record through `GroupCoordinatorShard.replay` into `GroupMetadataManager.replay` and
//! `OffsetMetadataManager.replay`, then `GroupMetadataManager.onLoaded`: the last record of
//! a key wins; offsets accumulate). What the log does not have, the coordinator no longer
//! knows.
//!
//! Transactions found in `PrepareCommit` / `PrepareAbort` are completed: their markers are
//! sent again to every partition that does not have one yet
//! (`TransactionStateManager.loadTransactionsForTxnTopicPartition` hands them to the
//! callback `TransactionCoordinator.onElection` passes,
//! `TransactionMarkerChannelManager.addTxnMarkersToSend`); ongoing ones stay ongoing and
//! time out as before (the load leaves `Ongoing` alone; an `InitProducerId` meanwhile
//! aborts it and answers `CONCURRENT_TRANSACTIONS`, `TransactionCoordinator.handleInitProducerId`).

use std::collections::{BTreeMap, BTreeSet};

use super::coordinator::{
    coordinator_partition, CoordRecord, TxnRecord, TxnRecordState, TRANSACTION_STATE_TOPIC,
};
use super::group::Group;
use super::txn::{EndingTxn, OpenTxn, PendingOffsets, TxnIdState, TxnOutcome, TxnSerial};
use super::Broker;
use crate::protocol::{Epoch, Millis, Offset, ProducerId, TopicPartition};
use crate::trace::Event;

/// Open transactions in the data partitions, by producer id: (partition, transaction,
/// first offset, producer epoch).
type OngoingByProducer = BTreeMap<ProducerId, Vec<(TopicPartition, TxnSerial, Offset, Epoch)>>;

/// What a coordinator partition's log holds, key by key.
#[derive(Default)]
struct Replayed {
    txns: BTreeMap<String, (TxnRecord, Offset)>,
    groups: BTreeMap<String, Group>,
    offsets: BTreeMap<String, BTreeMap<TopicPartition, Offset>>,
}

impl Broker {
    /// Load the coordinator state of `tp` from its leader's log, at `now`.
    pub(super) fn load_coordinator(
        &mut self,
        tp: &TopicPartition,
        now: Millis,
        events: &mut Vec<Event>,
    ) {
        let log = self.topic_log(tp);
        let mut replayed = Replayed::default();
        for (e, m) in log.entries.iter().zip(&log.meta) {
            match m.coord.as_deref() {
                Some(CoordRecord::Txn { tid, value }) => {
                    replayed.txns.insert(tid.clone(), (value.clone(), e.offset));
                }
                Some(CoordRecord::Group { group, value }) => {
                    replayed.groups.insert(group.clone(), value.clone());
                }
                Some(CoordRecord::Offsets { group, offsets }) => {
                    let o = replayed.offsets.entry(group.clone()).or_default();
                    o.extend(offsets.iter().map(|(tp, o)| (tp.clone(), *o)));
                }
                None => {}
            }
        }
        let (transactions, groups) = if tp.topic == TRANSACTION_STATE_TOPIC {
            (self.load_txns(tp, replayed.txns, now, events), 0)
        } else {
            (
                0,
                self.load_groups(tp, replayed.groups, replayed.offsets, now, events),
            )
        };
        let cluster = self.cluster.as_ref().expect("a cluster");
        let broker = cluster.partitions[tp]
            .leader
            .expect("a loaded partition has a leader");
        events.push(Event::CoordinatorLoaded {
            tp: tp.clone(),
            broker,
            transactions,
            groups,
        });
    }

    /// The transactional ids of `tp`: each as its last record says, the others forgotten.
    fn load_txns(
        &mut self,
        tp: &TopicPartition,
        txns: BTreeMap<String, (TxnRecord, Offset)>,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> usize {
        let n = self
            .cluster
            .as_ref()
            .expect("a cluster")
            .config
            .transaction_state_partitions;
        let before = self.open_serials();
        let gone: Vec<String> = self
            .txn_ids
            .keys()
            .filter(|t| coordinator_partition(t, n) == tp.partition && !txns.contains_key(*t))
            .cloned()
            .collect();
        for tid in gone {
            self.txn_ids.remove(&tid);
            self.coordinators_mut_load().txns.remove(&tid);
        }
        let ongoing = self.ongoing_by_producer();
        let count = txns.len();
        for (tid, (record, offset)) in txns {
            self.note_regression(&tid, &record, events);
            let st = self.txn_state_from(&record, &ongoing, now);
            self.txn_ids.insert(tid.clone(), st);
            let coord = self.coordinators_mut_load();
            coord.txns.insert(tid.clone(), (record, tp.clone(), offset));
            self.complete_if_written(&tid);
        }
        // An open transaction the log does not know any more stays undecided: no
        // coordinator will end it, and its partitions hang (Kafka's hanging transaction).
        let after = self.open_serials();
        let orphaned: Vec<TxnSerial> = before
            .difference(&after)
            .copied()
            .filter(|s| self.txn_outcomes[*s] == TxnOutcome::Open)
            .collect();
        let coord = self.coordinators_mut_load();
        coord.orphaned.extend(orphaned);
        for s in &after {
            coord.orphaned.remove(s);
        }
        count
    }

    /// `TxnStateLoaded` when `tid` is loaded at an older producer id or epoch than the
    /// last record its previous coordinator wrote.
    fn note_regression(&self, tid: &str, loaded: &TxnRecord, events: &mut Vec<Event>) {
        let coord = self.coordinators().expect("a cluster");
        let Some((last, tp, offset)) = coord.txns.get(tid) else {
            return;
        };
        if (loaded.producer_id, loaded.epoch) >= (last.producer_id, last.epoch) {
            return;
        }
        let acknowledged = coord.max_hw.get(tp).is_some_and(|hw| offset < hw);
        events.push(Event::TxnStateLoaded {
            transactional_id: tid.to_string(),
            producer_id: loaded.producer_id,
            epoch: loaded.epoch,
            acknowledged,
        });
    }

    /// The transactions some transactional id has open.
    fn open_serials(&self) -> BTreeSet<TxnSerial> {
        let open = self.txn_ids.values().filter_map(|st| st.open.as_ref());
        open.map(|o| o.serial).collect()
    }

    fn coordinators_mut_load(&mut self) -> &mut super::coordinator::Coordinators {
        &mut self.cluster.as_mut().expect("a cluster").coordinators
    }

    /// Every open transaction of the data partitions (their leaders' producer state:
    /// `ProducerStateEntry.currentTxnFirstOffset`,
    /// `storage/src/main/java/org/apache/kafka/storage/internals/log/ProducerStateEntry.java`).
    fn ongoing_by_producer(&self) -> OngoingByProducer {
        let mut out: OngoingByProducer = BTreeMap::new();
        for (name, topic) in &self.topics {
            if super::log::is_internal(name) {
                continue;
            }
            for (p, log) in topic.partitions.iter().enumerate() {
                // A transaction whose marker is written here is no longer open here.
                let open = log
                    .ongoing
                    .iter()
                    .filter(|(s, _)| !log.unreplicated.contains_key(*s));
                for (serial, first) in open {
                    let Some(i) = log.index_of(*first) else {
                        continue;
                    };
                    let Some((pid, epoch)) = log.entries[i].producer else {
                        continue;
                    };
                    let tp = TopicPartition::new(name, p as u32);
                    out.entry(pid)
                        .or_default()
                        .push((tp, *serial, *first, epoch));
                }
            }
        }
        out
    }

    /// A transactional id's state from its last record. An ongoing transaction's
    /// partitions are those whose producer state has it open: in Kafka (transaction
    /// protocol v2) a partition leader appends a transactional batch only after the
    /// coordinator's `AddPartitionsToTxn` is durable, which a produce here does in one
    /// step, so the data partitions say what that record would have said — including a
    /// transaction begun at the record's epoch after the record was written. No batch
    /// adds a partition while the id's last record is not replicated (`Produce` answers
    /// `NOT_ENOUGH_REPLICAS`, `transition_pending` in `producer.rs`), so a transaction a
    /// data partition has begun follows a state this log holds: a loaded `Prepare` record
    /// never hides a later transaction.
    fn txn_state_from(
        &mut self,
        rec: &TxnRecord,
        ongoing: &OngoingByProducer,
        now: Millis,
    ) -> TxnIdState {
        let mut st = TxnIdState {
            producer_id: rec.producer_id,
            epoch: rec.epoch,
            timeout_ms: rec.timeout_ms,
            open: None,
            ending: None,
            last_completed: rec.last_completed,
            previous_producer_id: rec.previous_producer_id,
        };
        let mine = ongoing.get(&rec.producer_id).map_or(&[][..], Vec::as_slice);
        match &rec.state {
            TxnRecordState::Idle => {
                // Open, or settled by a `Prepare` record this log lost (its markers
                // not all written); not a hanging one, which no coordinator ends.
                let begun = mine.iter().find(|(tp, s, _, e)| {
                    *e == rec.epoch
                        && (self.txn_outcomes[*s] == TxnOutcome::Open
                            || !self.topic_log(tp).hanging.contains(s))
                });
                if let Some((_, serial, _, _)) = begun {
                    st.open = Some(self.open_from(*serial, now, BTreeMap::new(), mine));
                    st.last_completed = None;
                }
            }
            TxnRecordState::Ongoing {
                serial,
                started,
                offsets,
                ..
            } => st.open = Some(self.open_from(*serial, *started, offsets.clone(), mine)),
            TxnRecordState::Prepare {
                serial,
                commit,
                marker,
                partitions,
                groups,
            } => {
                let prepared = (partitions.clone(), groups.clone());
                st.ending = Some(self.ending_from(*serial, *commit, *marker, prepared));
            }
        }
        st
    }

    /// An ongoing transaction as loaded: undecided again if its end was not recorded.
    fn open_from(
        &mut self,
        serial: TxnSerial,
        started: Millis,
        offsets: BTreeMap<String, PendingOffsets>,
        mine: &[(TopicPartition, TxnSerial, Offset, Epoch)],
    ) -> OpenTxn {
        let mut partitions: BTreeMap<TopicPartition, Offset> = mine
            .iter()
            .filter(|(_, s, _, _)| *s == serial)
            .map(|(tp, _, first, _)| (tp.clone(), *first))
            .collect();
        let serial = if self.txn_outcomes[serial] == TxnOutcome::Open {
            serial
        } else {
            self.split_settled(serial, &mut partitions)
        };
        OpenTxn {
            serial,
            started,
            partitions,
            offsets,
        }
    }

    /// A transaction whose end the new coordinator's log lost (its `PrepareCommit` /
    /// `PrepareAbort` record went with an unflushed suffix) after some of its markers were
    /// written: it loads as ongoing again. In Kafka a transaction's outcome is per
    /// partition, the marker there: a partition whose marker is written has its records
    /// settled for good (a later marker finds no open transaction of the producer and
    /// settles nothing, `ProducerAppendInfo.appendEndTxnMarker`,
    /// `storage/src/main/java/org/apache/kafka/storage/internals/log/ProducerAppendInfo.java`),
    /// the others are open and get the outcome the reloaded coordinator decides. So the
    /// partitions still open here (`partitions`) move to a new transaction serial, left
    /// open; the settled ones keep the old serial and its outcome. Returns the new serial.
    fn split_settled(
        &mut self,
        old: TxnSerial,
        partitions: &mut BTreeMap<TopicPartition, Offset>,
    ) -> TxnSerial {
        self.txn_outcomes.push(TxnOutcome::Open);
        let new = self.txn_outcomes.len() - 1;
        for (tp, first) in partitions.iter() {
            let (log, _) = self.partition_mut(tp);
            let at = log.ongoing.remove(&old).expect("open in its partition");
            debug_assert_eq!(at, *first);
            log.ongoing.insert(new, at);
            retag(log, old, new, at);
            let followers = self
                .cluster
                .as_mut()
                .and_then(|c| c.partitions.get_mut(tp))
                .map(|r| r.followers.values_mut());
            for f in followers.into_iter().flatten() {
                retag(&mut f.log, old, new, at);
            }
        }
        new
    }

    /// A transaction in `PrepareCommit` / `PrepareAbort` as loaded: its markers are due
    /// where none is written yet, awaited where one is written but not replicated; group
    /// markers are due where the group coordinator has not applied them (and replicated
    /// what it applied: a group marker awaiting its high watermark is sent again, as
    /// Kafka's new coordinator sends every marker of a `Prepare` state again).
    fn ending_from(
        &mut self,
        serial: TxnSerial,
        commit: bool,
        marker: (ProducerId, Epoch),
        prepared: (BTreeSet<TopicPartition>, BTreeMap<String, PendingOffsets>),
    ) -> EndingTxn {
        self.txn_outcomes[serial] = if commit {
            TxnOutcome::Committed
        } else {
            TxnOutcome::Aborted
        };
        let mut partitions = BTreeSet::new();
        let mut awaiting = BTreeMap::new();
        for tp in &prepared.0 {
            let Some(log) = self.partition(tp) else {
                continue;
            };
            // A marker the leader already has (its first records are still `ongoing`
            // until the marker is replicated) is awaited, not due again, as a leader
            // change leaves it (`rebuild_leader_state`): once the high watermark passes
            // it, `markers_replicated` releases the LSO and completes the transaction.
            if let Some(at) = log.unreplicated.get(&serial) {
                awaiting.insert(tp.clone(), *at);
            } else if log.ongoing.contains_key(&serial) {
                partitions.insert(tp.clone());
            }
        }
        let applied = &self
            .coordinators()
            .expect("a cluster")
            .applied_group_markers;
        let groups = prepared
            .1
            .iter()
            .filter(|(g, _)| !applied.contains(&((*g).clone(), serial)))
            .map(|(g, o)| (g.clone(), o.clone()))
            .collect();
        EndingTxn {
            serial,
            commit,
            marker,
            partitions,
            groups,
            awaiting,
            group_awaiting: BTreeMap::new(),
            prepared,
        }
    }

    /// The groups of `tp`: each as its last metadata record left it with every offset
    /// recorded since; the others forgotten. `GroupLoaded` when a group is loaded at an
    /// older generation than its predecessor had reached (the later ones' records lost).
    fn load_groups(
        &mut self,
        tp: &TopicPartition,
        mut metas: BTreeMap<String, Group>,
        mut offsets: BTreeMap<String, BTreeMap<TopicPartition, Offset>>,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> usize {
        let n = self
            .cluster
            .as_ref()
            .expect("a cluster")
            .config
            .offsets_partitions;
        let names: BTreeSet<String> = metas.keys().chain(offsets.keys()).cloned().collect();
        let gone: Vec<String> = self
            .groups
            .keys()
            .filter(|g| coordinator_partition(g, n) == tp.partition && !names.contains(*g))
            .cloned()
            .collect();
        let coord = self.coordinators_mut_load();
        for g in &gone {
            coord.groups.remove(g);
            coord.offsets.remove(g);
        }
        for g in gone {
            self.groups.remove(&g);
        }
        for name in &names {
            let committed = offsets.remove(name).unwrap_or_default();
            let meta = metas.remove(name);
            let coord = self.coordinators_mut_load();
            match &meta {
                Some(m) => coord.groups.insert(name.clone(), m.clone()),
                None => coord.groups.remove(name),
            };
            coord.offsets.insert(name.clone(), committed.clone());
            let group = meta.unwrap_or_else(Group::new).loaded(now, committed);
            let before = self.groups.get(name).map_or(0, |g| g.generation);
            if group.generation < before {
                events.push(Event::GroupLoaded {
                    group: name.clone(),
                    generation: group.generation,
                    assignment: group.assignment_list(),
                });
            }
            self.groups.insert(name.clone(), group);
        }
        names.len()
    }
}

/// Records of transaction `old` from offset `from` on belong to transaction `new`.
fn retag(log: &mut super::log::PartitionLog, old: TxnSerial, new: TxnSerial, from: Offset) {
    for i in log.index_from(from)..log.entries.len() {
        if log.txn[i] == Some(old) {
            log.txn[i] = Some(new);
        }
    }
}
