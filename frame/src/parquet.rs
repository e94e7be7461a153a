//! Parquet: `read_parquet` (one partition per row group, only the columns asked
//! for) and `to_parquet` (one file, or a directory with a file per partition),
//! written under a temporary name and renamed when complete. From an object
//! store a read fetches the footer, then per row group the byte ranges of the
//! columns asked for, in parallel; nothing else of the object.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use brisk_core::{Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::{Layer, Task, token};
use brisk_scheduler::Scheduler;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError;
use serde::{Deserialize, Serialize};

use crate::batches::first_batch;
use crate::error::{file_error, unknown_column};
use crate::frame::{Frame, Reproject};
use crate::sources::{FileStamp, Input, Sources, modified};
use crate::store::StorageOptions;
use crate::write::{Writes, check_target, local_of, pending, persist, url_of, write_to_store};
use crate::{Error, Result};

/// One row group of a Parquet file, with the columns kept (by index).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReadRowGroup {
    path: String,
    row_group: usize,
    columns: Vec<usize>,
    /// The file as it was when the graph was built: a row group of a file
    /// rewritten since (its footer elsewhere) is an error, not other data.
    stamp: FileStamp,
    /// The object stores' settings, for URLs.
    #[serde(default)]
    storage: StorageOptions,
}

/// A Parquet file's bytes: a local file, or the pieces of an object a read
/// fetched (its footer, the column chunks it reads); asking for other bytes is
/// an error, never a request per page.
enum ParquetBytes {
    File(File),
    Pieces { len: u64, pieces: Vec<(u64, bytes::Bytes)> },
}

impl parquet::file::reader::Length for ParquetBytes {
    fn len(&self) -> u64 {
        match self {
            ParquetBytes::File(f) => parquet::file::reader::Length::len(f),
            ParquetBytes::Pieces { len, .. } => *len,
        }
    }
}

impl parquet::file::reader::ChunkReader for ParquetBytes {
    type T = Box<dyn std::io::Read>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            ParquetBytes::File(f) => Ok(Box::new(f.get_read(start)?)),
            ParquetBytes::Pieces { .. } => {
                let piece = self.piece(start, 0)?;
                Ok(Box::new(std::io::Cursor::new(piece)))
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        match self {
            ParquetBytes::File(f) => f.get_bytes(start, length),
            ParquetBytes::Pieces { .. } => self.piece(start, length).map(|b| b.slice(..length)),
        }
    }
}

impl ParquetBytes {
    /// The fetched bytes from `start` to the end of their piece, holding at least
    /// `length`.
    fn piece(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let ParquetBytes::Pieces { pieces, .. } = self else {
            return Err(ParquetError::General("not a fetched object".into()));
        };
        pieces
            .iter()
            // A reader from `start` needs a piece with at least one byte there.
            .find(|(at, b)| *at <= start && start + length.max(1) as u64 <= at + b.len() as u64)
            .map(|(at, b)| b.slice((start - at) as usize..))
            .ok_or_else(|| {
                ParquetError::General(format!(
                    "bytes {start}..{} were not fetched (a footer or column chunk that lies elsewhere)",
                    start + length as u64
                ))
            })
    }

    /// An object's footer: the last 64 KiB, or, for a larger footer, the bytes
    /// its length says.
    fn footer(input: &Input, len: u64) -> std::io::Result<(u64, bytes::Bytes)> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        if len < 12 {
            return Err(bad("too short for a Parquet file (no footer)"));
        }
        let from = len.saturating_sub(64 << 10);
        let mut tail = Vec::new();
        input.read_into(from, (len - from) as usize, &mut tail)?;
        let n = tail.len();
        if &tail[n - 4..] != b"PAR1" {
            return Err(bad("no Parquet footer at its end (is it a Parquet file?)"));
        }
        let meta =
            u64::from(u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]));
        let need = meta + 8;
        if need <= n as u64 {
            return Ok((from, tail.into()));
        }
        if need > len {
            return Err(bad("its footer says it is longer than the file"));
        }
        let mut whole = Vec::new();
        input.read_into(len - need, need as usize, &mut whole)?;
        Ok((len - need, whole.into()))
    }

    /// The file at `path` (local or a URL) opened as `stamp` says it was; an
    /// object's footer fetched.
    fn open(
        path: &str,
        storage: &StorageOptions,
        stamp: &FileStamp,
    ) -> brisk_core::Result<(ParquetBytes, Input)> {
        let input = Input::open(path, storage, stamp)?;
        let bytes = match &input {
            Input::File(f) => ParquetBytes::File(
                f.try_clone().map_err(|e| CoreError::user(format!("{path}: cannot read: {e}")))?,
            ),
            Input::Object { .. } => {
                let len = stamp.len();
                let footer = ParquetBytes::footer(&input, len)
                    .map_err(|e| CoreError::user(format!("{path}: cannot read: {e}")))?;
                ParquetBytes::Pieces { len, pieces: vec![footer] }
            }
        };
        Ok((bytes, input))
    }
}

