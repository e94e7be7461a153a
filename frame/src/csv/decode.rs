//! A gzip or zstd CSV file read in blocks like a plain one: one task decodes the
//! stream once into an unnamed temporary file (gone with the process, whatever
//! ends it) and finds the quoting state where each block begins; the file's
//! block reads then take their byte ranges from that copy through the budget, as
//! a plain file's do. Memory stays at the decoder's buffers and one block per
//! running read, not the whole decoded file.

use std::fs::File;
use std::io::{Read, Write};

use brisk_core::{Error as CoreError, OpKind, Opaque, Value};
use serde::{Deserialize, Serialize};

use super::bytes::Compression;
use super::scan::{Quoting, Syntax};
use super::split::{block_starts, state_map};
use crate::sources::{FileStamp, Input};
use crate::store::StorageOptions;

/// A compressed file's decoded copy and how its blocks split it.
#[derive(Debug)]
pub(super) struct Decoded {
    /// The decoded copy (a local temporary file).
    pub(super) file: Input,
    /// Its length in bytes.
    pub(super) len: u64,
    /// Block `b` is the records that start in `starts[b]..starts[b + 1]`.
    pub(super) starts: Vec<u64>,
    /// The quoting state where each block begins.
    pub(super) states: Vec<Quoting>,
}

impl Decoded {
    /// The decoded copy a block read was given.
    pub(super) fn of<'v>(op: &str, inputs: &'v [Value]) -> brisk_core::Result<&'v Decoded> {
        match inputs.first() {
            Some(Value::Opaque(o)) => o.downcast_ref::<Decoded>(),
            _ => None,
        }
        .ok_or_else(|| CoreError::Internal(format!("{op}: no decoded copy of its file")))
    }
}

/// Decodes a compressed CSV file into a temporary copy split into `blocks` blocks
/// of equal size (the count planned from its decoded size when the graph was
/// built; the sizes from the size it has, the same unless the file changed, which
/// its stamp catches).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Decode {
    pub(super) path: String,
    /// The file as it was when the graph was built.
    pub(super) stamp: FileStamp,
    pub(super) compression: Compression,
    /// Where the first data record starts in the decoded bytes.
    pub(super) data_start: u64,
    pub(super) blocks: usize,
    pub(super) quote: u8,
    pub(super) delimiter: u8,
    /// The object stores' settings, for URLs.
    #[serde(default)]
    pub(super) storage: StorageOptions,
}

impl Decode {
    /// Streams the decoded bytes into `out`: their count.
    fn copy(&self, out: &File) -> brisk_core::Result<u64> {
        let read_error =
            |e: std::io::Error| CoreError::user(format!("{}: cannot decompress: {e}", self.path));
        let write_error = |e: std::io::Error| {
            CoreError::user(format!(
                "{}: cannot write its decompressed copy in {}: {e}; set TMPDIR to a directory with room",
                self.path,
                std::env::temp_dir().display()
            ))
        };
        let input = Input::open(&self.path, &self.storage, &self.stamp)?;
        let mut reader = self.compression.reader(input).map_err(read_error)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, out);
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read.map_err(read_error)?,
            };
            if n == 0 {
                break;
            }
            writer.write_all(&buf[..n]).map_err(write_error)?;
            len += n as u64;
        }
        writer.flush().map_err(write_error)?;
        Ok(len)
    }
}

impl OpKind for Decode {
    const NAME: &'static str = "frame.csv-decode";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let file = tempfile::tempfile().map_err(|e| {
            CoreError::user(format!(
                "{}: cannot make a temporary file for its decompressed copy in {}: {e}; set TMPDIR to a writable directory",
                self.path,
                std::env::temp_dir().display()
            ))
        })?;
        let copied = self.copy(&file);
        // Checked again after reading: a file changed meanwhile fails whole (an
        // object's reads each ask for the version stamped).
        self.stamp.recheck(&self.path)?;
        let len = copied?;
        // The whole file was read: its size on disk, for progress.
        brisk_core::note_read(self.stamp.len());
        let blocks = self.blocks.max(1);
        let size = len.saturating_sub(self.data_start).div_ceil(blocks as u64).max(1);
        let starts: Vec<u64> =
            (0..=blocks as u64).map(|b| (self.data_start + b * size).min(len)).collect();
        let syntax = Syntax { quote: self.quote, delimiter: self.delimiter };
        let file = Input::File(file);
        // An empty block (a file shorter than planned) keeps the state it begins in.
        let maps = (0..blocks - 1)
            .map(|b| match starts[b] < starts[b + 1] {
                true => state_map(&file, starts[b], starts[b + 1], b == 0, syntax),
                false => Ok(Quoting::ALL),
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| {
                CoreError::user(format!("{}: cannot read its decompressed copy: {e}", self.path))
            })?;
        let states = block_starts(maps);
        Ok(Value::Opaque(Opaque::new(Decoded { file, len, starts, states })))
    }
}
