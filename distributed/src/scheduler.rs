//! A scheduler process of its own (`brisk scheduler`): workers started anywhere
//! register with it (`brisk worker SCHEDULER`), clients send it their plans
//! ([`Remote`], `Scheduler::connect`) and get the outputs back. It runs each
//! compute with the same driver as a local cluster, on the workers registered.
//!
//! Actions:
//! - `hello`: the scheduler's version and its workers ([`SchedulerHello`]);
//! - `register`: a worker's address; the scheduler greets it and adds it (a
//!   worker registers again every second, so a restarted scheduler finds its
//!   workers again);
//! - `compute`: a plan ([`Job`]) and the client's op fingerprint; one reply per
//!   output, in order, in Brisk's value codec.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arrow_flight::Action;
use brisk_core::{Key, OpRegistry, Value};
use brisk_graph::Plan;
use brisk_scheduler::{Backend, BackendError, Callback};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use futures::{FutureExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::client::{Connections, client_runtime, decode_body, flight_status};
use crate::cluster::{Cluster, WorkerStatus};
use crate::driver::{Job, Timing};
use crate::flight::{Node, Replies, Serving, one_reply};
use crate::security::Security;
use crate::worker::{VERSION, failure, registry_fingerprint};
use crate::{Worker, WorkerOptions};

/// What a scheduler says of itself: its version and its workers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SchedulerHello {
    /// Brisk's version.
    pub version: String,
    /// Each worker: its address, its last greeting, and how long ago it came.
    pub workers: Vec<WorkerStatus>,
}

/// A plan sent to the scheduler.
#[derive(Serialize, Deserialize)]
struct ComputeRequest {
    /// The fingerprint of the client's ops: the workers' must be the same.
    ops: u64,
    job: Job,
    /// Whether the client's callbacks listen: else only outputs come back.
    listening: bool,
}

/// One reply of a `compute` call: progress as it happens, then the outputs in
/// order.
#[derive(Serialize, Deserialize)]
enum ComputeReply {
    /// What happened since the last reply: tasks started, read input bytes and
    /// finished, with the worker's number.
    Progress(Vec<Progress>),
    /// An output's value, in Brisk's value codec.
    Output(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Where a persist keeps each output, and by which compute.
    Kept(Vec<(SocketAddr, u64)>),
}

/// One event of a compute, as the client's callbacks hear it.
#[derive(Serialize, Deserialize)]
enum Progress {
    Started(Key, u32),
    Read(Key, u32, u64),
    Finished(Key, u32),
    /// A task done ([`Callback::task_done`]): key, op, worker, microseconds
    /// from being sent to its result, bytes in and out.
    Done(Key, String, u32, u64, u64, u64),
    /// Results held by all workers against their limits ([`Callback::memory`]).
    Memory(u64, u64),
    /// Results held by one worker against its limit.
    WorkerMemory(u32, u64, u64),
    /// An output of a compute for futures, at its place: its value in Brisk's
    /// value codec, or its task's failure.
    Settled(u32, Result<serde_bytes::ByteBuf, String>),
}

/// Passes a compute's events to the call that asked for it.
struct Forward(futures::channel::mpsc::UnboundedSender<Progress>);

impl Callback for Forward {
    fn task_started(&self, key: &Key, worker: usize) {
        let _ = self.0.unbounded_send(Progress::Started(key.clone(), worker as u32));
    }
    fn task_read(&self, key: &Key, worker: usize, bytes: u64) {
        let _ = self.0.unbounded_send(Progress::Read(key.clone(), worker as u32, bytes));
    }
    fn task_finished(&self, key: &Key, worker: usize) {
        let _ = self.0.unbounded_send(Progress::Finished(key.clone(), worker as u32));
    }
    fn task_done(&self, done: &brisk_scheduler::TaskDone<'_>) {
        let micros = done.end.saturating_duration_since(done.start).as_micros() as u64;
        let _ = self.0.unbounded_send(Progress::Done(
            done.key.clone(),
            done.op.to_string(),
            done.worker as u32,
            micros,
            done.bytes_in,
            done.bytes_out,
        ));
    }
    fn memory(&self, held: u64, limit: u64) {
        let _ = self.0.unbounded_send(Progress::Memory(held, limit));
    }
    fn worker_memory(&self, worker: usize, held: u64, limit: u64) {
        let _ = self.0.unbounded_send(Progress::WorkerMemory(worker as u32, held, limit));
    }
}

/// Tells `callbacks` what a [`Progress`] event says; a task done as if it
/// ended now.
fn tell(callbacks: &[Arc<dyn Callback>], event: &Progress) {
    for cb in callbacks {
        match event {
            Progress::Started(key, w) => cb.task_started(key, *w as usize),
            Progress::Read(key, w, n) => cb.task_read(key, *w as usize, *n),
            Progress::Finished(key, w) => cb.task_finished(key, *w as usize),
            Progress::Done(key, op, w, micros, bytes_in, bytes_out) => {
                let end = std::time::Instant::now();
                cb.task_done(&brisk_scheduler::TaskDone {
                    key,
                    op,
                    worker: *w as usize,
                    start: end.checked_sub(Duration::from_micros(*micros)).unwrap_or(end),
                    end,
                    bytes_in: *bytes_in,
                    bytes_out: *bytes_out,
                })
            }
            Progress::Memory(held, limit) => cb.memory(*held, *limit),
            Progress::WorkerMemory(w, held, limit) => cb.worker_memory(*w as usize, *held, *limit),
            Progress::Settled(..) => {}
        }
    }
}

/// The scheduler's state: the workers registered, as a cluster.
struct Hub {
    cluster: Arc<Cluster>,
    listeners: Listeners,
}

/// Tells a scheduler's listeners a compute finished when dropped: with its
/// failure's message (`Some` until it is known to have succeeded).
struct Finish {
    watching: Vec<Arc<dyn Callback>>,
    tasks: usize,
    started: std::time::Instant,
    failure: Option<String>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let stats = brisk_scheduler::ComputeStats {
            tasks: self.tasks,
            tasks_run: if self.failure.is_none() { self.tasks } else { 0 },
            elapsed: self.started.elapsed(),
            ..Default::default()
        };
        let error = self
            .failure
            .take()
            .map(|message| brisk_scheduler::Error::Backend(BackendError::Cluster(message)));
        for cb in &self.watching {
            cb.finish(&stats, error.as_ref());
        }
    }
}

