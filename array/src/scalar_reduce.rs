//! Reductions whose result is not a value of the data: argmin/argmax (an index),
//! count_nonzero (a count), any/all (a bool). Same shape as the other reductions: a
//! state per chunk, a fixed tree of combines, one finish.

use brisk_core::{ArrayChunk, Element, Error as CoreError, Key, Op, OpKind, Scalar, Value};
use brisk_graph::{Collection, GraphBuilder, Task};
use ndarray::{ArrayD, Axis, IxDyn, Zip};
use serde::{Deserialize, Serialize};

use crate::DEFAULT_SPLIT_EVERY;
use crate::Result;
use crate::array::{Array, Layer, TreeOps, add_layer_tasks, combine_tree, hidden_layer, token};
use crate::element::{any_dtype, chunk_ref, one_chunk, split_inputs};

/// Which index-or-count reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Kind {
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
enum Output {
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

/// A lazy full reduction to a scalar of type `T` (`i64` for argmin, argmax and
/// count_nonzero; `bool` for any and all).
#[derive(Clone, Debug)]
pub struct ReducedScalar<T> {
    key: Key,
    tasks: Layer,
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> Collection for ReducedScalar<T> {
    type Output = T;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        add_layer_tasks(&self.tasks, graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<T> {
        let found = values.first().map(Value::kind).unwrap_or_default();
        values
            .first()
            .and_then(Value::as_scalar)
            .and_then(T::from_scalar)
            .ok_or_else(|| CoreError::TypeMismatch { expected: T::DTYPE.to_string(), found })
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
    fn reduce_scalar<U>(&self, kind: Kind, output: Output) -> ReducedScalar<U> {
        let name = token("arg", &(self.name(), kind, output));
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
            DEFAULT_SPLIT_EVERY,
            1,
            &format!("{name}-combine"),
            &[],
            &combine,
            &mut tasks,
        );
        let key = Key::named(name.as_str());
        tasks.push(Task::new(key.clone(), Op::data(FinishArg { output }), level));
        ReducedScalar {
            key,
            tasks: hidden_layer(name, tasks, vec![self.layer()]),
            _type: std::marker::PhantomData,
        }
    }

    /// The flat (row-major) index of the smallest element; the first NaN if there is
    /// one, the first of equal minima otherwise, as numpy's `argmin`.
    pub fn argmin(&self) -> ReducedScalar<i64> {
        self.reduce_scalar(Kind::ArgMin, Output::Index)
    }

    /// The flat index of the largest element (NaN and ties as [`Array::argmin`]).
    pub fn argmax(&self) -> ReducedScalar<i64> {
        self.reduce_scalar(Kind::ArgMax, Output::Index)
    }

    /// How many elements are not zero (NaN counts as non-zero, as in numpy).
    pub fn count_nonzero(&self) -> ReducedScalar<i64> {
        self.reduce_scalar(Kind::Count, Output::Count)
    }

    /// Whether any element is non-zero.
    pub fn any(&self) -> ReducedScalar<bool> {
        self.reduce_scalar(Kind::Count, Output::Any)
    }

    /// Whether every element is non-zero (true for an empty array).
    pub fn all(&self) -> ReducedScalar<bool> {
        self.reduce_scalar(Kind::Count, Output::All)
    }

    fn arg_axis(&self, kind: Kind, axis: usize) -> Result<Array<i64>> {
        let axes = self.check_axes(Some(&[axis]))?;
        let ops = TreeOps {
            prefix: "arg-axis",
            params: token("", &kind),
            chunk: &|b| Op::data(ChunkArgAxis { kind, axis, offset: b.start[axis] }),
            combine: Op::data(CombineArgAxis { kind }),
            finish: Op::data(FinishArgAxis { axis }),
        };
        self.tree_reduce(&axes, DEFAULT_SPLIT_EVERY, ops)
    }

    /// The index along `axis` of the smallest element of each lane, as numpy's
    /// `argmin(axis=...)` (NaN and ties as [`Array::argmin`]).
    ///
    /// ```
    /// use brisk_array::{Chunks, from_ndarray};
    /// use brisk_scheduler::Compute;
    /// let a = ndarray::array![[3, 1, 2], [0, 5, 0]].into_dyn();
    /// let x = from_ndarray(&a, Chunks::regular(&[2, 3], &[1, 2])?)?;
    /// assert_eq!(x.argmin_axis(1)?.compute()?.into_raw_vec_and_offset().0, vec![1, 0]);
    /// assert_eq!(x.argmax_axis(0)?.compute()?.into_raw_vec_and_offset().0, vec![0, 1, 0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn argmin_axis(&self, axis: usize) -> Result<Array<i64>> {
        self.arg_axis(Kind::ArgMin, axis)
    }

    /// The index along `axis` of the largest element of each lane.
    pub fn argmax_axis(&self, axis: usize) -> Result<Array<i64>> {
        self.arg_axis(Kind::ArgMax, axis)
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
