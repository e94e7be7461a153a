//! Element types other than f64 — integers, f32, bool — and the ops that make or
//! consume them (comparisons, `where_`, `astype`, integer reductions, axis-wise
//! argmin/argmax/any/all/count_nonzero, reshape), against eager ndarray references
//! on random shapes and chunkings.

mod common;
use common::cut;

use brisk_array::{Axes, Chunks, from_ndarray, from_npy, from_npy_as, full, integers, where_};
use brisk_scheduler::{Compute, Scheduler};
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;

fn explicit(shape: &[usize], cuts: &[Vec<usize>]) -> Chunks {
    let sizes = shape.iter().zip(cuts).map(|(&n, c)| cut(n, c)).collect();
    Chunks::explicit(shape, sizes).unwrap()
}

/// A shape of 1–3 axes with a random chunking and random i64 data in [-5, 5), so
/// ties and zeros are common.
fn int_case() -> impl Strategy<Value = (ArrayD<i64>, Vec<Vec<usize>>)> {
    proptest::collection::vec(1usize..7, 1..4).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        let cuts =
            shape.iter().map(|&s| proptest::collection::vec(1usize..=s, 1..4)).collect::<Vec<_>>();
        (proptest::collection::vec(-5i64..5, n), cuts).prop_map(move |(data, cuts)| {
            (ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap(), cuts)
        })
    })
}

#[test]
fn integers_are_the_same_for_every_chunking_and_stay_in_range() {
    let reference = integers(&[37, 23], &[37, 23], 11, -3, 9).unwrap().compute().unwrap();
    for chunks in [[1, 1], [5, 7], [36, 2], [10, 23]] {
        let x = integers(&[37, 23], &chunks, 11, -3, 9).unwrap();
        assert_eq!(x.compute().unwrap(), reference, "chunks {chunks:?}");
    }
    assert!(reference.iter().all(|v| (-3..9).contains(v)));
    // Every value of the range turns up, about equally often.
    for v in -3..9 {
        let count = reference.iter().filter(|&&x| x == v).count();
        assert!((40..=120).contains(&count), "{v} drawn {count} times of 851");
    }
    let wide = integers(&[1000], &[100], 1, i64::MIN, i64::MAX).unwrap().compute().unwrap();
    assert!(wide.iter().any(|&x| x < -(1 << 60)) && wide.iter().any(|&x| x > 1 << 60));
    assert!(integers(&[3], &[1], 0, 5, 5).unwrap_err().to_string().contains("low < high"));
}

#[test]
fn integer_sums_are_exact_where_f64_would_round() {
    // 2^60 + small odd numbers: an f64 sum would lose the low bits.
    let data =
        ArrayD::from_shape_fn(IxDyn(&[6, 4]), |ix| (1i64 << 60) + (ix[0] * 4 + ix[1]) as i64);
    let x = from_ndarray(&data, Chunks::regular(&[6, 4], &[4, 3]).unwrap()).unwrap();
    let want: i64 = data.iter().fold(0i64, |a, &b| a.wrapping_add(b));
    assert_eq!(x.sum(Axes::all()).compute().unwrap(), want);
    assert_eq!(x.max(Axes::all()).compute().unwrap(), (1i64 << 60) + 23);
    assert_eq!(x.min(Axes::all()).compute().unwrap(), 1i64 << 60);
    let rows = x.sum([1]).unwrap().compute().unwrap();
    let want_rows = data.map_axis(Axis(1), |r| r.iter().fold(0i64, |a, &b| a.wrapping_add(b)));
    assert_eq!(rows, want_rows);
    let m: f64 = (&x - (1i64 << 60)).mean(Axes::all()).compute().unwrap();
    assert_eq!(m, 11.5);
}

#[test]
fn f32_and_bool_reductions_have_numpy_result_types() {
    let x = full(&[10, 10], &[3, 4], 0.5f32).unwrap();
    let s: f32 = x.sum(Axes::all()).compute().unwrap();
    let m: f32 = x.mean(Axes::all()).compute().unwrap();
    assert_eq!((s, m), (50.0, 0.5));
    let b = full(&[7, 3], &[2, 2], true).unwrap();
    let count: i64 = b.sum(Axes::all()).compute().unwrap();
    assert_eq!(count, 21);
    assert!(b.all(Axes::all()).compute().unwrap());
    assert_eq!(b.astype::<i32>().max(Axes::all()).compute().unwrap(), 1);
}

