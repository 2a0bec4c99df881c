//! The group coordinator (classic protocol): membership, rebalances computed by the
//! coordinator — Kafka's `RangeAssignor` when a member rebalances eagerly, Kafka Streams'
//! sticky task assignment with the two-step handover when every member is cooperative
//! ([`super::assignor`]) — heartbeats, session and rebalance timeouts, generations, and
//! committed offsets fenced by member id and generation (KIP-447 for transactional ones).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::assignor::{cooperative_assignment, same_subscription, Claim};
use super::txn::PendingOffsets;
use super::{reject, Broker};
use crate::client::ClientId;
use crate::protocol::{
    Generation, GroupMetadata, JoinOutcome, KafkaError, Millis, Offset, RebalanceProtocol,
    TopicPartition,
};
use crate::trace::Event;

/// State of a consumer group, as Kafka's classic group coordinator names it (the
/// `CompletingRebalance` phase does not exist here: the coordinator assigns partitions
/// itself when the last member rejoins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting, since `since`, for every member to send `JoinGroup` again.
    PreparingRebalance { since: Millis },
    /// Every member has the current generation's assignment.
    Stable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Member {
    topics: Vec<String>,
    session_timeout_ms: Millis,
    rebalance_timeout_ms: Millis,
    last_seen: Millis,
    /// Has sent `JoinGroup` during the current rebalance.
    rejoined: bool,
    protocol: RebalanceProtocol,
    /// The partitions its last `JoinGroup` reported as owned (cooperative only).
    owned: Vec<TopicPartition>,
}

impl Member {
    fn session_deadline(&self) -> Millis {
        self.last_seen.saturating_add(self.session_timeout_ms)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Group {
    pub(super) state: GroupState,
    pub(super) generation: Generation,
    pub(super) members: BTreeMap<String, Member>,
    /// Assignment of the current generation (kept as it was computed until the next one).
    pub(super) assignment: BTreeMap<String, Vec<TopicPartition>>,
    pub(super) committed: BTreeMap<TopicPartition, Offset>,
}

/// What a `JoinGroup` carries besides the group and member id.
pub(super) struct Subscription {
    pub(super) topics: Vec<String>,
    pub(super) session_timeout_ms: Millis,
    pub(super) rebalance_timeout_ms: Millis,
    pub(super) protocol: RebalanceProtocol,
    pub(super) owned: Vec<TopicPartition>,
}

impl Group {
    /// The assignment as the trace records it: each member with its partitions.
    pub(super) fn assignment_list(&self) -> Vec<(String, Vec<TopicPartition>)> {
        self.assignment
            .iter()
            .map(|(m, tps)| (m.clone(), tps.clone()))
            .collect()
    }

    pub(super) fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            members: BTreeMap::new(),
            assignment: BTreeMap::new(),
            committed: BTreeMap::new(),
        }
    }

    /// The group as Kafka stores it in `__consumer_offsets` (a `GroupMetadata` record at
    /// the end of a rebalance: `GroupMetadataManager.classicGroupSync` when the leader's
    /// assignment arrives, `completeClassicGroupJoin` when the group emptied,
    /// `group-coordinator/src/main/java/org/apache/kafka/coordinator/group/`): members,
    /// generation and assignment, without offsets or liveness; `None` while a rebalance is
    /// in progress (nothing is stored then).
    pub(super) fn metadata_record(&self) -> Option<Group> {
        if !super::coordinator::stored_state(self.state) {
            return None;
        }
        let mut g = self.clone();
        g.committed = BTreeMap::new();
        for m in g.members.values_mut() {
            m.last_seen = 0;
            m.rejoined = false;
        }
        Some(g)
    }

    /// A stored group loaded by a new coordinator at `now` with `committed` offsets: every
    /// member's session starts again (`GroupMetadataManager.onLoaded` schedules each
    /// classic member's heartbeat expiration anew, `rescheduleClassicGroupMemberHeartbeat`).
    pub(super) fn loaded(
        mut self,
        now: Millis,
        committed: BTreeMap<TopicPartition, Offset>,
    ) -> Group {
        for m in self.members.values_mut() {
            m.last_seen = now;
        }
        self.committed = committed;
        self
    }

    /// Enter `PreparingRebalance` (if not already there): every member must rejoin.
    fn prepare_rebalance(&mut self, now: Millis) {
        if !matches!(self.state, GroupState::PreparingRebalance { .. }) {
            self.state = GroupState::PreparingRebalance { since: now };
            for m in self.members.values_mut() {
                m.rejoined = false;
            }
        }
    }

    fn all_rejoined(&self) -> bool {
        self.members.values().all(|m| m.rejoined)
    }

