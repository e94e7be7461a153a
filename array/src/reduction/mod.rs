//! Reductions: which axes they reduce ([`Axes`], [`AllAxes`]), the methods
//! (`sum`, `mean`, ..., `argmin`, `any`), the lazy scalar of a full reduction
//! ([`Reduced`]), and the fixed tree every reduction combines its chunks in. The
//! per-chunk kernels are in `agg` (values of the data) and `arg` (indices, counts).
//!
//! A reduction over all axes computes to one typed value, like Dask's
//! `x.mean().compute()`; over chosen axes it is a lazy array, and axes out of range
//! are an error when it is built.

pub(crate) mod agg;
pub(crate) mod arg;

use std::marker::PhantomData;
use std::sync::Arc;

use brisk_core::{Element, Error as CoreError, Key, Op, Value};
use brisk_graph::{
    Collection, DEFAULT_SPLIT_EVERY, GraphBuilder, Layer, Task, combine_tree, token,
};

use crate::array::Array;
use crate::chunks::{Block, Chunks};
use crate::{Error, Result};
use agg::{Agg, ChunkPartial, CombinePartial, FinishPartial};
use arg::{Kind, Output};

/// Chosen axes to reduce, and how many partial results each node of the combine
/// tree takes (Dask's `split_every`, 8 unless set). Made from an axis, an array or
/// a slice of axes: `x.sum(0)`, `x.sum([0, 2])`, `x.sum(&axes[..])`.
///
/// ```
/// use brisk_array::{Axes, random};
/// use brisk_scheduler::Compute;
/// let x = random(&[6, 8], &[4, 3], 1)?;
/// let col_means = x.mean([0])?;
/// assert_eq!(col_means.shape(), &[8]);
/// let wide = x.mean(Axes::from([0]).split_every(2)?)?;
/// assert_eq!(wide.compute()?.len(), 8);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Axes {
    axes: Vec<usize>,
    split_every: usize,
}

/// Every axis: the reduction computes to one value of its type (`f64` for the mean
/// of an `f64` array). Made by [`Axes::all`].
///
/// ```
/// use brisk_array::{Axes, random};
/// use brisk_scheduler::Compute;
/// let m: f64 = random(&[1_000, 1_000], &[250, 250], 7)?.mean(Axes::all()).compute()?;
/// assert!((m - 0.5).abs() < 1e-2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AllAxes {
    split_every: usize,
}

fn check_split_every(n: usize) -> Result<usize> {
    if n < 2 {
        return Err(Error::Invalid(format!("split_every must be at least 2, got {n}")));
    }
    Ok(n)
}

impl Axes {
    /// Every axis, for a reduction to one value.
    pub fn all() -> AllAxes {
        AllAxes { split_every: DEFAULT_SPLIT_EVERY }
    }

    /// The same axes, combining `n` partial results per tree node; below 2 is an
    /// error. The answer is the same up to rounding; only the tree changes.
    pub fn split_every(self, n: usize) -> Result<Axes> {
        Ok(Axes { split_every: check_split_every(n)?, ..self })
    }
}

impl AllAxes {
    /// Every axis, combining `n` partial results per tree node (see
    /// [`Axes::split_every`]).
    pub fn split_every(self, n: usize) -> Result<AllAxes> {
        Ok(AllAxes { split_every: check_split_every(n)? })
    }
}

impl From<usize> for Axes {
    fn from(axis: usize) -> Axes {
        Axes::from(vec![axis])
    }
}

impl<const N: usize> From<[usize; N]> for Axes {
    fn from(axes: [usize; N]) -> Axes {
        Axes::from(axes.to_vec())
    }
}

impl From<&[usize]> for Axes {
    fn from(axes: &[usize]) -> Axes {
        Axes::from(axes.to_vec())
    }
}

impl From<Vec<usize>> for Axes {
    fn from(axes: Vec<usize>) -> Axes {
        Axes { axes, split_every: DEFAULT_SPLIT_EVERY }
    }
}

/// What a reduction reduces: [`AllAxes`] (from [`Axes::all`]) gives a [`Reduced`]
/// that computes to one value; anything that converts into [`Axes`] gives
/// `Result<Array<_>>`, an error when an axis is out of range or repeated.
pub trait ReduceAxes: sealed::Sealed {
    /// The reduction's result for elements of type `U`.
    type Output<U: Element>;

    #[doc(hidden)]
    fn build<U: Element>(
        self,
        all: impl FnOnce(usize) -> Reduced<U>,
        along: impl FnOnce(&[usize], usize) -> Result<Array<U>>,
    ) -> Self::Output<U>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::AllAxes {}
    impl<A: Into<super::Axes>> Sealed for A {}
}

