//! The README's conformance table is the live summary (`docs/live/conformance.json`,
//! written by `oversell conformance --runs N --write FILE`) beside the simulator's
//! verdicts recomputed now, with the hand-kept reasons
//! (`docs/live/conformance-reasons.toml`). `OVERSELL_BLESS=1 cargo test --test
//! conformance` rewrites the table.

use oversell::designs::Registry;
use oversell::live::conformance::{markdown, rows, Reasons, Summary, UNEXPLAINED};
use oversell::live::TWINS;
use oversell::load::load_dir;
use std::path::PathBuf;

const START: &str = "<!-- conformance:start -->\n";
const END: &str = "<!-- conformance:end -->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn readme_conformance_table_is_the_live_summary_beside_fresh_simulator_runs() {
    let scenarios = load_dir(&root().join("scenarios")).unwrap_or_else(|e| panic!("{e}"));
    let summary =
        Summary::read(&root().join("docs/live/conformance.json")).unwrap_or_else(|e| panic!("{e}"));
    let reasons = Reasons::read(&root().join("docs/live/conformance-reasons.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = rows(&scenarios, &summary, &reasons, &Registry::builtin());
    assert_eq!(
        rows.len(),
        scenarios.len() * TWINS.len(),
        "every shipped scenario × every twin has its row, playable or not"
    );
    for r in &rows {
        assert!(!r.reason.is_empty() || r.status == "agrees", "{r:?}");
        assert_ne!(
            r.reason, UNEXPLAINED,
            "a disagreement without a reason: {r:?}"
        );
    }
    let fresh = markdown(&rows, &summary);
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the {START:?} … {END:?} markers");
    };
    let a = a + START.len();
    if std::env::var("OVERSELL_BLESS").is_ok() {
        let updated = format!("{}{fresh}{}", &readme[..a], &readme[b..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        &readme[a..b],
        fresh,
        "the README's conformance table differs from the summary and fresh simulator runs; \
         regenerate it with OVERSELL_BLESS=1 cargo test --test conformance"
    );
}
