//! The block-read op: one byte range of a CSV file parsed into a record batch,
//! through the fast path when it can and Arrow's reader otherwise, with
//! parse errors turned into ones naming file, line, column and value.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::CastOptions;
use arrow::csv::ReaderBuilder;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use brisk_core::text::short_value;
use brisk_core::{Error as CoreError, OpKind, Scalar, Value};
use serde::{Deserialize, Serialize};

use super::bytes::{Compression, FileBytes};
use super::decode::Decoded;
use super::scan::{Cursor, Quoting, Syntax, count_lines};
use super::split::records;
use super::{CsvOptions, null_regex};
use crate::sources::{FileStamp, Input};
use crate::store::StorageOptions;

/// How to parse a block: the file's columns, which to keep, the dialect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BlockSpec {
    /// Every column of the file: name and Arrow type (as `DataType` prints).
    pub(super) columns: Vec<(String, String)>,
    pub(super) projection: Vec<usize>,
    pub(super) delimiter: u8,
    pub(super) quote: u8,
    pub(super) null_values: Vec<String>,
    pub(super) path_column: Option<String>,
    pub(super) bad_values_to_null: bool,
    /// The object stores' settings, for URLs.
    #[serde(default)]
    pub(super) storage: StorageOptions,
}

/// Rows per batch of Arrow's reader: it holds a field offset per column for every
/// row of a batch, so a wide file gets fewer rows (64 Ki rows up to 64 columns;
/// 300,000 columns would otherwise ask for 150 GB).
fn batch_rows(columns: usize) -> usize {
    ((4 << 20) / columns.max(1)).clamp(1, 1 << 16)
}

impl BlockSpec {
    fn syntax(&self) -> Syntax {
        Syntax { quote: self.quote, delimiter: self.delimiter }
    }
}

/// One block of a CSV file parsed into a record batch. Its input, for all blocks but
/// the first, is the quoting state before each block of the file.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReadBlock {
    pub(super) path: String,
    /// The nominal byte range; the block reads the records that start in it.
    pub(super) start: u64,
    pub(super) end: u64,
    /// Its position in the file; block 0 starts at the first data record.
    pub(super) block: usize,
    pub(super) file_len: u64,
    /// The file as it was when the graph was built.
    pub(super) stamp: FileStamp,
    /// A compressed file's blocks are read from its decoded copy, the input.
    pub(super) compression: Compression,
    pub(super) spec: BlockSpec,
}

