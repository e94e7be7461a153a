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

enum Column {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Bool(BooleanBuilder),
    Skip,
}

impl Column {
    /// Appends the field `text[start..end]`; `false` if it does not parse.
    fn push(&mut self, text: &str, start: usize, end: usize) -> bool {
        let bytes = &text.as_bytes()[start..end];
        if bytes.is_empty() {
            match self {
                Column::Int(b) => b.append_null(),
                Column::Float(b) => b.append_null(),
                Column::Text(b) => b.append_null(),
                Column::Bool(b) => b.append_null(),
                Column::Skip => {}
            }
            return true;
        }
        match self {
            Column::Int(b) => match lexical_core::parse::<i64>(bytes) {
                Ok(v) => b.append_value(v),
                Err(_) => return false,
            },
            Column::Float(b) => match lexical_core::parse::<f64>(bytes) {
                Ok(v) => b.append_value(v),
                Err(_) => return false,
            },
            // Separators are ASCII, so a field of valid UTF-8 text is valid too.
            Column::Text(b) => b.append_value(&text[start..end]),
            Column::Bool(b) => {
                if bytes.eq_ignore_ascii_case(b"true") {
                    b.append_value(true)
                } else if bytes.eq_ignore_ascii_case(b"false") {
                    b.append_value(false)
                } else {
                    return false;
                }
            }
            Column::Skip => {}
        }
        true
    }

    fn finish(self) -> Option<ArrayRef> {
        Some(match self {
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Float(mut b) => Arc::new(b.finish()),
            Column::Text(mut b) => Arc::new(b.finish()),
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Skip => return None,
        })
    }
}

/// The positions of delimiters and newlines, found eight bytes at a time: fields
/// are short, so memchr's per-hit cost would dominate.
struct Separators<'a> {
    bytes: &'a [u8],
    /// The offset just past the word `mask` describes.
    next: usize,
    /// Bit 7 of byte k set where byte `next - 8 + k` is a separator.
    mask: u64,
    delimiter: u64,
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;

/// Bit 7 set in exactly the bytes of `x` that are zero (no carries between bytes).
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

impl<'a> Separators<'a> {
    fn new(bytes: &'a [u8], delimiter: u8) -> Self {
        Separators { bytes, next: 0, mask: 0, delimiter: ONES * u64::from(delimiter) }
    }
}

impl Iterator for Separators<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            let at = self.next;
            if at >= self.bytes.len() {
                return None;
            }
            let w = match self.bytes.get(at..at + 8) {
                Some(eight) => u64::from_le_bytes(eight.try_into().expect("eight bytes")),
                None => {
                    // The tail, padded with a byte that is neither separator.
                    let pad = if self.delimiter == ONES * u64::from(b'x') { b'y' } else { b'x' };
                    let mut word = [pad; 8];
                    let n = self.bytes.len() - at;
                    word[..n].copy_from_slice(&self.bytes[at..]);
                    u64::from_le_bytes(word)
                }
            };
            self.mask = zero_bytes(w ^ self.delimiter) | zero_bytes(w ^ (ONES * u64::from(b'\n')));
            self.next = at + 8;
        }
        let k = self.mask.trailing_zeros() as usize / 8;
        self.mask &= self.mask - 1;
        Some(self.next - 8 + k)
    }
}

/// Parses `text` (whole records, no quotes) with `file_schema`'s columns, keeping
/// `projection`; `None` when the fast path does not apply.
pub(crate) fn parse(
    text: &str,
    file_schema: &SchemaRef,
    projection: &[usize],
    out_schema: SchemaRef,
    delimiter: u8,
) -> Option<RecordBatch> {
    let ncols = file_schema.fields().len();
    // Rows estimated from the first one's length (no pass over the block).
    let first_row = memchr::memchr(b'\n', text.as_bytes()).map_or(text.len(), |i| i + 1);
    let rows_hint = text.len() / first_row.max(1) + text.len() / first_row.max(1) / 8 + 1;
    let mut columns: Vec<Column> = (0..ncols)
        .map(|i| {
            if !projection.contains(&i) {
                return Some(Column::Skip);
            }
            Some(match file_schema.field(i).data_type() {
                DataType::Int64 => Column::Int(Int64Builder::with_capacity(rows_hint)),
                DataType::Float64 => Column::Float(Float64Builder::with_capacity(rows_hint)),
                DataType::Utf8 => {
                    Column::Text(StringBuilder::with_capacity(rows_hint, text.len() / ncols))
                }
                DataType::Boolean => Column::Bool(BooleanBuilder::with_capacity(rows_hint)),
                _ => return None,
            })
        })
        .collect::<Option<_>>()?;
    let bytes = text.as_bytes();
    // A CR ends a record by itself in the general reader: only CRLF stays here.
    if memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n')) {
        return None;
    }
    let wanted: Vec<bool> = columns.iter().map(|c| !matches!(c, Column::Skip)).collect();
    let mut field = 0usize;
    let mut start = 0usize;
    for i in Separators::new(bytes, delimiter) {
        if bytes[i] == b'\n' {
            let end = if i > start && bytes[i - 1] == b'\r' { i - 1 } else { i };
            // A short row, or a blank line (left to the general reader).
            if field + 1 != ncols || (ncols == 1 && end == start) {
                return None;
            }
            if wanted[field] && !columns[field].push(text, start, end) {
                return None;
            }
            field = 0;
        } else {
            if field + 1 >= ncols {
                return None;
            }
            if wanted[field] && !columns[field].push(text, start, i) {
                return None;
            }
            field += 1;
        }
        start = i + 1;
    }
    if start < bytes.len() {
        // A last record without a newline.
        if field + 1 != ncols || (wanted[field] && !columns[field].push(text, start, bytes.len())) {
            return None;
        }
    } else if field != 0 {
        return None;
    }
    let arrays: Vec<ArrayRef> = columns.into_iter().filter_map(Column::finish).collect();
    RecordBatch::try_new(out_schema, arrays).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_found_exactly() {
        for text in ["a,-5,\n-,,x\n", ",", "abcdefgh,ijklmnop\nq", "", "\n\n,,,,,,,,,,"] {
            for delimiter in [b',', b';', b'x'] {
                let want: Vec<usize> = text
                    .bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == delimiter || b == b'\n')
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(
                    Separators::new(text.as_bytes(), delimiter).collect::<Vec<_>>(),
                    want,
                    "{text:?}"
                );
            }
        }
    }
}
