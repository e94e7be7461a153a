//! The byte codec of values. The spill store uses it today; it is also the form in
//! which a result could cross to another process (no scheduler does that yet).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! value  := tag:u8 body
//! tag 0  scalar: dtype:u8 payload:[u8; 8]
//! tag 1  array:  dtype:u8 ndim:u32 shape:[u64; ndim] data (C order, raw LE elements)
//! tag 2  batch:  len:u64 Arrow IPC stream of one batch
//! tag 3  list:   count:u64 (len:u64 value)*
//! tag 4  opaque: name_len:u64 type name (UTF-8) len:u64 MessagePack bytes
//! ```
//! Opaque values are encoded only when their type is registered
//! ([`register_type`](crate::register_type)); encoding another is an error naming
//! its type.

use std::sync::Arc;

use arrow_array::RecordBatch;
use ndarray::{ArrayD, IxDyn};

use crate::value::with_chunk;
use crate::{ArrayChunk, DType, Error, Result, Scalar, Value};

const TAG_SCALAR: u8 = 0;
const TAG_ARRAY: u8 = 1;
const TAG_BATCH: u8 = 2;
const TAG_LIST: u8 = 3;
const TAG_OPAQUE: u8 = 4;

/// An element type with a fixed little-endian byte form.
trait Element: Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
    /// Puts a contiguous run of elements.
    fn put_slice(xs: &[Self], out: &mut Vec<u8>) {
        xs.iter().for_each(|x| x.put(out));
    }
}

macro_rules! numeric_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
            fn put_slice(xs: &[Self], out: &mut Vec<u8>) {
                // Into place in one pass the compiler vectorizes (pushing each
                // element's bytes took three times as long).
                let start = out.len();
                out.resize(start + xs.len() * Self::SIZE, 0);
                for (to, x) in out[start..].chunks_exact_mut(Self::SIZE).zip(xs) {
                    to.copy_from_slice(&x.to_le_bytes());
                }
            }
        }
    )*};
}
numeric_element!(f64, f32, i64, i32);

impl Element for bool {
    const SIZE: usize = 1;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

impl Value {
    /// Encodes the value to bytes; opaque values are refused with their type name.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.nbytes() as usize + 32);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Value::Scalar(s) => {
                out.push(TAG_SCALAR);
                out.push(s.dtype().code());
                let payload = match *s {
                    Scalar::F64(x) => x.to_bits(),
                    Scalar::F32(x) => x.to_bits() as u64,
                    Scalar::I64(x) => x as u64,
                    Scalar::I32(x) => x as u32 as u64,
                    Scalar::Bool(x) => x as u64,
                };
                out.extend_from_slice(&payload.to_le_bytes());
            }
            Value::Array(chunk) => {
                out.push(TAG_ARRAY);
                out.push(chunk.dtype().code());
                let shape = chunk.shape();
                out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
                for &d in shape {
                    out.extend_from_slice(&(d as u64).to_le_bytes());
                }
                with_chunk!(chunk.as_ref(), a => match a.as_slice() {
                    Some(xs) => Element::put_slice(xs, out),
                    None => a.iter().for_each(|x| x.put(out)),
                });
            }
            Value::Batch(batch) => {
                out.push(TAG_BATCH);
                let ipc = encode_batch(batch)?;
                out.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
                out.extend_from_slice(&ipc);
            }
            Value::List(items) => {
                out.push(TAG_LIST);
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items.iter() {
                    let start = out.len();
                    out.extend_from_slice(&0u64.to_le_bytes());
                    item.encode_into(out)?;
                    let len = (out.len() - start - 8) as u64;
                    out[start..start + 8].copy_from_slice(&len.to_le_bytes());
                }
            }
            Value::Opaque(o) => {
                let bytes = o.portable_bytes()?;
                out.push(TAG_OPAQUE);
                let name = o.type_name();
                out.extend_from_slice(&(name.len() as u64).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                out.extend_from_slice(&bytes);
            }
        }
        Ok(())
    }

    /// Decodes bytes made by [`Value::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Value> {
        let mut r = Reader { bytes, pos: 0 };
        let v = r.value()?;
        if r.pos != bytes.len() {
            return Err(r.bad(format!("{} trailing bytes", bytes.len() - r.pos)));
        }
        Ok(v)
    }
}

fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let fail = |e: arrow_schema::ArrowError| Error::Encode {
        what: "record batch".into(),
        reason: e.to_string(),
    };
    let mut buf = Vec::new();
    let mut w =
        arrow_ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema()).map_err(fail)?;
    w.write(batch).map_err(fail)?;
    w.finish().map_err(fail)?;
    drop(w);
    Ok(buf)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bad(&self, reason: String) -> Error {
        Error::Decode { what: "value", reason: format!("{reason} (at byte {})", self.pos) }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.bytes.len() - self.pos < n {
            return Err(self.bad(format!("truncated: wanted {n} more bytes")));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.bad(format!("length {n} too large")))
    }

    fn value(&mut self) -> Result<Value> {
        match self.u8()? {
            TAG_SCALAR => {
                let dtype = DType::from_code(self.u8()?)?;
                let p = self.u64()?;
                Ok(Value::Scalar(match dtype {
                    DType::F64 => Scalar::F64(f64::from_bits(p)),
                    DType::F32 => Scalar::F32(f32::from_bits(p as u32)),
                    DType::I64 => Scalar::I64(p as i64),
                    DType::I32 => Scalar::I32(p as u32 as i32),
                    DType::Bool => Scalar::Bool(p != 0),
                }))
            }
            TAG_ARRAY => {
                let dtype = DType::from_code(self.u8()?)?;
                let ndim = self.u32()? as usize;
                let shape = (0..ndim).map(|_| self.len()).collect::<Result<Vec<_>>>()?;
                let chunk = match dtype {
                    DType::F64 => ArrayChunk::F64(self.elements(&shape)?),
                    DType::F32 => ArrayChunk::F32(self.elements(&shape)?),
                    DType::I64 => ArrayChunk::I64(self.elements(&shape)?),
                    DType::I32 => ArrayChunk::I32(self.elements(&shape)?),
                    DType::Bool => ArrayChunk::Bool(self.elements(&shape)?),
                };
                Ok(Value::Array(Arc::new(chunk)))
            }
            TAG_BATCH => {
                let n = self.len()?;
                let ipc = self.take(n)?;
                decode_batch(ipc).map(Value::Batch)
            }
            TAG_LIST => {
                let count = self.len()?;
                let mut items = Vec::with_capacity(count.min(1 << 16));
                for _ in 0..count {
                    let n = self.len()?;
                    let end = self.pos + n;
                    items.push(self.value()?);
                    if self.pos != end {
                        return Err(self.bad("list item length does not match its body".into()));
                    }
                }
                Ok(Value::List(items.into()))
            }
            TAG_OPAQUE => {
                let n = self.len()?;
                let name = self.take(n)?.to_vec();
                let name = String::from_utf8(name)
                    .map_err(|_| self.bad("opaque type name is not UTF-8".into()))?;
                let n = self.len()?;
                let bytes = self.take(n)?.to_vec();
                Ok(Value::Opaque(crate::Opaque::encoded(name, bytes)))
            }
            t => Err(self.bad(format!("unknown value tag {t}"))),
        }
    }

    fn elements<T: Element>(&mut self, shape: &[usize]) -> Result<ArrayD<T>> {
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.bad(format!("shape {shape:?} overflows")))?;
        let bytes = self
            .take(count.checked_mul(T::SIZE).ok_or_else(|| self.bad("size overflows".into()))?)?;
        let data: Vec<T> = bytes.chunks_exact(T::SIZE).map(T::get).collect();
        ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| self.bad(e.to_string()))
    }
}

