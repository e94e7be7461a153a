//! Futures on threads, with the semantics of Python's `concurrent.futures` and
//! Dask's `Client`: [`Client::submit`] runs a function on the client's pool and
//! returns a [`Future`] at once; futures are waited on one by one
//! ([`Future::result`], with a timeout), together ([`Client::gather`],
//! [`wait`]) or as they finish ([`as_completed`]); they can be cancelled,
//! carry the failure of their task with its key, take other futures as
//! arguments ([`Client::submit_with`]: a dependency, not a wait), and are
//! `std::future::Future`s for async code, on any runtime.
//!
//! - Queued work runs highest [`Options::priority`] first, then in submission
//!   order; [`Options::retries`] runs a failed task again.
//! - [`Future::cancel`] of a queued task means it never runs; of a running one,
//!   the future is resolved as cancelled at once and the task can see it with
//!   [`cancelled`] and stop early (its result is dropped).
//! - Dropping the [`Client`] cancels what is queued and what runs (their
//!   futures settle as cancelled, their tasks see [`cancelled`]) and joins its
//!   threads; one whose task does not return within a moment ends on its own
//!   when it does — a hung task never hangs the drop.

mod batches;
mod persist;

pub use persist::Persisted;

use brisk_graph::Collection as _;

use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Why a future has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FutureError {
    /// The task failed (an error or a panic), after its retries.
    #[error("task {key} failed: {message}")]
    Failed {
        /// The failing task's key.
        key: String,
        /// Its error or panic message.
        message: String,
    },
    /// The future was cancelled (by [`Future::cancel`], or its client dropped).
    #[error("task {key} was cancelled")]
    Cancelled {
        /// The task's key.
        key: String,
    },
    /// [`Future::result`] gave up waiting; the task goes on.
    #[error("task {key} did not finish within {after:?}")]
    Timeout {
        /// The task's key.
        key: String,
        /// How long was waited.
        after: Duration,
    },
}

/// Which futures [`wait`] waits for (`concurrent.futures`' `return_when`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Return {
    /// Until any one is done.
    FirstCompleted,
    /// Until any one fails, or all are done.
    FirstException,
    /// Until all are done.
    AllCompleted,
}

/// How a task is submitted: its priority, retries and key.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Queued tasks with a higher priority run first (default 0).
    pub priority: i64,
    /// Times a failed task is run again before its future fails (default 0).
    pub retries: u32,
    /// The task's key, in errors (default `submit-N`).
    pub key: Option<String>,
}

thread_local! {
    /// The cancellation flag of the task running on this thread.
    static CURRENT: std::cell::RefCell<Option<Arc<AtomicBool>>> = const { std::cell::RefCell::new(None) };
}

/// Whether the task running on this thread was cancelled: a long task checks it
/// and returns early (its result is dropped anyway). False outside tasks.
pub fn cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)))
}

/// Runs `f` with `flag` as the cancellation token [`cancelled`] reads on this
/// thread (for backends running tasks elsewhere: a worker process sets it when
/// the compute of the task is let go).
pub fn run_cancellable<T>(flag: &Arc<AtomicBool>, f: impl FnOnce() -> T) -> T {
    let before = CURRENT.with(|c| c.replace(Some(flag.clone())));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = before);
    out
}

/// Runs submitted work and returns [`Future`]s: functions and collections on
/// a pool of threads ([`Client::threads`]), or collections on a scheduler's
/// worker processes ([`Client::new`]).
pub struct Client {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Where collections are computed.
    scheduler: crate::Scheduler,
    /// On worker processes: requests gathered into computes.
    batches: Option<Arc<batches::Batches>>,
    /// What its persists keep.
    kept: Arc<Mutex<persist::Kept>>,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    next: AtomicU64,
    /// Pool threads still running, and a signal when one ends.
    alive: Mutex<usize>,
    ended: Condvar,
    /// Tasks in the queue, read without its lock by threads about to sleep.
    queued: std::sync::atomic::AtomicUsize,
    /// Numbers for keys.
    keys: AtomicU64,
}

/// How long a thread that ran out of work, or waits for a result, looks again
/// before it sleeps: waking a sleeping thread costs far more (tens of µs) than
/// a task here.
const SPIN: Duration = Duration::from_micros(50);

/// How long a thread waiting for the result of work on worker processes looks
/// again before it sleeps: a round trip there takes a few hundred µs, and a
/// sleeping thread's wake-up adds tens of µs to each.
const SPIN_REMOTE: Duration = Duration::from_micros(300);

