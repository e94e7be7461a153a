//! A worker: a Flight server that runs tasks it is sent and holds their results by
//! key, serving them to its peers and to any Flight client (`DoGet` with a
//! [`ResultId`] as the ticket, the value as Arrow IPC in `brisk_core::ipc`'s form).
//!
//! Actions (`DoAction`, bodies and replies in MessagePack):
//! - `hello`: the worker's [`Hello`] (version, ops, threads, epoch);
//! - `run`: a [`RunTask`]; the worker gathers the task's inputs, from itself or
//!   from the peers that hold them, runs the op on its own thread pool and keeps
//!   the result. The reply is the result's size in bytes. A failure says why in
//!   the status's `brisk-failure` metadata: `error`, `panic`, or
//!   `missing <addr>` when an input could not be had from its holder;
//! - `run-batch`: several `RunTask`s at once; one reply per task as it finishes;
//! - `get-many`: results by id, one reply each in Brisk's value codec — how
//!   workers gather a task's inputs from one peer in one call;
//! - `free`: results no longer needed; `free-compute`: all of a compute's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use arrow_flight::Action;
use arrow_flight::encode::FlightDataEncoderBuilder;
use brisk_core::{Key, OpRegistry, Value};
use brisk_scheduler::{SpillStore, Spilled};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::client::{Connections, decode_body};
use crate::flight::{Data, Node, Replies, Serving};
use crate::security::Security;

/// A result on a worker: the compute it belongs to and its key. Computes are
/// kept apart, so two computes of the same graph never free each other's
/// results.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResultId {
    /// The compute (a number the scheduler gives each).
    pub compute: u64,
    /// The task's key.
    pub key: Key,
}

/// One input of a task: a result and the worker that holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Input {
    /// The result's key (of the same compute as the task).
    pub key: Key,
    /// The address of a worker holding it.
    pub at: SocketAddr,
    /// `Some(i)` when the task takes item `i` of that result, a list.
    #[serde(default)]
    pub item: Option<u32>,
    /// The compute it was made by, when not the task's (a persisted result).
    #[serde(default)]
    pub compute: Option<u64>,
}

/// A result, or one item of it (a list), as a peer asks for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Wanted {
    pub id: ResultId,
    pub item: Option<u32>,
}

/// Item `item` of `value`, a list; `value` itself when `item` is `None`.
pub(crate) fn pick(value: Value, item: Option<u32>, key: &Key) -> Result<Value, Status> {
    let Some(i) = item else { return Ok(value) };
    match value {
        Value::List(items) => items.get(i as usize).cloned().ok_or_else(|| {
            Status::out_of_range(format!("{key} has {} items, not {}", items.len(), i + 1))
        }),
        other => Err(Status::invalid_argument(format!(
            "{key} is a {}, not a list to take item {i} of",
            other.kind()
        ))),
    }
}

/// A task sent to a worker: its key, its op (the bytes of `Op::encode`) and its
/// inputs in the order the op takes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunTask {
    /// The compute it belongs to.
    pub compute: u64,
    /// Where the result is kept.
    pub key: Key,
    /// The op, encoded (a MessagePack binary, not an array of numbers).
    #[serde(with = "serde_bytes")]
    pub op: Vec<u8>,
    /// The inputs, in order.
    pub inputs: Vec<Input>,
    /// Send the result back with the answer when it is small, and keep it
    /// only if it is not (an output only its client needs): no fetch after,
    /// and nothing to free.
    #[serde(default)]
    pub inline: bool,
    /// Tasks of its kind took a few µs: run it on the thread that took the
    /// call rather than hand it to the pool and back (two thread wake-ups,
    /// longer than the task).
    #[serde(default)]
    pub quick: bool,
    /// Of the tasks waiting for one of the worker's threads, those of higher
    /// priority run first (then in the order they came).
    #[serde(default)]
    pub priority: i64,
}

/// Results up to this size (encoded) go back with their task's answer when
/// asked for ([`RunTask::inline`]).
pub const INLINE_BYTES: usize = 64 << 10;

