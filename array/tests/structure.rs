//! Transpose, slicing, rechunk, concatenate, stack and map_blocks against eager
//! ndarray references on random shapes and chunkings.

mod common;
use common::cut;

use brisk_array::{Array, Chunks, Index, concatenate, from_ndarray, random, stack};
use brisk_scheduler::{Compute, Scheduler};
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;

fn layout() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>, Vec<Vec<usize>>)> {
    proptest::collection::vec(1usize..8, 1..4).prop_flat_map(|shape| {
        let cuts = || {
            shape
                .iter()
                .map(|&n| proptest::collection::vec(1usize..5, 1..5).prop_map(move |c| cut(n, &c)))
                .collect::<Vec<_>>()
        };
        (Just(shape.clone()), cuts(), cuts())
    })
}

fn data(shape: &[usize]) -> ArrayD<f64> {
    let mut k = 0.0;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        k += 1.0;
        k
    })
}

/// Python's slice on one axis: the positions selected, in order.
fn positions(n: usize, start: Option<isize>, stop: Option<isize>, step: isize) -> Vec<usize> {
    let n = n as isize;
    let norm = |v: isize| if v < 0 { v + n } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let (mut p, end) = (start.map_or(0, norm).clamp(0, n), stop.map_or(n, norm).clamp(0, n));
        while p < end {
            out.push(p as usize);
            p += step;
        }
    } else {
        let (mut p, end) = (
            start.map_or(n - 1, norm).clamp(-1, n - 1),
            stop.map_or(-1, |v| norm(v).max(-1)).clamp(-1, n - 1),
        );
        while p > end {
            out.push(p as usize);
            p += step;
        }
    }
    out
}

fn index_strategy(n: usize) -> impl Strategy<Value = Index> {
    let n = n as isize;
    prop_oneof![
        Just(Index::All),
        (-n..n).prop_map(Index::At),
        (
            proptest::option::of(-n - 2..n + 2),
            proptest::option::of(-n - 2..n + 2),
            prop_oneof![1isize..4, -3isize..0]
        )
            .prop_map(|(start, stop, step)| Index::Range { start, stop, step }),
    ]
}

