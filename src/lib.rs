//! Brisk: a Dask-like engine for chunked arrays, partitioned dataframes and delayed
//! function calls, in Rust.
//!
//! Lazy collections build a task graph; `.compute()` hands it to a scheduler that runs
//! its tasks in parallel on a work-stealing pool of threads.
//!
//! ```text
//!             brisk  (this crate: re-exports, the CLI, examples, benches)
//!            /     \
//!    frame           array         Arrow record-batch partitions | ndarray chunks
//!            \     /
//!          scheduler               threads (work stealing), sync, callbacks
//!              |
//!            graph                 the DAG (petgraph), planning, delayed
//!              |
//!            core                  Key, Value (+ byte codec), Op, errors, memory
//! ```
//!
//! Dependencies point down only; `array` and `frame` never see each other.
//!
//! ```
//! use brisk::prelude::*;
//!
//! fn square(x: i64) -> i64 { x * x }
//! fn add(a: i64, b: i64) -> i64 { a + b }
//!
//! let a = delayed!(square(2));
//! let b = delayed!(square(3));
//! let total = delayed!(add(a, b));
//! assert_eq!(total.compute()?, 13);
//! # Ok::<(), brisk::scheduler::Error>(())
//! ```

/// Chunked n-dimensional arrays (`brisk-array`).
pub use brisk_array as array;
/// Keys, values, ops, errors and memory accounting (`brisk-core`).
pub use brisk_core as core;
/// Partitioned dataframes (`brisk-frame`).
pub use brisk_frame as frame;
/// The task graph and its planning (`brisk-graph`).
pub use brisk_graph as graph;
/// Schedulers and callbacks (`brisk-scheduler`).
pub use brisk_scheduler as scheduler;

/// Lazy values from plain functions and closures: Dask's `delayed`.
pub use brisk_graph::delayed;
pub use brisk_graph::delayed::Delayed;
pub use brisk_scheduler::{Compute, Scheduler};

/// Computes one collection, or several at once (a tuple or a vector) sharing their
/// common work, on the default scheduler: Dask's `dask.compute`.
///
/// ```
/// use brisk::delayed;
/// fn inc(x: i64) -> i64 { x + 1 }
/// let x = delayed!(inc(1));
/// let (a, b) = brisk::compute((&x, &x.map(|v| v * 10)))?;
/// assert_eq!((a, b), (2, 20));
/// # Ok::<(), brisk::scheduler::Error>(())
/// ```
pub fn compute<C: graph::Collection>(collections: C) -> scheduler::Result<C::Output> {
    brisk_scheduler::compute_all(collections)
}

/// What most programs need: `use brisk::prelude::*;`.
pub mod prelude {
    pub use brisk_graph::delayed;
    pub use brisk_graph::delayed::Delayed;
    pub use brisk_scheduler::{Compute, Scheduler};
}
