//! Graphs on worker processes: the same answers as the thread scheduler, bit for
//! bit, and nothing left running after.
//!
//! This test is its own `main` (no libtest harness): it is the spawn pattern a
//! user's program follows, so its worker processes are this very program,
//! re-executed, turned into workers by `worker_if_asked_with` on its first line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use brisk::core::{Key, Op, OpKind, OpRegistry, Scalar, Value};
use brisk::distributed::{LocalCluster, Spawn};
use brisk::graph::{Graph, Task};
use brisk::prelude::*;
use serde::{Deserialize, Serialize};

/// A test op: mixes its inputs (in order: a different order gives another
/// answer) into one float, after sleeping `sleep_ms`.
#[derive(Debug, Serialize, Deserialize)]
struct Mix {
    salt: u64,
    sleep_ms: u64,
}

impl OpKind for Mix {
    const NAME: &'static str = "test.mix";
    fn run(&self, inputs: Vec<Value>) -> brisk::core::Result<Value> {
        std::thread::sleep(Duration::from_millis(self.sleep_ms));
        let mut acc = self.salt as f64 * 0.001 + 1.0;
        for (i, v) in inputs.iter().enumerate() {
            let Some(Scalar::F64(x)) = v.as_scalar() else {
                return Err(brisk::core::Error::user(format!("not a float: {}", v.kind())));
            };
            acc = acc * 1.000_1 + x / (i as f64 + 1.5);
        }
        Ok(Value::from(acc))
    }
}

fn program_ops(registry: &mut OpRegistry) {
    registry.register::<Mix>();
}

/// A random DAG of `n` Mix tasks from `seed`: each takes up to 3 earlier tasks
/// as inputs (repeats allowed); the last few are the outputs.
fn random_dag(seed: u64, n: usize, sleep_ms: u64) -> (Graph, Vec<Key>) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let key = Key::new("mix", [i as u32]);
        let op = Op::data(Mix { salt: i as u64, sleep_ms });
        let inputs: Vec<Key> = match i {
            0 => vec![],
            _ => (0..next(4)).map(|_| Key::new("mix", [next(i) as u32])).collect(),
        };
        tasks.push(if inputs.is_empty() {
            Task::root(key, op)
        } else {
            Task::new(key, op, inputs)
        });
    }
    let outputs = (n.saturating_sub(3)..n).map(|i| Key::new("mix", [i as u32])).collect();
    (Graph::from_tasks(tasks).unwrap(), outputs)
}

fn bits(values: &[Value]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.encode().unwrap()).collect()
}

fn batch_bits(batch: &RecordBatch) -> Vec<u8> {
    Value::Batch(batch.clone()).encode().unwrap()
}

/// Processes whose parent is this one.
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ").map(|(_, rest)| rest.split(' ').nth(1) == Some(&me))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// This process's threads whose name starts with `brisk-` but is not a thread
/// scheduler's (those live as long as their scheduler, by design).
fn cluster_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return vec![] };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("brisk-client") || n.starts_with("brisk-worker-log"))
        .collect()
}

/// Fails unless the cluster's processes, threads and ports are all gone.
fn nothing_left(addrs: &[std::net::SocketAddr]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while (!children().is_empty() || !cluster_threads().is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(children(), Vec::<u32>::new(), "worker processes left running");
    assert_eq!(cluster_threads(), Vec::<String>::new(), "threads left running");
    for addr in addrs {
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still listens");
    }
}

fn spawn(workers: usize, threads: usize) -> Spawn {
    let mut spawn = Spawn::new(workers);
    spawn.threads = threads;
    // Each worker on its own loopback address.
    spawn.hosts =
        (1..=workers as u8).map(|i| std::net::Ipv4Addr::new(127, 0, 0, i).into()).collect();
    spawn
}

/// A cluster of `workers` processes, and their addresses.
fn local(workers: usize, threads: usize) -> (Scheduler, Vec<std::net::SocketAddr>) {
    let started = Instant::now();
    let cluster = LocalCluster::start(&spawn(workers, threads), &brisk::ops()).unwrap();
    eprintln!("  {workers} workers started in {:?}", started.elapsed());
    let addrs = cluster.processes().into_iter().map(|(_, addr)| addr).collect();
    (Scheduler::backend(Arc::new(cluster)), addrs)
}

fn random_dags_match_the_thread_scheduler() {
    let (cluster, addrs) = local(2, 2);
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_ne!(addrs[0].ip(), addrs[1].ip());
    for seed in 0..12 {
        let n = 1 + (seed as usize * 37) % 120;
        let (graph, outputs) = random_dag(seed, n, 0);
        let want = Scheduler::threads(3).run(graph, &outputs).unwrap();
        let (graph, outputs) = random_dag(seed, n, 0);
        let got = cluster.run(graph, &outputs).unwrap();
        assert_eq!(bits(&got), bits(&want), "seed {seed}, {n} tasks");
    }
    drop(cluster);
    nothing_left(&addrs);
}

fn arrays_and_frames_match_the_thread_scheduler() {
    let (cluster, addrs) = local(2, 1);
    let threads = Scheduler::threads(2);
    let x = random(&[400, 300], &[70, 90], 42).unwrap();
    let mean = x.mean(Axes::all());
    let (a, b): (f64, f64) = (cluster.compute(&mean).unwrap(), threads.compute(&mean).unwrap());
    assert_eq!(a.to_bits(), b.to_bits());
    let sums = x.sum(Axes::from([0])).unwrap();
    let (a, b) = (cluster.compute(&sums).unwrap(), threads.compute(&sums).unwrap());
    assert_eq!(a, b);

    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/frame/tests/data/g_nulls.csv");
    let frame = read_csv(fixtures, CsvOptions::default().blocksize(3000)).unwrap();
    assert!(frame.npartitions() > 3);
    let grouped = frame.groupby(["id1", "id2"]).unwrap().mean().unwrap();
    let (a, b) = (cluster.compute(&grouped).unwrap(), threads.compute(&grouped).unwrap());
    assert_eq!(batch_bits(&a.to_batch()), batch_bits(&b.to_batch()));
    assert!(a.num_rows() > 10);
    let sorted = frame.sort_values(["v3"], true).unwrap();
    let (a, b) = (cluster.compute(&sorted).unwrap(), threads.compute(&sorted).unwrap());
    assert_eq!(batch_bits(&a.to_batch()), batch_bits(&b.to_batch()));
    drop(cluster);
    nothing_left(&addrs);
}

fn closures_are_refused_before_anything_runs() {
    let (cluster, addrs) = local(1, 1);
    fn inc(x: i64) -> i64 {
        x + 1
    }
    let x = delayed!(inc(1));
    let err = cluster.compute(&x).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, brisk::scheduler::Error::LocalOp { .. }), "{message}");
    assert!(message.contains("inc") && message.contains("register"), "{message}");
    drop(cluster);
    nothing_left(&addrs);
}

fn main() {
    brisk::worker_if_asked_with(program_ops);
    let cases: &[(&str, fn())] = &[
        ("random_dags_match_the_thread_scheduler", random_dags_match_the_thread_scheduler),
        (
            "arrays_and_frames_match_the_thread_scheduler",
            arrays_and_frames_match_the_thread_scheduler,
        ),
        ("closures_are_refused_before_anything_runs", closures_are_refused_before_anything_runs),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for (name, case) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        eprintln!("test {name} ...");
        case();
        eprintln!("test {name} ... ok ({:?})", started.elapsed());
    }
}
