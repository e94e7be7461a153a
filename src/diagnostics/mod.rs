//! What a compute did, for people to look at, in the spirit of
//! `dask.diagnostics`: [`ProgressBar`] draws it as it runs; [`Profiler`] records each task (its op, key, worker,
//! start, end, bytes in and out), the memory held against the budget and the
//! spills; [`ResourceProfiler`] samples this process's memory (RSS) and CPU;
//! [`performance_report`] runs a function with both listening to every
//! compute and writes one self-contained HTML file of what they saw;
//! [`Dashboard`] serves the same views live to a browser while computes run.
//!
//! ```no_run
//! use brisk::prelude::*;
//! let x = random(&[2_000, 2_000], &[500, 500], 1)?;
//! let mean: f64 =
//!     brisk::diagnostics::performance_report("report.html", || x.mean(Axes::all()).compute())??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dashboard;
mod progress;
mod report;
mod resources;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use brisk_core::Key;
use brisk_scheduler::{Callback, ComputeStats, TaskDone};

pub use dashboard::{Dashboard, WorkerMemory};
pub use progress::ProgressBar;
pub use report::{Report, environment};
pub use resources::{ResourceProfiler, ResourceSample};

/// One task as the [`Profiler`] saw it. Times are from the profiler's start.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// The task's key.
    pub key: Key,
    /// Its op's name.
    pub op: String,
    /// The worker (thread of the pool, or worker process) that ran it.
    pub worker: usize,
    /// When it was taken, and when its result was stored.
    pub start: Duration,
    /// When its result was stored.
    pub end: Duration,
    /// Bytes of the results it took.
    pub bytes_in: u64,
    /// Bytes of its result.
    pub bytes_out: u64,
}

impl TaskRecord {
    /// The record of `done`, its times from `origin`.
    pub(crate) fn of(done: &TaskDone<'_>, origin: Instant) -> TaskRecord {
        TaskRecord {
            key: done.key.clone(),
            op: done.op.to_string(),
            worker: done.worker,
            start: done.start.saturating_duration_since(origin),
            end: done.end.saturating_duration_since(origin),
            bytes_in: done.bytes_in,
            bytes_out: done.bytes_out,
        }
    }
}

/// A memory sample: results held against the budget, at a time from the
/// profiler's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemorySample {
    /// When.
    pub at: Duration,
    /// Bytes of results held.
    pub held: u64,
    /// The memory budget.
    pub budget: u64,
}

/// What a [`Profiler`] gathered.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Every task, in the order they finished.
    pub tasks: Vec<TaskRecord>,
    /// Memory held over time (after each task and each spill).
    pub memory: Vec<MemorySample>,
    /// Spills: when, and the bytes written.
    pub spills: Vec<(Duration, u64)>,
    /// Spilled results read back: when, and their bytes.
    pub read_backs: Vec<(Duration, u64)>,
    /// Each compute's statistics, as the scheduler gave them at its end.
    pub computes: Vec<ComputeStats>,
}

/// Records every task of the computes it listens to (Dask's `Profiler`), with
/// the memory held and the spills. Add it to a scheduler
/// ([`Scheduler::callback_arc`](brisk_scheduler::Scheduler::callback_arc)) or
/// to every compute for a while ([`brisk_scheduler::with_callback`]).
pub struct Profiler {
    started: Instant,
    profile: Mutex<Profile>,
}

impl Default for Profiler {
    fn default() -> Self {
        Profiler { started: Instant::now(), profile: Mutex::default() }
    }
}

impl Profiler {
    /// A profiler; times count from now.
    pub fn new() -> Profiler {
        Profiler::default()
    }

    /// What it gathered so far.
    pub fn profile(&self) -> Profile {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Profile> {
        self.profile.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn since(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }
}

impl Callback for Profiler {
    fn task_done(&self, done: &TaskDone<'_>) {
        let record = TaskRecord::of(done, self.started);
        self.lock().tasks.push(record);
    }

    fn memory(&self, held: u64, budget: u64) {
        let at = self.since(Instant::now());
        self.lock().memory.push(MemorySample { at, held, budget });
    }

    fn spilled(&self, bytes: u64) {
        let at = self.since(Instant::now());
        self.lock().spills.push((at, bytes));
    }

    fn read_back(&self, bytes: u64) {
        let at = self.since(Instant::now());
        self.lock().read_backs.push((at, bytes));
    }

    fn finish(&self, stats: &ComputeStats, _error: Option<&brisk_scheduler::Error>) {
        self.lock().computes.push(stats.clone());
    }
}

/// Runs `f` with a [`Profiler`] and a [`ResourceProfiler`] listening to every
/// compute of this process, and writes what they saw to `path` as one HTML
/// file that opens without a network (Dask's `performance_report`): its
/// result, or why the report could not be written.
pub fn performance_report<R>(
    path: impl AsRef<std::path::Path>,
    f: impl FnOnce() -> R,
) -> std::io::Result<R> {
    let profiler = Arc::new(Profiler::new());
    let resources = Arc::new(ResourceProfiler::new(Duration::from_millis(20)));
    let started = Instant::now();
    let out = brisk_scheduler::with_callback(profiler.clone(), || {
        brisk_scheduler::with_callback(resources.clone(), f)
    });
    let report = Report {
        title: "Brisk performance report".into(),
        profile: profiler.profile(),
        resources: resources.samples(),
        elapsed: started.elapsed(),
        plan: None,
        environment: report::environment(),
    };
    report.write(path.as_ref())?;
    Ok(out)
}
