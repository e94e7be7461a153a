//! The lazy chunked array.

use std::sync::Arc;

use brisk_core::{ArrayChunk, DType, Error as CoreError, Key, Op, Value};
use brisk_graph::{Collection, GraphBuilder, Task};
use ndarray::{ArrayD, IxDyn, SliceInfoElem};

use crate::chunks::Chunks;
use crate::ops::{
    ArrayArith, BinOp, FullChunk, NormalChunk, RandomChunk, RangeChunk, ScalarArith, Unary, UnaryOp,
};
use crate::reduce::{Agg, ChunkPartial, CombinePartial, FinishPartial};
use crate::{Error, Result};

/// Reductions combine this many partial results per tree node unless told otherwise
/// (Dask's `split_every` default for arrays).
pub const DEFAULT_SPLIT_EVERY: usize = 8;

/// A lazy n-dimensional array cut into chunks; each chunk is one task of the graph.
///
/// ```
/// use brisk_array::random;
/// use brisk_scheduler::Compute;
/// let x = random(&[1_000, 1_000], &[250, 500], 42)?;
/// assert_eq!(x.chunks().grid(), vec![4, 2]);
/// let m: f64 = x.mean().compute()?;
/// assert!((m - 0.5).abs() < 0.01);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Array {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    shape: Vec<usize>,
    chunks: Chunks,
    dtype: DType,
    /// One task per chunk, in row-major chunk order.
    tasks: Vec<Task>,
    inputs: Vec<Array>,
}

impl Array {
    pub(crate) fn new(
        name: String,
        shape: Vec<usize>,
        chunks: Chunks,
        tasks: Vec<Task>,
        inputs: Vec<Array>,
    ) -> Self {
        Self { inner: Arc::new(Inner { name, shape, chunks, dtype: DType::F64, tasks, inputs }) }
    }

    /// Intermediate tasks (a reduction tree, matmul's block products) that belong to
    /// no array of their own: a layer with no shape, only there to carry its tasks
    /// and inputs into the graph.
    pub(crate) fn hidden_layer(name: String, tasks: Vec<Task>, inputs: Vec<Array>) -> Array {
        let layout = Chunks::explicit(&[], Vec::new()).expect("the 0-d layout is valid");
        Array::new(name, Vec::new(), layout, tasks, inputs)
    }

    /// The keys of its chunks, in row-major chunk order.
    pub(crate) fn chunk_keys(&self) -> impl Iterator<Item = &Key> {
        self.inner.tasks.iter().map(|t| &t.key)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.inner.shape
    }

    /// The chunk layout.
    pub fn chunks(&self) -> &Chunks {
        &self.inner.chunks
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.inner.dtype
    }

    /// The name shared by the keys of its chunks.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A per-chunk op applied to every chunk of `self`.
    pub(crate) fn map_chunks(&self, prefix: &str, params: &impl std::hash::Hash, op: Op) -> Array {
        let name = token(prefix, &(self.name(), params));
        let base = Key::named(name.as_str());
        let tasks = self
            .inner
            .tasks
            .iter()
            .map(|t| Task::new(base.with_index(t.key.index()), op.clone(), [t.key.clone()]))
            .collect();
        Array::new(name, self.shape().to_vec(), self.chunks().clone(), tasks, vec![self.clone()])
    }

    fn scalar_arith(&self, op: BinOp, scalar: f64, scalar_first: bool) -> Array {
        self.map_chunks(
            "scalar-arith",
            &(op, scalar.to_bits(), scalar_first),
            Op::data(ScalarArith { op, scalar, scalar_first }),
        )
    }

    /// `self + x` element-wise.
    pub fn add_scalar(&self, x: f64) -> Array {
        self.scalar_arith(BinOp::Add, x, false)
    }

    /// `self - x` element-wise.
    pub fn sub_scalar(&self, x: f64) -> Array {
        self.scalar_arith(BinOp::Sub, x, false)
    }

    /// `self * x` element-wise.
    pub fn mul_scalar(&self, x: f64) -> Array {
        self.scalar_arith(BinOp::Mul, x, false)
    }

    /// `self / x` element-wise.
    pub fn div_scalar(&self, x: f64) -> Array {
        self.scalar_arith(BinOp::Div, x, false)
    }

    /// `x - self` element-wise.
    pub fn rsub_scalar(&self, x: f64) -> Array {
        self.scalar_arith(BinOp::Sub, x, true)
    }

