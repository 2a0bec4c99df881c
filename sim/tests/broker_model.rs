//! Model-based property tests of the simulated broker.
//!
//! Random histories of client operations — plain, idempotent and transactional produce,
//! retries, fencing by a second producer with the same `transactional.id`, offsets sent
//! to transactions, commit, abort, fetches at both isolation levels, consumer group
//! join/heartbeat/leave/commit (stale generations included), the coordinator writing one
//! pending transaction marker (markers are asynchronous: an ending transaction holds its
//! partitions' LSO and its group's offsets until each marker lands, and the coordinator
//! answers `CONCURRENT_TRANSACTIONS` meanwhile) and clock ticks past transaction, session
//! and rebalance timeouts (transactions time out in a periodic scan, not at their
//! deadline) — are applied both to the [`Broker`] and
//! to a small reference model written here from Kafka's rules. After every operation the
//! broker's response must equal the model's prediction and the whole broker state (logs,
//! HW, LSO, transaction outcomes, group state, committed offsets) must equal the model's.
//!
//! On top of that agreement, the named properties are checked directly on what the broker
//! returns, so they hold even if the model shared a bug with the broker:
//!
//! - `read_committed` never returns an aborted or still-open record;
//! - a committed transaction's records are all visible or none (and all, once settled);
//! - a fenced producer's requests fail as fenced and its writes are never committed;
//! - a retried idempotent batch appears once (a retried plain produce twice);
//! - offsets are dense and monotonic, in logs, events and fetches;
//! - a commit with a stale generation is rejected and changes nothing;
//! - LSO <= HW.
//!
//! Each `proptest!` function weights the operations towards one of these properties; all
//! checks run in all of them. `every_interesting_path_is_exercised` makes sure the
//! generators really reach the paths the properties are about.

use std::collections::{BTreeMap, BTreeSet};

use oversell_sim::broker::{
    Broker, BrokerConfig, GroupState, MarkerTarget, PendingMarker, TopicConfig, TransactionVersion,
    DEFAULT_ABORT_SCAN_INTERVAL_MS,
};
use oversell_sim::protocol::{
    ControlType, Epoch, FetchData, FetchedRecord, Generation, GroupMetadata, Isolation,
    JoinOutcome, KafkaError, Millis, Offset, PartitionProduceResult, ProduceBatch, ProducerId,
    ProducerIdentity, RebalanceProtocol, Record, Request, Response, TopicPartition,
};
use oversell_sim::trace::Event;
use oversell_sim::ClientId;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

const TOPIC: &str = "in";
const P: usize = 3;
const GROUP: &str = "g";
const TXN_TIMEOUT: Millis = 6_000;
/// The timeout scan's interval (the broker's default).
const SCAN: Millis = DEFAULT_ABORT_SCAN_INTERVAL_MS;
const SESSION: Millis = 10_000;
const REBALANCE: Millis = 4_000;
/// Transactional ids; handles 0 and 1 share the first one (the second fences the first).
const TIDS: [&str; 2] = ["tx-a", "tx-b"];
const HANDLE_TID: [usize; 3] = [0, 0, 1];
const CONSUMERS: usize = 3;
/// A producer id the broker never hands out.
const GHOST_PID: ProducerId = 9_999;
const CASES: u32 = 512;

fn tp(p: usize) -> TopicPartition {
    TopicPartition::new(TOPIC, p as u32)
}

// ------------------------------------------------------------------ operations

#[derive(Clone, Debug)]
enum Op {
    /// Produce without idempotence; `retried`: the ack was lost and the client resends.
    Plain {
        p: u8,
        n: u8,
        retried: bool,
    },
    /// The idempotent producer sends its next batch to `p`.
    Idem {
        p: u8,
        n: u8,
    },
    /// The idempotent producer resends one of its earlier batches to `p` (`back` batches
    /// before the last one): a duplicate while it is among the last five.
    IdemRetry {
        p: u8,
        back: u8,
    },
    /// The idempotent producer skips a sequence number.
    IdemGap {
        p: u8,
    },
    /// Transactional handle `h` calls `initTransactions` (fencing the other handle of the
    /// same transactional id).
    Init {
        h: u8,
    },
    /// Handle `h` sends `n` records to each partition in the bit mask `parts`.
    TxnSend {
        h: u8,
        parts: u8,
        n: u8,
    },
    /// Handle `h` sends consumer `c`'s offsets to its transaction (`stale`: with the
    /// generation before the one `c` knows).
    TxnOffsets {
        h: u8,
        c: u8,
        stale: bool,
    },
    End {
        h: u8,
        commit: bool,
    },
    /// Handle `h` sends its last `EndTxn` again, with the identity it carried then: a
    /// retry after a lost answer, or a late duplicate once a new transaction began.
    EndAgain {
        h: u8,
        commit: bool,
    },
    Fetch {
        p: u8,
        from: u8,
        committed: bool,
        max: u8,
    },
    Join {
        c: u8,
    },
    Heartbeat {
        c: u8,
    },
    Leave {
        c: u8,
    },
    Commit {
        c: u8,
        stale: bool,
    },
    Tick {
        ms: Millis,
    },
    /// The coordinator writes the `k`th (modulo their number) pending transaction marker.
    Marker {
        k: u8,
    },
}

/// Relative weights of the operation kinds.
#[derive(Clone, Copy, Debug)]
struct Mix {
    plain: u32,
    idem: u32,
    txn: u32,
    fence: u32,
    group: u32,
    fetch: u32,
    tick: u32,
}

const BALANCED: Mix = Mix {
    plain: 3,
    idem: 3,
    txn: 6,
    fence: 2,
    group: 4,
    fetch: 5,
    tick: 2,
};

const TXN_HEAVY: Mix = Mix {
    plain: 2,
    idem: 1,
    txn: 10,
    fence: 2,
    group: 1,
    fetch: 10,
    tick: 2,
};

const COMMIT_HEAVY: Mix = Mix {
    plain: 1,
    idem: 1,
    txn: 12,
    fence: 3,
    group: 2,
    fetch: 4,
    tick: 3,
};

const FENCE_HEAVY: Mix = Mix {
    plain: 1,
    idem: 1,
    txn: 8,
    fence: 6,
    group: 1,
    fetch: 3,
    tick: 4,
};

const IDEMPOTENCE_HEAVY: Mix = Mix {
    plain: 4,
    idem: 10,
    txn: 2,
    fence: 1,
    group: 1,
    fetch: 4,
    tick: 1,
};

const GROUP_HEAVY: Mix = Mix {
    plain: 1,
    idem: 1,
    txn: 3,
    fence: 1,
    group: 10,
    fetch: 1,
    tick: 4,
};

fn op_strategy(mix: Mix) -> impl Strategy<Value = Op> {
    let part = 0..P as u8;
    let handle = 0..3u8;
    let consumer = 0..CONSUMERS as u8;
    prop_oneof![
        mix.plain => (part.clone(), 1..=3u8, any::<bool>())
            .prop_map(|(p, n, retried)| Op::Plain { p, n, retried }),
        mix.idem * 2 => (part.clone(), 1..=3u8).prop_map(|(p, n)| Op::Idem { p, n }),
        mix.idem * 2 => (part.clone(), 0..12u8).prop_map(|(p, back)| Op::IdemRetry { p, back }),
        mix.idem => part.clone().prop_map(|p| Op::IdemGap { p }),
        mix.fence => handle.clone().prop_map(|h| Op::Init { h }),
        mix.txn * 3 => (handle.clone(), 1..8u8, 1..=3u8)
            .prop_map(|(h, parts, n)| Op::TxnSend { h, parts, n }),
        mix.txn => (handle.clone(), consumer.clone(), any::<bool>())
            .prop_map(|(h, c, stale)| Op::TxnOffsets { h, c, stale }),
        mix.txn * 2 => (handle.clone(), prop::bool::weighted(0.6))
            .prop_map(|(h, commit)| Op::End { h, commit }),
        mix.txn => (handle, prop::bool::weighted(0.6))
            .prop_map(|(h, commit)| Op::EndAgain { h, commit }),
        mix.fetch => (part, any::<u8>(), any::<bool>(), 1..=8u8)
            .prop_map(|(p, from, committed, max)| Op::Fetch { p, from, committed, max }),
        mix.group * 2 => consumer.clone().prop_map(|c| Op::Join { c }),
        mix.group => consumer.clone().prop_map(|c| Op::Heartbeat { c }),
        (mix.group / 2).max(1) => consumer.clone().prop_map(|c| Op::Leave { c }),
        mix.group * 2 => (consumer, any::<bool>()).prop_map(|(c, stale)| Op::Commit { c, stale }),
        mix.tick => prop::sample::select(vec![1, 250, 1_500, 4_500, 6_500, 11_000])
            .prop_map(|ms| Op::Tick { ms }),
        (mix.txn + mix.fence) * 2 => any::<u8>().prop_map(|k| Op::Marker { k }),
    ]
}

/// A history: usually a prelude that initialises the transactional producers and joins
/// a consumer (so that most operations act on live clients), then random operations.
fn history(mix: Mix) -> impl Strategy<Value = Vec<Op>> {
    let prelude = prop::collection::vec(prop::bool::weighted(0.8), 3);
    (prelude, prop::collection::vec(op_strategy(mix), 1..120)).prop_map(|(pre, ops)| {
        let first = [Op::Init { h: 0 }, Op::Init { h: 2 }, Op::Join { c: 0 }];
        first
            .into_iter()
            .zip(pre)
            .filter(|(_, keep)| *keep)
            .map(|(op, _)| op)
            .chain(ops)
            .collect()
    })
}

