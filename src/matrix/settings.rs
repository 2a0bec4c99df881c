//! The design × settings table: every design under the `broker` fault class with the
//! cluster and producer settings it ships with, and with the safe ones and their
//! neighbours; and the README's "what an inventory service must configure", written from
//! the table's cells.

use super::{cell_text, sweep_all, table_header, thousands, FaultClass};
use crate::checker::{Invariant, Probe};
use crate::designs::Registry;
use crate::run::Sweep;
use crate::scenario::{Scenario, SeedRange};
use oversell_sim::protocol::Acks;
use std::collections::BTreeMap;

/// A settings profile: a column of the settings table (`oversell settings`), and
/// `--settings NAME` on the commands that run designs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The designs' own producer settings on Kafka's broker defaults: replication factor 1
    /// (`default.replication.factor`, `ReplicationConfigs.REPLICATION_FACTOR_DEFAULT`;
    /// Kafka Streams' `replication.factor` is -1 since 3.0, KIP-733: the broker's),
    /// `min.insync.replicas` 1 (`ServerLogConfigs.MIN_IN_SYNC_REPLICAS_DEFAULT`), unclean
    /// election off (`LogConfig.DEFAULT_UNCLEAN_LEADER_ELECTION_ENABLE`). Every design
    /// produces with `acks=all` (`ProducerConfig`'s default since 3.0, KIP-679, kept by
    /// Kafka Streams), and so does the order producer.
    AsShipped,
    /// Replication factor 3 with `min.insync.replicas` left at 1.
    MinIsr1,
    /// The safe cluster, but the order producer writes with `acks=1` (which turns its
    /// idempotence off, as in Kafka).
    Acks1,
    /// `acks=all`, replication factor 3, `min.insync.replicas=2`, unclean election off:
    /// the `broker` fault class's own settings.
    Safe,
    /// The safe profile with unclean leader election on.
    SafeUnclean,
}

/// The settings a profile puts on a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub replication_factor: u32,
    pub min_insync_replicas: u32,
    pub unclean_leader_election: bool,
    /// The order producer's `acks` (the designs' Kafka Streams producers keep `acks=all`).
    pub acks: Acks,
}

impl Profile {
    /// The table's columns, in order: Kafka's defaults first, then each safe setting
    /// undone alone, then the safe profile.
    pub const ALL: [Profile; 5] = [
        Profile::AsShipped,
        Profile::MinIsr1,
        Profile::Acks1,
        Profile::Safe,
        Profile::SafeUnclean,
    ];

