//! Exact block boundaries: the buffered window a block reads its records through,
//! and the two small ops that give every block the quoting state where its byte
//! range begins (`scan.rs` says which bytes end a record). See README.md.

use std::io::Read;
use std::ops::Range;

use brisk_core::{Error as CoreError, OpKind, Scalar, Value};
use serde::{Deserialize, Serialize};

use super::scan::{Cursor, End, Quoting, Syntax, skip_blank_lines};
use crate::sources::{FileStamp, Input};
use crate::store::StorageOptions;

thread_local! {
    /// A worker's block buffer, kept from one block to the next: a fresh buffer per
    /// block is faulted in (and zeroed by the kernel) page by page each time.
    static BLOCK_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest buffer a worker keeps between blocks.
const KEPT_BUFFER: usize = 64 << 20;

/// Bytes of a file from offset `base` on, read further on demand.
pub(super) struct Window<'a> {
    file: &'a Input,
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
    fn new(file: &'a Input, base: u64) -> Self {
        Window { file, base, bytes: BLOCK_BUFFER.take(), eof: false }
    }

    /// Reads up to `n` more bytes (fewer at the end of the file), by position: the
    /// blocks of a decompressed copy share its one handle.
    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        let at = self.base + self.bytes.len() as u64;
        self.bytes.reserve_exact(n);
        let got = self.file.read_into(at, n, &mut self.bytes)?;
        self.eof = got < n;
        Ok(())
    }

    /// The end of the record running at `cur` (just past its terminator), reading
    /// on as needed; `None` if the file ends first.
    fn record_end(&mut self, syntax: Syntax, mut cur: Cursor) -> std::io::Result<Option<usize>> {
        loop {
            match syntax.record_end(&self.bytes, cur, self.eof) {
                End::At(i) => return Ok(Some(i)),
                End::Eof => return Ok(None),
                End::More(at) => {
                    cur = at;
                    self.fill(64 << 10)?;
                }
            }
        }
    }
}

/// How the bytes `start..end` of a file carry each quoting state at `start` to
/// one at `end`: item `i` is the end state for start state `Quoting::ALL[i]`.
/// `data_start` says `start` is the first data byte (a record start).
pub(super) fn state_map(
    f: &Input,
    start: u64,
    end: u64,
    data_start: bool,
    syntax: Syntax,
) -> std::io::Result<[Quoting; 3]> {
    // Read from the byte before the range (it says whether a field starts at
    // `start`), one chunk at a time through a buffer that stays in cache; each
    // chunk reads one byte past its part, the next byte a quote looks at.
    let mut pos = if data_start { start } else { start - 1 };
    let mut reader = f.reader(pos..end.saturating_add(1));
    const CHUNK: usize = 64 << 10;
    let mut buf = vec![0u8; CHUNK + 1];
    let mut held = 0;
    let mut cursors = Quoting::ALL.map(|state| Cursor { at: 0, state, prev: None });
    // same[i]: the cursor cursor i has met (itself while it has met none).
    let mut same = [0, 1, 2];
    let mut skip = usize::from(!data_start);
    while pos < end {
        while held < buf.len() {
            let n = match reader.read(&mut buf[held..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read?,
            };
            if n == 0 {
                break;
            }
            held += n;
        }
        if held <= skip {
            // The file is shorter than when it was listed: its read says so.
            break;
        }
        if skip == 1 {
            // The byte before the range: only the field start it implies.
            for c in &mut cursors {
                c.prev = Some(buf[0]);
            }
        }
        // `buf[i]` is the byte at `pos + i`.
        let to = held.min(CHUNK).min(usize::try_from(end - pos).unwrap_or(usize::MAX));
        for i in 0..cursors.len() {
            if same[i] == i {
                cursors[i] = syntax.advance(&buf[..held], Cursor { at: skip, ..cursors[i] }, to);
            } else {
                cursors[i] = cursors[same[i]];
            }
        }
        // A cursor that has met an earlier one (same place, state and byte
        // before) stays with it: one scan per distinct state from here on, and
        // after a record or two the states have usually all met.
        for i in 1..cursors.len() {
            if same[i] == i
                && let Some(j) = (0..i).find(|&j| same[j] == j && cursors[j] == cursors[i])
            {
                same[i] = j;
            }
        }
        pos += to as u64;
        buf.copy_within(to..held, 0);
        held -= to;
        skip = 0;
    }
    Ok(cursors.map(|c| c.state))
}

/// The quoting state where each block begins, from the blocks' state maps in
/// order (the first block begins outside quotes).
pub(super) fn block_starts(maps: impl IntoIterator<Item = [Quoting; 3]>) -> Vec<Quoting> {
    let mut state = Quoting::Out;
    let mut out = vec![state];
    for map in maps {
        state = map[state.index()];
        out.push(state);
    }
    out
}

/// How a block's bytes carry each quoting state at its start to one at its end:
/// item `i` of the result is the end state for start state `Quoting::ALL[i]`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QuoteStates {
    pub(super) path: String,
    pub(super) start: u64,
    pub(super) end: u64,
    /// Whether `start` is the file's first data byte (a record start).
    pub(super) data_start: bool,
    pub(super) quote: u8,
    pub(super) delimiter: u8,
    /// The file as it was when the graph was built.
    #[serde(default)]
    pub(super) stamp: FileStamp,
    #[serde(default)]
    pub(super) storage: StorageOptions,
}

