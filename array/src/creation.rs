//! Creating arrays: random numbers from a counter-based generator keyed by (seed,
//! global element index), constants, ranges, and arrays already in memory. Each
//! chunk is a root task whose op is plain data.

use brisk_core::{ArrayChunk, Element, Error as CoreError, Op, OpKind, Scalar, Value};
use brisk_graph::token;
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::array::{Array, block_slice, from_blocks};
use crate::chunks::{Block, Chunks};
use crate::element::value;
use crate::kernels::{below, bits, seed_key, uniform};
use crate::{Error, Result};

/// Creates `random(shape, chunks, seed)`: uniform numbers in [0, 1) drawn from a
/// counter-based generator keyed by (seed, global element index), so the array is
/// the same whatever its chunking, scheduler or thread count.
pub fn random(shape: &[usize], chunks: &[usize], seed: u64) -> Result<Array> {
    let layout = Chunks::regular(shape, chunks)?;
    let name = token("random", &(shape, &layout, seed));
    from_blocks(name, shape, layout, |b| Op::data(random_chunk(seed, shape, b)))
}

fn random_chunk(seed: u64, shape: &[usize], b: &Block) -> RandomChunk {
    RandomChunk {
        seed,
        global_shape: shape.to_vec(),
        start: b.start.clone(),
        shape: b.shape.clone(),
    }
}

/// Integers uniform in `[low, high)`, drawn like [`random`] from (seed, global
/// element index): the same for every chunking. `low >= high` is an error.
///
/// ```
/// use brisk_array::Axes;
/// use brisk_scheduler::Compute;
/// let dice = brisk_array::integers(&[10_000], &[1_000], 7, 1, 7)?;
/// assert_eq!(dice.min(Axes::all()).compute()?, 1);
/// assert_eq!(dice.max(Axes::all()).compute()?, 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn integers(
    shape: &[usize],
    chunks: &[usize],
    seed: u64,
    low: i64,
    high: i64,
) -> Result<Array<i64>> {
    if low >= high {
        return Err(Error::Invalid(format!(
            "integers needs low < high, got low={low} and high={high}"
        )));
    }
    let layout = Chunks::regular(shape, chunks)?;
    let name = token("integers", &(shape, &layout, seed, low, high));
    let span = high.wrapping_sub(low) as u64;
    from_blocks(name, shape, layout, |b| {
        Op::data(IntegersChunk { random: random_chunk(seed, shape, b), low, span })
    })
}

/// Normal numbers with the given mean and standard deviation, drawn like
/// [`random`] from (seed, global element index): the same for every chunking.
pub fn normal(shape: &[usize], chunks: &[usize], seed: u64, mean: f64, std: f64) -> Result<Array> {
    let layout = Chunks::regular(shape, chunks)?;
    let name = token("normal", &(shape, &layout, seed, mean.to_bits(), std.to_bits()));
    from_blocks(name, shape, layout, |b| {
        Op::data(NormalChunk { random: random_chunk(seed, shape, b), mean, std })
    })
}

/// `start, start + step, ...` below `stop` (above it for a negative step), in
/// chunks of `chunk`, like numpy's `arange`.
pub fn arange(start: f64, stop: f64, step: f64, chunk: usize) -> Result<Array> {
    if step == 0.0 || !step.is_finite() {
        return Err(Error::Invalid(format!("arange needs a finite, non-zero step, got {step}")));
    }
    let len = ((stop - start) / step).ceil().max(0.0) as usize;
    range(start, step, len, chunk, "arange")
}

/// `num` evenly spaced numbers from `start` to `stop` inclusive, like numpy's
/// `linspace`.
pub fn linspace(start: f64, stop: f64, num: usize, chunk: usize) -> Result<Array> {
    let step = if num > 1 { (stop - start) / (num - 1) as f64 } else { 0.0 };
    range(start, step, num, chunk, "linspace")
}

fn range(start: f64, step: f64, len: usize, chunk: usize, prefix: &str) -> Result<Array> {
    let layout = Chunks::regular(&[len], &[chunk])?;
    let name = token(prefix, &(start.to_bits(), step.to_bits(), len, &layout));
    from_blocks(name, &[len], layout, |b| {
        Op::data(RangeChunk { start, step, offset: b.start[0], len: b.shape[0] })
    })
}

/// An array of one value, of that value's type.
pub fn full<T: Element>(shape: &[usize], chunks: &[usize], value: T) -> Result<Array<T>> {
    let layout = Chunks::regular(shape, chunks)?;
    let name = token("full", &(shape, &layout, T::DTYPE, value.bits()));
    let value = value.to_scalar();
    from_blocks(name, shape, layout, |b| Op::data(FullChunk { value, shape: b.shape.clone() }))
}

/// An array of `f64` zeros (use [`full`] for other types).
pub fn zeros(shape: &[usize], chunks: &[usize]) -> Result<Array> {
    full(shape, chunks, 0.0)
}

/// An array of `f64` ones (use [`full`] for other types).
pub fn ones(shape: &[usize], chunks: &[usize]) -> Result<Array> {
    full(shape, chunks, 1.0)
}

