//! A CSV file's bytes by offset: read from disk, or, for a gzip or zstd file
//! (chosen by extension), from a decompressed copy.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Reads `len` bytes at `offset` (fewer at the end of the file).
fn read_at(mut f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Seek;
    // Seek and read to the end of the range: the buffer is filled without being
    // zeroed first (a task's file handle is its own, so the position is too).
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// How a file is compressed, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(super) fn of(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("gz") => Compression::Gzip,
            Some("zst" | "zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// Up to `limit` decompressed bytes of the file (all of them without a limit).
    pub(super) fn decode(self, path: &Path, limit: Option<usize>) -> std::io::Result<Vec<u8>> {
        let f = File::open(path)?;
        let mut reader: Box<dyn Read> = match self {
            #[cfg(feature = "compression")]
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
            #[cfg(feature = "compression")]
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(f)?),
            // `read_csv` refuses such files; an op built by a binary with the
            // feature can still arrive here.
            #[cfg(not(feature = "compression"))]
            Compression::Gzip | Compression::Zstd => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "a compressed file needs brisk-frame's `compression` feature",
                ));
            }
            Compression::None => Box::new(f),
        };
        let mut out = Vec::new();
        match limit {
            Some(n) => reader.take(n as u64).read_to_end(&mut out)?,
            None => reader.read_to_end(&mut out)?,
        };
        Ok(out)
    }
}

/// Bytes of a file by offset: read from disk, or from a decompressed copy.
pub(super) enum FileBytes {
    File(File),
    Decoded(Vec<u8>),
}

impl FileBytes {
    /// The file and its length; a compressed file decoded up to `limit` bytes (its
    /// length is then unknown, `u64::MAX`, unless the whole of it fit).
    pub(super) fn open(path: &Path, limit: usize) -> std::io::Result<(FileBytes, u64)> {
        match Compression::of(path) {
            Compression::None => {
                let f = File::open(path)?;
                let len = f.metadata()?.len();
                Ok((FileBytes::File(f), len))
            }
            c => {
                let bytes = c.decode(path, Some(limit + 1))?;
                let len = if bytes.len() > limit { u64::MAX } else { bytes.len() as u64 };
                Ok((FileBytes::Decoded(bytes), len))
            }
        }
    }

    pub(super) fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        match self {
            FileBytes::File(f) => read_at(f, offset, len),
            FileBytes::Decoded(b) => {
                let start = (offset as usize).min(b.len());
                Ok(b[start..(start + len).min(b.len())].to_vec())
            }
        }
    }
}
