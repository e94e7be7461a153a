//! Structure: transpose, basic slicing, rechunk, concatenate, stack, and user
//! kernels with `map_blocks`.

use brisk_core::{ArrayChunk, Element, Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::Task;
use ndarray::{ArrayD, Axis, IxDyn, SliceInfoElem, Zip};
use serde::{Deserialize, Serialize};

use crate::array::{Array, hidden_layer, token};
use crate::chunks::Chunks;
use crate::element::{
    Numeric, any_dtype, chunk_ref, numeric_dtype, one_chunk, split_inputs, unsupported,
};
use crate::{Error, Result};

fn value<T: Element>(a: ArrayD<T>) -> Value {
    Value::from(T::into_chunk(a))
}

/// A chunk of `T::default()` (zero, false): the stand-in for an empty selection.
fn empty_chunk<T: Element>(shape: &[usize]) -> Op {
    Op::Const(value(ArrayD::from_elem(IxDyn(shape), T::default())))
}

/// The row-major position of a block index in a grid.
fn linear(index: &[usize], grid: &[usize]) -> usize {
    index.iter().zip(grid).fold(0, |acc, (&i, &g)| acc * g + i)
}

/// One axis of a basic index: Python's `a[i]`, `a[start:stop:step]` or `a[:]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Index {
    /// The whole axis.
    All,
    /// One position (negative counts from the end); the axis is dropped.
    At(isize),
    /// A range with a step, with Python's rules for omitted and negative bounds.
    Range {
        /// First position, or the axis's start (end, for a negative step).
        start: Option<isize>,
        /// Position to stop before, or past the axis's end.
        stop: Option<isize>,
        /// Non-zero step; negative walks backwards.
        step: isize,
    },
}

/// What one output chunk takes from one input chunk along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Take {
    /// `count` elements from local position `start`, `step` apart (negative: backwards).
    Run { start: usize, count: usize, step: isize },
    /// One element; the axis is dropped.
    One(usize),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SliceChunk {
    takes: Vec<Take>,
}

impl OpKind for SliceChunk {
    const NAME: &'static str = "array.slice";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        let info: Vec<SliceInfoElem> = self
            .takes
            .iter()
            .map(|t| match *t {
                Take::One(i) => SliceInfoElem::Index(i as isize),
                Take::Run { start, count, step } if step > 0 => SliceInfoElem::Slice {
                    start: start as isize,
                    end: Some((start + (count - 1) * step as usize + 1) as isize),
                    step,
                },
                // ndarray walks a negative step from the end of the range, so the range
                // is [lowest, start] and the walk begins at `start`.
                Take::Run { start, count, step } => SliceInfoElem::Slice {
                    start: (start - (count - 1) * step.unsigned_abs()) as isize,
                    end: Some(start as isize + 1),
                    step,
                },
            })
            .collect();
        Ok(any_dtype!(chunk, a => value(a.slice(info.as_slice()).to_owned())))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TransposeChunk {
    axes: Vec<usize>,
}

impl OpKind for TransposeChunk {
    const NAME: &'static str = "array.transpose";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        let axes = IxDyn(&self.axes);
        Ok(any_dtype!(chunk, a => value(a.permuted_axes(axes).as_standard_layout().into_owned())))
    }
}

/// Per axis, the local range an input chunk gives; and where it lands in the output.
type Piece = (Vec<(usize, usize)>, Vec<usize>);

/// Along one axis: an overlapping input chunk, its local range, and the offset of that
/// range in the output chunk.
type Overlap = (usize, (usize, usize), usize);

/// An output chunk assembled from pieces of several input chunks (rechunking).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Assemble {
    shape: Vec<usize>,
    /// For each input, in order: the range it gives per axis, and where it goes.
    pieces: Vec<Piece>,
}

impl OpKind for Assemble {
    const NAME: &'static str = "array.assemble";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        if inputs.len() != self.pieces.len() {
            return Err(CoreError::Arity {
                op: Self::NAME.into(),
                expected: self.pieces.len(),
                found: inputs.len(),
            });
        }
        let first = chunk_ref(
            Self::NAME,
            inputs.first().ok_or_else(|| CoreError::Arity {
                op: Self::NAME.into(),
                expected: 1,
                found: 0,
            })?,
        )?;
        any_dtype!(first, a => self.assemble(a, &inputs))
    }
}