/// Spins up to [`SPIN`] until `ready` holds: whether it did.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    spin_for(SPIN, ready)
}

/// Spins (yielding) up to `spin` until `ready` holds: whether it did.
fn spin_for(spin: Duration, ready: impl Fn() -> bool) -> bool {
    let until = Instant::now() + spin;
    while Instant::now() < until {
        if ready() {
            return true;
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    ready()
}

/// A task's key as futures name it (Dask's): `inc-1f`, or `('mean', 2, 7)`
/// when it has an index.
fn key_text(key: &brisk_core::Key) -> String {
    match key.index() {
        [] => key.name().to_string(),
        _ => key.to_string(),
    }
}

/// Calls `start` once every future of `deps` is settled (at once when none).
fn after<D: Deps>(deps: &D, start: impl FnOnce() + Send + 'static) {
    if deps.is_empty() {
        return start();
    }
    let left = Arc::new(AtomicU64::new(deps.len() as u64));
    let start = Arc::new(Mutex::new(Some(start)));
    deps.when_each_done(&mut || {
        let (left, start) = (left.clone(), start.clone());
        Box::new(move || {
            if left.fetch_sub(1, Ordering::AcqRel) == 1
                && let Some(start) = lock(&start).take()
            {
                start();
            }
        })
    });
}

/// Where a client computes collections: its pool (on its scheduler), or its
/// batches for worker processes.
enum Target {
    Pool(std::sync::Weak<Shared>, crate::Scheduler, std::sync::Weak<Mutex<persist::Kept>>),
    Batches(std::sync::Weak<batches::Batches>),
}

impl Target {
    /// Starts computing `collection` for the future of `state` (cancelled when
    /// the client is gone).
    fn start<C>(self, state: Arc<State<C::Output>>, options: &Options, collection: C)
    where
        C: brisk_graph::Collection + Send + Sync + 'static,
        C::Output: Clone + Send + 'static,
    {
        let gone = || FutureError::Cancelled { key: state.key.clone() };
        match self {
            Target::Pool(shared, scheduler, kept) => {
                let Some(shared) = shared.upgrade() else { return state.resolve(Err(gone())) };
                // What the client's persists keep, as this compute starts from it.
                let values = kept.upgrade().map_or_else(Vec::new, |kept| {
                    lock(&kept).values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                });
                let collection = persist::WithKept { collection, values };
                let f = move || scheduler.compute(&collection);
                let task = Task { state, f, retries: options.retries };
                shared.push(options.priority, Box::new(task));
            }
            Target::Batches(batches) => {
                let Some(batches) = batches.upgrade() else { return state.resolve(Err(gone())) };
                let left = collection.output_keys().len();
                let request =
                    batches::Computing { collection, state, values: vec![None; left], left };
                batches.push(options.priority, options.retries, Box::new(request));
            }
        }
    }
}

/// Why a closure submitted to a client on worker processes fails.
const CLOSURES_STAY: &str = "a closure cannot leave this process: on worker processes, register the function (register_fn!) and compute `delayed!(f(..))` with Client::compute";

/// How long dropping a client waits for its running tasks to return.
const DROP_GRACE: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Queued>,
    closing: bool,
    /// The tasks running now.
    running: Vec<Arc<dyn Cancel>>,
}

/// A task waiting for a thread: highest priority, then oldest, first.
type Queued = crate::Ranked<Box<dyn Job>>;

/// A task as the pool sees it.
trait Job: Send {
    /// Runs it (unless cancelled), and resolves its future.
    fn run(self: Box<Self>);
    /// Resolves its future as cancelled without running it.
    fn cancel(self: Box<Self>);
    /// Its future, to cancel.
    fn handle(&self) -> Arc<dyn Cancel>;
}

/// A future as the pool cancels it.
trait Cancel: Send + Sync {
    /// Settles it as cancelled and asks its task to stop.
    fn cancel(&self);
}

impl<T: Send> Cancel for State<T> {
    fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.resolve(Err(FutureError::Cancelled { key: self.key.clone() }));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Client {
    /// A client running tasks on `threads` threads (at least one); collections
    /// are computed on a thread scheduler of as many threads.
    pub fn threads(threads: usize) -> Client {
        let threads = threads.max(1);
        Self::pool(threads, crate::Scheduler::threads(threads), None, Arc::default())
    }

    /// A client of `scheduler` (Dask's `Client(cluster)`): on a scheduler of
    /// worker processes ([`Scheduler::backend`](crate::Scheduler::backend)),
    /// [`compute`](Self::compute) and the calls built on it run there, many
    /// requests gathered into each compute and every future settled as its
    /// own result comes back; closures ([`submit`](Self::submit)) cannot
    /// leave this process, and their futures fail saying so. On threads, a
    /// pool of as many threads as `scheduler` has, computing there.
    pub fn new(scheduler: &crate::Scheduler) -> Client {
        match scheduler.backend_of() {
            Some(_) => {
                let kept = Arc::default();
                let batches = batches::Batches::new(scheduler.clone(), Arc::clone(&kept));
                Self::pool(0, scheduler.clone(), Some(batches), kept)
            }
            None => Self::pool(scheduler.num_threads(), scheduler.clone(), None, Arc::default()),
        }
    }

    fn pool(
        threads: usize,
        scheduler: crate::Scheduler,
        batches: Option<Arc<batches::Batches>>,
        kept: Arc<Mutex<persist::Kept>>,
    ) -> Client {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            work: Condvar::new(),
            next: AtomicU64::new(0),
            alive: Mutex::new(threads),
            ended: Condvar::new(),
            queued: Default::default(),
            keys: AtomicU64::new(0),
        });
        let threads = (0..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("brisk-futures-{i}"))
                    .spawn(move || {
                        shared.serve();
                        *lock(&shared.alive) -= 1;
                        shared.ended.notify_all();
                    })
                    .expect("a thread for the client's pool")
            })
            .collect();
        Client { shared, threads, scheduler, batches, kept }
    }

    /// Runs `f` on the pool: its future, at once. A panic in `f` fails the
    /// future with the panic's message.
    pub fn submit<T, F>(&self, f: F) -> Future<T>
    where
        T: Clone + Send + 'static,
        F: Fn() -> T + Send + Sync + 'static,
    {
        self.try_submit_opts(Options::default(), move || Ok::<T, String>(f()))
    }

    /// Runs `f`, which may fail: an `Err` fails the future with its message.
    pub fn try_submit<T, E, F>(&self, f: F) -> Future<T>
    where
        T: Clone + Send + 'static,
        E: std::fmt::Display,
        F: Fn() -> Result<T, E> + Send + Sync + 'static,
    {
        self.try_submit_opts(Options::default(), f)
    }

    /// [`try_submit`](Self::try_submit) with a priority, retries or a key.
    pub fn try_submit_opts<T, E, F>(&self, options: Options, f: F) -> Future<T>
    where
        T: Clone + Send + 'static,
        E: std::fmt::Display,
        F: Fn() -> Result<T, E> + Send + Sync + 'static,
    {
        let future = self.future(&options);
        if self.batches.is_some() {
            future.state.resolve(Err(FutureError::Failed {
                key: future.state.key.clone(),
                message: CLOSURES_STAY.into(),
            }));
            return future;
        }
        let job = Task { state: future.state.clone(), f, retries: options.retries };
        self.shared.push(options.priority, Box::new(job));
        future
    }

    /// Runs `f` on the values of `deps` (futures: one, a tuple of up to four, or
    /// a `Vec`) once they are all done, without waiting for them here: the
    /// future, at once. A dependency that fails or is cancelled fails it.
    pub fn submit_with<D, T, E, F>(&self, deps: D, options: Options, f: F) -> Future<T>
    where
        D: Deps,
        T: Clone + Send + 'static,
        E: std::fmt::Display,
        F: Fn(D::Values) -> Result<T, E> + Send + Sync + 'static,
    {
        let future = self.future(&options);
        if self.batches.is_some() {
            let message = CLOSURES_STAY.into();
            future
                .state
                .resolve(Err(FutureError::Failed { key: future.state.key.clone(), message }));
            return future;
        }
        let shared = Arc::downgrade(&self.shared);
        let state = future.state.clone();
        let all = deps.clone();
        after(&deps, move || {
            let values = match all.values() {
                Ok(values) => values,
                Err(e) => return state.resolve(Err(e.because_of(&state.key))),
            };
            let Some(shared) = shared.upgrade() else {
                return state.resolve(Err(FutureError::Cancelled { key: state.key.clone() }));
            };
            let task = Task { state, f: move || f(values.clone()), retries: options.retries };
            shared.push(options.priority, Box::new(task));
        });
        future
    }

    /// `f` on each item, as [`submit`](Self::submit) would: the futures, in order.
    pub fn map<I, T, F>(&self, f: F, items: impl IntoIterator<Item = I>) -> Vec<Future<T>>
    where
        I: Clone + Send + Sync + 'static,
        T: Clone + Send + 'static,
        F: Fn(I) -> T + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                self.submit(move || f(item.clone()))
            })
            .collect()
    }

    /// Computes `collection` on the client's scheduler without blocking here
    /// (Dask's `client.compute`, and `client.submit` of a registered function:
    /// `client.compute(&delayed!(inc(1)))`): its future, keyed by the
    /// collection's output when it has one. Cancelling it before it is sent
    /// means it never runs; after, its answer is dropped.
    pub fn compute<C>(&self, collection: &C) -> Future<C::Output>
    where
        C: brisk_graph::Collection + Clone + Send + Sync + 'static,
        C::Output: Clone + Send + 'static,
    {
        self.compute_opts(Options::default(), collection)
    }

    /// [`compute`](Self::compute) with a priority, retries (on worker
    /// processes: of the collection's output tasks) or a key.
    pub fn compute_opts<C>(&self, mut options: Options, collection: &C) -> Future<C::Output>
    where
        C: brisk_graph::Collection + Clone + Send + Sync + 'static,
        C::Output: Clone + Send + 'static,
    {
        if options.key.is_none() {
            options.key = match collection.output_keys().as_slice() {
                [key] => Some(key_text(key)),
                _ => Some(format!("compute-{}", self.shared.keys.fetch_add(1, Ordering::Relaxed))),
            };
        }
        let future = self.future(&options);
        self.target().start(future.state.clone(), &options, collection.clone());
        future
    }

    /// Computes the collection `make` builds of each item (Dask's
    /// `client.map` of a registered function:
    /// `client.compute_map(|i| delayed!(inc(i)), 0..1000)`): the futures, in
    /// order.
    pub fn compute_map<I, C>(
        &self,
        make: impl Fn(I) -> C,
        items: impl IntoIterator<Item = I>,
    ) -> Vec<Future<C::Output>>
    where
        C: brisk_graph::Collection + Clone + Send + Sync + 'static,
        C::Output: Clone + Send + 'static,
    {
        items.into_iter().map(|item| self.compute(&make(item))).collect()
    }

    /// Computes the collection `make` builds of the values of `deps` (futures:
    /// one, a tuple of up to four, or a `Vec`) once they are all done, without
    /// waiting for them here: its future, at once. A dependency that fails or
    /// is cancelled fails it. The values go into the collection as constants
    /// (`delayed!(add(a, b))` with `a` and `b` the values).
    pub fn compute_with<D, C>(
        &self,
        deps: D,
        mut options: Options,
        make: impl FnOnce(D::Values) -> C + Send + 'static,
    ) -> Future<C::Output>
    where
        D: Deps,
        C: brisk_graph::Collection + Clone + Send + Sync + 'static,
        C::Output: Clone + Send + 'static,
    {
        if options.key.is_none() {
            let n = self.shared.keys.fetch_add(1, Ordering::Relaxed);
            options.key = Some(format!("compute-{n}"));
        }
        let future = self.future(&options);
        let (target, state, all) = (self.target(), future.state.clone(), deps.clone());
        after(&deps, move || match all.values() {
            Ok(values) => target.start(state, &options, make(values)),
            Err(e) => state.resolve(Err(e.because_of(&state.key))),
        });
        future
    }

    /// Computes `collection` and keeps its results (Dask's `client.persist`):
    /// on threads in this process, on worker processes where they were made.
    /// Every later compute of this client built on it (`x.mean()` of a
    /// persisted `x`: the same keys) starts from them. Waits until they are
    /// made; they are kept until the returned collection's last clone (or the
    /// client) is dropped.
    pub fn persist<C>(&self, collection: &C) -> Result<Persisted<C>, FutureError>
    where
        C: brisk_graph::Collection + Clone,
    {
        let keys = collection.output_keys();
        let key = match keys.as_slice() {
            [key] => key_text(key),
            _ => format!("persist-{}", self.shared.keys.fetch_add(1, Ordering::Relaxed)),
        };
        let failed = |e: crate::Error| match e {
            crate::Error::Backend(e) => batches::failure(&key, &e),
            e => FutureError::Failed { key: key.clone(), message: e.to_string() },
        };
        let mut record = persist::Record {
            keys: keys.clone(),
            computes: Vec::new(),
            kept: Arc::downgrade(&self.kept),
            backend: self.scheduler.backend_of().cloned(),
        };
        let mut graph = brisk_graph::GraphBuilder::new();
        match self.scheduler.backend_of() {
            None => {
                let values = lock(&self.kept).values.clone().into_iter().collect();
                persist::WithKept { collection, values }.add_tasks(&mut graph);
                let graph = graph.finish().map_err(|e| failed(e.into()))?;
                let values = self.scheduler.run(graph, &keys).map_err(failed)?;
                lock(&self.kept).values.extend(keys.iter().cloned().zip(values));
            }
            Some(_) => {
                collection.add_tasks(&mut graph);
                let (plan, held) =
                    persist::plan_using(&self.scheduler, graph, keys.clone(), &self.kept)
                        .map_err(failed)?;
                let made = self.scheduler.persist(&plan, &held, keys.len()).map_err(failed)?;
                let before: std::collections::HashSet<u64> =
                    held.values().map(|h| h.compute).collect();
                record.computes =
                    made.iter().map(|h| h.compute).filter(|c| !before.contains(c)).collect();
                record.computes.sort_unstable();
                record.computes.dedup();
                lock(&self.kept).held.extend(keys.iter().cloned().zip(made));
            }
        }
        Ok(Persisted { collection: collection.clone(), record: Arc::new(record) })
    }

    /// Where this client's collections are computed, held weakly (by work
    /// that starts later).
    fn target(&self) -> Target {
        match &self.batches {
            Some(batches) => Target::Batches(Arc::downgrade(batches)),
            None => Target::Pool(
                Arc::downgrade(&self.shared),
                self.scheduler.clone(),
                Arc::downgrade(&self.kept),
            ),
        }
    }

    /// The values of `futures`, in order, once all are done; the first failure
    /// (in order) if any fails.
    pub fn gather<T: Clone>(&self, futures: &[Future<T>]) -> Result<Vec<T>, FutureError> {
        futures.iter().map(|f| f.result(None)).collect()
    }

    fn future<T>(&self, options: &Options) -> Future<T> {
        let n = self.shared.keys.fetch_add(1, Ordering::Relaxed);
        let key = options.key.clone().unwrap_or_else(|| format!("submit-{n}"));
        let mut state = State::new(key);
        if self.batches.is_some() {
            state.spin = SPIN_REMOTE;
        }
        Future { state: Arc::new(state) }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(batches) = &self.batches {
            batches.close(DROP_GRACE);
        }
        // What its persists keep on the workers goes with it.
        let kept = std::mem::take(&mut *lock(&self.kept));
        if let Some(backend) = self.scheduler.backend_of() {
            let mut computes: Vec<u64> = kept.held.values().map(|h| h.compute).collect();
            computes.sort_unstable();
            computes.dedup();
            computes.into_iter().for_each(|c| backend.unpersist(c));
        }
        let (queued, running) = {
            let mut queue = lock(&self.shared.queue);
            queue.closing = true;
            (std::mem::take(&mut queue.heap), queue.running.clone())
        };
        self.shared.work.notify_all();
        running.iter().for_each(|task| task.cancel());
        for queued in queued {
            queued.item.cancel();
        }
        let alive = lock(&self.shared.alive);
        let waited = self.shared.ended.wait_timeout_while(alive, DROP_GRACE, |n| *n > 0);
        drop(waited);
        // The ended threads are joined; one still in its task ends when it returns.
        for thread in self.threads.drain(..) {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Shared {
    fn push(&self, priority: i64, job: Box<dyn Job>) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let mut queue = lock(&self.queue);
        if queue.closing {
            drop(queue);
            return job.cancel();
        }
        queue.heap.push(Queued { priority, seq, item: job });
        self.queued.fetch_add(1, Ordering::Release);
        drop(queue);
        self.work.notify_one();
    }

    /// A pool thread: runs queued tasks until the client closes.
    fn serve(&self) {
        loop {
            let job = {
                let mut queue = lock(&self.queue);
                loop {
                    if queue.closing {
                        return;
                    }
                    if let Some(next) = queue.heap.pop() {
                        self.queued.fetch_sub(1, Ordering::Relaxed);
                        queue.running.push(next.item.handle());
                        break next.item;
                    }
                    // Out of work: look again for a moment before sleeping.
                    drop(queue);
                    let more = spin_until(|| self.queued.load(Ordering::Acquire) > 0);
                    queue = lock(&self.queue);
                    if !more && queue.heap.is_empty() && !queue.closing {
                        queue = self.work.wait(queue).unwrap_or_else(PoisonError::into_inner);
                    }
                }
            };
            let handle = job.handle();
            job.run();
            let mut queue = lock(&self.queue);
            let same =
                |t: &Arc<dyn Cancel>| std::ptr::addr_eq(Arc::as_ptr(t), Arc::as_ptr(&handle));
            if let Some(i) = queue.running.iter().position(same) {
                queue.running.swap_remove(i);
            }
        }
    }
}

/// A submitted function and the future it resolves.
struct Task<T, F> {
    state: Arc<State<T>>,
    f: F,
    retries: u32,
}

impl<T, E, F> Job for Task<T, F>
where
    T: Send + 'static,
    E: std::fmt::Display,
    F: Fn() -> Result<T, E> + Send + 'static,
{
    fn run(self: Box<Self>) {
        if !self.state.start() {
            return;
        }
        CURRENT.with(|c| *c.borrow_mut() = Some(self.state.cancel.clone()));
        let mut tries = 0;
        let outcome = loop {
            let message = match catch_unwind(AssertUnwindSafe(&self.f)) {
                Ok(Ok(value)) => break Ok(value),
                Ok(Err(e)) => e.to_string(),
                Err(panic) => panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into()),
            };
            if tries >= self.retries || self.state.cancel.load(Ordering::Relaxed) {
                break Err(FutureError::Failed { key: self.state.key.clone(), message });
            }
            tries += 1;
        };
        CURRENT.with(|c| *c.borrow_mut() = None);
        self.state.resolve(outcome);
    }

    fn cancel(self: Box<Self>) {
        self.state.cancel.store(true, Ordering::Relaxed);
        self.state.resolve(Err(FutureError::Cancelled { key: self.state.key.clone() }));
    }

    fn handle(&self) -> Arc<dyn Cancel> {
        self.state.clone()
    }
}

