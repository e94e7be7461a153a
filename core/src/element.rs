//! The element types an array chunk may hold, as a trait, so typed code (arrays,
//! kernels) can move between `ArrayD<T>` and the [`ArrayChunk`] enum.

use ndarray::ArrayD;

use crate::{ArrayChunk, DType, Error, Result, Scalar};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f64 {}
    impl Sealed for f32 {}
    impl Sealed for i64 {}
    impl Sealed for i32 {}
    impl Sealed for bool {}
}

/// An element type of array chunks: `f64`, `f32`, `i64`, `i32` or `bool`.
///
/// Casts between element types follow numpy's `astype`: floats to integers truncate
/// toward zero (saturating; NaN becomes 0), anything to `bool` is "not zero" (NaN is
/// `true`), `bool` to numbers is 0 or 1.
pub trait Element:
    sealed::Sealed
    + Copy
    + PartialEq
    + PartialOrd
    + Default
    + std::fmt::Debug
    + std::fmt::Display
    + Send
    + Sync
    + 'static
{
    /// The dtype tag of this type.
    const DTYPE: DType;
    /// Whether this is a floating-point type (casts go through `f64`, else `i64`).
    const IS_FLOAT: bool;
    /// numpy's `descr` for the type in an `.npy` header.
    const NPY_DESCR: &'static str;
    /// The type numpy sums this type in: `i64` for integers and booleans, the type
    /// itself for floats.
    type Sum: Element;
    /// The type of a mean, variance or standard deviation: `f32` for `f32`, else `f64`.
    type Float: Element;

    /// Wraps a typed array into the chunk enum.
    fn into_chunk(a: ArrayD<Self>) -> ArrayChunk;
    /// The typed array inside a chunk of this dtype.
    fn chunk_ref(c: &ArrayChunk) -> Option<&ArrayD<Self>>;
    /// The typed array inside a chunk of this dtype, moved out.
    fn from_chunk(c: ArrayChunk) -> Result<ArrayD<Self>>;
    /// The value as an `f64` (exact for every type but `i64` beyond 2⁵³).
    fn to_f64(self) -> f64;
    /// The value as an `i64` (floats truncate, saturating).
    fn to_i64(self) -> i64;
    /// An `f64` cast to this type.
    fn from_f64(x: f64) -> Self;
    /// An `i64` cast to this type.
    fn from_i64(x: i64) -> Self;
    /// The value as a [`Scalar`] of this dtype.
    fn to_scalar(self) -> Scalar;
    /// The value inside a scalar of exactly this dtype.
    fn from_scalar(s: Scalar) -> Option<Self>;
    /// Whether the value is NaN (never, for integers and booleans).
    fn is_nan(self) -> bool {
        false
    }
    /// The bits of the value, for hashing array contents.
    fn bits(self) -> u64;
    /// Appends the little-endian bytes of the value.
    fn put_le(self, out: &mut Vec<u8>);
    /// Reads a value from its little-endian bytes (`DTYPE.size()` of them).
    fn get_le(bytes: &[u8]) -> Self;

    /// This value cast to another element type, as numpy's `astype`.
    fn cast<U: Element>(self) -> U {
        if Self::IS_FLOAT { U::from_f64(self.to_f64()) } else { U::from_i64(self.to_i64()) }
    }
}

fn mismatch(want: DType, c: &ArrayChunk) -> Error {
    Error::TypeMismatch { expected: format!("{want} chunk"), found: format!("{} chunk", c.dtype()) }
}

