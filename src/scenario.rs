//! A scenario: the story of a race, as a plain value (loaded from TOML by [`crate::load`]).
//!
//! These types *are* the file format: their serde derives say which keys exist, which
//! are required and what the defaults are. [`crate::load`] reads a file through them and
//! then checks what the types cannot say (references, duplicates, limits, timing rules).

use oversell_sim::protocol::RebalanceProtocol;
use oversell_sim::{FaultRates, Millis, ScheduledFault};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything one run needs besides the design and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, e.g. `last-unit`. The loader defaults it to the file name.
    #[serde(default)]
    pub name: String,
    /// One or two sentences: the story.
    #[serde(default)]
    pub description: String,
    pub products: Vec<Product>,
    #[serde(default)]
    pub orders: Vec<Order>,
    #[serde(default)]
    pub restocks: Vec<Restock>,
    #[serde(default)]
    pub topology: TopologySpec,
    #[serde(default)]
    pub streams: StreamsSpec,
    #[serde(default)]
    pub payments: Payments,
    #[serde(default)]
    pub saga: SagaSpec,
    #[serde(default)]
    pub faults: FaultSpec,
    #[serde(default)]
    pub run: RunSpec,
    #[serde(default)]
    pub kafka: KafkaSpec,
    /// The Kafka cluster: brokers and replication (`[cluster]`). Default: one broker.
    #[serde(default, skip_serializing_if = "ClusterSpec::is_default")]
    pub cluster: ClusterSpec,
    /// The order producer's settings (`[producer]`).
    #[serde(default, skip_serializing_if = "ProducerSpec::is_default")]
    pub producer: ProducerSpec,
    /// Per design name: what it is expected to do over the seed range.
    #[serde(default)]
    pub expect: BTreeMap<String, Expectation>,
    /// Per design name: how each named order and product must end, in every settled run
    /// of the seed range (judged by [`crate::checker::outcomes`]).
    #[serde(default)]
    pub outcomes: BTreeMap<String, Outcomes>,
    /// Per design name: the coverage probes ([`crate::checker::Probe`] names) that must
    /// fire in some run of the seed range; a sweep where one never fired is vacuous and
    /// fails `oversell check`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expect_probes: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: String,
    /// Units in stock at time 0.
    pub stock: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub product: String,
    /// Default 1.
    #[serde(default = "one")]
    pub quantity: u64,
    /// Default `user-<id>`.
    #[serde(default)]
    pub user: Option<String>,
    /// Arrival time in simulated ms.
    #[serde(default)]
    pub at: Millis,
}

impl Order {
    pub fn user_id(&self) -> String {
        self.user
            .clone()
            .unwrap_or_else(|| format!("user-{}", self.id))
    }
}

fn one() -> u64 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    pub product: String,
    pub quantity: u64,
    pub at: Millis,
}

/// Partitions and instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologySpec {
    /// Partitions of every topic. Default 1.
    pub partitions: u32,
    /// Instances of each service (order-service, product-service). Default 1.
    pub instances: u32,
    /// `enable.idempotence` of the producer that writes orders. Default true.
    pub order_producer_idempotent: bool,
}

impl Default for TopologySpec {
    fn default() -> Self {
        TopologySpec {
            partitions: 1,
            instances: 1,
            order_producer_idempotent: true,
        }
    }
}

/// Kafka Streams settings of every service, overriding the kernel's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsSpec {
    pub commit_interval_ms: Option<Millis>,
    pub session_timeout_ms: Option<Millis>,
    pub heartbeat_interval_ms: Option<Millis>,
    pub transaction_timeout_ms: Option<Millis>,
    pub request_timeout_ms: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linger_ms: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_max_wait_ms: Option<Millis>,
    /// `"cooperative"` (the default since Kafka 2.4) or `"eager"` (tasks recreated each time).
    pub rebalance_protocol: Option<RebalanceProtocol>,
    /// State directories across restarts: `persistent` (default: the same process id and
    /// `transactional.id`) or `ephemeral` (`StateDirectory.initializeProcessId` each start).
    #[serde(skip_serializing_if = "StateDir::is_persistent")]
    pub state_dir: StateDir,
}

/// Kafka Streams' state directory across restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateDir {
    #[default]
    Persistent,
    Ephemeral,
}

impl StateDir {
    fn is_persistent(&self) -> bool {
        *self == StateDir::Persistent
    }
}

