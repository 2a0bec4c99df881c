//! `rdkafka::config::ClientConfig`, and the settings this client reads from it.
//!
//! `create` and `create_with_context` are `async`, as in madsim-rdkafka (its
//! `src/std/config.rs` and `src/sim/config.rs`: `pub async fn create<T: FromClientConfig>`),
//! which is what a madsim user's code already calls; in rust-rdkafka they are not.

use super::client::ClientContext;
use super::error::{KafkaError, KafkaResult};
use std::collections::BTreeMap;
use std::future::Future;

/// A client's settings, by librdkafka's names.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    conf_map: BTreeMap<String, String>,
}

/// `rdkafka::config::FromClientConfig`: a client built from settings.
/// (madsim-rdkafka's is an `async_trait`; its future is `Send` here too.)
pub trait FromClientConfig: Sized {
    fn from_config(config: &ClientConfig) -> impl Future<Output = KafkaResult<Self>> + Send;
}

/// `rdkafka::config::FromClientConfigAndContext`: a client built with a context.
pub trait FromClientConfigAndContext<C: ClientContext>: Sized {
    fn from_config_and_context(
        config: &ClientConfig,
        context: C,
    ) -> impl Future<Output = KafkaResult<Self>> + Send;
}

impl ClientConfig {
    pub fn new() -> ClientConfig {
        ClientConfig::default()
    }

    pub fn set<K: Into<String>, V: Into<String>>(&mut self, key: K, value: V) -> &mut ClientConfig {
        self.conf_map.insert(key.into(), value.into());
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.conf_map.get(key).map(String::as_str)
    }

    pub fn remove(&mut self, key: &str) -> &mut ClientConfig {
        self.conf_map.remove(key);
        self
    }

    pub async fn create<T: FromClientConfig>(&self) -> KafkaResult<T> {
        T::from_config(self).await
    }

    pub async fn create_with_context<C, T>(&self, context: C) -> KafkaResult<T>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C>,
    {
        T::from_config_and_context(self, context).await
    }

    /// Refuse any setting not in `known`, by name.
    pub(crate) fn only(&self, role: &str, known: &[&str]) -> KafkaResult<()> {
        match self.conf_map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(KafkaError::ClientCreation(format!(
                "{k}: not supported by this {role} (supported: {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// A setting that must have one of `allowed` values (the first is the default).
    pub(crate) fn one_of(&self, key: &str, allowed: &[&str]) -> KafkaResult<String> {
        let value = self.get(key).unwrap_or(allowed[0]);
        if allowed.contains(&value) {
            Ok(value.to_string())
        } else {
            Err(KafkaError::ClientCreation(format!(
                "{key}={value}: not supported (supported: {})",
                allowed.join(", ")
            )))
        }
    }

    /// A number of milliseconds, or `default`.
    pub(crate) fn millis(&self, key: &str, default: u64) -> KafkaResult<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                KafkaError::ClientCreation(format!("{key}={v}: expected a number of milliseconds"))
            }),
        }
    }

    /// `true` or `false`, or `default`.
    pub(crate) fn flag(&self, key: &str, default: bool) -> KafkaResult<bool> {
        match self.get(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(KafkaError::ClientCreation(format!(
                "{key}={v}: expected true or false"
            ))),
        }
    }
}
