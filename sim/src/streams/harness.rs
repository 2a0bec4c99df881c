//! A driver for one client outside a [`World`](crate::world::World): a test plays the
//! broker and the scheduler itself, stepping lanes and handing responses back. Used by the
//! runtime's model test (`sim/tests/streams_model.rs`) and its unit tests.

use crate::client::{Client, Env, StoreQuery, StoreUnavailable};
use crate::protocol::{Millis, Request, Response};
use crate::trace::Event;
use std::collections::BTreeMap;

/// Answers every interactive query with "unavailable".
struct NoQueries;

impl StoreQuery for NoQueries {
    fn query(&self, _store: &str, _key: &str) -> Result<Option<String>, StoreUnavailable> {
        Err(StoreUnavailable)
    }
}

/// Steps a client and collects the requests and events it emits.
pub struct Driver {
    /// Simulated time handed to the client.
    pub now: Millis,
    /// Partitions per topic, as the client's metadata would know them.
    pub meta: BTreeMap<String, u32>,
    next_corr: u64,
    events: Vec<Event>,
}

impl Driver {
    pub fn new(meta: BTreeMap<String, u32>) -> Self {
        Driver {
            now: 0,
            meta,
            next_corr: 0,
            events: Vec::new(),
        }
    }

    fn with_env(&mut self, f: impl FnOnce(&mut Env<'_>)) -> Vec<(u64, Request)> {
        let mut outbox = Vec::new();
        let mut env = Env {
            now: self.now,
            meta: &self.meta,
            iq: &NoQueries,
            events: &mut self.events,
            outbox: &mut outbox,
            next_corr: &mut self.next_corr,
        };
        f(&mut env);
        outbox
    }

    /// Step `lane`; returns the requests sent (correlation id, request).
    pub fn step(&mut self, client: &mut dyn Client, lane: usize) -> Vec<(u64, Request)> {
        self.with_env(|env| client.step(lane, env))
    }

    /// Hand a response to the client; returns the requests it sent in reaction.
    pub fn respond(
        &mut self,
        client: &mut dyn Client,
        corr: u64,
        response: Response,
    ) -> Vec<(u64, Request)> {
        self.with_env(|env| client.on_response(corr, response, env))
    }

    /// The events emitted since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}
