//! Joining arrays: `concatenate` along an existing axis, `stack` along a new one.

use brisk_core::{Element, Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::Task;
use ndarray::Axis;
use serde::{Deserialize, Serialize};

use crate::array::{Array, empty_chunk, from_blocks};
use crate::chunks::Chunks;
use crate::element::{any_dtype, one_chunk, value};
use crate::{Error, Result};

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
    let name = brisk_graph::token("concatenate", &(names, axis));
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
        return from_blocks(name, &shape, layout, |b| empty_chunk::<T>(&b.shape));
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
            let name = brisk_graph::token("expand-dims", &(a.name(), axis));
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
