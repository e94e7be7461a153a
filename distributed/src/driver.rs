//! The scheduler's side of one compute on workers: which task runs where, who
//! holds which result, and what to recompute when a worker dies.
//!
//! - Ready tasks wait here, in the plan's priority order, and go out only while
//!   a worker has a free slot (its threads plus one, so a worker never waits for
//!   the next task's round trip). Roots included: inputs are never read faster
//!   than workers consume them. An idle worker takes the next ready task,
//!   wherever its inputs are: that is the stealing, done before a task is sent.
//! - A task goes to the worker with a free slot that holds the most bytes of its
//!   inputs; ties go to the least busy.
//! - A result is freed on its worker once its last dependent has finished;
//!   outputs are fetched as soon as they are computed.
//! - Heartbeats: every worker is greeted each `heartbeat`; one that does not
//!   answer within `death_timeout`, answers with another epoch, or drops a
//!   task's connection and then fails its greeting is dead. Its running tasks
//!   go back to the queue (a task that was running on `allowed_failures` dead
//!   workers fails the compute: Dask's `KilledWorker`), and the results it held
//!   that are still needed are recomputed from their lineage — those and, where
//!   their own inputs were freed, those inputs: nothing else. Nothing from a dead
//!   worker is accepted again.
//!
//! - A worker that cannot fetch an input from a holder that still answers its
//!   greetings has a cut link to it: its tasks needing that holder's results
//!   go to workers that reach it, and where none can, those results are
//!   computed again. Cut links are remembered (`Connections::note_cut`) for
//!   the computes that follow, for half a minute.
//!
//! Results do not depend on placement: each task's inputs come in the order its
//! op takes them, so the values are the thread scheduler's, bit for bit.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brisk_core::{Key, Value};
use brisk_graph::Plan;
use brisk_scheduler::{BackendError, Callback, Settle};
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tonic::Status;

use crate::client::Connections;
use crate::worker::{Hello, Input, Ran, ResultId, RunTask, Wanted};

/// How fast worker deaths are noticed and how often a task may kill its worker.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How often each worker is greeted (default 0.5 s).
    pub heartbeat: Duration,
    /// How long a greeting may go unanswered before the worker is declared dead
    /// (default 3 s).
    pub death_timeout: Duration,
    /// How many workers may die while running the same task: at that many the
    /// compute fails (default 3).
    pub allowed_failures: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(500),
            death_timeout: Duration::from_secs(3),
            allowed_failures: 3,
        }
    }
}

/// The times tasks of a kind took, in µs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Times {
    total: f64,
    count: u64,
    longest: f64,
}

/// What the computes of one cluster share, so that one placing its tasks sees
/// the others': the times learnt of each kind of task (Dask's task duration
/// estimates), and the work each has sent to each worker and not had answered
/// (by the tasks' expected times, in µs).
#[derive(Debug, Default)]
pub(crate) struct Learned {
    times: std::sync::Mutex<HashMap<String, Times>>,
    load: std::sync::Mutex<HashMap<SocketAddr, f64>>,
    /// Computes started: each breaks placement ties from another worker, so
    /// computes placing at once do not all pick the same one.
    computes: std::sync::atomic::AtomicUsize,
}

impl Learned {
    fn times(&self) -> HashMap<String, Times> {
        self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Keeps what a compute learnt (it started from what was known).
    fn learn(&self, times: &HashMap<String, Times>) {
        let mut known = self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (kind, t) in times {
            let k = known.entry(kind.clone()).or_default();
            if t.count >= k.count {
                *k = *t;
            }
        }
    }

    /// Work sent to (`micros` > 0) or answered by (< 0) the worker at `addr`.
    fn add(&self, addr: SocketAddr, micros: f64) {
        let mut load = self.load.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let l = load.entry(addr).or_default();
        *l = (*l + micros).max(0.0);
    }

    /// The work on the worker at `addr` not answered yet, in µs.
    fn load(&self, addr: SocketAddr) -> f64 {
        let load = self.load.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        load.get(&addr).copied().unwrap_or(0.0)
    }
}

/// What every compute of a cluster is driven with: its timing, its
/// connections and what its computes learn.
pub(crate) struct Shared {
    pub timing: Timing,
    pub conns: Arc<Connections>,
    pub learned: Arc<Learned>,
}

/// A worker as a compute sees it.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub addr: SocketAddr,
    pub threads: usize,
    pub memory_limit: u64,
    pub epoch: u64,
    /// The fingerprint of its ops.
    pub ops: u64,
}

/// Calls for one task (to run it, or fetch it) that may fail with the worker
/// alive before the compute gives up.
const MAX_RETRIES: u32 = 8;

/// Times a task's inputs may be made again to bring them within one worker's
/// reach before the compute fails.
const MAX_REMAKES: u32 = 3;

/// Outputs up to this size are fetched together, one call per worker, in
/// Brisk's value codec; larger ones by Flight `DoGet`, each on its own.
const SMALL_OUTPUT: u64 = 1 << 20;

/// A task's kind, for the times and sizes learnt of its like: its key's name
/// without the `-<hex>` a delayed call adds (`inc-1f3a` is an `inc`), as
/// Dask's `key_split` does.
fn kind(key: &Key) -> &str {
    let name = key.name();
    match name.rsplit_once('-') {
        Some((kind, tag))
            if !kind.is_empty()
                && !tag.is_empty()
                && tag.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            kind
        }
        _ => name,
    }
}

/// Ready tasks the dispatch may pass over when they cannot go yet.
const PASSED_OVER: usize = 64;

/// Tasks a worker may have queued per thread (see `Drive::has_room`).
const QUEUED: usize = 64;

/// Work a worker may have queued per thread, by the tasks' expected times, in µs
/// (see `Drive::has_room`).
const QUEUE_MICROS: f64 = 4_000.0;

/// Bytes moved between workers per µs, for placement (`Drive::place`): what
/// this machine's loopback moved, worker to worker, when measured (0.3 GB/s).
const BYTES_PER_MICRO: f64 = 300.0;

/// Tasks expected to take at most this long, in µs, run on the thread that
/// takes their call on the worker (`RunTask::quick`).
const QUICK_MICROS: f64 = 20.0;

/// The expected time of a task of a kind none of which has finished yet, in µs.
const UNKNOWN_MICROS: f64 = 1000.0;

/// The tasks sent to a worker at once: each one's number and attempt, and what
/// goes over the wire, in the same order.
type Batch = (Vec<(usize, u32)>, Vec<RunTask>);

/// Sends `batch` to `worker` and passes each answer on; tasks left unanswered
/// when the batch's call breaks get the error it broke with.
async fn run_batch(
    conns: Arc<Connections>,
    tx: mpsc::UnboundedSender<Event>,
    addr: SocketAddr,
    worker: usize,
    (batch, runs): Batch,
) {
    let mut answered = vec![false; batch.len()];
    let broke = match conns.run_batch(addr, &runs).await {
        Ok(mut replies) => loop {
            match replies.next().await {
                Some(Ok((i, result))) if i < batch.len() && !answered[i] => {
                    answered[i] = true;
                    let (task, attempt) = batch[i];
                    let _ = tx.send(Event::Ran { task, attempt, worker, result });
                }
                Some(Ok(_)) => {}
                Some(Err(status)) => break status,
                None => break Status::unavailable(format!("worker {addr} closed a batch")),
            }
        },
        Err(status) => status,
    };
    for (i, (task, attempt)) in batch.into_iter().enumerate() {
        if !answered[i] {
            let result = Err(broke.clone());
            let _ = tx.send(Event::Ran { task, attempt, worker, result });
        }
    }
}

