//! What a read learns before any block runs: each file's length, byte-order mark
//! and header, and the column types inferred from a sample of the first file.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow::compute::CastOptions;
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use brisk_core::text::short_list;

use super::bytes::FileBytes;
use super::scan::{Cursor, End, Syntax, skip_blank_lines};
use super::{CsvOptions, null_regex};
use crate::Result;
use crate::error::{file_error, unknown_column};
use crate::sources::FileStamp;

/// What the frame needs to know about one file before reading it.
pub(super) struct FileInfo {
    pub(super) path: PathBuf,
    /// The file as it was when inspected; every read checks it is still so.
    pub(super) stamp: FileStamp,
    pub(super) len: u64,
    /// Where the first data record starts (after a BOM and the header).
    pub(super) data_start: u64,
    pub(super) header: Option<Vec<String>>,
}

pub(super) fn parse_header(
    record: &[u8],
    delimiter: u8,
    quote: u8,
) -> Result<Vec<String>, ArrowError> {
    let format = Format::default().with_header(true).with_delimiter(delimiter).with_quote(quote);
    let (schema, _) = format.infer_schema(record, Some(0))?;
    Ok(schema.fields().iter().map(|f| f.name().clone()).collect())
}

/// The most bytes a header (or, without one, the first record) may take: reading
/// it costs memory for every column, so a file without record ends is refused
/// instead of read whole.
const MAX_HEADER_BYTES: usize = 16 << 20;

/// A file's first record: where it starts (blank lines skipped), where it ends
/// (just past its terminator, or at the end of the data), and its bytes.
struct FirstRecord {
    end: u64,
    bytes: Vec<u8>,
}

/// The first record at or after `from`; `None` if it is longer than `limit`
/// bytes or runs past the bytes `f` holds.
fn first_record(
    f: &FileBytes,
    len: u64,
    from: u64,
    syntax: Syntax,
    limit: usize,
) -> std::io::Result<Option<FirstRecord>> {
    let mut buf = Vec::new();
    let mut cur = None;
    loop {
        let chunk = f.read_at(from + buf.len() as u64, 64 << 10)?;
        let eof = from + (buf.len() + chunk.len()) as u64 >= len;
        let cut = chunk.is_empty() && !eof;
        buf.extend_from_slice(&chunk);
        let start = skip_blank_lines(&buf, 0);
        let end = if start < buf.len() {
            match syntax.record_end(&buf, cur.unwrap_or(Cursor::start(start)), eof) {
                End::At(end) => Some(end),
                End::Eof => Some(buf.len()),
                End::More(at) => {
                    cur = Some(at);
                    None
                }
            }
        } else {
            eof.then_some(start)
        };
        if let Some(end) = end {
            buf.truncate(end);
            let bytes = buf.split_off(start);
            return Ok(Some(FirstRecord { end: from + end as u64, bytes }));
        }
        if cut || buf.len() > limit {
            return Ok(None);
        }
    }
}

/// The first record of a file at or after `from` (see `first_record`), decoding
/// more of a compressed file when the first look held too little of it.
fn first_record_of(
    path: &Path,
    f: &FileBytes,
    len: u64,
    from: u64,
    opts: &CsvOptions,
) -> Result<FirstRecord> {
    let syntax = Syntax { quote: opts.quote, delimiter: opts.delimiter };
    let mut found = first_record(f, len, from, syntax, MAX_HEADER_BYTES);
    if matches!(found, Ok(None)) && matches!(f, FileBytes::Decoded(_)) && len == u64::MAX {
        let (f, len, _) = FileBytes::open_path(path, &opts.storage, MAX_HEADER_BYTES + (1 << 20))?;
        found = first_record(&f, len, from, syntax, MAX_HEADER_BYTES);
    }
    found.map_err(|e| file_error(path, e))?.ok_or_else(|| {
        file_error(
            path,
            format!(
                "its first record is longer than {} MiB: is it a CSV file, with this delimiter and quote, and lines ending in \\n, \\r\\n or \\r?",
                MAX_HEADER_BYTES >> 20
            ),
        )
    })
}

/// Header names every reader and writer can tell apart (Parquet files with two
/// columns of one name are refused by pandas and Polars): an empty name becomes
/// `column_N` (its position from 1, as columns of a file without a header are
/// named), and a repeated one `NAME_1`, `NAME_2`, ... (DuckDB's renaming).
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut taken: std::collections::HashSet<String> =
        names.iter().filter(|n| !n.is_empty()).cloned().collect();
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            if name.is_empty() {
                let mut fresh = format!("column_{}", i + 1);
                let mut k = 1;
                while taken.contains(&fresh) {
                    fresh = format!("column_{}_{k}", i + 1);
                    k += 1;
                }
                taken.insert(fresh.clone());
                fresh
            } else if seen.insert(name.clone()) {
                name
            } else {
                let mut k = 1;
                while taken.contains(&format!("{name}_{k}")) {
                    k += 1;
                }
                let fresh = format!("{name}_{k}");
                taken.insert(fresh.clone());
                fresh
            }
        })
        .collect()
}

/// The length, data start and header of one file.
pub(super) fn inspect(path: &Path, opts: &CsvOptions) -> Result<FileInfo> {
    let (f, len, stamp) = FileBytes::open_path(path, &opts.storage, opts.sample_bytes + (1 << 20))?;
    let mut start = 0u64;
    let head = f.read_at(0, 3).map_err(|e| file_error(path, e))?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        start = 3;
    }
    let info = |data_start, header| FileInfo {
        path: path.to_path_buf(),
        stamp: stamp.clone(),
        len,
        data_start,
        header,
    };
    if !opts.header || start >= len {
        return Ok(info(start, None));
    }
    // The header is the first record (blank lines before it are skipped, as the
    // reader skips them), read by the rules that split the data.
    let record = first_record_of(path, &f, len, start, opts)?;
    if record.bytes.is_empty() {
        return Ok(info(record.end, None));
    }
    let names = parse_header(&record.bytes, opts.delimiter, opts.quote)
        .map_err(|e| file_error(path, format!("cannot read the header: {e}")))?;
    Ok(info(record.end, Some(unique_names(names))))
}

