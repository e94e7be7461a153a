//! The user-facing scheduler: a builder, `compute` and `run`.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use brisk_core::{Key, Value};
use brisk_graph::{Collection, Graph, PlanOptions};

use crate::budget::default_memory_budget;
use crate::exec::Execution;
use crate::{Backend, Callback, ComputeStats, Error, Result};

#[derive(Clone, Debug)]
enum Kind {
    Sync,
    Threads(usize),
    Backend(Arc<dyn Backend>),
}

/// Runs task graphs: on a pool of worker threads with work stealing (the default), or
/// on the caller's thread (`sync`). Results are the same bit for bit either way.
///
/// Clones share the thread pool: keep one scheduler for many computes; its threads
/// are started on the first compute and live as long as the scheduler's last clone.
///
/// ```
/// use brisk_graph::delayed;
/// use brisk_scheduler::Scheduler;
///
/// fn square(x: i64) -> i64 { x * x }
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// let total = delayed!(add(delayed!(square(2)), delayed!(square(3))));
/// assert_eq!(Scheduler::threads(2).compute(&total)?, 13);
/// assert_eq!(Scheduler::sync().compute(&total)?, 13);
/// # Ok::<(), brisk_scheduler::Error>(())
/// ```
#[derive(Clone)]
pub struct Scheduler {
    kind: Kind,
    pool: Arc<OnceLock<std::result::Result<rayon::ThreadPool, String>>>,
    callbacks: Vec<Arc<dyn Callback>>,
    plan_options: PlanOptions,
    memory_limit: Option<u64>,
    spill_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("kind", &self.kind)
            .field("callbacks", &self.callbacks.len())
            .field("plan_options", &self.plan_options)
            .field("memory_limit", &self.memory_limit)
            .finish()
    }
}

impl Default for Scheduler {
    /// Threads, one per core.
    fn default() -> Self {
        Scheduler::threads(std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    }
}

/// The scheduler used by [`Compute::compute`](crate::Compute::compute): threads, one
/// per core, shared by the whole process.
pub fn default_scheduler() -> &'static Scheduler {
    static DEFAULT: OnceLock<Scheduler> = OnceLock::new();
    DEFAULT.get_or_init(Scheduler::default)
}

impl Scheduler {
    /// A work-stealing scheduler on `threads` worker threads (at least one).
    pub fn threads(threads: usize) -> Self {
        Self::with_kind(Kind::Threads(threads.max(1)))
    }

    /// The single-thread scheduler: runs tasks one by one in priority order on the
    /// caller's thread.
    pub fn sync() -> Self {
        Self::with_kind(Kind::Sync)
    }

    /// A scheduler that hands its plans to `backend` (worker processes: see
    /// `brisk-distributed`). Plans holding a closure are refused
    /// ([`Error::LocalOp`]); the memory budget is the workers' own.
    pub fn backend(backend: Arc<dyn Backend>) -> Self {
        Self::with_kind(Kind::Backend(backend))
    }

    fn with_kind(kind: Kind) -> Self {
        Self {
            kind,
            pool: Arc::default(),
            callbacks: Vec::new(),
            plan_options: PlanOptions::default(),
            memory_limit: None,
            spill_dir: None,
        }
    }