/// The answer to one task of a batch (`run-batch`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Done {
    /// The task's place in the batch.
    pub index: u32,
    /// Its result's size in bytes, if it ran.
    pub nbytes: u64,
    /// How long its op ran, in microseconds (its inputs' gathering aside).
    pub micros: u64,
    /// Whether the result can only be used here (a value of this process, such
    /// as an open file): its dependents must run on this worker.
    pub pinned: bool,
    /// Bytes of input files it read.
    #[serde(default)]
    pub read: u64,
    /// The result itself, encoded, when it was asked for and small.
    #[serde(default)]
    pub value: Option<serde_bytes::ByteBuf>,
    /// Why it did not.
    pub failure: Option<Failure>,
}

/// What came of a task that ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ran {
    /// The result's size in bytes.
    pub nbytes: u64,
    /// How long its op ran, in microseconds.
    pub micros: u64,
    /// Whether the result can only be used on its worker.
    pub pinned: bool,
    /// Bytes of input files it read (a CSV block, a Parquet row group).
    #[serde(default)]
    pub read: u64,
    /// The result, in Brisk's value codec, when the task asked for it inline
    /// and it was at most [`INLINE_BYTES`]; the worker did not keep it.
    #[serde(default)]
    pub value: Option<Vec<u8>>,
}

/// A failed task's status, as it crosses in a batch's reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Failure {
    code: i32,
    kind: String,
    message: String,
}

impl From<&Status> for Failure {
    fn from(status: &Status) -> Failure {
        let kind = status.metadata().get("brisk-failure").and_then(|v| v.to_str().ok());
        Failure {
            code: status.code() as i32,
            kind: kind.unwrap_or("").to_string(),
            message: status.message().to_string(),
        }
    }
}

impl From<Failure> for Status {
    fn from(f: Failure) -> Status {
        failure(tonic::Code::from_i32(f.code), &f.kind, f.message)
    }
}

/// What a worker says of itself when greeted: what the scheduler checks before
/// sending it work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Brisk's version.
    pub version: String,
    /// The fingerprint of the ops it knows ([`registry_fingerprint`]).
    pub ops: u64,
    /// Threads running tasks.
    pub threads: usize,
    /// The bytes of results it may hold (the scheduler sends roots within it).
    pub memory_limit: u64,
    /// A number drawn when the worker started: a worker that answers with
    /// another is a different process.
    pub epoch: u64,
    /// Tasks running or waiting for a thread when it answered.
    #[serde(default)]
    pub running: u64,
    /// Results it held when it answered, in memory or spilled.
    #[serde(default)]
    pub held: u64,
    /// The bytes of those in memory: above the memory limit, the oldest are
    /// spilled to disk.
    #[serde(default)]
    pub held_bytes: u64,
    /// The bytes it has written to its spill file since it started.
    #[serde(default)]
    pub spilled_bytes: u64,
    /// The bytes of results it has sent to its peers since it started.
    #[serde(default)]
    pub sent_bytes: u64,
    /// The bytes of inputs it has fetched from its peers since it started.
    #[serde(default)]
    pub received_bytes: u64,
}

