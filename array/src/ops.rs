//! The array ops: plain data, found again by name in an `OpRegistry`.

use brisk_core::{ArrayChunk, Error, OpKind, OpRegistry, Result, Value};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::kernels::{seed_key, uniform};

/// Registers every op of this crate, for workers that rebuild shipped graphs.
pub fn register_ops(registry: &mut OpRegistry) {
    registry
        .register::<RandomChunk>()
        .register::<FullChunk>()
        .register::<ScalarArith>()
        .register::<Unary>()
        .register::<ArrayArith>()
        .register::<NormalChunk>()
        .register::<RangeChunk>()
        .register::<crate::npy::ReadNpyChunk>()
        .register::<crate::npy::WriteNpyChunk>()
        .register::<crate::structure::SliceChunk>()
        .register::<crate::structure::TransposeChunk>()
        .register::<crate::structure::Assemble>()
        .register::<crate::structure::Alias>()
        .register::<crate::structure::ExpandDims>()
        .register::<crate::structure::MatmulBlock>()
        .register::<crate::structure::SumChunks>()
        .register::<crate::scalar_reduce::ChunkArg>()
        .register::<crate::scalar_reduce::CombineArg>()
        .register::<crate::scalar_reduce::FinishArg>()
        .register::<crate::reduce::ChunkPartial>()
        .register::<crate::reduce::CombinePartial>()
        .register::<crate::reduce::FinishPartial>();
}

/// The one f64 chunk an op takes, moved out when the scheduler handed over the last
/// reference (so in-place kernels copy nothing), cloned otherwise.
pub(crate) fn f64_input(op: &str, inputs: Vec<Value>) -> Result<ArrayD<f64>> {
    let found = inputs.len();
    let Some(Value::Array(chunk)) = inputs.into_iter().next().filter(|_| found == 1) else {
        return Err(Error::Arity { op: op.into(), expected: 1, found });
    };
    match std::sync::Arc::try_unwrap(chunk).unwrap_or_else(|shared| (*shared).clone()) {
        ArrayChunk::F64(a) => Ok(a),
        other => Err(Error::TypeMismatch {
            expected: "f64 chunk".into(),
            found: format!("{} chunk", other.dtype()),
        }),
    }
}

/// A chunk of uniform [0, 1) numbers drawn by global element index.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RandomChunk {
    pub(crate) seed: u64,
    pub(crate) global_shape: Vec<usize>,
    pub(crate) start: Vec<usize>,
    pub(crate) shape: Vec<usize>,
}

impl RandomChunk {
    /// The chunk with `value(global element index)` at every element.
    fn generate(&self, value: impl Fn(u64) -> f64) -> Result<ArrayD<f64>> {
        let (starts, row) = crate::chunks::row_starts(&self.global_shape, &self.start, &self.shape);
        let mut data = Vec::with_capacity(starts.len() * row);
        for base in starts {
            data.extend((0..row as u64).map(|j| value(base + j)));
        }
        ArrayD::from_shape_vec(IxDyn(&self.shape), data).map_err(|e| Error::Internal(e.to_string()))
    }
}

impl OpKind for RandomChunk {
    const NAME: &'static str = "array.random";

    fn run(&self, _inputs: Vec<Value>) -> Result<Value> {
        let key = seed_key(self.seed);
        Ok(Value::from(ArrayChunk::F64(self.generate(|i| uniform(key, i))?)))
    }
}

/// A chunk filled with one value.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FullChunk {
    pub(crate) value: f64,
    pub(crate) shape: Vec<usize>,
}

impl OpKind for FullChunk {
    const NAME: &'static str = "array.full";

    fn run(&self, _inputs: Vec<Value>) -> Result<Value> {
        Ok(Value::from(ArrayChunk::F64(ArrayD::from_elem(IxDyn(&self.shape), self.value))))
    }
}

/// Element-wise arithmetic with a scalar.
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

impl BinOp {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }
}

/// `chunk op scalar`, or `scalar op chunk` when `scalar_first`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ScalarArith {
    pub(crate) op: BinOp,
    pub(crate) scalar: f64,
    pub(crate) scalar_first: bool,
}

impl OpKind for ScalarArith {
    const NAME: &'static str = "array.scalar-arith";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let mut a = f64_input(Self::NAME, inputs)?;
        let (op, s) = (self.op, self.scalar);
        if self.scalar_first {
            a.mapv_inplace(|x| op.apply(s, x));
        } else {
            a.mapv_inplace(|x| op.apply(x, s));
        }
        Ok(Value::from(ArrayChunk::F64(a)))
    }
}

