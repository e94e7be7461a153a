//! # Scheduler overhead: many tiny tasks, step by step
//!
//! The same graphs as `../shared/bench/peer_dask_delayed.py --api dict`, so the two can
//! be timed side by side as whole processes:
//!
//! ```sh
//! cargo run --release --example scheduler_overhead -- --shape flat -T 100000 --threads 2
//! python peer_dask_delayed.py --api dict --shape flat -T 100000 --scheduler threads
//! ```
//!
//! `--shape flat`: T tasks `inc(i)` then one sum over all of them (T+1 tasks).
//! `--shape tree`: T leaves `inc(i)`, then pairwise adds down to one value (2T-1 tasks).
//! `--api delayed` builds the graph through `delayed!` instead of raw tasks.
//! Prints the same `RESULT` line as the peer script.

use std::error::Error;
use std::time::Instant;

use brisk::core::{Key, Op, Scalar, Value};
use brisk::graph::{Collection, Graph, Task};
use brisk::prelude::*;

fn int(v: &Value) -> i64 {
    match v {
        Value::Scalar(Scalar::I64(x)) => *x,
        Value::Opaque(o) if o.downcast_ref::<i64>().is_some() => {
            *o.downcast_ref::<i64>().expect("checked")
        }
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn inc(x: i64) -> i64 {
    x + 1
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

/// The raw graph, like the peer's dict graph.
fn dict_graph(t: usize, tree: bool) -> (Graph, Key) {
    let mut tasks: Vec<Task> = (0..t)
        .map(|i| {
            Task::root(
                Key::new("inc", [i as u32]),
                Op::local("inc", move |_| Ok(Value::from(i as i64 + 1))),
            )
        })
        .collect();
    let sum = || Op::local("add", |v: Vec<Value>| Ok(Value::from(v.iter().map(int).sum::<i64>())));
    let mut level: Vec<Key> = tasks.iter().map(|t| t.key.clone()).collect();
    if !tree {
        tasks.push(Task::new("out", sum(), level));
        return (Graph::from_tasks(tasks).expect("valid graph"), Key::named("out"));
    }
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let mut next: Vec<Key> = level
            .chunks_exact(2)
            .enumerate()
            .map(|(i, pair)| {
                let key = Key::new(format!("add-{depth}"), [i as u32]);
                tasks.push(Task::new(key.clone(), sum(), pair.to_vec()));
                key
            })
            .collect();
        if level.len() % 2 == 1 {
            next.push(level[level.len() - 1].clone());
        }
        level = next;
    }
    (Graph::from_tasks(tasks).expect("valid graph"), level.remove(0))
}

/// The same graph through the delayed API.
fn delayed_graph(t: usize, tree: bool) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..t as i64).map(|i| delayed!(inc(i))).collect();
    if !tree {
        return delayed!(total(level));
    }
    while level.len() > 1 {
        let odd = (level.len() % 2 == 1).then(|| level[level.len() - 1].clone());
        level = level.chunks_exact(2).map(|p| delayed!(add(&p[0], &p[1]))).chain(odd).collect();
    }
    level.remove(0)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut t = 10_000usize;
    let mut tree = false;
    let mut threads = 2usize;
    let mut api = "dict".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-T" | "--tasks" => t = value()?.parse()?,
            "--shape" => tree = value()? == "tree",
            "--threads" => threads = value()?.parse()?,
            "--api" => api = value()?,
            other => return Err(format!("unknown argument {other}; see the file's header").into()),
        }
    }
    let want = (t as i64) * (t as i64 + 1) / 2;
    let scheduler = Scheduler::threads(threads);
    let shape = if tree { "tree" } else { "flat" };
    println!("## Build: {shape} graph of T = {t} tasks through the {api} API");

    let started = Instant::now();
    let (graph, out) = if api == "delayed" {
        let d = delayed_graph(t, tree);
        let (g, keys) = d.graph()?;
        (g, keys[0].clone())
    } else {
        dict_graph(t, tree)
    };
    let build_s = started.elapsed().as_secs_f64();
    let tasks = graph.len();
    println!("built {tasks} tasks in {build_s:.4} s");

    println!("## Compute on {threads} threads");
    let started = Instant::now();
    let (values, stats) = scheduler.run_with_stats(graph, &[out])?;
    let compute_s = started.elapsed().as_secs_f64();
    let result = int(&values[0]);
    if result != want {
        return Err(format!("wrong answer: {result}, expected {want}").into());
    }
    println!("computed {result} (expected {want}); peak {} bytes held", stats.peak_bytes);
    println!(
        "RESULT peer=brisk-{api}-threads shape={shape} tasks={tasks} result={result} build_s={build_s:.4} compute_s={compute_s:.4} us_per_task={:.3}",
        compute_s * 1e6 / tasks as f64
    );
    Ok(())
}