    /// Where results over the memory budget are spilled (default: the system's
    /// temporary directory). Each compute makes its own directory inside and
    /// removes it when it ends, however it ends.
    pub fn spill_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// The memory budget of every compute, in bytes (default:
    /// [`default_memory_budget`]). Results held count against it, and tasks that
    /// read or generate data (the graph's roots) start only while it has room for
    /// one more of their outputs; a compute with nothing running always starts one,
    /// so a tiny budget slows a compute down but never stops it.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes.max(1));
        self
    }

    /// The budget computes run under: the one set, or [`default_memory_budget`].
    pub fn memory_budget(&self) -> u64 {
        self.memory_limit.unwrap_or_else(default_memory_budget)
    }

    /// Adds a callback to every compute of this scheduler.
    pub fn callback(mut self, callback: impl Callback + 'static) -> Self {
        self.callbacks.push(Arc::new(callback));
        self
    }

    /// Adds a shared callback (keep a clone to read what it gathered).
    pub fn callback_arc(mut self, callback: Arc<dyn Callback>) -> Self {
        self.callbacks.push(callback);
        self
    }

    /// Whether linear chains are fused into one task (default: yes).
    pub fn fuse(mut self, fuse: bool) -> Self {
        self.plan_options.fuse = fuse;
        self
    }

    /// The number of worker threads (1 for `sync`).
    pub fn num_threads(&self) -> usize {
        match self.kind {
            Kind::Sync => 1,
            Kind::Threads(n) => n,
            Kind::Backend(ref backend) => backend.threads(),
        }
    }

    /// Computes a collection (a delayed value, a tuple or a vector of them, ...).
    pub fn compute<C: Collection + ?Sized>(&self, collection: &C) -> Result<C::Output> {
        let (graph, keys) = collection.graph()?;
        let values = self.run(graph, &keys)?;
        collection.finish(values).map_err(Error::Output)
    }

    /// [`compute`](Self::compute) without blocking: its future, settled when the
    /// compute ends. It runs on a thread of its own, so no async runtime is
    /// needed; await the future on any runtime, or wait with
    /// [`result`](crate::client::Future::result) and a timeout.
    pub fn compute_async<C>(&self, collection: &C) -> crate::client::Future<C::Output>
    where
        C: Collection + Clone + Send + 'static,
        C::Output: Clone + Send + 'static,
    {
        let (scheduler, collection) = (self.clone(), collection.clone());
        crate::client::spawn("compute", move || scheduler.compute(&collection))
    }

    /// Like [`compute`](Self::compute), also returning what the compute did (peak
    /// bytes held, bytes spilled and read back, roots held back by the budget).
    pub fn compute_with_stats<C: Collection + ?Sized>(
        &self,
        collection: &C,
    ) -> Result<(C::Output, ComputeStats)> {
        let (graph, keys) = collection.graph()?;
        let (values, stats) = self.run_with_stats(graph, &keys)?;
        Ok((collection.finish(values).map_err(Error::Output)?, stats))
    }

    /// What computing `collection` on this scheduler would run, without running
    /// it: the plan's summary ([`Plan::explain`](brisk_graph::Plan::explain)), the
    /// threads and the memory budget.
    ///
    /// ```
    /// use brisk_graph::delayed;
    /// use brisk_scheduler::Scheduler;
    /// fn inc(x: i64) -> i64 { x + 1 }
    /// let x = delayed!(inc(delayed!(inc(1))));
    /// let text = Scheduler::threads(2).memory_limit(1 << 20).explain(&x)?;
    /// assert!(text.contains("threads: 2\nmemory budget: 1.0 MiB (set)"), "{text}");
    /// # Ok::<(), brisk_scheduler::Error>(())
    /// ```
    pub fn explain<C: Collection + ?Sized>(&self, collection: &C) -> Result<String> {
        let (graph, keys) = collection.graph()?;
        let plan = graph.plan(&keys, self.plan_options)?;
        let origin = match self.memory_limit {
            Some(_) => "set",
            None => "default: half the available memory",
        };
        if let Kind::Backend(backend) = &self.kind {
            return Ok(format!("{}runs on: {}", plan.explain(), backend.describe()));
        }
        Ok(format!(
            "{}threads: {}\nmemory budget: {:.1} MiB ({origin})",
            plan.explain(),
            self.num_threads(),
            self.memory_budget() as f64 / (1u64 << 20) as f64
        ))
    }

    /// Runs a graph and returns the values of `outputs`, in order.
    ///
    /// ```
    /// use brisk_core::{Key, Op, Scalar, Value};
    /// use brisk_graph::{Graph, Task};
    /// use brisk_scheduler::Scheduler;
    ///
    /// let add = Op::local("add", |v: Vec<Value>| match v[..] {
    ///     [Value::Scalar(Scalar::I64(a)), Value::Scalar(Scalar::I64(b))] => Ok(Value::from(a + b)),
    ///     _ => unreachable!(),
    /// });
    /// let g = Graph::from_tasks([
    ///     Task::root("x", Op::Const(Value::from(2_i64))),
    ///     Task::new("y", add, ["x", "x"]),
    /// ])?;
    /// let out = Scheduler::threads(2).run(g, &[Key::named("y")])?;
    /// assert_eq!(out[0].as_scalar(), Some(Scalar::I64(4)));
    /// # Ok::<(), brisk_scheduler::Error>(())
    /// ```
    pub fn run(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>> {
        self.run_with_stats(graph, outputs).map(|(values, _)| values)
    }

    /// Like [`run`](Self::run), also returning what the compute did.
    pub fn run_with_stats(
        &self,
        graph: Graph,
        outputs: &[Key],
    ) -> Result<(Vec<Value>, ComputeStats)> {
        let started = Instant::now();
        crate::allocator::settle();
        let plan = graph.plan(outputs, self.plan_options)?;
        if let Kind::Backend(backend) = &self.kind {
            return self.run_elsewhere(backend.as_ref(), &plan, started);
        }
        let budget = self.memory_budget();
        crate::budget::refuse_oversized(&plan, budget)?;
        let budget = crate::budget::Budget::new(&plan, budget);
        let callbacks = self.all_callbacks();
        let exec = Execution::new(&plan, &callbacks, &budget, self.spill_dir.clone());
        let pool = self.pool()?;
        // Told once nothing can fail before the compute's end is told too.
        crate::callback::tell_start(&callbacks, &plan);
        let (threads, (ran, outcome)) = match pool {
            // A compute started from inside one of this pool's tasks cannot get the
            // pool's threads (they are all busy running the outer compute): run it
            // on this thread instead of waiting forever.
            Some(pool) if pool.current_thread_index().is_none() => {
                let n = self.num_threads();
                (n, crate::threads::run(&exec, pool, n))
            }
            _ => (1, crate::sync::run(&exec)),
        };
        let mut stats = ComputeStats {
            tasks: plan.len(),
            tasks_run: ran,
            fused: plan.fused(),
            threads,
            peak_bytes: budget.peak(),
            memory_budget: budget.limit(),
            roots_deferred: budget.deferred(),
            spilled_bytes: 0,
            spill_read_bytes: 0,
            spill_file_bytes: 0,
            input_bytes: 0,
            leaked_bytes: 0,
            elapsed: started.elapsed(),
        };
        let result =
            outcome.map_err(Error::Task).and_then(|()| exec.outputs().map_err(Error::Task));
        stats.spilled_bytes = exec.spill.written.load(std::sync::atomic::Ordering::Relaxed);
        stats.spill_read_bytes = exec.spill.read.load(std::sync::atomic::Ordering::Relaxed);
        stats.spill_file_bytes = exec.spill.high_water.load(std::sync::atomic::Ordering::Relaxed);
        stats.input_bytes = exec.input_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let result = result.map(|(values, leaked)| {
            stats.leaked_bytes = leaked;
            values
        });
        for cb in &callbacks {
            cb.finish(&stats, result.as_ref().err());
        }
        result.map(|values| (values, stats))
    }

    /// The backend plans leave this process for, if they do.
    pub(crate) fn backend_of(&self) -> Option<&Arc<dyn Backend>> {
        match &self.kind {
            Kind::Backend(backend) => Some(backend),
            _ => None,
        }
    }

    /// Plans `outputs` of `graph` as this scheduler would.
    pub(crate) fn plan(&self, graph: Graph, outputs: &[Key]) -> Result<brisk_graph::Plan> {
        Ok(graph.plan(outputs, self.plan_options)?)
    }

    /// Refuses a plan `backend` cannot run: one holding a closure, or calling
    /// a function its workers do not know.
    pub(crate) fn refuse(backend: &dyn Backend, plan: &brisk_graph::Plan) -> Result<()> {
        if let Some(key) = plan.first_local_task() {
            return Err(Error::LocalOp { key: key.clone() });
        }
        for i in 0..plan.len() {
            if let Some(name) =
                plan.op(i).functions().into_iter().find(|f| !backend.knows_function(f))
            {
                let key = plan.key(i).clone();
                return Err(Error::UnknownFunction { key, name: name.to_string() });
            }
        }
        Ok(())
    }

    /// Runs `plan` (checked by [`refuse`](Self::refuse)) on this scheduler's
    /// backend as many requests at once ([`Backend::run_each`]).
    pub(crate) fn run_each(&self, plan: &brisk_graph::Plan, each: &crate::Each) -> Result<()> {
        let Kind::Backend(backend) = &self.kind else {
            return Err(Error::Backend(crate::BackendError::Cluster(
                "futures of many requests at once run on worker processes only".into(),
            )));
        };
        self.with_callbacks(backend.as_ref(), plan, Instant::now(), |callbacks| {
            backend.run_each(plan, callbacks, each).map(|()| Vec::new())
        })
        .map(drop)
    }

    /// Runs `plan` (checked by [`refuse`](Self::refuse)) on this scheduler's
    /// backend keeping its first `outputs` outputs there ([`Backend::persist`]).
    pub(crate) fn persist(
        &self,
        plan: &brisk_graph::Plan,
        held: &std::collections::HashMap<Key, crate::Held>,
        outputs: usize,
    ) -> Result<Vec<crate::Held>> {
        let Kind::Backend(backend) = &self.kind else {
            return Err(Error::Backend(crate::BackendError::Cluster(
                "results are kept on worker processes only".into(),
            )));
        };
        let mut made = Vec::new();
        self.with_callbacks(backend.as_ref(), plan, Instant::now(), |callbacks| {
            made = backend.persist(plan, callbacks, held, outputs)?;
            Ok(Vec::new())
        })?;
        Ok(made)
    }

    /// Runs `plan` on `backend`, after refusing what cannot leave the process.
    fn run_elsewhere(
        &self,
        backend: &dyn Backend,
        plan: &brisk_graph::Plan,
        started: Instant,
    ) -> Result<(Vec<Value>, ComputeStats)> {
        Self::refuse(backend, plan)?;
        self.with_callbacks(backend, plan, started, |callbacks| backend.run(plan, callbacks))
    }

    /// Runs `plan` on `backend` with `run`, telling the callbacks.
    fn with_callbacks(
        &self,
        backend: &dyn Backend,
        plan: &brisk_graph::Plan,
        started: Instant,
        run: impl FnOnce(&[Arc<dyn Callback>]) -> std::result::Result<Vec<Value>, crate::BackendError>,
    ) -> Result<(Vec<Value>, ComputeStats)> {
        let callbacks = self.all_callbacks();
        crate::callback::tell_start(&callbacks, plan);
        let result = run(&callbacks).map_err(Error::Backend);
        let stats = ComputeStats {
            tasks: plan.len(),
            tasks_run: if result.is_ok() { plan.len() } else { 0 },
            fused: plan.fused(),
            threads: backend.threads(),
            elapsed: started.elapsed(),
            // The workers keep their own memory accounts.
            ..ComputeStats::default()
        };
        for cb in &callbacks {
            cb.finish(&stats, result.as_ref().err());
        }
        result.map(|values| (values, stats))
    }

    /// This scheduler's callbacks and those [`with_callback`] adds for now.
    fn all_callbacks(&self) -> Vec<Arc<dyn Callback>> {
        self.callbacks.iter().cloned().chain(ambient_callbacks()).collect()
    }

    fn pool(&self) -> Result<Option<&rayon::ThreadPool>> {
        let Kind::Threads(threads) = self.kind else { return Ok(None) };
        let pool = self.pool.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("brisk-worker-{i}"))
                .build()
                .map_err(|e| e.to_string())
        });
        match pool {
            Ok(pool) => Ok(Some(pool)),
            Err(reason) => Err(Error::ThreadPool { threads, reason: reason.clone() }),
        }
    }
}

