//! A producer that writes a fixed schedule of records: the outside world placing orders.
//!
//! One record per produce request, each waiting for the previous acknowledgement
//! (`max.in.flight.requests.per.connection = 1`). A request whose response does not come
//! back within the request timeout is retried as it was. With idempotence the broker
//! recognises the retry; without it the record is written twice. A batch answered with a
//! retriable error is sent again as it was (same producer id, epoch and sequence) after
//! `retry.backoff.ms` (Kafka's `Sender.canRetry`, `TransactionManager.canRetry`); any other
//! error resets the producer.

use crate::client::{Client, ClientId, Env};
use crate::partitioner::partition_for_key;
use crate::protocol::{
    Acks, Epoch, Millis, PartitionProduceResult, ProduceBatch, ProducerId, ProducerIdentity,
    Record, Request, Response, TopicPartition,
};
use crate::trace::Event;
use std::collections::BTreeMap;

/// One record to produce at a given time.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub at: Millis,
    pub topic: String,
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// `enable.idempotence`.
    pub idempotent: bool,
    /// `request.timeout.ms`: a request unanswered this long is retried.
    pub request_timeout_ms: Millis,
    /// `retry.backoff.ms`: the wait before a batch answered with a retriable error is
    /// sent again. Default 10 (the streams clients' default here).
    pub retry_backoff_ms: Millis,
    /// `acks`. Default `all` (Kafka's default since 3.0). Under `acks=0` the broker sends
    /// no answer: the record counts as sent, no offset is known, and nothing is `Acked`.
    pub acks: Acks,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            idempotent: true,
            request_timeout_ms: 200,
            retry_backoff_ms: 10,
            acks: Acks::All,
        }
    }
}

#[derive(Clone, Debug)]
struct Waiting {
    corr: u64,
    request: Request,
    deadline: Millis,
}

/// A request answered with a retriable error, to send again as it was.
#[derive(Clone, Debug)]
struct Backoff {
    request: Request,
    at: Millis,
}

#[derive(Clone)]
pub struct SourceClient {
    id: ClientId,
    config: SourceConfig,
    schedule: Vec<Scheduled>,
    next: usize,
    producer: Option<(ProducerId, Epoch)>,
    sequences: BTreeMap<TopicPartition, i32>,
    waiting: Option<Waiting>,
    backoff: Option<Backoff>,
}

impl SourceClient {
    pub fn new(id: ClientId, config: SourceConfig, mut schedule: Vec<Scheduled>) -> Self {
        schedule.sort_by_key(|s| s.at);
        SourceClient {
            id,
            config,
            schedule,
            next: 0,
            producer: None,
            sequences: BTreeMap::new(),
            waiting: None,
            backoff: None,
        }
    }

    fn send(&mut self, request: Request, env: &mut Env<'_>) {
        let corr = env.send(request.clone());
        self.waiting = Some(Waiting {
            corr,
            request,
            deadline: env.now + self.config.request_timeout_ms,
        });
    }
}

impl Client for SourceClient {
    fn clone_boxed(&self) -> Option<Box<dyn Client>> {
        Some(Box::new(self.clone()))
    }

    fn fingerprint(&self, out: &mut dyn std::fmt::Write) -> bool {
        // The schedule and the configuration are fixed at build: `next` says where it is.
        let waiting = self.waiting.as_ref().map(|w| (&w.request, w.deadline));
        let state = (
            self.next,
            self.producer,
            &self.sequences,
            waiting,
            &self.backoff,
        );
        write!(out, "{state:?}").is_ok()
    }

    fn awaits(&self, corr: u64) -> Option<usize> {
        (self.waiting.as_ref().map(|w| w.corr) == Some(corr)).then_some(0)
    }

    fn id(&self) -> &ClientId {
        &self.id
    }

    fn ready(&self, _lane: usize, now: Millis) -> bool {
        match (&self.waiting, &self.backoff) {
            (Some(w), _) => now >= w.deadline,
            (None, Some(b)) => now >= b.at,
            (None, None) => self.next < self.schedule.len() && now >= self.schedule[self.next].at,
        }
    }