/// A fingerprint of the op names a registry knows (FNV-1a over the sorted
/// names): two programs with the same one decode each other's ops alike.
pub fn registry_fingerprint(registry: &OpRegistry) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in registry.names() {
        for byte in name.bytes().chain([b'\n']) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The names of the functions `registry` can rebuild calls of.
pub(crate) fn function_names(registry: &OpRegistry) -> std::collections::HashSet<String> {
    let names = registry.names();
    names.iter().filter_map(|n| n.strip_prefix("fn ")).map(str::to_string).collect()
}

/// Brisk's version, as workers and schedulers compare it.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A result a worker holds: in memory, or spilled to its disk.
#[derive(Clone)]
enum Stored {
    Memory(Value),
    Disk(Spilled),
}

/// The results a worker holds, and the computes that ended (whose late results
/// are dropped, not kept).
#[derive(Default)]
struct Results {
    /// The worker's epoch: a result of a task started under another is dropped.
    epoch: u64,
    values: HashMap<ResultId, Stored>,
    closed: std::collections::HashSet<u64>,
    /// Results in memory, oldest first: the next to spill (some may be gone).
    order: std::collections::VecDeque<ResultId>,
    /// The bytes of the results in memory.
    in_memory: u64,
}

impl Results {
    /// Drops every result (their disk space freed) and starts a new epoch.
    fn renew(&mut self, spill: &SpillStore) {
        let ids: Vec<ResultId> = self.values.keys().cloned().collect();
        ids.iter().for_each(|id| self.remove(id, spill));
        self.order.clear();
        self.epoch = epoch();
    }

    fn insert(&mut self, id: ResultId, value: Value) {
        self.in_memory += value.nbytes();
        self.order.push_back(id.clone());
        if let Some(old) = self.values.insert(id, Stored::Memory(value)) {
            self.forget(old);
        }
    }

    /// Takes a result off the books (its disk space freed).
    fn remove(&mut self, id: &ResultId, spill: &SpillStore) {
        if let Some(stored) = self.values.remove(id)
            && let Some(at) = self.forget(stored)
        {
            spill.free(at);
        }
    }

    /// Uncounts a stored result; where it was on disk, if it was.
    fn forget(&mut self, stored: Stored) -> Option<Spilled> {
        match stored {
            Stored::Memory(value) => {
                self.in_memory -= value.nbytes();
                None
            }
            Stored::Disk(at) => Some(at),
        }
    }

    /// The oldest results in memory past `limit`, to be written to disk; taken
    /// out of the spill order, so each is written once.
    fn over(&mut self, limit: u64) -> Vec<(ResultId, Value)> {
        let mut excess = self.in_memory.saturating_sub(limit);
        let mut victims = Vec::new();
        while excess > 0 {
            let Some(id) = self.order.pop_front() else { break };
            if let Some(Stored::Memory(value)) = self.values.get(&id) {
                excess = excess.saturating_sub(value.nbytes().max(1));
                victims.push((id, value.clone()));
            }
        }
        victims
    }

    /// Notes `id` written to disk at `at`: its memory is released, or, when it
    /// was freed meanwhile, its disk space is.
    fn spilled(&mut self, id: ResultId, at: Spilled, spill: &SpillStore) {
        if let Some(stored) = self.values.get_mut(&id)
            && let Stored::Memory(value) = stored
        {
            self.in_memory -= value.nbytes();
            *stored = Stored::Disk(at);
        } else {
            spill.free(at);
        }
    }
}

type Held = Mutex<Results>;

fn lock(held: &Held) -> std::sync::MutexGuard<'_, Results> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `values` are all in memory and small enough (64 KiB together) to
/// encode on a thread that answers calls.
fn values_are_small(values: &[Stored]) -> bool {
    let mut total = 0;
    values.iter().all(|v| match v {
        Stored::Memory(value) => {
            total += value.nbytes();
            total <= 64 << 10
        }
        Stored::Disk(_) => false,
    })
}

impl Stored {
    /// The value, read back from disk if it was spilled.
    fn value(self, spill: &SpillStore) -> Result<Value, Status> {
        match self {
            Stored::Memory(value) => Ok(value),
            Stored::Disk(at) => spill.read(&at).map_err(|e| Status::internal(e.to_string())),
        }
    }

    /// The value's bytes in Brisk's codec.
    fn encoded(self, spill: &SpillStore) -> Result<Vec<u8>, Status> {
        match self {
            Stored::Memory(value) => {
                value.encode().map_err(|e| Status::failed_precondition(e.to_string()))
            }
            Stored::Disk(at) => {
                spill.read_encoded(&at).map_err(|e| Status::internal(e.to_string()))
            }
        }
    }
}

/// A status saying why a task failed, with the kind in its metadata.
pub(crate) fn failure(code: tonic::Code, kind: &str, message: String) -> Status {
    let mut status = Status::new(code, message);
    if kind.is_empty() {
        return status;
    }
    if let Ok(value) = MetadataValue::try_from(kind) {
        status.metadata_mut().insert("brisk-failure", value);
    }
    status
}

/// A worker's state, shared by the calls it answers and the batches it runs.
struct Inner {
    addr: SocketAddr,
    hello: Hello,
    held: Arc<Held>,
    /// Where results go when those in memory pass the memory limit.
    spill: Arc<SpillStore>,
    registry: OpRegistry,
    pool: rayon::ThreadPool,
    peers: Connections,
    /// Tasks running on the pool now.
    running: Arc<std::sync::atomic::AtomicU64>,
    /// Tasks waiting for a thread of the pool, best first.
    waiting: Arc<Waiting>,
    /// The cancellation tokens of the tasks running, by compute: set when
    /// their compute is let go (`brisk::cancelled()` turns true in them).
    tokens: Mutex<HashMap<u64, Vec<Arc<std::sync::atomic::AtomicBool>>>>,
    /// Bytes of results sent to peers, and of inputs fetched from them.
    sent: std::sync::atomic::AtomicU64,
    received: std::sync::atomic::AtomicU64,
}

/// Tasks waiting for a thread of the worker's pool: highest priority first,
/// then in the order they came.
#[derive(Default)]
struct Waiting {
    heap: Mutex<std::collections::BinaryHeap<Ready>>,
    seq: std::sync::atomic::AtomicU64,
}

/// A task waiting for a thread.
type Ready = brisk_scheduler::Ranked<Box<dyn FnOnce() + Send>>;

impl Waiting {
    fn push(&self, priority: i64, run: Box<dyn FnOnce() + Send>) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.heap.lock().unwrap_or_else(PoisonError::into_inner).push(Ready {
            priority,
            seq,
            item: run,
        });
    }

    /// Runs the best task waiting (one per job the pool is given).
    fn run_best(&self) {
        let best = self.heap.lock().unwrap_or_else(PoisonError::into_inner).pop();
        if let Some(best) = best {
            (best.item)();
        }
    }
}

