//! `describe`: count, mean, std, min, quartiles and max of every numeric column,
//! as pandas prints them. Moments are exact (Chan's parallel combine). Quartiles
//! use pandas' linear interpolation between the two order statistics around the
//! rank `(n - 1) q`: exact while a column has at most [`DESCRIBE_EXACT_VALUES`] values,
//! and beyond that read from a DDSketch (the `sketches-ddsketch` crate), whose
//! proven bound is on each order statistic's value: within
//! [`DESCRIBE_RELATIVE_ACCURACY`] of it, relatively (values closer to 0 than 1e-9 count
//! as 0). Sketches merge by adding bucket counts, so the error does not grow
//! with merges and the result is the same however the input is partitioned.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use brisk_core::{ArrayChunk, Error as CoreError, Key, Op, OpKind, Scalar, Value};
use brisk_graph::{
    Collection, DEFAULT_SPLIT_EVERY, GraphBuilder, Layer, Task, combine_tree, token,
};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use crate::batches::{arrow_err, first_batch};
use crate::expr::is_numeric;
use crate::frame::Frame;
use crate::table::Table;
use crate::{Error, Result};

/// Values of a column kept exactly (8 bytes each) before its quartiles come from
/// a sketch.
pub const DESCRIBE_EXACT_VALUES: usize = 65_536;

/// The sketch's relative accuracy: each order statistic it gives is within this
/// fraction of the true one's value.
pub const DESCRIBE_RELATIVE_ACCURACY: f64 = 0.005;

fn new_sketch() -> DDSketch {
    // 8192 buckets per sign cover magnitudes across a ratio of 1e35 at 0.5%
    // (only the range in use is allocated); past that the smallest buckets are
    // merged.
    DDSketch::new(Config::new(DESCRIBE_RELATIVE_ACCURACY, 8192, 1e-9))
}

/// The summary of one column so far.
#[derive(Clone, Default)]
struct Summary {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    /// Every value, sorted, while there are at most `DESCRIBE_EXACT_VALUES`.
    exact: Vec<f64>,
    /// All finite values, once there are more.
    sketch: Option<DDSketch>,
    /// The infinities among them (a sketch has no bucket for them).
    neg_inf: u64,
    pos_inf: u64,
}

impl Summary {
    fn of(values: &Float64Array) -> Summary {
        let mut v: Vec<f64> = values.iter().flatten().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Summary::default();
        }
        v.sort_unstable_by(f64::total_cmp);
        let n = v.len() as u64;
        let mean = v.iter().sum::<f64>() / n as f64;
        let m2 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
        let mut s =
            Summary { n, mean, m2, min: v[0], max: v[v.len() - 1], exact: v, ..Summary::default() };
        s.spill_to_sketch();
        s
    }

    /// Past `DESCRIBE_EXACT_VALUES` values, moves the exact values into the sketch.
    fn spill_to_sketch(&mut self) {
        if self.exact.len() <= DESCRIBE_EXACT_VALUES && self.sketch.is_none() {
            return;
        }
        let sketch = self.sketch.get_or_insert_with(new_sketch);
        for &x in &self.exact {
            if x == f64::NEG_INFINITY {
                self.neg_inf += 1;
            } else if x == f64::INFINITY {
                self.pos_inf += 1;
            } else {
                sketch.add(x);
            }
        }
        self.exact = Vec::new();
    }

    fn merge(&mut self, o: &Summary) -> brisk_core::Result<()> {
        if o.n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            *self = o.clone();
            return Ok(());
        }
        let n = self.n + o.n;
        let delta = o.mean - self.mean;
        self.mean += delta * o.n as f64 / n as f64;
        self.m2 += o.m2 + delta * delta * self.n as f64 * o.n as f64 / n as f64;
        self.n = n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        // Exact values merge in order; the sketch takes them past the limit.
        let mut merged = Vec::with_capacity(self.exact.len() + o.exact.len());
        let (mut a, mut b) = (self.exact.iter().peekable(), o.exact.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            if x.total_cmp(y).is_le() {
                merged.push(*a.next().expect("peeked"));
            } else {
                merged.push(*b.next().expect("peeked"));
            }
        }
        merged.extend(a.chain(b));
        self.exact = merged;
        self.neg_inf += o.neg_inf;
        self.pos_inf += o.pos_inf;
        if let Some(other) = &o.sketch {
            let sketch = self.sketch.get_or_insert_with(new_sketch);
            sketch.merge(other).map_err(|e| CoreError::Internal(format!("describe: {e:?}")))?;
        }
        self.spill_to_sketch();
        Ok(())
    }

    /// The value of order statistic `rank` (0-based).
    fn at_rank(&self, rank: u64) -> f64 {
        if rank == 0 {
            return self.min;
        }
        if rank + 1 >= self.n {
            return self.max;
        }
        match &self.sketch {
            None => self.exact[rank as usize],
            // The crate reads the rank as floor(q (n - 1)): half a rank up lands
            // on `rank` whatever the rounding.
            Some(s) => {
                let finite = self.n - self.neg_inf - self.pos_inf;
                if rank < self.neg_inf {
                    return f64::NEG_INFINITY;
                }
                if rank >= self.neg_inf + finite {
                    return f64::INFINITY;
                }
                let r = rank - self.neg_inf;
                let q = if finite > 1 {
                    ((r as f64 + 0.5) / (finite - 1) as f64).min(1.0)
                } else {
                    0.0
                };
                s.quantile(q).ok().flatten().unwrap_or(f64::NAN).clamp(self.min, self.max)
            }
        }
    }

    /// pandas' (numpy's `linear`) quantile: between the order statistics around
    /// rank `(n - 1) q`, in proportion.
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let h = q * (self.n - 1) as f64;
        let lo = h.floor() as u64;
        let (below, above) = (self.at_rank(lo), self.at_rank(h.ceil() as u64));
        Some(below + (above - below) * (h - lo as f64))
    }
}

