use oversell_sim::counting::{double_counts, world, CountingSetup};
use oversell_sim::{FaultRates, Guarantee};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let eos = args.get(2).map(|s| s == "eos").unwrap_or(false);
    let crash: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let setup = CountingSetup {
        guarantee: if eos {
            Guarantee::ExactlyOnceV2
        } else {
            Guarantee::AtLeastOnce
        },
        rates: FaultRates {
            crash,
            ..FaultRates::default()
        },
        fault_phase_ms: if crash > 0 { 600 } else { 0 },
        ..CountingSetup::default()
    };
    let r = world(&setup).run_seed(seed);
    println!(
        "outcome {:?} steps {} end {} trace {} hash {:x}",
        r.outcome,
        r.steps,
        r.end_time,
        r.trace.len(),
        r.trace.hash()
    );
    if std::env::var("SHOW").is_ok() {
        for t in &r.trace.records {
            println!("{:>6} {:>5} {:?}", t.time, t.choice, t.event);
        }
    }
    println!(
        "double counts: {:?}",
        double_counts(&r.broker, setup.partitions)
    );
    println!("stores: {:?}", r.stores);
}
