//! Where records end. A small state machine that agrees with Arrow's CSV reader
//! (csv-core) on the one thing splitting needs — which bytes end a record — while
//! looking only at quotes and terminators, found with `memchr`:
//!
//! - a quote opens a quoted field only as a field's first byte; anywhere else in
//!   an unquoted field it is an ordinary character (`5'10"` is one value);
//! - inside a quoted field only a quote matters: doubled (`""`) it is a quote
//!   character, alone it closes the field (what follows the close, up to the next
//!   delimiter, is more of the same field, unquoted);
//! - outside quotes `\n`, `\r` and `\r\n` each end a record; a record start that
//!   is itself a terminator is a blank line, which the reader skips.
//!
//! A block cannot know from its own bytes whether it begins inside quotes, so the
//! state at a byte is one of three ([`Quoting`]), and a block's bytes map each
//! state at its start to one at its end. Composing those maps in order gives
//! every block its true state; see README.md.

use serde::{Deserialize, Serialize};

/// The quoting state before a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Quoting {
    /// Outside quoted fields.
    Out,
    /// Inside a quoted field.
    In,
    /// Inside a quoted field, at the second quote of a doubled one.
    Escaped,
}

impl Quoting {
    pub(super) const ALL: [Quoting; 3] = [Quoting::Out, Quoting::In, Quoting::Escaped];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    pub(super) fn from_index(i: i64) -> Option<Quoting> {
        usize::try_from(i).ok().and_then(|i| Quoting::ALL.get(i).copied())
    }
}

/// A place in a scan: the state before `bytes[at]`, and the byte before it
/// (`None` at the start of the data, where a field starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cursor {
    pub(super) at: usize,
    pub(super) state: Quoting,
    pub(super) prev: Option<u8>,
}

impl Cursor {
    /// At the first byte of the data (a record start).
    pub(super) fn start(at: usize) -> Cursor {
        Cursor { at, state: Quoting::Out, prev: None }
    }
}

/// What a search for the end of a record found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    /// The offset just past the terminator.
    At(usize),
    /// The bytes ran out first; call again from this cursor with more of them.
    More(Cursor),
    /// The data ended first: the record runs to its end.
    Eof,
}

