//! The lazy chunked array: its layer of tasks, its shape and chunk layout, and how
//! it computes to an `ndarray`.

use std::marker::PhantomData;
use std::sync::Arc;

use brisk_core::{DType, Element, Error as CoreError, Key, Op, Value};
use brisk_graph::{Collection, GraphBuilder, Layer, Task};
use ndarray::{ArrayD, IxDyn, SliceInfoElem};

use crate::Result;
use crate::chunks::{Block, Chunks};

/// A lazy n-dimensional array of `T` (`f64` unless said otherwise) cut into chunks;
/// each chunk is one task of the graph.
///
/// The element type is part of the array's type, so a dtype mismatch is a compile
/// error: [`Array::astype`] converts, comparisons give `Array<bool>`, and the math
/// functions and division exist only for float arrays.
///
/// ```
/// use brisk_array::{Axes, random};
/// use brisk_scheduler::Compute;
/// let x = random(&[1_000, 1_000], &[250, 500], 42)?;
/// assert_eq!(x.chunks().grid(), vec![4, 2]);
/// let m: f64 = x.mean(Axes::all()).compute()?;
/// assert!((m - 0.5).abs() < 0.01);
/// let above: i64 = x.gt(0.9).astype::<i64>().sum(Axes::all()).compute()?;
/// assert!((above - 100_000).abs() < 2_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Array<T: Element = f64> {
    /// One task per chunk, in row-major chunk order, and the layers they read.
    layer: Arc<Layer>,
    shape: Vec<usize>,
    chunks: Chunks,
    _type: PhantomData<fn() -> T>,
}

impl<T: Element> Array<T> {
    /// An array whose chunks are `tasks` (row-major chunk order), reading `inputs`.
    pub(crate) fn new(
        name: String,
        shape: Vec<usize>,
        chunks: Chunks,
        tasks: Vec<Task>,
        inputs: Vec<Arc<Layer>>,
    ) -> Self {
        Self { layer: Layer::new(name, tasks, inputs), shape, chunks, _type: PhantomData }
    }

    /// The same tasks seen as an array of `U` (for a cast that changes nothing).
    pub(crate) fn retyped<U: Element>(&self) -> Array<U> {
        let (layer, shape, chunks) = (self.layer.clone(), self.shape.clone(), self.chunks.clone());
        Array { layer, shape, chunks, _type: PhantomData }
    }

    /// The array's tasks as a graph layer, for arrays built on it.
    pub(crate) fn layer(&self) -> Arc<Layer> {
        self.layer.clone()
    }

    /// The keys of its chunks, in row-major chunk order.
    pub(crate) fn chunk_keys(&self) -> impl Iterator<Item = &Key> {
        self.layer.keys()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The chunk layout.
    pub fn chunks(&self) -> &Chunks {
        &self.chunks
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// The name shared by the keys of its chunks.
    pub fn name(&self) -> &str {
        self.layer.name()
    }

    /// A per-chunk op applied to every chunk of `self`.
    pub(crate) fn map_chunks<U: Element>(
        &self,
        prefix: &str,
        params: &impl std::hash::Hash,
        op: Op,
    ) -> Array<U> {
        let name = brisk_graph::token(prefix, &(self.name(), params));
        let base = Key::named(name.as_str());
        let tasks = self
            .chunk_keys()
            .map(|k| Task::new(base.with_index(k.index()), op.clone(), [k.clone()]))
            .collect();
        Array::new(name, self.shape.clone(), self.chunks.clone(), tasks, vec![self.layer()])
    }
}

/// An array of root tasks, one per block of `layout`, each running `op(block)`.
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

/// A chunk of `T::default()` (zero, false): the stand-in for an empty selection.
pub(crate) fn empty_chunk<T: Element>(shape: &[usize]) -> Op {
    Op::Const(crate::element::value(ArrayD::from_elem(IxDyn(shape), T::default())))
}

/// The slice of the whole array a block covers.
pub(crate) fn block_slice(b: &Block) -> Vec<SliceInfoElem> {
    b.start.iter().zip(&b.shape).map(|(&s, &n)| (s as isize..(s + n) as isize).into()).collect()
}

impl<T: Element> Collection for Array<T> {
    type Output = ArrayD<T>;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.layer.add_to(graph);
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
