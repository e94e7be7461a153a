//! `read_csv`: files split into byte ranges that start exactly at record
//! boundaries, a schema inferred from a sample when the frame is built, and one
//! task per block that parses its bytes into an Arrow `RecordBatch`.
//!
//! Exact splitting: a newline ends a record only outside quotes, i.e. where the
//! count of quote characters since the file's start is even. One small task per
//! block counts its quotes; the read task of block k takes the counts of blocks
//! 0..k as inputs, so it knows the quote parity where its range begins and finds
//! the first true record start at or after it. Every blocksize yields the same rows.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::CastOptions;
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use brisk_core::{Error as CoreError, Key, Op, OpKind, Scalar, Value};
use brisk_graph::{Layer, Task, token};
use serde::{Deserialize, Serialize};

use crate::error::unknown_column;
use crate::frame::{Frame, Reproject};
use crate::{Error, Result};

/// Blocks of this many bytes unless told otherwise. Small blocks keep every buffer
/// below the allocator's mmap threshold, so memory is reused instead of faulted in
/// afresh (on the 1e7-row benchmark 4 MiB blocks ran twice as fast as 32 MiB ones),
/// and they bound the memory each running task holds.
pub const DEFAULT_BLOCKSIZE: u64 = 4 << 20;

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
    blocksize: u64,
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
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            blocksize: DEFAULT_BLOCKSIZE,
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
        }
    }
}

impl CsvOptions {
    /// Bytes per partition (at least 1); a block boundary always moves to the next
    /// record start.
    pub fn blocksize(mut self, bytes: u64) -> Self {
        self.blocksize = bytes.max(1);
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

/// Where to read from: a path, a directory, a glob, or several of them.
#[derive(Clone, Debug)]
pub struct Sources(pub(crate) Vec<String>);

impl Sources {
    /// The files these name: globs expanded, directories listed (their files ending
    /// in one of `endings`), sorted; an error names a missing path, a pattern
    /// matching nothing or a directory without such files.
    pub fn files(&self, endings: &[&str]) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for spec in &self.0 {
            files.extend(expand(spec, endings)?);
        }
        Ok(files)
    }
}

impl From<&str> for Sources {
    fn from(s: &str) -> Self {
        Sources(vec![s.to_string()])
    }
}

impl From<String> for Sources {
    fn from(s: String) -> Self {
        Sources(vec![s])
    }
}

impl From<&Path> for Sources {
    fn from(p: &Path) -> Self {
        Sources(vec![p.to_string_lossy().into_owned()])
    }
}

impl From<&PathBuf> for Sources {
    fn from(p: &PathBuf) -> Self {
        Sources::from(p.as_path())
    }
}

impl<S: AsRef<str>> From<&[S]> for Sources {
    fn from(s: &[S]) -> Self {
        Sources(s.iter().map(|x| x.as_ref().to_string()).collect())
    }
}

impl<S: AsRef<str>> From<Vec<S>> for Sources {
    fn from(s: Vec<S>) -> Self {
        Sources::from(s.as_slice())
    }
}

pub(crate) fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::File { path: path.display().to_string(), reason: reason.to_string() }
}

/// The files a source names, in sorted order for globs and directories (whose files
/// must end with one of `endings`).
pub(crate) fn expand(spec: &str, endings: &[&str]) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    if spec.contains(['*', '?', '[']) {
        let paths =
            glob::glob(spec).map_err(|e| file_error(path, format!("bad glob pattern: {e}")))?;
        let mut files: Vec<PathBuf> =
            paths.filter_map(std::result::Result::ok).filter(|p| p.is_file()).collect();
        files.sort();
        if files.is_empty() {
            return Err(file_error(path, "the pattern matches no file"));
        }
        return Ok(files);
    }
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| file_error(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                p.is_file() && endings.iter().any(|e| name.ends_with(e))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(file_error(
                path,
                format!("the directory holds no {} file", endings.join(", ")),
            ));
        }
        return Ok(files);
    }
    if !path.exists() {
        return Err(file_error(path, "no such file"));
    }
    Ok(vec![path.to_path_buf()])
}

