//! Exact block boundaries: where a newline ends a record (outside quotes), the
//! buffered window a block reads its records through, and the two small ops that
//! give every block the quote parity where its byte range begins. See README.md.

use std::fs::File;
use std::io::Read;
use std::ops::Range;

use brisk_core::{Error as CoreError, OpKind, Scalar, Value};
use serde::{Deserialize, Serialize};

/// The offset just past the first record terminator in `buf`, given whether the
/// quote count before `buf` is odd; `None` if `buf` holds none.
pub(super) fn next_boundary(buf: &[u8], quote: u8, mut odd: bool) -> Option<usize> {
    for i in memchr::memchr2_iter(quote, b'\n', buf) {
        if buf[i] == quote {
            odd = !odd;
        } else if !odd {
            return Some(i + 1);
        }
    }
    None
}

pub(super) fn quote_count(buf: &[u8], quote: u8) -> usize {
    memchr::memchr_iter(quote, buf).count()
}

thread_local! {
    /// A worker's block buffer, kept from one block to the next: a fresh buffer per
    /// block is faulted in (and zeroed by the kernel) page by page each time.
    static BLOCK_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest buffer a worker keeps between blocks.
const KEPT_BUFFER: usize = 64 << 20;

/// Bytes of a file from offset `base` on, read further on demand.
pub(super) struct Window<'a> {
    file: &'a File,
    base: u64,
    pub(super) bytes: Vec<u8>,
    eof: bool,
}

impl Drop for Window<'_> {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        if bytes.capacity() <= KEPT_BUFFER {
            bytes.clear();
            BLOCK_BUFFER.set(bytes);
        }
    }
}

impl<'a> Window<'a> {
    fn new(file: &'a File, base: u64) -> Self {
        Window { file, base, bytes: BLOCK_BUFFER.take(), eof: false }
    }

    /// Reads up to `n` more bytes (fewer at the end of the file).
    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        use std::io::Seek;
        let mut f = self.file;
        f.seek(std::io::SeekFrom::Start(self.base + self.bytes.len() as u64))?;
        self.bytes.reserve_exact(n);
        let got = f.take(n as u64).read_to_end(&mut self.bytes)?;
        self.eof = got < n;
        Ok(())
    }

    /// The offset just past the first record terminator at or after `from`, given
    /// the quote parity before `from`; `None` if the file ends first.
    fn boundary(
        &mut self,
        from: usize,
        quote: u8,
        mut odd: bool,
    ) -> std::io::Result<Option<usize>> {
        let mut at = from;
        loop {
            if let Some(i) = next_boundary(&self.bytes[at..], quote, odd) {
                return Ok(Some(at + i));
            }
            odd ^= quote_count(&self.bytes[at..], quote) % 2 == 1;
            at = self.bytes.len();
            if self.eof {
                return Ok(None);
            }
            self.fill(64 << 10)?;
        }
    }
}

/// The number of quote characters in a byte range.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QuoteCount {
    pub(super) path: String,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) quote: u8,
}

impl OpKind for QuoteCount {
    const NAME: &'static str = "frame.csv-quotes";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        use std::io::Seek;
        let fail = |e: std::io::Error| CoreError::user(format!("{}: {e}", self.path));
        let mut f = File::open(&self.path).map_err(fail)?;
        f.seek(std::io::SeekFrom::Start(self.start)).map_err(fail)?;
        // Counted through a small buffer that stays in cache.
        let mut buf = [0u8; 64 << 10];
        let (mut left, mut count) = (self.end - self.start, 0);
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match f.read(&mut buf[..want]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read.map_err(fail)?,
            };
            if n == 0 {
                break;
            }
            count += quote_count(&buf[..n], self.quote);
            left -= n as u64;
        }
        Ok(Value::from(count as i64))
    }
}

/// The quote parity before each block of a file, from the blocks' quote counts:
/// item `k` of the list is odd (1) when blocks `0..k` hold an odd number of quotes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QuoteParity;

impl OpKind for QuoteParity {
    const NAME: &'static str = "frame.csv-parity";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let mut odd = 0i64;
        let mut out = vec![Value::from(0i64)];
        for v in &inputs {
            match v.as_scalar() {
                Some(Scalar::I64(n)) => odd ^= n & 1,
                _ => {
                    return Err(CoreError::Internal(format!(
                        "{} expects quote counts",
                        Self::NAME
                    )));
                }
            }
            out.push(Value::from(odd));
        }
        Ok(Value::from(out))
    }
}

/// The records of block `block` (of a file of `file_len` bytes) that start in
/// `range`, given the quote parity before it, read with one pass over the file:
/// their first byte's offset, and a window with their bytes at the returned range.
pub(super) fn records<'f>(
    f: &'f File,
    range: Range<u64>,
    block: usize,
    file_len: u64,
    q: u8,
    odd_before: bool,
) -> std::io::Result<(u64, Window<'f>, Range<usize>)> {
    // A record starts at `start` itself only after a terminator at `start - 1`:
    // the window opens one byte early, and reads a little past `end` for the
    // last record's tail.
    let base = if block == 0 { range.start } else { range.start - 1 };
    let pad = 64 << 10;
    let mut window = Window::new(f, base);
    window.fill((range.end - base) as usize + pad)?;
    let first = if block == 0 {
        0
    } else {
        let odd = odd_before ^ (window.bytes.first() == Some(&q));
        match window.boundary(0, q, odd)? {
            Some(i) => i,
            None => return Ok((file_len, window, 0..0)),
        }
    };
    let start = base + first as u64;
    if start >= range.end {
        return Ok((start, window, 0..0));
    }
    let last = if range.end >= file_len {
        window.bytes.len()
    } else {
        // Parity just before `end - 1`, counted from the record start.
        let from = (range.end - 1 - base) as usize;
        if from > window.bytes.len() {
            // The file is shorter than it was listed as: it changed under us.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file ended before the block's range",
            ));
        }
        let odd = quote_count(&window.bytes[first..from], q) % 2 == 1;
        window.boundary(from, q, odd)?.unwrap_or(window.bytes.len())
    };
    Ok((start, window, first..last))
}
