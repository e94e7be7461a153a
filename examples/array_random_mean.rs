//! # `random(shape, chunks, seed).mean(Axes::all())`, step by step
//!
//! ```sh
//! cargo run --release --example array_random_mean                       # 10,000 x 10,000
//! cargo run --release --example array_random_mean -- --n 40000 --chunk 2000
//! cargo run --release --example array_random_mean -- --report mean.html    # and what it did
//! cargo run --release --example array_random_mean -- --n 40000 --dashboard 127.0.0.1:8787  # live
//! ```
//!
//! Builds the array, shows its shape, chunks and task graph, computes the mean and
//! compares it with the expected 0.5. Prints a `RESULT` line like
//! `../shared/bench/peer_dask_array.py` and `peer_numpy_array.py` so they can be timed
//! side by side.

use std::error::Error;
use std::time::Instant;

use brisk::array::{Axes, random};
use brisk::graph::{Collection, PlanOptions};
use brisk::prelude::*;

fn main() -> Result<(), Box<dyn Error>> {
    let mut n = 10_000usize;
    let mut chunk = 1_000usize;
    let mut seed = 42u64;
    let mut report: Option<String> = None;
    let mut dashboard: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--n" => n = value.parse()?,
            "--chunk" => chunk = value.parse()?,
            "--seed" => seed = value.parse()?,
            "--report" => report = Some(value),
            "--dashboard" => dashboard = Some(value),
            other => {
                return Err(format!(
                    "unknown argument {other}: use --n, --chunk, --seed, --report, --dashboard"
                )
                .into());
            }
        }
    }

    println!("## Step 1: build x = random(({n}, {n}), chunks=({chunk}, {chunk}), seed={seed})");
    let x = random(&[n, n], &[chunk, chunk], seed)?;
    println!(
        "shape {:?}, dtype {}, {} chunks ({:?} grid)",
        x.shape(),
        x.dtype(),
        x.chunks().count(),
        x.chunks().grid()
    );
    let gb = (n * n * 8) as f64 / 1e9;
    println!("materialized it would take {gb:.1} GB; nothing is computed yet");

    println!("\n## Step 2: inspect the graph of x.mean(Axes::all())");
    let m = x.mean(Axes::all());
    let (graph, keys) = m.graph()?;
    println!("{} tasks before optimization", graph.len());
    let picture = std::env::temp_dir().join("brisk_random_mean.svg");
    graph.visualize(&picture)?;
    println!("its picture, one box per operation: {}", picture.display());
    let plan = graph.plan(&keys, PlanOptions::default())?;
    println!(
        "{} tasks after fusion: random -> chunk sum is one task per chunk ({} fused away)",
        plan.len(),
        plan.fused()
    );

    println!("\n## Step 3: compute");
    let started = Instant::now();
    // Watched live, if asked: open the address printed while it runs.
    let dashboard = dashboard.map(brisk::diagnostics::Dashboard::serve).transpose()?;
    if let Some(dashboard) = &dashboard {
        println!("the live dashboard is at {}", dashboard.url());
    }
    let compute = || match &dashboard {
        Some(dashboard) => brisk::scheduler::with_callback(dashboard.callback(), || m.compute()),
        None => m.compute(),
    };
    let mean = match &report {
        // The same compute, watched: every task, the memory, the CPU.
        Some(path) => brisk::diagnostics::performance_report(path, compute)??,
        None => compute()?,
    };
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(path) = &report {
        println!("the performance report of the compute is in {path}");
    }
    println!(
        "mean = {mean:.9} in {elapsed:.3} s on {} threads",
        brisk::scheduler::default_scheduler().num_threads()
    );

    println!("\n## Step 4: compare with the expected 0.5");
    let sigma = (1.0 / 12.0f64).sqrt() / (n as f64);
    println!(
        "|mean - 0.5| = {:.2e}, {:.1} standard errors",
        (mean - 0.5).abs(),
        (mean - 0.5).abs() / sigma
    );
    if (mean - 0.5).abs() > 6.0 * sigma {
        return Err(format!("mean {mean} is too far from 0.5").into());
    }
    println!(
        "RESULT peer=brisk-array n={n} chunk={chunk} chunks={} tasks={} mean={mean:.6} compute_s={elapsed:.4}",
        x.chunks().count(),
        plan.len()
    );
    Ok(())
}