/// The offset just past the first record terminator in `buf`, given whether the
/// quote count before `buf` is odd; `None` if `buf` holds none.
fn next_boundary(buf: &[u8], quote: u8, mut odd: bool) -> Option<usize> {
    for i in memchr::memchr2_iter(quote, b'\n', buf) {
        if buf[i] == quote {
            odd = !odd;
        } else if !odd {
            return Some(i + 1);
        }
    }
    None
}

fn quote_count(buf: &[u8], quote: u8) -> usize {
    memchr::memchr_iter(quote, buf).count()
}

/// Reads `len` bytes at `offset` (fewer at the end of the file).
fn read_at(mut f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Seek;
    // Seek and read to the end of the range: the buffer is filled without being
    // zeroed first (a task's file handle is its own, so the position is too).
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

thread_local! {
    /// A worker's block buffer, kept from one block to the next: a fresh buffer per
    /// block is faulted in (and zeroed by the kernel) page by page each time.
    static BLOCK_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest buffer a worker keeps between blocks.
const KEPT_BUFFER: usize = 64 << 20;

/// Bytes of a file from offset `base` on, read further on demand.
struct Window<'a> {
    file: &'a File,
    base: u64,
    bytes: Vec<u8>,
    eof: bool,
}

impl Drop for Window<'_> {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        if bytes.capacity() <= KEPT_BUFFER {
            bytes.clear();
            BLOCK_BUFFER.set(bytes);
        }
    }
}

impl<'a> Window<'a> {
    fn new(file: &'a File, base: u64) -> Self {
        Window { file, base, bytes: BLOCK_BUFFER.take(), eof: false }
    }

    /// Reads up to `n` more bytes (fewer at the end of the file).
    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        use std::io::Seek;
        let mut f = self.file;
        f.seek(std::io::SeekFrom::Start(self.base + self.bytes.len() as u64))?;
        self.bytes.reserve_exact(n);
        let got = f.take(n as u64).read_to_end(&mut self.bytes)?;
        self.eof = got < n;
        Ok(())
    }

    /// The offset just past the first record terminator at or after `from`, given
    /// the quote parity before `from`; `None` if the file ends first.
    fn boundary(
        &mut self,
        from: usize,
        quote: u8,
        mut odd: bool,
    ) -> std::io::Result<Option<usize>> {
        let mut at = from;
        loop {
            if let Some(i) = next_boundary(&self.bytes[at..], quote, odd) {
                return Ok(Some(at + i));
            }
            odd ^= quote_count(&self.bytes[at..], quote) % 2 == 1;
            at = self.bytes.len();
            if self.eof {
                return Ok(None);
            }
            self.fill(64 << 10)?;
        }
    }
}

/// How a file is compressed, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn of(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("gz") => Compression::Gzip,
            Some("zst" | "zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// Up to `limit` decompressed bytes of the file (all of them without a limit).
    fn decode(self, path: &Path, limit: Option<usize>) -> std::io::Result<Vec<u8>> {
        let f = File::open(path)?;
        let mut reader: Box<dyn Read> = match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(f)?),
            Compression::None => Box::new(f),
        };
        let mut out = Vec::new();
        match limit {
            Some(n) => reader.take(n as u64).read_to_end(&mut out)?,
            None => reader.read_to_end(&mut out)?,
        };
        Ok(out)
    }
}

/// Bytes of a file by offset: read from disk, or from a decompressed copy.
enum Source {
    File(File),
    Decoded(Vec<u8>),
}

impl Source {
    /// The file and its length; a compressed file decoded up to `limit` bytes (its
    /// length is then unknown, `u64::MAX`, unless the whole of it fit).
    fn open(path: &Path, limit: usize) -> std::io::Result<(Source, u64)> {
        match Compression::of(path) {
            Compression::None => {
                let f = File::open(path)?;
                let len = f.metadata()?.len();
                Ok((Source::File(f), len))
            }
            c => {
                let bytes = c.decode(path, Some(limit + 1))?;
                let len = if bytes.len() > limit { u64::MAX } else { bytes.len() as u64 };
                Ok((Source::Decoded(bytes), len))
            }
        }
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        match self {
            Source::File(f) => read_at(f, offset, len),
            Source::Decoded(b) => {
                let start = (offset as usize).min(b.len());
                Ok(b[start..(start + len).min(b.len())].to_vec())
            }
        }
    }
}

