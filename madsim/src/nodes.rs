//! A replicated cluster as madsim nodes: one node per broker, `kafka-<b>` at
//! [`broker_addr`]`(b)`, and the controller on a node of its own.
//!
//! The brokers share one model, oversell's [`Broker`] with its cluster (every replica's
//! log, the controller's liveness and elections, the coordinators), as the simulator's
//! broker does. madsim runs every node on one thread, one poll at a time, so the model is
//! only ever touched by one task at once; what madsim owns of a broker is its node: its
//! address, its liveness and its tasks. A node serves its broker's part of the model:
//!
//! - requests for what its broker leads or coordinates, answered atomically on arrival
//!   (`KafkaApis.handle`); any other is answered `NOT_LEADER_OR_FOLLOWER` /
//!   `NOT_COORDINATOR` without touching the model ([`not_here`]), and the client refreshes
//!   its metadata and retries;
//! - metadata lookups ([`Lookup`]: the leader of a partition, the coordinator of an id,
//!   Kafka's `MetadataRequest` and `FindCoordinatorRequest`), answered by any live broker;
//! - its followers' replication fetches (`ReplicaFetcherThread`), one at a time at
//!   moments madsim's RNG picks;
//! - the transaction markers of the transactions it coordinates
//!   (`TransactionMarkerChannelManager`), one at a time at moments madsim's RNG picks;
//! - the answers it holds back (`acks=all` produces and coordinator writes waiting for
//!   replication: `DelayedProduce`), sent when they complete, whichever node's fetch
//!   completed them.
//!
//! The controller node (KRaft's `QuorumController`, never struck: the simulator's
//! controller is never down either) runs the model's time-driven work ([`Broker::tick`]:
//! fencing, elections, ISR shrinks, coordinator loads, transaction and session
//! timeouts; the model skips a coordinator's timers while its broker is down).
//!
//! A broker is struck through madsim and the model together, in one synchronous step:
//! [`Nodes::crash`] kills the node (`Handle::kill`: its tasks are dropped, its held answers
//! lost) and crashes the broker in the model exactly as the simulator's broker fault
//! does; [`Nodes::restart`] restarts the broker in the model and the node
//! (`Handle::restart`, which runs the node's tasks afresh). Every task of a node checks,
//! before it touches the model, that its incarnation is the node's current one and that
//! the model has its broker up: a task of a killed node that still ran would panic, not
//! change the state.

use crate::cluster::{Wire, REQUEST_TAG};
use crate::record::{now_ms, Recorder};
use madsim::net::{Endpoint, NetSim};
use madsim::runtime::{Handle, NodeHandle};
use madsim::time::{sleep, Duration};
use oversell_sim::broker::routing::{not_here, route, Route};
use oversell_sim::broker::{BrokerId, Handled};
use oversell_sim::protocol::Response;
use oversell_sim::{Broker, Millis};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The tag metadata lookups travel on.
pub const LOOKUP_TAG: u64 = 1;

/// A metadata lookup: where `route` leads now. Answered on `corr` with an
/// `Option<BrokerId>` (`None`: no leader now).
pub struct Lookup {
    pub corr: u64,
    pub route: Route,
}

/// Broker `b`'s address: `10.9.0.<b+1>:9092` (broker 0's is the single broker's).
pub fn broker_addr(b: BrokerId) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1 + b as u8)), 9092)
}

/// The controller node's address (it serves no client).
const CONTROLLER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 100);

/// An answer held back, and the node incarnation that owes it.
struct Held {
    broker: BrokerId,
    incarnation: u64,
    to: SocketAddr,
    corr: u64,
}

/// What madsim's side of the brokers needs besides the model.
#[derive(Default)]
struct NodeState {
    /// Per broker, its node's current incarnation (bumped at every start).
    incarnation: Vec<u64>,
    /// Delayed answers by the model's id.
    held: BTreeMap<u64, Held>,
    /// Per broker, completed answers its node is to send.
    outbox: Vec<Vec<(SocketAddr, u64, Response)>>,
}

