//! The fetch purgatory: a consumer's fetch the broker holds while it has nothing to
//! return (`fetch.max.wait.ms`).
//!
//! Kafka (`core/src/main/scala/kafka/server/ReplicaManager.scala`, `fetchMessages`)
//! answers a fetch at once when `fetch.max.wait.ms` is 0, when it read at least
//! `fetch.min.bytes` (1: any byte) for any partition, or when reading a partition
//! failed; otherwise it parks a `DelayedFetch` in the fetch purgatory
//! (`core/src/main/scala/kafka/server/DelayedFetch.scala`). `DelayedFetch.tryComplete`
//! completes it early when, for any of its partitions, this broker no longer leads it or
//! its leader epoch changed (cases A, B, E), the partition is unknown (C), the fetch
//! offset is past the end visible at the request's isolation (F: truncated), or the
//! visible end moved past the fetch offset (G): the high watermark under
//! `read_uncommitted`, the last stable offset under `read_committed`, so a transaction
//! marker that advances the LSO completes it. Otherwise it completes at
//! `fetch.max.wait.ms` (`onExpiration`). On completion the broker reads the log again
//! (`DelayedFetch.onComplete` → `ReplicaManager.readFromLog`) and answers with whatever
//! is there, empty if nothing.
//!
//! Here the purgatory is checked after everything that changes the broker (the driver
//! calls [`Broker::take_completed_fetches`]), and the expiry is a broker deadline
//! ([`Broker::next_deadline`], marked by [`Broker::tick`]).

use super::{Broker, Handled};
use crate::client::ClientId;
use crate::protocol::{
    FetchResult, Isolation, KafkaError, Millis, Offset, Response, TopicPartition,
};
use crate::trace::Event;
use std::collections::BTreeMap;

/// The ids of held fetches start here, apart from those of held produces and coordinator
/// answers (which count from 0): the driver keeps all of them in one map.
const FETCH_IDS: u64 = 1 << 62;

/// The fetch purgatory.
#[derive(Clone, Debug, Default)]
pub(super) struct DelayedFetches {
    next: u64,
    parked: BTreeMap<u64, DelayedFetch>,
}

/// One held fetch.
#[derive(Clone, Debug)]
pub(super) struct DelayedFetch {
    client: ClientId,
    /// Each partition with its fetch offset and the leader epoch when the fetch arrived
    /// (`None` on a single broker).
    partitions: Vec<(TopicPartition, Offset, Option<u32>)>,
    max_records: usize,
    isolation: Isolation,
    /// When `fetch.max.wait.ms` runs out.
    deadline: Millis,
    /// The deadline passed at a tick: answered at the next take.
    expired: bool,
}

impl DelayedFetches {
    /// What the broker's future behaviour depends on: the held fetches, without their
    /// ids (which only name them to the driver).
    pub(super) fn digest_text(&self) -> String {
        format!("{:?}", self.parked.values().collect::<Vec<_>>())
    }
}