fn eager_slice(a: &ArrayD<f64>, index: &[Index]) -> ArrayD<f64> {
    let mut out = a.clone();
    // Apply axes from the last so earlier axis numbers stay valid when one is dropped.
    for (axis, ix) in index.iter().enumerate().rev() {
        let n = out.shape()[axis];
        out = match *ix {
            Index::All => out,
            Index::At(i) => out
                .index_axis(Axis(axis), if i < 0 { (i + n as isize) as usize } else { i as usize })
                .to_owned(),
            Index::Range { start, stop, step } => {
                out.select(Axis(axis), &positions(n, start, stop, step))
            }
        };
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rechunk_and_transpose_keep_every_value((shape, a, b) in layout(), threads in 1usize..4) {
        let d = data(&shape);
        let x = from_ndarray(&d, Chunks::explicit(&shape, a).unwrap()).unwrap();
        let s = Scheduler::threads(threads);
        let target = Chunks::explicit(&shape, b).unwrap();
        let y = x.rechunk_to(target.clone()).unwrap();
        prop_assert_eq!(y.chunks(), &target);
        prop_assert_eq!(s.compute(&y).unwrap(), d.clone());
        let t = x.transpose(None).unwrap();
        prop_assert_eq!(s.compute(&t).unwrap(), d.t().to_owned());
    }

    #[test]
    fn slicing_matches_python_semantics(
        (shape, a, index) in layout().prop_flat_map(|(shape, a, _)| {
            let index: Vec<_> = shape.iter().map(|&n| index_strategy(n)).collect();
            (Just(shape), Just(a), index)
        }),
    ) {
        let d = data(&shape);
        let x = from_ndarray(&d, Chunks::explicit(&shape, a).unwrap()).unwrap();
        let y = x.slice(&index).unwrap();
        let want = eager_slice(&d, &index);
        prop_assert_eq!(y.shape(), want.shape());
        prop_assert_eq!(y.compute().unwrap(), want);
    }
}

#[test]
fn concatenate_and_stack_match_ndarray() {
    let a = random(&[5, 7], &[2, 3], 1).unwrap();
    let b = random(&[4, 7], &[3, 7], 2).unwrap();
    let (da, db) = (a.compute().unwrap(), b.compute().unwrap());
    let c = concatenate(&[a.clone(), b.clone()], 0).unwrap();
    assert_eq!(
        c.compute().unwrap(),
        ndarray::concatenate(Axis(0), &[da.view(), db.view()]).unwrap()
    );
    assert_eq!(c.chunks().sizes()[1], vec![3, 3, 1], "other axes take the first array's chunks");
    let b2 = random(&[5, 7], &[5, 1], 3).unwrap();
    let s = stack(&[a.clone(), b2.clone()], 1).unwrap();
    assert_eq!(s.shape(), &[5, 2, 7]);
    assert_eq!(
        s.compute().unwrap(),
        ndarray::stack(Axis(1), &[da.view(), b2.compute().unwrap().view()]).unwrap()
    );
    let err =
        concatenate(&[a.clone(), random(&[5, 6], &[5, 6], 0).unwrap()], 0).unwrap_err().to_string();
    assert!(err.contains("[5, 7]") && err.contains("[5, 6]"), "{err}");
}

#[test]
fn map_blocks_runs_user_kernels_and_checks_their_shape() {
    let x = random(&[20, 30], &[7, 8], 4).unwrap();
    let y = x.map_blocks("square", |c| c.mapv(|v| v * v));
    assert_eq!(y.compute().unwrap(), x.compute().unwrap().mapv(|v| v * v));
    let bad: Array = x.map_blocks("shrink", |c| c.index_axis(Axis(0), 0).to_owned());
    let err = bad.compute().unwrap_err().to_string();
    assert!(err.contains("shrink") && err.contains("must keep the shape"), "{err}");
}

#[test]
fn out_of_range_indices_are_errors() {
    let x = random(&[4, 5], &[2, 2], 0).unwrap();
    assert!(
        x.slice(&[Index::At(4)])
            .unwrap_err()
            .to_string()
            .contains("out of bounds for axis 0 of size 4")
    );
    assert!(x.slice(&[Index::All, Index::Range { start: None, stop: None, step: 0 }]).is_err());
    assert!(x.slice(&[Index::All, Index::All, Index::All]).is_err());
    assert!(x.transpose(Some(&[0, 0])).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn matmul_matches_ndarray_dot(
        (m, k, n) in (1usize..12, 1usize..40, 1usize..12),
        (cm, ck, ck2, cn) in (1usize..6, 1usize..6, 1usize..6, 1usize..6),
        threads in 1usize..4,
    ) {
        let a = random(&[m, k], &[cm, ck], 1).unwrap();
        let b = random(&[k, n], &[ck2, cn], 2).unwrap();
        let c = a.matmul(&b).unwrap();
        let want = a.compute().unwrap().into_dimensionality::<ndarray::Ix2>().unwrap()
            .dot(&b.compute().unwrap().into_dimensionality::<ndarray::Ix2>().unwrap());
        let got = Scheduler::threads(threads).compute(&c).unwrap();
        prop_assert!(got.iter().zip(want.iter()).all(|(x, y)| (x - y).abs() < 1e-12));
        let again = Scheduler::sync().compute(&c).unwrap();
        prop_assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), again.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
}

#[test]
fn matmul_refuses_shapes_that_do_not_align() {
    let a = random(&[3, 4], &[3, 4], 0).unwrap();
    let err = a.matmul(&random(&[5, 2], &[5, 2], 0).unwrap()).unwrap_err().to_string();
    assert!(err.contains("4 columns against 5 rows"), "{err}");
    assert!(a.matmul(&random(&[4], &[4], 0).unwrap()).is_err());
}
