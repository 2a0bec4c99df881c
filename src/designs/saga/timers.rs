//! How a saga service's timers take effect.
//!
//! Under `exactly_once_v2` a stream thread's writes are fenced by the group generation
//! that travels with its input offsets (`sendOffsetsToTransaction`, KIP-447). A
//! punctuation consumes nothing, so a transaction it fills carries no offsets and no
//! generation: `StreamTask.prepareCommit` commits only partitions the task consumed,
//! `KafkaProducer.sendOffsetsToTransaction` returns at once for an empty map, and
//! `TaskExecutor.commitOffsetsOrTransaction` still commits the transaction. A zombie's
//! punctuation is therefore never fenced.
//!
//! [`Timers::SelfAddressed`] (the `saga` design) makes a due timer send a record to the
//! service's own input topic and nothing else; the timer's effects are applied when that
//! record is processed, with its offset and the generation check like any other input.
//! A record whose transaction aborted is sent again after [`RESEND_MS`], from an
//! in-memory map of what was sent and not yet seen back. [`Timers::Direct`]
//! (`saga-direct-timers`) applies the effects in the punctuation itself.

use oversell_sim::Millis;
use std::collections::BTreeMap;

/// How long a self-addressed timer record may stay unseen before it is sent again.
pub(super) const RESEND_MS: Millis = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timers {
    /// The punctuation writes the stores and sends the commands itself (unfenced).
    Direct,
    /// The punctuation sends a record to the service's own input; processing it acts.
    SelfAddressed,
}

/// Self-addressed timer records sent and not yet seen back: key → when last sent.
/// In memory only: a new task (after a restart or a migration) sends again.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct Pending {
    sent: BTreeMap<String, Millis>,
}

impl Pending {
    /// Whether the record for `key` is to be sent (again) at `now`.
    pub(super) fn due(&self, key: &str, now: Millis) -> bool {
        self.sent.get(key).is_none_or(|at| now >= at + RESEND_MS)
    }

    pub(super) fn sent(&mut self, key: &str, now: Millis) {
        self.sent.insert(key.to_string(), now);
    }

    /// The record for `key` came back (or its timer no longer applies).
    pub(super) fn seen(&mut self, key: &str) {
        self.sent.remove(key);
    }

    /// Forget every key but those `keep` still holds a timer for.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.sent.retain(|k, _| keep(k));
    }

    /// When the timer of `key`, due at `due`, next has work: at `due` if nothing was
    /// sent for it, else when a resend would be due.
    pub(super) fn next(&self, key: &str, due: Millis) -> Millis {
        match self.sent.get(key) {
            Some(at) => at + RESEND_MS,
            None => due,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_record_is_resent_only_after_the_resend_interval_until_seen() {
        let mut p = Pending::default();
        assert!(p.due("o1", 100));
        assert_eq!(p.next("o1", 100), 100);
        p.sent("o1", 100);
        assert!(!p.due("o1", 100 + RESEND_MS - 1));
        assert!(p.due("o1", 100 + RESEND_MS));
        assert_eq!(p.next("o1", 100), 100 + RESEND_MS);
        p.seen("o1");
        assert!(p.due("o1", 101));
        p.sent("o2", 5);
        p.retain(|k| k != "o2");
        assert!(p.due("o2", 6));
    }

    fn digest(p: &dyn oversell_sim::Processor) -> u64 {
        let mut h = oversell_sim::state_hash::StateHash::new();
        assert!(p.fingerprint(&mut h), "a saga processor says what it holds");
        h.finish()
    }

    /// Two saga processors differing only in the timer records they sent and have not
    /// seen back (which decide when a record is sent again) have different fingerprints.
    #[test]
    fn what_a_saga_processor_sent_and_has_not_seen_is_in_its_fingerprint() {
        use super::super::order_service::{PaymentPlan, ProcessManager};
        use super::super::product_service::ProductLedger;
        let plan = std::sync::Arc::new(PaymentPlan {
            fail: Default::default(),
            delay_ms: 100,
            delays: Default::default(),
        });
        let manager = |pending| ProcessManager {
            payments: plan.clone(),
            timers: Timers::SelfAddressed,
            pending,
            paying: None,
        };
        let ledger = |pending| ProductLedger {
            timeout_ms: 1000,
            idempotent: true,
            timers: Timers::SelfAddressed,
            pending,
            reservations: None,
        };
        let mut sent = Pending::default();
        sent.sent("o1", 100);
        let none = Pending::default();
        assert_ne!(
            digest(&manager(none.clone())),
            digest(&manager(sent.clone()))
        );
        assert_ne!(digest(&ledger(none.clone())), digest(&ledger(sent.clone())));
        assert_eq!(digest(&ledger(none.clone())), digest(&ledger(none)));
    }
}