impl ReadBlock {
    fn io(&self, e: std::io::Error) -> CoreError {
        CoreError::user(format!("{}: cannot read: {e}", self.path))
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
            && let Ok(text) = std::str::from_utf8(bytes)
            && let Some(batch) = super::fast::parse(
                text,
                &typed,
                &self.spec.projection,
                out_schema.clone(),
                self.spec.delimiter,
                self.spec.quote,
            )
        {
            return Ok(batch);
        }
        let schema = self.schema(self.spec.bad_values_to_null)?;
        let mut builder = ReaderBuilder::new(schema)
            .with_header(false)
            .with_delimiter(self.spec.delimiter)
            .with_quote(self.spec.quote)
            .with_batch_size(batch_rows(self.spec.columns.len()))
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

    /// The block's records, `bytes` from offset `start` of a file of `file_len`
    /// bytes, parsed. The block whose records reach the end of the file (its last
    /// record may have run on from an earlier range) checks that no quote is left
    /// open.
    fn parse_records(&self, start: u64, bytes: &[u8], file_len: u64) -> brisk_core::Result<Value> {
        if start + bytes.len() as u64 >= file_len
            && let Some(e) = self.unclosed_quote(bytes, start)
        {
            return Err(e);
        }
        Ok(Value::from(self.parse(bytes, start)?))
    }

    /// The line number in the file of `offset` into the block's `bytes`.
    fn line_at(&self, bytes: &[u8], start: u64, offset: usize) -> usize {
        let before =
            FileBytes::open_path(Path::new(&self.path), &self.spec.storage, start as usize)
                .ok()
                .and_then(|(f, _, _)| f.read_at(0, start as usize).ok())
                .map(|b| count_lines(&b))
                .unwrap_or(0);
        before + count_lines(&bytes[..offset]) + 1
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
        let at = self.spec.syntax().record_starts(bytes).nth(record).unwrap_or(bytes.len());
        let line = self.line_at(bytes, start, at);
        if let Some(rest) = text.split("Error while parsing value '").nth(1) {
            let value = short_value(rest.split("' as type '").next().unwrap_or(""), 80);
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
        if let Some(rest) = text.split("incorrect number of fields for line ").nth(1) {
            // "... for line 4815, expected 2 got 3": that line counts records
            // from the block's start; the file's line is `line`.
            let count = |marker: &str| {
                rest.split(marker)
                    .nth(1)
                    .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            };
            let (expected, got) =
                (count("expected ").unwrap_or("?"), count(" got ").unwrap_or("?"));
            return CoreError::user(format!(
                "{}: line {line}: {got} fields where the header has {expected}: fix the row, or check the delimiter and the quoting",
                self.path
            ));
        }
        let reason =
            text.split(" at line ").next().unwrap_or(&text).trim_start_matches("Csv error: ");
        CoreError::user(format!("{}: line {line}: {}", self.path, short_value(reason, 200)))
    }

    /// The error for a file that ends inside a quoted field (its last record
    /// would swallow every line after its opening quote), if this one does. For
    /// the block whose records reach the end of the file.
    fn unclosed_quote(&self, bytes: &[u8], start: u64) -> Option<CoreError> {
        let syntax = self.spec.syntax();
        memchr::memchr(self.spec.quote, bytes)?;
        if syntax.advance(bytes, Cursor::start(0), bytes.len()).state == Quoting::Out {
            return None;
        }
        let last = syntax.record_starts(bytes).last().unwrap_or(0);
        Some(CoreError::user(format!(
            "{}: line {}: a quoted field in this record is never closed (the file ends inside quotes): close it (a quote inside a quoted field is written twice, \"\"), or read the file with another quote character",
            self.path,
            self.line_at(bytes, start, last)
        )))
    }
}

impl OpKind for ReadBlock {
    const NAME: &'static str = "frame.read-csv";

    /// The block's bytes and the columns parsed from them: about twice the block
    /// (a compressed file's blocks as planned from its expected size).
    fn projected_bytes(&self) -> Option<u64> {
        Some(2 * self.end.saturating_sub(self.start))
    }

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        if self.compression != Compression::None {
            // The block's records from the file's decoded copy.
            let decoded = Decoded::of(Self::NAME, &inputs)?;
            let b = self.block;
            let (Some(&state), Some(range)) = (decoded.states.get(b), decoded.starts.get(b..b + 2))
            else {
                return Err(CoreError::Internal(format!("{}: no block {b}", Self::NAME)));
            };
            if range[0] >= range[1] {
                // No record starts in an empty block.
                return self.parse_records(range[0], &[], decoded.len);
            }
            let syntax = self.spec.syntax();
            let read = records(&decoded.file, range[0]..range[1], b, decoded.len, syntax, state);
            let (start, window, range) = read.map_err(|e| self.io(e))?;
            return self.parse_records(start, &window.bytes[range], decoded.len);
        }
        let state = match inputs.first() {
            None => Quoting::Out,
            Some(Value::List(items)) => match items.get(self.block).and_then(Value::as_scalar) {
                Some(Scalar::I64(i)) => Quoting::from_index(i).ok_or_else(|| {
                    CoreError::Internal(format!("{}: no quoting state {i}", Self::NAME))
                })?,
                _ => {
                    return Err(CoreError::Internal(format!(
                        "{}: no quoting state for block {}",
                        Self::NAME,
                        self.block
                    )));
                }
            },
            Some(other) => {
                return Err(CoreError::TypeMismatch {
                    expected: "quoting states".into(),
                    found: other.kind(),
                });
            }
        };
        let f = Input::open(&self.path, &self.spec.storage, &self.stamp)?;
        let read =
            records(&f, self.start..self.end, self.block, self.file_len, self.spec.syntax(), state);
        // Checked again after reading: a file cut or grown meanwhile fails whole
        // (a short read is reported as that, not as the I/O error it caused). An
        // object's reads each ask for the version stamped.
        f.check(&self.path, &self.stamp)?;
        let (start, window, range) = read.map_err(|e| self.io(e))?;
        let bytes = &window.bytes[range];
        brisk_core::note_read(bytes.len() as u64);
        self.parse_records(start, bytes, self.file_len)
    }
}
