//! The group coordinator under the cooperative protocol: sticky and balanced assignment,
//! the two-step handover, a partition two members claim.

use super::*;

impl Run {
    fn coop_join(
        &mut self,
        client: &str,
        member: Option<&str>,
        owned: &[u32],
    ) -> Result<JoinOutcome, KafkaError> {
        let r = self.req(
            client,
            Request::JoinGroup {
                group: "g".into(),
                member_id: member.map(str::to_string),
                topics: vec![T.into()],
                session_timeout_ms: 1_000,
                rebalance_timeout_ms: 500,
                protocol: RebalanceProtocol::Cooperative,
                owned: owned.iter().map(|p| tp(*p)).collect(),
            },
        );
        let Response::JoinGroup(r) = r else {
            panic!("{r:?}")
        };
        r
    }
}

fn pending(r: Result<JoinOutcome, KafkaError>) -> String {
    match r {
        Ok(JoinOutcome::Pending { member_id }) => member_id,
        other => panic!("expected Pending, got {other:?}"),
    }
}

fn parts(ps: &[TopicPartition]) -> Vec<u32> {
    ps.iter().map(|t| t.partition).collect()
}

#[test]
fn a_moved_partition_is_handed_over_in_two_steps() {
    let mut r = Run::new(4, false);
    let (a, _, got) = joined(r.coop_join("a", None, &[]));
    assert_eq!(parts(&got), vec![0, 1, 2, 3]);
    let b = pending(r.coop_join("b", None, &[]));
    // a rejoins owning everything: b's share is still a's, so it is withheld from b.
    let (_, gen, got) = joined(r.coop_join("a", Some(&a), &[0, 1, 2, 3]));
    assert_eq!((gen, parts(&got)), (2, vec![0, 1]));
    let (_, _, got) = joined(r.coop_join("b", Some(&b), &[]));
    assert!(got.is_empty(), "b got {got:?} while a still owns it");
    // a revoked 2 and 3 and rejoins with what it kept: the follow-up rebalance.
    assert_eq!(pending(r.coop_join("a", Some(&a), &[0, 1])), a);
    assert_eq!(r.heartbeat(&b, 2), Err(KafkaError::RebalanceInProgress));
    let (_, _, got) = joined(r.coop_join("b", Some(&b), &[]));
    assert_eq!(parts(&got), vec![2, 3]);
    assert_eq!(r.heartbeat(&a, 3), Ok(()));
    assert_eq!(
        parts(&r.b.group_assignment("g")[&a]),
        vec![0, 1],
        "a kept its tasks"
    );
}

#[test]
fn the_assignment_is_sticky_where_range_would_move_everything() {
    let mut r = Run::new(3, false);
    let (a, _, _) = joined(r.coop_join("a", None, &[]));
    let b = pending(r.coop_join("b", None, &[]));
    joined(r.coop_join("a", Some(&a), &[0, 1, 2]));
    joined(r.coop_join("b", Some(&b), &[]));
    pending(r.coop_join("a", Some(&a), &[0, 1]));
    let (_, _, got) = joined(r.coop_join("b", Some(&b), &[]));
    assert_eq!(parts(&got), vec![2]);
    // b leaves: a keeps 0 and 1 and gets 2; nothing a owned moves.
    let resp = r.req(
        "b",
        Request::LeaveGroup {
            group: "g".into(),
            member_id: b.clone(),
        },
    );
    assert_eq!(resp, Response::LeaveGroup(Ok(())));
    let (_, _, got) = joined(r.coop_join("a", Some(&a), &[0, 1]));
    assert_eq!(parts(&got), vec![0, 1, 2]);
    // A third member with c joining: a keeps two, c gets the surplus once a revoked it.
    let c = pending(r.coop_join("c", None, &[]));
    let (_, _, got) = joined(r.coop_join("a", Some(&a), &[0, 1, 2]));
    assert_eq!(parts(&got), vec![0, 1]);
    let (_, _, got) = joined(r.coop_join("c", Some(&c), &[]));
    assert!(got.is_empty());
}

#[test]
fn a_partition_two_members_claim_is_given_to_neither() {
    let mut r = Run::new(2, false);
    let (a, _, _) = joined(r.coop_join("a", None, &[]));
    // A delayed or duplicated JoinGroup: b claims partition 1, which a also claims.
    let b = pending(r.coop_join("b", None, &[1]));
    let (_, _, got_a) = joined(r.coop_join("a", Some(&a), &[0, 1]));
    let (_, _, got_b) = joined(r.coop_join("b", Some(&b), &[1]));
    assert_eq!((parts(&got_a), parts(&got_b)), (vec![0], vec![]));
    // Both give it up and rejoin: now it is handed out.
    pending(r.coop_join("a", Some(&a), &[0]));
    let (_, _, got_b) = joined(r.coop_join("b", Some(&b), &[]));
    assert_eq!(parts(&got_b), vec![1]);
}

#[test]
fn one_eager_member_makes_the_group_eager() {
    let mut r = Run::new(3, false);
    let (a, _, _) = joined(r.coop_join("a", None, &[]));
    let b = match r.join("b", None) {
        Ok(JoinOutcome::Pending { member_id }) => member_id,
        other => panic!("{other:?}"),
    };
    // Range assignment, nothing withheld although a reports everything as owned.
    let (_, _, got) = joined(r.coop_join("a", Some(&a), &[0, 1, 2]));
    assert_eq!(parts(&got), vec![0, 1]);
    let (_, _, got) = joined(r.join("b", Some(&b)));
    assert_eq!(parts(&got), vec![2]);
}
