//! Ordering and counting: `sort_values`, `nlargest`, `value_counts`, `nunique`,
//! `drop_duplicates`.
//!
//! `sort_values` gathers the partitions into one sorted partition (an external
//! merge sort under a memory budget is the out-of-core work); `nlargest` keeps the
//! top rows of each partition first, so only those meet in the last task.

use arrow::array::RecordBatch;
use arrow::compute::{SortColumn, SortOptions};
use brisk_core::{Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::{Layer, Task};
use serde::{Deserialize, Serialize};

use crate::frame::{Frame, RowCount, arrow_err, batch_of, token};
use crate::groupby::Agg;
use crate::{Error, Result};

/// Sorts by `by` (descending per flag, nulls last) and keeps at most `limit` rows.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SortBatches {
    by: Vec<(String, bool)>,
    limit: Option<usize>,
}

impl OpKind for SortBatches {
    const NAME: &'static str = "frame.sort";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let batches = inputs
            .iter()
            .map(|v| batch_of(Self::NAME, v))
            .collect::<brisk_core::Result<Vec<_>>>()?;
        let schema = batches.first().map(RecordBatch::schema).ok_or(CoreError::Arity {
            op: Self::NAME.into(),
            expected: 1,
            found: 0,
        })?;
        let all = arrow::compute::concat_batches(&schema, &batches).map_err(&err)?;
        let columns = self
            .by
            .iter()
            .map(|(c, descending)| {
                let values = all
                    .column_by_name(c)
                    .cloned()
                    .ok_or_else(|| CoreError::Internal(format!("no column {c}")))?;
                Ok(SortColumn {
                    values,
                    options: Some(SortOptions { descending: *descending, nulls_first: false }),
                })
            })
            .collect::<brisk_core::Result<Vec<_>>>()?;
        let idx = arrow::compute::lexsort_to_indices(&columns, self.limit).map_err(&err)?;
        Ok(Value::from(arrow::compute::take_record_batch(&all, &idx).map_err(&err)?))
    }
}

impl Frame {
    fn sorted(&self, by: Vec<(String, bool)>, limit: Option<usize>, prefix: &str) -> Result<Frame> {
        for (c, _) in &by {
            self.check_column(c)?;
        }
        let name = token(prefix, &(self.layer().name(), &by, limit));
        let mut inputs: Vec<Key> = self.partition_keys().cloned().collect();
        let mut tasks = Vec::new();
        if limit.is_some() && inputs.len() > 1 {
            // The top rows of each partition first.
            let base = Key::named(format!("{name}-part"));
            inputs = inputs
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let key = base.with_index([i as u32]);
                    let op = Op::data(SortBatches { by: by.clone(), limit });
                    tasks.push(Task::new(key.clone(), op, [k.clone()]));
                    key
                })
                .collect();
        }
        let op = Op::data(SortBatches { by, limit });
        tasks.push(Task::new(Key::new(name.as_str(), [0u32]), op, inputs));
        let (last, rest) = tasks.split_last().expect("one task");
        let middle = Layer::new(format!("{name}-parts"), rest.to_vec(), vec![self.layer().clone()]);
        let layer = Layer::new(name, vec![last.clone()], vec![middle]);
        Ok(Frame::from_layer(self.schema().clone(), layer))
    }

    /// All rows sorted by `by` (ascending unless `descending`; nulls last; stable),
    /// as one partition.
    pub fn sort_values<S: AsRef<str>>(
        &self,
        by: impl IntoIterator<Item = S>,
        descending: bool,
    ) -> Result<Frame> {
        let by: Vec<(String, bool)> =
            by.into_iter().map(|c| (c.as_ref().to_string(), descending)).collect();
        if by.is_empty() {
            return Err(Error::Invalid("sort_values needs at least one column".into()));
        }
        self.sorted(by, None, "sort-values")
    }

    /// The `n` rows with the largest values of `column`, largest first.
    pub fn nlargest(&self, n: usize, column: &str) -> Result<Frame> {
        self.sorted(vec![(column.to_string(), true)], Some(n), "nlargest")
    }

    /// How often each value of `column` occurs: columns `column` and `count`, most
    /// frequent first (ties by value), nulls dropped, as pandas' `value_counts`.
    pub fn value_counts(&self, column: &str) -> Result<Frame> {
        let counts = self.groupby([column])?.agg([(column, Agg::Count)])?;
        let counts = counts.rename([(format!("{column}_count"), "count".to_string())])?;
        counts.sorted(
            vec![("count".into(), true), (column.to_string(), false)],
            None,
            "value-counts",
        )
    }

    /// The number of distinct non-null values of `column`, lazily.
    pub fn nunique(&self, column: &str) -> Result<RowCount> {
        Ok(self.groupby([column])?.agg([(column, Agg::Count)])?.len())
    }

    /// The distinct rows (nulls compare equal), sorted by the columns in order.
    pub fn drop_duplicates(&self) -> Result<Frame> {
        let columns: Vec<String> = self.columns().iter().map(|c| c.to_string()).collect();
        let first = columns
            .first()
            .ok_or_else(|| Error::Invalid("drop_duplicates needs a column".into()))?;
        let groups = self.groupby(columns.iter()).map(|g| g.dropna(false))?;
        let counted = groups.agg([(first.as_str(), Agg::Size)])?;
        counted.select(columns.iter())
    }
}