/// Element-wise math functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    /// Absolute value.
    Abs,
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
    /// Negation.
    Neg,
}

/// One math function on every element, or `x.powf(exponent)` when `power` is set.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Unary {
    pub(crate) op: Option<UnaryOp>,
    pub(crate) power: Option<f64>,
}

impl OpKind for Unary {
    const NAME: &'static str = "array.unary";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let mut a = f64_input(Self::NAME, inputs)?;
        match (self.op, self.power) {
            (_, Some(p)) => a.mapv_inplace(|x| x.powf(p)),
            (Some(op), None) => a.mapv_inplace(match op {
                UnaryOp::Abs => f64::abs,
                UnaryOp::Sqrt => f64::sqrt,
                UnaryOp::Exp => f64::exp,
                UnaryOp::Log => f64::ln,
                UnaryOp::Sin => f64::sin,
                UnaryOp::Cos => f64::cos,
                UnaryOp::Neg => |x: f64| -x,
            }),
            (None, None) => {}
        }
        Ok(Value::from(ArrayChunk::F64(a)))
    }
}

/// Element-wise arithmetic between two chunks of the same shape.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ArrayArith {
    pub(crate) op: BinOp,
}

impl OpKind for ArrayArith {
    const NAME: &'static str = "array.arith";

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        let found = inputs.len();
        let mut it = inputs.into_iter();
        let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::Arity { op: Self::NAME.into(), expected: 2, found });
        };
        let mut a = f64_input(Self::NAME, vec![a])?;
        let b = f64_input(Self::NAME, vec![b])?;
        let op = self.op;
        if a.shape() == b.shape() {
            ndarray::Zip::from(&mut a).and(&b).for_each(|x, &y| *x = op.apply(*x, y));
            return Ok(Value::from(ArrayChunk::F64(a)));
        }
        // NumPy broadcasting between the two chunks (the graph lined them up).
        let ndim = a.ndim().max(b.ndim());
        let dim = |x: &ArrayD<f64>, k: usize| {
            let pad = ndim - x.ndim();
            if k < pad { 1 } else { x.shape()[k - pad] }
        };
        let shape: Vec<usize> = (0..ndim).map(|k| dim(&a, k).max(dim(&b, k))).collect();
        let mismatch = || {
            Error::Internal(format!(
                "chunks of shapes {:?} and {:?} met in {}",
                a.shape(),
                b.shape(),
                Self::NAME
            ))
        };
        let av = a.broadcast(IxDyn(&shape)).ok_or_else(mismatch)?;
        let bv = b.broadcast(IxDyn(&shape)).ok_or_else(mismatch)?;
        let out = ndarray::Zip::from(&av).and(&bv).map_collect(|&x, &y| op.apply(x, y));
        Ok(Value::from(ArrayChunk::F64(out)))
    }
}

/// A chunk of standard normal numbers: Box-Muller on the uniform pair drawn at
/// stream positions (2i, 2i+1) for global element i, so every chunking agrees.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NormalChunk {
    pub(crate) random: RandomChunk,
    pub(crate) mean: f64,
    pub(crate) std: f64,
}

impl OpKind for NormalChunk {
    const NAME: &'static str = "array.normal";

    fn run(&self, _inputs: Vec<Value>) -> Result<Value> {
        let key = seed_key(self.random.seed);
        let (mean, std) = (self.mean, self.std);
        let a = self.random.generate(|i| {
            // 1 - u lies in (0, 1], so the logarithm is finite.
            let u1 = 1.0 - uniform(key, 2 * i);
            let u2 = uniform(key, 2 * i + 1);
            mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })?;
        Ok(Value::from(ArrayChunk::F64(a)))
    }
}

/// A chunk of `start + step * i` for global element i of a 1-d array.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RangeChunk {
    pub(crate) start: f64,
    pub(crate) step: f64,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl OpKind for RangeChunk {
    const NAME: &'static str = "array.range";

    fn run(&self, _inputs: Vec<Value>) -> Result<Value> {
        let a = ArrayD::from_shape_fn(IxDyn(&[self.len]), |ix| {
            self.start + self.step * (self.offset + ix[0]) as f64
        });
        Ok(Value::from(ArrayChunk::F64(a)))
    }
}