/// Takes a task's cancellation token off the worker's list when it ends,
/// however it ends.
struct Untoken<'a> {
    tokens: &'a Mutex<HashMap<u64, Vec<Arc<std::sync::atomic::AtomicBool>>>>,
    compute: u64,
    token: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Untoken<'_> {
    fn drop(&mut self) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = tokens.get_mut(&self.compute) {
            list.retain(|t| !Arc::ptr_eq(t, &self.token));
            if list.is_empty() {
                tokens.remove(&self.compute);
            }
        }
    }
}

impl Inner {
    /// Runs `task`: its inputs gathered, its op run on the worker's pool, its
    /// result kept. What came of it.
    async fn run(&self, task: RunTask) -> Result<Ran, Status> {
        let op = self
            .registry
            .decode(&task.op)
            .map_err(|e| Status::invalid_argument(format!("task {}: {e}", task.key)))?;
        let (started_in, closed) = {
            let held = lock(&self.held);
            (held.epoch, held.closed.contains(&task.compute))
        };
        // Its compute was let go before it came: it does not run.
        let let_go = || Status::cancelled(format!("task {}: its compute was let go", task.key));
        if closed {
            return Err(let_go());
        }
        let inputs = self.gather(&task).await?;
        let running = self.running.clone();
        let token = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(task.compute)
            .or_default()
            .push(token.clone());
        let _untoken =
            Untoken { tokens: &self.tokens, compute: task.compute, token: token.clone() };
        // Let go while its inputs were gathered, before its token was listed.
        if lock(&self.held).closed.contains(&task.compute) {
            token.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let run = move || {
            running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let started = std::time::Instant::now();
            brisk_core::take_read();
            // Let go while it waited for a thread: not run.
            if token.load(std::sync::atomic::Ordering::Relaxed) {
                running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                return (Ok(Err(brisk_core::Error::user("its compute was let go"))), 0, 0);
            }
            let ran = brisk_scheduler::client::run_cancellable(&token, || {
                catch_unwind(AssertUnwindSafe(|| op.run(inputs)))
            });
            let read = brisk_core::take_read();
            running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            (ran, started.elapsed().as_micros() as u64, read)
        };
        let (ran, micros, read) = match task.quick {
            true => run(),
            false => {
                let (done, ran) = tokio::sync::oneshot::channel();
                self.waiting.push(
                    task.priority,
                    Box::new(move || {
                        let _ = done.send(run());
                    }),
                );
                let waiting = self.waiting.clone();
                // Each job the pool runs takes the best task waiting.
                self.pool.spawn(move || waiting.run_best());
                ran.await.map_err(|_| Status::internal(format!("task {}: lost", task.key)))?
            }
        };
        let value = match ran {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => return Err(failure(tonic::Code::Aborted, "error", e.to_string())),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                return Err(failure(tonic::Code::Aborted, "panic", message));
            }
        };
        let pinned = matches!(&value, Value::Opaque(o) if !o.is_portable());
        let inline = match task.inline && !pinned && value.nbytes() <= INLINE_BYTES as u64 {
            true => value.encode().ok().filter(|bytes| bytes.len() <= INLINE_BYTES),
            false => None,
        };
        let ran = Ran { nbytes: value.nbytes(), micros, pinned, read, value: inline };
        let victims = {
            let mut held = lock(&self.held);
            if held.epoch != started_in {
                // Started anew meanwhile: the result is not kept, so not "ran".
                return Err(Status::unavailable(format!(
                    "task {}: worker {} started anew while it ran",
                    task.key, self.addr
                )));
            }
            // Gone back with the answer: nobody else needs it.
            if !held.closed.contains(&task.compute) && ran.value.is_none() {
                held.insert(ResultId { compute: task.compute, key: task.key }, value);
            }
            held.over(self.hello.memory_limit)
        };
        if !victims.is_empty() {
            self.spill_out(victims);
        }
        Ok(ran)
    }

