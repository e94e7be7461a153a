//! Writing frames: `to_csv`, one file or a directory of parts, always written
//! under a temporary name beside the target and renamed when complete; to an
//! object store, written locally under a temporary directory and uploaded (an
//! object appears only once its upload completes).

use std::path::Path;

use brisk_core::{Error as CoreError, Key, Op, OpKind, PendingOutput, Value};
use brisk_graph::{Collection, GraphBuilder, Task, token};
use brisk_scheduler::Scheduler;
use serde::{Deserialize, Serialize};

use crate::batches::first_batch;
use crate::frame::Frame;
use crate::store::{Location, StorageOptions, is_url};
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

/// The URL `path` names, if it is one (not a local path).
pub(crate) fn url_of(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| is_url(s) && crate::store::file_url_path(s).is_none())
}

/// The local path a `file://` URL names.
pub(crate) fn local_of(path: &Path) -> Result<Option<std::path::PathBuf>> {
    match path.to_str().and_then(crate::store::file_url_path) {
        Some(local) => local.map(Some).map_err(|e| fail(path, e)),
        None => Ok(None),
    }
}

/// Writes an output to the object at `url` (one file, named `file`) or to
/// objects under it (a directory's files): `write` writes it into a local
/// temporary directory, then each file is uploaded, an object appearing only
/// once its upload completes. Parts under a URL that already holds objects are
/// refused; if one part fails, those uploaded are removed.
pub(crate) fn write_to_store(
    url: &str,
    storage: &StorageOptions,
    one_file: bool,
    file: &str,
    write: impl FnOnce(&Path) -> Result<usize>,
) -> Result<usize> {
    let path = Path::new(url);
    let target = Location::parse(url, storage).map_err(|e| fail(path, e))?;
    let base = url.trim_end_matches('/');
    let under = |name: &str| Location::parse(&format!("{base}/{name}"), storage);
    if !one_file {
        let held = under("").and_then(|l| l.list(None, &[""])).map_err(|e| fail(path, e))?;
        if !held.is_empty() {
            return Err(fail(path, "already holds objects: remove them or choose another URL"));
        }
    }
    // Staged in the system's temporary directory, listed as pending: removed
    // when done, on failure and on an interrupt.
    let staging = std::env::temp_dir().join(format!("brisk-upload-{}", std::process::id()));
    let dir = PendingOutput::dir(&staging).map_err(|e| {
        fail(path, format!("cannot make a temporary directory in {} to write into before uploading: {e}; set TMPDIR to a directory with room", std::env::temp_dir().display()))
    })?;
    let local = dir.path().join(if one_file { file } else { "parts" });
    let rows = write(&local)?;
    if one_file {
        target.upload(&local).map_err(|e| fail(path, e))?;
        return Ok(rows);
    }
    let mut names: Vec<String> = std::fs::read_dir(&local)
        .map_err(|e| fail(&local, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let mut done: Vec<Location> = Vec::new();
    for name in &names {
        let sent = under(name).and_then(|l| l.upload(&local.join(name)).map(|()| l));
        match sent {
            Ok(l) => done.push(l),
            Err(e) => {
                for l in &done {
                    let _ = l.delete();
                }
                return Err(fail(Path::new(&format!("{base}/{name}")), e));
            }
        }
    }
    Ok(rows)
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
    ///
    /// `path` may be an object-store URL (`s3://bucket/out.csv`,
    /// `gs://bucket/parts/`): the output is written locally under a temporary
    /// directory and uploaded, each object appearing only once complete.
    pub fn to_csv(&self, path: impl AsRef<Path>) -> Result<usize> {
        self.to_csv_on(path, brisk_scheduler::default_scheduler())
    }

    /// [`to_csv`](Self::to_csv) on `scheduler`.
    pub fn to_csv_on(&self, path: impl AsRef<Path>, scheduler: &Scheduler) -> Result<usize> {
        self.to_csv_with(path, &StorageOptions::default(), scheduler)
    }

    /// [`to_csv_on`](Self::to_csv_on) with `storage` for an object-store URL.
    pub fn to_csv_with(
        &self,
        path: impl AsRef<Path>,
        storage: &StorageOptions,
        scheduler: &Scheduler,
    ) -> Result<usize> {
        let path = path.as_ref();
        let one_file = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if let Some(local) = local_of(path)? {
            return self.to_csv_with(local, storage, scheduler);
        }
        if let Some(url) = url_of(path) {
            let write = |local: &Path| self.to_csv_with(local, storage, scheduler);
            return write_to_store(url, storage, one_file, "out.csv", write);
        }
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
