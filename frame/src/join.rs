//! `merge`: inner and left joins on key columns. A right side of one partition is
//! broadcast to every left partition; otherwise both sides are hash-partitioned on
//! the keys and joined part by part. Null keys never match (SQL's rule, as in
//! Polars and DuckDB).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use brisk_core::{Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::{Layer, Task, token};
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use crate::batches::{arrow_err, batch_of, first_batch};
use crate::frame::Frame;
use crate::groupby::hash::fixed_hash;
use crate::{Error, Result};

/// Which rows a join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum How {
    /// Rows whose key is on both sides.
    Inner,
    /// Every left row; right columns are null where no right row matches.
    Left,
}

fn key_rows(
    batch: &RecordBatch,
    on: &[String],
) -> std::result::Result<(Rows, Vec<bool>), arrow::error::ArrowError> {
    let cols: Vec<ArrayRef> = on
        .iter()
        .map(|k| {
            batch
                .column_by_name(k)
                .cloned()
                .ok_or_else(|| arrow::error::ArrowError::SchemaError(format!("no key {k}")))
        })
        .collect::<std::result::Result<_, _>>()?;
    let converter =
        RowConverter::new(cols.iter().map(|c| SortField::new(c.data_type().clone())).collect())?;
    let rows = converter.convert_columns(&cols)?;
    let valid = (0..batch.num_rows()).map(|r| cols.iter().all(|c| c.is_valid(r))).collect();
    Ok((rows, valid))
}

/// A batch split into `parts` by the hash of its key columns (null keys go to part 0).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HashSplit {
    on: Vec<String>,
    parts: usize,
}

impl OpKind for HashSplit {
    const NAME: &'static str = "frame.hash-split";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let batch = first_batch(Self::NAME, &inputs)?;
        let (rows, valid) = key_rows(&batch, &self.on).map_err(&err)?;
        let mut idx: Vec<Vec<u32>> = vec![Vec::new(); self.parts];
        for (r, &ok) in valid.iter().enumerate() {
            let p = if ok {
                (fixed_hash(rows.row(r).as_ref()) % self.parts as u64) as usize
            } else {
                0
            };
            idx[p].push(r as u32);
        }
        let parts = idx
            .into_iter()
            .map(|i| {
                arrow::compute::take_record_batch(&batch, &UInt32Array::from(i)).map(Value::from)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(&err)?;
        Ok(Value::from(parts))
    }
}

/// Joins its left inputs (the first `left`) with its right inputs; split inputs
/// give their part `part`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinPart {
    on: Vec<String>,
    how: How,
    left: usize,
    part: Option<u32>,
    /// Output column names: the left's, then the right's non-key columns.
    names: Vec<String>,
    /// The two sides' schemas (as `name: type` pairs), for empty inputs.
    left_schema: Vec<(String, String)>,
    right_schema: Vec<(String, String)>,
}

fn schema_of(pairs: &[(String, String)]) -> SchemaRef {
    Arc::new(Schema::new(
        pairs
            .iter()
            .map(|(n, t)| {
                Field::new(n, t.parse().unwrap_or(arrow::datatypes::DataType::Utf8), true)
            })
            .collect::<Vec<_>>(),
    ))
}

fn pairs_of(schema: &Schema) -> Vec<(String, String)> {
    schema.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect()
}

impl JoinPart {
    fn side(
        &self,
        inputs: &[Value],
        schema: &[(String, String)],
    ) -> brisk_core::Result<RecordBatch> {
        let batches = inputs
            .iter()
            .map(|v| match (v, self.part) {
                (Value::List(items), Some(p)) => batch_of(
                    Self::NAME,
                    items
                        .get(p as usize)
                        .ok_or_else(|| CoreError::Internal("missing part".into()))?,
                ),
                (v, _) => batch_of(Self::NAME, v),
            })
            .collect::<brisk_core::Result<Vec<_>>>()?;
        let schema = batches.first().map_or_else(|| schema_of(schema), RecordBatch::schema);
        arrow::compute::concat_batches(&schema, &batches).map_err(arrow_err(Self::NAME))
    }
}

impl OpKind for JoinPart {
    const NAME: &'static str = "frame.join";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let (l, r) = inputs.split_at(self.left.min(inputs.len()));
        let (left, right) = (self.side(l, &self.left_schema)?, self.side(r, &self.right_schema)?);
        let (lrows, lvalid) = key_rows(&left, &self.on).map_err(&err)?;
        let (rrows, rvalid) = key_rows(&right, &self.on).map_err(&err)?;
        // Right rows by key: a table of first rows, chained through `next`.
        let mut table: HashTable<(u64, u32)> = HashTable::new();
        let mut next: Vec<u32> = vec![u32::MAX; right.num_rows()];
        let mut last: Vec<u32> = Vec::new();
        let mut heads: Vec<u32> = Vec::new();
        for (row, _) in rvalid.iter().enumerate().filter(|(_, ok)| **ok) {
            let bytes = rrows.row(row);
            let h = fixed_hash(bytes.as_ref());
            match table.find(h, |&(_, g)| rrows.row(heads[g as usize] as usize) == bytes) {
                Some(&(_, g)) => {
                    next[last[g as usize] as usize] = row as u32;
                    last[g as usize] = row as u32;
                }
                None => {
                    let g = heads.len() as u32;
                    heads.push(row as u32);
                    last.push(row as u32);
                    table.insert_unique(h, (h, g), |&(h, _)| h);
                }
            }
        }
        let (mut li, mut ri): (Vec<u32>, Vec<Option<u32>>) = (Vec::new(), Vec::new());
        for (row, &ok) in lvalid.iter().enumerate() {
            let found = ok
                .then(|| {
                    let bytes = lrows.row(row);
                    let h = fixed_hash(bytes.as_ref());
                    table
                        .find(h, |&(_, g)| rrows.row(heads[g as usize] as usize) == bytes)
                        .map(|&(_, g)| g)
                })
                .flatten();
            match found {
                Some(g) => {
                    let mut at = heads[g as usize];
                    while at != u32::MAX {
                        li.push(row as u32);
                        ri.push(Some(at));
                        at = next[at as usize];
                    }
                }
                None if self.how == How::Left => {
                    li.push(row as u32);
                    ri.push(None);
                }
                None => {}
            }
        }
        let (li, ri) = (UInt32Array::from(li), UInt32Array::from(ri));
        let mut columns: Vec<ArrayRef> = left
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c, &li, None))
            .collect::<std::result::Result<_, _>>()
            .map_err(&err)?;
        for (f, c) in right.schema().fields().iter().zip(right.columns()) {
            if !self.on.contains(f.name()) {
                columns.push(arrow::compute::take(c, &ri, None).map_err(&err)?);
            }
        }
        let fields: Vec<Field> = self
            .names
            .iter()
            .zip(&columns)
            .map(|(n, c)| Field::new(n, c.data_type().clone(), true))
            .collect();
        Ok(Value::from(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(&err)?))
    }
}

