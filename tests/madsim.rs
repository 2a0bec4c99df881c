//! The madsim driver: the designs as async services, judged by the same checker, with
//! the same verdicts as the simulator's driver; same seed, same trace.
#![cfg(madsim)]

use oversell::checker::{check, Invariant};
use oversell::madsim_driver::{run_seed, run_service_seed, simulate, NetFaults, Service};
use oversell::run::{self, Status};
use oversell::{Registry, Scenario};
use oversell_sim::protocol::RebalanceProtocol;
use oversell_sim::{Event, Outcome, ScheduledFault};
use std::collections::BTreeSet;
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    oversell::load::load_file(&path).expect("a shipped scenario loads")
}

fn reproduce(name: &str, design: &str) -> String {
    format!(
        "MADSIM_TEST_SEED={} cargo test --test madsim (or: oversell run scenarios/{name}.toml --design {design} --seed {} --driver madsim)",
        seed(),
        seed()
    )
}

fn seed() -> u64 {
    madsim::runtime::Handle::current().seed()
}

/// One run inside the test's own madsim runtime (seed: MADSIM_TEST_SEED).
async fn judged(
    name: &str,
    design: &str,
    net: &NetFaults,
    edit: impl Fn(&mut Scenario),
) -> (BTreeSet<Invariant>, Outcome, oversell_sim::Trace) {
    let registry = Registry::builtin();
    let d = registry.get(design).expect("a built-in design");
    let mut s = scenario(name);
    edit(&mut s);
    let r = simulate(d, &s, net).await;
    let verdict = check(&d.schema(), &r, s.run.decision_bound_ms);
    if r.outcome != Outcome::Quiescent {
        // What the run was doing when it hit its bound, for the reader of a failure.
        for rec in r.trace.records.iter().rev().take(40).rev() {
            eprintln!("{:>6}ms {}", rec.time, rec.event);
        }
    }
    assert!(
        verdict.kernel_bugs.is_empty(),
        "kernel bugs {:?}; reproduce: {}",
        verdict.kernel_bugs,
        reproduce(name, design)
    );
    (
        verdict.violations.iter().map(|v| v.invariant).collect(),
        r.outcome,
        r.trace,
    )
}

#[madsim::test]
async fn naive_on_last_unit_breaks_at_most_what_the_simulator_breaks() {
    let (violated, outcome, _) = judged("last-unit", "naive", &NetFaults::default(), |_| {}).await;
    assert_eq!(
        outcome,
        Outcome::Quiescent,
        "reproduce: {}",
        reproduce("last-unit", "naive")
    );
    let allowed = BTreeSet::from([Invariant::NoOversell, Invariant::Conservation]);
    assert!(
        violated.is_subset(&allowed),
        "naive broke {violated:?}; reproduce: {}",
        reproduce("last-unit", "naive")
    );
}

