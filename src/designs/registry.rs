//! The designs a program knows, by name: the shipped ones and a user's own.
//!
//! Every lookup of a design by name (the command line, scenario `[expect]` tables,
//! regression files, the matrix) goes through a [`Registry`], so a design added with
//! [`Registry::with`] is taken up everywhere the shipped ones are.
//!
//! ```
//! use oversell::designs::Registry;
//!
//! let registry = Registry::builtin();
//! assert!(registry.get("rekeyed-eos").is_some());
//! assert_eq!(registry.names().first(), Some(&"naive"));
//! ```

use super::{Design, Naive, Rekeyed, Saga};
use crate::kit::StockRecords;
use oversell_sim::Guarantee;

/// An ordered set of designs with distinct names; tables show them in this order.
pub struct Registry {
    pub(crate) designs: Vec<Box<dyn Design>>,
}

impl Registry {
    /// A registry with no design in it.
    pub fn empty() -> Registry {
        Registry {
            designs: Vec::new(),
        }
    }

    /// The designs that ship with oversell, in the order tables show them: the four of the
    /// README (`naive`, `rekeyed-alo`, `rekeyed-eos`, `saga`), then named variants that
    /// teach one thing each (`rekeyed-alo-delta`, `saga-direct-timers`).
    pub fn builtin() -> Registry {
        Registry::empty()
            .with(Box::new(Naive))
            .with(Box::new(Rekeyed {
                guarantee: Guarantee::AtLeastOnce,
                inventory: StockRecords::AbsoluteCounts,
            }))
            .with(Box::new(Rekeyed {
                guarantee: Guarantee::ExactlyOnceV2,
                inventory: StockRecords::AbsoluteCounts,
            }))
            .with(Box::new(Saga {
                direct_timers: false,
            }))
            .with(Box::new(Rekeyed {
                guarantee: Guarantee::AtLeastOnce,
                inventory: StockRecords::Deltas,
            }))
            .with(Box::new(Saga {
                direct_timers: true,
            }))
    }

    /// This registry and `design`, appended at the end. A design whose name is already
    /// registered takes that name's place (and position): a user may substitute a variant.
    ///
    /// # Panics
    /// If the design's name is empty or contains whitespace: names are written on command
    /// lines and in scenario files.
    pub fn with(mut self, design: Box<dyn Design>) -> Registry {
        let name = design.name();
        assert!(
            !name.is_empty() && !name.contains(char::is_whitespace),
            "a design name must be one non-empty word, got {name:?}"
        );
        match self.designs.iter().position(|d| d.name() == name) {
            Some(i) => self.designs[i] = design,
            None => self.designs.push(design),
        }
        debug_assert!(self.names_are_distinct());
        self
    }

    /// The design called `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Design> {
        self.designs
            .iter()
            .find(|d| d.name() == name)
            .map(|d| d.as_ref())
    }

    /// Every design's name, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.designs.iter().map(|d| d.name()).collect()
    }

    /// Every design, in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Design> {
        self.designs.iter().map(|d| d.as_ref())
    }

    /// The designs, in order, as owned boxes.
    pub(crate) fn into_designs(self) -> Vec<Box<dyn Design>> {
        self.designs
    }

    fn names_are_distinct(&self) -> bool {
        let names: std::collections::BTreeSet<_> = self.designs.iter().map(|d| d.name()).collect();
        names.len() == self.designs.len()
    }
}

impl Default for Registry {
    /// The shipped designs ([`Registry::builtin`]).
    fn default() -> Registry {
        Registry::builtin()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_shipped_designs_in_order() {
        let r = Registry::builtin();
        assert_eq!(
            r.names(),
            [
                "naive",
                "rekeyed-alo",
                "rekeyed-eos",
                "saga",
                "rekeyed-alo-delta",
                "saga-direct-timers"
            ]
            .to_vec()
        );
        assert_eq!(r.iter().count(), 6);
        assert!(r.get("saga").is_some());
        assert!(r.get("unknown").is_none());
    }

    #[test]
    fn with_appends_and_replaces_by_name() {
        let r = Registry::builtin().with(Box::new(Saga {
            direct_timers: false,
        }));
        assert_eq!(r.names().len(), 6, "same name replaces");
        let r = Registry::empty()
            .with(Box::new(Saga {
                direct_timers: false,
            }))
            .with(Box::new(Naive));
        assert_eq!(r.names(), ["saga", "naive"].to_vec());
    }
}