impl Frame {
    /// Joins with `right` on the key columns `on` (both sides must have them, with
    /// the same types). Output columns: the left's, then the right's other columns;
    /// names both sides share get `_x` and `_y`, as in pandas. A right side of one
    /// partition is broadcast; otherwise both sides are hash-partitioned on the keys.
    pub fn merge<S: AsRef<str>>(
        &self,
        right: &Frame,
        on: impl IntoIterator<Item = S>,
        how: How,
    ) -> Result<Frame> {
        let on: Vec<String> = on.into_iter().map(|k| k.as_ref().to_string()).collect();
        if on.is_empty() {
            return Err(Error::Invalid("merge needs at least one key column".into()));
        }
        for k in &on {
            self.check_column(k)?;
            right.check_column(k)?;
            let (a, b) = (
                self.schema().field_with_name(k).expect("checked"),
                right.schema().field_with_name(k).expect("checked"),
            );
            if a.data_type() != b.data_type() {
                return Err(Error::Type {
                    column: k.clone(),
                    reason: format!(
                        "the key is {} on the left and {} on the right: cast one side first",
                        a.data_type(),
                        b.data_type()
                    ),
                });
            }
        }
        let right_names: Vec<String> = right
            .columns()
            .into_iter()
            .filter(|c| !on.iter().any(|k| k == c))
            .map(str::to_string)
            .collect();
        let left_names: Vec<String> = self.columns().into_iter().map(str::to_string).collect();
        let clash = |n: &String, other: &[String]| !on.contains(n) && other.contains(n);
        let mut names: Vec<String> = left_names
            .iter()
            .map(|n| if clash(n, &right_names) { format!("{n}_x") } else { n.clone() })
            .collect();
        names.extend(
            right_names
                .iter()
                .map(|n| if clash(n, &left_names) { format!("{n}_y") } else { n.clone() }),
        );
        let mut fields: Vec<Field> = Vec::new();
        for (n, f) in names.iter().zip(
            self.schema()
                .fields()
                .iter()
                .chain(right.schema().fields().iter().filter(|f| !on.contains(f.name()))),
        ) {
            fields.push(Field::new(n, f.data_type().clone(), true));
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let name = token("merge", &(self.layer().name(), right.layer().name(), &on, how));
        let join = |left: usize, part: Option<u32>| JoinPart {
            on: on.clone(),
            how,
            left,
            part,
            names: names.clone(),
            left_schema: pairs_of(self.schema()),
            right_schema: pairs_of(right.schema()),
        };
        let base = Key::named(name.as_str());
        if right.npartitions() <= 1 {
            let rkeys: Vec<Key> = right.partition_keys().cloned().collect();
            let tasks = self
                .partition_keys()
                .enumerate()
                .map(|(i, k)| {
                    let deps: Vec<Key> =
                        std::iter::once(k.clone()).chain(rkeys.iter().cloned()).collect();
                    Task::new(base.with_index([i as u32]), Op::data(join(1, None)), deps)
                })
                .collect();
            let layer = Layer::new(name, tasks, vec![self.layer().clone(), right.layer().clone()]);
            return Ok(Frame::from_layer(schema, layer));
        }
        let parts = self.npartitions().max(right.npartitions());
        let split = |f: &Frame, side: &str, tasks: &mut Vec<Task>| -> Vec<Key> {
            let b = Key::named(format!("{name}-split-{side}"));
            f.partition_keys()
                .enumerate()
                .map(|(i, k)| {
                    let key = b.with_index([i as u32]);
                    tasks.push(Task::new(
                        key.clone(),
                        Op::data(HashSplit { on: on.clone(), parts }),
                        [k.clone()],
                    ));
                    key
                })
                .collect()
        };
        let mut inner = Vec::new();
        let lsplit = split(self, "left", &mut inner);
        let rsplit = split(right, "right", &mut inner);
        let tasks = (0..parts)
            .map(|p| {
                let deps: Vec<Key> = lsplit.iter().chain(&rsplit).cloned().collect();
                Task::new(
                    base.with_index([p as u32]),
                    Op::data(join(lsplit.len(), Some(p as u32))),
                    deps,
                )
            })
            .collect();
        let middle = Layer::new(
            format!("{name}-split"),
            inner,
            vec![self.layer().clone(), right.layer().clone()],
        );
        Ok(Frame::from_layer(schema, Layer::new(name, tasks, vec![middle])))
    }
}
