//! [`Context`]: what a processor sees while it processes a record or punctuates — its
//! task's stores (every write goes to the store's changelog), sends, interactive queries.

use super::config::changelog_topic;
use crate::client::{ClientId, Env, StoreUnavailable};
use crate::partitioner::partition_for_key;
use crate::protocol::{Millis, Record, TopicPartition};
use crate::trace::{Event, Peer};
use std::collections::BTreeMap;

/// What a processor sees while it processes a record or punctuates.
pub struct Context<'c, 'e> {
    pub(super) client: &'c ClientId,
    pub(super) partition: u32,
    pub(super) stores: &'c mut BTreeMap<String, BTreeMap<String, String>>,
    pub(super) application_id: &'c str,
    pub(super) outputs: &'c mut Vec<(TopicPartition, Record)>,
    pub(super) env: &'c mut Env<'e>,
    pub(super) timestamp: Millis,
}

impl<'c, 'e> Context<'c, 'e> {
    /// Simulated wall-clock time.
    pub fn now(&self) -> Millis {
        self.env.now
    }

    /// The partition of the task.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn client(&self) -> &ClientId {
        self.client
    }

    fn store(&mut self, store: &str) -> &mut BTreeMap<String, String> {
        match self.stores.get_mut(store) {
            Some(s) => s,
            None => panic!(
                "processor of {} used store {store:?} which its sub-topology does not declare",
                self.client
            ),
        }
    }

    /// Read a key of one of the task's own stores.
    pub fn get(&mut self, store: &str, key: &str) -> Option<String> {
        let value = self.store(store).get(key).cloned();
        let event = Event::StoreGet {
            client: self.client.clone(),
            store: store.to_string(),
            key: key.to_string(),
            value: value.clone(),
        };
        self.env.event(event);
        value
    }

    /// One of the task's own stores, borrowed and in key order, without a trace event
    /// (like [`Context::entries`], and without copying it): for a processor's timers,
    /// which read what they may act on, never an input's answer.
    pub fn view(&mut self, store: &str) -> &BTreeMap<String, String> {
        self.store(store)
    }

    /// All entries of one of the task's own stores, in key order.
    pub fn entries(&mut self, store: &str) -> Vec<(String, String)> {
        self.store(store)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Write a key (`None` deletes it); the write goes to the store's changelog.
    pub fn put(&mut self, store: &str, key: &str, value: Option<String>) {
        let s = self.store(store);
        match &value {
            Some(v) => {
                s.insert(key.to_string(), v.clone());
            }
            None => {
                s.remove(key);
            }
        }
        let tp = TopicPartition::new(changelog_topic(self.application_id, store), self.partition);
        self.outputs.push((
            tp,
            Record {
                key: Some(key.to_string()),
                value: value.clone(),
                timestamp: self.timestamp,
                headers: Vec::new(),
            },
        ));
        let event = Event::StorePut {
            client: self.client.clone(),
            store: store.to_string(),
            key: key.to_string(),
            value,
        };
        self.env.event(event);
    }

    /// Send a record to a topic, partitioned by its key with Kafka's default partitioner.
    pub fn send(&mut self, topic: &str, key: &str, value: String) {
        let Some(n) = self.env.meta.partitions(topic) else {
            let event = Event::ClientError {
                client: self.client.clone(),
                what: format!("topic {topic} does not exist; record dropped"),
            };
            self.env.event(event);
            return;
        };
        let tp = TopicPartition::new(topic, partition_for_key(key, n));
        self.outputs.push((
            tp,
            Record {
                key: Some(key.to_string()),
                value: Some(value),
                timestamp: self.timestamp,
                headers: Vec::new(),
            },
        ));
    }

    /// Interactive query of a store anywhere in the application (possibly another
    /// instance's, possibly stale).
    pub fn query(&mut self, store: &str, key: &str) -> Result<Option<String>, StoreUnavailable> {
        let value = self.env.iq.query(store, key);
        if let Ok(v) = &value {
            let event = Event::StoreGet {
                client: self.client.clone(),
                store: store.to_string(),
                key: key.to_string(),
                value: v.clone(),
            };
            self.env.event(event);
        }
        value
    }

    /// Record a note in the trace (a design explaining a decision).
    pub fn note(&mut self, text: impl Into<String>) {
        let event = Event::Note {
            client: Peer::Client(self.client.clone()),
            text: text.into(),
        };
        self.env.event(event);
    }
}

/// Where a processor runs outside a [`StreamsClient`](super::StreamsClient): an async
/// service of the madsim driver that keeps its own tasks and calls the same processor,
/// so that the decisions of a design are the sans-IO design's, not a copy.
pub struct Detached<'a> {
    pub client: &'a ClientId,
    pub application_id: &'a str,
    /// The task's partition.
    pub partition: u32,
    pub now: Millis,
    /// The timestamp of what the processor sends (the input's, or `now` for a punctuation).
    pub timestamp: Millis,
    pub meta: &'a dyn crate::client::Metadata,
    pub iq: &'a dyn crate::client::StoreQuery,
}

/// What a detached step wrote: the records (store changelogs included), the trace events.
pub type Written = (Vec<(TopicPartition, Record)>, Vec<Event>);

impl Detached<'_> {
    /// Run `step` (a `process` or a `punctuate`) over the task's `stores` (store name →
    /// contents); what it sent and recorded is returned, not sent.
    pub fn step<R>(
        &self,
        stores: &mut BTreeMap<String, BTreeMap<String, String>>,
        step: impl FnOnce(&mut Context<'_, '_>) -> R,
    ) -> (R, Written) {
        let (mut events, mut outbox, mut next_corr, mut outputs) = (vec![], vec![], 0, vec![]);
        let mut env = Env {
            now: self.now,
            meta: self.meta,
            iq: self.iq,
            events: &mut events,
            outbox: &mut outbox,
            next_corr: &mut next_corr,
        };
        let mut ctx = Context {
            client: self.client,
            partition: self.partition,
            stores,
            application_id: self.application_id,
            outputs: &mut outputs,
            env: &mut env,
            timestamp: self.timestamp,
        };
        let r = step(&mut ctx);
        assert!(outbox.is_empty(), "a processor sends no request itself");
        (r, (outputs, events))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Guarantee, MAIN};
    use crate::client::Client;
    use crate::protocol::Request;

    #[test]
    fn a_store_write_goes_to_the_store_and_its_changelog_partition() {
        let (mut c, mut d) = running(Guarantee::AtLeastOnce, &[1], &[]);
        let (corr, _) = step(&mut c, &mut d);
        answer(
            &mut c,
            &mut d,
            corr,
            fetched(tp("in", 1), 0, vec![record("k", "v", 5)], 1),
        );
        let _ = d.step(&mut c, MAIN); // process
        assert_eq!(c.stores()[&(STORE.to_string(), 1)]["k"], "1");
        let (_, produce) = step(&mut c, &mut d);
        let Request::Produce { batches, .. } = produce else {
            panic!("expected a produce, got {produce:?}")
        };
        let changelog = batches.iter().find(|b| b.tp == tp("app-s-changelog", 1));
        let r = &changelog.expect("a changelog batch").records[0];
        assert_eq!((r.value.as_deref(), r.timestamp), (Some("1"), 5));
    }
}
