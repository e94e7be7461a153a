//! A CSV file's bytes by offset: read from disk or an object store, or, for a
//! gzip or zstd file (chosen by extension), from a decompressed copy.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::file_error;
use crate::sources::{FileStamp, Input};
use crate::store::StorageOptions;

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
    pub(super) fn reader(self, input: Input) -> std::io::Result<Box<dyn Read>> {
        let f = input.into_reader()?;
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
    pub(super) fn decode(self, input: Input, limit: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader(input)?.take(limit as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    /// How many bytes the file decompresses to, counted by decoding it once (no
    /// allocation beyond the decoder's): the block count is planned from it. The
    /// size a file's own trailer or header tells is not enough: a gzip trailer
    /// has it modulo 4 GiB and for its last member only, a zstd header for its
    /// first frame only, and blocks planned from a short figure would each hold
    /// several times the memory the budget was told.
    pub(super) fn decoded_len(self, input: Input) -> std::io::Result<u64> {
        let mut reader = self.reader(input)?;
        // Large reads: the decoders are several times slower 8 KiB at a time.
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(len),
                Ok(n) => len += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Bytes of a file by offset: read from disk or a store, or from a decompressed
/// copy.
pub(super) enum FileBytes {
    Plain(Input),
    Decoded(Vec<u8>),
}

impl FileBytes {
    /// The file (`input`, of `len` bytes, at `path`) and its length; a compressed
    /// file decoded up to `limit` bytes (its length is then unknown, `u64::MAX`,
    /// unless the whole of it fit).
    pub(super) fn open(
        path: &Path,
        input: Input,
        len: u64,
        limit: usize,
    ) -> std::io::Result<(FileBytes, u64)> {
        match Compression::of(path) {
            Compression::None => Ok((FileBytes::Plain(input), len)),
            c => {
                let bytes = c.decode(input, limit + 1)?;
                let len = if bytes.len() > limit { u64::MAX } else { bytes.len() as u64 };
                Ok((FileBytes::Decoded(bytes), len))
            }
        }
    }

    /// Opens `path` (a local path or a URL) as it is now: its bytes as
    /// [`open`](Self::open) gives them, its length and its stamp.
    pub(super) fn open_path(
        path: &Path,
        storage: &StorageOptions,
        limit: usize,
    ) -> crate::Result<(FileBytes, u64, FileStamp)> {
        let (input, stamp) = Input::open_now(path, storage)?;
        let (bytes, len) = FileBytes::open(path, input, stamp.len(), limit)
            .map_err(|e| file_error(path, format!("cannot open: {e}")))?;
        Ok((bytes, len, stamp))
    }

    pub(super) fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        match self {
            FileBytes::Plain(f) => {
                let mut buf = Vec::with_capacity(len);
                f.read_into(offset, len, &mut buf)?;
                Ok(buf)
            }
            FileBytes::Decoded(b) => {
                let start = (offset as usize).min(b.len());
                Ok(b[start..(start + len).min(b.len())].to_vec())
            }
        }
    }
}
