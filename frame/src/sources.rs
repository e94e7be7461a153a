//! Where a read takes its files from: a path, a directory, a glob, or a list of
//! them ([`Sources`]), expanded to sorted file lists. CSV and Parquet share it.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::error::file_error;

/// Where to read from: a path, a directory, a glob, or several of them.
#[derive(Clone, Debug)]
pub struct Sources(Vec<String>);

impl Sources {
    /// The files these name: globs expanded, directories listed (their files ending
    /// in one of `endings`), sorted; an error names a missing path, a pattern
    /// matching nothing or a directory without such files.
    pub fn files(&self, endings: &[&str]) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for spec in &self.0 {
            files.extend(expand(spec, endings)?);
        }
        Ok(files)
    }
}

#[cfg(not(feature = "parquet"))]
impl Sources {
    /// The paths and patterns as given, for messages.
    pub(crate) fn given(&self) -> String {
        self.0.join(", ")
    }
}

impl From<&str> for Sources {
    fn from(s: &str) -> Self {
        Sources(vec![s.to_string()])
    }
}

impl From<String> for Sources {
    fn from(s: String) -> Self {
        Sources(vec![s])
    }
}

impl From<&Path> for Sources {
    fn from(p: &Path) -> Self {
        Sources(vec![p.to_string_lossy().into_owned()])
    }
}

impl From<&PathBuf> for Sources {
    fn from(p: &PathBuf) -> Self {
        Sources::from(p.as_path())
    }
}

impl<S: AsRef<str>> From<&[S]> for Sources {
    fn from(s: &[S]) -> Self {
        Sources(s.iter().map(|x| x.as_ref().to_string()).collect())
    }
}

impl<S: AsRef<str>> From<Vec<S>> for Sources {
    fn from(s: Vec<S>) -> Self {
        Sources::from(s.as_slice())
    }
}

/// The files a source names, in sorted order for globs and directories (whose files
/// must end with one of `endings`).
fn expand(spec: &str, endings: &[&str]) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    if spec.contains(['*', '?', '[']) {
        let paths =
            glob::glob(spec).map_err(|e| file_error(path, format!("bad glob pattern: {e}")))?;
        let mut files: Vec<PathBuf> =
            paths.filter_map(std::result::Result::ok).filter(|p| p.is_file()).collect();
        files.sort();
        if files.is_empty() {
            return Err(file_error(path, "the pattern matches no file"));
        }
        return Ok(files);
    }
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| file_error(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                p.is_file() && endings.iter().any(|e| name.ends_with(e))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(file_error(
                path,
                format!("the directory holds no {} file", endings.join(", ")),
            ));
        }
        return Ok(files);
    }
    if !path.exists() {
        return Err(file_error(path, "no such file"));
    }
    Ok(vec![path.to_path_buf()])
}

/// The files' modification times, hashed into a read's layer name so a changed
/// file is never mistaken for a result computed before the change.
pub(crate) fn modified(files: &[PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    files.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

/// What a file was when the graph was built: its size, modification time and
/// inode. Each read checks it, so a file truncated, appended to or replaced while
/// a compute runs is an error, never a count over a mix of old and new bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct FileStamp {
    len: u64,
    modified_secs: i64,
    modified_nanos: u32,
    inode: u64,
}

impl FileStamp {
    /// The file's size when stamped.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The stamp of a file's metadata.
    pub(crate) fn of(meta: &std::fs::Metadata) -> FileStamp {
        let (modified_secs, modified_nanos) = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_nanos()));
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp { len: meta.len(), modified_secs, modified_nanos, inode }
    }

    /// An error naming `path` when the file at `path` (or the open `file`) is no
    /// longer the one stamped.
    pub(crate) fn check(&self, path: &str, file: Option<&std::fs::File>) -> brisk_core::Result<()> {
        let meta = match file {
            Some(f) => f.metadata(),
            None => std::fs::metadata(path),
        };
        let now = match meta {
            Ok(meta) => FileStamp::of(&meta),
            Err(e) => {
                return Err(brisk_core::Error::user(format!(
                    "{path} changed while it was being read: it is gone ({e}); rerun when it is complete"
                )));
            }
        };
        if now == *self {
            return Ok(());
        }
        let how = if now.len != self.len {
            format!("size was {}, now {}", self.len, now.len)
        } else if now.inode != self.inode {
            "it was replaced by another file".to_string()
        } else {
            "it was modified".to_string()
        };
        Err(brisk_core::Error::user(format!(
            "{path} changed while it was being read: {how}; rerun when it is complete"
        )))
    }
}