#[madsim::test]
async fn rekeyed_eos_holds_on_last_unit() {
    let (violated, outcome, _) =
        judged("last-unit", "rekeyed-eos", &NetFaults::default(), |_| {}).await;
    assert_eq!(
        outcome,
        Outcome::Quiescent,
        "reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
    assert!(
        violated.is_empty(),
        "rekeyed-eos broke {violated:?}; reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
}

#[madsim::test]
async fn rekeyed_eos_holds_through_a_crash_loss_and_a_clogged_node() {
    let net = NetFaults {
        packet_loss_rate: 0.05,
        latency_ms: (1, 20),
        clog: Some(("product-service-0".into(), 300, 700)),
    };
    let crash = |s: &mut Scenario| {
        s.faults.schedule.push(ScheduledFault::Crash {
            at: 105,
            instance: "product-service-0".into(),
            restart_after: 200,
        });
    };
    let (violated, outcome, trace) = judged("last-unit", "rekeyed-eos", &net, crash).await;
    assert_eq!(
        outcome,
        Outcome::Quiescent,
        "reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
    assert!(
        violated.is_empty(),
        "rekeyed-eos broke {violated:?} under faults; reproduce: {}",
        reproduce("last-unit", "rekeyed-eos")
    );
    // The faults struck: the instance was killed and restarted.
    let has = |what: fn(&Event) -> bool| trace.records.iter().any(|r| what(&r.event));
    assert!(has(|e| matches!(e, Event::Crash { .. })), "no crash");
    assert!(has(|e| matches!(e, Event::Restart { .. })), "no restart");
}

/// The saga's two services as async services (OrderService and ProductService running
/// the sans-IO design's processors, `src/madsim_driver/streams.rs`): order1's payment
/// fails and its reservation is released, order3 gets the released unit; with
/// product-service-0 killed (as the scenario schedules) and order-service-0 killed too,
/// each restarted node restores its store from its changelog and the saga holds.
#[madsim::test]
async fn saga_holds_on_payment_failure_through_the_kill_of_both_services_nodes() {
    let name = "saga-payment-failure";
    let kill = |s: &mut Scenario| {
        s.faults.schedule.push(ScheduledFault::Crash {
            at: 450,
            instance: "order-service-0".into(),
            restart_after: 250,
        });
    };
    let (violated, outcome, trace) = judged(name, "saga", &NetFaults::default(), kill).await;
    let again = || reproduce(name, "saga");
    assert_eq!(outcome, Outcome::Quiescent, "reproduce: {}", again());
    assert!(
        violated.is_empty(),
        "broke {violated:?}; reproduce: {}",
        again()
    );
    let has = |what: &dyn Fn(&Event) -> bool| trace.records.iter().any(|r| what(&r.event));
    for instance in ["order-service-0", "product-service-0"] {
        let killed = |e: &Event| matches!(e, Event::Crash { instance: i } if i == instance);
        assert!(has(&killed), "{instance} killed; reproduce: {}", again());
        // After its restart the instance restored its store from a changelog holding
        // what it had written before it was killed.
        let restored = |e: &Event| {
            matches!(e, Event::Restored { client, records, .. }
                if client.instance == instance && *records > 0)
        };
        assert!(
            has(&restored),
            "{instance} restored; reproduce: {}",
            again()
        );
    }
    // The compensation ran: order1's unit released, order3 confirmed with it.
    let outcome_of = |order: &str, kind: &str| {
        has(&|e: &Event| {
            matches!(e, Event::Append { tp, key, value, .. }
                if tp.topic == "order-outcomes"
                    && key.as_deref() == Some(order)
                    && value.as_deref().is_some_and(|v| v.contains(kind)))
        })
    };
    assert!(
        outcome_of("order1", "OrderCancelled"),
        "reproduce: {}",
        again()
    );
    assert!(
        outcome_of("order3", "OrderConfirmed"),
        "reproduce: {}",
        again()
    );
}

/// A replicated cluster is one madsim node per broker: the scheduled crash of the
/// transaction coordinator's broker, then of the group coordinator's, kills their nodes
/// and crashes them in the model; the clients, routed to the leader or coordinator by
/// their metadata, meet `NOT_COORDINATOR` or an unanswered request, refresh their metadata
/// and retry on the new coordinator. `rekeyed-eos` breaks no safety invariant; on some
/// seeds an order is never decided (`CLUSTER_DIFFER` says why).
#[madsim::test]
async fn rekeyed_eos_stays_safe_when_the_coordinators_brokers_are_killed() {
    let name = "cluster/coordinator-failover";
    let (violated, outcome, trace) =
        judged(name, "rekeyed-eos", &NetFaults::default(), |_| {}).await;
    let again = || reproduce(name, "rekeyed-eos");
    assert_eq!(outcome, Outcome::Quiescent, "reproduce: {}", again());
    let allowed = BTreeSet::from([Invariant::EventualDecision]);
    assert!(
        violated.is_subset(&allowed),
        "broke {violated:?}; reproduce: {}",
        again()
    );
    let has = |what: &dyn Fn(&Event) -> bool| trace.records.iter().any(|r| what(&r.event));
    for b in [1, 2] {
        let crashed = |e: &Event| matches!(e, Event::BrokerCrashed { broker, .. } if *broker == b);
        let restarted = |e: &Event| matches!(e, Event::BrokerRestarted { broker } if *broker == b);
        assert!(has(&crashed), "broker {b} crashed; reproduce: {}", again());
        assert!(
            has(&restarted),
            "broker {b} restarted; reproduce: {}",
            again()
        );
    }
    // Requests went to a broker that was not (or no longer) the one: re-routed.
    let rerouted = |e: &Event| {
        matches!(e, Event::ClientError { what, .. }
            if what.contains("metadata refreshed") || what.contains("unanswered"))
    };
    assert!(
        has(&rerouted),
        "no request was re-routed; reproduce: {}",
        again()
    );
}

/// Same seed, same trace, byte for byte (two runtimes of their own).
#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    let registry = Registry::builtin();
    let s = scenario("last-unit");
    let cluster = scenario("cluster/coordinator-failover");
    let saga = scenario("saga-payment-failure");
    for (s, design) in [
        (&s, "naive"),
        (&s, "rekeyed-eos"),
        (&cluster, "rekeyed-eos"),
        (&saga, "saga"),
    ] {
        let d = registry.get(design).unwrap();
        let a = run_seed(d, s, 7, &NetFaults::default());
        let b = run_seed(d, s, 7, &NetFaults::default());
        assert_eq!(
            a.result.trace.hash(),
            b.result.trace.hash(),
            "{design}: seed 7 gave two traces"
        );
        assert!(
            a.result.trace.len() > 20,
            "{design}: a run records its events"
        );
    }
}

/// Which invariants break over a sweep of seeds, on one driver.
fn union(sweep: impl Iterator<Item = run::Judged>) -> (BTreeSet<Invariant>, usize) {
    let mut broken = BTreeSet::new();
    let mut unsettled = 0;
    for j in sweep {
        broken.extend(j.violated());
        unsettled += usize::from(j.status() == Status::Unsettled);
    }
    (broken, unsettled)
}

/// Every shipped scenario file the madsim driver refuses, with a word of its refusal
/// (a file is listed when one design is refused on it): none, since the saga's async
/// services play random fault rates. A new refusal fails
/// `both_drivers_give_the_same_verdict_on_every_scenario` until it is listed here, so
/// this list cannot grow unseen.
const REFUSED: &[(&str, &str)] = &[];

/// Scenario × design pairs where the verdicts differ by the rebalance protocol alone:
/// the madsim client speaks the eager protocol (`range`), the simulator the cooperative
/// one by default. Here the simulator under the eager protocol gives madsim's verdict.
const EAGER_ONLY: &[(&str, &str, &str)] = &[(
    "zombie-after-rebalance.toml",
    "naive",
    "view-matches-log: under the cooperative protocol the new owner keeps its task and \
     store through the zombie's rejoin, so the zombie's unfenced changelog write never \
     reaches that store; under the eager protocol every rebalance restores the store from \
     the changelog, that write included",
)];

/// Scenario × design pairs of a replicated cluster where the drivers' verdicts differ,
/// with why. The test checks that each still differs, so the list cannot go stale.
const CLUSTER_DIFFER: &[(&str, &str, &str)] = &[
    (
        "cluster/coordinator-failover.toml",
        "naive",
        "no-oversell, conservation on madsim: the requests that wait out request.timeout.ms \
         on a crashed coordinator widen naive's race between check and reservation",
    ),
    (
        "cluster/coordinator-failover.toml",
        "rekeyed-eos",
        "eventual-decision on madsim: the async service processes records in fetch order, \
         with no stream-time synchronisation of its inputs (Kafka Streams' \
         max.task.idle.ms); while a fetch waits on a crashed leader an order is processed \
         before its product's stock row, and the inner join drops it",
    ),
    (
        "cluster/unclean-election.toml",
        "naive",
        "no no-lost-write on madsim: the simulator answers a request to a down leader at \
         once (NOT_LEADER_OR_FOLLOWER), madsim's client waits request.timeout.ms on the \
         down brokers, so the orders are acknowledged only after the unclean election",
    ),
    (
        "cluster/unclean-election.toml",
        "rekeyed-eos",
        "as naive: no order is acknowledged before the unclean election on madsim; and \
         eventual-decision, as on coordinator-failover",
    ),
    (
        "cluster/unclean-election.toml",
        "saga",
        "as naive: madsim's first acknowledgement (the frontend's, at about 700 ms) comes \
         after the unclean elections (410 ms), so no acknowledged write is lost and no \
         offset goes back",
    ),
    (
        "cluster/unclean-election.toml",
        "saga-direct-timers",
        "as saga",
    ),
];

/// Scenario × design pairs of one broker where the drivers' verdicts differ, with why.
/// The test checks that each still differs. None over seeds 0..6: on `restock-race` and
/// `saga-reservation-timeout` the async `rekeyed-eos` still takes a product's stock row
/// and an order of it, in two partitions of one task, in its round-robin fetch order
/// (not by timestamp, as Kafka Streams' `PartitionGroup`), so the inner join can drop the
/// order (`eventual-decision`), but since the broker answers on several request handlers
/// madsim's seeds 0..60 show it on seed 18 alone (order4 processed at 203 ms, product2's
/// row at 242 ms).
const FETCH_ORDER_DIFFER: &[(&str, &str, &str)] = &[];

/// Scenario × design pairs the madsim driver runs since it plays random fault rates,
/// `drop_produce_ack` and `acks=1`, where the drivers' verdicts differ, with why (each
/// read from a failing seed's trace). The test checks that each still differs.
const FAULTS_DIFFER: &[(&str, &str, &str)] = &[
    (
        "cluster/acks-all-broker-faults.toml",
        "rekeyed-eos",
        "eventual-decision on madsim, as on coordinator-failover: each partition's fetch \
         goes to its own leader, and the async service processes records in the order the \
         fetches answer, with no stream-time synchronisation (max.task.idle.ms); seed 0: \
         order1 is processed at 330 ms before product1's stock row (1098 ms) and the inner \
         join drops it",
    ),
    (
        "cluster/acks-all-broker-faults.toml",
        "naive",
        "conservation on madsim, seed 4: at least once, product-stock processes product1's \
         stock record (+2) at 876 ms, is expelled by its session timeout at 1051 ms (brokers \
         0 and 1 crashed at 681 and 867 ms) before its offset is committed, restores \
         ProductStock = 2 from the changelog it wrote meanwhile and processes the record \
         again at 1763 ms: the stock counted twice. The simulator's seeds 0..60 hold",
    ),
    (
        "cluster/acks1-leader-crash.toml",
        "naive",
        "no no-lost-write on madsim (seeds 0..40 all hold): madsim's network takes 1 to 10 \
         ms a message and the frontend looks up the leader first, so order1 (sent at 100 \
         ms) has not reached broker 2 when it crashes at 106 ms; the orders go to the new \
         leader after the election (seed 0: first append at 341 ms). The simulator \
         delivers within the scenario's 2 ms gaps",
    ),
    (
        "cluster/acks1-leader-crash.toml",
        "rekeyed-eos",
        "as naive: no order reaches broker 2 before its crash",
    ),
    (
        "cluster/acks1-leader-crash.toml",
        "saga",
        "as naive: no order reaches broker 2 before its crash (seed 0: broker 2 crashes at \
         106 ms, the first append of orders is at 343 ms)",
    ),
    (
        "cluster/acks1-leader-crash.toml",
        "saga-direct-timers",
        "as saga",
    ),
    (
        "many-products.toml",
        "rekeyed-eos",
        "eventual-decision on madsim, as on acks-all-broker-faults: seed 1: order27 \
         (orders-1@0, appended at 461 ms) is processed at 476 ms and reads \
         warehouse-inventory-store[product10] → ∅ at 541 ms, before product10's stock row \
         (warehouse-inventory-1@3, appended at 162 ms) is processed at 943 ms, so the inner \
         join drops it",
    ),
    (
        "saga-zombie-punctuation.toml",
        "naive",
        "the scenario's one simulator seed (99) holds; naive breaks on the simulator's \
         seeds 0..60 too (18 of 60)",
    ),
    (
        "saga-zombie-punctuation.toml",
        "saga-direct-timers",
        "the simulator's one seed (99) is the story (conservation, no-duplicate-effect); \
         madsim's random pauses strike its window (an instance paused past its session \
         after its task's restore, waking to punctuate before it learns it was expelled) on \
         few seeds: none of 0..60, first at seed 102 (product-service-0 paused from 434 to \
         1523 ms, expelled at 641 ms, releases o1 again at 1574 ms); the saga holds on \
         seeds 0..400",
    ),
    (
        "saga-zombie-punctuation.toml",
        "rekeyed-eos",
        "eventual-decision on madsim, seed 1: o1 is processed at 129 ms before p1's stock \
         row, and the inner join drops it (no stream-time synchronisation, as on \
         restock-race)",
    ),
];

/// Every scenario file shipped under `scenarios/`, as a path relative to it.
fn shipped() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files = Vec::new();
    for dir in ["", "cluster", "live"] {
        let entries = std::fs::read_dir(root.join(dir)).expect("scenarios/ is readable");
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".toml") {
                files.push(if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                });
            }
        }
    }
    files.sort();
    files
}

