//! Ordering and counting: `sort_values`, `nlargest`, `value_counts`, `nunique`,
//! `drop_duplicates`.
//!
//! `sort_values` over several partitions is a range-partitioned sort, as Dask's:
//! each partition's sort keys are sampled, the samples give one boundary per output
//! partition, every partition is sorted and cut at the boundaries into pieces (each
//! piece its own task result, so the scheduler can spill it and read back only it),
//! and output partition j merges piece j of every input. No task holds more than a
//! partition's worth of rows, so a frame larger than the memory budget sorts
//! through the spill store. Rows compare by their Arrow row encoding (descending and
//! nulls-last folded into the bytes), so every step agrees on the order, and the
//! sort is stable. `nlargest` keeps the top rows of each partition first, so only
//! those meet in the last task.

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::SortOptions;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};
use brisk_core::{Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::{Layer, Task, token};
use serde::{Deserialize, Serialize};

use crate::batches::{arrow_err, batch_of, concat_all, first_batch, items};
use crate::frame::{Frame, RowCount};
use crate::groupby::Agg;
use crate::{Error, Result};

/// The sort columns of `batch` encoded as rows whose byte order is the sort order
/// (descending per flag, nulls last), with the converter that made them.
fn sort_rows(
    batch: &RecordBatch,
    by: &[(String, bool)],
) -> brisk_core::Result<(RowConverter, Rows)> {
    let mut fields = Vec::with_capacity(by.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(by.len());
    for (c, descending) in by {
        let column = batch
            .column_by_name(c)
            .cloned()
            .ok_or_else(|| CoreError::Internal(format!("sort: no column {c}")))?;
        let options = SortOptions { descending: *descending, nulls_first: false };
        fields.push(SortField::new_with_options(column.data_type().clone(), options));
        columns.push(column);
    }
    let err = arrow_err("frame.sort");
    let converter = RowConverter::new(fields).map_err(&err)?;
    let rows = converter.convert_columns(&columns).map_err(&err)?;
    Ok((converter, rows))
}

/// Row numbers of `rows` in sort order; equal rows keep their order.
fn sorted_order(rows: &Rows) -> Vec<u32> {
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    order
}

/// Row numbers of the first `limit` rows of `rows` in sort order (stable), found
/// by selection before only those are sorted: top-N without sorting everything.
fn top_order(rows: &Rows, limit: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    // Ties broken by row number, so the selection keeps the sort's stability.
    let cmp = |a: &u32, b: &u32| rows.row(*a as usize).cmp(&rows.row(*b as usize)).then(a.cmp(b));
    if limit == 0 {
        return Vec::new();
    }
    order.select_nth_unstable_by(limit - 1, cmp);
    order.truncate(limit);
    order.sort_unstable_by(cmp);
    order
}

fn take(batch: &RecordBatch, rows: &[u32]) -> std::result::Result<RecordBatch, ArrowError> {
    arrow::compute::take_record_batch(batch, &UInt32Array::from(rows.to_vec()))
}

/// The inputs' batches concatenated (inputs may be empty batches of the schema).
fn concat_inputs(op: &str, inputs: &[Value]) -> brisk_core::Result<RecordBatch> {
    concat_all(op, inputs.iter().map(|v| batch_of(op, v)).collect::<brisk_core::Result<_>>()?)
}

/// Sort keys sampled from each partition to place the boundaries.
const SAMPLES_PER_PARTITION: usize = 256;

/// Sorts by `by` (descending per flag, nulls last, stable) and keeps at most
/// `limit` rows: one partition's sort, and the merge of sorted pieces.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SortBatches {
    by: Vec<(String, bool)>,
    limit: Option<usize>,
}

impl OpKind for SortBatches {
    const NAME: &'static str = "frame.sort";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let all = concat_inputs(Self::NAME, &inputs)?;
        let n = all.num_rows();
        if self.by.is_empty() {
            // A plain limit: the first rows, in order.
            return Ok(Value::from(all.slice(0, self.limit.unwrap_or(n).min(n))));
        }
        let (_, rows) = sort_rows(&all, &self.by)?;
        let order = match self.limit {
            Some(limit) if limit < n => top_order(&rows, limit),
            _ => sorted_order(&rows),
        };
        Ok(Value::from(take(&all, &order).map_err(arrow_err(Self::NAME))?))
    }
}