    /// The name on the command line (`--settings`).
    pub fn flag(self) -> &'static str {
        match self {
            Profile::AsShipped => "as-shipped",
            Profile::MinIsr1 => "min-isr-1",
            Profile::Acks1 => "acks-1",
            Profile::Safe => "safe",
            Profile::SafeUnclean => "safe-unclean",
        }
    }

    /// The column's heading.
    pub fn name(self) -> &'static str {
        match self {
            Profile::AsShipped => "as shipped: RF 1, min ISR 1, acks=all (Kafka's defaults)",
            Profile::MinIsr1 => "RF 3, min ISR 1, acks=all",
            Profile::Acks1 => "RF 3, min ISR 2, order producer acks=1",
            Profile::Safe => "safe: RF 3, min ISR 2, acks=all, unclean off",
            Profile::SafeUnclean => "safe with unclean election on",
        }
    }

    /// Every profile `--settings` takes.
    pub const EVERY: [Profile; 5] = [
        Profile::AsShipped,
        Profile::MinIsr1,
        Profile::Acks1,
        Profile::Safe,
        Profile::SafeUnclean,
    ];

    pub fn parse(text: &str) -> Option<Profile> {
        Profile::EVERY.into_iter().find(|p| p.flag() == text)
    }

    pub fn settings(self) -> Settings {
        let safe = Settings {
            replication_factor: 3,
            min_insync_replicas: 2,
            unclean_leader_election: false,
            acks: Acks::All,
        };
        match self {
            Profile::AsShipped => Settings {
                replication_factor: 1,
                min_insync_replicas: 1,
                ..safe
            },
            Profile::MinIsr1 => Settings {
                min_insync_replicas: 1,
                ..safe
            },
            Profile::Acks1 => Settings {
                acks: Acks::Leader,
                ..safe
            },
            Profile::Safe => safe,
            Profile::SafeUnclean => Settings {
                unclean_leader_election: true,
                ..safe
            },
        }
    }

    /// The scenario under the `broker` fault class, on at least three brokers, with this
    /// profile's settings (the scenario's other cluster timings kept).
    pub fn apply(self, scenario: &Scenario) -> Scenario {
        let mut s = FaultClass::Broker.apply(scenario);
        let settings = self.settings();
        s.cluster.brokers = s.cluster.brokers.max(3);
        s.cluster.replication_factor = Some(settings.replication_factor);
        s.cluster.min_insync_replicas = settings.min_insync_replicas;
        s.cluster.unclean_leader_election = settings.unclean_leader_election;
        s.producer.acks = settings.acks;
        s
    }

    /// The loss the safe setting this profile changes prevents.
    fn guards(self) -> &'static str {
        match self {
            Profile::AsShipped => "a broker lost with the only replica",
            Profile::MinIsr1 => "the ISR shrunk to the leader alone, which then fails",
            Profile::Acks1 => "a leader lost before its followers fetched",
            Profile::Safe => "none",
            Profile::SafeUnclean => "every in-sync replica down, and a stale one elected",
        }
    }

    /// What the profile changes from the safe one, as the setting to configure and the
    /// words for the unsafe value; `None` for the safe profile.
    fn differs(self) -> Option<(&'static str, &'static str)> {
        match self {
            Profile::AsShipped => Some((
                "replication factor 3 (`default.replication.factor`, or Kafka Streams' `replication.factor`, for every topic the services write)",
                "at Kafka's default replication factor 1",
            )),
            Profile::MinIsr1 => Some(("`min.insync.replicas=2`", "with `min.insync.replicas=1`")),
            Profile::Acks1 => Some((
                "`acks=all` on every producer (Kafka's default since 3.0; Kafka Streams keeps it)",
                "with the order producer at `acks=1`",
            )),
            Profile::Safe => None,
            Profile::SafeUnclean => Some((
                "unclean leader election off (`unclean.leader.election.enable=false`, Kafka's default)",
                "with unclean leader election on",
            )),
        }
    }
}

/// Seeds per scenario and cell behind the README's settings table (and `oversell
/// settings`' default): with the nine shipped scenarios, 315 runs per cell. A broker-fault
/// run costs about five times a single-broker one (three brokers' logs, follower fetches,
/// elections): 30 cells at 350 seeds would take about 50 CPU-minutes.
pub const SETTINGS_SEEDS: SeedRange = SeedRange { start: 0, end: 35 };

/// One cell of the settings table.
#[derive(Clone, Debug)]
pub struct SettingsCell {
    pub design: String,
    pub profile: Profile,
    pub sweep: Sweep,
    pub first: BTreeMap<Invariant, (String, u64)>,
}

impl SettingsCell {
    pub fn text(&self) -> String {
        cell_text(
            &self.sweep,
            &self.first,
            &format!("--settings {}", self.profile.flag()),
        )
    }

    /// Runs that lost an acknowledged write, when some did.
    fn lost_writes(&self) -> Option<u64> {
        self.sweep
            .violations
            .get(&Invariant::NoLostWrite)
            .map(|(runs, _)| *runs)
    }
}

/// Run every design of `registry` under the `broker` fault class with every profile.
pub fn settings_in(
    registry: &Registry,
    scenarios: &[Scenario],
    seeds: SeedRange,
    jobs: usize,
    mut progress: impl FnMut(&str),
) -> Vec<SettingsCell> {
    let mut cells = Vec::new();
    for design in registry.iter() {
        for profile in Profile::ALL {
            let (sweep, first) = sweep_all(design, scenarios, seeds, jobs, |s| profile.apply(s));
            progress(&format!("{} × {}", design.name(), profile.name()));
            cells.push(SettingsCell {
                design: design.name().to_string(),
                profile,
                sweep,
                first,
            });
        }
    }
    cells
}

/// The lines above the settings table.
pub fn settings_header(scenarios: &[&str], seeds: SeedRange) -> String {
    table_header(
        &format!("oversell settings --seeds {seeds}"),
        scenarios,
        seeds,
    )
}

