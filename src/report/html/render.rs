//! The timeline's markup: axis, callouts, lanes, items. Every text goes through `esc`.

use super::model::{Col, Item, Kind, Lane, Model};
use super::text::esc;
use super::{Cited, CALLOUT_H, CALLOUT_W, MAX_CALLOUT_ROWS, SLOT};
use oversell_sim::Millis;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A callout placed: violation number, the violation, the event it jumps to, where its
/// right edge is, its row.
type Callout<'v> = (usize, &'v Cited, Option<u64>, u64, usize);

impl Model {
    pub fn render(&self, out: &mut String, violations: &[Cited], healed_at: Millis) {
        let _ = write!(
            out,
            "<main id=\"sc\"><div id=\"tl\" style=\"--z:1;--W:{}\" data-w=\"{}\">",
            self.width, self.width
        );
        self.axis(out, healed_at);
        self.callouts(out, violations);
        for (n, lane) in self.lanes.iter().enumerate() {
            self.heading(out, n);
            if shown(lane) {
                self.lane_row(out, lane);
            }
        }
        // Columns of cited events, through every lane.
        for lane in &self.lanes {
            for it in lane.items.iter().filter(|it| !it.cited.is_empty()) {
                let _ = write!(out, "<div class=\"evl\" style=\"--x:{}\"></div>", it.x);
            }
        }
        out.push_str("</div></main>\n");
    }

    /// The axis: each column's time, each long gap's length, the heal time.
    fn axis(&self, out: &mut String, healed_at: Millis) {
        out.push_str("<div class=\"row axis\"><div class=\"lbl\">simulated time (ms)</div><div class=\"trk\">");
        let mut prev: Option<&Col> = None;
        for c in &self.cols {
            let (pt, pend) = prev.map_or((0, 0), |p| (p.t, p.x + p.w));
            if c.x - pend >= 60 && c.t > pt {
                let _ = write!(
                    out,
                    "<div class=\"gp\" style=\"--x:{pend};--w:{}\">+{} ms</div>",
                    c.x - pend,
                    c.t - pt
                );
            }
            let _ = write!(out, "<div class=\"tk\" style=\"--x:{}\">{}</div>", c.x, c.t);
            prev = Some(c);
        }
        let _ = write!(
            out,
            "<div class=\"tk end\" style=\"--x:{}\">end {}</div>",
            self.end_x, self.end
        );
        let faulty = self.lanes.iter().any(|l| {
            l.kind == Kind::Instance && !l.spans.is_empty()
                || l.title == "network" && !l.items.is_empty()
        });
        let heal = (faulty && healed_at > 0).then(|| self.x_of(healed_at));
        if let Some(x) = heal {
            let _ = write!(
                out,
                "<div class=\"heal\" style=\"--x:{x}\" title=\"faults stopped and every instance was back by {healed_at} ms\">healed {healed_at}</div>"
            );
        }
        out.push_str("</div></div>");
        if let Some(x) = heal {
            let _ = write!(out, "<div class=\"healline\" style=\"--x:{x}\"></div>");
        }
    }

