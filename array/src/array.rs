//! The lazy chunked array.

use std::marker::PhantomData;
use std::sync::Arc;

use brisk_core::{DType, Element, Error as CoreError, Key, Op, Value};
use brisk_graph::{Collection, GraphBuilder, Task};
use ndarray::{ArrayD, IxDyn, SliceInfoElem};

use crate::chunks::{Block, Chunks};
use crate::element::{BinOp, Float, Numeric};
use crate::ops::{
    ArrayArith, AsType, Cmp, Compare, CompareScalar, FullChunk, IntegersChunk, NormalChunk,
    RandomChunk, RangeChunk, ScalarArith, Unary, UnaryOp, Where,
};
use crate::reduce::{Agg, ChunkPartial, CombinePartial, FinishPartial};
use crate::{Error, Result};

/// Reductions combine this many partial results per tree node unless told otherwise
/// (Dask's `split_every` default for arrays).
pub const DEFAULT_SPLIT_EVERY: usize = 8;

/// A lazy n-dimensional array of `T` (`f64` unless said otherwise) cut into chunks;
/// each chunk is one task of the graph.
///
/// The element type is part of the array's type, so a dtype mismatch is a compile
/// error: [`Array::astype`] converts, comparisons give `Array<bool>`, and the math
/// functions and division exist only for float arrays.
///
/// ```
/// use brisk_array::random;
/// use brisk_scheduler::Compute;
/// let x = random(&[1_000, 1_000], &[250, 500], 42)?;
/// assert_eq!(x.chunks().grid(), vec![4, 2]);
/// let m: f64 = x.mean().compute()?;
/// assert!((m - 0.5).abs() < 0.01);
/// let above: i64 = x.gt_scalar(0.9).astype::<i64>().sum().compute()?;
/// assert!((above - 100_000).abs() < 2_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Array<T: Element = f64> {
    inner: Layer,
    _type: PhantomData<fn() -> T>,
}

/// One array's tasks and where they come from, whatever its element type.
pub(crate) type Layer = Arc<Inner>;

#[derive(Debug)]
pub(crate) struct Inner {
    name: String,
    shape: Vec<usize>,
    chunks: Chunks,
    dtype: DType,
    /// One task per chunk, in row-major chunk order.
    tasks: Vec<Task>,
    inputs: Vec<Layer>,
}

impl Inner {
    /// The keys of its chunks, in row-major chunk order.
    pub(crate) fn chunk_keys(&self) -> impl Iterator<Item = &Key> {
        self.tasks.iter().map(|t| &t.key)
    }
}

/// Intermediate tasks (a reduction tree, matmul's block products) that belong to no
/// array of their own: a layer with no shape, only there to carry its tasks and
/// inputs into the graph.
pub(crate) fn hidden_layer(name: String, tasks: Vec<Task>, inputs: Vec<Layer>) -> Layer {
    let chunks = Chunks::explicit(&[], Vec::new()).expect("the 0-d layout is valid");
    Arc::new(Inner { name, shape: Vec::new(), chunks, dtype: DType::F64, tasks, inputs })
}

/// The shape and chunks of a NumPy broadcast of several arrays.
pub(crate) struct Broadcast {
    shape: Vec<usize>,
    sizes: Vec<Vec<usize>>,
}

