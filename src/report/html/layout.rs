//! Where things are: a column per millisecond with labelled events, the idle time
//! between columns compressed logarithmically.

use super::model::{Col, Item, Kind, Model};
use super::{SLOT, TICK};
use oversell_sim::Millis;
use std::collections::BTreeMap;

/// Width of an idle gap of `d` ms, px.
fn gap(d: Millis) -> u64 {
    if d == 0 {
        0
    } else {
        10 + (16.0 * (d as f64).log2()).round() as u64
    }
}

impl Model {
    /// Columns for every millisecond with a labelled event, compressed gaps between them;
    /// then every item's position.
    pub fn layout(&mut self) {
        let (per_time, end) = self.busiest();
        let (mut prev_t, mut prev_end) = (0, 0);
        for (t, n) in per_time {
            let x = prev_end + gap(t - prev_t).max(if self.cols.is_empty() { 8 } else { 0 });
            let w = n * SLOT;
            self.cols.push(Col { t, x, w });
            prev_t = t;
            prev_end = x + w;
        }
        self.end = end.max(prev_t);
        self.end_x = prev_end + gap(self.end - prev_t);
        self.width = self.end_x + 40;
        for l in 0..self.lanes.len() {
            self.place_items(l);
        }
    }

    /// Per millisecond, the most labelled events any lane has at it; and the time the
    /// drawing ends (the run's end, or a span's end after it).
    fn busiest(&self) -> (BTreeMap<Millis, u64>, Millis) {
        let mut per_time: BTreeMap<Millis, u64> = BTreeMap::new();
        let mut end = self.end;
        for lane in self.lanes.iter().filter(|l| l.kind != Kind::Net) {
            let mut t = None;
            let mut n = 0;
            for it in &lane.items {
                if t != Some(it.time) {
                    t = Some(it.time);
                    n = 0;
                }
                n += 1;
                let w = per_time.entry(it.time).or_insert(0);
                *w = (*w).max(n);
            }
            for s in &lane.spans {
                end = end.max(s.to);
            }
        }
        (per_time, end)
    }

    /// Items of one lane side by side in their column (ticks, narrower, on a background lane).
    fn place_items(&mut self, l: usize) {
        let net = self.lanes[l].kind == Kind::Net;
        let mut t = None;
        let mut n = 0;
        for i in 0..self.lanes[l].items.len() {
            let time = self.lanes[l].items[i].time;
            if t != Some(time) {
                t = Some(time);
                n = 0;
            }
            let x = if net {
                let room = self.col(time).map_or(SLOT, |c| c.w.max(SLOT)) - TICK;
                self.x_of(time) + (n * TICK).min(room)
            } else {
                self.x_of(time) + n * SLOT
            };
            self.lanes[l].items[i].x = x;
            n += 1;
        }
    }

    fn col(&self, t: Millis) -> Option<&Col> {
        self.cols
            .binary_search_by_key(&t, |c| c.t)
            .ok()
            .map(|i| &self.cols[i])
    }

    /// Where time `t` is, in px at zoom 1.
    pub fn x_of(&self, t: Millis) -> u64 {
        match self.cols.binary_search_by_key(&t, |c| c.t) {
            Ok(i) => self.cols[i].x,
            Err(i) => {
                let (t0, x0) = if i == 0 {
                    (0, 0)
                } else {
                    (self.cols[i - 1].t, self.cols[i - 1].x + self.cols[i - 1].w)
                };
                let (t1, x1) = match self.cols.get(i) {
                    Some(c) => (c.t, c.x),
                    None => (self.end, self.end_x),
                };
                if t >= t1 || t1 <= t0 {
                    return x1.max(x0);
                }
                x0 + ((x1 - x0) as f64 * (t - t0) as f64 / (t1 - t0) as f64).round() as u64
            }
        }
    }

    /// The event a reader of violation `n` should look at first: the last event it
    /// cites at or before the time the checker saw the invariant broken (else its first).
    pub fn anchor(&self, n: usize, time: Millis) -> Option<&Item> {
        let cited = || {
            self.lanes
                .iter()
                .flat_map(|l| l.items.iter())
                .filter(|it| it.cited.contains(&n))
        };
        cited()
            .filter(|it| it.time <= time)
            .max_by_key(|it| (it.time, it.seq))
            .or_else(|| cited().min_by_key(|it| (it.time, it.seq)))
    }
}
