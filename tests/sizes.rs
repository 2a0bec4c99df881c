//! Sizes: no source file over 800 lines, no non-test function over 70 lines in the code
//! (`src/`, `sim/src/`, `examples/`, `sim/benches/`). Test files are measured too; the
//! few that are larger are listed below with why.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 70;

/// Test files allowed past [`MAX_FILE_LINES`], and why.
const LARGE_TEST_FILES: &[(&str, &str)] = &[
    (
        "sim/tests/broker_model.rs",
        "the broker's reference model, its operation generator and the harness comparing them: one property test",
    ),
    (
        "sim/tests/streams_model.rs",
        "the streams runtime's reference model and its harness: one property test",
    ),
    (
        "tests/load_errors.rs",
        "one test per loader error class, the loader's specification",
    ),
    (
        "tests/load_fuzz.rs",
        "the scenario generator and its mutators for the loader's fuzzing",
    ),
];

/// Non-test functions allowed past [`MAX_FN_LINES`] (`path`, `function`), and why. None.
const LONG_FUNCTIONS: &[(&str, &str, &str)] = &[];

const CODE: &[&str] = &["src", "sim/src", "examples", "sim/benches"];
const TESTS: &[&str] = &["tests", "sim/tests"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() && !path.ends_with("target") {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Functions of a file outside its test code, as (name, first line, lines): a function
/// starts at a `fn` line and ends at the first `}` line at its indentation. Test code is
/// a file in a `tests` directory, a `tests.rs` or `testkit.rs` module, or whatever
/// follows `#[cfg(test)]`.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let indent = line.len() - line.trim_start().len();
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "fn");
        let is_fn = at.is_some_and(|n| {
            words[..n]
                .iter()
                .all(|w| w.starts_with("pub") || ["const", "async", "unsafe"].contains(w))
        });
        if !is_fn {
            i += 1;
            continue;
        }
        let name = words[at.expect("fn") + 1]
            .split(['(', '<'])
            .next()
            .unwrap_or_default()
            .to_string();
        let mut j = i;
        while j < lines.len() && !lines[j].trim_end().ends_with('{') {
            if lines[j].trim_end().ends_with(';') {
                break; // a declaration without a body
            }
            j += 1;
        }
        if j >= lines.len() || lines[j].trim_end().ends_with(';') {
            i = j + 1;
            continue;
        }
        let close = " ".repeat(indent) + "}";
        let end = (j + 1..lines.len())
            .find(|&k| lines[k].starts_with(&close) && !lines[k][indent..].starts_with("} else"))
            .unwrap_or(lines.len() - 1);
        out.push((name, i + 1, end - i + 1));
        i += 1;
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relative(path: &Path) -> String {
    let rel = path.strip_prefix(root()).expect("under the root");
    rel.to_string_lossy().replace('\\', "/")
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut files = Vec::new();
    for dir in CODE.iter().chain(TESTS) {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut over = Vec::new();
    for f in &files {
        let n = std::fs::read_to_string(f)
            .expect("readable")
            .lines()
            .count();
        let rel = relative(f);
        if n > MAX_FILE_LINES && !LARGE_TEST_FILES.iter().any(|(p, _)| *p == rel) {
            over.push(format!("{rel}: {n} lines"));
        }
    }
    assert!(
        over.is_empty(),
        "files over {MAX_FILE_LINES} lines: {over:#?}"
    );
}

#[test]
fn no_function_of_the_code_is_over_70_lines() {
    let mut files = Vec::new();
    for dir in CODE {
        rust_files(&root().join(dir), &mut files);
    }
    let mut over = Vec::new();
    let mut measured = 0;
    for f in &files {
        let rel = relative(f);
        let test_code = ["tests.rs", "testkit.rs"].iter().any(|t| rel.ends_with(t));
        if test_code || rel.split('/').any(|part| part == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("readable");
        for (name, line, n) in functions(&text) {
            measured += 1;
            let allowed = LONG_FUNCTIONS
                .iter()
                .any(|(p, f, _)| *p == rel && *f == name);
            if n > MAX_FN_LINES && !allowed {
                over.push(format!("{rel}:{line} {name}: {n} lines"));
            }
        }
    }
    assert!(measured > 500, "measured only {measured} functions");
    assert!(
        over.is_empty(),
        "functions over {MAX_FN_LINES} lines: {over:#?}"
    );
}

#[test]
fn the_measure_sees_a_long_function_and_skips_test_code() {
    let body = "    let x = 1;\n".repeat(80);
    let text = format!(
        "pub(crate) fn long() {{\n{body}}}\n\nfn short() {{\n}}\n\n#[cfg(test)]\nmod tests {{\n    fn t() {{\n{body}    }}\n}}\n"
    );
    let f = functions(&text);
    assert_eq!(f, vec![("long".into(), 1, 82), ("short".into(), 84, 2)]);
}
