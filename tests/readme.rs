//! The README's design × fault-class table is the output of `oversell matrix`: this test
//! runs the matrix afresh and compares. `OVERSELL_BLESS=1 cargo test --test readme`
//! rewrites the table from the runs.

use oversell::expect::{matrix, matrix_markdown};
use oversell::load::load_file;
use oversell::scenario::SeedRange;
use std::path::PathBuf;

const START: &str = "<!-- matrix:start -->\n";
const END: &str = "<!-- matrix:end -->";

/// The seeds per scenario and cell used for the README (the command's default).
const SEEDS: SeedRange = SeedRange { start: 0, end: 20 };

#[test]
fn readme_matrix_is_what_the_runs_produce() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("scenarios"))
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let scenarios: Vec<_> = files
        .iter()
        .map(|f| load_file(f).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cells = matrix(&scenarios, SEEDS, jobs, |_| {});
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    let fresh = format!(
        "<!-- produced by `oversell matrix` over {} with seeds {SEEDS} per scenario and cell -->\n{}",
        names.join(", "),
        matrix_markdown(&cells)
    );

    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the {START:?} … {END:?} markers");
    };
    let current = &readme[a + START.len()..b];
    if std::env::var("OVERSELL_BLESS").is_ok() {
        let updated = format!("{}{START}{fresh}{}", &readme[..a], &readme[b..]);
        std::fs::write(&readme_path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        current, fresh,
        "the README's matrix differs from the runs; regenerate it with OVERSELL_BLESS=1 cargo test --test readme"
    );
}
