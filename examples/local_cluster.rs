//! # Worker processes: a local cluster, step by step
//!
//! The Brisk side of `../shared/bench/peer_dask_distributed.py` (Dask's
//! `LocalCluster` with worker processes); the two print the same `RESULT` line:
//!
//! ```sh
//! cargo run --release --example local_cluster -- --workload tasks --shape flat -T 20000
//! cargo run --release --example local_cluster -- --workload random --n 10000 --chunk 1000
//! cargo run --release --example local_cluster -- --workload groupby FILE.csv --query q1 [--blocksize BYTES]
//! cargo run --release --example local_cluster -- --workload transfer --chunks 64 --chunk 1000
//! cargo run --release --example local_cluster -- --workload futures -T 20000
//! python peer_dask_distributed.py --workload tasks --shape flat -T 20000 --workers 2
//! ```
//!
//! The program is also its own workers: `brisk::worker_if_asked_with` on the
//! first line of `main` turns the copies the cluster starts into workers that
//! know this program's ops (`inc`, `sum`) besides Brisk's own.

use std::error::Error;
use std::time::Instant;

use brisk::core::{Key, Op, OpKind, OpRegistry, Scalar, Value};
use brisk::distributed::{Connections, Input, LocalCluster, ResultId, RunTask, Spawn};
use brisk::frame::Agg;
use brisk::graph::{Graph, Task};
use brisk::prelude::*;
use serde::{Deserialize, Serialize};

/// `i + 1`, a root task.
#[derive(Debug, Serialize, Deserialize)]
struct Inc(i64);

impl OpKind for Inc {
    const NAME: &'static str = "example.inc";
    fn run(&self, _: Vec<Value>) -> brisk::core::Result<Value> {
        Ok(Value::from(self.0 + 1))
    }
}

/// The sum of its inputs: integers, or every element of float arrays.
#[derive(Debug, Serialize, Deserialize)]
struct Sum;

impl OpKind for Sum {
    const NAME: &'static str = "example.sum";
    fn run(&self, inputs: Vec<Value>) -> brisk::core::Result<Value> {
        let mut ints = 0i64;
        let mut floats = 0f64;
        for v in &inputs {
            match v {
                Value::Scalar(Scalar::I64(x)) => ints += x,
                Value::Array(a) => match &**a {
                    brisk::core::ArrayChunk::F64(x) => floats += x.sum(),
                    other => return Err(brisk::core::Error::user(format!("{:?}", other.dtype()))),
                },
                other => return Err(brisk::core::Error::user(other.kind())),
            }
        }
        Ok(if floats != 0.0 { Value::from(floats) } else { Value::from(ints) })
    }
}

fn program_ops(registry: &mut OpRegistry) {
    registry.register::<Inc>().register::<Sum>();
    brisk::register_fn!(registry, inc);
}

/// `x + 1`, as a registered function (the futures workload's `inc`).
fn inc(x: i64) -> i64 {
    x + 1
}

/// The peer's graph: T x inc(i), then one sum (flat) or a binary tree of sums.
fn tasks_graph(t: usize, tree: bool) -> (Graph, Key) {
    let mut tasks: Vec<Task> =
        (0..t).map(|i| Task::root(Key::new("inc", [i as u32]), Op::data(Inc(i as i64)))).collect();
    let mut level: Vec<Key> = tasks.iter().map(|t| t.key.clone()).collect();
    if !tree {
        tasks.push(Task::new("out", Op::data(Sum), level));
        return (Graph::from_tasks(tasks).expect("valid"), Key::named("out"));
    }
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let mut next: Vec<Key> = level
            .chunks_exact(2)
            .enumerate()
            .map(|(i, pair)| {
                let key = Key::new(format!("add-{depth}"), [i as u32]);
                tasks.push(Task::new(key.clone(), Op::data(Sum), pair.to_vec()));
                key
            })
            .collect();
        if level.len() % 2 == 1 {
            next.push(level[level.len() - 1].clone());
        }
        level = next;
    }
    (Graph::from_tasks(tasks).expect("valid"), level.remove(0))
}