/// The saga's payment step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Payments {
    /// Orders whose payment fails.
    pub fail: Vec<String>,
    /// Time the payment step takes after the reservation. Default 50.
    pub delay_ms: Millis,
    /// Per order overrides of `delay_ms`.
    pub delays: BTreeMap<String, Millis>,
}

impl Default for Payments {
    fn default() -> Self {
        Payments {
            fail: Vec::new(),
            delay_ms: 50,
            delays: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SagaSpec {
    /// A reservation not confirmed within this is released. Default 1000.
    pub reservation_timeout_ms: Millis,
    /// Wall-clock punctuation interval of the product service. Default 100.
    pub punctuate_every_ms: Millis,
}

impl Default for SagaSpec {
    fn default() -> Self {
        SagaSpec {
            reservation_timeout_ms: 1000,
            punctuate_every_ms: 100,
        }
    }
}

/// Faults: random rates during a fault phase, and an explicit schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Random faults happen before this time; the heal phase follows. Default 0.
    pub phase_ms: Millis,
    #[serde(flatten)]
    pub rates: FaultRates,
    pub schedule: Vec<ScheduledFault>,
    /// Faults only the live mode plays on real processes (`[faults.live]`); the
    /// simulator has no broker processes and no crash points, and ignores them.
    #[serde(skip_serializing_if = "LiveFaults::is_empty")]
    pub live: LiveFaults,
    /// Swarm faults: each run draws its own mix of the random fault rates from ranges
    /// ([`crate::swarm`]), ignoring the rates written here; the schedule still strikes.
    /// The fault phase defaults to the last arrival + 500 ms. Default false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub swarm: bool,
}

/// `[faults.live]`: what `oversell live` plays besides the schedule (`src/live/faults.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveFaults {
    /// Play the first scheduled `crash` of its instance at this point of the service
    /// twin's own processing instead of at its wall time: the instance halts itself
    /// there (a BUGGIFY-style crash point), once per run, and is restarted after the
    /// entry's `restart_after`. The simulator plays the same entry at its `at`.
    pub crash_point: Option<CrashPoint>,
    /// Real broker crashes: SIGKILL of a broker's JVM, restarted on the same log
    /// directory and ports `restart_after` ms later.
    pub broker_crash: Vec<BrokerCrash>,
    /// Per design: every scheduled `pause` strikes whichever instance holds this input
    /// partition's task when the pause is due (its resume follows it), not the instance
    /// it names. The simulator's first member keeps `orders-0` when a second joins; Kafka
    /// Streams 4.x hands it out by process id (`src/live/holder.rs`). The simulator ignores it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pause_holder: BTreeMap<String, TaskInput>,
}

impl LiveFaults {
    pub fn is_empty(&self) -> bool {
        self.crash_point.is_none() && self.broker_crash.is_empty() && self.pause_holder.is_empty()
    }
}

/// `[faults.live] pause_holder`: a task, by one of its input partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub topic: String,
    pub partition: u32,
}

/// A place in a live twin's processing where it can halt itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// Right after a reservation's store write (and its output) reached the broker, and
    /// before the stream thread's next offset commit.
    AfterChangelogBeforeCommit,
}

impl CrashPoint {
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterChangelogBeforeCommit => "after-changelog-before-commit",
        }
    }
}

/// One `[[faults.live.broker_crash]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerCrash {
    pub at: Millis,
    /// The broker's node id, 1..=`--brokers`.
    pub broker: u32,
    pub restart_after: Millis,
}

/// The Kafka being modelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSpec {
    /// Transaction protocol of the coordinator: 1 (before KIP-890 part 2: a late `EndTxn`
    /// can complete the producer's next transaction) or 2 (KIP-890 part 2, the default
    /// since Kafka 4.0: the epoch is bumped at every commit or abort). Default 2.
    pub transaction_version: u8,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: the coordinator's
    /// scan for timed-out transactions runs this often. Default 1000 (Kafka's 10 s, scaled
    /// as the transaction timeout is: Kafka Streams' 10 s, 1000 here).
    #[serde(skip_serializing_if = "is_default_scan")]
    pub abort_scan_interval_ms: Millis,
}

fn is_default_scan(ms: &Millis) -> bool {
    *ms == oversell_sim::broker::DEFAULT_ABORT_SCAN_INTERVAL_MS
}

impl Default for KafkaSpec {
    fn default() -> Self {
        KafkaSpec {
            transaction_version: 2,
            abort_scan_interval_ms: oversell_sim::broker::DEFAULT_ABORT_SCAN_INTERVAL_MS,
        }
    }
}

