//! What the scheduler sees of a client: a sequential, sans-IO state machine.
//!
//! A client lives inside a service instance. It has one or more *lanes* (a consumer's
//! processing loop and its heartbeat thread are two lanes); each lane has at most one
//! request outstanding. The scheduler asks which lanes are ready, steps one, and hands
//! responses back. A client never calls the scheduler: it returns requests and events
//! through [`Env`].

use crate::protocol::{Millis, Request, Response};
use crate::trace::Event;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Who a client is: the instance (process) it runs in and its application (a Kafka
/// Streams `application.id`, or the role of a plain producer). Unique in a world.
///
/// Written as `instance/app` (in the trace, its JSON and its hash); an instance name
/// holds no `/`, so the written form reads back unambiguously.
///
/// A shared handle on its two names: a client's id is copied into every message and
/// trace event it takes part in, and a copy is a reference count, not two strings.
/// Ordered, compared and hashed by its names.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(Arc<ClientName>);

/// The two names of a [`ClientId`], read through it (`id.instance`, `id.app`).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientName {
    pub instance: String,
    pub app: String,
}

impl ClientId {
    /// # Panics
    /// If `instance` contains a `/` (instance names are chosen by designs, never by input).
    pub fn new(instance: impl Into<String>, app: impl Into<String>) -> ClientId {
        let name = ClientName {
            instance: instance.into(),
            app: app.into(),
        };
        assert!(
            !name.instance.contains('/'),
            "instance name {:?} contains '/'",
            name.instance
        );
        ClientId(Arc::new(name))
    }
}

impl Deref for ClientId {
    type Target = ClientName;
    fn deref(&self) -> &ClientName {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    /// As the plain struct it was: `ClientId { instance: "..", app: ".." }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientId")
            .field("instance", &self.instance)
            .field("app", &self.app)
            .finish()
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.instance, self.app)
    }
}

impl Serialize for ClientId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ClientId, D::Error> {
        let text = String::deserialize(d)?;
        match text.split_once('/') {
            Some((instance, app)) => Ok(ClientId::new(instance, app)),
            None => Err(serde::de::Error::custom(format!(
                "a client id is instance/app, not {text:?}"
            ))),
        }
    }
}

/// The number of partitions of each topic, as a client's metadata request would learn it.
pub trait Metadata {
    fn partitions(&self, topic: &str) -> Option<u32>;
}

impl Metadata for BTreeMap<String, u32> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.get(topic).copied()
    }
}

/// A state store could not be queried (its task is restoring, or hosted nowhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreUnavailable;

/// Interactive queries: read a key of a state store wherever its task is hosted.
pub trait StoreQuery {
    fn query(&self, store: &str, key: &str) -> Result<Option<String>, StoreUnavailable>;
}

/// What a client may touch while it is stepped.
pub struct Env<'a> {
    pub now: Millis,
    pub meta: &'a dyn Metadata,
    pub iq: &'a dyn StoreQuery,
    pub events: &'a mut Vec<Event>,
    pub(crate) outbox: &'a mut Vec<(u64, Request)>,
    pub(crate) next_corr: &'a mut u64,
}

impl<'a> Env<'a> {
    /// Put a request on the wire; returns its correlation id.
    pub fn send(&mut self, request: Request) -> u64 {
        let corr = *self.next_corr;
        *self.next_corr += 1;
        self.outbox.push((corr, request));
        corr
    }

    pub fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// A client state machine.
pub trait Client {
    /// Who this client is: its instance and application, unique in the world.
    fn id(&self) -> &ClientId;
    /// Number of lanes (independent request loops), at most 64.
    fn lanes(&self) -> usize {
        1
    }
    /// Whether stepping `lane` at `now` would do something. A function of the client's
    /// state and `now` alone: the world asks again only once time passed or the client
    /// was stepped or answered (and checks, in debug and test builds, that the answer it
    /// kept is still the client's).
    fn ready(&self, lane: usize, now: Millis) -> bool;
    /// Do the next piece of work of `lane`.
    fn step(&mut self, lane: usize, env: &mut Env<'_>);
    /// A response to a request this client sent (possibly a stale or duplicated one).
    fn on_response(&mut self, corr: u64, response: Response, env: &mut Env<'_>);
    /// Earliest time at which some lane becomes ready without any response arriving.
    fn wakeup(&self) -> Option<Millis>;
    /// Nothing left to do until new input arrives: caught up, committed, nothing in flight.
    fn idle(&self) -> bool;
    /// The earliest deadline of a timer this client holds that will act without any new
    /// input (a punctuation with work scheduled, e.g. a payment due or a reservation to
    /// expire); `None` when no such timer is pending. The world is not quiescent while a
    /// running client has one pending before the run's time bound. Unlike
    /// [`Client::wakeup`], which names the next time a lane becomes ready (a periodic
    /// punctuation is always ready again), this names only work still to do.
    fn next_timer(&self) -> Option<Millis> {
        None
    }
    /// Read a store key if this client hosts it, active and restored.
    fn query(&self, _store: &str, _key: &str, _meta: &dyn Metadata) -> Option<Option<String>> {
        None
    }
    /// The stores this client holds now: (store, partition) → contents.
    fn stores(&self) -> BTreeMap<(String, u32), BTreeMap<String, String>> {
        BTreeMap::new()
    }
    /// The process id this start of its instance drew, when state directories are
    /// ephemeral (Kafka Streams' `StateDirectory.initializeProcessId` finds no
    /// `kafka-streams-process-metadata` file and picks a random one); called right after
    /// the client is built, before its first step. Default: ignored.
    fn set_process_id(&mut self, _process_id: u32) {}
    /// A copy of this client, state included, for the exhaustive search's snapshots of a
    /// world (`World::try_clone`); `None` (the default): the world cannot be copied and
    /// the search re-runs every prefix from the start instead.
    fn clone_boxed(&self) -> Option<Box<dyn Client>> {
        None
    }
    /// For the exhaustive search's state hashing: write everything of this client's
    /// state that its future behaviour depends on, except the correlation ids of its
    /// requests in flight (which [`Client::awaits`] names instead), and return `true`.
    /// The default writes nothing and returns `false`: a world with such a client is
    /// searched without state matching.
    fn fingerprint(&self, _out: &mut dyn fmt::Write) -> bool {
        false
    }
    /// The lane that waits for the answer to request `corr`, if one does (an answer to
    /// any other request is stale: the client ignores it).
    fn awaits(&self, _corr: u64) -> Option<usize> {
        None
    }
}
