//! Workers on loopback addresses: tasks run where they are sent, inputs come from
//! the peers that hold them, results are served by key to any Flight client.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::{FlightClient, Ticket};
use brisk_core::{ArrayChunk, Key, Op, OpKind, OpRegistry, Value};
use brisk_distributed::{Connections, Input, ResultId, RunTask, Security, Worker, WorkerOptions};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

/// Sums its inputs' scalars; panics on a negative one.
#[derive(Debug, Serialize, Deserialize)]
struct Sum;

impl OpKind for Sum {
    const NAME: &'static str = "test.sum";
    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let mut total = 0;
        for v in inputs {
            match v.as_scalar() {
                Some(brisk_core::Scalar::I64(x)) if x >= 0 => total += x,
                Some(brisk_core::Scalar::I64(x)) => panic!("negative input {x}"),
                _ => return Err(brisk_core::Error::user(format!("not an integer: {}", v.kind()))),
            }
        }
        Ok(Value::from(total))
    }
}

fn registry() -> OpRegistry {
    let mut r = OpRegistry::new();
    r.register::<Sum>();
    r
}

fn worker(ip: &str) -> Worker {
    let options = WorkerOptions::new(format!("{ip}:0").parse().unwrap(), 2, 1 << 30);
    Worker::start(&options, registry()).unwrap()
}

fn constant(key: &str, value: Value) -> RunTask {
    RunTask {
        compute: 1,
        key: Key::named(key),
        op: Op::Const(value).encode().unwrap(),
        inputs: vec![],
        inline: false,
        quick: false,
        priority: 0,
    }
}

fn id(key: Key) -> ResultId {
    ResultId { compute: 1, key }
}

fn input(key: &str, at: SocketAddr) -> Input {
    Input { key: Key::named(key), at, item: None, compute: None }
}

/// The workers' threads alive in this process (a thread's name is cut to 15 bytes).
fn worker_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return vec![] };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|n| n.starts_with("brisk-worker"))
        .collect()
}

