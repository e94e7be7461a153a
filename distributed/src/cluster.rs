//! A cluster as a [`Backend`] of Brisk's `Scheduler`: the workers it knows, one
//! connection to each, and the driver that runs each compute on them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use brisk_core::{OpRegistry, Value};
use brisk_graph::Plan;
use brisk_scheduler::{Backend, BackendError, Callback};
use futures::FutureExt;

use crate::client::{Connections, client_runtime};
use crate::driver::{Job, Member, Timing, drive};
use crate::worker::{VERSION, function_names, registry_fingerprint};

/// Workers reached by address, running the computes of a `Scheduler` made with
/// [`Scheduler::backend`](brisk_scheduler::Scheduler::backend).
pub struct Cluster {
    runtime: Option<tokio::runtime::Runtime>,
    conns: Arc<Connections>,
    members: Mutex<Vec<Member>>,
    timing: Timing,
    next_compute: AtomicU64,
    /// Called with each worker found dead (a local cluster ends its process).
    on_death: Box<dyn Fn(SocketAddr) + Send + Sync>,
    /// The registered functions the workers run (checked at the handshake).
    functions: std::collections::HashSet<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("workers", &self.addrs()).finish()
    }
}

impl Cluster {
    /// Connects to the workers at `addrs` and checks each runs this version of
    /// Brisk with the ops of `registry` (the handshake): a mismatch is an error
    /// naming the worker.
    pub fn connect(
        addrs: &[SocketAddr],
        registry: &OpRegistry,
        timing: Timing,
    ) -> Result<Cluster, BackendError> {
        let mut cluster = Cluster::new(timing)?;
        cluster.functions = function_names(registry);
        let ops = registry_fingerprint(registry);
        for &addr in addrs {
            cluster.add(addr, Some(ops))?;
        }
        Ok(cluster)
    }

    /// A cluster with no worker yet ([`add`](Self::add) them).
    pub(crate) fn new(timing: Timing) -> Result<Cluster, BackendError> {
        Ok(Cluster {
            runtime: Some(client_runtime(2)?),
            conns: Arc::new(Connections::default()),
            members: Mutex::new(Vec::new()),
            timing,
            // Apart from any other client's computes on the same workers.
            next_compute: AtomicU64::new(crate::worker::epoch() & !0xffff_ffff),
            on_death: Box::new(|_| {}),
            functions: Default::default(),
        })
    }

    /// Greets the worker at `addr` and adds it (in place of an older start at
    /// the same address): its version must be this one's, and its ops `ops`
    /// when given.
    pub(crate) fn add(&self, addr: SocketAddr, ops: Option<u64>) -> Result<(), BackendError> {
        let (conns, timeout) = (self.conns.clone(), self.timing.death_timeout);
        let hello = self.wait(async move {
            match tokio::time::timeout(timeout, conns.hello(addr)).await {
                Ok(result) => result.map_err(|e| e.message().to_string()),
                Err(_) => Err(format!("no answer in {timeout:?}")),
            }
        })?;
        let hello =
            hello.map_err(|e| BackendError::Cluster(format!("cannot reach worker {addr}: {e}")))?;
        if hello.version != VERSION {
            return Err(BackendError::Cluster(format!(
                "worker {addr} runs Brisk {}, this program {VERSION}: run the same version everywhere",
                hello.version
            )));
        }
        if let Some(ops) = ops.filter(|&ops| ops != hello.ops) {
            return Err(BackendError::Cluster(format!(
                "worker {addr} knows other ops than this program (fingerprint {:016x}, here {ops:016x}): start workers from the same program, with the same ops registered",
                hello.ops
            )));
        }
        let member = Member {
            addr,
            threads: hello.threads,
            memory_limit: hello.memory_limit,
            epoch: hello.epoch,
            ops: hello.ops,
        };
        let mut members = self.lock();
        match members.iter_mut().find(|m| m.addr == addr) {
            Some(known) => *known = member,
            None => members.push(member),
        }
        Ok(())
    }

    /// The workers and what they said when they joined.
    pub(crate) fn members(&self) -> Vec<Member> {
        self.lock().clone()
    }

    /// Runs `future` on the cluster's runtime and waits for it, from any thread
    /// that is not one of that runtime's.
    fn wait<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = done.send(future.await);
        });
        answer.recv().map_err(|_| BackendError::Cluster("the client's I/O stopped".into()))
    }

    /// Calls `f` with each worker found dead, once.
    pub(crate) fn on_death(mut self, f: impl Fn(SocketAddr) + Send + Sync + 'static) -> Self {
        self.on_death = Box::new(f);
        self
    }

    /// The addresses of the workers still alive.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.lock().iter().map(|m| m.addr).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }
}

impl Backend for Cluster {
    fn run(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
    ) -> Result<Vec<Value>, BackendError> {
        let compute = self.next_compute.fetch_add(1, Ordering::Relaxed);
        self.run_job(Job::new(plan, compute)?, callbacks, futures::future::pending().boxed())
    }

    fn threads(&self) -> usize {
        self.lock().iter().map(|m| m.threads).sum()
    }

    fn describe(&self) -> String {
        let members = self.lock();
        let addrs: Vec<String> = members.iter().map(|m| m.addr.to_string()).collect();
        format!(
            "{} worker processes, {} threads ({})",
            members.len(),
            members.iter().map(|m| m.threads).sum::<usize>(),
            addrs.join(", ")
        )
    }

    fn knows_function(&self, name: &str) -> bool {
        self.functions.contains(name)
    }
}

impl Cluster {
    /// Runs `job` on the workers: the outputs' values. When `cancel` resolves
    /// first (to the reason), the compute stops and its results are freed.
    pub(crate) fn run_job(
        &self,
        job: Job,
        callbacks: &[Arc<dyn Callback>],
        cancel: futures::future::BoxFuture<'static, String>,
    ) -> Result<Vec<Value>, BackendError> {
        let members = self.lock().clone();
        if members.is_empty() {
            return Err(BackendError::Cluster("the cluster has no worker left".into()));
        }
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(drive(
            job,
            members,
            self.timing,
            self.conns.clone(),
            callbacks.to_vec(),
            done,
            cancel,
        ));
        let outcome = outcome.recv().map_err(|_| {
            BackendError::Cluster("the compute's driver ended without an answer".into())
        })?;
        if !outcome.dead.is_empty() {
            self.lock().retain(|m| !outcome.dead.contains(&m.addr));
            outcome.dead.iter().for_each(|&addr| (self.on_death)(addr));
        }
        outcome.values
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}