impl Assemble {
    fn assemble<T: Element>(
        &self,
        _first: &ArrayD<T>,
        inputs: &[Value],
    ) -> brisk_core::Result<Value> {
        let mut out = ArrayD::from_elem(IxDyn(&self.shape), T::default());
        for (v, (src, dst)) in inputs.iter().zip(&self.pieces) {
            let c = chunk_ref(Self::NAME, v)?;
            let a = T::chunk_ref(c).ok_or_else(|| unsupported(Self::NAME, c))?;
            let from: Vec<SliceInfoElem> =
                src.iter().map(|&(s, e)| (s as isize..e as isize).into()).collect();
            let to: Vec<SliceInfoElem> = src
                .iter()
                .zip(dst)
                .map(|(&(s, e), &d)| (d as isize..(d + e - s) as isize).into())
                .collect();
            out.slice_mut(to.as_slice()).assign(&a.slice(from.as_slice()));
        }
        Ok(value(out))
    }
}

/// A chunk passed through unchanged under a new key (concatenate).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Alias;

impl OpKind for Alias {
    const NAME: &'static str = "array.alias";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        inputs.into_iter().next().ok_or(CoreError::Arity {
            op: Self::NAME.into(),
            expected: 1,
            found: 0,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExpandDims {
    axis: usize,
}

impl OpKind for ExpandDims {
    const NAME: &'static str = "array.expand-dims";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        Ok(any_dtype!(chunk, a => value(a.insert_axis(Axis(self.axis)))))
    }
}

/// Python's `slice.indices`: the first position and the count selected.
fn resolve(index: Index, n: usize, axis: usize) -> Result<(usize, usize, isize, bool)> {
    let n_i = n as isize;
    match index {
        Index::All => Ok((0, n, 1, false)),
        Index::At(i) => {
            let at = if i < 0 { i + n_i } else { i };
            if at < 0 || at >= n_i {
                return Err(Error::Invalid(format!(
                    "index {i} is out of bounds for axis {axis} of size {n}"
                )));
            }
            Ok((at as usize, 1, 1, true))
        }
        Index::Range { step: 0, .. } => {
            Err(Error::Invalid(format!("axis {axis}: slice step cannot be zero")))
        }
        Index::Range { start, stop, step } => {
            let clamp = |v: isize, lo: isize, hi: isize| v.clamp(lo, hi);
            let norm = |v: isize| if v < 0 { v + n_i } else { v };
            let (first, last_excl) = if step > 0 {
                (clamp(start.map_or(0, norm), 0, n_i), clamp(stop.map_or(n_i, norm), 0, n_i))
            } else {
                (
                    clamp(start.map_or(n_i - 1, norm), -1, n_i - 1),
                    clamp(stop.map_or(-1, |v| norm(v).max(-1)), -1, n_i - 1),
                )
            };
            let span = if step > 0 { last_excl - first } else { first - last_excl };
            let count = if span <= 0 { 0 } else { ((span - 1) / step.abs() + 1) as usize };
            Ok((first.max(0) as usize, count, step, false))
        }
    }
}

impl<T: Element> Array<T> {
    /// Reverses or permutes the axes (`None`: reverse them, like numpy's `x.T`).
    pub fn transpose(&self, axes: Option<&[usize]>) -> Result<Array<T>> {
        let ndim = self.shape().len();
        let axes: Vec<usize> = axes.map_or_else(|| (0..ndim).rev().collect(), <[usize]>::to_vec);
        let mut seen = axes.clone();
        seen.sort_unstable();
        if seen != (0..ndim).collect::<Vec<_>>() {
            return Err(Error::Invalid(format!(
                "axes {axes:?} are not a permutation of 0..{ndim}"
            )));
        }
        let shape: Vec<usize> = axes.iter().map(|&a| self.shape()[a]).collect();
        let layout = Chunks::explicit(
            &shape,
            axes.iter().map(|&a| self.chunks().sizes()[a].clone()).collect(),
        )?;
        let name = token("transpose", &(self.name(), &axes));
        let base = Key::named(name.as_str());
        let keys: Vec<&Key> = self.chunk_keys().collect();
        let in_grid = self.chunks().grid();
        let tasks = layout
            .blocks()
            .iter()
            .map(|b| {
                let mut src = vec![0usize; ndim];
                for (k, &a) in axes.iter().enumerate() {
                    src[a] = b.index[k] as usize;
                }
                let key = keys[linear(&src, &in_grid)].clone();
                Task::new(
                    base.with_index(b.index.clone()),
                    Op::data(TransposeChunk { axes: axes.clone() }),
                    [key],
                )
            })
            .collect();
        Ok(Array::new(name, shape, layout, tasks, vec![self.layer()]))
    }

