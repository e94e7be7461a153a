//! `describe`: count, mean, std, min, quartiles and max of every numeric column,
//! as pandas prints them. Moments are exact (Chan's parallel combine); quartiles
//! come from a weighted sample kept per partition and merged, within 1/1024 of the
//! rank (Dask's `describe` is approximate too).

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use brisk_core::{ArrayChunk, Error as CoreError, Key, Op, OpKind, Scalar, Value};
use brisk_graph::{
    Collection, DEFAULT_SPLIT_EVERY, GraphBuilder, Layer, Task, combine_tree, token,
};
use serde::{Deserialize, Serialize};

use crate::batches::{arrow_err, first_batch};
use crate::frame::Frame;
use crate::table::Table;
use crate::{Error, Result};

/// Values kept per column per state for the quartiles.
const SKETCH: usize = 1024;

/// The summary of one column so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Summary {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    /// Sorted (value, weight) pairs, each standing for `weight` values.
    sketch: Vec<(f64, u64)>,
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
        let sketch = v.iter().map(|&x| (x, 1)).collect();
        let mut s = Summary { n, mean, m2, min: v[0], max: v[v.len() - 1], sketch };
        s.compress();
        s
    }

    fn merge(&mut self, o: &Summary) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = o.clone();
            return;
        }
        let n = self.n + o.n;
        let delta = o.mean - self.mean;
        self.mean += delta * o.n as f64 / n as f64;
        self.m2 += o.m2 + delta * delta * self.n as f64 * o.n as f64 / n as f64;
        self.n = n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sketch.extend_from_slice(&o.sketch);
        self.sketch.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.compress();
    }

    /// Keeps at most `SKETCH` entries: neighbours merged, weights summed.
    fn compress(&mut self) {
        if self.sketch.len() <= SKETCH {
            return;
        }
        let total: u64 = self.sketch.iter().map(|e| e.1).sum();
        let step = total.div_ceil(SKETCH as u64);
        let mut out = Vec::with_capacity(SKETCH);
        let (mut acc, mut first) = (0u64, None);
        for &(v, w) in &self.sketch {
            first.get_or_insert(v);
            acc += w;
            if acc >= step {
                out.push((first.take().expect("set"), acc));
                acc = 0;
            }
        }
        if let Some(v) = first {
            out.push((v, acc));
        }
        self.sketch = out;
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let target = q * (self.n - 1) as f64;
        let mut seen = 0u64;
        for &(v, w) in &self.sketch {
            if (seen + w) as f64 > target {
                return Some(v);
            }
            seen += w;
        }
        Some(self.max)
    }
}

fn numeric_columns(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        // A Null column (a header-only file) is an empty numeric one.
        .filter(|f| f.data_type().is_numeric() || f.data_type() == &DataType::Null)
        .map(|f| f.name().clone())
        .collect()
}

/// Summaries as a value with a codec (so states can spill or travel): per column a
/// list of n, mean, M2, min, max and the sketch's values and weights.
fn to_value(s: Vec<Summary>) -> Value {
    let one = |s: Summary| {
        let (values, weights): (Vec<f64>, Vec<i64>) =
            s.sketch.iter().map(|&(v, w)| (v, w as i64)).unzip();
        Value::from(vec![
            Value::from(s.n as i64),
            Value::from(s.mean),
            Value::from(s.m2),
            Value::from(s.min),
            Value::from(s.max),
            Value::from(ArrayChunk::F64(ndarray::Array1::from(values).into_dyn())),
            Value::from(ArrayChunk::I64(ndarray::Array1::from(weights).into_dyn())),
        ])
    };
    Value::from(s.into_iter().map(one).collect::<Vec<_>>())
}

fn summaries(v: &Value) -> brisk_core::Result<Vec<Summary>> {
    let bad = || CoreError::TypeMismatch { expected: "describe state".into(), found: v.kind() };
    let Value::List(cols) = v else { return Err(bad()) };
    cols.iter()
        .map(|c| {
            let Value::List(p) = c else { return Err(bad()) };
            let [n, mean, m2, min, max, Value::Array(values), Value::Array(weights)] = &p[..]
            else {
                return Err(bad());
            };
            let f = |x: &Value| match x.as_scalar() {
                Some(Scalar::F64(v)) => Ok(v),
                _ => Err(bad()),
            };
            let n = match n.as_scalar() {
                Some(Scalar::I64(n)) => n as u64,
                _ => return Err(bad()),
            };
            let (ArrayChunk::F64(values), ArrayChunk::I64(weights)) =
                (values.as_ref(), weights.as_ref())
            else {
                return Err(bad());
            };
            let sketch = values.iter().zip(weights.iter()).map(|(&v, &w)| (v, w as u64)).collect();
            Ok(Summary { n, mean: f(mean)?, m2: f(m2)?, min: f(min)?, max: f(max)?, sketch })
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
        Ok(to_value(out))
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
                Some(a) => a.iter_mut().zip(&s).for_each(|(a, b)| a.merge(b)),
            }
        }
        Ok(to_value(acc.unwrap_or_default()))
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
    /// column, one row per statistic (pandas' layout). Quartiles are approximate
    /// (within 1/1024 of the rank); the rest are exact.
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