/// What hears every compute a scheduler runs (a dashboard).
type Listeners = Arc<std::sync::RwLock<Vec<Arc<dyn Callback>>>>;

impl Node for Hub {
    const KIND: &'static str = "scheduler";
    const ACTIONS: &'static [(&'static str, &'static str)] = &[
        ("hello", "the scheduler's version and its workers"),
        ("register", "a worker joins (again): its address"),
        ("compute", "run a plan; one reply per output"),
        ("unpersist", "free what a persist keeps: its compute"),
        crate::coordinator::ACTION,
    ];

    fn action(self: Arc<Self>, action: Action) -> BoxFuture<'static, Result<Replies, Status>> {
        if action.r#type == "coordinate" {
            return crate::coordinator::coordinate(&action);
        }
        async move {
            let cluster = self.cluster.clone();
            let listeners = self.listeners.clone();
            match action.r#type.as_str() {
                "hello" => {
                    one_reply(&SchedulerHello { version: VERSION.into(), workers: cluster.status() })
                }
                "unpersist" => {
                    let compute: u64 = decode_body("compute", &action.body)?;
                    cluster.unpersist(compute);
                    one_reply(&())
                }
                "register" => {
                    let addr: SocketAddr = decode_body("worker address", &action.body)?;
                    let known = cluster.members().iter().any(|m| m.addr == addr);
                    if !known {
                        let joined = blocking(move || cluster.join(addr)).await?;
                        let said = match joined {
                            true => format!("worker {addr} joined"),
                            false => format!("worker {addr} came back after it was declared dead: it starts anew"),
                        };
                        // Not eprintln!, which panics when stderr is closed.
                        let line = format!("brisk scheduler: {said}\n");
                        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                        if !joined {
                            return Err(failure(
                                tonic::Code::FailedPrecondition,
                                STALE,
                                format!("worker {addr} was declared dead: its results were recomputed elsewhere; drop them and register as new"),
                            ));
                        }
                    }
                    one_reply(&())
                }
                "compute" => {
                    let request: ComputeRequest = decode_body("plan", &action.body)?;
                    // The client holds the call open while it waits: when it goes
                    // away (the process ends, the connection breaks) the reply
                    // stream is dropped, and with it `client`, which cancels the
                    // compute.
                    let (client, gone) = tokio::sync::oneshot::channel::<()>();
                    let compute = request.job.compute;
                    let cancel = async move {
                        let _ = gone.await;
                        let line = format!(
                            "brisk scheduler: compute {compute:x} cancelled: its client went away\n"
                        );
                        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                        "its client went away".to_string()
                    };
                    let (events, progress) = futures::channel::mpsc::unbounded();
                    // A compute for futures: each output goes back as it comes.
                    let settle: Option<brisk_scheduler::Settle> = request.job.each.then(|| {
                        let events = events.clone();
                        Arc::new(move |place: usize, outcome: Result<Value, BackendError>| {
                            let outcome = outcome
                                .and_then(|v| v.encode().map_err(BackendError::Task))
                                .map(serde_bytes::ByteBuf::from)
                                .map_err(|e| e.to_string());
                            let _ = events.unbounded_send(Progress::Settled(place as u32, outcome));
                        }) as brisk_scheduler::Settle
                    });
                    // Task events go back only to a client that listens.
                    let forward = request
                        .listening
                        .then(|| Arc::new(Forward(events)) as Arc<dyn Callback>);
                    // Started now, so progress flows while the outputs wait.
                    let values = tokio::spawn(blocking(move || {
                        if let Some(m) = cluster.members().iter().find(|m| m.ops != request.ops) {
                            return Err(BackendError::Cluster(format!(
                                "worker {} knows other ops than the client (fingerprint {:016x}, the client's {:016x}): start workers from the same program as the client",
                                m.addr, m.ops, request.ops
                            )));
                        }
                        // The scheduler's own listeners (a dashboard) hear every
                        // compute it runs, from start to finish.
                        let watching: Vec<Arc<dyn Callback>> = listeners
                            .read()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .clone();
                        let tasks = request.job.len();
                        if !watching.is_empty() {
                            let ops = request.job.op_counts();
                            for cb in &watching {
                                cb.start(tasks);
                                cb.planned(&ops);
                            }
                        }
                        let callbacks: Vec<Arc<dyn Callback>> = forward
                            .into_iter()
                            .chain(watching.iter().cloned())
                            .collect();
                        // Told it finished, even if the compute panics.
                        let mut finish = Finish {
                            watching,
                            tasks,
                            started: std::time::Instant::now(),
                            failure: Some("the compute panicked".into()),
                        };
                        let out = cluster.run_kept(request.job, &callbacks, cancel.boxed(), settle);
                        finish.failure = out.as_ref().err().map(|e| e.to_string());
                        out
                    }));
                    // Progress in batches as it comes; it ends when the compute
                    // does (the driver drops its callbacks), then the outputs.
                    let progress = progress.ready_chunks(4096).map(|events| {
                        reply(&ComputeReply::Progress(events))
                    });
                    let outputs = stream::once(values).flat_map(move |values| {
                        let _client = &client;
                        let values = values.map_err(|e| Status::internal(e.to_string()));
                        let replies: Vec<Result<arrow_flight::Result, Status>> = match values
                            .and_then(|values| values)
                        {
                            Ok((values, kept)) => values
                                .iter()
                                .map(|v| {
                                    let body = v
                                        .encode()
                                        .map_err(|e| Status::failed_precondition(e.to_string()))?;
                                    reply(&ComputeReply::Output(body))
                                })
                                .chain((!kept.is_empty()).then(|| reply(&ComputeReply::Kept(kept))))
                                .collect(),
                            Err(status) => vec![Err(status)],
                        };
                        stream::iter(replies)
                    });
                    Ok(progress.chain(outputs).boxed())
                }
                other => Err(Status::invalid_argument(format!("no action '{other}'"))),
            }
        }
        .boxed()
    }
}