    fn rebalance_deadline(&self) -> Option<Millis> {
        match self.state {
            GroupState::PreparingRebalance { since } => {
                let timeout = self
                    .members
                    .values()
                    .map(|m| m.rebalance_timeout_ms)
                    .max()
                    .unwrap_or(0);
                Some(since.saturating_add(timeout))
            }
            _ => None,
        }
    }

    /// Earliest session or rebalance deadline of this group.
    pub(super) fn deadline(&self) -> Option<Millis> {
        self.members
            .values()
            .map(Member::session_deadline)
            .chain(self.rebalance_deadline())
            .min()
    }

    /// The next generation's assignment: sticky and cooperative when every member
    /// rebalances cooperatively with one subscription (`ConsumerCoordinator` selects the
    /// protocol all members support), else Kafka's range assignment.
    fn assign(
        &self,
        partitions_of: impl Fn(&str) -> Option<u32>,
    ) -> (BTreeMap<String, Vec<TopicPartition>>, bool) {
        let cooperative = !self.members.is_empty()
            && self
                .members
                .values()
                .all(|m| m.protocol == RebalanceProtocol::Cooperative);
        let claims: BTreeMap<String, Claim<'_>> = self
            .members
            .iter()
            .map(|(id, m)| {
                let claim = Claim {
                    topics: &m.topics,
                    owned: &m.owned,
                };
                (id.clone(), claim)
            })
            .collect();
        if cooperative && same_subscription(&claims) {
            return (cooperative_assignment(&claims, partitions_of), true);
        }
        let subscriptions: BTreeMap<String, Vec<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        (range_assignment(&subscriptions, partitions_of), false)
    }

    /// Coordinator invariant of the cooperative protocol: no partition is given to a
    /// member while another member reports it as owned. (In a group with an eager member
    /// the range assignment applies and every member revokes before it joins.)
    fn check_handover(&self, name: &str) {
        for (member, tps) in &self.assignment {
            for tp in tps {
                let other = self
                    .members
                    .iter()
                    .find(|(id, m)| *id != member && m.owned.contains(tp));
                if let Some((other, _)) = other {
                    panic!("broker bug: group {name} gave {tp} to {member} while {other} owns it");
                }
            }
        }
    }

    fn joined(&self, member_id: String) -> JoinOutcome {
        assert_eq!(
            self.state,
            GroupState::Stable,
            "broker bug: a member joined a group that is not stable"
        );
        JoinOutcome::Joined {
            generation: self.generation,
            assignment: self.assignment.get(&member_id).cloned().unwrap_or_default(),
            member_id,
        }
    }
}

/// Kafka's `RangeAssignor`: for each topic, its partitions in order are split into
/// contiguous ranges over the members subscribed to it, sorted by member id; the first
/// `partitions % members` members get one partition more. Every member appears in the
/// result, possibly with no partition. `partitions_of` gives a topic's partition count
/// (`None` for an unknown topic, which is not assigned).
pub fn range_assignment(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions_of: impl Fn(&str) -> Option<u32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut result: BTreeMap<String, Vec<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let topics: BTreeSet<&str> = subscriptions
        .values()
        .flat_map(|ts| ts.iter().map(String::as_str))
        .collect();
    for topic in topics {
        let Some(n) = partitions_of(topic) else {
            continue;
        };
        // BTreeMap keys: already sorted by member id.
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.iter().any(|t| t == topic))
            .map(|(m, _)| m)
            .collect();
        let count = members.len() as u32;
        let per = n / count;
        let extra = n % count;
        for (i, member) in members.into_iter().enumerate() {
            let i = i as u32;
            let start = per * i + i.min(extra);
            let len = per + u32::from(i < extra);
            let parts = result.get_mut(member).expect("member is a key");
            parts.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
        }
    }
    result
}

impl Broker {
    /// KIP-447 fencing of an offset commit: the member must be in the group, at the
    /// group's current generation.
    pub(super) fn check_group_member(
        &self,
        meta: &GroupMetadata,
    ) -> Result<(), (KafkaError, String)> {
        let Some(group) = self.groups.get(&meta.group) else {
            return Err((
                KafkaError::UnknownMemberId,
                format!("group {} does not exist", meta.group),
            ));
        };
        if !group.members.contains_key(&meta.member_id) {
            return Err((
                KafkaError::UnknownMemberId,
                format!("{} is not a member of group {}", meta.member_id, meta.group),
            ));
        }
        if meta.generation != group.generation {
            return Err((
                KafkaError::IllegalGeneration,
                format!(
                    "{} sent generation {} but group {} is at generation {}",
                    meta.member_id, meta.generation, meta.group, group.generation
                ),
            ));
        }
        Ok(())
    }