/// What a future knows: its task's key, where it stands, who waits for it.
struct State<T> {
    key: String,
    /// How long [`Future::result`] spins before it sleeps.
    spin: Duration,
    inner: Mutex<Inner<T>>,
    changed: Condvar,
    cancel: Arc<AtomicBool>,
}

struct Inner<T> {
    status: Status<T>,
    wakers: Vec<Waker>,
    callbacks: Vec<Box<dyn FnOnce() + Send>>,
}

enum Status<T> {
    Pending,
    Running,
    Done(Result<T, FutureError>),
}

impl<T> State<T> {
    fn new(key: String) -> State<T> {
        State {
            key,
            spin: SPIN,
            inner: Mutex::new(Inner {
                status: Status::Pending,
                wakers: Vec::new(),
                callbacks: Vec::new(),
            }),
            changed: Condvar::new(),
            cancel: Arc::default(),
        }
    }

    /// Marks it running: false when it was cancelled first.
    fn start(&self) -> bool {
        let mut inner = lock(&self.inner);
        match inner.status {
            Status::Pending => {
                inner.status = Status::Running;
                true
            }
            _ => false,
        }
    }

    /// Calls `f` when it settles (at once if it has).
    fn when_done(&self, f: Box<dyn FnOnce() + Send>) {
        let mut inner = lock(&self.inner);
        if matches!(inner.status, Status::Done(_)) {
            drop(inner);
            return f();
        }
        inner.callbacks.push(f);
    }

