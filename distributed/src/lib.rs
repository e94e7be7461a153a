//! `brisk-distributed`: Brisk's graphs on worker processes.
//!
//! - [`Worker`]: a Flight server that runs the tasks it is sent (ops found by
//!   name in an `OpRegistry`) on its own thread pool, fetches their inputs from
//!   the peers that hold them, and serves its results by key to peers and to any
//!   Flight client.
//! - [`Cluster`]: the scheduler's side, a `brisk_scheduler::Backend`: it places
//!   tasks where their inputs are, queues them until workers have room, frees
//!   results once used, and recomputes from lineage what dies with a worker.
//! - [`SchedulerServer`]: a scheduler process of its own that workers register
//!   with ([`serve_worker`]) and clients send plans to ([`Remote`]).
//! - [`LocalCluster`]: n worker processes started from this program (it
//!   re-executes itself; [`worker_if_asked`] at the top of `main` turns the copy
//!   into a worker), ended when the cluster is dropped.

mod client;
mod cluster;
mod coordinator;
mod driver;
mod flight;
mod local;
mod scheduler;
mod security;
mod worker;

pub use client::Connections;
pub use cluster::{Cluster, WorkerStatus};
pub use driver::Timing;
pub use local::{LocalCluster, Spawn, worker_if_asked};
pub use scheduler::{Remote, SchedulerHello, SchedulerServer, scheduler_status, serve_worker};
pub use security::{Security, TLS_VARS, TOKEN_VAR};
pub use worker::{
    Hello, INLINE_BYTES, Input, Ran, ResultId, RunTask, Worker, WorkerOptions, registry_fingerprint,
};
