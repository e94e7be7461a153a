//! Record-batch plumbing the frame ops share: taking batches out of task values,
//! concatenating them, naming the op in Arrow errors, and the [`Item`] op that
//! takes each piece of a split (a list value) out as its own task result.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use brisk_core::{Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::Task;
use serde::{Deserialize, Serialize};

/// A schema's columns by name, found by hash: looking each of many columns up by
/// scanning the schema made wide frames quadratic (20,000 columns took 10 s).
pub(crate) struct ByName<'a>(HashMap<&'a str, usize>);

impl<'a> ByName<'a> {
    /// The index of every name (the first, for a repeated one).
    pub(crate) fn of(schema: &'a Schema) -> Self {
        let mut index = HashMap::with_capacity(schema.fields().len());
        for (i, f) in schema.fields().iter().enumerate() {
            index.entry(f.name().as_str()).or_insert(i);
        }
        ByName(index)
    }

    /// The position of the column called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        self.0.get(name).copied()
    }
}

/// The batch a value holds, or a type error naming the op.
pub(crate) fn batch_of(op: &str, v: &Value) -> brisk_core::Result<RecordBatch> {
    match v {
        Value::Batch(b) => Ok(b.clone()),
        other => Err(CoreError::TypeMismatch {
            expected: format!("record batch for {op}"),
            found: other.kind(),
        }),
    }
}

/// The batch of an op's one input, or an arity error naming the op.
pub(crate) fn first_batch(op: &str, inputs: &[Value]) -> brisk_core::Result<RecordBatch> {
    let v = inputs.first().ok_or(CoreError::Arity { op: op.into(), expected: 1, found: 0 })?;
    batch_of(op, v)
}

/// `batches` (at least one, of one schema) as one batch; a single batch as it is.
pub(crate) fn concat_all(op: &str, batches: Vec<RecordBatch>) -> brisk_core::Result<RecordBatch> {
    let schema = batches.first().map(RecordBatch::schema).ok_or(CoreError::Arity {
        op: op.into(),
        expected: 1,
        found: 0,
    })?;
    if batches.len() == 1 {
        return Ok(batches.into_iter().next().expect("one"));
    }
    arrow::compute::concat_batches(&schema, &batches).map_err(arrow_err(op))
}

/// Turns an Arrow error of op `op` into a user error naming the op.
pub(crate) fn arrow_err(op: &str) -> impl Fn(arrow::error::ArrowError) -> CoreError + '_ {
    move |e| CoreError::user(format!("{op}: {e}"))
}

/// Item `index` of a list value: one piece of a split, as its own task result.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Item {
    index: usize,
}

impl OpKind for Item {
    const NAME: &'static str = "frame.item";

    fn list_item(&self) -> Option<usize> {
        Some(self.index)
    }

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        match inputs.first() {
            Some(Value::List(items)) => items.get(self.index).cloned().ok_or_else(|| {
                CoreError::Internal(format!(
                    "{}: no item {} of {}",
                    Self::NAME,
                    self.index,
                    items.len()
                ))
            }),
            other => Err(CoreError::Internal(format!(
                "{}: expected a list, found {}",
                Self::NAME,
                other.map_or_else(|| "nothing".to_string(), Value::kind)
            ))),
        }
    }
}

/// Tasks taking each item of the list results `lists` out as its own result:
/// `keys[j][i]` is item j of list i.
pub(crate) fn items(
    name: &str,
    lists: &[Key],
    count: usize,
    tasks: &mut Vec<Task>,
) -> Vec<Vec<Key>> {
    let base = Key::named(format!("{name}-item"));
    (0..count)
        .map(|j| {
            lists
                .iter()
                .enumerate()
                .map(|(i, list)| {
                    let key = base.with_index([i as u32, j as u32]);
                    tasks.push(Task::new(key.clone(), Op::data(Item { index: j }), [list.clone()]));
                    key
                })
                .collect()
        })
        .collect()
}
