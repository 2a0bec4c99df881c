//! The network: messages in flight between clients and the broker, and what the network
//! may do to them during the fault phase (drop, duplicate, delay).
//!
//! Every request goes to the broker, every response to the client that sent the request,
//! addressed to its incarnation: a response to a dead incarnation is dropped at delivery.
//! A request may still arrive after its sender crashed, as on a real network.

use super::brokers::Held;
use super::faults::pick_range;
use super::instances::Status;
use super::{Action, World};
use crate::broker::Handled;
use crate::choice::{Chooser, ReplayDiverged};
use crate::client::ClientId;
use crate::protocol::{Millis, Request, Response};
use crate::streams::request_label;
use crate::trace::{Event, Label, Peer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    Broker,
    Client {
        instance: usize,
        client: usize,
        incarnation: u32,
    },
}

#[derive(Clone, Debug)]
pub(super) enum Payload {
    Request(Request),
    Response(Response),
}

#[derive(Clone, Debug)]
pub(super) struct Message {
    pub(super) deliver_at: Millis,
    pub(super) from: Endpoint,
    pub(super) to: Endpoint,
    pub(super) corr: u64,
    pub(super) payload: Payload,
    what: Label,
    /// The client at the other end from the broker.
    client: ClientId,
    /// Under the exhaustive strategy: a hash of what it carries, from where to where and
    /// when (its id and correlation id left out), for its delivery's key in the reduction
    /// and for the world's fingerprint.
    pub(super) content: u64,
}

impl Message {
    /// The client end of the message: the one whose lane awaits its answer.
    pub(super) fn lane_end(&self) -> Endpoint {
        match self.to {
            Endpoint::Broker => self.from,
            Endpoint::Client { .. } => self.to,
        }
    }

    /// A message's own invariant: requests go to the broker, responses to clients.
    fn well_addressed(&self) -> bool {
        matches!(
            (&self.from, &self.to, &self.payload),
            (
                Endpoint::Client { .. },
                Endpoint::Broker,
                Payload::Request(_)
            ) | (
                Endpoint::Broker,
                Endpoint::Client { .. },
                Payload::Response(_)
            )
        )
    }
}

/// What the network did to a message about to be delivered.
enum Fate {
    Deliver,
    Dropped,
    Delayed,
}

impl World {
    /// Push a delivery action for every message due now whose receiver can take it.
    pub(super) fn collect_deliveries(&mut self) {
        for (id, m) in &self.net {
            if m.deliver_at > self.now {
                continue;
            }
            if let Endpoint::Client { instance, .. } = m.to {
                if matches!(self.instances[instance].status, Status::Paused { .. }) {
                    continue;
                }
            }
            self.actions.push(Action::Deliver(*id));
        }
    }

    /// Deliver message `id` (due now), unless a network fault strikes it first.
    pub(super) fn deliver(
        &mut self,
        id: u64,
        chooser: &mut Chooser,
        choice: u64,
    ) -> Result<(), ReplayDiverged> {
        assert!(
            self.net.get(&id).is_some_and(|m| m.deliver_at <= self.now),
            "delivering message {id} that is not due"
        );
        let to_broker = self.net.get(&id).is_some_and(|m| m.to == Endpoint::Broker);
        if self.exhaustive.is_some() && to_broker && self.in_fault_phase() {
            if self.exhaustive_net_fault(id, chooser, choice)? {
                return Ok(());
            }
        } else if self.in_fault_phase() && self.config.rates.network() {
            match self.network_fault(id, chooser, choice)? {
                Fate::Deliver => {}
                Fate::Dropped | Fate::Delayed => return Ok(()),
            }
        }
        let m = self.net.remove(&id).expect("message in flight");
        debug_assert!(m.well_addressed());
        match m.to {
            Endpoint::Broker => self.deliver_to_broker(id, m, choice),
            Endpoint::Client { .. } => self.deliver_to_client(id, m, choice),
        }
        Ok(())
    }

    /// Random network faults, in a fixed order of draws: drop, else delay, else duplicate.
    fn network_fault(
        &mut self,
        id: u64,
        chooser: &mut Chooser,
        choice: u64,
    ) -> Result<Fate, ReplayDiverged> {
        let rates = self.config.rates.clone();
        if chooser.chance(rates.drop)? {
            let m = self.net.remove(&id).expect("message in flight");
            self.record(choice, Event::Drop { id, what: m.what });
            return Ok(Fate::Dropped);
        }
        if chooser.chance(rates.delay)? {
            let d = pick_range(chooser, rates.delay_for)?;
            self.delay_message(id, self.now + d, choice);
            return Ok(Fate::Delayed);
        }
        if chooser.chance(rates.duplicate)? {
            self.duplicate_message(id, choice);
        }
        Ok(Fate::Deliver)
    }

    /// Message `id` is delivered at `until` instead of now.
    pub(super) fn delay_message(&mut self, id: u64, until: Millis, choice: u64) {
        let m = self.net.get_mut(&id).expect("message in flight");
        m.deliver_at = until;
        let what = m.what.clone();
        self.record(choice, Event::Delay { id, until, what });
    }

    /// A copy of message `id` stays in flight, under the next message id.
    pub(super) fn duplicate_message(&mut self, id: u64, choice: u64) {
        let copy = self.next_msg;
        self.next_msg += 1;
        let m = self.net.get(&id).expect("message in flight").clone();
        let what = m.what.clone();
        self.net.insert(copy, m);
        self.record(choice, Event::Duplicate { id, copy, what });
    }

