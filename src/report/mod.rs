//! Reports of one judged run, for machines and for people.
//!
//! - [`json`]: the whole run — parameters, verdict and every trace record — as one JSON
//!   value whose schema (`oversell-run/1`) is documented in `docs/run-json.md`.
//! - [`html`]: one self-contained HTML page (inline CSS and JS, no network) with a
//!   timeline a person can read: a lane per service instance and client, per partition and
//!   per consumer group; records with their offsets, transactions, faults, rebalances and
//!   offset commits; the events a violation cites highlighted with the checker's words.
//!
//! Both are pure functions of the scenario, the design's name and the judged run.

mod html;
mod json;

pub use html::{html, PAGE_RECORDS};
pub use json::{json, SCHEMA};

use crate::run::Judged;

/// A violation as the reports show it.
struct Cited {
    invariant: String,
    time: u64,
    explanation: String,
    evidence: Vec<u64>,
}

fn cited(judged: &Judged) -> Vec<Cited> {
    judged
        .counted()
        .map(|v| Cited {
            invariant: v.invariant.name().to_string(),
            time: v.time,
            explanation: v.explanation.clone(),
            evidence: v.evidence.clone(),
        })
        .collect()
}

/// The trace hash as the reports print it: 16 lowercase hex digits.
pub fn trace_hash_hex(hash: u64) -> String {
    format!("{hash:016x}")
}
