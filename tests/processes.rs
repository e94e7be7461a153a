//! Graphs on worker processes: the same answers as the thread scheduler, bit for
//! bit, and nothing left running after.
//!
//! This test is its own `main` (no libtest harness): it is the spawn pattern a
//! user's program follows, so its worker processes are this very program,
//! re-executed, turned into workers by `worker_if_asked_with` on its first line.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use brisk::core::{Key, Op, OpKind, OpRegistry, Scalar, Value};
use brisk::distributed::{LocalCluster, Spawn};
use brisk::graph::{Graph, Task};
use brisk::prelude::*;
use brisk::scheduler::Callback;
use serde::{Deserialize, Serialize};

mod cluster;
use cluster::{ABORT, Mix, children, fast, layered_dag, numbers};

/// A root test op: `n` floats from `seed`, as an array chunk.
#[derive(Debug, Serialize, Deserialize)]
struct Block {
    seed: u64,
    n: usize,
}

impl OpKind for Block {
    const NAME: &'static str = "test.block";
    fn run(&self, _: Vec<Value>) -> brisk::core::Result<Value> {
        let mut next = numbers(self.seed);
        let values: Vec<f64> = (0..self.n).map(|_| next(1 << 30) as f64 / 7.0).collect();
        let chunk = ndarray::ArrayD::from_shape_vec(vec![self.n], values).unwrap();
        Ok(Value::from(brisk::core::ArrayChunk::F64(chunk)))
    }
}

/// A checksum of all its array inputs, in order.
#[derive(Debug, Serialize, Deserialize)]
struct Checksum;

impl OpKind for Checksum {
    const NAME: &'static str = "test.checksum";
    fn run(&self, inputs: Vec<Value>) -> brisk::core::Result<Value> {
        let mut acc = 0.0f64;
        for v in &inputs {
            let Value::Array(chunk) = v else { panic!("not an array: {}", v.kind()) };
            let brisk::core::ArrayChunk::F64(a) = chunk.as_ref() else { panic!("not f64") };
            acc = a.iter().fold(acc, |acc, x| acc * 0.999_9 + x);
        }
        Ok(Value::from(acc))
    }
}

/// Mixes its inputs as [`Mix`] does, into a list of `width` floats.
#[derive(Debug, Serialize, Deserialize)]
struct Spread {
    salt: u64,
    width: usize,
    sleep_ms: u64,
}

impl OpKind for Spread {
    const NAME: &'static str = "test.spread";
    fn run(&self, inputs: Vec<Value>) -> brisk::core::Result<Value> {
        let mixed = Mix { salt: self.salt, sleep_ms: self.sleep_ms }.run(inputs)?;
        let Some(Scalar::F64(x)) = mixed.as_scalar() else { unreachable!("Mix makes a float") };
        let items: Vec<Value> =
            (0..self.width).map(|i| Value::from(x * (i as f64 + 1.1))).collect();
        Ok(Value::from(items))
    }
}

/// Item `i` of a list. On worker processes it must never run: the scheduler
/// reads the item where it is needed instead.
#[derive(Debug, Serialize, Deserialize)]
struct Pick(usize);

impl OpKind for Pick {
    const NAME: &'static str = "test.pick";
    fn run(&self, inputs: Vec<Value>) -> brisk::core::Result<Value> {
        if std::env::var_os("BRISK_WORKER_PROCESS").is_some() {
            return Err(brisk::core::Error::user("a list item ran as a task on a worker"));
        }
        match &inputs[..] {
            [Value::List(items)] => Ok(items[self.0].clone()),
            _ => Err(brisk::core::Error::user("pick takes one list")),
        }
    }
    fn list_item(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// Layers of `Spread` tasks, each taking picks of items of the layer before (a
/// shuffle); the outputs are items of the last layer's lists.
fn shuffle_dag(seed: u64, layers: usize, width: usize, sleep_ms: u64) -> (Graph, Vec<Key>) {
    let mut next = numbers(seed);
    let spread = |layer: usize, i: usize| Key::new("spread", [layer as u32, i as u32]);
    let pick =
        |layer: usize, i: usize, j: usize| Key::new("pick", [layer as u32, i as u32, j as u32]);
    let mut tasks = Vec::new();
    for layer in 0..layers {
        for i in 0..width {
            let op = Op::data(Spread { salt: (layer * width + i) as u64, width, sleep_ms });
            let inputs: Vec<Key> = match layer {
                0 => vec![],
                _ => (0..1 + next(3)).map(|_| pick(layer - 1, next(width), i)).collect(),
            };
            tasks.push(Task::new(spread(layer, i), op, inputs));
            for j in 0..width {
                tasks.push(Task::new(pick(layer, i, j), Op::data(Pick(j)), [spread(layer, i)]));
            }
        }
    }
    let outputs = (0..width).map(|i| pick(layers - 1, i, (i * 7) % width)).collect();
    (Graph::from_tasks(tasks).unwrap(), outputs)
}

fn program_ops(registry: &mut OpRegistry) {
    registry.register::<Mix>();
    registry.register::<Block>().register::<Checksum>();
    registry.register::<Spread>().register::<Pick>();
    brisk::register_fn!(registry, readings);
    brisk::register_fn!(registry, summarize);
    brisk::register_fn!(registry, combine);
    brisk::register_fn!(registry, try parse);
    brisk::register_fn!(registry, whose);
    brisk::register_fn!(registry, add_one);
    brisk::register_fn!(registry, try fail_on);
    brisk::register_fn!(registry, nap);
    brisk::register_fn!(registry, try flaky);
    brisk::register_fn!(registry, stamp);
    brisk::register_fn!(registry, mark);
    brisk::register_fn!(registry, total);
    brisk::register_fn!(registry, exclusive);
    brisk::register_fn!(registry, produce);
    brisk::register_fn!(registry, consume);
    brisk::register_fn!(registry, await_go);
    brisk::register_fn!(registry, lease_or_hang);
}

/// Notes that it ran (a line in `dir/i`): `i * i`.
fn stamp(dir: String, i: i64) -> i64 {
    use std::io::Write;
    let path = std::path::Path::new(&dir).join(i.to_string());
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    writeln!(file, "ran").unwrap();
    i * i
}

/// Notes `label` in the file `order` (the order tasks started in), then
/// sleeps `ms`.
fn mark(order: String, label: String, ms: i64) -> String {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(order).unwrap();
    writeln!(file, "{label}").unwrap();
    drop(file);
    std::thread::sleep(Duration::from_millis(ms as u64));
    label
}

fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

/// Under the lock "t-db": claims the variable "t-holder", waits, and checks
/// nobody else claimed it meanwhile (which only the lock prevents, tasks
/// running in two processes).
fn exclusive(i: i64) -> bool {
    use brisk::scheduler::coordination::{Lock, Variable};
    let db = Lock::new("t-db");
    let _held = db.acquire(Some(Duration::from_secs(20))).expect("the lock within 20 s");
    let holder: Variable<String> = Variable::new("t-holder").unwrap();
    let me = format!("{}-{i}", std::process::id());
    let free = holder.get(Some(Duration::ZERO)).is_none_or(|h| h.is_empty());
    holder.set(me.clone());
    std::thread::sleep(Duration::from_millis(20));
    let still = holder.get(Some(Duration::ZERO)) == Some(me);
    holder.set(String::new());
    free && still
}

/// Puts 0..n on the queue "t-q".
fn produce(n: i64) -> i64 {
    let queue: brisk::scheduler::coordination::Queue<i64> =
        brisk::scheduler::coordination::Queue::new("t-q", 4).unwrap();
    for i in 0..n {
        queue.put(i, Some(Duration::from_secs(20))).expect("room within 20 s");
    }
    n
}

/// Takes n items off the queue "t-q": their sum.
fn consume(n: i64) -> i64 {
    let queue: brisk::scheduler::coordination::Queue<i64> =
        brisk::scheduler::coordination::Queue::new("t-q", 4).unwrap();
    (0..n).map(|_| queue.get(Some(Duration::from_secs(20))).expect("an item within 20 s")).sum()
}

/// Whether the event "t-go" was set within 20 s.
fn await_go(_: i64) -> bool {
    brisk::scheduler::coordination::Event::new("t-go").wait(Some(Duration::from_secs(20)))
}

/// Takes the one lease of "t-lease" (leases last a minute); the first time
/// (no `marker` file yet) makes the marker and hangs holding it, after that
/// says whether it got the lease within 10 s.
fn lease_or_hang(marker: String) -> bool {
    let semaphore =
        brisk::scheduler::coordination::Semaphore::new("t-lease", 1, Duration::from_secs(60));
    let lease = semaphore.acquire(Some(Duration::from_secs(10)));
    if std::fs::OpenOptions::new().write(true).create_new(true).open(&marker).is_ok() {
        std::thread::sleep(Duration::from_secs(60));
    }
    lease.is_some()
}

fn add_one(x: i64) -> i64 {
    x + 1
}

fn fail_on(x: i64) -> Result<i64, String> {
    match x {
        3 => Err("three is not allowed".into()),
        x => Ok(x),
    }
}

/// Sleeps `ms` milliseconds, or until its compute is let go: a task that
/// hangs for a while, and checks its cancellation token.
fn nap(ms: i64) -> i64 {
    let until = Instant::now() + Duration::from_millis(ms as u64);
    while Instant::now() < until && !brisk::client::cancelled() {
        std::thread::sleep(Duration::from_millis(5));
    }
    ms
}

/// Fails the first time it runs for `marker` (a file it makes), then gives 7.
fn flaky(marker: String) -> Result<i64, String> {
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&marker) {
        Ok(_) => Err(format!("first try of {marker} fails")),
        Err(_) => Ok(7),
    }
}

/// A value of the program's own type, crossing processes through serde.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Summary {
    n: u64,
    total: f64,
    sites: Vec<String>,
    /// The processes that made it.
    pids: Vec<u32>,
}