impl Broadcast {
    /// Aligns shapes on the right; an axis of size 1 stretches to the others' size.
    /// Where several arrays span an axis, the output's chunks there are the common
    /// refinement of theirs.
    pub(crate) fn of(operands: &[(&[usize], &Chunks)]) -> Result<Broadcast> {
        let ndim = operands.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
        let dim =
            |s: &[usize], k: usize| if k < ndim - s.len() { 1 } else { s[k - (ndim - s.len())] };
        let mut shape = Vec::with_capacity(ndim);
        for k in 0..ndim {
            let n = operands.iter().map(|(s, _)| dim(s, k)).max().unwrap_or(1);
            if let Some((bad, _)) = operands.iter().find(|(s, _)| dim(s, k) != n && dim(s, k) != 1)
            {
                let (first, _) = operands.iter().find(|(s, _)| dim(s, k) == n).expect("max found");
                return Err(Error::ShapeMismatch {
                    left: first.to_vec(),
                    right: bad.to_vec(),
                    reason: format!(
                        "cannot be broadcast together (axis {k}: {n} against {})",
                        dim(bad, k)
                    ),
                });
            }
            shape.push(n);
        }
        let sizes = (0..ndim)
            .map(|k| {
                operands
                    .iter()
                    .filter(|(s, _)| k >= ndim - s.len() && dim(s, k) == shape[k])
                    .map(|(s, c)| c.sizes()[k - (ndim - s.len())].clone())
                    .reduce(|a, b| refine(&a, &b))
                    .unwrap_or_else(|| vec![1])
            })
            .collect();
        Ok(Broadcast { shape, sizes })
    }

    fn spans(&self, shape: &[usize], j: usize) -> bool {
        shape[j] == self.shape[j + self.shape.len() - shape.len()]
    }

    /// `x` rechunked to the output's chunks on the axes it spans.
    pub(crate) fn align<T: Element>(&self, x: &Array<T>) -> Result<Array<T>> {
        let pad = self.shape.len() - x.shape().len();
        let sizes = (0..x.shape().len())
            .map(|j| if self.spans(x.shape(), j) { self.sizes[j + pad].clone() } else { vec![1] })
            .collect();
        x.rechunk_to(Chunks::explicit(x.shape(), sizes)?)
    }

    /// One task per output chunk running `op` on the aligned operands' chunks there.
    pub(crate) fn tasks<U: Element>(
        &self,
        prefix: &str,
        params: &impl std::hash::Hash,
        aligned: Vec<Layer>,
        op: Op,
    ) -> Result<Array<U>> {
        let layout = Chunks::explicit(&self.shape, self.sizes.clone())?;
        let names: Vec<&str> = aligned.iter().map(|a| a.name.as_str()).collect();
        let name = token(prefix, &(names, params));
        let base = Key::named(name.as_str());
        let keys: Vec<Vec<&Key>> = aligned.iter().map(|a| a.chunk_keys().collect()).collect();
        let ndim = self.shape.len();
        let tasks = layout
            .blocks()
            .iter()
            .map(|blk| {
                let deps = aligned.iter().zip(&keys).map(|(x, keys)| {
                    let (pad, grid) = (ndim - x.shape.len(), x.chunks.grid());
                    let at = (0..x.shape.len()).fold(0usize, |acc, j| {
                        let i =
                            if self.spans(&x.shape, j) { blk.index[j + pad] as usize } else { 0 };
                        acc * grid[j] + i
                    });
                    keys[at].clone()
                });
                Task::new(base.with_index(blk.index.clone()), op.clone(), deps.collect::<Vec<_>>())
            })
            .collect();
        Ok(Array::new(name, self.shape.clone(), layout, tasks, aligned))
    }
}

impl<T: Element> Array<T> {
    pub(crate) fn new(
        name: String,
        shape: Vec<usize>,
        chunks: Chunks,
        tasks: Vec<Task>,
        inputs: Vec<Layer>,
    ) -> Self {
        let inner = Inner { name, shape, chunks, dtype: T::DTYPE, tasks, inputs };
        Self { inner: Arc::new(inner), _type: PhantomData }
    }

    /// The array's tasks as a graph layer, for arrays built on it.
    pub(crate) fn layer(&self) -> Layer {
        self.inner.clone()
    }

