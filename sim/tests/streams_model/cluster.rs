//! The broker side of the streams model test: a small, faithful broker for one group with
//! one member and one transactional id.

use super::*;
use oversell_sim::protocol::{
    Epoch, FetchData, FetchResult, FetchedRecord, PartitionProduceResult, Record,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Committed,
    Open,
    Aborted,
}

/// What the broker knows, for one group with one member and one transactional id.
pub(crate) struct Cluster {
    pub(crate) input: Vec<Vec<Record>>,
    pub(crate) changelog: Vec<Vec<(Record, Status)>>,
    pub(crate) committed: BTreeMap<TopicPartition, Offset>,
    /// `TxnOffsetCommit`s of the open transaction.
    pub(crate) pending: BTreeMap<TopicPartition, Offset>,
    pub(crate) epoch: Epoch,
    pub(crate) generation: Generation,
    /// The member the group knows (None: expelled or not joined yet).
    pub(crate) member: Option<String>,
}

impl Cluster {
    pub(crate) fn new() -> Self {
        let input = (0..PARTS)
            .map(|p| {
                (0..RECORDS)
                    .map(|o| Record {
                        key: Some(input_key(p, o)),
                        value: Some(format!("r{o}")),
                        timestamp: o * 10,
                        headers: Vec::new(),
                    })
                    .collect()
            })
            .collect();
        Cluster {
            input,
            changelog: vec![Vec::new(); PARTS as usize],
            committed: BTreeMap::new(),
            pending: BTreeMap::new(),
            epoch: 0,
            generation: 0,
            member: None,
        }
    }

    pub(crate) fn end_txn(&mut self, commit: bool) {
        let to = if commit {
            Status::Committed
        } else {
            Status::Aborted
        };
        for log in &mut self.changelog {
            for (_, s) in log.iter_mut().filter(|(_, s)| *s == Status::Open) {
                *s = to;
            }
        }
        let pending = std::mem::take(&mut self.pending);
        if commit {
            self.committed.extend(pending);
        }
    }

    /// The committed changelog of partition `p`, folded into a store.
    pub(crate) fn committed_store(&self, p: u32) -> Store {
        let mut store = Store::new();
        for (r, s) in &self.changelog[p as usize] {
            if *s == Status::Committed {
                let key = r.key.clone().expect("keyed");
                match &r.value {
                    Some(v) => store.insert(key, v.clone()),
                    None => store.remove(&key),
                };
            }
        }
        store
    }

    pub(crate) fn group_ok(&self, group: &GroupMetadata) -> Result<(), KafkaError> {
        match &self.member {
            Some(m) if *m == group.member_id && group.generation == self.generation => Ok(()),
            Some(m) if *m == group.member_id => Err(KafkaError::IllegalGeneration),
            _ => Err(KafkaError::UnknownMemberId),
        }
    }

    pub(crate) fn answer(&mut self, request: &Request, choice: u8) -> Response {
        let fail = choice == 0;
        match request {
            Request::InitProducerId { .. } => {
                if fail {
                    return Response::InitProducerId(Err(KafkaError::CoordinatorLoadInProgress));
                }
                self.end_txn(false);
                self.epoch += 1;
                Response::InitProducerId(Ok((7, self.epoch)))
            }
            Request::JoinGroup { .. } => Response::JoinGroup(Ok(self.join(choice))),
            Request::OffsetFetch {
                partitions,
                require_stable,
                ..
            } => {
                let unstable = partitions.iter().any(|tp| self.pending.contains_key(tp));
                if fail || (*require_stable && unstable) {
                    return Response::OffsetFetch(Err(KafkaError::UnstableOffsetCommit));
                }
                let offsets = partitions
                    .iter()
                    .map(|tp| (tp.clone(), self.committed.get(tp).copied()))
                    .collect();
                Response::OffsetFetch(Ok(offsets))
            }
            Request::Fetch {
                tp,
                offset,
                max_records,
                isolation,
            } => self.fetch(tp, *offset, *max_records, *isolation),
            // Answered at once: what a broker does when it has data, or when the held
            // fetch's `fetch.max.wait.ms` runs out.
            Request::FetchMany {
                partitions,
                max_records,
                isolation,
                ..
            } => Response::FetchMany(
                partitions
                    .iter()
                    .map(|(tp, offset)| {
                        let Response::Fetch { result, .. } =
                            self.fetch(tp, *offset, *max_records, *isolation)
                        else {
                            unreachable!("a fetch answers a fetch")
                        };
                        FetchResult {
                            tp: tp.clone(),
                            offset: *offset,
                            result,
                        }
                    })
                    .collect(),
            ),
            _ => self.answer_commit(request, fail),
        }
    }

