//! `random(shape, chunks, seed).mean(Axes::all())`: generation, per-chunk pairwise sums and the
//! reduction tree, fused one task per chunk. `cargo bench --bench array`.
//! Throughput is in elements. Each case checks its answer before it is timed.

use brisk::array::{Axes, random};
use brisk::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn random_mean(c: &mut Criterion) {
    let mut g = c.benchmark_group("random_mean");
    g.sample_size(10);
    for (n, chunk) in [(2_000usize, 500usize), (10_000, 1_000)] {
        let x = random(&[n, n], &[chunk, chunk], 42).unwrap();
        let m = x.mean(Axes::all());
        let scheduler = Scheduler::threads(2);
        let mean = scheduler.compute(&m).unwrap();
        assert!((mean - 0.5).abs() < 6.0 * (1.0 / 12.0f64).sqrt() / n as f64, "mean {mean}");
        g.throughput(Throughput::Elements((n * n) as u64));
        g.bench_function(BenchmarkId::new("threads2", format!("{n}x{n}/{chunk}")), |b| {
            b.iter(|| scheduler.compute(&m).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, random_mean);
criterion_main!(benches);