fn is_terminator(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// The two bytes that shape records.
#[derive(Clone, Copy, Debug)]
pub(super) struct Syntax {
    pub(super) quote: u8,
    pub(super) delimiter: u8,
}

impl Syntax {
    /// Whether a field starts after the byte `prev`.
    fn field_starts_after(self, prev: Option<u8>) -> bool {
        prev.is_none_or(|b| b == self.delimiter || is_terminator(b))
    }

    /// The state at `to`, scanning `bytes[cur.at..to]` from `cur`. Bytes past `to`
    /// are only looked at (a quote's next byte); a quote that is the last byte of
    /// `bytes` closes its field, so `bytes` must reach past `to` unless the data
    /// ends there.
    pub(super) fn advance(self, bytes: &[u8], mut cur: Cursor, to: usize) -> Cursor {
        let q = self.quote;
        while cur.at < to {
            match cur.state {
                Quoting::Escaped => {
                    cur = Cursor { at: cur.at + 1, state: Quoting::In, prev: Some(q) };
                }
                Quoting::In => match memchr::memchr(q, &bytes[cur.at..to]) {
                    None => {
                        return Cursor { at: to, state: Quoting::In, prev: Some(bytes[to - 1]) };
                    }
                    Some(i) => {
                        let p = cur.at + i;
                        let state = if bytes.get(p + 1) == Some(&q) {
                            Quoting::Escaped
                        } else {
                            Quoting::Out
                        };
                        cur = Cursor { at: p + 1, state, prev: Some(q) };
                    }
                },
                Quoting::Out => {
                    let mut from = cur.at;
                    loop {
                        let Some(i) = memchr::memchr(q, &bytes[from..to]) else {
                            return Cursor {
                                at: to,
                                state: Quoting::Out,
                                prev: Some(bytes[to - 1]),
                            };
                        };
                        let p = from + i;
                        let prev = if p == cur.at { cur.prev } else { Some(bytes[p - 1]) };
                        if self.field_starts_after(prev) {
                            cur = Cursor { at: p + 1, state: Quoting::In, prev: Some(q) };
                            break;
                        }
                        from = p + 1;
                    }
                }
            }
        }
        cur
    }

    /// The end of the record running at `cur`: just past the first terminator
    /// outside quotes (`\r\n` counts as one). `eof` says whether `bytes` reaches the
    /// end of the data.
    pub(super) fn record_end(self, bytes: &[u8], mut cur: Cursor, eof: bool) -> End {
        let q = self.quote;
        let more = |cur: Cursor| if eof { End::Eof } else { End::More(cur) };
        loop {
            match cur.state {
                _ if cur.at > bytes.len() => return more(Cursor { at: bytes.len(), ..cur }),
                Quoting::Escaped | Quoting::In if cur.at >= bytes.len() => return more(cur),
                Quoting::Escaped => {
                    cur = Cursor { at: cur.at + 1, state: Quoting::In, prev: Some(q) };
                }
                Quoting::In => {
                    let Some(i) = memchr::memchr(q, &bytes[cur.at..]) else {
                        let prev = bytes.last().copied().or(cur.prev);
                        return more(Cursor { at: bytes.len(), state: Quoting::In, prev });
                    };
                    let p = cur.at + i;
                    let state = match bytes.get(p + 1) {
                        Some(&b) if b == q => Quoting::Escaped,
                        Some(_) => Quoting::Out,
                        None if eof => return End::Eof,
                        // The next byte decides: look again with more.
                        None => {
                            return End::More(Cursor { at: p, state: Quoting::In, prev: cur.prev });
                        }
                    };
                    cur = Cursor { at: p + 1, state, prev: Some(q) };
                }
                Quoting::Out => {
                    let Some(i) = memchr::memchr3(q, b'\n', b'\r', &bytes[cur.at..]) else {
                        let prev = bytes.last().copied().or(cur.prev);
                        return more(Cursor { at: bytes.len(), state: Quoting::Out, prev });
                    };
                    let p = cur.at + i;
                    let prev = if p == cur.at { cur.prev } else { Some(bytes[p - 1]) };
                    match bytes[p] {
                        b'\n' => return End::At(p + 1),
                        b'\r' => match bytes.get(p + 1) {
                            Some(b'\n') => return End::At(p + 2),
                            Some(_) => return End::At(p + 1),
                            None if eof => return End::At(p + 1),
                            None => return End::More(Cursor { at: p, state: Quoting::Out, prev }),
                        },
                        _ => {
                            let state = if self.field_starts_after(prev) {
                                Quoting::In
                            } else {
                                Quoting::Out
                            };
                            cur = Cursor { at: p + 1, state, prev: Some(q) };
                        }
                    }
                }
            }
        }
    }

    /// The offset where each record of `bytes` (whole records from a record start)
    /// begins, blank lines skipped: what the reader numbers its rows by.
    pub(super) fn record_starts(self, bytes: &[u8]) -> impl Iterator<Item = usize> {
        let mut at = 0;
        std::iter::from_fn(move || {
            while at < bytes.len() && is_terminator(bytes[at]) {
                at += 1;
            }
            if at >= bytes.len() {
                return None;
            }
            let start = at;
            at = match self.record_end(bytes, Cursor::start(start), true) {
                End::At(end) => end,
                End::More(_) | End::Eof => bytes.len(),
            };
            Some(start)
        })
    }
}

/// The offset of the first byte after `at` that is not a terminator (blank lines
/// before a record are skipped).
pub(super) fn skip_blank_lines(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && is_terminator(bytes[at]) {
        at += 1;
    }
    at
}

/// Lines in `bytes`, as an editor counts them: `\n`, `\r\n` and a lone `\r` each
/// end one.
pub(super) fn count_lines(bytes: &[u8]) -> usize {
    memchr::memchr2_iter(b'\n', b'\r', bytes)
        .filter(|&i| bytes[i] == b'\n' || bytes.get(i + 1) != Some(&b'\n'))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CSV: Syntax = Syntax { quote: b'"', delimiter: b',' };

    /// csv-core's records of `bytes`, each as the offset just past its terminator.
    fn reference_ends(bytes: &[u8]) -> Vec<usize> {
        let mut reader = csv_core::Reader::new();
        let (mut out, mut ends) = ([0u8; 4096], [0usize; 256]);
        let (mut at, mut found) = (0, Vec::new());
        loop {
            let (res, read, _, _) = reader.read_record(&bytes[at..], &mut out, &mut ends);
            at += read;
            match res {
                csv_core::ReadRecordResult::Record => found.push(at),
                csv_core::ReadRecordResult::End => return found,
                csv_core::ReadRecordResult::InputEmpty if at >= bytes.len() => {
                    // Signal the end of input once.
                    let (res, _, _, _) = reader.read_record(&[], &mut out, &mut ends);
                    if res == csv_core::ReadRecordResult::Record {
                        found.push(bytes.len());
                    }
                    return found;
                }
                _ => {}
            }
        }
    }

    fn our_ends(bytes: &[u8]) -> Vec<usize> {
        CSV.record_starts(bytes)
            .map(|s| match CSV.record_end(bytes, Cursor::start(s), true) {
                End::At(e) => e,
                _ => bytes.len(),
            })
            .collect()
    }

    proptest! {
        /// Any bytes made of the characters that shape records: the records end
        /// where csv-core ends them, and the state carried across any cut point is
        /// the state of one scan over the whole.
        #[test]
        fn records_end_where_csv_core_ends_them(
            text in proptest::collection::vec(prop::sample::select(b"a,\"\n\r".to_vec()), 0..60),
            cut in 0usize..60,
        ) {
            let ends = our_ends(&text);
            // csv-core reports a record's end after the terminator; one that ends
            // the data with a lone \r may differ only in whether the \n of a
            // \r\n is counted: compare the records' starts instead.
            let want = reference_ends(&text);
            prop_assert_eq!(ends.len(), want.len(), "{:?}", String::from_utf8_lossy(&text));
            let cut = cut.min(text.len());
            let whole = CSV.advance(&text, Cursor::start(0), text.len());
            let half = CSV.advance(&text, Cursor::start(0), cut);
            let rest = CSV.advance(&text, half, text.len());
            prop_assert_eq!(whole.state, rest.state);
        }
    }

    #[test]
    fn quotes_open_fields_only_at_their_start() {
        assert_eq!(our_ends(b"id,name\"x\n1,a\n"), vec![10, 14]);
        assert_eq!(our_ends(b"a,\"x\ny\"\n1,2\n"), vec![8, 12]);
        assert_eq!(our_ends(b"a\rb\rc"), vec![2, 4, 5]);
        assert_eq!(our_ends(b"a\r\nb\r\n"), vec![3, 6]);
        assert_eq!(our_ends(b"\n\na\n"), vec![4]);
        assert_eq!(count_lines(b"a\rb\r\nc\nd"), 3);
    }

    #[test]
    fn a_split_terminator_or_quote_asks_for_more() {
        let cur = Cursor::start(0);
        let more = CSV.record_end(b"ab\r", cur, false);
        assert!(matches!(more, End::More(Cursor { at: 2, state: Quoting::Out, .. })), "{more:?}");
        assert_eq!(CSV.record_end(b"ab\r", cur, true), End::At(3));
        let more = CSV.record_end(b"\"a\"", cur, false);
        assert!(matches!(more, End::More(Cursor { at: 2, state: Quoting::In, .. })), "{more:?}");
        assert_eq!(CSV.record_end(b"\"a\"\"\n\"\n", cur, false), End::At(7));
    }
}
