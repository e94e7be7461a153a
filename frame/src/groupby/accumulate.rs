//! The accumulators: per group, a spec's state columns computed from a partition's
//! values or merged from earlier states, in row order so every run adds the same
//! numbers in the same order.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, UInt64Type};
use arrow::row::{RowConverter, SortField};
use hashbrown::HashTable;

use super::hash::{DROPPED, fixed_hash, group};
use super::{Agg, AggPlan};
use crate::batches::ByName;

/// Per-group accumulators for one spec.
enum Acc {
    SumI(Vec<i64>),
    SumF(Vec<f64>),
    Mean(Vec<f64>, Vec<i64>),
    Count(Vec<i64>),
    Moments(Vec<i64>, Vec<f64>, Vec<f64>),
}

/// Whether the input is raw values (a partition) or state columns: of a combine,
/// or of a finish, which needs of a distinct set only its size.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    Values,
    States { sizes_only: bool },
}

pub(super) fn f64s(a: &ArrayRef) -> std::result::Result<Float64Array, arrow::error::ArrowError> {
    Ok(arrow::compute::cast(a, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
}

/// The values as Int64. A value that does not fit (a UInt64 above Int64's maximum)
/// is an error, never a null that would silently drop out of a sum.
pub(super) fn i64s(a: &ArrayRef) -> std::result::Result<Int64Array, arrow::error::ArrowError> {
    let strict = arrow::compute::CastOptions { safe: false, ..Default::default() };
    Ok(arrow::compute::cast_with_options(a, &DataType::Int64, &strict)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// The error of an integer sum that left Int64's range: which column, which group,
/// and how to get a sum anyway. Never a wrapped number.
fn overflow(
    column: &str,
    plan: &AggPlan,
    key_cols: &[ArrayRef],
    row: usize,
) -> arrow::error::ArrowError {
    let group = if plan.whole() {
        "over the whole input".to_string()
    } else {
        let values: Vec<String> = plan
            .keys
            .iter()
            .zip(key_cols)
            .map(|(k, c)| {
                let v = arrow::util::display::array_value_to_string(c, row)
                    .unwrap_or_else(|_| "?".into());
                format!("{k}={v}")
            })
            .collect();
        format!("in group {}", values.join(", "))
    };
    arrow::error::ArrowError::ComputeError(format!(
        "the integer sum of column '{column}' overflowed Int64 {group}; read the column as a float to sum it (CLI: --dtype {column}:float)"
    ))
}

/// Aggregates `batch` (values or states) per group: the state batch.
pub(super) fn aggregate(
    plan: &AggPlan,
    batch: &RecordBatch,
    input: Input,
) -> std::result::Result<(RecordBatch, Vec<usize>), arrow::error::ArrowError> {
    let schema = batch.schema();
    let by_name = ByName::of(&schema);
    let column = |name: &str, what: &str| {
        by_name
            .get(name)
            .map(|i| batch.column(i).clone())
            .ok_or_else(|| arrow::error::ArrowError::SchemaError(format!("no {what} '{name}'")))
    };
    let key_cols: Vec<ArrayRef> =
        plan.keys.iter().map(|k| column(k, "key column")).collect::<std::result::Result<_, _>>()?;
    let (dropna, parts) = match input {
        Input::Values => (plan.dropna, plan.parts),
        Input::States { .. } => (false, 1),
    };
    let mut g = group(&key_cols, dropna, parts)?;
    let ng = g.first_rows.len();
    let first = UInt32Array::from(std::mem::take(&mut g.first_rows));
    let mut columns: Vec<ArrayRef> = key_cols
        .iter()
        .map(|k| arrow::compute::take(k, &first, None))
        .collect::<std::result::Result<_, _>>()?;
    let mut fields: Vec<Field> = plan
        .keys
        .iter()
        .zip(&key_cols)
        .map(|(k, c)| Field::new(k, c.data_type().clone(), true))
        .collect();
    for (i, spec) in plan.specs.iter().enumerate() {
        let state_fields = spec.state_fields(i);
        // The columns this spec reads: its value column, or its state columns.
        let inputs: Vec<ArrayRef> = match input {
            Input::Values if spec.agg == Agg::Size => vec![],
            Input::Values => vec![column(&spec.column, "column")?],
            Input::States { .. } => state_fields
                .iter()
                .map(|f| column(f.name(), "state"))
                .collect::<std::result::Result<_, _>>()?,
        };
        let ids = &g.ids;
        let acc = match (spec.agg, input) {
            (Agg::Sum, _) if spec.integer() => {
                let v = i64s(&inputs[0]).map_err(|e| {
                    arrow::error::ArrowError::ComputeError(format!(
                        "the integer sum of column '{}' needs its values as Int64, and one does not fit ({e}); read the column as a float to sum it (CLI: --dtype {}:float)",
                        spec.column, spec.column
                    ))
                })?;
                let mut s = vec![0i64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        let sum = &mut s[id as usize];
                        *sum = sum.checked_add(v.value(r)).ok_or_else(|| {
                            let row = first.value(id as usize) as usize;
                            overflow(&spec.column, plan, &key_cols, row)
                        })?;
                    }
                }
                Acc::SumI(s)
            }
            (Agg::Sum, _) => {
                let v = f64s(&inputs[0])?;
                let mut s = vec![0f64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        s[id as usize] += v.value(r);
                    }
                }
                Acc::SumF(s)
            }
            (Agg::Mean, Input::Values) => {
                let v = f64s(&inputs[0])?;
                let (mut s, mut n) = (vec![0f64; ng], vec![0i64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        s[id as usize] += v.value(r);
                        n[id as usize] += 1;
                    }
                }
                Acc::Mean(s, n)
            }
            (Agg::Mean, Input::States { .. }) => {
                let (vs, vn) = (f64s(&inputs[0])?, i64s(&inputs[1])?);
                let (mut s, mut n) = (vec![0f64; ng], vec![0i64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    s[id as usize] += vs.value(r);
                    n[id as usize] += vn.value(r);
                }
                Acc::Mean(s, n)
            }
            (Agg::Count | Agg::Size, Input::States { .. }) => {
                let v = i64s(&inputs[0])?;
                let mut n = vec![0i64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    n[id as usize] += v.value(r);
                }
                Acc::Count(n)
            }
            (Agg::Size, Input::Values) => {
                let mut n = vec![0i64; ng];
                ids.iter().filter(|&&id| id != DROPPED).for_each(|&id| n[id as usize] += 1);
                Acc::Count(n)
            }
            (Agg::Count, Input::Values) => {
                let v = &inputs[0];
                let mut n = vec![0i64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        n[id as usize] += 1;
                    }
                }
                Acc::Count(n)
            }
            (Agg::Var | Agg::Std, Input::Values) => {
                // Welford per group, in row order.
                let v = f64s(&inputs[0])?;
                let (mut n, mut mean, mut m2) = (vec![0i64; ng], vec![0f64; ng], vec![0f64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        let g = id as usize;
                        n[g] += 1;
                        let x = v.value(r);
                        let delta = x - mean[g];
                        mean[g] += delta / n[g] as f64;
                        m2[g] += delta * (x - mean[g]);
                    }
                }
                Acc::Moments(n, mean, m2)
            }
            (Agg::Var | Agg::Std, Input::States { .. }) => {
                // Chan et al.'s parallel update, states merged in row order.
                let (vn, vm, vq) = (i64s(&inputs[0])?, f64s(&inputs[1])?, f64s(&inputs[2])?);
                let (mut n, mut mean, mut m2) = (vec![0i64; ng], vec![0f64; ng], vec![0f64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    let g = id as usize;
                    let nb = vn.value(r);
                    if nb == 0 {
                        continue;
                    }
                    let total = n[g] + nb;
                    let delta = vm.value(r) - mean[g];
                    mean[g] += delta * nb as f64 / total as f64;
                    m2[g] += vq.value(r) + delta * delta * n[g] as f64 * nb as f64 / total as f64;
                    n[g] = total;
                }
                Acc::Moments(n, mean, m2)
            }
            (Agg::Nunique, _) => {
                // The distinct values of each group, as a list per group.
                let set = match input {
                    Input::Values => {
                        let pairs = ids
                            .iter()
                            .enumerate()
                            .filter(|(_, g)| **g != DROPPED)
                            .map(|(r, &g)| (r, g));
                        distinct_lists(ng, &inputs[0], pairs)?
                    }
                    Input::States { sizes_only } => {
                        let lists = inputs[0].as_list::<i32>();
                        let offsets = lists.value_offsets();
                        let pairs = ids.iter().enumerate().flat_map(|(r, &g)| {
                            (offsets[r] as usize..offsets[r + 1] as usize).map(move |j| (j, g))
                        });
                        if sizes_only {
                            distinct_counts(ng, lists.values(), pairs)?
                        } else {
                            distinct_lists(ng, lists.values(), pairs)?
                        }
                    }
                };
                // A set's field, or its size's where only sizes were kept.
                let t = set.data_type().clone();
                fields.extend(state_fields.into_iter().map(|f| f.with_data_type(t.clone())));
                columns.push(set);
                continue;
            }
            (Agg::Min | Agg::Max | Agg::First | Agg::Last, _) => {
                let v = arrow::compute::cast(&inputs[0], &spec.value_type())?;
                let mut best: Vec<Option<u32>> = vec![None; ng];
                let wins: Box<dyn Fn(usize, usize) -> bool> = match (spec.agg, v.data_type()) {
                    (Agg::First, _) => Box::new(|_, _| false),
                    (Agg::Last, _) => Box::new(|_, _| true),
                    (agg, DataType::Int64) => {
                        let a = v.as_primitive::<Int64Type>().clone();
                        let min = agg == Agg::Min;
                        Box::new(move |r, b| {
                            if min { a.value(r) < a.value(b) } else { a.value(r) > a.value(b) }
                        })
                    }
                    (agg, DataType::UInt64) => {
                        let a = v.as_primitive::<UInt64Type>().clone();
                        let min = agg == Agg::Min;
                        Box::new(move |r, b| {
                            if min { a.value(r) < a.value(b) } else { a.value(r) > a.value(b) }
                        })
                    }
                    (agg, _) => {
                        // pandas skips NaN as it skips nulls.
                        let a = f64s(&v)?;
                        let min = agg == Agg::Min;
                        Box::new(move |r, b| {
                            let (x, y) = (a.value(r), a.value(b));
                            !x.is_nan() && (y.is_nan() || if min { x < y } else { x > y })
                        })
                    }
                };
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        let slot = &mut best[id as usize];
                        if slot.is_none_or(|b| wins(r, b as usize)) {
                            *slot = Some(r as u32);
                        }
                    }
                }
                // Min/max/first/last keep the winning row's value.
                let idx = UInt32Array::from(best);
                columns.push(arrow::compute::take(&v, &idx, None)?);
                fields.extend(state_fields);
                continue;
            }
        };
        match acc {
            Acc::SumI(s) => columns.push(Arc::new(Int64Array::from(s))),
            Acc::SumF(s) => columns.push(Arc::new(Float64Array::from(s))),
            Acc::Mean(s, n) => {
                columns.push(Arc::new(Float64Array::from(s)));
                columns.push(Arc::new(Int64Array::from(n)));
            }
            Acc::Count(n) => columns.push(Arc::new(Int64Array::from(n))),
            Acc::Moments(n, m, q) => {
                columns.push(Arc::new(Int64Array::from(n)));
                columns.push(Arc::new(Float64Array::from(m)));
                columns.push(Arc::new(Float64Array::from(q)));
            }
        }
        fields.extend(state_fields);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok((batch, g.part_ends))
}

/// What tells a column's values apart, read without a copy where the type allows:
/// a string's or binary's own bytes, an integer's, date's or timestamp's bits; for
/// every other type, arrow's row encoding, a copy of the column. (Floats keep the
/// row encoding, which tells 0.0 from -0.0 and NaNs apart by their bits, as
/// before; pandas counts 0.0 and -0.0 as one value.)
enum ValueBytes<'a> {
    Utf8(&'a arrow::array::StringArray),
    Binary(&'a arrow::array::BinaryArray),
    Fixed { bits: arrow::buffer::Buffer, width: usize },
    Rows(arrow::row::Rows),
}

impl<'a> ValueBytes<'a> {
    fn of(values: &'a ArrayRef) -> std::result::Result<Self, arrow::error::ArrowError> {
        if let Some(s) = values.as_string_opt::<i32>() {
            return Ok(ValueBytes::Utf8(s));
        }
        if let Some(b) = values.as_binary_opt::<i32>() {
            return Ok(ValueBytes::Binary(b));
        }
        let t = values.data_type();
        let by_bits = t.is_integer()
            || matches!(t, DataType::Date32 | DataType::Date64)
            || matches!(t, DataType::Timestamp(..));
        if by_bits && let Some(width) = t.primitive_width() {
            let data = values.to_data();
            let bits = data.buffers()[0].slice(data.offset() * width);
            return Ok(ValueBytes::Fixed { bits, width });
        }
        let converter = RowConverter::new(vec![SortField::new(t.clone())])?;
        Ok(ValueBytes::Rows(converter.convert_columns(std::slice::from_ref(values))?))
    }

    /// The bytes of value `j`.
    #[inline]
    fn get(&self, j: usize) -> &[u8] {
        match self {
            ValueBytes::Utf8(s) => s.value(j).as_bytes(),
            ValueBytes::Binary(b) => b.value(j),
            ValueBytes::Fixed { bits, width } => &bits[j * width..(j + 1) * width],
            ValueBytes::Rows(rows) => rows.row(j).data(),
        }
    }
}

/// Calls `first(g, j)` for each pair of `pairs` (index into `values`, group id)
/// whose non-null value is new in its group, in order.
fn distinct(
    values: &ArrayRef,
    pairs: impl Iterator<Item = (usize, u32)>,
    mut first: impl FnMut(u32, usize),
) -> std::result::Result<(), arrow::error::ArrowError> {
    let bytes = ValueBytes::of(values)?;
    let hash = |g: u32, j: usize| {
        fixed_hash(bytes.get(j)) ^ u64::from(g).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    // Room for every value up front: growing would hold the old table and the new.
    let mut seen: HashTable<(u32, u32)> =
        HashTable::with_capacity(values.len() - values.null_count());
    for (j, g) in pairs {
        if values.is_null(j) {
            continue;
        }
        let h = hash(g, j);
        let same = |&(g2, j2): &(u32, u32)| g2 == g && bytes.get(j2 as usize) == bytes.get(j);
        if seen.find(h, same).is_none() {
            seen.insert_unique(h, (g, j as u32), |&(g2, j2)| hash(g2, j2 as usize));
            first(g, j);
        }
    }
    Ok(())
}

/// Per group, the distinct non-null values among `pairs` (index into `values`,
/// group id), in order of first appearance: a list array of `groups` rows.
fn distinct_lists(
    groups: usize,
    values: &ArrayRef,
    pairs: impl Iterator<Item = (usize, u32)>,
) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    let mut per_group: Vec<Vec<u32>> = vec![Vec::new(); groups];
    distinct(values, pairs, |g, j| per_group[g as usize].push(j as u32))?;
    let lengths = per_group.iter().map(Vec::len);
    let offsets = arrow::buffer::OffsetBuffer::from_lengths(lengths);
    let idx = UInt32Array::from(per_group.concat());
    drop(per_group);
    let items = arrow::compute::take(values, &idx, None)?;
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    Ok(Arc::new(arrow::array::ListArray::try_new(field, offsets, items, None)?))
}

/// Per group, the number of distinct non-null values among `pairs`.
fn distinct_counts(
    groups: usize,
    values: &ArrayRef,
    pairs: impl Iterator<Item = (usize, u32)>,
) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    let mut counts = vec![0i64; groups];
    distinct(values, pairs, |g, _| counts[g as usize] += 1)?;
    Ok(Arc::new(Int64Array::from(counts)))
}