/// Runs `f` off the server's threads; a backend error as a status the client
/// turns back into one (`brisk-failure`: `task` or `cluster`).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, Status> {
    let result =
        tokio::task::spawn_blocking(f).await.map_err(|e| Status::internal(e.to_string()))?;
    result.map_err(|e| {
        let kind = if matches!(e, BackendError::Task(_)) { "task" } else { "cluster" };
        failure(tonic::Code::Aborted, kind, e.to_string())
    })
}

/// A scheduler serving on an address until dropped.
pub struct SchedulerServer {
    serving: Serving,
    _cluster: Arc<Cluster>,
    listeners: Listeners,
}

impl SchedulerServer {
    /// Starts a scheduler listening on `listen` (port 0 picks a free port),
    /// requiring of its callers, and giving its workers, what `security` says.
    pub fn start(
        listen: SocketAddr,
        timing: Timing,
        security: &Security,
    ) -> Result<SchedulerServer, BackendError> {
        let cluster = Arc::new(Cluster::new(timing, security.clone())?);
        cluster.watch();
        let listeners = Listeners::default();
        let hub = Hub { cluster: cluster.clone(), listeners: listeners.clone() };
        let serving = Serving::start(listen, security, |_| hub).map_err(|e| {
            BackendError::Cluster(match e.kind() {
                std::io::ErrorKind::PermissionDenied => e.to_string(),
                _ => format!("cannot listen on {listen}: {e}"),
            })
        })?;
        Ok(SchedulerServer { serving, _cluster: cluster, listeners })
    }

