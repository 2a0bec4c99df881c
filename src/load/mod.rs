//! Loading scenario files: TOML text in, a checked [`Scenario`] out — or one
//! [`LoadError`] that points at the line and column of the mistake, says what is wrong
//! and, where it can, what would be right.
//!
//! The loader never panics, whatever the input (`tests/load_fuzz.rs`). It works in
//! three steps:
//!
//! 1. toml parses the text into its spanned document (`toml::de::DeTable`: every key
//!    and value a `toml::Spanned`); a syntax error comes with toml's own position.
//! 2. [`Scenario`]'s serde derives read that document (module `de`): the types in
//!    [`crate::scenario`] are the only statement of which keys exist, which are required
//!    and what their defaults are. A serde error (unknown key, missing key, wrong type)
//!    carries the span and key path where it happened and is worded by `explain`.
//! 3. `validate` checks what the types cannot say: limits, references to products,
//!    orders, instances, designs, invariants and hazards (each closed by the scenario),
//!    `[outcomes]` (declared orders and products, a design with an expectation),
//!    duplicate ids, reversed ranges, timing rules, and configurations Kafka refuses. The first problem by position is returned.
//!
//! Limits that the types alone do not say: times and durations are at most [`MAX_MS`]
//! ms, stock and quantities at most [`MAX_UNITS`], `topology.partitions` at most
//! [`MAX_PARTITIONS`], `topology.instances` at most [`MAX_INSTANCES`]; fault rates are
//! per mille (0..=1000); random fault rates need `faults.phase_ms > 0`;
//! `streams.heartbeat_interval_ms` must stay below `streams.session_timeout_ms` (as
//! Kafka's consumer requires); `streams.transaction_timeout_ms` must not be below
//! `streams.commit_interval_ms` (as Kafka Streams requires under exactly-once);
//! `kafka.transaction_version` is 1 or 2; nothing may happen after `run.max_time_ms`.
//! A missing `name` defaults to the file name without `.toml`.

mod de;
mod explain;
mod validate;
mod words;

use crate::scenario::Scenario;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use validate::{MAX_DROP_COUNT, MAX_INSTANCES, MAX_MS, MAX_PARTITIONS, MAX_UNITS};

/// A scenario file that cannot be used: where, what is wrong, and what would be right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file (or the origin given to [`load_str`]).
    pub file: String,
    /// 1-based line of the offending key or value; 0 when the error has no position
    /// (the file could not be read).
    pub line: usize,
    /// 1-based column, in characters; 0 when the error has no position.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What would be right, when the loader can tell.
    pub help: Option<String>,
    /// The text of the offending line (empty when the error has no position).
    pub source_line: String,
    /// How many characters of the offending line to underline (at least 1).
    pub width: usize,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.column, self.message
            )?;
            let (shown, caret_at) = window(&self.source_line, self.column.saturating_sub(1));
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            // Keep tabs under tabs so that the caret lines up.
            let lead: String = shown
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let room = shown.chars().count().saturating_sub(caret_at).max(1);
            let carets = "^".repeat(self.width.clamp(1, room));
            write!(
                f,
                "\n {pad} |\n {number} | {shown}\n {pad} | {lead}{carets}"
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// A long line cut to a window around the column: the text shown and the caret position.
fn window(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().filter(|c| *c != '\r').collect();
    const MAX: usize = 160;
    if chars.len() <= MAX {
        let caret = col.min(chars.len());
        return (chars.into_iter().collect(), caret);
    }
    let start = col.saturating_sub(60).min(chars.len());
    let end = (start + MAX).min(chars.len());
    let mut shown = String::new();
    let mut caret = col - start.min(col);
    if start > 0 {
        shown.push('…');
        caret += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret)
}

/// Load one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| LoadError::unplaced(&file, format!("cannot read the file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        // Positions in the lossy copy: every valid byte before the bad one is unchanged.
        problem(
            offset..offset + 1,
            "the file is not UTF-8 text".to_string(),
            Some("save it as UTF-8".into()),
        )
        .place(&file, &text)
    })?;
    load_str(&text, &file)
}