// ------------------------------------------------------------------ reference model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Open,
    Committed,
    Aborted,
}

#[derive(Clone, Debug)]
enum MEntry {
    Data {
        record: Record,
        txn: Option<usize>,
    },
    /// A marker and the producer epoch it carries.
    Marker(ControlType, Epoch),
}

/// How a transaction ended, from the clients' point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Committed,
    AbortedByClient,
    /// A second producer initialised the same transactional id.
    Fenced,
    Timeout,
}

#[derive(Clone, Debug)]
struct MTxn {
    status: Status,
    ending: Option<Ending>,
    start: Millis,
    /// First offset per partition written.
    first: BTreeMap<usize, Offset>,
    offsets: Option<(Generation, BTreeMap<TopicPartition, Offset>)>,
    /// Values written, per partition.
    values: Vec<(usize, String)>,
}

/// A transaction in PrepareCommit / PrepareAbort: the markers still to write.
#[derive(Clone, Debug)]
struct MEnding {
    txn: usize,
    commit: bool,
    marker_epoch: Epoch,
    parts: BTreeSet<usize>,
    group: bool,
}

#[derive(Clone, Debug, Default)]
struct MTid {
    pid: Option<ProducerId>,
    epoch: Epoch,
    open: Option<usize>,
    ending: Option<MEnding>,
    last_completed: Option<(Epoch, bool)>,
}

#[derive(Clone, Debug)]
struct MHandle {
    tid: usize,
    ident: Option<ProducerIdentity>,
    seq: [i32; P],
    /// The identity its last `EndTxn` carried, and whether that one ended a transaction.
    last_end: Option<(ProducerIdentity, bool)>,
}

#[derive(Clone, Debug)]
struct IdemBatch {
    seq: i32,
    records: Vec<Record>,
    base_offset: Offset,
}

#[derive(Clone, Debug, Default)]
struct MConsumer {
    member: Option<String>,
    generation: Option<Generation>,
    assignment: Vec<TopicPartition>,
}

#[derive(Clone, Debug)]
struct MMember {
    last_seen: Millis,
    rejoined: bool,
}

#[derive(Clone, Debug)]
struct MGroup {
    exists: bool,
    state: GroupState,
    generation: Generation,
    members: BTreeMap<String, MMember>,
    committed: BTreeMap<TopicPartition, Offset>,
}

#[derive(Clone, Debug)]
struct Model {
    version: TransactionVersion,
    now: Millis,
    logs: Vec<Vec<MEntry>>,
    txns: Vec<MTxn>,
    tids: Vec<MTid>,
    handles: Vec<MHandle>,
    idem: ProducerIdentity,
    idem_next: [i32; P],
    idem_batches: Vec<Vec<IdemBatch>>,
    /// Values sent by the idempotent producer, and plain values with their expected
    /// number of copies.
    idem_values: Vec<String>,
    plain_values: Vec<(String, usize)>,
    consumers: Vec<MConsumer>,
    group: MGroup,
    members_created: u64,
    values_created: u64,
}

impl Model {
    fn new(idem: ProducerIdentity, version: TransactionVersion) -> Self {
        Model {
            version,
            now: 0,
            logs: vec![Vec::new(); P],
            txns: Vec::new(),
            tids: vec![MTid::default(); TIDS.len()],
            handles: HANDLE_TID
                .iter()
                .map(|&tid| MHandle {
                    tid,
                    ident: None,
                    seq: [0; P],
                    last_end: None,
                })
                .collect(),
            idem,
            idem_next: [0; P],
            idem_batches: vec![Vec::new(); P],
            idem_values: Vec::new(),
            plain_values: Vec::new(),
            consumers: vec![MConsumer::default(); CONSUMERS],
            group: MGroup {
                exists: false,
                state: GroupState::Empty,
                generation: 0,
                members: BTreeMap::new(),
                committed: BTreeMap::new(),
            },
            members_created: 0,
            values_created: 0,
        }
    }

    fn records(&mut self, p: usize, n: u8) -> Vec<Record> {
        (0..n)
            .map(|_| {
                self.values_created += 1;
                Record {
                    key: Some(format!("k{}", self.values_created % 4)),
                    value: Some(format!("p{p}-v{}", self.values_created)),
                    timestamp: self.now,
                    headers: Vec::new(),
                }
            })
            .collect()
    }

    fn hw(&self, p: usize) -> Offset {
        self.logs[p].len() as Offset
    }

    /// Whether transaction `t` is still undecided in partition `p`: open, or ending with
    /// its marker there not yet written.
    fn unsettled_in(&self, t: usize, p: usize) -> bool {
        self.tids.iter().any(|tid| {
            tid.open == Some(t)
                || tid
                    .ending
                    .as_ref()
                    .is_some_and(|e| e.txn == t && e.parts.contains(&p))
        })
    }

    fn lso(&self, p: usize) -> Offset {
        (0..self.txns.len())
            .filter(|&t| self.unsettled_in(t, p))
            .filter_map(|t| self.txns[t].first.get(&p).copied())
            .min()
            .unwrap_or(self.hw(p))
    }

    fn status_at(&self, p: usize, offset: Offset) -> Option<Status> {
        match &self.logs[p][offset as usize] {
            MEntry::Data { txn: Some(t), .. } if self.unsettled_in(*t, p) => Some(Status::Open),
            MEntry::Data { txn: Some(t), .. } => Some(self.txns[*t].status),
            MEntry::Data { txn: None, .. } => Some(Status::Committed),
            MEntry::Marker(..) => None,
        }
    }

    fn append(&mut self, p: usize, records: &[Record], txn: Option<usize>) -> Offset {
        let base = self.hw(p);
        for r in records {
            self.logs[p].push(MEntry::Data {
                record: r.clone(),
                txn,
            });
            if let Some(t) = txn {
                self.txns[t].values.push((p, r.value.clone().unwrap()));
            }
        }
        base
    }

    /// A handle's identity if it is current; otherwise the error the broker must answer.
    fn producer_check(&self, h: usize) -> Result<ProducerIdentity, (ProducerIdentity, KafkaError)> {
        let handle = &self.handles[h];
        match &handle.ident {
            None => Err((
                ProducerIdentity {
                    producer_id: GHOST_PID,
                    epoch: 0,
                    transactional_id: Some(TIDS[handle.tid].to_string()),
                },
                KafkaError::UnknownProducerId,
            )),
            Some(ident) if ident.epoch != self.tids[handle.tid].epoch => {
                Err((ident.clone(), self.fenced_data_error()))
            }
            Some(ident) => Ok(ident.clone()),
        }
    }

    fn begin_txn(&mut self, tid: usize) -> usize {
        if let Some(t) = self.tids[tid].open {
            return t;
        }
        self.txns.push(MTxn {
            status: Status::Open,
            ending: None,
            start: self.now,
            first: BTreeMap::new(),
            offsets: None,
            values: Vec::new(),
        });
        let t = self.txns.len() - 1;
        self.tids[tid].open = Some(t);
        t
    }

    fn v2(&self) -> bool {
        self.version == TransactionVersion::V2
    }

    /// What `Produce` and `TxnOffsetCommit` of a fenced epoch get: `PRODUCER_FENCED` under
    /// v1; under v2 the partition leader's verification turns it into
    /// `INVALID_PRODUCER_EPOCH` (Kafka's `AddPartitionsToTxnManager`).
    fn fenced_data_error(&self) -> KafkaError {
        if self.v2() {
            KafkaError::InvalidProducerEpoch
        } else {
            KafkaError::ProducerFenced
        }
    }

    /// Decide the open transaction of `tid` (PrepareCommit / PrepareAbort): its markers,
    /// carrying `marker_epoch`, are now due in every partition it wrote to and in the group
    /// if it carries offsets; they are written by `write_marker`, one at a time.
    fn end_txn(&mut self, tid: usize, ending: Ending, marker_epoch: Epoch) {
        let t = self.tids[tid].open.take().expect("open transaction");
        let commit = ending == Ending::Committed;
        let txn = &mut self.txns[t];
        txn.status = if commit {
            Status::Committed
        } else {
            Status::Aborted
        };
        txn.ending = Some(ending);
        let pending = MEnding {
            txn: t,
            commit,
            marker_epoch,
            parts: txn.first.keys().copied().collect(),
            group: txn.offsets.is_some(),
        };
        let state = &mut self.tids[tid];
        state.ending = Some(pending);
        state.last_completed = None;
    }

    /// CompleteCommit / CompleteAbort once no marker of `tid` is left to write.
    fn complete_if_written(&mut self, tid: usize) {
        let state = &mut self.tids[tid];
        if let Some(e) = &state.ending {
            if e.parts.is_empty() && !e.group {
                state.last_completed = Some((state.epoch, e.commit));
                state.ending = None;
            }
        }
    }

    /// The markers still to write: by transactional id, partitions then the group.
    fn pending_markers(&self) -> Vec<(usize, Option<usize>)> {
        let mut out = Vec::new();
        for (tid, state) in self.tids.iter().enumerate() {
            if let Some(e) = &state.ending {
                out.extend(e.parts.iter().map(|&p| (tid, Some(p))));
                if e.group {
                    out.push((tid, None));
                }
            }
        }
        out
    }

