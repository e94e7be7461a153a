//! `brisk-array`: Brisk's chunked n-dimensional arrays, the counterpart of `dask.array`.
//!
//! An [`Array`] is a lazy grid of ndarray chunks laid out by [`Chunks`]; each chunk is
//! one task of a `brisk-graph` graph, computed by `brisk-scheduler`. Its ops are plain
//! data ([`register_ops`] makes them decodable by name).
//!
//! Arrays are typed: `Array<T>` for `T` in `f64` (the default), `f32`, `i64`, `i32`
//! and `bool` ([`Element`]); [`Array::astype`] casts as numpy's `astype` does.
//!
//! - creation: [`random`], [`normal`] and [`integers`] from a counter-based
//!   generator keyed by (seed, global element index) — the same numbers for every
//!   chunking — and [`full`], [`zeros`], [`ones`], [`arange`], [`linspace`],
//!   [`from_ndarray`], [`from_npy`]/[`from_npy_as`] (each chunk reads only its bytes);
//! - element-wise: arithmetic with scalars and with arrays (NumPy broadcasting,
//!   chunks unified by rechunking; [`Numeric`] types), `abs`, `neg`, and for
//!   [`Float`] types division, `sqrt`, `exp`, `log`, `sin`, `cos`, `powf`;
//!   comparisons to `Array<bool>`, [`where_`], and user kernels with
//!   [`Array::map_blocks`];
//! - reductions ([`Agg`]): sum, mean, var, std (ddof), min, max over all axes or
//!   chosen axes, with pairwise summation inside each chunk and a fixed tree
//!   (`split_every`) across chunks, so results are bit-identical for every thread
//!   count; integer sums, minima and maxima stay exact in `i64`; argmin, argmax,
//!   count_nonzero, any and all over all axes or along axes;
//! - structure: [`Array::transpose`], basic slicing ([`Index`]), [`Array::reshape`],
//!   [`Array::rechunk`], [`concatenate`], [`stack`], [`Array::matmul`];
//! - results: `compute()` gives an `ndarray::ArrayD<T>` (a `T` for full
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

mod array;
mod chunks;
mod element;
mod error;
mod kernels;
mod npy;
mod ops;
mod reduce;
mod scalar_reduce;
mod structure;

pub use array::{
    Array, DEFAULT_SPLIT_EVERY, Reduced, arange, from_ndarray, full, integers, linspace, normal,
    ones, random, where_, zeros,
};
pub use brisk_core::{DType, Element};
pub use chunks::Chunks;
pub use element::BinOp;
pub use element::{Float, Numeric};
pub use error::{Error, Result};
pub use npy::{from_npy, from_npy_as};
pub use ops::{Cmp, UnaryOp};
pub use reduce::Agg;
pub use scalar_reduce::ReducedScalar;
pub use structure::{Index, concatenate, stack};

/// Registers every op of this crate, for workers that rebuild shipped graphs.
pub fn register_ops(registry: &mut brisk_core::OpRegistry) {
    registry
        .register::<ops::RandomChunk>()
        .register::<ops::IntegersChunk>()
        .register::<ops::FullChunk>()
        .register::<ops::ScalarArith>()
        .register::<ops::Unary>()
        .register::<ops::ArrayArith>()
        .register::<ops::Compare>()
        .register::<ops::CompareScalar>()
        .register::<ops::Where>()
        .register::<ops::AsType>()
        .register::<ops::NormalChunk>()
        .register::<ops::RangeChunk>()
        .register::<npy::ReadNpyChunk>()
        .register::<npy::WriteNpyChunk>()
        .register::<structure::SliceChunk>()
        .register::<structure::TransposeChunk>()
        .register::<structure::ReshapeChunk>()
        .register::<structure::Assemble>()
        .register::<structure::Alias>()
        .register::<structure::ExpandDims>()
        .register::<structure::MatmulBlock>()
        .register::<structure::SumChunks>()
        .register::<scalar_reduce::ChunkArg>()
        .register::<scalar_reduce::CombineArg>()
        .register::<scalar_reduce::FinishArg>()
        .register::<scalar_reduce::ChunkArgAxis>()
        .register::<scalar_reduce::CombineArgAxis>()
        .register::<scalar_reduce::FinishArgAxis>()
        .register::<reduce::ChunkPartial>()
        .register::<reduce::CombinePartial>()
        .register::<reduce::FinishPartial>();
}
