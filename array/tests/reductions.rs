//! Reductions over all axes and chosen axes against eager ndarray references, on
//! random shapes and chunkings, and bit for bit across thread counts.

mod common;
use common::cut;

use brisk_array::{Agg, Axes, Chunks, from_ndarray, random};
use brisk_scheduler::{Compute, Scheduler};
use ndarray::{ArrayD, Axis, Dimension, IxDyn};
use proptest::prelude::*;

/// numpy's answer computed eagerly on the whole array.
fn eager(data: &ArrayD<f64>, agg: Agg, axes: &[usize]) -> ArrayD<f64> {
    let mut out = data.clone();
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    let n: usize = axes.iter().map(|&d| data.shape()[d]).product();
    // Fold each reduced axis into a list of lanes, last axis first.
    let lanes = |a: &ArrayD<f64>| -> ArrayD<Vec<f64>> {
        let kept: Vec<usize> = (0..a.ndim()).filter(|d| !sorted.contains(d)).collect();
        let shape: Vec<usize> = kept.iter().map(|&d| a.shape()[d]).collect();
        let mut lanes = ArrayD::from_elem(IxDyn(&shape), Vec::new());
        for (ix, &v) in a.indexed_iter() {
            let at: Vec<usize> = kept.iter().map(|&d| ix.slice()[d]).collect();
            lanes[IxDyn(&at)].push(v);
        }
        lanes
    };
    let l = lanes(&out);
    out = l.mapv(|xs| {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        match agg {
            Agg::Sum => xs.iter().sum(),
            Agg::Mean => mean,
            Agg::Var { ddof } | Agg::Std { ddof } => {
                let v = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>()
                    / (n as f64 - f64::from(ddof));
                if matches!(agg, Agg::Std { .. }) { v.sqrt() } else { v }
            }
            Agg::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
            Agg::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    });
    out
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>) -> bool {
    a.shape() == b.shape()
        && a.iter().zip(b).all(|(x, y)| {
            (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())) || (x.is_nan() && y.is_nan())
        })
}

const AGGS: [Agg; 6] =
    [Agg::Sum, Agg::Mean, Agg::Var { ddof: 0 }, Agg::Std { ddof: 1 }, Agg::Min, Agg::Max];

fn layout() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>, Vec<usize>)> {
    proptest::collection::vec(2usize..8, 1..4).prop_flat_map(|shape| {
        let ndim = shape.len();
        let axes = shape
            .iter()
            .map(|&n| {
                proptest::collection::vec(1usize..4, 1..5).prop_map(move |cuts| cut(n, &cuts))
            })
            .collect::<Vec<_>>();
        (Just(shape), axes, proptest::sample::subsequence((0..ndim).collect::<Vec<_>>(), 1..=ndim))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn reductions_equal_the_eager_reference((shape, sizes, axes) in layout(), seed in any::<u64>(), split in 2usize..5, threads in 1usize..4) {
        let data = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
            let h = ix.slice().iter().fold(seed, |acc, &i| acc.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64 + 1));
            ((h >> 7) % 10_000) as f64 / 100.0 - 50.0
        });
        let x = from_ndarray(&data, Chunks::explicit(&shape, sizes).unwrap()).unwrap();
        let scheduler = Scheduler::threads(threads);
        for agg in AGGS {
            let got = scheduler.compute(&x.reduce(agg, Axes::from(&axes[..]).split_every(split).unwrap()).unwrap()).unwrap();
            let want = eager(&data, agg, &axes);
            prop_assert!(close(&got, &want), "{:?} over {:?}: {:?} vs {:?}", agg, axes, got, want);
        }
    }
}

#[test]
fn full_reductions_are_bit_identical_across_thread_counts() {
    let x = random(&[300, 200], &[64, 50], 11).unwrap() * 10.0;
    for r in [
        x.sum(Axes::all()),
        x.mean(Axes::all()),
        x.var(Axes::all(), 0),
        x.std(Axes::all(), 1),
        x.min(Axes::all()),
        x.max(Axes::all()),
    ] {
        let want = Scheduler::sync().compute(&r).unwrap().to_bits();
        for threads in [1, 2, 4] {
            assert_eq!(Scheduler::threads(threads).compute(&r).unwrap().to_bits(), want);
        }
    }
    let var = x.var(Axes::all(), 0).compute().unwrap();
    assert!((var - 100.0 / 12.0).abs() < 0.1, "{var}");
}

#[test]
fn axis_reductions_keep_the_other_axes_chunks() {
    let x = random(&[10, 12, 4], &[3, 5, 4], 2).unwrap();
    let m = x.reduce(Agg::Mean, [1]).unwrap();
    assert_eq!(m.shape(), &[10, 4]);
    assert_eq!(m.chunks().sizes(), &[vec![3, 3, 3, 1], vec![4]]);
    let data = x.compute().unwrap();
    assert!(close(&m.compute().unwrap(), &data.mean_axis(Axis(1)).unwrap()));
}

#[test]
fn bad_axes_are_refused() {
    let x = random(&[4, 4], &[2, 2], 0).unwrap();
    assert!(x.reduce(Agg::Sum, [2]).unwrap_err().to_string().contains("axis 2 is out of range"));
    assert!(x.reduce(Agg::Sum, [0, 0]).is_err());
    assert!(Axes::all().split_every(1).is_err());
}

#[test]
fn nan_propagates_through_min_and_max() {
    let mut data = ArrayD::from_elem(IxDyn(&[4, 4]), 1.0);
    data[[2, 3]] = f64::NAN;
    let x = from_ndarray(&data, Chunks::regular(&[4, 4], &[2, 2]).unwrap()).unwrap();
    assert!(x.min(Axes::all()).compute().unwrap().is_nan());
    assert!(x.max(Axes::all()).compute().unwrap().is_nan());
    let per_row = x.reduce(Agg::Max, [1]).unwrap().compute().unwrap();
    assert_eq!(per_row.iter().filter(|v| v.is_nan()).count(), 1);
}