    /// The first violation of each invariant, packed into as few rows as fit. A callout
    /// ends over its anchor event, so the story leading to it shows; when that place is
    /// taken, it moves left (at most two widths) or down a row.
    fn pack_callouts<'v>(&self, violations: &'v [Cited]) -> (Vec<Callout<'v>>, usize) {
        let mut seen = BTreeSet::new();
        // Per row, the intervals taken (at zoom 1).
        let mut rows: Vec<Vec<(u64, u64)>> = Vec::new();
        let mut shown = Vec::new();
        for (n, v) in violations.iter().enumerate() {
            if !seen.insert(v.invariant.as_str()) {
                continue;
            }
            let anchor = self.anchor(n, v.time);
            let want = (anchor.map_or_else(|| self.x_of(v.time), |it| it.x) + SLOT).max(CALLOUT_W);
            let spot = rows
                .iter()
                .enumerate()
                .find_map(|(r, row)| place_in_row(row, want).map(|end| (r, end)));
            let (row, end) = match spot {
                Some(spot) => spot,
                None if rows.len() < MAX_CALLOUT_ROWS => {
                    rows.push(Vec::new());
                    (rows.len() - 1, want)
                }
                None => continue,
            };
            rows[row].push((end - CALLOUT_W, end));
            shown.push((n, v, anchor.map(|it| it.seq), end, row));
        }
        (shown, rows.len())
    }

    /// Callouts: the checker's words above the events they cite.
    fn callouts(&self, out: &mut String, violations: &[Cited]) {
        let (shown, rows) = self.pack_callouts(violations);
        if shown.is_empty() {
            return;
        }
        let _ = write!(
            out,
            "<div class=\"row calls\" style=\"height:{}px\"><div class=\"lbl\"><span class=\"t\">violations</span>\
             <span class=\"u\">checker</span></div><div class=\"trk\">",
            rows * CALLOUT_H + 6
        );
        for (n, v, first, end, row) in shown {
            let _ = write!(
                out,
                "<div class=\"call\" style=\"--x:{end};top:{}px\"{} title=\"{}\"><span class=\"bd\">{}</span>\
                 <b>{}</b> <span class=\"at\">at {} ms</span> <span class=\"ex\">{}</span></div>",
                row * CALLOUT_H + 4,
                first.map_or(String::new(), |s| format!(" data-jump=\"{s}\"")),
                esc(&v.explanation),
                n + 1,
                esc(&v.invariant),
                v.time,
                esc(&v.explanation)
            );
        }
        out.push_str("</div></div>");
    }

    /// A heading over the lanes up to the next one, unless none of them shows.
    fn heading(&self, out: &mut String, n: usize) {
        for (h, (at, title)) in self.headings.iter().enumerate() {
            let upto = self
                .headings
                .get(h + 1)
                .map_or(self.lanes.len(), |next| next.0);
            if *at == n && self.lanes[*at..upto].iter().any(shown) {
                let _ = write!(
                    out,
                    "<div class=\"gh\"><div class=\"lbl\">{}</div></div>",
                    esc(title)
                );
            }
        }
    }

    fn lane_row(&self, out: &mut String, lane: &Lane) {
        let kind = match lane.kind {
            Kind::Instance => "inst",
            Kind::Client => "cli",
            Kind::Net => "net",
            Kind::Partition => "part",
            Kind::Group => "grp",
            Kind::Broker => "brk",
        };
        let _ = write!(
            out,
            "<div class=\"row {kind}\"><div class=\"lbl{}\" title=\"{}\"><span class=\"t\">{}</span><span class=\"u\">{}</span></div><div class=\"trk\">",
            if lane.title.chars().count() > 26 { " long" } else { "" },
            esc(&lane.title),
            esc(&lane.title),
            esc(&lane.sub)
        );
        for s in &lane.spans {
            let x = self.x_of(s.from);
            let w = self.x_of(s.to).saturating_sub(x).max(4);
            let _ = write!(
                out,
                "<div class=\"s {}\" style=\"--x:{x};--w:{w}\" data-s=\"{}\">{}</div>",
                s.class,
                s.seq,
                esc(&s.label)
            );
        }
        for it in &lane.items {
            item(out, it, lane.kind == Kind::Net);
        }
        out.push_str("</div></div>");
    }
}

/// Where a callout wanting to end at `want` fits in `row`, if it does.
fn place_in_row(row: &[(u64, u64)], want: u64) -> Option<u64> {
    let fits = |end: u64| {
        end >= CALLOUT_W
            && row
                .iter()
                .all(|(a, b)| end + 8 <= *a || end - CALLOUT_W >= *b + 8)
    };
    std::iter::once(want)
        .chain(row.iter().map(|(a, _)| a.saturating_sub(8)))
        .filter(|end| *end <= want && want - *end <= 2 * CALLOUT_W && fits(*end))
        .max()
}

/// Whether a lane is drawn: empty background and broker lanes are not.
fn shown(lane: &Lane) -> bool {
    !(lane.items.is_empty()
        && lane.spans.is_empty()
        && matches!(lane.kind, Kind::Net | Kind::Broker))
}

/// One event: a box with its badge and two lines, or a bare tick on a background lane.
fn item(out: &mut String, it: &Item, tick: bool) {
    let _ = write!(
        out,
        "<div class=\"i {}\" style=\"--x:{}\" data-s=\"{}\"",
        it.class, it.x, it.seq
    );
    if !it.cited.is_empty() {
        let list: Vec<String> = it.cited.iter().map(|c| c.to_string()).collect();
        let _ = write!(out, " data-v=\"{}\"", list.join(" "));
    }
    if tick && it.cited.is_empty() {
        // Ticks: no room for text, the details pane shows it.
        out.push_str("></div>");
        return;
    }
    out.push('>');
    if let Some(c) = it.cited.first() {
        // One badge: the first violation citing it (the details pane lists all).
        let more = if it.cited.len() > 1 { "+" } else { "" };
        let _ = write!(out, "<span class=\"bd\">{}{more}</span>", c + 1);
    }
    let _ = write!(out, "<i>{}</i>", esc(&it.top));
    if !it.kind.is_empty() {
        let _ = write!(out, "<u>{}</u> ", esc(&it.kind));
    }
    let _ = write!(out, "{}</div>", esc(&it.main));
}