    /// Writes `victims` to disk off the threads that answer calls; each stays
    /// readable in memory until written. One that cannot be written (a local
    /// value without a codec, a full disk) stays in memory.
    fn spill_out(&self, victims: Vec<(ResultId, Value)>) {
        let (held, spill) = (self.held.clone(), self.spill.clone());
        tokio::task::spawn_blocking(move || {
            for (id, value) in victims {
                match spill.write(&value) {
                    Ok(at) => lock(&held).spilled(id, at, &spill),
                    Err(e) => {
                        let line =
                            format!("brisk worker: result {} stays in memory: {e}\n", id.key);
                        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                    }
                }
            }
        });
    }

    /// `task`'s inputs in order: its own from memory, the rest from their
    /// holders, one call per holder for all it holds, all holders at once.
    async fn gather(&self, task: &RunTask) -> Result<Vec<Value>, Status> {
        let id = |input: &Input| ResultId {
            compute: input.compute.unwrap_or(task.compute),
            key: input.key.clone(),
        };
        let mut inputs: Vec<Option<Value>> = vec![None; task.inputs.len()];
        let mut remote: HashMap<SocketAddr, (Vec<usize>, Vec<Wanted>)> = HashMap::new();
        let mut on_disk = Vec::new();
        {
            let held = lock(&self.held);
            for (i, input) in task.inputs.iter().enumerate() {
                if input.at == self.addr {
                    let stored = held.values.get(&id(input)).cloned().ok_or_else(|| {
                        let message = format!("task {}: no input {} here", task.key, input.key);
                        failure(tonic::Code::NotFound, &format!("missing {}", self.addr), message)
                    })?;
                    match stored {
                        Stored::Memory(value) => {
                            inputs[i] = Some(pick(value, input.item, &input.key)?);
                        }
                        disk => on_disk.push((i, disk, input.item, input.key.clone())),
                    }
                } else {
                    let (places, wanted) = remote.entry(input.at).or_default();
                    places.push(i);
                    wanted.push(Wanted { id: id(input), item: input.item });
                }
            }
        }
        let fetches = remote.into_iter().map(|(at, (places, wanted))| async move {
            let values = self.peers.fetch_wanted(at, &wanted).await.map_err(|e| {
                self.peers.forget(at);
                let message = format!("task {}: inputs from {at}: {}", task.key, e.message());
                failure(e.code(), &format!("missing {at}"), message)
            })?;
            Ok::<_, Status>(places.into_iter().zip(values))
        });
        if !on_disk.is_empty() {
            let spill = self.spill.clone();
            let read = tokio::task::spawn_blocking(move || {
                on_disk
                    .into_iter()
                    .map(|(i, stored, item, key)| Ok((i, pick(stored.value(&spill)?, item, &key)?)))
                    .collect::<Result<Vec<_>, Status>>()
            });
            let read = read.await.map_err(|e| Status::internal(e.to_string()))??;
            for (i, value) in read {
                inputs[i] = Some(value);
            }
        }
        for fetched in futures::future::try_join_all(fetches).await? {
            for (i, value) in fetched {
                self.received.fetch_add(value.nbytes(), std::sync::atomic::Ordering::Relaxed);
                inputs[i] = Some(value);
            }
        }
        Ok(inputs.into_iter().map(|v| v.expect("every input gathered")).collect())
    }

