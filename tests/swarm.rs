//! Swarm faults: each seed draws its own fault mix, deterministically, and the run
//! replays exactly from its seed or its choice log.

use oversell::expect::design_named;
use oversell::load::load_file;
use oversell::run::{run_log, run_seed};
use oversell::scenario::Scenario;
use oversell::sim::Chooser;
use oversell::swarm;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let mut s = load_file(&path).expect("shipped scenario");
    s.faults.swarm = true;
    s
}

#[test]
fn each_seed_draws_its_own_mix_and_the_same_seed_the_same_one() {
    let mixes: BTreeSet<String> = (0..40)
        .map(|seed| swarm::describe(&swarm::preview(Chooser::seeded(seed)).unwrap()))
        .collect();
    assert!(mixes.len() > 30, "40 seeds, {} distinct mixes", mixes.len());
    let again = swarm::preview(Chooser::seeded(7));
    assert_eq!(again, swarm::preview(Chooser::seeded(7)));
    // Calm and stormy: some seed leaves crashes off, some turns them on.
    let crash: Vec<u32> = (0..40)
        .map(|seed| swarm::preview(Chooser::seeded(seed)).unwrap().crash)
        .collect();
    assert!(
        crash.contains(&0) && crash.iter().any(|c| *c > 0),
        "{crash:?}"
    );
    for rate in &crash {
        assert!(*rate <= swarm::RATE_RANGES[0].2);
    }
}

#[test]
fn a_swarm_run_is_its_mix_and_replays_from_seed_and_log() {
    let s = scenario("crash-before-offset-commit");
    let d = design_named("rekeyed-alo").unwrap();
    let a = run_seed(d.as_ref(), &s, &[], 5);
    let mix = a.swarm.clone().expect("a swarm run records its mix");
    assert_eq!(Some(&mix), swarm::preview(Chooser::seeded(5)).as_ref());
    let b = run_seed(d.as_ref(), &s, &[], 5);
    assert_eq!(a.result.trace.hash(), b.result.trace.hash());
    let replayed = run_log(d.as_ref(), &s, &[], &a.result.choices);
    assert_eq!(replayed.swarm, Some(mix));
    assert_eq!(a.result.trace.hash(), replayed.result.trace.hash());
    assert_eq!(a.result.outcome, replayed.result.outcome);
}

#[test]
fn the_drawn_mix_is_what_strikes() {
    // A seed whose mix leaves every network fault off sees no duplicate or delay (a
    // drop may still be a response to a crashed incarnation).
    let s = scenario("last-unit");
    let d = design_named("naive").unwrap();
    let calm = (0..200)
        .find(|seed| {
            let m = swarm::preview(Chooser::seeded(*seed)).unwrap();
            m.drop == 0 && m.duplicate == 0 && m.delay == 0 && m.crash > 0
        })
        .expect("some seed draws crashes without network faults");
    let run = run_seed(d.as_ref(), &s, &[], calm);
    let network = run.result.trace.records.iter().any(|r| {
        matches!(
            r.event,
            oversell::sim::Event::Duplicate { .. } | oversell::sim::Event::Delay { .. }
        )
    });
    assert!(!network, "seed {calm}: its mix has no network fault");
}
