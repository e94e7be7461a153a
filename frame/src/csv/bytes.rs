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

    /// The file's decompressed bytes, as a stream.
    pub(super) fn reader(self, path: &Path) -> std::io::Result<Box<dyn Read>> {
        let f = File::open(path)?;
        Ok(match self {
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
        })
    }

    /// Up to `limit` decompressed bytes of the file.
    pub(super) fn decode(self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader(path)?.take(limit as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    /// About how many bytes the file decompresses to, to plan its blocks: what its
    /// own header or trailer says where that can be trusted (a gzip file's last
    /// four bytes, the decoded size mod 2^32, from files under 256 MiB; a zstd
    /// frame's content size), else counted by decoding it once. Only the block
    /// sizes depend on it: the blocks split what the file really holds.
    pub(super) fn decoded_len(self, path: &Path) -> std::io::Result<u64> {
        use std::io::{Seek, SeekFrom};
        let mut f = File::open(path)?;
        let on_disk = f.metadata()?.len();
        // A file decodes to more than its size: a smaller figure is a wrapped or
        // partial one (a gzip file of several members gives its last one's).
        let plausible = |n: u64| (n >= on_disk).then_some(n);
        let told = match self {
            Compression::Gzip if (18..256 << 20).contains(&on_disk) => {
                let mut isize = [0u8; 4];
                f.seek(SeekFrom::End(-4))?;
                f.read_exact(&mut isize)?;
                plausible(u64::from(u32::from_le_bytes(isize)))
            }
            #[cfg(feature = "compression")]
            Compression::Zstd => {
                let mut head = Vec::with_capacity(18);
                (&mut f).take(18).read_to_end(&mut head)?;
                zstd::zstd_safe::get_frame_content_size(&head).ok().flatten().and_then(plausible)
            }
            _ => None,
        };
        match told {
            Some(n) => Ok(n),
            None => std::io::copy(&mut self.reader(path)?, &mut std::io::sink()),
        }
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
                let bytes = c.decode(path, limit + 1)?;
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
