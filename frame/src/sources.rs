//! Where a read takes its files from: a path, a directory, a glob, a URL of an
//! object store (`s3://bucket/2026/*.csv`), or a list of them ([`Sources`]),
//! expanded to sorted file lists; and an [`Input`], one of them opened for
//! reading by position. CSV and Parquet share it.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::error::file_error;
use crate::store::{Location, ObjectReader, StorageOptions, file_url_path, is_url};

/// Where to read from: a path, a directory, a glob, or several of them; local or
/// object-store URLs (`s3://`, `gs://`, `az://`, `abfs://`, `http(s)://`,
/// `file://`), with the [`StorageOptions`] the stores are reached with.
///
/// ```
/// use brisk_frame::{Sources, StorageOptions};
/// let s = Sources::from("s3://bucket/2026/*/part-*.csv")
///     .storage_options(StorageOptions::new().set("region", "eu-west-1"));
/// # let _ = s;
/// ```
#[derive(Clone, Debug)]
pub struct Sources {
    specs: Vec<String>,
    storage: StorageOptions,
}

impl Sources {
    /// The files these name: globs expanded (over object listings for URLs),
    /// directories listed (their files ending in one of `endings`), sorted; an
    /// error names a missing path, a pattern matching nothing or a directory
    /// without such files. URLs are kept as given (a `file://` URL becomes its
    /// path).
    pub fn files(&self, endings: &[&str]) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for spec in &self.specs {
            files.extend(expand(spec, endings, &self.storage)?);
        }
        Ok(files)
    }

    /// With `options` for the object stores the URLs name (Dask's
    /// `storage_options`).
    pub fn storage_options(mut self, options: StorageOptions) -> Self {
        self.storage = options;
        self
    }

    /// The size in bytes of `file` (one of [`files`](Self::files)): a local
    /// file's on disk, an object's in its store.
    pub fn size_of(&self, file: &Path) -> Option<u64> {
        FileStamp::of_path(file, &self.storage).ok().map(|s| s.len())
    }

    /// The object stores' options.
    pub fn storage(&self) -> &StorageOptions {
        &self.storage
    }
}

#[cfg(not(feature = "parquet"))]
impl Sources {
    /// The paths and patterns as given, for messages.
    pub(crate) fn given(&self) -> String {
        self.specs.join(", ")
    }
}

impl From<Vec<String>> for Sources {
    fn from(specs: Vec<String>) -> Self {
        Sources { specs, storage: StorageOptions::default() }
    }
}

impl From<&str> for Sources {
    fn from(s: &str) -> Self {
        Sources::from(vec![s.to_string()])
    }
}

impl From<String> for Sources {
    fn from(s: String) -> Self {
        Sources::from(vec![s])
    }
}

impl From<&Path> for Sources {
    fn from(p: &Path) -> Self {
        Sources::from(vec![p.to_string_lossy().into_owned()])
    }
}

impl From<&PathBuf> for Sources {
    fn from(p: &PathBuf) -> Self {
        Sources::from(p.as_path())
    }
}

impl<S: AsRef<str>> From<&[S]> for Sources {
    fn from(s: &[S]) -> Self {
        Sources::from(s.iter().map(|x| x.as_ref().to_string()).collect::<Vec<_>>())
    }
}

impl From<Vec<&str>> for Sources {
    fn from(s: Vec<&str>) -> Self {
        Sources::from(s.as_slice())
    }
}

impl From<Vec<PathBuf>> for Sources {
    fn from(s: Vec<PathBuf>) -> Self {
        Sources::from(s.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>())
    }
}

/// The objects a URL names: itself, the objects a glob matches, or those under a
/// "directory" ending in one of `endings`, sorted.
fn expand_url(spec: &str, endings: &[&str], storage: &StorageOptions) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    let location = Location::parse(spec, storage).map_err(|e| file_error(path, e))?;
    let found = if spec.contains(['*', '?', '[']) {
        let urls = location.list(Some(spec), endings).map_err(|e| file_error(path, e))?;
        if urls.is_empty() {
            return Err(file_error(path, "the pattern matches no object"));
        }
        urls
    } else if spec.ends_with('/') {
        location.list(None, endings).map_err(|e| file_error(path, e))?
    } else {
        match location.head() {
            Ok(_) => vec![spec.to_string()],
            Err(e) => {
                // Not an object: maybe a "directory" of them (a prefix).
                let under = Location::parse(&format!("{spec}/"), storage)
                    .and_then(|l| l.list(None, endings))
                    .unwrap_or_default();
                if under.is_empty() {
                    return Err(file_error(path, e));
                }
                under
            }
        }
    };
    if found.is_empty() {
        return Err(file_error(path, format!("holds no {} object", endings.join(", "))));
    }
    Ok(found.into_iter().map(PathBuf::from).collect())
}

