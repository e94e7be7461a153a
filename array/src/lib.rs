//! `brisk-array`: Brisk's chunked n-dimensional arrays, the counterpart of `dask.array`.
//!
//! An [`Array`] is a lazy grid of ndarray chunks laid out by [`Chunks`]; each chunk is
//! one task of a `brisk-graph` graph, computed by `brisk-scheduler`. Its ops are plain
//! data ([`register_ops`] makes them decodable by name).
//!
//! So far: f64 arrays; creation by [`random`] (a counter-based generator keyed by
//! seed and global element index: the same numbers for every chunking), [`full`],
//! [`zeros`], [`ones`], [`from_ndarray`]; element-wise arithmetic with scalars; and
//! full reductions ([`Array::sum`], [`Array::mean`]) with pairwise summation inside
//! each chunk and a fixed tree across chunks, so results are bit-identical for every
//! thread count. Per-chunk steps fuse: `random → add → chunk sum` is one task per
//! chunk, and no intermediate chunk is stored.
//!
//! ```
//! use brisk_scheduler::Compute;
//! let m = brisk_array::random(&[2_000, 2_000], &[500, 500], 7)?.mean().compute()?;
//! assert!((m - 0.5).abs() < 1e-3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Not yet: other dtypes, axis reductions, broadcasting between arrays, slicing,
//! rechunking, matmul, `.npy` I/O.

mod array;
mod chunks;
mod error;
mod kernels;
mod npy;
mod ops;
mod reduce;
mod structure;

pub use array::{
    Array, DEFAULT_SPLIT_EVERY, Reduced, arange, from_ndarray, full, linspace, normal, ones,
    random, zeros,
};
pub use chunks::Chunks;
pub use error::{Error, Result};
pub use npy::from_npy;
pub use ops::{BinOp, UnaryOp, register_ops};
pub use reduce::Agg;
pub use structure::{Index, concatenate, stack};