/// The settings table as markdown, then the paragraph written from it.
pub fn settings_markdown_in(registry: &Registry, cells: &[SettingsCell]) -> String {
    let columns = Profile::ALL.map(Profile::name);
    let mut out = super::design_table(registry, &columns, |design, column| {
        cells
            .iter()
            .find(|c| c.design == design && c.profile == Profile::ALL[column])
            .map(SettingsCell::text)
            .unwrap_or_default()
    });
    out.push('\n');
    out.push_str(&coverage_line(cells));
    let losers: Vec<(Profile, Vec<(String, u64)>)> = Profile::ALL
        .into_iter()
        .map(|p| {
            let lost = cells
                .iter()
                .filter(|c| c.profile == p)
                .filter_map(|c| Some((c.design.clone(), c.lost_writes()?)))
                .collect();
            (p, lost)
        })
        .collect();
    let runs = cells.first().map_or(0, |c| c.sweep.runs);
    out.push_str(&must_configure(registry.iter().count(), runs, &losers));
    out
}

/// Per column, how often its runs reached the broker faults its settings are about: runs
/// whose broker faults overlapped (`broker-faults-overlap`), and runs in which a replica
/// that had lost unflushed data in a crash was elected leader from the ISR
/// (`lossy-replica-elected`), over every design.
pub fn coverage_line(cells: &[SettingsCell]) -> String {
    let parts: Vec<String> = Profile::ALL
        .into_iter()
        .map(|p| {
            let (mut runs, mut overlap, mut elected) = (0, 0, 0);
            for c in cells.iter().filter(|c| c.profile == p) {
                runs += c.sweep.runs;
                let fired = |probe: Probe| c.sweep.probes.get(&probe).map_or(0, |n| n.runs);
                overlap += fired(Probe::BrokerFaultsOverlap);
                elected += fired(Probe::LossyReplicaElected);
            }
            format!("{} {overlap} and {elected} of {runs}", p.flag())
        })
        .collect();
    format!(
        "Runs whose broker faults overlapped, and runs in which a replica that had lost \
         unflushed data in a crash was elected leader from the ISR, per column over every \
         design: {}.\n\n",
        parts.join("; ")
    )
}

/// "What an inventory service must configure", from the table: per profile, the designs
/// that lost an acknowledged write under it (`losers`), of `designs`. A line per setting
/// of the safe profile, saying what its column's runs showed without it.
pub fn must_configure(
    designs: usize,
    runs: u64,
    losers: &[(Profile, Vec<(String, u64)>)],
) -> String {
    let lost_under = |profile: Profile| -> &[(String, u64)] {
        losers
            .iter()
            .find(|(p, _)| *p == profile)
            .map_or(&[], |(_, l)| l.as_slice())
    };
    let all_runs = thousands(runs * designs as u64);
    let in_runs = |lost: &[(String, u64)]| -> String {
        let sum: u64 = lost.iter().map(|(_, n)| n).sum();
        format!("{} of {all_runs} runs", thousands(sum))
    };
    let mut out = String::from(
        "What an inventory service must configure to keep its acknowledged writes, as the \
         runs above show it (this paragraph is generated with the table):\n\n",
    );
    let safe = lost_under(Profile::Safe);
    for profile in Profile::ALL {
        let Some((setting, without)) = profile.differs() else {
            continue;
        };
        let lost = lost_under(profile);
        let shown = if lost.is_empty() {
            format!(
                "{without}, no design lost an acknowledged write in these runs (their broker \
                 faults overlapping in some, counted above): the loss this setting prevents \
                 ({}) did not happen in them, so the runs neither require nor refute it (see \
                 `scenarios/cluster/` for stories where it matters)",
                profile.guards()
            )
        } else {
            let names: Vec<String> = lost.iter().map(|(d, n)| format!("{d} {n}")).collect();
            format!(
                "{without}, {} of {designs} designs lost acknowledged writes, in {} \
                 (`no-lost-write`: {}), against {} with every safe setting",
                lost.len(),
                in_runs(lost),
                names.join(", "),
                in_runs(safe)
            )
        };
        out.push_str(&format!("- {setting}: {shown}.\n"));
    }
    if safe.is_empty() {
        out.push_str(&format!(
            "\nWith all of them (the safe column) none of the {designs} designs lost an \
             acknowledged write; what else breaks there broke with no acknowledged write lost.\n"
        ));
    } else {
        out.push_str(&format!(
            "\nEven with all of them (the safe column) {} of {designs} designs lost \
             acknowledged writes, in {}: the safe settings hold against one broker failure \
             at a time, not against overlapping ones in which every in-sync replica of a \
             partition loses its unflushed data (this model's controller, like Kafka's \
             without eligible leader replicas, KIP-966, elects the last in-sync replica \
             again with what it kept). A setting whose column lost about as many runs as \
             the safe one is not shown by these runs to matter.\n",
            safe.len(),
            in_runs(safe)
        ));
    }
    out
}
