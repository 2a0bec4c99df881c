//! The HTML timeline: one self-contained page (inline CSS and JS, no network).
//!
//! Layout. Time runs left to right. Every simulated millisecond at which something
//! labelled happens gets a column wide enough for the events of the busiest lane at that
//! millisecond (side by side, in trace order); the idle time between two columns is
//! drawn compressed, its width growing with the logarithm of its length, and the axis
//! prints every column's time and every long gap's length. Spans (downtime, pauses, open
//! transactions) are placed on the same scale. The page zooms by scaling one CSS variable.
//!
//! Lanes, top to bottom: per service instance a header lane (crashes, restarts, pauses)
//! followed by a lane per client of that instance (processing, store reads and writes,
//! acks, transactions, errors, notes) and, hidden until asked for, a lane of its
//! background chatter (network messages, fetches, timers, punctuations) drawn as ticks;
//! an event a violation cites is always shown on its client's lane. Per topic-partition
//! a lane of its log (appends with their offsets and the decoded domain event, markers,
//! duplicates, compaction); per consumer group a lane (joins, leaves, rebalances, offset
//! commits); then the broker's rejections and the network faults.
//!
//! Evidence. Events a violation cites are drawn red, with a numbered badge and a band
//! through every lane; a callout with the checker's words ends over the last cited event
//! at or before the time the invariant broke, and the page opens there. Hovering or
//! clicking any event shows its full record (from the embedded run JSON) and the
//! violations citing it. The address may say where to open: `#seq=N`, `#fit`, `#z=0.5`,
//! `#net` (combined with `&`).
//!
//! Text from the trace is escaped everywhere (every dynamic string goes through
//! [`text::esc`], and the page is put together by small functions, one per part); the run's JSON is embedded with `<`, `>`
//! and `&` written as JSON escapes, so no record value can close a tag.

mod layout;
mod model;
mod place;
mod render;
mod text;

use super::{cited, json::json_text, trace_hash_hex, Cited};
use crate::run::{Judged, Status};
use crate::scenario::Scenario;
use model::Model;
use oversell_sim::TraceRecord;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;
use text::{esc, outcome_text, script_safe};

const CSS: &str = include_str!("timeline.css");
const JS: &str = include_str!("timeline.js");

/// Width of one labelled event's slot at zoom 1, in px (the CSS draws the box 6 px narrower).
const SLOT: u64 = 176;
/// Width of a network tick's slot, px.
const TICK: u64 = 7;
/// A page draws at most this many trace records (a few MB): a longer run's page is the
/// window of this many around the first event a violation cites (else its first records);
/// the run's JSON (`replay --json`) holds them all.
pub const PAGE_RECORDS: usize = 20_000;
/// Callouts (one per invariant) take at most this many rows; the header lists every violation.
const MAX_CALLOUT_ROWS: usize = 2;
/// Width of a callout (as in the CSS) and height of its row, px.
const CALLOUT_W: u64 = 640;
const CALLOUT_H: usize = 40;

/// The self-contained HTML timeline of a judged run. `replay_command` is printed in the
/// header (and copied by its button), as the way to reproduce the run.
pub fn html(scenario: &Scenario, design: &str, judged: &Judged, replay_command: &str) -> String {
    let violations = cited(judged);
    let result = &judged.result;
    let window = page_window(&result.trace.records, &violations);
    let records = &result.trace.records[window.clone()];
    let end = match records.last() {
        Some(last) if window.end < result.trace.records.len() => last.time,
        _ => result.end_time,
    };
    let mut model = Model::build(records, &violations, end);
    model.layout();
    let page = Page {
        scenario,
        design,
        judged,
        violations: &violations,
        model: &model,
        seed: judged
            .seed
            .map_or_else(|| "replayed log".to_string(), |s| s.to_string()),
        verdict: verdict_text(judged, &violations),
        window: window.clone(),
    };
    let mut out = String::with_capacity(4096 + records.len() * 360);
    page.head(&mut out);
    out.push_str("<header>");
    page.title(&mut out);
    page.summary(&mut out);
    page.replay(&mut out, replay_command);
    page.violation_list(&mut out);
    out.push_str(TOOLS);
    out.push_str("</header>\n");
    model.render(&mut out, &violations, result.healed_at);
    out.push_str(DETAILS);
    out.push_str("<script type=\"application/json\" id=\"run\">");
    out.push_str(&script_safe(&json_text(scenario, design, judged, window)));
    out.push_str("</script>\n<script>");
    out.push_str(JS);
    out.push_str("</script>\n</body></html>\n");
    out
}

/// The records a page draws: all of them, or [`PAGE_RECORDS`] around the first cited one.
fn page_window(records: &[TraceRecord], violations: &[Cited]) -> Range<usize> {
    let n = records.len();
    if n <= PAGE_RECORDS {
        return 0..n;
    }
    let first_cited = (violations.iter().flat_map(|v| v.evidence.iter()))
        .filter_map(|s| records.binary_search_by_key(s, |r| r.seq).ok())
        .min();
    let start = first_cited.map_or(0, |i| i.saturating_sub(PAGE_RECORDS / 2));
    let end = (start + PAGE_RECORDS).min(n);
    end - PAGE_RECORDS..end
}