/// The files a source names, in sorted order for globs and directories (whose files
/// must end with one of `endings`).
fn expand(spec: &str, endings: &[&str], storage: &StorageOptions) -> Result<Vec<PathBuf>> {
    let local;
    let spec = match file_url_path(spec) {
        Some(path) => {
            local = path.map_err(|e| file_error(Path::new(spec), e))?;
            local.to_str().ok_or_else(|| file_error(&local, "not a UTF-8 path"))?
        }
        None if is_url(spec) => return expand_url(spec, endings, storage),
        None => spec,
    };
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

/// The files' modification times (an object's version tag), hashed into a read's
/// layer name so a changed file is never mistaken for a result computed before
/// the change.
pub(crate) fn modified(files: &[PathBuf], storage: &StorageOptions) -> Vec<Option<String>> {
    files
        .iter()
        .map(|p| match p.to_str().filter(|s| is_url(s)) {
            Some(url) => Location::parse(url, storage)
                .and_then(|l| l.head())
                .ok()
                .map(|m| format!("{:?}{}", m.e_tag, m.last_modified)),
            None => std::fs::metadata(p).and_then(|m| m.modified()).ok().map(|t| format!("{t:?}")),
        })
        .collect()
}

/// What a file was when the graph was built: its size, modification time and
/// inode. Each read checks it, so a file truncated, appended to or replaced while
/// a compute runs is an error, never a count over a mix of old and new bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct FileStamp {
    len: u64,
    modified_secs: i64,
    modified_nanos: u32,
    inode: u64,
    /// An object's ETag: every ranged read asks for this version.
    #[serde(default)]
    etag: Option<String>,
}

impl FileStamp {
    /// The stamp of an object (`url`): a HEAD request.
    pub(crate) fn of_object(url: &str, storage: &StorageOptions) -> Result<FileStamp> {
        let path = Path::new(url);
        let meta = Location::parse(url, storage)
            .and_then(|l| l.head())
            .map_err(|e| file_error(path, e))?;
        Ok(FileStamp {
            len: meta.size,
            modified_secs: meta.last_modified.timestamp(),
            modified_nanos: meta.last_modified.timestamp_subsec_nanos(),
            inode: 0,
            etag: meta.e_tag,
        })
    }

    /// The stamp of a local file or an object.
    pub(crate) fn of_path(path: &Path, storage: &StorageOptions) -> Result<FileStamp> {
        match path.to_str().filter(|s| is_url(s)) {
            Some(url) => FileStamp::of_object(url, storage),
            None => std::fs::metadata(path)
                .map(|m| FileStamp::of(&m))
                .map_err(|e| file_error(path, format!("cannot open: {e}"))),
        }
    }

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
        FileStamp { len: meta.len(), modified_secs, modified_nanos, inode, etag: None }
    }

    /// [`check`](Self::check) of a local file; nothing for an object (each of
    /// its reads asks for the version stamped).
    pub(crate) fn recheck(&self, path: &str) -> brisk_core::Result<()> {
        if is_url(path) { Ok(()) } else { self.check(path, None) }
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

/// A file opened for reading by position: a local file, or an object read by
/// ranged requests for the version stamped (a changed object fails the read).
pub(crate) enum Input {
    File(File),
    Object { location: Location, len: u64, etag: Option<String> },
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(file) => f.debug_tuple("File").field(file).finish(),
            Input::Object { location, len, .. } => {
                f.debug_struct("Object").field("url", &location.url()).field("len", len).finish()
            }
        }
    }
}

