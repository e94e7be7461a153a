//! What flows between tasks.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use ndarray::ArrayD;

use crate::{Error, Result};

/// The element types of array chunks and scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// Boolean.
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::Bool => 1,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            DType::F64 => 0,
            DType::F32 => 1,
            DType::I64 => 2,
            DType::I32 => 3,
            DType::Bool => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Result<Self> {
        Ok(match code {
            0 => DType::F64,
            1 => DType::F32,
            2 => DType::I64,
            3 => DType::I32,
            4 => DType::Bool,
            c => {
                return Err(Error::Decode {
                    what: "dtype",
                    reason: format!("unknown dtype code {c}"),
                });
            }
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        })
    }
}

/// A single number or boolean.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Scalar {
    /// 64-bit float.
    F64(f64),
    /// 32-bit float.
    F32(f32),
    /// 64-bit signed integer.
    I64(i64),
    /// 32-bit signed integer.
    I32(i32),
    /// Boolean.
    Bool(bool),
}

impl Scalar {
    /// The scalar's dtype.
    pub fn dtype(&self) -> DType {
        match self {
            Scalar::F64(_) => DType::F64,
            Scalar::F32(_) => DType::F32,
            Scalar::I64(_) => DType::I64,
            Scalar::I32(_) => DType::I32,
            Scalar::Bool(_) => DType::Bool,
        }
    }
}

/// An n-dimensional chunk of one of the supported dtypes.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayChunk {
    /// 64-bit floats.
    F64(ArrayD<f64>),
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 64-bit signed integers.
    I64(ArrayD<i64>),
    /// 32-bit signed integers.
    I32(ArrayD<i32>),
    /// Booleans.
    Bool(ArrayD<bool>),
}

/// Runs `$body` with `$a` bound to the typed ndarray inside an [`ArrayChunk`].
macro_rules! with_chunk {
    ($chunk:expr, $a:ident => $body:expr) => {
        match $chunk {
            ArrayChunk::F64($a) => $body,
            ArrayChunk::F32($a) => $body,
            ArrayChunk::I64($a) => $body,
            ArrayChunk::I32($a) => $body,
            ArrayChunk::Bool($a) => $body,
        }
    };
}
pub(crate) use with_chunk;

impl ArrayChunk {
    /// The chunk's dtype.
    pub fn dtype(&self) -> DType {
        match self {
            ArrayChunk::F64(_) => DType::F64,
            ArrayChunk::F32(_) => DType::F32,
            ArrayChunk::I64(_) => DType::I64,
            ArrayChunk::I32(_) => DType::I32,
            ArrayChunk::Bool(_) => DType::Bool,
        }
    }

    /// The chunk's shape.
    pub fn shape(&self) -> &[usize] {
        with_chunk!(self, a => a.shape())
    }

    /// Bytes of element data.
    pub fn nbytes(&self) -> u64 {
        (with_chunk!(self, a => a.len()) * self.dtype().size()) as u64
    }
}

/// An opaque local value: anything `Send + Sync`, as made by delayed functions.
///
/// An opaque value has a byte codec only when its type was registered
/// ([`register_type`](crate::register_type), done for the arguments and results of
/// registered functions): then it can be spilled and sent to worker processes.
/// Others live only in this process. A value received from another process stays
/// in its encoded form until it is taken as its type.
#[derive(Clone)]
pub struct Opaque {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
    nbytes: u64,
}

/// An opaque value as it arrived from another process: its type's name and its
/// MessagePack bytes.
pub(crate) struct Encoded {
    pub(crate) type_name: String,
    pub(crate) bytes: Vec<u8>,
}