/// What one scenario × design breaks on each driver (and, for an `EAGER_ONLY` pair, on
/// the simulator under the eager protocol).
struct Sweep {
    sim: BTreeSet<Invariant>,
    mad: BTreeSet<Invariant>,
    sim_eager: Option<BTreeSet<Invariant>>,
}

/// Sweep every pair on both drivers, on two threads (each madsim run has a runtime of
/// its own), the results in the pairs' order.
fn sweep_pairs(
    pairs: Vec<(String, &'static str, Scenario)>,
    n: u64,
) -> Vec<(String, &'static str, Sweep)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let registry = Registry::builtin();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((file, design, s)) = pairs.get(i) else {
                        return;
                    };
                    let d = registry.get(design).unwrap();
                    let sweep = sweep_pair(file, design, d, s, n);
                    done.lock().unwrap().push((i, sweep));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    pairs
        .into_iter()
        .zip(done)
        .map(|((file, design, _), (_, sweep))| (file, design, sweep))
        .collect()
}

fn sweep_pair(file: &str, design: &str, d: &dyn oversell::Design, s: &Scenario, n: u64) -> Sweep {
    let seeds = || s.run.seeds.start..s.run.seeds.end;
    let (sim, _) = union(seeds().map(|seed| run::run_seed(d, s, &[], seed)));
    let (mad, unsettled) = union((0..n).map(|seed| run_seed(d, s, seed, &NetFaults::default())));
    assert_eq!(
        unsettled, 0,
        "{file} × {design}: a madsim run did not settle"
    );
    let eager_only = EAGER_ONLY
        .iter()
        .any(|(f, dn, _)| *f == file && *dn == design);
    let sim_eager = eager_only.then(|| {
        let mut eager = s.clone();
        eager.streams.rebalance_protocol = Some(RebalanceProtocol::Eager);
        union(seeds().map(|seed| run::run_seed(d, &eager, &[], seed))).0
    });
    Sweep {
        sim,
        mad,
        sim_eager,
    }
}