/// A plan in the form that leaves the process: every op encoded (refused here,
/// naming the task, if one cannot be), inputs and dependents as flat rows.
#[derive(Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) compute: u64,
    keys: Vec<Key>,
    ops: Vec<serde_bytes::ByteBuf>,
    /// The ops' names, each once, and the index of each task's there: what
    /// callbacks are told of it.
    op_names: Vec<String>,
    op_of: Vec<u32>,
    dep_start: Vec<u32>,
    deps: Vec<u32>,
    dependent_start: Vec<u32>,
    dependents: Vec<u32>,
    outputs: Vec<u32>,
    is_output: Vec<bool>,
    /// `Some(i)` for a task that only takes item `i` of its one input, a list:
    /// it is not run but read where it is needed (a view).
    items: Vec<Option<u32>>,
    /// A compute for futures (`Backend::run_each`): a failing task fails only
    /// the outputs that need it, each output is settled as it comes.
    #[serde(default)]
    pub(crate) each: bool,
    /// Times each task runs again when it fails (a compute for futures; empty:
    /// never).
    #[serde(default)]
    retries: Vec<u32>,
    /// Each task's priority on its worker (a compute for futures; empty: all 0).
    #[serde(default)]
    priorities: Vec<i64>,
    /// Keep the outputs on the workers, not fetched (a persist).
    #[serde(default)]
    pub(crate) keep: bool,
    /// Tasks whose results an earlier persist keeps: the compute that made
    /// each and its worker (empty: none).
    #[serde(default)]
    held: Vec<Option<(u64, SocketAddr)>>,
}

impl Job {
    pub(crate) fn new(plan: &Plan, compute: u64) -> Result<Job, BackendError> {
        let n = plan.len();
        let mut job = Job {
            compute,
            keys: Vec::with_capacity(n),
            ops: Vec::with_capacity(n),
            op_names: Vec::new(),
            op_of: Vec::with_capacity(n),
            dep_start: vec![0],
            deps: Vec::new(),
            dependent_start: vec![0],
            dependents: Vec::new(),
            outputs: plan.outputs().to_vec(),
            is_output: (0..n).map(|i| plan.is_output(i)).collect(),
            items: (0..n)
                .map(|i| match plan.deps(i) {
                    [_] => plan.op(i).list_item().map(|item| item as u32),
                    _ => None,
                })
                .collect(),
            each: false,
            retries: Vec::new(),
            keep: false,
            held: Vec::new(),
            priorities: Vec::new(),
        };
        let mut named = std::collections::HashMap::<String, u32>::new();
        for i in 0..n {
            let op = plan.op(i).encode().map_err(|e| BackendError::Task(e.in_task(plan.key(i))))?;
            job.keys.push(plan.key(i).clone());
            job.ops.push(serde_bytes::ByteBuf::from(op));
            let name = plan.op(i).name();
            let next = named.len() as u32;
            let at = *named.entry(name).or_insert_with_key(|name| {
                job.op_names.push(name.clone());
                next
            });
            job.op_of.push(at);
            job.deps.extend_from_slice(plan.deps(i));
            job.dep_start.push(job.deps.len() as u32);
            job.dependents.extend_from_slice(plan.dependents(i));
            job.dependent_start.push(job.dependents.len() as u32);
        }
        Ok(job)
    }

    /// This job as a compute for futures: failures kept to the outputs that
    /// need the failing task, which runs again up to its `retries` (by key).
    pub(crate) fn for_each(mut self, each: &brisk_scheduler::Each) -> Job {
        self.each = true;
        if !each.retries.is_empty() {
            let retries = &each.retries;
            self.retries = self.keys.iter().map(|k| retries.get(k).copied().unwrap_or(0)).collect();
        }
        if !each.priorities.is_empty() {
            // A request's tasks all have its priority (the highest of those
            // that need one, where requests share tasks).
            let n = self.keys.len();
            let mut priority: Vec<Option<i64>> =
                self.keys.iter().map(|k| each.priorities.get(k).copied()).collect();
            for t in (0..n).rev() {
                let Some(p) = priority[t] else { continue };
                for &d in self.deps(t) {
                    let d = d as usize;
                    priority[d] = Some(priority[d].map_or(p, |q| q.max(p)));
                }
            }
            self.priorities = priority.into_iter().map(|p| p.unwrap_or(0)).collect();
        }
        self
    }

    /// Task `t`'s op name, as callbacks are told it.
    pub(crate) fn op_name(&self, t: usize) -> &str {
        match self.op_of.get(t).and_then(|&at| self.op_names.get(at as usize)) {
            Some(name) => name,
            None => kind(&self.keys[t]),
        }
    }

    /// How many tasks of each op it has, by name ([`Callback::planned`]).
    pub(crate) fn op_counts(&self) -> Vec<(String, usize)> {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for t in 0..self.keys.len() {
            *counts.entry(self.op_name(t)).or_default() += 1;
        }
        counts.into_iter().map(|(name, n)| (name.to_string(), n)).collect()
    }

    /// This job as a persist: its outputs kept on the workers.
    pub(crate) fn keeping(mut self) -> Job {
        self.keep = true;
        self
    }