    /// Basic indexing, numpy's `x[i, a:b:s, ...]`: one [`Index`] per leading axis (the
    /// rest are taken whole). Integer indices drop their axis. Output chunks follow
    /// the input's, so each is cut from exactly one input chunk.
    ///
    /// ```
    /// use brisk_array::{Index, arange};
    /// use brisk_scheduler::Compute;
    /// let x = arange(0.0, 10.0, 1.0, 3)?;
    /// let y = x.slice(&[Index::Range { start: Some(8), stop: None, step: -3 }])?;
    /// assert_eq!(y.compute()?.into_raw_vec_and_offset().0, vec![8.0, 5.0, 2.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slice(&self, index: &[Index]) -> Result<Array<T>> {
        let ndim = self.shape().len();
        if index.len() > ndim {
            return Err(Error::Invalid(format!(
                "{} indices for an array of {ndim} dimensions",
                index.len()
            )));
        }
        // Per axis: the output chunks, each as (input chunk, what it takes).
        let mut per_axis: Vec<Vec<(usize, Take)>> = Vec::with_capacity(ndim);
        let mut out_shape = Vec::new();
        let mut out_sizes = Vec::new();
        for axis in 0..ndim {
            let sizes = &self.chunks().sizes()[axis];
            let (first, count, step, drop) =
                resolve(index.get(axis).copied().unwrap_or(Index::All), self.shape()[axis], axis)?;
            let mut starts = Vec::with_capacity(sizes.len());
            let mut at = 0;
            for &s in sizes {
                starts.push(at);
                at += s;
            }
            let mut pieces = Vec::new();
            if drop {
                let c = starts.partition_point(|&s| s <= first) - 1;
                pieces.push((c, Take::One(first - starts[c])));
            } else {
                // Walk the selected positions chunk by chunk, in output order.
                let mut k = 0;
                while k < count {
                    let p = (first as isize + k as isize * step) as usize;
                    let c = starts.partition_point(|&s| s <= p) - 1;
                    let (lo, hi) = (starts[c], starts[c] + sizes[c]);
                    let left = if step > 0 {
                        (hi - 1 - p) / step as usize + 1
                    } else {
                        (p - lo) / step.unsigned_abs() + 1
                    };
                    let n = left.min(count - k);
                    pieces.push((c, Take::Run { start: p - lo, count: n, step }));
                    k += n;
                }
                out_shape.push(count);
                let sizes: Vec<usize> = pieces
                    .iter()
                    .map(|(_, t)| if let Take::Run { count, .. } = t { *count } else { 1 })
                    .collect();
                out_sizes.push(if sizes.is_empty() { vec![0] } else { sizes });
            }
            per_axis.push(pieces);
        }
        let layout = Chunks::explicit(&out_shape, out_sizes)?;
        if per_axis.iter().any(Vec::is_empty) {
            // An empty selection: no input chunk is read.
            let name = token("slice-empty", &(self.name(), index));
            return crate::array::from_blocks(name, &out_shape, layout, |b| {
                empty_chunk::<T>(&b.shape)
            });
        }
        let name = token("slice", &(self.name(), index));
        let base = Key::named(name.as_str());
        let keys: Vec<&Key> = self.chunk_keys().collect();
        let in_grid = self.chunks().grid();
        let grid: Vec<usize> = per_axis.iter().map(Vec::len).collect();
        let total: usize = grid.iter().product();
        let mut tasks = Vec::with_capacity(total);
        let mut at = vec![0usize; ndim];
        for _ in 0..total {
            let src: Vec<usize> = (0..ndim).map(|a| per_axis[a][at[a]].0).collect();
            let takes: Vec<Take> = (0..ndim).map(|a| per_axis[a][at[a]].1).collect();
            let out_index: Vec<u32> = (0..ndim)
                .filter(|&a| !matches!(takes[a], Take::One(_)))
                .map(|a| at[a] as u32)
                .collect();
            let key = keys[linear(&src, &in_grid)].clone();
            tasks.push(Task::new(
                base.with_index(out_index),
                Op::data(SliceChunk { takes }),
                [key],
            ));
            for a in (0..ndim).rev() {
                at[a] += 1;
                if at[a] < grid[a] {
                    break;
                }
                at[a] = 0;
            }
        }
        Ok(Array::new(name, out_shape, layout, tasks, vec![self.layer()]))
    }

    /// The same values in chunks of `chunks` (regular, the last of each axis smaller).
    pub fn rechunk(&self, chunks: &[usize]) -> Result<Array<T>> {
        self.rechunk_to(Chunks::regular(self.shape(), chunks)?)
    }

    /// The same values in the given chunk layout. Each output chunk is assembled from
    /// the pieces of the input chunks it overlaps.
    pub fn rechunk_to(&self, layout: Chunks) -> Result<Array<T>> {
        if layout.sizes().len() != self.shape().len()
            || layout.sizes().iter().zip(self.shape()).any(|(s, &n)| s.iter().sum::<usize>() != n)
        {
            return Err(Error::ShapeMismatch {
                left: self.shape().to_vec(),
                right: layout.sizes().iter().map(|s| s.iter().sum()).collect(),
                reason: "(array and new chunk layout) must agree".into(),
            });
        }
        if &layout == self.chunks() {
            return Ok(self.clone());
        }
        let ndim = self.shape().len();
        let bounds = |sizes: &[usize]| -> Vec<usize> {
            std::iter::once(0)
                .chain(sizes.iter().scan(0, |at, &s| {
                    *at += s;
                    Some(*at)
                }))
                .collect()
        };
        let in_bounds: Vec<Vec<usize>> = self.chunks().sizes().iter().map(|s| bounds(s)).collect();
        let keys: Vec<&Key> = self.chunk_keys().collect();
        let in_grid = self.chunks().grid();
        let name = token("rechunk", &(self.name(), &layout));
        let base = Key::named(name.as_str());
        let tasks = layout
            .blocks()
            .iter()
            .map(|b| {
                // Per axis: (input chunk, local range, offset in the output chunk).
                let overlaps: Vec<Vec<Overlap>> = (0..ndim)
                    .map(|a| {
                        let (lo, hi) = (b.start[a], b.start[a] + b.shape[a]);
                        let ib = &in_bounds[a];
                        (0..ib.len() - 1)
                            .filter(|&c| {
                                ib[c] < hi.max(lo + 1) && ib[c + 1] > lo || (lo == hi && c == 0)
                            })
                            .map(|c| {
                                let (s, e) = (lo.max(ib[c]), hi.min(ib[c + 1]));
                                (c, (s - ib[c], e.max(s) - ib[c]), s - lo)
                            })
                            .collect()
                    })
                    .collect();
                let mut deps = Vec::new();
                let mut pieces = Vec::new();
                let mut at = vec![0usize; ndim];
                let total: usize = overlaps.iter().map(Vec::len).product();
                for _ in 0..total {
                    let src: Vec<usize> = (0..ndim).map(|a| overlaps[a][at[a]].0).collect();
                    deps.push(keys[linear(&src, &in_grid)].clone());
                    pieces.push((
                        (0..ndim).map(|a| overlaps[a][at[a]].1).collect(),
                        (0..ndim).map(|a| overlaps[a][at[a]].2).collect(),
                    ));
                    for a in (0..ndim).rev() {
                        at[a] += 1;
                        if at[a] < overlaps[a].len() {
                            break;
                        }
                        at[a] = 0;
                    }
                }
                Task::new(
                    base.with_index(b.index.clone()),
                    Op::data(Assemble { shape: b.shape.clone(), pieces }),
                    deps,
                )
            })
            .collect();
        Ok(Array::new(name, self.shape().to_vec(), layout, tasks, vec![self.layer()]))
    }

    /// Runs `f` on every chunk (Dask's `map_blocks`); `f` must keep the chunk's shape.
    /// The kernel is a closure, so the graph runs only on in-process schedulers.
    pub fn map_blocks<U: Element>(
        &self,
        name: &str,
        f: impl Fn(ArrayD<T>) -> ArrayD<U> + Send + Sync + 'static,
    ) -> Array<U> {
        let label = name.to_string();
        let op = Op::local(name, move |inputs: Vec<Value>| {
            let a = T::from_chunk(one_chunk(&label, inputs)?)?;
            let shape = a.shape().to_vec();
            let out = f(a);
            if out.shape() != shape.as_slice() {
                return Err(CoreError::user(format!(
                    "map_blocks kernel '{label}' turned a chunk of shape {shape:?} into {:?}; it must keep the shape",
                    out.shape()
                )));
            }
            Ok(value(out))
        });
        // Closures cannot be hashed: each call is its own layer, like Dask's default.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.map_chunks(&format!("map-blocks-{name}"), &n, op)
    }
}

