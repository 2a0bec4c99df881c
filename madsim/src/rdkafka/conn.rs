//! A client's connection to the cluster: one request, one answer, resent on a timeout.

use super::error::{KafkaError, KafkaResult};
use crate::cluster::{current_recorder, response, Wire, BROKER_ADDR, REQUEST_TAG};
use crate::record::Recorder;
use madsim::net::Endpoint;
use madsim::time::{sleep, timeout, Duration};
use oversell_sim::protocol::{KafkaError as WireError, Request, Response};
use oversell_sim::{ClientId, Event};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub(crate) struct Conn {
    pub(crate) id: ClientId,
    pub(crate) recorder: Recorder,
    ep: Mutex<Option<Arc<Endpoint>>>,
    pub(crate) request_timeout: Duration,
    pub(crate) retry_backoff: Duration,
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
        let broker: SocketAddr = BROKER_ADDR.parse().expect("a valid address");
        let ep = self.endpoint().await;
        loop {
            let corr = self.recorder.next_corr();
            let wire = Wire {
                corr,
                client: self.id.clone(),
                request: request.clone(),
            };
            if ep
                .send_to_raw(broker, REQUEST_TAG, Box::new(wire))
                .await
                .is_err()
            {
                sleep(self.retry_backoff).await;
                continue;
            }
            match timeout(self.request_timeout, ep.recv_from_raw(corr)).await {
                Ok(Ok((payload, _))) => {
                    let answer = response(payload);
                    match retriable(&answer) {
                        Some(e) => {
                            self.error(format!("{e:?}: retried after retry.backoff.ms"));
                            sleep(self.retry_backoff).await;
                        }
                        None => return answer,
                    }
                }
                _ => self.error(format!("request {corr} unanswered: sent again")),
            }
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