macro_rules! number {
    ($t:ty, $variant:ident, $float:expr, $descr:expr, $sum:ty, $mean:ty, $bits:expr) => {
        impl Element for $t {
            type Sum = $sum;
            type Float = $mean;
            const DTYPE: DType = DType::$variant;
            const IS_FLOAT: bool = $float;
            const NPY_DESCR: &'static str = $descr;

            fn into_chunk(a: ArrayD<Self>) -> ArrayChunk {
                ArrayChunk::$variant(a)
            }
            fn chunk_ref(c: &ArrayChunk) -> Option<&ArrayD<Self>> {
                if let ArrayChunk::$variant(a) = c { Some(a) } else { None }
            }
            fn from_chunk(c: ArrayChunk) -> Result<ArrayD<Self>> {
                match c {
                    ArrayChunk::$variant(a) => Ok(a),
                    other => Err(mismatch(Self::DTYPE, &other)),
                }
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn from_i64(x: i64) -> Self {
                x as $t
            }
            fn to_scalar(self) -> Scalar {
                Scalar::$variant(self)
            }
            fn from_scalar(s: Scalar) -> Option<Self> {
                if let Scalar::$variant(x) = s { Some(x) } else { None }
            }
            #[allow(clippy::float_cmp, clippy::eq_op)]
            fn is_nan(self) -> bool {
                self != self
            }
            fn bits(self) -> u64 {
                let f: fn($t) -> u64 = $bits;
                f(self)
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("one element's bytes"))
            }
        }
    };
}

number!(f64, F64, true, "<f8", f64, f64, f64::to_bits);
number!(f32, F32, true, "<f4", f32, f32, |x| u64::from(x.to_bits()));
number!(i64, I64, false, "<i8", i64, f64, |x| x as u64);
number!(i32, I32, false, "<i4", i64, f64, |x| u64::from(x as u32));

impl Element for bool {
    type Sum = i64;
    type Float = f64;
    const DTYPE: DType = DType::Bool;
    const IS_FLOAT: bool = false;
    const NPY_DESCR: &'static str = "|b1";

    fn into_chunk(a: ArrayD<Self>) -> ArrayChunk {
        ArrayChunk::Bool(a)
    }
    fn chunk_ref(c: &ArrayChunk) -> Option<&ArrayD<Self>> {
        if let ArrayChunk::Bool(a) = c { Some(a) } else { None }
    }
    fn from_chunk(c: ArrayChunk) -> Result<ArrayD<Self>> {
        match c {
            ArrayChunk::Bool(a) => Ok(a),
            other => Err(mismatch(Self::DTYPE, &other)),
        }
    }
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    fn from_f64(x: f64) -> Self {
        x != 0.0
    }
    fn from_i64(x: i64) -> Self {
        x != 0
    }
    fn to_scalar(self) -> Scalar {
        Scalar::Bool(self)
    }
    fn from_scalar(s: Scalar) -> Option<Self> {
        if let Scalar::Bool(x) = s { Some(x) } else { None }
    }
    fn bits(self) -> u64 {
        u64::from(self)
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn get_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_follow_numpy_astype() {
        assert_eq!((-2.7f64).cast::<i64>(), -2);
        assert_eq!(f64::NAN.cast::<i32>(), 0);
        assert_eq!(1e300f64.cast::<i32>(), i32::MAX);
        assert!(f64::NAN.cast::<bool>());
        assert!(!0.0f64.cast::<bool>());
        assert_eq!(true.cast::<f64>(), 1.0);
        assert_eq!(i64::MAX.cast::<i64>(), i64::MAX);
        assert_eq!((1i64 << 40).cast::<i32>(), 0, "integers wrap like numpy's astype");
        assert!(f32::NAN.is_nan() && !1.0f32.is_nan() && !5i64.is_nan());
    }

    #[test]
    fn chunks_round_trip_and_name_the_mismatch() {
        let a = ArrayD::from_elem(ndarray::IxDyn(&[2]), 3i32);
        let c = i32::into_chunk(a.clone());
        assert_eq!(i32::chunk_ref(&c), Some(&a));
        let err = f64::from_chunk(c).unwrap_err().to_string();
        assert!(err.contains("f64") && err.contains("i32"), "{err}");
        let mut bytes = Vec::new();
        (-5i64).put_le(&mut bytes);
        assert_eq!(i64::get_le(&bytes), -5);
    }
}