impl OpKind for ReadRowGroup {
    const NAME: &'static str = "frame.read-parquet";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let (bytes, input) = ParquetBytes::open(&self.path, &self.storage, &self.stamp)?;
        let batch = self.read(bytes, &input);
        // Checked again after reading: a file changed meanwhile fails whole (a
        // read error it caused is reported as that change; an object's reads
        // each ask for the version stamped).
        self.stamp.recheck(&self.path)?;
        batch
    }
}

impl ReadRowGroup {
    /// The row group (its columns kept) as one batch; from an object, the
    /// columns' chunks fetched first, together.
    fn read(&self, bytes: ParquetBytes, input: &Input) -> brisk_core::Result<Value> {
        let fail = |e: &dyn std::fmt::Display| CoreError::user(format!("{}: {e}", self.path));
        let loaded = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default())
            .map_err(|e| fail(&e))?;
        let mut bytes = bytes;
        if let (Input::Object { .. }, ParquetBytes::Pieces { pieces, .. }) = (input, &mut bytes) {
            let meta = loaded.metadata().clone();
            let group = meta.row_groups().get(self.row_group).ok_or_else(|| {
                fail(&format!("has no row group {} (it changed)", self.row_group))
            })?;
            let schema = meta.file_metadata().schema_descr();
            let ranges: Vec<std::ops::Range<u64>> = (0..group.num_columns())
                .filter(|&leaf| self.columns.contains(&schema.get_column_root_idx(leaf)))
                .map(|leaf| {
                    let (start, len) = group.column(leaf).byte_range();
                    start..start + len
                })
                .collect();
            let ranges = coalesce(ranges);
            let fetched =
                input.read_ranges(&ranges).map_err(|e| fail(&format!("cannot read: {e}")))?;
            pieces.extend(ranges.iter().map(|r| r.start).zip(fetched));
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, loaded);
        let mask = ProjectionMask::roots(builder.parquet_schema(), self.columns.iter().copied());
        // The row group's bytes on disk, of the columns read, for progress.
        if let Some(group) = builder.metadata().row_groups().get(self.row_group) {
            let columns = self.columns.iter().filter_map(|&c| group.columns().get(c));
            brisk_core::note_read(columns.map(|c| c.compressed_size().max(0) as u64).sum());
        }
        let reader = builder
            .with_row_groups(vec![self.row_group])
            .with_projection(mask)
            .with_batch_size(1 << 16)
            .build()
            .map_err(|e| fail(&e))?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| fail(&e))?;
        let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|e| fail(&e))?;
        Ok(Value::from(batch))
    }
}

/// Byte ranges close together merged into one request (a gap of up to 1 MiB is
/// read and dropped), up to 64 MiB a request: a row group's column chunks in a
/// few round trips instead of one each, with requests left to run in parallel.
fn coalesce(mut ranges: Vec<std::ops::Range<u64>>) -> Vec<std::ops::Range<u64>> {
    const GAP: u64 = 1 << 20;
    const MOST: u64 = 64 << 20;
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<std::ops::Range<u64>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end + GAP && r.end.max(last.end) - last.start <= MOST => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// Reads Parquet files lazily: one partition per row group, only `columns` (all
/// when `None`). Every file must have the first file's schema.
pub fn read_parquet(sources: impl Into<Sources>, columns: Option<&[&str]>) -> Result<Frame> {
    let sources: Sources = sources.into();
    let columns: Option<Vec<String>> = columns.map(|c| c.iter().map(|s| s.to_string()).collect());
    let frame = read(&sources, columns.as_deref())?;
    let reproject = move |keep: Vec<String>| {
        let keep: Vec<String> = match &columns {
            Some(given) => given.iter().filter(|c| keep.contains(c)).cloned().collect(),
            None => keep,
        };
        read(&sources, Some(&keep))
    };
    Ok(frame.with_source(Reproject(Arc::new(reproject), false)))
}

fn read(sources: &Sources, columns: Option<&[String]>) -> Result<Frame> {
    let files = sources.files(&[".parquet", ".pq"])?;
    let mut schema = None;
    let mut tasks = Vec::new();
    let storage = sources.storage();
    let name = token("read-parquet", &(&files, columns, modified(&files, storage)));
    let base = Key::named(name.as_str());
    let mut indices = Vec::new();
    for (fi, path) in files.iter().enumerate() {
        let stamp = FileStamp::of_path(path, storage)?;
        let text = path.to_string_lossy();
        let (f, _) = ParquetBytes::open(&text, storage, &stamp)
            .map_err(|e| file_error(path, e.to_string().replace(&format!("{text}: "), "")))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| file_error(path, format!("not a readable Parquet file: {e}")))?;
        let file_schema = builder.schema().clone();
        match &schema {
            None => {
                let names: Vec<&str> =
                    file_schema.fields().iter().map(|f| f.name().as_str()).collect();
                indices = match columns {
                    Some(cols) => cols
                        .iter()
                        .map(|c| file_schema.index_of(c).map_err(|_| unknown_column(c, &names)))
                        .collect::<Result<Vec<_>>>()?,
                    None => (0..names.len()).collect(),
                };
                indices.sort_unstable();
                indices.dedup();
                schema = Some(Arc::new(
                    file_schema.project(&indices).map_err(|e| Error::Invalid(e.to_string()))?,
                ));
            }
            Some(first) => {
                let projected = file_schema.project(&indices).map_err(|e| file_error(path, e))?;
                if projected.fields() != first.fields() {
                    return Err(file_error(
                        path,
                        "its schema differs from the first file's: read the files separately",
                    ));
                }
            }
        }
        for rg in 0..builder.metadata().num_row_groups() {
            let op = ReadRowGroup {
                path: path.to_string_lossy().into_owned(),
                row_group: rg,
                columns: indices.clone(),
                stamp: stamp.clone(),
                storage: storage.clone(),
            };
            tasks.push(Task::root(base.with_index([fi as u32, rg as u32]), Op::data(op)));
        }
    }
    let schema = schema.ok_or_else(|| Error::Invalid("no Parquet file to read".into()))?;
    Ok(Frame::from_layer(schema, Layer::new(name, tasks, vec![])))
}