    /// Adds `callback` to every compute this scheduler runs for its clients,
    /// from now on (a dashboard).
    pub fn add_callback(&self, callback: Arc<dyn Callback>) {
        self.listeners.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(callback);
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr()
    }

    /// Its workers as last heard (each heartbeat): memory held and spilled,
    /// tasks running, bytes sent and received, when each last answered.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self._cluster.status()
    }
}

/// The failure kind of a registration refused because the worker was declared
/// dead (it must start anew).
const STALE: &str = "declared-dead";

/// How long a starting worker tries to reach its scheduler.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a worker started as `options` say, registered with the scheduler at
/// `scheduler`, until `stop` is set: it registers at once (an error if the
/// scheduler cannot be reached within [`REGISTER_TIMEOUT`], or refuses it),
/// then every second, so a restarted scheduler finds it again. `started` hears
/// the worker's address. A worker listening on every interface (`0.0.0.0`)
/// with no contact address is reached at the address it reaches the scheduler
/// from.
pub fn serve_worker(
    scheduler: SocketAddr,
    options: &WorkerOptions,
    registry: OpRegistry,
    stop: &AtomicBool,
    started: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    let mut options = options.clone();
    if options.listen.ip().is_unspecified() && options.contact.is_none() {
        options.contact = Some(route_to(scheduler)?);
    }
    let listen = options.listen;
    let worker = Worker::start(&options, registry).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => e.to_string(),
        _ => format!("cannot listen on {listen}: {e}"),
    })?;
    // Its tasks' locks, queues and the rest are the scheduler's.
    crate::coordinator::route_to(scheduler, options.security.clone(), worker.addr().to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let conns = Connections::new(options.security.clone());
    let register = || -> Result<(), Status> {
        runtime.block_on(conns.action(scheduler, "register", &worker.addr()))
    };
    // The scheduler may still be starting (a launcher starts both at once).
    let deadline = std::time::Instant::now() + REGISTER_TIMEOUT;
    while let Err(e) = register() {
        conns.forget(scheduler);
        if is_stale(&e) {
            renew(&worker, scheduler);
        }
        // Refused (a token or certificate the scheduler does not accept): trying
        // again cannot help.
        if e.code() == tonic::Code::Unauthenticated {
            return Err(format!(
                "the scheduler at {scheduler} refused this worker: {}",
                e.message()
            ));
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "cannot register with the scheduler at {scheduler} (tried for {REGISTER_TIMEOUT:?}): {}",
                e.message()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    started(worker.addr());
    let mut ticks = 0u32;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        ticks += 1;
        if ticks.is_multiple_of(5)
            && let Err(e) = register()
        {
            conns.forget(scheduler);
            if is_stale(&e) {
                renew(&worker, scheduler);
            }
        }
    }
    Ok(())
}

/// What the scheduler at `addr` says of itself and of its workers, as it last
/// heard them (any program may ask: its ops are not checked).
pub fn scheduler_status(
    addr: SocketAddr,
    security: Security,
) -> Result<SchedulerHello, BackendError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BackendError::Cluster(e.to_string()))?;
    let conns = Connections::new(security);
    let asked = runtime.block_on(async {
        tokio::time::timeout(REGISTER_TIMEOUT, conns.action(addr, "hello", &())).await
    });
    match asked {
        Ok(answer) => answer.map_err(cluster_error(addr)),
        Err(_) => Err(BackendError::Cluster(format!(
            "scheduler {addr}: no answer in {REGISTER_TIMEOUT:?}"
        ))),
    }
}

