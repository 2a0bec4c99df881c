//! One readable line per trace event, for terminals and logs.

use crate::protocol::{Isolation, TopicPartition};
use crate::trace::Event;
use std::fmt;

fn short(value: &Option<String>) -> String {
    match value {
        None => "∅".to_string(),
        Some(v) if v.len() > 96 => format!(
            "{}…",
            &v[..v.char_indices().nth(95).map_or(v.len(), |(i, _)| i)]
        ),
        Some(v) => v.clone(),
    }
}

fn tps(list: &[TopicPartition]) -> String {
    let parts: Vec<String> = list.iter().map(|tp| tp.to_string()).collect();
    format!("[{}]", parts.join(" "))
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Append { .. }
            | Event::DuplicateBatch { .. }
            | Event::Rejected { .. }
            | Event::Marker { .. }
            | Event::Fetch { .. }
            | Event::Compacted { .. } => self.fmt_log(f),
            Event::Replicated { .. }
            | Event::Truncated { .. }
            | Event::IsrChanged { .. }
            | Event::LeaderElected { .. }
            | Event::BrokerCrashed { .. }
            | Event::BrokerFenced { .. }
            | Event::BrokerRestarted { .. }
            | Event::HangingTransaction { .. } => self.fmt_cluster(f),
            Event::BrokerPartitioned { .. }
            | Event::PartitionHealed { .. }
            | Event::SlowFollower { .. } => self.fmt_netfault(f),
            Event::CoordinatorLoaded { .. }
            | Event::TxnStateLoaded { .. }
            | Event::GroupLoaded { .. } => self.fmt_coordinator_load(f),
            Event::ProducerInit { .. }
            | Event::Fenced { .. }
            | Event::TxnBegin { .. }
            | Event::TxnOffsets { .. }
            | Event::TxnCommit { .. }
            | Event::TxnAbort { .. } => self.fmt_txn(f),
            Event::Rebalance { .. }
            | Event::MemberJoined { .. }
            | Event::MemberLeft { .. }
            | Event::OffsetCommit { .. } => self.fmt_group(f),
            Event::Deliver { .. }
            | Event::Drop { .. }
            | Event::Duplicate { .. }
            | Event::Delay { .. }
            | Event::Crash { .. }
            | Event::Restart { .. }
            | Event::Pause { .. }
            | Event::Resume { .. }
            | Event::Timeout { .. } => self.fmt_world(f),
            Event::Assigned { .. }
            | Event::Restored { .. }
            | Event::Process { .. }
            | Event::StorePut { .. }
            | Event::StoreGet { .. }
            | Event::Punctuate { .. }
            | Event::Acked { .. }
            | Event::ClientError { .. }
            | Event::Note { .. } => self.fmt_client(f),
        }
    }
}

