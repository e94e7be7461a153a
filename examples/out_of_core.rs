//! # Out of core: a memory budget smaller than the data
//!
//! ```sh
//! cargo run --release --example out_of_core                 # writes a 60 MB CSV first
//! cargo run --release --example out_of_core -- data.csv     # a CSV with columns k, v, w
//! ```
//!
//! Runs a group-by with 300,000 groups and an array computation that needs its input
//! twice, each under a budget a fraction of the data's size, and prints what the
//! scheduler did to stay inside it: roots (reads, generated chunks) held back while
//! reducers caught up, results spilled to disk and read back, the most bytes held
//! at once. Each answer is checked against the same computation with no budget.

use std::error::Error;
use std::fmt::Write as _;
use std::time::Instant;

use brisk::array::random;
use brisk::frame::{Agg, CsvOptions, read_csv};
use brisk::scheduler::{ComputeStats, Scheduler};

mod common;

const MB: f64 = 1e6;

fn report(what: &str, stats: &ComputeStats, seconds: f64) {
    println!(
        "  {what}: {:.2} s; budget {:.1} MB, most held at once {:.1} MB; roots held back {} times; \
         spilled {:.1} MB, read back {:.1} MB",
        seconds,
        stats.memory_budget as f64 / MB,
        stats.peak_bytes as f64 / MB,
        stats.roots_deferred,
        stats.spilled_bytes as f64 / MB,
        stats.spill_read_bytes as f64 / MB,
    );
}

/// Two million rows: a key with 300,000 values, an integer and a float.
fn write_demo(path: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let mut text = String::from("k,v,w\n");
    let mut x: u64 = 7;
    for i in 0..2_000_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(text, "key{:06},{},{:.4}", x % 300_000, i % 100, (x >> 40) as f64 / 1e4)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("brisk-out-of-core-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let p = dir.join("demo.csv");
            println!("## Step 0: write a demo CSV ({})", p.display());
            write_demo(&p)?;
            p
        }
    };
    let size = std::fs::metadata(&path)?.len();

    println!("\n## Step 1: groupby(k).agg(v: sum, w: mean) over {:.1} MB of CSV", size as f64 / MB);
    let budget = size / 3;
    println!("  budget: {:.1} MB, a third of the file", budget as f64 / MB);
    let frame =
        read_csv(path.to_string_lossy().as_ref(), CsvOptions::default().blocksize(1 << 20))?;
    let query = frame.groupby(["k"])?.agg([("v", Agg::Sum), ("w", Agg::Mean)])?;
    let start = Instant::now();
    let (small, stats) = Scheduler::default().memory_limit(budget).compute_with_stats(&query)?;
    report("under the budget", &stats, start.elapsed().as_secs_f64());
    if let Some(peak) = common::peak_rss_mb() {
        println!("  peak resident memory of the process so far: {peak:.1} MB");
    }
    let start = Instant::now();
    let (free, stats) = Scheduler::default().compute_with_stats(&query)?;
    report("no budget       ", &stats, start.elapsed().as_secs_f64());
    assert_eq!(small.to_batch(), free.to_batch(), "the budget changed the answer");
    println!("  {} groups, the same with and without the budget", small.num_rows());

    println!(
        "\n## Step 2: (x - x.mean(axis=0)).std(axis=0), x = random((6000, 6000)) in 1000² chunks"
    );
    println!(
        "  x is 288 MB if held at once and is needed twice: once for the means, once to center"
    );
    let x = random(&[6000, 6000], &[1000, 1000], 1)?;
    let means = x.mean([0])?;
    let centered = &x - &means;
    let spread = centered.std([0], 0)?;
    let budget = 40_000_000;
    let start = Instant::now();
    let (small, stats) = Scheduler::default().memory_limit(budget).compute_with_stats(&spread)?;
    report("under 40 MB     ", &stats, start.elapsed().as_secs_f64());
    let free = Scheduler::default().compute_with_stats(&spread)?.0;
    assert_eq!(small, free, "the budget changed the answer");
    let mean_std = small.iter().sum::<f64>() / small.len() as f64;
    println!("  column std devs average {mean_std:.6} (uniform [0, 1): 0.288675)");

    if let Some(peak) = common::peak_rss_mb() {
        println!(
            "\n## Peak resident memory of this process (no-budget runs included): {peak:.1} MB"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
