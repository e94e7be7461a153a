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
///
/// ```
/// use brisk::prelude::*;
///
/// let m: f64 = random(&[1_000, 1_000], &[250, 250], 42)?.mean(Axes::all()).compute()?;
/// assert!((m - 0.5).abs() < 0.01);
///
/// let dir = std::env::temp_dir().join(format!("brisk-prelude-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("t.csv"), "k,v\na,1\nb,2\na,3\n")?;
/// let frame: Frame = read_csv(&dir.join("t.csv"), CsvOptions::default())?;
/// let t = frame.filter(col("v").gt(lit(1)))?.groupby(["k"])?.sum()?.compute()?;
/// assert_eq!(t.num_rows(), 2);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod prelude {
    pub use brisk_array::{Array, Axes, random};
    pub use brisk_frame::{CsvOptions, Frame, col, lit, read_csv, read_parquet};
    pub use brisk_graph::delayed;
    pub use brisk_graph::delayed::Delayed;
    pub use brisk_scheduler::{Compute, Scheduler};
}