/// The Kafka cluster (`[cluster]`); see [`oversell_sim::broker::ClusterConfig`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of brokers. Default 1 (no replication).
    pub brokers: u32,
    /// Replicas per partition. Default: `brokers`, at most 3.
    pub replication_factor: Option<u32>,
    /// `min.insync.replicas`. Default 1.
    pub min_insync_replicas: u32,
    /// `unclean.leader.election.enable`. Default false.
    pub unclean_leader_election: bool,
    /// `replica.lag.time.max.ms`. Default 200 (Kafka's 30 s, scaled).
    pub replica_lag_time_max_ms: Millis,
    /// `broker.session.timeout.ms`. Default 60 (Kafka's 9 s, scaled).
    pub broker_session_timeout_ms: Millis,
    /// Partitions of `__transaction_state` (`transaction.state.log.num.partitions`). Default 2.
    pub transaction_state_partitions: u32,
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`). Default 2.
    pub offsets_partitions: u32,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        let c = oversell_sim::broker::ClusterConfig::default();
        ClusterSpec {
            brokers: c.brokers,
            replication_factor: None,
            min_insync_replicas: c.min_insync_replicas,
            unclean_leader_election: c.unclean_leader_election,
            replica_lag_time_max_ms: c.replica_lag_time_max_ms,
            broker_session_timeout_ms: c.broker_session_timeout_ms,
            transaction_state_partitions: c.transaction_state_partitions,
            offsets_partitions: c.offsets_partitions,
        }
    }
}

impl ClusterSpec {
    fn is_default(&self) -> bool {
        *self == ClusterSpec::default()
    }

    /// The broker's settings.
    pub fn config(&self) -> oversell_sim::broker::ClusterConfig {
        oversell_sim::broker::ClusterConfig {
            brokers: self.brokers,
            replication_factor: self.replication_factor.unwrap_or(self.brokers.min(3)),
            min_insync_replicas: self.min_insync_replicas,
            unclean_leader_election: self.unclean_leader_election,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
            broker_session_timeout_ms: self.broker_session_timeout_ms,
            transaction_state_partitions: self.transaction_state_partitions,
            offsets_partitions: self.offsets_partitions,
        }
    }
}

/// The order producer's settings (`[producer]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerSpec {
    /// `acks`: "0", "1" or "all" (default, Kafka's since 3.0). Kafka turns idempotence
    /// off when `acks` is not `all`, and so does the order producer here.
    pub acks: oversell_sim::protocol::Acks,
}

impl ProducerSpec {
    fn is_default(&self) -> bool {
        *self == ProducerSpec::default()
    }
}

/// Seeds and bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    /// Seeds swept by `check` and `explore`, as `A..B` (B excluded). Default `0..100`.
    pub seeds: SeedRange,
    /// Bound on simulated time. Default 60 000.
    pub max_time_ms: Millis,
    /// An order must be decided within this long after it is placed or after the last
    /// fault heals, whichever is later. Default 10 000.
    pub decision_bound_ms: Millis,
    /// How the scheduler picks: `"random"` (the default) or `"pct"` (priority-based, with
    /// `pct_depth - 1` change points among the first `pct_steps` decisions).
    #[serde(skip_serializing_if = "StrategyName::is_random")]
    pub strategy: StrategyName,
    /// PCT's depth d. Default 3.
    #[serde(skip_serializing_if = "is_default_depth")]
    pub pct_depth: u32,
    /// PCT's k: the scheduling decisions change points are drawn among. Default 500.
    #[serde(skip_serializing_if = "is_default_steps")]
    pub pct_steps: u64,
    /// The exhaustive search's bound on crashes per run. Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_crashes: u32,
    /// The exhaustive search's bound on pauses per run. Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_pauses: u32,
    /// The exhaustive search's bound on requests delayed or duplicated per run. Default 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_net_faults: u32,
    /// The exhaustive search's bound on deviations from the default schedule per run
    /// (`src/exhaustive.rs`: every fault placement first with the default schedule, then
    /// with 1, 2, … deviations); none: every schedule. Not with the reduction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deviations: Option<u32>,
    /// The exhaustive search without its partial-order reduction (`--no-reduction`; not
    /// a scenario key).
    #[serde(skip)]
    pub no_reduction: bool,
}

/// The largest bound on deviations a scenario or `--max-deviations` may set.
pub const MAX_DEVIATIONS: u32 = 16;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The scheduler's strategy, by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    #[default]
    Random,
    Pct,
    /// A bounded search over every choice (`src/exhaustive.rs`).
    Exhaustive,
}

