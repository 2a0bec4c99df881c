//! The ledger design in its own `cargo test`: over oversell's shipped scenarios, their
//! regression seeds, and generated scenarios. Replay one run with
//! `OVERSELL_SCENARIO=<name> OVERSELL_SEED=<n> cargo test -p oversell-ledger`.

use oversell::designs::Registry;
use oversell::testing::Suite;
use oversell_ledger::Ledger;

fn suite() -> Suite {
    Suite::new(Registry::builtin().with(Box::new(Ledger)), "ledger")
        .scenarios(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios"))
}

#[test]
fn the_ledger_meets_its_expectations_on_every_scenario() {
    suite().generated(200).assert();
}

/// The checker judges the ledger through its decoders: a deliberate defect is caught.
#[test]
fn the_checker_bites_the_ledger_when_it_reads_uncommitted_data() {
    let scenario = oversell::load::load_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/crash-before-offset-commit.toml"
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    let mutations = [oversell::designs::Mutation::ReadUncommitted];
    let judged = oversell::run::run_seed(&Ledger, &scenario, &mutations, 0);
    let violated: Vec<&str> = judged.verdict.violated().iter().map(|i| i.name()).collect();
    assert!(violated.contains(&"no-aborted-read"), "{violated:?}");
    assert!(violated.contains(&"view-matches-log"), "{violated:?}");
}
