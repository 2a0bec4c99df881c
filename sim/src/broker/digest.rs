//! The broker's state digest, for the exhaustive search's fingerprint
//! (`World::fingerprint`): every field, each partition log through its own cached digest
//! (a step changes one or two logs; the others are not written out again), the rest as
//! its written form. The destructuring below names every field: a field added to the
//! broker does not compile here until it is in the digest (or argued out of it).

use super::Broker;
use crate::state_hash::StateHash;
use std::fmt::Write;
use std::hash::Hasher;

impl Broker {
    /// A 64-bit digest of everything the broker's future behaviour depends on.
    pub fn state_digest(&self) -> u64 {
        let Broker {
            config,
            topics,
            producers,
            next_producer_id,
            txn_ids,
            txn_outcomes,
            groups,
            members_created,
            defects,
            cluster,
            delayed_fetches,
        } = self;
        let mut h = StateHash::new();
        let rest = (
            config,
            producers,
            next_producer_id,
            txn_ids,
            txn_outcomes,
            groups,
            members_created,
            defects,
            cluster,
        );
        write!(h, "{rest:?}").expect("writing to a hash");
        if self.holds_fetches() {
            let held = delayed_fetches.digest_text();
            write!(h, "{held}").expect("writing to a hash");
        }
        h.write_u64(topics.len() as u64);
        for (name, topic) in topics {
            write!(h, "{name} {:?}", topic.config).expect("writing to a hash");
            h.write_u64(topic.partitions.len() as u64);
            for log in &topic.partitions {
                h.write_u64(log.digest(|l| {
                    let mut d = StateHash::new();
                    write!(d, "{l:?}").expect("writing to a hash");
                    d.finish()
                }));
            }
        }
        h.finish()
    }
}
