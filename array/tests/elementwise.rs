//! Element-wise ops and the other creation functions against eager references.

use brisk_array::{Array, Axes, BinOp, Chunks, arange, from_ndarray, linspace, normal, random};
use brisk_scheduler::{Compute, Scheduler};
use ndarray::{Array1, ArrayD, IxDyn};

/// The eager counterpart of a lazy unary op.
type Kernel = fn(f64) -> f64;

fn bits(a: &ArrayD<f64>) -> Vec<u64> {
    a.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn unary_math_matches_ndarray_bit_for_bit() {
    let x = random(&[37, 23], &[10, 7], 8).unwrap() * 4.0 - 2.0;
    let data = x.compute().unwrap();
    let cases: Vec<(Array, Kernel)> = vec![
        (x.abs(), f64::abs),
        (x.sqrt(), f64::sqrt),
        (x.exp(), f64::exp),
        (x.log(), f64::ln),
        (x.sin(), f64::sin),
        (x.cos(), f64::cos),
        (-&x, |v| -v),
        (x.powf(3.0), |v| v.powf(3.0)),
    ];
    for (lazy, f) in cases {
        assert_eq!(bits(&lazy.compute().unwrap()), bits(&data.mapv(f)));
    }
}

#[test]
fn array_arithmetic_matches_ndarray_and_refuses_mismatches() {
    let a = random(&[30, 40], &[7, 9], 1).unwrap();
    let b = random(&[30, 40], &[7, 9], 2).unwrap() + 0.5;
    let (da, db) = (a.compute().unwrap(), b.compute().unwrap());
    let s = Scheduler::threads(2);
    assert_eq!(bits(&s.compute(&(&a + &b)).unwrap()), bits(&(&da + &db)));
    assert_eq!(bits(&s.compute(&(&a - &b)).unwrap()), bits(&(&da - &db)));
    assert_eq!(bits(&s.compute(&(&a * &b)).unwrap()), bits(&(&da * &db)));
    assert_eq!(bits(&s.compute(&(&a / &b)).unwrap()), bits(&(&da / &db)));
    // x - x.mean(Axes::all()) style: the same input used twice computes once and agrees.
    let centered = (&a - &a).sum(Axes::all()).compute().unwrap();
    assert_eq!(centered, 0.0);
    let err =
        a.binary(BinOp::Add, &random(&[30, 41], &[7, 9], 1).unwrap()).unwrap_err().to_string();
    assert!(err.contains("[30, 40]") && err.contains("[30, 41]"), "{err}");
    assert!(a.binary(BinOp::Add, &random(&[30, 41], &[10, 10], 1).unwrap()).is_err());
}

#[test]
fn normal_is_chunk_invariant_with_the_right_moments() {
    let whole = normal(&[400, 500], &[400, 500], 5, 3.0, 2.0).unwrap().compute().unwrap();
    let chunked = normal(&[400, 500], &[33, 71], 5, 3.0, 2.0).unwrap();
    assert_eq!(bits(&chunked.compute().unwrap()), bits(&whole));
    let mean = chunked.mean(Axes::all()).compute().unwrap();
    let std = chunked.std(Axes::all(), 0).compute().unwrap();
    assert!((mean - 3.0).abs() < 0.02, "{mean}");
    assert!((std - 2.0).abs() < 0.02, "{std}");
}

#[test]
fn arange_and_linspace_match_numpy_definitions() {
    let a = arange(1.0, 10.0, 0.5, 4).unwrap().compute().unwrap();
    let want: Vec<f64> = (0..18).map(|i| 1.0 + 0.5 * f64::from(i)).collect();
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), want);
    assert_eq!(
        arange(5.0, 0.0, -2.0, 2).unwrap().compute().unwrap().iter().copied().collect::<Vec<_>>(),
        [5.0, 3.0, 1.0]
    );
    assert_eq!(arange(0.0, -1.0, 1.0, 2).unwrap().shape(), &[0]);
    assert!(arange(0.0, 1.0, 0.0, 2).is_err());
    let l = linspace(0.0, 1.0, 11, 3).unwrap().compute().unwrap();
    let want = Array1::linspace(0.0, 1.0, 11).into_dyn();
    assert!(l.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-15));
}

#[test]
fn from_ndarray_round_trips_any_chunking() {
    let data =
        ArrayD::from_shape_fn(IxDyn(&[5, 6, 7]), |ix| (ix[0] * 100 + ix[1] * 10 + ix[2]) as f64);
    for chunks in [[1, 1, 1], [2, 3, 4], [5, 6, 7]] {
        let x = from_ndarray(&data, Chunks::regular(&[5, 6, 7], &chunks).unwrap()).unwrap();
        assert_eq!(x.compute().unwrap(), data);
    }
}

#[test]
fn arithmetic_broadcasts_like_numpy_and_unifies_chunks() {
    let a = random(&[6, 1, 5], &[4, 1, 2], 1).unwrap();
    let b = random(&[7, 5], &[3, 5], 2).unwrap();
    let (da, db) = (a.compute().unwrap(), b.compute().unwrap());
    let c = &a + &b;
    assert_eq!(c.shape(), &[6, 7, 5]);
    assert_eq!(bits(&c.compute().unwrap()), bits(&(&da + &db)));
    // Same shape, different chunks: both are rechunked to the common refinement.
    let x = random(&[10, 9], &[4, 9], 3).unwrap();
    let y = random(&[10, 9], &[5, 2], 4).unwrap();
    let z = &x * &y;
    assert_eq!(z.chunks().sizes(), &[vec![4, 1, 3, 2], vec![2, 2, 2, 2, 1]]);
    assert_eq!(bits(&z.compute().unwrap()), bits(&(&x.compute().unwrap() * &y.compute().unwrap())));
    // A row of column means, broadcast back: x - x.mean(axis=0).
    let m = x.mean([0]).unwrap();
    let centered = &x - &m;
    let dx = x.compute().unwrap();
    let want = &dx - &dx.mean_axis(ndarray::Axis(0)).unwrap();
    assert!(centered.compute().unwrap().iter().zip(&want).all(|(p, q)| (p - q).abs() < 1e-12));
    let err = random(&[3, 4], &[3, 4], 0)
        .unwrap()
        .binary(BinOp::Add, &random(&[3, 5], &[3, 5], 0).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("cannot be broadcast"), "{err}");
}