    /// Settles it (once: a later outcome, as of a cancelled task that ran on,
    /// is dropped), waking who waits and calling its callbacks.
    fn resolve(&self, outcome: Result<T, FutureError>) {
        let (wakers, callbacks) = {
            let mut inner = lock(&self.inner);
            if matches!(inner.status, Status::Done(_)) {
                return;
            }
            inner.status = Status::Done(outcome);
            (std::mem::take(&mut inner.wakers), std::mem::take(&mut inner.callbacks))
        };
        self.changed.notify_all();
        wakers.into_iter().for_each(Waker::wake);
        callbacks.into_iter().for_each(|f| f());
    }
}

impl FutureError {
    /// This failure as the failure of `key`, which depended on its task.
    fn because_of(self, key: &str) -> FutureError {
        let key = key.to_string();
        match self {
            FutureError::Failed { key: dep, message } => {
                FutureError::Failed { key, message: format!("its input {dep} failed: {message}") }
            }
            FutureError::Cancelled { key: dep } => {
                FutureError::Failed { key, message: format!("its input {dep} was cancelled") }
            }
            timeout @ FutureError::Timeout { .. } => timeout,
        }
    }
}

/// The value a task will have: waited for ([`result`](Self::result)),
/// polled ([`done`](Self::done)), cancelled, or awaited (it is a
/// `std::future::Future`). Clones share the task.
pub struct Future<T> {
    state: Arc<State<T>>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future { state: self.state.clone() }
    }
}

