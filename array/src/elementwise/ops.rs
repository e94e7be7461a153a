//! The element-wise ops: plain data, found again by name in an `OpRegistry`. Each
//! runs on whatever dtype its input chunks hold.

use brisk_core::{ArrayChunk, DType, Element, Error, OpKind, Result, Scalar, Value};
use ndarray::{ArrayD, IxDyn, Zip};
use serde::{Deserialize, Serialize};

use crate::element::{
    BinOp, Float, Numeric, any_dtype, cast_to, chunk_ref, float_dtype, numeric_dtype, one_chunk,
    take_chunk, unsupported, value,
};

/// Element-wise comparisons; every comparison with NaN is false but `Ne`, as in numpy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cmp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    fn apply<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// The scalar an op carries, as the chunk's element type.
fn scalar_as<T: Element>(op: &str, s: Scalar) -> Result<T> {
    T::from_scalar(s).ok_or_else(|| Error::TypeMismatch {
        expected: format!("{} scalar for {op}", T::DTYPE),
        found: format!("{} scalar", s.dtype()),
    })
}

/// `chunk op scalar`, or `scalar op chunk` when `scalar_first`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ScalarArith {
    pub(crate) op: BinOp,
    pub(crate) scalar: Scalar,
    pub(crate) scalar_first: bool,
}

impl ScalarArith {
    fn apply<T: Numeric>(&self, mut a: ArrayD<T>) -> Result<Value> {
        let (op, s) = (self.op, scalar_as::<T>(Self::NAME, self.scalar)?);
        if self.scalar_first {
            a.mapv_inplace(|x| T::apply(op, s, x));
        } else {
            a.mapv_inplace(|x| T::apply(op, x, s));
        }
        Ok(value(a))
    }
}

impl OpKind for ScalarArith {
    const NAME: &'static str = "array.scalar-arith";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        numeric_dtype!(chunk, a => self.apply(a), bool => Err(unsupported(Self::NAME, &chunk)))
    }
}

/// Element-wise math functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    /// Absolute value.
    Abs,
    /// Negation.
    Neg,
    /// Square root (NaN below zero, as in numpy).
    Sqrt,
    /// e^x.
    Exp,
    /// Natural logarithm.
    Log,
    /// Sine.
    Sin,
    /// Cosine.
    Cos,
}

/// One math function on every element, or `x.powf(exponent)` when `power` is set.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Unary {
    pub(crate) op: Option<UnaryOp>,
    pub(crate) power: Option<f64>,
}

impl Unary {
    fn numeric<T: Numeric>(op: UnaryOp, mut a: ArrayD<T>) -> Option<Value> {
        match op {
            UnaryOp::Abs => a.mapv_inplace(T::abs),
            UnaryOp::Neg => a.mapv_inplace(T::neg),
            _ => return None,
        }
        Some(value(a))
    }

    fn float<T: Float>(&self, mut a: ArrayD<T>) -> Value {
        match (self.op, self.power) {
            (_, Some(p)) => {
                let p = T::from_f64(p);
                a.mapv_inplace(|x| x.powf(p));
            }
            (Some(op), None) => a.mapv_inplace(match op {
                UnaryOp::Abs => Numeric::abs,
                UnaryOp::Neg => Numeric::neg,
                UnaryOp::Sqrt => Float::sqrt,
                UnaryOp::Exp => Float::exp,
                UnaryOp::Log => Float::ln,
                UnaryOp::Sin => Float::sin,
                UnaryOp::Cos => Float::cos,
            }),
            (None, None) => {}
        }
        value(a)
    }
}

impl OpKind for Unary {
    const NAME: &'static str = "array.unary";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        let bad = |c: &ArrayChunk| unsupported(Self::NAME, c);
        float_dtype!(chunk, a => Ok(self.float(a)), other c => {
            let op = self.op.filter(|_| self.power.is_none()).ok_or_else(|| bad(&c))?;
            let err = bad(&c);
            let done = match c {
                ArrayChunk::I64(a) => Self::numeric(op, a),
                ArrayChunk::I32(a) => Self::numeric(op, a),
                _ => None,
            };
            done.ok_or(err)
        })
    }
}

/// The NumPy broadcast of several shapes (the graph already checked they agree).
fn broadcast_shape(shapes: &[&[usize]]) -> Vec<usize> {
    let ndim = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..ndim)
        .map(|k| {
            shapes
                .iter()
                .map(|s| if k < ndim - s.len() { 1 } else { s[k - (ndim - s.len())] })
                .max()
                .unwrap_or(1)
        })
        .collect()
}

fn mismatch(op: &str, shapes: &[&[usize]]) -> Error {
    Error::Internal(format!("chunks of shapes {shapes:?} met in {op}"))
}

