//! oversell: deterministic simulation of event-sourced inventory services on Kafka.
//!
//! The kernel ([`oversell_sim`]) simulates a Kafka broker, Kafka Streams' processing
//! loop and a seeded scheduler. This crate adds the inventory [`domain`], the
//! [`designs`] under test, the [`checker`] that judges runs, [`scenario`] files and the
//! [`run`] entry points used by the `oversell` command and the tests.

pub mod checker;
pub mod cli;
pub mod designs;
pub mod domain;
pub mod expect;
pub mod kit;
pub mod load;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod testing;

pub use oversell_sim as sim;
