//! Where a plan runs when it leaves this process: the hook the worker-process
//! backend (`brisk-distributed`) plugs into [`Scheduler`](crate::Scheduler).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use brisk_core::{Key, Value};
use brisk_graph::Plan;

/// Hears of each output of [`Backend::run_each`] as it comes: its place among
/// the plan's outputs, and its value or the failure of its task (or of a task
/// it needs).
pub type Settle = Arc<dyn Fn(usize, Result<Value, BackendError>) + Send + Sync>;

/// A result kept on a worker after its compute ([`Backend::persist`]): Dask's
/// persisted future.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The compute that made it (and keeps it until
    /// [`unpersist`](Backend::unpersist)).
    pub compute: u64,
    /// The address of the worker holding it.
    pub worker: String,
}

/// How a plan of many independent requests runs ([`Backend::run_each`], the
/// futures of a [`Client`](crate::client::Client) on worker processes).
#[derive(Clone)]
pub struct Each {
    /// Called once per output, as soon as it is in (or failed).
    pub settle: Settle,
    /// Times the task of a key runs again when it fails (default: none).
    pub retries: HashMap<Key, u32>,
    /// The priority of the task of a key (default 0): on a worker, of the
    /// tasks waiting for a thread, higher priorities run first, whatever
    /// compute they belong to.
    pub priorities: HashMap<Key, i64>,
    /// Set when the outputs are no longer wanted: the compute stops and frees
    /// what it made; outputs not settled by then never are.
    pub cancel: Arc<AtomicBool>,
    /// Results kept by earlier persists, by key: used where the plan needs
    /// them instead of running their tasks (run again, from their lineage in
    /// the plan, if their worker is gone).
    pub held: HashMap<Key, Held>,
    /// How many of the plan's outputs are wanted: the rest are keys of
    /// `held`, planned as outputs only so that they stay tasks of their own.
    pub outputs: usize,
}

impl std::fmt::Debug for Each {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Each").field("retries", &self.retries.len()).finish()
    }
}

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

    /// Runs `plan` as many requests at once: each output is handed to
    /// `each.settle` as soon as it is in, and a task that fails (after its
    /// retries) fails only the outputs that need it; the plan goes on. Returns
    /// when every output is settled; an error only when the backend itself
    /// failed (then outputs not settled yet are not).
    ///
    /// The default runs [`run`](Self::run) and settles every output at its end.
    fn run_each(
        &self,
        plan: &Plan,
        callbacks: &[std::sync::Arc<dyn crate::Callback>],
        each: &Each,
    ) -> Result<(), BackendError> {
        let values = self.run(plan, callbacks)?;
        for (place, value) in values.into_iter().enumerate() {
            (each.settle)(place, Ok(value));
        }
        Ok(())
    }

    /// Runs `plan` and keeps its outputs on the workers (Dask's `persist`):
    /// where each is held, in the plan's output order. They stay until
    /// [`unpersist`](Self::unpersist).
    /// `held` and `outputs` as in [`Each`].
    fn persist(
        &self,
        plan: &Plan,
        callbacks: &[std::sync::Arc<dyn crate::Callback>],
        held: &HashMap<Key, Held>,
        outputs: usize,
    ) -> Result<Vec<Held>, BackendError> {
        let _ = (plan, callbacks, held, outputs);
        Err(BackendError::Cluster(format!("{} keeps no results between computes", self.describe())))
    }

    /// Frees what the persist of `compute` keeps on the workers.
    fn unpersist(&self, compute: u64) {
        let _ = compute;
    }

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
