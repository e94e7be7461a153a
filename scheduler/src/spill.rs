//! The spill store: results written to a temporary directory with the value codec
//! when held results exceed the memory budget, read back when a dependent needs
//! them. The directory is created on the first spill and removed when the store is
//! dropped — when the compute ends, fails or a task panics — and by
//! [`remove_spill_dirs`] from an interrupt handler.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use brisk_core::{Error, Value};

use crate::primitives::{AtomicU64, AtomicUsize, Ordering};

/// Where a compute's spilled results go.
pub(crate) struct SpillStore {
    /// The directory spill directories are made in.
    base: PathBuf,
    dir: OnceLock<std::io::Result<PathBuf>>,
    /// Bytes written and read back (encoded sizes).
    pub(crate) written: AtomicU64,
    pub(crate) read: AtomicU64,
}

/// The prefix of every spill directory of this process.
fn prefix() -> String {
    format!("brisk-spill-{}-", std::process::id())
}

/// Removes every spill directory this process has in the temporary directory: for
/// an interrupt handler, which cannot wait for the compute to unwind.
pub fn remove_spill_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    let prefix = prefix();
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            // Workers may still be spilling. Renaming first means no new file can
            // appear in the directory being removed (writers open files by the old
            // path), so removing it cannot race with them.
            let path = entry.path();
            let doomed = path.with_extension("removing");
            let target = if std::fs::rename(&path, &doomed).is_ok() { doomed } else { path };
            let _ = std::fs::remove_dir_all(target);
        }
    }
}

impl SpillStore {
    /// A store making its directory in `base` (the system's temporary directory
    /// when `None`).
    pub(crate) fn new(base: Option<PathBuf>) -> Self {
        SpillStore {
            base: base.unwrap_or_else(std::env::temp_dir),
            dir: OnceLock::new(),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    fn dir(&self) -> Result<&Path, Error> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = self.dir.get_or_init(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = self.base.join(format!("{}{n}", prefix()));
            std::fs::create_dir_all(&dir).map(|()| dir)
        });
        match dir {
            Ok(d) => Ok(d),
            Err(e) => Err(Error::user(format!(
                "cannot create a spill directory in {}: {e}; choose a writable disk (TMPDIR, or the scheduler's spill directory) or raise the memory limit",
                self.base.display()
            ))),
        }
    }

    /// Writes the result of task `i`; its file.
    pub(crate) fn write(&self, i: usize, value: &Value) -> Result<PathBuf, Error> {
        let bytes = value.encode()?;
        let path = self.dir()?.join(format!("{i}.bin"));
        std::fs::write(&path, &bytes).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            Error::user(format!(
                "spilling {} bytes to {}: {e}; free disk space there (or point TMPDIR elsewhere) or raise the memory limit",
                bytes.len(),
                path.display()
            ))
        })?;
        self.written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(path)
    }

    /// Reads a spilled result back; the file is removed when `last`.
    pub(crate) fn read(&self, path: &Path, last: bool) -> Result<Value, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::user(format!("reading back {}: {e}", path.display())))?;
        self.read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if last {
            let _ = std::fs::remove_file(path);
        }
        Value::decode(&bytes)
    }
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        if let Some(Ok(dir)) = self.dir.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