impl StrategyName {
    fn is_random(&self) -> bool {
        *self == StrategyName::Random
    }
}

/// PCT's default depth.
pub const PCT_DEPTH: u32 = 3;
/// PCT's default k.
pub const PCT_STEPS: u64 = 500;

fn is_default_depth(d: &u32) -> bool {
    *d == PCT_DEPTH
}

fn is_default_steps(k: &u64) -> bool {
    *k == PCT_STEPS
}

impl RunSpec {
    /// The kernel's strategy for these settings.
    pub fn strategy(&self) -> oversell_sim::Strategy {
        match self.strategy {
            StrategyName::Random => oversell_sim::Strategy::Random,
            StrategyName::Pct => oversell_sim::Strategy::Pct {
                depth: self.pct_depth,
                steps: self.pct_steps,
            },
            StrategyName::Exhaustive => oversell_sim::Strategy::Exhaustive {
                max_crashes: self.max_crashes,
                max_pauses: self.max_pauses,
                max_net_faults: self.max_net_faults,
                // Which option is first must not move under a deviation bound: `reduced`.
                reduce: self.reduced(),
                ordered: self.max_deviations.is_some(),
            },
        }
    }

    /// The exhaustive search's reduction: off by `--no-reduction`, a deviation bound or net faults.
    pub fn reduced(&self) -> bool {
        !self.no_reduction && self.max_deviations.is_none() && self.max_net_faults == 0
    }
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            seeds: SeedRange { start: 0, end: 100 },
            max_time_ms: 60_000,
            decision_bound_ms: 10_000,
            strategy: StrategyName::Random,
            pct_depth: PCT_DEPTH,
            pct_steps: PCT_STEPS,
            max_crashes: 0,
            max_pauses: 0,
            max_net_faults: 0,
            max_deviations: None,
            no_reduction: false,
        }
    }
}

/// A half-open range of seeds, written `A..B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    /// Parses `A..B` (B excluded); on error, what is wrong and what would be right.
    pub fn parse(text: &str) -> Result<SeedRange, String> {
        SeedRange::parse_named(text, "the seed range").map_err(|e| format!("{}; {}", e.0, e.1))
    }

    /// Parses `A..B`; `setting` names it in errors (e.g. `run.seeds`). The error is
    /// (what is wrong, what would be right).
    pub fn parse_named(text: &str, setting: &str) -> Result<SeedRange, (String, String)> {
        let form = "write it as \"A..B\" with B excluded, e.g. \"0..100\"";
        let Some((a, b)) = text.split_once("..") else {
            return Err((format!("{text:?} is not a seed range"), form.into()));
        };
        let inclusive = b.starts_with('=');
        let b = b.trim_start_matches('=');
        let number = |s: &str| -> Result<u64, (String, String)> {
            s.trim().replace('_', "").parse::<u64>().map_err(|_| {
                (
                    format!("{s:?} in {setting} is not a seed number"),
                    "seeds are whole numbers 0 or more: write \"A..B\", e.g. \"0..100\"".into(),
                )
            })
        };
        let (start, end) = (number(a)?, number(b)?);
        if inclusive {
            let help = match end.checked_add(1) {
                Some(e) if e > start => format!("the end is excluded: write \"{start}..{e}\""),
                _ => form.into(),
            };
            return Err((format!("{setting} {text:?} uses ..="), help));
        }
        if end <= start {
            let help = match start.checked_add(1) {
                Some(e) if end == start => {
                    format!("the end is excluded: write \"{start}..{e}\" to run seed {start} alone")
                }
                None if end == start => {
                    "the end is excluded and must be greater than the start".into()
                }
                _ => format!("the end must be greater than the start: write \"{end}..{start}\""),
            };
            return Err((format!("the seed range {start}..{end} is empty"), help));
        }
        Ok(SeedRange { start, end })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn iter(&self) -> std::ops::Range<u64> {
        self.start..self.end
    }
}

impl std::fmt::Display for SeedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl Serialize for SeedRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SeedRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SeedRange::parse_named(&text, "run.seeds").map_err(|e| serde::de::Error::custom(e.0))
    }
}

/// What a design is expected to do over a scenario's seed range: the exact set of
/// invariants that some run violates (empty: the design holds). Written `"holds"` or
/// `{ violates = ["invariant", ...], hazards = ["late-end-txn"] }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expectation {
    pub violates: Vec<String>,
    /// Known platform hazards the expectation relies on being closed ([`Hazard`] names):
    /// the loader refuses the expectation unless the scenario runs under the setting that
    /// closes each one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hazards: Vec<String>,
}