impl Broker {
    /// A `Fetch` of several partitions (`ReplicaManager.fetchMessages`): answered now when
    /// `max_wait_ms` is 0 or some partition has something to return or an error, else
    /// held (`Handled::Delayed`) until [`Broker::take_completed_fetches`] gives its answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fetch_many(
        &mut self,
        now: Millis,
        client: &ClientId,
        partitions: Vec<(TopicPartition, Offset)>,
        max_records: usize,
        isolation: Isolation,
        max_wait_ms: Millis,
        events: &mut Vec<Event>,
    ) -> Handled {
        let partitions: Vec<(TopicPartition, Offset, Option<u32>)> = partitions
            .into_iter()
            .map(|(tp, offset)| {
                let epoch = self.leader_epoch_of(&tp);
                (tp, offset, epoch)
            })
            .collect();
        let ready = partitions
            .iter()
            .any(|(tp, offset, epoch)| self.fetch_ready(tp, *offset, *epoch, isolation));
        let fetch = DelayedFetch {
            client: client.clone(),
            partitions,
            max_records,
            isolation,
            deadline: now + max_wait_ms,
            expired: false,
        };
        if max_wait_ms == 0 || fetch.partitions.is_empty() || ready {
            return Handled::Now(self.read_many(&fetch, events));
        }
        let id = FETCH_IDS + self.delayed_fetches.next;
        self.delayed_fetches.next += 1;
        self.delayed_fetches.parked.insert(id, fetch);
        Handled::Delayed(id)
    }

    /// The current leader epoch of `tp` under replication.
    fn leader_epoch_of(&self, tp: &TopicPartition) -> Option<u32> {
        let cluster = self.cluster.as_ref()?;
        cluster.partitions.get(tp).map(|r| r.leader_epoch)
    }

    /// `DelayedFetch.tryComplete` for one partition: whether a fetch of `tp` at `offset`
    /// has something to answer now (data, a visible end that moved, or an error).
    fn fetch_ready(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        epoch: Option<u32>,
        isolation: Isolation,
    ) -> bool {
        let Some(log) = self.partition(tp) else {
            return true; // case C
        };
        if !self.leader_available(tp) || self.leader_epoch_of(tp) != epoch {
            return true; // cases A, B, E
        }
        let epoch_start = log.epochs.last().map_or(0, |(_, start)| *start);
        if log.replicated && log.hw < epoch_start {
            return true; // answered `OFFSET_NOT_AVAILABLE` (see `Broker::fetch`)
        }
        let end = match isolation {
            Isolation::ReadUncommitted => log.hw,
            Isolation::ReadCommitted => log.last_stable_offset(),
        };
        offset != end // F (past the end) or G (the end moved past the offset)
    }

    /// Read every partition of a fetch now (`ReplicaManager.readFromLog`).
    fn read_many(&self, fetch: &DelayedFetch, events: &mut Vec<Event>) -> Response {
        let results = fetch
            .partitions
            .iter()
            .map(|(tp, offset, epoch)| {
                // A leader elected since the fetch arrived: the broker that held it no
                // longer leads the partition (`DelayedFetch` cases A and E; the consumer
                // refreshes its metadata and fetches again).
                let result = if self.leader_epoch_of(tp) != *epoch && self.has_partition(tp) {
                    Err(super::reject(
                        events,
                        "Fetch",
                        KafkaError::NotLeaderOrFollower,
                        format!("{tp}: the leader changed while the fetch was held"),
                    ))
                } else {
                    self.fetch(
                        &fetch.client,
                        tp,
                        *offset,
                        fetch.max_records,
                        fetch.isolation,
                        events,
                    )
                };
                FetchResult {
                    tp: tp.clone(),
                    offset: *offset,
                    result,
                }
            })
            .collect();
        Response::FetchMany(results)
    }

    /// Mark the held fetches whose `fetch.max.wait.ms` ran out at `now`
    /// (`DelayedFetch.onExpiration`); [`Broker::take_completed_fetches`] answers them.
    pub(super) fn expire_fetches(&mut self, now: Millis) {
        for f in self.delayed_fetches.parked.values_mut() {
            if f.deadline <= now {
                f.expired = true;
            }
        }
    }

    /// The earliest `fetch.max.wait.ms` still to run out.
    pub(super) fn fetch_deadline(&self) -> Option<Millis> {
        let parked = self.delayed_fetches.parked.values();
        parked.filter(|f| !f.expired).map(|f| f.deadline).min()
    }

    /// Whether any fetch is held.
    pub fn holds_fetches(&self) -> bool {
        !self.delayed_fetches.parked.is_empty()
    }

    /// The held fetches that can be answered now, by id, removed from the purgatory and
    /// answered with what the log holds now (their `Fetch` events pushed to `events`).
    /// Afterwards no held fetch has anything to answer.
    pub fn take_completed_fetches(&mut self, events: &mut Vec<Event>) -> Vec<(u64, Response)> {
        if self.delayed_fetches.parked.is_empty() {
            return Vec::new();
        }
        let done: Vec<u64> = (self.delayed_fetches.parked.iter())
            .filter(|(_, f)| {
                f.expired
                    || (f.partitions.iter()).any(|(tp, offset, epoch)| {
                        self.fetch_ready(tp, *offset, *epoch, f.isolation)
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::with_capacity(done.len());
        for id in done {
            let f = self
                .delayed_fetches
                .parked
                .remove(&id)
                .expect("a held fetch");
            out.push((id, self.read_many(&f, events)));
        }
        self.check_held_fetches();
        out
    }

    /// Postcondition of a take: every held fetch still waits (nothing visible past any
    /// of its offsets, every leader as it was, its deadline ahead or not yet ticked).
    fn check_held_fetches(&self) {
        for (id, f) in &self.delayed_fetches.parked {
            assert!(
                *id >= FETCH_IDS,
                "broker bug: held fetch id {id} out of its range"
            );
            assert!(
                !f.expired,
                "broker bug: an expired fetch {id} is still held"
            );
            for (tp, offset, epoch) in &f.partitions {
                assert!(
                    !self.fetch_ready(tp, *offset, *epoch, f.isolation),
                    "broker bug: held fetch {id} of {tp}@{offset} has something to answer"
                );
            }
        }
    }
}
