//! # `read_csv(..).groupby(["id1"]).mean()`, step by step
//!
//! ```sh
//! cargo run --release --example csv_groupby_mean                  # writes a small data set
//! cargo run --release --example csv_groupby_mean -- 'data/*.csv'  # your files
//! ```
//!
//! Reads CSV files into a lazy frame, shows its schema, partitions and task graph,
//! computes a group-by mean, then a filter and `describe`.

use std::error::Error;
use std::io::Write;
use std::time::Instant;

use brisk::frame::{CsvOptions, col, lit, read_csv};
use brisk::graph::{Collection, PlanOptions};
use brisk::prelude::*;

/// Writes `rows` rows of the db-benchmark schema (id1..id6, v1..v3) with a simple
/// deterministic generator.
fn write_demo(path: &std::path::Path, rows: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "id1,id2,id3,id4,id5,id6,v1,v2,v3")?;
    let mut state = 42u64;
    let mut next = |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for _ in 0..rows {
        let (a, b, c) = (next(10) + 1, next(10) + 1, next(1000) + 1);
        let (d, e, f) = (next(10) + 1, next(10) + 1, next(1000) + 1);
        let (v1, v2, v3) = (next(5) + 1, next(15) + 1, next(100_000_000) as f64 / 1e6);
        writeln!(out, "id{a:03},id{b:03},id{c:010},{d},{e},{f},{v1},{v2},{v3:.6}")?;
    }
    out.flush()
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = match std::env::args().nth(1) {
        Some(p) => p,
        None => {
            let p = std::env::temp_dir().join("brisk_demo_groupby.csv");
            println!("## Step 0: no file given, writing 200,000 demo rows to {}", p.display());
            write_demo(&p, 200_000)?;
            p.to_string_lossy().into_owned()
        }
    };

    println!("\n## Step 1: read_csv({path:?}) — lazy: only a sample is read, for the schema");
    let df = read_csv(path.as_str(), CsvOptions::default().blocksize(1 << 20))?;
    for f in df.schema().fields() {
        println!("  {:<4} {}", f.name(), f.data_type());
    }
    println!("{} partitions (1 MiB blocks cut at record boundaries)", df.npartitions());

    println!("\n## Step 2: build df.groupby([\"id1\"]).mean() and look at its graph");
    let means = df.groupby(["id1"])?.mean()?;
    let (graph, keys) = means.graph()?;
    let tasks = graph.len();
    let picture = std::env::temp_dir().join("brisk_groupby.svg");
    graph.visualize(&picture)?;
    let plan = graph.plan(&keys, PlanOptions::default())?;
    println!(
        "{tasks} tasks: quote counts, then read + partial aggregate per block (fused: {} tasks to run), a combine tree, one finish per hash part",
        plan.len()
    );
    println!("its picture, one box per operation, is in {}", picture.display());

    println!("\n## Step 3: compute it");
    let start = Instant::now();
    let table = means.compute()?;
    println!("{table}");
    println!("computed in {:.3} s", start.elapsed().as_secs_f64());

    println!("\n## Step 4: a filter, then the rows left");
    let big = df.filter(col("v1").ge(lit(4)).and(col("v3").lt(lit(10.0))))?;
    println!("rows with v1 >= 4 and v3 < 10: {}", big.len().compute()?);
    println!("{}", big.head(5)?);

    println!("\n## Step 5: describe the numeric columns");
    println!("{}", df.select(["v1", "v2", "v3"])?.describe()?.compute()?);
    println!(
        "\nThe same on your files: cargo run --release --example csv_groupby_mean -- 'data/*.csv'"
    );
    Ok(())
}
