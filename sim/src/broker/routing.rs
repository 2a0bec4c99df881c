//! Which broker of a cluster a request goes to, and whether a broker is the one: the
//! partition's leader for data requests, the coordinator (the leader of the coordinator
//! partition) for transaction and group requests.
//!
//! The simulator's driver sends every request to the cluster as a whole and the model
//! answers `NOT_LEADER_OR_FOLLOWER` / `NOT_COORDINATOR` when no live leader is reachable;
//! a driver that gives each broker its own address (the madsim driver) routes with
//! [`route`] and [`Broker::broker_for`], as Kafka's clients do from their metadata
//! (`clients/src/main/java/org/apache/kafka/clients/Metadata.java`, `NetworkClient`'s
//! `leastLoadedNode` for a metadata request; `FindCoordinatorRequest` for a coordinator,
//! `TransactionManager.lookupCoordinator`, `AbstractCoordinator.lookupCoordinator`).

use super::cluster::BrokerId;
use super::coordinator::Coordinator;
use super::Broker;
use crate::protocol::{
    FetchResult, KafkaError, PartitionProduceResult, Request, Response, TopicPartition,
};

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// The leader of the partition (`Produce`, `Fetch`).
    Leader(TopicPartition),
    /// The transaction coordinator of a transactional id (`InitProducerId`, `EndTxn`).
    TxnCoordinator(String),
    /// The group coordinator of a group (`JoinGroup`, `Heartbeat`, `LeaveGroup`,
    /// `OffsetCommit`, `OffsetFetch`, and `TxnOffsetCommit`, which Kafka's
    /// `TransactionManager.TxnOffsetCommitHandler` sends to the group's coordinator).
    GroupCoordinator(String),
    /// Any broker (`InitProducerId` without a transactional id: `leastLoadedNode`).
    Any,
}

/// Where `request` goes. A `Produce` goes to the leader of its first batch's partition
/// (Kafka's `Sender` groups batches by leader; the clients here send one per request).
pub fn route(request: &Request) -> Route {
    match request {
        Request::Produce { batches, .. } => batches
            .first()
            .map_or(Route::Any, |b| Route::Leader(b.tp.clone())),
        Request::Fetch { tp, .. } => Route::Leader(tp.clone()),
        // Kafka's consumer sends one fetch per leader (`AbstractFetch.prepareFetchRequests`);
        // the clients here send one for all, routed by its first partition.
        Request::FetchMany { partitions, .. } => partitions
            .first()
            .map_or(Route::Any, |(tp, _)| Route::Leader(tp.clone())),
        Request::InitProducerId {
            transactional_id: Some(tid),
            ..
        } => Route::TxnCoordinator(tid.clone()),
        Request::InitProducerId { .. } => Route::Any,
        Request::EndTxn { producer, .. } => match &producer.transactional_id {
            Some(tid) => Route::TxnCoordinator(tid.clone()),
            None => Route::Any,
        },
        Request::TxnOffsetCommit { group, .. } | Request::OffsetCommit { group, .. } => {
            Route::GroupCoordinator(group.group.clone())
        }
        Request::JoinGroup { group, .. }
        | Request::Heartbeat { group, .. }
        | Request::LeaveGroup { group, .. }
        | Request::OffsetFetch { group, .. } => Route::GroupCoordinator(group.clone()),
    }
}