    /// Write one pending marker: a control record in partition `part`, or (`None`) the
    /// group's, which commits the transaction's offsets if it committed.
    fn write_marker(&mut self, tid: usize, part: Option<usize>) {
        let e = self.tids[tid]
            .ending
            .as_mut()
            .expect("an ending transaction");
        let control = if e.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let (t, commit, epoch) = (e.txn, e.commit, e.marker_epoch);
        match part {
            Some(p) => {
                assert!(e.parts.remove(&p), "model: no marker due in {p}");
                self.logs[p].push(MEntry::Marker(control, epoch));
            }
            None => {
                assert!(std::mem::take(&mut e.group), "model: no group marker due");
                if let (true, Some((_, offsets))) = (commit, self.txns[t].offsets.clone()) {
                    self.group.committed.extend(offsets);
                }
            }
        }
        self.complete_if_written(tid);
    }

    /// Whether the group has offsets of a transaction not completed for partition `tp`.
    fn offsets_pending(&self, tp: &TopicPartition) -> bool {
        self.tids.iter().any(|state| {
            let open = state.open.map(|t| &self.txns[t].offsets);
            let ending = state
                .ending
                .as_ref()
                .filter(|e| e.group)
                .map(|e| &self.txns[e.txn].offsets);
            [open, ending]
                .into_iter()
                .flatten()
                .any(|o| o.as_ref().is_some_and(|(_, m)| m.contains_key(tp)))
        })
    }

    /// v2: the producer ends its transaction (or, with none open, aborts an empty one) at
    /// the current epoch E: markers at E + 1, and E + 1 is the epoch from now on.
    fn end_bumped(&mut self, tid: usize, ending: Ending) -> (ProducerId, Epoch) {
        let next = self.tids[tid].epoch + 1;
        let open = self.tids[tid].open.is_some();
        if open {
            self.end_txn(tid, ending, next);
        }
        let state = &mut self.tids[tid];
        state.epoch = next;
        if open {
            self.complete_if_written(tid);
        } else {
            self.tids[tid].last_completed = Some((next, false));
        }
        (self.tids[tid].pid.expect("initialised"), next)
    }

    /// The coordinator aborts the open transaction itself (timeout, or a new producer of
    /// the same transactional id) and fences its epoch E. v1: the fence bump, marker at E +
    /// 1. v2: the fence bump and the abort's own bump: marker at E + 2.
    fn abort_and_fence(&mut self, tid: usize, ending: Ending) {
        let bumps = if self.v2() { 2 } else { 1 };
        let next = self.tids[tid].epoch + bumps;
        self.end_txn(tid, ending, next);
        self.tids[tid].epoch = next;
        self.complete_if_written(tid);
    }

    /// A second `InitProducerId` of `tid`: CONCURRENT_TRANSACTIONS while markers are due;
    /// with a transaction open, abort and fence it and answer CONCURRENT_TRANSACTIONS (the
    /// client retries); otherwise one bump for the new producer.
    fn init_again(&mut self, tid: usize) -> Result<(), KafkaError> {
        if self.tids[tid].ending.is_some() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        if self.tids[tid].open.is_some() {
            self.abort_and_fence(tid, Ending::Fenced);
            return Err(KafkaError::ConcurrentTransactions);
        }
        let state = &mut self.tids[tid];
        state.epoch += 1;
        state.last_completed = None;
        Ok(())
    }

    // --- groups

    fn prepare(&mut self) {
        if !matches!(self.group.state, GroupState::PreparingRebalance { .. }) {
            self.group.state = GroupState::PreparingRebalance { since: self.now };
            for m in self.group.members.values_mut() {
                m.rejoined = false;
            }
        }
    }

    fn assignment(&self) -> BTreeMap<String, Vec<TopicPartition>> {
        // Range over one topic of P partitions, members sorted by id.
        let ids: Vec<&String> = self.group.members.keys().collect();
        let n = ids.len();
        let mut next = 0;
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let len = P / n + usize::from(i < P % n);
                let parts = (next..next + len).map(tp).collect();
                next += len;
                ((*id).clone(), parts)
            })
            .collect()
    }

    fn maybe_complete(&mut self) -> bool {
        let preparing = matches!(self.group.state, GroupState::PreparingRebalance { .. });
        if !preparing || !self.group.members.values().all(|m| m.rejoined) {
            return false;
        }
        self.group.generation += 1;
        self.group.state = if self.group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        for m in self.group.members.values_mut() {
            m.rejoined = false;
        }
        true
    }

    fn remove_member(&mut self, id: &str) {
        self.group.members.remove(id);
        self.prepare();
        self.maybe_complete();
    }

    fn joined(&self, id: &str) -> JoinOutcome {
        JoinOutcome::Joined {
            member_id: id.to_string(),
            generation: self.group.generation,
            assignment: self.assignment().remove(id).unwrap_or_default(),
        }
    }

    /// KIP-447 fencing: the error for a commit from `member` at `generation`, if any.
    fn member_check(&self, member: &str, generation: Generation) -> Option<KafkaError> {
        if !self.group.exists || !self.group.members.contains_key(member) {
            Some(KafkaError::UnknownMemberId)
        } else if generation != self.group.generation {
            Some(KafkaError::IllegalGeneration)
        } else {
            None
        }
    }

    /// The metadata consumer `c` would send (a ghost member if it has none).
    fn metadata(&self, c: usize, stale: bool) -> GroupMetadata {
        let consumer = &self.consumers[c];
        let generation = consumer.generation.unwrap_or(0);
        GroupMetadata {
            group: GROUP.into(),
            member_id: consumer.member.clone().unwrap_or_else(|| "ghost".into()),
            generation: if stale {
                generation.wrapping_sub(1)
            } else {
                generation
            },
        }
    }

    fn fetch(
        &self,
        p: usize,
        from: Offset,
        max: usize,
        isolation: Isolation,
    ) -> Result<FetchData, KafkaError> {
        let high_watermark = self.hw(p);
        let last_stable_offset = self.lso(p);
        if from > high_watermark {
            return Err(KafkaError::OffsetOutOfRange);
        }
        let limit = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        };
        let mut records = Vec::new();
        let mut next_offset = from;
        for offset in from..limit {
            if records.len() >= max {
                break;
            }
            next_offset = offset + 1;
            match &self.logs[p][offset as usize] {
                MEntry::Marker(..) => {}
                MEntry::Data { txn: Some(t), .. }
                    if isolation == Isolation::ReadCommitted
                        && self.txns[*t].status == Status::Aborted => {}
                MEntry::Data { record, .. } => records.push(FetchedRecord {
                    offset,
                    record: record.clone(),
                }),
            }
        }
        Ok(FetchData {
            records,
            high_watermark,
            last_stable_offset,
            next_offset,
        })
    }
}

// ------------------------------------------------------------------ coverage

/// How often each interesting path ran ("sometimes" properties).
#[derive(Clone, Debug, Default)]
struct Coverage {
    duplicate_acks: u64,
    evicted_retries_rejected: u64,
    gaps_rejected: u64,
    plain_duplicates: u64,
    fenced_rejections: u64,
    fenced_aborts: u64,
    timeout_aborts: u64,
    commits: u64,
    client_aborts: u64,
    end_txn_retries: u64,
    invalid_txn_state: u64,
    unknown_producer: u64,
    read_committed_skips: u64,
    lso_below_hw: u64,
    stale_commits_rejected: u64,
    stale_txn_offsets_rejected: u64,
    txn_offsets_committed: u64,
    rebalances: u64,
    pending_joins: u64,
    session_expiries: u64,
    rebalance_timeouts: u64,
    rebalance_in_progress: u64,
    late_end_txn_fenced: u64,
    late_end_txn_ended_the_next: u64,
    empty_aborts: u64,
    unknown_producer_any_sequence: u64,
    markers_written: u64,
    lso_held_by_a_pending_marker: u64,
    concurrent_transactions: u64,
    produce_not_enough_replicas: u64,
    unstable_offsets_while_ending: u64,
}

impl Coverage {
    fn add(&mut self, o: &Coverage) {
        macro_rules! add {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        add!(
            duplicate_acks,
            evicted_retries_rejected,
            gaps_rejected,
            plain_duplicates,
            fenced_rejections,
            fenced_aborts,
            timeout_aborts,
            commits,
            client_aborts,
            end_txn_retries,
            invalid_txn_state,
            unknown_producer,
            read_committed_skips,
            lso_below_hw,
            stale_commits_rejected,
            stale_txn_offsets_rejected,
            txn_offsets_committed,
            rebalances,
            pending_joins,
            session_expiries,
            rebalance_timeouts,
            rebalance_in_progress,
            late_end_txn_fenced,
            late_end_txn_ended_the_next,
            empty_aborts,
            unknown_producer_any_sequence,
            markers_written,
            lso_held_by_a_pending_marker,
            concurrent_transactions,
            produce_not_enough_replicas,
            unstable_offsets_while_ending
        );
    }
}

// ------------------------------------------------------------------ harness

type Check = Result<(), TestCaseError>;

struct Harness {
    b: Broker,
    m: Model,
    events: Vec<Event>,
    events_checked: usize,
    /// Last offset seen per partition in Append/Marker events.
    event_offsets: Vec<Option<Offset>>,
    cov: Coverage,
}

impl Harness {
    fn new(version: TransactionVersion) -> Self {
        let mut b = Broker::with_config(BrokerConfig {
            transaction_version: version,
            abort_scan_interval_ms: SCAN,
        });
        b.create_topic(
            TOPIC,
            TopicConfig {
                partitions: P as u32,
                compacted: false,
            },
        )
        .unwrap();
        let mut events = Vec::new();
        let resp = b.handle(
            0,
            &ClientId::new("idem", "app"),
            Request::InitProducerId {
                transactional_id: None,
                transaction_timeout_ms: TXN_TIMEOUT,
            },
            &mut events,
        );
        let Response::InitProducerId(Ok((producer_id, 0))) = resp else {
            panic!("init of the idempotent producer: {resp:?}")
        };
        let idem = ProducerIdentity {
            producer_id,
            epoch: 0,
            transactional_id: None,
        };
        Harness {
            b,
            m: Model::new(idem, version),
            events,
            events_checked: 0,
            event_offsets: vec![None; P],
            cov: Coverage::default(),
        }
    }