/// Writes one partition as a Parquet file.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WriteParquetPart {
    path: String,
}

/// Writes record batches as one Parquet file, in a form every reader reads back
/// as written: a timestamp in seconds, which Parquet has no label for (it would
/// be read back as a bare integer), is written in milliseconds.
pub struct ParquetSink<W: Write + Send> {
    writer: parquet::arrow::ArrowWriter<W>,
    schema: SchemaRef,
    rows: usize,
}

/// The type a column is written to Parquet as.
fn parquet_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(TimeUnit::Second, tz) => {
            DataType::Timestamp(TimeUnit::Millisecond, tz.clone())
        }
        t => t.clone(),
    }
}

impl<W: Write + Send> ParquetSink<W> {
    /// A sink writing batches of `schema` to `out`.
    pub fn try_new(out: W, schema: &SchemaRef) -> std::result::Result<Self, ParquetError> {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(parquet_type(f.data_type())))
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None)?;
        Ok(ParquetSink { writer, schema, rows: 0 })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), ParquetError> {
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.writer.write(&RecordBatch::try_new(self.schema.clone(), columns)?)?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Writes one batch as a row group of its own (nothing of it stays buffered
    /// in the writer).
    pub fn write_row_group(
        &mut self,
        batch: &RecordBatch,
    ) -> std::result::Result<(), ParquetError> {
        self.write(batch)?;
        self.writer.flush()
    }

    /// Finishes the file (its footer); returns the rows written and the output
    /// (to sync a file before it is renamed into place).
    pub fn close(self) -> std::result::Result<(usize, W), ParquetError> {
        // Flushes, writes the footer and gives the output back.
        Ok((self.rows, self.writer.into_inner()?))
    }
}

fn write_file(
    path: &Path,
    batches: &[RecordBatch],
    schema: SchemaRef,
) -> std::result::Result<usize, String> {
    let f = File::create(path).map_err(|e| e.to_string())?;
    let mut w = ParquetSink::try_new(f, &schema).map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    let (rows, f) = w.close().map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    Ok(rows)
}

/// The frame's partitions appended to one Parquet file in order, a row group
/// each, as they are computed: task `i` takes partition `i` and task `i - 1`, so
/// the writes run in order while the partitions are computed in parallel, and no
/// more of the frame is held than the memory budget allows. The writer is shared
/// by the tasks (local ops: this graph runs in this process).
fn append_tasks(
    frame: &Frame,
    sink: &Arc<Mutex<Option<ParquetSink<File>>>>,
    tmp: &Path,
) -> Vec<Task> {
    const NAME: &str = "frame.append-parquet";
    let name = token("to-parquet-file", &(frame.layer().name(), tmp));
    let base = Key::named(name.as_str());
    let mut tasks: Vec<Task> = Vec::new();
    for (i, k) in frame.partition_keys().enumerate() {
        let sink = sink.clone();
        let path = tmp.display().to_string();
        let op = Op::local(NAME, move |inputs: Vec<Value>| {
            let batch = first_batch(NAME, &inputs)?;
            let mut sink = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let w = sink.as_mut().ok_or_else(|| CoreError::Internal(format!("{NAME}: closed")))?;
            w.write_row_group(&batch)
                .map_err(|e| CoreError::user(format!("{path}: cannot write: {e}")))?;
            Ok(Value::from(batch.num_rows() as i64))
        });
        let deps: Vec<Key> =
            std::iter::once(k.clone()).chain(tasks.last().map(|t| t.key.clone())).collect();
        tasks.push(Task::new(base.with_index([i as u32]), op, deps));
    }
    tasks
}

impl OpKind for WriteParquetPart {
    const NAME: &'static str = "frame.write-parquet";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let batch = first_batch(Self::NAME, &inputs)?;
        let rows = write_file(Path::new(&self.path), std::slice::from_ref(&batch), batch.schema())
            .map_err(|e| CoreError::user(format!("{}: cannot write: {e}", self.path)))?;
        Ok(Value::from(rows as i64))
    }
}