    fn unary(&self, op: Option<UnaryOp>, power: Option<f64>) -> Array {
        self.map_chunks("unary", &(op, power.map(f64::to_bits)), Op::data(Unary { op, power }))
    }

    /// `|x|` element-wise.
    pub fn abs(&self) -> Array {
        self.unary(Some(UnaryOp::Abs), None)
    }

    /// `√x` element-wise (NaN below zero).
    pub fn sqrt(&self) -> Array {
        self.unary(Some(UnaryOp::Sqrt), None)
    }

    /// `eˣ` element-wise.
    pub fn exp(&self) -> Array {
        self.unary(Some(UnaryOp::Exp), None)
    }

    /// `ln x` element-wise.
    pub fn log(&self) -> Array {
        self.unary(Some(UnaryOp::Log), None)
    }

    /// `sin x` element-wise.
    pub fn sin(&self) -> Array {
        self.unary(Some(UnaryOp::Sin), None)
    }

    /// `cos x` element-wise.
    pub fn cos(&self) -> Array {
        self.unary(Some(UnaryOp::Cos), None)
    }

    /// `-x` element-wise.
    pub fn neg(&self) -> Array {
        self.unary(Some(UnaryOp::Neg), None)
    }

    /// `xᵖ` element-wise.
    pub fn powf(&self, p: f64) -> Array {
        self.unary(None, Some(p))
    }

