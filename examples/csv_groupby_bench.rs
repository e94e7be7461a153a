//! Runner for the group-by benchmarks, matching `../shared/bench/peer_*_groupby.py`:
//! reads a CSV, runs one query, prints a `RESULT` line with the group count, a
//! checksum (the sum of every aggregated value) and the compute time.
//!
//! ```text
//! cargo run --release --example csv_groupby_bench -- data.csv --query q1 [--threads 2] [--blocksize BYTES]
//! ```
//! q1: `groupby(id1)[v1, v2, v3].mean()`; q3: `groupby(id3).agg(v1: sum, v3: mean)`;
//! q4: `groupby(id4)[v1, v2, v3].mean()`.

use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use brisk::frame::arrow;
use brisk::frame::{Agg, CsvOptions, read_csv};
use brisk::scheduler::Scheduler;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let path = args.first().ok_or("usage: csv_groupby_bench PATH --query q1|q3|q4")?;
    let query = flag("--query").unwrap_or_else(|| "q1".into());
    let threads: usize = flag("--threads").map_or(Ok(2), |t| t.parse())?;
    let mut opts = CsvOptions::default();
    if let Some(b) = flag("--blocksize") {
        opts = opts.blocksize(b.parse()?);
    }
    let (key, aggs): (&str, Vec<(&str, Agg)>) = match query.as_str() {
        "q1" => ("id1", vec![("v1", Agg::Mean), ("v2", Agg::Mean), ("v3", Agg::Mean)]),
        "q3" => ("id3", vec![("v1", Agg::Sum), ("v3", Agg::Mean)]),
        "q4" => ("id4", vec![("v1", Agg::Mean), ("v2", Agg::Mean), ("v3", Agg::Mean)]),
        "scan" => ("id3", vec![]),
        q => return Err(format!("unknown query {q}").into()),
    };
    if args.iter().any(|a| a == "--usecols") {
        let cols: Vec<&str> = std::iter::once(key).chain(aggs.iter().map(|(c, _)| *c)).collect();
        opts = opts.usecols(cols);
    }
    let start = Instant::now();
    if query == "scan" {
        // Reading and parsing only: the columns q3 reads, counted.
        let df = read_csv(path.as_str(), opts.usecols(["id3", "v1", "v3"]))?;
        let rows = Scheduler::threads(threads).compute(&df.len())?;
        println!(
            "RESULT peer=brisk query=scan rows={rows} compute_s={:.4}",
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let df = read_csv(path.as_str(), opts)?;
    let frame = df.groupby([key])?.agg(aggs)?;
    let table = Scheduler::threads(threads).compute(&frame)?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut checksum = 0.0;
    for b in table.batches() {
        for c in b.columns().iter().skip(1) {
            let f = arrow::compute::cast(c, &DataType::Float64)?;
            let f = f.as_primitive::<Float64Type>();
            checksum += (0..f.len()).filter(|&i| f.is_valid(i)).map(|i| f.value(i)).sum::<f64>();
        }
    }
    println!(
        "RESULT peer=brisk query={query} rows={} checksum={checksum:.10} compute_s={elapsed:.4} threads={threads} partitions={}",
        table.num_rows(),
        df.npartitions()
    );
    Ok(())
}