/// Part `part`'s readings: floats whose sum depends on the order they are added in.
fn readings(part: u64, n: usize) -> Vec<f64> {
    let mut next = numbers(part + 1);
    (0..n).map(|_| next(1 << 20) as f64 * 1e-3 + 1e10 * (next(3) as f64 - 1.0)).collect()
}

fn summarize(site: String, xs: Vec<f64>) -> Summary {
    let total = xs.iter().fold(0.0, |acc, x| acc * 0.999 + x);
    Summary { n: xs.len() as u64, total, sites: vec![site], pids: vec![std::process::id()] }
}

/// Combines in the order given (each step weighs what came before).
fn combine(prior: Summary, parts: Vec<Summary>) -> Summary {
    parts.into_iter().fold(prior, |mut acc, p| {
        acc.n += p.n;
        acc.total = acc.total * 0.5 + p.total;
        acc.sites.extend(p.sites);
        acc.pids.extend(p.pids);
        acc
    })
}

fn parse(s: String) -> Result<i64, std::num::ParseIntError> {
    s.trim().parse()
}

/// The process that ran it.
fn whose(_: i64) -> u32 {
    std::process::id()
}

/// A random DAG of `n` Mix tasks from `seed`: each takes up to 3 earlier tasks
/// as inputs (repeats allowed); the last few are the outputs.
fn random_dag(seed: u64, n: usize, sleep_ms: u64) -> (Graph, Vec<Key>) {
    let mut next = numbers(seed);
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

/// This process's threads whose name starts with `brisk-` but is not a thread
/// scheduler's (those live as long as their scheduler, by design).
fn cluster_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return vec![] };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| {
            ["brisk-client", "brisk-worker-log", "brisk-futures", "brisk-compute", "brisk-coord"]
                .iter()
                .any(|prefix| n.starts_with(prefix))
        })
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

/// A cluster of `workers` processes; its workers' process ids and addresses.
fn local_with(spawn: &Spawn) -> (Scheduler, Vec<(u32, std::net::SocketAddr)>) {
    let started = Instant::now();
    let cluster = LocalCluster::start(spawn, &brisk::ops()).unwrap();
    eprintln!("  {} workers started in {:?}", spawn.workers, started.elapsed());
    let processes = cluster.processes();
    (Scheduler::backend(Arc::new(cluster)), processes)
}

fn local(workers: usize, threads: usize) -> (Scheduler, Vec<std::net::SocketAddr>) {
    let (scheduler, processes) = local_with(&spawn(workers, threads));
    (scheduler, processes.into_iter().map(|(_, addr)| addr).collect())
}

/// Which task started and finished on which worker, in order.
#[derive(Default)]
struct Record {
    events: Mutex<Vec<(Key, usize, bool)>>,
    /// Input bytes the tasks read.
    read: std::sync::atomic::AtomicU64,
}