/// What the frame needs to know about one file before reading it.
struct FileInfo {
    path: PathBuf,
    len: u64,
    /// Where the first data record starts (after a BOM and the header).
    data_start: u64,
    header: Option<Vec<String>>,
}

fn parse_header(record: &[u8], delimiter: u8, quote: u8) -> Result<Vec<String>, ArrowError> {
    let format = Format::default().with_header(true).with_delimiter(delimiter).with_quote(quote);
    let (schema, _) = format.infer_schema(record, Some(0))?;
    Ok(schema.fields().iter().map(|f| f.name().clone()).collect())
}

fn inspect(path: &Path, opts: &CsvOptions) -> Result<FileInfo> {
    let (f, len) = Source::open(path, opts.sample_bytes + (1 << 20))
        .map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let mut start = 0u64;
    let head = f.read_at(0, 3).map_err(|e| file_error(path, e))?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        start = 3;
    }
    if !opts.header || start >= len {
        return Ok(FileInfo { path: path.to_path_buf(), len, data_start: start, header: None });
    }
    // The header ends at the first newline outside quotes.
    let mut at = start;
    let mut odd = false;
    let end = loop {
        let buf = f.read_at(at, 64 << 10).map_err(|e| file_error(path, e))?;
        if buf.is_empty() {
            break at;
        }
        if let Some(i) = next_boundary(&buf, opts.quote, odd) {
            break at + i as u64;
        }
        odd ^= quote_count(&buf, opts.quote) % 2 == 1;
        at += buf.len() as u64;
    };
    let record = f.read_at(start, (end - start) as usize).map_err(|e| file_error(path, e))?;
    let names = parse_header(&record, opts.delimiter, opts.quote)
        .map_err(|e| file_error(path, format!("cannot read the header: {e}")))?;
    Ok(FileInfo { path: path.to_path_buf(), len, data_start: end, header: Some(names) })
}

/// The schema of the file's first records (a sample cut at a record boundary).
fn infer(info: &FileInfo, names: &[String], opts: &CsvOptions) -> Result<Schema> {
    let (f, _) = Source::open(&info.path, opts.sample_bytes + (1 << 20))
        .map_err(|e| file_error(&info.path, e))?;
    let sample =
        f.read_at(info.data_start, opts.sample_bytes).map_err(|e| file_error(&info.path, e))?;
    let complete = info.data_start + sample.len() as u64 >= info.len;
    // Cut after the last record terminator outside quotes.
    let mut cut = sample.len();
    if !complete {
        cut = 0;
        while let Some(i) = next_boundary(&sample[cut..], opts.quote, false) {
            cut += i;
        }
    }
    let format = Format::default()
        .with_header(false)
        .with_delimiter(opts.delimiter)
        .with_quote(opts.quote)
        // A ragged row is reported when its block is read, with its line.
        .with_truncated_rows(true);
    let format = match null_regex(opts)? {
        Some(r) => format.with_null_regex(r),
        None => format,
    };
    let (inferred, _) = format.infer_schema(&sample[..cut], None).map_err(|e| {
        let text = e.to_string();
        match text.split(" at line ").nth(1).filter(|_| text.contains("UTF-8")) {
            // Lines of the sample count from the first data record.
            Some(line) => file_error(
                &info.path,
                format!(
                    "line {}: invalid UTF-8: convert the file to UTF-8",
                    line.trim()
                        .parse::<usize>()
                        .map_or(0, |l| l + usize::from(info.header.is_some()))
                ),
            ),
            None => file_error(&info.path, format!("cannot infer the schema: {text}")),
        }
    })?;
    let fields = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let dtype = inferred.fields().get(i).map_or(DataType::Utf8, |f| match f.data_type() {
                DataType::Null => DataType::Utf8,
                t => t.clone(),
            });
            Field::new(name, dtype, true)
        })
        .collect::<Vec<_>>();
    Ok(Schema::new(fields))
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
    let frame = read(&sources, &opts)?;
    // Frames built right on this read may ask for fewer columns.
    let reproject = move |columns: Vec<String>| {
        let keep = match &opts.usecols {
            Some(given) => given.iter().filter(|c| columns.contains(c)).cloned().collect(),
            None => columns,
        };
        let keep: Vec<String> =
            keep.into_iter().filter(|c| Some(c) != opts.path_column.as_ref()).collect();
        read(&sources, &opts.clone().usecols(keep))
    };
    Ok(frame.with_source(Reproject(Arc::new(reproject))))
}

