//! `read_csv`: files split into byte ranges that start exactly at record
//! boundaries, a schema inferred from a sample when the frame is built, and one
//! task per block that parses its bytes into an Arrow `RecordBatch`.
//!
//! Exact splitting: a terminator ends a record only outside quotes, and whether a
//! byte is inside quotes depends on every byte before it. One small task per
//! block finds how its bytes carry each quoting state at its start to one at its
//! end, one task per file composes those in order into the state before each
//! block, and the read task of block k takes that list, so it knows the state
//! where its range begins and finds the first true record start at or after it.
//! Every blocksize yields the rows Arrow's reader reads from the whole file
//! (README.md beside this file tells the whole of it).
//!
//! - this file: the options and `read_csv`, which lays out the tasks;
//! - `schema`: headers and schema inference from a sample;
//! - `scan`: which bytes end a record (the quoting state machine);
//! - `split`: the state before each block, the block's window;
//! - `block`: the block-read op; `fast`: its fast path (plain and quoted fields, dates);
//! - `bytes`: a file's bytes by offset, plain or decompressed;
//! - `decode`: a gzip or zstd file decoded once into a temporary copy read in blocks.

mod block;
mod bytes;
mod decode;
mod fast;
mod scan;
mod schema;
mod split;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use brisk_core::{Key, Op};
use brisk_graph::{Layer, Task, token};

use block::BlockSpec;
pub(crate) use block::ReadBlock;
use bytes::Compression;
pub(crate) use decode::Decode;
use schema::{FileInfo, file_schema, inspect};
pub(crate) use split::{BlockStates, QuoteStates};

use crate::batches::ByName;
use crate::error::{file_error, unknown_column};
use crate::frame::{Frame, Reproject};
use crate::sources::{FileStamp, Input, Sources, modified};
use crate::store::StorageOptions;
use crate::{Error, Result};

/// Blocks of this many bytes unless told otherwise. Small blocks keep every buffer
/// below the allocator's mmap threshold, so memory is reused instead of faulted in
/// afresh (on the 1e7-row benchmark 4 MiB blocks ran twice as fast as 32 MiB ones),
/// and they bound the memory each running task holds.
pub const DEFAULT_BLOCKSIZE: u64 = 4 << 20;

/// Blocks of this many bytes for objects in stores (URLs) unless told otherwise:
/// each block is a ranged request (two: its quoting scan, then its read), and a
/// request costs a round trip; 16 MiB halved the time of 4 MiB ones from a local
/// S3 server and keeps a block's memory small.
pub const DEFAULT_URL_BLOCKSIZE: u64 = 16 << 20;

/// How to read CSV files. Built with chained setters:
///
/// ```
/// use brisk_frame::CsvOptions;
/// use arrow::datatypes::DataType;
/// let opts = CsvOptions::default()
///     .blocksize(16 << 20)
///     .dtype("id4", DataType::Utf8)
///     .usecols(["id1", "id4", "v1"])
///     .null_values(["NA"]);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// `None`: [`DEFAULT_BLOCKSIZE`], or [`DEFAULT_URL_BLOCKSIZE`] for URLs.
    blocksize: Option<u64>,
    delimiter: u8,
    quote: u8,
    header: bool,
    names: Option<Vec<String>>,
    dtypes: Vec<(String, DataType)>,
    usecols: Option<Vec<String>>,
    null_values: Vec<String>,
    path_column: Option<String>,
    bad_values_to_null: bool,
    sample_bytes: usize,
    /// The object stores' settings, from the sources read.
    storage: StorageOptions,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            blocksize: None,
            delimiter: b',',
            quote: b'"',
            header: true,
            names: None,
            dtypes: Vec::new(),
            usecols: None,
            null_values: Vec::new(),
            path_column: None,
            bad_values_to_null: false,
            sample_bytes: 1 << 20,
            storage: StorageOptions::default(),
        }
    }
}