    fn send(&mut self, client: &str, req: Request) -> Response {
        let client = ClientId::new(client, "app");
        self.b.handle(self.m.now, &client, req, &mut self.events)
    }

    fn produce(
        &mut self,
        client: &str,
        producer: Option<ProducerIdentity>,
        batches: Vec<ProduceBatch>,
    ) -> Vec<PartitionProduceResult> {
        let n = batches.len();
        match self.send(
            client,
            Request::Produce {
                producer,
                batches,
                acks: Default::default(),
            },
        ) {
            Response::Produce(results) => {
                assert_eq!(results.len(), n, "one result per batch");
                results.into_iter().map(|(_, r)| r).collect()
            }
            other => panic!("Produce answered {other:?}"),
        }
    }

    fn apply(&mut self, op: &Op) -> Check {
        match *op {
            Op::Plain { p, n, retried } => self.plain(p as usize, n, retried),
            Op::Idem { p, n } => self.idem(p as usize, n),
            Op::IdemRetry { p, back } => self.idem_retry(p as usize, back as usize),
            Op::IdemGap { p } => self.idem_gap(p as usize),
            Op::Init { h } => self.init(h as usize),
            Op::TxnSend { h, parts, n } => self.txn_send(h as usize, parts, n),
            Op::TxnOffsets { h, c, stale } => self.txn_offsets(h as usize, c as usize, stale),
            Op::End { h, commit } => self.end(h as usize, commit),
            Op::EndAgain { h, commit } => self.end_again(h as usize, commit),
            Op::Fetch {
                p,
                from,
                committed,
                max,
            } => {
                let from = Offset::from(from) % (self.m.hw(p as usize) + 2);
                let isolation = if committed {
                    Isolation::ReadCommitted
                } else {
                    Isolation::ReadUncommitted
                };
                self.fetch(p as usize, from, max as usize, isolation)
                    .map(|_| ())
            }
            Op::Join { c } => self.join(c as usize),
            Op::Heartbeat { c } => self.heartbeat(c as usize),
            Op::Leave { c } => self.leave(c as usize),
            Op::Commit { c, stale } => self.commit(c as usize, stale),
            Op::Tick { ms } => self.tick(self.m.now + ms),
            Op::Marker { k } => self.marker(k as usize),
        }?;
        self.check_state()
    }

    // --- producers

    fn plain(&mut self, p: usize, n: u8, retried: bool) -> Check {
        let records = self.m.records(p, n);
        let sends = if retried { 2 } else { 1 };
        for _ in 0..sends {
            let batch = ProduceBatch {
                tp: tp(p),
                base_sequence: None,
                records: records.clone(),
            };
            let expected = PartitionProduceResult::Appended {
                base_offset: self.m.append(p, &records, None),
                duplicate: false,
            };
            let got = self.produce("plain", None, vec![batch]);
            prop_assert_eq!(&got, &vec![expected], "plain produce");
        }
        self.cov.plain_duplicates += u64::from(retried);
        for r in &records {
            self.m.plain_values.push((r.value.clone().unwrap(), sends));
        }
        Ok(())
    }

    fn idem(&mut self, p: usize, n: u8) -> Check {
        let records = self.m.records(p, n);
        let seq = self.m.idem_next[p];
        let batch = ProduceBatch {
            tp: tp(p),
            base_sequence: Some(seq),
            records: records.clone(),
        };
        let base_offset = self.m.append(p, &records, None);
        let got = self.produce("idem", Some(self.m.idem.clone()), vec![batch]);
        prop_assert_eq!(
            &got,
            &vec![PartitionProduceResult::Appended {
                base_offset,
                duplicate: false
            }],
            "idempotent produce"
        );
        self.m.idem_next[p] += i32::from(n);
        self.m.idem_batches[p].push(IdemBatch {
            seq,
            records: records.clone(),
            base_offset,
        });
        self.m
            .idem_values
            .extend(records.into_iter().map(|r| r.value.unwrap()));
        Ok(())
    }

    fn idem_retry(&mut self, p: usize, back: usize) -> Check {
        let batches = &self.m.idem_batches[p];
        if batches.is_empty() {
            return Ok(());
        }
        let back = back % batches.len();
        let batch = batches[batches.len() - 1 - back].clone();
        let hw_before = self.m.hw(p);
        let got = self.produce(
            "idem",
            Some(self.m.idem.clone()),
            vec![ProduceBatch {
                tp: tp(p),
                base_sequence: Some(batch.seq),
                records: batch.records.clone(),
            }],
        );
        // Kafka remembers the last five batches per producer and partition.
        let expected = if back < 5 {
            self.cov.duplicate_acks += 1;
            PartitionProduceResult::Appended {
                base_offset: batch.base_offset,
                duplicate: true,
            }
        } else {
            self.cov.evicted_retries_rejected += 1;
            PartitionProduceResult::Error(KafkaError::OutOfOrderSequenceNumber)
        };
        prop_assert_eq!(
            &got,
            &vec![expected],
            "retry of an idempotent batch {} back",
            back
        );
        // Property: a retried idempotent batch appears once.
        prop_assert_eq!(
            self.b.high_watermark(&tp(p)),
            hw_before,
            "a retried batch was appended again"
        );
        Ok(())
    }

    fn idem_gap(&mut self, p: usize) -> Check {
        if self.m.idem_batches[p].is_empty() {
            // No state for the producer on this partition: any first sequence is accepted
            // (Kafka's ProducerAppendInfo.checkSequence).
            self.m.idem_next[p] += 1;
            self.cov.unknown_producer_any_sequence += 1;
            return self.idem(p, 1);
        }
        let records = self.m.records(p, 1);
        let got = self.produce(
            "idem",
            Some(self.m.idem.clone()),
            vec![ProduceBatch {
                tp: tp(p),
                base_sequence: Some(self.m.idem_next[p] + 1),
                records,
            }],
        );
        self.cov.gaps_rejected += 1;
        prop_assert_eq!(
            &got,
            &vec![PartitionProduceResult::Error(
                KafkaError::OutOfOrderSequenceNumber
            )],
            "sequence gap"
        );
        Ok(())
    }

    fn init(&mut self, h: usize) -> Check {
        let tid = self.m.handles[h].tid;
        let aborted = self.m.tids[tid].open.is_some();
        let expected = match self.m.tids[tid].pid {
            Some(_) => self.m.init_again(tid),
            None => Ok(()),
        };
        self.cov.fenced_aborts += u64::from(aborted);
        let got = self.send(
            &format!("tx{h}"),
            Request::InitProducerId {
                transactional_id: Some(TIDS[tid].into()),
                transaction_timeout_ms: TXN_TIMEOUT,
            },
        );
        if let Err(error) = expected {
            self.cov.concurrent_transactions += 1;
            prop_assert_eq!(
                &got,
                &Response::InitProducerId(Err(error)),
                "InitProducerId"
            );
            return Ok(());
        }
        let Response::InitProducerId(Ok((pid, epoch))) = got else {
            return Err(TestCaseError::fail(format!(
                "InitProducerId answered {got:?}"
            )));
        };
        let state = &mut self.m.tids[tid];
        match state.pid {
            Some(known) => prop_assert_eq!(pid, known, "a transactional id keeps its producer id"),
            None => {
                prop_assert_ne!(pid, self.m.idem.producer_id, "producer ids are unique");
                let other = &self.m.tids[1 - tid];
                prop_assert_ne!(Some(pid), other.pid, "producer ids are unique");
                self.m.tids[tid].pid = Some(pid);
            }
        }
        prop_assert_eq!(epoch, self.m.tids[tid].epoch, "epoch after init");
        self.m.handles[h].ident = Some(ProducerIdentity {
            producer_id: pid,
            epoch,
            transactional_id: Some(TIDS[tid].into()),
        });
        self.m.handles[h].seq = [0; P];
        Ok(())
    }