    /// Every partition of an offset commit must exist.
    pub(super) fn check_offset_partitions(
        &self,
        request: &str,
        offsets: &[(TopicPartition, Offset)],
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        match offsets.iter().find(|(tp, _)| !self.has_partition(tp)) {
            Some((tp, _)) => Err(reject(
                events,
                request,
                KafkaError::UnknownTopicOrPartition,
                format!("offset for unknown partition {tp}"),
            )),
            None => Ok(()),
        }
    }

    /// Finish the rebalance of `name` if every member has rejoined: next generation,
    /// range assignment, `Stable` (or `Empty` without members).
    fn maybe_complete_rebalance(&mut self, name: &str, events: &mut Vec<Event>) -> bool {
        let topics = &self.topics;
        let group = self.groups.get_mut(name).expect("known group");
        if !matches!(group.state, GroupState::PreparingRebalance { .. }) || !group.all_rejoined() {
            return false;
        }
        group.generation += 1;
        let partitions_of = |t: &str| topics.get(t).map(|t| t.config.partitions);
        let (assignment, cooperative) = group.assign(partitions_of);
        group.assignment = assignment;
        if cooperative {
            group.check_handover(name);
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        for m in group.members.values_mut() {
            m.rejoined = false;
        }
        assert!(
            group.assignment.keys().eq(group.members.keys()),
            "broker bug: group {name}'s assignment is not over its members"
        );
        events.push(Event::Rebalance {
            group: name.to_string(),
            generation: group.generation,
            assignment: group.assignment_list(),
        });
        true
    }

    /// A member left (leave, session timeout): rebalance.
    fn remove_member(
        &mut self,
        now: Millis,
        name: &str,
        member_id: &str,
        reason: &str,
        events: &mut Vec<Event>,
    ) {
        let group = self.groups.get_mut(name).expect("known group");
        let removed = group.members.remove(member_id);
        assert!(removed.is_some(), "broker bug: removing an unknown member");
        events.push(Event::MemberLeft {
            group: name.to_string(),
            member_id: member_id.to_string(),
            reason: reason.to_string(),
        });
        group.prepare_rebalance(now);
        self.maybe_complete_rebalance(name, events);
    }

    pub(super) fn join_group(
        &mut self,
        now: Millis,
        client: &ClientId,
        name: &str,
        member_id: Option<String>,
        sub: Subscription,
        events: &mut Vec<Event>,
    ) -> Result<JoinOutcome, KafkaError> {
        let member_id = match member_id {
            None => self.add_member(now, client, name, sub, events),
            Some(id) => match self.rejoin(now, name, id, sub, events)? {
                Ok(id) => id,
                Err(stable) => return Ok(stable),
            },
        };
        if self.maybe_complete_rebalance(name, events) {
            Ok(self.groups[name].joined(member_id))
        } else {
            Ok(JoinOutcome::Pending { member_id })
        }
    }

    /// A new member joins `name` (created if need be), which starts a rebalance.
    fn add_member(
        &mut self,
        now: Millis,
        client: &ClientId,
        name: &str,
        sub: Subscription,
        events: &mut Vec<Event>,
    ) -> String {
        self.members_created += 1;
        let id = format!("{client}-{}", self.members_created);
        let group = self
            .groups
            .entry(name.to_string())
            .or_insert_with(Group::new);
        group.prepare_rebalance(now);
        let previous = group.members.insert(
            id.clone(),
            Member {
                topics: sub.topics,
                session_timeout_ms: sub.session_timeout_ms,
                rebalance_timeout_ms: sub.rebalance_timeout_ms,
                last_seen: now,
                rejoined: true,
                protocol: sub.protocol,
                owned: sub.owned,
            },
        );
        assert!(previous.is_none(), "broker bug: member id {id} reused");
        events.push(Event::MemberJoined {
            group: name.to_string(),
            member_id: id.clone(),
        });
        id
    }

    /// A known member joins again: `Ok(Err(joined))` at once in a stable group with an
    /// unchanged subscription, else `Ok(Ok(id))` with a rebalance under way.
    fn rejoin(
        &mut self,
        now: Millis,
        name: &str,
        id: String,
        sub: Subscription,
        events: &mut Vec<Event>,
    ) -> Result<Result<String, JoinOutcome>, KafkaError> {
        let Some(group) = self
            .groups
            .get_mut(name)
            .filter(|g| g.members.contains_key(&id))
        else {
            return Err(reject(
                events,
                "JoinGroup",
                KafkaError::UnknownMemberId,
                format!("{id} is not a member of group {name}"),
            ));
        };
        let member = group.members.get_mut(&id).expect("checked");
        member.last_seen = now;
        member.session_timeout_ms = sub.session_timeout_ms;
        member.rebalance_timeout_ms = sub.rebalance_timeout_ms;
        // A changed subscription rebalances, as in Kafka
        // (`GroupMetadataManager.classicGroupJoinExistingMember`:
        // `!member.matches(request.protocols())`); under the cooperative
        // protocol the owned partitions are part of it, so the rejoin of a member that
        // revoked partitions starts the follow-up rebalance that hands them over.
        let changed = member.topics != sub.topics
            || member.protocol != sub.protocol
            || member.owned != sub.owned;
        member.topics = sub.topics;
        member.protocol = sub.protocol;
        member.owned = sub.owned;
        match group.state {
            GroupState::Stable if !changed => Ok(Err(group.joined(id))),
            GroupState::Empty => unreachable!("broker bug: an Empty group with a member"),
            _ => {
                group.prepare_rebalance(now);
                group.members.get_mut(&id).expect("checked").rejoined = true;
                Ok(Ok(id))
            }
        }
    }

    pub(super) fn heartbeat(
        &mut self,
        now: Millis,
        name: &str,
        member_id: &str,
        generation: Generation,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        const REQ: &str = "Heartbeat";
        let Some(group) = self.groups.get_mut(name) else {
            return Err(reject(
                events,
                REQ,
                KafkaError::UnknownMemberId,
                format!("group {name} does not exist"),
            ));
        };
        let current = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return Err(reject(
                events,
                REQ,
                KafkaError::UnknownMemberId,
                format!("{member_id} is not a member of group {name}"),
            ));
        };
        if generation != current {
            return Err(reject(
                events,
                REQ,
                KafkaError::IllegalGeneration,
                format!("{member_id} is at generation {generation}, group {name} at {current}"),
            ));
        }
        member.last_seen = now;
        if matches!(group.state, GroupState::PreparingRebalance { .. }) {
            // Kafka refreshes the session and tells the member to rejoin.
            return Err(reject(
                events,
                REQ,
                KafkaError::RebalanceInProgress,
                format!("group {name} is rebalancing: {member_id} must rejoin"),
            ));
        }
        Ok(())
    }

