//! `brisk-frame`: Brisk's partitioned dataframes, the counterpart of `dask.dataframe`.
//!
//! A [`Frame`] is a lazy sequence of Arrow `RecordBatch` partitions (the `arrow`
//! crate) whose schema is known when it is built, so a misspelt column fails at once
//! with the closest names. Each partition is one task of a `brisk-graph` graph;
//! `compute()` runs it on `brisk-scheduler` and gives a [`Table`].
//!
//! - [`read_csv`]: paths, directories and globs, split into byte ranges that start
//!   exactly at record boundaries (quote parity per block), so every blocksize reads
//!   the same rows; schema inference from a sample, dtype overrides, `usecols`, null
//!   markers, a path column; a bad value is an error naming file, line, column and
//!   value.
//! - expressions ([`col`], [`lit`]) and frame ops: filter, select, with_column,
//!   rename, drop, head, len.
//! - [`GroupBy`]: partial aggregation per partition, a combine tree, one finish,
//!   results sorted by key, pandas' null rules.
//! - [`read_parquet`] and [`Frame::to_parquet`], `to_csv`, sorting, joins and
//!   `describe`.
//!
//! # Cargo features
//!
//! Both on by default; with one off, its code is compiled out and asking for it is
//! [`Error::MissingFeature`].
//!
//! - `parquet`: reading and writing Parquet (the `parquet` crate).
//! - `compression`: gzip and zstd CSV files (`.csv.gz`, `.csv.zst`).
//!
//! # Layout
//!
//! - `frame`: [`Frame`] and its per-partition ops; `table`: the computed [`Table`];
//!   `batches`: record-batch plumbing the ops share.
//! - `sources`: paths, directories, globs, URLs and lists to files, for every
//!   reader, and a file opened for reading by position.
//! - `store`: object stores (`s3://`, `gs://`, `az://`, `http(s)://`): ranged
//!   reads, listings and multipart uploads through the `object_store` crate.
//! - `csv/`: options and `read_csv`, schema inference, the splitter (with a design
//!   note, `csv/README.md`), the block-read op and its quote-free fast path.
//! - `parquet`, `write`: Parquet and CSV output and Parquet input.
//! - `expr/`: expressions, their evaluation, and the text parser of `query`.
//! - `groupby/`: the API, the hash-grouping kernel, the accumulators, the ops;
//!   `describe`, `sort`, `join`: the other reductions and shuffles.
//!
//! ```
//! use brisk_frame::Frame;
//! use brisk_scheduler::Compute;
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
//! let b = RecordBatch::try_from_iter([
//!     ("k", Arc::new(StringArray::from(vec!["x", "y", "x"])) as ArrayRef),
//!     ("v", Arc::new(Float64Array::from(vec![1.0, 2.0, 4.0])) as ArrayRef),
//! ])?;
//! let t = Frame::from_batches(vec![b])?.groupby(["k"])?.mean()?.compute()?;
//! assert_eq!(t.num_rows(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batches;
mod csv;
mod describe;
mod error;
mod expr;
mod frame;
mod groupby;
mod join;
#[cfg(feature = "parquet")]
mod parquet;
#[cfg(not(feature = "parquet"))]
mod parquet_off;
mod sort;
mod sources;
mod store;
mod table;
mod write;

/// The `arrow` crate this one is built on, for its array and batch types.
pub use arrow;
/// Partial results combined per tree node unless told otherwise (the same constant
/// as `brisk_graph`'s, for every collection).
pub use brisk_graph::DEFAULT_SPLIT_EVERY;
pub use csv::{CsvOptions, DEFAULT_BLOCKSIZE, DEFAULT_URL_BLOCKSIZE, bench_parse_block, read_csv};
pub use describe::{DESCRIBE_EXACT_VALUES, DESCRIBE_RELATIVE_ACCURACY, Describe};
pub use error::{Error, Result};
pub use expr::{
    BinOp, Expr, Func, Lit, StrOp, case_when, coalesce, col, lit, parse_expr, parse_expr_for,
};
pub use frame::{Frame, RowCount};
pub use groupby::{Agg, AggExpr, GroupBy, parse_aggs};
pub use join::How;
#[cfg(feature = "parquet")]
pub use parquet::{ParquetSink, read_parquet};
#[cfg(not(feature = "parquet"))]
pub use parquet_off::read_parquet;
pub use sources::Sources;
pub use store::{StorageOptions, abort_uploads, is_url, upload_file};
pub use table::Table;

/// Registers every op of this crate, so encoded graphs can be decoded by op name.
pub fn register_ops(registry: &mut brisk_core::OpRegistry) {
    #[cfg(feature = "parquet")]
    registry.register::<parquet::ReadRowGroup>().register::<parquet::WriteParquetPart>();
    registry
        .register::<csv::QuoteStates>()
        .register::<csv::Decode>()
        .register::<csv::BlockStates>()
        .register::<csv::ReadBlock>()
        .register::<frame::MapBatch>()
        .register::<frame::CountRows>()
        .register::<sort::SortBatches>()
        .register::<sort::SortSample>()
        .register::<sort::SortBounds>()
        .register::<sort::SortSplit>()
        .register::<batches::Item>()
        .register::<join::HashSplit>()
        .register::<join::JoinPart>()
        .register::<write::WriteCsvPart>()
        .register::<describe::DescribeChunk>()
        .register::<describe::DescribeCombine>()
        .register::<groupby::Partial>()
        .register::<groupby::Combine>()
        .register::<groupby::Finish>();
}
