//! The Kafka cluster as a madsim node.
//!
//! A single broker sits at one address, [`BROKER_ADDR`], on one madsim node named
//! `kafka`. A replicated cluster (`[cluster] brokers > 1`) is one node per broker and a
//! controller's node, sharing the model ([`crate::nodes`]).
//!
//! The single broker's node answers each request atomically when it arrives, as the simulator's broker
//! does at delivery (`KafkaApis.handle` per request). A second task does the
//! coordinators' own work: the transaction markers of an ending transaction
//! (`TransactionMarkerChannelManager`: one `WriteTxnMarkers` per partition and group,
//! each written at a moment madsim's RNG picks, so that a `read_committed` fetch can land
//! between them) and the time-driven checks (transaction timeouts, session timeouts),
//! through [`Broker::tick`].

use crate::nodes::Nodes;
use crate::record::{now_ms, Recorder};
use madsim::net::Endpoint;
use madsim::runtime::{Handle, NodeHandle};
use madsim::time::{sleep, Duration};
use oversell_sim::broker::Handled;
use oversell_sim::protocol::{Request, Response};
use oversell_sim::world::StoreContents;
use oversell_sim::{
    Broker, ChoiceLog, ClientId, Event, Millis, Outcome, RunResult, TopicPartition,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The cluster's one address.
pub const BROKER_ADDR: &str = "10.9.0.1:9092";

/// The tag requests travel on; a response travels on its request's correlation id.
pub const REQUEST_TAG: u64 = 0;

/// A request on the wire: who sends it, its correlation id, the request.
pub struct Wire {
    pub corr: u64,
    pub client: ClientId,
    pub request: Request,
}

/// The broker node and the state it serves.
#[derive(Clone)]
pub struct Cluster {
    broker: Arc<Mutex<Broker>>,
    node: NodeHandle,
    recorder: Recorder,
    nodes: Option<Nodes>,
}

/// A consumer group and the topics whose every data record it must have committed past
/// for the run to be over: `("stock-keeper", &["orders", "stock"])`.
pub type Group<'a> = (&'a str, &'a [&'a str]);

impl Cluster {
    /// Start the `kafka` node serving `broker` (topics already created).
    ///
    /// # Panics
    /// Outside a madsim runtime.
    pub fn start(broker: Broker, recorder: Recorder) -> Cluster {
        crate::netfaults::clear();
        let topics = broker
            .topics()
            .map(|(name, config)| (name.to_string(), config.partitions))
            .collect();
        let brokers = broker.broker_count();
        let broker = Arc::new(Mutex::new(broker));
        CURRENT.with(|c| *c.borrow_mut() = Some((recorder.clone(), topics, brokers)));
        if brokers > 1 {
            let nodes = Nodes::start(broker.clone(), recorder.clone());
            return Cluster {
                broker,
                node: nodes.node(0).clone(),
                recorder,
                nodes: Some(nodes),
            };
        }
        let addr: SocketAddr = BROKER_ADDR.parse().expect("a valid address");
        let served = broker.clone();
        let record = recorder.clone();
        let node = Handle::current()
            .create_node()
            .name("kafka")
            .ip(addr.ip())
            .init(move || serve(served.clone(), record.clone()))
            .build();
        Cluster {
            broker,
            node,
            recorder,
            nodes: None,
        }
    }

    /// The run's record, shared with every client on this thread.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The madsim node of the cluster (for network faults on its links); of broker 0 in
    /// a replicated cluster.
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// The broker nodes of a replicated cluster (`None` on a single broker), to strike.
    pub fn nodes(&self) -> Option<&Nodes> {
        self.nodes.as_ref()
    }

    /// The broker as it is now: logs, markers, committed offsets.
    pub fn broker(&self) -> Broker {
        lock(&self.broker).clone()
    }

