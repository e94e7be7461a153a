//! `std::ops` on arrays, as in NumPy and ndarray: `&x + 1.0`, `&x * &y`, `-&x`,
//! `1.0 - &x`, `&x / 2.0` (division for float arrays only). Arrays are taken by
//! reference or by value; scalars are of the array's element type, on either side.
//!
//! Array-with-array operators broadcast like [`Array::binary`] and panic when the
//! shapes do not broadcast (ndarray's operators do the same); call
//! [`Array::binary`] where such a shape must be handled as an error.

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::or_panic;
use crate::array::Array;
use crate::element::{BinOp, Float, Numeric};
use crate::elementwise::ops::UnaryOp;

/// One operator between arrays and scalars, in every by-reference and by-value
/// form; the by-value forms borrow and so cost nothing extra.
macro_rules! operator {
    ($trait:ident, $method:ident, $op:expr, $bound:ident) => {
        impl<T: $bound> $trait<&Array<T>> for &Array<T> {
            type Output = Array<T>;

            /// # Panics
            ///
            /// If the shapes do not broadcast (see [`Array::binary`]).
            fn $method(self, rhs: &Array<T>) -> Array<T> {
                or_panic(self.binary($op, rhs))
            }
        }

        impl<T: $bound> $trait<Array<T>> for &Array<T> {
            type Output = Array<T>;

            fn $method(self, rhs: Array<T>) -> Array<T> {
                self.$method(&rhs)
            }
        }

        impl<T: $bound> $trait<&Array<T>> for Array<T> {
            type Output = Array<T>;

            fn $method(self, rhs: &Array<T>) -> Array<T> {
                (&self).$method(rhs)
            }
        }

        impl<T: $bound> $trait<Array<T>> for Array<T> {
            type Output = Array<T>;

            fn $method(self, rhs: Array<T>) -> Array<T> {
                (&self).$method(&rhs)
            }
        }

        impl<T: $bound> $trait<T> for &Array<T> {
            type Output = Array<T>;

            fn $method(self, rhs: T) -> Array<T> {
                self.scalar_arith($op, rhs, false)
            }
        }

        impl<T: $bound> $trait<T> for Array<T> {
            type Output = Array<T>;

            fn $method(self, rhs: T) -> Array<T> {
                self.scalar_arith($op, rhs, false)
            }
        }
    };
}

operator!(Add, add, BinOp::Add, Numeric);
operator!(Sub, sub, BinOp::Sub, Numeric);
operator!(Mul, mul, BinOp::Mul, Numeric);
operator!(Div, div, BinOp::Div, Float);

/// Scalars on the left (`1.0 - &x`): one impl per primitive type, as the orphan
/// rule asks. The scalar stays the left operand (`s - x`, `s / x`).
macro_rules! scalar_left {
    ($t:ty, $(($trait:ident, $method:ident, $op:expr)),*) => {$(
        impl $trait<&Array<$t>> for $t {
            type Output = Array<$t>;

            fn $method(self, rhs: &Array<$t>) -> Array<$t> {
                rhs.scalar_arith($op, self, true)
            }
        }

        impl $trait<Array<$t>> for $t {
            type Output = Array<$t>;

            fn $method(self, rhs: Array<$t>) -> Array<$t> {
                rhs.scalar_arith($op, self, true)
            }
        }
    )*};
}

scalar_left!(
    f64,
    (Add, add, BinOp::Add),
    (Sub, sub, BinOp::Sub),
    (Mul, mul, BinOp::Mul),
    (Div, div, BinOp::Div)
);
scalar_left!(
    f32,
    (Add, add, BinOp::Add),
    (Sub, sub, BinOp::Sub),
    (Mul, mul, BinOp::Mul),
    (Div, div, BinOp::Div)
);
scalar_left!(i64, (Add, add, BinOp::Add), (Sub, sub, BinOp::Sub), (Mul, mul, BinOp::Mul));
scalar_left!(i32, (Add, add, BinOp::Add), (Sub, sub, BinOp::Sub), (Mul, mul, BinOp::Mul));

impl<T: Numeric> Neg for &Array<T> {
    type Output = Array<T>;

    /// `-x` element-wise (wrapping for the most negative integer, as numpy).
    fn neg(self) -> Array<T> {
        self.unary(Some(UnaryOp::Neg), None)
    }
}

impl<T: Numeric> Neg for Array<T> {
    type Output = Array<T>;

    fn neg(self) -> Array<T> {
        -&self
    }
}

#[cfg(test)]
mod tests {
    use brisk_scheduler::Compute;

    use crate::{arange, full};

    #[test]
    fn operators_match_numpy_in_every_form() {
        let x = arange(1.0, 5.0, 1.0, 3).unwrap();
        let y = full(&[4], &[2], 2.0).unwrap();
        let got = |a: crate::Array| a.compute().unwrap().into_raw_vec_and_offset().0;
        assert_eq!(got(&x + 1.0), [2.0, 3.0, 4.0, 5.0]);
        assert_eq!(got(1.0 - &x), [0.0, -1.0, -2.0, -3.0]);
        assert_eq!(got(&x / 2.0), [0.5, 1.0, 1.5, 2.0]);
        assert_eq!(got(2.0 / x.clone()), [2.0, 1.0, 2.0 / 3.0, 0.5]);
        assert_eq!(got(-&x * &y), [-2.0, -4.0, -6.0, -8.0]);
        assert_eq!(got(x.clone() - y.clone() + 3.0 * &y), [5.0, 6.0, 7.0, 8.0]);
        let ints = full(&[3], &[2], 7i64).unwrap();
        assert_eq!((10 - &ints).compute().unwrap().into_raw_vec_and_offset().0, [3, 3, 3]);
    }

    #[test]
    #[should_panic(expected = "cannot be broadcast")]
    fn mismatched_shapes_panic_naming_the_reason() {
        let _ = &arange(0.0, 3.0, 1.0, 3).unwrap() + &arange(0.0, 4.0, 1.0, 4).unwrap();
    }
}