impl Frame {
    /// Writes the frame as Parquet; returns the rows written. A path ending in
    /// `.parquet` gets one file (a row group per partition, appended in order as
    /// the partitions are computed, so memory stays within the budget); any other
    /// path becomes a directory of `part-00000.parquet`, ... written in
    /// parallel. Written under a temporary name and renamed when complete. Runs on
    /// the default scheduler. An object-store URL is written locally under a
    /// temporary directory and uploaded, each object appearing only once complete.
    pub fn to_parquet(&self, path: impl AsRef<Path>) -> Result<usize> {
        self.to_parquet_on(path, brisk_scheduler::default_scheduler())
    }

    /// [`to_parquet`](Self::to_parquet) on `scheduler`.
    pub fn to_parquet_on(&self, path: impl AsRef<Path>, scheduler: &Scheduler) -> Result<usize> {
        self.to_parquet_with(path, &StorageOptions::default(), scheduler)
    }

    /// [`to_parquet_on`](Self::to_parquet_on) with `storage` for an object-store
    /// URL.
    pub fn to_parquet_with(
        &self,
        path: impl AsRef<Path>,
        storage: &StorageOptions,
        scheduler: &Scheduler,
    ) -> Result<usize> {
        let path = path.as_ref();
        let one_file = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        if let Some(local) = local_of(path)? {
            return self.to_parquet_with(local, storage, scheduler);
        }
        if let Some(url) = url_of(path) {
            let write = |local: &Path| self.to_parquet_with(local, storage, scheduler);
            return write_to_store(url, storage, one_file, "out.parquet", write);
        }
        check_target(path, one_file)?;
        // Removed when dropped unpersisted (on any error) and by a signal
        // handler's `remove_pending`.
        let out = pending(path, !one_file)?;
        let tmp = out.path();
        let rows = if one_file {
            let file = File::options().write(true).truncate(true).open(tmp);
            let sink = file
                .map_err(ParquetError::from)
                .and_then(|f| ParquetSink::try_new(f, self.schema()))
                .map_err(|e| file_error(tmp, e))?;
            let sink = Arc::new(Mutex::new(Some(sink)));
            let tasks = append_tasks(self, &sink, tmp);
            scheduler.compute(&Writes { frame: self.clone(), tasks })?;
            let sink = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            let (rows, f) = sink
                .ok_or_else(|| file_error(tmp, "the writer was closed early"))?
                .close()
                .map_err(|e| file_error(tmp, e))?;
            f.sync_all().map_err(|e| file_error(tmp, e))?;
            rows
        } else {
            let name = token("to-parquet", &(self.layer().name(), tmp));
            let base = Key::named(name.as_str());
            let tasks = self
                .partition_keys()
                .enumerate()
                .map(|(i, k)| {
                    let path =
                        tmp.join(format!("part-{i:05}.parquet")).to_string_lossy().into_owned();
                    Task::new(
                        base.with_index([i as u32]),
                        Op::data(WriteParquetPart { path }),
                        [k.clone()],
                    )
                })
                .collect();
            scheduler.compute(&Writes { frame: self.clone(), tasks })?
        };
        persist(out, path)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::coalesce;

    #[test]
    fn close_ranges_are_fetched_together_up_to_a_limit() {
        // Adjacent and near (a 1 KiB gap) merge; 2 MiB apart stays apart; out of
        // order is sorted first; a merge past 64 MiB starts a new request.
        let got = coalesce(vec![100..200, 0..100, 1224..2000, (4 << 20)..(5 << 20)]);
        assert_eq!(got, vec![0..2000, (4 << 20)..(5 << 20)]);
        let big = 60 << 20;
        let got = coalesce(vec![0..big, big..big + (8 << 20)]);
        assert_eq!(got, vec![0..big, big..big + (8 << 20)]);
        assert!(coalesce(Vec::new()).is_empty());
    }
}
