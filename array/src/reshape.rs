//! The same elements in a new layout: `rechunk`, `reshape` and `transpose`.

use brisk_core::{Element, Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::Task;
use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use serde::{Deserialize, Serialize};

use crate::array::{Array, empty_chunk, from_blocks};
use crate::chunks::{Chunks, linear};
use crate::element::{any_dtype, chunk_ref, one_chunk, unsupported, value};
use crate::{Error, Result};

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
        let name = brisk_graph::token("transpose", &(self.name(), &axes));
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
        let name = brisk_graph::token("rechunk", &(self.name(), &layout));
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
            let name = brisk_graph::token("reshape-empty", &(self.name(), shape));
            return from_blocks(name, shape, layout, |b| empty_chunk::<T>(&b.shape));
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
        let name = brisk_graph::token("reshape", &(input.name(), shape));
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
