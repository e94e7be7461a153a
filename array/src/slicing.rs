//! Basic slicing, numpy's `x[i, a:b:s, ...]`: each output chunk is cut from exactly
//! one input chunk.

use brisk_core::{Element, Key, Op, OpKind, Value};
use brisk_graph::Task;
use ndarray::SliceInfoElem;
use serde::{Deserialize, Serialize};

use crate::array::{Array, empty_chunk, from_blocks};
use crate::chunks::{Chunks, linear};
use crate::element::{any_dtype, one_chunk, value};
use crate::{Error, Result};

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
            let name = brisk_graph::token("slice-empty", &(self.name(), index));
            return from_blocks(name, &out_shape, layout, |b| empty_chunk::<T>(&b.shape));
        }
        let name = brisk_graph::token("slice", &(self.name(), index));
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
}