/// Joins arrays along an existing axis. Their other axes must have equal sizes; they
/// are rechunked to the first array's chunks there if they differ.
pub fn concatenate<T: Element>(arrays: &[Array<T>], axis: usize) -> Result<Array<T>> {
    let first = arrays
        .first()
        .ok_or_else(|| Error::Invalid("concatenate needs at least one array".into()))?;
    let ndim = first.shape().len();
    if axis >= ndim {
        return Err(Error::Invalid(format!(
            "axis {axis} is out of range for arrays of {ndim} dimensions"
        )));
    }
    let mut parts = Vec::with_capacity(arrays.len());
    for a in arrays {
        let mut want = first.shape().to_vec();
        want[axis] = a.shape().get(axis).copied().unwrap_or(0);
        if a.shape() != want.as_slice() {
            return Err(Error::ShapeMismatch {
                left: first.shape().to_vec(),
                right: a.shape().to_vec(),
                reason: format!("must agree on every axis but {axis} to concatenate"),
            });
        }
        let mut sizes = first.chunks().sizes().to_vec();
        sizes[axis] = a.chunks().sizes()[axis].clone();
        parts.push(a.rechunk_to(Chunks::explicit(a.shape(), sizes)?)?);
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = parts.iter().map(|a| a.shape()[axis]).sum();
    let mut sizes = first.chunks().sizes().to_vec();
    sizes[axis] = parts
        .iter()
        .flat_map(|a| a.chunks().sizes()[axis].iter().copied())
        .filter(|&s| s > 0)
        .collect();
    if sizes[axis].is_empty() {
        sizes[axis] = vec![0];
    }
    let layout = Chunks::explicit(&shape, sizes)?;
    let names: Vec<&str> = parts.iter().map(Array::name).collect();
    let name = token("concatenate", &(names, axis));
    let base = Key::named(name.as_str());
    let mut tasks = Vec::new();
    let mut offset = 0u32;
    let mut by_index: Vec<(Vec<u32>, Key)> = Vec::new();
    for a in &parts {
        if a.shape()[axis] == 0 {
            continue;
        }
        for (b, key) in a.chunks().blocks().iter().zip(a.chunk_keys()) {
            let mut index = b.index.clone();
            index[axis] += offset;
            by_index.push((index, key.clone()));
        }
        offset += a.chunks().grid()[axis] as u32;
    }
    by_index.sort();
    for (index, key) in by_index {
        tasks.push(Task::new(base.with_index(index), Op::data(Alias), [key]));
    }
    if tasks.is_empty() {
        return crate::array::from_blocks(name, &shape, layout, |b| empty_chunk::<T>(&b.shape));
    }
    Ok(Array::new(name, shape, layout, tasks, parts.iter().map(Array::layer).collect()))
}

/// Stacks arrays of one shape along a new axis (chunks of 1 along it); they are
/// rechunked to the first array's chunks if theirs differ.
pub fn stack<T: Element>(arrays: &[Array<T>], axis: usize) -> Result<Array<T>> {
    let first =
        arrays.first().ok_or_else(|| Error::Invalid("stack needs at least one array".into()))?;
    let ndim = first.shape().len();
    if axis > ndim {
        return Err(Error::Invalid(format!(
            "axis {axis} is out of range for stacking arrays of {ndim} dimensions"
        )));
    }
    let expanded = arrays
        .iter()
        .map(|a| {
            if a.shape() != first.shape() {
                return Err(Error::ShapeMismatch {
                    left: first.shape().to_vec(),
                    right: a.shape().to_vec(),
                    reason: "must be equal to stack".into(),
                });
            }
            let a = a.rechunk_to(first.chunks().clone())?;
            let mut shape = a.shape().to_vec();
            shape.insert(axis, 1);
            let mut sizes = a.chunks().sizes().to_vec();
            sizes.insert(axis, vec![1]);
            let layout = Chunks::explicit(&shape, sizes)?;
            let name = token("expand-dims", &(a.name(), axis));
            let base = Key::named(name.as_str());
            let tasks = a
                .chunk_keys()
                .map(|k| {
                    let mut index = k.index().to_vec();
                    index.insert(axis, 0);
                    Task::new(base.with_index(index), Op::data(ExpandDims { axis }), [k.clone()])
                })
                .collect();
            Ok(Array::new(name, shape, layout, tasks, vec![a.layer()]))
        })
        .collect::<Result<Vec<_>>>()?;
    concatenate(&expanded, axis)
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MatmulBlock;

impl MatmulBlock {
    fn product<T: Numeric>(a: &ArrayD<T>, b: &ArrayChunk) -> brisk_core::Result<Value> {
        let b = T::chunk_ref(b).ok_or_else(|| unsupported(Self::NAME, b))?;
        fn to_2d<T: Numeric>(x: &ArrayD<T>) -> brisk_core::Result<ndarray::ArrayView2<'_, T>> {
            x.view().into_dimensionality().map_err(|e| CoreError::Internal(e.to_string()))
        }
        Ok(value(to_2d(a)?.dot(&to_2d(b)?).into_dyn()))
    }
}

impl OpKind for MatmulBlock {
    const NAME: &'static str = "array.matmul-block";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let [a, b] = &inputs[..] else {
            return Err(CoreError::Arity {
                op: Self::NAME.into(),
                expected: 2,
                found: inputs.len(),
            });
        };
        let (a, b) = (chunk_ref(Self::NAME, a)?, chunk_ref(Self::NAME, b)?);
        numeric_dtype!(a, x => Self::product(x, b), bool => Err(unsupported(Self::NAME, a)))
    }
}