    /// The keys of its chunks, in row-major chunk order.
    pub(crate) fn chunk_keys(&self) -> impl Iterator<Item = &Key> {
        self.inner.chunk_keys()
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
    pub(crate) fn map_chunks<U: Element>(
        &self,
        prefix: &str,
        params: &impl std::hash::Hash,
        op: Op,
    ) -> Array<U> {
        let name = token(prefix, &(self.name(), params));
        let base = Key::named(name.as_str());
        let tasks = self
            .inner
            .tasks
            .iter()
            .map(|t| Task::new(base.with_index(t.key.index()), op.clone(), [t.key.clone()]))
            .collect();
        Array::new(name, self.shape().to_vec(), self.chunks().clone(), tasks, vec![self.layer()])
    }

    /// Every element cast to `U`, as numpy's `astype`: floats to integers truncate
    /// toward zero, anything to `bool` is "not zero". Casting to the same type adds
    /// no task.
    pub fn astype<U: Element>(&self) -> Array<U> {
        if T::DTYPE == U::DTYPE {
            // The same type (element types are sealed, one per dtype).
            return Array { inner: self.layer(), _type: PhantomData };
        }
        self.map_chunks("astype", &U::DTYPE, Op::data(AsType { to: U::DTYPE }))
    }

    fn compare(&self, cmp: Cmp, other: &Array<T>) -> Result<Array<bool>> {
        let b = Broadcast::of(&[(self.shape(), self.chunks()), (other.shape(), other.chunks())])?;
        let aligned = vec![b.align(self)?.layer(), b.align(other)?.layer()];
        b.tasks("compare", &cmp, aligned, Op::data(Compare { cmp }))
    }

    fn compare_scalar(&self, cmp: Cmp, x: T) -> Array<bool> {
        let scalar = x.to_scalar();
        self.map_chunks("compare-scalar", &(cmp, x.bits()), Op::data(CompareScalar { cmp, scalar }))
    }

    /// `self == other` element-wise (broadcasting), as a bool array.
    pub fn eq(&self, other: &Array<T>) -> Result<Array<bool>> {
        self.compare(Cmp::Eq, other)
    }

    /// `self != other` element-wise.
    pub fn ne(&self, other: &Array<T>) -> Result<Array<bool>> {
        self.compare(Cmp::Ne, other)
    }

    /// `self < other` element-wise.
    pub fn lt(&self, other: &Array<T>) -> Result<Array<bool>> {
        self.compare(Cmp::Lt, other)
    }

    /// `self <= other` element-wise.
    pub fn le(&self, other: &Array<T>) -> Result<Array<bool>> {
        self.compare(Cmp::Le, other)
    }

    /// `self > other` element-wise.
    pub fn gt(&self, other: &Array<T>) -> Result<Array<bool>> {
        self.compare(Cmp::Gt, other)
    }

    /// `self >= other` element-wise.
    pub fn ge(&self, other: &Array<T>) -> Result<Array<bool>> {
        self.compare(Cmp::Ge, other)
    }

    /// `self == x` element-wise.
    pub fn eq_scalar(&self, x: T) -> Array<bool> {
        self.compare_scalar(Cmp::Eq, x)
    }

    /// `self != x` element-wise.
    pub fn ne_scalar(&self, x: T) -> Array<bool> {
        self.compare_scalar(Cmp::Ne, x)
    }

    /// `self < x` element-wise.
    pub fn lt_scalar(&self, x: T) -> Array<bool> {
        self.compare_scalar(Cmp::Lt, x)
    }

    /// `self <= x` element-wise.
    pub fn le_scalar(&self, x: T) -> Array<bool> {
        self.compare_scalar(Cmp::Le, x)
    }

    /// `self > x` element-wise.
    pub fn gt_scalar(&self, x: T) -> Array<bool> {
        self.compare_scalar(Cmp::Gt, x)
    }

    /// `self >= x` element-wise.
    pub fn ge_scalar(&self, x: T) -> Array<bool> {
        self.compare_scalar(Cmp::Ge, x)
    }

    /// The sum of all elements (pairwise within float chunks, a fixed tree across
    /// them); integers and booleans sum to `i64`, wrapping as numpy's do.
    pub fn sum(&self) -> Reduced<T::Sum> {
        self.reduce_all(Agg::Sum)
    }

    /// The mean of all elements.
    pub fn mean(&self) -> Reduced<T::Float> {
        self.reduce_all(Agg::Mean)
    }

    /// The variance of all elements with `ddof` delta degrees of freedom.
    pub fn var(&self, ddof: u32) -> Reduced<T::Float> {
        self.reduce_all(Agg::Var { ddof })
    }

    /// The standard deviation of all elements with `ddof` delta degrees of freedom.
    pub fn std(&self, ddof: u32) -> Reduced<T::Float> {
        self.reduce_all(Agg::Std { ddof })
    }

    /// The smallest element (NaN if any element is NaN).
    pub fn min(&self) -> Reduced<T> {
        self.reduce_all(Agg::Min)
    }

    /// The largest element (NaN if any element is NaN).
    pub fn max(&self) -> Reduced<T> {
        self.reduce_all(Agg::Max)
    }

    /// The mean of all elements, combining `split_every` partial results per tree
    /// node (at least 2).
    pub fn mean_split_every(&self, split_every: usize) -> Result<Reduced<T::Float>> {
        Ok(Reduced { array: self.reduce_as(Agg::Mean, None, split_every)? })
    }

    fn reduce_all<U: Element>(&self, agg: Agg) -> Reduced<U> {
        let array = self
            .reduce_as(agg, None, DEFAULT_SPLIT_EVERY)
            .expect("all axes and the default split_every are valid");
        Reduced { array }
    }

    /// Reduces over `axes` (all axes when `None`), combining `split_every` partial
    /// results per tree node, with the result as floats (`f32` for `f32` arrays, else
    /// `f64`). The result drops the reduced axes, like numpy's `x.sum(axis=...)`. An
    /// axis out of range, repeated, or a `split_every` below 2 is an error. For
    /// results in the array's own type use [`Array::sum_axes`], [`Array::min_axes`]
    /// and [`Array::max_axes`].
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
    pub fn reduce(
        &self,
        agg: Agg,
        axes: Option<&[usize]>,
        split_every: usize,
    ) -> Result<Array<T::Float>> {
        self.reduce_as(agg, axes, split_every)
    }

    /// The sum over `axes`, in numpy's sum type (`i64` for integers and booleans).
    pub fn sum_axes(&self, axes: &[usize]) -> Result<Array<T::Sum>> {
        self.reduce_as(Agg::Sum, Some(axes), DEFAULT_SPLIT_EVERY)
    }

    /// The smallest element over `axes`.
    pub fn min_axes(&self, axes: &[usize]) -> Result<Array<T>> {
        self.reduce_as(Agg::Min, Some(axes), DEFAULT_SPLIT_EVERY)
    }

    /// The largest element over `axes`.
    pub fn max_axes(&self, axes: &[usize]) -> Result<Array<T>> {
        self.reduce_as(Agg::Max, Some(axes), DEFAULT_SPLIT_EVERY)
    }

    /// How many elements are not zero over `axes` (NaN counts, as in numpy).
    pub fn count_nonzero_axes(&self, axes: &[usize]) -> Result<Array<i64>> {
        self.ne_scalar(T::default()).astype::<i64>().sum_axes(axes)
    }

    /// Whether any element over `axes` is non-zero.
    pub fn any_axes(&self, axes: &[usize]) -> Result<Array<bool>> {
        Ok(self.count_nonzero_axes(axes)?.gt_scalar(0))
    }

    /// Whether every element over `axes` is non-zero (true where they are empty).
    pub fn all_axes(&self, axes: &[usize]) -> Result<Array<bool>> {
        let n: usize = axes.iter().map(|&d| self.shape().get(d).copied().unwrap_or(1)).product();
        Ok(self.count_nonzero_axes(axes)?.eq_scalar(n as i64))
    }

    /// `axes` sorted, or an error if one is out of range or repeated.
    pub(crate) fn check_axes(&self, axes: Option<&[usize]>) -> Result<Vec<usize>> {
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
        Ok(axes)
    }

    fn reduce_as<U: Element>(
        &self,
        agg: Agg,
        axes: Option<&[usize]>,
        split_every: usize,
    ) -> Result<Array<U>> {
        let axes = self.check_axes(axes)?;
        let ops = TreeOps {
            prefix: "reduce",
            params: token("", &(agg, U::DTYPE)),
            chunk: &|_| Op::data(ChunkPartial { agg, axes: axes.clone() }),
            combine: Op::data(CombinePartial { agg }),
            finish: Op::data(FinishPartial { agg, axes: axes.clone(), out: U::DTYPE }),
        };
        self.tree_reduce(&axes, split_every, ops)
    }

    /// A reduction over `axes` (sorted, checked): `chunk` per chunk, partials grouped
    /// by their position along the kept axes and combined in a fixed tree of
    /// `split_every` per node, `finish` once per output chunk.
    pub(crate) fn tree_reduce<U: Element>(
        &self,
        axes: &[usize],
        split_every: usize,
        ops: TreeOps<'_>,
    ) -> Result<Array<U>> {
        if split_every < 2 {
            return Err(Error::Invalid(format!(
                "split_every must be at least 2, got {split_every}"
            )));
        }
        let ndim = self.shape().len();
        let name = token(ops.prefix, &(self.name(), &ops.params, axes, split_every));
        let chunk_base = Key::named(format!("{name}-chunk"));
        let partials: Vec<Task> = self
            .chunks()
            .blocks()
            .iter()
            .zip(self.chunk_keys())
            .map(|(b, key)| {
                Task::new(chunk_base.with_index(b.index.clone()), (ops.chunk)(b), [key.clone()])
            })
            .collect();
        let kept: Vec<usize> = (0..ndim).filter(|d| !axes.contains(d)).collect();
        // Partials grouped by their position along the kept axes; within a group they
        // stay in row-major order, which fixes the combine order.
        let mut groups: std::collections::BTreeMap<Vec<u32>, Vec<Key>> = Default::default();
        for (block, task) in self.chunks().blocks().iter().zip(&partials) {
            let out_index: Vec<u32> = kept.iter().map(|&d| block.index[d]).collect();
            groups.entry(out_index).or_default().push(task.key.clone());
        }
        let mut tasks = Vec::new();
        let mut finish_tasks = Vec::new();
        for (out_index, level) in groups {
            let level = combine_tree(
                level,
                split_every,
                1,
                &format!("{name}-combine"),
                &out_index,
                &ops.combine,
                &mut tasks,
            );
            finish_tasks.push(Task::new(
                Key::new(name.as_str(), out_index),
                ops.finish.clone(),
                level,
            ));
        }
        // The output's chunks are the finish tasks, in row-major order; the partials
        // and the combine tasks form a layer of their own between it and `self`.
        tasks.extend(partials);
        let middle = hidden_layer(format!("{name}-tree"), tasks, vec![self.layer()]);
        let shape: Vec<usize> = kept.iter().map(|&d| self.shape()[d]).collect();
        let layout = Chunks::explicit(
            &shape,
            kept.iter().map(|&d| self.chunks().sizes()[d].clone()).collect(),
        )?;
        Ok(Array::new(name, shape, layout, finish_tasks, vec![middle]))
    }
}

/// The three ops of a tree reduction and the name of its layers.
pub(crate) struct TreeOps<'a> {
    pub(crate) prefix: &'static str,
    pub(crate) params: String,
    pub(crate) chunk: &'a dyn Fn(&Block) -> Op,
    pub(crate) combine: Op,
    pub(crate) finish: Op,
}