/// Whether a registration was refused because the scheduler declared this
/// worker dead.
fn is_stale(status: &Status) -> bool {
    status.metadata().get("brisk-failure").is_some_and(|kind| kind == STALE)
}

/// Starts `worker` anew after its scheduler declared it dead (it registers
/// again with a new epoch).
fn renew(worker: &Worker, scheduler: SocketAddr) {
    worker.renew();
    let line = format!(
        "brisk worker {}: the scheduler at {scheduler} had declared it dead; it dropped its results and registers anew\n",
        worker.addr()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// The address of this machine that `to` is reached from (no packet is sent).
fn route_to(to: SocketAddr) -> Result<IpAddr, String> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any).map_err(|e| e.to_string())?;
    socket
        .connect(to)
        .and_then(|()| socket.local_addr())
        .map(|a| a.ip())
        .map_err(|e| format!("no route to the scheduler at {to}: {e}"))
}

/// One reply of an action, its body `value` in MessagePack.
fn reply<T: Serialize>(value: &T) -> Result<arrow_flight::Result, Status> {
    Ok(arrow_flight::Result { body: encode(value)?.into() })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    rmp_serde::to_vec(value).map_err(|e| Status::internal(e.to_string()))
}

/// A scheduler process reached by address, as the backend of a client's
/// `Scheduler` (`Scheduler::connect`).
pub struct Remote {
    addr: SocketAddr,
    ops: u64,
    runtime: Option<tokio::runtime::Runtime>,
    conns: Connections,
    next_compute: AtomicU64,
    workers: std::sync::Mutex<Vec<WorkerStatus>>,
    /// The registered functions of this program (the workers' too, by the handshake).
    functions: std::collections::HashSet<String>,
    /// How often the scheduler is greeted while a compute runs, and how long it
    /// may take to answer before the compute fails.
    timing: Timing,
    /// This client's name in the locks and leases it holds.
    holder: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("scheduler", &self.addr).finish()
    }
}

impl Remote {
    /// Connects to the scheduler at `addr` and checks that it and its workers run
    /// this version of Brisk with the ops of `registry`.
    pub fn connect(addr: SocketAddr, registry: &OpRegistry) -> Result<Remote, BackendError> {
        Self::connect_with(addr, registry, Timing::default(), Security::none())
    }

    /// [`connect`](Self::connect), greeting the scheduler every
    /// `timing.heartbeat` while a compute runs: one that does not answer within
    /// `timing.death_timeout` (stopped, dead, cut off) fails the compute; every
    /// call proves itself with `security`.
    pub fn connect_with(
        addr: SocketAddr,
        registry: &OpRegistry,
        timing: Timing,
        security: Security,
    ) -> Result<Remote, BackendError> {
        let remote = Remote {
            timing,
            addr,
            ops: registry_fingerprint(registry),
            runtime: Some(client_runtime(1)?),
            conns: Connections::new(security),
            next_compute: AtomicU64::new(crate::worker::epoch() & !0xffff_ffff),
            workers: std::sync::Mutex::default(),
            functions: crate::worker::function_names(registry),
            holder: {
                static REMOTES: AtomicU64 = AtomicU64::new(0);
                let n = REMOTES.fetch_add(1, Ordering::Relaxed);
                format!("client-{}-{n}", std::process::id())
            },
        };
        // This program's primitives are its cluster's (the scheduler's) while
        // it is connected.
        crate::coordinator::route_to(addr, remote.conns.security().clone(), remote.holder.clone());
        let tls = remote.conns.has_tls();
        remote.hello().map_err(|e| match e {
            // What a TLS mismatch looks like from either side, said plainly.
            BackendError::Cluster(m) if !tls && m.contains("h2 protocol error") => BackendError::Cluster(format!(
                "{m} (a scheduler using TLS answers only clients with the cluster's certificates: give --tls-ca, --tls-cert and --tls-key)"
            )),
            BackendError::Cluster(m) if tls && m.contains("transport error") => BackendError::Cluster(format!(
                "{m} (the scheduler refused this certificate, or speaks no TLS: check it is signed by the cluster's authority)"
            )),
            e => e,
        })?;
        Ok(remote)
    }

