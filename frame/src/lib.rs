//! `brisk-frame`: Brisk's partitioned dataframes, the counterpart of `dask.dataframe`.
//!
//! A frame will be a lazy sequence of Arrow `RecordBatch` partitions with a schema
//! known at build time, computed by `brisk-scheduler`. This crate is a placeholder
//! until the dataframes issue lands; it holds no types yet.