impl OpKind for QuoteStates {
    const NAME: &'static str = "frame.csv-quote-states";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let fail = |e: std::io::Error| CoreError::user(format!("{}: cannot read: {e}", self.path));
        let syntax = Syntax { quote: self.quote, delimiter: self.delimiter };
        let f = Input::open(&self.path, &self.storage, &self.stamp)?;
        let map = state_map(&f, self.start, self.end, self.data_start, syntax).map_err(fail)?;
        Ok(Value::from(map.iter().map(|q| Value::from(q.index() as i64)).collect::<Vec<_>>()))
    }
}

/// The quoting state before each block of a file, from the blocks' state maps in
/// order: item `k` of the list is the state where block `k` begins.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BlockStates;

impl OpKind for BlockStates {
    const NAME: &'static str = "frame.csv-block-states";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let map = |v: &Value| -> brisk_core::Result<[Quoting; 3]> {
            let state = |i: usize| match v {
                Value::List(items) => match items.get(i).and_then(Value::as_scalar) {
                    Some(Scalar::I64(i)) => Quoting::from_index(i),
                    _ => None,
                },
                _ => None,
            };
            match (state(0), state(1), state(2)) {
                (Some(a), Some(b), Some(c)) => Ok([a, b, c]),
                _ => Err(CoreError::Internal(format!(
                    "{} expects each block's quoting states",
                    Self::NAME
                ))),
            }
        };
        let maps = inputs.iter().map(map).collect::<brisk_core::Result<Vec<_>>>()?;
        let starts = block_starts(maps);
        Ok(Value::from(starts.iter().map(|q| Value::from(q.index() as i64)).collect::<Vec<_>>()))
    }
}

/// The records of block `block` (of a file of `file_len` bytes) that start in
/// `range`, given the quoting state where the range begins, read with one pass over
/// the file: their first byte's offset, and a window with their bytes at the
/// returned range. Blank lines before the first record are left out.
pub(super) fn records(
    f: &Input,
    range: Range<u64>,
    block: usize,
    file_len: u64,
    syntax: Syntax,
    state: Quoting,
) -> std::io::Result<(u64, Window<'_>, Range<usize>)> {
    // A record starts at `start` itself only after a terminator at `start - 1`:
    // the window opens one byte early, and reads a little past `end` for the
    // last record's tail.
    let base = if block == 0 { range.start } else { range.start - 1 };
    let pad = 64 << 10;
    let mut window = Window::new(f, base);
    window.fill((range.end - base) as usize + pad)?;
    if block > 0 && window.bytes.is_empty() {
        // The file is shorter than the block's start: it changed under us.
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file ended before the block's range",
        ));
    }
    let first = if block == 0 {
        0
    } else {
        let before = window.bytes.first().copied();
        match (state, before) {
            // A terminator outside quotes just before the range: a record starts
            // at `start`, or one byte on if that terminator is the \r of a \r\n.
            (Quoting::Out, Some(b'\r')) if window.bytes.get(1) == Some(&b'\n') => 2,
            (Quoting::Out, Some(b'\r' | b'\n')) => 1,
            _ => {
                let cur = Cursor { at: 1, state, prev: before };
                match window.record_end(syntax, cur)? {
                    Some(i) => i,
                    None => return Ok((file_len, window, 0..0)),
                }
            }
        }
    };
    let first = skip_blank_lines(&window.bytes, first);
    let start = base + first as u64;
    if start >= range.end {
        return Ok((start, window, 0..0));
    }
    let last = if range.end >= file_len {
        window.bytes.len()
    } else {
        // The state just before `end - 1`, scanned from the first record, then
        // the end of the record running there.
        let from = (range.end - 1 - base) as usize;
        if from >= window.bytes.len() {
            // The file is shorter than it was listed as: it changed under us.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file ended before the block's range",
            ));
        }
        let cur = syntax.advance(&window.bytes, Cursor::start(first), from);
        window.record_end(syntax, cur)?.unwrap_or(window.bytes.len())
    };
    Ok((start, window, first..last))
}
