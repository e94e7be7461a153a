//! Where a plan runs when it leaves this process: the hook the worker-process
//! backend (`brisk-distributed`) plugs into [`Scheduler`](crate::Scheduler).

use brisk_core::{Key, Value};
use brisk_graph::Plan;

/// Runs plans somewhere other than this process's threads (worker processes, a
/// cluster). [`Scheduler::backend`](crate::Scheduler::backend) makes a scheduler
/// of one; the scheduler plans, refuses ops that cannot leave the process, and
/// hands the plan over.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Runs `plan`: the values of its outputs, in the plan's output order.
    /// `callbacks` hear of each task as it starts and finishes (`worker` is the
    /// worker's number in the cluster).
    fn run(
        &self,
        plan: &Plan,
        callbacks: &[std::sync::Arc<dyn crate::Callback>],
    ) -> Result<Vec<Value>, BackendError>;

    /// Threads across all the workers (what `explain` and the stats report).
    fn threads(&self) -> usize;

    /// One line for `explain`: what the plan runs on.
    fn describe(&self) -> String;

    /// Whether the workers run the function registered as `name`: a plan calling
    /// one they do not is refused before anything runs.
    fn knows_function(&self, name: &str) -> bool {
        let _ = name;
        false
    }
}

/// Why a backend could not finish a plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// A task failed or panicked on a worker; the error names its key.
    #[error(transparent)]
    Task(brisk_core::Error),
    /// A task's worker died each time it ran it (Dask's `KilledWorker`).
    #[error(
        "task {key} was running on {deaths} workers that died ({workers}): it may crash its process or exhaust its memory; it was not tried again"
    )]
    KilledWorker {
        /// The task.
        key: Key,
        /// How many workers died while running it.
        deaths: u32,
        /// The workers' addresses.
        workers: String,
    },
    /// The cluster itself failed: no worker left, the scheduler unreachable, a
    /// version mismatch.
    #[error("{0}")]
    Cluster(String),
}
