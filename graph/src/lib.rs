//! `brisk-graph`: Brisk's task graph and the delayed API.
//!
//! - [`Graph`]: a directed acyclic graph of [`Task`]s on petgraph, keyed by
//!   [`Key`](brisk_core::Key). Merging graphs shares equal keys; [`Graph::plan`]
//!   culls, checks for cycles (an [`Error::Cycle`] names the keys), fuses linear
//!   chains ([`Graph::fuse`]) and orders tasks into a [`Plan`] a scheduler runs.
//!   [`Graph::to_dot`] draws it.
//! - [`Collection`]: the protocol a lazy value implements to be computed; tuples and
//!   vectors of collections compute together, sharing common work.
//! - [`delayed`](mod@delayed): Dask's `delayed` — lazy values from plain functions and closures,
//!   with the [`delayed!`] macro.
//! - [`Layer`], [`combine_tree`] and [`token`]: the plumbing collections build
//!   their graphs with — a layer of tasks per operation, the fixed tree every
//!   reduction combines its partials in, and deterministic layer names.
//!
//! This crate runs nothing: `brisk-scheduler` executes plans.

mod collection;
pub mod delayed;
mod dot;
mod error;
mod fuse;
mod graph;
mod layer;
mod plan;
mod tree;

pub use collection::Collection;
pub use dot::MAX_DRAWN_TASKS;
pub use error::{Error, Result};
pub use graph::{Graph, GraphBuilder, Task};
pub use layer::Layer;
pub use plan::{Plan, PlanOptions};
pub use tree::{DEFAULT_SPLIT_EVERY, combine_tree, token};