/// The verdict in words: holds, the invariants violated, or unsettled.
fn verdict_text(judged: &Judged, violations: &[Cited]) -> String {
    match judged.status() {
        Status::Holds => "holds".to_string(),
        Status::Unsettled => "unsettled — liveness not judged".to_string(),
        Status::Violated => {
            let names: BTreeSet<&str> = violations.iter().map(|v| v.invariant.as_str()).collect();
            format!(
                "violates {}",
                names.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// The zoom buttons, the network switch and the legend.
const TOOLS: &str = "<div class=\"tools\"><span class=\"k\">zoom</span>\
     <button type=\"button\" data-zoom=\"out\">−</button>\
     <button type=\"button\" data-zoom=\"in\">+</button>\
     <button type=\"button\" data-zoom=\"fit\">fit</button>\
     <button type=\"button\" data-zoom=\"one\">1:1</button>\
     <label><input type=\"checkbox\" id=\"net\"> network, fetches &amp; timers</label>\
     <span class=\"legend\">\
     <span class=\"i ap\">append</span><span class=\"i ap tx cm\">txn, committed</span>\
     <span class=\"i ap tx ab\">txn, aborted</span><span class=\"i mk cm\">marker</span>\
     <span class=\"i pr\">process</span><span class=\"i sg\">store get</span>\
     <span class=\"i sp\">store put</span><span class=\"i oc\">offset commit</span>\
     <span class=\"i rb\">group</span><span class=\"i cr\">crash</span>\
     <span class=\"i pa\">pause</span><span class=\"i ev\">evidence</span></span>\
     <span class=\"hint\">idle time compressed · hover or click an event</span>\
     </div>";

/// The pane that shows an event in full.
const DETAILS: &str = "<section id=\"det\"><div class=\"dh\">Hover over an event to see it in full; click to pin it.</div></section>\n";

/// What the header shows.
struct Page<'a> {
    scenario: &'a Scenario,
    design: &'a str,
    judged: &'a Judged,
    violations: &'a [Cited],
    model: &'a Model,
    seed: String,
    verdict: String,
    /// The records drawn: every one, or a page of a long run.
    window: Range<usize>,
}

impl Page<'_> {
    fn head(&self, out: &mut String) {
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · {} · seed {} · {}</title><style>{CSS}</style></head><body>\n",
            esc(&self.scenario.name),
            esc(self.design),
            esc(&self.seed),
            esc(&self.verdict)
        );
    }

    fn title(&self, out: &mut String) {
        let _ = write!(
            out,
            "<div class=\"top\"><h1><span class=\"brand\">oversell</span>\
             <span class=\"k\">scenario</span> <b>{}</b> <span class=\"k\">design</span> <b>{}</b> \
             <span class=\"k\">seed</span> <b>{}</b></h1>",
            esc(&self.scenario.name),
            esc(self.design),
            esc(&self.seed)
        );
        let class = match self.judged.status() {
            Status::Holds => "ok",
            Status::Unsettled => "unsettled",
            Status::Violated => "bad",
        };
        let _ = write!(
            out,
            "<div class=\"verdict {class}\">{}</div>",
            esc(&self.verdict.to_uppercase())
        );
    }

    fn summary(&self, out: &mut String) {
        let result = &self.judged.result;
        let _ = write!(
            out,
            "</div><div class=\"sub\"><p class=\"desc\">{}</p><div class=\"meta\"><span>{}</span>\
             <span>ended at {} ms</span><span>{} steps</span><span>{} events</span><span>trace {}</span></div></div>",
            esc(self.scenario.description.trim()),
            esc(&outcome_text(&result.outcome)),
            result.end_time,
            result.steps,
            result.trace.records.len(),
            trace_hash_hex(result.trace.hash())
        );
        let total = result.trace.records.len();
        if self.window.len() < total {
            let _ = write!(
                out,
                "<p class=\"page\">This page draws records #{} to #{} of {total} (at most {PAGE_RECORDS} a page, \
                 around the first cited event); <code>replay --json</code> writes them all.</p>",
                self.window.start,
                self.window.end - 1,
            );
        }
    }

    fn replay(&self, out: &mut String, command: &str) {
        let _ = write!(
            out,
            "<div class=\"replay\"><span class=\"k\">replay</span><code id=\"cmd\">{}</code>\
             <button type=\"button\" id=\"copy\">copy</button></div>",
            esc(command)
        );
    }

    /// Every violation: its badge, invariant, time, words and evidence links.
    fn violation_list(&self, out: &mut String) {
        if self.violations.is_empty() {
            return;
        }
        out.push_str("<ol class=\"viol\">");
        for (n, v) in self.violations.iter().enumerate() {
            let first = self.model.anchor(n, v.time).map(|it| it.seq);
            let _ = write!(
                out,
                "<li{} title=\"{}\"><span class=\"bd\">{}</span><b>{}</b> <span class=\"at\">at {} ms</span> {}",
                first.map_or(String::new(), |s| format!(" data-jump=\"{s}\"")),
                esc(&v.explanation),
                n + 1,
                esc(&v.invariant),
                v.time,
                esc(&v.explanation)
            );
            if !v.evidence.is_empty() {
                out.push_str(" <span class=\"evs\">evidence:");
                for s in &v.evidence {
                    let _ = write!(out, " <a data-jump=\"{s}\">#{s}</a>");
                }
                out.push_str("</span>");
            }
            out.push_str("</li>");
        }
        out.push_str("</ol>");
    }
}
