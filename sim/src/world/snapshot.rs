//! A copy of a whole world, for the exhaustive search's snapshots: the search resumes a
//! run at a step boundary from a copy instead of re-running its prefix from the start.
//!
//! A copy is the world itself: every field, each instance's clients through
//! `Client::clone_boxed` (which copies their tasks' processors through
//! `Processor::clone_boxed`). A world with a client or processor that cannot be copied,
//! or with a PCT scheduler, has no copy ([`World::try_clone`] returns `None`) and the
//! search re-runs prefixes instead: the two ways reach the same states in the same order
//! (`tests/exhaustive.rs` compares their figures).

use super::instances::Instance;
use super::World;

impl Instance {
    fn try_clone(&self) -> Option<Instance> {
        let mut clients = Vec::with_capacity(self.clients.len());
        for c in &self.clients {
            let c = c
                .as_ref()
                .expect("not copied while a client is being stepped");
            clients.push(Some(c.clone_boxed()?));
        }
        Some(Instance {
            spec: self.spec.clone(),
            status: self.status.clone(),
            incarnation: self.incarnation,
            clients,
            readiness: self.readiness.clone(),
        })
    }
}

impl World {
    /// A copy of this world, between two steps; `None` when some client or processor
    /// cannot be copied, or under PCT.
    pub fn try_clone(&self) -> Option<World> {
        if self.pct.is_some() {
            return None;
        }
        let mut instances = Vec::with_capacity(self.instances.len());
        for i in &self.instances {
            instances.push(i.try_clone()?);
        }
        assert!(
            self.scratch.is_empty() && self.outbox.is_empty(),
            "copied between two steps"
        );
        Some(World {
            broker: self.broker.clone(),
            meta: self.meta.clone(),
            instances,
            net: self.net.clone(),
            next_msg: self.next_msg,
            next_corr: self.next_corr,
            now: self.now,
            config: self.config.clone(),
            scheduled: self.scheduled.clone(),
            drop_acks: self.drop_acks.clone(),
            trace: self.trace.clone(),
            scratch: Vec::new(),
            outbox: Vec::new(),
            actions: self.actions.clone(),
            last_progress: self.last_progress,
            healed_at: self.healed_at,
            steps: self.steps,
            groups: self.groups.clone(),
            markers: self.markers.clone(),
            broker_deadline: self.broker_deadline,
            fetches: self.fetches.clone(),
            held: self.held.clone(),
            brokers_down: self.brokers_down.clone(),
            partitioned: self.partitioned.clone(),
            slowed: self.slowed.clone(),
            overlap: self.overlap,
            follow_ups: self.follow_ups.clone(),
            tracing: self.tracing,
            pct: None,
            exhaustive: self.exhaustive,
            por: self.por.clone(),
            interactive_queries: self.interactive_queries,
        })
    }
}
