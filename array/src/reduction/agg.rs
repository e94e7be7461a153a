//! The kernels of `sum`, `mean`, `var`, `std`, `min` and `max` over all axes or
//! chosen axes: a partial state per chunk, combined in a fixed tree across chunks,
//! finished once per output chunk.
//!
//! A partial state is one or more arrays shaped like the chunk with the reduced axes
//! kept at length 1, so full and axis reductions share every step. States are `f64`,
//! except sums, minima and maxima of integers and booleans, which stay exact in `i64`.

use std::borrow::Cow;

use brisk_core::{ArrayChunk, DType, Element, Error, OpKind, Result, Value};
use ndarray::{ArrayD, Axis, IxDyn, Zip};

use crate::element::{any_dtype, cast_to, one_chunk, split_inputs};
use serde::{Deserialize, Serialize};

use crate::kernels::pairwise_sum;

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Agg {
    /// Sum (pairwise within chunks).
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Variance with `ddof` delta degrees of freedom (numpy's default is 0).
    Var {
        /// Delta degrees of freedom.
        ddof: u32,
    },
    /// Standard deviation with `ddof` delta degrees of freedom.
    Std {
        /// Delta degrees of freedom.
        ddof: u32,
    },
    /// Minimum (NaN propagates, as in numpy).
    Min,
    /// Maximum (NaN propagates).
    Max,
}

impl Agg {
    fn parts(self) -> usize {
        match self {
            Agg::Sum | Agg::Min | Agg::Max => 1,
            Agg::Mean => 2,
            Agg::Var { .. } | Agg::Std { .. } => 3,
        }
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// A partial state: its arrays, all `f64` or all `i64`.
enum State {
    Float(Vec<ArrayD<f64>>),
    Int(Vec<ArrayD<i64>>),
}

fn state_of(value: &Value, parts: usize) -> Result<State> {
    let bad =
        || Error::TypeMismatch { expected: format!("{parts} partial arrays"), found: value.kind() };
    let Value::List(items) = value else { return Err(bad()) };
    if items.len() != parts {
        return Err(bad());
    }
    let chunk = |v: &Value| match v {
        Value::Array(c) => Ok(c.clone()),
        _ => Err(bad()),
    };
    let chunks = items.iter().map(chunk).collect::<Result<Vec<_>>>()?;
    if chunks.iter().all(|c| c.dtype() == DType::I64) {
        Ok(State::Int(chunks.iter().filter_map(|c| i64::chunk_ref(c).cloned()).collect()))
    } else {
        chunks
            .iter()
            .map(|c| f64::chunk_ref(c).cloned().ok_or_else(bad))
            .collect::<Result<_>>()
            .map(State::Float)
    }
}

fn state_value<T: Element>(parts: Vec<ArrayD<T>>) -> Value {
    Value::from(parts.into_iter().map(|a| Value::from(T::into_chunk(a))).collect::<Vec<_>>())
}

/// The lanes of a chunk: for each kept position, the run of values it reduces.
struct Lanes<'a, S: Clone> {
    data: Cow<'a, [S]>,
    run: usize,
    keep_shape: Vec<usize>,
}

impl<'a, S: Element> Lanes<'a, S> {
    /// The reduced axes moved last, so each kept position reduces one contiguous run;
    /// `S` data in standard layout is borrowed, not copied.
    fn new<T: Element>(a: &'a ArrayD<T>, axes: &[usize], convert: impl Fn(T) -> S) -> Self
    where
        S: Element,
    {
        let kept: Vec<usize> = (0..a.ndim()).filter(|d| !axes.contains(d)).collect();
        let order: Vec<usize> = kept.iter().chain(axes).copied().collect();
        let permuted = a.view().permuted_axes(IxDyn(&order));
        // When T is S and the permuted chunk is in standard layout (always, for a full
        // reduction of a fresh chunk), the lanes borrow it: no copy.
        let same: Option<&'a ArrayD<S>> = (a as &dyn std::any::Any).downcast_ref();
        let borrowed = same.and_then(|s| s.view().permuted_axes(IxDyn(&order)).to_slice());
        let data = match borrowed {
            Some(x) => Cow::Borrowed(x),
            None => Cow::Owned(permuted.iter().map(|&x| convert(x)).collect()),
        };
        let run: usize = axes.iter().map(|&d| a.shape()[d]).product();
        let mut keep_shape = a.shape().to_vec();
        for &d in axes {
            keep_shape[d] = 1;
        }
        Lanes { data, run, keep_shape }
    }

    fn each<R>(&self, mut f: impl FnMut(&[S]) -> R) -> ArrayD<R> {
        let outputs: usize = self.keep_shape.iter().product();
        let values: Vec<R> = if self.run == 0 {
            (0..outputs).map(|_| f(&[])).collect()
        } else {
            self.data.chunks_exact(self.run).map(f).collect()
        };
        ArrayD::from_shape_vec(IxDyn(&self.keep_shape), values).expect("one value per position")
    }
}

/// The partial state of one chunk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkPartial {
    pub(crate) agg: Agg,
    pub(crate) axes: Vec<usize>,
}

impl ChunkPartial {
    /// Sum, min or max of integers or booleans, exact in `i64`.
    fn exact<T: Element>(&self, a: &ArrayD<T>) -> Value {
        let lanes = Lanes::new(a, &self.axes, T::to_i64);
        state_value(vec![match self.agg {
            Agg::Min => lanes.each(|x| x.iter().copied().min().unwrap_or(i64::MAX)),
            Agg::Max => lanes.each(|x| x.iter().copied().max().unwrap_or(i64::MIN)),
            _ => lanes.each(|x| x.iter().fold(0i64, |acc, &v| acc.wrapping_add(v))),
        }])
    }

    fn float<T: Element>(&self, a: &ArrayD<T>) -> Value {
        let lanes = Lanes::new(a, &self.axes, T::to_f64);
        let count = || ArrayD::from_elem(IxDyn(&lanes.keep_shape), lanes.run as f64);
        state_value(match self.agg {
            Agg::Sum => vec![lanes.each(pairwise_sum)],
            Agg::Mean => vec![lanes.each(pairwise_sum), count()],
            Agg::Var { .. } | Agg::Std { .. } => {
                // Two passes per lane (mean, then squared deviations) for accuracy.
                let mut deviations = Vec::with_capacity(lanes.run);
                let mut m2s = Vec::new();
                let means = lanes.each(|x| {
                    let m = if x.is_empty() { 0.0 } else { pairwise_sum(x) / x.len() as f64 };
                    deviations.clear();
                    deviations.extend(x.iter().map(|v| (v - m) * (v - m)));
                    m2s.push(pairwise_sum(&deviations));
                    m
                });
                let m2s = ArrayD::from_shape_vec(IxDyn(&lanes.keep_shape), m2s)
                    .expect("one value per position");
                vec![count(), means, m2s]
            }
            Agg::Min => vec![lanes.each(|x| x.iter().copied().fold(f64::INFINITY, nan_min))],
            Agg::Max => vec![lanes.each(|x| x.iter().copied().fold(f64::NEG_INFINITY, nan_max))],
        })
    }
}

impl OpKind for ChunkPartial {
    const NAME: &'static str = "array.reduce-chunk";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        let exact = matches!(self.agg, Agg::Sum | Agg::Min | Agg::Max)
            && !matches!(chunk, ArrayChunk::F64(_) | ArrayChunk::F32(_));
        Ok(if exact {
            any_dtype!(&chunk, a => self.exact(a))
        } else {
            any_dtype!(&chunk, a => self.float(a))
        })
    }
}

/// Partial states combined element-wise in input order: one node of the tree.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CombinePartial {
    pub(crate) agg: Agg,
}

