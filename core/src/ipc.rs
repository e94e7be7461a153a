//! Values as Arrow record batches: the form a result takes where another program
//! reads it (a worker's Flight `DoGet`, as Arrow IPC), so that any Arrow reader,
//! pyarrow's among them, gets columns it understands.
//!
//! - A record batch is itself, its schema marked `brisk.value = batch`.
//! - An array chunk is one column `values` of its elements in C order, with
//!   `brisk.value = array`, `brisk.dtype` (`f64`, ...) and `brisk.shape`
//!   (`3,4`; empty for a 0-d chunk) on the schema.
//! - A scalar is one row of one column `value`, `brisk.value = scalar`.
//! - A list is one binary column `item`, a row per item in [`Value::encode`]'s
//!   bytes, `brisk.value = list` (only Brisk reads those items).
//! - An opaque value of a registered type is one row of one binary column
//!   `value`, its MessagePack bytes, with `brisk.value = opaque` and its Rust type
//!   name in `brisk.type` (any MessagePack reader decodes it).
//!
//! [`Value::from_batches`] turns any of these back into the value it was, bit for
//! bit; opaque values of unregistered types have no such form.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::{ArrayD, IxDyn};

use crate::{ArrayChunk, Error, Result, Scalar, Value};

/// The schema metadata key that says which value a batch holds.
pub const VALUE_KIND: &str = "brisk.value";
/// The schema metadata key of an array chunk's element type.
pub const ARRAY_DTYPE: &str = "brisk.dtype";
/// The schema metadata key of an array chunk's shape, comma-separated.
pub const ARRAY_SHAPE: &str = "brisk.shape";
/// The schema metadata key of an opaque value's Rust type name.
pub const OPAQUE_TYPE: &str = "brisk.type";

fn bad(reason: impl Into<String>) -> Error {
    Error::Decode { what: "value from record batches", reason: reason.into() }
}

fn arrow_error(what: &str) -> impl Fn(arrow_schema::ArrowError) -> Error + '_ {
    move |e| Error::Encode { what: what.into(), reason: e.to_string() }
}

/// One column named `name`, as a batch whose schema carries `meta`.
fn one_column(name: &str, column: ArrayRef, meta: HashMap<String, String>) -> Result<RecordBatch> {
    let field = Field::new(name, column.data_type().clone(), false);
    let schema = Arc::new(Schema::new(vec![field]).with_metadata(meta));
    RecordBatch::try_new(schema, vec![column]).map_err(arrow_error("value as a record batch"))
}

fn kind(k: &str) -> HashMap<String, String> {
    HashMap::from([(VALUE_KIND.to_string(), k.to_string())])
}

/// A primitive column's values.
fn primitive<T: ArrowPrimitiveType>(c: &ArrayRef) -> Vec<T::Native> {
    c.as_primitive::<T>().values().to_vec()
}

/// `values` in C order as an array of `shape`, if they are as many as it holds.
/// An array's values in logical (row-major) order: one copy of the memory when
/// it is laid out that way already, as it nearly always is (an element-wise walk
/// over a dynamic-rank array costs several times more).
fn flat<T: Copy>(a: &ArrayD<T>) -> Vec<T> {
    match a.as_slice() {
        Some(values) => values.to_vec(),
        None => a.iter().copied().collect(),
    }
}

fn shaped<T>(shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>> {
    let want: usize = shape.iter().product();
    if want != values.len() {
        return Err(bad(format!("shape {shape:?} holds {want} values, not {}", values.len())));
    }
    ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| bad(e.to_string()))
}

