//! `random(..).mean(Axes::all())` and friends against eager references, across chunkings,
//! thread counts and schedulers.

use brisk_array::{Axes, Chunks, from_ndarray, full, random};
use brisk_core::OpRegistry;
use brisk_graph::{Collection, PlanOptions};
use brisk_scheduler::{Compute, Scheduler};
use ndarray::{ArrayD, Dimension, IxDyn};
use proptest::prelude::*;

fn bits(a: &ArrayD<f64>) -> Vec<u64> {
    a.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn random_is_the_same_array_for_every_chunking() {
    let shape = [23, 17, 5];
    let whole = random(&shape, &shape, 9).unwrap().compute().unwrap();
    for chunks in [[1, 1, 1], [7, 5, 2], [23, 1, 5], [10, 17, 3]] {
        let x = random(&shape, &chunks, 9).unwrap();
        assert_eq!(
            bits(&Scheduler::threads(3).compute(&x).unwrap()),
            bits(&whole),
            "chunks {chunks:?}"
        );
    }
    let other_seed = random(&shape, &shape, 10).unwrap().compute().unwrap();
    assert_ne!(bits(&other_seed), bits(&whole));
}

#[test]
fn mean_is_bit_identical_across_thread_counts_and_schedulers() {
    let x = random(&[600, 700], &[64, 100], 3).unwrap() + 1.5;
    let reference = Scheduler::sync().compute(&x.mean(Axes::all())).unwrap();
    for threads in [1, 2, 3, 5] {
        assert_eq!(
            Scheduler::threads(threads).compute(&x.mean(Axes::all())).unwrap().to_bits(),
            reference.to_bits()
        );
    }
    // Against the eager mean of the materialized array.
    let eager = Scheduler::sync().compute(&x).unwrap();
    let want = eager.iter().sum::<f64>() / eager.len() as f64;
    assert!((reference - want).abs() <= 1e-12 * want.abs(), "{reference} vs {want}");
    assert!((reference - 2.0).abs() < 0.01);
}

#[test]
fn split_every_changes_the_tree_not_the_answer() {
    let x = random(&[300, 300], &[10, 10], 5).unwrap();
    let a = x.mean(Axes::all()).compute().unwrap();
    for split in [2, 3, 32, 1000] {
        let b = x.mean(Axes::all().split_every(split).unwrap()).compute().unwrap();
        assert!((a - b).abs() < 1e-14, "split_every {split}: {a} vs {b}");
    }
    assert!(Axes::all().split_every(1).is_err());
}

#[test]
fn per_chunk_steps_fuse_into_one_task_per_chunk() {
    let x = random(&[100, 100], &[10, 25], 1).unwrap() * 2.0 + 1.0;
    let m = x.mean(Axes::all());
    let (graph, keys) = m.graph().unwrap();
    let chunks = 40;
    assert_eq!(
        graph.len(),
        4 * chunks + 5 + 1 + 1,
        "random, mul, add, stats per chunk; 5+1 combines; finish"
    );
    let plan = graph.plan(&keys, PlanOptions::default()).unwrap();
    // random, mul, add fuse into each chunk's stats; the last combine into finish.
    assert_eq!(plan.fused(), 3 * chunks + 1);
    assert_eq!(plan.len(), chunks + 5 + 1);
}

#[test]
fn bad_chunks_are_refused_at_once_naming_the_shapes() {
    let err = random(&[10, 10], &[5], 0).unwrap_err().to_string();
    assert!(err.contains("[10, 10]") && err.contains("[5]"), "{err}");
    let err = random(&[10], &[0], 0).unwrap_err().to_string();
    assert!(err.contains("at least 1"), "{err}");
    let err = Chunks::explicit(&[10, 4], vec![vec![5, 4], vec![4]]).unwrap_err().to_string();
    assert!(err.contains("axis 0: chunk sizes sum to 9, not 10"), "{err}");
    let a = ArrayD::<f64>::zeros(IxDyn(&[3, 3]));
    assert!(from_ndarray(&a, Chunks::regular(&[3, 4], &[1, 1]).unwrap()).is_err());
}

#[test]
fn array_ops_survive_encoding_and_run_the_same_after() {
    let x = random(&[20, 30], &[7, 11], 4).unwrap() + 3.0;
    let (graph, keys) = x.graph().unwrap();
    let mut registry = OpRegistry::new();
    brisk_array::register_ops(&mut registry);
    let shipped = brisk_graph::Graph::from_tasks(graph.tasks().map(|mut t| {
        t.op = registry.decode(&t.op.encode().unwrap()).unwrap();
        t
    }))
    .unwrap();
    let a = Scheduler::threads(2).run(graph, &keys).unwrap();
    let b = Scheduler::threads(2).run(shipped, &keys).unwrap();
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.encode().unwrap(), b.encode().unwrap());
    }
}