/// The tests run one at a time: each counts the workers' threads it leaves.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Nothing of `workers` is left once they are dropped: no thread, no listener.
fn gone(workers: Vec<Worker>) {
    let addrs: Vec<SocketAddr> = workers.iter().map(Worker::addr).collect();
    drop(workers);
    // A thread that signalled its end may still be in /proc for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !worker_threads().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(worker_threads(), Vec::<String>::new());
    for addr in addrs {
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still listens");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_where_sent_with_inputs_from_their_peers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (a, b) = (worker("127.0.0.1"), worker("127.0.0.2"));
    let c = Connections::default();
    assert_ne!(a.addr().ip(), b.addr().ip());
    assert_eq!(c.run(a.addr(), &constant("x", Value::from(40_i64))).await.unwrap(), 8);
    c.run(b.addr(), &constant("y", Value::from(2_i64))).await.unwrap();
    // On b: x comes from a, y is b's own.
    let sum = RunTask {
        compute: 1,
        key: Key::new("sum", [0]),
        op: Op::data(Sum).encode().unwrap(),
        inputs: vec![input("x", a.addr()), input("y", b.addr()), input("x", a.addr())],
        inline: false,
        quick: false,
        priority: 0,
    };
    c.run(b.addr(), &sum).await.unwrap();
    let got = c.fetch(b.addr(), &id(Key::new("sum", [0]))).await.unwrap();
    assert_eq!(got.as_scalar(), Some(brisk_core::Scalar::I64(82)));
    // Errors name the task and the cause; a panicking op leaves the worker serving.
    c.run(a.addr(), &constant("neg", Value::from(-1_i64))).await.unwrap();
    let bad = RunTask {
        compute: 1,
        key: Key::named("boom"),
        op: sum.op.clone(),
        inputs: vec![input("neg", a.addr())],
        inline: false,
        quick: false,
        priority: 0,
    };
    let err = c.run(a.addr(), &bad).await.unwrap_err();
    assert_eq!(err.message(), "negative input -1");
    assert_eq!(err.metadata().get("brisk-failure").unwrap(), "panic");
    let missing = RunTask {
        compute: 1,
        key: Key::named("m"),
        op: sum.op.clone(),
        inputs: vec![input("nope", b.addr())],
        inline: false,
        quick: false,
        priority: 0,
    };
    let err = c.run(a.addr(), &missing).await.unwrap_err();
    assert!(err.message().contains("no result 'nope'"), "{err}");
    let holder = format!("missing {}", b.addr());
    assert_eq!(err.metadata().get("brisk-failure").unwrap().to_str().unwrap(), holder);
    let err = c.fetch(a.addr(), &id(Key::named("boom"))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    // A compute freed whole keeps nothing, even what finishes after.
    c.free_compute(b.addr(), 1).await.unwrap();
    let err = c.fetch(b.addr(), &id(Key::named("y"))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    let late = c.run(b.addr(), &constant("late", Value::from(1_i64))).await.unwrap_err();
    assert_eq!(late.code(), tonic::Code::Cancelled, "a task of a freed compute is not run");
    assert!(c.fetch(b.addr(), &id(Key::named("late"))).await.is_err());
    let hello = c.hello(a.addr()).await.unwrap();
    assert_eq!((hello.threads, hello.version.as_str()), (2, env!("CARGO_PKG_VERSION")));
    assert_ne!(hello.epoch, c.hello(b.addr()).await.unwrap().epoch);
    let closure = Op::local("my-closure", |v| Ok(v[0].clone()));
    assert!(closure.encode().unwrap_err().to_string().contains("my-closure"));
    drop(c);
    gone(vec![a, b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_flight_client_reads_a_result_by_key() {
    let _one = ONE_AT_A_TIME.lock().await;
    let w = worker("127.0.0.1");
    let shape = [3usize, 400, 500];
    let data: Vec<f64> = (0..shape.iter().product::<usize>()).map(|i| i as f64 * 0.5).collect();
    let chunk = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), data).unwrap();
    let value = Value::Array(Arc::new(ArrayChunk::F64(chunk)));
    let c = Connections::default();
    c.run(w.addr(), &constant("big", value.clone())).await.unwrap();
    // A plain Flight client: the ticket names the result (compute, key), the answer
    // is Arrow record batches.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", w.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ticket = rmp_serde::to_vec(&id(Key::named("big"))).unwrap();
    let batches: Vec<arrow_array::RecordBatch> = FlightClient::new(channel)
        .do_get(Ticket { ticket: ticket.into() })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    // 4.8 MB of floats: more than one Flight message.
    assert!(batches.len() > 1, "{} batches", batches.len());
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 600_000);
    assert_eq!(batches[0].schema().metadata()["brisk.shape"], "3,400,500");
    // Brisk's own fetch puts it back together, bit for bit.
    let back = c.fetch(w.addr(), &id(Key::named("big"))).await.unwrap();
    assert_eq!(back.encode().unwrap(), value.encode().unwrap());
    drop(c);
    gone(vec![w]);
}

/// Two client programs on the same workers, one after the other: each compute
/// has its own results (a second client's were once dropped as a closed compute's).
#[test]
fn two_clients_share_workers_without_mixing_results() {
    use brisk_distributed::{Cluster, Timing};
    use brisk_graph::{Graph, Task};
    use brisk_scheduler::{Backend, Scheduler};
    let _one = ONE_AT_A_TIME.blocking_lock();
    let (a, b) = (worker("127.0.0.1"), worker("127.0.0.2"));
    let graph = || {
        let mut tasks = vec![];
        for i in 0..20u32 {
            tasks.push(Task::root(Key::new("x", [i]), Op::Const(Value::from(i as i64))));
        }
        let xs: Vec<Key> = (0..20u32).map(|i| Key::new("x", [i])).collect();
        tasks.push(Task::new("total", Op::data(Sum), xs));
        Graph::from_tasks(tasks).unwrap()
    };
    for _client in 0..2 {
        let cluster = Cluster::connect(
            &[a.addr(), b.addr()],
            &registry(),
            Timing::default(),
            Security::none(),
        )
        .unwrap();
        assert_eq!(cluster.threads(), 4);
        let scheduler = Scheduler::backend(Arc::new(cluster));
        for _ in 0..2 {
            let out = scheduler.run(graph(), &[Key::named("total")]).unwrap();
            assert_eq!(out[0].as_scalar(), Some(brisk_core::Scalar::I64(190)));
        }
    }
    gone(vec![a, b]);
}
