//! Group-by results equal pandas' on db-benchmark data made by
//! `../shared/bench/gen_groupby.py`, with and without nulls (fixtures and answers
//! written by `tests/data/make_fixtures.py`), for every blocksize and thread count.

use std::path::PathBuf;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use brisk_frame::{Agg, CsvOptions, Table, read_csv};
use brisk_scheduler::Scheduler;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A table's rows as strings (nulls empty), columns in order.
fn rows(t: &Table) -> Vec<Vec<String>> {
    let b = t.to_batch();
    let opts = FormatOptions::default().with_null("");
    let fmts: Vec<ArrayFormatter> =
        b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()).collect();
    (0..b.num_rows()).map(|r| fmts.iter().map(|f| f.value(r).to_string()).collect()).collect()
}

/// pandas' answer: the CSV's rows as strings.
fn expected(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(data(name)).unwrap();
    text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// Equal as numbers within 1e-9 relative when both parse, else as text.
fn same(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

fn check(got: &Table, want: &[Vec<String>], what: &str) {
    let got = rows(got);
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: row {i} width");
        for (a, b) in g.iter().zip(w) {
            assert!(same(a, b), "{what}: row {i}: got {g:?}, pandas {w:?}");
        }
    }
}

type Query = (&'static str, &'static [&'static str], &'static [(&'static str, Agg)]);

const QUERIES: &[Query] = &[
    ("q1", &["id1"], &[("v1", Agg::Sum)]),
    ("q2", &["id1", "id2"], &[("v1", Agg::Sum)]),
    ("q3", &["id3"], &[("v1", Agg::Sum), ("v3", Agg::Mean)]),
    ("q4", &["id4"], &[("v1", Agg::Mean), ("v2", Agg::Mean), ("v3", Agg::Mean)]),
    ("q5", &["id6"], &[("v1", Agg::Sum), ("v2", Agg::Sum), ("v3", Agg::Sum)]),
    (
        "aggs",
        &["id2", "id4"],
        &[
            ("v1", Agg::Count),
            ("v1", Agg::Min),
            ("v1", Agg::Max),
            ("v1", Agg::First),
            ("v1", Agg::Last),
            ("v3", Agg::Std),
            ("v3", Agg::Var),
            ("v3", Agg::Min),
            ("v3", Agg::Max),
            ("v3", Agg::Size),
        ],
    ),
    (
        "nunique",
        &["id1", "id4"],
        &[("id3", Agg::Nunique), ("v2", Agg::Nunique), ("v3", Agg::Nunique)],
    ),
];

#[test]
fn db_benchmark_questions_match_pandas_for_every_blocksize() {
    for set in ["g_plain", "g_nulls"] {
        for (blocksize, threads) in [(1 << 30, 1), (4096, 2), (777, 3), (50_000, 2)] {
            let opts = CsvOptions::default().blocksize(blocksize);
            let df = read_csv(data(&format!("{set}.csv")).as_path(), opts).unwrap();
            for (q, keys, aggs) in QUERIES {
                let frame =
                    df.groupby(keys.iter().copied()).unwrap().agg(aggs.iter().copied()).unwrap();
                let got = Scheduler::threads(threads).compute(&frame).unwrap();
                check(
                    &got,
                    &expected(&format!("{set}.{q}.csv")),
                    &format!("{set} {q} blocksize {blocksize}"),
                );
            }
        }
    }
}

#[test]
fn results_are_bit_identical_across_thread_counts_and_splits() {
    let df =
        read_csv(data("g_nulls.csv").as_path(), CsvOptions::default().blocksize(3000)).unwrap();
    let q = |split_every: usize, split_out: usize| {
        df.groupby(["id3"])
            .unwrap()
            .split_every(split_every)
            .split_out(split_out)
            .agg([("v3", Agg::Var), ("v3", Agg::Mean)])
            .unwrap()
    };
    let reference = rows(&Scheduler::threads(1).compute(&q(8, 1)).unwrap());
    for threads in [2, 4] {
        assert_eq!(rows(&Scheduler::threads(threads).compute(&q(8, 1)).unwrap()), reference);
        // A memory budget of a few partitions holds reading back; same bits.
        let tight = Scheduler::threads(threads).memory_limit(20_000);
        assert_eq!(rows(&tight.compute(&q(8, 1)).unwrap()), reference);
    }
    // Another tree shape or split sums in another order: equal within rounding.
    let other = rows(&Scheduler::threads(2).compute(&q(3, 5)).unwrap());
    assert_eq!(other.len(), reference.len());
    for (a, b) in other.iter().zip(&reference) {
        assert!(a.iter().zip(b).all(|(x, y)| same(x, y)), "{a:?} vs {b:?}");
    }
}