    /// Greets the scheduler: checks versions and ops, and notes its workers.
    fn hello(&self) -> Result<(), BackendError> {
        let hello: SchedulerHello =
            self.call("hello", &())?.into_iter().next().ok_or_else(|| {
                BackendError::Cluster(format!("the scheduler at {} did not answer", self.addr))
            })?;
        let unreachable = BackendError::Cluster;
        if hello.version != VERSION {
            return Err(unreachable(format!(
                "the scheduler at {} runs Brisk {}, this program {VERSION}",
                self.addr, hello.version
            )));
        }
        if let Some(w) = hello.workers.iter().find(|w| w.hello.ops != self.ops) {
            return Err(unreachable(format!(
                "worker {} knows other ops than this program (fingerprint {:016x}, here {:016x}): start workers from the same program",
                w.addr, w.hello.ops, self.ops
            )));
        }
        *self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = hello.workers;
        Ok(())
    }

    /// Calls the scheduler: its replies, decoded.
    fn call<B: Serialize, R: for<'de> Deserialize<'de> + Send + 'static>(
        &self,
        kind: &str,
        body: &B,
    ) -> Result<Vec<R>, BackendError> {
        let mut replies = Vec::new();
        let body = encode(body).map_err(cluster_error(self.addr))?;
        self.request(
            kind,
            body,
            |b| {
                replies.push(decode_body("reply", &b)?);
                Ok(())
            },
            None,
        )?;
        Ok(replies)
    }

    /// Sends one action and hands each reply's body to `each` as it comes.
    fn request(
        &self,
        kind: &str,
        body: Vec<u8>,
        mut each: impl FnMut(Vec<u8>) -> Result<(), Status>,
        cancel: Option<BoxFuture<'static, String>>,
    ) -> Result<(), BackendError> {
        let (addr, action) = (self.addr, Action { r#type: kind.into(), body: body.into() });
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let conns = &self.conns;
        let call = async move {
            let mut client = conns.client(addr).await?;
            let mut replies = client.do_action(action).await.map_err(flight_status(addr))?;
            while let Some(body) = replies.try_next().await.map_err(flight_status(addr))? {
                each(body.to_vec())?;
            }
            Ok(())
        };
        // The call stays open while the scheduler computes: greet it meanwhile,
        // on the same connection, so a scheduler that stopped answering fails
        // the call within the timeout rather than never.
        let Timing { heartbeat, death_timeout, .. } = self.timing;
        let heartbeats = async move {
            loop {
                tokio::time::sleep(heartbeat).await;
                let greeting = conns.action::<_, SchedulerHello>(addr, "hello", &());
                match tokio::time::timeout(death_timeout, greeting).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(status)) => return status,
                    Err(_) => {
                        return Status::unavailable(format!(
                            "no answer to a heartbeat in {death_timeout:?}: the scheduler died, is stopped or cannot be reached, and the compute is lost"
                        ));
                    }
                }
            }
        };
        // Let go (the call dropped, so the scheduler cancels the compute).
        let cancel = async move {
            match cancel {
                Some(cancel) => Status::cancelled(cancel.await),
                None => futures::future::pending().await,
            }
        };
        let call = async move {
            tokio::select! {
                replies = call => replies,
                status = heartbeats => Err(status),
                status = cancel => Err(status),
            }
        };
        // Runs on this thread with the runtime's timers and I/O.
        runtime.block_on(call).map_err(|status| {
            self.conns.forget(addr);
            let kind = status.metadata().get("brisk-failure").and_then(|v| v.to_str().ok());
            match kind {
                Some("task") => {
                    BackendError::Task(brisk_core::Error::user(status.message().to_string()))
                }
                _ => cluster_error(addr)(status),
            }
        })
    }
}

fn cluster_error(addr: SocketAddr) -> impl Fn(Status) -> BackendError {
    move |status| BackendError::Cluster(format!("scheduler {addr}: {}", status.message()))
}