impl<T: Numeric> Array<T> {
    fn scalar_arith(&self, op: BinOp, x: T, scalar_first: bool) -> Array<T> {
        let scalar = x.to_scalar();
        self.map_chunks(
            "scalar-arith",
            &(op, x.bits(), scalar_first),
            Op::data(ScalarArith { op, scalar, scalar_first }),
        )
    }

    /// `self + x` element-wise.
    pub fn add_scalar(&self, x: T) -> Array<T> {
        self.scalar_arith(BinOp::Add, x, false)
    }

    /// `self - x` element-wise.
    pub fn sub_scalar(&self, x: T) -> Array<T> {
        self.scalar_arith(BinOp::Sub, x, false)
    }

    /// `self * x` element-wise.
    pub fn mul_scalar(&self, x: T) -> Array<T> {
        self.scalar_arith(BinOp::Mul, x, false)
    }

    /// `x - self` element-wise.
    pub fn rsub_scalar(&self, x: T) -> Array<T> {
        self.scalar_arith(BinOp::Sub, x, true)
    }

    fn unary(&self, op: Option<UnaryOp>, power: Option<f64>) -> Array<T> {
        self.map_chunks("unary", &(op, power.map(f64::to_bits)), Op::data(Unary { op, power }))
    }

    /// `|x|` element-wise.
    pub fn abs(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Abs), None)
    }

    /// `-x` element-wise.
    pub fn neg(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Neg), None)
    }

    /// Element-wise arithmetic with NumPy broadcasting: shapes are aligned on the
    /// right and an axis of size 1 stretches to the other's size. Where both arrays
    /// span an axis, both are rechunked to the common refinement of their chunks.
    fn arith(&self, op: BinOp, other: &Array<T>) -> Result<Array<T>> {
        let b = Broadcast::of(&[(self.shape(), self.chunks()), (other.shape(), other.chunks())])?;
        let aligned = vec![b.align(self)?.layer(), b.align(other)?.layer()];
        b.tasks("arith", &op, aligned, Op::data(ArrayArith { op }))
    }

    /// `self + other` element-wise (broadcasting).
    pub fn add(&self, other: &Array<T>) -> Result<Array<T>> {
        self.arith(BinOp::Add, other)
    }

    /// `self - other` element-wise (broadcasting).
    pub fn sub(&self, other: &Array<T>) -> Result<Array<T>> {
        self.arith(BinOp::Sub, other)
    }

    /// `self * other` element-wise (broadcasting).
    pub fn mul(&self, other: &Array<T>) -> Result<Array<T>> {
        self.arith(BinOp::Mul, other)
    }
}

