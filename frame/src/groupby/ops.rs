//! The group-by ops: a partition's partial state split into parts, states merged
//! at each node of the combine tree, and the finish that turns a part's state
//! into result columns sorted by key.

use std::sync::Arc;

use arrow::array::{
    ArrayData, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, MutableArrayData,
    RecordBatch, make_array,
};
use arrow::datatypes::{DataType, Field, Schema};
use brisk_core::{Error as CoreError, OpKind, Value};
use serde::{Deserialize, Serialize};

use super::accumulate::{Input, aggregate, f64s, i64s};
use super::{Agg, AggPlan};
use crate::batches::{ByName, arrow_err, batch_of, concat_all, first_batch};
use crate::table::sort_batch;

/// A state batch split into its parts: part `p` is rows `part_ends[p - 1]..part_ends[p]`,
/// copied so that each part's memory is its own.
fn split(
    batch: RecordBatch,
    part_ends: &[usize],
) -> std::result::Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    if part_ends.len() <= 1 {
        return Ok(vec![batch]);
    }
    let data: Vec<ArrayData> = batch.columns().iter().map(|c| c.to_data()).collect();
    let mut start = 0;
    part_ends
        .iter()
        .map(|&end| {
            let columns = data
                .iter()
                .map(|d| {
                    let mut part = MutableArrayData::new(vec![d], false, end - start);
                    part.try_extend(0, start, end)?;
                    Ok(make_array(part.freeze()))
                })
                .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()?;
            start = end;
            RecordBatch::try_new(batch.schema(), columns)
        })
        .collect()
}

/// The state batches among `inputs`, taking part `part` of split partials.
fn states(op: &str, inputs: &[Value], part: Option<u32>) -> brisk_core::Result<Vec<RecordBatch>> {
    inputs
        .iter()
        .map(|v| match (v, part) {
            (Value::List(items), Some(p)) => batch_of(
                op,
                items.get(p as usize).ok_or_else(|| {
                    CoreError::Internal(format!("{op}: no part {p} in a split state"))
                })?,
            ),
            (v, _) => batch_of(op, v),
        })
        .collect()
}

/// The states among `inputs` merged. The inputs are let go once concatenated, so
/// they and their copy are not held together through the merge.
fn combine(
    plan: &AggPlan,
    op: &str,
    inputs: Vec<Value>,
    part: Option<u32>,
    merge: Input,
) -> brisk_core::Result<RecordBatch> {
    let batches = states(op, &inputs, part)?;
    drop(inputs);
    let single = batches.len() == 1;
    let all = concat_all(op, batches)?;
    if single {
        return Ok(all);
    }
    Ok(aggregate(plan, &all, merge).map_err(arrow_err(op))?.0)
}

/// A partition's partial state, split into the plan's parts.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Partial {
    pub(super) plan: AggPlan,
}

impl OpKind for Partial {
    const NAME: &'static str = "frame.groupby-partial";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let batch = first_batch(Self::NAME, &inputs)?;
        let (state, part_ends) = aggregate(&self.plan, &batch, Input::Values).map_err(&err)?;
        let parts = split(state, &part_ends).map_err(&err)?;
        Ok(Value::from(parts.into_iter().map(Value::from).collect::<Vec<_>>()))
    }
}

/// States merged: one node of the tree.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Combine {
    pub(super) plan: AggPlan,
    pub(super) part: Option<u32>,
}

impl OpKind for Combine {
    const NAME: &'static str = "frame.groupby-combine";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        Ok(Value::from(combine(
            &self.plan,
            Self::NAME,
            inputs,
            self.part,
            Input::States { sizes_only: false },
        )?))
    }
}