/// The broker nodes of a replicated cluster and the state they share.
#[derive(Clone)]
pub struct Nodes {
    broker: Arc<Mutex<Broker>>,
    recorder: Recorder,
    state: Arc<Mutex<NodeState>>,
    nodes: Vec<NodeHandle>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A task's right to touch the model: its node's incarnation.
#[derive(Clone)]
struct Node {
    broker: Arc<Mutex<Broker>>,
    recorder: Recorder,
    state: Arc<Mutex<NodeState>>,
    b: BrokerId,
    incarnation: u64,
}

impl Nodes {
    /// Start one node per broker of `broker`'s cluster and the controller's node.
    pub fn start(broker: Arc<Mutex<Broker>>, recorder: Recorder) -> Nodes {
        let n = lock(&broker).broker_count();
        let state = Arc::new(Mutex::new(NodeState {
            incarnation: vec![0; n as usize],
            held: BTreeMap::new(),
            outbox: vec![Vec::new(); n as usize],
        }));
        let nodes = (0..n)
            .map(|b| {
                let (broker, recorder, state) = (broker.clone(), recorder.clone(), state.clone());
                Handle::current()
                    .create_node()
                    .name(format!("kafka-{b}"))
                    .ip(broker_addr(b).ip())
                    .init(move || {
                        let node = Node::begin(&broker, &recorder, &state, b);
                        node.serve()
                    })
                    .build()
            })
            .collect();
        let (b, r, s) = (broker.clone(), recorder.clone(), state.clone());
        Handle::current()
            .create_node()
            .name("kafka-controller")
            .ip(IpAddr::V4(CONTROLLER_IP))
            .init(move || controller(b.clone(), r.clone(), s.clone()))
            .build();
        Nodes {
            broker,
            recorder,
            state,
            nodes,
        }
    }

    /// Broker `b`'s node.
    pub fn node(&self, b: BrokerId) -> &NodeHandle {
        &self.nodes[b as usize]
    }

    /// The number of brokers.
    pub fn count(&self) -> u32 {
        self.nodes.len() as u32
    }

    /// Every broker up and reachable, every ISR full (`Broker::cluster_healthy`): when
    /// the simulator's random broker faults may strike (`World::maybe_broker_fault`).
    pub fn healthy(&self) -> bool {
        lock(&self.broker).cluster_healthy()
    }

    /// Kill broker `b`'s node and crash it in the model; with `lose_unflushed`, each of
    /// its replica logs keeps a prefix madsim's RNG draws (the simulator's `fsync_loss`).
    /// False (and nothing done) unless the model has `b` intact, as the simulator skips
    /// a scheduled fault on a broker that is not.
    pub fn crash(&self, b: BrokerId, lose_unflushed: bool) -> bool {
        let mut broker = lock(&self.broker);
        if !broker.broker_intact(b) {
            return false;
        }
        Handle::current().kill(self.nodes[b as usize].id());
        let keep: Option<Vec<u64>> = lose_unflushed.then(|| {
            let ends = broker.replica_log_ends(b);
            ends.iter()
                .map(|(_, end)| madsim::rand::random::<u64>() % (end + 1))
                .collect()
        });
        let mut events = Vec::new();
        broker.crash_broker(now_ms(), b, keep.as_deref(), &mut events);
        lock(&self.state).held.retain(|_, h| h.broker != b);
        complete(&mut broker, &self.state);
        self.recorder.step(events);
        true
    }

    /// Restart broker `b` in the model and its node (whose tasks start afresh).
    pub fn restart(&self, b: BrokerId) {
        let mut events = Vec::new();
        {
            let mut broker = lock(&self.broker);
            broker.restart_broker(now_ms(), b, &mut events);
            complete(&mut broker, &self.state);
        }
        self.recorder.step(events);
        Handle::current().restart(self.nodes[b as usize].id());
    }

    /// Partition broker `b` from the other brokers and the controller (in the model: its
    /// followers stop fetching, its heartbeats stop) and/or from the clients (its node's
    /// links clogged). False unless the model has `b` intact.
    pub fn partition(&self, b: BrokerId, from_brokers: bool, from_clients: bool) -> bool {
        let mut broker = lock(&self.broker);
        if !broker.broker_intact(b) || !(from_brokers || from_clients) {
            return false;
        }
        let mut events = Vec::new();
        broker.partition_broker(now_ms(), b, from_brokers, from_clients, &mut events);
        if from_clients {
            NetSim::current().clog_node(self.nodes[b as usize].id());
        }
        complete(&mut broker, &self.state);
        self.recorder.step(events);
        true
    }