    /// Element-wise arithmetic with another array of the same shape and chunks.
    /// Element-wise arithmetic with NumPy broadcasting: shapes are aligned on the
    /// right and an axis of size 1 stretches to the other's size. Where both arrays
    /// span an axis, both are rechunked to the common refinement of their chunks.
    fn arith(&self, op: BinOp, other: &Array) -> Result<Array> {
        let ndim = self.shape().len().max(other.shape().len());
        let padded = |x: &Array| -> Vec<usize> {
            std::iter::repeat_n(1, ndim - x.shape().len())
                .chain(x.shape().iter().copied())
                .collect()
        };
        let (sa, sb) = (padded(self), padded(other));
        let mut shape = Vec::with_capacity(ndim);
        for k in 0..ndim {
            if sa[k] != sb[k] && sa[k] != 1 && sb[k] != 1 {
                return Err(Error::ShapeMismatch {
                    left: self.shape().to_vec(),
                    right: other.shape().to_vec(),
                    reason: format!(
                        "cannot be broadcast together (axis {k}: {} against {})",
                        sa[k], sb[k]
                    ),
                });
            }
            shape.push(sa[k].max(sb[k]));
        }
        // The output's chunks per axis: the common refinement where both span it.
        let sizes_of = |x: &Array, k: usize| -> Option<Vec<usize>> {
            let pad = ndim - x.shape().len();
            (k >= pad && x.shape()[k - pad] == shape[k])
                .then(|| x.chunks().sizes()[k - pad].clone())
        };
        let out_sizes: Vec<Vec<usize>> = (0..ndim)
            .map(|k| match (sizes_of(self, k), sizes_of(other, k)) {
                (Some(a), Some(b)) => refine(&a, &b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => vec![1],
            })
            .collect();
        let layout = Chunks::explicit(&shape, out_sizes.clone())?;
        // Each operand takes the output's chunks on the axes it spans.
        let align = |x: &Array| -> Result<Array> {
            let pad = ndim - x.shape().len();
            let sizes = (0..x.shape().len())
                .map(|j| {
                    if x.shape()[j] == shape[j + pad] {
                        out_sizes[j + pad].clone()
                    } else {
                        vec![1]
                    }
                })
                .collect();
            x.rechunk_to(Chunks::explicit(x.shape(), sizes)?)
        };
        let (a, b) = (align(self)?, align(other)?);
        let (a_keys, b_keys): (Vec<&Key>, Vec<&Key>) =
            (a.chunk_keys().collect(), b.chunk_keys().collect());
        let key_at = |x: &Array, keys: &[&Key], out_index: &[u32]| -> Key {
            let pad = ndim - x.shape().len();
            let grid = x.chunks().grid();
            let at = (0..x.shape().len()).fold(0usize, |acc, j| {
                let i =
                    if x.shape()[j] == shape[j + pad] { out_index[j + pad] as usize } else { 0 };
                acc * grid[j] + i
            });
            keys[at].clone()
        };
        let name = token("arith", &(a.name(), b.name(), op));
        let base = Key::named(name.as_str());
        let tasks = layout
            .blocks()
            .iter()
            .map(|blk| {
                let deps = [key_at(&a, &a_keys, &blk.index), key_at(&b, &b_keys, &blk.index)];
                Task::new(base.with_index(blk.index.clone()), Op::data(ArrayArith { op }), deps)
            })
            .collect();
        Ok(Array::new(name, shape, layout, tasks, vec![a, b]))
    }

    /// `self + other` element-wise.
    pub fn add(&self, other: &Array) -> Result<Array> {
        self.arith(BinOp::Add, other)
    }

    /// `self - other` element-wise.
    pub fn sub(&self, other: &Array) -> Result<Array> {
        self.arith(BinOp::Sub, other)
    }

    /// `self * other` element-wise.
    pub fn mul(&self, other: &Array) -> Result<Array> {
        self.arith(BinOp::Mul, other)
    }

    /// `self / other` element-wise.
    pub fn div(&self, other: &Array) -> Result<Array> {
        self.arith(BinOp::Div, other)
    }

    /// The sum of all elements (pairwise within chunks, a fixed tree across them).
    pub fn sum(&self) -> Reduced {
        self.reduce_all(Agg::Sum)
    }

    /// The mean of all elements.
    pub fn mean(&self) -> Reduced {
        self.reduce_all(Agg::Mean)
    }

    /// The variance of all elements with `ddof` delta degrees of freedom.
    pub fn var(&self, ddof: u32) -> Reduced {
        self.reduce_all(Agg::Var { ddof })
    }

    /// The standard deviation of all elements with `ddof` delta degrees of freedom.
    pub fn std(&self, ddof: u32) -> Reduced {
        self.reduce_all(Agg::Std { ddof })
    }

    /// The smallest element (NaN if any element is NaN).
    pub fn min(&self) -> Reduced {
        self.reduce_all(Agg::Min)
    }

    /// The largest element (NaN if any element is NaN).
    pub fn max(&self) -> Reduced {
        self.reduce_all(Agg::Max)
    }

    /// The mean of all elements, combining `split_every` partial results per tree
    /// node (at least 2).
    pub fn mean_split_every(&self, split_every: usize) -> Result<Reduced> {
        Ok(Reduced { array: self.reduce(Agg::Mean, None, split_every)? })
    }

    fn reduce_all(&self, agg: Agg) -> Reduced {
        let array = self
            .reduce(agg, None, DEFAULT_SPLIT_EVERY)
            .expect("all axes and the default split_every are valid");
        Reduced { array }
    }

    /// Reduces over `axes` (all axes when `None`), combining `split_every` partial
    /// results per tree node. The result drops the reduced axes, like numpy's
    /// `x.sum(axis=...)`. An axis out of range, repeated, or a `split_every` below 2
    /// is an error.
    ///
    /// ```
    /// use brisk_array::{Agg, random};
    /// use brisk_scheduler::Compute;
    /// let x = random(&[6, 8], &[4, 3], 1)?;
    /// let col_means = x.reduce(Agg::Mean, Some(&[0]), 8)?;
    /// assert_eq!(col_means.shape(), &[8]);
    /// assert_eq!(col_means.compute()?.len(), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reduce(&self, agg: Agg, axes: Option<&[usize]>, split_every: usize) -> Result<Array> {
        let ndim = self.shape().len();
        let mut axes: Vec<usize> = axes.map_or_else(|| (0..ndim).collect(), <[usize]>::to_vec);
        axes.sort_unstable();
        if let Some(&bad) = axes.iter().find(|&&d| d >= ndim) {
            return Err(Error::Invalid(format!(
                "axis {bad} is out of range for an array of {ndim} dimensions"
            )));
        }
        if axes.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Invalid(format!("axes {axes:?} repeat an axis")));
        }
        if split_every < 2 {
            return Err(Error::Invalid(format!(
                "split_every must be at least 2, got {split_every}"
            )));
        }
        let partial = self.map_chunks(
            "reduce-chunk",
            &(agg, &axes),
            Op::data(ChunkPartial { agg, axes: axes.clone() }),
        );
        let kept: Vec<usize> = (0..ndim).filter(|d| !axes.contains(d)).collect();
        // Partials grouped by their position along the kept axes; within a group they
        // stay in row-major order, which fixes the combine order.
        let mut groups: std::collections::BTreeMap<Vec<u32>, Vec<Key>> = Default::default();
        for (block, task) in self.chunks().blocks().iter().zip(&partial.inner.tasks) {
            let out_index: Vec<u32> = kept.iter().map(|&d| block.index[d]).collect();
            groups.entry(out_index).or_default().push(task.key.clone());
        }
        let name = token("reduce", &(partial.name(), agg, split_every));
        let mut tasks = Vec::new();
        let mut finish_tasks = Vec::new();
        for (out_index, level) in groups {
            let combine = Op::data(CombinePartial { agg });
            let level = combine_tree(
                level,
                split_every,
                1,
                &format!("{name}-combine"),
                &out_index,
                &combine,
                &mut tasks,
            );
            let key = Key::new(name.as_str(), out_index);
            finish_tasks.push(Task::new(
                key,
                Op::data(FinishPartial { agg, axes: axes.clone() }),
                level,
            ));
        }
        // The output's chunks are the finish tasks, in row-major order; the combine
        // tasks, if any, form a layer of their own between it and the partials.
        let input = if tasks.is_empty() {
            partial
        } else {
            Array::hidden_layer(format!("{name}-tree"), tasks, vec![partial])
        };
        let shape: Vec<usize> = kept.iter().map(|&d| self.shape()[d]).collect();
        let layout = Chunks::explicit(
            &shape,
            kept.iter().map(|&d| self.chunks().sizes()[d].clone()).collect(),
        )?;
        Ok(Array::new(name, shape, layout, finish_tasks, vec![input]))
    }
}

