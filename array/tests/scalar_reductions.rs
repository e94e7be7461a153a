//! argmin, argmax, count_nonzero, any and all against eager references, with ties,
//! zeros and NaNs, on random shapes and chunkings.

mod common;
use common::cut;

use brisk_array::{Axes, Chunks, from_ndarray};
use brisk_scheduler::{Compute, Scheduler};
use ndarray::{ArrayD, Dimension, IxDyn};
use proptest::prelude::*;

/// numpy's argmin/argmax: the first NaN, else the first extreme.
fn eager_arg(data: &ArrayD<f64>, max: bool) -> i64 {
    let values: Vec<f64> = data.iter().copied().collect();
    if let Some(i) = values.iter().position(|v| v.is_nan()) {
        return i as i64;
    }
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if (max && v > values[best]) || (!max && v < values[best]) {
            best = i;
        }
    }
    best as i64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn index_and_count_reductions_equal_the_eager_reference(
        shape in proptest::collection::vec(1usize..7, 1..4),
        cuts in proptest::collection::vec(proptest::collection::vec(1usize..4, 1..4), 3),
        seed in any::<u64>(),
        nan in any::<bool>(),
        threads in 1usize..4,
    ) {
        // Few distinct values, so ties and zeros are common.
        let mut data = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
            let h = ix.slice().iter().fold(seed, |acc, &i| acc.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64 + 1));
            ((h >> 33) % 5) as f64 - 2.0
        });
        if nan {
            let n = data.len();
            let at = (seed as usize) % n;
            *data.iter_mut().nth(at).unwrap() = f64::NAN;
        }
        let sizes = shape.iter().zip(&cuts).map(|(&n, c)| cut(n, c)).collect();
        let x = from_ndarray(&data, Chunks::explicit(&shape, sizes).unwrap()).unwrap();
        let s = Scheduler::threads(threads);
        prop_assert_eq!(s.compute(&x.argmin(Axes::all())).unwrap(), eager_arg(&data, false));
        prop_assert_eq!(s.compute(&x.argmax(Axes::all())).unwrap(), eager_arg(&data, true));
        let nonzero = data.iter().filter(|&&v| v != 0.0).count() as i64;
        prop_assert_eq!(s.compute(&x.count_nonzero(Axes::all())).unwrap(), nonzero);
        prop_assert_eq!(s.compute(&x.any(Axes::all())).unwrap(), nonzero > 0);
        prop_assert_eq!(s.compute(&x.all(Axes::all())).unwrap(), nonzero == data.len() as i64);
    }
}

#[test]
fn argmax_of_an_empty_array_is_an_error_and_all_of_it_is_true() {
    let empty = brisk_array::zeros(&[0, 3], &[1, 1]).unwrap();
    let err = empty.argmax(Axes::all()).compute().unwrap_err().to_string();
    assert!(err.contains("empty array"), "{err}");
    assert!(empty.all(Axes::all()).compute().unwrap());
    assert!(!empty.any(Axes::all()).compute().unwrap());
}