/// The answer of a broker that does not lead the request's partition or coordinate its
/// id: `NOT_LEADER_OR_FOLLOWER` for data (`ReplicaManager.appendRecords` /
/// `ReplicaManager.fetchMessages` on a partition this broker does not lead),
/// `NOT_COORDINATOR` for the coordinators' requests (`TransactionCoordinator` and
/// `GroupCoordinatorService` for an id whose partition this broker does not lead).
pub fn not_here(request: &Request) -> Response {
    let e = KafkaError::NotCoordinator;
    match request {
        Request::Produce { batches, .. } => Response::Produce(
            batches
                .iter()
                .map(|b| {
                    let error = PartitionProduceResult::Error(KafkaError::NotLeaderOrFollower);
                    (b.tp.clone(), error)
                })
                .collect(),
        ),
        Request::Fetch { tp, .. } => Response::Fetch {
            tp: tp.clone(),
            result: Err(KafkaError::NotLeaderOrFollower),
        },
        Request::FetchMany { partitions, .. } => Response::FetchMany(
            partitions
                .iter()
                .map(|(tp, offset)| FetchResult {
                    tp: tp.clone(),
                    offset: *offset,
                    result: Err(KafkaError::NotLeaderOrFollower),
                })
                .collect(),
        ),
        Request::InitProducerId { .. } => Response::InitProducerId(Err(e)),
        Request::TxnOffsetCommit { .. } => Response::TxnOffsetCommit(Err(e)),
        Request::EndTxn { .. } => Response::EndTxn(Err(e)),
        Request::JoinGroup { .. } => Response::JoinGroup(Err(e)),
        Request::Heartbeat { .. } => Response::Heartbeat(Err(e)),
        Request::LeaveGroup { .. } => Response::LeaveGroup(Err(e)),
        Request::OffsetCommit { .. } => Response::OffsetCommit(Err(e)),
        Request::OffsetFetch { .. } => Response::OffsetFetch(Err(e)),
    }
}

/// The routing error of an answer, if it has one: `NOT_LEADER_OR_FOLLOWER` or
/// `NOT_COORDINATOR`, after which a client refreshes its metadata (`Metadata.requestUpdate`
/// from `Sender.completeBatch` / the fetcher) or looks its coordinator up again
/// (`AbstractCoordinator.markCoordinatorUnknown`, `TransactionManager.lookupCoordinator`).
pub fn misrouted(answer: &Response) -> Option<KafkaError> {
    let e = match answer {
        Response::Produce(results) => results.iter().find_map(|(_, r)| match r {
            PartitionProduceResult::Error(e) => Some(*e),
            PartitionProduceResult::Appended { .. } => None,
        })?,
        Response::Fetch { result, .. } => *result.as_ref().err()?,
        Response::FetchMany(results) => results
            .iter()
            .find_map(|r| r.result.as_ref().err().copied())?,
        Response::InitProducerId(r) => *r.as_ref().err()?,
        Response::EndTxn(r) => *r.as_ref().err()?,
        Response::JoinGroup(r) => *r.as_ref().err()?,
        Response::OffsetFetch(r) => *r.as_ref().err()?,
        Response::TxnOffsetCommit(r)
        | Response::Heartbeat(r)
        | Response::LeaveGroup(r)
        | Response::OffsetCommit(r) => *r.as_ref().err()?,
    };
    matches!(
        e,
        KafkaError::NotLeaderOrFollower | KafkaError::NotCoordinator
    )
    .then_some(e)
}

impl Broker {
    /// The broker `route` leads to now: the partition's (or coordinator partition's)
    /// leader, `None` while it has none (offline) or for [`Route::Any`]. On a single
    /// broker, broker 0.
    pub fn broker_for(&self, route: &Route) -> Option<BrokerId> {
        let Some(cluster) = &self.cluster else {
            return Some(0);
        };
        let tp = match route {
            Route::Leader(tp) => tp.clone(),
            Route::TxnCoordinator(tid) => self.coordinator_tp(Coordinator::Transaction, tid)?,
            Route::GroupCoordinator(g) => self.coordinator_tp(Coordinator::Group, g)?,
            Route::Any => return None,
        };
        cluster.partitions.get(&tp).and_then(|r| r.leader)
    }

    /// Whether broker `b`'s process is up (reachable by the other brokers or not). On a
    /// single broker, broker 0 always is.
    pub fn broker_serving(&self, b: BrokerId) -> bool {
        match &self.cluster {
            None => b == 0,
            Some(c) => c.brokers.get(b as usize).is_some_and(|l| l.serving()),
        }
    }
}