fn numeric_columns(schema: &Schema) -> Vec<String> {
    schema.fields().iter().filter(|f| is_numeric(f.data_type())).map(|f| f.name().clone()).collect()
}

/// Summaries as a value with a codec (so states can spill or travel): per column a
/// list of n, mean, M2, min, max, the exact values, the sketch (serialized, in a
/// one-row binary batch; no rows without one) and the infinities it left out.
fn to_value(s: Vec<Summary>) -> brisk_core::Result<Value> {
    let one = |s: Summary| -> brisk_core::Result<Value> {
        let sketch = s
            .sketch
            .as_ref()
            .map(rmp_serde::to_vec)
            .transpose()
            .map_err(|e| CoreError::Internal(format!("describe: {e}")))?;
        let bytes = BinaryArray::from_iter(sketch.as_deref().map(Some));
        let batch = RecordBatch::try_from_iter([("sketch", Arc::new(bytes) as Arc<dyn Array>)])
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(Value::from(vec![
            Value::from(s.n as i64),
            Value::from(s.mean),
            Value::from(s.m2),
            Value::from(s.min),
            Value::from(s.max),
            Value::from(ArrayChunk::F64(ndarray::Array1::from(s.exact).into_dyn())),
            Value::from(batch),
            Value::from(s.neg_inf as i64),
            Value::from(s.pos_inf as i64),
        ]))
    };
    Ok(Value::from(s.into_iter().map(one).collect::<brisk_core::Result<Vec<_>>>()?))
}

fn summaries(v: &Value) -> brisk_core::Result<Vec<Summary>> {
    let bad = || CoreError::TypeMismatch { expected: "describe state".into(), found: v.kind() };
    let Value::List(cols) = v else { return Err(bad()) };
    cols.iter()
        .map(|c| {
            let Value::List(p) = c else { return Err(bad()) };
            let [n, mean, m2, min, max, Value::Array(exact), Value::Batch(sketch), neg, pos] =
                &p[..]
            else {
                return Err(bad());
            };
            let f = |x: &Value| match x.as_scalar() {
                Some(Scalar::F64(v)) => Ok(v),
                _ => Err(bad()),
            };
            let count = |x: &Value| match x.as_scalar() {
                Some(Scalar::I64(n)) => Ok(n as u64),
                _ => Err(bad()),
            };
            let ArrayChunk::F64(exact) = exact.as_ref() else { return Err(bad()) };
            let sketch = match sketch.column(0).as_binary_opt::<i32>() {
                Some(b) if !b.is_empty() => Some(
                    rmp_serde::from_slice::<DDSketch>(b.value(0))
                        .map_err(|e| CoreError::Internal(format!("describe: {e}")))?,
                ),
                _ => None,
            };
            Ok(Summary {
                n: count(n)?,
                neg_inf: count(neg)?,
                pos_inf: count(pos)?,
                mean: f(mean)?,
                m2: f(m2)?,
                min: f(min)?,
                max: f(max)?,
                exact: exact.iter().copied().collect(),
                sketch,
            })
        })
        .collect()
}

