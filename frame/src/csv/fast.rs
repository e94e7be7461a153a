//! A fast path for the common block: no quote characters, only the empty field as
//! null, and columns of Int64, Float64, Utf8 or Boolean. Fields are found with one
//! byte scan and parsed straight into Arrow builders, skipping the columns not
//! asked for. Anything unexpected (a ragged row, a value that does not parse, a CR
//! not before a newline) gives up, and the general reader parses the block and
//! reports the problem.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};

/// One projected column's builder.
enum Column {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Bool(BooleanBuilder),
}

impl Column {
    fn new(dtype: &DataType, rows: usize, text_bytes: usize) -> Option<Column> {
        Some(match dtype {
            DataType::Int64 => Column::Int(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Column::Float(Float64Builder::with_capacity(rows)),
            DataType::Utf8 => Column::Text(StringBuilder::with_capacity(rows, text_bytes)),
            DataType::Boolean => Column::Bool(BooleanBuilder::with_capacity(rows)),
            _ => return None,
        })
    }

    /// Appends every field of one column: `fields` yields each field's byte
    /// range; an empty field is null. `false` if a value does not parse.
    fn extend(&mut self, text: &str, fields: impl Iterator<Item = (usize, usize)>) -> bool {
        let bytes = text.as_bytes();
        // One loop per type, so the type is not looked at again per field.
        match self {
            Column::Int(b) => {
                for (s, e) in fields {
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
                for (s, e) in fields {
                    if s == e {
                        b.append_null();
                        continue;
                    }
                    match lexical_core::parse::<f64>(&bytes[s..e]) {
                        Ok(v) => b.append_value(v),
                        Err(_) => return false,
                    }
                }
            }
            // Separators are ASCII, so a field of valid UTF-8 text is valid too.
            Column::Text(b) => {
                for (s, e) in fields {
                    if s == e {
                        b.append_null();
                    } else {
                        b.append_value(&text[s..e]);
                    }
                }
            }
            Column::Bool(b) => {
                for (s, e) in fields {
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
        }
        true
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Float(mut b) => Arc::new(b.finish()),
            Column::Text(mut b) => Arc::new(b.finish()),
            Column::Bool(mut b) => Arc::new(b.finish()),
        }
    }
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

/// Bit `i` set where byte `i` is the delimiter or a newline. The compares are
/// written so the compiler does them sixteen bytes at a time; each eight flag bytes
/// are then gathered into eight bits with one multiply.
#[inline]
fn separator_mask(chunk: &[u8; 64], delimiter: u8) -> u64 {
    let mut flags = [0u8; 64];
    for (flag, &b) in flags.iter_mut().zip(chunk) {
        *flag = u8::from((b == delimiter) | (b == b'\n')) << 7;
    }
    let mut mask = 0u64;
    for (k, eight) in flags.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
        // Bit 7 of byte j lands on bit 56 + j.
        mask |= (w.wrapping_mul(0x0002_0408_1020_4081) >> 56) << (8 * k);
    }
    mask
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

/// Parses `text` (whole records, no quotes) with `file_schema`'s columns, keeping
/// `projection` (in file order); `None` when the fast path does not apply.
pub(crate) fn parse(
    text: &str,
    file_schema: &SchemaRef,
    projection: &[usize],
    out_schema: SchemaRef,
    delimiter: u8,
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
        // A span of whole records: up to the first newline after SPAN bytes.
        let to = match bytes.get(from + SPAN..).and_then(|rest| memchr::memchr(b'\n', rest)) {
            Some(i) => from + SPAN + i + 1,
            None => bytes.len(),
        };
        // starts[r * ncols + j] is where field j of row r starts; the entry after a
        // row's last field is one past its newline.
        starts.clear();
        starts.push(from as u32);
        index_separators(bytes, from, to, delimiter, &mut starts);
        let mut lines = memchr::memchr_iter(b'\n', &bytes[from..to]).count();
        if bytes[to - 1] != b'\n' {
            // A last record without a newline.
            starts.push(to as u32 + 1);
            lines += 1;
        }
        // Exactly ncols separators per record, the last of them a newline: then no
        // other separator is a newline, and every record has every field.
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
                let s = starts[r * ncols + j] as usize;
                let mut e = starts[r * ncols + j + 1] as usize - 1;
                // A CRLF record's last field ends before the CR.
                if last && e > s && bytes[e - 1] == b'\r' {
                    e -= 1;
                }
                (s, e)
            });
            if !column.extend(text, fields) {
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
    use arrow::datatypes::{Field, Schema};
    use proptest::prelude::*;

    /// The general reader's answer for the same bytes.
    fn reference(text: &str, schema: &SchemaRef, projection: &[usize]) -> RecordBatch {
        let reader = arrow::csv::ReaderBuilder::new(schema.clone())
            .with_header(false)
            .with_projection(projection.to_vec())
            .build_buffered(std::io::Cursor::new(text.as_bytes().to_vec()))
            .expect("reader");
        let batches: Vec<RecordBatch> = reader
            .collect::<Result<_, _>>()
            .expect("the general reader takes what the fast path took");
        let out = Arc::new(schema.project(projection).expect("projection"));
        arrow::compute::concat_batches(&out, &batches).expect("concat")
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

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,20}",
            "[\u{e0}-\u{ff}\u{4e00}-\u{4e10} a-c]{1,8}",
            Just(" padded ".to_string()),
        ]
    }

    fn boolean() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "true", "false", "TRUE", "False"]).prop_map(str::to_string)
    }

    proptest! {
        /// Typed columns (i64 bounds, exponents, NaN and infinities, booleans,
        /// non-ASCII text), nulls, CRLF or LF, with or without a final newline, any
        /// projection, records of every length across the index spans: where the
        /// fast path takes a block it reads what the general reader reads, and it
        /// takes every block of plain values.
        #[test]
        fn the_fast_path_agrees_with_the_general_reader(
            rows in prop::collection::vec((int(), float(), text(), text(), boolean()), 0..40),
            long in 0usize..3,
            crlf in any::<bool>(),
            final_newline in any::<bool>(),
            projection in prop::sample::subsequence(vec![0usize, 1, 2, 3, 4], 1..=5),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for (r, (int, float, s, t, b)) in rows.iter().enumerate() {
                // The last text column is padded so records cross spans.
                let pad = "p".repeat(long * (SPAN / 3) * usize::from(r % 7 == 3));
                let t = if t.is_empty() { String::new() } else { format!("{t}{pad}") };
                text.push_str(&format!("{int},{float},{s},{t},{b}"));
                if r + 1 < rows.len() || final_newline {
                    text.push_str(end);
                }
            }
            let schema: SchemaRef = Arc::new(Schema::new(vec![
                Field::new("i", DataType::Int64, true),
                Field::new("f", DataType::Float64, true),
                Field::new("s", DataType::Utf8, true),
                Field::new("t", DataType::Utf8, true),
                Field::new("b", DataType::Boolean, true),
            ]));
            let out = Arc::new(schema.project(&projection).expect("projection"));
            let got = parse(&text, &schema, &projection, out, b',');
            // A value outside what the general reader takes (1e400 is a parse
            // error there) is the general reader's to report.
            if let Some(got) = got {
                let want = reference(&text, &schema, &projection);
                // Compared as text: NaN is not equal to itself.
                prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
            } else {
                // Plain values: integers in range, finite decimals without an
                // exponent or a name.
                let plain_int = |i: &String| i.is_empty() || i.parse::<i64>().is_ok();
                let plain_float = |f: &String| {
                    f.is_empty()
                        || (f.parse::<f64>().is_ok_and(f64::is_finite)
                            && !f.contains(['e', 'E', 'n', 'N', 'i', 'I']))
                };
                let plain = rows.iter().all(|(i, f, ..)| plain_int(i) && plain_float(f));
                prop_assert!(!plain || rows.is_empty(), "the fast path gave up on plain values: {text:?}");
            }
        }
    }

    #[test]
    fn unusual_blocks_are_left_to_the_general_reader() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let out = Arc::new(schema.project(&[0, 1]).expect("projection"));
        for text in ["1,2\n3\n", "1,2\n3,4,5\n", "1,2\n\n3,4\n", "1,x\n", "1,2\r3,4\n"] {
            assert!(parse(text, &schema, &[0, 1], out.clone(), b',').is_none(), "{text:?}");
        }
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