/// Creates `random(shape, chunks, seed)`: uniform numbers in [0, 1) drawn from a
/// counter-based generator keyed by (seed, global element index), so the array is
/// the same whatever its chunking, scheduler or thread count.
pub fn random(shape: &[usize], chunks: &[usize], seed: u64) -> Result<Array> {
    let layout = Chunks::regular(shape, chunks)?;
    let name = token("random", &(shape, &layout, seed));
    from_blocks(name, shape, layout, |b| {
        Op::data(RandomChunk {
            seed,
            global_shape: shape.to_vec(),
            start: b.start.clone(),
            shape: b.shape.clone(),
        })
    })
}

/// Combines `level` in a fixed tree, `split_every` keys per node, until at most
/// `limit` keys are left; pushes the combine tasks (`{prefix}-{depth}` keys, indexed
/// by `index` and the node's position) and returns the last level. The tree depends
/// only on the keys' order, never on which finishes first.
pub(crate) fn combine_tree(
    mut level: Vec<Key>,
    split_every: usize,
    limit: usize,
    prefix: &str,
    index: &[u32],
    combine: &Op,
    tasks: &mut Vec<Task>,
) -> Vec<Key> {
    let mut depth = 0u32;
    while level.len() > limit {
        let base = Key::named(format!("{prefix}-{depth}"));
        level = level
            .chunks(split_every)
            .enumerate()
            .map(|(i, group)| {
                let key =
                    base.with_index(index.iter().copied().chain([i as u32]).collect::<Vec<_>>());
                tasks.push(Task::new(key.clone(), combine.clone(), group.to_vec()));
                key
            })
            .collect();
        depth += 1;
    }
    level
}

/// The chunk sizes whose boundaries are those of `a` and `b` together.
fn refine(a: &[usize], b: &[usize]) -> Vec<usize> {
    let ends = |s: &[usize]| -> Vec<usize> {
        s.iter()
            .scan(0, |at, &x| {
                *at += x;
                Some(*at)
            })
            .collect()
    };
    let mut bounds: Vec<usize> = ends(a).into_iter().chain(ends(b)).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut prev = 0;
    let sizes: Vec<usize> = bounds
        .into_iter()
        .filter_map(|e| {
            let s = e - prev;
            prev = e;
            (s > 0).then_some(s)
        })
        .collect();
    if sizes.is_empty() { vec![0] } else { sizes }
}

