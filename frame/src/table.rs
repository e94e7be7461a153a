//! A computed frame: a schema and its record batches.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;

/// The result of computing a frame: Arrow batches sharing one schema. Prints as a
/// table (the first and last rows of long ones).
#[derive(Clone, Debug)]
pub struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

/// Rows printed before a long table is cut to its head and tail.
const PRINT_ROWS: usize = 20;

impl Table {
    /// A table of batches (empty batches are dropped).
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Table {
        let batches = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        Table { schema, batches }
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The batches.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// The batches, moved out.
    pub fn into_batches(self) -> Vec<RecordBatch> {
        self.batches
    }

    /// The number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// All rows as one batch.
    pub fn to_batch(&self) -> RecordBatch {
        arrow::compute::concat_batches(&self.schema, &self.batches)
            .expect("batches of one schema concatenate")
    }

    /// One column, all rows, or `None` if there is no such column.
    pub fn column(&self, name: &str) -> Option<ArrayRef> {
        let i = self.schema.index_of(name).ok()?;
        let parts: Vec<&dyn arrow::array::Array> =
            self.batches.iter().map(|b| b.column(i).as_ref()).collect();
        if parts.is_empty() {
            return Some(arrow::array::new_empty_array(self.schema.field(i).data_type()));
        }
        arrow::compute::concat(&parts).ok()
    }

    /// `len` rows from `offset`.
    pub fn slice(&self, offset: usize, len: usize) -> Table {
        let mut out = Vec::new();
        let (mut skip, mut left) = (offset, len);
        for b in &self.batches {
            if left == 0 {
                break;
            }
            if skip >= b.num_rows() {
                skip -= b.num_rows();
                continue;
            }
            let n = (b.num_rows() - skip).min(left);
            out.push(b.slice(skip, n));
            left -= n;
            skip = 0;
        }
        Table::new(self.schema.clone(), out)
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.num_rows();
        let shown = if n <= PRINT_ROWS {
            self.batches.clone()
        } else {
            let half = PRINT_ROWS / 2;
            let mut b = self.slice(0, half).batches;
            b.extend(self.slice(n - half, half).batches);
            b
        };
        let text = if shown.is_empty() {
            arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                self.schema.clone(),
            )])
        } else {
            arrow::util::pretty::pretty_format_batches(&shown)
        }
        .map_err(|_| std::fmt::Error)?;
        writeln!(f, "{text}")?;
        if n > PRINT_ROWS {
            writeln!(f, "(showing the first and last {} rows)", PRINT_ROWS / 2)?;
        }
        write!(f, "{n} rows × {} columns", self.schema.fields().len())
    }
}

/// A batch sorted by its first `nk` columns (nulls last).
pub(crate) fn sort_batch(
    batch: &RecordBatch,
    nk: usize,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    if batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let sort: Vec<arrow::compute::SortColumn> = batch.columns()[..nk]
        .iter()
        .map(|c| arrow::compute::SortColumn {
            values: c.clone(),
            options: Some(arrow::compute::SortOptions { descending: false, nulls_first: false }),
        })
        .collect();
    let idx = arrow::compute::lexsort_to_indices(&sort, None)?;
    arrow::compute::take_record_batch(batch, &idx)
}
