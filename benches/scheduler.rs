//! The scheduler's overhead per task on graphs of tiny tasks, and the cost of
//! building graphs through the delayed API.
//!
//! `cargo bench --bench scheduler`. Throughput is reported in tasks, so criterion's
//! "elem/s" is tasks per second; per-task overhead is its inverse. Each benchmark
//! checks its answer once before it is timed.
//!
//! Graphs (all tasks are `x + 1` or sums of a few integers):
//! - `flat_reduce/100000`: 100,000 independent tasks feeding a tree reduction
//!   (8 inputs per node).
//! - `dask_flat/T`: T independent tasks feeding one sum, the graph of
//!   `peer_dask_delayed.py --shape flat`.
//! - `binary_tree/131072`: a binary tree reduction of 2^17 leaves
//!   (`peer_dask_delayed.py --shape tree` at T = 2^17).
//! - `lattice/1000x100`: 100 layers of 1,000 tasks, each taking its three
//!   neighbours in the layer before.
//! - `delayed_build/N`: building (not running) a flat fan-in of N delayed calls.

use brisk::core::{Key, Op, Scalar, Value};
use brisk::graph::{Collection, Graph, Task};
use brisk::prelude::*;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn int(v: &Value) -> i64 {
    match v {
        Value::Scalar(Scalar::I64(x)) => *x,
        other => panic!("{other:?}"),
    }
}

fn inc_root(i: i64) -> Op {
    Op::local("inc", move |_| Ok(Value::from(i + 1)))
}

fn sum() -> Op {
    Op::local("sum", |v: Vec<Value>| Ok(Value::from(v.iter().map(int).sum::<i64>())))
}

/// `leaves` inc tasks reduced in a tree with `fan_in` inputs per node; the root key.
fn reduction(leaves: usize, fan_in: usize, tasks: &mut Vec<Task>) -> Key {
    let mut level: Vec<Key> = (0..leaves)
        .map(|i| {
            let key = Key::new("inc", [i as u32]);
            tasks.push(Task::root(key.clone(), inc_root(i as i64)));
            key
        })
        .collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        level = level
            .chunks(fan_in)
            .enumerate()
            .map(|(i, group)| {
                let key = Key::new(format!("sum-{depth}"), [i as u32]);
                tasks.push(Task::new(key.clone(), sum(), group.to_vec()));
                key
            })
            .collect();
    }
    level.pop().expect("one root")
}

fn tree_graph(leaves: usize, fan_in: usize) -> (Graph, Vec<Key>, i64) {
    let mut tasks = Vec::new();
    let root = reduction(leaves, fan_in, &mut tasks);
    let n = leaves as i64;
    (Graph::from_tasks(tasks).unwrap(), vec![root], n * (n + 1) / 2)
}

fn dask_flat(t: usize) -> (Graph, Vec<Key>, i64) {
    let mut tasks: Vec<Task> =
        (0..t).map(|i| Task::root(Key::new("inc", [i as u32]), inc_root(i as i64))).collect();
    tasks.push(Task::new("sum", sum(), (0..t).map(|i| Key::new("inc", [i as u32]))));
    let n = t as i64;
    (Graph::from_tasks(tasks).unwrap(), vec![Key::named("sum")], n * (n + 1) / 2)
}

fn lattice(width: u32, depth: u32) -> (Graph, Vec<Key>, i64) {
    let mut tasks = Vec::with_capacity((width * depth) as usize);
    for j in 0..width {
        tasks.push(Task::root(Key::new("l", [0, j]), inc_root(0)));
    }
    for layer in 1..depth {
        for j in 0..width {
            let deps = [j.saturating_sub(1), j, (j + 1).min(width - 1)];
            tasks.push(Task::new(
                Key::new("l", [layer, j]),
                Op::local("mix", |v: Vec<Value>| {
                    Ok(Value::from(v.iter().map(int).max().unwrap_or(0) + 1))
                }),
                deps.map(|d| Key::new("l", [layer - 1, d])),
            ));
        }
    }
    let outputs = (0..width).map(|j| Key::new("l", [depth - 1, j])).collect();
    (Graph::from_tasks(tasks).unwrap(), outputs, i64::from(depth))
}

fn bench_graph(
    c: &mut Criterion,
    group: &str,
    id: &str,
    (graph, outputs, want): (Graph, Vec<Key>, i64),
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    g.throughput(Throughput::Elements(graph.len() as u64));
    for threads in [1, 2] {
        let scheduler = Scheduler::threads(threads);
        let out = scheduler.run(graph.clone(), &outputs).unwrap();
        assert_eq!(int(&out[0]), want, "{group}/{id} computed the wrong answer");
        g.bench_function(BenchmarkId::new(format!("threads{threads}"), id), |b| {
            b.iter_batched(
                || graph.clone(),
                |graph| scheduler.run(graph, &outputs).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn scheduler_overhead(c: &mut Criterion) {
    bench_graph(c, "flat_reduce", "100000", tree_graph(100_000, 8));
    bench_graph(c, "dask_flat", "10000", dask_flat(10_000));
    bench_graph(c, "dask_flat", "100000", dask_flat(100_000));
    bench_graph(c, "binary_tree", "131072", tree_graph(1 << 17, 2));
    bench_graph(c, "lattice", "1000x100", lattice(1000, 100));
}

fn inc(x: i64) -> i64 {
    x + 1
}

fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

fn delayed_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("delayed_build");
    g.sample_size(10);
    for n in [10_000usize, 100_000, 1_000_000] {
        g.throughput(Throughput::Elements(n as u64 + 1));
        let build = || {
            let parts: Vec<Delayed<i64>> = (0..n as i64).map(|i| delayed!(inc(i))).collect();
            delayed!(total(parts))
        };
        let (graph, _) = build().graph().unwrap();
        assert_eq!(graph.len(), n + 1);
        g.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| build().graph().unwrap()));
    }
    g.finish();
}

criterion_group!(benches, scheduler_overhead, delayed_build);
criterion_main!(benches);
