//! A cluster as a [`Backend`] of Brisk's `Scheduler`: the workers it knows, one
//! connection to each, and the driver that runs each compute on them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use brisk_core::{OpRegistry, Value};
use brisk_graph::Plan;
use brisk_scheduler::{Backend, BackendError, Callback, Each, Held, Settle};
use futures::FutureExt;
use serde::{Deserialize, Serialize};

use crate::client::{Connections, client_runtime};
use crate::driver::{Job, Learned, Member, Shared, Timing, drive};
use crate::security::Security;
use crate::worker::{Hello, VERSION, function_names, registry_fingerprint};

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
    /// What each worker last said and when (kept by [`watch`](Self::watch)).
    heard: Mutex<HashMap<SocketAddr, Heard>>,
    /// The epochs of workers declared dead: refused if they come back.
    dead: Mutex<HashSet<u64>>,
    /// What its computes learn of task times, and the work each sent where.
    learned: Arc<Learned>,
}

/// A worker's last greeting and when it came.
#[derive(Clone)]
struct Heard {
    hello: Hello,
    at: Instant,
}

/// A worker as the scheduler sees it: its last greeting (threads, memory
/// limit, tasks running, results and bytes held and spilled, bytes sent and
/// received) and how long ago it came.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Where it is reached.
    pub addr: SocketAddr,
    /// What it said when last greeted.
    pub hello: Hello,
    /// Milliseconds since it last answered a greeting.
    pub since_heard_ms: u64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("workers", &self.addrs()).finish()
    }
}

impl Cluster {
    /// Connects to the workers at `addrs` and checks each runs this version of
    /// Brisk with the ops of `registry` (the handshake): a mismatch is an error
    /// naming the worker. Every call proves itself with `security`.
    pub fn connect(
        addrs: &[SocketAddr],
        registry: &OpRegistry,
        timing: Timing,
        security: Security,
    ) -> Result<Cluster, BackendError> {
        let mut cluster = Cluster::new(timing, security)?;
        cluster.functions = function_names(registry);
        let ops = registry_fingerprint(registry);
        for &addr in addrs {
            cluster.add(addr, Some(ops))?;
        }
        Ok(cluster)
    }

    /// A cluster with no worker yet ([`add`](Self::add) them).
    pub(crate) fn new(timing: Timing, security: Security) -> Result<Cluster, BackendError> {
        Ok(Cluster {
            runtime: Some(client_runtime(2)?),
            conns: Arc::new(Connections::new(security)),
            members: Mutex::new(Vec::new()),
            timing,
            // Apart from any other client's computes on the same workers.
            next_compute: AtomicU64::new(crate::worker::epoch() & !0xffff_ffff),
            on_death: Box::new(|_| {}),
            functions: Default::default(),
            heard: Mutex::default(),
            dead: Mutex::default(),
            learned: Arc::default(),
        })
    }

    /// Greets the worker at `addr` and adds it (in place of an older start at
    /// the same address): its version must be this one's, and its ops `ops`
    /// when given.
    pub(crate) fn add(&self, addr: SocketAddr, ops: Option<u64>) -> Result<(), BackendError> {
        let hello = self.greet(addr)?;
        if let Some(ops) = ops.filter(|&ops| ops != hello.ops) {
            return Err(BackendError::Cluster(format!(
                "worker {addr} knows other ops than this program (fingerprint {:016x}, here {ops:016x}): start workers from the same program, with the same ops registered",
                hello.ops
            )));
        }
        self.admit(addr, hello);
        Ok(())
    }

    /// A worker asking to join: added unless it was declared dead (then
    /// `false`: it must drop what it holds and greet with a new epoch).
    pub(crate) fn join(&self, addr: SocketAddr) -> Result<bool, BackendError> {
        let hello = self.greet(addr)?;
        if self.lock_dead().contains(&hello.epoch) {
            return Ok(false);
        }
        self.admit(addr, hello);
        Ok(true)
    }

