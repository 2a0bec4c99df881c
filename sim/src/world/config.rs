//! Settings of a run: random fault rates, the explicit fault schedule, bounds.

use crate::protocol::Millis;
use serde::{Deserialize, Serialize};

/// Random faults. Rates are per mille; durations are inclusive ranges in ms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    /// Chance per scheduler step that a running instance crashes. Default 0.
    pub crash: u32,
    /// Chance per scheduler step that a running instance pauses. Default 0.
    pub pause: u32,
    /// Chance per delivery that the message is lost. Default 0.
    pub drop: u32,
    /// Chance per delivery that the message is delivered twice. Default 0.
    pub duplicate: u32,
    /// Chance per delivery that the message is held back. Default 0.
    pub delay: u32,
    /// Downtime of a crashed instance before it restarts. Default 50..=400.
    pub restart_after: (Millis, Millis),
    /// Length of a pause. Default 200..=1500 (past the default session timeout).
    pub pause_for: (Millis, Millis),
    /// How long a delayed message is held. Default 10..=300.
    pub delay_for: (Millis, Millis),
    /// Chance per scheduler step that a broker crashes (several brokers only; one at a
    /// time: only while every broker is up and every ISR is full). Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub broker_crash: u32,
    /// Chance that a broker crash also loses the broker's unflushed log suffix (a power
    /// loss: each of its replica logs keeps a prefix the seed chooses). Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub fsync_loss: u32,
    /// Downtime of a crashed broker before it restarts. Default 50..=400.
    #[serde(skip_serializing_if = "is_default_broker_restart")]
    pub broker_restart_after: (Millis, Millis),
    /// Chance per scheduler step that a network partition cuts a broker off from the
    /// other brokers and the controller, from the clients, or both (one of the three,
    /// drawn; several brokers only; one broker fault at a time). Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub broker_partition: u32,
    /// Length of a broker's network partition. Default 50..=400.
    #[serde(skip_serializing_if = "is_default_broker_restart")]
    pub broker_partition_for: (Millis, Millis),
    /// Chance per scheduler step that a broker's follower fetches stall for a while (a
    /// slow follower; several brokers only; one broker fault at a time). Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub slow_follower: u32,
    /// How long a slow follower's fetches stall. Default 100..=600 (past the default
    /// `replica_lag_time_max_ms`, so that it can leave the ISR).
    #[serde(skip_serializing_if = "is_default_slow_for")]
    pub slow_follower_for: (Millis, Millis),
    /// The upper end of a run's chance, per mille, that a random broker fault brings a
    /// second one before it heals (several brokers only). Each run draws a coin (tails:
    /// one broker fault at a time) and on heads its chance in `1..=broker_overlap`; the
    /// second fault strikes at a time drawn up to the first's heal, of a kind drawn in
    /// proportion to the kinds' rates, on a broker still intact, and may bring its own.
    /// Default 0: one at a time.
    #[serde(skip_serializing_if = "is_zero")]
    pub broker_overlap: u32,
}

fn is_default_slow_for(r: &(Millis, Millis)) -> bool {
    *r == DEFAULT_SLOW_FOLLOWER
}

const DEFAULT_SLOW_FOLLOWER: (Millis, Millis) = (100, 600);

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_default_broker_restart(r: &(Millis, Millis)) -> bool {
    *r == DEFAULT_BROKER_RESTART
}

const DEFAULT_BROKER_RESTART: (Millis, Millis) = (50, 400);

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            crash: 0,
            pause: 0,
            drop: 0,
            duplicate: 0,
            delay: 0,
            restart_after: (50, 400),
            pause_for: (200, 1500),
            delay_for: (10, 300),
            broker_crash: 0,
            fsync_loss: 0,
            broker_restart_after: DEFAULT_BROKER_RESTART,
            broker_partition: 0,
            broker_partition_for: DEFAULT_BROKER_RESTART,
            slow_follower: 0,
            slow_follower_for: DEFAULT_SLOW_FOLLOWER,
            broker_overlap: 0,
        }
    }
}