/// Up to `per_part` sort keys of a partition, evenly spaced in sort order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SortSample {
    by: Vec<(String, bool)>,
    per_part: usize,
}

impl OpKind for SortSample {
    const NAME: &'static str = "frame.sort-sample";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let batch = first_batch(Self::NAME, &inputs)?;
        let (_, rows) = sort_rows(&batch, &self.by)?;
        let order = sorted_order(&rows);
        let n = order.len();
        let picked: Vec<u32> = if n <= self.per_part {
            order
        } else {
            (0..self.per_part).map(|k| order[k * n / self.per_part]).collect()
        };
        Ok(Value::from(take(&batch, &picked).map_err(arrow_err(Self::NAME))?))
    }
}

/// The boundaries of `parts` output partitions: `parts - 1` rows of sort keys at
/// even quantiles of the samples (fewer when the samples are fewer).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SortBounds {
    by: Vec<(String, bool)>,
    parts: usize,
}

impl OpKind for SortBounds {
    const NAME: &'static str = "frame.sort-bounds";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let samples = concat_inputs(Self::NAME, &inputs)?;
        let (_, rows) = sort_rows(&samples, &self.by)?;
        let order = sorted_order(&rows);
        let m = order.len();
        let mut picked: Vec<u32> = Vec::with_capacity(self.parts);
        for k in 1..self.parts {
            let i = order[(k * m / self.parts).min(m.saturating_sub(1))];
            // Equal boundaries would only make empty partitions.
            if m > 0 && picked.last().is_none_or(|&p| rows.row(p as usize) < rows.row(i as usize)) {
                picked.push(i);
            }
        }
        Ok(Value::from(take(&samples, &picked).map_err(arrow_err(Self::NAME))?))
    }
}

/// A partition sorted and cut at the boundaries into `parts` pieces: piece j holds
/// the rows at or above boundary j - 1 and below boundary j.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SortSplit {
    by: Vec<(String, bool)>,
    parts: usize,
}

impl OpKind for SortSplit {
    const NAME: &'static str = "frame.sort-split";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let [bounds, batch] = [0, 1].map(|i| inputs.get(i).map(|v| batch_of(Self::NAME, v)));
        let (Some(batch), Some(bounds)) = (batch, bounds) else {
            return Err(CoreError::Arity {
                op: Self::NAME.into(),
                expected: 2,
                found: inputs.len(),
            });
        };
        let (batch, bounds) = (batch?, bounds?);
        let (converter, rows) = sort_rows(&batch, &self.by)?;
        let columns = self
            .by
            .iter()
            .map(|(c, _)| {
                bounds
                    .column_by_name(c)
                    .cloned()
                    .ok_or_else(|| CoreError::Internal(format!("sort bounds: no column {c}")))
            })
            .collect::<brisk_core::Result<Vec<_>>>()?;
        let bound_rows = converter.convert_columns(&columns).map_err(&err)?;
        let order = sorted_order(&rows);
        let mut start = 0;
        let mut pieces = Vec::with_capacity(self.parts);
        for j in 0..self.parts {
            let end = if j < bound_rows.num_rows() {
                let bound = bound_rows.row(j);
                start + order[start..].partition_point(|&i| rows.row(i as usize) < bound)
            } else if j + 1 == self.parts {
                order.len()
            } else {
                start
            };
            pieces.push(Value::from(take(&batch, &order[start..end]).map_err(&err)?));
            start = end;
        }
        Ok(Value::from(pieces))
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