/// Load a scenario from text; `origin` names it in errors (a path, or e.g. `<stdin>`).
pub fn load_str(text: &str, origin: &str) -> Result<Scenario, LoadError> {
    let root = parse(text).map_err(|p| p.place(origin, text))?;
    let mut scenario: Scenario =
        de::from_value(&root).map_err(|e| explain::explain(e, &root).place(origin, text))?;
    if root.get_ref().get("name").is_none() {
        scenario.name = Path::new(origin)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "scenario".to_string());
    }
    validate::validate(&scenario, &root, text).map_err(|p| p.place(origin, text))?;
    Ok(scenario)
}

/// Load every `*.toml` file directly in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Scenario)>, LoadError> {
    let name = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LoadError::unplaced(&name, format!("cannot read the directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| LoadError::unplaced(&name, format!("cannot read the directory: {e}")))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| load_file(&path).map(|s| (path, s)))
        .collect()
}

/// The invariants `violates` may name.
pub fn invariant_names() -> Vec<&'static str> {
    crate::checker::Invariant::ALL
        .iter()
        .map(|i| i.name())
        .collect()
}

impl LoadError {
    fn unplaced(file: &str, message: String) -> LoadError {
        LoadError {
            file: file.to_string(),
            line: 0,
            column: 0,
            message,
            help: None,
            source_line: String::new(),
            width: 1,
        }
    }
}

// ----- problems and positions -----

/// A problem found at a byte span of the text.
#[derive(Clone, Debug)]
struct Problem {
    span: de::Span,
    message: String,
    help: Option<String>,
}

fn problem(span: de::Span, message: String, help: Option<String>) -> Problem {
    Problem {
        span,
        message,
        help,
    }
}

impl Problem {
    fn place(self, file: &str, text: &str) -> LoadError {
        let mut start = floor_boundary(text, self.span.start);
        // An error at the very end, after the final newline, points at the last line.
        if start == text.len() && text.ends_with('\n') {
            start = floor_boundary(text, start - 1);
            if start > 0 && text[..start].ends_with('\r') {
                start -= 1;
            }
        }
        let end = floor_boundary(text, self.span.end.max(start));
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..start].chars().count() + 1;
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source_line = text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        // A span inside the carriage returns that end a line points at its end.
        let column = column.min(source_line.chars().count() + 1);
        let width = text[start..end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        LoadError {
            file: file.to_string(),
            line,
            column,
            message: self.message,
            help: self.help,
            source_line,
            width,
        }
    }
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

// ----- step 1: TOML syntax -----

/// The document as one spanned table value.
fn parse(text: &str) -> Result<Spanned<DeValue<'_>>, Problem> {
    match DeTable::parse(text) {
        Ok(t) => {
            let span = t.span();
            Ok(Spanned::new(span, DeValue::Table(t.into_inner())))
        }
        Err(e) => Err(syntax_problem(text, &e)),
    }
}

fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let span = e.span().unwrap_or(0..0);
    let mut lines = e.message().lines().map(str::trim).filter(|l| !l.is_empty());
    let mut message = lines.next().unwrap_or("invalid TOML").to_string();
    for l in lines {
        message.push_str(": ");
        message.push_str(l);
    }
    // A key with `=` and nothing after it.
    let start = floor_boundary(text, span.start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let (before, after) = (&text[line_start..start], &text[start..line_end]);
    if before.trim_end().ends_with('=') && after.trim().is_empty() {
        let key = before.trim_end().trim_end_matches('=').trim();
        return problem(
            span,
            format!("{} has no value", words::quote(key)),
            Some(format!(
                "write a value after `=`, e.g. {key} = 1 or {key} = \"text\""
            )),
        );
    }
    let help = syntax_help(&message);
    problem(span, format!("invalid TOML: {message}"), help)
}

fn syntax_help(message: &str) -> Option<String> {
    if message.contains("duplicate key") {
        Some(
            "a key may appear once per table; for a list, repeat a double-bracket header such as [[orders]]"
                .into(),
        )
    } else if message.contains("string") {
        Some("strings are written in double quotes on one line, e.g. id = \"product1\" (is a quote missing?)".into())
    } else if message.contains("key with no value")
        || message.contains("expected `=`")
        || message.contains("extra `=`")
    {
        Some("write each setting as key = value".into())
    } else {
        None
    }
}