    /// What the worker at `addr` says of itself, checked for this version.
    fn greet(&self, addr: SocketAddr) -> Result<Hello, BackendError> {
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
        Ok(hello)
    }

    /// Adds the worker at `addr` that greeted with `hello`.
    fn admit(&self, addr: SocketAddr, hello: Hello) {
        let member = Member {
            addr,
            threads: hello.threads,
            memory_limit: hello.memory_limit,
            epoch: hello.epoch,
            ops: hello.ops,
        };
        self.lock_heard().insert(addr, Heard { hello, at: Instant::now() });
        let mut members = self.lock();
        match members.iter_mut().find(|m| m.addr == addr) {
            Some(known) => *known = member,
            None => members.push(member),
        }
    }

    /// Each worker, as last heard.
    pub(crate) fn status(&self) -> Vec<WorkerStatus> {
        let heard = self.lock_heard();
        self.lock()
            .iter()
            .filter_map(|m| {
                let h = heard.get(&m.addr)?;
                Some(WorkerStatus {
                    addr: m.addr,
                    hello: h.hello.clone(),
                    since_heard_ms: h.at.elapsed().as_millis() as u64,
                })
            })
            .collect()
    }

    /// Greets every worker each heartbeat, between computes too, until the
    /// cluster is dropped: keeps what they say ([`status`](Self::status)), and
    /// declares dead one that has not answered for the death timeout (or
    /// answers with another epoch: it started anew and registers again).
    pub(crate) fn watch(self: &Arc<Self>) {
        let cluster = Arc::downgrade(self);
        let Timing { heartbeat, death_timeout, .. } = self.timing;
        self.runtime().spawn(async move {
            loop {
                tokio::time::sleep(heartbeat).await;
                // Not held while greeting: the last owner may drop the cluster
                // (and this runtime) meanwhile, never from one of its threads.
                let Some((members, conns)) =
                    cluster.upgrade().map(|c| (c.members(), c.conns.clone()))
                else {
                    return;
                };
                let greetings = members.into_iter().map(|m| {
                    let conns = conns.clone();
                    async move {
                        let hello = tokio::time::timeout(death_timeout, conns.hello(m.addr)).await;
                        (m, hello.ok().and_then(Result::ok))
                    }
                });
                let answers = futures::future::join_all(greetings).await;
                drop(conns);
                let Some(cluster) = cluster.upgrade() else { return };
                for (member, hello) in answers {
                    cluster.heard(member, hello, death_timeout);
                }
                // Dropped here, before the next await: see above.
                drop(cluster);
            }
        });
    }

