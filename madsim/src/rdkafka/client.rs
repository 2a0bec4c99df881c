//! `rdkafka::client`: the context every client carries (`ClientContext`) and the client
//! that holds it (`Client`).

use super::error::KafkaError;
use std::sync::Arc;

/// `rdkafka::client::ClientContext`: client-level callbacks. librdkafka's `log`, `stats`,
/// `stats_raw`, OAuth and broker address rewriting have no counterpart here and are
/// absent; `error` is declared, with rdkafka's signature, and not called (this client
/// records its errors in the run's trace instead).
pub trait ClientContext: Send + Sync + 'static {
    fn error(&self, _error: KafkaError, _reason: &str) {}
}

/// `rdkafka::client::DefaultClientContext`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClientContext;

impl ClientContext for DefaultClientContext {}

/// `rdkafka::client::Client`: what `Consumer::client` and `Producer::client` return;
/// here it holds the context only.
pub struct Client<C: ClientContext = DefaultClientContext> {
    context: Arc<C>,
}

impl<C: ClientContext> Client<C> {
    pub(crate) fn new(context: C) -> Client<C> {
        Client {
            context: Arc::new(context),
        }
    }

    /// `Client::context`.
    pub fn context(&self) -> &Arc<C> {
        &self.context
    }
}