    fn step(&mut self, _lane: usize, env: &mut Env<'_>) {
        if let Some(w) = self.waiting.take() {
            env.event(Event::Timeout {
                client: self.id.clone(),
                what: "produce request unanswered: retrying".into(),
            });
            self.send(w.request, env);
            return;
        }
        if let Some(b) = self.backoff.take() {
            self.send(b.request, env);
            return;
        }
        if self.config.idempotent && self.producer.is_none() {
            let request = Request::InitProducerId {
                transactional_id: None,
                transaction_timeout_ms: 0,
            };
            self.send(request, env);
            return;
        }
        let s = &self.schedule[self.next];
        let Some(n) = env.meta.partitions(&s.topic) else {
            env.event(Event::ClientError {
                client: self.id.clone(),
                what: format!("topic {} does not exist; record dropped", s.topic),
            });
            self.next += 1;
            return;
        };
        let tp = TopicPartition::new(s.topic.clone(), partition_for_key(&s.key, n));
        let record = Record {
            key: Some(s.key.clone()),
            value: Some(s.value.clone()),
            timestamp: env.now,
            headers: Vec::new(),
        };
        let base_sequence = self
            .producer
            .map(|_| *self.sequences.entry(tp.clone()).or_insert(0));
        let producer = self.producer.map(|(producer_id, epoch)| ProducerIdentity {
            producer_id,
            epoch,
            transactional_id: None,
        });
        let request = Request::Produce {
            producer,
            batches: vec![ProduceBatch {
                tp,
                base_sequence,
                records: vec![record],
            }],
            acks: self.config.acks,
        };
        if self.config.acks == Acks::Zero {
            // Fire and forget: no answer comes back (`ProduceRequest` with acks=0).
            env.send(request);
            self.next += 1;
            return;
        }
        self.send(request, env);
    }

    fn on_response(&mut self, corr: u64, response: Response, env: &mut Env<'_>) {
        if self.waiting.as_ref().map(|w| w.corr) != Some(corr) {
            return; // a stale or duplicated response
        }
        let request = self.waiting.take().map(|w| w.request);
        match response {
            Response::InitProducerId(Ok(pid)) => self.producer = Some(pid),
            Response::InitProducerId(Err(e)) => env.event(Event::ClientError {
                client: self.id.clone(),
                what: format!("init producer id failed: {e:?}"),
            }),
            Response::Produce(results) => {
                for (tp, result) in results {
                    match result {
                        PartitionProduceResult::Appended { base_offset, .. } => {
                            env.event(Event::Acked {
                                client: self.id.clone(),
                                tp: tp.clone(),
                                base_offset,
                                count: 1,
                            });
                            if let Some(seq) = self.sequences.get_mut(&tp) {
                                *seq += 1;
                            }
                            self.next += 1;
                        }
                        PartitionProduceResult::Error(e) if e.is_retriable() => {
                            // Sender.canRetry: the batch again, same producer id, epoch
                            // and sequence, after retry.backoff.ms.
                            let request = request.clone().expect("a produce was waiting");
                            self.backoff = Some(Backoff {
                                request,
                                at: env.now + self.config.retry_backoff_ms,
                            });
                        }
                        PartitionProduceResult::Error(e) => {
                            // A fresh producer id resets sequences; the record is sent again.
                            env.event(Event::ClientError {
                                client: self.id.clone(),
                                what: format!(
                                    "produce to {tp} failed: {e:?}; resetting the producer"
                                ),
                            });
                            self.producer = None;
                            self.sequences.clear();
                        }
                    }
                }
            }
            other => env.event(Event::ClientError {
                client: self.id.clone(),
                what: format!("unexpected response {other:?}"),
            }),
        }
    }

    fn wakeup(&self) -> Option<Millis> {
        match (&self.waiting, &self.backoff) {
            (Some(w), _) => Some(w.deadline),
            (None, Some(b)) => Some(b.at),
            (None, None) => self.schedule.get(self.next).map(|s| s.at),
        }
    }

    fn idle(&self) -> bool {
        self.waiting.is_none() && self.backoff.is_none() && self.next >= self.schedule.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientId;
    use crate::protocol::KafkaError;
    use crate::streams::harness::Driver;

    #[test]
    fn a_retriable_error_resends_the_batch_with_its_producer_id_epoch_and_sequence() {
        let schedule = vec![Scheduled {
            at: 0,
            topic: "orders".into(),
            key: "k".into(),
            value: "v".into(),
        }];
        let id = ClientId::new("frontend", "producer");
        let mut c = SourceClient::new(id, SourceConfig::default(), schedule);
        let mut d = Driver::new([("orders".to_string(), 1)].into_iter().collect());
        let sent = d.step(&mut c, 0);
        d.respond(&mut c, sent[0].0, Response::InitProducerId(Ok((7, 3))));
        let sent = d.step(&mut c, 0);
        let (corr, produce) = sent[0].clone();
        let tp = TopicPartition::new("orders", 0);
        let refused = PartitionProduceResult::Error(KafkaError::NotEnoughReplicas);
        d.respond(&mut c, corr, Response::Produce(vec![(tp, refused)]));
        assert!(!c.ready(0, d.now), "waits retry.backoff.ms");
        d.now += c.config.retry_backoff_ms;
        let sent = d.step(&mut c, 0);
        assert_eq!(sent[0].1, produce, "same producer id, epoch and sequence");
        assert_eq!(c.producer, Some((7, 3)));
    }
}
