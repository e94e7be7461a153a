//! `brisk-array`: Brisk's chunked n-dimensional arrays, the counterpart of `dask.array`.
//!
//! An [`Array`] is a lazy grid of ndarray chunks laid out by [`Chunks`]; each chunk is
//! one task of a `brisk-graph` graph, computed by `brisk-scheduler`. Its ops are plain
//! data ([`register_ops`] makes them decodable by name).
//!
//! So far (f64 arrays only):
//! - creation: [`random`] and [`normal`] from a counter-based generator keyed by
//!   (seed, global element index) — the same numbers for every chunking — and
//!   [`full`], [`zeros`], [`ones`], [`arange`], [`linspace`], [`from_ndarray`],
//!   [`from_npy`] (each chunk reads only its own bytes);
//! - element-wise: arithmetic with scalars and with arrays (NumPy broadcasting,
//!   chunks unified by rechunking), `abs`, `sqrt`, `exp`, `log`, `sin`, `cos`,
//!   `powf`, and user kernels with [`Array::map_blocks`];
//! - reductions ([`Agg`]): sum, mean, var, std (ddof), min, max over all axes or
//!   chosen axes, with pairwise summation inside each chunk and a fixed tree
//!   (`split_every`) across chunks, so results are bit-identical for every thread
//!   count; and [`Array::argmin`], [`Array::argmax`], [`Array::count_nonzero`],
//!   [`Array::any`], [`Array::all`] over all axes;
//! - structure: [`Array::transpose`], basic slicing ([`Index`]), [`Array::rechunk`],
//!   [`concatenate`], [`stack`], [`Array::matmul`];
//! - results: `compute()` gives an `ndarray::ArrayD<f64>` (an `f64` for full
//!   reductions); [`Array::to_npy`] writes chunk by chunk.
//!
//! Per-chunk steps fuse: `random → add → chunk sum` is one task per chunk, and no
//! intermediate chunk is stored.
//!
//! ```
//! use brisk_scheduler::Compute;
//! let m = brisk_array::random(&[2_000, 2_000], &[500, 500], 7)?.mean().compute()?;
//! assert!((m - 0.5).abs() < 1e-3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Not yet: dtypes other than f64 (f32, i64, i32, bool), comparisons and `where`,
//! `astype`, `integers`, axis-wise argmin/argmax/any/all/count_nonzero, reshape.

mod array;
mod chunks;
mod error;
mod kernels;
mod npy;
mod ops;
mod reduce;
mod scalar_reduce;
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
pub use scalar_reduce::{FromScalar, ReducedScalar};
pub use structure::{Index, concatenate, stack};