impl Callback for Record {
    fn task_read(&self, _: &Key, _: usize, bytes: u64) {
        self.read.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
    fn task_started(&self, key: &Key, worker: usize) {
        self.events.lock().unwrap().push((key.clone(), worker, false));
    }
    fn task_finished(&self, key: &Key, worker: usize) {
        self.events.lock().unwrap().push((key.clone(), worker, true));
    }
}

impl Record {
    fn finished_on(&self, worker: usize) -> usize {
        self.events.lock().unwrap().iter().filter(|(_, w, done)| *done && *w == worker).count()
    }
    /// How many times each key was sent to a worker.
    fn starts(&self) -> HashMap<Key, usize> {
        let mut starts = HashMap::new();
        for (key, _, done) in self.events.lock().unwrap().iter() {
            if !done {
                *starts.entry(key.clone()).or_insert(0) += 1;
            }
        }
        starts
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status();
    assert!(status.unwrap().success(), "kill {signal} {pid}");
}

/// Runs `graph` on `cluster` while `act` waits for `ready` and then acts on the
/// workers: the answer must still be the thread scheduler's.
fn compute_through(
    cluster: Scheduler,
    record: &Arc<Record>,
    seed: u64,
    n: usize,
    act: impl FnOnce() + Send,
) {
    let (graph, outputs) = layered_dag(seed, n / 8, 8, 0);
    let want = Scheduler::threads(2).run(graph, &outputs).unwrap();
    let (graph, outputs) = layered_dag(seed, n / 8, 8, 15);
    // Unfused, so the keys sent are the graph's own.
    let cluster = cluster.callback_arc(record.clone()).fuse(false);
    let got = std::thread::scope(|s| {
        s.spawn(act);
        cluster.run(graph, &outputs)
    });
    assert_eq!(bits(&got.unwrap()), bits(&want));
}

fn a_killed_worker_loses_nothing_and_only_its_keys_are_recomputed() {
    let (cluster, processes) = local_with(&spawn(2, 2));
    let record = Arc::new(Record::default());
    let (victim, _) = processes[1];
    let n = 96;
    compute_through(cluster, &record, 7, n, || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while record.finished_on(1) < 12 {
            assert!(Instant::now() < deadline, "worker 1 finished {} tasks", record.finished_on(1));
            std::thread::sleep(Duration::from_millis(2));
        }
        signal(victim, "-KILL");
    });
    // Keys sent more than once: each had run (or was running) on the killed
    // worker, or was an input or a dependent of one that had.
    let (graph, _) = layered_dag(7, n / 8, 8, 0);
    let events = record.events.lock().unwrap().clone();
    let on_victim: HashSet<Key> =
        events.iter().filter(|(_, w, _)| *w == 1).map(|(k, _, _)| k.clone()).collect();
    let starts = record.starts();
    let again: Vec<&Key> = starts.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k).collect();
    eprintln!("  {} of {} keys sent again after the kill", again.len(), starts.len());
    assert!(!again.is_empty(), "the killed worker's keys were not recomputed");
    assert!(again.len() < n / 2, "too much recomputed: {}", again.len());
    // Lineage: the killed worker's keys, what needed them when it died, and the
    // inputs (to any depth) of those keys, which may have been freed since.
    let deps: HashMap<Key, Vec<Key>> =
        graph.tasks().map(|t| (t.key.clone(), t.deps.clone())).collect();
    let mut lineage: HashSet<Key> = on_victim.clone();
    let mut stack: Vec<Key> = on_victim.iter().cloned().collect();
    while let Some(k) = stack.pop() {
        for d in &deps[&k] {
            if lineage.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    for key in again {
        let near = lineage.contains(key) || deps[key].iter().any(|d| on_victim.contains(d));
        assert!(near, "{key} was recomputed but had nothing to do with the killed worker");
    }
    let addrs: Vec<_> = processes.iter().map(|(_, a)| *a).collect();
    nothing_left(&addrs);
}
/// Quick heartbeats, so deaths are noticed within a test's patience.
fn quick(workers: usize, threads: usize) -> Spawn {
    let mut spawn = spawn(workers, threads);
    spawn.timing.heartbeat = Duration::from_millis(100);
    spawn.timing.death_timeout = Duration::from_millis(800);
    spawn
}

fn list_items_are_read_where_needed_and_survive_a_killed_worker() {
    let (graph, outputs) = shuffle_dag(11, 10, 6, 0);
    let want = Scheduler::threads(2).run(graph.clone(), &outputs).unwrap();
    // Unfused, so that items are tasks of their own (fused, they run in their
    // consumers).
    let (cluster, processes) = local_with(&spawn(2, 1));
    let got = cluster.clone().fuse(false).run(graph, &outputs).unwrap();
    assert_eq!(bits(&got), bits(&want));
    // Killed mid-compute, with lists and their items' readers on both workers.
    let record = Arc::new(Record::default());
    let (victim, _) = processes[1];
    let (graph, outputs) = shuffle_dag(11, 10, 6, 15);
    let cluster = cluster.callback_arc(record.clone()).fuse(false);
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while record.finished_on(1) < 60 {
                assert!(Instant::now() < deadline, "worker 1 finished {}", record.finished_on(1));
                std::thread::sleep(Duration::from_millis(2));
            }
            signal(victim, "-KILL");
        });
        cluster.run(graph, &outputs)
    });
    assert_eq!(bits(&got.unwrap()), bits(&want));
    assert!(record.starts().values().any(|&n| n > 1), "nothing was lost");
    drop(cluster);
    nothing_left(&processes.iter().map(|&(_, a)| a).collect::<Vec<_>>());
}

fn a_stopped_worker_is_declared_dead_and_its_results_are_not_used() {
    let (cluster, processes) = local_with(&quick(2, 2));
    let record = Arc::new(Record::default());
    let (victim, _) = processes[1];
    let started = Instant::now();
    compute_through(cluster.clone(), &record, 11, 96, || {
        while record.finished_on(1) < 12 {
            std::thread::sleep(Duration::from_millis(2));
        }
        signal(victim, "-STOP");
    });
    // The answer waited for the heartbeat timeout, not for the stopped worker.
    assert!(started.elapsed() > Duration::from_millis(800));
    // The stopped worker was ended for good; resuming it changes nothing.
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &victim.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
    assert!(!std::path::Path::new(&format!("/proc/{victim}")).exists(), "{victim} still runs");
    let text = cluster.explain(&Delayed::<i64>::value(1)).unwrap();
    assert!(text.contains("1 worker processes, 2 threads"), "{text}");
    // The cluster goes on with the worker it has left.
    let (graph, outputs) = layered_dag(12, 4, 8, 0);
    let want = Scheduler::threads(2).run(graph, &outputs).unwrap();
    let (graph, outputs) = layered_dag(12, 4, 8, 0);
    assert_eq!(bits(&cluster.run(graph, &outputs).unwrap()), bits(&want));
    drop(cluster);
    let addrs: Vec<_> = processes.iter().map(|(_, a)| *a).collect();
    nothing_left(&addrs);
}

fn a_task_that_kills_its_worker_fails_after_three() {
    let (cluster, processes) = local_with(&quick(3, 1));
    let (mut graph, _) = layered_dag(3, 3, 4, 0);
    let deps = [Key::new("layer", [2u32, 0]), Key::new("layer", [2u32, 1])];
    graph.add_task(Task::new("crash", Op::data(Mix { salt: ABORT, sleep_ms: 0 }), deps)).unwrap();
    let started = Instant::now();
    let err = cluster.run(graph, &[Key::named("crash")]).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            brisk::scheduler::Error::Backend(brisk::scheduler::BackendError::KilledWorker {
                deaths: 3,
                ..
            })
        ),
        "{message}"
    );
    assert_eq!(err.task_key(), Some(&Key::named("crash")));
    assert!(message.contains("'crash'") && message.contains("3 workers"), "{message}");
    eprintln!("  failed in {:?}: {message}", started.elapsed());
    drop(cluster);
    let addrs: Vec<_> = processes.iter().map(|(_, a)| *a).collect();
    nothing_left(&addrs);
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
    let frame = read_csv(fixtures, CsvOptions::default().blocksize(12_000)).unwrap();
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

