//! Every platform invariant failing on a real run: a deliberate kernel defect (a
//! `Mutation` that switches a hook in `oversell-sim` on) under a shipped scenario and a
//! fault class makes the invariant fail on a named seed, and the same runs without the
//! defect do not.
//!
//! Frequencies measured with `oversell explore SCENARIO --design D --seeds 0..100
//! --fault-class C [--mutation M]` (with / without):
//!
//! | mutation | scenario, design, fault class | invariant | with | without |
//! |---|---|---|---|---|
//! | `position-by-count` | zombie-after-rebalance, saga, crash | monotonic-offsets | 93 of 100 | 0 |
//! | `resume-after-committed` | zombie-after-rebalance, rekeyed-eos, crash | no-lost-write | 27 of 100 | 0 |
//! | `stale-epoch-accepted` | many-products, rekeyed-eos, all | epoch-fencing | 11 of 100 | 0 |
//! | `stale-generation-accepted` | many-products, rekeyed-alo, network | commit-generation | 2 of 100 | 0 |

use oversell::checker::Invariant;
use oversell::designs::{by_name, Mutation};
use oversell::expect::FaultClass;
use oversell::load::load_file;
use oversell::run::run_seed;
use std::path::PathBuf;

/// Runs `seeds` of a shipped scenario under a fault class, with and without `mutation`:
/// `seed` violates `invariant` with it; no seed does without it; returns how many seeds
/// violate it with the mutation.
fn bites(
    scenario: &str,
    design: &str,
    class: FaultClass,
    mutation: Mutation,
    invariant: Invariant,
    seed: u64,
    seeds: std::ops::Range<u64>,
) -> usize {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{scenario}.toml"));
    let s = class.apply(&load_file(&path).unwrap_or_else(|e| panic!("{e}")));
    let d = by_name(design).expect("a shipped design");
    let violates = |m: &[Mutation], seed: u64| {
        run_seed(d.as_ref(), &s, m, seed)
            .verdict
            .violated()
            .contains(&invariant)
    };
    assert!(
        violates(&[mutation], seed),
        "{} seed {seed} must violate {invariant} with {}",
        scenario,
        mutation.name()
    );
    let mut with = 0;
    for n in seeds {
        assert!(
            !violates(&[], n),
            "{scenario} {design} seed {n} violates {invariant} without any mutation"
        );
        with += usize::from(violates(&[mutation], n));
    }
    with
}

#[test]
fn a_position_counted_from_records_makes_offsets_go_backwards() {
    let n = bites(
        "zombie-after-rebalance",
        "saga",
        FaultClass::Crash,
        Mutation::PositionByCount,
        Invariant::MonotonicOffsets,
        0,
        0..10,
    );
    assert!(n >= 5, "{n} of 10");
}

#[test]
fn resuming_past_the_committed_offset_loses_a_write() {
    let n = bites(
        "zombie-after-rebalance",
        "rekeyed-eos",
        FaultClass::Crash,
        Mutation::ResumeAfterCommitted,
        Invariant::NoLostWrite,
        0,
        0..10,
    );
    assert!(n >= 1, "{n} of 10");
}

#[test]
fn an_older_epoch_accepted_after_init_producer_id_breaks_epoch_fencing() {
    let n = bites(
        "many-products",
        "rekeyed-eos",
        FaultClass::All,
        Mutation::StaleEpochAccepted,
        Invariant::EpochFencing,
        // Seed 0 (seed 1 before transaction markers were written asynchronously and
        // rebalances became cooperative, which changed every transactional schedule;
        // 4 of seeds 0..10 now).
        0,
        0..10,
    );
    assert!(n >= 1, "{n} of 10");
}

/// Rare under the cooperative protocol (1 of seeds 0..300, against 1 of 20..30 under
/// the eager one): a member commits nothing while its rebalance is in progress, so only
/// a delayed or duplicated commit of an older generation reaches the coordinator.
#[test]
fn a_stale_generation_commit_accepted_breaks_commit_generation() {
    let n = bites(
        "many-products",
        "rekeyed-alo",
        FaultClass::Network,
        Mutation::StaleGenerationAccepted,
        Invariant::CommitGeneration,
        87,
        80..90,
    );
    assert!(n >= 1, "{n} of 10");
}