impl<T> std::fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match lock(&self.state.inner).status {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done(Ok(_)) => "finished",
            Status::Done(Err(FutureError::Cancelled { .. })) => "cancelled",
            Status::Done(Err(_)) => "error",
        };
        write!(f, "<Future: {status}, key: {}>", self.state.key)
    }
}

impl<T: Clone> Future<T> {
    /// Its value, waiting for it up to `timeout` (`None`: as long as it takes).
    /// At the timeout, [`FutureError::Timeout`]: the task goes on.
    pub fn result(&self, timeout: Option<Duration>) -> Result<T, FutureError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // A short task is often done before a sleep would start.
        spin_for(self.state.spin, || self.done());
        let mut inner = lock(&self.state.inner);
        loop {
            if let Status::Done(outcome) = &inner.status {
                return outcome.clone();
            }
            inner = match deadline {
                None => self.state.changed.wait(inner).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(FutureError::Timeout {
                            key: self.state.key.clone(),
                            after: timeout.unwrap_or_default(),
                        });
                    }
                    self.state
                        .changed
                        .wait_timeout(inner, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

impl<T> Future<T> {
    /// The task's key.
    pub fn key(&self) -> &str {
        &self.state.key
    }

    /// Whether it is settled: finished, failed or cancelled.
    pub fn done(&self) -> bool {
        matches!(lock(&self.state.inner).status, Status::Done(_))
    }

    /// Whether its task is running now.
    pub fn running(&self) -> bool {
        matches!(lock(&self.state.inner).status, Status::Running)
    }

    /// Whether it was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(lock(&self.state.inner).status, Status::Done(Err(FutureError::Cancelled { .. })))
    }

    /// Cancels it: a queued task never runs; a running one is asked to stop
    /// ([`cancelled`] turns true on its thread) and its result will be dropped.
    /// False when it was already settled.
    pub fn cancel(&self) -> bool {
        if self.done() {
            return false;
        }
        self.state.cancel.store(true, Ordering::Relaxed);
        self.state.resolve(Err(FutureError::Cancelled { key: self.state.key.clone() }));
        self.cancelled()
    }

    /// Its failure, once settled (`None` while pending or when it succeeded).
    pub fn exception(&self) -> Option<FutureError> {
        match &lock(&self.state.inner).status {
            Status::Done(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Calls `f` when it settles (at once, here, if it already has), on the
    /// thread that settles it, just after those waiting for it are woken (as
    /// `concurrent.futures` does).
    pub fn add_done_callback(&self, f: impl FnOnce() + Send + 'static) {
        self.state.when_done(Box::new(f));
    }

    /// Whether its task failed (cancelled is not failed).
    fn failed(&self) -> bool {
        matches!(lock(&self.state.inner).status, Status::Done(Err(FutureError::Failed { .. })))
    }
}

impl<T: Clone> std::future::Future for Future<T> {
    type Output = Result<T, FutureError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = lock(&self.state.inner);
        if let Status::Done(outcome) = &inner.status {
            return Poll::Ready(outcome.clone());
        }
        if !inner.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            inner.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Runs `f` on a thread of its own, named `key` in errors: its future (for
/// one-off work such as [`Scheduler::compute_async`](crate::Scheduler::compute_async),
/// with no pool and no async runtime).
pub fn spawn<T, E, F>(key: &str, f: F) -> Future<T>
where
    T: Send + 'static,
    E: std::fmt::Display,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    let state = Arc::new(State::new(key.to_string()));
    let future = Future { state: state.clone() };
    state.start();
    let started = std::thread::Builder::new().name("brisk-compute".into()).spawn({
        let state = state.clone();
        move || {
            CURRENT.with(|c| *c.borrow_mut() = Some(state.cancel.clone()));
            let outcome = match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("it panicked".to_string()),
            };
            let outcome =
                outcome.map_err(|message| FutureError::Failed { key: state.key.clone(), message });
            state.resolve(outcome);
        }
    });
    if let Err(e) = started {
        let message = format!("no thread for it: {e}");
        state.resolve(Err(FutureError::Failed { key: state.key.clone(), message }));
    }
    future
}

/// Futures a task takes as arguments ([`Client::submit_with`]).
pub trait Deps: Clone + Send + 'static {
    /// Their values, as the task gets them.
    type Values: Clone + Send + Sync + 'static;
    /// How many futures.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Gives each future a done callback made by `callback`.
    fn when_each_done(&self, callback: &mut dyn FnMut() -> Box<dyn FnOnce() + Send>);
    /// Their values once all are done, or the first failure.
    fn values(&self) -> Result<Self::Values, FutureError>;
}

impl<T: Clone + Send + Sync + 'static> Deps for Future<T> {
    type Values = T;
    fn len(&self) -> usize {
        1
    }
    fn when_each_done(&self, callback: &mut dyn FnMut() -> Box<dyn FnOnce() + Send>) {
        self.add_done_callback(callback());
    }
    fn values(&self) -> Result<T, FutureError> {
        self.result(None)
    }
}

impl<T: Clone + Send + Sync + 'static> Deps for Vec<Future<T>> {
    type Values = Vec<T>;
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn when_each_done(&self, callback: &mut dyn FnMut() -> Box<dyn FnOnce() + Send>) {
        for future in self {
            future.add_done_callback(callback());
        }
    }
    fn values(&self) -> Result<Vec<T>, FutureError> {
        self.iter().map(|f| f.result(None)).collect()
    }
}

macro_rules! tuple_deps {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Clone + Send + Sync + 'static),+> Deps for ($(Future<$t>,)+) {
            type Values = ($($t,)+);
            fn len(&self) -> usize {
                [$(stringify!($t)),+].len()
            }
            fn when_each_done(&self, callback: &mut dyn FnMut() -> Box<dyn FnOnce() + Send>) {
                $(self.$i.add_done_callback(callback());)+
            }
            fn values(&self) -> Result<Self::Values, FutureError> {
                Ok(($(self.$i.result(None)?,)+))
            }
        }
    };
}
tuple_deps!(A 0, B 1);
tuple_deps!(A 0, B 1, C 2);
tuple_deps!(A 0, B 1, C 2, D 3);