impl FaultRates {
    /// The random fault kinds, by their scenario key (`[faults]`), with their rate: the
    /// one list that the loader and the shrinker iterate. A new kind is a field and a
    /// line here.
    pub fn named(&self) -> [(&'static str, u32); 10] {
        [
            ("crash", self.crash),
            ("pause", self.pause),
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("delay", self.delay),
            ("broker_crash", self.broker_crash),
            ("fsync_loss", self.fsync_loss),
            ("broker_partition", self.broker_partition),
            ("slow_follower", self.slow_follower),
            ("broker_overlap", self.broker_overlap),
        ]
    }

    /// [`FaultRates::named`], each rate mutable.
    pub fn named_mut(&mut self) -> [(&'static str, &mut u32); 10] {
        [
            ("crash", &mut self.crash),
            ("pause", &mut self.pause),
            ("drop", &mut self.drop),
            ("duplicate", &mut self.duplicate),
            ("delay", &mut self.delay),
            ("broker_crash", &mut self.broker_crash),
            ("fsync_loss", &mut self.fsync_loss),
            ("broker_partition", &mut self.broker_partition),
            ("slow_follower", &mut self.slow_follower),
            ("broker_overlap", &mut self.broker_overlap),
        ]
    }

    pub fn any(&self) -> bool {
        self.named().iter().any(|(_, rate)| *rate > 0)
    }

    /// Whether any network fault (drop, duplicate, delay) may strike a delivery.
    pub fn network(&self) -> bool {
        self.drop + self.duplicate + self.delay > 0
    }
}

/// A fault at a fixed time, from a scenario's explicit schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduledFault {
    /// Crash an instance at `at`; it restarts `restart_after` ms later.
    Crash {
        at: Millis,
        instance: String,
        restart_after: Millis,
    },
    /// Pause an instance at `at` for `duration` ms (a zombie if longer than its session timeout).
    Pause {
        at: Millis,
        instance: String,
        duration: Millis,
    },
    /// Lose the next `count` produce acknowledgements sent to an instance after `at`.
    DropProduceAck {
        at: Millis,
        instance: String,
        count: u32,
    },
    /// Crash broker `broker` at `at` (several brokers only); it restarts `restart_after`
    /// ms later. With `lose_unflushed`, its logs lose their unflushed suffix: each keeps a
    /// prefix the seed chooses.
    BrokerCrash {
        at: Millis,
        broker: u32,
        restart_after: Millis,
        #[serde(default)]
        lose_unflushed: bool,
    },
    /// Partition broker `broker` at `at` for `duration` ms (several brokers only) from the
    /// other brokers and the controller (`from_brokers`, default true), from the clients
    /// (`from_clients`, default false), or both.
    BrokerPartition {
        at: Millis,
        broker: u32,
        duration: Millis,
        #[serde(default = "yes")]
        from_brokers: bool,
        #[serde(default)]
        from_clients: bool,
    },
    /// Stall broker `broker`'s follower fetches at `at` for `duration` ms (several
    /// brokers only): a slow follower.
    SlowFollower {
        at: Millis,
        broker: u32,
        duration: Millis,
    },
}

fn yes() -> bool {
    true
}

impl ScheduledFault {
    pub fn at(&self) -> Millis {
        match self {
            ScheduledFault::Crash { at, .. }
            | ScheduledFault::Pause { at, .. }
            | ScheduledFault::DropProduceAck { at, .. }
            | ScheduledFault::BrokerCrash { at, .. }
            | ScheduledFault::BrokerPartition { at, .. }
            | ScheduledFault::SlowFollower { at, .. } => *at,
        }
    }
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Random faults happen only before this time (the fault phase); after it, the heal
    /// phase. Default 0 (no random faults).
    pub fault_phase_ms: Millis,
    pub rates: FaultRates,
    pub scheduled: Vec<ScheduledFault>,
    /// The run may stop once quiescent, but not before this time. Default 0.
    pub settle_until: Millis,
    /// Quiescent means: no append or processing for this long, at least this long after
    /// the last fault healed, with every client idle and no consumer group rebalancing.
    /// Keep it above the clients' session timeouts, so that a crashed incarnation's
    /// group member has expired (and its partitions moved) before the run may end.
    /// Default 500.
    pub quiet_ms: Millis,
    /// Hard bound on simulated time. Default 60 000.
    pub max_time: Millis,
    /// Hard bound on scheduler steps. Default 2 000 000.
    pub max_steps: u64,
    /// Kafka Streams' state directories do not survive a restart (`[streams] state_dir =
    /// "ephemeral"`): every start of an instance draws a process id from the run's chooser
    /// and hands it to its clients ([`crate::client::Client::set_process_id`]). Default
    /// false (persistent: the process id, and so the `transactional.id`, is the instance's).
    pub ephemeral_state_dirs: bool,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            fault_phase_ms: 0,
            rates: FaultRates::default(),
            scheduled: Vec::new(),
            settle_until: 0,
            quiet_ms: 500,
            max_time: 60_000,
            max_steps: 2_000_000,
            ephemeral_state_dirs: false,
        }
    }
}