impl ReduceAxes for AllAxes {
    type Output<U: Element> = Reduced<U>;

    fn build<U: Element>(
        self,
        all: impl FnOnce(usize) -> Reduced<U>,
        _: impl FnOnce(&[usize], usize) -> Result<Array<U>>,
    ) -> Reduced<U> {
        all(self.split_every)
    }
}

impl<A: Into<Axes>> ReduceAxes for A {
    type Output<U: Element> = Result<Array<U>>;

    fn build<U: Element>(
        self,
        _: impl FnOnce(usize) -> Reduced<U>,
        along: impl FnOnce(&[usize], usize) -> Result<Array<U>>,
    ) -> Result<Array<U>> {
        let axes = self.into();
        along(&axes.axes, axes.split_every)
    }
}

/// A lazy reduction over every axis: computes to one `T`.
#[derive(Clone, Debug)]
pub struct Reduced<T: Element = f64> {
    layer: Arc<Layer>,
    key: Key,
    _type: PhantomData<fn() -> T>,
}

impl<T: Element> Reduced<T> {
    /// The task `key` of `layer` gives the value (a scalar or a 0-d chunk).
    pub(crate) fn new(layer: Arc<Layer>, key: Key) -> Reduced<T> {
        Reduced { layer, key, _type: PhantomData }
    }

    /// The value of a 0-dimensional array.
    fn of(array: Array<T>) -> Reduced<T> {
        let key = array.chunk_keys().next().expect("a 0-d array has one chunk").clone();
        Reduced::new(array.layer(), key)
    }
}

impl<T: Element> Collection for Reduced<T> {
    type Output = T;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.layer.add_to(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<T> {
        let value = values.first();
        let found = value.map(Value::kind).unwrap_or_default();
        match value {
            Some(Value::Array(chunk)) => T::chunk_ref(chunk).and_then(|a| a.iter().next().copied()),
            Some(v) => v.as_scalar().and_then(T::from_scalar),
            None => None,
        }
        .ok_or_else(|| CoreError::TypeMismatch { expected: T::DTYPE.to_string(), found })
    }
}

impl<T: Element> Array<T> {
    /// The sum (pairwise within float chunks, a fixed tree across them); integers
    /// and booleans sum to `i64`, wrapping as numpy's do.
    ///
    /// ```
    /// use brisk_array::{Axes, full};
    /// use brisk_scheduler::Compute;
    /// let x = full(&[4, 5], &[3, 2], 2_i32)?;
    /// let total: i64 = x.sum(Axes::all()).compute()?;
    /// assert_eq!(total, 40);
    /// assert_eq!(x.sum([1])?.compute()?.into_raw_vec_and_offset().0, [10, 10, 10, 10]);
    /// assert!(x.sum([2]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sum<A: ReduceAxes>(&self, axes: A) -> A::Output<T::Sum> {
        self.aggregate(Agg::Sum, axes)
    }

    /// The mean, as floats (`f32` for `f32` arrays, else `f64`).
    pub fn mean<A: ReduceAxes>(&self, axes: A) -> A::Output<T::Float> {
        self.aggregate(Agg::Mean, axes)
    }

    /// The variance with `ddof` delta degrees of freedom (numpy's default is 0).
    pub fn var<A: ReduceAxes>(&self, axes: A, ddof: u32) -> A::Output<T::Float> {
        self.aggregate(Agg::Var { ddof }, axes)
    }

    /// The standard deviation with `ddof` delta degrees of freedom.
    pub fn std<A: ReduceAxes>(&self, axes: A, ddof: u32) -> A::Output<T::Float> {
        self.aggregate(Agg::Std { ddof }, axes)
    }

    /// The smallest element (NaN if any element is NaN).
    pub fn min<A: ReduceAxes>(&self, axes: A) -> A::Output<T> {
        self.aggregate(Agg::Min, axes)
    }

    /// The largest element (NaN if any element is NaN).
    pub fn max<A: ReduceAxes>(&self, axes: A) -> A::Output<T> {
        self.aggregate(Agg::Max, axes)
    }

