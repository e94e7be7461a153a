//! The spill store: results written to a file in a temporary directory with the
//! value codec when held results exceed the memory budget, read back when a
//! dependent needs them. The directory is created on the first spill and removed when the store is
//! dropped — when the compute ends, fails or a task panics — and by
//! [`remove_spill_dirs`] from an interrupt handler.

use std::fs::File;
use std::path::PathBuf;
use std::sync::OnceLock;

use brisk_core::{Error, Value};

use crate::primitives::{AtomicU64, AtomicUsize, Ordering};

/// Where a spilled result is in the spill file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spilled {
    offset: u64,
    len: u64,
}

/// Where a compute's spilled results go: one file, appended to, in a directory of
/// the compute's own (one file rather than one per result: creating and removing
/// thousands of small files cost more than writing them). Its space comes back
/// when the compute ends.
pub(crate) struct SpillStore {
    /// The directory spill directories are made in.
    base: PathBuf,
    /// The compute's spill directory and the file in it.
    file: OnceLock<std::io::Result<(PathBuf, File)>>,
    /// Where the next result goes in the file.
    end: AtomicU64,
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
            file: OnceLock::new(),
            end: AtomicU64::new(0),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    /// The spill file, with its directory made on first use.
    fn file(&self) -> Result<&File, Error> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let file = self.file.get_or_init(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = self.base.join(format!("{}{n}", prefix()));
            std::fs::create_dir_all(&dir)?;
            let file = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(dir.join("spill.bin"))?;
            Ok((dir, file))
        });
        match file {
            Ok((_, f)) => Ok(f),
            Err(e) => Err(Error::user(format!(
                "cannot create a spill file in {}: {e}; choose a writable disk (TMPDIR, or the scheduler's spill directory) or raise the memory limit",
                self.base.display()
            ))),
        }
    }

    /// Writes a result at the end of the spill file; where it went.
    pub(crate) fn write(&self, value: &Value) -> Result<Spilled, Error> {
        let bytes = value.encode()?;
        let file = self.file()?;
        let len = bytes.len() as u64;
        let offset = self.end.fetch_add(len, Ordering::AcqRel);
        write_at(file, &bytes, offset).map_err(|e| {
            Error::user(format!(
                "spilling {len} bytes to {}: {e}; free disk space there (or point TMPDIR elsewhere) or raise the memory limit",
                self.base.display()
            ))
        })?;
        self.written.fetch_add(len, Ordering::Relaxed);
        Ok(Spilled { offset, len })
    }

    /// Reads a spilled result back.
    pub(crate) fn read(&self, at: &Spilled) -> Result<Value, Error> {
        let mut bytes = vec![0; at.len as usize];
        read_at(self.file()?, &mut bytes, at.offset).map_err(|e| {
            Error::user(format!("reading back spilled bytes in {}: {e}", self.base.display()))
        })?;
        self.read.fetch_add(at.len, Ordering::Relaxed);
        Value::decode(&bytes)
    }
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(unix)]
fn read_at(file: &File, bytes: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, bytes, offset)?;
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn read_at(file: &File, mut bytes: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, bytes, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes = &mut bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        if let Some(Ok((dir, _))) = self.file.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