impl Input {
    /// Opens `path` (a local path or a URL) as it was stamped: a local file that
    /// changed since is an error here, an object at its first read.
    pub(crate) fn open(
        path: &str,
        storage: &StorageOptions,
        stamp: &FileStamp,
    ) -> brisk_core::Result<Input> {
        if is_url(path) {
            let location = Location::parse(path, storage)
                .map_err(|e| brisk_core::Error::user(format!("{path}: {e}")))?;
            return Ok(Input::Object { location, len: stamp.len, etag: stamp.etag.clone() });
        }
        let f = File::open(path)
            .map_err(|e| brisk_core::Error::user(format!("{path}: cannot read: {e}")))?;
        stamp.check(path, Some(&f))?;
        Ok(Input::File(f))
    }

    /// Opens a local file or an object for the stamp it has now.
    pub(crate) fn open_now(path: &Path, storage: &StorageOptions) -> Result<(Input, FileStamp)> {
        let stamp = FileStamp::of_path(path, storage)?;
        let text = path.to_string_lossy();
        let input = Input::open(&text, storage, &stamp)
            .map_err(|e| file_error(path, e.to_string().replace(&format!("{text}: "), "")))?;
        Ok((input, stamp))
    }

    /// Checks that a local file is still the one stamped (an object's version is
    /// checked by every read).
    pub(crate) fn check(&self, path: &str, stamp: &FileStamp) -> brisk_core::Result<()> {
        match self {
            Input::File(f) => stamp.check(path, Some(f)),
            Input::Object { .. } => Ok(()),
        }
    }

    /// Appends up to `n` bytes from `at` to `out` (fewer at the end): their count.
    pub(crate) fn read_into(&self, at: u64, n: usize, out: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Input::File(f) => Positioned { file: f, at }.take(n as u64).read_to_end(out),
            Input::Object { location, len, etag } => {
                let end = at.saturating_add(n as u64).min(*len);
                let bytes = location.read(at.min(end)..end, *len, etag.as_deref())?;
                out.extend_from_slice(&bytes);
                Ok(bytes.len())
            }
        }
    }

    /// The bytes of each of `ranges`, fetched together (an object's in parallel).
    pub(crate) fn read_ranges(&self, ranges: &[Range<u64>]) -> std::io::Result<Vec<bytes::Bytes>> {
        match self {
            Input::File(_) => ranges
                .iter()
                .map(|r| {
                    let mut buf = Vec::new();
                    self.read_into(r.start, (r.end - r.start) as usize, &mut buf)?;
                    Ok(buf.into())
                })
                .collect(),
            Input::Object { location, len, etag } => {
                location.read_ranges(ranges, *len, etag.as_deref())
            }
        }
    }

    /// The bytes `range` as a stream (an object's in one request, or requests
    /// of 64 MiB for a longer range: each costs a round trip).
    pub(crate) fn reader(&self, range: Range<u64>) -> Box<dyn Read + Send + '_> {
        match self {
            Input::File(file) => {
                Box::new(Positioned { file, at: range.start }.take(range.end - range.start))
            }
            Input::Object { location, len, etag } => Box::new(ObjectReader::new(
                location.clone(),
                (*len, etag.clone()),
                range.start.min(*len)..range.end.min(*len),
                (range.end - range.start).clamp(1, 64 << 20),
            )),
        }
    }

    /// The whole file as a stream, front to back.
    pub(crate) fn into_reader(self) -> std::io::Result<Box<dyn Read + Send>> {
        match self {
            Input::File(f) => Ok(Box::new(f)),
            Input::Object { location, len, etag } => {
                Ok(Box::new(ObjectReader::new(location, (len, etag), 0..len, 8 << 20)))
            }
        }
    }
}

/// A file read from a position on without moving its handle's own (`pread`), so
/// tasks can share one handle.
struct Positioned<'a> {
    file: &'a File,
    at: u64,
}

impl Read for Positioned<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.at)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.at)?;
        // Elsewhere, seek and read: right while one task reads a handle at a time.
        #[cfg(not(any(unix, windows)))]
        let n = {
            use std::io::Seek;
            let mut f = self.file;
            f.seek(std::io::SeekFrom::Start(self.at))?;
            f.read(buf)?
        };
        self.at += n as u64;
        Ok(n)
    }
}
