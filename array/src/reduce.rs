//! Reductions over all axes or chosen axes: a partial state per chunk, combined in a
//! fixed tree across chunks, finished once per output chunk.
//!
//! A partial state is one or more f64 arrays shaped like the chunk with the reduced
//! axes kept at length 1, so full and axis reductions share every step.

use brisk_core::{ArrayChunk, Error, OpKind, Result, Value};
use ndarray::{ArrayD, Axis, IxDyn, Zip};
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

fn state_of(value: &Value, parts: usize) -> Result<Vec<ArrayD<f64>>> {
    let bad =
        || Error::TypeMismatch { expected: format!("{parts} partial arrays"), found: value.kind() };
    let Value::List(items) = value else { return Err(bad()) };
    if items.len() != parts {
        return Err(bad());
    }
    items
        .iter()
        .map(|v| match v {
            Value::Array(c) => match c.as_ref() {
                ArrayChunk::F64(a) => Ok(a.clone()),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

fn state_value(parts: Vec<ArrayD<f64>>) -> Value {
    Value::from(parts.into_iter().map(|a| Value::from(ArrayChunk::F64(a))).collect::<Vec<_>>())
}

/// The partial state of one chunk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkPartial {
    pub(crate) agg: Agg,
    pub(crate) axes: Vec<usize>,
}

impl OpKind for ChunkPartial {
    const NAME: &'static str = "array.reduce-chunk";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let a = crate::ops::f64_input(Self::NAME, inputs)?;
        let ndim = a.ndim();
        // Move the reduced axes last, so each output position reduces one contiguous
        // run; for a full reduction of a standard-layout chunk this copies nothing.
        let kept: Vec<usize> = (0..ndim).filter(|d| !self.axes.contains(d)).collect();
        let order: Vec<usize> = kept.iter().chain(&self.axes).copied().collect();
        let permuted = a.view().permuted_axes(IxDyn(&order));
        let data = permuted.as_standard_layout();
        let flat = data.as_slice().expect("standard layout is contiguous");
        let run: usize = self.axes.iter().map(|&d| a.shape()[d]).product();
        let mut keep_shape = a.shape().to_vec();
        for &d in &self.axes {
            keep_shape[d] = 1;
        }
        let outputs: usize = keep_shape.iter().product();
        let lanes: Vec<&[f64]> =
            if run == 0 { vec![&[][..]; outputs] } else { flat.chunks_exact(run).collect() };
        let shaped = |values: Vec<f64>| {
            ArrayD::from_shape_vec(IxDyn(&keep_shape), values).expect("one value per kept position")
        };
        let each = |f: &dyn Fn(&[f64]) -> f64| shaped(lanes.iter().map(|x| f(x)).collect());
        let count = || ArrayD::from_elem(IxDyn(&keep_shape), run as f64);
        let parts = match self.agg {
            Agg::Sum => vec![each(&pairwise_sum)],
            Agg::Mean => vec![each(&pairwise_sum), count()],
            Agg::Var { .. } | Agg::Std { .. } => {
                // Two passes per lane (mean, then squared deviations) for accuracy.
                let mut means = Vec::with_capacity(outputs);
                let mut m2s = Vec::with_capacity(outputs);
                let mut deviations = Vec::with_capacity(run);
                for x in &lanes {
                    let m = if x.is_empty() { 0.0 } else { pairwise_sum(x) / x.len() as f64 };
                    deviations.clear();
                    deviations.extend(x.iter().map(|v| (v - m) * (v - m)));
                    means.push(m);
                    m2s.push(pairwise_sum(&deviations));
                }
                vec![count(), shaped(means), shaped(m2s)]
            }
            Agg::Min => vec![each(&|x: &[f64]| x.iter().copied().fold(f64::INFINITY, nan_min))],
            Agg::Max => vec![each(&|x: &[f64]| x.iter().copied().fold(f64::NEG_INFINITY, nan_max))],
        };
        Ok(state_value(parts))
    }
}

/// Partial states combined element-wise in input order: one node of the tree.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CombinePartial {
    pub(crate) agg: Agg,
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
            let next = next?;
            match self.agg {
                Agg::Sum => acc[0] += &next[0],
                Agg::Mean => {
                    acc[0] += &next[0];
                    acc[1] += &next[1];
                }
                Agg::Min => {
                    Zip::from(&mut acc[0]).and(&next[0]).for_each(|a, &b| *a = nan_min(*a, b))
                }
                Agg::Max => {
                    Zip::from(&mut acc[0]).and(&next[0]).for_each(|a, &b| *a = nan_max(*a, b))
                }
                Agg::Var { .. } | Agg::Std { .. } => {
                    // Chan et al.'s parallel update of (count, mean, M2).
                    let [na, ma, m2a] = &mut acc[..] else { unreachable!("three parts") };
                    Zip::from(na)
                        .and(ma)
                        .and(m2a)
                        .and(&next[0])
                        .and(&next[1])
                        .and(&next[2])
                        .for_each(|na, ma, m2a, &nb, &mb, &m2b| {
                            let n = *na + nb;
                            if n > 0.0 {
                                let delta = mb - *ma;
                                *ma += delta * nb / n;
                                *m2a += m2b + delta * delta * *na * nb / n;
                            }
                            *na = n;
                        });
                }
            }
        }
        Ok(state_value(acc))
    }
}

/// The result of a reduction from its combined state, reduced axes removed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FinishPartial {
    pub(crate) agg: Agg,
    pub(crate) axes: Vec<usize>,
}

impl OpKind for FinishPartial {
    const NAME: &'static str = "array.reduce-finish";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let state = state_of(
            inputs.first().ok_or(Error::Arity { op: Self::NAME.into(), expected: 1, found: 0 })?,
            self.agg.parts(),
        )?;
        let mut out = match self.agg {
            Agg::Sum | Agg::Min | Agg::Max => state[0].clone(),
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
        };
        let mut axes = self.axes.clone();
        axes.sort_unstable();
        for &d in axes.iter().rev() {
            out = out.index_axis_move(Axis(d), 0);
        }
        Ok(Value::from(ArrayChunk::F64(out)))
    }
}