#[test]
fn astype_follows_numpy() {
    let data =
        ArrayD::from_shape_vec(IxDyn(&[6]), vec![-2.7, -0.2, 0.0, 0.9, f64::NAN, 3e9]).unwrap();
    let x = from_ndarray(&data, Chunks::regular(&[6], &[4]).unwrap()).unwrap();
    assert_eq!(
        x.astype::<i64>().compute().unwrap().into_raw_vec_and_offset().0,
        vec![-2, 0, 0, 0, 0, 3_000_000_000]
    );
    assert_eq!(
        x.astype::<bool>().compute().unwrap().into_raw_vec_and_offset().0,
        vec![true, true, false, true, true, true]
    );
    let same = x.astype::<f64>();
    assert_eq!(same.name(), x.name(), "a cast to the same type adds no task");
    let back = x.astype::<f32>().astype::<f64>().compute().unwrap();
    assert!((back[[5]] - 3e9).abs() < 1e3 && back[[4]].is_nan());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn comparisons_and_where_match_eager((data, cuts) in int_case(), pivot in -5i64..5) {
        let layout = explicit(data.shape(), &cuts);
        let x = from_ndarray(&data, layout).unwrap();
        let mask = x.gt(pivot);
        prop_assert_eq!(mask.compute().unwrap(), data.mapv(|v| v > pivot));
        // Broadcast against the last row (a 1-d array over the last axis).
        let last = data.index_axis(Axis(0), data.shape()[0] - 1).to_owned();
        let row = from_ndarray(&last, Chunks::regular(last.shape(), &vec![1; last.ndim()]).unwrap())
            .unwrap();
        let le = x.le(&row).compute().unwrap();
        let want = ndarray::Zip::from(&data)
            .and_broadcast(&last)
            .map_collect(|&a, &b| a <= b);
        prop_assert_eq!(&le, &want);
        let picked = where_(&mask, &x, &-&x).unwrap().compute().unwrap();
        prop_assert_eq!(picked, data.mapv(|v| if v > pivot { v } else { -v }));
        let w = where_(&x.le(&row), &x, &row).unwrap().compute().unwrap();
        let want_w = ndarray::Zip::from(&data).and_broadcast(&last).map_collect(|&a, &b| a.min(b));
        prop_assert_eq!(w, want_w);
    }

    #[test]
    fn axis_reductions_of_integers_and_bools_match_eager(
        (data, cuts) in int_case(),
        axis_pick in 0usize..3,
    ) {
        let layout = explicit(data.shape(), &cuts);
        let x = from_ndarray(&data, layout).unwrap();
        let axis = axis_pick % data.ndim();
        let lanes = |f: &dyn Fn(ndarray::ArrayView1<i64>) -> i64| data.map_axis(Axis(axis), f);
        // numpy's argmin: the first of equal minima.
        let argmin = lanes(&|l| {
            let m = l.iter().min().unwrap();
            l.iter().position(|v| v == m).unwrap() as i64
        });
        let argmax = lanes(&|l| {
            let m = l.iter().max().unwrap();
            l.iter().position(|v| v == m).unwrap() as i64
        });
        prop_assert_eq!(x.argmin(axis).unwrap().compute().unwrap(), argmin);
        prop_assert_eq!(x.argmax(axis).unwrap().compute().unwrap(), argmax);
        let nonzero = lanes(&|l| l.iter().filter(|&&v| v != 0).count() as i64);
        prop_assert_eq!(x.count_nonzero([axis]).unwrap().compute().unwrap(), nonzero.clone());
        prop_assert_eq!(x.any([axis]).unwrap().compute().unwrap(), nonzero.mapv(|c| c > 0));
        let n = data.shape()[axis] as i64;
        prop_assert_eq!(x.all([axis]).unwrap().compute().unwrap(), nonzero.mapv(|c| c == n));
        prop_assert_eq!(x.min([axis]).unwrap().compute().unwrap(), lanes(&|l| *l.iter().min().unwrap()));
        let flat_min = data.iter().min().unwrap();
        let first = data.iter().position(|v| v == flat_min).unwrap() as i64;
        prop_assert_eq!(x.argmin(Axes::all()).compute().unwrap(), first);
    }

    #[test]
    fn reshape_matches_ndarray(
        (data, cuts) in int_case(),
        split in 0usize..4,
    ) {
        let layout = explicit(data.shape(), &cuts);
        let x = from_ndarray(&data, layout).unwrap();
        let n = data.len();
        // A few target shapes of the same size: flat, split in two, with unit axes.
        let divisor = [1, 2, 3, 5][split];
        let mut targets = vec![vec![n], vec![1, n, 1]];
        if n % divisor == 0 {
            targets.push(vec![divisor, n / divisor]);
            targets.push(vec![n / divisor, 1, divisor]);
        }
        let flat: Vec<i64> = data.iter().copied().collect();
        for t in targets {
            let y = x.reshape(&t).unwrap();
            let want = ArrayD::from_shape_vec(IxDyn(&t), flat.clone()).unwrap();
            prop_assert_eq!(y.compute().unwrap(), want.clone(), "shape {:?}", t);
            // And back again.
            prop_assert_eq!(y.reshape(data.shape()).unwrap().compute().unwrap(), data.clone());
        }
        prop_assert!(x.reshape(&[n + 1]).is_err());
    }
}