    /// Uses the results earlier persists keep (`held`, by key) where this
    /// job's tasks are theirs; only the first `outputs` of the plan's outputs
    /// are this job's (the rest were planned as outputs only so that the
    /// tasks of held results stay tasks of their own).
    pub(crate) fn using(
        mut self,
        held: &HashMap<Key, brisk_scheduler::Held>,
        outputs: usize,
    ) -> Job {
        for &extra in &self.outputs[outputs.min(self.outputs.len())..] {
            self.is_output[extra as usize] = false;
        }
        self.outputs.truncate(outputs);
        for &t in &self.outputs {
            self.is_output[t as usize] = true;
        }
        if !held.is_empty() {
            self.held = self
                .keys
                .iter()
                .map(|k| {
                    let h = held.get(k)?;
                    Some((h.compute, h.worker.parse().ok()?))
                })
                .collect();
        }
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    fn deps(&self, t: usize) -> &[u32] {
        &self.deps[self.dep_start[t] as usize..self.dep_start[t + 1] as usize]
    }

    fn dependents(&self, t: usize) -> &[u32] {
        &self.dependents[self.dependent_start[t] as usize..self.dependent_start[t + 1] as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Some input is not held yet.
    Waiting,
    /// In the ready queue.
    Ready,
    /// Sent to a worker; `attempt` tells its answer from a stale one.
    Running { worker: usize, attempt: u32 },
    /// Computed, held by a worker.
    Held { worker: usize },
    /// Not held anywhere: freed once no longer needed, or lost with its worker.
    Gone,
    /// It, or a task it needs, failed (a compute for futures): never run.
    Failed,
}

enum Event {
    Ran {
        task: usize,
        attempt: u32,
        worker: usize,
        result: Result<Ran, Status>,
    },
    Fetched {
        task: usize,
        attempt: u32,
        result: Result<Value, Status>,
    },
    /// A worker's batch of small outputs has come (after their `Fetched`).
    FetchesDone {
        worker: usize,
    },
    Greeted {
        worker: usize,
        result: Result<Hello, Status>,
    },
}

struct Slot {
    member: Member,
    alive: bool,
    /// Tasks sent and not answered, and how many of them are roots.
    running: usize,
    roots: usize,
    /// Bytes of the results it holds.
    held: u64,
    /// The µs of work sent and not answered, by the tasks' expected times.
    occupancy: f64,
    greeting: bool,
    /// Tasks whose connection failed: dead with the worker, or sent again if it
    /// answers its greeting.
    suspects: Vec<(usize, u32)>,
    /// Outputs whose fetch failed: fetched again if it answers its greeting.
    refetch: Vec<usize>,
}

/// What a compute left behind: the values of the outputs, and the workers found
/// dead on the way.
pub(crate) struct Outcome {
    pub values: Result<Vec<Value>, BackendError>,
    pub dead: Vec<SocketAddr>,
    /// Where each output is kept (a persist), and by which compute (this
    /// one, or the earlier persist that kept it already).
    pub kept: Vec<(SocketAddr, u64)>,
}

struct Drive {
    job: Job,
    timing: Timing,
    conns: Arc<Connections>,
    callbacks: Vec<Arc<dyn Callback>>,
    tx: mpsc::UnboundedSender<Event>,
    workers: Vec<Slot>,
    state: Vec<State>,
    /// Inputs (edges) not yet held, per task.
    waiting: Vec<u32>,
    /// Dependents (edges) not yet finished, per task: freed at zero.
    left: Vec<u32>,
    nbytes: Vec<u64>,
    attempts: Vec<u32>,
    deaths: Vec<Vec<SocketAddr>>,
    /// Times a task was sent back, or an output fetched again, after a call
    /// failed with its worker alive.
    misses: Vec<u32>,
    /// Times a task's inputs were made again because no worker reached them.
    remakes: Vec<u32>,
    /// Ready tasks with inputs, and ready roots, by priority.
    ready: BTreeSet<usize>,
    ready_roots: BTreeSet<usize>,
    /// Bytes and count of finished roots, by key name: the size of the next.
    sizes: HashMap<String, (u64, u64)>,
    /// The times of finished tasks, by kind (this compute's and, from the
    /// start, the cluster's earlier ones): the time of the next.
    durations: HashMap<String, Times>,
    /// What the cluster's computes share: times learnt, work sent to each worker.
    learned: Arc<Learned>,
    /// Placement ties go to the first worker from this one on.
    first: usize,
    /// When each running task was sent (for the callbacks' records).
    sent_at: Vec<Option<std::time::Instant>>,
    /// Whether the callbacks were told the task is done.
    told: Vec<bool>,
    /// The time each running task was expected to take when sent.
    expected: Vec<f64>,
    /// Results that cannot leave their worker: their dependents run there.
    pinned: Vec<bool>,
    got: HashMap<usize, Value>,
    /// Results to free, by worker: tasks' numbers.
    to_free: HashMap<usize, Vec<usize>>,
    /// Small outputs to fetch, by worker: fetched in one call per worker.
    to_fetch: HashMap<usize, Vec<usize>>,
    /// How many different tasks the outputs are.
    distinct_outputs: usize,
    /// Workers with a batch of outputs on its way: the next waits for it, and
    /// is the larger for it.
    fetching: std::collections::HashSet<usize>,
    /// Whether a held task is a view: an item of its input's list, read where
    /// it is needed, never run (its list is freed after it).
    view: Vec<bool>,
    /// Item tasks whose list is held, to become views at the next dispatch.
    to_view: Vec<usize>,
    /// (worker, holder): the worker could not fetch from the holder, alive
    /// (a link cut between the two only). Tasks with inputs on the holder go
    /// elsewhere; where none can, those inputs are computed again.
    cut: std::collections::HashSet<(usize, usize)>,
    /// Who hears of each output as it comes (a compute for futures).
    settle: Option<Settle>,
    /// Batches of tasks on their way, polled by the driver itself (no hand-over
    /// to another thread between a task's dispatch and its call).
    calls: futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, ()>>,
    /// Each output task's places among the outputs (with `settle`).
    places: HashMap<usize, Vec<usize>>,
    /// Output tasks that failed (a compute for futures).
    failed_outputs: usize,
    /// Times each task failed and ran again.
    tries: Vec<u32>,
    /// Outputs that came back with their answer, kept by no worker.
    unkept: Vec<bool>,
    /// Whether any worker kept a result of this compute (else there is nothing
    /// to free at its end).
    kept_any: bool,
    /// Results an earlier persist keeps, used here: the compute that made each
    /// (never freed by this one).
    external: Vec<Option<u64>>,
}

/// Runs `job` on `members`: what came of it. Stops early, freeing what it
/// made, when `cancel` resolves. The results left on the workers are freed
/// before it returns, or, for a compute for futures (whose outputs are all
/// settled by then), just after.
pub(crate) async fn drive(
    job: Job,
    members: Vec<Member>,
    shared: Shared,
    callbacks: Vec<Arc<dyn Callback>>,
    cancel: futures::future::BoxFuture<'static, String>,
    settle: Option<Settle>,
) -> Outcome {
    let n = job.len();
    let mut places: HashMap<usize, Vec<usize>> = HashMap::new();
    if settle.is_some() {
        for (place, &task) in job.outputs.iter().enumerate() {
            places.entry(task as usize).or_default().push(place);
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let workers = members
        .into_iter()
        .map(|member| Slot {
            member,
            alive: true,
            running: 0,
            roots: 0,
            held: 0,
            occupancy: 0.0,
            greeting: false,
            suspects: vec![],
            refetch: vec![],
        })
        .collect();
    let mut d = Drive {
        timing: shared.timing,
        conns: shared.conns,
        callbacks,
        tx,
        workers,
        state: vec![State::Waiting; n],
        waiting: (0..n).map(|t| job.deps(t).len() as u32).collect(),
        left: (0..n).map(|t| job.dependents(t).len() as u32).collect(),
        nbytes: vec![0; n],
        attempts: vec![0; n],
        deaths: vec![Vec::new(); n],
        misses: vec![0; n],
        remakes: vec![0; n],
        ready: BTreeSet::new(),
        ready_roots: (0..n).filter(|&t| job.deps(t).is_empty()).collect(),
        sizes: HashMap::new(),
        durations: shared.learned.times(),
        first: shared.learned.computes.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        learned: shared.learned,
        expected: vec![0.0; n],
        pinned: vec![false; n],
        got: HashMap::new(),
        to_free: HashMap::new(),
        to_fetch: HashMap::new(),
        distinct_outputs: job.is_output.iter().filter(|&&o| o).count(),
        fetching: Default::default(),
        view: vec![false; n],
        to_view: Vec::new(),
        cut: Default::default(),
        settle,
        calls: Default::default(),
        places,
        failed_outputs: 0,
        tries: vec![0; n],
        unkept: vec![false; n],
        sent_at: vec![None; n],
        told: vec![false; n],
        kept_any: false,
        external: vec![None; n],
        job,
    };
    for &t in &d.ready_roots {
        d.state[t] = State::Ready;
    }
    // Results earlier persists keep, where their workers are here: used as
    // held; what must run is worked out from there.
    let mut external = false;
    for t in 0..n {
        let Some((compute, addr)) = d.job.held.get(t).copied().flatten() else { continue };
        let Some(w) = d.workers.iter().position(|w| w.member.addr == addr) else { continue };
        d.state[t] = State::Held { worker: w };
        d.external[t] = Some(compute);
        external = true;
    }
    if external {
        d.ready.clear();
        d.ready_roots.clear();
        for t in 0..n {
            if d.external[t].is_none() {
                d.state[t] = State::Gone;
            }
        }
        d.reconcile();
        d.tell_held();
        // Outputs already held: fetched from where they are.
        if !d.job.keep {
            for i in 0..d.job.outputs.len() {
                let t = d.job.outputs[i] as usize;
                if let (State::Held { worker }, Some(_)) = (d.state[t], d.external[t]) {
                    d.fetch(t, worker);
                }
            }
        }
    }
    // Links found cut by the computes before, avoided from the start.
    let at = |addr: SocketAddr| d.workers.iter().position(|w| w.member.addr == addr);
    let known: Vec<(usize, usize)> =
        d.conns.cuts().into_iter().filter_map(|(from, to)| Some((at(from)?, at(to)?))).collect();
    d.cut.extend(known);
    let values = tokio::select! {
        values = d.run(&mut rx) => values,
        why = cancel => Err(BackendError::Cluster(format!("compute cancelled: {why}"))),
    };
    let dead = d.workers.iter().filter(|w| !w.alive).map(|w| w.member.addr).collect();
    // Whether a task may still run, or have run, where this compute does not
    // know: one running, or one sent more than once.
    let running = d.state.iter().any(|s| matches!(s, State::Running { .. }))
        || d.attempts.iter().any(|&a| a > 1);
    d.learned.learn(&d.durations);
    for w in &d.workers {
        d.learned.add(w.member.addr, -w.occupancy);
    }
    let kept: Vec<(SocketAddr, u64)> = match (&values, d.job.keep) {
        (Ok(_), true) => d
            .job
            .outputs
            .iter()
            .filter_map(|&t| match d.state[t as usize] {
                State::Held { worker } => Some((
                    d.workers[worker].member.addr,
                    d.external[t as usize].unwrap_or(d.job.compute),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    match d.job.each {
        // A persist that made its outputs keeps them (and whatever else it
        // left, freed with them).
        _ if d.job.keep && values.is_ok() => {}
        // Nothing kept anywhere, nothing running: nothing to free.
        _ if values.is_ok() && !d.kept_any && !running => {}
        // Every output settled: the next request need not wait for the frees.
        true => drop(tokio::spawn(async move { d.wind_down().await })),
        false => d.wind_down().await,
    }
    Outcome { values, dead, kept }
}

impl Drive {
    async fn run(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<Vec<Value>, BackendError> {
        // The first greeting a heartbeat after the start (the workers were
        // greeted when they joined): a small compute sends nothing but its tasks.
        let first = tokio::time::Instant::now() + self.timing.heartbeat;
        let mut beat = tokio::time::interval_at(first, self.timing.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch()?;
            self.flush_frees();
            self.flush_fetches();
            // A persist is done once every output is held.
            if self.job.keep
                && self
                    .job
                    .outputs
                    .iter()
                    .all(|&t| matches!(self.state[t as usize], State::Held { .. }))
            {
                return Ok(Vec::new());
            }
            // Only outputs are fetched: all are in once there are as many.
            if !self.job.keep && self.got.len() + self.failed_outputs == self.distinct_outputs {
                if self.job.each {
                    // Each was settled as it came.
                    return Ok(Vec::new());
                }
                return Ok(self
                    .job
                    .outputs
                    .iter()
                    .map(|t| self.got[&(*t as usize)].clone())
                    .collect());
            }
            if !self.workers.iter().any(|w| w.alive) {
                return Err(BackendError::Cluster(
                    "every worker died: the compute cannot go on (see the workers' logs)".into(),
                ));
            }
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => {
                        self.handle(event)?;
                        // Everything already answered, before sending more: fuller batches.
                        while let Ok(event) = rx.try_recv() {
                            self.handle(event)?;
                        }
                    }
                    None => unreachable!("the driver holds a sender"),
                },
                _ = beat.tick() => self.greet_all(),
                Some(()) = self.calls.next(), if !self.calls.is_empty() => {}
            }
        }
    }

    /// Frees every result of the compute on every live worker; a task still
    /// running for it keeps nothing (the workers close the compute).
    async fn wind_down(&mut self) {
        let frees = self.workers.iter().filter(|w| w.alive).map(|w| {
            let (conns, addr, compute) = (self.conns.clone(), w.member.addr, self.job.compute);
            async move { conns.free_compute(addr, compute).await }
        });
        let frees = futures::future::join_all(frees);
        let _ = tokio::time::timeout(self.timing.death_timeout, frees).await;
    }

    fn handle(&mut self, event: Event) -> Result<(), BackendError> {
        match event {
            Event::Ran { task, attempt, worker, result } => {
                if self.state[task] != (State::Running { worker, attempt }) {
                    // Stale: sent again since, or its worker is dead. A result it
                    // left on a live worker that holds no newer one is freed.
                    let newer = matches!(
                        self.state[task],
                        State::Held { worker: w } | State::Running { worker: w, .. } if w == worker
                    );
                    if result.is_ok() && self.workers[worker].alive && !newer {
                        self.to_free.entry(worker).or_default().push(task);
                    }
                    return Ok(());
                }
                match result {
                    Ok(ran) => self.finished(task, worker, ran),
                    Err(status) => self.failed(task, worker, attempt, status)?,
                }
            }
            Event::FetchesDone { worker } => {
                self.fetching.remove(&worker);
            }
            Event::Fetched { task, attempt, result } => {
                if self.attempts[task] != attempt
                    || self.got.contains_key(&task)
                    || self.state[task] == State::Failed
                {
                    return Ok(());
                }
                match result {
                    Ok(value) => {
                        self.take_output(task, value);
                        match self.state[task] {
                            State::Held { .. } => self.free_if_done(task),
                            // Lost and queued again meanwhile: no longer needed.
                            State::Waiting | State::Ready => {
                                self.state[task] = State::Gone;
                                self.reconcile();
                            }
                            _ => {}
                        }
                    }
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                        return Err(BackendError::Task(
                            brisk_core::Error::user(status.message().to_string())
                                .in_task(&self.job.keys[task]),
                        ));
                    }
                    // Lost with its worker (the greeting settles it, and the output
                    // is computed again), or a failed call: fetched again.
                    Err(status) => {
                        self.misses[task] += 1;
                        if self.misses[task] > MAX_RETRIES {
                            return Err(BackendError::Cluster(format!(
                                "output {} could not be fetched: {}",
                                self.job.keys[task],
                                status.message()
                            )));
                        }
                        if let State::Held { worker } = self.state[task] {
                            self.workers[worker].refetch.push(task);
                            self.greet(worker);
                        }
                    }
                }
            }
            Event::Greeted { worker, result } => {
                let w = &mut self.workers[worker];
                w.greeting = false;
                if !w.alive {
                    return Ok(());
                }
                match result {
                    Ok(hello) if hello.epoch == w.member.epoch => {
                        let suspects = std::mem::take(&mut w.suspects);
                        let refetch = std::mem::take(&mut w.refetch);
                        for task in refetch {
                            if self.state[task] == (State::Held { worker }) {
                                self.fetch(task, worker);
                            }
                        }
                        if !suspects.is_empty() {
                            for (task, attempt) in suspects {
                                self.requeue(task, worker, attempt);
                            }
                            self.reconcile();
                        }
                    }
                    _ => self.remove_worker(worker)?,
                }
            }
        }
        Ok(())
    }

    fn finished(&mut self, task: usize, worker: usize, ran: Ran) {
        let Ran { nbytes, micros, pinned, read, value } = ran;
        self.pinned[task] = pinned;
        // An output that came with its answer (its worker kept nothing): no
        // fetch, no free.
        self.unkept[task] = value.is_some();
        self.kept_any |= value.is_none();
        if let Some(bytes) = value {
            match Value::decode(&bytes) {
                Ok(value) => self.take_output(task, value),
                // Not kept, not readable: run again, its result fetched then.
                Err(_) => {
                    self.misses[task] += 1;
                    self.unslot(task, worker);
                    self.state[task] = State::Waiting;
                    self.reconcile();
                    return;
                }
            }
        }
        self.unslot(task, worker);
        let time = self.durations.entry(kind(&self.job.keys[task]).to_string()).or_default();
        time.total += micros as f64;
        time.count += 1;
        time.longest = time.longest.max(micros as f64);
        self.state[task] = State::Held { worker };
        self.nbytes[task] = nbytes;
        self.workers[worker].held += nbytes;
        if self.job.deps(task).is_empty() {
            let size = self.sizes.entry(kind(&self.job.keys[task]).to_string()).or_default();
            *size = (size.0 + nbytes, size.1 + 1);
        }
        // Told once: a task run again (its result lost) is not counted twice.
        if !self.callbacks.is_empty() && !std::mem::replace(&mut self.told[task], true) {
            let key = &self.job.keys[task];
            let now = std::time::Instant::now();
            let bytes_in = self.job.deps(task).iter().map(|&d| self.nbytes[d as usize]).sum();
            let done = brisk_scheduler::TaskDone {
                key,
                op: self.job.op_name(task),
                worker,
                start: self.sent_at[task].take().unwrap_or(now),
                end: now,
                bytes_in,
                bytes_out: nbytes,
            };
            for cb in &self.callbacks {
                if read > 0 {
                    cb.task_read(key, worker, read);
                }
                cb.task_done(&done);
                cb.task_finished(key, worker);
            }
        }
        for i in self.job.dep_start[task]..self.job.dep_start[task + 1] {
            let dep = self.job.deps[i as usize] as usize;
            self.left[dep] -= 1;
            self.free_if_done(dep);
        }
        self.tell_memory(worker);
        self.completed(task, worker);
    }

    /// Tells the callbacks the results held now, by all workers and by `worker`.
    fn tell_memory(&self, worker: usize) {
        if self.callbacks.is_empty() {
            return;
        }
        let alive = self.workers.iter().filter(|w| w.alive);
        let held = alive.clone().map(|w| w.held).sum();
        let limit = alive.map(|w| w.member.memory_limit).sum();
        let here = &self.workers[worker];
        for cb in &self.callbacks {
            cb.memory(held, limit);
            cb.worker_memory(worker, here.held, here.member.memory_limit);
        }
    }

    /// Tells the callbacks of the tasks that will not run because an earlier
    /// persist holds their results (or what needs them): done at once, taking
    /// no time, as views are, so the plan's count is reached.
    fn tell_held(&mut self) {
        if self.callbacks.is_empty() {
            return;
        }
        for task in 0..self.job.len() {
            let worker = match self.state[task] {
                State::Held { worker } => worker,
                State::Gone => 0,
                _ => continue,
            };
            self.told[task] = true;
            self.tell_done_at_once(task, worker, 0, 0);
        }
    }

    /// Tells the callbacks `task` is done on `worker` now, having taken no
    /// time (a view, or a result a persist holds).
    fn tell_done_at_once(&self, task: usize, worker: usize, bytes_in: u64, bytes_out: u64) {
        let now = std::time::Instant::now();
        let done = brisk_scheduler::TaskDone {
            key: &self.job.keys[task],
            op: self.job.op_name(task),
            worker,
            start: now,
            end: now,
            bytes_in,
            bytes_out,
        };
        for cb in &self.callbacks {
            cb.task_done(&done);
            cb.task_finished(done.key, worker);
        }
    }

    /// Makes the item task `task` a view of its list's result where that is held:
    /// done at once, nothing run. The list stays until the view is freed.
    fn show(&mut self, task: usize) {
        if self.state[task] != State::Ready {
            return;
        }
        let list = self.job.deps(task)[0] as usize;
        let State::Held { worker } = self.state[list] else {
            // Lost meanwhile: what must run is worked out again.
            self.state[task] = State::Waiting;
            self.reconcile();
            return;
        };
        self.attempts[task] += 1;
        self.state[task] = State::Held { worker };
        self.view[task] = true;
        self.pinned[task] = self.pinned[list];
        // For placement: the list's bytes shared among its items.
        self.nbytes[task] = self.nbytes[list] / self.job.dependents(list).len().max(1) as u64;
        if !self.callbacks.is_empty() && !std::mem::replace(&mut self.told[task], true) {
            // Done, as a task that takes no time (it is one on threads).
            for cb in &self.callbacks {
                cb.task_started(&self.job.keys[task], worker);
            }
            self.tell_done_at_once(task, worker, self.nbytes[list], self.nbytes[task]);
        }
        self.completed(task, worker);
    }

    /// What follows from `task` being held on `worker`: its dependents' inputs,
    /// and its fetch if it is an output.
    fn completed(&mut self, task: usize, worker: usize) {
        for i in self.job.dependent_start[task]..self.job.dependent_start[task + 1] {
            let next = self.job.dependents[i as usize] as usize;
            // Only a waiting task counts its inputs: one computed again after a
            // loss may have dependents that ran long ago.
            if self.state[next] != State::Waiting {
                continue;
            }
            self.waiting[next] -= 1;
            if self.waiting[next] == 0 {
                self.make_ready(next);
            }
        }
        if self.job.is_output[task] && !self.job.keep {
            match self.got.contains_key(&task) {
                true => self.free_if_done(task),
                false => self.fetch(task, worker),
            }
        }
    }

    fn failed(
        &mut self,
        task: usize,
        worker: usize,
        attempt: u32,
        status: Status,
    ) -> Result<(), BackendError> {
        let kind = status
            .metadata()
            .get("brisk-failure")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let key = self.job.keys[task].clone();
        match kind.as_str() {
            "error" | "panic" if self.job.each => {
                self.task_failed(task, worker, kind == "panic", status.message());
                Ok(())
            }
            "error" => Err(BackendError::Task(
                brisk_core::Error::user(status.message().to_string()).in_task(&key),
            )),
            "panic" => Err(BackendError::Task(brisk_core::Error::Panic {
                key,
                message: status.message().to_string(),
            })),
            missing if missing.starts_with("missing ") => {
                self.misses[task] += 1;
                if self.misses[task] > MAX_RETRIES {
                    return Err(BackendError::Cluster(format!(
                        "task {key}: its inputs could not be had from their workers: {}",
                        status.message()
                    )));
                }
                self.requeue(task, worker, attempt);
                let peer = missing["missing ".len()..].parse::<SocketAddr>().ok();
                // An earlier persist's result missing where it was kept (its
                // worker started anew, or it was let go): made again here,
                // from its lineage.
                let lost: Vec<usize> = self
                    .job
                    .deps(task)
                    .iter()
                    .map(|&d| d as usize)
                    .filter(|&d| {
                        self.external[d].is_some()
                            && matches!(self.state[d], State::Held { worker: w }
                                if Some(self.workers[w].member.addr) == peer)
                    })
                    .collect();
                for d in lost {
                    self.external[d] = None;
                    self.state[d] = State::Gone;
                }
                if let Some(p) = self.workers.iter().position(|w| Some(w.member.addr) == peer) {
                    // Dead, its greeting will say; alive, the link between the
                    // two is cut: the task goes where its inputs can be had, or
                    // they are made again where it can go.
                    self.greet(p);
                    // Only a peer that could not be reached: one that answered
                    // without the result (it started anew) is not a cut link.
                    let unreachable = matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::DeadlineExceeded
                            | tonic::Code::Unknown
                    );
                    if p != worker && unreachable {
                        self.cut.insert((worker, p));
                        self.conns.note_cut(
                            self.workers[worker].member.addr,
                            self.workers[p].member.addr,
                        );
                    }
                }
                self.reconcile();
                Ok(())
            }
            // Not the network: the same call would fail the same way again.
            _ if matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::Internal
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::OutOfRange
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::Unimplemented
            ) =>
            {
                Err(BackendError::Task(
                    brisk_core::Error::user(status.message().to_string()).in_task(&key),
                ))
            }
            // The connection broke: the worker died, or the network hiccupped.
            // Its greeting decides; until then the task counts as running there.
            _ => {
                self.misses[task] += 1;
                if self.misses[task] > MAX_RETRIES {
                    return Err(BackendError::Cluster(format!(
                        "task {key}: its worker {} kept failing it: {}",
                        self.workers[worker].member.addr,
                        status.message()
                    )));
                }
                self.conns.forget(self.workers[worker].member.addr);
                self.workers[worker].suspects.push((task, attempt));
                self.greet(worker);
                Ok(())
            }
        }
    }

    /// An output's value has come: kept, and settled when outputs are settled
    /// one by one.
    fn take_output(&mut self, task: usize, value: Value) {
        if let (Some(settle), Some(places)) = (&self.settle, self.places.get(&task)) {
            for &place in places {
                settle(place, Ok(value.clone()));
            }
        }
        self.got.insert(task, value);
    }

    /// In a compute for futures, `task` failed on `worker`: it runs again while
    /// it has retries left; then it and every task waiting for it fail, and
    /// their outputs are settled with the error (the compute goes on).
    fn task_failed(&mut self, task: usize, worker: usize, panic: bool, message: &str) {
        self.unslot(task, worker);
        if self.tries[task] < self.job.retries.get(task).copied().unwrap_or(0) {
            self.tries[task] += 1;
            self.state[task] = State::Waiting;
            self.reconcile();
            return;
        }
        let failing = self.job.keys[task].clone();
        let mut stack = vec![task];
        while let Some(t) = stack.pop() {
            let waiting = matches!(self.state[t], State::Waiting | State::Ready);
            if t != task && !waiting {
                continue;
            }
            self.state[t] = State::Failed;
            self.ready.remove(&t);
            self.ready_roots.remove(&t);
            // Its inputs are not needed by it any more.
            for i in self.job.dep_start[t]..self.job.dep_start[t + 1] {
                let dep = self.job.deps[i as usize] as usize;
                self.left[dep] = self.left[dep].saturating_sub(1);
                self.free_if_done(dep);
            }
            if self.job.is_output[t] && !self.got.contains_key(&t) {
                self.failed_outputs += 1;
                if let (Some(settle), Some(places)) = (&self.settle, self.places.get(&t)) {
                    let key = &self.job.keys[t];
                    for &place in places {
                        let error = match (t == task, panic) {
                            (true, true) => brisk_core::Error::Panic {
                                key: key.clone(),
                                message: message.into(),
                            },
                            (true, false) => brisk_core::Error::user(message.to_string()),
                            (false, _) => brisk_core::Error::user(format!(
                                "its input {failing} failed: {message}"
                            )),
                        };
                        settle(place, Err(BackendError::Task(error.in_task(key))));
                    }
                }
            }
            stack.extend(self.job.dependents(t).iter().map(|&d| d as usize));
        }
    }

    /// Frees the slot `task` took on `worker`.
    fn unslot(&mut self, task: usize, worker: usize) {
        self.workers[worker].running -= 1;
        self.workers[worker].occupancy -= self.expected[task];
        self.learned.add(self.workers[worker].member.addr, -self.expected[task]);
        if self.job.deps(task).is_empty() {
            self.workers[worker].roots -= 1;
        }
    }

    /// Queues a task whose inputs are all held (an item of a list that is not
    /// itself a view is shown as a view instead, at the next dispatch).
    fn make_ready(&mut self, task: usize) {
        self.state[task] = State::Ready;
        if self.job.items[task].is_some() && !self.view[self.job.deps(task)[0] as usize] {
            self.to_view.push(task);
            return;
        }
        match self.job.deps(task).is_empty() {
            true => self.ready_roots.insert(task),
            false => self.ready.insert(task),
        };
    }

    /// Puts a task that was running on `worker` back to be sent again.
    fn requeue(&mut self, task: usize, worker: usize, attempt: u32) {
        if self.state[task] == (State::Running { worker, attempt }) {
            self.unslot(task, worker);
            self.state[task] = State::Waiting;
        }
    }

    /// Declares `worker` dead: what ran there is sent again, what it held and is
    /// still needed is computed again.
    fn remove_worker(&mut self, worker: usize) -> Result<(), BackendError> {
        let addr = self.workers[worker].member.addr;
        self.workers[worker].alive = false;
        // The locks and leases its tasks held (where this process coordinates).
        brisk_scheduler::coordination::release_holder(&addr.to_string());
        self.workers[worker].suspects.clear();
        self.workers[worker].refetch.clear();
        self.to_fetch.remove(&worker);
        self.fetching.remove(&worker);
        self.conns.forget(addr);
        let lost: Vec<bool> = self.state.iter().map(|s| *s == State::Held { worker }).collect();
        for task in 0..self.job.len() {
            match self.state[task] {
                State::Running { worker: w, .. } if w == worker => {
                    self.deaths[task].push(addr);
                    if self.deaths[task].len() as u32 >= self.timing.allowed_failures {
                        let workers = self.deaths[task]
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(BackendError::KilledWorker {
                            key: self.job.keys[task].clone(),
                            deaths: self.deaths[task].len() as u32,
                            workers,
                        });
                    }
                    self.state[task] = State::Waiting;
                }
                // Its inputs may be fetched from the dead worker right now:
                // send it again rather than wait for that to fail.
                State::Running { worker: w, .. }
                    if self.job.deps(task).iter().any(|&d| lost[d as usize]) =>
                {
                    self.unslot(task, w);
                    self.state[task] = State::Waiting;
                }
                State::Held { worker: w } if w == worker => {
                    self.state[task] = State::Gone;
                    self.view[task] = false;
                    // A persisted result lost: made again here, from its lineage.
                    self.external[task] = None;
                }
                _ => {}
            }
        }
        (self.workers[worker].running, self.workers[worker].roots) = (0, 0);
        self.learned.add(addr, -self.workers[worker].occupancy);
        self.workers[worker].occupancy = 0.0;
        self.to_free.remove(&worker);
        self.reconcile();
        Ok(())
    }

    /// Rebuilds what must run after a loss: every task not held or running that
    /// an unfetched output needs, through tasks that must run themselves.
    fn reconcile(&mut self) {
        let n = self.job.len();
        let mut must = vec![false; n];
        for t in (0..n).rev() {
            must[t] = match self.state[t] {
                State::Held { .. } | State::Running { .. } | State::Failed => false,
                State::Waiting | State::Ready => true,
                State::Gone => {
                    (self.job.is_output[t] && !self.got.contains_key(&t))
                        || self.job.dependents(t).iter().any(|&d| must[d as usize])
                }
            };
        }
        // A free not yet sent of a result needed again would delete it.
        for tasks in self.to_free.values_mut() {
            tasks.retain(|&t| !must[t]);
        }
        self.ready.clear();
        self.ready_roots.clear();
        self.to_view.clear();
        for t in 0..n {
            // A held view keeps its list until it is freed itself.
            let pending = |d: &u32| {
                let d = *d as usize;
                must[d]
                    || matches!(self.state[d], State::Running { .. })
                    || (self.view[d] && matches!(self.state[d], State::Held { .. }))
            };
            self.left[t] = self.job.dependents(t).iter().filter(|d| pending(d)).count() as u32;
            if must[t] {
                self.waiting[t] = self
                    .job
                    .deps(t)
                    .iter()
                    .filter(|&&d| !matches!(self.state[d as usize], State::Held { .. }))
                    .count() as u32;
                match self.waiting[t] {
                    0 => self.make_ready(t),
                    _ => self.state[t] = State::Waiting,
                }
            }
        }
    }

    /// Frees `task`'s result once nothing needs it any more.
    fn free_if_done(&mut self, task: usize) {
        let State::Held { worker } = self.state[task] else { return };
        if self.external[task].is_some() {
            // An earlier persist's: it stays.
            return;
        }
        if self.left[task] > 0 || (self.job.is_output[task] && !self.got.contains_key(&task)) {
            return;
        }
        self.state[task] = State::Gone;
        if std::mem::take(&mut self.view[task]) {
            // Nothing of its own to free: its list may go now.
            let list = self.job.deps(task)[0] as usize;
            self.left[list] = self.left[list].saturating_sub(1);
            self.free_if_done(list);
            return;
        }
        self.workers[worker].held -= self.nbytes[task];
        if !self.unkept[task] {
            self.to_free.entry(worker).or_default().push(task);
        }
    }

    fn flush_frees(&mut self) {
        for (worker, tasks) in std::mem::take(&mut self.to_free) {
            let ids: Vec<ResultId> = tasks
                .into_iter()
                .map(|t| ResultId { compute: self.job.compute, key: self.job.keys[t].clone() })
                .collect();
            let (conns, addr) = (self.conns.clone(), self.workers[worker].member.addr);
            tokio::spawn(async move {
                // A worker that is gone has freed them already.
                let _ = conns.free(addr, &ids).await;
            });
        }
    }

    /// Sends ready tasks while workers have room, lowest priority number first,
    /// tasks with inputs before roots (they consume results; roots make more):
    /// one batch per worker.
    fn dispatch(&mut self) -> Result<(), BackendError> {
        while let Some(task) = self.to_view.pop() {
            self.show(task);
        }
        // Tasks no worker can run, links being cut: their inputs made again.
        if !self.cut.is_empty() {
            let stuck: Vec<usize> =
                self.ready.iter().copied().filter(|&t| !self.runnable(t)).collect();
            if !stuck.is_empty() {
                for task in stuck {
                    self.remake_unreachable(task)?;
                }
                self.reconcile();
                while let Some(task) = self.to_view.pop() {
                    self.show(task);
                }
            }
        }
        let mut batches: HashMap<usize, Batch> = HashMap::new();
        for roots in [false, true] {
            // A task that cannot go now (its pinned input's worker is full) is
            // passed over, a few at most, rather than holding back the rest.
            let (mut after, mut passed) = (None, 0);
            loop {
                let queue = if roots { &self.ready_roots } else { &self.ready };
                let next = match after {
                    None => queue.first(),
                    Some(a) => queue.range(a + 1..).next(),
                };
                let Some(&task) = next else { break };
                let Some(worker) = self.place(task) else {
                    passed += 1;
                    if roots || passed > PASSED_OVER {
                        break;
                    }
                    after = Some(task);
                    continue;
                };
                if roots {
                    self.ready_roots.remove(&task);
                    self.workers[worker].roots += 1;
                } else {
                    self.ready.remove(&task);
                }
                let (attempt, run) = self.send(task, worker);
                let (ids, runs) = batches.entry(worker).or_default();
                ids.push((task, attempt));
                runs.push(run);
            }
        }
        for (worker, batch) in batches {
            let (conns, tx, addr) =
                (self.conns.clone(), self.tx.clone(), self.workers[worker].member.addr);
            self.calls.push(run_batch(conns, tx, addr, worker, batch).boxed());
        }
        Ok(())
    }

    /// Marks `task` as running on `worker`: its attempt, and the task to send.
    fn send(&mut self, task: usize, worker: usize) -> (u32, RunTask) {
        self.attempts[task] += 1;
        let attempt = self.attempts[task];
        self.state[task] = State::Running { worker, attempt };
        self.workers[worker].running += 1;
        self.expected[task] = self.expected_micros(task);
        self.workers[worker].occupancy += self.expected[task];
        self.learned.add(self.workers[worker].member.addr, self.expected[task]);
        if !self.callbacks.is_empty() {
            self.sent_at[task] = Some(std::time::Instant::now());
        }
        for cb in &self.callbacks {
            cb.task_started(&self.job.keys[task], worker);
        }
        let inputs = self
            .job
            .deps(task)
            .iter()
            .map(|&d| {
                let d = d as usize;
                let State::Held { worker: at } = self.state[d] else {
                    unreachable!("a ready task's inputs are held")
                };
                let at = self.workers[at].member.addr;
                match self.view[d] {
                    true => Input {
                        key: self.job.keys[self.job.deps(d)[0] as usize].clone(),
                        at,
                        item: self.job.items[d],
                        compute: self.external[self.job.deps(d)[0] as usize],
                    },
                    false => Input {
                        key: self.job.keys[d].clone(),
                        at,
                        item: None,
                        compute: self.external[d],
                    },
                }
            })
            .collect();
        let run = RunTask {
            compute: self.job.compute,
            key: self.job.keys[task].clone(),
            op: self.job.ops[task].to_vec(),
            inputs,
            inline: self.job.is_output[task]
                && !self.job.keep
                && self.job.dependents(task).is_empty()
                && !self.got.contains_key(&task)
                && self.misses[task] == 0,
            // Every one of its kind so far was quick, not just most.
            priority: self.job.priorities.get(task).copied().unwrap_or(0),
            quick: self
                .durations
                .get(kind(&self.job.keys[task]))
                .is_some_and(|t| t.count > 0 && t.longest <= QUICK_MICROS),
        };
        (attempt, run)
    }

    /// Whether `worker` may take one more task like `task`.
    ///
    /// - Every worker may have one task per thread and one more.
    /// - Beyond that, a task goes out only once tasks of its kind have finished
    ///   (so its time is known), and only while the work queued there stays
    ///   under [`QUEUE_MICROS`] per thread, up to [`QUEUED`] tasks per thread:
    ///   tiny tasks go out by the hundred, long ones one at a time, and no
    ///   worker sits on a backlog while another is idle at the end.
    /// - A root (it reads or makes data) also needs room in the worker's memory
    ///   for its result, at the size of the roots of its kind so far: inputs are
    ///   never read faster than memory allows.
    fn has_room(&self, worker: usize, task: usize) -> bool {
        let w = &self.workers[worker];
        let threads = w.member.threads;
        if !w.alive {
            return false;
        }
        let root = self.job.deps(task).is_empty();
        if w.running < threads + 1 {
            return !root || w.roots < threads + 1 || self.root_fits(w, task);
        }
        let name = kind(&self.job.keys[task]);
        let known = self.durations.contains_key(name) && (!root || self.sizes.contains_key(name));
        known
            && w.running < QUEUED * threads
            && (w.occupancy + self.expected_micros(task)) / threads as f64 <= QUEUE_MICROS
            && (!root || self.root_fits(w, task))
    }

    /// Whether one more root like `task` fits `w`'s memory, with its results and
    /// the roots already sent, at the size of the finished roots of its kind.
    fn root_fits(&self, w: &Slot, task: usize) -> bool {
        let Some(&(bytes, count)) = self.sizes.get(kind(&self.job.keys[task])) else {
            return false;
        };
        let each = bytes / count.max(1);
        w.held + each * (w.roots as u64 + 1) <= w.member.memory_limit
    }

    /// How long `task` should take: the mean of the finished tasks of its kind
    /// (its key's name), or [`UNKNOWN_MICROS`].
    fn expected_micros(&self, task: usize) -> f64 {
        match self.durations.get(kind(&self.job.keys[task])) {
            Some(t) if t.count > 0 => t.total / t.count as f64,
            _ => UNKNOWN_MICROS,
        }
    }

    /// The worker for `task`: of those with room, the one where it would finish
    /// soonest — the work already sent there per thread (by the tasks' expected
    /// times, by every compute of the cluster) plus the time to fetch the
    /// inputs it does not hold (Dask's occupancy plus transfer cost). Ties go
    /// to the first in turn from this compute's own first worker.
    fn place(&self, task: usize) -> Option<usize> {
        if let Some(worker) = self.pinned_holder(task) {
            return (self.has_room(worker, task) && self.reaches(worker, task)).then_some(worker);
        }
        let mut total = 0u64;
        let mut local = vec![0u64; self.workers.len()];
        for &d in self.job.deps(task) {
            if let State::Held { worker } = self.state[d as usize] {
                local[worker] += self.nbytes[d as usize];
                total += self.nbytes[d as usize];
            }
        }
        let cost = |w: usize| {
            let slot = &self.workers[w];
            self.learned.load(slot.member.addr) / slot.member.threads as f64
                + (total - local[w]) as f64 / BYTES_PER_MICRO
        };
        let n = self.workers.len();
        let turn = |w: usize| (w + n - self.first % n) % n;
        (0..n)
            .filter(|&w| self.has_room(w, task) && self.reaches(w, task))
            .min_by(|&a, &b| cost(a).total_cmp(&cost(b)).then(turn(a).cmp(&turn(b))))
    }

    /// Whether `worker` can fetch every input of `task` from where it is held
    /// (no link to a holder found cut).
    fn reaches(&self, worker: usize, task: usize) -> bool {
        // No link found cut (nearly always): nothing to look up.
        self.cut.is_empty()
            || self.job.deps(task).iter().all(|&d| match self.state[d as usize] {
                State::Held { worker: at } => at == worker || !self.cut.contains(&(worker, at)),
                _ => true,
            })
    }

    /// Whether some live worker can run `task`: one that reaches every input's
    /// holder, and holds its pinned input if it has one.
    fn runnable(&self, task: usize) -> bool {
        let pinned = self.pinned_holder(task);
        (0..self.workers.len()).any(|w| {
            self.workers[w].alive && pinned.is_none_or(|p| p == w) && self.reaches(w, task)
        })
    }

    /// The worker holding an input of `task` that cannot leave it, if any.
    fn pinned_holder(&self, task: usize) -> Option<usize> {
        self.job.deps(task).iter().find_map(|&d| match self.state[d as usize] {
            State::Held { worker } if self.pinned[d as usize] => Some(worker),
            _ => None,
        })
    }

    /// For a ready `task` that no live worker can run (links cut between its
    /// inputs' holders): has the inputs out of reach of the worker best placed
    /// for it (its pinned input's, or the one holding most of its input bytes)
    /// computed again, so they come where they can be had. What their old
    /// holders keep is freed with the compute. Fails after a few tries.
    fn remake_unreachable(&mut self, task: usize) -> Result<(), BackendError> {
        self.remakes[task] += 1;
        if self.remakes[task] > MAX_REMAKES {
            let cut: Vec<String> = self
                .cut
                .iter()
                .map(|&(a, b)| {
                    format!("{} -> {}", self.workers[a].member.addr, self.workers[b].member.addr)
                })
                .collect();
            return Err(BackendError::Cluster(format!(
                "task {}: its inputs cannot be brought together on any worker (links cut: {}); check the network between the workers",
                self.job.keys[task],
                cut.join(", ")
            )));
        }
        let mut local = vec![0u64; self.workers.len()];
        for &d in self.job.deps(task) {
            if let State::Held { worker } = self.state[d as usize] {
                local[worker] += self.nbytes[d as usize].max(1);
            }
        }
        let best = self.pinned_holder(task).or_else(|| {
            (0..self.workers.len()).filter(|&w| self.workers[w].alive).max_by_key(|&w| local[w])
        });
        let Some(best) = best else { return Ok(()) };
        for &d in self.job.deps(task) {
            let d = d as usize;
            let State::Held { worker: holder } = self.state[d] else { continue };
            if holder == best || !self.cut.contains(&(best, holder)) {
                continue;
            }
            if std::mem::take(&mut self.view[d]) {
                let list = self.job.deps(d)[0] as usize;
                self.state[list] = State::Gone;
                self.external[list] = None;
            }
            self.state[d] = State::Gone;
            self.external[d] = None;
        }
        Ok(())
    }

    /// Fetches output `task` from `worker`: a small one (or an item of a list)
    /// with the others of that worker in one call at the next flush, a large
    /// one at once by Flight `DoGet` (in messages of a few megabytes).
    fn fetch(&mut self, task: usize, worker: usize) {
        if self.view[task] || self.nbytes[task] <= SMALL_OUTPUT {
            self.to_fetch.entry(worker).or_default().push(task);
            return;
        }
        let (conns, tx, addr) =
            (self.conns.clone(), self.tx.clone(), self.workers[worker].member.addr);
        let compute = self.external[task].unwrap_or(self.job.compute);
        let id = ResultId { compute, key: self.job.keys[task].clone() };
        let attempt = self.attempts[task];
        tokio::spawn(async move {
            let result = conns.fetch(addr, &id).await;
            let _ = tx.send(Event::Fetched { task, attempt, result });
        });
    }

    /// Sends the fetches [`fetch`](Self::fetch) queued: one call per worker.
    fn flush_fetches(&mut self) {
        let ready: Vec<usize> =
            self.to_fetch.keys().copied().filter(|w| !self.fetching.contains(w)).collect();
        for worker in ready {
            let Some(tasks) = self.to_fetch.remove(&worker) else { continue };
            self.fetching.insert(worker);
            let wanted: Vec<Wanted> = tasks
                .iter()
                .map(|&t| match self.view[t] {
                    true => Wanted {
                        id: ResultId {
                            compute: self.job.compute,
                            key: self.job.keys[self.job.deps(t)[0] as usize].clone(),
                        },
                        item: self.job.items[t],
                    },
                    false => Wanted {
                        id: ResultId {
                            compute: self.external[t].unwrap_or(self.job.compute),
                            key: self.job.keys[t].clone(),
                        },
                        item: None,
                    },
                })
                .collect();
            let attempts: Vec<(usize, u32)> =
                tasks.iter().map(|&t| (t, self.attempts[t])).collect();
            let (conns, tx, addr) =
                (self.conns.clone(), self.tx.clone(), self.workers[worker].member.addr);
            tokio::spawn(async move {
                match conns.fetch_wanted(addr, &wanted).await {
                    Ok(values) => {
                        for ((task, attempt), value) in attempts.into_iter().zip(values) {
                            let _ = tx.send(Event::Fetched { task, attempt, result: Ok(value) });
                        }
                    }
                    Err(status) => {
                        for (task, attempt) in attempts {
                            let result = Err(status.clone());
                            let _ = tx.send(Event::Fetched { task, attempt, result });
                        }
                    }
                }
                let _ = tx.send(Event::FetchesDone { worker });
            });
        }
    }

    fn greet_all(&mut self) {
        for w in 0..self.workers.len() {
            self.greet(w);
        }
    }

    /// Greets `worker` unless a greeting is already on its way.
    fn greet(&mut self, worker: usize) {
        let w = &mut self.workers[worker];
        if !w.alive || w.greeting {
            return;
        }
        w.greeting = true;
        let (conns, tx, addr) = (self.conns.clone(), self.tx.clone(), w.member.addr);
        let timeout = self.timing.death_timeout;
        tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, conns.hello(addr)).await {
                Ok(result) => result,
                Err(_) => Err(Status::deadline_exceeded(format!("worker {addr} did not answer"))),
            };
            let _ = tx.send(Event::Greeted { worker, result });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delayed_calls_kind_is_its_function() {
        assert_eq!(kind(&Key::named("inc-1f3a")), "inc");
        assert_eq!(kind(&Key::named("load-part-00ff")), "load-part");
        assert_eq!(kind(&Key::new("random", [3, 4])), "random");
        // Not a hex tag: the whole name.
        assert_eq!(kind(&Key::named("read-csv")), "read-csv");
        assert_eq!(kind(&Key::named("-ab")), "-ab");
    }
}
