//! `brisk-distributed`: Brisk's graphs on worker processes (in progress).
//!
//! Built so far: the [`Worker`], a Flight server that runs the tasks it is sent
//! (ops found by name in an `OpRegistry`), fetches their inputs from the peers
//! that hold them, and serves its results by key to peers and to any Flight
//! client. The scheduler process, heartbeats and lineage recomputation come next.

mod worker;

pub use worker::{Input, RunTask, Worker, fetch, run};