/// Chunks of one shape summed element-wise in input order: a node of the
/// contraction tree of `matmul`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SumChunks;

impl SumChunks {
    fn sum<T: Numeric>(first: &ArrayD<T>, rest: &[Value]) -> brisk_core::Result<Value> {
        let mut acc = first.clone();
        for v in rest {
            let c = chunk_ref(Self::NAME, v)?;
            let x = T::chunk_ref(c).ok_or_else(|| unsupported(Self::NAME, c))?;
            Zip::from(&mut acc).and(x).for_each(|a, &b| *a = T::apply(crate::BinOp::Add, *a, b));
        }
        Ok(value(acc))
    }
}

impl OpKind for SumChunks {
    const NAME: &'static str = "array.sum-chunks";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let (first, rest) = split_inputs(Self::NAME, &inputs)?;
        let first = chunk_ref(Self::NAME, first)?;
        numeric_dtype!(first, a => Self::sum(a, rest), bool => Err(unsupported(Self::NAME, first)))
    }
}

impl<T: Numeric> Array<T> {
    /// The matrix product of two 2-d arrays (numpy's `dot`/`matmul` for matrices),
    /// block by block; the partial products
    /// along the contracted axis are summed in a fixed tree of `split_every` inputs
    /// per node, so the result is the same for every thread count. `other`'s rows are
    /// rechunked to `self`'s column chunks if they differ.
    ///
    /// ```
    /// use brisk_array::random;
    /// use brisk_scheduler::Compute;
    /// let a = random(&[30, 20], &[10, 7], 1)?;
    /// let b = random(&[20, 12], &[5, 6], 2)?;
    /// let c = a.dot(&b)?;
    /// let want = a.compute()?.into_dimensionality::<ndarray::Ix2>()?
    ///     .dot(&b.compute()?.into_dimensionality::<ndarray::Ix2>()?);
    /// assert!(c.compute()?.iter().zip(want.iter()).all(|(x, y)| (x - y).abs() < 1e-12));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dot(&self, other: &Array<T>) -> Result<Array<T>> {
        self.matmul(other)
    }

    /// The matrix product of two 2-d arrays (see [`Array::dot`]).
    pub fn matmul(&self, other: &Array<T>) -> Result<Array<T>> {
        let (&[m, k], &[k2, n]) = (self.shape(), other.shape()) else {
            return Err(Error::ShapeMismatch {
                left: self.shape().to_vec(),
                right: other.shape().to_vec(),
                reason: "must both be 2-dimensional for matmul".into(),
            });
        };
        if k != k2 {
            return Err(Error::ShapeMismatch {
                left: self.shape().to_vec(),
                right: other.shape().to_vec(),
                reason: format!("do not align for matmul: {k} columns against {k2} rows"),
            });
        }
        let k_sizes = self.chunks().sizes()[1].clone();
        let b = other.rechunk_to(Chunks::explicit(
            other.shape(),
            vec![k_sizes.clone(), other.chunks().sizes()[1].clone()],
        )?)?;
        let (gi, gk, gj) = (self.chunks().grid()[0], k_sizes.len(), b.chunks().grid()[1]);
        let a_keys: Vec<&Key> = self.chunk_keys().collect();
        let b_keys: Vec<&Key> = b.chunk_keys().collect();
        let name = token("matmul", &(self.name(), b.name()));
        let layout = Chunks::explicit(
            &[m, n],
            vec![self.chunks().sizes()[0].clone(), b.chunks().sizes()[1].clone()],
        )?;
        let products = Key::named(format!("{name}-product"));
        let mut inner = Vec::new();
        let mut outputs = Vec::new();
        for i in 0..gi {
            for j in 0..gj {
                let products_ij: Vec<Key> = (0..gk)
                    .map(|kk| {
                        let key = products.with_index([i as u32, j as u32, kk as u32]);
                        let deps = [a_keys[i * gk + kk].clone(), b_keys[kk * gj + j].clone()];
                        inner.push(Task::new(key.clone(), Op::data(MatmulBlock), deps));
                        key
                    })
                    .collect();
                let level = crate::array::combine_tree(
                    products_ij,
                    crate::DEFAULT_SPLIT_EVERY,
                    crate::DEFAULT_SPLIT_EVERY,
                    &format!("{name}-sum"),
                    &[i as u32, j as u32],
                    &Op::data(SumChunks),
                    &mut inner,
                );
                outputs.push(Task::new(
                    Key::new(name.as_str(), [i as u32, j as u32]),
                    Op::data(SumChunks),
                    level,
                ));
            }
        }
        let middle = hidden_layer(format!("{name}-inner"), inner, vec![self.layer(), b.layer()]);
        Ok(Array::new(name, vec![m, n], layout, outputs, vec![middle]))
    }
}

