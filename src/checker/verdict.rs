//! The checker's judgement of a run: violations, what was not judged, and kernel bugs.

use super::Invariant;
use oversell_sim::Millis;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// One broken invariant, with the events that prove it.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    /// Simulated time at which the invariant was seen broken.
    pub time: Millis,
    /// Plain words: orders, products, offsets (topic-partition@offset) and times.
    pub explanation: String,
    /// Trace sequence numbers of the events that prove it, ascending.
    pub evidence: Vec<u64>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] t={}ms: {}",
            self.invariant, self.time, self.explanation
        )?;
        if !self.evidence.is_empty() {
            let seqs: Vec<String> = self.evidence.iter().map(|s| format!("#{s}")).collect();
            write!(f, " (trace {})", seqs.join(", "))?;
        }
        Ok(())
    }
}

/// An invariant the run could not be judged on, wholly or for some orders: the run ended
/// (at a time or step bound, or diverging) before the invariant could be decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotJudged {
    pub invariant: Invariant,
    /// How many orders were left unjudged; 0 when the whole invariant was.
    pub orders: usize,
    /// Plain words: why.
    pub reason: String,
}

impl fmt::Display for NotJudged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] not judged: {}", self.invariant, self.reason)
    }
}

/// The record contradicts itself: a bug in the simulated platform, not a design's
/// violation (for instance, the partition logs' transaction markers and the broker's own
/// transaction table disagree about whether a record committed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelBug {
    pub explanation: String,
    /// Trace sequence numbers of the events involved, ascending.
    pub evidence: Vec<u64>,
}

impl fmt::Display for KernelBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KERNEL BUG: {}", self.explanation)
    }
}

/// What a verdict amounts to, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The simulated platform contradicted itself: no verdict about the design stands.
    KernelBug,
    /// Some invariant is violated.
    Violated,
    /// No violation, but some invariant was not judged (the run ended at a bound first):
    /// "unsettled — liveness not judged".
    Unsettled,
    /// Every invariant was judged and holds.
    Holds,
}

/// The checker's judgement of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// Per invariant (in [`Invariant::ALL`] order), the first few violations by time.
    pub violations: Vec<Violation>,
    /// Invariants not judged (wholly, or for some orders), in [`Invariant::ALL`] order.
    pub not_judged: Vec<NotJudged>,
    /// Contradictions in the record itself; empty unless the kernel has a bug.
    pub kernel_bugs: Vec<KernelBug>,
    /// How often each coverage probe fired ([`super::probes`]).
    pub probes: super::Probes,
}

impl Verdict {
    /// The invariants with at least one violation.
    pub fn violated(&self) -> BTreeSet<Invariant> {
        self.violations.iter().map(|v| v.invariant).collect()
    }

    /// No invariant was violated and the record is consistent (some invariants may not
    /// have been judged: see [`Verdict::settled`]).
    pub fn holds(&self) -> bool {
        self.violations.is_empty() && self.kernel_bugs.is_empty()
    }

    /// Every invariant was judged in full.
    pub fn settled(&self) -> bool {
        self.not_judged.is_empty()
    }

    /// The invariants not judged, wholly or in part.
    pub fn unjudged(&self) -> BTreeSet<Invariant> {
        self.not_judged.iter().map(|n| n.invariant).collect()
    }

    pub fn status(&self) -> Status {
        if !self.kernel_bugs.is_empty() {
            Status::KernelBug
        } else if !self.violations.is_empty() {
            Status::Violated
        } else if !self.not_judged.is_empty() {
            Status::Unsettled
        } else {
            Status::Holds
        }
    }

    /// The violations of one invariant.
    pub fn of(&self, invariant: Invariant) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(move |v| v.invariant == invariant)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.holds() && self.settled() {
            return f.write_str("every invariant holds");
        }
        if self.holds() {
            let why: Vec<String> = self.not_judged.iter().map(ToString::to_string).collect();
            return write!(f, "unsettled — liveness not judged: {}", why.join("; "));
        }
        let lines = self
            .kernel_bugs
            .iter()
            .map(ToString::to_string)
            .chain(self.violations.iter().map(ToString::to_string));
        for (i, line) in lines.enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(&line)?;
        }
        Ok(())
    }
}