impl<T: Float> Array<T> {
    /// `self / x` element-wise.
    pub fn div_scalar(&self, x: T) -> Array<T> {
        self.scalar_arith(BinOp::Div, x, false)
    }

    /// `self / other` element-wise (broadcasting).
    pub fn div(&self, other: &Array<T>) -> Result<Array<T>> {
        self.arith(BinOp::Div, other)
    }

    /// `√x` element-wise (NaN below zero).
    pub fn sqrt(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Sqrt), None)
    }

    /// `eˣ` element-wise.
    pub fn exp(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Exp), None)
    }

    /// `ln x` element-wise.
    pub fn log(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Log), None)
    }

    /// `sin x` element-wise.
    pub fn sin(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Sin), None)
    }

    /// `cos x` element-wise.
    pub fn cos(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Cos), None)
    }

    /// `xᵖ` element-wise.
    pub fn powf(&self, p: f64) -> Array<T> {
        self.unary(None, Some(p))
    }
}

/// numpy's `where(cond, a, b)`: `a` where `cond` is true, `b` elsewhere, all three
/// broadcast against each other.
///
/// ```
/// use brisk_array::{arange, where_};
/// use brisk_scheduler::Compute;
/// let x = arange(0.0, 6.0, 1.0, 4)?;
/// let clipped = where_(&x.gt_scalar(3.0), &x.mul_scalar(0.0).add_scalar(3.0), &x)?;
/// assert_eq!(clipped.compute()?.into_raw_vec_and_offset().0, vec![0.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn where_<T: Element>(cond: &Array<bool>, a: &Array<T>, b: &Array<T>) -> Result<Array<T>> {
    let plan = Broadcast::of(&[
        (cond.shape(), cond.chunks()),
        (a.shape(), a.chunks()),
        (b.shape(), b.chunks()),
    ])?;
    let aligned = vec![plan.align(cond)?.layer(), plan.align(a)?.layer(), plan.align(b)?.layer()];
    plan.tasks("where", &(), aligned, Op::data(Where))
}

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
/// use brisk_scheduler::Compute;
/// let dice = brisk_array::integers(&[10_000], &[1_000], 7, 1, 7)?;
/// assert_eq!(dice.min().compute()?, 1);
/// assert_eq!(dice.max().compute()?, 6);
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