    /// All rows sorted by `by` (ascending unless `descending`; nulls last; stable).
    /// Over several partitions the result has as many, range-partitioned: their
    /// concatenation in order is sorted (see the module notes).
    pub fn sort_values<S: AsRef<str>>(
        &self,
        by: impl IntoIterator<Item = S>,
        descending: bool,
    ) -> Result<Frame> {
        self.sort_by(by.into_iter().map(|c| (c.as_ref().to_string(), descending)))
    }

    /// The `n` first rows in the order of `by`, `(column, descending)` pairs
    /// (nulls last, stable): each partition's top `n` first, then theirs, as
    /// `nlargest` (SQL's `order by .. limit n`). With no columns, the first `n`
    /// rows in the order the computed frame has: a group-by's keys, else the
    /// rows' own order.
    pub fn top<S: AsRef<str>>(
        &self,
        n: usize,
        by: impl IntoIterator<Item = (S, bool)>,
    ) -> Result<Frame> {
        let mut by: Vec<(String, bool)> =
            by.into_iter().map(|(c, d)| (c.as_ref().to_string(), d)).collect();
        if by.is_empty()
            && let Some(keys) = self.sort_keys()
        {
            // A group-by's result is in key order once computed: its first rows
            // are the smallest keys, not the first partition's.
            by = keys.iter().map(|k| (k.clone(), false)).collect();
        }
        self.sorted(by, Some(n), "top")
    }

    /// All rows sorted by `(column, descending)` pairs, each column its own way
    /// (SQL's `order by a desc, b`); nulls last; stable. Partitioned as
    /// [`sort_values`](Self::sort_values).
    pub fn sort_by<S: AsRef<str>>(&self, by: impl IntoIterator<Item = (S, bool)>) -> Result<Frame> {
        let by: Vec<(String, bool)> =
            by.into_iter().map(|(c, d)| (c.as_ref().to_string(), d)).collect();
        if by.is_empty() {
            return Err(Error::Invalid("sort_values needs at least one column".into()));
        }
        if self.npartitions() <= 1 {
            return self.sorted(by, None, "sort-values");
        }
        for (c, _) in &by {
            self.check_column(c)?;
        }
        // A plain read re-reads just the sort columns for the samples.
        let keys = self.projected(&by.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>())?;
        let name = token("sort-values", &(self.layer().name(), &by));
        let parts = self.npartitions();
        let mut tasks = Vec::new();
        let sample_base = Key::named(format!("{name}-sample"));
        let samples: Vec<Key> = keys
            .partition_keys()
            .enumerate()
            .map(|(i, k)| {
                let key = sample_base.with_index([i as u32]);
                let op = Op::data(SortSample { by: by.clone(), per_part: SAMPLES_PER_PARTITION });
                tasks.push(Task::new(key.clone(), op, [k.clone()]));
                key
            })
            .collect();
        let bounds = Key::named(format!("{name}-bounds"));
        let op = Op::data(SortBounds { by: by.clone(), parts });
        tasks.push(Task::new(bounds.clone(), op, samples));
        let split_base = Key::named(format!("{name}-split"));
        let splits: Vec<Key> = self
            .partition_keys()
            .enumerate()
            .map(|(i, k)| {
                let key = split_base.with_index([i as u32]);
                let op = Op::data(SortSplit { by: by.clone(), parts });
                // The bounds first: the plan then orders every sample before the
                // first full read, so no partition is read to wait for them.
                tasks.push(Task::new(key.clone(), op, [bounds.clone(), k.clone()]));
                key
            })
            .collect();
        let pieces = items(&name, &splits, parts, &mut tasks);
        let merges = pieces
            .into_iter()
            .enumerate()
            .map(|(j, inputs)| {
                let op = Op::data(SortBatches { by: by.clone(), limit: None });
                Task::new(Key::new(name.as_str(), [j as u32]), op, inputs)
            })
            .collect();
        let middle = Layer::new(
            format!("{name}-split"),
            tasks,
            vec![self.layer().clone(), keys.layer().clone()],
        );
        let layer = Layer::new(name, merges, vec![middle]);
        Ok(Frame::from_layer(self.schema().clone(), layer))
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
