//! The registry: every invariant, one table row each.
//!
//! A row names the invariant's variant, its name (on the command line, in scenario files,
//! in JSON), its module (a file beside this one with `pub fn judge(cx: &Cx) -> impl
//! Into<Judged>`), its property, and its description. Everything else — [`Invariant::ALL`],
//! names, parsing, serde, the command line's value list (`clap::ValueEnum`), which
//! invariants a run is judged on — comes from this table. Adding an invariant: its module
//! and one row.

use super::{Cx, Judged, NotJudged};
use oversell_sim::{Outcome, RunResult};
use serde::{Deserialize, Serialize};
use std::fmt;

/// When a property must hold (stateright's always / eventually).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    /// At every point of the committed history.
    Always,
    /// Once the run is quiescent (judged only when it ended quiescent).
    AtQuiescence,
    /// Within a bounded time after the last fault healed.
    Eventually,
}

impl Property {
    pub fn name(self) -> &'static str {
        match self {
            Property::Always => "always",
            Property::AtQuiescence => "at quiescence",
            Property::Eventually => "eventually",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the registry.
struct Row {
    name: &'static str,
    property: Property,
    describe: &'static str,
    judge: fn(&Cx<'_>) -> Judged,
}

macro_rules! registry {
    ($( $variant:ident = $name:literal, $module:ident, $property:ident, $describe:literal; )*) => {
        $( mod $module; )*

        /// The invariants every run is judged against, in report order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Invariant {
            $( #[serde(rename = $name)] $variant, )*
        }

        impl Invariant {
            /// Every invariant, in report order.
            pub const ALL: [Invariant; [$($name),*].len()] = [$(Invariant::$variant),*];

            fn row(self) -> Row {
                match self {
                    $( Invariant::$variant => Row {
                        name: $name,
                        property: Property::$property,
                        describe: $describe,
                        judge: |cx| $module::judge(cx).into(),
                    }, )*
                }
            }
        }
    };
}

registry! {
    NoOversell = "no-oversell", no_oversell, Always,
        "per product, units held for orders never exceed the units that were in stock";
    Conservation = "conservation", conservation, AtQuiescence,
        "per product, available plus held units equal the units put in stock, and nothing is negative";
    OneDecision = "one-decision", one_decision, Always,
        "no order gets two decisions, or contradictory ones";
    NoDuplicateEffect = "no-duplicate-effect", no_duplicate_effect, Always,
        "no outcome event is committed twice for an order, and no reservation is applied twice to a store";
    EventualDecision = "eventual-decision", eventual_decision, Eventually,
        "once faults heal, every placed order is decided (and every reservation settled) within a bound";
    ViewMatchesLog = "view-matches-log", view_matches_log, AtQuiescence,
        "every state store equals the fold of its committed changelog";
    NoAbortedRead = "no-aborted-read", no_aborted_read, Always,
        "no exactly-once (read_committed) consumer processes an aborted record";
    NoLostWrite = "no-lost-write", no_lost_write, Always,
        "every acknowledged write is in the log, committed, and processed by each application reading it";
    MonotonicOffsets = "monotonic-offsets", monotonic_offsets, Always,
        "each consumer processes a partition's offsets in increasing order between rebalances and restarts";
    ConsistentOffsets = "consistent-offsets", consistent_offsets, Always,
        "every read of one offset of a partition returns the same record (no two records at one offset)";
    CommitGeneration = "commit-generation", commit_generation, Always,
        "every offset commit the group coordinator accepts carries the group's current generation, from a member of it";
    MonotonicCommits = "monotonic-commits", monotonic_commits, Always,
        "a group's committed offsets never move backwards";
    EpochFencing = "epoch-fencing", epoch_fencing, Always,
        "no write, TxnOffsetCommit or EndTxn from a producer epoch older than its transactional id's latest is accepted";
    StoreExplained = "store-explained", store_explained, Always,
        "a store never holds a value that no committed changelog record or open write of its own explains";
    OwnEndTxn = "own-end-txn", own_end_txn, Always,
        "a transaction ends only by its own producer's EndTxn, sent after the transaction began, or by the coordinator's abort";
}

impl Invariant {
    pub fn name(self) -> &'static str {
        self.row().name
    }

    pub fn parse(name: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == name)
    }

    pub fn property(self) -> Property {
        self.row().property
    }

    pub fn describe(self) -> &'static str {
        self.row().describe
    }

    /// Whether a run can be judged on this invariant: at-quiescence invariants only when
    /// the run ended quiescent.
    pub fn judged_on(self, run: &RunResult) -> bool {
        self.property() != Property::AtQuiescence || run.outcome == Outcome::Quiescent
    }
}

/// Judge one invariant: nothing but a "not judged" for an at-quiescence invariant on a run
/// that did not end quiescent.
pub(super) fn judge(invariant: Invariant, cx: &Cx<'_>) -> Judged {
    if !invariant.judged_on(cx.run) {
        return Judged {
            violations: Vec::new(),
            not_judged: Some(NotJudged {
                invariant,
                orders: 0,
                reason: format!(
                    "judged only at quiescence, and the run ended {} at t={}ms",
                    ending(&cx.run.outcome),
                    cx.run.end_time
                ),
            }),
        };
    }
    (invariant.row().judge)(cx)
}

/// How a run that did not go quiet ended, in words.
pub(crate) fn ending(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Quiescent => "quiet",
        Outcome::TimeBound => "at its time bound",
        Outcome::StepBound => "at its step bound",
        Outcome::Diverged(_) => "diverging from its choice log",
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Invariant {
    type Err = String;

    fn from_str(s: &str) -> Result<Invariant, String> {
        Invariant::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
            format!("unknown invariant {s:?}; one of: {}", names.join(", "))
        })
    }
}

/// The command line's value list: names and descriptions from the registry.
impl clap::ValueEnum for Invariant {
    fn value_variants<'a>() -> &'a [Invariant] {
        &Invariant::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_serialise_alike() {
        for inv in Invariant::ALL {
            assert_eq!(Invariant::parse(inv.name()), Some(inv));
            assert_eq!(inv.name().parse::<Invariant>(), Ok(inv));
            assert_eq!(
                serde_json::to_string(&inv).unwrap(),
                format!("\"{}\"", inv.name())
            );
            let back: Invariant = serde_json::from_str(&format!("\"{}\"", inv.name())).unwrap();
            assert_eq!(back, inv);
            assert!(!inv.describe().is_empty());
            let v = <Invariant as clap::ValueEnum>::from_str(inv.name(), false);
            assert_eq!(v, Ok(inv));
        }
        assert_eq!(Invariant::parse("oversell"), None);
        assert!("oversell"
            .parse::<Invariant>()
            .unwrap_err()
            .contains("no-oversell"));
        assert_eq!(Invariant::NoOversell.property(), Property::Always);
        assert_eq!(Invariant::Conservation.property(), Property::AtQuiescence);
        assert_eq!(Invariant::EventualDecision.property(), Property::Eventually);
    }
}