impl Value {
    /// The value as a record batch (see the module's text for the layout).
    pub fn to_batch(&self) -> Result<RecordBatch> {
        match self {
            Value::Batch(b) => {
                let mut meta = b.schema().metadata().clone();
                meta.insert(VALUE_KIND.to_string(), "batch".to_string());
                let schema = Arc::new(b.schema().as_ref().clone().with_metadata(meta));
                RecordBatch::try_new(schema, b.columns().to_vec())
                    .map_err(arrow_error("record batch"))
            }
            Value::Array(chunk) => {
                let column: ArrayRef = match chunk.as_ref() {
                    ArrayChunk::F64(a) => Arc::new(Float64Array::from(flat(a))),
                    ArrayChunk::F32(a) => Arc::new(Float32Array::from(flat(a))),
                    ArrayChunk::I64(a) => Arc::new(Int64Array::from(flat(a))),
                    ArrayChunk::I32(a) => Arc::new(Int32Array::from(flat(a))),
                    ArrayChunk::Bool(a) => {
                        Arc::new(a.iter().map(|&b| Some(b)).collect::<BooleanArray>())
                    }
                };
                let shape: Vec<String> = chunk.shape().iter().map(usize::to_string).collect();
                let mut meta = kind("array");
                meta.insert(ARRAY_DTYPE.into(), chunk.dtype().to_string());
                meta.insert(ARRAY_SHAPE.into(), shape.join(","));
                one_column("values", column, meta)
            }
            Value::Scalar(s) => {
                let column: ArrayRef = match *s {
                    Scalar::F64(x) => Arc::new(Float64Array::from(vec![x])),
                    Scalar::F32(x) => Arc::new(Float32Array::from(vec![x])),
                    Scalar::I64(x) => Arc::new(Int64Array::from(vec![x])),
                    Scalar::I32(x) => Arc::new(Int32Array::from(vec![x])),
                    Scalar::Bool(x) => Arc::new(BooleanArray::from(vec![x])),
                };
                one_column("value", column, kind("scalar"))
            }
            Value::List(items) => {
                let bytes = items.iter().map(Value::encode).collect::<Result<Vec<_>>>()?;
                let column = BinaryArray::from_iter_values(bytes.iter());
                one_column("item", Arc::new(column), kind("list"))
            }
            Value::Opaque(o) => {
                let bytes = o.portable_bytes()?;
                let column = BinaryArray::from_iter_values([bytes.as_ref()]);
                let mut meta = kind("opaque");
                meta.insert(OPAQUE_TYPE.to_string(), o.type_name().to_string());
                one_column("value", Arc::new(column), meta)
            }
        }
    }