    pub(super) fn leave_group(
        &mut self,
        now: Millis,
        name: &str,
        member_id: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        if !self
            .groups
            .get(name)
            .is_some_and(|g| g.members.contains_key(member_id))
        {
            return Err(reject(
                events,
                "LeaveGroup",
                KafkaError::UnknownMemberId,
                format!("{member_id} is not a member of group {name}"),
            ));
        }
        self.remove_member(now, name, member_id, "left the group", events);
        Ok(())
    }

    pub(super) fn offset_commit(
        &mut self,
        now: Millis,
        meta: GroupMetadata,
        offsets: Vec<(TopicPartition, Offset)>,
        events: &mut Vec<Event>,
    ) -> Result<(), KafkaError> {
        const REQ: &str = "OffsetCommit";
        // An OffsetCommit always carries a generation (>= 0) here, so an empty or unknown
        // member id is UNKNOWN_MEMBER_ID (Kafka's `OffsetMetadataManager.validateOffsetCommit`
        // → `ClassicGroup.validateOffsetCommit`: `generationId >= 0 || !memberId.isEmpty()`
        // → `validateMember`, then the generation);
        // only a generation of -1 on an empty group, which this protocol cannot express,
        // stores offsets without a member.
        match self.check_group_member(&meta) {
            // MUTATION HOOK (`Defects::stale_generation_accepted`): a stale generation passes.
            Err((KafkaError::IllegalGeneration, _)) if self.defects.stale_generation_accepted => {}
            checked => checked.map_err(|(e, d)| reject(events, REQ, e, d))?,
        }
        self.check_offset_partitions(REQ, &offsets, events)?;
        let group = self.groups.get_mut(&meta.group).expect("checked member");
        // Kafka treats an accepted commit as a heartbeat.
        group
            .members
            .get_mut(&meta.member_id)
            .expect("checked member")
            .last_seen = now;
        group.committed.extend(offsets.iter().cloned());
        events.push(Event::OffsetCommit {
            group: meta.group,
            member_id: meta.member_id,
            generation: meta.generation,
            offsets,
            transactional: false,
        });
        Ok(())
    }

