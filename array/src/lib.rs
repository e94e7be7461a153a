//! `brisk-array`: Brisk's chunked n-dimensional arrays, the counterpart of `dask.array`.
//!
//! An [`Array`] is a lazy grid of ndarray chunks laid out by [`Chunks`]; its chunks
//! are the tasks of one `brisk-graph` [`Layer`](brisk_graph::Layer), computed by
//! `brisk-scheduler`. Its ops are plain data ([`register_ops`] makes them decodable
//! by name).
//!
//! Arrays are typed: `Array<T>` for `T` in `f64` (the default), `f32`, `i64`, `i32`
//! and `bool` ([`Element`]); [`Array::astype`] casts as numpy's `astype` does.
//!
//! - creation: [`random`], [`normal`] and [`integers`] from a counter-based
//!   generator keyed by (seed, global element index) — the same numbers for every
//!   chunking — and [`full`], [`zeros`], [`ones`], [`arange`], [`linspace`],
//!   [`from_ndarray`], [`from_npy`]/[`from_npy_as`] (each chunk reads only its bytes);
//! - element-wise: the operators `+ - * /` and unary `-` between arrays and scalars
//!   (`&x + 1.0`, `1.0 - &x`, `&x * &y`; NumPy broadcasting, chunks unified by
//!   rechunking; [`Numeric`] types, division for [`Float`] ones) with
//!   [`Array::binary`] as the fallible form; `abs`, and for floats `sqrt`, `exp`,
//!   `log`, `sin`, `cos`, `powf`; comparisons to `Array<bool>` (`x.gt(0.5)`,
//!   `x.le(&y)`), [`where_`], and user kernels with [`Array::map_blocks`];
//! - reductions: `sum`, `mean`, `var`, `std`, `min`, `max`, `argmin`, `argmax`,
//!   `count_nonzero`, `any`, `all`, each over [`Axes::all`] (computing to one typed
//!   value) or chosen axes (`x.sum([0])`, an array), with pairwise summation inside
//!   each chunk and a fixed tree ([`Axes::split_every`]) across chunks, so results
//!   are bit-identical for every thread count; integer sums, minima and maxima stay
//!   exact in `i64`;
//! - structure: [`Array::slice`] ([`Index`]), [`Array::transpose`],
//!   [`Array::reshape`], [`Array::rechunk`], [`concatenate`], [`stack`],
//!   [`Array::matmul`];
//! - results: `compute()` gives an `ndarray::ArrayD<T>` (a `T` for reductions over
//!   every axis); [`Array::to_npy`] writes chunk by chunk.
//!
//! Per-chunk steps fuse: `random → add → chunk sum` is one task per chunk, and no
//! intermediate chunk is stored.
//!
//! ```
//! use brisk_array::{Axes, random};
//! use brisk_scheduler::Compute;
//! let x = random(&[2_000, 2_000], &[500, 500], 7)?;
//! let m: f64 = x.mean(Axes::all()).compute()?;
//! assert!((m - 0.5).abs() < 1e-3);
//! let centered = &x - &x.mean([0])?;
//! assert!(centered.mean(Axes::all()).compute()?.abs() < 1e-12);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod array;
mod chunks;
mod concat;
mod creation;
mod element;
mod elementwise;
mod error;
mod kernels;
mod matmul;
mod npy;
mod reduction;
mod reshape;
mod slicing;

pub use array::Array;
pub use brisk_core::{DType, Element};
pub use brisk_graph::DEFAULT_SPLIT_EVERY;
pub use chunks::Chunks;
pub use concat::{concatenate, stack};
pub use creation::{arange, from_ndarray, full, integers, linspace, normal, ones, random, zeros};
pub use element::{BinOp, Float, Numeric};
pub use elementwise::ops::{Cmp, UnaryOp};
pub use elementwise::{Operand, where_};
pub use error::{Error, Result};
pub use npy::{from_npy, from_npy_as};
pub use reduction::agg::Agg;
pub use reduction::{AllAxes, Axes, ReduceAxes, Reduced};
pub use slicing::Index;

/// Registers every op of this crate, so encoded graphs can be decoded by op name.
pub fn register_ops(registry: &mut brisk_core::OpRegistry) {
    use elementwise::ops as elementwise;
    use reduction::{agg, arg};
    registry
        .register::<creation::RandomChunk>()
        .register::<creation::IntegersChunk>()
        .register::<creation::FullChunk>()
        .register::<creation::NormalChunk>()
        .register::<creation::RangeChunk>()
        .register::<elementwise::ScalarArith>()
        .register::<elementwise::Unary>()
        .register::<elementwise::ArrayArith>()
        .register::<elementwise::Compare>()
        .register::<elementwise::CompareScalar>()
        .register::<elementwise::Where>()
        .register::<elementwise::AsType>()
        .register::<npy::ReadNpyChunk>()
        .register::<npy::WriteNpyChunk>()
        .register::<slicing::SliceChunk>()
        .register::<reshape::TransposeChunk>()
        .register::<reshape::ReshapeChunk>()
        .register::<reshape::Assemble>()
        .register::<concat::Alias>()
        .register::<concat::ExpandDims>()
        .register::<matmul::MatmulBlock>()
        .register::<matmul::SumChunks>()
        .register::<arg::ChunkArg>()
        .register::<arg::CombineArg>()
        .register::<arg::FinishArg>()
        .register::<arg::ChunkArgAxis>()
        .register::<arg::CombineArgAxis>()
        .register::<arg::FinishArgAxis>()
        .register::<agg::ChunkPartial>()
        .register::<agg::CombinePartial>()
        .register::<agg::FinishPartial>();
}
