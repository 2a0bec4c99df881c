use oversell_sim::counting::{double_counts, world, CountingSetup};
use oversell_sim::{FaultRates, Guarantee, Outcome};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let eos = args.get(1).map(|s| s == "eos").unwrap_or(false);
    let crash: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let pause: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let net: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let n: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(200);
    let setup = CountingSetup {
        guarantee: if eos {
            Guarantee::ExactlyOnceV2
        } else {
            Guarantee::AtLeastOnce
        },
        rates: FaultRates {
            crash,
            pause,
            drop: net,
            duplicate: net,
            delay: net,
            ..FaultRates::default()
        },
        fault_phase_ms: 600,
        ..CountingSetup::default()
    };
    let mut bad = 0;
    let mut first = None;
    let mut outcomes = std::collections::BTreeMap::new();
    let mut steps = 0;
    for seed in 0..n {
        let r = world(&setup).run_seed(seed);
        steps += r.steps;
        *outcomes.entry(format!("{:?}", r.outcome)).or_insert(0) += 1;
        let d = double_counts(&r.broker, setup.partitions);
        if !d.is_empty() {
            bad += 1;
            if first.is_none() {
                first = Some((seed, d));
            }
        }
        let _ = Outcome::Quiescent;
    }
    println!(
        "runs {n} double-counting {bad} first {:?} outcomes {:?} avg steps {}",
        first,
        outcomes,
        steps / n
    );
}
