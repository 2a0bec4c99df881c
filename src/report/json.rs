//! The machine-readable report: schema `oversell-run/1` (see `docs/run-json.md`).

use super::{cited, trace_hash_hex};
use crate::run::{Judged, Status};
use crate::scenario::Scenario;
use oversell_sim::{Millis, Outcome, TraceRecord};
use serde::Serialize;
use serde_json::Value;

/// The schema name and version written in every report's `schema` field. A change that
/// removes or renames a field, or changes its meaning, bumps the number.
pub const SCHEMA: &str = "oversell-run/1";

/// The whole run as one JSON value: its parameters, how it ended, its verdict and every
/// trace record. The `trace` array deserialises into `Vec<TraceRecord>` and hashes (as a
/// [`oversell_sim::Trace`]) to `trace_hash`.
pub fn json(scenario: &Scenario, design: &str, judged: &Judged) -> Value {
    serde_json::to_value(Doc::new(scenario, design, judged)).expect("a run serialises")
}

/// The same document as text, with its fields in schema order (a [`Value`] sorts them),
/// and only the trace records of `window` (a page of a long run's timeline).
pub(super) fn json_text(
    scenario: &Scenario,
    design: &str,
    judged: &Judged,
    window: std::ops::Range<usize>,
) -> String {
    let mut doc = Doc::new(scenario, design, judged);
    doc.trace = &doc.trace[window];
    serde_json::to_string(&doc).expect("a run serialises")
}

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    scenario: &'a str,
    design: &'a str,
    seed: Option<u64>,
    outcome: &'a Outcome,
    end_time: Millis,
    steps: u64,
    healed_at: Millis,
    trace_hash: String,
    choices: String,
    verdict: VerdictDoc,
    trace: &'a [TraceRecord],
}

#[derive(Serialize)]
struct VerdictDoc {
    /// `holds`, `violated`, or `unsettled` (ended at a bound: liveness not judged).
    status: Status,
    holds: bool,
    violations: Vec<ViolationDoc>,
    /// Invariants the run could not be judged on (it did not settle).
    not_judged: Vec<&'static str>,
}

#[derive(Serialize)]
struct ViolationDoc {
    invariant: String,
    time: Millis,
    explanation: String,
    evidence: Vec<u64>,
}

impl<'a> Doc<'a> {
    fn new(scenario: &'a Scenario, design: &'a str, judged: &'a Judged) -> Doc<'a> {
        let r = &judged.result;
        let violations: Vec<ViolationDoc> = cited(judged)
            .into_iter()
            .map(|v| ViolationDoc {
                invariant: v.invariant,
                time: v.time,
                explanation: v.explanation,
                evidence: v.evidence,
            })
            .collect();
        Doc {
            schema: SCHEMA,
            scenario: &scenario.name,
            design,
            seed: judged.seed,
            outcome: &r.outcome,
            end_time: r.end_time,
            steps: r.steps,
            healed_at: r.healed_at,
            trace_hash: trace_hash_hex(r.trace.hash()),
            choices: r.choices.encode(),
            verdict: VerdictDoc {
                status: judged.status(),
                holds: violations.is_empty(),
                violations,
                not_judged: judged.not_judged().iter().map(|i| i.name()).collect(),
            },
            trace: &r.trace.records,
        }
    }
}