    /// Produce, offsets to a transaction, end of a transaction, offset commit.
    pub(crate) fn answer_commit(&mut self, request: &Request, fail: bool) -> Response {
        match request {
            Request::Produce { batches, .. } => {
                let results = batches
                    .iter()
                    .map(|b| (b.tp.clone(), self.append(&b.tp, &b.records, request, fail)))
                    .collect();
                Response::Produce(results)
            }
            Request::TxnOffsetCommit { group, offsets, .. } => {
                let result = if fail {
                    self.end_txn(false);
                    Err(KafkaError::ProducerFenced)
                } else {
                    self.group_ok(group)
                };
                if result.is_ok() {
                    self.pending.extend(offsets.iter().cloned());
                }
                Response::TxnOffsetCommit(result)
            }
            Request::EndTxn { commit, .. } => {
                if fail {
                    self.end_txn(false);
                    return Response::EndTxn(Err(KafkaError::ProducerFenced));
                }
                self.end_txn(*commit);
                Response::EndTxn(Ok(None))
            }
            Request::OffsetCommit { group, offsets } => {
                let result = if fail {
                    Err(KafkaError::RebalanceInProgress)
                } else {
                    self.group_ok(group)
                };
                if result.is_ok() {
                    self.committed.extend(offsets.iter().cloned());
                }
                Response::OffsetCommit(result)
            }
            _ => unreachable!("answered elsewhere"),
        }
    }

    pub(crate) fn join(&mut self, choice: u8) -> JoinOutcome {
        let member_id = "i0/app-m".to_string();
        self.member = Some(member_id.clone());
        if choice == 1 {
            return JoinOutcome::Pending { member_id };
        }
        self.generation += 1;
        let assignment = match choice % 4 {
            2 => vec![TopicPartition::new(IN, 0)],
            3 => vec![TopicPartition::new(IN, 1)],
            _ => (0..PARTS).map(|p| TopicPartition::new(IN, p)).collect(),
        };
        JoinOutcome::Joined {
            member_id,
            generation: self.generation,
            assignment,
        }
    }

    pub(crate) fn fetch(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        max: usize,
        iso: Isolation,
    ) -> Response {
        let p = tp.partition as usize;
        let entries: Vec<(Record, Status)> = if tp.topic == IN {
            self.input[p]
                .iter()
                .map(|r| (r.clone(), Status::Committed))
                .collect()
        } else {
            self.changelog[p].clone()
        };
        let hw = entries.len() as Offset;
        let lso = entries
            .iter()
            .position(|(_, s)| *s == Status::Open)
            .map_or(hw, |o| o as Offset);
        let upto = if iso == Isolation::ReadCommitted {
            lso
        } else {
            hw
        };
        let end = upto.min(offset + max as Offset).max(offset);
        let records = (offset..end)
            .filter(|o| {
                iso == Isolation::ReadUncommitted || entries[*o as usize].1 != Status::Aborted
            })
            .map(|o| FetchedRecord {
                offset: o,
                record: entries[o as usize].0.clone(),
            })
            .collect();
        let data = FetchData {
            records,
            high_watermark: hw,
            last_stable_offset: lso,
            next_offset: end,
        };
        Response::Fetch {
            tp: tp.clone(),
            result: Ok(data),
        }
    }

    pub(crate) fn append(
        &mut self,
        tp: &TopicPartition,
        records: &[Record],
        request: &Request,
        fail: bool,
    ) -> PartitionProduceResult {
        if fail {
            return PartitionProduceResult::Error(KafkaError::OutOfOrderSequenceNumber);
        }
        let transactional = matches!(request, Request::Produce { producer: Some(p), .. }
            if p.transactional_id.is_some());
        let status = if transactional {
            Status::Open
        } else {
            Status::Committed
        };
        if tp.topic == OUT {
            return PartitionProduceResult::Appended {
                base_offset: 0,
                duplicate: false,
            };
        }
        let log = &mut self.changelog[tp.partition as usize];
        let base_offset = log.len() as Offset;
        log.extend(records.iter().map(|r| (r.clone(), status)));
        PartitionProduceResult::Appended {
            base_offset,
            duplicate: false,
        }
    }

    /// The member left the group (its poll timeout).
    pub(crate) fn leave(&mut self) -> Response {
        self.member = None;
        self.generation += 1;
        Response::LeaveGroup(Ok(()))
    }

    pub(crate) fn heartbeat(&mut self, choice: u8) -> Result<(), KafkaError> {
        match choice {
            1 => Err(KafkaError::RebalanceInProgress),
            2 => {
                // The group moved to a new generation without this member's join.
                self.generation += 1;
                Err(KafkaError::IllegalGeneration)
            }
            3 => {
                self.member = None;
                self.generation += 1;
                Err(KafkaError::UnknownMemberId)
            }
            _ => Ok(()),
        }
    }
}
