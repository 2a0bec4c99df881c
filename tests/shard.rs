//! Sweeps split over machines: `explore --shard i/n` parts merged by `oversell merge`
//! give the report one machine writes for the whole range, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_oversell");

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
        .display()
        .to_string()
}

fn oversell(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn explore(dir: &Path, out: &str, extra: &[&str]) {
    let file = dir.join(out).display().to_string();
    let path = scenario("crash-before-offset-commit");
    let mut args = vec!["explore", &path, "--seeds", "0..14", "--json", &file];
    args.extend_from_slice(extra);
    let o = oversell(&args);
    assert!(o.status.code().is_some_and(|c| c <= 3), "{o:?}");
}

#[test]
fn three_shards_merged_are_the_whole_sweep_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("oversell-shard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    explore(&dir, "whole.json", &["--jobs", "2", "--faults", "swarm"]);
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let out = format!("shard-{i}.json");
        explore(
            &dir,
            &out,
            &["--jobs", "1", "--faults", "swarm", "--shard", &shard],
        );
    }
    let p = |f: &str| dir.join(f).display().to_string();
    let merged = p("merged.json");
    // Any order of the shards.
    let args = [
        "merge",
        &p("shard-2.json"),
        &p("shard-3.json"),
        &p("shard-1.json"),
        "--json",
        &merged,
    ];
    let o = oversell(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("merged from 3 shards"), "{text}");
    let whole = std::fs::read(dir.join("whole.json")).unwrap();
    assert_eq!(whole, std::fs::read(dir.join("merged.json")).unwrap());
    assert!(!whole.is_empty());
    // A missing shard, or one twice, is refused.
    let o = oversell(&["merge", &p("shard-1.json"), &p("shard-2.json")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard 3/3 is missing"));
    let o = oversell(&[
        "merge",
        &p("shard-1.json"),
        &p("shard-1.json"),
        &p("shard-3.json"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    // A shard of another sweep (without swarm) is refused.
    explore(&dir, "other.json", &["--shard", "2/3"]);
    let o = oversell(&[
        "merge",
        &p("shard-1.json"),
        &p("other.json"),
        &p("shard-3.json"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn four_shards_merged_are_the_whole_sweep_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("oversell-shard4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    explore(&dir, "whole.json", &["--jobs", "1", "--faults", "swarm"]);
    let mut args = vec!["merge".to_string()];
    // Shards written in reverse order, and merged in that order.
    for i in (1..=4).rev() {
        let shard = format!("{i}/4");
        let out = format!("shard-{i}.json");
        explore(
            &dir,
            &out,
            &["--jobs", "1", "--faults", "swarm", "--shard", &shard],
        );
        args.push(dir.join(&out).display().to_string());
    }
    let merged = dir.join("merged.json").display().to_string();
    args.extend(["--json".to_string(), merged]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = oversell(&args);
    assert!(String::from_utf8_lossy(&o.stdout).contains("merged from 4 shards"));
    let whole = std::fs::read(dir.join("whole.json")).unwrap();
    assert!(!whole.is_empty());
    assert_eq!(whole, std::fs::read(dir.join("merged.json")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