/// The slice of the whole array a block covers.
pub(crate) fn block_slice(b: &Block) -> Vec<SliceInfoElem> {
    b.start.iter().zip(&b.shape).map(|(&s, &n)| (s as isize..(s + n) as isize).into()).collect()
}

/// Hashes an array's elements by their bits, without copying them.
struct Bits<'a, T>(&'a ArrayD<T>);

impl<T: Element> std::hash::Hash for Bits<'_, T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.iter().for_each(|x| x.bits().hash(state));
    }
}

pub(crate) fn token(prefix: &str, params: &impl std::hash::Hash) -> String {
    Key::token(prefix, params).name().to_string()
}

pub(crate) fn from_blocks<T: Element>(
    name: String,
    shape: &[usize],
    layout: Chunks,
    op: impl Fn(&Block) -> Op,
) -> Result<Array<T>> {
    let base = Key::named(name.as_str());
    let tasks = layout
        .blocks()
        .iter()
        .map(|b| Task::root(base.with_index(b.index.clone()), op(b)))
        .collect();
    Ok(Array::new(name, shape.to_vec(), layout, tasks, Vec::new()))
}

pub(crate) fn add_layer_tasks(root: &Layer, graph: &mut GraphBuilder) {
    let mut stack = vec![root];
    while let Some(a) = stack.pop() {
        if a.tasks.first().is_some_and(|t| graph.contains(&t.key)) {
            continue;
        }
        for t in &a.tasks {
            graph.insert(t.clone());
        }
        stack.extend(a.inputs.iter());
    }
}