fn registered_functions_run_in_the_workers_and_match_the_threads() {
    let (cluster, addrs) = local(2, 2);
    let threads = Scheduler::threads(2);
    let parts: Vec<Delayed<Summary>> = (0..12)
        .map(|i| {
            let xs = delayed!(readings(i, 5_000 + i as usize * 7));
            delayed!(summarize(format!("site-{i}"), xs))
        })
        .collect();
    let prior = Summary { n: 1, total: 0.25, sites: vec!["prior".into()], pids: vec![] };
    let total = delayed!(combine(prior.clone(), parts));
    let (a, b) = (cluster.compute(&total).unwrap(), threads.compute(&total).unwrap());
    assert_eq!(a.total.to_bits(), b.total.to_bits(), "{} vs {}", a.total, b.total);
    assert_eq!((a.n, &a.sites), (b.n, &b.sites));
    assert_eq!(a.sites[0], "prior");
    let workers: HashSet<u32> = a.pids.iter().copied().collect();
    assert!(!workers.contains(&std::process::id()), "ran in the client: {workers:?}");
    assert!(workers.iter().all(|pid| children().contains(pid)), "{workers:?}");
    // A constant of the program's own type crosses too.
    let again = delayed!(combine(Delayed::value(prior), Vec::<Delayed<Summary>>::new()));
    assert_eq!(cluster.compute(&again).unwrap().sites, ["prior"]);

    // A fallible function: its value, or its error naming the task.
    let n = delayed!(try parse(" 42 ".to_string()));
    assert_ne!(cluster.compute(&delayed!(whose(n))).unwrap(), std::process::id());
    let bad = delayed!(try parse("4x2".to_string()));
    let message = cluster.compute(&bad).unwrap_err().to_string();
    assert!(message.contains("parse") && message.contains("invalid digit"), "{message}");
    drop(cluster);
    nothing_left(&addrs);
}

fn workers_spill_past_their_memory_limit_and_give_the_same_answer() {
    const MIB: u64 = 1 << 20;
    let mut spawn = spawn(2, 1);
    spawn.memory_limit = 4 * MIB;
    let (cluster, processes) = local_with(&spawn);
    let workers: Vec<_> = processes.iter().map(|&(_, addr)| addr).collect();
    // 48 blocks of 1 MiB, all held until the checksums, which read every one in
    // order: 48 MiB on workers of 4 MiB each.
    let mut tasks: Vec<Task> = (0..48)
        .map(|i| Task::root(Key::new("block", [i]), Op::data(Block { seed: i as u64, n: 1 << 17 })))
        .collect();
    for (name, order) in
        [("forward", (0..48).collect::<Vec<u32>>()), ("backward", (0..48).rev().collect())]
    {
        let inputs: Vec<Key> = order.into_iter().map(|i| Key::new("block", [i])).collect();
        tasks.push(Task::new(Key::named(name), Op::data(Checksum), inputs));
    }
    let graph = Graph::from_tasks(tasks).unwrap();
    let outputs = [Key::named("forward"), Key::named("backward")];
    let want = Scheduler::threads(2).run(graph.clone(), &outputs).unwrap();
    let peak = Mutex::new(vec![0u64; workers.len()]);
    let done = std::sync::atomic::AtomicBool::new(false);
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, &w) in workers.iter().enumerate() {
                    let held = state(w).held_bytes;
                    let mut peak = peak.lock().unwrap();
                    peak[i] = peak[i].max(held);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let got = cluster.clone().fuse(false).run(graph, &outputs);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        got
    });
    assert_eq!(bits(&got.unwrap()), bits(&want));
    let spilled: Vec<u64> = workers.iter().map(|&w| state(w).spilled_bytes).collect();
    let peak = peak.into_inner().unwrap();
    eprintln!("  spilled {spilled:?} bytes; peak bytes in memory {peak:?}");
    assert!(spilled.iter().sum::<u64>() >= 30 * MIB, "spilled {spilled:?}");
    // At most the limit, plus the results that finished while the last spills
    // were being written: more of them while the disk is slow (right after a
    // build, its writes still being flushed, up to 14 MiB was seen); 24 MiB
    // each without spilling.
    assert!(peak.iter().all(|&p| p <= spawn.memory_limit + 12 * MIB), "{peak:?}");
    drop(cluster);
    nothing_left(&workers);
}

fn computes_as_futures_run_on_worker_processes() {
    use brisk::client::{Client, as_completed};
    let (cluster, addrs) = local(2, 1);
    let threads = Scheduler::threads(2);
    let client = Client::new(&cluster);
    let means: Vec<_> = (0..6u64)
        .map(|seed| random(&[300, 200], &[100, 50], seed).unwrap().mean(Axes::all()))
        .collect();
    let futures: Vec<_> = means.iter().map(|m| client.compute(m)).collect();
    let order: Vec<usize> = as_completed(&futures, Some(Duration::from_secs(60))).collect();
    assert_eq!(order.len(), 6, "every compute settled: {order:?}");
    for (future, mean) in futures.iter().zip(&means) {
        let want: f64 = threads.compute(mean).unwrap();
        assert_eq!(future.result(None).unwrap().to_bits(), want.to_bits());
    }
    // Many small outputs (fetched together, a batch per worker): each in its
    // place, and made by both workers.
    let calls: Vec<_> =
        (0..2_000u64).map(|i| delayed!(summarize(format!("s{i}"), readings(i, 3)))).collect();
    let got = client.compute(&calls).result(Some(Duration::from_secs(120))).unwrap();
    let want = threads.compute(&calls).unwrap();
    assert_eq!(got.len(), 2_000);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.n, g.total.to_bits(), &g.sites), (w.n, w.total.to_bits(), &w.sites));
    }
    let pids: HashSet<u32> = got.iter().flat_map(|s| s.pids.clone()).collect();
    assert_eq!(pids.len(), 2, "both workers ran some: {pids:?}");
    // And awaited: compute_async on the cluster.
    let got: f64 = futures::executor::block_on(cluster.compute_async(&means[0])).unwrap();
    assert_eq!(got.to_bits(), threads.compute(&means[0]).unwrap().to_bits());
    drop(client);
    drop(cluster);
    nothing_left(&addrs);
}