/// The table form of an [`Expectation`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectationTable {
    #[serde(default)]
    violates: Vec<String>,
    #[serde(default)]
    hazards: Vec<String>,
}

/// A known platform hazard an expectation can depend on, and the setting that closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hazard {
    /// A late `EndTxn` completes the producer's *next* transaction (transaction protocol
    /// v1); closed by KIP-890 part 2 (`[kafka] transaction_version = 2`).
    LateEndTxn,
}

impl Hazard {
    pub const ALL: [Hazard; 1] = [Hazard::LateEndTxn];

    pub fn name(self) -> &'static str {
        match self {
            Hazard::LateEndTxn => "late-end-txn",
        }
    }

    pub fn parse(name: &str) -> Option<Hazard> {
        Hazard::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Whether the scenario runs under the setting that closes the hazard.
    pub fn closed_in(self, scenario: &Scenario) -> bool {
        match self {
            Hazard::LateEndTxn => scenario.kafka.transaction_version >= 2,
        }
    }

    /// The setting that closes it, as written in a scenario file.
    pub fn closing_setting(self) -> &'static str {
        match self {
            Hazard::LateEndTxn => "[kafka] transaction_version = 2",
        }
    }
}

/// How a design's runs must end, order by order and product by product.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outcomes {
    pub orders: BTreeMap<String, OrderOutcome>,
    pub products: BTreeMap<String, ProductOutcome>,
}

impl Outcomes {
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.products.is_empty()
    }
}

/// How one order must end: its decision (one of a list), and whether its units were
/// released (a committed release of everything it held).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderOutcome {
    pub decision: Option<Decisions>,
    pub released: Option<bool>,
}

/// How one product must end: units available per its stores' committed changelogs, and
/// units held per the committed events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductOutcome {
    pub available: Option<i64>,
    pub held: Option<u64>,
}

/// An order's committed decision, in words common to every design: `accepted` (a
/// `ProductReserved`, an `OrderValidation` PASS, an `OrderConfirmed`), `rejected` (an
/// `OrderRejected`, an `OrderValidation` FAIL, an `OrderCancelled`), or `undecided`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Accepted,
    Rejected,
    Undecided,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
            Decision::Undecided => "undecided",
        }
    }
}

/// One acceptable decision, or a list of them: `"rejected"` or `["accepted", "rejected"]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Decisions(pub Vec<Decision>);

impl<'de> Deserialize<'de> for Decisions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DecisionsVisitor)
    }
}

struct DecisionsVisitor;

impl<'de> serde::de::Visitor<'de> for DecisionsVisitor {
    type Value = Decisions;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"accepted\", \"rejected\", \"undecided\" or a list of them")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Decisions, E> {
        use serde::de::IntoDeserializer;
        let one = Decision::deserialize(s.into_deserializer())?;
        Ok(Decisions(vec![one]))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Decisions, A::Error> {
        let all = Vec::<Decision>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Decisions(all))
    }
}

impl<'de> Deserialize<'de> for Expectation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ExpectationVisitor)
    }
}

struct ExpectationVisitor;

impl<'de> serde::de::Visitor<'de> for ExpectationVisitor {
    type Value = Expectation;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"holds\" or { violates = [...] }")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Expectation, E> {
        if s == "holds" {
            return Ok(Expectation {
                violates: Vec::new(),
                hazards: Vec::new(),
            });
        }
        Err(E::invalid_value(serde::de::Unexpected::Str(s), &self))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Expectation, A::Error> {
        let t = ExpectationTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Expectation {
            violates: t.violates,
            hazards: t.hazards,
        })
    }
}

impl Expectation {
    pub fn holds(&self) -> bool {
        self.violates.is_empty()
    }
}

impl Scenario {
    /// Time of the last order or restock.
    pub fn last_arrival(&self) -> Millis {
        let o = self.orders.iter().map(|o| o.at).max().unwrap_or(0);
        let r = self.restocks.iter().map(|r| r.at).max().unwrap_or(0);
        o.max(r)
    }

    /// Units ever put in stock for a product: initial stock plus restocks.
    pub fn units_in(&self, product: &str) -> u64 {
        let initial = self
            .products
            .iter()
            .filter(|p| p.id == product)
            .map(|p| p.stock)
            .sum::<u64>();
        initial
            + self
                .restocks
                .iter()
                .filter(|r| r.product == product)
                .map(|r| r.quantity)
                .sum::<u64>()
    }
}
