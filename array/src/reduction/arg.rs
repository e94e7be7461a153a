//! The kernels of reductions whose result is not a value of the data: argmin and
//! argmax (an index), count_nonzero (a count), any and all (a bool), over all axes
//! or along one; and the graphs of the full ones. Same shape as the other
//! reductions: a state per chunk, a fixed tree of combines, one finish.

use brisk_core::{ArrayChunk, Element, Error as CoreError, Key, Op, OpKind, Scalar, Value};
use brisk_graph::{DEFAULT_SPLIT_EVERY, Layer, Task, combine_tree, token};
use ndarray::{ArrayD, Axis, IxDyn, Zip};
use serde::{Deserialize, Serialize};

use super::{Reduced, TreeOps};
use crate::array::Array;
use crate::element::{any_dtype, chunk_ref, one_chunk, split_inputs};

/// Which index-or-count reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Kind {
    ArgMin,
    ArgMax,
    Count,
}

/// Whether candidate `(a, i)` beats `(b, j)` for argmin/argmax: NaN beats every
/// number (numpy returns the first NaN), then the smaller/larger value; equal values
/// go to the smaller index. Chunks of a multi-dimensional grid interleave their
/// indices, so ties are settled by index, never by the order states arrive in.
fn wins<T: Element>(kind: Kind, (a, i): (T, i64), (b, j): (T, i64)) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => i < j,
        (false, true) => false,
        (true, false) => true,
        (false, false) => match kind {
            Kind::ArgMin => a < b || (a == b && i < j),
            Kind::ArgMax => a > b || (a == b && i < j),
            Kind::Count => false,
        },
    }
}

/// [`wins`] for two scalars of one dtype (a state's best value).
fn scalar_wins(kind: Kind, (a, i): (Scalar, i64), (b, j): (Scalar, i64)) -> bool {
    match (a, b) {
        (Scalar::F64(a), Scalar::F64(b)) => wins(kind, (a, i), (b, j)),
        (Scalar::F32(a), Scalar::F32(b)) => wins(kind, (a, i), (b, j)),
        (Scalar::I64(a), Scalar::I64(b)) => wins(kind, (a, i), (b, j)),
        (Scalar::I32(a), Scalar::I32(b)) => wins(kind, (a, i), (b, j)),
        (Scalar::Bool(a), Scalar::Bool(b)) => wins(kind, (a, i), (b, j)),
        _ => false,
    }
}

fn state(a: Scalar, b: i64) -> Value {
    Value::from(vec![Value::from(a), Value::from(b)])
}

fn unstate(v: &Value) -> brisk_core::Result<(Scalar, i64)> {
    match v {
        Value::List(items) => match items[..] {
            [Value::Scalar(a), Value::Scalar(Scalar::I64(b))] => Ok((a, b)),
            _ => {
                Err(CoreError::TypeMismatch { expected: "(value, index)".into(), found: v.kind() })
            }
        },
        _ => Err(CoreError::TypeMismatch { expected: "(value, index)".into(), found: v.kind() }),
    }
}

/// A chunk's best (value, flat index) or (nonzero count, element count).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkArg {
    kind: Kind,
    global_shape: Vec<usize>,
    start: Vec<usize>,
}

impl ChunkArg {
    fn best<T: Element>(&self, a: &ArrayD<T>) -> Value {
        if self.kind == Kind::Count {
            let nonzero = a.iter().filter(|&&x| x != T::default()).count();
            return state(Scalar::I64(nonzero as i64), a.len() as i64);
        }
        // Chunk elements in row-major order, each with its global flat index.
        let (starts, row) = crate::chunks::row_starts(&self.global_shape, &self.start, a.shape());
        let mut values = a.iter();
        let mut best: Option<(T, i64)> = None;
        for base in starts {
            for (j, &x) in values.by_ref().take(row).enumerate() {
                let candidate = (x, (base + j as u64) as i64);
                if best.is_none_or(|b| wins(self.kind, candidate, b)) {
                    best = Some(candidate);
                }
            }
        }
        let (v, i) = best.unwrap_or((T::default(), -1));
        state(v.to_scalar(), i)
    }
}

impl OpKind for ChunkArg {
    const NAME: &'static str = "array.arg-chunk";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        Ok(any_dtype!(&chunk, a => self.best(a)))
    }
}