fn read(sources: &Sources, opts: &CsvOptions) -> Result<Frame> {
    let opts = opts.clone();
    let mut files = Vec::new();
    for spec in &sources.0 {
        files.extend(expand(spec, &[".csv", ".csv.gz", ".csv.zst"])?);
    }
    let infos = files.iter().map(|p| inspect(p, &opts)).collect::<Result<Vec<_>>>()?;
    // The schema comes from the first file with data (or a header).
    let first = infos
        .iter()
        .find(|i| i.header.is_some() || i.data_start < i.len)
        .ok_or_else(|| file_error(&files[0], "the file is empty: there are no columns to read"))?;
    let names: Vec<String> = match (&opts.names, &first.header) {
        (Some(n), _) => n.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => {
            let (f, _) =
                Source::open(&first.path, 1 << 20).map_err(|e| file_error(&first.path, e))?;
            let sample =
                f.read_at(first.data_start, 64 << 10).map_err(|e| file_error(&first.path, e))?;
            let end = next_boundary(&sample, opts.quote, false).unwrap_or(sample.len());
            let n = parse_header(&sample[..end], opts.delimiter, opts.quote)
                .map_err(|e| file_error(&first.path, e))?
                .len();
            (1..=n).map(|i| format!("column_{i}")).collect()
        }
    };
    for info in &infos {
        if let (Some(h), None) = (&info.header, &opts.names)
            && h != &names
        {
            {
                return Err(file_error(
                    &info.path,
                    format!(
                        "its header {h:?} differs from the first file's {names:?}: read the files separately or pass names"
                    ),
                ));
            }
        }
    }
    let mut schema = infer(first, &names, &opts)?;
    let existing: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (col, dtype) in &opts.dtypes {
        let i =
            names.iter().position(|n| n == col).ok_or_else(|| unknown_column(col, &existing))?;
        fields[i] = Field::new(col, dtype.clone(), true);
    }
    schema = Schema::new(fields);
    let projection: Vec<usize> = match &opts.usecols {
        Some(cols) => {
            let mut idx = cols
                .iter()
                .map(|c| {
                    names.iter().position(|n| n == c).ok_or_else(|| unknown_column(c, &existing))
                })
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
    };
    let name = token("read-csv", &(&files, opts.blocksize, format!("{spec:?}"), modified(&files)));
    let count_base = Key::named(format!("{name}-quotes"));
    let prefix_base = Key::named(format!("{name}-parity"));
    let base = Key::named(name.as_str());
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
            // A compressed file cannot be entered in the middle: one partition.
            let op = ReadBlock {
                path,
                start: info.data_start,
                end: u64::MAX,
                block: 0,
                file_len: u64::MAX,
                compression,
                spec: spec.clone(),
            };
            tasks.push(Task::root(base.with_index([fi as u32, 0]), Op::data(op)));
            continue;
        }
        let blocks = data_len.div_ceil(opts.blocksize);
        // The quote parity before each block: counts per block, then one prefix.
        let prefix = prefix_base.with_index([fi as u32]);
        let mut block_counts = Vec::new();
        for b in 0..blocks {
            let start = info.data_start + b * opts.blocksize;
            let end = (start + opts.blocksize).min(info.len);
            let op = ReadBlock {
                path: path.clone(),
                start,
                end,
                block: b as usize,
                file_len: info.len,
                compression,
                spec: spec.clone(),
            };
            let deps = if b == 0 { vec![] } else { vec![prefix.clone()] };
            tasks.push(Task::new(base.with_index([fi as u32, b as u32]), Op::data(op), deps));
            if b + 1 < blocks {
                let key = count_base.with_index([fi as u32, b as u32]);
                let op = QuoteCount { path: path.clone(), start, end, quote: opts.quote };
                counts.push(Task::root(key.clone(), Op::data(op)));
                block_counts.push(key);
            }
        }
        if blocks > 1 {
            counts.push(Task::new(prefix, Op::data(QuoteParity), block_counts));
        }
    }
    let counts = Layer::new(format!("{}-quotes", count_base.name()), counts, vec![]);
    let layer = Layer::new(name, tasks, vec![counts]);
    Ok(Frame::from_layer(out_schema, layer))
}

