//! `brisk-scheduler`: runs Brisk's task graphs.
//!
//! - [`Scheduler::threads`] (the default): a pool of worker threads, each with its own
//!   priority queue of ready tasks, stealing from the others when it runs dry. A task
//!   becomes ready when its last input is computed; a result is released the moment
//!   its last dependent starts. An error or panic in a task stops the compute, tasks
//!   not yet started never run, and the error names the task's key.
//! - [`Scheduler::sync`]: one thread, tasks in priority order, for debugging.
//! - [`Scheduler::backend`]: plans handed to a [`Backend`] that runs them elsewhere
//!   (worker processes, from `brisk-distributed`).
//! - A memory budget per compute ([`Scheduler::memory_limit`], default
//!   [`default_memory_budget`]): held results are counted, sources (reads,
//!   generators) start only while there is room, and a task that alone cannot fit
//!   is refused before anything runs.
//! - Spilling: when held results go over the budget, those needed last are written
//!   to one temporary file per compute with the value codec and read back when
//!   needed. The file has no name (the open handle keeps it), so nothing outlives
//!   the process however it ends, SIGKILL included; the space of a result read
//!   back for the last time is reused by later spills.
//! - [`Callback`]s see the compute start, each task start and finish, and the end.
//! - [`client`]: futures on threads (`concurrent.futures`, Dask's `Client`):
//!   submit, map, gather, as_completed, wait, cancel, await; and
//!   [`coordination`]: named locks, semaphores, queues, events and variables
//!   for tasks.
//!
//! The budget's rules are in `budget/README.md`, the thread pool's state machine in
//! `threads/README.md`.
//!
//! Only this crate starts threads. Plans come from `brisk-graph`; values and ops from
//! `brisk-core`.

mod allocator;
mod backend;
mod budget;
mod callback;
pub mod client;
pub mod coordination;
mod error;
mod exec;
mod primitives;
mod ranked;
mod scheduler;
mod spill;
mod sync;
mod threads;

pub use allocator::{settle_allocator, settle_worker_allocator};
pub use backend::{Backend, BackendError, Each, Held, Settle};
pub use budget::default_memory_budget;
pub use callback::{Callback, ComputeStats, TaskDone};
pub use error::{Error, Result};
pub use ranked::Ranked;
pub use scheduler::{Compute, Scheduler, compute_all, default_scheduler, with_callback};
pub use spill::{SpillStore, Spilled};
