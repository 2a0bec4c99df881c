//! `oversell merge`: the shards of a sweep, combined into the whole sweep's report.

use super::out::{self, say, Shown};
use super::sweeps::{exit_of, print_sweep, sweep_json};
use super::{Error, Exit, OutFile};
use crate::shard::{merge as merge_reports, ShardReport};
use std::path::{Path, PathBuf};

/// Read every shard report, merge them, print the summary `explore` prints for the
/// whole range (without its speed) and write the JSON `explore --json` writes.
pub fn merge(files: &[PathBuf], json: Option<&Path>) -> Result<Exit, Error> {
    let out_file = OutFile::open_opt(json)?;
    let mut reports = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        let report: ShardReport = serde_json::from_str(&text).map_err(|e| {
            Error::Scenario(format!(
                "{}: not a shard report of `explore --shard i/n --json`: {e}",
                out::path(file)
            ))
        })?;
        reports.push(report);
    }
    let merged = merge_reports(&reports).map_err(Error::Scenario)?;
    let first = &reports[0];
    say!(
        "seeds {} · scenario {} ({}) · merged from {} shards",
        first.seeds,
        Shown(&first.scenario),
        Shown(&first.file),
        reports.len()
    );
    let mut exit = Exit::Holds;
    let mut doc = serde_json::Map::new();
    for (name, d) in &merged {
        print_sweep(name, &d.sweep, d.end, None);
        exit = exit.and(exit_of(&d.sweep));
        doc.insert(name.clone(), sweep_json(&d.sweep, d.end)?);
    }
    if let Some(f) = out_file {
        f.write(&serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(exit)
}