    fn deliver_to_broker(&mut self, id: u64, m: Message, choice: u64) {
        let Payload::Request(request) = m.payload else {
            unreachable!("only requests go to the broker")
        };
        if let Request::JoinGroup { group, .. } = &request {
            if !self.groups.contains(group) {
                self.groups.insert(group.clone());
            }
        }
        self.record(
            choice,
            Event::Deliver {
                id,
                from: Peer::Client(ClientId::clone(&m.client)),
                to: Peer::Broker,
                what: m.what.clone(),
            },
        );
        let request_kind = if matches!(request, Request::FetchMany { .. }) {
            RequestKind::Fetch
        } else {
            RequestKind::Other
        };
        let handled = self
            .broker
            .handle_request(self.now, &m.client, request, &mut self.scratch);
        match handled {
            Handled::Now(response) => {
                self.broker_deadline = self.broker.next_deadline();
                let what = m.what.reply();
                self.enqueue(
                    Endpoint::Broker,
                    m.from,
                    m.corr,
                    Payload::Response(response),
                    what,
                    m.client,
                );
                self.flush_scratch(choice);
                if self.broker.holds_fetches() {
                    // What this request appended or committed may complete a held fetch.
                    self.after_broker_change(choice);
                }
            }
            Handled::Delayed(id) => {
                let held = Held {
                    to: m.from,
                    corr: m.corr,
                    fetch: matches!(request_kind, RequestKind::Fetch),
                    what: m.what,
                    client: m.client,
                };
                self.held.insert(id, held);
                self.after_broker_change(choice);
            }
            Handled::Never => self.after_broker_change(choice),
        }
    }

    fn deliver_to_client(&mut self, id: u64, m: Message, choice: u64) {
        let (
            Endpoint::Client {
                instance,
                client,
                incarnation,
            },
            Payload::Response(response),
        ) = (m.to, m.payload)
        else {
            unreachable!("only responses go to clients")
        };
        let inst = &self.instances[instance];
        if inst.incarnation != incarnation || inst.status != Status::Up {
            let what = m.what.with_note("receiver gone");
            self.record(choice, Event::Drop { id, what });
            return;
        }
        if matches!(response, Response::Produce(_)) && self.scheduled_ack_drop(instance) {
            let what = m.what.with_note("scheduled");
            self.record(choice, Event::Drop { id, what });
            return;
        }
        let to = Peer::Client(ClientId::clone(&m.client));
        let what = m.what;
        let from = Peer::Broker;
        self.record(choice, Event::Deliver { id, from, to, what });
        self.with_client(instance, client, |c, env| {
            c.on_response(m.corr, response, env)
        });
        self.flush_scratch(choice);
        self.flush_outbox(instance, client);
    }

    pub(super) fn enqueue(
        &mut self,
        from: Endpoint,
        to: Endpoint,
        corr: u64,
        payload: Payload,
        what: Label,
        client: ClientId,
    ) {
        let id = self.next_msg;
        self.next_msg += 1;
        if self.exhaustive.is_some() && self.is_dead(to) {
            // A response to a dead incarnation is dropped at its delivery; the exhaustive
            // search drops it at once, so that a crash and the delivery of a request the
            // crashed incarnation sent commute (world/por.rs): either order leaves no
            // response in flight.
            let what = what.with_note("receiver gone");
            self.scratch.push(Event::Drop { id, what });
            return;
        }
        // Under the exhaustive strategy (the reduction's action keys, the fingerprint).
        let content = match self.exhaustive {
            Some(_) => super::por::content_key(self.now, from, to, &payload),
            None => 0,
        };
        let message = Message {
            deliver_at: self.now,
            from,
            to,
            corr,
            payload,
            what,
            client,
            content,
        };
        debug_assert!(message.well_addressed());
        let previous = self.net.insert(id, message);
        assert!(previous.is_none(), "message id {id} reused");
    }

    /// Whether `to` is a client's dead incarnation (crashed, or restarted since).
    fn is_dead(&self, to: Endpoint) -> bool {
        let Endpoint::Client {
            instance,
            incarnation,
            ..
        } = to
        else {
            return false;
        };
        let inst = &self.instances[instance];
        incarnation < inst.incarnation
            || (incarnation == inst.incarnation && matches!(inst.status, Status::Down { .. }))
    }

    /// Put the requests a client just sent on the wire.
    pub(super) fn flush_outbox(&mut self, instance: usize, client: usize) {
        if self.outbox.is_empty() {
            return;
        }
        let incarnation = self.instances[instance].incarnation;
        let from = Endpoint::Client {
            instance,
            client,
            incarnation,
        };
        let name = self.instances[instance].clients[client]
            .as_ref()
            .expect("client present")
            .id()
            .clone();
        // Move the requests out (keeping the buffer's capacity for the next step).
        let mut out = std::mem::take(&mut self.outbox);
        for (corr, request) in out.drain(..) {
            let what = request_label(&request);
            self.enqueue(
                from,
                Endpoint::Broker,
                corr,
                Payload::Request(request),
                what,
                name.clone(),
            );
        }
        self.outbox = out;
    }

    /// The network's invariants, between two scheduler steps.
    pub(super) fn check_network(&self) {
        for (id, m) in &self.net {
            assert!(*id < self.next_msg, "message {id} beyond the id counter");
            assert!(m.well_addressed(), "message {id} badly addressed");
            if let Endpoint::Client {
                instance,
                incarnation,
                ..
            } = m.to
            {
                assert!(
                    incarnation <= self.instances[instance].incarnation,
                    "message {id} to an incarnation not yet born"
                );
            }
        }
    }
}

/// Whether a request the broker holds is a fetch (see [`Held::fetch`]).
enum RequestKind {
    Fetch,
    Other,
}
