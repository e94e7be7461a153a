//! The matrix product of two 2-d arrays, block by block, with the partial products
//! along the contracted axis summed in the fixed combine tree.

use brisk_core::{ArrayChunk, Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::{DEFAULT_SPLIT_EVERY, Layer, Task, combine_tree, token};
use ndarray::{ArrayD, Zip};
use serde::{Deserialize, Serialize};

use crate::array::Array;
use crate::chunks::Chunks;
use crate::element::{BinOp, Numeric, chunk_ref, numeric_dtype, split_inputs, unsupported, value};
use crate::{Error, Result};

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
            Zip::from(&mut acc).and(x).for_each(|a, &b| *a = T::apply(BinOp::Add, *a, b));
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
    /// let c = a.matmul(&b)?;
    /// let want = a.compute()?.into_dimensionality::<ndarray::Ix2>()?
    ///     .dot(&b.compute()?.into_dimensionality::<ndarray::Ix2>()?);
    /// assert!(c.compute()?.iter().zip(want.iter()).all(|(x, y)| (x - y).abs() < 1e-12));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
                let level = combine_tree(
                    products_ij,
                    DEFAULT_SPLIT_EVERY,
                    DEFAULT_SPLIT_EVERY,
                    &format!("{name}-sum"),
                    &[i as u32, j as u32],
                    |_| Op::data(SumChunks),
                    &mut inner,
                );
                outputs.push(Task::new(
                    Key::new(name.as_str(), [i as u32, j as u32]),
                    Op::data(SumChunks),
                    level,
                ));
            }
        }
        let middle = Layer::new(format!("{name}-inner"), inner, vec![self.layer(), b.layer()]);
        Ok(Array::new(name, vec![m, n], layout, outputs, vec![middle]))
    }
}
