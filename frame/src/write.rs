//! Writing frames: `to_csv`, one file or a directory of parts, always written
//! under a temporary name beside the target and renamed when complete.

use std::path::Path;

use brisk_core::{Error as CoreError, Key, Op, OpKind, PendingOutput, Value};
use brisk_graph::{Collection, GraphBuilder, Task, token};
use brisk_scheduler::Scheduler;
use serde::{Deserialize, Serialize};

use crate::batches::first_batch;
use crate::frame::Frame;
use crate::{Error, Result};

/// Writes one partition as a CSV file.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WriteCsvPart {
    path: String,
    header: bool,
}

impl OpKind for WriteCsvPart {
    const NAME: &'static str = "frame.write-csv";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let batch = first_batch(Self::NAME, &inputs)?;
        let io = |e: &dyn std::fmt::Display| {
            CoreError::user(format!("{}: cannot write: {e}", self.path))
        };
        let file = std::fs::File::create(&self.path).map_err(|e| io(&e))?;
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(self.header)
            .build(std::io::BufWriter::new(file));
        w.write(&batch).map_err(|e| io(&e))?;
        // Flushed and synced here, not in a drop that would swallow the error: a
        // full disk must fail the write, not leave a short part reported whole.
        let file = w.into_inner().into_inner().map_err(|e| io(e.error()))?;
        file.sync_all().map_err(|e| io(&e))?;
        Ok(Value::from(batch.num_rows() as i64))
    }
}

/// The writes of a frame's partitions (CSV or Parquet): their row counts, summed.
pub(crate) struct Writes {
    pub(crate) frame: Frame,
    pub(crate) tasks: Vec<Task>,
}

impl Collection for Writes {
    type Output = usize;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.frame.add_tasks(graph);
        for t in &self.tasks {
            graph.insert(t.clone());
        }
    }

    fn output_keys(&self) -> Vec<Key> {
        self.tasks.iter().map(|t| t.key.clone()).collect()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<usize> {
        Ok(values
            .iter()
            .filter_map(Value::as_scalar)
            .map(|s| if let brisk_core::Scalar::I64(n) = s { n as usize } else { 0 })
            .sum())
    }
}

fn fail(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::File { path: path.display().to_string(), reason: reason.to_string() }
}

/// Refuses an output path that cannot be written: an existing directory (when
/// writing parts) or a missing parent folder.
pub(crate) fn check_target(path: &Path, one_file: bool) -> Result<()> {
    if !one_file && path.exists() {
        return Err(fail(path, "already exists: remove it or choose another path"));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(fail(path, format!("the folder {} does not exist", parent.display())));
    }
    Ok(())
}

/// An output beside `path` under a temporary name: a file, or a directory.
pub(crate) fn pending(path: &Path, dir: bool) -> Result<PendingOutput> {
    let made =
        if dir { PendingOutput::dir(path) } else { PendingOutput::file(path).map(|(p, _)| p) };
    made.map_err(|e| fail(path, format!("cannot create a temporary output beside it: {e}")))
}

/// Moves a finished output into place.
pub(crate) fn persist(out: PendingOutput, path: &Path) -> Result<()> {
    out.persist()
        .map_err(|e| fail(path, format!("cannot move the finished output into place: {e}")))
}

impl Frame {
    /// Writes the frame as CSV with a header row; returns the rows written. A path
    /// ending in `.csv` gets one file; any other path becomes a directory of
    /// `part-00000.csv`, ... files, one per partition. Everything is written under a
    /// temporary name beside `path` and renamed when complete: on error nothing is
    /// left behind. An existing directory is not replaced. Runs on the default
    /// scheduler.
    pub fn to_csv(&self, path: impl AsRef<Path>) -> Result<usize> {
        self.to_csv_on(path, brisk_scheduler::default_scheduler())
    }

    /// [`to_csv`](Self::to_csv) on `scheduler`.
    pub fn to_csv_on(&self, path: impl AsRef<Path>, scheduler: &Scheduler) -> Result<usize> {
        let path = path.as_ref();
        let one_file = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        check_target(path, one_file)?;
        // Every temporary is removed when dropped unpersisted (on any error) and
        // by a signal handler's `remove_pending`.
        let parts = pending(path, true)?;
        let rows = self.write_parts(parts.path(), one_file, scheduler)?;
        if !one_file {
            persist(parts, path)?;
            return Ok(rows);
        }
        let out = pending(path, false)?;
        concatenate(parts.path(), self.npartitions(), out.path())?;
        drop(parts);
        persist(out, path)?;
        Ok(rows)
    }

    fn write_parts(&self, dir: &Path, one_file: bool, scheduler: &Scheduler) -> Result<usize> {
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, format!("cannot create: {e}")))?;
        let name = token("to-csv", &(self.layer().name(), dir));
        let base = Key::named(name.as_str());
        let tasks = self
            .partition_keys()
            .enumerate()
            .map(|(i, k)| {
                let path = dir.join(format!("part-{i:05}.csv")).to_string_lossy().into_owned();
                let op = Op::data(WriteCsvPart { path, header: !one_file || i == 0 });
                Task::new(base.with_index([i as u32]), op, [k.clone()])
            })
            .collect();
        Ok(scheduler.compute(&Writes { frame: self.clone(), tasks })?)
    }
}

fn concatenate(dir: &Path, parts: usize, out: &Path) -> Result<()> {
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(out).map_err(|e| fail(out, format!("cannot create: {e}")))?,
    );
    for i in 0..parts {
        let p = dir.join(format!("part-{i:05}.csv"));
        let mut r = std::fs::File::open(&p).map_err(|e| fail(&p, e))?;
        std::io::copy(&mut r, &mut w).map_err(|e| fail(out, e))?;
    }
    let file = w.into_inner().map_err(|e| fail(out, e.error()))?;
    file.sync_all().map_err(|e| fail(out, e))
}