/// States combined in input order; ties are settled by index (see `wins`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CombineArg {
    kind: Kind,
}

impl OpKind for CombineArg {
    const NAME: &'static str = "array.arg-combine";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let mut acc: Option<(Scalar, i64)> = None;
        for v in &inputs {
            let (x, i) = unstate(v)?;
            acc = Some(match acc {
                None => (x, i),
                Some((Scalar::I64(a), n)) if self.kind == Kind::Count => {
                    let Scalar::I64(x) = x else {
                        return Err(CoreError::Internal("a count state holds no count".into()));
                    };
                    (Scalar::I64(a + x), n + i)
                }
                Some(cur) if i < 0 => cur,
                Some((b, j)) if j < 0 || scalar_wins(self.kind, (x, i), (b, j)) => (x, i),
                Some(cur) => cur,
            });
        }
        let (a, b) =
            acc.ok_or(CoreError::Arity { op: Self::NAME.into(), expected: 1, found: 0 })?;
        Ok(state(a, b))
    }
}

/// What the finished reduction gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Output {
    Index,
    Count,
    Any,
    All,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FinishArg {
    output: Output,
}

impl OpKind for FinishArg {
    const NAME: &'static str = "array.arg-finish";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let first = split_inputs(Self::NAME, &inputs)?.0;
        let (a, b) = unstate(first)?;
        let count = || match a {
            Scalar::I64(n) => Ok(n),
            _ => Err(CoreError::Internal("a count state holds no count".into())),
        };
        Ok(Value::Scalar(match self.output {
            Output::Index if b < 0 => {
                return Err(CoreError::user(
                    "argmin/argmax of an empty array: there is no index to return",
                ));
            }
            Output::Index => Scalar::I64(b),
            Output::Count => Scalar::I64(count()?),
            Output::Any => Scalar::Bool(count()? > 0),
            Output::All => Scalar::Bool(count()? == b),
        }))
    }
}

/// Per kept position, the best (value, index along the axis) of a chunk: the state
/// of an argmin/argmax along one axis.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkArgAxis {
    kind: Kind,
    axis: usize,
    /// Where the chunk starts along the axis.
    offset: usize,
}

fn arg_state<T: Element>(values: ArrayD<T>, index: ArrayD<i64>) -> Value {
    Value::from(vec![Value::from(T::into_chunk(values)), Value::from(ArrayChunk::I64(index))])
}

fn arg_unstate(v: &Value) -> brisk_core::Result<(&ArrayChunk, &ArrayD<i64>)> {
    let bad = || CoreError::TypeMismatch { expected: "(values, indices)".into(), found: v.kind() };
    let Value::List(items) = v else { return Err(bad()) };
    let [values, index] = &items[..] else { return Err(bad()) };
    let index = i64::chunk_ref(chunk_ref("arg-axis", index)?).ok_or_else(bad)?;
    Ok((chunk_ref("arg-axis", values)?, index))
}

impl ChunkArgAxis {
    fn best<T: Element>(&self, a: &ArrayD<T>) -> Value {
        let mut shape = a.shape().to_vec();
        shape[self.axis] = 1;
        let mut values = ArrayD::from_elem(IxDyn(&shape), T::default());
        let mut index = ArrayD::from_elem(IxDyn(&shape), -1i64);
        for (k, lane) in a.axis_iter(Axis(self.axis)).enumerate() {
            let at = (self.offset + k) as i64;
            Zip::from(values.index_axis_mut(Axis(self.axis), 0))
                .and(index.index_axis_mut(Axis(self.axis), 0))
                .and(&lane)
                .for_each(|v, i, &x| {
                    if *i < 0 || wins(self.kind, (x, at), (*v, *i)) {
                        (*v, *i) = (x, at);
                    }
                });
        }
        arg_state(values, index)
    }
}

impl OpKind for ChunkArgAxis {
    const NAME: &'static str = "array.arg-axis-chunk";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        Ok(any_dtype!(&chunk, a => self.best(a)))
    }
}

/// Axis states combined position by position; ties settled by index.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CombineArgAxis {
    kind: Kind,
}