impl CombinePartial {
    fn float(&self, acc: &mut [ArrayD<f64>], next: &[ArrayD<f64>]) {
        match self.agg {
            Agg::Sum => acc[0] += &next[0],
            Agg::Mean => {
                acc[0] += &next[0];
                acc[1] += &next[1];
            }
            Agg::Min => Zip::from(&mut acc[0]).and(&next[0]).for_each(|a, &b| *a = nan_min(*a, b)),
            Agg::Max => Zip::from(&mut acc[0]).and(&next[0]).for_each(|a, &b| *a = nan_max(*a, b)),
            Agg::Var { .. } | Agg::Std { .. } => {
                // Chan et al.'s parallel update of (count, mean, M2).
                let [na, ma, m2a] = acc else { unreachable!("three parts") };
                Zip::from(na).and(ma).and(m2a).and(&next[0]).and(&next[1]).and(&next[2]).for_each(
                    |na, ma, m2a, &nb, &mb, &m2b| {
                        let n = *na + nb;
                        if n > 0.0 {
                            let delta = mb - *ma;
                            *ma += delta * nb / n;
                            *m2a += m2b + delta * delta * *na * nb / n;
                        }
                        *na = n;
                    },
                );
            }
        }
    }

    fn exact(&self, acc: &mut [ArrayD<i64>], next: &[ArrayD<i64>]) {
        let f: fn(i64, i64) -> i64 = match self.agg {
            Agg::Min => i64::min,
            Agg::Max => i64::max,
            _ => i64::wrapping_add,
        };
        Zip::from(&mut acc[0]).and(&next[0]).for_each(|a, &b| *a = f(*a, b));
    }
}