pub(crate) fn modified(files: &[PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    files.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

/// How to parse a block: the file's columns, which to keep, the dialect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BlockSpec {
    /// Every column of the file: name and Arrow type (as `DataType` prints).
    columns: Vec<(String, String)>,
    projection: Vec<usize>,
    delimiter: u8,
    quote: u8,
    null_values: Vec<String>,
    path_column: Option<String>,
    bad_values_to_null: bool,
}

/// The number of quote characters in a byte range.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QuoteCount {
    path: String,
    start: u64,
    end: u64,
    quote: u8,
}

impl OpKind for QuoteCount {
    const NAME: &'static str = "frame.csv-quotes";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        use std::io::Seek;
        let fail = |e: std::io::Error| CoreError::user(format!("{}: {e}", self.path));
        let mut f = File::open(&self.path).map_err(fail)?;
        f.seek(std::io::SeekFrom::Start(self.start)).map_err(fail)?;
        // Counted through a small buffer that stays in cache.
        let mut buf = [0u8; 64 << 10];
        let (mut left, mut count) = (self.end - self.start, 0);
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match f.read(&mut buf[..want]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read.map_err(fail)?,
            };
            if n == 0 {
                break;
            }
            count += quote_count(&buf[..n], self.quote);
            left -= n as u64;
        }
        Ok(Value::from(count as i64))
    }
}

/// The quote parity before each block of a file, from the blocks' quote counts:
/// item `k` of the list is odd (1) when blocks `0..k` hold an odd number of quotes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QuoteParity;

impl OpKind for QuoteParity {
    const NAME: &'static str = "frame.csv-parity";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let mut odd = 0i64;
        let mut out = vec![Value::from(0i64)];
        for v in &inputs {
            match v.as_scalar() {
                Some(Scalar::I64(n)) => odd ^= n & 1,
                _ => {
                    return Err(CoreError::Internal(format!(
                        "{} expects quote counts",
                        Self::NAME
                    )));
                }
            }
            out.push(Value::from(odd));
        }
        Ok(Value::from(out))
    }
}

/// One block of a CSV file parsed into a record batch. Its input, for all blocks but
/// the first, is the file's quote parities.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReadBlock {
    path: String,
    /// The nominal byte range; the block reads the records that start in it.
    start: u64,
    end: u64,
    /// Its position in the file; block 0 starts at the first data record.
    block: usize,
    file_len: u64,
    /// A compressed file is read whole, as one block.
    compression: Compression,
    spec: BlockSpec,
}

impl ReadBlock {
    fn io(&self, e: std::io::Error) -> CoreError {
        CoreError::user(format!("{}: cannot read: {e}", self.path))
    }