/// The futures of a client of `cluster` (worker processes, or a scheduler
/// process and its workers) keep `concurrent.futures`' and Dask's semantics.
fn futures_keep_their_semantics_on(cluster: &Scheduler, workers: &[std::net::SocketAddr]) {
    use brisk::client::{Client, FutureError, Options, Return, as_completed, wait};
    let minute = Some(Duration::from_secs(60));
    let client = Client::new(cluster);
    // Dask's map then gather; as_completed yields each future once.
    let futures = client.compute_map(|i| delayed!(add_one(i)), 0..500i64);
    let mut order: Vec<usize> = as_completed(&futures, minute).collect();
    order.sort_unstable();
    assert_eq!(order, (0..500).collect::<Vec<_>>());
    assert_eq!(client.gather(&futures).unwrap(), (1..=500).collect::<Vec<i64>>());
    // A failing call fails alone, with its task's key; the others of its
    // compute are unharmed.
    let checked = client.compute_map(|i| delayed!(try fail_on(i)), 0..6i64);
    for (i, future) in checked.iter().enumerate() {
        match (i, future.result(minute)) {
            (3, Err(FutureError::Failed { key, message })) => {
                assert!(key.starts_with("fail_on-") && key == future.key(), "{key}");
                assert!(message.contains("three is not allowed"), "{message}");
            }
            (i, Ok(v)) if i != 3 => assert_eq!(v, i as i64),
            other => panic!("{other:?}"),
        }
    }
    assert!(checked[3].exception().is_some() && checked[2].exception().is_none());
    // Futures as arguments: computed once their inputs are, without a wait here.
    let next =
        client.compute_with(futures[9].clone(), Options::default(), |v| delayed!(add_one(v)));
    assert_eq!(next.result(minute).unwrap(), 11);
    let after =
        client.compute_with(checked[3].clone(), Options::default(), |v| delayed!(add_one(v)));
    match after.result(minute) {
        Err(FutureError::Failed { message, .. }) => {
            assert!(message.contains("its input") && message.contains("fail_on-"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Retries: a task failing its first try fails without, succeeds with one.
    let dir = tempfile::tempdir().unwrap();
    let marker = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let once = client.compute(&delayed!(try flaky(marker("a"))));
    assert!(matches!(once.result(minute), Err(FutureError::Failed { .. })));
    let retried = Options { retries: 1, ..Options::default() };
    let twice = client.compute_opts(retried, &delayed!(try flaky(marker("b"))));
    assert_eq!(twice.result(minute).unwrap(), 7);
    // A hanging task: wait and result return at their timeouts, the rest goes on.
    let slow = client.compute(&delayed!(nap(20_000)));
    let quick = client.compute(&delayed!(add_one(41)));
    let started = Instant::now();
    let both = [slow.clone(), quick.clone()];
    let (done, not_done) = wait(&both, Some(Duration::from_secs(10)), Return::FirstCompleted);
    assert_eq!((done, not_done), (vec![1], vec![0]));
    assert_eq!(quick.result(None).unwrap(), 42);
    let (done, not_done) = wait(&both, Some(Duration::from_millis(200)), Return::AllCompleted);
    assert_eq!((done, not_done), (vec![1], vec![0]), "at the timeout");
    assert!(matches!(
        slow.result(Some(Duration::from_millis(50))),
        Err(FutureError::Timeout { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // Cancelling it settles it at once; the client goes on, and the task, let
    // go by its compute, sees its cancellation token and stops.
    assert!(slow.running() && slow.cancel() && slow.cancelled());
    assert_eq!(client.compute(&delayed!(add_one(1))).result(minute).unwrap(), 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while workers.iter().any(|&w| state(w).running > 0) {
        assert!(Instant::now() < deadline, "the cancelled task still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A request the workers cannot run, gathered with others: it fails alone.
    let busy: Vec<_> = (0..2).map(|_| client.compute(&delayed!(nap(300)))).collect();
    let refused = client.compute(&delayed!(add_one(1)).map(|x| x + 1));
    let fine = client.compute(&delayed!(add_one(2)));
    assert!(matches!(refused.result(minute), Err(FutureError::Failed { .. })));
    assert_eq!(fine.result(minute).unwrap(), 3);
    client.gather(&busy).unwrap();
    // Closures cannot leave the process: their futures say how to go on.
    match client.submit(|| 1).result(None) {
        Err(FutureError::Failed { message, .. }) => assert!(message.contains("register_fn!")),
        other => panic!("{other:?}"),
    }
    // Dropping the client cancels what it still wants; the workers free all.
    let hanging = client.compute(&delayed!(nap(20_000)));
    while !hanging.running() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let dropped = Instant::now();
    drop(client);
    assert!(matches!(
        hanging.result(Some(Duration::from_secs(5))),
        Err(FutureError::Cancelled { .. })
    ));
    assert!(dropped.elapsed() < Duration::from_secs(3), "{:?}", dropped.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while workers.iter().any(|&w| state(w).held > 0 || state(w).running > 0) {
        let left: Vec<_> = workers.iter().map(|&w| (state(w).held, state(w).running)).collect();
        assert!(Instant::now() < deadline, "results left on the workers: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits a moment to see the task wait, then sets the event "t-go" here: the
/// task, started on `client`'s workers, wakes.
fn an_event_set_here_wakes_a_task(client: &brisk::client::Client) {
    let waiter = client.compute(&delayed!(await_go(0)));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.done(), "it waits for the event");
    brisk::scheduler::coordination::Event::new("t-go").set();
    assert!(waiter.result(Some(Duration::from_secs(10))).unwrap());
}

type Squares = brisk::client::Persisted<Vec<Delayed<i64>>>;

/// Eight `stamp`s noting their runs in `at`, persisted by `client`, and their
/// total computed twice from them.
fn persisted_squares_in(client: &brisk::client::Client, at: &str) -> (Squares, Delayed<i64>) {
    let squares: Vec<_> = (0..8i64).map(|i| delayed!(stamp(at.to_string(), i))).collect();
    let kept = client.persist(&squares).unwrap();
    let sum = delayed!(total((*kept).clone()));
    for _ in 0..2 {
        assert_eq!(client.compute(&sum).result(Some(Duration::from_secs(60))).unwrap(), 140);
    }
    (kept, sum)
}

/// [`persisted_squares_in`] a directory of its own.
fn persisted_squares(client: &brisk::client::Client) -> (tempfile::TempDir, Squares, Delayed<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let (kept, sum) = persisted_squares_in(client, &dir.path().to_string_lossy());
    (dir, kept, sum)
}

fn futures_keep_their_semantics_on_worker_processes() {
    let (cluster, addrs) = local(2, 1);
    futures_keep_their_semantics_on(&cluster, &addrs);
    // Many at once: each in its place, made by both workers.
    let client = brisk::client::Client::new(&cluster);
    let futures =
        client.compute_map(|i: u64| delayed!(summarize(format!("s{i}"), readings(i, 3))), 0..2000);
    let got = client.gather(&futures).unwrap();
    let pids: HashSet<u32> = got.iter().flat_map(|s| s.pids.clone()).collect();
    assert_eq!(pids.len(), 2, "both workers ran some: {pids:?}");
    drop(client);
    drop(cluster);
    nothing_left(&addrs);
}

fn futures_keep_their_semantics_through_a_scheduler_process() {
    let (children, addr, workers, _) = scheduler_and_workers(2);
    let remote = brisk::distributed::Remote::connect(addr, &brisk::ops()).unwrap();
    let cluster = Scheduler::backend(Arc::new(remote));
    futures_keep_their_semantics_on(&cluster, &workers);
    // The scheduler coordinates its workers' tasks, and this client's code.
    let client = brisk::client::Client::new(&cluster);
    let inside = client.compute_map(|i| delayed!(exclusive(i)), 0..6i64);
    assert_eq!(client.gather(&inside).unwrap(), vec![true; 6]);
    an_event_set_here_wakes_a_task(&client);
    // What it persists stays on its workers, and is not made again.
    let (dir, kept, _) = persisted_squares(&client);
    let runs = |i: i64| std::fs::read_to_string(dir.path().join(i.to_string())).unwrap();
    assert!((0..8).all(|i| runs(i).lines().count() == 1));
    assert_eq!(workers.iter().map(|&w| state(w).held).sum::<u64>(), 8);
    drop(kept);
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|&w| state(w).held > 0) {
        assert!(Instant::now() < deadline, "the persisted results were not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client);
    drop(cluster);
    end(children);
    nothing_left(&[&[addr], &workers[..]].concat());
}

fn priorities_order_waiting_work_across_computes() {
    use brisk::client::{Client, Options};
    let (cluster, addrs) = local(1, 1);
    let client = Client::new(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let order = dir.path().join("order").to_string_lossy().into_owned();
    let call = |label: &str, ms: i64| delayed!(mark(order.clone(), label.to_string(), ms));
    // The one thread busy; then low-priority work, then high: queued behind
    // the first, in computes of their own.
    let blocker = client.compute(&call("B", 400));
    while !blocker.running() || std::fs::read_to_string(&order).is_err() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let at = |priority| Options { priority, ..Options::default() };
    let low: Vec<_> =
        (0..2).map(|i| client.compute_opts(at(-1), &call(&format!("L{i}"), 30))).collect();
    std::thread::sleep(Duration::from_millis(50));
    let high: Vec<_> =
        (0..2).map(|i| client.compute_opts(at(5), &call(&format!("H{i}"), 30))).collect();
    client.gather(&low).unwrap();
    client.gather(&high).unwrap();
    blocker.result(None).unwrap();
    let ran: Vec<String> =
        std::fs::read_to_string(&order).unwrap().lines().map(String::from).collect();
    assert_eq!(ran, ["B", "H0", "H1", "L0", "L1"]);
    drop(client);
    drop(cluster);
    nothing_left(&addrs);
}

fn coordination_primitives_reach_tasks_in_worker_processes() {
    use brisk::client::Client;
    let (cluster, processes) = local_with(&spawn(2, 1));
    let client = Client::new(&cluster);
    let minute = Some(Duration::from_secs(60));
    // A lock across processes: no two tasks inside at once.
    let started = Instant::now();
    let inside = client.compute_map(|i| delayed!(exclusive(i)), 0..6i64);
    assert_eq!(client.gather(&inside).unwrap(), vec![true; 6]);
    assert!(started.elapsed() >= Duration::from_millis(120), "{:?}", started.elapsed());
    // A queue from one worker's task to the other's (one thread each, in one
    // compute: the consumer waits on one, the producer goes to the other).
    let both = client.compute(&(delayed!(consume(20)), delayed!(produce(20))));
    assert_eq!(both.result(minute).unwrap(), (190, 20));
    // An event set here (the program coordinates its cluster) wakes a task.
    an_event_set_here_wakes_a_task(&client);
    // A lease held by a worker that dies is taken back at once, not when it
    // expires (a minute): the task, run again elsewhere, gets it within 10 s.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("held").to_string_lossy().into_owned();
    let lease = client.compute(&delayed!(lease_or_hang(marker.clone())));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::path::Path::new(&marker).exists() {
        assert!(Instant::now() < deadline, "the task never took the lease");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (victim, _) = *processes.iter().find(|(_, addr)| state(*addr).running > 0).unwrap();
    let killed = Instant::now();
    signal(victim, "-KILL");
    assert!(lease.result(minute).unwrap(), "the dead worker's lease was not taken back");
    assert!(killed.elapsed() < Duration::from_secs(30), "{:?}", killed.elapsed());
    let semaphore =
        brisk::scheduler::coordination::Semaphore::new("t-lease", 1, Duration::from_secs(60));
    assert_eq!(semaphore.held(), 0);
    drop(client);
    drop(cluster);
    nothing_left(&processes.iter().map(|&(_, addr)| addr).collect::<Vec<_>>());
}

fn a_persisted_collection_stays_on_the_workers_and_survives_a_killed_worker() {
    use brisk::client::Client;
    let record = Arc::new(Record::default());
    let profiler = Arc::new(brisk::diagnostics::Profiler::new());
    let (cluster, processes) = local_with(&spawn(2, 1));
    let cluster = cluster.callback_arc(record.clone()).callback_arc(profiler.clone());
    let client = Client::new(&cluster);
    // Each task of a compute is told done once, those a persist holds too (at
    // once), those run again after a loss not twice.
    let told_once = |from: usize| {
        let tasks = profiler.profile().tasks;
        let keys: Vec<Key> = tasks[from..].iter().map(|t| t.key.clone()).collect();
        let distinct: HashSet<Key> = keys.iter().cloned().collect();
        assert_eq!(distinct.len(), keys.len(), "a task told done twice");
        distinct
    };
    // Kept results are not made again by the computes built on them.
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().to_string_lossy().into_owned();
    let runs = |i: i64| {
        std::fs::read_to_string(dir.path().join(i.to_string())).map_or(0, |s| s.lines().count())
    };
    let (kept, sum) = persisted_squares_in(&client, &at);
    assert!((0..8).all(|i| runs(i) == 1), "{:?}", (0..8).map(runs).collect::<Vec<_>>());
    drop(kept);
    assert_eq!(client.compute(&sum).result(Some(Duration::from_secs(60))).unwrap(), 140);
    assert!((0..8).all(|i| runs(i) == 2), "let go, they are made again");
    let threads = Scheduler::threads(2);
    let x = random(&[400, 300], &[100, 100], 7).unwrap().exp();
    let persisted = client.persist(&x).unwrap();
    let chunks: HashSet<Key> = brisk::graph::Collection::output_keys(&x).into_iter().collect();
    let held: u64 = processes.iter().map(|&(_, a)| state(a).held).sum();
    assert_eq!(held as usize, chunks.len(), "each chunk kept on a worker");
    record.events.lock().unwrap().clear();
    // Built on it: the chunks are not made again, and the bits are the threads'.
    let mean = persisted.mean(Axes::all());
    let want: f64 = threads.compute(&mean).unwrap();
    let mark = profiler.profile().tasks.len();
    let got = client.compute(&mean).result(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(got.to_bits(), want.to_bits());
    let told = told_once(mark);
    assert!(told.is_superset(&chunks), "the held chunks are told done");
    let sums = persisted.sum(Axes::from([0])).unwrap();
    let got = client.compute(&sums).result(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(got, threads.compute(&sums).unwrap());
    let started: HashSet<Key> = record.starts().into_keys().collect();
    assert!(started.is_disjoint(&chunks), "persisted chunks ran again");
    assert!(!started.is_empty());
    // A worker holding some dies: what it held is made again from lineage.
    let (victim, _) = processes[0];
    signal(victim, "-KILL");
    let again = persisted.mean(Axes::from([1])).unwrap();
    let mark = profiler.profile().tasks.len();
    let got = client.compute(&again).result(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(got, threads.compute(&again).unwrap());
    told_once(mark);
    // Let go: the survivor holds nothing.
    drop(persisted);
    let survivor = processes[1].1;
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(survivor).held > 0 {
        assert!(Instant::now() < deadline, "the persisted chunks were not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client);
    drop(cluster);
    nothing_left(&processes.iter().map(|&(_, addr)| addr).collect::<Vec<_>>());
}

fn closures_are_refused_before_anything_runs() {
    let (cluster, addrs) = local(1, 1);
    fn inc(x: i64) -> i64 {
        x + 1
    }
    let x = delayed!(inc(1));
    let err = cluster.compute(&x).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, brisk::scheduler::Error::UnknownFunction { .. }), "{message}");
    assert!(message.contains("'inc'") && message.contains("register_fn!"), "{message}");
    let doubled = delayed!(try parse("2".to_string())).map(|x| x * 2);
    let err = cluster.compute(&doubled).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, brisk::scheduler::Error::LocalOp { .. }), "{message}");
    assert!(message.contains("map") && message.contains("register"), "{message}");
    drop(cluster);
    nothing_left(&addrs);
}

/// A role this program plays as a child of the tests below: `scheduler` (a
/// scheduler process), `worker SCHEDULER` (a worker of it), `client SCHEDULER` (a
/// client computing a long graph). Each prints its address (or `computing`) and
/// ends when its stdin closes.
const ROLE: &str = "BRISK_PROCESSES_TEST_ROLE";

fn play(role: &str) -> ! {
    use std::io::Write;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_on_eof = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        stop_on_eof.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let localhost = "127.0.0.1:0".parse().unwrap();
    let mut words = role.split(' ');
    match (words.next(), words.next().map(|a| a.parse().unwrap())) {
        (Some("scheduler"), None) => {
            let security = brisk::distributed::Security::none();
            let server =
                brisk::distributed::SchedulerServer::start(localhost, fast(), &security).unwrap();
            println!("{}", server.addr());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        (Some("worker"), Some(scheduler)) => {
            let started = |addr| println!("{addr}");
            let options = brisk::distributed::WorkerOptions::new(localhost, 1, 1 << 30);
            brisk::distributed::serve_worker(scheduler, &options, brisk::ops(), &stop, started)
                .unwrap();
        }
        (Some("client"), Some(scheduler)) => {
            let remote = brisk::distributed::Remote::connect(scheduler, &brisk::ops()).unwrap();
            let (graph, outputs) = layered_dag(3, 16, 8, 150);
            println!("computing");
            let _ = std::io::stdout().flush();
            let _ = Scheduler::backend(Arc::new(remote)).fuse(false).run(graph, &outputs);
        }
        _ => panic!("no role '{role}'"),
    }
    std::process::exit(0)
}

/// A child playing `role`, with its first line of output (an address).
fn child(
    role: &str,
) -> (std::process::Child, String, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    (child, first, lines)
}

/// A child's standard error, gathered as it comes.
fn gather_stderr(child: &mut std::process::Child) -> Arc<Mutex<String>> {
    use std::io::Read;
    let text = Arc::new(Mutex::new(String::new()));
    let (mut from, into) = (child.stderr.take().unwrap(), text.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// What the worker at `addr` says of itself.
fn state(addr: std::net::SocketAddr) -> brisk::distributed::Hello {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(brisk::distributed::Connections::default().hello(addr)).unwrap()
}

/// A scheduler process and `n` worker processes registered with it.
fn scheduler_and_workers(
    n: usize,
) -> (Vec<std::process::Child>, std::net::SocketAddr, Vec<std::net::SocketAddr>, Arc<Mutex<String>>)
{
    let (mut scheduler, addr, _) = child("scheduler");
    let log = gather_stderr(&mut scheduler);
    let mut children = vec![scheduler];
    let mut workers = vec![];
    for _ in 0..n {
        let (worker, at, _) = child(&format!("worker {addr}"));
        children.push(worker);
        workers.push(at.parse().unwrap());
    }
    (children, addr.parse().unwrap(), workers, log)
}

/// Ends the children (their stdin closed, then waited for).
fn end(children: Vec<std::process::Child>) {
    for mut c in children {
        drop(c.stdin.take());
        let _ = c.wait();
    }
}

fn a_stopped_scheduler_fails_the_compute_within_the_timeout() {
    let (children, addr, workers, _) = scheduler_and_workers(2);
    let security = brisk::distributed::Security::none();
    let remote =
        brisk::distributed::Remote::connect_with(addr, &brisk::ops(), fast(), security).unwrap();
    let cluster = Scheduler::backend(Arc::new(remote)).fuse(false);
    let (graph, outputs) = layered_dag(5, 16, 8, 100);
    let pid = children[0].id();
    let stopped = std::thread::scope(|s| {
        let stopper = s.spawn(|| {
            while workers.iter().all(|&w| state(w).running == 0) {
                std::thread::sleep(Duration::from_millis(10));
            }
            signal(pid, "-STOP");
            Instant::now()
        });
        let err = cluster.run(graph, &outputs).unwrap_err();
        let stopped = stopper.join().unwrap();
        let message = err.to_string();
        assert!(message.contains("heartbeat") && message.contains(&addr.to_string()), "{message}");
        stopped.elapsed()
    });
    // The timeout (1 s) plus at most one heartbeat's wait (0.1 s), and some slack.
    assert!(stopped < Duration::from_millis(2500), "the error came {stopped:?} after the stop");
    signal(pid, "-CONT");
    drop(cluster);
    end(children);
    nothing_left(&[&[addr], &workers[..]].concat());
}

fn a_remote_scheduler_forwards_progress_as_it_happens() {
    let (children, addr, workers, _) = scheduler_and_workers(2);
    let remote = brisk::distributed::Remote::connect(addr, &brisk::ops()).unwrap();
    let record = Arc::new(Record::default());
    let profiler = Arc::new(brisk::diagnostics::Profiler::new());
    let cluster = Scheduler::backend(Arc::new(remote))
        .callback_arc(record.clone())
        .callback_arc(profiler.clone())
        .fuse(false);
    let (graph, outputs) = layered_dag(9, 12, 8, 5);
    let on_threads = Arc::new(Record::default());
    let threads = Scheduler::threads(2).callback_arc(on_threads.clone()).fuse(false);
    let want = threads.run(graph.clone(), &outputs).unwrap();
    // The tasks the outputs need (the graph's others are culled).
    let needed: HashSet<Key> = on_threads.starts().into_keys().collect();
    let n = needed.len();
    // Progress arrives while the compute runs, not all at its end.
    let during = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while record.events.lock().unwrap().iter().filter(|e| e.2).count() < n / 4 {
                assert!(Instant::now() < deadline, "no progress");
                std::thread::sleep(Duration::from_millis(1));
            }
            record.events.lock().unwrap().len()
        });
        assert_eq!(bits(&cluster.run(graph, &outputs).unwrap()), bits(&want));
        watcher.join().unwrap()
    });
    assert!(during < 2 * n, "{during} events of {} seen mid-compute", 2 * n);
    let starts = record.starts();
    assert_eq!(starts.keys().cloned().collect::<HashSet<_>>(), needed);
    assert!(starts.values().all(|&k| k == 1), "{starts:?}");
    assert_eq!(record.events.lock().unwrap().iter().filter(|e| e.2).count(), n);
    // Bytes read come through too, as the thread scheduler counts them.
    let dir = std::env::temp_dir().join(format!("brisk-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("t.csv");
    let rows: String = (0..20_000).map(|i| format!("k{},{}\n", i % 7, i)).collect();
    std::fs::write(&csv, format!("k,v\n{rows}")).unwrap();
    let frame = read_csv(&csv, CsvOptions::default().blocksize(32 << 10)).unwrap();
    let sums = frame.groupby(["k"]).unwrap().sum().unwrap();
    let on_threads = Arc::new(Record::default());
    let threads_profiler = Arc::new(brisk::diagnostics::Profiler::new());
    let threads = Scheduler::threads(2)
        .callback_arc(on_threads.clone())
        .callback_arc(threads_profiler.clone())
        .fuse(false);
    record.read.store(0, std::sync::atomic::Ordering::Relaxed);
    let before = profiler.profile().tasks.len();
    let (a, b) = (cluster.compute(&sums).unwrap(), threads.compute(&sums).unwrap());
    assert_eq!(batch_bits(&a.to_batch()), batch_bits(&b.to_batch()));
    let read = |r: &Record| r.read.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(read(&record), read(&on_threads));
    assert!(read(&record) > 0);
    // Each task's record (op, bytes) comes through, named as the threads name
    // them (a list's items are views there: their bytes a share of the list's);
    // and the workers' memory against their limits.
    let remote_profile = profiler.profile();
    let ops = |tasks: &[brisk::diagnostics::TaskRecord]| {
        let mut ops: Vec<(String, u64)> = tasks
            .iter()
            .map(|t| (t.op.clone(), if t.op == "frame.item" { 0 } else { t.bytes_out }))
            .collect();
        ops.sort();
        ops
    };
    let local = threads_profiler.profile();
    assert_eq!(ops(&remote_profile.tasks[before..]), ops(&local.tasks));
    assert!(remote_profile.memory.iter().any(|m| m.held > 0 && m.budget > m.held));
    std::fs::remove_dir_all(&dir).unwrap();
    drop(cluster);
    end(children);
    nothing_left(&[&[addr], &workers[..]].concat());
}

fn a_client_that_goes_away_has_its_compute_cancelled() {
    let (children, addr, workers, log) = scheduler_and_workers(2);
    let (mut client, first, _) = child(&format!("client {addr}"));
    assert_eq!(first, "computing");
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers.iter().map(|&w| state(w).held).sum::<u64>() < 4 {
        assert!(Instant::now() < deadline, "the client's compute did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    client.kill().unwrap();
    client.wait().unwrap();
    let killed = Instant::now();
    // The compute would go on for seconds (128 tasks of 150 ms on 2 threads):
    // cancelled, the workers are idle and hold nothing well before.
    let idle = || workers.iter().map(|&w| state(w)).all(|h| h.running == 0 && h.held == 0);
    while !idle() {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "{:?}",
            workers.iter().map(|&w| state(w)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("  idle {:?} after the client was killed", killed.elapsed());
    assert!(
        log.lock().unwrap().contains("cancelled: its client went away"),
        "{}",
        log.lock().unwrap()
    );
    end(children);
    nothing_left(&[&[addr], &workers[..]].concat());
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        brisk::worker_if_asked_with(program_ops);
        play(&role);
    }
    brisk::worker_if_asked_with(program_ops);
    let cases: &[(&str, fn())] = &[
        ("random_dags_match_the_thread_scheduler", random_dags_match_the_thread_scheduler),
        (
            "arrays_and_frames_match_the_thread_scheduler",
            arrays_and_frames_match_the_thread_scheduler,
        ),
        (
            "registered_functions_run_in_the_workers_and_match_the_threads",
            registered_functions_run_in_the_workers_and_match_the_threads,
        ),
        (
            "computes_as_futures_run_on_worker_processes",
            computes_as_futures_run_on_worker_processes,
        ),
        (
            "futures_keep_their_semantics_on_worker_processes",
            futures_keep_their_semantics_on_worker_processes,
        ),
        (
            "futures_keep_their_semantics_through_a_scheduler_process",
            futures_keep_their_semantics_through_a_scheduler_process,
        ),
        (
            "priorities_order_waiting_work_across_computes",
            priorities_order_waiting_work_across_computes,
        ),
        (
            "coordination_primitives_reach_tasks_in_worker_processes",
            coordination_primitives_reach_tasks_in_worker_processes,
        ),
        (
            "a_persisted_collection_stays_on_the_workers_and_survives_a_killed_worker",
            a_persisted_collection_stays_on_the_workers_and_survives_a_killed_worker,
        ),
        ("closures_are_refused_before_anything_runs", closures_are_refused_before_anything_runs),
        (
            "workers_spill_past_their_memory_limit_and_give_the_same_answer",
            workers_spill_past_their_memory_limit_and_give_the_same_answer,
        ),
        (
            "a_stopped_scheduler_fails_the_compute_within_the_timeout",
            a_stopped_scheduler_fails_the_compute_within_the_timeout,
        ),
        (
            "a_remote_scheduler_forwards_progress_as_it_happens",
            a_remote_scheduler_forwards_progress_as_it_happens,
        ),
        (
            "a_client_that_goes_away_has_its_compute_cancelled",
            a_client_that_goes_away_has_its_compute_cancelled,
        ),
        (
            "a_killed_worker_loses_nothing_and_only_its_keys_are_recomputed",
            a_killed_worker_loses_nothing_and_only_its_keys_are_recomputed,
        ),
        (
            "list_items_are_read_where_needed_and_survive_a_killed_worker",
            list_items_are_read_where_needed_and_survive_a_killed_worker,
        ),
        (
            "a_stopped_worker_is_declared_dead_and_its_results_are_not_used",
            a_stopped_worker_is_declared_dead_and_its_results_are_not_used,
        ),
        (
            "a_task_that_kills_its_worker_fails_after_three",
            a_task_that_kills_its_worker_fails_after_three,
        ),
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