    fn txn_send(&mut self, h: usize, parts: u8, n: u8) -> Check {
        let ps: Vec<usize> = (0..P).filter(|p| parts & (1 << p) != 0).collect();
        let tid = self.m.handles[h].tid;
        let mut batches = Vec::new();
        let mut expected = Vec::new();
        match self.m.producer_check(h) {
            Err((ident, error)) => {
                for &p in &ps {
                    let records = self.m.records(p, n);
                    batches.push(ProduceBatch {
                        tp: tp(p),
                        base_sequence: Some(0),
                        records,
                    });
                    expected.push(PartitionProduceResult::Error(error));
                }
                self.count_producer_error(error);
                let hws: Vec<Offset> = (0..P).map(|p| self.b.high_watermark(&tp(p))).collect();
                let got = self.produce(&format!("tx{h}"), Some(ident), batches);
                prop_assert_eq!(&got, &expected, "produce of a stale or unknown producer");
                // Property: a fenced producer's requests fail and write nothing.
                for (p, hw) in hws.into_iter().enumerate() {
                    prop_assert_eq!(self.b.high_watermark(&tp(p)), hw, "a fenced producer wrote");
                }
                return Ok(());
            }
            Ok(ident) if self.m.tids[tid].ending.is_some() => {
                // The coordinator is writing markers: the verification answers
                // CONCURRENT_TRANSACTIONS, the leader NOT_ENOUGH_REPLICAS; nothing appended.
                for &p in &ps {
                    let records = self.m.records(p, n);
                    let seq = self.m.handles[h].seq[p];
                    batches.push(ProduceBatch {
                        tp: tp(p),
                        base_sequence: Some(seq),
                        records,
                    });
                    expected.push(PartitionProduceResult::Error(KafkaError::NotEnoughReplicas));
                }
                self.cov.produce_not_enough_replicas += 1;
                let got = self.produce(&format!("tx{h}"), Some(ident), batches);
                prop_assert_eq!(&got, &expected, "produce while markers are written");
            }
            Ok(ident) => {
                for &p in &ps {
                    let records = self.m.records(p, n);
                    let seq = self.m.handles[h].seq[p];
                    self.m.handles[h].seq[p] += i32::from(n);
                    let t = self.m.begin_txn(tid);
                    let base_offset = self.m.hw(p);
                    self.m.txns[t].first.entry(p).or_insert(base_offset);
                    self.m.append(p, &records, Some(t));
                    batches.push(ProduceBatch {
                        tp: tp(p),
                        base_sequence: Some(seq),
                        records,
                    });
                    expected.push(PartitionProduceResult::Appended {
                        base_offset,
                        duplicate: false,
                    });
                }
                let got = self.produce(&format!("tx{h}"), Some(ident), batches);
                prop_assert_eq!(&got, &expected, "transactional produce");
            }
        }
        Ok(())
    }

    fn count_producer_error(&mut self, error: KafkaError) {
        match error {
            KafkaError::ProducerFenced | KafkaError::InvalidProducerEpoch => {
                self.cov.fenced_rejections += 1
            }
            KafkaError::UnknownProducerId => self.cov.unknown_producer += 1,
            _ => {}
        }
    }

    fn txn_offsets(&mut self, h: usize, c: usize, stale: bool) -> Check {
        let meta = self.m.metadata(c, stale);
        let tid = self.m.handles[h].tid;
        let offsets: Vec<(TopicPartition, Offset)> = self.offsets_for(c);
        let generation_now = self.b.group_generation(GROUP);
        let (ident, expected) = match self.m.producer_check(h) {
            Err((ident, error)) => {
                self.count_producer_error(error);
                (ident, Err(error))
            }
            Ok(ident) if self.m.tids[tid].ending.is_some() => {
                self.cov.concurrent_transactions += 1;
                (ident, Err(KafkaError::ConcurrentTransactions))
            }
            Ok(ident) => match self.m.member_check(&meta.member_id, meta.generation) {
                Some(error) => {
                    if error == KafkaError::IllegalGeneration {
                        self.cov.stale_txn_offsets_rejected += 1;
                    }
                    (ident, Err(error))
                }
                None => {
                    let t = self.m.begin_txn(tid);
                    let pending = self.m.txns[t]
                        .offsets
                        .get_or_insert_with(|| (meta.generation, BTreeMap::new()));
                    pending.0 = meta.generation;
                    pending.1.extend(offsets.iter().cloned());
                    (ident, Ok(()))
                }
            },
        };
        let open_before = self.b.open_transactions();
        let got = self.send(
            &format!("tx{h}"),
            Request::TxnOffsetCommit {
                producer: ident,
                group: meta.clone(),
                offsets,
            },
        );
        prop_assert_eq!(
            &got,
            &Response::TxnOffsetCommit(expected),
            "TxnOffsetCommit"
        );
        // Property: a stale generation is rejected (KIP-447) and begins nothing.
        if generation_now != Some(meta.generation) {
            prop_assert!(
                matches!(got, Response::TxnOffsetCommit(Err(_))),
                "TxnOffsetCommit at generation {} accepted while the group is at {:?}",
                meta.generation,
                generation_now
            );
            prop_assert_eq!(
                self.b.open_transactions(),
                open_before,
                "a rejected TxnOffsetCommit began a transaction"
            );
        }
        Ok(())
    }

    fn end(&mut self, h: usize, commit: bool) -> Check {
        let ident = match self.m.producer_check(h) {
            Ok(ident) | Err((ident, _)) => ident,
        };
        self.end_with(h, ident, commit, false)
    }

    fn end_again(&mut self, h: usize, commit: bool) -> Check {
        match self.m.handles[h].last_end.clone() {
            Some((ident, ended)) => self.end_with(h, ident, commit, ended),
            None => self.end(h, commit),
        }
    }

    /// `EndTxn` of handle `h` carrying `ident`: its current identity, or the one its last
    /// `EndTxn` carried; `late`: that one ended a transaction already.
    fn end_with(&mut self, h: usize, ident: ProducerIdentity, commit: bool, late: bool) -> Check {
        let tid = self.m.handles[h].tid;
        let open_before = self.m.tids[tid].open;
        let ended_before = self.m.txns.iter().filter(|t| t.ending.is_some()).count();
        let expected = if ident.producer_id == GHOST_PID {
            self.count_producer_error(KafkaError::UnknownProducerId);
            Err(KafkaError::UnknownProducerId)
        } else if self.m.v2() {
            self.expect_end_v2(tid, ident.epoch, commit)
        } else {
            self.expect_end_v1(tid, ident.epoch, commit)
        };
        if late && open_before.is_some() {
            // A late EndTxn while a newer transaction is open: v1 ends that transaction
            // (the hazard KIP-890 part 2 removes), v2 fences it.
            match expected {
                Ok(_) => self.cov.late_end_txn_ended_the_next += 1,
                Err(KafkaError::ProducerFenced) => self.cov.late_end_txn_fenced += 1,
                Err(_) => {}
            }
        }
        let got = self.send(
            &format!("tx{h}"),
            Request::EndTxn {
                producer: ident.clone(),
                commit,
            },
        );
        prop_assert_eq!(&got, &Response::EndTxn(expected), "EndTxn");
        if self.m.v2() && late && open_before.is_some() {
            // Property (v2): a late EndTxn never ends the transaction open now.
            prop_assert_eq!(
                self.m.tids[tid].open,
                open_before,
                "a late EndTxn ended a transaction"
            );
        }
        if let Response::EndTxn(Ok(Some((producer_id, epoch)))) = got {
            // The client adopts the epoch of the answer and restarts its sequences.
            let handle = &mut self.m.handles[h];
            handle.ident = Some(ProducerIdentity {
                producer_id,
                epoch,
                transactional_id: Some(TIDS[tid].into()),
            });
            handle.seq = [0; P];
        }
        let ended = self.m.txns.iter().filter(|t| t.ending.is_some()).count() > ended_before;
        self.m.handles[h].last_end = Some((ident, ended));
        Ok(())
    }

    /// The model of a transaction ending, after its outcome is known.
    fn settle(&mut self, tid: usize, commit: bool) -> Ending {
        let t = self.m.tids[tid].open.expect("open transaction");
        if commit {
            self.cov.commits += 1;
            self.cov.txn_offsets_committed += u64::from(self.m.txns[t].offsets.is_some());
            Ending::Committed
        } else {
            self.cov.client_aborts += 1;
            Ending::AbortedByClient
        }
    }

    /// v1: the epoch must be current; an open transaction ends; with none open, only a
    /// retry of how the last one ended (at this epoch) succeeds.
    fn expect_end_v1(
        &mut self,
        tid: usize,
        epoch: Epoch,
        commit: bool,
    ) -> Result<Option<(ProducerId, Epoch)>, KafkaError> {
        let state = &self.m.tids[tid];
        if epoch != state.epoch {
            self.count_producer_error(KafkaError::ProducerFenced);
            return Err(KafkaError::ProducerFenced);
        }
        if state.ending.is_some() {
            self.cov.concurrent_transactions += 1;
            return Err(KafkaError::ConcurrentTransactions);
        }
        if state.open.is_some() {
            let ending = self.settle(tid, commit);
            self.m.end_txn(tid, ending, epoch);
            Ok(None)
        } else if state.last_completed == Some((epoch, commit)) {
            self.cov.end_txn_retries += 1;
            Ok(None)
        } else {
            self.cov.invalid_txn_state += 1;
            Err(KafkaError::InvalidTxnState)
        }
    }