    /// The records that start in `[start, end)`, read with one pass over the file:
    /// their first byte's offset, and a buffer with their bytes at `range`.
    fn records<'f>(
        &self,
        f: &'f File,
        odd_before: bool,
    ) -> brisk_core::Result<(u64, Window<'f>, Range<usize>)> {
        let q = self.spec.quote;
        // A record starts at `start` itself only after a terminator at `start - 1`:
        // the window opens one byte early, and reads a little past `end` for the
        // last record's tail.
        let base = if self.block == 0 { self.start } else { self.start - 1 };
        let pad = 64 << 10;
        let mut window = Window::new(f, base);
        window.fill((self.end - base) as usize + pad).map_err(|e| self.io(e))?;
        let first = if self.block == 0 {
            0
        } else {
            let odd = odd_before ^ (window.bytes.first() == Some(&q));
            match window.boundary(0, q, odd).map_err(|e| self.io(e))? {
                Some(i) => i,
                None => return Ok((self.file_len, window, 0..0)),
            }
        };
        let start = base + first as u64;
        if start >= self.end {
            return Ok((start, window, 0..0));
        }
        let last = if self.end >= self.file_len {
            window.bytes.len()
        } else {
            // Parity just before `end - 1`, counted from the record start.
            let from = (self.end - 1 - base) as usize;
            let odd = quote_count(&window.bytes[first..from], q) % 2 == 1;
            window.boundary(from, q, odd).map_err(|e| self.io(e))?.unwrap_or(window.bytes.len())
        };
        Ok((start, window, first..last))
    }

    fn schema(&self, as_text: bool) -> brisk_core::Result<SchemaRef> {
        let fields = self
            .spec
            .columns
            .iter()
            .map(|(name, t)| {
                let dtype: DataType = t.parse().map_err(|e| CoreError::Internal(format!("{e}")))?;
                let dtype = if as_text && dtype != DataType::Utf8 { DataType::Utf8 } else { dtype };
                Ok(Field::new(name, dtype, true))
            })
            .collect::<brisk_core::Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    fn parse(&self, bytes: &[u8], start: u64) -> brisk_core::Result<RecordBatch> {
        let typed = self.schema(false)?;
        let out_schema = Arc::new(Schema::new(
            self.spec.projection.iter().map(|&i| typed.field(i).clone()).collect::<Vec<_>>(),
        ));
        if self.spec.null_values.is_empty()
            && !self.spec.bad_values_to_null
            && self.spec.path_column.is_none()
            && memchr::memchr(self.spec.quote, bytes).is_none()
            && let Ok(text) = std::str::from_utf8(bytes)
            && let Some(batch) = crate::fast_csv::parse(
                text,
                &typed,
                &self.spec.projection,
                out_schema.clone(),
                self.spec.delimiter,
            )
        {
            return Ok(batch);
        }
        let schema = self.schema(self.spec.bad_values_to_null)?;
        let mut builder = ReaderBuilder::new(schema)
            .with_header(false)
            .with_delimiter(self.spec.delimiter)
            .with_quote(self.spec.quote)
            .with_batch_size(1 << 16)
            .with_projection(self.spec.projection.clone());
        let nulls = CsvOptions::default().null_values(self.spec.null_values.clone());
        if let Some(r) = null_regex(&nulls).map_err(|e| CoreError::Internal(e.to_string()))? {
            builder = builder.with_null_regex(r);
        }
        let mut decoder = builder.build_decoder();
        let mut batches = Vec::new();
        let mut rest = bytes;
        let fail = |e: ArrowError| self.locate(e, bytes, start);
        loop {
            let n = decoder.decode(rest).map_err(fail)?;
            rest = &rest[n..];
            if n == 0 || decoder.capacity() == 0 {
                match decoder.flush().map_err(fail)? {
                    Some(b) => batches.push(b),
                    None => break,
                }
            }
        }
        let mut batch = if batches.is_empty() {
            RecordBatch::new_empty(out_schema.clone())
        } else {
            arrow::compute::concat_batches(&batches[0].schema(), &batches)
                .map_err(|e| CoreError::Internal(e.to_string()))?
        };
        if self.spec.bad_values_to_null {
            let opts = CastOptions { safe: true, ..Default::default() };
            let columns = batch
                .columns()
                .iter()
                .zip(out_schema.fields())
                .map(|(c, f)| arrow::compute::cast_with_options(c, f.data_type(), &opts))
                .collect::<Result<Vec<ArrayRef>, _>>()
                .map_err(|e| CoreError::Internal(e.to_string()))?;
            batch = RecordBatch::try_new(out_schema, columns)
                .map_err(|e| CoreError::Internal(e.to_string()))?;
        }
        if let Some(name) = &self.spec.path_column {
            let rows = batch.num_rows();
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(StringArray::from(vec![self.path.as_str(); rows])));
            let mut fields: Vec<Field> =
                batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(name, DataType::Utf8, false));
            batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(|e| CoreError::Internal(e.to_string()))?;
        }
        Ok(batch)
    }

    /// The line number in the file of `offset` into the block's `bytes`.
    fn line_at(&self, bytes: &[u8], start: u64, offset: usize) -> usize {
        let before = Source::open(Path::new(&self.path), start as usize)
            .and_then(|(f, _)| f.read_at(0, start as usize))
            .map(|b| memchr::memchr_iter(b'\n', &b).count())
            .unwrap_or(0);
        before + memchr::memchr_iter(b'\n', &bytes[..offset]).count() + 1
    }

    /// Turns an Arrow parse error into one that names the file, line, column and
    /// value, and says what to do.
    fn locate(&self, e: ArrowError, bytes: &[u8], start: u64) -> CoreError {
        let text = e.to_string();
        let number = |marker: &str| {
            text.split(marker)
                .nth(1)
                .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|s| s.parse::<usize>().ok())
        };
        // Parse errors count records from 0 ("at line"), field-count errors from 1.
        let record =
            number(" at line ").or_else(|| number(" for line ").map(|n| n.saturating_sub(1)));
        let Some(record) = record else {
            return CoreError::user(format!("{}: {text}", self.path));
        };
        if let Err(bad) = std::str::from_utf8(bytes) {
            let at = bad.valid_up_to();
            return CoreError::user(format!(
                "{}: line {}: invalid UTF-8 (byte {}): convert the file to UTF-8",
                self.path,
                self.line_at(bytes, start, at),
                start as usize + at
            ));
        }
        let mut at = 0;
        for _ in 0..record {
            match next_boundary(&bytes[at..], self.spec.quote, false) {
                Some(i) => at += i,
                None => break,
            }
        }
        let line = self.line_at(bytes, start, at);
        if let Some(rest) = text.split("Error while parsing value '").nth(1) {
            let value = rest.split("' as type '").next().unwrap_or("");
            let dtype =
                rest.split("' as type '").nth(1).and_then(|s| s.split('\'').next()).unwrap_or("");
            let column = rest
                .split("for column ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse::<usize>().ok())
                .and_then(|i| self.spec.columns.get(i))
                .map_or("?", |(n, _)| n.as_str());
            return CoreError::user(format!(
                "{}: line {line}, column '{column}': cannot parse '{value}' as {dtype}; read the column as text (dtype {column}: Utf8), mark the value as null (null_values), or turn bad values into nulls (bad_values_to_null)",
                self.path
            ));
        }
        let reason =
            text.split(" at line ").next().unwrap_or(&text).trim_start_matches("Csv error: ");
        CoreError::user(format!("{}: line {line}: {reason}", self.path))
    }
}