    /// Runs a batch of tasks at once: one reply per task as it finishes, in the
    /// order they finish ([`Done`]).
    fn run_batch(
        self: Arc<Self>,
        tasks: Vec<RunTask>,
    ) -> BoxStream<'static, Result<arrow_flight::Result, Status>> {
        // Tasks gathering their inputs at once: enough to keep the pool busy,
        // not the whole batch's inputs in memory.
        let n = 16 * self.hello.threads + 16;
        stream::iter(tasks.into_iter().enumerate())
            .map(move |(index, task)| {
                let inner = self.clone();
                async move { (index as u32, inner.run(task).await) }
            })
            .buffer_unordered(n)
            .map(|(index, outcome)| {
                let done = match outcome {
                    Ok(ran) => Done {
                        index,
                        nbytes: ran.nbytes,
                        micros: ran.micros,
                        pinned: ran.pinned,
                        read: ran.read,
                        value: ran.value.map(serde_bytes::ByteBuf::from),
                        failure: None,
                    },
                    Err(status) => Done {
                        index,
                        nbytes: 0,
                        micros: 0,
                        pinned: false,
                        read: 0,
                        value: None,
                        failure: Some(Failure::from(&status)),
                    },
                };
                let body = rmp_serde::to_vec(&done).map_err(|e| Status::internal(e.to_string()))?;
                Ok(arrow_flight::Result { body: body.into() })
            })
            .boxed()
    }
}