    /// v2, Kafka's table in `TransactionCoordinator.endTransaction`, with E the current
    /// epoch. Ongoing: E ends it (bump), anything else is fenced. Empty: E aborts (bump), E
    /// commits nothing (INVALID_TXN_STATE), anything else is fenced. Complete(outcome): E − 1
    /// is a retry, `Ok` with E for the same outcome and INVALID_TXN_STATE for the other; E
    /// aborts again (bump) and cannot commit; anything else is fenced. Prepare (markers
    /// due): E − 1 gets CONCURRENT_TRANSACTIONS, anything else is fenced.
    fn expect_end_v2(
        &mut self,
        tid: usize,
        epoch: Epoch,
        commit: bool,
    ) -> Result<Option<(ProducerId, Epoch)>, KafkaError> {
        let state = &self.m.tids[tid];
        let current = state.epoch;
        let pid = state.pid.expect("an initialised handle");
        let fenced = Err(KafkaError::ProducerFenced);
        let invalid = Err(KafkaError::InvalidTxnState);
        if state.ending.is_some() {
            // PrepareCommit / PrepareAbort: only E − 1 (a retry) is valid, and it waits.
            if epoch + 1 == current {
                self.cov.concurrent_transactions += 1;
                return Err(KafkaError::ConcurrentTransactions);
            }
            self.count_producer_error(KafkaError::ProducerFenced);
            return fenced;
        }
        let outcome = match (state.open.is_some(), state.last_completed) {
            (true, _) if epoch == current => {
                let ending = self.settle(tid, commit);
                return Ok(Some(self.m.end_bumped(tid, ending)));
            }
            (true, _) => fenced,
            (false, Some((_, done))) if epoch + 1 == current => {
                if done == commit {
                    self.cov.end_txn_retries += 1;
                    Ok(Some((pid, current)))
                } else {
                    invalid
                }
            }
            (false, _) if epoch != current => fenced,
            (false, _) if commit => invalid,
            (false, _) => {
                self.cov.empty_aborts += 1;
                return Ok(Some(self.m.end_bumped(tid, Ending::AbortedByClient)));
            }
        };
        match outcome {
            Err(KafkaError::ProducerFenced) => {
                self.count_producer_error(KafkaError::ProducerFenced)
            }
            Err(KafkaError::InvalidTxnState) => self.cov.invalid_txn_state += 1,
            _ => {}
        }
        outcome
    }

    // --- fetch

    fn fetch(
        &mut self,
        p: usize,
        from: Offset,
        max: usize,
        isolation: Isolation,
    ) -> Result<Option<FetchData>, TestCaseError> {
        let expected = self.m.fetch(p, from, max, isolation);
        let got = self.send(
            "consumer",
            Request::Fetch {
                tp: tp(p),
                offset: from,
                max_records: max,
                isolation,
            },
        );
        let Response::Fetch { tp: got_tp, result } = got else {
            return Err(TestCaseError::fail(format!("Fetch answered {got:?}")));
        };
        prop_assert_eq!(&got_tp, &tp(p));
        prop_assert_eq!(
            &result,
            &expected,
            "fetch {} from {} {:?}",
            tp(p),
            from,
            isolation
        );
        let Ok(data) = result else { return Ok(None) };

        // Properties checked on the response itself.
        prop_assert!(
            data.last_stable_offset <= data.high_watermark,
            "LSO past HW"
        );
        prop_assert!(data.records.len() <= max);
        prop_assert!(data.next_offset >= from && data.next_offset <= data.high_watermark);
        let mut previous: Option<Offset> = None;
        for r in &data.records {
            prop_assert!(
                r.offset >= from && r.offset < data.next_offset,
                "record outside the fetched range"
            );
            if let Some(q) = previous {
                prop_assert!(r.offset > q, "fetched offsets not increasing");
            }
            previous = Some(r.offset);
            prop_assert!(r.record.value.is_some(), "a control record was returned");
        }
        if isolation == Isolation::ReadCommitted {
            for r in &data.records {
                prop_assert!(
                    r.offset < data.last_stable_offset,
                    "read_committed past the LSO"
                );
                // Property: read_committed never returns an aborted or still-open record.
                let status = self.m.status_at(p, r.offset);
                prop_assert_eq!(
                    status,
                    Some(Status::Committed),
                    "read_committed returned offset {} of {} whose transaction is {:?}",
                    r.offset,
                    tp(p),
                    status
                );
            }
            let examined = data.next_offset - from;
            if examined > data.records.len() as u64 {
                self.cov.read_committed_skips += 1;
            }
        }
        if data.last_stable_offset < data.high_watermark {
            self.cov.lso_below_hw += 1;
        }
        Ok(Some(data))
    }

    // --- groups

    fn offsets_for(&self, c: usize) -> Vec<(TopicPartition, Offset)> {
        let assigned = &self.m.consumers[c].assignment;
        let parts: Vec<TopicPartition> = if assigned.is_empty() {
            vec![tp(0)]
        } else {
            assigned.clone()
        };
        parts
            .into_iter()
            .map(|t| {
                let hw = self.m.hw(t.partition as usize);
                (t, hw)
            })
            .collect()
    }

    fn join(&mut self, c: usize) -> Check {
        let client = format!("c{c}");
        let member = self.m.consumers[c].member.clone();
        let expected = match &member {
            None => {
                self.m.members_created += 1;
                let id = format!("{client}/app-{}", self.m.members_created);
                self.m.group.exists = true;
                self.m.prepare();
                self.m.group.members.insert(
                    id.clone(),
                    MMember {
                        last_seen: self.m.now,
                        rejoined: true,
                    },
                );
                if self.m.maybe_complete() {
                    Ok(self.m.joined(&id))
                } else {
                    Ok(JoinOutcome::Pending { member_id: id })
                }
            }
            Some(id) if !self.m.group.members.contains_key(id) => Err(KafkaError::UnknownMemberId),
            Some(id) => {
                let m = self.m.group.members.get_mut(id).unwrap();
                m.last_seen = self.m.now;
                if self.m.group.state == GroupState::Stable {
                    Ok(self.m.joined(id))
                } else {
                    m.rejoined = true;
                    if self.m.maybe_complete() {
                        Ok(self.m.joined(id))
                    } else {
                        Ok(JoinOutcome::Pending {
                            member_id: id.clone(),
                        })
                    }
                }
            }
        };
        let generation_before = self.b.group_generation(GROUP);
        let got = self.send(
            &client,
            Request::JoinGroup {
                group: GROUP.into(),
                member_id: member,
                topics: vec![TOPIC.into()],
                session_timeout_ms: SESSION,
                rebalance_timeout_ms: REBALANCE,
                protocol: RebalanceProtocol::Eager,
                owned: Vec::new(),
            },
        );
        prop_assert_eq!(
            &got,
            &Response::JoinGroup(expected.clone()),
            "JoinGroup of c{}",
            c
        );
        if self.b.group_generation(GROUP) != generation_before {
            self.cov.rebalances += 1;
        }
        let consumer = &mut self.m.consumers[c];
        match expected {
            Ok(JoinOutcome::Joined {
                member_id,
                generation,
                assignment,
            }) => {
                consumer.member = Some(member_id);
                consumer.generation = Some(generation);
                consumer.assignment = assignment;
            }
            Ok(JoinOutcome::Pending { member_id }) => {
                self.cov.pending_joins += 1;
                consumer.member = Some(member_id);
            }
            Err(_) => *consumer = MConsumer::default(),
        }
        Ok(())
    }

    fn heartbeat(&mut self, c: usize) -> Check {
        let meta = self.m.metadata(c, false);
        let expected = match self.m.member_check(&meta.member_id, meta.generation) {
            Some(e) => Err(e),
            None => {
                self.m
                    .group
                    .members
                    .get_mut(&meta.member_id)
                    .unwrap()
                    .last_seen = self.m.now;
                if self.m.group.state == GroupState::Stable {
                    Ok(())
                } else {
                    self.cov.rebalance_in_progress += 1;
                    Err(KafkaError::RebalanceInProgress)
                }
            }
        };
        let got = self.send(
            &format!("c{c}"),
            Request::Heartbeat {
                group: GROUP.into(),
                member_id: meta.member_id,
                generation: meta.generation,
            },
        );
        prop_assert_eq!(&got, &Response::Heartbeat(expected), "Heartbeat of c{}", c);
        if expected == Err(KafkaError::UnknownMemberId) {
            self.m.consumers[c] = MConsumer::default();
        }
        Ok(())
    }

    fn leave(&mut self, c: usize) -> Check {
        let Some(member) = self.m.consumers[c].member.clone() else {
            return Ok(());
        };
        let expected = if self.m.group.members.contains_key(&member) {
            self.m.remove_member(&member);
            Ok(())
        } else {
            Err(KafkaError::UnknownMemberId)
        };
        let got = self.send(
            &format!("c{c}"),
            Request::LeaveGroup {
                group: GROUP.into(),
                member_id: member,
            },
        );
        prop_assert_eq!(
            &got,
            &Response::LeaveGroup(expected),
            "LeaveGroup of c{}",
            c
        );
        self.m.consumers[c] = MConsumer::default();
        Ok(())
    }

