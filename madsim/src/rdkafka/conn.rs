//! A client's connection to the cluster: one request, one answer, resent on a timeout.
//!
//! To a replicated cluster (one madsim node per broker) a request goes to the broker its
//! route leads to ([`route`]: the partition's leader, the id's coordinator), as the
//! client's metadata says; the metadata is looked up from a live broker when missing
//! (`MetadataRequest` / `FindCoordinatorRequest` to `NetworkClient.leastLoadedNode`,
//! the brokers tried in turn as bootstrap servers are) and forgotten after an answer
//! `NOT_LEADER_OR_FOLLOWER` / `NOT_COORDINATOR` or a timeout (`Metadata.requestUpdate`
//! from `Sender.completeBatch` and the fetcher; `AbstractCoordinator.markCoordinatorUnknown`,
//! `TransactionManager.lookupCoordinator`), after which the request is sent again.

use super::error::{KafkaError, KafkaResult};
use crate::cluster::{brokers, current_recorder, response, Wire, BROKER_ADDR, REQUEST_TAG};
use crate::netfaults::{self, Fate};
use crate::nodes::{broker_addr, lookup_answer, Lookup, LOOKUP_TAG};
use crate::record::{now_ms, Recorder};
use madsim::net::Endpoint;
use madsim::time::{sleep, timeout, Duration};
use oversell_sim::broker::routing::{misrouted, not_here, route, Route};
use oversell_sim::broker::BrokerId;
use oversell_sim::protocol::{KafkaError as WireError, Request, Response};
use oversell_sim::streams::describe_request;
use oversell_sim::{ClientId, Event, Label};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub(crate) struct Conn {
    pub(crate) id: ClientId,
    pub(crate) recorder: Recorder,
    ep: Mutex<Option<Arc<Endpoint>>>,
    pub(crate) request_timeout: Duration,
    pub(crate) retry_backoff: Duration,
    /// A replicated cluster's metadata as this client knows it: where each route leads,
    /// and the broker the next lookup asks.
    meta: Mutex<(BTreeMap<Route, BrokerId>, BrokerId)>,
}

impl Conn {
    /// A connection for the application `app` of the node this runs on.
    pub(crate) fn new(
        app: &str,
        request_timeout_ms: u64,
        retry_backoff_ms: u64,
    ) -> KafkaResult<Conn> {
        let recorder = current_recorder().ok_or_else(|| {
            KafkaError::ClientCreation(
                "no cluster: start one with oversell_madsim::cluster::Cluster::start".into(),
            )
        })?;
        if app.contains('/') || app.is_empty() {
            return Err(KafkaError::ClientCreation(format!(
                "client.id={app:?}: a non-empty name without '/'"
            )));
        }
        Ok(Conn {
            id: ClientId::new(node_name(), app),
            recorder,
            ep: Mutex::new(None),
            request_timeout: Duration::from_millis(request_timeout_ms.max(1)),
            retry_backoff: Duration::from_millis(retry_backoff_ms.max(1)),
            meta: Mutex::new((BTreeMap::new(), 0)),
        })
    }