/// `f(a, b)` element by element, broadcasting the two chunks against each other.
fn zip2<A: Clone, B: Clone, C>(
    op: &str,
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> C,
) -> Result<ArrayD<C>> {
    let shape = broadcast_shape(&[a.shape(), b.shape()]);
    let bad = || mismatch(op, &[a.shape(), b.shape()]);
    let av = a.broadcast(IxDyn(&shape)).ok_or_else(bad)?;
    let bv = b.broadcast(IxDyn(&shape)).ok_or_else(bad)?;
    Ok(Zip::from(&av).and(&bv).map_collect(|x, y| f(x.clone(), y.clone())))
}

/// Two input chunks of one dtype, or an error naming both dtypes.
fn two_chunks(op: &str, inputs: Vec<Value>) -> Result<(ArrayChunk, ArrayChunk)> {
    let found = inputs.len();
    let Ok([a, b]) = <[Value; 2]>::try_from(inputs) else {
        return Err(Error::Arity { op: op.into(), expected: 2, found });
    };
    let (a, b) = (take_chunk(op, a)?, take_chunk(op, b)?);
    if a.dtype() != b.dtype() {
        return Err(Error::TypeMismatch {
            expected: format!("two chunks of one dtype for {op}"),
            found: format!("{} and {}", a.dtype(), b.dtype()),
        });
    }
    Ok((a, b))
}

/// Element-wise arithmetic between two chunks (broadcast against each other).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ArrayArith {
    pub(crate) op: BinOp,
}

impl ArrayArith {
    fn apply<T: Numeric>(&self, mut a: ArrayD<T>, b: &ArrayChunk) -> Result<Value> {
        let b = T::chunk_ref(b).ok_or_else(|| unsupported(Self::NAME, b))?;
        let op = self.op;
        if a.shape() == b.shape() {
            Zip::from(&mut a).and(b).for_each(|x, &y| *x = T::apply(op, *x, y));
            return Ok(value(a));
        }
        Ok(value(zip2(Self::NAME, &a, b, |x, y| T::apply(op, x, y))?))
    }
}

impl OpKind for ArrayArith {
    const NAME: &'static str = "array.arith";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let (a, b) = two_chunks(Self::NAME, inputs)?;
        numeric_dtype!(a, a => self.apply(a, &b), bool => Err(unsupported(Self::NAME, &b)))
    }
}

/// Element-wise comparison of two chunks (broadcast), giving a bool chunk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Compare {
    pub(crate) cmp: Cmp,
}

impl OpKind for Compare {
    const NAME: &'static str = "array.compare";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let (a, b) = two_chunks(Self::NAME, inputs)?;
        let cmp = self.cmp;
        any_dtype!(&a, a => {
            let b = Element::chunk_ref(&b).ok_or_else(|| unsupported(Self::NAME, &b))?;
            Ok(value(zip2(Self::NAME, a, b, |x, y| cmp.apply(x, y))?))
        })
    }
}

/// Element-wise comparison with a scalar (`chunk cmp scalar`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CompareScalar {
    pub(crate) cmp: Cmp,
    pub(crate) scalar: Scalar,
}

impl OpKind for CompareScalar {
    const NAME: &'static str = "array.compare-scalar";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        let cmp = self.cmp;
        any_dtype!(&chunk, a => {
            let s = scalar_as(Self::NAME, self.scalar)?;
            Ok(value(a.mapv(|x| cmp.apply(x, s))))
        })
    }
}

/// numpy's `where(cond, a, b)`: three chunks broadcast against each other.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Where;

impl Where {
    fn pick<T: Element>(cond: &ArrayD<bool>, a: &ArrayD<T>, b: &ArrayChunk) -> Result<Value> {
        let b = T::chunk_ref(b).ok_or_else(|| unsupported(Self::NAME, b))?;
        let shapes = [cond.shape(), a.shape(), b.shape()];
        let shape = broadcast_shape(&shapes);
        let bad = || mismatch(Self::NAME, &shapes);
        let c = cond.broadcast(IxDyn(&shape)).ok_or_else(bad)?;
        let av = a.broadcast(IxDyn(&shape)).ok_or_else(bad)?;
        let bv = b.broadcast(IxDyn(&shape)).ok_or_else(bad)?;
        Ok(value(Zip::from(&c).and(&av).and(&bv).map_collect(|&c, &x, &y| if c { x } else { y })))
    }
}

impl OpKind for Where {
    const NAME: &'static str = "array.where";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let [cond, a, b] = &inputs[..] else {
            return Err(Error::Arity { op: Self::NAME.into(), expected: 3, found: inputs.len() });
        };
        let cond = chunk_ref(Self::NAME, cond)?;
        let ArrayChunk::Bool(cond) = cond else { return Err(unsupported(Self::NAME, cond)) };
        let (a, b) = (chunk_ref(Self::NAME, a)?, chunk_ref(Self::NAME, b)?);
        any_dtype!(a, a => Self::pick(cond, a, b))
    }
}

/// Every element cast to another dtype, as numpy's `astype`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AsType {
    pub(crate) to: DType,
}

impl OpKind for AsType {
    const NAME: &'static str = "array.astype";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        Ok(Value::from(any_dtype!(chunk, a => cast_to(a, self.to))))
    }
}