    /// Nothing left to do: no open transaction nor marker to write, and every group has
    /// committed past every data record of its topics that a consumer is handed (an
    /// aborted transaction's records are not: a `read_committed` consumer skips them, and
    /// a Kafka Streams task commits only the partitions it consumed a record from,
    /// `StreamTask.committableOffsetsAndMetadata`, so a partition whose last entries are
    /// an aborted transaction's may keep its committed offset before them for good).
    pub fn quiescent(&self, groups: &[Group<'_>]) -> bool {
        quiescent(&lock(&self.broker), groups)
    }

    /// Wait (in steps of 50 ms of simulated time) until [`Cluster::quiescent`] or until
    /// `max_ms` since the runtime started: `Quiescent` or `TimeBound`.
    pub async fn settle(&self, groups: &[Group<'_>], max_ms: Millis) -> Outcome {
        loop {
            if self.quiescent(groups) {
                return Outcome::Quiescent;
            }
            if now_ms() >= max_ms {
                return Outcome::TimeBound;
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// The run's record for the checker (`oversell::checker::check`): the trace so far,
    /// the broker as it is now, and the services' final `stores` (instance → (store,
    /// partition) → key → value); `healed_at`: when the last fault healed.
    pub fn result(
        &self,
        outcome: Outcome,
        healed_at: Millis,
        stores: BTreeMap<String, StoreContents>,
    ) -> RunResult {
        RunResult {
            trace: self.recorder.trace(),
            choices: ChoiceLog::default(),
            outcome,
            end_time: now_ms(),
            steps: self.recorder.steps(),
            broker: self.broker(),
            stores,
            healed_at,
            pct: None,
        }
    }
}

fn quiescent(broker: &Broker, groups: &[Group<'_>]) -> bool {
    if !broker.open_transactions().is_empty() || broker.has_pending_markers() {
        return false;
    }
    groups.iter().all(|(group, topics)| {
        let committed = broker.committed_offsets(group);
        topics.iter().all(|topic| {
            let n = broker.partition_count(topic).unwrap_or(0);
            (0..n).all(|p| {
                let tp = TopicPartition::new(*topic, p);
                let at = committed.get(&tp).copied().unwrap_or(0);
                broker.log(&tp).iter().all(|e| {
                    e.offset < at || e.control.is_some() || broker.is_aborted(&tp, e.offset)
                })
            })
        })
    })
}

thread_local! {
    /// The recorder of the cluster started on this thread: madsim runs a runtime on one
    /// thread, so clients created inside it find their cluster's recorder here.
    /// The topics' partition counts too: the metadata a client's `Metadata` request
    /// would learn (topics are created before the cluster starts, never after).
    /// And the number of brokers, whose addresses are `nodes::broker_addr`.
    static CURRENT: std::cell::RefCell<Option<(Recorder, Metadata, u32)>> = const { std::cell::RefCell::new(None) };
}

/// Topic → partition count.
pub type Metadata = std::collections::BTreeMap<String, u32>;

/// The recorder of the cluster running on this thread, if one was started.
pub fn current_recorder() -> Option<Recorder> {
    CURRENT.with(|c| c.borrow().as_ref().map(|(r, _, _)| r.clone()))
}

/// The partition count of `topic` in the cluster running on this thread.
pub fn partitions(topic: &str) -> Option<u32> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|(_, m, _)| m.get(topic).copied())
    })
}

/// The number of brokers of the cluster running on this thread (1 if none was started).
pub fn brokers() -> u32 {
    CURRENT.with(|c| c.borrow().as_ref().map_or(1, |(_, _, n)| *n))
}

fn lock(broker: &Mutex<Broker>) -> MutexGuard<'_, Broker> {
    broker.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many tasks of a broker's node take requests off the network and answer them:
/// Kafka's request handler pool (`KafkaRequestHandlerPool`, `num.io.threads`, 8 by
/// default, `ServerConfigs.NUM_IO_THREADS_DEFAULT`), fed by the `SocketServer`'s
/// processors. A madsim receive and a madsim send each take at least a millisecond of
/// simulated time (madsim's `NetSim::rand_delay` sleeps, and a madsim sleep lasts 1 ms at
/// least), so one task answering one request at a time serves 500 requests a second:
/// under a burst of fetches (several instances restoring their stores at once) requests
/// queued behind it, a heartbeat waited out its member's session and the group
/// rebalanced again, which brought more restores. Several handlers serve the requests of
/// a burst side by side, as a broker's handler threads do.
pub(crate) const REQUEST_HANDLERS: usize = 8;

/// The node's main task: answer requests (on [`REQUEST_HANDLERS`] tasks); a task of its
/// own writes markers and ticks.
async fn serve(broker: Arc<Mutex<Broker>>, recorder: Recorder) {
    let ep = Arc::new(
        Endpoint::bind(BROKER_ADDR)
            .await
            .expect("the broker's address is free"),
    );
    madsim::task::spawn(coordinators(broker.clone(), recorder.clone()));
    for _ in 1..REQUEST_HANDLERS {
        madsim::task::spawn(handle_requests(
            ep.clone(),
            broker.clone(),
            recorder.clone(),
        ));
    }
    handle_requests(ep, broker, recorder).await
}

/// One request handler: take the next request, answer it (`KafkaRequestHandler.run`).
async fn handle_requests(ep: Arc<Endpoint>, broker: Arc<Mutex<Broker>>, recorder: Recorder) {
    loop {
        let Ok((payload, from)) = ep.recv_from_raw(REQUEST_TAG).await else {
            continue;
        };
        let wire = *payload
            .downcast::<Wire>()
            .expect("only requests travel on the request tag");
        let mut events = Vec::new();
        let handled =
            lock(&broker).handle_request(now_ms(), &wire.client, wire.request, &mut events);
        recorder.step(events);
        match handled {
            Handled::Now(response) => {
                // A lost answer is the network's business: the client times out.
                let _ = ep.send_to_raw(from, wire.corr, Box::new(response)).await;
            }
            Handled::Never => {}
            Handled::Delayed(_) => unreachable!("a single broker answers every produce now"),
        }
    }
}

/// The coordinators' own work: one pending transaction marker at a time, at moments
/// madsim's RNG picks, and the time-driven checks.
async fn coordinators(broker: Arc<Mutex<Broker>>, recorder: Recorder) {
    loop {
        let gap = madsim::rand::random::<u64>() % 3;
        sleep(Duration::from_millis(1 + gap)).await;
        let now = now_ms();
        let mut events = Vec::new();
        {
            let mut b = lock(&broker);
            if b.next_deadline().is_some_and(|d| d <= now) {
                b.tick(now, &mut events);
            }
            let pending = b.pending_markers();
            if !pending.is_empty() {
                let n = (madsim::rand::random::<u64>() % pending.len() as u64) as usize;
                b.write_pending_marker(now, &pending[n], &mut events);
            }
        }
        if !events.is_empty() {
            recorder.step(events);
        }
    }
}

/// An answer the client may read: `Response` travels boxed on the network.
pub fn response(payload: Box<dyn std::any::Any + Send + Sync>) -> Response {
    *payload
        .downcast::<Response>()
        .expect("only responses travel on a correlation id")
}

/// Record an event of the broker's node (a note, for instance).
pub fn note(recorder: &Recorder, text: String) {
    recorder.event(Event::Note {
        client: oversell_sim::Peer::Broker,
        text,
    });
}