#[test]
fn empty_and_constant_arrays() {
    assert!(full(&[0, 3], &[1, 1], 1.0_f64).unwrap().mean(Axes::all()).compute().unwrap().is_nan());
    assert_eq!(full(&[4, 5], &[3, 2], 2.5_f64).unwrap().sum(Axes::all()).compute().unwrap(), 50.0);
}

fn shape_and_chunks() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>)> {
    proptest::collection::vec(1usize..9, 1..4).prop_flat_map(|shape| {
        let axes: Vec<_> = shape
            .iter()
            .map(|&n| {
                proptest::collection::vec(1usize..5, 1..6).prop_map(move |cuts| {
                    let mut sizes = Vec::new();
                    let mut left = n;
                    for c in cuts {
                        if left == 0 {
                            break;
                        }
                        let s = c.min(left);
                        sizes.push(s);
                        left -= s;
                    }
                    if left > 0 {
                        sizes.push(left);
                    }
                    sizes
                })
            })
            .collect();
        (Just(shape), axes)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn chunked_ops_equal_the_eager_reference((shape, sizes) in shape_and_chunks(), seed in any::<u64>(), s in -5.0f64..5.0, threads in 1usize..4) {
        let data = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
            let flat = ix.slice().iter().fold(seed, |acc, &i| acc.wrapping_mul(31).wrapping_add(i as u64));
            (flat % 1000) as f64 / 7.0 - 50.0
        });
        let x = from_ndarray(&data, Chunks::explicit(&shape, sizes).unwrap()).unwrap();
        let scheduler = Scheduler::threads(threads);
        prop_assert_eq!(bits(&scheduler.compute(&x).unwrap()), bits(&data));
        let y = scheduler.compute(&((&x + s) * 2.0)).unwrap();
        prop_assert_eq!(bits(&y), bits(&data.mapv(|v| (v + s) * 2.0)));
        let sum = scheduler.compute(&x.sum(Axes::all())).unwrap();
        let want: f64 = data.iter().sum();
        prop_assert!((sum - want).abs() <= 1e-9 * (1.0 + want.abs()), "{} vs {}", sum, want);
        let mean = scheduler.compute(&((s - &x) / 3.0).mean(Axes::all())).unwrap();
        let want = data.mapv(|v| (s - v) / 3.0).iter().sum::<f64>() / data.len() as f64;
        prop_assert!((mean - want).abs() <= 1e-9 * (1.0 + want.abs()), "{} vs {}", mean, want);
    }
}

#[test]
fn a_budget_smaller_than_one_chunk_is_refused_before_anything_runs_and_a_tight_one_holds() {
    let x = random(&[2000, 2000], &[500, 500], 3).unwrap();
    // One chunk is 2 MB: a 1 MB budget cannot hold it.
    let err =
        Scheduler::threads(2).memory_limit(1_000_000).compute(&x.mean(Axes::all())).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("array.random") && text.contains("1.9 MiB"), "{text}");
    assert!(text.contains("use smaller chunks"), "{text}");
    // Three chunks' worth: roots wait for room, the mean is the same bits.
    let want = Scheduler::threads(1).compute(&x.mean(Axes::all())).unwrap();
    let (graph, keys) = x.mean(Axes::all()).graph().unwrap();
    let (values, stats) =
        Scheduler::threads(2).memory_limit(6_000_000).run_with_stats(graph, &keys).unwrap();
    let got = x.mean(Axes::all()).finish(values).unwrap();
    assert_eq!(got.to_bits(), want.to_bits());
    assert!(stats.peak_bytes <= 6_000_000 + 3 * 2_000_000, "peak {}", stats.peak_bytes);
}