    fn commit(&mut self, c: usize, stale: bool) -> Check {
        let meta = self.m.metadata(c, stale);
        let offsets = self.offsets_for(c);
        let expected = match self.m.member_check(&meta.member_id, meta.generation) {
            Some(e) => Err(e),
            None => {
                self.m
                    .group
                    .members
                    .get_mut(&meta.member_id)
                    .unwrap()
                    .last_seen = self.m.now;
                self.m.group.committed.extend(offsets.iter().cloned());
                Ok(())
            }
        };
        let generation_now = self.b.group_generation(GROUP);
        let committed_before = self.b.committed_offsets(GROUP);
        let got = self.send(
            &format!("c{c}"),
            Request::OffsetCommit {
                group: meta.clone(),
                offsets,
            },
        );
        prop_assert_eq!(
            &got,
            &Response::OffsetCommit(expected),
            "OffsetCommit of c{}",
            c
        );
        // Property: a stale-generation commit is rejected and changes nothing.
        if generation_now != Some(meta.generation) {
            prop_assert!(
                matches!(got, Response::OffsetCommit(Err(_))),
                "a commit at generation {} was accepted while the group is at {:?}",
                meta.generation,
                generation_now
            );
            prop_assert_eq!(
                &self.b.committed_offsets(GROUP),
                &committed_before,
                "a rejected commit changed offsets"
            );
            if got == Response::OffsetCommit(Err(KafkaError::IllegalGeneration)) {
                self.cov.stale_commits_rejected += 1;
            }
        }
        Ok(())
    }

    // --- time

    fn tick(&mut self, now: Millis) -> Check {
        let m = &mut self.m;
        m.now = now;
        for tid in 0..TIDS.len() {
            if let Some(t) = m.tids[tid].open {
                // The scan runs at every multiple of SCAN and aborts what is strictly past
                // its deadline: one ran in (deadline, now].
                let deadline = m.txns[t].start + TXN_TIMEOUT;
                if now / SCAN > deadline / SCAN {
                    m.abort_and_fence(tid, Ending::Timeout);
                    self.cov.timeout_aborts += 1;
                }
            }
        }
        let expired: Vec<String> = m
            .group
            .members
            .iter()
            .filter(|(_, mm)| now >= mm.last_seen + SESSION)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            m.remove_member(&id);
            self.cov.session_expiries += 1;
        }
        if let GroupState::PreparingRebalance { since } = m.group.state {
            if now >= since + REBALANCE {
                m.group.members.retain(|_, mm| mm.rejoined);
                self.cov.rebalance_timeouts += 1;
                prop_assert!(
                    m.maybe_complete(),
                    "model: rebalance must complete at its timeout"
                );
            }
        }
        let generation_before = self.b.group_generation(GROUP);
        self.b.tick(now, &mut self.events);
        if self.b.group_generation(GROUP) != generation_before {
            self.cov.rebalances += 1;
        }
        Ok(())
    }

    // --- markers

    /// The coordinator writes the `k`th pending marker (modulo their number), if any.
    fn marker(&mut self, k: usize) -> Check {
        let due = self.m.pending_markers();
        let expected: Vec<PendingMarker> = due
            .iter()
            .map(|&(tid, part)| PendingMarker {
                transactional_id: TIDS[tid].to_string(),
                target: match part {
                    Some(p) => MarkerTarget::Partition(tp(p)),
                    None => MarkerTarget::Group(GROUP.to_string()),
                },
            })
            .collect();
        prop_assert_eq!(&self.b.pending_markers(), &expected, "pending markers");
        if due.is_empty() {
            return Ok(());
        }
        let (tid, part) = due[k % due.len()];
        self.m.write_marker(tid, part);
        self.b
            .write_pending_marker(self.m.now, &expected[k % due.len()], &mut self.events);
        self.cov.markers_written += 1;
        Ok(())
    }

    // --- whole-state checks

    fn check_state(&mut self) -> Check {
        self.b.check_invariants();
        for p in 0..P {
            let t = tp(p);
            let log = self.b.log(&t);
            let hw = self.b.high_watermark(&t);
            let lso = self.b.last_stable_offset(&t);
            prop_assert!(lso <= hw, "LSO {} > HW {} on {}", lso, hw, t);
            prop_assert_eq!(hw, self.m.hw(p), "HW of {}", t);
            prop_assert_eq!(lso, self.m.lso(p), "LSO of {}", t);
            prop_assert_eq!(log.len(), self.m.logs[p].len(), "log length of {}", t);
            for (i, (e, me)) in log.iter().zip(&self.m.logs[p]).enumerate() {
                // Property: offsets are dense.
                prop_assert_eq!(e.offset, i as Offset, "offsets of {} not dense", t);
                match me {
                    MEntry::Marker(control, epoch) => {
                        prop_assert_eq!(e.control, Some(*control), "marker at {} of {}", i, t);
                        let marker_epoch = e.producer.map(|(_, epoch)| epoch);
                        prop_assert_eq!(
                            marker_epoch,
                            Some(*epoch),
                            "epoch of the marker at {} of {}",
                            i,
                            t
                        )
                    }
                    MEntry::Data { record, txn } => {
                        prop_assert_eq!(e.control, None, "control at {} of {}", i, t);
                        prop_assert_eq!(&e.record, record, "record at {} of {}", i, t);
                        prop_assert_eq!(e.transactional, txn.is_some());
                    }
                }
                let status = self.m.status_at(p, i as Offset);
                prop_assert_eq!(
                    self.b.is_committed(&t, i as Offset),
                    status == Some(Status::Committed)
                );
                prop_assert_eq!(
                    self.b.is_aborted(&t, i as Offset),
                    status == Some(Status::Aborted)
                );
            }
        }
        let open: Vec<String> = (0..TIDS.len())
            .filter(|&i| self.m.tids[i].open.is_some() || self.m.tids[i].ending.is_some())
            .map(|i| TIDS[i].to_string())
            .collect();
        for p in 0..P {
            let held = self
                .m
                .tids
                .iter()
                .any(|t| t.ending.as_ref().is_some_and(|e| e.parts.contains(&p)));
            if held && self.m.lso(p) < self.m.hw(p) {
                self.cov.lso_held_by_a_pending_marker += 1;
            }
        }
        self.check_stable_offsets()?;
        prop_assert_eq!(self.b.open_transactions(), open, "open transactions");
        for (i, state) in self.m.tids.iter().enumerate() {
            if let Some(pid) = state.pid {
                prop_assert_eq!(self.b.producer_epoch(TIDS[i]), Some((pid, state.epoch)));
            }
        }
        let g = &self.m.group;
        prop_assert_eq!(
            self.b.group_generation(GROUP),
            g.exists.then_some(g.generation),
            "generation"
        );
        if g.exists {
            prop_assert_eq!(self.b.group_state(GROUP), Some(g.state), "group state");
        }
        let members: Vec<String> = g.members.keys().cloned().collect();
        prop_assert_eq!(self.b.group_members(GROUP), members, "members");
        prop_assert_eq!(
            &self.b.committed_offsets(GROUP),
            &g.committed,
            "committed offsets"
        );

        // Property: offsets in Append/Marker events are dense and monotonic per partition.
        for e in &self.events[self.events_checked..] {
            let (t, offset) = match e {
                Event::Append { tp, offset, .. } | Event::Marker { tp, offset, .. } => {
                    (tp, *offset)
                }
                _ => continue,
            };
            let p = t.partition as usize;
            let expected = self.event_offsets[p].map_or(0, |o| o + 1);
            prop_assert_eq!(offset, expected, "event offsets of {} not dense", t);
            self.event_offsets[p] = Some(offset);
        }
        self.events_checked = self.events.len();
        Ok(())
    }

    /// `OffsetFetch` with `require_stable`: UNSTABLE_OFFSET_COMMIT exactly while a
    /// transaction not completed carries offsets of one of the partitions.
    fn check_stable_offsets(&mut self) -> Check {
        let parts: Vec<TopicPartition> = (0..P).map(tp).collect();
        let unstable = parts.iter().any(|t| self.m.offsets_pending(t));
        let got = self.send(
            "consumer",
            Request::OffsetFetch {
                group: GROUP.into(),
                partitions: parts.clone(),
                require_stable: true,
            },
        );
        if unstable {
            prop_assert_eq!(
                got,
                Response::OffsetFetch(Err(KafkaError::UnstableOffsetCommit)),
                "a require_stable fetch with offsets pending"
            );
            if self
                .m
                .tids
                .iter()
                .any(|t| t.ending.as_ref().is_some_and(|e| e.group))
            {
                self.cov.unstable_offsets_while_ending += 1;
            }
        } else {
            let committed = &self.m.group.committed;
            let expected = parts
                .into_iter()
                .map(|t| {
                    let o = committed.get(&t).copied();
                    (t, o)
                })
                .collect();
            prop_assert_eq!(got, Response::OffsetFetch(Ok(expected)), "a stable fetch");
        }
        Ok(())
    }