impl Node for Inner {
    const KIND: &'static str = "worker";
    const ACTIONS: &'static [(&'static str, &'static str)] = &[
        ("hello", "the worker's version, ops, threads, memory limit and epoch"),
        ("run", "run a task and keep its result"),
        ("run-batch", "run tasks, one reply per task as it finishes"),
        (
            "get-many",
            "results (or items of them) in Brisk's value codec, one reply each (between workers)",
        ),
        ("free", "drop results"),
        ("free-compute", "drop a compute's results"),
    ];

    fn action(self: Arc<Self>, action: Action) -> BoxFuture<'static, Result<Replies, Status>> {
        async move {
            let reply = match action.r#type.as_str() {
                "hello" => {
                    let mut hello = self.hello.clone();
                    hello.running = self.running.load(std::sync::atomic::Ordering::Relaxed);
                    hello.sent_bytes = self.sent.load(std::sync::atomic::Ordering::Relaxed);
                    hello.received_bytes = self.received.load(std::sync::atomic::Ordering::Relaxed);
                    let held = lock(&self.held);
                    hello.epoch = held.epoch;
                    hello.held = held.values.len() as u64;
                    hello.held_bytes = held.in_memory;
                    hello.spilled_bytes = self.spill.bytes_written();
                    rmp_serde::to_vec(&hello)
                }
                "get-many" => {
                    let wanted: Vec<Wanted> = decode_body("result list", &action.body)?;
                    let values = {
                        let held = lock(&self.held);
                        let value = |w: &Wanted| {
                            let stored = held.values.get(&w.id).cloned().ok_or_else(|| {
                                let addr = self.addr;
                                Status::not_found(format!(
                                    "no result {} on worker {addr}",
                                    w.id.key
                                ))
                            })?;
                            // An item is taken out of its list, from memory or disk.
                            match (w.item, stored) {
                                (None, stored) => Ok(stored),
                                (item, Stored::Memory(v)) => {
                                    Ok(Stored::Memory(pick(v, item, &w.id.key)?))
                                }
                                (item, disk) => Ok(Stored::Memory(pick(
                                    disk.value(&self.spill)?,
                                    item,
                                    &w.id.key,
                                )?)),
                            }
                        };
                        wanted.iter().map(value).collect::<Result<Vec<Stored>, Status>>()?
                    };
                    // Encoding copies megabytes (and a spilled result is read from
                    // disk, as it is already encoded): not under the lock, nor on the
                    // threads that answer calls (a greeting must not wait for it).
                    // Small results in memory are encoded here: handing them to
                    // another thread costs more than encoding them.
                    let spill = self.spill.clone();
                    let small = values_are_small(&values);
                    let encode = move || {
                        values.into_iter().map(|v| v.encoded(&spill)).collect::<Result<Vec<_>, _>>()
                    };
                    let encoded = if small {
                        encode()?
                    } else {
                        tokio::task::spawn_blocking(encode)
                            .await
                            .map_err(|e| Status::internal(e.to_string()))??
                    };
                    let sent: usize = encoded.iter().map(Vec::len).sum();
                    self.sent.fetch_add(sent as u64, std::sync::atomic::Ordering::Relaxed);
                    let replies: Vec<_> = encoded
                        .into_iter()
                        .map(|body| Ok(arrow_flight::Result { body: body.into() }))
                        .collect();
                    return Ok(stream::iter(replies).boxed());
                }
                "run-batch" => {
                    let tasks: Vec<RunTask> = decode_body("task batch", &action.body)?;
                    return Ok(self.clone().run_batch(tasks));
                }
                "run" => {
                    let task: RunTask = decode_body("task", &action.body)?;
                    rmp_serde::to_vec(&self.run(task).await?.nbytes)
                }
                "free" => {
                    let ids: Vec<ResultId> = decode_body("result list", &action.body)?;
                    let mut held = lock(&self.held);
                    ids.iter().for_each(|id| held.remove(id, &self.spill));
                    rmp_serde::to_vec(&())
                }
                "free-compute" => {
                    let compute: u64 = decode_body("compute", &action.body)?;
                    let mut held = lock(&self.held);
                    let ids: Vec<ResultId> =
                        held.values.keys().filter(|id| id.compute == compute).cloned().collect();
                    ids.iter().for_each(|id| held.remove(id, &self.spill));
                    held.closed.insert(compute);
                    // Its tasks still running see `brisk::cancelled()`.
                    for token in self
                        .tokens
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&compute)
                        .into_iter()
                        .flatten()
                    {
                        token.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    rmp_serde::to_vec(&())
                }
                other => return Err(Status::invalid_argument(format!("no action '{other}'"))),
            };
            let reply = reply.map_err(|e| Status::internal(e.to_string()))?;
            let result = arrow_flight::Result { body: reply.into() };
            Ok(stream::iter([Ok(result)]).boxed())
        }
        .boxed()
    }

    fn get(&self, ticket: &[u8]) -> Result<Data, Status> {
        let id: ResultId = decode_body("ticket (a result id)", ticket)?;
        let stored = lock(&self.held).values.get(&id).cloned().ok_or_else(|| {
            Status::not_found(format!("no result {} on worker {}", id.key, self.addr))
        })?;
        let value = stored.value(&self.spill)?;
        let batch = value.to_batch().map_err(|e| Status::failed_precondition(e.to_string()))?;
        // Flight's default message size (about 2 MB): under the 4 MiB a gRPC
        // client accepts by default, so any Flight client reads it as it is.
        let data =
            FlightDataEncoderBuilder::new().build(stream::iter([Ok(batch)])).map_err(Status::from);
        Ok(data.boxed())
    }
}

/// A worker serving on an address of its own until it is dropped; dropping it
/// stops the server and joins its threads.
pub struct Worker {
    addr: SocketAddr,
    serving: Option<Serving>,
    /// Its results and spill file, shared with the server (to start anew).
    held: Arc<Held>,
    spill: Arc<SpillStore>,
    /// The pool's threads still running, and a signal when one ends.
    pool_threads: Arc<(Mutex<usize>, std::sync::Condvar)>,
}