    /// A committed transaction's offsets become the groups' committed offsets.
    pub(super) fn commit_pending_offsets(
        &mut self,
        pending: BTreeMap<String, PendingOffsets>,
        events: &mut Vec<Event>,
    ) {
        for (group, pending) in pending {
            let g = self.groups.entry(group.clone()).or_insert_with(Group::new);
            g.committed
                .extend(pending.offsets.iter().map(|(tp, o)| (tp.clone(), *o)));
            events.push(Event::OffsetCommit {
                group,
                member_id: pending.member_id,
                generation: pending.generation,
                offsets: pending.offsets.into_iter().collect(),
                transactional: true,
            });
        }
    }

    pub(super) fn offset_fetch(
        &self,
        name: &str,
        partitions: Vec<TopicPartition>,
        require_stable: bool,
        events: &mut Vec<Event>,
    ) -> Result<Vec<(TopicPartition, Option<Offset>)>, KafkaError> {
        let committed = self.groups.get(name).map(|g| &g.committed);
        let partitions: Vec<TopicPartition> = if partitions.is_empty() {
            committed
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default()
        } else {
            partitions
        };
        if require_stable {
            // Offsets of an ongoing transaction, or of an ending one whose marker has not
            // reached this group yet.
            let ongoing = self
                .txn_ids
                .values()
                .filter_map(|st| st.open.as_ref())
                .filter_map(|open| open.offsets.get(name));
            // `CoordinatorRuntime` reads at the last committed offset: a marker applied but
            // not yet below the high watermark leaves the offsets pending to a read.
            let ending = self
                .txn_ids
                .values()
                .filter_map(|st| st.ending.as_ref())
                .flat_map(|e| {
                    let awaited = e.group_awaiting.get(name).map(|w| &w.pending);
                    e.groups.get(name).into_iter().chain(awaited)
                });
            let unstable = ongoing
                .chain(ending)
                .flat_map(|pending| pending.offsets.keys())
                .find(|tp| partitions.contains(tp));
            if let Some(tp) = unstable {
                return Err(reject(
                    events,
                    "OffsetFetch",
                    KafkaError::UnstableOffsetCommit,
                    format!("group {name} has a pending transactional offset for {tp}"),
                ));
            }
        }
        Ok(partitions
            .into_iter()
            .map(|tp| {
                let o = committed.and_then(|c| c.get(&tp).copied());
                (tp, o)
            })
            .collect())
    }

    /// Expire members whose session timed out and complete rebalances whose rebalance
    /// timeout passed, group by group in name order.
    pub(super) fn expire_group_members(&mut self, now: Millis, events: &mut Vec<Event>) {
        let names: Vec<String> = self
            .groups
            .keys()
            .filter(|g| self.coordinator_ready(super::coordinator::Coordinator::Group, g))
            .cloned()
            .collect();
        for name in names {
            let expired: Vec<String> = self.groups[&name]
                .members
                .iter()
                .filter(|(_, m)| now >= m.session_deadline())
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                self.remove_member(now, &name, &id, "session timeout", events);
            }
            if self.groups[&name]
                .rebalance_deadline()
                .is_some_and(|d| now >= d)
            {
                self.complete_rebalance_at_timeout(&name, events);
            }
        }
    }

    /// The rebalance timeout of `name` passed: members that did not rejoin are removed and
    /// the rebalance completes with the others.
    fn complete_rebalance_at_timeout(&mut self, name: &str, events: &mut Vec<Event>) {
        let group = self.groups.get_mut(name).expect("known group");
        let laggards: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| !m.rejoined)
            .map(|(id, _)| id.clone())
            .collect();
        for id in laggards {
            group.members.remove(&id);
            events.push(Event::MemberLeft {
                group: name.to_string(),
                member_id: id,
                reason: "rebalance timeout".to_string(),
            });
        }
        let completed = self.maybe_complete_rebalance(name, events);
        assert!(
            completed,
            "broker bug: rebalance of {name} not completed at its timeout"
        );
    }

    /// Committed offsets of a group (empty for an unknown group).
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<TopicPartition, Offset> {
        self.groups
            .get(group)
            .map(|g| g.committed.clone())
            .unwrap_or_default()
    }

    /// Current generation of a group (`None` for a group never joined).
    pub fn group_generation(&self, group: &str) -> Option<Generation> {
        self.groups.get(group).map(|g| g.generation)
    }

    pub fn group_state(&self, group: &str) -> Option<GroupState> {
        self.groups.get(group).map(|g| g.state)
    }

    /// Current members of a group, sorted.
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Member → partitions of the current generation, as computed when it began (a member
    /// that left since keeps its entry until the next generation).
    pub fn group_assignment(&self, group: &str) -> BTreeMap<String, Vec<TopicPartition>> {
        self.groups
            .get(group)
            .map(|g| g.assignment.clone())
            .unwrap_or_default()
    }
}