impl<T: Element> Collection for Array<T> {
    type Output = ArrayD<T>;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        add_layer_tasks(&self.inner, graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.chunk_keys().cloned().collect()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<ArrayD<T>> {
        let mut out = ArrayD::from_elem(IxDyn(self.shape()), T::default());
        for (block, value) in self.chunks().blocks().iter().zip(values) {
            let Value::Array(chunk) = &value else {
                return Err(CoreError::TypeMismatch {
                    expected: format!("{} chunk", T::DTYPE),
                    found: value.kind(),
                });
            };
            let chunk = T::chunk_ref(chunk).ok_or_else(|| CoreError::TypeMismatch {
                expected: format!("{} chunk", T::DTYPE),
                found: format!("{} chunk", chunk.dtype()),
            })?;
            out.slice_mut(block_slice(block).as_slice()).assign(chunk);
        }
        Ok(out)
    }
}

/// A lazy full reduction: computes to one `T`.
#[derive(Clone, Debug)]
pub struct Reduced<T: Element = f64> {
    array: Array<T>,
}

impl<T: Element> Reduced<T> {
    /// The reduction as a 0-dimensional array.
    pub fn as_array(&self) -> &Array<T> {
        &self.array
    }
}

impl<T: Element> Collection for Reduced<T> {
    type Output = T;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.array.add_tasks(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.array.output_keys()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<T> {
        let a = self.array.finish(values)?;
        a.iter()
            .next()
            .copied()
            .ok_or_else(|| CoreError::Internal("reduction produced no value".into()))
    }
}
