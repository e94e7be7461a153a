//! Parquet: `read_parquet` (one partition per row group, only the columns asked
//! for) and `to_parquet` (one file, or a directory with a file per partition),
//! written under a temporary name and renamed when complete.

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
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use serde::{Deserialize, Serialize};

use crate::batches::first_batch;
use crate::error::{file_error, unknown_column};
use crate::frame::{Frame, Reproject};
use crate::sources::{FileStamp, Sources, modified};
use crate::write::{Writes, check_target, pending, persist};
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
}

impl OpKind for ReadRowGroup {
    const NAME: &'static str = "frame.read-parquet";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let fail = |e: &dyn std::fmt::Display| CoreError::user(format!("{}: {e}", self.path));
        let f = File::open(&self.path).map_err(|e| fail(&e))?;
        self.stamp.check(&self.path, Some(&f))?;
        let batch = self.read(f);
        // Checked again after reading: a file changed meanwhile fails whole (a
        // read error it caused is reported as that change).
        self.stamp.check(&self.path, None)?;
        batch
    }
}

impl ReadRowGroup {
    /// The row group (its columns kept) as one batch.
    fn read(&self, f: File) -> brisk_core::Result<Value> {
        let fail = |e: &dyn std::fmt::Display| CoreError::user(format!("{}: {e}", self.path));
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| fail(&e))?;
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
    Ok(frame.with_source(Reproject(Arc::new(reproject))))
}

fn read(sources: &Sources, columns: Option<&[String]>) -> Result<Frame> {
    let files = sources.files(&[".parquet", ".pq"])?;
    let mut schema = None;
    let mut tasks = Vec::new();
    let name = token("read-parquet", &(&files, columns, modified(&files)));
    let base = Key::named(name.as_str());
    let mut indices = Vec::new();
    for (fi, path) in files.iter().enumerate() {
        let f = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
        let stamp = f
            .metadata()
            .map(|m| FileStamp::of(&m))
            .map_err(|e| file_error(path, format!("cannot open: {e}")))?;
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
                stamp,
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
    /// the default scheduler.
    pub fn to_parquet(&self, path: impl AsRef<Path>) -> Result<usize> {
        self.to_parquet_on(path, brisk_scheduler::default_scheduler())
    }

    /// [`to_parquet`](Self::to_parquet) on `scheduler`.
    pub fn to_parquet_on(&self, path: impl AsRef<Path>, scheduler: &Scheduler) -> Result<usize> {
        let path = path.as_ref();
        let one_file = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
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
