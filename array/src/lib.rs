//! `brisk-array`: Brisk's chunked n-dimensional arrays, the counterpart of `dask.array`.
//!
//! An array will be a lazy grid of ndarray chunks whose every operation adds tasks to
//! a `brisk-graph` graph, computed by `brisk-scheduler`. This crate is a placeholder
//! until the arrays issue lands; it holds no types yet.
