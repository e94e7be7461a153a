//! A fast path for the common block: only the empty field as null, and columns of
//! Int64, Float64, Utf8, Boolean or Date32 (`YYYY-MM-DD`). Fields are found with
//! one byte scan and parsed straight into Arrow builders, skipping the columns not
//! asked for.
//!
//! Quoted fields are taken as the general reader reads them: where the block has a
//! quote, a prefix XOR of each 64 bytes' quote mask (carried from one 64 bytes to
//! the next) tells the bytes inside quotes, whose delimiters and newlines separate
//! nothing. Every quote must be where a well-formed field has one: opening a field,
//! closing it right before its separator (or CRLF), or doubled inside it. A quoted
//! field's value is what lies between its quotes, a doubled quote read as one (for
//! a typed column, the text between the quotes is parsed; `""` is null, as the
//! empty field is).
//!
//! Anything unexpected (a ragged row, a value that does not parse, a CR not before
//! a newline, a quote out of place, a newline inside quotes, a date not written
//! `YYYY-MM-DD`) gives up, and the general reader parses the block and reports the
//! problem.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};

/// One projected column's builder.
enum Column {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
}

/// A field's value as the byte range `s..e` of the text (a quoted field's range
/// is the one between its quotes), and whether that range holds doubled quotes,
/// each standing for one quote.
type FieldValue = (usize, usize, bool);