impl Worker {
    /// Starts a worker as `options` say, running the ops `registry` knows.
    pub fn start(options: &WorkerOptions, registry: OpRegistry) -> std::io::Result<Worker> {
        let WorkerOptions { listen, contact, threads, memory_limit, ref security } = *options;
        let threads = threads.max(1);
        // Rayon ends a dropped pool's threads in the background: count them out,
        // so a dropped worker has no thread left.
        let pool_threads = Arc::new((Mutex::new(threads), std::sync::Condvar::new()));
        let exits = pool_threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("brisk-worker-{i}"))
            .exit_handler(move |_| {
                let (left, changed) = &*exits;
                *left.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
                changed.notify_all();
            })
            .build()
            .map_err(std::io::Error::other)?;
        let hello = Hello {
            version: VERSION.into(),
            ops: registry_fingerprint(&registry),
            threads,
            memory_limit,
            ..Hello::default()
        };
        let held = Arc::new(Mutex::new(Results { epoch: epoch(), ..Results::default() }));
        let spill = Arc::new(SpillStore::new(None));
        let serving = Serving::start(listen, security, |bound| Inner {
            addr: reached_at(bound, contact),
            hello,
            running: Arc::default(),
            waiting: Arc::default(),
            tokens: Mutex::default(),
            held: held.clone(),
            spill: spill.clone(),
            registry,
            pool,
            peers: Connections::new(security.clone()),
            sent: Default::default(),
            received: Default::default(),
        })?;
        let addr = reached_at(serving.addr(), contact);
        Ok(Worker { addr, serving: Some(serving), pool_threads, held, spill })
    }

    /// Starts anew, as when a scheduler declared it dead: every result it held
    /// is dropped, those of tasks running now will be, and it greets with a new
    /// epoch. What it held was recomputed elsewhere.
    pub fn renew(&self) {
        lock(&self.held).renew(&self.spill);
    }

    /// Its epoch now (see [`Hello::epoch`]).
    pub fn epoch(&self) -> u64 {
        lock(&self.held).epoch
    }

    /// The address it is reached at (where it listens, or its contact address).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.serving.take());
        // The pool went with the server; its threads end once their task does.
        let (left, changed) = &*self.pool_threads;
        let left = left.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = changed.wait_timeout_while(left, std::time::Duration::from_secs(10), |n| *n > 0);
    }
}

/// How a worker is started: where it listens, how its peers reach it, what it
/// runs with, and how it checks its callers.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The address to listen on (port 0 picks a free port; `0.0.0.0` every
    /// interface).
    pub listen: SocketAddr,
    /// The address peers and the scheduler reach it at, when not the one it
    /// listens on (Dask's `--contact-address`): needed when listening on
    /// `0.0.0.0`, where it is otherwise the loopback address.
    pub contact: Option<IpAddr>,
    /// Threads running tasks.
    pub threads: usize,
    /// The bytes of results it holds in memory before spilling the oldest.
    pub memory_limit: u64,
    /// The token and TLS it requires of callers and gives its peers.
    pub security: Security,
}

impl WorkerOptions {
    /// A worker on `listen` with `threads` threads and `memory_limit` bytes,
    /// reached where it listens, with no token or TLS (loopback only).
    pub fn new(listen: SocketAddr, threads: usize, memory_limit: u64) -> WorkerOptions {
        WorkerOptions { listen, contact: None, threads, memory_limit, security: Security::none() }
    }
}

/// The address a server bound to `bound` is reached at: `contact` when given,
/// loopback when it listens on every interface.
fn reached_at(bound: SocketAddr, contact: Option<IpAddr>) -> SocketAddr {
    let ip = match contact {
        Some(ip) => ip,
        None if bound.ip().is_unspecified() => match bound {
            SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        },
        None => bound.ip(),
    };
    SocketAddr::new(ip, bound.port())
}

/// A number unlikely to repeat across starts: the time and the process id, mixed.
pub(crate) fn epoch() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