fn decode_batch(ipc: &[u8]) -> Result<RecordBatch> {
    let fail =
        |e: arrow_schema::ArrowError| Error::Decode { what: "record batch", reason: e.to_string() };
    let mut reader = arrow_ipc::reader::StreamReader::try_new(ipc, None).map_err(fail)?;
    match reader.next() {
        Some(batch) => batch.map_err(fail),
        None => {
            Err(Error::Decode { what: "record batch", reason: "IPC stream holds no batch".into() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use ndarray::Array;
    use proptest::prelude::*;

    fn roundtrip(v: &Value) -> Value {
        Value::decode(&v.encode().unwrap()).unwrap()
    }

    #[test]
    fn scalars_roundtrip_bit_for_bit() {
        for s in [
            Scalar::F64(-0.0),
            Scalar::F64(f64::NAN),
            Scalar::F32(1.25),
            Scalar::I64(i64::MIN),
            Scalar::I32(-7),
            Scalar::Bool(true),
        ] {
            let back = roundtrip(&Value::Scalar(s)).as_scalar().unwrap();
            assert_eq!(format!("{back:?}"), format!("{s:?}"));
            if let (Scalar::F64(a), Scalar::F64(b)) = (s, back) {
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
    }

    #[test]
    fn non_contiguous_array_roundtrips_in_logical_order() {
        let a = Array::from_shape_fn((3, 4), |(i, j)| (i * 10 + j) as i64).into_dyn();
        let t = a.t().to_owned();
        let v = Value::from(ArrayChunk::I64(a.t().to_owned()));
        match roundtrip(&v) {
            Value::Array(c) => assert_eq!(*c, ArrayChunk::I64(t)),
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn batch_and_list_roundtrip() {
        let batch = RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(vec!["a", "b"])) as _),
            ("v", Arc::new(Float64Array::from(vec![Some(1.0), None])) as _),
            ("n", Arc::new(Int64Array::from(vec![3, 4])) as _),
        ])
        .unwrap();
        let v = Value::from(vec![Value::from(batch.clone()), Value::from(2.0)]);
        match roundtrip(&v) {
            Value::List(items) => {
                assert!(matches!(&items[0], Value::Batch(b) if *b == batch));
                assert_eq!(items[1].as_scalar(), Some(Scalar::F64(2.0)));
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn opaque_values_refuse_to_encode_and_name_their_type() {
        let err = Value::Opaque(crate::Opaque::new(vec![1u8])).encode().unwrap_err();
        assert!(err.to_string().contains("alloc::vec::Vec<u8>"), "{err}");
    }

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Reading {
        site: String,
        values: Vec<f64>,
    }

    #[test]
    fn registered_opaque_types_roundtrip_and_others_are_refused_on_taking() {
        crate::register_type::<Reading>();
        let reading = Reading { site: "north".into(), values: vec![1.5, -0.0, f64::MAX] };
        let v = Value::from(vec![Value::Opaque(crate::Opaque::new(reading.clone()))]);
        let Value::List(items) = roundtrip(&v) else { panic!("a list") };
        let back = items[0].clone();
        assert!(matches!(&back, Value::Opaque(o) if o.type_name().ends_with("Reading")));
        let err = back.clone().take_opaque::<String>().unwrap_err();
        assert!(err.to_string().contains("Reading"), "{err}");
        assert_eq!(back.take_opaque::<Reading>().unwrap(), reading);
    }

    #[test]
    fn truncated_and_garbage_bytes_are_errors_not_panics() {
        let bytes = Value::from(ArrayChunk::F64(Array::zeros(vec![4, 4]))).encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(Value::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Value::decode(&[9, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn f64_arrays_roundtrip(shape in proptest::collection::vec(0usize..5, 0..4), seed in any::<u64>()) {
            let n: usize = shape.iter().product();
            let data: Vec<f64> = (0..n).map(|i| (seed.wrapping_mul(i as u64 + 1) as f64).sin()).collect();
            let a = ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap();
            let v = Value::from(ArrayChunk::F64(a.clone()));
            match roundtrip(&v) {
                Value::Array(c) => prop_assert_eq!(&*c, &ArrayChunk::F64(a)),
                other => prop_assert!(false, "got {:?}", other),
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Value::decode(&bytes);
        }
    }
}