    /// Settle everything (every open transaction times out, every marker is written), then
    /// check the end-state properties.
    fn finish(&mut self) -> Check {
        let later = self.m.now + TXN_TIMEOUT + SESSION + REBALANCE;
        self.tick(later)?;
        while !self.m.pending_markers().is_empty() {
            self.marker(0)?;
        }
        self.check_state()?;
        prop_assert!(self.b.open_transactions().is_empty());
        for p in 0..P {
            let t = tp(p);
            prop_assert_eq!(self.b.last_stable_offset(&t), self.b.high_watermark(&t));
        }
        let read_all =
            |h: &mut Harness, isolation| -> Result<BTreeMap<String, usize>, TestCaseError> {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                for p in 0..P {
                    let mut from = 0;
                    loop {
                        let data = h
                            .fetch(p, from, 64, isolation)?
                            .ok_or_else(|| TestCaseError::fail("a fetch below the HW failed"))?;
                        for r in data.records {
                            *seen.entry(r.record.value.unwrap()).or_default() += 1;
                        }
                        if data.next_offset == from {
                            break;
                        }
                        from = data.next_offset;
                    }
                    prop_assert_eq!(
                        from,
                        h.b.high_watermark(&tp(p)),
                        "a full read reaches the HW"
                    );
                }
                Ok(seen)
            };
        let committed = read_all(self, Isolation::ReadCommitted)?;
        let uncommitted = read_all(self, Isolation::ReadUncommitted)?;

        // Property: a committed transaction's records are all visible or none; all when
        // committed, none when aborted (by the client, by fencing or by timeout).
        for (i, txn) in self.m.txns.iter().enumerate() {
            let visible = txn
                .values
                .iter()
                .filter(|(_, v)| committed.contains_key(v))
                .count();
            prop_assert!(
                visible == 0 || visible == txn.values.len(),
                "transaction {} is partly visible: {} of {}",
                i,
                visible,
                txn.values.len()
            );
            let should = if txn.ending == Some(Ending::Committed) {
                txn.values.len()
            } else {
                0
            };
            prop_assert_eq!(
                visible,
                should,
                "visibility of transaction {} ending {:?}",
                i,
                txn.ending
            );
            // Property: a fenced producer's writes are never committed.
            if matches!(txn.ending, Some(Ending::Fenced | Ending::Timeout)) {
                for (p, v) in &txn.values {
                    let t = tp(*p);
                    let offset = self
                        .b
                        .log(&t)
                        .iter()
                        .find(|e| e.record.value.as_deref() == Some(v))
                        .map(|e| e.offset)
                        .expect("record in the log");
                    prop_assert!(
                        !self.b.is_committed(&t, offset),
                        "a fenced write {} is committed",
                        v
                    );
                    prop_assert!(self.b.is_aborted(&t, offset));
                }
            }
        }
        // Property: a retried idempotent batch appears once; a retried plain one twice.
        for v in &self.m.idem_values {
            prop_assert_eq!(
                uncommitted.get(v).copied(),
                Some(1),
                "idempotent value {} copies",
                v
            );
            prop_assert_eq!(committed.get(v).copied(), Some(1));
        }
        for (v, copies) in &self.m.plain_values {
            prop_assert_eq!(
                uncommitted.get(v).copied(),
                Some(*copies),
                "plain value {} copies",
                v
            );
        }
        Ok(())
    }
}

/// Apply a history to a broker of `version` and to the model of that version.
fn run_on(ops: &[Op], version: TransactionVersion) -> Result<Coverage, TestCaseError> {
    let mut h = Harness::new(version);
    h.check_state()?;
    for op in ops {
        h.apply(op)
            .map_err(|e| TestCaseError::fail(format!("transaction version {version}: {e}")))?;
    }
    h.finish()?;
    Ok(h.cov)
}

/// The same history under transaction protocol v1 and v2.
fn run(ops: &[Op]) -> Result<Coverage, TestCaseError> {
    let mut cov = run_on(ops, TransactionVersion::V1)?;
    cov.add(&run_on(ops, TransactionVersion::V2)?);
    Ok(cov)
}

// ------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(Config {
        cases: CASES,
        // Shrunk failures are kept (cargo runs tests from the package root, `sim/`).
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/broker_model.proptest-regressions",
        ))),
        ..Config::default()
    })]

    /// The broker agrees with the model on every response and every state, over
    /// histories that mix everything.
    #[test]
    fn broker_agrees_with_the_model(ops in history(BALANCED)) {
        run(&ops)?;
    }

    /// read_committed never returns an aborted or still-open record: many transactions,
    /// aborts and fetches.
    #[test]
    fn read_committed_never_returns_aborted_or_open_records(ops in history(TXN_HEAVY)) {
        run(&ops)?;
    }

    /// A committed transaction's records are all visible or none.
    #[test]
    fn committed_transactions_are_all_or_nothing(ops in history(COMMIT_HEAVY)) {
        run(&ops)?;
    }

    /// A fenced producer (second init of the same transactional.id, or a transaction
    /// timeout) can neither write nor commit: many inits and ticks.
    #[test]
    fn fenced_producers_never_commit(ops in history(FENCE_HEAVY)) {
        run(&ops)?;
    }

    /// A retried idempotent batch appears once; offsets stay dense and monotonic.
    #[test]
    fn retried_idempotent_batches_appear_once(ops in history(IDEMPOTENCE_HEAVY)) {
        run(&ops)?;
    }

    /// A stale-generation offset commit (plain or transactional) is rejected: many joins,
    /// leaves, heartbeats, commits and session/rebalance timeouts.
    #[test]
    fn stale_generation_commits_are_rejected(ops in history(GROUP_HEAVY)) {
        run(&ops)?;
    }
}

/// "Sometimes" properties: the generators really reach every path the properties are
/// about (a property that never meets a fenced producer proves nothing about fencing).
#[test]
fn every_interesting_path_is_exercised() {
    let mut runner = TestRunner::deterministic();
    let mut total = Coverage::default();
    let mixes = [
        BALANCED,
        TXN_HEAVY,
        COMMIT_HEAVY,
        FENCE_HEAVY,
        IDEMPOTENCE_HEAVY,
        GROUP_HEAVY,
    ];
    for mix in mixes {
        let strategy = history(mix);
        for _ in 0..40 {
            let ops = strategy.new_tree(&mut runner).unwrap().current();
            let cov = run(&ops).unwrap_or_else(|e| panic!("{e}\nops: {ops:?}"));
            total.add(&cov);
        }
    }
    let c = &total;
    let probes = [
        ("duplicate acks", c.duplicate_acks),
        ("evicted retries rejected", c.evicted_retries_rejected),
        ("sequence gaps rejected", c.gaps_rejected),
        ("plain duplicates", c.plain_duplicates),
        ("fenced rejections", c.fenced_rejections),
        ("open transactions aborted by fencing", c.fenced_aborts),
        ("transactions aborted by timeout", c.timeout_aborts),
        ("commits", c.commits),
        ("client aborts", c.client_aborts),
        ("EndTxn retries", c.end_txn_retries),
        ("EndTxn without a transaction", c.invalid_txn_state),
        ("unknown producer ids", c.unknown_producer),
        ("read_committed skipping records", c.read_committed_skips),
        ("LSO below HW", c.lso_below_hw),
        ("stale commits rejected", c.stale_commits_rejected),
        (
            "stale transactional offsets rejected",
            c.stale_txn_offsets_rejected,
        ),
        ("transactional offsets committed", c.txn_offsets_committed),
        ("rebalances", c.rebalances),
        ("pending joins", c.pending_joins),
        ("session expiries", c.session_expiries),
        ("rebalance timeouts", c.rebalance_timeouts),
        ("heartbeats during a rebalance", c.rebalance_in_progress),
        ("late EndTxn fenced (v2)", c.late_end_txn_fenced),
        (
            "late EndTxn ending the next transaction (v1)",
            c.late_end_txn_ended_the_next,
        ),
        ("empty aborts bumping the epoch (v2)", c.empty_aborts),
        (
            "first batches of an unknown producer at a sequence above 0",
            c.unknown_producer_any_sequence,
        ),
        ("markers written one by one", c.markers_written),
        (
            "an LSO held by a pending marker",
            c.lso_held_by_a_pending_marker,
        ),
        ("CONCURRENT_TRANSACTIONS answers", c.concurrent_transactions),
        (
            "produce answered NOT_ENOUGH_REPLICAS",
            c.produce_not_enough_replicas,
        ),
        (
            "offsets unstable while their marker is due",
            c.unstable_offsets_while_ending,
        ),
    ];
    let never: Vec<&str> = probes
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(name, _)| *name)
        .collect();
    assert!(
        never.is_empty(),
        "never exercised: {never:?}\ncoverage: {total:?}"
    );
    eprintln!("coverage: {total:?}");
}

/// A fixed story, readable on its own: a zombie transactional producer is fenced by its
/// replacement, whose transaction commits; the zombie's records stay invisible.
#[test]
fn zombie_fenced_by_its_replacement() {
    let ops = [
        Op::Init { h: 0 },
        Op::TxnSend {
            h: 0,
            parts: 0b011,
            n: 2,
        },
        // The replacement's InitProducerId aborts the zombie's transaction and answers
        // CONCURRENT_TRANSACTIONS; once both abort markers are written, its retry succeeds.
        Op::Init { h: 1 },
        Op::Marker { k: 0 },
        Op::Marker { k: 0 },
        Op::Init { h: 1 },
        Op::TxnSend {
            h: 0,
            parts: 0b100,
            n: 1,
        },
        Op::End { h: 0, commit: true },
        Op::TxnSend {
            h: 1,
            parts: 0b001,
            n: 1,
        },
        Op::End { h: 1, commit: true },
        Op::Marker { k: 0 },
        Op::Fetch {
            p: 0,
            from: 0,
            committed: true,
            max: 8,
        },
    ];
    for version in [TransactionVersion::V1, TransactionVersion::V2] {
        let cov = run_on(&ops, version).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cov.fenced_rejections, 2, "{version}");
        assert_eq!(cov.fenced_aborts, 1, "{version}");
        assert_eq!(cov.commits, 1, "{version}");
    }
}