    /// Any [`Agg`] with the result as floats (`f32` for `f32` arrays, else `f64`),
    /// for code that picks the aggregation at run time. Over chosen axes the result
    /// drops them, like numpy's `x.sum(axis=...)`.
    ///
    /// ```
    /// use brisk_array::{Agg, random};
    /// use brisk_scheduler::Compute;
    /// let x = random(&[6, 8], &[4, 3], 1)?;
    /// let col_means = x.reduce(Agg::Mean, [0])?;
    /// assert_eq!(col_means.shape(), &[8]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reduce<A: ReduceAxes>(&self, agg: Agg, axes: A) -> A::Output<T::Float> {
        self.aggregate(agg, axes)
    }

    fn aggregate<U: Element, A: ReduceAxes>(&self, agg: Agg, axes: A) -> A::Output<U> {
        axes.build(
            |split| {
                let all: Vec<usize> = (0..self.shape().len()).collect();
                Reduced::of(self.reduce_as(agg, all, split))
            },
            |axes, split| Ok(self.reduce_as(agg, self.check_axes(axes)?, split)),
        )
    }

    /// The flat (row-major) index of the smallest element over all axes, or the
    /// index along one axis of each lane's smallest; the first NaN if there is one,
    /// the first of equal minima otherwise, as numpy's `argmin`. More than one axis
    /// is an error.
    ///
    /// ```
    /// use brisk_array::{Axes, Chunks, from_ndarray};
    /// use brisk_scheduler::Compute;
    /// let a = ndarray::array![[3, 1, 2], [0, 5, 0]].into_dyn();
    /// let x = from_ndarray(&a, Chunks::regular(&[2, 3], &[1, 2])?)?;
    /// assert_eq!(x.argmin(Axes::all()).compute()?, 3);
    /// assert_eq!(x.argmin(1)?.compute()?.into_raw_vec_and_offset().0, vec![1, 0]);
    /// assert_eq!(x.argmax(0)?.compute()?.into_raw_vec_and_offset().0, vec![0, 1, 0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn argmin<A: ReduceAxes>(&self, axis: A) -> A::Output<i64> {
        self.arg(Kind::ArgMin, axis)
    }

    /// The index of the largest element (NaN and ties as [`Array::argmin`]).
    pub fn argmax<A: ReduceAxes>(&self, axis: A) -> A::Output<i64> {
        self.arg(Kind::ArgMax, axis)
    }

    fn arg<A: ReduceAxes>(&self, kind: Kind, axis: A) -> A::Output<i64> {
        axis.build(
            |split| self.arg_all(kind, Output::Index, split),
            |axes, split| match *axes {
                [axis] => Ok(self.arg_along(kind, self.check_axes(&[axis])?, split)),
                _ => Err(Error::Invalid(format!(
                    "argmin and argmax take one axis or Axes::all(), not {axes:?}"
                ))),
            },
        )
    }

    /// How many elements are not zero (NaN counts, as in numpy).
    pub fn count_nonzero<A: ReduceAxes>(&self, axes: A) -> A::Output<i64> {
        axes.build(
            |split| self.arg_all(Kind::Count, Output::Count, split),
            |axes, split| self.count_along(axes, split),
        )
    }

    /// Whether any element is non-zero.
    pub fn any<A: ReduceAxes>(&self, axes: A) -> A::Output<bool> {
        axes.build(
            |split| self.arg_all(Kind::Count, Output::Any, split),
            |axes, split| Ok(self.count_along(axes, split)?.gt(0)),
        )
    }

    /// Whether every element is non-zero (true where there are none).
    pub fn all<A: ReduceAxes>(&self, axes: A) -> A::Output<bool> {
        axes.build(
            |split| self.arg_all(Kind::Count, Output::All, split),
            |axes, split| {
                let n: usize =
                    axes.iter().map(|&d| self.shape().get(d).copied().unwrap_or(1)).product();
                Ok(self.count_along(axes, split)?.eq(n as i64))
            },
        )
    }

    fn count_along(&self, axes: &[usize], split: usize) -> Result<Array<i64>> {
        let nonzero = self.ne(T::default()).astype::<i64>();
        Ok(nonzero.reduce_as(Agg::Sum, nonzero.check_axes(axes)?, split))
    }

    /// `axes` sorted, or an error if one is out of range or repeated.
    fn check_axes(&self, axes: &[usize]) -> Result<Vec<usize>> {
        let ndim = self.shape().len();
        let mut axes = axes.to_vec();
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

    /// An [`Agg`] over `axes` (sorted, checked).
    fn reduce_as<U: Element>(&self, agg: Agg, axes: Vec<usize>, split_every: usize) -> Array<U> {
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
    ) -> Array<U> {
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
                |_| ops.combine.clone(),
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
        let middle = Layer::new(format!("{name}-tree"), tasks, vec![self.layer()]);
        let shape: Vec<usize> = kept.iter().map(|&d| self.shape()[d]).collect();
        let layout = Chunks::explicit(
            &shape,
            kept.iter().map(|&d| self.chunks().sizes()[d].clone()).collect(),
        )
        .expect("the kept axes keep their chunks");
        Array::new(name, shape, layout, finish_tasks, vec![middle])
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
