//! A local cluster: worker processes started from this very program, in the
//! spawn pattern of Python's `multiprocessing`. The program re-executes itself
//! with an environment variable set; [`worker_if_asked`], called at the top of
//! `main`, sees it and runs a worker instead of the program. A worker prints its
//! address on its first line of output and lives until its standard input
//! closes: when the cluster is dropped, or when the program that started it
//! ends however it ends. Nothing is left behind.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use brisk_core::{OpRegistry, Value};
use brisk_graph::Plan;
use brisk_scheduler::{Backend, BackendError, Callback};

use crate::coordinator::Coordinator;
use crate::{Cluster, Security, Timing, Worker, WorkerOptions};

/// Set in a worker process's environment: `LISTEN_ADDR THREADS MEMORY_LIMIT`.
const WORKER_ENV: &str = "BRISK_WORKER_PROCESS";
/// Set in a worker process's environment: where its tasks' coordination
/// primitives live (a server in the program that started the cluster).
const COORDINATOR_ENV: &str = "BRISK_COORDINATOR";
/// The line a worker prints once it listens, then its address.
const LISTENING: &str = "brisk worker listening on";
/// How long a worker process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether this program called [`worker_if_asked`]: re-executing one that does
/// not would run the whole program again instead of a worker.
static READY: AtomicBool = AtomicBool::new(false);

/// Call first thing in `main` of any program that starts a [`LocalCluster`]:
/// in a worker process started by one it runs the worker (with the ops
/// `registry` gives) and never returns; anywhere else it returns at once.
///
/// ```no_run
/// // First thing in `main`, before the program does anything else:
/// brisk_distributed::worker_if_asked(brisk_core::OpRegistry::new);
/// // ... the program, which may start a LocalCluster ...
/// ```
pub fn worker_if_asked(registry: impl FnOnce() -> OpRegistry) {
    READY.store(true, Ordering::Relaxed);
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    brisk_scheduler::settle_worker_allocator();
    let code = match serve(&spec, registry()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("brisk worker: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// Runs a worker as `spec` says until standard input closes.
fn serve(spec: &str, registry: OpRegistry) -> Result<(), String> {
    let bad = || format!("{WORKER_ENV}={spec:?}: expected 'ADDRESS THREADS MEMORY_LIMIT'");
    let [listen, threads, memory] = spec.split(' ').collect::<Vec<_>>()[..] else {
        return Err(bad());
    };
    let listen: SocketAddr = listen.parse().map_err(|_| bad())?;
    let threads: usize = threads.parse().map_err(|_| bad())?;
    let memory: u64 = memory.parse().map_err(|_| bad())?;
    // On loopback, started by its cluster: no token.
    let worker = Worker::start(&WorkerOptions::new(listen, threads, memory), registry)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    if let Ok(at) = std::env::var(COORDINATOR_ENV) {
        let at: SocketAddr =
            at.parse().map_err(|_| format!("{COORDINATOR_ENV}={at:?}: expected an address"))?;
        crate::coordinator::route_to(at, Security::none(), worker.addr().to_string());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{LISTENING} {}", worker.addr())
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    drop(out);
    // Until the cluster lets go of us (or its program ends): EOF or an error.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    drop(worker);
    Ok(())
}

/// How to start a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct Spawn {
    /// Worker processes (default 2).
    pub workers: usize,
    /// Threads per worker (default: the cores divided among the workers, at
    /// least one).
    pub threads: usize,
    /// The loopback addresses workers listen on, given out in turn (default
    /// 127.0.0.1); each picks a free port.
    pub hosts: Vec<IpAddr>,
    /// The bytes of results each worker holds in memory; past them it spills the
    /// oldest to disk (default: this machine's default memory budget shared
    /// among the workers).
    pub memory_limit: u64,
    /// Heartbeats and failure limits.
    pub timing: Timing,
    /// The program to start (default: this one).
    pub program: Option<std::path::PathBuf>,
}

impl Spawn {
    /// `workers` processes sharing the cores.
    pub fn new(workers: usize) -> Spawn {
        let workers = workers.max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Spawn {
            workers,
            threads: (cores / workers).max(1),
            hosts: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            memory_limit: brisk_scheduler::default_memory_budget() / workers as u64,
            timing: Timing::default(),
            program: None,
        }
    }
}

/// One worker process: its standard input (closing it ends the worker), the
/// thread passing on what it prints, and its address.
struct Process {
    addr: Option<SocketAddr>,
    child: Child,
    stdin: Option<ChildStdin>,
    echo: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    fn end(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(echo) = self.echo.take() {
            let _ = echo.join();
        }
    }
}

type Processes = Arc<Mutex<Vec<Process>>>;

fn lock(processes: &Processes) -> std::sync::MutexGuard<'_, Vec<Process>> {
    processes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Worker processes on this machine, started from this program and ended when
/// this value is dropped (Dask's `LocalCluster`). A worker found dead is ended
/// for good: nothing it held is used again.
pub struct LocalCluster {
    cluster: Option<Cluster>,
    processes: Processes,
    /// The server its workers' tasks coordinate through.
    coordinator: Option<crate::flight::Serving>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster").field("cluster", &self.cluster).finish()
    }
}

impl LocalCluster {
    /// Starts the workers `spawn` describes, running the ops of `registry`
    /// (which must be what this program's [`worker_if_asked`] gives them).
    pub fn start(spawn: &Spawn, registry: &OpRegistry) -> Result<LocalCluster, BackendError> {
        let fail = |what: String| BackendError::Cluster(what);
        if !READY.load(Ordering::Relaxed) && spawn.program.is_none() {
            return Err(fail(
                "worker processes re-run this program: call brisk_distributed::worker_if_asked (brisk::worker_if_asked) first thing in main".into(),
            ));
        }
        let program = match &spawn.program {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| fail(format!("cannot find this program to start workers: {e}")))?,
        };
        let processes: Processes = Arc::default();
        let mut started = Vec::new();
        // The workers' tasks coordinate here, in this program.
        let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let coordinator =
            crate::flight::Serving::start(loopback, &Security::none(), |_| Coordinator)
                .map_err(|e| fail(format!("cannot start the workers' coordinator: {e}")))?;
        let coordinator_addr = coordinator.addr();
        // Ends the processes started so far if starting the rest fails.
        let mut local = LocalCluster {
            cluster: None,
            processes: processes.clone(),
            coordinator: Some(coordinator),
        };
        for i in 0..spawn.workers.max(1) {
            let host = spawn.hosts.get(i % spawn.hosts.len().max(1)).copied();
            let listen = SocketAddr::new(host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), 0);
            let mut child = Command::new(&program)
                .env(
                    WORKER_ENV,
                    format!("{listen} {} {}", spawn.threads.max(1), spawn.memory_limit),
                )
                .env(COORDINATOR_ENV, coordinator_addr.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| fail(format!("cannot start {}: {e}", program.display())))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().expect("piped");
            let (tx, rx) = std::sync::mpsc::channel();
            let echo = std::thread::Builder::new()
                .name("brisk-worker-log".into())
                .spawn(move || echo(stdout, tx))
                .map_err(|e| fail(format!("cannot start a thread: {e}")))?;
            lock(&processes).push(Process { addr: None, child, stdin, echo: Some(echo) });
            started.push(rx);
        }
        let mut addrs = Vec::with_capacity(started.len());
        for (i, rx) in started.into_iter().enumerate() {
            let addr = rx.recv_timeout(START_TIMEOUT).map_err(|_| {
                fail(format!(
                    "worker process {} of {} did not start listening within {START_TIMEOUT:?} (its errors are above)",
                    i + 1,
                    spawn.workers
                ))
            })?;
            lock(&processes)[i].addr = Some(addr);
            addrs.push(addr);
        }
        let on_death = processes.clone();
        let cluster = Cluster::connect(&addrs, registry, spawn.timing, Security::none())?.on_death(
            move |addr| {
                if let Some(p) = lock(&on_death).iter_mut().find(|p| p.addr == Some(addr)) {
                    p.end();
                }
            },
        );
        local.cluster = Some(cluster);
        Ok(local)
    }

    /// The workers' process ids and addresses (for tests and diagnostics).
    pub fn processes(&self) -> Vec<(u32, SocketAddr)> {
        lock(&self.processes).iter().filter_map(|p| Some((p.child.id(), p.addr?))).collect()
    }

    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("set when started")
    }
}

