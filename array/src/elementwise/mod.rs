//! Element-wise operations: casts, comparisons, arithmetic with NumPy broadcasting
//! (the fallible [`Array::binary`]; the `std::ops` operators are in `operators`),
//! the math functions, numpy's `where`, and user kernels with `map_blocks`.

mod operators;
pub(crate) mod ops;

use std::sync::Arc;

use brisk_core::{Element, Error as CoreError, Key, Op, Value};
use brisk_graph::{Layer, Task, token};
use ndarray::ArrayD;

use crate::array::Array;
use crate::chunks::Chunks;
use crate::element::{BinOp, Float, Numeric, one_chunk, value};
use crate::{Error, Result};
use ops::{ArrayArith, AsType, Cmp, Compare, CompareScalar, ScalarArith, Unary, UnaryOp, Where};

/// The shape and chunks of a NumPy broadcast of several arrays.
pub(crate) struct Broadcast {
    shape: Vec<usize>,
    sizes: Vec<Vec<usize>>,
}

/// An operand of a broadcast, aligned to the output's chunks, whatever its type.
pub(crate) struct Aligned {
    layer: Arc<Layer>,
    shape: Vec<usize>,
    grid: Vec<usize>,
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
    pub(crate) fn align<T: Element>(&self, x: &Array<T>) -> Result<Aligned> {
        let pad = self.shape.len() - x.shape().len();
        let sizes = (0..x.shape().len())
            .map(|j| if self.spans(x.shape(), j) { self.sizes[j + pad].clone() } else { vec![1] })
            .collect();
        let x = x.rechunk_to(Chunks::explicit(x.shape(), sizes)?)?;
        Ok(Aligned { layer: x.layer(), shape: x.shape().to_vec(), grid: x.chunks().grid() })
    }

