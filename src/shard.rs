//! Sweeps split over machines: `explore --shard i/n` runs the i-th of n contiguous parts
//! of a seed range and writes a [`ShardReport`]; `oversell merge` combines the n reports
//! into the report one machine would have written for the whole range.
//!
//! A sweep's result is a merge of per-seed results ([`Sweep::merge`] is associative and
//! commutative: counts add, first seeds take the minimum), so the merge of the shards
//! equals the whole sweep, whatever machine ran which part. No scheduler of our own: a CI
//! matrix or `cargo nextest --partition` hands out the parts (README, "Sweeps over many
//! machines").

use crate::run::{Sweep, SweepEnd};
use crate::scenario::SeedRange;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema name of a shard's JSON.
pub const SHARD_SCHEMA: &str = "oversell-shard/1";

/// The `index`-th (1-based) of `count` parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `i/n` with 1 <= i <= n.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let form = "write it as \"i/n\" with 1 <= i <= n, e.g. \"2/4\"";
        let Some((i, n)) = text.split_once('/') else {
            return Err(format!("{text:?} is not a shard; {form}"));
        };
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("{s:?} in {text:?} is not a number; {form}"))
        };
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard {text:?} is out of range; {form}"));
        }
        Ok(Shard { index, count })
    }

    /// This shard's part of `all`: contiguous, the parts in order cover `all` exactly
    /// once (a part may be empty when there are more shards than seeds).
    pub fn seeds(&self, all: SeedRange) -> (u64, u64) {
        let len = u128::from(all.len());
        let at = |k: u64| all.start + ((len * u128::from(k)) / u128::from(self.count)) as u64;
        (at(self.index - 1), at(self.index))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One design's sweep over a shard's seeds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DesignSweep {
    #[serde(flatten)]
    pub sweep: Sweep,
    pub end: SweepEnd,
}

/// What `explore --shard i/n --json FILE` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardReport {
    pub schema: String,
    /// The scenario's name and the file as given.
    pub scenario: String,
    pub file: String,
    /// The whole seed range, split over the shards.
    pub seeds: SeedRange,
    pub shard: Shard,
    /// This shard's part, `[start, end)`.
    pub part: (u64, u64),
    /// The options that change runs (mutations, fault class, swarm, transaction version).
    pub options: Vec<String>,
    /// Per design, its sweep over the part.
    pub designs: BTreeMap<String, DesignSweep>,
}

/// Merge shard reports into one sweep per design; refuses reports of different sweeps,
/// a missing or repeated shard, and an interrupted one.
pub fn merge(reports: &[ShardReport]) -> Result<BTreeMap<String, DesignSweep>, String> {
    let Some(first) = reports.first() else {
        return Err("no shard reports given".into());
    };
    let n = first.shard.count;
    let mut seen = vec![false; usize::try_from(n).map_err(|_| "too many shards")?];
    for r in reports {
        if r.schema != SHARD_SCHEMA {
            return Err(format!("schema {:?}, expected {SHARD_SCHEMA:?}", r.schema));
        }
        let same = (&r.scenario, &r.file, r.seeds, r.shard.count, &r.options)
            == (&first.scenario, &first.file, first.seeds, n, &first.options);
        if !same || r.designs.keys().ne(first.designs.keys()) {
            return Err(format!(
                "shard {} is not a part of the same sweep as shard {} (scenario, seeds, shard count, options and designs must agree)",
                r.shard, first.shard
            ));
        }
        if r.part != r.shard.seeds(r.seeds) {
            return Err(format!(
                "shard {} covers {:?}, not its part",
                r.shard, r.part
            ));
        }
        let slot = &mut seen[(r.shard.index - 1) as usize];
        if *slot {
            return Err(format!("shard {} given twice", r.shard));
        }
        *slot = true;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("shard {}/{n} is missing", missing + 1));
    }
    let mut out: BTreeMap<String, DesignSweep> = BTreeMap::new();
    for r in reports {
        for (name, d) in &r.designs {
            if d.end != SweepEnd::Complete {
                return Err(format!(
                    "shard {} did not complete its sweep of {name} ({:?})",
                    r.shard, d.end
                ));
            }
            let e = out.entry(name.clone()).or_insert_with(|| DesignSweep {
                sweep: Sweep::default(),
                end: SweepEnd::Complete,
            });
            e.sweep.merge(&d.sweep);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_once_in_order() {
        let all = SeedRange {
            start: 10,
            end: 110,
        };
        for n in 1..=7 {
            let mut next = all.start;
            for i in 1..=n {
                let (a, b) = Shard { index: i, count: n }.seeds(all);
                assert_eq!(a, next);
                assert!(b >= a);
                next = b;
            }
            assert_eq!(next, all.end);
        }
        let huge = SeedRange {
            start: 0,
            end: u64::MAX,
        };
        assert_eq!(Shard { index: 2, count: 2 }.seeds(huge).1, u64::MAX);
    }

    #[test]
    fn shards_parse_and_refuse_out_of_range() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "2", "a/b"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