    /// The value a batch made by [`Value::to_batch`] holds. A batch without the
    /// marker is taken as a record batch value.
    pub fn from_batch(batch: RecordBatch) -> Result<Value> {
        let schema = batch.schema();
        let meta = schema.metadata();
        let kind = meta.get(VALUE_KIND).map(String::as_str).unwrap_or("batch");
        let single = || match batch.columns() {
            [c] if c.null_count() == 0 => Ok(c.clone()),
            _ => Err(bad(format!("a {kind} needs one column without nulls"))),
        };
        match kind {
            "batch" => {
                let mut meta = meta.clone();
                meta.remove(VALUE_KIND);
                let schema: SchemaRef = Arc::new(schema.as_ref().clone().with_metadata(meta));
                let columns = batch.columns().to_vec();
                Ok(Value::Batch(
                    RecordBatch::try_new(schema, columns).map_err(|e| bad(e.to_string()))?,
                ))
            }
            "scalar" => {
                let c = single()?;
                if c.len() != 1 {
                    return Err(bad(format!("a scalar needs one row, not {}", c.len())));
                }
                Ok(Value::Scalar(match c.data_type() {
                    DataType::Float64 => Scalar::F64(c.as_primitive::<Float64Type>().value(0)),
                    DataType::Float32 => Scalar::F32(c.as_primitive::<Float32Type>().value(0)),
                    DataType::Int64 => Scalar::I64(c.as_primitive::<Int64Type>().value(0)),
                    DataType::Int32 => Scalar::I32(c.as_primitive::<Int32Type>().value(0)),
                    DataType::Boolean => Scalar::Bool(c.as_boolean().value(0)),
                    t => return Err(bad(format!("no scalar of type {t}"))),
                }))
            }
            "array" => {
                let c = single()?;
                let shape: Vec<usize> = match meta.get(ARRAY_SHAPE).map(String::as_str) {
                    Some("") => vec![],
                    Some(s) => s
                        .split(',')
                        .map(|d| d.parse().map_err(|_| bad(format!("bad shape '{s}'"))))
                        .collect::<Result<_>>()?,
                    None => return Err(bad("an array needs its shape")),
                };
                let dtype = meta.get(ARRAY_DTYPE).map(String::as_str).unwrap_or("");
                let chunk = match (dtype, c.data_type()) {
                    ("f64", DataType::Float64) => {
                        ArrayChunk::F64(shaped(&shape, primitive::<Float64Type>(&c))?)
                    }
                    ("f32", DataType::Float32) => {
                        ArrayChunk::F32(shaped(&shape, primitive::<Float32Type>(&c))?)
                    }
                    ("i64", DataType::Int64) => {
                        ArrayChunk::I64(shaped(&shape, primitive::<Int64Type>(&c))?)
                    }
                    ("i32", DataType::Int32) => {
                        ArrayChunk::I32(shaped(&shape, primitive::<Int32Type>(&c))?)
                    }
                    ("bool", DataType::Boolean) => {
                        ArrayChunk::Bool(shaped(&shape, c.as_boolean().values().iter().collect())?)
                    }
                    (d, t) => return Err(bad(format!("no array of dtype '{d}' in a {t} column"))),
                };
                Ok(Value::Array(Arc::new(chunk)))
            }
            "list" => {
                let c = single()?;
                let items =
                    c.as_binary_opt::<i32>().ok_or_else(|| bad("a list needs a binary column"))?;
                let values = items.iter().map(|b| Value::decode(b.unwrap_or_default()));
                Ok(Value::List(values.collect::<Result<Vec<_>>>()?.into()))
            }
            "opaque" => {
                let c = single()?;
                let bytes = c
                    .as_binary_opt::<i32>()
                    .filter(|b| b.len() == 1)
                    .ok_or_else(|| bad("an opaque value needs one row of a binary column"))?;
                let type_name = meta.get(OPAQUE_TYPE).cloned().unwrap_or_default();
                Ok(Value::Opaque(crate::Opaque::encoded(type_name, bytes.value(0).to_vec())))
            }
            other => Err(bad(format!("unknown value kind '{other}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn values() -> Vec<Value> {
        let batch = RecordBatch::try_from_iter([(
            "k",
            Arc::new(arrow_array::StringArray::from(vec![Some("a"), None])) as ArrayRef,
        )])
        .unwrap();
        let f = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.5, -0.0, f64::NAN, 1e300, 2.0, 3.0]);
        vec![
            Value::from(batch),
            Value::Array(Arc::new(ArrayChunk::F64(f.unwrap()))),
            Value::Array(Arc::new(ArrayChunk::I32(ArrayD::from_elem(IxDyn(&[]), 7)))),
            Value::Array(Arc::new(ArrayChunk::Bool(ArrayD::from_elem(IxDyn(&[0, 4]), true)))),
            Value::Array(Arc::new(ArrayChunk::F32(ArrayD::from_elem(IxDyn(&[3]), 1.5)))),
            Value::Array(Arc::new(ArrayChunk::I64(ArrayD::from_elem(IxDyn(&[1, 1, 2]), -9)))),
            Value::from(f64::NAN),
            Value::from(3_i64),
            Value::Scalar(Scalar::Bool(true)),
            Value::from(vec![Value::from(1_i64), Value::from(vec![Value::from(2.5_f64)])]),
        ]
    }

    #[test]
    fn every_value_comes_back_bit_for_bit() {
        for v in values() {
            let back = Value::from_batch(v.to_batch().unwrap()).unwrap();
            assert_eq!(back.encode().unwrap(), v.encode().unwrap(), "{}", v.kind());
        }
    }

    #[test]
    fn an_array_is_a_plain_column_with_its_shape_and_dtype() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1_i64, 2, 3, 4]).unwrap();
        let b = Value::Array(Arc::new(ArrayChunk::I64(a))).to_batch().unwrap();
        assert_eq!(b.num_columns(), 1);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![1, 2, 3, 4]);
        let meta = b.schema().metadata().clone();
        assert_eq!(meta[ARRAY_SHAPE], "2,2");
        assert_eq!(meta[ARRAY_DTYPE], DType::I64.to_string());
        assert_eq!(meta[VALUE_KIND], "array");
        // Through an Arrow IPC stream, as a Flight reader gets it: the same value.
        let mut ipc = Vec::new();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut ipc, &b.schema()).unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();
        drop(w);
        let r = arrow_ipc::reader::StreamReader::try_new(ipc.as_slice(), None).unwrap();
        let read: Vec<RecordBatch> = r.collect::<std::result::Result<_, _>>().unwrap();
        let back = Value::from_batch(read.into_iter().next().unwrap()).unwrap();
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1_i64, 2, 3, 4]).unwrap();
        assert_eq!(
            back.encode().unwrap(),
            Value::Array(Arc::new(ArrayChunk::I64(a))).encode().unwrap()
        );
    }

    #[test]
    fn malformed_batches_are_errors_not_panics() {
        let a = Value::from(vec![Value::from(1_i64)]).to_batch().unwrap();
        let mut meta = kind("array");
        meta.insert(ARRAY_SHAPE.into(), "2,2".into());
        meta.insert(ARRAY_DTYPE.into(), "f64".into());
        let three = one_column("values", Arc::new(Float64Array::from(vec![1.0; 3])), meta).unwrap();
        let err = Value::from_batch(three).unwrap_err().to_string();
        assert!(err.contains("holds 4 values, not 3"), "{err}");
        // A list's binary column read as a scalar.
        let scalar = Arc::new(a.schema().as_ref().clone().with_metadata(kind("scalar")));
        let wrong = RecordBatch::try_new(scalar, a.columns().to_vec()).unwrap();
        let err = Value::from_batch(wrong).unwrap_err().to_string();
        assert!(err.contains("no scalar of type Binary"), "{err}");
        let opaque = Value::Opaque(crate::Opaque::new(1_u8));
        assert!(opaque.to_batch().unwrap_err().to_string().contains("u8"));
    }
}