/// A chunk reshaped in C order (each reshaped chunk is a contiguous run of every
/// group of axes it spans, so this is exact).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReshapeChunk {
    shape: Vec<usize>,
}

impl OpKind for ReshapeChunk {
    const NAME: &'static str = "array.reshape";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let chunk = one_chunk(Self::NAME, inputs)?;
        let shape = IxDyn(&self.shape);
        any_dtype!(chunk, a => {
            let a = a.as_standard_layout().into_owned();
            a.into_shape_with_order(shape)
                .map(value)
                .map_err(|e| CoreError::Internal(format!("{}: {e}", Self::NAME)))
        })
    }
}

/// Axes of the input and the output whose sizes have equal products: reshaping
/// never moves an element from one group to another.
struct Group {
    input: std::ops::Range<usize>,
    output: std::ops::Range<usize>,
}

/// The groups of a reshape from `from` to `to` (equal total sizes, none zero).
fn groups(from: &[usize], to: &[usize]) -> Vec<Group> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < from.len() || j < to.len() {
        let (i0, j0) = (i, j);
        if i == from.len() || j == to.len() {
            // Only axes of size 1 are left on one side.
            out.push(Group { input: i..from.len(), output: j..to.len() });
            break;
        }
        let (mut p, mut q) = (from[i], to[j]);
        i += 1;
        j += 1;
        while p != q {
            if p < q {
                p *= from[i];
                i += 1;
            } else {
                q *= to[j];
                j += 1;
            }
        }
        out.push(Group { input: i0..i, output: j0..j });
    }
    out
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl<T: Element> Array<T> {
    /// The same elements in C order under a new shape, like numpy's `reshape`.
    ///
    /// Axes are matched in groups of equal size products. Where a group merges or
    /// splits axes, its input axes after the first are rechunked whole, and the
    /// first one to chunks that cut the output evenly (Dask's rule), so every output
    /// chunk is one input chunk reshaped. A different total size is an error naming
    /// both shapes.
    ///
    /// ```
    /// use brisk_array::arange;
    /// use brisk_scheduler::Compute;
    /// let x = arange(0.0, 24.0, 1.0, 6)?.reshape(&[4, 6])?;
    /// assert_eq!(x.chunks().sizes(), &[vec![1, 1, 1, 1], vec![6]]);
    /// let y = x.reshape(&[2, 3, 4])?;
    /// assert_eq!(y.compute()?[[1, 2, 3]], 23.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Result<Array<T>> {
        let (n_in, n_out) = (self.shape().iter().product::<usize>(), shape.iter().product());
        if n_in != n_out {
            return Err(Error::ShapeMismatch {
                left: self.shape().to_vec(),
                right: shape.to_vec(),
                reason: format!("hold {n_in} and {n_out} elements: reshape cannot change the size"),
            });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        if n_in == 0 {
            let layout = Chunks::regular(shape, &vec![1; shape.len()])?;
            let name = token("reshape-empty", &(self.name(), shape));
            return crate::array::from_blocks(name, shape, layout, |b| empty_chunk::<T>(&b.shape));
        }
        let mut in_sizes = self.chunks().sizes().to_vec();
        let mut out_sizes = vec![Vec::new(); shape.len()];
        for g in groups(self.shape(), shape) {
            if g.input.len() == 1 && g.output.len() == 1 {
                out_sizes[g.output.start] = in_sizes[g.input.start].clone();
                continue;
            }
            if g.input.is_empty() {
                g.output.for_each(|j| out_sizes[j] = vec![1]);
                continue;
            }
            let rest_in: usize = self.shape()[g.input.start + 1..g.input.end].iter().product();
            let rest_out: usize = shape[g.output.clone()].iter().skip(1).product();
            let whole = g.input.start + 1..g.input.end;
            for (sizes, &n) in in_sizes[whole.clone()].iter_mut().zip(&self.shape()[whole]) {
                *sizes = vec![n];
            }
            // Rows of the first input axis per output row of the first output axis.
            let unit = rest_out / gcd(rest_out, rest_in);
            let first = &mut in_sizes[g.input.start];
            if first.iter().any(|&c| c % unit != 0) {
                let n = self.shape()[g.input.start];
                let target = first.iter().copied().max().unwrap_or(1).div_ceil(unit).max(1) * unit;
                *first = Chunks::regular(&[n], &[target.min(n)])?.sizes()[0].clone();
            }
            if let Some(j) = g.output.clone().next() {
                out_sizes[j] = first.iter().map(|&c| c * rest_in / rest_out).collect();
                g.output.skip(1).for_each(|j| out_sizes[j] = vec![shape[j]]);
            }
        }
        let input = self.rechunk_to(Chunks::explicit(self.shape(), in_sizes)?)?;
        let layout = Chunks::explicit(shape, out_sizes)?;
        if input.chunks().blocks().len() != layout.blocks().len() {
            return Err(Error::Invalid(format!(
                "reshape from {:?} to {shape:?} cannot keep chunks whole (internal layout error)",
                self.shape()
            )));
        }
        let name = token("reshape", &(input.name(), shape));
        let base = Key::named(name.as_str());
        let tasks = layout
            .blocks()
            .iter()
            .zip(input.chunk_keys())
            .map(|(b, key)| {
                let op = Op::data(ReshapeChunk { shape: b.shape.clone() });
                Task::new(base.with_index(b.index.clone()), op, [key.clone()])
            })
            .collect();
        Ok(Array::new(name, shape.to_vec(), layout, tasks, vec![input.layer()]))
    }
}