/// An array cut from an ndarray already in memory.
///
/// ```
/// use brisk_array::{Chunks, from_ndarray};
/// use brisk_scheduler::Compute;
/// let a = ndarray::ArrayD::from_shape_fn(vec![5, 3], |ix| (ix[0] * 3 + ix[1]) as f64);
/// let x = from_ndarray(&a, Chunks::regular(&[5, 3], &[2, 2])?)?;
/// assert_eq!(x.compute()?, a);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_ndarray<T: Element>(data: &ArrayD<T>, chunks: Chunks) -> Result<Array<T>> {
    let shape = data.shape().to_vec();
    if chunks.sizes().len() != shape.len()
        || chunks.sizes().iter().zip(&shape).any(|(s, &n)| s.iter().sum::<usize>() != n)
    {
        return Err(Error::ShapeMismatch {
            left: shape,
            right: chunks.sizes().iter().map(|s| s.iter().sum()).collect(),
            reason: "(data and chunk layout) must agree".into(),
        });
    }
    let name = token("from-ndarray", &(&shape, &chunks, T::DTYPE, Bits(data)));
    from_blocks(name, &shape, chunks, |b| {
        let block = data.slice(block_slice(b).as_slice()).to_owned();
        Op::Const(Value::from(T::into_chunk(block)))
    })
}

/// Hashes an array's elements by their bits, without copying them.
struct Bits<'a, T>(&'a ArrayD<T>);

impl<T: Element> std::hash::Hash for Bits<'_, T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.iter().for_each(|x| x.bits().hash(state));
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

/// The bytes of a chunk of `shape` with elements of `size` bytes.
fn chunk_bytes(shape: &[usize], size: usize) -> u64 {
    shape.iter().product::<usize>() as u64 * size as u64
}

impl RandomChunk {
    /// The chunk with `value(global element index)` at every element.
    fn generate<T>(&self, value: impl Fn(u64) -> T) -> brisk_core::Result<ArrayD<T>> {
        let (starts, row) = crate::chunks::row_starts(&self.global_shape, &self.start, &self.shape);
        let mut data = Vec::with_capacity(starts.len() * row);
        for base in starts {
            data.extend((0..row as u64).map(|j| value(base + j)));
        }
        ArrayD::from_shape_vec(IxDyn(&self.shape), data)
            .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

impl OpKind for RandomChunk {
    const NAME: &'static str = "array.random";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let key = seed_key(self.seed);
        Ok(value(self.generate(|i| uniform(key, i))?))
    }

    fn projected_bytes(&self) -> Option<u64> {
        Some(chunk_bytes(&self.shape, 8))
    }
}

/// A chunk of integers uniform in `[low, low + span)`, drawn by global element index.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IntegersChunk {
    pub(crate) random: RandomChunk,
    pub(crate) low: i64,
    pub(crate) span: u64,
}

impl OpKind for IntegersChunk {
    const NAME: &'static str = "array.integers";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let key = seed_key(self.random.seed);
        Ok(value(self.random.generate(|i| below(bits(key, i), self.low, self.span))?))
    }

    fn projected_bytes(&self) -> Option<u64> {
        Some(chunk_bytes(&self.random.shape, 8))
    }
}

/// A chunk filled with one value.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FullChunk {
    pub(crate) value: Scalar,
    pub(crate) shape: Vec<usize>,
}

impl OpKind for FullChunk {
    const NAME: &'static str = "array.full";

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let shape = IxDyn(&self.shape);
        Ok(Value::from(match self.value {
            Scalar::F64(x) => ArrayChunk::F64(ArrayD::from_elem(shape, x)),
            Scalar::F32(x) => ArrayChunk::F32(ArrayD::from_elem(shape, x)),
            Scalar::I64(x) => ArrayChunk::I64(ArrayD::from_elem(shape, x)),
            Scalar::I32(x) => ArrayChunk::I32(ArrayD::from_elem(shape, x)),
            Scalar::Bool(x) => ArrayChunk::Bool(ArrayD::from_elem(shape, x)),
        }))
    }

    fn projected_bytes(&self) -> Option<u64> {
        let size = match self.value {
            Scalar::F64(_) | Scalar::I64(_) => 8,
            Scalar::F32(_) | Scalar::I32(_) => 4,
            _ => 1,
        };
        Some(chunk_bytes(&self.shape, size))
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

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let key = seed_key(self.random.seed);
        let (mean, std) = (self.mean, self.std);
        let a = self.random.generate(|i| {
            // 1 - u lies in (0, 1], so the logarithm is finite.
            let u1 = 1.0 - uniform(key, 2 * i);
            let u2 = uniform(key, 2 * i + 1);
            mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })?;
        Ok(value(a))
    }

    fn projected_bytes(&self) -> Option<u64> {
        Some(chunk_bytes(&self.random.shape, 8))
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

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let a = ArrayD::from_shape_fn(IxDyn(&[self.len]), |ix| {
            self.start + self.step * (self.offset + ix[0]) as f64
        });
        Ok(value(a))
    }

    fn projected_bytes(&self) -> Option<u64> {
        Some(chunk_bytes(&[self.len], 8))
    }
}
