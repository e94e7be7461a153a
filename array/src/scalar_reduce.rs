//! Full reductions whose result is not an f64 of the data: argmin/argmax (a flat
//! index), count_nonzero (a count), any/all (a bool). Same shape as the other
//! reductions: a state per chunk, a fixed tree of combines, one finish.

use brisk_core::{Error as CoreError, Key, Op, OpKind, Scalar, Value};
use brisk_graph::{Collection, GraphBuilder, Task};
use serde::{Deserialize, Serialize};

use crate::DEFAULT_SPLIT_EVERY;
use crate::array::{Array, combine_tree, token};
use crate::ops::f64_input;

/// Which index-or-count reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Kind {
    ArgMin,
    ArgMax,
    Count,
}

/// Whether candidate `(a, i)` beats `(b, j)` for argmin/argmax: NaN beats every
/// number (numpy returns the first NaN), then the smaller/larger value; equal values
/// go to the smaller flat index. Chunks of a multi-dimensional grid interleave their
/// indices, so ties are settled by index, never by the order states arrive in.
fn wins(kind: Kind, (a, i): (f64, i64), (b, j): (f64, i64)) -> bool {
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

fn state(a: f64, b: i64) -> Value {
    Value::from(vec![Value::from(a), Value::from(b)])
}

fn unstate(v: &Value) -> brisk_core::Result<(f64, i64)> {
    match v {
        Value::List(items) => match items[..] {
            [Value::Scalar(Scalar::F64(a)), Value::Scalar(Scalar::I64(b))] => Ok((a, b)),
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

impl OpKind for ChunkArg {
    const NAME: &'static str = "array.arg-chunk";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let a = f64_input(Self::NAME, inputs)?;
        if self.kind == Kind::Count {
            let nonzero = a.iter().filter(|&&x| x != 0.0).count();
            return Ok(state(nonzero as f64, a.len() as i64));
        }
        // Chunk elements in row-major order, each with its global flat index.
        let (starts, row) = crate::chunks::row_starts(&self.global_shape, &self.start, a.shape());
        let data = a.as_standard_layout();
        let values = data.as_slice().expect("standard layout is contiguous");
        let mut best: Option<(f64, i64)> = None;
        for (r, base) in starts.iter().enumerate() {
            for (j, &x) in values[r * row..(r + 1) * row].iter().enumerate() {
                let candidate = (x, (base + j as u64) as i64);
                if best.is_none_or(|b| wins(self.kind, candidate, b)) {
                    best = Some(candidate);
                }
            }
        }
        let (v, i) = best.unwrap_or((f64::NAN, -1));
        Ok(state(v, i))
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
        let mut acc: Option<(f64, i64)> = None;
        for v in &inputs {
            let (x, i) = unstate(v)?;
            acc = Some(match acc {
                None => (x, i),
                Some((a, n)) if self.kind == Kind::Count => (a + x, n + i),
                Some(cur) if i < 0 => cur,
                Some((b, j)) if j < 0 || wins(self.kind, (x, i), (b, j)) => (x, i),
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
        let first = inputs.first().ok_or(CoreError::Arity {
            op: Self::NAME.into(),
            expected: 1,
            found: 0,
        })?;
        let (a, b) = unstate(first)?;
        Ok(Value::Scalar(match self.output {
            Output::Index if b < 0 => {
                return Err(CoreError::user(
                    "argmin/argmax of an empty array: there is no index to return",
                ));
            }
            Output::Index => Scalar::I64(b),
            Output::Count => Scalar::I64(a as i64),
            Output::Any => Scalar::Bool(a > 0.0),
            Output::All => Scalar::Bool(a as i64 == b),
        }))
    }
}

/// A lazy full reduction to a scalar of type `T` (`i64` for argmin, argmax and
/// count_nonzero; `bool` for any and all).
#[derive(Clone, Debug)]
pub struct ReducedScalar<T> {
    key: Key,
    tasks: std::sync::Arc<Vec<Task>>,
    input: Array,
    _type: std::marker::PhantomData<fn() -> T>,
}

/// The scalars a [`ReducedScalar`] can give.
pub trait FromScalar: Sized {
    /// The value inside, if the scalar has this type.
    fn from_scalar(s: Scalar) -> Option<Self>;
}

impl FromScalar for i64 {
    fn from_scalar(s: Scalar) -> Option<Self> {
        if let Scalar::I64(x) = s { Some(x) } else { None }
    }
}

impl FromScalar for bool {
    fn from_scalar(s: Scalar) -> Option<Self> {
        if let Scalar::Bool(x) = s { Some(x) } else { None }
    }
}

impl<T: FromScalar> Collection for ReducedScalar<T> {
    type Output = T;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        if graph.contains(&self.key) {
            return;
        }
        for t in self.tasks.iter() {
            graph.insert(t.clone());
        }
        self.input.add_tasks(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<T> {
        let found = values.first().map(Value::kind).unwrap_or_default();
        values.first().and_then(Value::as_scalar).and_then(T::from_scalar).ok_or_else(|| {
            CoreError::TypeMismatch { expected: std::any::type_name::<T>().into(), found }
        })
    }
}

impl Array {
    fn reduce_scalar<T>(&self, kind: Kind, output: Output) -> ReducedScalar<T> {
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
        let key = Key::named(name);
        tasks.push(Task::new(key.clone(), Op::data(FinishArg { output }), level));
        ReducedScalar {
            key,
            tasks: std::sync::Arc::new(tasks),
            input: self.clone(),
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
}
