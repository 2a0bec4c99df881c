//! The README's design × fault-class table is the output of `oversell matrix`.
//!
//! - `readme_matrix_states_its_runs_and_has_a_row_per_design` (cheap, always): the table
//!   says how many runs stand behind each cell (scenarios × seeds, and the chance that a
//!   1-in-1,000 break shows), every cell counts exactly that many runs, and every shipped
//!   design has its row.
//! - `readme_matrix_is_what_the_runs_produce` (`#[ignore]`, release):
//!   `cargo test --release --test readme -- --ignored` runs the matrix afresh over
//!   [`MATRIX_SEEDS`] and compares; with `OVERSELL_BLESS=1` it rewrites the table.
//! - The settings table (`oversell settings`) the same way: its shape and the "what an
//!   inventory service must configure" paragraph against the table's own cells
//!   (cheap), and the whole against fresh runs over [`SETTINGS_SEEDS`] (ignored).

use oversell::designs::Registry;
use oversell::expect::{
    matrix, matrix_header, matrix_markdown, must_configure, settings_header, settings_in,
    settings_markdown_in, thousands, FaultClass, Profile, MATRIX_SEEDS, SETTINGS_SEEDS,
};
use oversell::load::load_file;
use oversell::scenario::Scenario;
use std::path::PathBuf;

const START: &str = "<!-- matrix:start -->\n";
const END: &str = "<!-- matrix:end -->";
const SETTINGS_START: &str = "<!-- settings:start -->\n";
const SETTINGS_END: &str = "<!-- settings:end -->";

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
    readme_between(START, END)
}

/// The README, and the text between two markers.
fn readme_between(start: &str, end: &str) -> (String, usize, usize) {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let (Some(a), Some(b)) = (readme.find(start), readme.find(end)) else {
        panic!("README.md lacks the {start:?} … {end:?} markers");
    };
    (readme, a + start.len(), b)
}

/// "N runs per cell (S scenarios × K seeds, A..B)" in a stated line: (N, S, seeds).
fn stated_runs(stated: &str) -> (u64, u64, oversell::scenario::SeedRange) {
    let number = |s: &str| -> u64 { s.replace(',', "").parse().expect("a count") };
    let at = stated.find(" runs per cell (").expect("runs per cell");
    let runs = number(stated[..at].rsplit(' ').next().expect("runs"));
    let inner = &stated[at + " runs per cell (".len()..];
    let n_scenarios = number(inner.split(' ').next().expect("scenarios"));
    let seeds_text = inner.split(", ").nth(1).expect("seed range");
    let seeds = oversell::scenario::SeedRange::parse(seeds_text.split(')').next().expect(")"))
        .expect("a seed range");
    (runs, n_scenarios, seeds)
}

/// Every cell of a row counts `runs` runs.
fn counts(design: &str, cell: &str, runs: u64) {
    let runs_text = thousands(runs).replace(',', "");
    assert!(
        cell.contains(&format!("holds ({runs_text} runs"))
            || cell.contains(&format!("of {runs_text} runs")),
        "a cell of {design} does not count {runs_text} runs: {cell}"
    );
}