impl Opaque {
    /// Wraps a value; its size is counted as its shallow size.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self {
            value: Arc::new(value),
            type_name: std::any::type_name::<T>(),
            nbytes: std::mem::size_of::<T>() as u64,
        }
    }

    /// The value of type `type_name` encoded as `bytes` by another process.
    pub(crate) fn encoded(type_name: String, bytes: Vec<u8>) -> Self {
        let nbytes = bytes.len() as u64;
        Self { value: Arc::new(Encoded { type_name, bytes }), type_name: "encoded", nbytes }
    }

    /// Sets the size the memory accounting should count for this value.
    pub fn with_nbytes(mut self, nbytes: u64) -> Self {
        self.nbytes = nbytes;
        self
    }

    /// The Rust type name of the wrapped value.
    pub fn type_name(&self) -> &str {
        match self.value.downcast_ref::<Encoded>() {
            Some(encoded) => &encoded.type_name,
            None => self.type_name,
        }
    }

    /// A reference to the value if it is a `T` (not for a value still in the
    /// encoded form it arrived in from another process: take it instead).
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }

    /// Whether the value can be encoded (spilled, sent to another process).
    pub fn is_portable(&self) -> bool {
        self.value.is::<Encoded>() || crate::function::is_registered((*self.value).type_id())
    }

    /// The value's MessagePack bytes; an error naming its type if it has no codec.
    pub(crate) fn portable_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        if let Some(encoded) = self.value.downcast_ref::<Encoded>() {
            return Ok(std::borrow::Cow::Borrowed(&encoded.bytes));
        }
        match crate::function::encode_any(&*self.value) {
            Some(bytes) => Ok(std::borrow::Cow::Owned(bytes?)),
            None => Err(Error::Encode {
                what: format!("opaque value of type {}", self.type_name),
                reason: "a local value lives only in its process unless its type is registered: \
                         register a function taking or returning it (register_fn!), or the \
                         type itself (brisk_core::register_type)"
                    .into(),
            }),
        }
    }

    /// The value as a `T`: moved out when this is the only reference, cloned otherwise;
    /// decoded first if it arrived encoded from another process.
    pub fn take<T: Any + Send + Sync + Clone>(self) -> Result<T> {
        let mismatch = |found: &str| Error::TypeMismatch {
            expected: std::any::type_name::<T>().to_string(),
            found: found.to_string(),
        };
        let value = match self.value.downcast_ref::<Encoded>() {
            Some(encoded) if encoded.type_name == std::any::type_name::<T>() => {
                match crate::function::decode_as::<T>(&encoded.bytes) {
                    Some(decoded) => decoded?,
                    None => return Err(mismatch(&encoded.type_name)),
                }
            }
            Some(encoded) => return Err(mismatch(&encoded.type_name)),
            None => self.value,
        };
        match value.downcast::<T>() {
            Ok(arc) => Ok(Arc::try_unwrap(arc).unwrap_or_else(|shared| (*shared).clone())),
            Err(_) => Err(mismatch(self.type_name)),
        }
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opaque<{}>", self.type_name())
    }
}

/// What flows between tasks.
///
/// Cloning is cheap for every variant (array chunks, lists and opaque values are
/// shared; record batches share their buffers), so the scheduler can hand a result
/// to several dependents without copying data.
///
/// ```
/// use brisk_core::{Scalar, Value};
/// let v = Value::from(1.5_f64);
/// assert_eq!(v.nbytes(), 8);
/// let bytes = v.encode().unwrap();
/// assert_eq!(Value::decode(&bytes).unwrap().as_scalar(), Some(Scalar::F64(1.5)));
/// ```
#[derive(Clone, Debug)]
pub enum Value {
    /// A single number or boolean.
    Scalar(Scalar),
    /// An n-dimensional chunk.
    Array(Arc<ArrayChunk>),
    /// A partition of a dataframe.
    Batch(RecordBatch),
    /// Several values, e.g. the parts of a partial aggregation.
    List(Arc<[Value]>),
    /// A local value from a delayed function.
    Opaque(Opaque),
}

impl Value {
    /// Bytes this value holds in memory, for the memory budget.
    pub fn nbytes(&self) -> u64 {
        match self {
            Value::Scalar(s) => s.dtype().size() as u64,
            Value::Array(a) => a.nbytes(),
            Value::Batch(b) => b.get_array_memory_size() as u64,
            Value::List(items) => items.iter().map(Value::nbytes).sum(),
            Value::Opaque(o) => o.nbytes,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::Scalar(s) => format!("scalar {}", s.dtype()),
            Value::Array(a) => format!("{} array {:?}", a.dtype(), a.shape()),
            Value::Batch(b) => format!("record batch of {} rows", b.num_rows()),
            Value::List(items) => format!("list of {}", items.len()),
            Value::Opaque(o) => format!("opaque {}", o.type_name),
        }
    }

    /// The scalar inside, if this is one.
    pub fn as_scalar(&self) -> Option<Scalar> {
        match self {
            Value::Scalar(s) => Some(*s),
            _ => None,
        }
    }

    /// The opaque value as a `T`, or a type-mismatch error naming both types.
    pub fn take_opaque<T: Any + Send + Sync + Clone>(self) -> Result<T> {
        match self {
            Value::Opaque(o) => o.take(),
            other => Err(Error::TypeMismatch {
                expected: std::any::type_name::<T>().to_string(),
                found: other.kind(),
            }),
        }
    }
}

impl From<Scalar> for Value {
    fn from(s: Scalar) -> Self {
        Value::Scalar(s)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Scalar(Scalar::F64(x))
    }
}

impl From<i64> for Value {
    fn from(x: i64) -> Self {
        Value::Scalar(Scalar::I64(x))
    }
}

impl From<ArrayChunk> for Value {
    fn from(a: ArrayChunk) -> Self {
        Value::Array(Arc::new(a))
    }
}

impl From<RecordBatch> for Value {
    fn from(b: RecordBatch) -> Self {
        Value::Batch(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::List(items.into())
    }
}