impl Event {
    /// The partition log: appends, markers, fetches, compaction, rejections.
    fn fmt_log(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Append {
                tp,
                offset,
                key,
                value,
                producer_id,
                transactional,
                ..
            } => {
                let txn = if *transactional { " (txn)" } else { "" };
                let pid = producer_id.map(|p| format!(" pid {p}")).unwrap_or_default();
                write!(f, "append {tp}@{offset}{txn}{pid} key={} {}", short(key), short(value))
            }
            Event::DuplicateBatch {
                tp,
                producer_id,
                base_sequence,
                base_offset,
            } => write!(
                f,
                "duplicate batch from pid {producer_id} seq {base_sequence} to {tp}: already at @{base_offset}, not appended"
            ),
            Event::Rejected { request, error, detail } => write!(f, "broker rejects {request}: {error:?} ({detail})"),
            Event::Marker {
                tp,
                offset,
                producer_id,
                control,
            } => write!(f, "marker {control:?} {tp}@{offset} pid {producer_id}"),
            Event::Fetch {
                client,
                tp,
                from,
                count,
                next,
                isolation,
            } => {
                let iso = match isolation {
                    Isolation::ReadCommitted => "committed",
                    Isolation::ReadUncommitted => "uncommitted",
                };
                write!(f, "{client} fetch {tp}@{from} ({iso}): {count} records, next {next}")
            }
            Event::Compacted { tp, removed, below } => {
                write!(f, "compact {tp}: {removed} superseded records removed below @{below}")
            }
            _ => unreachable!("dispatched by fmt"),
        }
    }

    /// Replication and the controller.
    fn fmt_cluster(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Replicated {
                tp,
                broker,
                from,
                to,
            } => {
                write!(f, "broker {broker} replicates {tp} @{from}..@{to}")
            }
            Event::Truncated {
                tp,
                broker,
                to,
                removed,
            } => write!(
                f,
                "broker {broker} truncates {tp} to @{to}: {removed} entries gone"
            ),
            Event::IsrChanged { tp, isr } => write!(f, "{tp} ISR {isr:?}"),
            Event::LeaderElected {
                tp,
                leader,
                epoch,
                isr,
                unclean,
            } => {
                let who = leader.map_or("no leader (offline)".to_string(), |l| {
                    format!("leader broker {l}")
                });
                let how = if *unclean { " UNCLEAN" } else { "" };
                write!(f, "{tp} epoch {epoch}: {who}{how}, ISR {isr:?}")
            }
            Event::BrokerCrashed { broker, lost } => {
                write!(f, "broker {broker} crashes ({lost} unflushed entries lost)")
            }
            Event::BrokerFenced { broker } => write!(f, "controller fences broker {broker}"),
            Event::BrokerRestarted { broker } => write!(f, "broker {broker} restarts"),
            Event::HangingTransaction { tp, first } => {
                write!(
                    f,
                    "{tp}: a completed transaction from @{first} lost its marker: hanging"
                )
            }
            _ => unreachable!("dispatched by fmt"),
        }
    }

    /// Network partitions and slow followers.
    fn fmt_netfault(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::BrokerPartitioned {
                broker,
                from_brokers,
                from_clients,
            } => {
                let from = match (from_brokers, from_clients) {
                    (true, true) => "the other brokers, the controller and the clients",
                    (true, false) => "the other brokers and the controller",
                    _ => "the clients",
                };
                write!(f, "broker {broker} is partitioned from {from}")
            }
            Event::PartitionHealed { broker } => {
                write!(f, "broker {broker}'s network partition heals")
            }
            Event::SlowFollower { broker, slow: true } => {
                write!(f, "broker {broker}'s follower fetches stall")
            }
            Event::SlowFollower {
                broker,
                slow: false,
            } => {
                write!(f, "broker {broker}'s follower fetches resume")
            }
            _ => unreachable!("dispatched by fmt"),
        }
    }

    /// A coordinator's state loaded from its log by a new leader.
    fn fmt_coordinator_load(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::CoordinatorLoaded {
                tp,
                broker,
                transactions,
                groups,
            } => write!(
                f,
                "{tp}: broker {broker} loaded the coordinator state \
                 ({transactions} transactional ids, {groups} groups)"
            ),
            Event::TxnStateLoaded {
                transactional_id,
                producer_id,
                epoch,
                acknowledged,
            } => {
                let lost = if *acknowledged {
                    "acknowledged records lost"
                } else {
                    "unreplicated records lost"
                };
                write!(
                    f,
                    "{transactional_id} loaded back at pid {producer_id} epoch {epoch} ({lost})"
                )
            }
            Event::GroupLoaded {
                group,
                generation,
                assignment,
            } => write!(
                f,
                "group {group} loaded back at gen {generation} ({} members; later generations' records lost)",
                assignment.len()
            ),
            _ => unreachable!("dispatched by fmt"),
        }
    }

    /// The transaction coordinator: producer ids, fencing, transactions.
    fn fmt_txn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::ProducerInit {
                transactional_id,
                producer_id,
                epoch,
            } => match transactional_id {
                Some(t) => write!(
                    f,
                    "init transactional producer {t}: pid {producer_id} epoch {epoch}"
                ),
                None => write!(f, "init idempotent producer: pid {producer_id}"),
            },
            Event::Fenced {
                transactional_id,
                producer_id,
                fenced_epoch,
            } => write!(
                f,
                "fence {transactional_id} (pid {producer_id}) epoch {fenced_epoch}"
            ),
            Event::TxnBegin {
                transactional_id,
                epoch,
                ..
            } => write!(f, "begin transaction {transactional_id} epoch {epoch}"),
            Event::TxnOffsets {
                transactional_id,
                producer_id,
                epoch,
                group,
                member_id,
                generation,
                offsets,
            } => {
                let o: Vec<String> = offsets.iter().map(|(tp, o)| format!("{tp}={o}")).collect();
                write!(
                    f,
                    "offsets to transaction {transactional_id} (pid {producer_id} epoch {epoch}): group {group} \
                     member {member_id:?} gen {generation} {}",
                    o.join(" ")
                )
            }
            Event::TxnCommit {
                transactional_id, ..
            } => write!(f, "commit transaction {transactional_id}"),
            Event::TxnAbort {
                transactional_id,
                reason,
                ..
            } => write!(f, "abort transaction {transactional_id}: {reason}"),
            _ => unreachable!("dispatched by fmt"),
        }
    }

    /// The group coordinator: membership, rebalances, offset commits.
    fn fmt_group(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Rebalance {
                group,
                generation,
                assignment,
            } => {
                let a: Vec<String> = assignment
                    .iter()
                    .map(|(m, t)| format!("{m}→{}", tps(t)))
                    .collect();
                write!(f, "rebalance {group} gen {generation}: {}", a.join(", "))
            }
            Event::MemberJoined { group, member_id } => write!(f, "{member_id} joins {group}"),
            Event::MemberLeft {
                group,
                member_id,
                reason,
            } => write!(f, "{member_id} leaves {group}: {reason}"),
            Event::OffsetCommit {
                group,
                member_id,
                generation,
                offsets,
                transactional,
            } => {
                let o: Vec<String> = offsets.iter().map(|(tp, o)| format!("{tp}={o}")).collect();
                let t = if *transactional {
                    " (with transaction)"
                } else {
                    ""
                };
                write!(
                    f,
                    "offsets committed for {group} member {member_id:?} gen {generation}{t}: {}",
                    o.join(" ")
                )
            }
            _ => unreachable!("dispatched by fmt"),
        }
    }

    /// The scheduler: messages, network faults, process faults, timers.
    fn fmt_world(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Deliver { id, from, to, what } => {
                write!(f, "deliver #{id} {from} → {to}: {what}")
            }
            Event::Drop { id, what } => write!(f, "DROP #{id}: {what}"),
            Event::Duplicate { id, copy, what } => write!(f, "DUPLICATE #{id} as #{copy}: {what}"),
            Event::Delay { id, until, what } => write!(f, "DELAY #{id} until {until}ms: {what}"),
            Event::Crash { instance } => write!(f, "CRASH {instance}"),
            Event::Restart { instance } => write!(f, "RESTART {instance}"),
            Event::Pause { instance, until } => write!(f, "PAUSE {instance} until {until}ms"),
            Event::Resume { instance } => write!(f, "RESUME {instance}"),
            Event::Timeout { client, what } => write!(f, "{client} timeout: {what}"),
            _ => unreachable!("dispatched by fmt"),
        }
    }

    /// Clients and applications: assignment, restoration, processing, stores, notes.
    fn fmt_client(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Assigned {
                client,
                generation,
                tasks,
            } => write!(f, "{client} assigned gen {generation}: {}", tps(tasks)),
            Event::Restored {
                client,
                store,
                tp,
                records,
                upto,
            } => write!(
                f,
                "{client} restored {store} from {tp}: {records} records up to @{upto}"
            ),
            Event::Process {
                client,
                tp,
                offset,
                key,
                value,
            } => write!(
                f,
                "{client} process {tp}@{offset} key={} {}",
                short(key),
                short(value)
            ),
            Event::StorePut {
                client,
                store,
                key,
                value,
            } => write!(f, "{client} put {store}[{key}] = {}", short(value)),
            Event::StoreGet {
                client,
                store,
                key,
                value,
            } => write!(f, "{client} get {store}[{key}] → {}", short(value)),
            Event::Punctuate { client, task, at } => {
                write!(f, "{client} punctuate {task} at {at}ms")
            }
            Event::Acked {
                client,
                tp,
                base_offset,
                count,
            } => write!(f, "{client} acked {tp}@{base_offset} ({count} records)"),
            Event::ClientError { client, what } => write!(f, "{client}: {what}"),
            Event::Note { client, text } => write!(f, "{client}: {text}"),
            _ => unreachable!("dispatched by fmt"),
        }
    }
}