/// The summaries of one partition's numeric columns.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DescribeChunk {
    columns: Vec<String>,
}

impl OpKind for DescribeChunk {
    const NAME: &'static str = "frame.describe-chunk";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let batch = first_batch(Self::NAME, &inputs)?;
        let err = arrow_err(Self::NAME);
        let out = self
            .columns
            .iter()
            .map(|c| {
                let col = batch
                    .column_by_name(c)
                    .ok_or_else(|| CoreError::Internal(format!("no column {c}")))?;
                let f = arrow::compute::cast(col, &DataType::Float64).map_err(&err)?;
                Ok(Summary::of(f.as_primitive::<Float64Type>()))
            })
            .collect::<brisk_core::Result<Vec<_>>>()?;
        to_value(out)
    }
}

/// Summaries merged in input order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DescribeCombine;

impl OpKind for DescribeCombine {
    const NAME: &'static str = "frame.describe-combine";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let mut acc: Option<Vec<Summary>> = None;
        for v in &inputs {
            let s = summaries(v)?;
            match &mut acc {
                None => acc = Some(s),
                Some(a) => {
                    for (a, b) in a.iter_mut().zip(&s) {
                        a.merge(b)?;
                    }
                }
            }
        }
        to_value(acc.unwrap_or_default())
    }
}

/// A lazy `describe` (see [`Frame::describe`]).
#[derive(Clone, Debug)]
pub struct Describe {
    columns: Vec<String>,
    key: Key,
    layer: Arc<Layer>,
}

impl Frame {
    /// count, mean, std (ddof 1), min, 25%, 50%, 75% and max of every numeric
    /// column, one row per statistic (pandas' layout). Quartiles interpolate as
    /// pandas does; exact up to [`DESCRIBE_EXACT_VALUES`] values per column, beyond that
    /// each order statistic within [`DESCRIBE_RELATIVE_ACCURACY`] of its value; the rest
    /// are exact.
    pub fn describe(&self) -> Result<Describe> {
        let columns = numeric_columns(self.schema());
        if columns.is_empty() {
            return Err(Error::Invalid("describe needs at least one numeric column".into()));
        }
        let frame = self.projected(&columns)?;
        let name = token("describe", &(frame.layer().name(), &columns));
        let base = Key::named(format!("{name}-chunk"));
        let mut tasks: Vec<Task> = frame
            .partition_keys()
            .enumerate()
            .map(|(i, k)| {
                Task::new(
                    base.with_index([i as u32]),
                    Op::data(DescribeChunk { columns: columns.clone() }),
                    [k.clone()],
                )
            })
            .collect();
        let partials: Vec<Key> = tasks.iter().map(|t| t.key.clone()).collect();
        let mut level = combine_tree(
            partials,
            DEFAULT_SPLIT_EVERY,
            1,
            &format!("{name}-combine"),
            &[],
            |_| Op::data(DescribeCombine),
            &mut tasks,
        );
        let key = level.pop().unwrap_or_else(|| {
            let k = Key::named(format!("{name}-empty"));
            tasks.push(Task::new(k.clone(), Op::data(DescribeCombine), Vec::<Key>::new()));
            k
        });
        Ok(Describe { columns, key, layer: Layer::new(name, tasks, vec![frame.layer().clone()]) })
    }
}

impl Collection for Describe {
    type Output = Table;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.layer.add_to(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Table> {
        let s = summaries(
            values.first().ok_or_else(|| CoreError::Internal("no describe result".into()))?,
        )?;
        let stats = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"];
        let mut fields = vec![Field::new("statistic", DataType::Utf8, false)];
        let mut columns: Vec<Arc<dyn Array>> = vec![Arc::new(StringArray::from(stats.to_vec()))];
        for (name, s) in self.columns.iter().zip(&s) {
            let some = |x: f64| (s.n > 0).then_some(x);
            let std = (s.n > 1).then(|| (s.m2 / (s.n - 1) as f64).sqrt());
            let values = vec![
                Some(s.n as f64),
                some(s.mean),
                std,
                some(s.min),
                s.quantile(0.25),
                s.quantile(0.5),
                s.quantile(0.75),
                some(s.max),
            ];
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(Float64Array::from(values)));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(Table::new(batch.schema(), vec![batch]))
    }
}
