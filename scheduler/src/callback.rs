//! Hooks into a compute: progress bars, profiles and tests listen here.

use std::time::Duration;

use brisk_core::Key;

/// What a compute did, given to [`Callback::finish`] and returned by
/// [`Scheduler::run_with_stats`](crate::Scheduler::run_with_stats).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComputeStats {
    /// Tasks in the plan (after culling and fusion).
    pub tasks: usize,
    /// Tasks that ran (fewer than `tasks` when the compute failed).
    pub tasks_run: usize,
    /// Tasks absorbed by fusion.
    pub fused: usize,
    /// Worker threads used.
    pub threads: usize,
    /// The most bytes of task results held at once.
    pub peak_bytes: u64,
    /// The memory budget the compute ran under, in bytes.
    pub memory_budget: u64,
    /// How many times a root task waited for room in the budget before starting.
    pub roots_deferred: usize,
    /// Bytes of results written to the spill store (encoded).
    pub spilled_bytes: u64,
    /// Bytes read back from the spill store.
    pub spill_read_bytes: u64,
    /// Bytes of input files the tasks read (what `Callback::task_read` saw).
    pub input_bytes: u64,
    /// The spill file's largest size: below `spilled_bytes` when the space of
    /// results read back for the last time was reused.
    pub spill_file_bytes: u64,
    /// Bytes of results still held at the end besides the outputs, plus bytes
    /// reserved for running tasks and never returned; zero unless something
    /// leaked, which tests assert never happens.
    pub leaked_bytes: u64,
    /// Wall time of the compute, planning included.
    pub elapsed: Duration,
}

/// What a task did, as [`Callback::task_done`] tells it (a profiler's record).
#[derive(Clone, Debug)]
pub struct TaskDone<'a> {
    /// The task.
    pub key: &'a Key,
    /// Its op's name (`random`, `read-csv`, a delayed function's name).
    pub op: &'a str,
    /// The worker that ran it: a thread of the pool, or a worker process.
    pub worker: usize,
    /// When it was taken, and when its result was stored.
    pub start: std::time::Instant,
    /// When its result was stored.
    pub end: std::time::Instant,
    /// Bytes of the results it took as inputs.
    pub bytes_in: u64,
    /// Bytes of its result.
    pub bytes_out: u64,
}

/// Listens to a compute. Every method has an empty default; implement the ones you
/// need. Methods are called from worker threads, concurrently.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use brisk_core::Key;
/// use brisk_scheduler::Callback;
///
/// #[derive(Default)]
/// struct CountTasks(AtomicUsize);
/// impl Callback for CountTasks {
///     fn task_finished(&self, _key: &Key, _worker: usize) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait Callback: Send + Sync {
    /// Before any task runs, with the number of tasks in the plan.
    fn start(&self, _tasks: usize) {}
    /// Just after `start`: how many tasks of each op the plan has, by the op
    /// names [`TaskDone`] gives (a progress bar per op).
    fn planned(&self, _ops: &[(String, usize)]) {}
    /// When a task is taken by `worker`.
    fn task_started(&self, _key: &Key, _worker: usize) {}
    /// When a task that read input files (a CSV block, a Parquet row group) has
    /// run, with the bytes it read; before its `task_finished`.
    fn task_read(&self, _key: &Key, _worker: usize, _bytes: u64) {}
    /// When a task's result is stored.
    fn task_finished(&self, _key: &Key, _worker: usize) {}
    /// When a task's result is stored, with what it did (just before its
    /// `task_finished`).
    fn task_done(&self, _done: &TaskDone<'_>) {}
    /// The bytes of results held now against the memory budget (after each
    /// task, and after each spill).
    fn memory(&self, _held: u64, _budget: u64) {}
    /// The bytes of this compute's results one worker process holds now,
    /// against its memory limit (after each of its tasks; computes on worker
    /// processes only; results of other computes and persists not counted).
    fn worker_memory(&self, _worker: usize, _held: u64, _limit: u64) {}
    /// Results written to the spill store: their bytes in memory.
    fn spilled(&self, _bytes: u64) {}
    /// A spilled result read back: its bytes.
    fn read_back(&self, _bytes: u64) {}
    /// When the compute ends, with its error if it failed.
    fn finish(&self, _stats: &ComputeStats, _error: Option<&crate::Error>) {}
}

/// How many tasks of each op `plan` has, by op name, in name order: what
/// [`Callback::planned`] is told.
pub(crate) fn op_counts(plan: &brisk_graph::Plan) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..plan.len() {
        *counts.entry(plan.op(i).name()).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Tells `callbacks` a compute of `plan` starts: [`Callback::start`], then
/// [`Callback::planned`] (its ops counted only when someone listens).
pub(crate) fn tell_start(callbacks: &[std::sync::Arc<dyn Callback>], plan: &brisk_graph::Plan) {
    if callbacks.is_empty() {
        return;
    }
    let ops = op_counts(plan);
    for cb in callbacks {
        cb.start(plan.len());
        cb.planned(&ops);
    }
}
