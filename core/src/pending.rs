//! Outputs written under a temporary name beside their target and moved into
//! place only when complete, so a reader never sees half a file and nothing is
//! lost when a write fails. Every one in progress is listed, so a signal handler
//! (which cannot wait for the writes to unwind) removes them all with
//! [`remove_pending`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary paths of the outputs being written now, and whether
/// [`remove_pending`] has run (the process is stopping: nothing new is listed).
static PENDING: Mutex<(Vec<PathBuf>, bool)> = Mutex::new((Vec::new(), false));

fn pending() -> std::sync::MutexGuard<'static, (Vec<PathBuf>, bool)> {
    PENDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes a temporary output. A directory is renamed first: a writer still
/// adding parts to it then fails to open them instead of adding one while it
/// is being removed (which would leave it behind).
fn remove(tmp: &Path) {
    let doomed = tmp.with_extension("removing");
    if std::fs::rename(tmp, &doomed).is_ok() {
        let _ = std::fs::remove_dir_all(&doomed);
        let _ = std::fs::remove_file(&doomed);
    }
}

/// An output being written under a temporary name (a file or a directory of
/// parts): [`persist`](Self::persist) moves it into place; dropped unpersisted,
/// it is removed.
///
/// ```
/// use std::io::Write;
/// let dir = std::env::temp_dir().join(format!("brisk-doc-pending-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let target = dir.join("out.txt");
/// let (out, mut file) = brisk_core::PendingOutput::file(&target)?;
/// file.write_all(b"done")?;
/// assert!(!target.exists());
/// out.persist()?;
/// assert_eq!(std::fs::read_to_string(&target)?, "done");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct PendingOutput {
    tmp: PathBuf,
    target: PathBuf,
}

impl PendingOutput {
    /// The directory the temporary goes in (the target's) and its name's prefix.
    fn beside(target: &Path) -> (PathBuf, String) {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (parent, format!(".{name}."))
    }

    /// A new empty file beside `target` (a unique hidden name in its directory),
    /// open for writing.
    pub fn file(target: &Path) -> std::io::Result<(PendingOutput, File)> {
        let (parent, prefix) = Self::beside(target);
        let tmp = builder(&prefix, 0o666).tempfile_in(parent)?;
        let (file, tmp) = tmp.keep().map_err(|e| e.error)?;
        Ok((Self::listed(tmp, target)?, file))
    }

    /// A new empty directory beside `target`.
    pub fn dir(target: &Path) -> std::io::Result<PendingOutput> {
        let (parent, prefix) = Self::beside(target);
        let tmp = builder(&prefix, 0o777).tempdir_in(parent)?;
        Self::listed(tmp.keep(), target)
    }

    fn listed(tmp: PathBuf, target: &Path) -> std::io::Result<PendingOutput> {
        let mut list = pending();
        if list.1 {
            // Made after the signal handler removed the others: not kept either.
            drop(list);
            remove(&tmp);
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the process is stopping",
            ));
        }
        list.0.push(tmp.clone());
        Ok(PendingOutput { tmp, target: target.to_path_buf() })
    }

    /// Where the output is being written.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished output onto its target (replacing a file there).
    pub fn persist(self) -> std::io::Result<()> {
        std::fs::rename(&self.tmp, &self.target)?;
        pending().0.retain(|p| p != &self.tmp);
        // Nothing left to remove: the drop finds no path.
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        let mut list = pending();
        if let Some(i) = list.0.iter().position(|p| p == &self.tmp) {
            list.0.swap_remove(i);
            drop(list);
            remove(&self.tmp);
        }
    }
}

/// A unique hidden name starting with `prefix`, created with `mode` less the
/// umask (as any file a program creates; tempfile's default, owner-only, would
/// carry over to the finished output).
fn builder(prefix: &str, mode: u32) -> tempfile::Builder<'_, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(".brisk-tmp");
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
    #[cfg(not(unix))]
    let _ = mode;
    b
}

/// Removes every output still being written, and refuses new ones: for a
/// signal handler, before the process exits.
pub fn remove_pending() {
    let list = {
        let mut list = pending();
        list.1 = true;
        std::mem::take(&mut list.0)
    };
    for tmp in list {
        remove(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_outputs_are_removed_by_drop_or_by_remove_pending() {
        let dir = std::env::temp_dir().join(format!("brisk-pending-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        #[cfg(unix)]
        a_persisted_file_has_the_usual_permissions(&dir);
        let (file, _) = PendingOutput::file(&dir.join("a.csv")).unwrap();
        let tmp = file.path().to_path_buf();
        assert!(tmp.exists() && tmp.file_name().unwrap().to_string_lossy().starts_with(".a.csv."));
        drop(file);
        assert!(!tmp.exists(), "dropped unpersisted: removed");
        let parts = PendingOutput::dir(&dir.join("b")).unwrap();
        std::fs::write(parts.path().join("part-00000.csv"), "x").unwrap();
        let (file, _) = PendingOutput::file(&dir.join("c.csv")).unwrap();
        remove_pending();
        assert!(!parts.path().exists() && !file.path().exists());
        // What the handler removed, the drops leave alone.
        drop((parts, file));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }

    /// (In the test above, not beside it: `remove_pending` there would race with
    /// a pending output here.)
    #[cfg(unix)]
    fn a_persisted_file_has_the_usual_permissions(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let plain = dir.join("plain");
        std::fs::write(&plain, "").unwrap();
        let target = dir.join("out");
        PendingOutput::file(&target).unwrap().0.persist().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // As any file this process creates (the umask applied), not owner-only.
        assert_eq!(mode(&target), mode(&plain));
        std::fs::remove_file(plain).unwrap();
        std::fs::remove_file(target).unwrap();
    }
}
