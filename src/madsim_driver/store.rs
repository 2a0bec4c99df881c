//! A service's state store on the madsim driver: an in-memory map per partition, every
//! read and write recorded as the simulator's `StoreGet` / `StorePut`, every instance's
//! contents kept in one registry so that the run's final stores can be read, and an
//! interactive query can reach a store wherever it is hosted.

use oversell_madsim::record::Recorder;
use oversell_sim::world::StoreContents;
use oversell_sim::{ClientId, Event, TopicPartition};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Every running instance's stores: instance → (store, partition) → key → value.
#[derive(Clone, Default)]
pub struct Stores(Arc<Mutex<BTreeMap<String, StoreContents>>>);

impl Stores {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, StoreContents>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An instance's process is gone (killed): its in-memory stores with it.
    pub fn forget(&self, instance: &str) {
        self.lock().remove(instance);
    }

    /// The stores of every instance now.
    pub fn snapshot(&self) -> BTreeMap<String, StoreContents> {
        self.lock().clone()
    }

    /// Take `names`' contents for `partition` out of `instance`'s stores (store name →
    /// contents; an empty one for a store not hosted), for a processor's step; put them
    /// back with [`Stores::check_in`] before the next await.
    pub fn check_out(
        &self,
        instance: &str,
        partition: u32,
        names: &[String],
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut all = self.lock();
        let hosted = all.entry(instance.to_string()).or_default();
        names
            .iter()
            .map(|n| {
                let slot = (n.clone(), partition);
                (n.clone(), hosted.remove(&slot).unwrap_or_default())
            })
            .collect()
    }

    /// Put back what [`Stores::check_out`] took.
    pub fn check_in(
        &self,
        instance: &str,
        partition: u32,
        stores: BTreeMap<String, BTreeMap<String, String>>,
    ) {
        let mut all = self.lock();
        let hosted = all.entry(instance.to_string()).or_default();
        for (name, contents) in stores {
            hosted.insert((name, partition), contents);
        }
    }

    /// Interactive query: `key` of `store` partition `partition`, wherever it is hosted
    /// (the first instance holding that partition, by name); `None` when none hosts it.
    pub fn query(&self, store: &str, partition: u32, key: &str) -> Option<Option<String>> {
        let all = self.lock();
        let slot = (store.to_string(), partition);
        all.values()
            .find_map(|stores| stores.get(&slot))
            .map(|s| s.get(key).cloned())
    }
}

/// One named store of one application in one instance.
#[derive(Clone)]
pub struct Store {
    pub client: ClientId,
    pub name: String,
    stores: Stores,
    recorder: Recorder,
}

impl Store {
    pub fn new(client: ClientId, name: &str, stores: Stores, recorder: Recorder) -> Store {
        Store {
            client,
            name: name.to_string(),
            stores,
            recorder,
        }
    }

    fn slot(&self, partition: u32) -> (String, u32) {
        (self.name.clone(), partition)
    }

    /// Read a key of one of this instance's partitions of the store.
    pub fn get(&self, partition: u32, key: &str) -> Option<String> {
        let value = self
            .stores
            .lock()
            .get(&self.client.instance)
            .and_then(|s| s.get(&self.slot(partition)))
            .and_then(|m| m.get(key).cloned());
        self.recorder.event(Event::StoreGet {
            client: self.client.clone(),
            store: self.name.clone(),
            key: key.to_string(),
            value: value.clone(),
        });
        value
    }

    /// Write a key (`None` deletes it); the caller writes the changelog record.
    pub fn put(&self, partition: u32, key: &str, value: Option<String>) {
        {
            let mut all = self.stores.lock();
            let map = all
                .entry(self.client.instance.clone())
                .or_default()
                .entry(self.slot(partition))
                .or_default();
            match &value {
                Some(v) => map.insert(key.to_string(), v.clone()),
                None => map.remove(key),
            };
        }
        self.recorder.event(Event::StorePut {
            client: self.client.clone(),
            store: self.name.clone(),
            key: key.to_string(),
            value,
        });
    }

    /// Interactive query, recorded as a read by this client when a host answers.
    pub fn query(&self, partition: u32, key: &str) -> Option<Option<String>> {
        let value = self.stores.query(&self.name, partition, key)?;
        self.recorder.event(Event::StoreGet {
            client: self.client.clone(),
            store: self.name.clone(),
            key: key.to_string(),
            value: value.clone(),
        });
        Some(value)
    }

    /// Host `partition`, its contents restored from the changelog `tp` up to `upto`.
    pub fn restored(
        &self,
        partition: u32,
        contents: BTreeMap<String, String>,
        records: usize,
        tp: TopicPartition,
        upto: u64,
    ) {
        self.stores
            .lock()
            .entry(self.client.instance.clone())
            .or_default()
            .insert(self.slot(partition), contents);
        self.recorder.event(Event::Restored {
            client: self.client.clone(),
            store: self.name.clone(),
            tp,
            records,
            upto,
        });
    }

    /// Stop hosting `partition` (its task was revoked).
    pub fn drop_partition(&self, partition: u32) {
        if let Some(s) = self.stores.lock().get_mut(&self.client.instance) {
            s.remove(&self.slot(partition));
        }
    }

    /// The partitions of this store this instance hosts.
    pub fn hosted(&self) -> Vec<u32> {
        let all = self.stores.lock();
        let Some(s) = all.get(&self.client.instance) else {
            return Vec::new();
        };
        s.keys()
            .filter(|(n, _)| *n == self.name)
            .map(|(_, p)| *p)
            .collect()
    }
}