impl CsvOptions {
    /// Bytes per partition (at least 1); a block boundary always moves to the next
    /// record start. Default [`DEFAULT_BLOCKSIZE`] (4 MiB), and
    /// [`DEFAULT_URL_BLOCKSIZE`] (16 MiB) when a source is an object-store URL.
    pub fn blocksize(mut self, bytes: u64) -> Self {
        self.blocksize = Some(bytes.max(1));
        self
    }

    /// The field delimiter (default `,`).
    pub fn delimiter(mut self, c: u8) -> Self {
        self.delimiter = c;
        self
    }

    /// The quote character (default `"`; a quote inside a quoted field is doubled).
    pub fn quote(mut self, c: u8) -> Self {
        self.quote = c;
        self
    }

    /// Whether the first record of every file is a header (default true).
    pub fn header(mut self, yes: bool) -> Self {
        self.header = yes;
        self
    }

    /// Column names; with a header, they replace its names.
    pub fn names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Reads `column` as `dtype` instead of the inferred type.
    pub fn dtype(mut self, column: impl Into<String>, dtype: DataType) -> Self {
        self.dtypes.push((column.into(), dtype));
        self
    }

    /// Reads only these columns (in the file's order).
    pub fn usecols<S: Into<String>>(mut self, cols: impl IntoIterator<Item = S>) -> Self {
        self.usecols = Some(cols.into_iter().map(Into::into).collect());
        self
    }

    /// Field values read as null, besides the empty field.
    pub fn null_values<S: Into<String>>(mut self, values: impl IntoIterator<Item = S>) -> Self {
        self.null_values = values.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a column of this name holding each row's file path.
    pub fn include_path_column(mut self, name: impl Into<String>) -> Self {
        self.path_column = Some(name.into());
        self
    }

    /// Turns values that do not parse as their column's type into nulls instead of
    /// failing (pandas' `errors="coerce"`).
    pub fn bad_values_to_null(mut self, yes: bool) -> Self {
        self.bad_values_to_null = yes;
        self
    }

    /// Bytes of the first file read to infer the schema (default 1 MiB).
    pub fn sample_bytes(mut self, bytes: usize) -> Self {
        self.sample_bytes = bytes.max(1);
        self
    }
}

/// Parses whole records of `schema`'s columns with the fast path
/// (`fast_path`, `None` where it gives up) or with Arrow's decoder: for the
/// benchmark that keeps the fast path in place only while it pays.
#[doc(hidden)]
pub fn bench_parse_block(
    text: &str,
    schema: &SchemaRef,
    fast_path: bool,
) -> Option<arrow::array::RecordBatch> {
    let projection: Vec<usize> = (0..schema.fields().len()).collect();
    if fast_path {
        return fast::parse(text, schema, &projection, schema.clone(), b',', b'"');
    }
    let mut decoder =
        arrow::csv::ReaderBuilder::new(schema.clone()).with_batch_size(1 << 16).build_decoder();
    let (mut rest, mut batches) = (text.as_bytes(), Vec::new());
    loop {
        let n = decoder.decode(rest).ok()?;
        rest = &rest[n..];
        if n == 0 || decoder.capacity() == 0 {
            match decoder.flush().ok()? {
                Some(b) => batches.push(b),
                None => break,
            }
        }
    }
    arrow::compute::concat_batches(schema, &batches).ok()
}

fn null_regex(opts: &CsvOptions) -> Result<Option<regex::Regex>> {
    if opts.null_values.is_empty() {
        return Ok(None);
    }
    let alternatives: Vec<String> = std::iter::once(String::new())
        .chain(opts.null_values.iter().map(|v| regex::escape(v)))
        .collect();
    regex::Regex::new(&format!("^(?:{})$", alternatives.join("|")))
        .map(Some)
        .map_err(|e| Error::Invalid(format!("bad null values: {e}")))
}

/// Reads CSV files lazily: one partition per block of `blocksize` bytes of each
/// file. The schema is inferred from a sample of the first file now, so a wrong
/// column name fails before any block is read.
///
/// ```no_run
/// use brisk_frame::{CsvOptions, read_csv};
/// let df = read_csv("data/*.csv", CsvOptions::default())?;
/// println!("{:?}", df.columns());
/// # Ok::<(), brisk_frame::Error>(())
/// ```
pub fn read_csv(sources: impl Into<Sources>, opts: CsvOptions) -> Result<Frame> {
    let sources: Sources = sources.into();
    // A compressed file's decoded size is counted once, not again per reprojection.
    let decoded = DecodedSizes::default();
    let frame = read(&sources, &opts, &decoded)?;
    // Frames built right on this read may ask for fewer columns.
    let reproject = move |columns: Vec<String>| {
        let keep = match &opts.usecols {
            Some(given) => given.iter().filter(|c| columns.contains(c)).cloned().collect(),
            None => columns,
        };
        let keep: Vec<String> =
            keep.into_iter().filter(|c| Some(c) != opts.path_column.as_ref()).collect();
        read(&sources, &opts.clone().usecols(keep), &decoded)
    };
    Ok(frame.with_source(Reproject(Arc::new(reproject), false)))
}

/// The decoded sizes of the compressed files a `read_csv` counted, by file as it
/// was then.
#[derive(Clone, Default)]
struct DecodedSizes(Arc<std::sync::Mutex<HashMap<(PathBuf, FileStamp), u64>>>);

impl DecodedSizes {
    fn of(
        &self,
        info: &FileInfo,
        compression: Compression,
        storage: &StorageOptions,
    ) -> Result<u64> {
        let key = (info.path.clone(), info.stamp.clone());
        let known = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied();
        if let Some(n) = known {
            return Ok(n);
        }
        let path = info.path.to_string_lossy();
        let input = Input::open(&path, storage, &info.stamp)
            .map_err(|e| file_error(&info.path, e.to_string().replace(&format!("{path}: "), "")))?;
        let n = compression
            .decoded_len(input)
            .map_err(|e| file_error(&info.path, format!("cannot decompress: {e}")))?;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key, n);
        Ok(n)
    }
}

