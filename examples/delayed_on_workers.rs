//! # Delayed calls on worker processes, step by step
//!
//! Run with `cargo run --release --example delayed_on_workers`. The program's own
//! functions run in worker processes once registered by name: the program calls
//! `brisk::worker_if_asked_with(my_functions)` first thing in `main`, so the copies
//! of itself the cluster starts become workers that know them.

use std::error::Error;
use std::time::Instant;

use brisk::core::OpRegistry;
use brisk::prelude::*;
use serde::{Deserialize, Serialize};

/// A value of the program's own type: it crosses processes through serde.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stats {
    n: u64,
    total: f64,
    /// The worker process that made it.
    pid: u32,
}

/// Part `part` of a data set: a million numbers.
fn load(part: u64) -> Vec<f64> {
    (0..1_000_000).map(|i| ((part * 1_000_003 + i) % 1_000) as f64 * 0.5).collect()
}

fn stats(xs: Vec<f64>) -> Stats {
    Stats { n: xs.len() as u64, total: xs.iter().sum(), pid: std::process::id() }
}

fn mean(parts: Vec<Stats>) -> f64 {
    parts.iter().map(|s| s.total).sum::<f64>() / parts.iter().map(|s| s.n).sum::<u64>() as f64
}

fn parse(s: String) -> Result<u64, std::num::ParseIntError> {
    s.trim().parse()
}

/// What the workers must know besides Brisk's own ops.
fn my_functions(registry: &mut OpRegistry) {
    brisk::register_fn!(registry, load);
    brisk::register_fn!(registry, stats);
    brisk::register_fn!(registry, mean);
    brisk::register_fn!(registry, try parse);
}

fn heading(n: u32, title: &str) {
    println!("\n## Step {n}: {title}");
}

fn main() -> Result<(), Box<dyn Error>> {
    brisk::worker_if_asked_with(my_functions);

    heading(1, "start a local cluster of 2 worker processes");
    let started = Instant::now();
    let cluster = Scheduler::processes(2)?;
    println!("started in {:.3} s", started.elapsed().as_secs_f64());

    heading(2, "build a graph of registered functions");
    let parts: Vec<Delayed<Stats>> = (0..8).map(|i| delayed!(stats(delayed!(load(i))))).collect();
    let overall = delayed!(mean(parts.clone()));
    println!("{} tasks: 8 loads, 8 stats, one mean", overall.graph_len());

    heading(3, "compute it on the workers and on threads");
    let started = Instant::now();
    let on_workers = cluster.compute(&overall)?;
    let workers = started.elapsed();
    let on_threads = Scheduler::threads(2).compute(&overall)?;
    println!("workers: {on_workers} in {:.3} s; threads: {on_threads}", workers.as_secs_f64());
    assert_eq!(on_workers.to_bits(), on_threads.to_bits(), "the same answer, bit for bit");
    let pids: std::collections::BTreeSet<u32> =
        cluster.compute(&parts)?.iter().map(|s| s.pid).collect();
    println!("the stats ran in processes {pids:?}; this one is {}", std::process::id());

    heading(4, "an error in a worker names its task");
    let bad = delayed!(try parse("12x".to_string()));
    match cluster.compute(&bad) {
        Ok(n) => println!("unexpected: {n}"),
        Err(e) => println!("error: {e}"),
    }

    heading(5, "a closure is refused before anything runs");
    let closure = delayed!(load(0)).map(|xs| xs.len());
    match cluster.compute(&closure) {
        Ok(n) => println!("unexpected: {n}"),
        Err(e) => println!("refused: {e}"),
    }
    println!("RESULT workload=delayed mean={on_workers} seconds={:.4}", workers.as_secs_f64());
    Ok(())
}
