//! The error type of `brisk-scheduler`.

use brisk_core::Key;

/// Why a compute failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task failed or panicked; the error names its key. Tasks that had not
    /// started when it failed were not run.
    #[error(transparent)]
    Task(brisk_core::Error),
    /// The graph could not be planned (a cycle, a missing dependency, ...).
    #[error(transparent)]
    Graph(#[from] brisk_graph::Error),
    /// The worker threads could not be started.
    #[error("cannot start {threads} worker threads: {reason}")]
    ThreadPool {
        /// How many were asked for.
        threads: usize,
        /// What the OS said.
        reason: String,
    },
    /// A task would need more memory than the whole budget; refused before any
    /// task ran.
    #[error(
        "one task ({}) needs about {}, more than the whole memory budget of {}: use smaller chunks or a smaller blocksize, or raise the memory limit",
        .op.replace('+', " then "),
        brisk_core::text::bytes(*.bytes),
        brisk_core::text::bytes(*.budget)
    )]
    OverBudget {
        /// The task.
        key: Key,
        /// Its op's name.
        op: String,
        /// Its projected peak bytes.
        bytes: u64,
        /// The budget.
        budget: u64,
    },
    /// The plan holds a task whose op is a closure, which cannot be sent to
    /// another process; refused before anything ran.
    #[error(
        "task {key} is a closure (or holds a value of a type with no codec), which cannot run in a worker process: call a named function with delayed!(f(..)) and register it with register_fn!(registry, f) in the function given to brisk::worker_if_asked_with, make it a registered op (OpRegistry::register), or compute on threads"
    )]
    LocalOp {
        /// The task.
        key: Key,
    },
    /// The plan calls a function the workers did not register; refused before
    /// anything ran.
    #[error(
        "task {key} calls function '{name}', which the workers do not know: register it with register_fn!(registry, {name}) in the function given to brisk::worker_if_asked_with, or compute on threads"
    )]
    UnknownFunction {
        /// The task.
        key: Key,
        /// The function's name.
        name: String,
    },
    /// The backend running the plan (worker processes) failed.
    #[error(transparent)]
    Backend(crate::BackendError),
    /// Turning the computed values into the collection's output failed.
    #[error(transparent)]
    Output(brisk_core::Error),
}

impl Error {
    /// The key of the task that failed, if a task failed.
    pub fn task_key(&self) -> Option<&Key> {
        match self {
            Error::Task(e) | Error::Backend(crate::BackendError::Task(e)) => e.task_key(),
            Error::Backend(crate::BackendError::KilledWorker { key, .. }) => Some(key),
            _ => None,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