fn read(sources: &Sources, opts: &CsvOptions, decoded: &DecodedSizes) -> Result<Frame> {
    let mut opts = opts.clone();
    opts.storage = sources.storage().clone();
    let files = sources.files(&[".csv", ".csv.gz", ".csv.zst"])?;
    let remote = files.iter().any(|f| f.to_str().is_some_and(crate::store::is_url));
    let blocksize = opts.blocksize.unwrap_or(match remote {
        true => DEFAULT_URL_BLOCKSIZE,
        false => DEFAULT_BLOCKSIZE,
    });
    // Listed even without the feature: a file left out silently would be worse.
    #[cfg(not(feature = "compression"))]
    if let Some(path) = files.iter().find(|p| Compression::of(p) != Compression::None) {
        return Err(Error::MissingFeature {
            what: format!("reading {}", path.display()),
            feature: "compression",
        });
    }
    let infos = files.iter().map(|p| inspect(p, &opts)).collect::<Result<Vec<_>>>()?;
    let (names, schema) = file_schema(&files, &infos, &opts)?;
    let existing: Vec<&str> = names.iter().map(String::as_str).collect();
    let projection: Vec<usize> = match &opts.usecols {
        Some(cols) => {
            let by_name = ByName::of(&schema);
            let mut idx = cols
                .iter()
                .map(|c| by_name.get(c).ok_or_else(|| unknown_column(c, &existing)))
                .collect::<Result<Vec<_>>>()?;
            idx.sort_unstable();
            idx.dedup();
            idx
        }
        None => (0..names.len()).collect(),
    };
    let mut out_fields: Vec<Field> = projection.iter().map(|&i| schema.field(i).clone()).collect();
    if let Some(name) = &opts.path_column {
        out_fields.push(Field::new(name, DataType::Utf8, false));
    }
    let out_schema: SchemaRef = Arc::new(Schema::new(out_fields));
    let spec = BlockSpec {
        columns: schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect(),
        projection,
        delimiter: opts.delimiter,
        quote: opts.quote,
        null_values: opts.null_values.clone(),
        path_column: opts.path_column.clone(),
        bad_values_to_null: opts.bad_values_to_null,
        storage: opts.storage.clone(),
    };
    let name = token(
        "read-csv",
        &(&files, blocksize, format!("{spec:?}"), modified(&files, &opts.storage)),
    );
    let count_base = Key::named(format!("{name}-quotes"));
    let prefix_base = Key::named(format!("{name}-states"));
    let decode_base = Key::named(format!("{name}-decode"));
    let base = Key::named(name.as_str());
    let read_block =
        |info: &FileInfo, range: std::ops::Range<u64>, block, file_len, compression| ReadBlock {
            path: info.path.to_string_lossy().into_owned(),
            start: range.start,
            end: range.end,
            block,
            file_len,
            stamp: info.stamp.clone(),
            compression,
            spec: spec.clone(),
        };
    let mut tasks = Vec::new();
    let mut counts = Vec::new();
    for (fi, info) in infos.iter().enumerate() {
        let data_len = info.len.saturating_sub(info.data_start);
        if data_len == 0 {
            continue;
        }
        let path = info.path.to_string_lossy().into_owned();
        let compression = Compression::of(&info.path);
        if compression != Compression::None {
            // A compressed file cannot be entered in the middle: decoded once, its
            // copy read in blocks (decode.rs). Its decoded size plans the blocks:
            // counted here unless the inspection read all of it.
            let len = match info.len {
                u64::MAX => decoded.of(info, compression, &opts.storage)?,
                len => len,
            }
            .max(info.data_start);
            let blocks = (len - info.data_start).div_ceil(blocksize).max(1);
            let decode = decode_base.with_index([fi as u32]);
            let op = Decode {
                path: path.clone(),
                stamp: info.stamp.clone(),
                compression,
                data_start: info.data_start,
                blocks: blocks as usize,
                quote: opts.quote,
                delimiter: opts.delimiter,
                storage: opts.storage.clone(),
            };
            counts.push(Task::root(decode.clone(), Op::data(op)));
            for b in 0..blocks {
                let start = info.data_start + b * blocksize;
                let end = (start + blocksize).min(len);
                let op = read_block(info, start..end, b as usize, len, compression);
                let key = base.with_index([fi as u32, b as u32]);
                tasks.push(Task::new(key, Op::data(op), [decode.clone()]));
            }
            continue;
        }
        let blocks = data_len.div_ceil(blocksize);
        // The quoting state before each block: a state map per block, then their
        // composition in order.
        let prefix = prefix_base.with_index([fi as u32]);
        let mut block_counts = Vec::new();
        for b in 0..blocks {
            let start = info.data_start + b * blocksize;
            let end = (start + blocksize).min(info.len);
            let op = read_block(info, start..end, b as usize, info.len, compression);
            let deps = if b == 0 { vec![] } else { vec![prefix.clone()] };
            tasks.push(Task::new(base.with_index([fi as u32, b as u32]), Op::data(op), deps));
            if b + 1 < blocks {
                let key = count_base.with_index([fi as u32, b as u32]);
                let op = QuoteStates {
                    path: path.clone(),
                    start,
                    end,
                    data_start: b == 0,
                    quote: opts.quote,
                    delimiter: opts.delimiter,
                    stamp: info.stamp.clone(),
                    storage: opts.storage.clone(),
                };
                counts.push(Task::root(key.clone(), Op::data(op)));
                block_counts.push(key);
            }
        }
        if blocks > 1 {
            counts.push(Task::new(prefix, Op::data(BlockStates), block_counts));
        }
    }
    if tasks.is_empty() {
        // No file has a record: one partition with no rows (the frame keeps its
        // columns, and every operation on it has a partition to work on).
        let info = &infos[0];
        let op = read_block(info, info.len..info.len, 0, info.len, Compression::None);
        tasks.push(Task::root(base.with_index([0, 0]), Op::data(op)));
    }
    let counts = Layer::new(format!("{}-quotes", count_base.name()), counts, vec![]);
    let layer = Layer::new(name, tasks, vec![counts]);
    Ok(Frame::from_layer(out_schema, layer))
}