/// A design's row of a table, as its cells.
fn row<'t>(table: &'t str, design: &str) -> Vec<&'t str> {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| `{design}` |")))
        .unwrap_or_else(|| panic!("no row for design {design}:\n{table}"));
    row.trim_end_matches(" |").split(" | ").skip(1).collect()
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
    let (runs, n_scenarios, seeds) = stated_runs(stated);
    assert_eq!(n_scenarios, scenarios.len() as u64, "{stated}");
    assert_eq!(runs, n_scenarios * seeds.len(), "{stated}");
    let broker_line = table
        .lines()
        .find(|l| l.starts_with("The broker column: "))
        .unwrap_or_else(|| panic!("the matrix does not state the broker column's runs:\n{table}"));
    // "The broker column: 315 runs per cell (35 seeds per scenario, 0..35), as ..."
    let broker_runs: u64 = broker_line["The broker column: ".len()..]
        .split(' ')
        .next()
        .expect("runs")
        .replace(',', "")
        .parse()
        .expect("a count");
    let broker_seeds = oversell::scenario::SeedRange::parse(
        broker_line
            .split(", ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .expect("broker seeds"),
    )
    .expect("a seed range");
    assert_eq!(
        broker_runs,
        n_scenarios * broker_seeds.len(),
        "{broker_line}"
    );
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    let both = oversell::expect::MatrixSeeds {
        seeds,
        broker: broker_seeds,
    };
    assert!(
        table.starts_with(&matrix_header(&names, both)),
        "the header is not what `oversell matrix --seeds {seeds} --broker-seeds {broker_seeds}` prints over the shipped scenarios:\n{table}"
    );
    for design in Registry::builtin().names() {
        let cells = row(table, design);
        assert_eq!(cells.len(), FaultClass::ALL.len(), "{design}: {cells:?}");
        for (class, cell) in FaultClass::ALL.iter().zip(cells) {
            counts(design, cell, n_scenarios * both.of(*class).len());
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

#[test]
fn readme_settings_table_states_its_runs_and_its_paragraph_is_the_tables() {
    let (readme, a, b) = readme_between(SETTINGS_START, SETTINGS_END);
    let table = &readme[a..b];
    let scenarios = scenarios();
    let stated = table
        .lines()
        .find(|l| l.contains(" runs per cell ("))
        .unwrap_or_else(|| panic!("the settings table does not state its runs:\n{table}"));
    let (runs, n_scenarios, seeds) = stated_runs(stated);
    assert_eq!(n_scenarios, scenarios.len() as u64, "{stated}");
    assert_eq!(runs, n_scenarios * seeds.len(), "{stated}");
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert!(
        table.starts_with(&settings_header(&names, seeds)),
        "the header is not what `oversell settings --seeds {seeds}` prints:\n{table}"
    );
    let designs = Registry::builtin().names();
    let mut losers: Vec<(Profile, Vec<(String, u64)>)> =
        Profile::ALL.iter().map(|p| (*p, Vec::new())).collect();
    for design in &designs {
        let cells = row(table, design);
        assert_eq!(cells.len(), Profile::ALL.len(), "{design}: {cells:?}");
        for (i, cell) in cells.iter().enumerate() {
            counts(design, cell, runs);
            if let Some(at) = cell.find("no-lost-write ") {
                let count: String = cell[at + "no-lost-write ".len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let count = count.parse().unwrap_or_else(|_| panic!("{design}: {cell}"));
                losers[i].1.push((design.to_string(), count));
            }
        }
    }
    let paragraph = must_configure(designs.len(), runs, &losers);
    assert!(
        table.ends_with(&paragraph),
        "the paragraph under the settings table is not what its cells say:\n{paragraph}"
    );
}

#[test]
#[ignore = "runs the settings table: cargo test --release --test readme -- --ignored"]
fn readme_settings_table_is_what_the_runs_produce() {
    let scenarios = scenarios();
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let registry = Registry::builtin();
    let cells = settings_in(&registry, &scenarios, SETTINGS_SEEDS, jobs, |_| {});
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    let fresh = format!(
        "{}{}",
        settings_header(&names, SETTINGS_SEEDS),
        settings_markdown_in(&registry, &cells)
    );
    let (readme, a, b) = readme_between(SETTINGS_START, SETTINGS_END);
    if std::env::var("OVERSELL_BLESS").is_ok() {
        let updated = format!("{}{fresh}{}", &readme[..a], &readme[b..]);
        std::fs::write(root().join("README.md"), updated).expect("write README.md");
        return;
    }
    assert_eq!(
        &readme[a..b],
        fresh,
        "the README's settings table differs from the runs; regenerate it with OVERSELL_BLESS=1 cargo test --release --test readme -- --ignored"
    );
}