    /// Heal broker `b`'s partition.
    pub fn heal(&self, b: BrokerId) {
        let mut broker = lock(&self.broker);
        let mut events = Vec::new();
        broker.heal_broker(now_ms(), b, &mut events);
        NetSim::current().unclog_node(self.nodes[b as usize].id());
        complete(&mut broker, &self.state);
        self.recorder.step(events);
    }

    /// Stall (`slow`) or resume broker `b`'s follower fetches; false (nothing done) when
    /// stalling a broker that is not intact.
    pub fn slow(&self, b: BrokerId, slow: bool) -> bool {
        let mut broker = lock(&self.broker);
        if slow && !broker.broker_intact(b) {
            return false;
        }
        let mut events = Vec::new();
        broker.set_slow_follower(now_ms(), b, slow, &mut events);
        complete(&mut broker, &self.state);
        self.recorder.step(events);
        true
    }
}

/// Move every delayed answer that is complete now to the outbox of the node that owes
/// it (an answer owed by a node that died with it is dropped with it).
fn complete(broker: &mut Broker, state: &Mutex<NodeState>) {
    let done = broker.take_completed_produces();
    if done.is_empty() {
        return;
    }
    let mut st = lock(state);
    for (id, answer) in done {
        let Some(h) = st.held.remove(&id) else {
            continue;
        };
        if st.incarnation[h.broker as usize] == h.incarnation {
            st.outbox[h.broker as usize].push((h.to, h.corr, answer));
        }
    }
}

/// A random pause of 1 to 3 ms of simulated time, as madsim's RNG picks.
async fn jitter() {
    let gap = madsim::rand::random::<u64>() % 3;
    sleep(Duration::from_millis(1 + gap)).await;
}

impl Node {
    /// A (re)started node: a new incarnation, an empty outbox.
    fn begin(
        broker: &Arc<Mutex<Broker>>,
        recorder: &Recorder,
        state: &Arc<Mutex<NodeState>>,
        b: BrokerId,
    ) -> Node {
        let incarnation = {
            let mut st = lock(state);
            st.incarnation[b as usize] += 1;
            st.outbox[b as usize].clear();
            st.incarnation[b as usize]
        };
        Node {
            broker: broker.clone(),
            recorder: recorder.clone(),
            state: state.clone(),
            b,
            incarnation,
        }
    }

    /// The model, for this node's task: it must be the node's live incarnation.
    fn model(&self) -> MutexGuard<'_, Broker> {
        let broker = lock(&self.broker);
        let current = lock(&self.state).incarnation[self.b as usize];
        assert!(
            current == self.incarnation && broker.broker_serving(self.b),
            "a task of broker {}'s killed node (incarnation {} of {current}) touched the model",
            self.b,
            self.incarnation
        );
        broker
    }

    async fn serve(self) {
        let ep = Arc::new(
            Endpoint::bind(broker_addr(self.b))
                .await
                .expect("the broker's address is free"),
        );
        madsim::task::spawn(self.clone().lookups(ep.clone()));
        madsim::task::spawn(self.clone().background());
        madsim::task::spawn(self.clone().outbox(ep.clone()));
        // Several request handlers, as the single broker's (`cluster::REQUEST_HANDLERS`).
        for _ in 1..crate::cluster::REQUEST_HANDLERS {
            madsim::task::spawn(self.clone().handle_requests(ep.clone()));
        }
        self.handle_requests(ep).await
    }

    /// One request handler: take the next request, answer it (`KafkaRequestHandler.run`).
    async fn handle_requests(self, ep: Arc<Endpoint>) {
        loop {
            let Ok((payload, from)) = ep.recv_from_raw(REQUEST_TAG).await else {
                continue;
            };
            let wire = *payload
                .downcast::<Wire>()
                .expect("only requests travel on the request tag");
            if let Some(answer) = self.handle(wire, from) {
                // A lost answer is the network's business: the client times out.
                let _ = ep.send_to_raw(from, answer.0, Box::new(answer.1)).await;
            }
        }
    }