impl CombineArgAxis {
    fn combine<T: Element>(
        &self,
        first: &ArrayD<T>,
        index: &ArrayD<i64>,
        rest: &[Value],
    ) -> brisk_core::Result<Value> {
        let (mut values, mut index) = (first.clone(), index.clone());
        for v in rest {
            let (other, other_index) = arg_unstate(v)?;
            let other = T::chunk_ref(other).ok_or_else(|| {
                CoreError::Internal(format!("{} met states of two dtypes", Self::NAME))
            })?;
            Zip::from(&mut values).and(&mut index).and(other).and(other_index).for_each(
                |v, i, &x, &j| {
                    if j >= 0 && (*i < 0 || wins(self.kind, (x, j), (*v, *i))) {
                        (*v, *i) = (x, j);
                    }
                },
            );
        }
        Ok(arg_state(values, index))
    }
}

impl OpKind for CombineArgAxis {
    const NAME: &'static str = "array.arg-axis-combine";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let (first, rest) = split_inputs(Self::NAME, &inputs)?;
        let (values, index) = arg_unstate(first)?;
        any_dtype!(values, a => self.combine(a, index, rest))
    }
}

/// The indices of an axis state, the axis removed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FinishArgAxis {
    axis: usize,
}

impl OpKind for FinishArgAxis {
    const NAME: &'static str = "array.arg-axis-finish";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let first = split_inputs(Self::NAME, &inputs)?.0;
        let (_, index) = arg_unstate(first)?;
        if index.iter().any(|&i| i < 0) {
            return Err(CoreError::user(
                "argmin/argmax along an empty axis: there is no index to return",
            ));
        }
        Ok(Value::from(ArrayChunk::I64(index.clone().index_axis_move(Axis(self.axis), 0))))
    }
}

impl<T: Element> Array<T> {
    /// An index or count reduction over every axis.
    pub(super) fn arg_all<U: Element>(
        &self,
        kind: Kind,
        output: Output,
        split_every: usize,
    ) -> Reduced<U> {
        // The default tree keeps the name it had before split_every could be set.
        let name = if split_every == DEFAULT_SPLIT_EVERY {
            token("arg", &(self.name(), kind, output))
        } else {
            token("arg", &(self.name(), kind, output, split_every))
        };
        let chunk_base = Key::named(format!("{name}-chunk"));
        let mut tasks: Vec<Task> = self
            .chunks()
            .blocks()
            .iter()
            .zip(self.chunk_keys())
            .map(|(b, key)| {
                let op = Op::data(ChunkArg {
                    kind,
                    global_shape: self.shape().to_vec(),
                    start: b.start.clone(),
                });
                Task::new(chunk_base.with_index(b.index.clone()), op, [key.clone()])
            })
            .collect();
        let partials: Vec<Key> = tasks.iter().map(|t| t.key.clone()).collect();
        let combine = Op::data(CombineArg { kind });
        let level = combine_tree(
            partials,
            split_every,
            1,
            &format!("{name}-combine"),
            &[],
            |_| combine.clone(),
            &mut tasks,
        );
        let key = Key::named(name.as_str());
        tasks.push(Task::new(key.clone(), Op::data(FinishArg { output }), level));
        Reduced::new(Layer::new(name, tasks, vec![self.layer()]), key)
    }

    /// argmin or argmax along one axis (`axes`, checked, holds it).
    pub(super) fn arg_along(&self, kind: Kind, axes: Vec<usize>, split_every: usize) -> Array<i64> {
        let axis = axes[0];
        let ops = TreeOps {
            prefix: "arg-axis",
            params: token("", &kind),
            chunk: &|b| Op::data(ChunkArgAxis { kind, axis, offset: b.start[axis] }),
            combine: Op::data(CombineArgAxis { kind }),
            finish: Op::data(FinishArgAxis { axis }),
        };
        self.tree_reduce(&axes, split_every, ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_nan_follow_numpy() {
        assert!(wins(Kind::ArgMin, (1.0, 5), (2.0, 0)));
        assert!(wins(Kind::ArgMin, (1.0, 0), (1.0, 5)));
        assert!(!wins(Kind::ArgMin, (1.0, 5), (1.0, 0)));
        assert!(wins(Kind::ArgMax, (f64::NAN, 9), (3.0, 0)));
        assert!(wins(Kind::ArgMax, (i64::MAX, 3), (i64::MAX - 1, 0)), "exact for big i64");
    }
}