impl Column {
    fn new(dtype: &DataType, rows: usize, text_bytes: usize) -> Option<Column> {
        Some(match dtype {
            DataType::Int64 => Column::Int(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Column::Float(Float64Builder::with_capacity(rows)),
            DataType::Utf8 => Column::Text(StringBuilder::with_capacity(rows, text_bytes)),
            DataType::Boolean => Column::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Date32 => Column::Date(Date32Builder::with_capacity(rows)),
            _ => return None,
        })
    }

    /// Appends every field of one column: `fields` yields each field's value; an
    /// empty value is null. `false` if a value does not parse.
    fn extend(&mut self, text: &str, quote: u8, fields: impl Iterator<Item = FieldValue>) -> bool {
        let bytes = text.as_bytes();
        // One loop per type, so the type is not looked at again per field. A typed
        // value with a doubled quote holds a quote, which no parser below takes
        // (nor the general reader's), so only text reads the flag.
        match self {
            Column::Int(b) => {
                for (s, e, _) in fields {
                    if s == e {
                        b.append_null();
                        continue;
                    }
                    match lexical_core::parse::<i64>(&bytes[s..e]) {
                        Ok(v) => b.append_value(v),
                        Err(_) => return false,
                    }
                }
            }
            Column::Float(b) => {
                for (s, e, _) in fields {
                    if s == e {
                        b.append_null();
                        continue;
                    }
                    let field = &bytes[s..e];
                    match plain_decimal(field).or_else(|| lexical_core::parse::<f64>(field).ok()) {
                        Some(v) => b.append_value(v),
                        None => return false,
                    }
                }
            }
            // Separators and quotes are ASCII, so a field of valid UTF-8 text is
            // valid too.
            Column::Text(b) => {
                let quote = char::from(quote);
                let mut unescaped = String::new();
                for (s, e, doubled) in fields {
                    if s == e {
                        b.append_null();
                    } else if doubled {
                        // Quotes come in pairs here: every other piece between
                        // them is the empty one inside a pair.
                        unescaped.clear();
                        for (k, piece) in text[s..e].split(quote).enumerate() {
                            if k.is_multiple_of(2) {
                                unescaped.push_str(piece);
                            } else {
                                unescaped.push(quote);
                            }
                        }
                        b.append_value(&unescaped);
                    } else {
                        b.append_value(&text[s..e]);
                    }
                }
            }
            Column::Bool(b) => {
                for (s, e, _) in fields {
                    let field = &bytes[s..e];
                    if field.is_empty() {
                        b.append_null();
                    } else if field.eq_ignore_ascii_case(b"true") {
                        b.append_value(true);
                    } else if field.eq_ignore_ascii_case(b"false") {
                        b.append_value(false);
                    } else {
                        return false;
                    }
                }
            }
            Column::Date(b) => {
                for (s, e, _) in fields {
                    if s == e {
                        b.append_null();
                        continue;
                    }
                    match date_days(&bytes[s..e]) {
                        Some(v) => b.append_value(v),
                        None => return false,
                    }
                }
            }
        }
        true
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Float(mut b) => Arc::new(b.finish()),
            Column::Text(mut b) => Arc::new(b.finish()),
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Date(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Powers of ten a double holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal (`-123.45`, `7`, `0.04`: an optional minus, digits, at most
/// one point) whose digits fit 2^53 and whose decimals are at most 22, read
/// exactly: the digits and the power of ten are both exact doubles, so one
/// correctly rounded division gives the correctly rounded value (Clinger's fast
/// path), the same a full parser gives. `None` for anything else, which the full
/// parser then reads.
fn plain_decimal(field: &[u8]) -> Option<f64> {
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 17 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut point = None;
    for (k, &c) in digits.iter().enumerate() {
        let d = c.wrapping_sub(b'0');
        if d <= 9 {
            mantissa = mantissa * 10 + u64::from(d);
        } else if c == b'.' && point.is_none() {
            point = Some(k);
        } else {
            return None;
        }
    }
    let decimals = point.map_or(0, |k| digits.len() - k - 1);
    // At least one digit, and not past what a double holds exactly.
    if digits.len() == usize::from(point.is_some()) || mantissa > 1 << 53 {
        return None;
    }
    let v = mantissa as f64 / POW10[decimals];
    Some(if negative { -v } else { v })
}

/// Days since 1970-01-01 of a date written `YYYY-MM-DD` (years 0000 to 9999 of
/// the proleptic Gregorian calendar, as the general reader reads them); `None`
/// for anything else, or a day the month does not have.
fn date_days(field: &[u8]) -> Option<i32> {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = field else {
        return None;
    };
    let digits = [y0, y1, y2, y3, m0, m1, d0, d1].map(|b| b.wrapping_sub(b'0'));
    if digits.iter().any(|&d| d > 9) {
        return None;
    }
    let n = |i: usize| i32::from(digits[i]);
    let year = n(0) * 1000 + n(1) * 100 + n(2) * 10 + n(3);
    let month = n(4) * 10 + n(5);
    let day = n(6) * 10 + n(7);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Days since 1970-01-01 of a valid proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`: years counted from March, in eras of 400 years).
fn days_from_civil(year: i32, month: i32, day: i32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400); // [0, 399]
    let month_from_march = if month > 2 { month - 3 } else { month + 9 }; // [0, 11]
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1; // [0, 365]
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Appends to `starts`, for every delimiter and newline in `bytes[from..to]`, the
/// offset just past it (where the next field starts). Bytes are compared 64 at a
/// time into a bit mask (the compiler turns the loop into vector compares).
fn index_separators(bytes: &[u8], from: usize, to: usize, delimiter: u8, starts: &mut Vec<u32>) {
    let mut chunks = bytes[from..to].chunks_exact(64);
    let mut at = from;
    for chunk in &mut chunks {
        let chunk: &[u8; 64] = chunk.try_into().expect("64 bytes");
        push_positions(separator_mask(chunk, delimiter), at, starts);
        at += 64;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // The tail, padded with a byte that is neither separator.
        let mut tail = [if delimiter == b'x' { b'y' } else { b'x' }; 64];
        tail[..rest.len()].copy_from_slice(rest);
        push_positions(separator_mask(&tail, delimiter), at, starts);
    }
}

/// `index_separators` for a span of whole records with quotes in it: only the
/// delimiters and newlines outside quotes are indexed. `None` unless every quote
/// is where a well-formed field has one and the span ends outside quotes; else
/// whether any quote is doubled.
fn index_quoted(
    bytes: &[u8],
    from: usize,
    to: usize,
    delimiter: u8,
    quote: u8,
    starts: &mut Vec<u32>,
) -> Option<bool> {
    let mut carry = QuoteCarry::new();
    let mut chunks = bytes[from..to].chunks_exact(64);
    let mut at = from;
    for chunk in &mut chunks {
        let chunk: &[u8; 64] = chunk.try_into().expect("64 bytes");
        push_positions(carry.separators(chunk, delimiter, quote, u64::MAX)?, at, starts);
        at += 64;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // The tail, padded with a byte that is neither separator nor quote.
        let pad = (b'x'..=b'z').find(|&c| c != delimiter && c != quote).unwrap_or(b'x');
        let mut tail = [pad; 64];
        tail[..rest.len()].copy_from_slice(rest);
        let real = (1u64 << rest.len()) - 1;
        push_positions(carry.separators(&tail, delimiter, quote, real)?, at, starts);
    }
    (!carry.inside).then_some(carry.doubled)
}

/// What one 64-byte chunk of a quoted span hands the next: about its last byte.
struct QuoteCarry {
    /// It is inside quotes (an odd number of quotes since the span's start).
    inside: bool,
    /// A quote may follow it: it is a separator outside quotes (or the span has
    /// just started), or a quote.
    quote_may_follow: bool,
    /// It is a closing quote.
    closing: bool,
    /// Some quote so far is doubled (a closing quote followed by a quote).
    doubled: bool,
}

impl QuoteCarry {
    fn new() -> QuoteCarry {
        QuoteCarry { inside: false, quote_may_follow: true, closing: false, doubled: false }
    }

    /// The mask of the chunk's delimiters and newlines outside quotes; `None` at
    /// a quote out of place. `real` has a bit for each byte of the span (a tail
    /// is padded).
    ///
    /// A quote that leaves the bytes after it inside quotes opens: it must start
    /// a field or be the second of a doubled pair, so follow a separator outside
    /// quotes or a quote. A quote that leaves them outside closes: it must end
    /// its field or be the first of a pair, so come before a separator outside
    /// quotes, a quote, a CR (every CR is before a newline) or the span's end.
    /// Then, field by field from the span's start (outside quotes), a field with
    /// a quote starts with one, its next quotes come in adjacent pairs until its
    /// last, which ends it: exactly the fields the general reader reads so, and
    /// it reads their values as the bytes between, a pair as one quote.
    #[inline]
    fn separators(&mut self, chunk: &[u8; 64], delimiter: u8, quote: u8, real: u64) -> Option<u64> {
        let quotes = byte_mask(chunk, quote);
        // Bit i: an odd number of quotes up to byte i, counted from the span's start.
        let inside = prefix_xor(quotes) ^ u64::from(self.inside).wrapping_neg();
        // No separator is a quote: a separator is inside exactly when its bit is.
        let kept = separator_mask(chunk, delimiter) & !inside;
        let opening = quotes & inside;
        let closing = quotes & !inside;
        let may_follow = kept | quotes;
        if (opening & !((may_follow << 1) | u64::from(self.quote_may_follow))) != 0 {
            return None;
        }
        let after_closing = (closing << 1) | u64::from(self.closing);
        self.doubled |= (after_closing & quotes) != 0;
        // After a closing quote, anything but a separator or a quote must be a CR.
        let mut odd = after_closing & !may_follow & real;
        while odd != 0 {
            if chunk[odd.trailing_zeros() as usize] != b'\r' {
                return None;
            }
            odd &= odd - 1;
        }
        self.inside = inside >> 63 == 1;
        self.quote_may_follow = may_follow >> 63 == 1;
        self.closing = closing >> 63 == 1;
        Some(kept)
    }
}

/// Bit `i` set where byte `i` is the delimiter or a newline. The compares are
/// written so the compiler does them sixteen bytes at a time; each eight flag bytes
/// are then gathered into eight bits with one multiply.
#[inline]
fn separator_mask(chunk: &[u8; 64], delimiter: u8) -> u64 {
    let mut flags = [0u8; 64];
    for (flag, &b) in flags.iter_mut().zip(chunk) {
        *flag = u8::from((b == delimiter) | (b == b'\n')) << 7;
    }
    gather(&flags)
}

/// Bit `i` set where byte `i` is `byte`, as `separator_mask` finds them.
#[inline]
fn byte_mask(chunk: &[u8; 64], byte: u8) -> u64 {
    let mut flags = [0u8; 64];
    for (flag, &b) in flags.iter_mut().zip(chunk) {
        *flag = u8::from(b == byte) << 7;
    }
    gather(&flags)
}

/// Bit `i` set where flag byte `i` has bit 7 set (every other bit clear).
#[inline]
fn gather(flags: &[u8; 64]) -> u64 {
    let mut mask = 0u64;
    for (k, eight) in flags.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
        // Bit 7 of byte j lands on bit 56 + j.
        mask |= (w.wrapping_mul(0x0002_0408_1020_4081) >> 56) << (8 * k);
    }
    mask
}

/// Bit `i` of the result: the parity of bits `0..=i` of `x`.
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[inline]
fn push_positions(mut mask: u64, at: usize, starts: &mut Vec<u32>) {
    starts.reserve(64);
    while mask != 0 {
        starts.push((at + mask.trailing_zeros() as usize + 1) as u32);
        mask &= mask - 1;
    }
}

/// Records are indexed and parsed this many bytes at a time, so that the index
/// stays in cache while each column is read from it.
const SPAN: usize = 256 << 10;

/// Parses `text` (whole records) with `file_schema`'s columns, keeping
/// `projection` (in file order); `None` when the fast path does not apply.
pub(crate) fn parse(
    text: &str,
    file_schema: &SchemaRef,
    projection: &[usize],
    out_schema: SchemaRef,
    delimiter: u8,
    quote: u8,
) -> Option<RecordBatch> {
    let bytes = text.as_bytes();
    let ncols = file_schema.fields().len();
    // Offsets are kept as u32; a single column is left to the general reader,
    // which knows what a blank line means there.
    if bytes.len() >= u32::MAX as usize || ncols < 2 || !projection.is_sorted() {
        return None;
    }
    // A CR ends a record by itself in the general reader: only CRLF stays here.
    if memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n')) {
        return None;
    }
    // A block without a quote skips all quote handling. A quote that is also a
    // separator, a CR, or not ASCII (it could cut a character) is not handled.
    let quoted = memchr::memchr(quote, bytes).is_some();
    if quoted && (quote == delimiter || quote == b'\n' || quote == b'\r' || !quote.is_ascii()) {
        return None;
    }
    // Rows estimated from the first one's length (no pass over the block).
    let first_row = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |i| i + 1);
    let rows_hint = bytes.len() / first_row.max(1) + bytes.len() / first_row.max(1) / 8 + 1;
    let mut columns: Vec<(usize, Column)> = projection
        .iter()
        .map(|&i| {
            Some((
                i,
                Column::new(file_schema.field(i).data_type(), rows_hint, bytes.len() / ncols)?,
            ))
        })
        .collect::<Option<_>>()?;
    let mut starts: Vec<u32> = Vec::with_capacity(SPAN / 4);
    let mut from = 0;
    while from < bytes.len() {
        // A span of whole records: up to the first newline after SPAN bytes. That
        // newline may be inside quotes: then the span ends inside quotes, and
        // the block is given up below.
        let to = match bytes.get(from + SPAN..).and_then(|rest| memchr::memchr(b'\n', rest)) {
            Some(i) => from + SPAN + i + 1,
            None => bytes.len(),
        };
        // starts[r * ncols + j] is where field j of row r starts; the entry after a
        // row's last field is one past its newline.
        starts.clear();
        starts.push(from as u32);
        let doubled = if quoted {
            index_quoted(bytes, from, to, delimiter, quote, &mut starts)?
        } else {
            index_separators(bytes, from, to, delimiter, &mut starts);
            false
        };
        let mut lines = memchr::memchr_iter(b'\n', &bytes[from..to]).count();
        if bytes[to - 1] != b'\n' {
            // A last record without a newline.
            starts.push(to as u32 + 1);
            lines += 1;
        }
        // Exactly ncols separators per record, the last of them a newline: then no
        // other separator is a newline, and every record has every field. Every
        // newline counts as a record's end, so one inside quotes (not indexed)
        // leaves a record short of one and gives the block up.
        let rows = lines;
        if starts.len() != rows * ncols + 1
            || (1..=rows).any(|r| {
                let end = starts[r * ncols] as usize - 1;
                end < bytes.len() && bytes[end] != b'\n'
            })
        {
            return None;
        }
        for (j, column) in &mut columns {
            let j = *j;
            let last = j + 1 == ncols;
            let fields = (0..rows).map(|r| {
                let mut s = starts[r * ncols + j] as usize;
                let mut e = starts[r * ncols + j + 1] as usize - 1;
                // A CRLF record's last field ends before the CR.
                if last && e > s && bytes[e - 1] == b'\r' {
                    e -= 1;
                }
                // A field starting with a quote (checked well formed) ends with
                // one: its value is between them.
                let mut pairs = false;
                if quoted && e - s >= 2 && bytes[s] == quote {
                    s += 1;
                    e -= 1;
                    pairs = doubled && memchr::memchr(quote, &bytes[s..e]).is_some();
                }
                (s, e, pairs)
            });
            if !column.extend(text, quote, fields) {
                return None;
            }
        }
        from = to;
    }
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, c)| c.finish()).collect();
    RecordBatch::try_new(out_schema, arrays).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Field, Schema};
    use proptest::prelude::*;

    /// The general reader's answer for the same bytes.
    fn reference(text: &str, schema: &SchemaRef, projection: &[usize]) -> RecordBatch {
        let reader = arrow::csv::ReaderBuilder::new(schema.clone())
            .with_header(false)
            .with_quote(b'"')
            .with_projection(projection.to_vec())
            .build_buffered(std::io::Cursor::new(text.as_bytes().to_vec()))
            .expect("reader");
        let batches: Vec<RecordBatch> = reader
            .collect::<Result<_, _>>()
            .expect("the general reader takes what the fast path took");
        let out = Arc::new(schema.project(projection).expect("projection"));
        arrow::compute::concat_batches(&out, &batches).expect("concat")
    }

    /// The fast path's answer for all of `schema`'s columns, checked equal to the
    /// general reader's where it gives one.
    fn checked(text: &str, schema: &SchemaRef) -> Option<RecordBatch> {
        let projection: Vec<usize> = (0..schema.fields().len()).collect();
        let got = parse(text, schema, &projection, schema.clone(), b',', b'"')?;
        assert_eq!(got, reference(text, schema, &projection), "{text:?}");
        Some(got)
    }

    fn int() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            (-1000i64..1000).prop_map(|v| v.to_string()),
            prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]).prop_map(|v| v.to_string()),
            Just("+7".to_string()),
        ]
    }

    fn float() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            (-1e6f64..1e6).prop_map(|v| v.to_string()),
            prop::sample::select(vec![
                "1e300", "-2.5E-10", "3.", ".5", "NaN", "nan", "inf", "-inf", "Infinity", "1e400",
                "-0.0", "4.9e-324", "12",
            ])
            .prop_map(str::to_string),
        ]
    }

    /// Text that needs no quotes.
    fn bare() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,20}",
            "[\u{e0}-\u{ff}\u{4e00}-\u{4e10} a-c]{1,8}",
            Just(" padded ".to_string()),
        ]
    }

    /// How a generated text field is written.
    #[derive(Clone, Copy, Debug)]
    enum Style {
        /// As it is (a value that needs no quotes).
        Bare,
        /// Between quotes, each quote in it doubled.
        Quoted,
        /// As it is, a value with quotes out of place.
        Stray,
    }

    /// A text field: a value and how it is written.
    fn text() -> impl Strategy<Value = (String, Style)> {
        prop_oneof![
            3 => bare().prop_map(|v| (v, Style::Bare)),
            3 => prop_oneof![
                bare(),
                "[a-z,\" ]{0,12}",
                Just("a\nb".to_string()),
                Just("c\r\nd".to_string()),
                Just("e\rf".to_string()),
            ]
            .prop_map(|v| (v, Style::Quoted)),
            1 => prop::sample::select(vec![
                "ab\"c", "\"ab\"c", "\"", "a\"\"", "\"open", "\"a\"\"b", "x\"", "\"\"\"",
            ])
            .prop_map(|v| (v.to_string(), Style::Stray)),
        ]
    }

    /// `value` between quotes, each quote in it doubled.
    fn quoted(value: &str) -> String {
        format!("\"{}\"", value.replace('"', "\"\""))
    }

    /// The field as written, `pad` added to a value that is not empty, and
    /// whether the fast path must take it.
    fn write_text((value, style): &(String, Style), pad: &str) -> (String, bool) {
        match style {
            Style::Bare if value.is_empty() => (String::new(), true),
            Style::Bare => (format!("{value}{pad}"), true),
            Style::Quoted => {
                let pad = if value.is_empty() { "" } else { pad };
                // A newline inside quotes, or a CR, is left to the general reader.
                (quoted(&format!("{value}{pad}")), !value.contains(['\n', '\r']))
            }
            Style::Stray => (value.clone(), false),
        }
    }

    fn boolean() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "true", "false", "TRUE", "False"]).prop_map(str::to_string)
    }

    /// A date field and whether the fast path must take it: `YYYY-MM-DD` from
    /// 1900 to 2100, month ends, leap days, and what the general reader reads
    /// otherwise or not at all.
    fn date() -> impl Strategy<Value = (String, bool)> {
        prop_oneof![
            (1900i32..=2100, 1u32..=12, 1u32..=28)
                .prop_map(|(y, m, d)| (format!("{y:04}-{m:02}-{d:02}"), true)),
            prop::sample::select(vec![
                ("", true),
                ("1970-01-01", true),
                ("1969-12-31", true),
                ("2000-02-29", true),
                ("2024-02-29", true),
                ("1904-02-29", true),
                ("2023-02-28", true),
                ("2023-01-31", true),
                ("2023-04-30", true),
                ("2100-12-31", true),
                ("1900-03-01", true),
                ("0000-02-29", true),
                ("9999-12-31", true),
                ("1900-02-29", false),
                ("2100-02-29", false),
                ("2023-02-29", false),
                ("2020-02-30", false),
                ("2023-04-31", false),
                ("2020-13-01", false),
                ("2020-00-10", false),
                ("2020-01-00", false),
                ("2020-1-5", false),
                ("20200105", false),
                (" 2020-01-05", false),
                ("2020-01-05 ", false),
                ("+2020-01-05", false),
                ("2020-01-05T10:00:00", false),
                ("2020/01/05", false),
            ])
            .prop_map(|(s, plain)| (s.to_string(), plain)),
        ]
    }

    proptest! {
        /// Typed columns (i64 bounds, exponents, NaN and infinities, booleans,
        /// dates, non-ASCII text), nulls, quoted fields (delimiters, doubled quotes,
        /// newlines inside, quoted numbers and dates, quotes out of place), CRLF or
        /// LF, with or without a final newline, any projection, records of every
        /// length across the index spans: where the fast path takes a block it
        /// reads what the general reader reads, and it takes every block of plain
        /// values.
        #[test]
        fn the_fast_path_agrees_with_the_general_reader(
            rows in prop::collection::vec(
                (int(), float(), text(), text(), boolean(), date(), any::<bool>()),
                0..40,
            ),
            long in 0usize..3,
            crlf in any::<bool>(),
            final_newline in any::<bool>(),
            projection in prop::sample::subsequence(vec![0usize, 1, 2, 3, 4, 5], 1..=6),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            // Plain values: integers in range, finite decimals without an exponent
            // or a name, text quoted well without a newline or a CR, valid dates;
            // any of them between quotes.
            let plain_int = |i: &str| i.is_empty() || i.parse::<i64>().is_ok();
            let plain_float = |f: &str| {
                f.is_empty()
                    || (f.parse::<f64>().is_ok_and(f64::is_finite)
                        && !f.contains(['e', 'E', 'n', 'N', 'i', 'I']))
            };
            let mut plain = true;
            for (r, (int, float, s, t, b, (d, plain_date), quote)) in rows.iter().enumerate() {
                // The last text column is padded so records cross spans.
                let pad = "p".repeat(long * (SPAN / 3) * usize::from(r % 7 == 3));
                let (s, plain_s) = write_text(s, "");
                let (t, plain_t) = write_text(t, &pad);
                let typed = |v: &str| if *quote { format!("\"{v}\"") } else { v.to_string() };
                let (i, f, b, d) = (typed(int), typed(float), typed(b), typed(d));
                text.push_str(&format!("{i},{f},{s},{t},{b},{d}"));
                if r + 1 < rows.len() || final_newline {
                    text.push_str(end);
                }
                plain &= plain_int(int) && plain_float(float) && plain_s && plain_t && *plain_date;
            }
            let schema: SchemaRef = Arc::new(Schema::new(vec![
                Field::new("i", DataType::Int64, true),
                Field::new("f", DataType::Float64, true),
                Field::new("s", DataType::Utf8, true),
                Field::new("t", DataType::Utf8, true),
                Field::new("b", DataType::Boolean, true),
                Field::new("d", DataType::Date32, true),
            ]));
            let out = Arc::new(schema.project(&projection).expect("projection"));
            let got = parse(&text, &schema, &projection, out, b',', b'"');
            // A value outside what the general reader takes (1e400 is a parse
            // error there) is the general reader's to report.
            if let Some(got) = got {
                let want = reference(&text, &schema, &projection);
                // Compared as text: NaN is not equal to itself.
                prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
            } else {
                prop_assert!(
                    !plain || rows.is_empty(),
                    "the fast path gave up on plain values: {text:?}"
                );
            }
        }

        /// Separators outside quotes, found 64 bytes at a time, are those a byte
        /// by byte reading finds, and a span is taken exactly when its every field
        /// is bare or quoted well: over any bytes of `a , " \n`, and over fields
        /// written well, quoted ones holding delimiters, newlines and quotes.
        #[test]
        fn separators_outside_quotes_are_found_exactly(
            text in prop_oneof![
                "[a,\"\n]{0,200}",
                prop::collection::vec(
                    (
                        prop_oneof![
                            "a{0,3}",
                            "[a,\"\n]{0,80}".prop_map(|v| quoted(&v)),
                        ],
                        prop::sample::select(vec![",", "\n"]),
                    ),
                    0..20,
                )
                .prop_map(|fields| fields.into_iter().map(|(f, sep)| f + sep).collect::<String>()),
            ],
            from in 0usize..3,
        ) {
            let bytes = text.as_bytes();
            let from = from.min(bytes.len());
            let (want, well_formed, want_doubled) = naive_quoted(bytes, from);
            let mut got = Vec::new();
            let doubled = index_quoted(bytes, from, bytes.len(), b',', b'"', &mut got);
            prop_assert_eq!(doubled.is_some(), well_formed, "{:?} from {}", text, from);
            if let Some(doubled) = doubled {
                prop_assert_eq!(got, want);
                prop_assert_eq!(doubled, want_doubled);
            }
        }
    }

    /// Field starts in `bytes[from..]` (one past each `,` or newline outside
    /// quotes), whether every field is bare or quoted well and the end is outside
    /// quotes, and whether a quote is doubled: read byte by byte.
    fn naive_quoted(bytes: &[u8], from: usize) -> (Vec<u32>, bool, bool) {
        let mut starts = Vec::new();
        let mut fields = Vec::new();
        let mut inside = false;
        let mut field_start = from;
        for (i, &b) in bytes.iter().enumerate().skip(from) {
            if b == b'"' {
                inside = !inside;
            } else if !inside && (b == b',' || b == b'\n') {
                starts.push(i as u32 + 1);
                fields.push(&bytes[field_start..i]);
                field_start = i + 1;
            }
        }
        fields.push(&bytes[field_start..]);
        let mut doubled = false;
        let well_formed = !inside
            && fields.iter().all(|f| {
                if !f.contains(&b'"') {
                    return true;
                }
                if f.len() < 2 || f[0] != b'"' || f[f.len() - 1] != b'"' {
                    return false;
                }
                let inner = &f[1..f.len() - 1];
                let mut k = 0;
                while k < inner.len() {
                    if inner[k] == b'"' {
                        if inner.get(k + 1) != Some(&b'"') {
                            return false;
                        }
                        doubled = true;
                        k += 2;
                    } else {
                        k += 1;
                    }
                }
                true
            });
        (starts, well_formed, doubled)
    }

    #[test]
    fn unusual_blocks_are_left_to_the_general_reader() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let out = Arc::new(schema.project(&[0, 1]).expect("projection"));
        for text in [
            "1,2\n3\n",
            "1,2\n3,4,5\n",
            "1,2\n\n3,4\n",
            "1,x\n",
            "1,2\r3,4\n",
            "1,\"2\n",
            "1,2\"\n",
            "\"1\"2,3\n",
            "1,\"\"\"\"\n",
            "\"\",\"1\"\"\"\n",
            "1,\"2\"\r3,4\n",
        ] {
            assert!(parse(text, &schema, &[0, 1], out.clone(), b',', b'"').is_none(), "{text:?}");
        }
    }

    #[test]
    fn quoted_fields_are_read_as_the_general_reader_reads_them() {
        let strings: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Utf8, true),
        ]));
        let text = "a,\"b\"\"c\",d\n\"x,y\",\"\",\"\"\"\"\r\n\"\"\"q\"\"\",,\"z\"\r\n";
        let got = checked(text, &strings).expect("the fast path takes well-quoted fields");
        let column = |j: usize| {
            let c = got.column(j).as_string::<i32>();
            c.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        };
        let some = |v: &str| Some(v.to_string());
        assert_eq!(column(0), vec![some("a"), some("x,y"), some("\"q\"")]);
        assert_eq!(column(1), vec![some("b\"c"), None, None]);
        assert_eq!(column(2), vec![some("d"), some("\""), some("z")]);