#[test]
fn argmin_along_an_axis_puts_nan_first_like_numpy() {
    let data = ndarray::array![[3.0, f64::NAN, 1.0], [2.0, 2.0, f64::NAN]].into_dyn();
    let x = from_ndarray(&data, Chunks::regular(&[2, 3], &[1, 1]).unwrap()).unwrap();
    assert_eq!(x.argmin(1).unwrap().compute().unwrap().into_raw_vec_and_offset().0, vec![1, 2]);
    assert_eq!(x.argmax(0).unwrap().compute().unwrap().into_raw_vec_and_offset().0, vec![0, 0, 1]);
    let empty = full(&[0, 2], &[1, 1], 1.0f64).unwrap();
    let err = empty.argmin(0).unwrap().compute().unwrap_err().to_string();
    assert!(err.contains("empty axis"), "{err}");
}

#[test]
fn integer_matmul_and_results_agree_across_thread_counts() {
    let a = integers(&[23, 17], &[5, 6], 3, -9, 10).unwrap();
    let b = integers(&[17, 11], &[4, 11], 4, -9, 10).unwrap();
    let c = a.matmul(&b).unwrap();
    let want = a
        .compute()
        .unwrap()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .dot(&b.compute().unwrap().into_dimensionality::<ndarray::Ix2>().unwrap());
    for threads in [1, 2, 4] {
        assert_eq!(Scheduler::threads(threads).compute(&c).unwrap(), want.clone().into_dyn());
    }
}

#[test]
fn npy_files_of_every_dtype_round_trip() {
    let dir = std::env::temp_dir().join(format!("brisk-dtypes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = Scheduler::threads(2);
    let ints = integers(&[9, 7], &[4, 3], 5, -100, 100).unwrap();
    ints.to_npy_on(dir.join("i.npy"), &s).unwrap();
    let back = from_npy_as::<i64>(dir.join("i.npy"), &[2, 7]).unwrap();
    assert_eq!(back.compute().unwrap(), ints.compute().unwrap());
    let mask = ints.gt(0);
    mask.to_npy_on(dir.join("b.npy"), &s).unwrap();
    assert_eq!(
        from_npy_as::<bool>(dir.join("b.npy"), &[9, 1]).unwrap().compute().unwrap(),
        mask.compute().unwrap()
    );
    let small = ints.astype::<f32>();
    small.to_npy_on(dir.join("f.npy"), &s).unwrap();
    assert_eq!(
        from_npy_as::<f32>(dir.join("f.npy"), &[3, 3]).unwrap().compute().unwrap(),
        small.compute().unwrap()
    );
    let err = from_npy(dir.join("i.npy"), &[2, 2]).unwrap_err().to_string();
    assert!(err.contains("i.npy") && err.contains("from_npy_as::<i64>"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
