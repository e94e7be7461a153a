//! The spill store: results written to a file with the value codec when held
//! results exceed the memory budget, read back when a dependent needs them.
//!
//! The file has no name: it is made with `tempfile` (`O_TMPFILE`, or unlinked
//! right after it is opened), so the open handle is all that keeps it, and the
//! system takes it back when the process ends however it ends — an interrupt,
//! SIGTERM or SIGKILL leaves nothing behind. Directories left by earlier versions
//! that named their spill files (`brisk-spill-PID-N`) are removed when a later
//! compute first spills, if their process is gone. The space of a result that
//! will not be read again is reused by later spills.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use brisk_core::{Error, Value};

use crate::primitives::{AtomicU64, Ordering};

/// Where a spilled result is in the spill file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spilled {
    offset: u64,
    len: u64,
}

/// The spill file's space: free extents (offset to length, neighbours merged)
/// and the end of the used part.
#[derive(Default)]
struct Space {
    free: BTreeMap<u64, u64>,
    end: u64,
}

impl Space {
    /// Room for `len` bytes: the first free extent that holds them, else the end.
    fn take(&mut self, len: u64) -> u64 {
        let found = self.free.iter().find(|&(_, &l)| l >= len).map(|(&o, &l)| (o, l));
        match found {
            Some((offset, l)) => {
                self.free.remove(&offset);
                if l > len {
                    self.free.insert(offset + len, l - len);
                }
                offset
            }
            None => {
                let offset = self.end;
                self.end += len;
                offset
            }
        }
    }

    /// Gives an extent back, merged with free neighbours; free space at the end
    /// shortens the used part.
    fn give(&mut self, at: Spilled) {
        let (mut offset, mut len) = (at.offset, at.len);
        if let Some((&o, &l)) = self.free.range(..offset).next_back()
            && o + l == offset
        {
            self.free.remove(&o);
            offset = o;
            len += l;
        }
        if let Some(l) = self.free.remove(&(offset + len)) {
            len += l;
        }
        if offset + len == self.end {
            self.end = offset;
        } else {
            self.free.insert(offset, len);
        }
    }
}

/// Where a compute's (or a worker process's) spilled results go: one unnamed
/// file (one rather than one per result: creating and removing thousands of
/// small files cost more than writing them).
pub struct SpillStore {
    /// The directory the file is made in.
    base: PathBuf,
    file: OnceLock<std::io::Result<File>>,
    space: Mutex<Space>,
    /// The file's largest size.
    pub(crate) high_water: AtomicU64,
    /// Bytes written and read back (encoded sizes).
    pub(crate) written: AtomicU64,
    pub(crate) read: AtomicU64,
}

/// Removes spill directories in `base` left by processes that are gone (earlier
/// versions named their spill files, and a killed process could not remove them).
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("brisk-spill-").and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a process is running (where the system lists them in /proc; elsewhere
/// every process is taken as alive, so nothing of a live one is removed).
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

impl SpillStore {
    /// A store making its file in `base` (the system's temporary directory when
    /// `None`).
    pub fn new(base: Option<PathBuf>) -> Self {
        SpillStore {
            base: base.unwrap_or_else(std::env::temp_dir),
            file: OnceLock::new(),
            space: Mutex::new(Space::default()),
            high_water: AtomicU64::new(0),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    /// The spill file, made on first use.
    fn file(&self) -> Result<&File, Error> {
        let file = self.file.get_or_init(|| {
            remove_stale_dirs(&self.base);
            tempfile::tempfile_in(&self.base)
        });
        match file {
            Ok(f) => Ok(f),
            Err(e) => Err(Error::user(format!(
                "cannot create a spill file in {}: {e}; choose a writable disk (TMPDIR, or the scheduler's spill directory) or raise the memory limit",
                self.base.display()
            ))),
        }
    }

    fn space(&self) -> std::sync::MutexGuard<'_, Space> {
        self.space.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes a result into free space of the spill file (or at its end); where
    /// it went.
    pub fn write(&self, value: &Value) -> Result<Spilled, Error> {
        let bytes = value.encode()?;
        let file = self.file()?;
        let len = bytes.len() as u64;
        let (offset, end) = {
            let mut space = self.space();
            let offset = space.take(len);
            (offset, space.end)
        };
        let at = Spilled { offset, len };
        if let Err(e) = write_at(file, &bytes, offset) {
            self.free(at);
            return Err(Error::user(format!(
                "spilling {len} bytes to {}: {e}; free disk space there (or point TMPDIR elsewhere) or raise the memory limit",
                self.base.display()
            )));
        }
        self.high_water.fetch_max(end, Ordering::Relaxed);
        self.written.fetch_add(len, Ordering::Relaxed);
        Ok(at)
    }

    /// Reads a spilled result back.
    pub fn read(&self, at: &Spilled) -> Result<Value, Error> {
        Value::decode(&self.read_encoded(at)?)
    }

    /// Reads a spilled result's bytes back, as [`Value::encode`] made them.
    pub fn read_encoded(&self, at: &Spilled) -> Result<Vec<u8>, Error> {
        let mut bytes = vec![0; at.len as usize];
        read_at(self.file()?, &mut bytes, at.offset).map_err(|e| {
            Error::user(format!("reading back spilled bytes in {}: {e}", self.base.display()))
        })?;
        self.read.fetch_add(at.len, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Bytes written to the file so far (encoded sizes).
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Reads a spilled result back for the last time: its space is free after.
    pub fn take(&self, at: Spilled) -> Result<Value, Error> {
        let value = self.read(&at);
        self.free(at);
        value
    }

    /// Frees the space of a result that will not be read again. Its reader must
    /// be done with it: the space goes to the next spill.
    pub fn free(&self, at: Spilled) {
        self.space().give(at);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_space_is_reused_and_merged() {
        let mut space = Space::default();
        let a = Spilled { offset: space.take(100), len: 100 };
        let b = Spilled { offset: space.take(50), len: 50 };
        let c = Spilled { offset: space.take(30), len: 30 };
        assert_eq!((a.offset, b.offset, c.offset, space.end), (0, 100, 150, 180));
        space.give(a);
        // Fits in a's place; what is left of it stays free.
        assert_eq!(space.take(60), 0);
        assert_eq!(space.take(60), 180, "40 bytes left at 60 are too few");
        space.give(b);
        space.give(Spilled { offset: 0, len: 60 });
        // 0..60, 60..100 and 100..150 merged into one extent.
        assert_eq!(space.free.iter().collect::<Vec<_>>(), vec![(&0, &150)]);
        space.give(c);
        space.give(Spilled { offset: 180, len: 60 });
        assert_eq!((space.end, space.free.len()), (0, 0), "all free: the file is empty");
    }

    #[test]
    fn a_spill_file_has_no_name_and_stale_directories_go() {
        let base = std::env::temp_dir().join(format!("brisk-spill-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        // A directory of a process that is gone (no pid is that large), and one
        // of this process.
        let stale = base.join("brisk-spill-999999999-0");
        let ours = base.join(format!("brisk-spill-{}-0", std::process::id()));
        for d in [&stale, &ours] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("spill.bin"), b"x").unwrap();
        }
        let store = SpillStore::new(Some(base.clone()));
        let at = store.write(&Value::from(7i64)).unwrap();
        assert!(matches!(store.take(at).unwrap().as_scalar(), Some(brisk_core::Scalar::I64(7))));
        let left: Vec<_> = std::fs::read_dir(&base).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(left, vec![ours.clone()], "the stale directory went; the file has no name");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