        let typed: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("d", DataType::Date32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let got = checked(
            "\"12\",\"2.5\",\"true\",\"2020-01-05\",\"x\"\n\"\",\"\",\"\",\"\",\"\"\n",
            &typed,
        );
        assert_eq!(got.expect("quoted typed fields are taken").num_rows(), 2);
        for refused in ["\"1\"\"2\",1,true,2020-01-05,x\n", "1,1,true,\"2020-01-05\"\"\",x\n"] {
            assert!(checked(refused, &typed).is_none(), "{refused:?}");
        }
    }

    /// A newline inside quotes, anywhere, even where a span would end, is read
    /// as the general reader reads it or left to it.
    #[test]
    fn newlines_inside_quotes_are_read_right_or_left_to_the_general_reader() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let long = "a".repeat(SPAN - 3);
        for text in [
            "1,\"a\nb\"\n2,c\n".to_string(),
            "1,\"a\r\nb\"\r\n2,c\r\n".to_string(),
            "1,\"a\n\"\n".to_string(),
            "1,\"\n\n\"\n2,\"\n3,x\"\n".to_string(),
            // The span search stops at the newline inside quotes.
            format!("1,\"{long}\nb\"\n2,c\n"),
        ] {
            checked(&text, &schema);
        }
        // A span ends after a quoted field as after any other.
        let across = format!("1,\"{long}\"\n2,c\n");
        assert_eq!(checked(&across, &schema).expect("well quoted").num_rows(), 2);
    }

    /// The exact decimal path gives what the full parser gives, bit for bit, and
    /// leaves everything else to it.
    #[test]
    fn plain_decimals_are_read_exactly() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "-0.0",
            "0.1",
            "0.3",
            "3.",
            ".5",
            "-.5",
            "9007199254740993",
            "9007199254740992",
            "123456789.123456789",
            "0.0000000000000000000001",
            "1.7976931348623157",
            "24386.67",
            "0.04",
            "-1234.5678",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for _ in 0..200_000 {
            let digits = (next() % 17 + 1) as usize;
            let mantissa = next() % 10u64.pow(digits as u32);
            let decimals = (next() % (digits as u64 + 1)) as usize;
            let mut t = format!("{mantissa:0digits$}");
            t.insert(digits - decimals, '.');
            if next() % 2 == 0 {
                t.insert(0, '-');
            }
            texts.push(t);
        }
        for t in &texts {
            let full = lexical_core::parse::<f64>(t.as_bytes()).ok();
            if let Some(v) = plain_decimal(t.as_bytes()) {
                assert_eq!(Some(v.to_bits()), full.map(f64::to_bits), "{t}");
            }
        }
        assert_eq!(plain_decimal(b"24386.67"), Some(24386.67));
        for refused in ["", "-", ".", "1e5", "+1", "1.2.3", "9007199254740993", "nan", "1 "] {
            assert_eq!(plain_decimal(refused.as_bytes()), None, "{refused}");
        }
    }

    #[test]
    fn dates_are_days_since_1970() {
        for (date, days) in [
            ("1970-01-01", Some(0)),
            ("1969-12-31", Some(-1)),
            ("2000-03-01", Some(11_017)),
            ("1900-01-01", Some(-25_567)),
            ("2100-12-31", Some(47_846)),
            ("0000-01-01", Some(-719_528)),
            ("9999-12-31", Some(2_932_896)),
            ("2000-02-29", Some(11_016)),
            ("1900-02-29", None),
            ("2020-02-30", None),
            ("2020-1-05", None),
            ("2020-01-5", None),
            ("2020-01-05 ", None),
            ("2020_01_05", None),
            ("-020-01-05", None),
        ] {
            assert_eq!(date_days(date.as_bytes()), days, "{date}");
        }
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("e", DataType::Date32, true),
        ]));
        // Four centuries and two years from 1899, as the general reader shows them.
        let mut every_day = String::new();
        for k in 0..=146_097 + 731 {
            let date = arrow::array::Date32Array::from(vec![days_from_civil(1899, 1, 1) + k]);
            let shown = arrow::util::display::array_value_to_string(&date, 0).expect("date");
            every_day.push_str(&shown);
            every_day.push_str(",\n");
        }
        checked(&every_day, &schema).expect("every valid date is taken");
    }

    #[test]
    fn separators_are_found_exactly() {
        for text in ["a,-5,\n-,,x\n", ",", "abcdefgh,ijklmnop\nq", "", "\n\n,,,,,,,,,,"] {
            for delimiter in [b',', b';', b'x'] {
                let bytes = text.as_bytes();
                for from in 0..=bytes.len().min(3) {
                    let want: Vec<u32> = (from..bytes.len())
                        .filter(|&i| bytes[i] == delimiter || bytes[i] == b'\n')
                        .map(|i| i as u32 + 1)
                        .collect();
                    let mut got = Vec::new();
                    index_separators(bytes, from, bytes.len(), delimiter, &mut got);
                    assert_eq!(got, want, "{text:?} from {from}");
                }
            }
        }
    }
}