impl OpKind for CombinePartial {
    const NAME: &'static str = "array.reduce-combine";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let parts = self.agg.parts();
        let mut states = inputs.iter().map(|v| state_of(v, parts));
        let mut acc = states.next().ok_or(Error::Arity {
            op: Self::NAME.into(),
            expected: 1,
            found: 0,
        })??;
        for next in states {
            match (&mut acc, next?) {
                (State::Float(acc), State::Float(next)) => self.float(acc, &next),
                (State::Int(acc), State::Int(next)) => self.exact(acc, &next),
                _ => {
                    return Err(Error::Internal(format!(
                        "{} met float and integer states",
                        Self::NAME
                    )));
                }
            }
        }
        Ok(match acc {
            State::Float(parts) => state_value(parts),
            State::Int(parts) => state_value(parts),
        })
    }
}

/// The result of a reduction from its combined state, reduced axes removed, cast to
/// the output dtype.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FinishPartial {
    pub(crate) agg: Agg,
    pub(crate) axes: Vec<usize>,
    pub(crate) out: DType,
}

impl FinishPartial {
    fn float(&self, state: Vec<ArrayD<f64>>) -> ArrayD<f64> {
        match self.agg {
            Agg::Sum | Agg::Min | Agg::Max => state.into_iter().next().expect("one part"),
            Agg::Mean => Zip::from(&state[0])
                .and(&state[1])
                .map_collect(|&s, &n| if n > 0.0 { s / n } else { f64::NAN }),
            Agg::Var { ddof } | Agg::Std { ddof } => {
                let var = Zip::from(&state[0]).and(&state[2]).map_collect(|&n, &m2| {
                    let dof = n - f64::from(ddof);
                    if dof > 0.0 { m2 / dof } else { f64::NAN }
                });
                if matches!(self.agg, Agg::Std { .. }) { var.mapv(f64::sqrt) } else { var }
            }
        }
    }

    fn drop_axes<T>(&self, mut out: ArrayD<T>) -> ArrayD<T> {
        let mut axes = self.axes.clone();
        axes.sort_unstable();
        for &d in axes.iter().rev() {
            out = out.index_axis_move(Axis(d), 0);
        }
        out
    }
}

impl OpKind for FinishPartial {
    const NAME: &'static str = "array.reduce-finish";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let state = state_of(split_inputs(Self::NAME, &inputs)?.0, self.agg.parts())?;
        Ok(Value::from(match state {
            State::Float(parts) => cast_to(self.drop_axes(self.float(parts)), self.out),
            State::Int(parts) => {
                let first = parts.into_iter().next().expect("one part");
                cast_to(self.drop_axes(first), self.out)
            }
        }))
    }
}
