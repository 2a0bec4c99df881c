//! Stand-in for `designs::Registry` until it lands; same API.

use crate::designs::{self, Design};

/// The designs the command knows, by name.
pub struct Registry {
    designs: Vec<Box<dyn Design>>,
}

impl Registry {
    pub fn builtin() -> Registry {
        Registry {
            designs: designs::all(),
        }
    }

    pub fn with(mut self, design: Box<dyn Design>) -> Registry {
        self.designs.push(design);
        self
    }

    pub fn get(&self, name: &str) -> Option<&dyn Design> {
        self.iter().find(|d| d.name() == name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|d| d.name()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn Design> {
        self.designs.iter().map(|d| d.as_ref())
    }
}