fn main() -> Result<(), Box<dyn Error>> {
    brisk::worker_if_asked_with(program_ops);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let num = |name: &str, default: usize| flag(name).map_or(Ok(default), |v| v.parse());
    let workload = flag("--workload").map_or("tasks", String::as_str).to_string();
    let workers = num("--workers", 2)?;
    let mut spawn = Spawn::new(workers);
    spawn.threads = num("--threads-per-worker", 1)?;

    println!("## Step 1: start {workers} worker processes, {} thread(s) each", spawn.threads);
    let started = Instant::now();
    let cluster = std::sync::Arc::new(LocalCluster::start(&spawn, &brisk::ops())?);
    let start_s = started.elapsed().as_secs_f64();
    let addrs: Vec<_> = cluster.processes();
    println!("listening: {addrs:?} (started in {start_s:.3} s)");
    let scheduler = Scheduler::backend(cluster.clone());

    println!("## Step 2: run the {workload} workload");
    let started = Instant::now();
    let extra = match workload.as_str() {
        "tasks" => {
            let t = num("-T", 20_000)?;
            let tree = flag("--shape").is_some_and(|s| s == "tree");
            let (graph, out) = tasks_graph(t, tree);
            let tasks = graph.len();
            let result = scheduler.run(graph, &[out])?;
            let secs = started.elapsed().as_secs_f64();
            let result = result[0].as_scalar().ok_or("not a scalar")?;
            let Scalar::I64(result) = result else { return Err("not an integer".into()) };
            let want = (t as i64) * (t as i64 + 1) / 2;
            assert_eq!(result, want, "the sum of 1..={t}");
            format!("tasks={tasks} result={result} us_per_task={:.1}", secs / tasks as f64 * 1e6)
        }
        "random" => {
            let (n, chunk) = (num("--n", 10_000)?, num("--chunk", 1_000)?);
            let x = random(&[n, n], &[chunk, chunk], 42)?;
            let m: f64 = scheduler.compute(&x.mean(Axes::all()))?;
            format!("n={n} chunk={chunk} result={m:.6}")
        }
        "groupby" => {
            let file = args.iter().find(|a| a.ends_with(".csv")).ok_or("give a CSV file")?;
            let q3 = flag("--query").is_some_and(|q| q == "q3");
            // Brisk's default blocks (4 MiB) unless told: each engine as its users get it.
            let blocksize = num("--blocksize", brisk::frame::DEFAULT_BLOCKSIZE as usize)?;
            let frame = read_csv(file.as_str(), CsvOptions::default().blocksize(blocksize as u64))?;
            let grouped = if q3 {
                frame.groupby(["id3"])?.agg([("v1", Agg::Sum), ("v3", Agg::Mean)])?
            } else {
                let means = [("v1", Agg::Mean), ("v2", Agg::Mean), ("v3", Agg::Mean)];
                frame.groupby(["id1"])?.agg(means)?
            };
            let table = scheduler.compute(&grouped)?;
            let query = if q3 { "q3" } else { "q1" };
            format!("query={query} blocksize={blocksize} groups={}", table.num_rows())
        }
        "futures" => {
            // Dask's `client.map(inc, range(T))` then gather: T futures of a
            // registered function; then 200 `submit(inc, i).result()` one
            // after another.
            let t = num("-T", 20_000)?;
            let client = brisk::client::Client::new(&scheduler);
            let futures = client.compute_map(|i| delayed!(inc(i)), 0..t as i64);
            let total: i64 = client.gather(&futures)?.iter().sum();
            let per_call = started.elapsed().as_secs_f64() / t as f64;
            let round_trips = Instant::now();
            for i in 0..200 {
                client.compute(&delayed!(inc(i))).result(None)?;
            }
            let round_trip = round_trips.elapsed().as_secs_f64() / 200.0;
            format!(
                "futures={t} result={total} us_per_future={:.1} us_round_trip={:.1}",
                per_call * 1e6,
                round_trip * 1e6
            )
        }
        "transfer" => {
            let (chunks, c) = (num("--chunks", 64)?, num("--chunk", 1_000)?);
            transfer(&addrs.iter().map(|(_, a)| *a).collect::<Vec<_>>(), chunks, c)?
        }
        other => return Err(format!("unknown workload {other}").into()),
    };
    let compute_s = started.elapsed().as_secs_f64();
    println!("{extra}");
    drop(scheduler);
    drop(cluster);
    println!(
        "RESULT peer=brisk-processes workload={workload} workers={workers} start_s={start_s:.3} compute_s={compute_s:.3} {extra}"
    );
    Ok(())
}

/// `chunks` arrays of c x c ones made on one worker, each summed on the other:
/// every byte crosses from worker to worker, peer to peer.
fn transfer(
    addrs: &[std::net::SocketAddr],
    chunks: usize,
    c: usize,
) -> Result<String, Box<dyn Error>> {
    let [a, b, ..] = addrs else { return Err("transfer needs 2 workers".into()) };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let conns = Connections::default();
    let ones = Value::Array(std::sync::Arc::new(brisk::core::ArrayChunk::F64(
        ndarray::ArrayD::from_elem(ndarray::IxDyn(&[c, c]), 1.0),
    )));
    let made = |i: usize| Key::new("made", [i as u32]);
    runtime.block_on(async {
        for i in 0..chunks {
            let op = Op::Const(ones.clone()).encode()?;
            conns
                .run(
                    *a,
                    &RunTask {
                        compute: 1,
                        key: made(i),
                        op,
                        inputs: vec![],
                        inline: false,
                        quick: false,
                        priority: 0,
                    },
                )
                .await?;
        }
        let started = Instant::now();
        let sums = (0..chunks).map(|i| {
            let task = RunTask {
                compute: 1,
                key: Key::new("sum", [i as u32]),
                op: Op::data(Sum).encode().expect("a data op"),
                inputs: vec![Input { key: made(i), at: *a, item: None, compute: None }],
                inline: false,
                quick: false,
                priority: 0,
            };
            let conns = &conns;
            async move { conns.run(*b, &task).await }
        });
        futures::future::try_join_all(sums).await?;
        let secs = started.elapsed().as_secs_f64();
        let total: f64 = {
            let mut total = 0.0;
            for i in 0..chunks {
                let id = ResultId { compute: 1, key: Key::new("sum", [i as u32]) };
                if let Some(Scalar::F64(x)) = conns.fetch(*b, &id).await?.as_scalar() {
                    total += x;
                }
            }
            total
        };
        conns.free_compute(*a, 1).await?;
        conns.free_compute(*b, 1).await?;
        let moved = (chunks * c * c * 8) as f64;
        Ok(format!(
            "chunks={chunks} chunk_bytes={} result={total:.0} gb_per_s={:.3}",
            c * c * 8,
            moved / secs / 1e9
        ))
    })
}