/// The schema of the file's first records (a sample cut at a record boundary).
pub(super) fn infer(info: &FileInfo, names: &[String], opts: &CsvOptions) -> Result<Schema> {
    let (f, len, _) =
        FileBytes::open_path(&info.path, &opts.storage, opts.sample_bytes + (1 << 20))?;
    let mut sample =
        f.read_at(info.data_start, opts.sample_bytes).map_err(|e| file_error(&info.path, e))?;
    let complete = info.data_start + sample.len() as u64 >= info.len;
    // Cut after the last record terminator outside quotes.
    let mut cut = sample.len();
    if !complete {
        let syntax = Syntax { quote: opts.quote, delimiter: opts.delimiter };
        cut = 0;
        while let End::At(end) = syntax.record_end(&sample, Cursor::start(cut), false) {
            cut = end;
        }
        if cut == 0 {
            // The first record is longer than the sample (a very wide file): it
            // is the sample, read whole.
            sample = first_record_of(&info.path, &f, len, info.data_start, opts)?.bytes;
            cut = sample.len();
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
    let inferred = verify_temporal(&sample[..cut], inferred, opts);
    // With no record at all (a header-only file) every column is Null, which
    // every aggregation accepts; a column empty in a sample of records is text.
    let empty = complete && sample[..cut].iter().all(|b| matches!(b, b'\r' | b'\n'));
    let fields = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let dtype = match inferred.fields().get(i).map(|f| f.data_type()) {
                _ if empty => DataType::Null,
                None | Some(DataType::Null) => DataType::Utf8,
                Some(t) => t.clone(),
            };
            Field::new(name, dtype, true)
        })
        .collect::<Vec<_>>();
    Ok(Schema::new(fields))
}

/// Arrow infers a timestamp from a value that only begins like one
/// (`2020-01-01 01:02:03 server started`), and then fails on it when the block
/// is read. A date or timestamp column is kept only if every sampled value parses
/// as that type; otherwise it is read as text.
fn verify_temporal(sample: &[u8], inferred: Schema, opts: &CsvOptions) -> Schema {
    let temporal = |t: &DataType| matches!(t, DataType::Date32 | DataType::Timestamp(..));
    if !inferred.fields().iter().any(|f| temporal(f.data_type())) {
        return inferred;
    }
    let text = Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let mut builder = ReaderBuilder::new(Arc::new(text))
        .with_header(false)
        .with_delimiter(opts.delimiter)
        .with_quote(opts.quote)
        .with_truncated_rows(true);
    if let Ok(Some(r)) = null_regex(opts) {
        builder = builder.with_null_regex(r);
    }
    let batches = builder
        .build_buffered(std::io::Cursor::new(sample))
        .and_then(|reader| reader.collect::<Result<Vec<_>, _>>());
    let strict = CastOptions { safe: false, ..Default::default() };
    let fields = inferred
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let parses = |t: &DataType| match &batches {
                Ok(batches) => batches
                    .iter()
                    .all(|b| arrow::compute::cast_with_options(b.column(i), t, &strict).is_ok()),
                Err(_) => false,
            };
            if temporal(f.data_type()) && !parses(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect::<Vec<_>>();
    Schema::new(fields)
}

/// The column names and types of a read: names from `opts`, the first file's
/// header or `column_1`, ...; types inferred from a sample of the first file with
/// data, then `opts`' dtype overrides. Every header must match the first.
pub(super) fn file_schema(
    files: &[PathBuf],
    infos: &[FileInfo],
    opts: &CsvOptions,
) -> Result<(Vec<String>, Schema)> {
    // The names come from the first file with a header (or data), the types from
    // the first file with data.
    let first = infos
        .iter()
        .find(|i| i.header.is_some() || i.data_start < i.len)
        .ok_or_else(|| file_error(&files[0], "the file is empty: there are no columns to read"))?;
    let typed = infos.iter().find(|i| i.data_start < i.len).unwrap_or(first);
    let names: Vec<String> = match (&opts.names, &first.header) {
        (Some(n), _) => n.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => {
            let (f, len, _) = FileBytes::open_path(&first.path, &opts.storage, 1 << 20)?;
            let record = first_record_of(&first.path, &f, len, first.data_start, opts)?;
            let n = parse_header(&record.bytes, opts.delimiter, opts.quote)
                .map_err(|e| file_error(&first.path, e))?
                .len();
            (1..=n).map(|i| format!("column_{i}")).collect()
        }
    };
    for info in infos {
        if let (Some(h), None) = (&info.header, &opts.names)
            && h != &names
        {
            return Err(file_error(
                &info.path,
                format!(
                    "its header ({}) differs from the first file's ({}): read the files separately or pass names",
                    short_list(h, 10),
                    short_list(&names, 10)
                ),
            ));
        }
    }
    let schema = infer(typed, &names, opts)?;
    let existing: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (col, dtype) in &opts.dtypes {
        let i =
            names.iter().position(|n| n == col).ok_or_else(|| unknown_column(col, &existing))?;
        fields[i] = Field::new(col, dtype.clone(), true);
    }
    Ok((names, Schema::new(fields)))
}