    /// One request: answered now, held back, or never.
    fn handle(&self, wire: Wire, from: SocketAddr) -> Option<(u64, Response)> {
        let mut broker = self.model();
        let leader = broker.broker_for(&route(&wire.request));
        if leader.is_some_and(|l| l != self.b) {
            return Some((wire.corr, not_here(&wire.request)));
        }
        let mut events = Vec::new();
        let handled = broker.handle_request(now_ms(), &wire.client, wire.request, &mut events);
        let answer = match handled {
            Handled::Now(response) => Some((wire.corr, response)),
            Handled::Never => None,
            Handled::Delayed(id) => {
                let held = Held {
                    broker: self.b,
                    incarnation: self.incarnation,
                    to: from,
                    corr: wire.corr,
                };
                lock(&self.state).held.insert(id, held);
                None
            }
        };
        complete(&mut broker, &self.state);
        drop(broker);
        self.recorder.step(events);
        answer
    }

    /// Metadata lookups, answered from the model (this broker's metadata cache).
    async fn lookups(self, ep: Arc<Endpoint>) {
        loop {
            let Ok((payload, from)) = ep.recv_from_raw(LOOKUP_TAG).await else {
                continue;
            };
            let lookup = *payload
                .downcast::<Lookup>()
                .expect("only lookups travel on the lookup tag");
            let answer: Option<BrokerId> = match lookup.route {
                Route::Any => Some(self.b),
                route => self.model().broker_for(&route),
            };
            let _ = ep.send_to_raw(from, lookup.corr, Box::new(answer)).await;
        }
    }

    /// The completed answers this node owes, sent.
    async fn outbox(self, ep: Arc<Endpoint>) {
        loop {
            sleep(Duration::from_millis(1)).await;
            let out = std::mem::take(&mut lock(&self.state).outbox[self.b as usize]);
            for (to, corr, answer) in out {
                let _ = ep.send_to_raw(to, corr, Box::new(answer)).await;
            }
        }
    }

    /// This broker's followers' fetches and its coordinator's markers, one at a time.
    async fn background(self) {
        loop {
            jitter().await;
            let now = now_ms();
            let mut events = Vec::new();
            {
                let mut broker = self.model();
                let fetches: Vec<_> = broker
                    .follower_fetches()
                    .into_iter()
                    .filter(|f| f.broker == self.b)
                    .collect();
                if !fetches.is_empty() {
                    let n = (madsim::rand::random::<u64>() % fetches.len() as u64) as usize;
                    broker.follower_fetch(now, &fetches[n], &mut events);
                }
                let markers: Vec<_> = broker
                    .pending_markers()
                    .into_iter()
                    .filter(|m| {
                        let coordinator = Route::TxnCoordinator(m.transactional_id.clone());
                        broker.broker_for(&coordinator) == Some(self.b)
                    })
                    .collect();
                if !markers.is_empty() {
                    let n = (madsim::rand::random::<u64>() % markers.len() as u64) as usize;
                    broker.write_pending_marker(now, &markers[n], &mut events);
                }
                complete(&mut broker, &self.state);
            }
            if !events.is_empty() {
                self.recorder.step(events);
            }
        }
    }
}

/// The controller's node: the model's time-driven work when it is due.
async fn controller(broker: Arc<Mutex<Broker>>, recorder: Recorder, state: Arc<Mutex<NodeState>>) {
    loop {
        jitter().await;
        let now: Millis = now_ms();
        let mut events = Vec::new();
        {
            let mut b = lock(&broker);
            if b.next_deadline().is_some_and(|d| d <= now) {
                b.tick(now, &mut events);
            }
            complete(&mut b, &state);
        }
        if !events.is_empty() {
            recorder.step(events);
        }
    }
}

/// An answer to a lookup: where its route leads (`None`: nowhere now).
pub fn lookup_answer(payload: Box<dyn std::any::Any + Send + Sync>) -> Option<BrokerId> {
    *payload
        .downcast::<Option<BrokerId>>()
        .expect("only lookup answers travel on a lookup's correlation id")
}