/// Both drivers give the same verdict on every scenario file × design that runs on both:
/// the same invariants hold and the same break, over the scenario's own seeds on the
/// simulator and seeds 0..MADSIM_SWEEP on madsim (default 6). Every other file is in
/// `REFUSED`, with its reason.
#[test]
fn both_drivers_give_the_same_verdict_on_every_scenario() {
    let n: u64 = std::env::var("MADSIM_SWEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let (mut refused, mut differ, mut protocol_only) = (Vec::new(), Vec::new(), Vec::new());
    let mut pairs = Vec::new();
    for file in shipped() {
        let s = oversell::load::load_file(&root.join(&file)).expect("a shipped scenario loads");
        for design in oversell::madsim_driver::DESIGNS {
            if let Some(why) = oversell::madsim_driver::unsupported(design, &s) {
                let listed = REFUSED
                    .iter()
                    .any(|(f, word)| *f == file && why.contains(word));
                assert!(listed, "{file} × {design} refused, not in REFUSED: {why}");
                refused.push(file.clone());
                continue;
            }
            pairs.push((file.clone(), design, s.clone()));
        }
    }
    let checked = pairs.len();
    for (file, design, sweep) in sweep_pairs(pairs, n) {
        let Sweep {
            sim,
            mad,
            sim_eager,
        } = sweep;
        eprintln!("{file} × {design}: simulator {sim:?}, madsim {mad:?}");
        if let Some(sim_eager) = sim_eager {
            // madsim's client speaks the eager protocol only: the simulator under
            // the eager protocol must agree, and under its default must not.
            assert_ne!(sim, mad, "{file} × {design} is in EAGER_ONLY but agrees");
            if sim_eager != mad {
                differ.push(format!(
                    "{file} × {design}: eager simulator {sim_eager:?}, madsim {mad:?}"
                ));
            }
            protocol_only.push((file.clone(), design));
        } else if CLUSTER_DIFFER
            .iter()
            .chain(FAULTS_DIFFER)
            .chain(FETCH_ORDER_DIFFER)
            .any(|(f, d, _)| *f == file && *d == design)
        {
            assert_ne!(
                sim, mad,
                "{file} × {design} is in CLUSTER_DIFFER, FAULTS_DIFFER or FETCH_ORDER_DIFFER but agrees"
            );
        } else if sim != mad {
            differ.push(format!(
                "{file} × {design}: simulator {sim:?}, madsim {mad:?}"
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "the drivers disagree:\n{}",
        differ.join("\n")
    );
    refused.dedup();
    let listed: Vec<String> = REFUSED.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(refused, listed, "REFUSED lists exactly the refused files");
    assert!(
        checked >= 10,
        "only {checked} scenario × design pairs ran on both drivers"
    );
    assert_eq!(
        protocol_only.len(),
        EAGER_ONLY.len(),
        "every EAGER_ONLY pair ran"
    );
}

/// Seeds swept for the task-per-order service, and the first that oversells (the
/// README's story).
const SPAWNED_SEEDS: u64 = 12;
const FIRST_OVERSOLD: u64 = 0;

/// The command, as a user runs it.
fn oversell_cmd(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oversell"))
        .args(args)
        .env_remove("CARGO")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A failing madsim sweep prints the command that reproduces its first failing seed;
/// that command replays the same run (same hash, same violation) and prints its trace.
#[test]
fn a_madsim_failure_prints_a_command_that_reproduces_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/last-unit.toml");
    let path = path.to_str().unwrap();
    let args = [
        "explore", path, "--design", "naive", "--seeds", "0..8", "--driver", "madsim",
    ];
    let (code, out) = oversell_cmd(&args);
    assert_eq!(code, 1, "naive oversells on some seed of 0..8:\n{out}");
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("first failing seed "))
        .unwrap_or_else(|| panic!("no first failing seed in:\n{out}"));
    let (seed, command) = line.split_once(": ").expect("seed: command");
    let words = shell_words::split(command).expect("a shell-quoted command");
    assert_eq!(words[1..4], ["replay", path, "--design"], "{command}");
    assert!(
        command.ends_with(&format!("--seed {seed} --driver madsim")),
        "{command}"
    );
    let mut replay: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    replay.push("--trace");
    let (code, replayed) = oversell_cmd(&replay);
    assert_eq!(code, 1, "the replay fails as the sweep did:\n{replayed}");
    assert!(replayed.contains("✗ no-oversell"), "{replayed}");
    assert!(
        replayed.contains(" acked "),
        "the trace is printed:\n{replayed}"
    );
    // The same run as `run --driver madsim` with that seed: the same trace hash.
    let hash = |text: &str| {
        let at = text.find("hash ").expect("a hash is printed");
        text[at + 5..at + 21].to_string()
    };
    let run = [
        "run", path, "--design", "naive", "--seed", seed, "--driver", "madsim",
    ];
    let (_, ran) = oversell_cmd(&run);
    assert_eq!(
        hash(&replayed),
        hash(&ran),
        "replay:\n{replayed}\nrun:\n{ran}"
    );
}

/// A bug only the async form can show, found by madsim's seeds: `rekeyed-alo`'s stores
/// and topics with a task per order that awaits the validation's acknowledgement between
/// its check and its reservation (`src/madsim_driver/spawned.rs`). The sans-IO design
/// holds on every seed of `last-unit`; the async service oversells on some of madsim's
/// seeds (those where the second order is handed to its task while the first one's task
/// waits at its `await`) and holds on others.
#[test]
fn a_task_per_order_awaiting_between_check_and_reserve_oversells() {
    let registry = Registry::builtin();
    let d = registry.get("rekeyed-alo").unwrap();
    let s = scenario("last-unit");
    let seeds = s.run.seeds.start..s.run.seeds.end;
    let (sim, _) = union(seeds.map(|seed| run::run_seed(d, &s, &[], seed)));
    assert!(sim.is_empty(), "the sans-IO rekeyed-alo breaks {sim:?}");
    let mut oversold = Vec::new();
    for seed in 0..SPAWNED_SEEDS {
        let j = run_service_seed(d, &s, seed, &NetFaults::default(), Service::SpawnPerOrder);
        assert_ne!(j.status(), Status::Unsettled, "seed {seed} did not settle");
        if j.violated().contains(&Invariant::NoOversell) {
            oversold.push(seed);
        }
    }
    eprintln!("the task-per-order service oversells on seeds {oversold:?}");
    // The story: both tasks read the reserved count before either writes it.
    let j = run_service_seed(
        d,
        &s,
        FIRST_OVERSOLD,
        &NetFaults::default(),
        Service::SpawnPerOrder,
    );
    let reserved = "reserved-stock";
    let events: Vec<&Event> = j.result.trace.records.iter().map(|r| &r.event).collect();
    let first_put = events
        .iter()
        .position(|e| matches!(e, Event::StorePut { store, .. } if store == reserved))
        .expect("a reservation is written");
    let empty_reads = events[..first_put]
        .iter()
        .filter(|e| matches!(e, Event::StoreGet { store, value: None, .. } if store == reserved))
        .count();
    // Both tasks' checks, and the first task's read as it reserves: without the race,
    // the second task's check would come after the first write and see it.
    assert_eq!(empty_reads, 3, "both orders checked against no reservation");
    assert_eq!(oversold.first(), Some(&FIRST_OVERSOLD), "the README's seed");
    assert!(
        oversold.len() < SPAWNED_SEEDS as usize,
        "found by the seed's interleaving, not on every run"
    );
}

/// The scenario's random fault rates strike through madsim and are recorded as the
/// simulator's events: on `many-products` (crash and pause 1 ‰ per draw, drop and
/// duplicate 10 ‰ and delay 20 ‰ per message, for 3 s) instances are killed and
/// restarted, paused and resumed, and messages dropped, duplicated and delayed, all
/// within the fault phase; on `cluster/acks-all-broker-faults` (broker crash 8 ‰, half
/// of them fsync losses) brokers crash and restart. Same seed, same trace.
#[test]
fn random_faults_strike_through_madsim_and_are_recorded() {
    let registry = Registry::builtin();
    let d = registry.get("rekeyed-eos").unwrap();
    let mut seen = BTreeSet::new();
    for (name, seeds) in [
        // Seed 0 draws no pause since the frontend sends in time order; seed 1 does.
        ("many-products", 0..2),
        ("cluster/acks-all-broker-faults", 0..2),
    ] {
        let s = scenario(name);
        for seed in seeds {
            let j = run_seed(d, &s, seed, &NetFaults::default());
            if seed == 0 {
                let again = run_seed(d, &s, seed, &NetFaults::default());
                let (a, b) = (j.result.trace.hash(), again.result.trace.hash());
                assert_eq!(a, b, "{name} seed {seed}: two traces");
            }
            for r in &j.result.trace.records {
                let kind = match &r.event {
                    Event::Crash { .. } => "crash",
                    Event::Restart { .. } => "restart",
                    Event::Pause { .. } => "pause",
                    Event::Resume { .. } => "resume",
                    Event::Drop { .. } => "drop",
                    Event::Duplicate { .. } => "duplicate",
                    Event::Delay { .. } => "delay",
                    Event::BrokerCrashed { .. } => "broker crash",
                    Event::BrokerRestarted { .. } => "broker restart",
                    _ => continue,
                };
                if !kind.contains("restart") && kind != "resume" {
                    assert!(
                        r.time < s.faults.phase_ms,
                        "{kind} at {} after the fault phase",
                        r.time
                    );
                }
                seen.insert(kind);
            }
        }
    }
    let all = [
        "crash",
        "restart",
        "pause",
        "resume",
        "drop",
        "duplicate",
        "delay",
        "broker crash",
        "broker restart",
    ];
    assert_eq!(seen, BTreeSet::from(all), "the random faults that struck");
}

/// Lost partitions under exactly-once: an instance expelled from the group (paused past
/// its session, or its offsets refused for the transaction with `UNKNOWN_MEMBER_ID`)
/// closes its tasks dirty and wipes their stores, as Kafka Streams' `handleLostAll`
/// does, instead of keeping (or rebuilding) the stores of partitions another member now
/// owns. On these seeds the async `rekeyed-eos` kept them and broke `view-matches-log`:
/// `saga-zombie-punctuation` seed 5 (product-service-0 paused from 452 ms to 1526 ms in
/// the middle of a transaction, its offsets refused when it wakes) and `many-products`
/// seed 0 (a member's `TxnOffsetCommit` answered `UNKNOWN_MEMBER_ID`, its stores rebuilt
/// while another member went on writing their changelogs).
#[test]
fn an_expelled_instance_wipes_the_stores_of_its_lost_partitions() {
    let registry = Registry::builtin();
    let d = registry.get("rekeyed-eos").unwrap();
    for (name, seed) in [("saga-zombie-punctuation", 5), ("many-products", 0)] {
        let s = scenario(name);
        let j = run_seed(d, &s, seed, &NetFaults::default());
        let again = format!(
            "oversell run scenarios/{name}.toml --design rekeyed-eos --seed {seed} --driver madsim"
        );
        assert_ne!(j.status(), Status::Unsettled, "{again}");
        let lost = j.result.trace.records.iter().any(|r| {
            matches!(&r.event, Event::ClientError { what, .. } if what.starts_with("tasks lost"))
        });
        assert!(lost, "no instance lost its tasks: {again}");
        assert!(
            !j.violated().contains(&Invariant::ViewMatchesLog),
            "a lost partition's store outlived its loss: {again}"
        );
    }
}
