//! The README's design × fault-class table is the output of `oversell matrix`.
//!
//! - `readme_matrix_states_its_runs_and_has_a_row_per_design` (cheap, always): the table
//!   says how many runs stand behind each cell (scenarios × seeds, and the chance that a
//!   1-in-1,000 break shows), every cell counts exactly that many runs, and every shipped
//!   design has its row.
//! - `readme_matrix_is_what_the_runs_produce` (`#[ignore]`, release):
//!   `cargo test --release --test readme -- --ignored` runs the matrix afresh over
//!   [`MATRIX_SEEDS`] and compares; with `OVERSELL_BLESS=1` it rewrites the table.

use oversell::designs::Registry;
use oversell::expect::{matrix, matrix_header, matrix_markdown, thousands, MATRIX_SEEDS};
use oversell::load::load_file;
use oversell::scenario::Scenario;
use std::path::PathBuf;

const START: &str = "<!-- matrix:start -->\n";
const END: &str = "<!-- matrix:end -->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scenarios() -> Vec<Scenario> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| load_file(f).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// The README, and the text between its matrix markers.
fn readme() -> (String, usize, usize) {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the {START:?} … {END:?} markers");
    };
    (readme, a + START.len(), b)
}

#[test]
fn readme_matrix_states_its_runs_and_has_a_row_per_design() {
    let (readme, a, b) = readme();
    let table = &readme[a..b];
    let scenarios = scenarios();
    let stated = table
        .lines()
        .find(|l| l.contains(" runs per cell ("))
        .unwrap_or_else(|| panic!("the matrix does not state its runs per cell:\n{table}"));
    // "3,150 runs per cell (9 scenarios × 350 seeds, 0..350): ... probability 96%."
    let number = |s: &str| -> u64 { s.replace(',', "").parse().expect("a count") };
    let runs = number(stated.split(' ').next().expect("runs"));
    let inner = &stated[stated.find('(').expect("(") + 1..];
    let n_scenarios = number(inner.split(' ').next().expect("scenarios"));
    let seeds_text = inner.split(", ").nth(1).expect("seed range");
    let seeds = oversell::scenario::SeedRange::parse(seeds_text.split(')').next().expect(")"))
        .expect("a seed range");
    assert_eq!(n_scenarios, scenarios.len() as u64, "{stated}");
    assert_eq!(runs, n_scenarios * seeds.len(), "{stated}");
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert!(
        table.starts_with(&matrix_header(&names, seeds)),
        "the header is not what `oversell matrix --seeds {seeds}` prints over the shipped scenarios:\n{table}"
    );
    let runs_text = thousands(runs).replace(',', "");
    for design in Registry::builtin().names() {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{design}` |")))
            .unwrap_or_else(|| panic!("no row for design {design}:\n{table}"));
        let cells: Vec<&str> = row.split(" | ").skip(1).collect();
        assert_eq!(cells.len(), 5, "{row}");
        for cell in cells {
            assert!(
                cell.contains(&format!("holds ({runs_text} runs"))
                    || cell.contains(&format!("of {runs_text} runs")),
                "a cell of {design} does not count {runs_text} runs: {cell}"
            );
        }
    }
}

#[test]
#[ignore = "runs the whole matrix: cargo test --release --test readme -- --ignored"]
fn readme_matrix_is_what_the_runs_produce() {
    let scenarios = scenarios();
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cells = matrix(&scenarios, MATRIX_SEEDS, jobs, |_| {});
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    let fresh = format!(
        "{}{}",
        matrix_header(&names, MATRIX_SEEDS),
        matrix_markdown(&cells)
    );
    let (readme, a, b) = readme();
    if std::env::var("OVERSELL_BLESS").is_ok() {
        let updated = format!("{}{fresh}{}", &readme[..a], &readme[b..]);
        std::fs::write(root().join("README.md"), updated).expect("write README.md");
        return;
    }
    assert_eq!(
        &readme[a..b],
        fresh,
        "the README's matrix differs from the runs; regenerate it with OVERSELL_BLESS=1 cargo test --release --test readme -- --ignored"
    );
}