/// Normal numbers with the given mean and standard deviation, drawn like
/// [`random`] from (seed, global element index): the same for every chunking.
pub fn normal(shape: &[usize], chunks: &[usize], seed: u64, mean: f64, std: f64) -> Result<Array> {
    let layout = Chunks::regular(shape, chunks)?;
    let name = token("normal", &(shape, &layout, seed, mean.to_bits(), std.to_bits()));
    from_blocks(name, shape, layout, |b| {
        let random = RandomChunk {
            seed,
            global_shape: shape.to_vec(),
            start: b.start.clone(),
            shape: b.shape.clone(),
        };
        Op::data(NormalChunk { random, mean, std })
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

/// An array of one value.
pub fn full(shape: &[usize], chunks: &[usize], value: f64) -> Result<Array> {
    let layout = Chunks::regular(shape, chunks)?;
    let name = token("full", &(shape, &layout, value.to_bits()));
    from_blocks(name, shape, layout, |b| Op::data(FullChunk { value, shape: b.shape.clone() }))
}

/// An array of zeros.
pub fn zeros(shape: &[usize], chunks: &[usize]) -> Result<Array> {
    full(shape, chunks, 0.0)
}

/// An array of ones.
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
pub fn from_ndarray(data: &ArrayD<f64>, chunks: Chunks) -> Result<Array> {
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
    let name = token("from-ndarray", &(&shape, &chunks, Bits(data)));
    from_blocks(name, &shape, chunks, |b| {
        let slice: Vec<SliceInfoElem> = b
            .start
            .iter()
            .zip(&b.shape)
            .map(|(&s, &n)| (s as isize..(s + n) as isize).into())
            .collect();
        let block = data.slice(slice.as_slice()).to_owned();
        Op::Const(Value::from(ArrayChunk::F64(block)))
    })
}

/// Hashes an array's elements by their bits, without copying them.
struct Bits<'a>(&'a ArrayD<f64>);

impl std::hash::Hash for Bits<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.iter().for_each(|x| x.to_bits().hash(state));
    }
}

pub(crate) fn token(prefix: &str, params: &impl std::hash::Hash) -> String {
    Key::token(prefix, params).name().to_string()
}

pub(crate) fn from_blocks(
    name: String,
    shape: &[usize],
    layout: Chunks,
    op: impl Fn(&crate::chunks::Block) -> Op,
) -> Result<Array> {
    let base = Key::named(name.as_str());
    let tasks = layout
        .blocks()
        .iter()
        .map(|b| Task::root(base.with_index(b.index.clone()), op(b)))
        .collect();
    Ok(Array::new(name, shape.to_vec(), layout, tasks, Vec::new()))
}

fn add_array_tasks(root: &Array, graph: &mut GraphBuilder) {
    let mut stack = vec![root];
    while let Some(a) = stack.pop() {
        if a.inner.tasks.first().is_some_and(|t| graph.contains(&t.key)) {
            continue;
        }
        for t in &a.inner.tasks {
            graph.insert(t.clone());
        }
        stack.extend(a.inner.inputs.iter());
    }
}

impl Collection for Array {
    type Output = ArrayD<f64>;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        add_array_tasks(self, graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.inner.tasks.iter().map(|t| t.key.clone()).collect()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<ArrayD<f64>> {
        let mut out = ArrayD::<f64>::zeros(IxDyn(self.shape()));
        for (block, value) in self.chunks().blocks().iter().zip(values) {
            let chunk = match value {
                Value::Array(c) => c,
                other => {
                    return Err(CoreError::TypeMismatch {
                        expected: "f64 chunk".into(),
                        found: other.kind(),
                    });
                }
            };
            let ArrayChunk::F64(chunk) = chunk.as_ref() else {
                return Err(CoreError::TypeMismatch {
                    expected: "f64 chunk".into(),
                    found: format!("{} chunk", chunk.dtype()),
                });
            };
            let slice: Vec<SliceInfoElem> = block
                .start
                .iter()
                .zip(&block.shape)
                .map(|(&s, &n)| (s as isize..(s + n) as isize).into())
                .collect();
            out.slice_mut(slice.as_slice()).assign(chunk);
        }
        Ok(out)
    }
}

/// A lazy full reduction: computes to one `f64`.
#[derive(Clone, Debug)]
pub struct Reduced {
    array: Array,
}

impl Reduced {
    /// The reduction as a 0-dimensional array.
    pub fn as_array(&self) -> &Array {
        &self.array
    }
}

impl Collection for Reduced {
    type Output = f64;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.array.add_tasks(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.array.output_keys()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<f64> {
        let a = self.array.finish(values)?;
        a.iter()
            .next()
            .copied()
            .ok_or_else(|| CoreError::Internal("reduction produced no value".into()))
    }
}
