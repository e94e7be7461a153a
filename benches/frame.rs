//! `read_csv(..).groupby(..)` end to end from a CSV on disk: parsing (the quote-free
//! fast path), partial aggregation and the combine tree. `cargo bench --bench frame`.
//! Writes a 1,000,000-row file of the db-benchmark schema (about 50 MB) to the
//! temporary directory once; throughput is in bytes of CSV. Each case checks its
//! answer (group count) before it is timed. `csv_block_parse` times one block
//! parsed by the quote-free fast path and by Arrow's decoder. The side-by-side comparison with Polars
//! and Dask on the 10-million-row file uses `examples/csv_groupby_bench.rs`.

use std::io::Write;

use brisk::frame::{Agg, CsvOptions, read_csv};
use brisk::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn write_data(rows: u64) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("brisk_bench_groupby_{rows}.csv"));
    if path.exists() {
        return path;
    }
    let tmp = path.with_extension("partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    writeln!(out, "id1,id2,id3,id4,id5,id6,v1,v2,v3").unwrap();
    let mut s = 7u64;
    let mut next = |n: u64| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) % n
    };
    for _ in 0..rows {
        let (a, b, c) = (next(100) + 1, next(100) + 1, next(10_000) + 1);
        let (d, e, f) = (next(100) + 1, next(100) + 1, next(10_000) + 1);
        let (v1, v2, v3) = (next(5) + 1, next(15) + 1, next(100_000_000) as f64 / 1e6);
        writeln!(out, "id{a:03},id{b:03},id{c:010},{d},{e},{f},{v1},{v2},{v3:.6}").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// A case: its name, the key, the aggregations, the expected number of groups.
type Query = (&'static str, &'static str, Vec<(&'static str, Agg)>, usize);

fn groupby(c: &mut Criterion) {
    let path = write_data(1_000_000);
    let bytes = std::fs::metadata(&path).unwrap().len();
    let mut g = c.benchmark_group("csv_groupby");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    let scheduler = Scheduler::threads(2);
    let queries: [Query; 2] = [
        ("q1_id1_mean", "id1", vec![("v1", Agg::Mean), ("v2", Agg::Mean), ("v3", Agg::Mean)], 100),
        ("q3_id3_sum_mean", "id3", vec![("v1", Agg::Sum), ("v3", Agg::Mean)], 10_000),
    ];
    for (name, key, aggs, groups) in queries {
        let frame = || {
            let df = read_csv(path.as_path(), CsvOptions::default()).unwrap();
            df.groupby([key]).unwrap().agg(aggs.clone()).unwrap()
        };
        assert_eq!(scheduler.compute(&frame()).unwrap().num_rows(), groups);
        g.bench_function(BenchmarkId::new("threads2", name), |b| {
            b.iter(|| scheduler.compute(&frame()).unwrap())
        });
    }
    g.finish();
}

/// One 4 MiB block of the same file parsed by the quote-free fast path and by
/// Arrow's CSV decoder, columns typed as `read_csv` infers them: the fast path
/// stays only while it is faster. Both answers are checked equal first.
fn block_parse(c: &mut Criterion) {
    let path = write_data(1_000_000);
    let schema = read_csv(path.as_path(), CsvOptions::default()).unwrap().schema().clone();
    let text = std::fs::read_to_string(&path).unwrap();
    let body = &text[text.find('\n').unwrap() + 1..];
    let block = &body[..body[..4 << 20].rfind('\n').unwrap() + 1];
    let fast =
        brisk::frame::bench_parse_block(block, &schema, true).expect("the fast path applies");
    let arrow = brisk::frame::bench_parse_block(block, &schema, false).expect("Arrow parses it");
    assert_eq!(fast, arrow);
    let mut g = c.benchmark_group("csv_block_parse");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(block.len() as u64));
    for (name, fast_path) in [("fast_path", true), ("arrow_csv", false)] {
        g.bench_function(name, |b| {
            b.iter(|| brisk::frame::bench_parse_block(block, &schema, fast_path).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, groupby, block_parse);
criterion_main!(benches);