impl Backend for Remote {
    fn run(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
    ) -> Result<Vec<Value>, BackendError> {
        let compute = self.next_compute.fetch_add(1, Ordering::Relaxed);
        self.compute(Job::new(plan, compute)?, callbacks, None)
    }

    fn run_each(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
        each: &brisk_scheduler::Each,
    ) -> Result<(), BackendError> {
        let compute = self.next_compute.fetch_add(1, Ordering::Relaxed);
        let job = Job::new(plan, compute)?.for_each(each).using(&each.held, each.outputs);
        self.compute(job, callbacks, Some(each)).map(drop)
    }

    fn persist(
        &self,
        plan: &Plan,
        callbacks: &[Arc<dyn Callback>],
        held: &std::collections::HashMap<Key, brisk_scheduler::Held>,
        outputs: usize,
    ) -> Result<Vec<brisk_scheduler::Held>, BackendError> {
        let compute = self.next_compute.fetch_add(1, Ordering::Relaxed);
        let job = Job::new(plan, compute)?.keeping().using(held, outputs);
        let kept = std::sync::Mutex::new(Vec::new());
        self.compute_with(job, callbacks, None, &kept)?;
        let kept = kept.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(kept
            .into_iter()
            .map(|(addr, compute)| brisk_scheduler::Held { compute, worker: addr.to_string() })
            .collect())
    }

    fn unpersist(&self, compute: u64) {
        let _ = self.call::<_, ()>("unpersist", &compute);
    }

    fn threads(&self) -> usize {
        let workers = self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        workers.iter().map(|w| w.hello.threads).sum()
    }

    fn describe(&self) -> String {
        let workers = self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        format!(
            "the scheduler at {}: {} workers, {} threads",
            self.addr,
            workers.len(),
            workers.iter().map(|w| w.hello.threads).sum::<usize>()
        )
    }

    fn knows_function(&self, name: &str) -> bool {
        self.functions.contains(name)
    }
}

impl Remote {
    /// Has the scheduler run `job`: its outputs (settled one by one through
    /// `each` instead, for a compute for futures).
    fn compute(
        &self,
        job: Job,
        callbacks: &[Arc<dyn Callback>],
        each: Option<&brisk_scheduler::Each>,
    ) -> Result<Vec<Value>, BackendError> {
        self.compute_with(job, callbacks, each, &std::sync::Mutex::new(Vec::new()))
    }

    /// [`compute`](Self::compute), noting in `kept` where a persist keeps its
    /// outputs.
    fn compute_with(
        &self,
        job: Job,
        callbacks: &[Arc<dyn Callback>],
        each: Option<&brisk_scheduler::Each>,
        kept: &std::sync::Mutex<Vec<(SocketAddr, u64)>>,
    ) -> Result<Vec<Value>, BackendError> {
        self.hello()?;
        let request = ComputeRequest { ops: self.ops, job, listening: !callbacks.is_empty() };
        let mut outputs = Vec::new();
        let body = encode(&request).map_err(cluster_error(self.addr))?;
        let cancel = each.map(|each| crate::cluster::cancelled(each.cancel.clone(), "let go"));
        let decode =
            |bytes: &[u8]| Value::decode(bytes).map_err(|e| Status::internal(e.to_string()));
        let on_reply = |reply: Vec<u8>| {
            match decode_body("compute reply", &reply)? {
                ComputeReply::Progress(events) => {
                    for event in events {
                        if let Progress::Settled(place, outcome) = event {
                            let outcome = match outcome {
                                Ok(bytes) => Ok(decode(&bytes)?),
                                Err(message) => {
                                    Err(BackendError::Task(brisk_core::Error::user(message)))
                                }
                            };
                            if let Some(each) = each {
                                (each.settle)(place as usize, outcome);
                            }
                            continue;
                        }
                        tell(callbacks, &event);
                    }
                }
                ComputeReply::Output(bytes) => outputs.push(decode(&bytes)?),
                ComputeReply::Kept(at) => {
                    *kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = at
                }
            }
            Ok(())
        };
        self.request("compute", body, on_reply, cancel)?;
        Ok(outputs)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        brisk_scheduler::coordination::unset_coordinator(&self.holder);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