/// The state of a whole-frame aggregation over no rows: it still has its one group,
/// as pandas' `df.agg` has one row — counts and sums 0, means, extremes and the
/// rest null.
fn one_empty_group(
    plan: &AggPlan,
    state: &RecordBatch,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut columns = vec![arrow::compute::cast(
        &BooleanArray::from(vec![true]),
        state.schema().field(0).data_type(),
    )?];
    let schema = state.schema();
    for (i, spec) in plan.specs.iter().enumerate() {
        let size_only = spec.agg == Agg::Nunique
            && schema.field_with_name(&format!("__{i}_set"))?.data_type() == &DataType::Int64;
        if size_only {
            // A finish keeps of a distinct set only its size: no values, 0.
            columns.push(Arc::new(Int64Array::from(vec![0])));
        } else {
            columns.extend(spec.empty_state(i)?);
        }
    }
    RecordBatch::try_new(schema, columns)
}

/// The result columns of one part, sorted by key.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Finish {
    pub(super) plan: AggPlan,
    pub(super) part: Option<u32>,
}

impl OpKind for Finish {
    const NAME: &'static str = "frame.groupby-finish";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let mut state =
            combine(&self.plan, Self::NAME, inputs, self.part, Input::States { sizes_only: true })?;
        if self.plan.whole() && self.plan.parts == 1 && state.num_rows() == 0 {
            state = one_empty_group(&self.plan, &state).map_err(&err)?;
        }
        let nk = self.plan.keys.len();
        let mut columns: Vec<ArrayRef> = state.columns()[..nk].to_vec();
        let mut fields: Vec<Field> =
            state.schema().fields()[..nk].iter().map(|f| f.as_ref().clone()).collect();
        let schema = state.schema();
        let by_name = ByName::of(&schema);
        let col = |name: String| {
            by_name
                .get(&name)
                .map(|i| state.column(i).clone())
                .ok_or_else(|| CoreError::Internal(format!("no state {name}")))
        };
        for (i, spec) in self.plan.specs.iter().enumerate() {
            let out: ArrayRef = match spec.agg {
                Agg::Sum => col(format!("__{i}_sum"))?,
                Agg::Count | Agg::Size => col(format!("__{i}_n"))?,
                Agg::Min | Agg::Max | Agg::First | Agg::Last => col(format!("__{i}_v"))?,
                Agg::Nunique => {
                    // The sizes, where the finish merged its states; else the sets.
                    let set = col(format!("__{i}_set"))?;
                    match set.as_list_opt::<i32>() {
                        Some(lists) => Arc::new(Int64Array::from_iter_values(
                            lists.value_offsets().windows(2).map(|w| i64::from(w[1] - w[0])),
                        )),
                        None => set,
                    }
                }
                Agg::Mean => {
                    let s = f64s(&col(format!("__{i}_sum"))?).map_err(&err)?;
                    let n = i64s(&col(format!("__{i}_n"))?).map_err(&err)?;
                    Arc::new(
                        s.iter()
                            .zip(n.iter())
                            .map(|(s, n)| match (s, n) {
                                (Some(s), Some(n)) if n > 0 => Some(s / n as f64),
                                _ => None,
                            })
                            .collect::<Float64Array>(),
                    )
                }
                Agg::Var | Agg::Std => {
                    let n = i64s(&col(format!("__{i}_n"))?).map_err(&err)?;
                    let q = f64s(&col(format!("__{i}_m2"))?).map_err(&err)?;
                    let std = spec.agg == Agg::Std;
                    Arc::new(
                        n.iter()
                            .zip(q.iter())
                            .map(|(n, q)| match (n, q) {
                                (Some(n), Some(q)) if n > 1 => {
                                    let v = q / (n - 1) as f64;
                                    Some(if std { v.sqrt() } else { v })
                                }
                                _ => None,
                            })
                            .collect::<Float64Array>(),
                    )
                }
            };
            fields.push(Field::new(&spec.out, out.data_type().clone(), true));
            columns.push(out);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(&err)?;
        Ok(Value::from(sort_batch(&batch, nk).map_err(&err)?))
    }
}