/// Passes a worker's output on to this program's standard error, after handing
/// over the address from its first line.
fn echo(stdout: std::process::ChildStdout, addr: std::sync::mpsc::Sender<SocketAddr>) {
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        match line.strip_prefix(LISTENING).and_then(|a| a.trim().parse().ok()) {
            Some(a) => {
                let _ = addr.send(a);
                break;
            }
            None => eprintln!("{line}"),
        }
    }
    for line in lines.map_while(Result::ok) {
        eprintln!("{line}");
    }
}

impl Backend for LocalCluster {
    fn run(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
    ) -> Result<Vec<Value>, BackendError> {
        self.cluster().run(plan, callbacks)
    }

    fn run_each(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
        each: &brisk_scheduler::Each,
    ) -> Result<(), BackendError> {
        self.cluster().run_each(plan, callbacks, each)
    }

    fn persist(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
        held: &std::collections::HashMap<brisk_core::Key, brisk_scheduler::Held>,
        outputs: usize,
    ) -> Result<Vec<brisk_scheduler::Held>, BackendError> {
        self.cluster().persist(plan, callbacks, held, outputs)
    }

    fn unpersist(&self, compute: u64) {
        self.cluster().unpersist(compute)
    }

    fn threads(&self) -> usize {
        self.cluster().threads()
    }

    fn describe(&self) -> String {
        format!("local {}", self.cluster().describe())
    }

    fn knows_function(&self, name: &str) -> bool {
        self.cluster().knows_function(name)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        drop(self.cluster.take());
        for p in lock(&self.processes).iter_mut() {
            p.end();
        }
        drop(self.coordinator.take());
    }
}
