//! Which element types support which operations, and the macros that run a generic
//! kernel on whatever dtype a chunk holds.

use brisk_core::{ArrayChunk, DType, Element, Error, Result, Value};
use ndarray::ArrayD;

use serde::{Deserialize, Serialize};

/// Element-wise arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f64 {}
    impl Sealed for f32 {}
    impl Sealed for i64 {}
    impl Sealed for i32 {}
}

/// Number types (`f64`, `f32`, `i64`, `i32`): arithmetic, `abs`, negation, matmul.
/// Integer arithmetic wraps on overflow, as numpy's does.
pub trait Numeric: Element + ndarray::LinalgScalar + sealed::Sealed {
    /// `a op b`; integer division by zero gives 0 (numpy warns and gives 0).
    fn apply(op: BinOp, a: Self, b: Self) -> Self;
    /// `|x|` (wrapping for the most negative integer, as numpy).
    fn abs(self) -> Self;
    /// `-x` (wrapping).
    fn neg(self) -> Self;
}

/// Floating-point types (`f64`, `f32`): division and the math functions.
pub trait Float: Numeric {
    /// Square root.
    fn sqrt(self) -> Self;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// `xᵖ`.
    fn powf(self, p: Self) -> Self;
}

macro_rules! integer {
    ($t:ty) => {
        impl Numeric for $t {
            fn apply(op: BinOp, a: Self, b: Self) -> Self {
                match op {
                    BinOp::Add => a.wrapping_add(b),
                    BinOp::Sub => a.wrapping_sub(b),
                    BinOp::Mul => a.wrapping_mul(b),
                    BinOp::Div => a.checked_div(b).unwrap_or(0),
                }
            }
            fn abs(self) -> Self {
                self.wrapping_abs()
            }
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
        }
    };
}
integer!(i64);
integer!(i32);

macro_rules! float {
    ($t:ty) => {
        impl Numeric for $t {
            fn apply(op: BinOp, a: Self, b: Self) -> Self {
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                }
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn neg(self) -> Self {
                -self
            }
        }
        impl Float for $t {
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
        }
    };
}
float!(f64);
float!(f32);

/// Runs `$body` with `$a` bound to the typed array inside an `ArrayChunk` (by value
/// or by reference, as `$chunk` is), whatever its dtype.
macro_rules! any_dtype {
    ($chunk:expr, $a:ident => $body:expr) => {
        match $chunk {
            brisk_core::ArrayChunk::F64($a) => $body,
            brisk_core::ArrayChunk::F32($a) => $body,
            brisk_core::ArrayChunk::I64($a) => $body,
            brisk_core::ArrayChunk::I32($a) => $body,
            brisk_core::ArrayChunk::Bool($a) => $body,
        }
    };
}
pub(crate) use any_dtype;

/// Like [`any_dtype`] for number dtypes; a bool chunk runs `$other` instead.
macro_rules! numeric_dtype {
    ($chunk:expr, $a:ident => $body:expr, bool => $other:expr) => {
        match $chunk {
            brisk_core::ArrayChunk::F64($a) => $body,
            brisk_core::ArrayChunk::F32($a) => $body,
            brisk_core::ArrayChunk::I64($a) => $body,
            brisk_core::ArrayChunk::I32($a) => $body,
            brisk_core::ArrayChunk::Bool(_) => $other,
        }
    };
}
pub(crate) use numeric_dtype;

/// Like [`any_dtype`] for float dtypes; other chunks run `$other`.
macro_rules! float_dtype {
    ($chunk:expr, $a:ident => $body:expr, other $b:ident => $other:expr) => {
        match $chunk {
            brisk_core::ArrayChunk::F64($a) => $body,
            brisk_core::ArrayChunk::F32($a) => $body,
            $b => $other,
        }
    };
}
pub(crate) use float_dtype;

/// The error of a kernel handed a chunk of a dtype it does not support.
pub(crate) fn unsupported(op: &str, chunk: &ArrayChunk) -> Error {
    Error::TypeMismatch {
        expected: format!("a chunk {op} supports"),
        found: format!("{} chunk", chunk.dtype()),
    }
}

/// Every element cast to `to`, as numpy's `astype`.
pub(crate) fn cast_to<T: Element>(a: ArrayD<T>, to: DType) -> ArrayChunk {
    if T::DTYPE == to {
        return T::into_chunk(a);
    }
    match to {
        DType::F64 => ArrayChunk::F64(a.mapv(T::cast)),
        DType::F32 => ArrayChunk::F32(a.mapv(T::cast)),
        DType::I64 => ArrayChunk::I64(a.mapv(T::cast)),
        DType::I32 => ArrayChunk::I32(a.mapv(T::cast)),
        DType::Bool => ArrayChunk::Bool(a.mapv(T::cast)),
    }
}

/// The chunk inside a value: moved out when the scheduler handed over the last
/// reference (so in-place kernels copy nothing), cloned otherwise.
pub(crate) fn take_chunk(op: &str, value: Value) -> Result<ArrayChunk> {
    match value {
        Value::Array(c) => Ok(std::sync::Arc::try_unwrap(c).unwrap_or_else(|s| (*s).clone())),
        other => {
            Err(Error::TypeMismatch { expected: format!("chunk for {op}"), found: other.kind() })
        }
    }
}

/// The first of an op's inputs and the rest, or an arity error naming the op.
pub(crate) fn split_inputs<'a>(op: &str, inputs: &'a [Value]) -> Result<(&'a Value, &'a [Value])> {
    inputs.split_first().ok_or(Error::Arity { op: op.into(), expected: 1, found: 0 })
}

/// The one input chunk of a unary op.
pub(crate) fn one_chunk(op: &str, inputs: Vec<Value>) -> Result<ArrayChunk> {
    let found = inputs.len();
    match <[Value; 1]>::try_from(inputs) {
        Ok([v]) => take_chunk(op, v),
        Err(_) => Err(Error::Arity { op: op.into(), expected: 1, found }),
    }
}

/// A borrowed chunk inside a value.
pub(crate) fn chunk_ref<'a>(op: &str, value: &'a Value) -> Result<&'a ArrayChunk> {
    match value {
        Value::Array(c) => Ok(c),
        other => {
            Err(Error::TypeMismatch { expected: format!("chunk for {op}"), found: other.kind() })
        }
    }
}

/// A typed ndarray as a chunk value.
pub(crate) fn value<T: Element>(a: ArrayD<T>) -> Value {
    Value::from(T::into_chunk(a))
}
