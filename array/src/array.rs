//! The lazy chunked array.

use std::sync::Arc;

use brisk_core::{ArrayChunk, DType, Error as CoreError, Key, Op, Scalar, Value};
use brisk_graph::{Collection, GraphBuilder, Task};
use ndarray::{ArrayD, IxDyn, SliceInfoElem};

use crate::chunks::Chunks;
use crate::ops::{
    BinOp, ChunkStats, CombineStats, Finish, FinishStats, FullChunk, RandomChunk, ScalarArith,
};
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
    fn new(
        name: String,
        shape: Vec<usize>,
        chunks: Chunks,
        tasks: Vec<Task>,
        inputs: Vec<Array>,
    ) -> Self {
        Self { inner: Arc::new(Inner { name, shape, chunks, dtype: DType::F64, tasks, inputs }) }
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
    fn map_chunks(&self, prefix: &str, params: &impl std::hash::Hash, op: Op) -> Array {
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

    /// The sum of all elements (pairwise within chunks, a fixed tree across them).
    pub fn sum(&self) -> Reduced {
        self.reduce_all(Finish::Sum, DEFAULT_SPLIT_EVERY)
    }

    /// The mean of all elements.
    pub fn mean(&self) -> Reduced {
        self.reduce_all(Finish::Mean, DEFAULT_SPLIT_EVERY)
    }

    /// The mean of all elements, combining `split_every` partial results per tree
    /// node (at least 2).
    pub fn mean_split_every(&self, split_every: usize) -> Result<Reduced> {
        if split_every < 2 {
            return Err(Error::Invalid(format!(
                "split_every must be at least 2, got {split_every}"
            )));
        }
        Ok(self.reduce_all(Finish::Mean, split_every))
    }

    fn reduce_all(&self, finish: Finish, split_every: usize) -> Reduced {
        let partial = self.map_chunks("chunk-stats", &(), Op::data(ChunkStats));
        let mut tasks = Vec::new();
        let mut level: Vec<Key> = partial.inner.tasks.iter().map(|t| t.key.clone()).collect();
        let token = token("reduce", &(partial.name(), finish, split_every));
        let mut depth = 0u32;
        while level.len() > 1 {
            let base = Key::named(format!("{token}-{depth}"));
            level = level
                .chunks(split_every)
                .enumerate()
                .map(|(i, group)| {
                    let key = base.with_index([i as u32]);
                    tasks.push(Task::new(key.clone(), Op::data(CombineStats), group.to_vec()));
                    key
                })
                .collect();
            depth += 1;
        }
        let key = Key::named(format!("{token}-result"));
        tasks.push(Task::new(key.clone(), Op::data(FinishStats { finish }), level));
        Reduced { key, tasks: Arc::new(tasks), input: partial }
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

fn token(prefix: &str, params: &impl std::hash::Hash) -> String {
    Key::token(prefix, params).name().to_string()
}

fn from_blocks(
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
    key: Key,
    tasks: Arc<Vec<Task>>,
    input: Array,
}

impl Reduced {
    /// The number of tasks in its graph (fused tasks counted apart).
    pub fn graph_len(&self) -> usize {
        let mut b = GraphBuilder::new();
        self.add_tasks(&mut b);
        b.finish().map(|g| g.len()).unwrap_or(0)
    }
}

impl Collection for Reduced {
    type Output = f64;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        if graph.contains(&self.key) {
            return;
        }
        for t in self.tasks.iter() {
            graph.insert(t.clone());
        }
        add_array_tasks(&self.input, graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<f64> {
        match values.first() {
            Some(Value::Scalar(Scalar::F64(x))) => Ok(*x),
            Some(other) => {
                Err(CoreError::TypeMismatch { expected: "f64".into(), found: other.kind() })
            }
            None => Err(CoreError::Internal("reduction produced no value".into())),
        }
    }
}
