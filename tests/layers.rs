//! The dependency ladder: core <- graph <- scheduler <- {array, frame, distributed}
//! <- brisk.
//! Fails on any edge between Brisk crates that points up or sideways.

use std::process::Command;

fn rank(name: &str) -> Option<u32> {
    Some(match name {
        "brisk-core" => 0,
        "brisk-graph" => 1,
        "brisk-scheduler" => 2,
        "brisk-array" | "brisk-frame" | "brisk-distributed" => 3,
        "brisk" => 4,
        _ => return None,
    })
}

#[test]
fn dependencies_point_down_the_ladder_only() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut edges = 0;
    let mut bad = Vec::new();
    for package in meta["packages"].as_array().unwrap() {
        let from = package["name"].as_str().unwrap();
        let from_rank = rank(from).unwrap_or_else(|| panic!("{from} is not on the ladder: add it"));
        for dep in package["dependencies"].as_array().unwrap() {
            let to = dep["name"].as_str().unwrap();
            let Some(to_rank) = rank(to) else { continue };
            edges += 1;
            if to_rank >= from_rank {
                bad.push(format!(
                    "{from} -> {to} ({} dependency)",
                    dep["kind"].as_str().unwrap_or("normal")
                ));
            }
        }
    }
    assert!(bad.is_empty(), "dependencies that point up or sideways: {bad:?}");
    // 1 (graph) + 2 (scheduler) + 3 + 3 (array, frame) + 5 (brisk) edges today.
    assert!(edges >= 14, "only {edges} edges between Brisk crates: is the workspace read right?");
}