/// Callbacks every compute of this process hears while [`with_callback`]
/// runs its function.
static AMBIENT: std::sync::RwLock<Vec<Arc<dyn Callback>>> = std::sync::RwLock::new(Vec::new());

/// Runs `f` with `callback` added to every compute of this process, on any
/// scheduler, until `f` returns (Dask's `with ProgressBar():`): how
/// `brisk::diagnostics::performance_report` watches what it is given to run.
pub fn with_callback<R>(callback: Arc<dyn Callback>, f: impl FnOnce() -> R) -> R {
    struct Remove(Arc<dyn Callback>);
    impl Drop for Remove {
        fn drop(&mut self) {
            let mut ambient = AMBIENT.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(i) = ambient.iter().position(|c| Arc::ptr_eq(c, &self.0)) {
                ambient.remove(i);
            }
        }
    }
    AMBIENT.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(callback.clone());
    let _remove = Remove(callback);
    f()
}

/// The callbacks [`with_callback`] adds to every compute of this process now.
fn ambient_callbacks() -> Vec<Arc<dyn Callback>> {
    AMBIENT.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// Computing a collection on the default scheduler: `x.compute()`.
pub trait Compute: Collection {
    /// Computes on [`default_scheduler`].
    fn compute(&self) -> Result<Self::Output> {
        default_scheduler().compute(self)
    }
}

impl<C: Collection + ?Sized> Compute for C {}

/// Computes several collections at once on the default scheduler, sharing the work
/// they have in common (Dask's `dask.compute(a, b)`): pass a tuple or a vector.
///
/// ```
/// use brisk_graph::delayed;
/// fn square(x: i64) -> i64 { x * x }
/// let a = delayed!(square(2));
/// let b = a.map(|x| x + 1);
/// let (a, b) = brisk_scheduler::compute_all((&a, &b))?;
/// assert_eq!((a, b), (4, 5));
/// # Ok::<(), brisk_scheduler::Error>(())
/// ```
pub fn compute_all<C: Collection>(collections: C) -> Result<C::Output> {
    default_scheduler().compute(&collections)
}