/// Each of `futures` as it settles, in the order they settle: an iterator of
/// their places in `futures` (Dask's and `concurrent.futures`' `as_completed`).
/// With `timeout`, the iteration ends there (check how many came).
pub fn as_completed<T>(futures: &[Future<T>], timeout: Option<Duration>) -> AsCompleted {
    let (tx, rx) = mpsc::channel();
    for (i, future) in futures.iter().enumerate() {
        let tx = tx.clone();
        future.add_done_callback(move || {
            let _ = tx.send(i);
        });
    }
    AsCompleted { rx, left: futures.len(), deadline: timeout.map(|t| Instant::now() + t) }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted {
    rx: mpsc::Receiver<usize>,
    left: usize,
    deadline: Option<Instant>,
}

impl Iterator for AsCompleted {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let next = match self.deadline {
            None => self.rx.recv().ok(),
            Some(deadline) => {
                self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
            }
        };
        match next {
            Some(i) => {
                self.left -= 1;
                Some(i)
            }
            None => {
                self.left = 0;
                None
            }
        }
    }
}

/// Waits for `futures` as `until` says, at most `timeout`: the places of those
/// done and of those not done, as `concurrent.futures.wait` returns them.
pub fn wait<T>(
    futures: &[Future<T>],
    timeout: Option<Duration>,
    until: Return,
) -> (Vec<usize>, Vec<usize>) {
    let mut completed = as_completed(futures, timeout);
    let mut done = vec![false; futures.len()];
    // Settled before the call count at once.
    let enough = |done: &[bool]| match until {
        Return::AllCompleted => done.iter().all(|&d| d),
        Return::FirstCompleted => done.iter().any(|&d| d),
        Return::FirstException => {
            done.iter().all(|&d| d) || done.iter().zip(futures).any(|(&d, f)| d && f.failed())
        }
    };
    while !futures.is_empty() && !enough(&done) {
        match completed.next() {
            Some(i) => done[i] = true,
            None => break,
        }
    }
    // Whatever else settled meanwhile is done too.
    for (i, f) in futures.iter().enumerate() {
        done[i] = done[i] || f.done();
    }
    let (yes, no): (Vec<usize>, Vec<usize>) = (0..futures.len()).partition(|&i| done[i]);
    (yes, no)
}