    /// One task per output chunk running `op` on the aligned operands' chunks there.
    pub(crate) fn tasks<U: Element>(
        &self,
        prefix: &str,
        params: &impl std::hash::Hash,
        aligned: Vec<Aligned>,
        op: Op,
    ) -> Result<Array<U>> {
        let layout = Chunks::explicit(&self.shape, self.sizes.clone())?;
        let names: Vec<&str> = aligned.iter().map(|a| a.layer.name()).collect();
        let name = token(prefix, &(names, params));
        let base = Key::named(name.as_str());
        let keys: Vec<Vec<&Key>> = aligned.iter().map(|a| a.layer.keys().collect()).collect();
        let ndim = self.shape.len();
        let tasks = layout
            .blocks()
            .iter()
            .map(|blk| {
                let deps = aligned.iter().zip(&keys).map(|(x, keys)| {
                    let (pad, grid) = (ndim - x.shape.len(), &x.grid);
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
        let inputs = aligned.into_iter().map(|a| a.layer).collect();
        Ok(Array::new(name, self.shape.clone(), layout, tasks, inputs))
    }
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

/// What a comparison compares an array with: a scalar of its element type, or
/// another array of that type, broadcast against it.
pub trait Operand<T: Element>: sealed::Sealed {
    #[doc(hidden)]
    fn compare(self, x: &Array<T>, cmp: Cmp) -> Array<bool>;
}

mod sealed {
    pub trait Sealed {}
    impl<T: brisk_core::Element> Sealed for T {}
    impl<T: brisk_core::Element> Sealed for &super::Array<T> {}
}

impl<T: Element> Operand<T> for T {
    fn compare(self, x: &Array<T>, cmp: Cmp) -> Array<bool> {
        let scalar = self.to_scalar();
        x.map_chunks("compare-scalar", &(cmp, self.bits()), Op::data(CompareScalar { cmp, scalar }))
    }
}

impl<T: Element> Operand<T> for &Array<T> {
    fn compare(self, x: &Array<T>, cmp: Cmp) -> Array<bool> {
        or_panic(x.compare(cmp, self))
    }
}

/// The array an operator built, or a panic with the reason it could not (like
/// ndarray's operators on shapes that do not broadcast).
pub(crate) fn or_panic<T: Element>(result: Result<Array<T>>) -> Array<T> {
    result.unwrap_or_else(|e| panic!("{e}"))
}

impl<T: Element> Array<T> {
    /// Every element cast to `U`, as numpy's `astype`: floats to integers truncate
    /// toward zero, anything to `bool` is "not zero". Casting to the same type adds
    /// no task.
    pub fn astype<U: Element>(&self) -> Array<U> {
        if T::DTYPE == U::DTYPE {
            // The same type (element types are sealed, one per dtype).
            return self.retyped();
        }
        self.map_chunks("astype", &U::DTYPE, Op::data(AsType { to: U::DTYPE }))
    }

    /// `self cmp other` element-wise with NumPy broadcasting, as a bool array; a
    /// shape that does not broadcast is an error. [`Array::eq`], [`Array::lt`] and
    /// the others are the short forms, which panic on such shapes instead.
    pub fn compare(&self, cmp: Cmp, other: &Array<T>) -> Result<Array<bool>> {
        let b = Broadcast::of(&[(self.shape(), self.chunks()), (other.shape(), other.chunks())])?;
        let aligned = vec![b.align(self)?, b.align(other)?];
        b.tasks("compare", &cmp, aligned, Op::data(Compare { cmp }))
    }

    /// `self == other` element-wise, `other` a scalar or an array (broadcast).
    ///
    /// # Panics
    ///
    /// If `other` is an array whose shape does not broadcast against `self`'s;
    /// [`Array::compare`] returns that as an error instead.
    ///
    /// ```
    /// use brisk_array::arange;
    /// use brisk_scheduler::Compute;
    /// let x = arange(0.0, 4.0, 1.0, 2)?;
    /// assert_eq!(x.eq(2.0).compute()?.into_raw_vec_and_offset().0, [false, false, true, false]);
    /// assert_eq!(x.le(&arange(3.0, -1.0, -1.0, 2)?).compute()?.into_raw_vec_and_offset().0, [true, true, false, false]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn eq(&self, other: impl Operand<T>) -> Array<bool> {
        other.compare(self, Cmp::Eq)
    }

    /// `self != other` element-wise (panics as [`Array::eq`]).
    pub fn ne(&self, other: impl Operand<T>) -> Array<bool> {
        other.compare(self, Cmp::Ne)
    }

    /// `self < other` element-wise (panics as [`Array::eq`]).
    pub fn lt(&self, other: impl Operand<T>) -> Array<bool> {
        other.compare(self, Cmp::Lt)
    }

    /// `self <= other` element-wise (panics as [`Array::eq`]).
    pub fn le(&self, other: impl Operand<T>) -> Array<bool> {
        other.compare(self, Cmp::Le)
    }

    /// `self > other` element-wise (panics as [`Array::eq`]).
    pub fn gt(&self, other: impl Operand<T>) -> Array<bool> {
        other.compare(self, Cmp::Gt)
    }

    /// `self >= other` element-wise (panics as [`Array::eq`]).
    pub fn ge(&self, other: impl Operand<T>) -> Array<bool> {
        other.compare(self, Cmp::Ge)
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

impl<T: Numeric> Array<T> {
    /// `self op x` element-wise, or `x op self` when `scalar_first`.
    pub(crate) fn scalar_arith(&self, op: BinOp, x: T, scalar_first: bool) -> Array<T> {
        let scalar = x.to_scalar();
        self.map_chunks(
            "scalar-arith",
            &(op, x.bits(), scalar_first),
            Op::data(ScalarArith { op, scalar, scalar_first }),
        )
    }

    pub(crate) fn unary(&self, op: Option<UnaryOp>, power: Option<f64>) -> Array<T> {
        self.map_chunks("unary", &(op, power.map(f64::to_bits)), Op::data(Unary { op, power }))
    }

    /// `|x|` element-wise.
    pub fn abs(&self) -> Array<T> {
        self.unary(Some(UnaryOp::Abs), None)
    }

    /// `self op other` element-wise with NumPy broadcasting: shapes are aligned on
    /// the right and an axis of size 1 stretches to the other's size; where both
    /// arrays span an axis, both are rechunked to the common refinement of their
    /// chunks. Shapes that do not broadcast are an error naming both. The operators
    /// (`&x + &y`, `&x * &y`, ...) do the same and panic on such shapes; use this
    /// where a bad shape must be handled. [`BinOp::Div`] on integers gives 0 where
    /// the divisor is 0, as numpy does.
    ///
    /// ```
    /// use brisk_array::{BinOp, random};
    /// use brisk_scheduler::Compute;
    /// let x = random(&[4, 3], &[2, 3], 1)?;
    /// let row = random(&[3], &[3], 2)?;
    /// assert_eq!(x.binary(BinOp::Sub, &row)?.compute()?, x.compute()? - row.compute()?);
    /// assert!(x.binary(BinOp::Add, &random(&[4], &[4], 3)?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn binary(&self, op: BinOp, other: &Array<T>) -> Result<Array<T>> {
        let b = Broadcast::of(&[(self.shape(), self.chunks()), (other.shape(), other.chunks())])?;
        let aligned = vec![b.align(self)?, b.align(other)?];
        b.tasks("arith", &op, aligned, Op::data(ArrayArith { op }))
    }
}

impl<T: Float> Array<T> {
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
/// use brisk_array::{arange, full, where_};
/// use brisk_scheduler::Compute;
/// let x = arange(0.0, 6.0, 1.0, 4)?;
/// let clipped = where_(&x.gt(3.0), &full(&[6], &[6], 3.0)?, &x)?;
/// assert_eq!(clipped.compute()?.into_raw_vec_and_offset().0, vec![0.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn where_<T: Element>(cond: &Array<bool>, a: &Array<T>, b: &Array<T>) -> Result<Array<T>> {
    let plan = Broadcast::of(&[
        (cond.shape(), cond.chunks()),
        (a.shape(), a.chunks()),
        (b.shape(), b.chunks()),
    ])?;
    let aligned = vec![plan.align(cond)?, plan.align(a)?, plan.align(b)?];
    plan.tasks("where", &(), aligned, Op::data(Where))
}