    /// Notes `member`'s answer to a greeting (`None`: none came).
    fn heard(&self, member: Member, hello: Option<Hello>, death_timeout: std::time::Duration) {
        let addr = member.addr;
        let why = match hello {
            Some(hello) if hello.epoch == member.epoch => {
                self.lock_heard().insert(addr, Heard { hello, at: Instant::now() });
                return;
            }
            Some(_) => "it started anew".to_string(),
            None => {
                let last = self.lock_heard().get(&addr).map(|h| h.at);
                if last.is_some_and(|at| at.elapsed() < death_timeout) {
                    return;
                }
                format!("no answer for {death_timeout:?}")
            }
        };
        self.declare_dead(&[member]);
        // Not eprintln!, which panics when stderr is closed.
        let line = format!("brisk scheduler: worker {addr} declared dead: {why}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }

    /// Takes `members` off the cluster; their epochs are refused from now on.
    fn declare_dead(&self, members: &[Member]) {
        self.lock_dead().extend(members.iter().map(|m| m.epoch));
        // What their tasks held here (this process coordinates them) is free.
        for m in members {
            brisk_scheduler::coordination::release_holder(&m.addr.to_string());
        }
        let mut heard = self.lock_heard();
        self.lock().retain(|m| {
            let dead = members.iter().any(|d| d.addr == m.addr && d.epoch == m.epoch);
            if dead {
                heard.remove(&m.addr);
            }
            !dead
        });
        drop(heard);
        members.iter().for_each(|m| (self.on_death)(m.addr));
    }

    fn lock_heard(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Heard>> {
        self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_dead(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.dead.lock().unwrap_or_else(PoisonError::into_inner)
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
        let job = Job::new(plan, compute)?;
        self.run_job(job, callbacks, futures::future::pending().boxed(), None)
    }

    fn run_each(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
        each: &Each,
    ) -> Result<(), BackendError> {
        let compute = self.next_compute.fetch_add(1, Ordering::Relaxed);
        let job = Job::new(plan, compute)?.for_each(each).using(&each.held, each.outputs);
        let cancel = cancelled(each.cancel.clone(), "its client let it go");
        self.run_job(job, callbacks, cancel, Some(each.settle.clone())).map(drop)
    }

    fn persist(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
        held: &HashMap<brisk_core::Key, Held>,
        outputs: usize,
    ) -> Result<Vec<Held>, BackendError> {
        let compute = self.next_compute.fetch_add(1, Ordering::Relaxed);
        let job = Job::new(plan, compute)?.keeping().using(held, outputs);
        let never = futures::future::pending().boxed();
        let (_, kept) = self.run_kept(job, callbacks, never, None)?;
        Ok(kept
            .into_iter()
            .map(|(addr, compute)| Held { compute, worker: addr.to_string() })
            .collect())
    }

    fn unpersist(&self, compute: u64) {
        let (conns, members) = (self.conns.clone(), self.members());
        self.runtime().spawn(async move {
            for m in members {
                let _ = conns.free_compute(m.addr, compute).await;
            }
        });
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
        settle: Option<Settle>,
    ) -> Result<Vec<Value>, BackendError> {
        self.run_kept(job, callbacks, cancel, settle).map(|(values, _)| values)
    }

    /// [`run_job`](Self::run_job), also saying where each output is kept (a
    /// persist's job).
    pub(crate) fn run_kept(
        &self,
        job: Job,
        callbacks: &[Arc<dyn Callback>],
        cancel: futures::future::BoxFuture<'static, String>,
        settle: Option<Settle>,
    ) -> Result<(Vec<Value>, Kept), BackendError> {
        let members = self.lock().clone();
        if members.is_empty() {
            return Err(BackendError::Cluster("the cluster has no worker left".into()));
        }
        let callbacks = callbacks.to_vec();
        let (timing, conns) = (self.timing, self.conns.clone());
        let shared = Shared { timing, conns, learned: self.learned.clone() };
        let driving = drive(job, members.clone(), shared, callbacks, cancel, settle);
        let outcome = match tokio::runtime::Handle::try_current() {
            // Driven on this thread (no hand-over to a runtime thread to wake).
            Err(_) => self.runtime().block_on(driving),
            // Within a runtime (a scheduler process's calls): on the cluster's.
            Ok(_) => self.wait(driving)?,
        };
        if !outcome.dead.is_empty() {
            let dead: Vec<Member> =
                members.into_iter().filter(|m| outcome.dead.contains(&m.addr)).collect();
            self.declare_dead(&dead);
        }
        Ok((outcome.values?, outcome.kept))
    }
}

/// Where a persist keeps each output, and by which compute.
pub(crate) type Kept = Vec<(SocketAddr, u64)>;

/// A future resolving (to `why`) once `flag` is set: looked at every few
/// milliseconds.
pub(crate) fn cancelled(
    flag: Arc<std::sync::atomic::AtomicBool>,
    why: &'static str,
) -> futures::future::BoxFuture<'static, String> {
    async move {
        while !flag.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        why.to_string()
    }
    .boxed()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropped on one of its own threads (the last owner let go while a
            // heartbeat ran): waiting for them there would panic.
            match tokio::runtime::Handle::try_current() {
                Ok(_) => runtime.shutdown_background(),
                Err(_) => runtime.shutdown_timeout(std::time::Duration::from_secs(1)),
            }
        }
    }
}
