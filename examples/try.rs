use oversell::designs;
use oversell::scenario::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let design = designs::by_name(&args[1]).unwrap();
    let seed: u64 = args[2].parse().unwrap();
    let sc = Scenario {
        name: "last-unit".into(),
        description: String::new(),
        products: vec![Product {
            id: "product1".into(),
            stock: 1,
        }],
        orders: vec![
            Order {
                id: "o1".into(),
                product: "product1".into(),
                quantity: 1,
                user: None,
                at: 100,
            },
            Order {
                id: "o2".into(),
                product: "product1".into(),
                quantity: 1,
                user: None,
                at: 100,
            },
        ],
        restocks: vec![],
        topology: TopologySpec::default(),
        streams: Default::default(),
        payments: Default::default(),
        saga: Default::default(),
        faults: Default::default(),
        run: Default::default(),
        expect: Default::default(),
    };
    let r = design.build(&sc, &[]).run_seed(seed);
    println!(
        "outcome {:?} steps {} end {}",
        r.outcome, r.steps, r.end_time
    );
    for t in &r.trace.records {
        let s = format!("{:?}", t.event);
        if s.starts_with("Deliver") || s.starts_with("Fetch") {
            continue;
        }
        if std::env::var("ALL").is_err()
            && !(s.starts_with("Append")
                || s.starts_with("StoreGet")
                || s.starts_with("Note")
                || s.starts_with("ClientError"))
        {
            continue;
        }
        println!("{:>6} {}", t.time, s);
    }
}
