//! Brisk: a Dask-like engine for chunked arrays, partitioned dataframes and delayed
//! function calls, in Rust.
//!
//! Lazy collections build a task graph; `.compute()` hands it to a scheduler that runs
//! its tasks in parallel on a work-stealing pool of threads.
//!
//! ```text
//!             brisk  (this crate: re-exports, the CLI, examples, benches)
//!           /    |     \
//!    frame    array    distributed  record batches | ndarray chunks | worker processes
//!           \    |     /
//!          scheduler               threads (work stealing), sync, callbacks, backends
//!              |
//!            graph                 the DAG (petgraph), planning, delayed
//!              |
//!            core                  Key, Value (+ byte codec), Op, errors, memory
//! ```
//!
//! Dependencies point down only; `array`, `frame` and `distributed` never see each
//! other.
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
/// Worker processes and clusters (`brisk-distributed`).
pub use brisk_distributed as distributed;
/// Partitioned dataframes (`brisk-frame`).
pub use brisk_frame as frame;
/// The task graph and its planning (`brisk-graph`).
pub use brisk_graph as graph;
/// Schedulers and callbacks (`brisk-scheduler`).
pub use brisk_scheduler as scheduler;
/// Futures on threads, as `concurrent.futures` and Dask's `Client` offer them:
/// submit, map, gather, as_completed, wait, cancel, await.
pub use brisk_scheduler::client;

pub mod diagnostics;

/// Lazy values from plain functions and closures: Dask's `delayed`.
pub use brisk_graph::delayed;
pub use brisk_graph::delayed::Delayed;
/// Registers a function so its `delayed!` calls run in worker processes.
pub use brisk_graph::register_fn;
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

    pub use crate::Processes;
}

/// The program's own ops, added to Brisk's by [`worker_if_asked_with`].
static PROGRAM_OPS: std::sync::OnceLock<fn(&mut core::OpRegistry)> = std::sync::OnceLock::new();

/// Every op a worker process of this program can run: Brisk's arrays' and
/// frames', and the program's own (given to [`worker_if_asked_with`]).
pub fn ops() -> core::OpRegistry {
    let mut registry = core::OpRegistry::new();
    brisk_array::register_ops(&mut registry);
    brisk_frame::register_ops(&mut registry);
    if let Some(program_ops) = PROGRAM_OPS.get() {
        program_ops(&mut registry);
    }
    registry
}

/// Call first thing in `main` of a program that uses worker processes
/// ([`Processes::processes`]): in a worker process this program started, it runs
/// the worker and never returns; otherwise it returns at once. Python's
/// `multiprocessing` spawn pattern: the workers are this program, re-executed.
///
/// ```no_run
/// use brisk::prelude::*;
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     brisk::worker_if_asked();
///     let cluster = Scheduler::processes(2)?;
///     let m: f64 = cluster.compute(&random(&[1000, 1000], &[250, 250], 7)?.mean(Axes::all()))?;
///     println!("{m}");
///     Ok(())
/// }
/// ```
pub fn worker_if_asked() {
    brisk_distributed::worker_if_asked(ops);
}

/// [`worker_if_asked`] for a program with functions or ops of its own:
/// `register` adds them (`brisk::register_fn!(registry, my_fn)` for the functions
/// `delayed!(my_fn(..))` calls, `registry.register::<MyOp>()` for ops), here and in
/// every worker.
///
/// ```no_run
/// use brisk::prelude::*;
///
/// fn square(x: i64) -> i64 { x * x }
/// fn total(xs: Vec<i64>) -> i64 { xs.iter().sum() }
///
/// fn my_functions(registry: &mut brisk::core::OpRegistry) {
///     brisk::register_fn!(registry, square);
///     brisk::register_fn!(registry, total);
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     brisk::worker_if_asked_with(my_functions);
///     let squares: Vec<_> = (0..10).map(|i| delayed!(square(i))).collect();
///     let sum = Scheduler::processes(2)?.compute(&delayed!(total(squares)))?;
///     assert_eq!(sum, 285);
///     Ok(())
/// }
/// ```
pub fn worker_if_asked_with(register: fn(&mut core::OpRegistry)) {
    let _ = PROGRAM_OPS.set(register);
    worker_if_asked();
}

/// Schedulers on worker processes: `Scheduler::processes(n)`.
pub trait Processes: Sized {
    /// A local cluster of `n` worker processes sharing this machine's cores
    /// (Dask's `LocalCluster`); they end when the scheduler's last clone is
    /// dropped. The program must call [`worker_if_asked`] first thing in `main`.
    fn processes(n: usize) -> scheduler::Result<Self>;

    /// Like [`processes`](Self::processes), started as `spawn` says (threads
    /// per worker, listen addresses, heartbeats).
    fn processes_with(spawn: &distributed::Spawn) -> scheduler::Result<Self>;

    /// The cluster of the scheduler process at `addr` (`brisk scheduler`, with
    /// workers from `brisk worker` or a program calling [`worker_if_asked`]):
    /// checked for Brisk's version and this program's ops. The cluster's token
    /// or certificates come from the environment (`BRISK_TOKEN`,
    /// `BRISK_TLS_CA`/`_CERT`/`_KEY`) when set.
    fn connect(addr: std::net::SocketAddr) -> scheduler::Result<Self>;

    /// [`connect`](Self::connect) proving itself with `security`.
    fn connect_with(
        addr: std::net::SocketAddr,
        security: distributed::Security,
    ) -> scheduler::Result<Self>;
}

impl Processes for Scheduler {
    fn processes(n: usize) -> scheduler::Result<Self> {
        Self::processes_with(&distributed::Spawn::new(n))
    }

    fn processes_with(spawn: &distributed::Spawn) -> scheduler::Result<Self> {
        let cluster =
            distributed::LocalCluster::start(spawn, &ops()).map_err(scheduler::Error::Backend)?;
        Ok(Scheduler::backend(std::sync::Arc::new(cluster)))
    }

    fn connect(addr: std::net::SocketAddr) -> scheduler::Result<Self> {
        let security = distributed::Security::from_env()
            .map_err(|e| scheduler::Error::Backend(scheduler::BackendError::Cluster(e)))?;
        Self::connect_with(addr, security)
    }

    fn connect_with(
        addr: std::net::SocketAddr,
        security: distributed::Security,
    ) -> scheduler::Result<Self> {
        let timing = distributed::Timing::default();
        let remote = distributed::Remote::connect_with(addr, &ops(), timing, security)
            .map_err(scheduler::Error::Backend)?;
        Ok(Scheduler::backend(std::sync::Arc::new(remote)))
    }
}