impl OpKind for ReadBlock {
    const NAME: &'static str = "frame.read-csv";

    /// The block's bytes and the columns parsed from them: about twice the block
    /// (a compressed file is read whole: unknown before it is).
    fn projected_bytes(&self) -> Option<u64> {
        (self.compression == Compression::None).then(|| 2 * (self.end - self.start))
    }

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let odd = match inputs.first() {
            None => false,
            Some(Value::List(items)) => match items.get(self.block).and_then(Value::as_scalar) {
                Some(Scalar::I64(p)) => p == 1,
                _ => {
                    return Err(CoreError::Internal(format!(
                        "{}: no parity for block {}",
                        Self::NAME,
                        self.block
                    )));
                }
            },
            Some(other) => {
                return Err(CoreError::TypeMismatch {
                    expected: "quote parities".into(),
                    found: other.kind(),
                });
            }
        };
        if self.compression != Compression::None {
            let all =
                self.compression.decode(Path::new(&self.path), None).map_err(|e| self.io(e))?;
            let start = (self.start as usize).min(all.len());
            return Ok(Value::from(self.parse(&all[start..], self.start)?));
        }
        let f = File::open(&self.path).map_err(|e| self.io(e))?;
        let (start, window, range) = self.records(&f, odd)?;
        Ok(Value::from(self.parse(&window.bytes[range], start)?))
    }
}