    async fn endpoint(&self) -> Arc<Endpoint> {
        if let Some(ep) = self.ep.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return ep;
        }
        let ep = Arc::new(
            Endpoint::bind("0.0.0.0:0")
                .await
                .expect("a node can always bind an ephemeral port"),
        );
        *self.ep.lock().unwrap_or_else(|e| e.into_inner()) = Some(ep.clone());
        ep
    }

    /// Send `request` and wait for its answer; unanswered within `request.timeout.ms`,
    /// send it again as it was (`NetworkClient`'s retry of a timed-out request). A
    /// retriable error (`KafkaError::is_retriable`) is retried after `retry.backoff.ms`.
    pub(crate) async fn call(&self, request: Request) -> Response {
        if brokers() > 1 {
            return self.call_routed(request).await;
        }
        let broker: SocketAddr = BROKER_ADDR.parse().expect("a valid address");
        let ep = self.endpoint().await;
        loop {
            let corr = self.recorder.next_corr();
            if self.send(&ep, broker, corr, &request).await.is_err() {
                sleep(self.retry_backoff).await;
                continue;
            }
            match self.receive(&ep, corr, &request).await {
                Some(payload) => {
                    let answer = response(payload);
                    match retriable(&answer) {
                        Some(e) => {
                            self.error(format!("{e:?}: retried after retry.backoff.ms"));
                            sleep(self.retry_backoff).await;
                        }
                        None => return answer,
                    }
                }
                None => self.error(format!("request {corr} unanswered: sent again")),
            }
        }
    }

    /// [`Conn::call`] on a replicated cluster: to the broker the request's route leads
    /// to. A `Fetch` whose partition has no leader, whose leader says it is not, or
    /// which is unanswered within `request.timeout.ms`, is
    /// answered `NOT_LEADER_OR_FOLLOWER` to the consumer, which goes on with its other
    /// partitions (the fetcher skips a partition without a leader); any other request
    /// waits `retry.backoff.ms` and is sent again once the metadata is refreshed.
    async fn call_routed(&self, request: Request) -> Response {
        let route = route(&request);
        let fetch = matches!(request, Request::Fetch { .. });
        let ep = self.endpoint().await;
        loop {
            let Some(b) = self.lookup(&route).await else {
                if fetch {
                    return not_here(&request);
                }
                sleep(self.retry_backoff).await;
                continue;
            };
            let corr = self.recorder.next_corr();
            if self
                .send(&ep, broker_addr(b), corr, &request)
                .await
                .is_err()
            {
                self.unreachable(&route, b);
                sleep(self.retry_backoff).await;
                continue;
            }
            let Some(payload) = self.receive(&ep, corr, &request).await else {
                self.unreachable(&route, b);
                self.error(format!(
                    "request {corr} to broker {b} unanswered: sent again"
                ));
                if fetch {
                    return not_here(&request);
                }
                continue;
            };
            let answer = response(payload);
            if let Some(e) = misrouted(&answer) {
                self.forget(&route);
                if fetch {
                    return answer;
                }
                self.error(format!(
                    "{e:?} from broker {b}: metadata refreshed, retried"
                ));
                sleep(self.retry_backoff).await;
                continue;
            }
            match retriable(&answer) {
                Some(e) => {
                    self.error(format!("{e:?}: retried after retry.backoff.ms"));
                    sleep(self.retry_backoff).await;
                }
                None => return answer,
            }
        }
    }

    /// Send `request` as `corr` to `to`, through the network's faults
    /// ([`crate::netfaults`]): dropped (never sent), delayed (sent later by a task of its
    /// own), duplicated (sent twice) or sent. An error when madsim cannot send it now.
    async fn send(
        &self,
        ep: &Arc<Endpoint>,
        to: SocketAddr,
        corr: u64,
        request: &Request,
    ) -> std::io::Result<()> {
        let wire = || Wire {
            corr,
            client: self.id.clone(),
            request: request.clone(),
        };
        let what = || Label::from(describe_request(request));
        match netfaults::strike(&self.recorder, corr, what) {
            Fate::Deliver => ep.send_to_raw(to, REQUEST_TAG, Box::new(wire())).await,
            Fate::Drop => Ok(()),
            Fate::Delay(d) => {
                let (ep, wire) = (ep.clone(), wire());
                madsim::task::spawn(async move {
                    sleep(Duration::from_millis(d)).await;
                    let _ = ep.send_to_raw(to, REQUEST_TAG, Box::new(wire)).await;
                });
                Ok(())
            }
            Fate::Duplicate => {
                ep.send_to_raw(to, REQUEST_TAG, Box::new(wire())).await?;
                ep.send_to_raw(to, REQUEST_TAG, Box::new(wire())).await
            }
        }
    }

    /// The answer to `corr` within `request.timeout.ms`, through the network's faults: a
    /// dropped answer is never read (the request times out), a delayed one is read after
    /// its delay if that is within the timeout, a duplicated one's copy is never read.
    async fn receive(
        &self,
        ep: &Arc<Endpoint>,
        corr: u64,
        request: &Request,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        let deadline = now_ms() + self.request_timeout.as_millis() as u64;
        let Ok(Ok((payload, _))) = timeout(self.request_timeout, ep.recv_from_raw(corr)).await
        else {
            return None;
        };
        let what = || Label::from(describe_request(request)).reply();
        let rest = Duration::from_millis(deadline.saturating_sub(now_ms()));
        let mut fate = netfaults::strike(&self.recorder, corr, what);
        let produce = matches!(
            payload.downcast_ref::<Response>(),
            Some(Response::Produce(_))
        );
        if fate != Fate::Drop && produce && netfaults::take_ack_drop(&self.id.instance) {
            let what = what().with_note("scheduled");
            self.recorder.event(Event::Drop { id: corr, what });
            fate = Fate::Drop;
        }
        match fate {
            Fate::Deliver | Fate::Duplicate => Some(payload),
            Fate::Delay(d) if Duration::from_millis(d) < rest => {
                sleep(Duration::from_millis(d)).await;
                Some(payload)
            }
            Fate::Drop | Fate::Delay(_) => {
                sleep(rest).await;
                None
            }
        }
    }

    /// Where `route` leads, from this client's metadata or, when it has none, from a
    /// lookup of one broker (the next in turn when it does not answer): `None` when the
    /// route leads nowhere now or the broker asked did not answer.
    async fn lookup(&self, route: &Route) -> Option<BrokerId> {
        let asked = {
            let meta = self.meta.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(b) = meta.0.get(route) {
                return Some(*b);
            }
            meta.1
        };
        let ep = self.endpoint().await;
        let corr = self.recorder.next_corr();
        let lookup = Lookup {
            corr,
            route: route.clone(),
        };
        let sent = ep.send_to_raw(broker_addr(asked), LOOKUP_TAG, Box::new(lookup));
        let answer = match sent.await {
            Ok(()) => timeout(self.request_timeout, ep.recv_from_raw(corr)).await,
            Err(_) => Ok(Err(std::io::Error::other("unsent"))),
        };
        let mut meta = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(Ok((payload, _))) => {
                let b = lookup_answer(payload)?;
                meta.0.insert(route.clone(), b);
                Some(b)
            }
            _ => {
                meta.1 = (asked + 1) % brokers();
                None
            }
        }
    }

    /// Forget where `route` leads (the next call looks it up again).
    fn forget(&self, route: &Route) {
        let mut meta = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        meta.0.remove(route);
    }

    /// Broker `b` did not answer a request for `route`: forget where the route leads, and
    /// ask another broker at the next lookup (`NetworkClient` marks the node disconnected
    /// and `leastLoadedNode` picks another).
    fn unreachable(&self, route: &Route, b: BrokerId) {
        let mut meta = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        meta.0.remove(route);
        if meta.1 == b {
            meta.1 = (b + 1) % brokers();
        }
    }

    /// Record the client's own view of an error it handles.
    pub(crate) fn error(&self, what: String) {
        self.recorder.event(Event::ClientError {
            client: self.id.clone(),
            what,
        });
    }
}

/// The retriable error of an answer, if it has one.
fn retriable(answer: &Response) -> Option<WireError> {
    let e = match answer {
        Response::InitProducerId(Err(e))
        | Response::TxnOffsetCommit(Err(e))
        | Response::EndTxn(Err(e))
        | Response::OffsetCommit(Err(e))
        | Response::OffsetFetch(Err(e)) => *e,
        Response::Produce(results) => results.iter().find_map(|(_, r)| match r {
            oversell_sim::protocol::PartitionProduceResult::Error(e) => Some(*e),
            _ => None,
        })?,
        _ => return None,
    };
    e.is_retriable().then_some(e)
}

/// The name of the madsim node this task runs on (its hostname in the simulation).
fn node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; madsim answers a node's name.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).replace('/', "-");
    if rc != 0 || name.is_empty() {
        "node".to_string()
    } else {
        name
    }
}
