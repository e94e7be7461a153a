//! Frame operations on several partitions against the same operation done eagerly
//! on all rows at once.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, Int64Type};
use brisk_frame::{Frame, col, lit};
use brisk_scheduler::{Compute, Scheduler};

/// 1000 rows in 7 partitions: k cycles through 13 names (one in 17 null), v is a
/// pseudo-random integer, x a float.
fn data() -> (Frame, Vec<(Option<String>, i64, f64)>) {
    let rows: Vec<(Option<String>, i64, f64)> = (0..1000u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            let k = (i % 17 != 3).then(|| format!("k{:02}", (i * 7) % 13));
            (k, (h % 50) as i64, (h % 1000) as f64 / 8.0)
        })
        .collect();
    let batches = rows
        .chunks(150)
        .map(|c| {
            RecordBatch::try_from_iter([
                ("k", Arc::new(c.iter().map(|r| r.0.clone()).collect::<StringArray>()) as ArrayRef),
                (
                    "v",
                    Arc::new(Int64Array::from(c.iter().map(|r| r.1).collect::<Vec<_>>()))
                        as ArrayRef,
                ),
                (
                    "x",
                    Arc::new(Float64Array::from(c.iter().map(|r| r.2).collect::<Vec<_>>()))
                        as ArrayRef,
                ),
            ])
            .unwrap()
        })
        .collect();
    (Frame::from_batches(batches).unwrap(), rows)
}

fn ints(t: &brisk_frame::Table, c: &str) -> Vec<i64> {
    t.column(c).unwrap().as_primitive::<Int64Type>().values().to_vec()
}

#[test]
fn filter_with_column_head_and_len_match_eager() {
    let (df, rows) = data();
    let f = df.filter(col("v").gt(lit(40)).and(!col("k").is_null())).unwrap();
    let f = f.with_column("y", (col("v") * 2 + col("x")) / 2).unwrap();
    let t = Scheduler::threads(3).compute(&f).unwrap();
    let want: Vec<&(Option<String>, i64, f64)> =
        rows.iter().filter(|r| r.1 > 40 && r.0.is_some()).collect();
    assert_eq!(ints(&t, "v"), want.iter().map(|r| r.1).collect::<Vec<_>>());
    let y = t.column("y").unwrap();
    let y = y.as_primitive::<Float64Type>().values();
    assert!(y.iter().zip(&want).all(|(y, r)| *y == (r.1 as f64 * 2.0 + r.2) / 2.0));
    assert_eq!(f.len().compute().unwrap(), want.len());
    assert_eq!(df.head(160).unwrap().num_rows(), 160);
    assert_eq!(ints(&df.head(5).unwrap(), "v"), rows[..5].iter().map(|r| r.1).collect::<Vec<_>>());
    assert!(df.filter(col("v") + 1).unwrap_err().to_string().contains("boolean"));
}

#[test]
fn sorting_and_counting_match_eager() {
    let (df, rows) = data();
    let t = df.sort_values(["v"], true).unwrap().compute().unwrap();
    let mut want: Vec<i64> = rows.iter().map(|r| r.1).collect();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(ints(&t, "v"), want);
    let top = df.nlargest(7, "x").unwrap().compute().unwrap();
    let mut xs: Vec<f64> = rows.iter().map(|r| r.2).collect();
    xs.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(
        top.column("x").unwrap().as_primitive::<Float64Type>().values().to_vec(),
        xs[..7].to_vec()
    );
    let vc = df.value_counts("k").unwrap().compute().unwrap();
    let mut counts = std::collections::BTreeMap::<String, i64>::new();
    rows.iter().filter_map(|r| r.0.clone()).for_each(|k| *counts.entry(k).or_default() += 1);
    let mut want: Vec<(i64, String)> = counts.iter().map(|(k, n)| (-n, k.clone())).collect();
    want.sort();
    assert_eq!(ints(&vc, "count"), want.iter().map(|w| -w.0).collect::<Vec<_>>());
    assert_eq!(df.nunique("k").unwrap().compute().unwrap(), counts.len());
    assert_eq!(df.nunique("v").unwrap().compute().unwrap(), 50);
    let distinct = df.select(["k", "v"]).unwrap().drop_duplicates().unwrap().compute().unwrap();
    let set: std::collections::BTreeSet<(Option<String>, i64)> =
        rows.iter().map(|r| (r.0.clone(), r.1)).collect();
    assert_eq!(distinct.num_rows(), set.len());
}

#[test]
fn describe_matches_eager_statistics() {
    let (df, rows) = data();
    let t = df.describe().unwrap().compute().unwrap();
    let v = t.column("v").unwrap();
    let v = v.as_primitive::<Float64Type>().values();
    let xs: Vec<f64> = rows.iter().map(|r| r.1 as f64).collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert_eq!(v[0], n);
    assert!((v[1] - mean).abs() < 1e-9 && (v[2] - std).abs() < 1e-9, "{v:?}");
    assert_eq!((v[3], v[7]), (0.0, 49.0));
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    for (row, q) in [(4, 0.25), (5, 0.5), (6, 0.75)] {
        assert_eq!(v[row], linear_quantile(&sorted, q), "q {q}: exact under the limit");
    }
}

/// numpy's default (`linear`) quantile of sorted values, which pandas uses.
fn linear_quantile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
}

/// One float column in partitions of `per` rows.
fn floats(xs: &[f64], per: usize) -> Frame {
    let batches = xs
        .chunks(per)
        .map(|c| {
            RecordBatch::try_from_iter([(
                "x",
                Arc::new(Float64Array::from(c.to_vec())) as ArrayRef,
            )])
            .unwrap()
        })
        .collect();
    Frame::from_batches(batches).unwrap()
}

fn quartiles(df: &Frame) -> Vec<f64> {
    let t = df.describe().unwrap().compute().unwrap();
    let x = t.column("x").unwrap();
    x.as_primitive::<Float64Type>().values()[4..7].to_vec()
}

/// Quartiles interpolate as pandas does (the median of 1..4 is 2.5, not 2),
/// exactly up to the exact limit; past it (300,000 values, negatives, a wide
/// range) every quartile is within the sketch's proven bound of numpy's, and
/// the same bits however the values are partitioned (merges add counts).
#[test]
fn describe_quartiles_interpolate_as_pandas_within_the_stated_bound() {
    assert_eq!(quartiles(&floats(&[4.0, 1.0, 3.0, 2.0], 1)), vec![1.75, 2.5, 3.25]);
    assert_eq!(quartiles(&floats(&[10.0, 20.0], 2)), vec![12.5, 15.0, 17.5]);
    let n = 300_000;
    assert!(n > brisk_frame::DESCRIBE_EXACT_VALUES);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let xs: Vec<f64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            // Skewed, both signs, six orders of magnitude.
            (u * 14.0 - 4.0).exp() * if state.is_multiple_of(5) { -1.0 } else { 1.0 }
        })
        .collect();
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let first = quartiles(&floats(&xs, 40_000));
    for (i, q) in [0.25, 0.5, 0.75].into_iter().enumerate() {
        let want = linear_quantile(&sorted, q);
        let h = q * (n - 1) as f64;
        let scale = sorted[h.floor() as usize].abs().max(sorted[h.ceil() as usize].abs());
        let bound = brisk_frame::DESCRIBE_RELATIVE_ACCURACY * scale;
        assert!((first[i] - want).abs() <= bound, "q {q}: {} vs {want} (bound {bound})", first[i]);
    }
    for per in [7_919, 100_000, n] {
        assert_eq!(quartiles(&floats(&xs, per)), first, "partitions of {per}");
    }
}

/// A frame of (key, value) rows in partitions of `per` rows.
fn pairs(rows: &[(Option<i64>, String)], per: usize) -> Frame {
    let batches = rows
        .chunks(per)
        .map(|c| {
            RecordBatch::try_from_iter([
                (
                    "id",
                    Arc::new(Int64Array::from(c.iter().map(|r| r.0).collect::<Vec<_>>()))
                        as ArrayRef,
                ),
                (
                    "v",
                    Arc::new(c.iter().map(|r| Some(r.1.clone())).collect::<StringArray>())
                        as ArrayRef,
                ),
            ])
            .unwrap()
        })
        .collect();
    Frame::from_batches(batches).unwrap()
}

#[test]
fn merge_matches_a_nested_loop_join() {
    use brisk_frame::How;
    let left: Vec<(Option<i64>, String)> =
        (0..60).map(|i| ((i % 11 != 0).then_some(i % 9), format!("l{i}"))).collect();
    let right: Vec<(Option<i64>, String)> =
        (0..25).map(|i| ((i % 7 != 3).then_some(i % 12), format!("r{i}"))).collect();
    for (lper, rper) in [(7, 100), (7, 4), (60, 3)] {
        for how in [How::Inner, How::Left] {
            let m = pairs(&left, lper).merge(&pairs(&right, rper), ["id"], how).unwrap();
            assert_eq!(m.columns(), vec!["id", "v_x", "v_y"]);
            let t = Scheduler::threads(2).compute(&m).unwrap();
            let b = t.to_batch();
            let mut got: Vec<(String, Option<String>)> = (0..b.num_rows())
                .map(|r| {
                    let x = b.column(1).as_string::<i32>().value(r).to_string();
                    let y = b.column(2).as_string::<i32>();
                    (x, (!arrow::array::Array::is_null(y, r)).then(|| y.value(r).to_string()))
                })
                .collect();
            got.sort();
            let mut want = Vec::new();
            for (lk, lv) in &left {
                let matches: Vec<&String> = right
                    .iter()
                    .filter(|(rk, _)| lk.is_some() && rk == lk)
                    .map(|(_, rv)| rv)
                    .collect();
                if matches.is_empty() && how == How::Left {
                    want.push((lv.clone(), None));
                }
                want.extend(matches.into_iter().map(|rv| (lv.clone(), Some(rv.clone()))));
            }
            want.sort();
            assert_eq!(got, want, "{how:?} with partitions of {lper} and {rper}");
        }
    }
    let err = pairs(&left, 10).merge(&data().0, ["k"], How::Inner).unwrap_err().to_string();
    assert!(err.contains("unknown column 'k'"), "{err}");
}

#[test]
fn persist_keeps_partitions_and_results() {
    let (df, rows) = data();
    let f = df.filter(col("v").lt(lit(10))).unwrap();
    let kept = f.persist_on(&Scheduler::threads(2)).unwrap();
    assert_eq!(kept.npartitions(), f.npartitions());
    let (graph, _) = brisk_graph::Collection::graph(&kept.len()).unwrap();
    assert_eq!(
        graph.len(),
        2 * kept.npartitions(),
        "the held partitions and their counts, nothing recomputed"
    );
    assert_eq!(kept.len().compute().unwrap(), rows.iter().filter(|r| r.1 < 10).count());
    assert_eq!(ints(&kept.compute().unwrap(), "v"), ints(&f.compute().unwrap(), "v"));
    // The default-scheduler form holds the same rows.
    assert_eq!(
        ints(&f.persist().unwrap().compute().unwrap(), "v"),
        ints(&kept.compute().unwrap(), "v")
    );
}

/// `head`, `persist` and `to_csv` run on the scheduler they are given (its
/// callbacks see their tasks), and their default forms give the same answers.
#[test]
fn eager_calls_run_on_the_scheduler_given() {
    #[derive(Default)]
    struct Tasks(std::sync::atomic::AtomicUsize);
    impl brisk_scheduler::Callback for Tasks {
        fn task_finished(&self, _key: &brisk_core::Key, _worker: usize) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let seen = || {
        let tasks = std::sync::Arc::new(Tasks::default());
        (Scheduler::threads(2).callback_arc(tasks.clone()), tasks)
    };
    let (df, _) = data();
    let count = |t: &Tasks| t.0.load(std::sync::atomic::Ordering::Relaxed);

    let (s, tasks) = seen();
    let head = df.head_on(3, &s).unwrap();
    assert!(count(&tasks) > 0, "head_on ran elsewhere");
    assert_eq!(ints(&head, "v"), ints(&df.head(3).unwrap(), "v"));

    let (s, tasks) = seen();
    df.persist_on(&s).unwrap();
    assert!(count(&tasks) >= df.npartitions());

    let dir = std::env::temp_dir().join(format!("brisk-eager-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (s, tasks) = seen();
    let rows = df.to_csv_on(dir.join("on.csv"), &s).unwrap();
    assert!(count(&tasks) >= df.npartitions());
    assert_eq!(df.to_csv(dir.join("default.csv")).unwrap(), rows);
    assert_eq!(
        std::fs::read(dir.join("on.csv")).unwrap(),
        std::fs::read(dir.join("default.csv")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn expressions_rename_and_drop_match_eager() {
    let (df, rows) = data();
    let f = df
        .with_column("kk", col("k").fill_null("none"))
        .unwrap()
        .with_column("vf", col("v").cast(arrow::datatypes::DataType::Float64) / 4)
        .unwrap()
        .filter(col("kk").starts_with("k0").or(col("kk").contains("on")))
        .unwrap()
        .rename([("v", "value")])
        .unwrap()
        .drop(["x"])
        .unwrap();
    assert_eq!(f.columns(), vec!["k", "value", "kk", "vf"]);
    let t = f.compute().unwrap();
    let want: Vec<&(Option<String>, i64, f64)> =
        rows.iter().filter(|r| r.0.as_deref().is_none_or(|k| k.starts_with("k0"))).collect();
    assert_eq!(ints(&t, "value"), want.iter().map(|r| r.1).collect::<Vec<_>>());
    let vf = t.column("vf").unwrap();
    assert!(
        vf.as_primitive::<Float64Type>()
            .values()
            .iter()
            .zip(&want)
            .all(|(a, r)| *a == r.1 as f64 / 4.0)
    );
    let kk = t.column("kk").unwrap();
    let kk = kk.as_string::<i32>();
    assert!(want.iter().enumerate().all(|(i, r)| kk.value(i) == r.0.as_deref().unwrap_or("none")));
    assert!(df.rename([("nope", "x")]).is_err());
    assert!(df.with_column("y", col("k") + 1).unwrap_err().to_string().contains("needs numbers"));
}

#[test]
fn null_keys_are_dropped_unless_asked_to_be_kept() {
    let (df, rows) = data();
    let dropped = df.groupby(["k"]).unwrap().size().unwrap().compute().unwrap();
    let kept = df.groupby(["k"]).unwrap().dropna(false).size().unwrap().compute().unwrap();
    let nulls = rows.iter().filter(|r| r.0.is_none()).count() as i64;
    assert_eq!(kept.num_rows(), dropped.num_rows() + 1);
    let sizes = ints(&kept, "size");
    assert_eq!(*sizes.last().unwrap(), nulls, "the null group sorts last");
    assert_eq!(sizes.iter().sum::<i64>(), rows.len() as i64);
    assert_eq!(ints(&dropped, "size").iter().sum::<i64>(), rows.len() as i64 - nulls);
}

#[test]
fn many_small_groups_match_eager_when_partials_skip_aggregation() {
    use brisk_frame::Agg;
    // The first rows of each partition all have distinct keys, so partials pass
    // rows through as one-row groups; later rows repeat keys.
    let n = 9000usize;
    let keys: Vec<Option<String>> =
        (0..n).map(|i| (i % 97 != 5).then(|| format!("u{}", (i * 7) % 4500))).collect();
    let vals: Vec<Option<f64>> =
        (0..n).map(|i| (i % 13 != 0).then_some((i % 101) as f64 * 0.25)).collect();
    let batches: Vec<RecordBatch> = (0..n)
        .step_by(3000)
        .map(|s| {
            RecordBatch::try_from_iter([
                (
                    "k",
                    Arc::new(keys[s..s + 3000].iter().cloned().collect::<StringArray>())
                        as ArrayRef,
                ),
                (
                    "x",
                    Arc::new(vals[s..s + 3000].iter().copied().collect::<Float64Array>())
                        as ArrayRef,
                ),
            ])
            .unwrap()
        })
        .collect();
    let df = Frame::from_batches(batches).unwrap();
    let aggs = [
        ("x", Agg::Sum),
        ("x", Agg::Mean),
        ("x", Agg::Count),
        ("x", Agg::Min),
        ("x", Agg::Max),
        ("x", Agg::First),
        ("x", Agg::Last),
        ("x", Agg::Var),
        ("x", Agg::Nunique),
    ];
    let t = Scheduler::threads(2).compute(&df.groupby(["k"]).unwrap().agg(aggs).unwrap()).unwrap();
    let mut groups: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut present: std::collections::BTreeMap<&str, usize> = Default::default();
    for (k, v) in keys.iter().zip(&vals) {
        if let Some(k) = k {
            *present.entry(k).or_default() += 1;
            if let Some(v) = v {
                groups.entry(k).or_default().push(*v);
            }
        }
    }
    assert_eq!(t.num_rows(), present.len());
    let b = t.to_batch();
    let f = |i: usize| b.column(i).as_primitive::<Float64Type>().clone();
    let (sum, mean, min, max, first, last, var) = (f(1), f(2), f(4), f(5), f(6), f(7), f(8));
    let count = b.column(3).as_primitive::<Int64Type>().clone();
    let nunique = b.column(9).as_primitive::<Int64Type>().clone();
    let key = b.column(0).as_string::<i32>().clone();
    for r in 0..b.num_rows() {
        let xs = groups.get(key.value(r)).cloned().unwrap_or_default();
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        assert!((sum.value(r) - xs.iter().sum::<f64>()).abs() < 1e-9);
        assert_eq!(count.value(r), xs.len() as i64);
        if xs.is_empty() {
            assert!(
                arrow::array::Array::is_null(&mean, r) && arrow::array::Array::is_null(&first, r)
            );
            continue;
        }
        assert!((mean.value(r) - m).abs() < 1e-9);
        assert_eq!(min.value(r), xs.iter().copied().fold(f64::INFINITY, f64::min));
        assert_eq!(max.value(r), xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        assert_eq!((first.value(r), last.value(r)), (xs[0], xs[xs.len() - 1]));
        if xs.len() > 1 {
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
            assert!((var.value(r) - v).abs() < 1e-9 * (1.0 + v));
        }
        let distinct: std::collections::BTreeSet<u64> = xs.iter().map(|x| x.to_bits()).collect();
        assert_eq!(nunique.value(r), distinct.len() as i64);
    }
}

#[test]
fn whole_frame_aggregations_and_text_queries_match_eager() {
    use brisk_frame::Agg;
    let (frame, rows) = data();
    let t = frame
        .agg([("v", Agg::Sum), ("x", Agg::Max), ("k", Agg::Nunique), ("", Agg::Size)])
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(t.num_rows(), 1);
    let names: Vec<String> = t.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["v_sum", "x_max", "k_nunique", "size"]);
    let b = t.to_batch();
    assert_eq!(
        b.column(0).as_primitive::<Int64Type>().value(0),
        rows.iter().map(|r| r.1).sum::<i64>()
    );
    let max = rows.iter().map(|r| r.2).fold(f64::MIN, f64::max);
    assert_eq!(b.column(1).as_primitive::<Float64Type>().value(0), max);
    assert_eq!(b.column(2).as_primitive::<Int64Type>().value(0), 13);
    assert_eq!(b.column(3).as_primitive::<Int64Type>().value(0), 1000);
    // Means of the numeric columns, keeping their names, as pandas' df.mean().
    let m = frame.agg_numeric(Agg::Mean).unwrap().compute().unwrap().to_batch();
    assert_eq!(m.schema().field(0).name(), "v");
    let want = rows.iter().map(|r| r.1 as f64).sum::<f64>() / 1000.0;
    assert!((m.column(0).as_primitive::<Float64Type>().value(0) - want).abs() < 1e-12);
    // A misspelt column names this frame's columns, not the helper key.
    let e = frame.agg([("vv", Agg::Sum)]).unwrap_err().to_string();
    assert!(e.contains("did you mean 'v'") && !e.contains("brisk"), "{e}");
    // query(text) is filter(expr).
    let q = frame.query("v > 20 and not is_null(k) or x <= 3").unwrap().len();
    let f =
        frame.filter(col("v").gt(20).and(!col("k").is_null()).or(col("x").le(3.0))).unwrap().len();
    let want = rows.iter().filter(|r| r.1 > 20 && r.0.is_some() || r.2 <= 3.0).count();
    assert_eq!((Scheduler::threads(2).compute(&q).unwrap(), f.compute().unwrap()), (want, want));
}

/// One row of the sort test: key with ties and nulls, float with -0.0 and NaN,
/// integer, and the row's position (to check stability).
type SortRow = (Option<String>, u64, i64, i64);

fn sort_rows_table(t: &brisk_frame::Table) -> Vec<SortRow> {
    let k = t.column("k").unwrap();
    let k = k.as_string::<i32>();
    let x = t.column("x").unwrap();
    let x = x.as_primitive::<Float64Type>();
    let (v, id) = (ints(t, "v"), ints(t, "id"));
    (0..t.num_rows())
        .map(|i| (k.is_valid(i).then(|| k.value(i).to_string()), x.value(i).to_bits(), v[i], id[i]))
        .collect()
}

#[test]
fn sort_values_across_partitions_equals_a_stable_eager_sort() {
    let n = 3000usize;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let rows: Vec<(Option<String>, f64, i64, i64)> = (0..n)
        .map(|i| {
            let r = next();
            let k = (r % 11 != 0).then(|| format!("k{}", r % 7));
            let x = match r % 97 {
                0 => f64::NAN,
                1 => -0.0,
                2 => 0.0,
                _ => ((r >> 20) % 40) as f64 / 4.0 - 5.0,
            };
            (k, x, ((r >> 8) % 23) as i64, i as i64)
        })
        .collect();
    let frame = |chunk: usize| {
        let batches = rows
            .chunks(chunk)
            .map(|c| {
                RecordBatch::try_from_iter([
                    (
                        "k",
                        Arc::new(c.iter().map(|r| r.0.clone()).collect::<StringArray>())
                            as ArrayRef,
                    ),
                    (
                        "x",
                        Arc::new(Float64Array::from_iter_values(c.iter().map(|r| r.1))) as ArrayRef,
                    ),
                    (
                        "v",
                        Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.2))) as ArrayRef,
                    ),
                    (
                        "id",
                        Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.3))) as ArrayRef,
                    ),
                ])
                .unwrap()
            })
            .collect();
        Frame::from_batches(batches).unwrap()
    };
    // The eager reference: a stable sort, nulls last, floats in total order.
    let as_row = |r: &(Option<String>, f64, i64, i64)| (r.0.clone(), r.1.to_bits(), r.2, r.3);
    let mut by_k_x: Vec<_> = rows.clone();
    by_k_x.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(p), Some(q)) => p.cmp(q).then(a.1.total_cmp(&b.1)),
        (None, None) => a.1.total_cmp(&b.1),
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
    });
    let by_k_x: Vec<SortRow> = by_k_x.iter().map(as_row).collect();
    let mut by_v_desc: Vec<_> = rows.clone();
    by_v_desc.sort_by_key(|r| std::cmp::Reverse(r.2));
    let by_v_desc: Vec<SortRow> = by_v_desc.iter().map(as_row).collect();
    for (chunk, threads) in [(n, 1), (700, 2), (97, 3), (31, 2)] {
        let df = frame(chunk);
        let asc = df.sort_values(["k", "x"], false).unwrap();
        let desc = df.sort_values(["v"], true).unwrap();
        let s = Scheduler::threads(threads);
        assert_eq!(sort_rows_table(&s.compute(&asc).unwrap()), by_k_x, "chunk {chunk}");
        assert_eq!(sort_rows_table(&s.compute(&desc).unwrap()), by_v_desc, "chunk {chunk}");
        // Under a budget of a few partitions the pieces go through the spill store.
        let tight = Scheduler::threads(threads).memory_limit(16_000);
        let (t, stats) = tight.compute_with_stats(&asc).unwrap();
        assert_eq!(sort_rows_table(&t), by_k_x, "chunk {chunk}, spilled");
        if chunk < 100 {
            assert!(stats.spilled_bytes > 0 && stats.spill_read_bytes > 0, "{stats:?}");
        }
        assert_eq!(stats.leaked_bytes, 0);
    }
}

#[test]
fn drop_duplicates_and_many_groups_spill_under_a_tight_budget() {
    // 4000 rows, ~2000 distinct (k, v) pairs, in 40 partitions.
    let rows: Vec<(String, i64)> = (0..4000u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 33;
            (format!("key{}", h % 1000), (h % 2) as i64)
        })
        .collect();
    let batches = rows
        .chunks(100)
        .map(|c| {
            RecordBatch::try_from_iter([
                (
                    "k",
                    Arc::new(c.iter().map(|r| Some(r.0.clone())).collect::<StringArray>())
                        as ArrayRef,
                ),
                ("v", Arc::new(Int64Array::from_iter_values(c.iter().map(|r| r.1))) as ArrayRef),
            ])
            .unwrap()
        })
        .collect();
    let df = Frame::from_batches(batches).unwrap();
    let distinct = df.drop_duplicates().unwrap();
    let sums = df.groupby(["k"]).unwrap().sum().unwrap();
    let free = Scheduler::threads(2);
    let tight = Scheduler::threads(2).memory_limit(30_000);
    for q in [&distinct, &sums] {
        let want = free.compute(q).unwrap();
        let (got, stats) = tight.compute_with_stats(q).unwrap();
        assert_eq!(got.to_batch(), want.to_batch());
        assert!(stats.spilled_bytes > 0, "nothing spilled: {stats:?}");
        assert_eq!(stats.spill_read_bytes, stats.spilled_bytes, "a spilled result read twice");
        // Space of results read back is reused by later spills.
        assert!(stats.spill_file_bytes < stats.spilled_bytes, "spill space not reused: {stats:?}");
        assert_eq!(stats.leaked_bytes, 0);
    }
    let set: std::collections::BTreeSet<(String, i64)> = rows.iter().cloned().collect();
    assert_eq!(free.compute(&distinct).unwrap().num_rows(), set.len());
}

/// An integer sum past Int64 is an error naming the column and the group, in a
/// partition's partial and in a combine of partials: never a wrapped number.
#[test]
fn integer_sum_overflow_is_an_error_not_a_wrapped_number() {
    let batch = |k: Vec<&str>, v: Vec<i64>| {
        RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(k)) as ArrayRef),
            ("v", Arc::new(Int64Array::from(v)) as ArrayRef),
        ])
        .unwrap()
    };
    // Both values in one partition, then one per partition (the combine overflows).
    let together =
        Frame::from_batches(vec![batch(vec!["a", "a", "b"], vec![i64::MAX, i64::MAX, 1])]);
    let apart = Frame::from_batches(vec![
        batch(vec!["a", "b"], vec![i64::MAX, 1]),
        batch(vec!["a"], vec![i64::MAX]),
    ]);
    for frame in [together.unwrap(), apart.unwrap()] {
        let err = frame.groupby(["k"]).unwrap().sum().unwrap().compute().unwrap_err().to_string();
        assert!(err.contains("'v' overflowed Int64 in group k=a"), "{err}");
        let err =
            frame.agg([("v", brisk_frame::Agg::Sum)]).unwrap().compute().unwrap_err().to_string();
        assert!(err.contains("'v' overflowed Int64"), "{err}");
    }
    // Up to the edge it is exact.
    let edge = Frame::from_batches(vec![batch(vec!["a", "a"], vec![i64::MAX - 1, 1])]).unwrap();
    let t = edge.groupby(["k"]).unwrap().sum().unwrap().compute().unwrap();
    assert_eq!(ints(&t, "v"), vec![i64::MAX]);
}

/// UInt64 values above Int64's maximum: min and max keep them (unsigned), a sum
/// is an error naming the column — never a null that silently drops out.
#[test]
fn uint64_values_above_int64_are_kept_or_refused_never_nulled() {
    use arrow::array::UInt64Array;
    use arrow::datatypes::UInt64Type;
    let big = u64::MAX - 1;
    let batch = |k: Vec<&str>, v: Vec<u64>| {
        RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(k)) as ArrayRef),
            ("v", Arc::new(UInt64Array::from(v)) as ArrayRef),
        ])
        .unwrap()
    };
    let frame = Frame::from_batches(vec![
        batch(vec!["a", "b"], vec![big, 3]),
        batch(vec!["a", "b"], vec![5, 2]),
    ])
    .unwrap();
    let by = frame.groupby(["k"]).unwrap();
    let t = by
        .agg([("v", brisk_frame::Agg::Min), ("v", brisk_frame::Agg::Max)])
        .unwrap()
        .compute()
        .unwrap();
    let col = |c: &str| t.column(c).unwrap().as_primitive::<UInt64Type>().values().to_vec();
    assert_eq!(col("v_min"), vec![5, 2]);
    assert_eq!(col("v_max"), vec![big, 3]);
    let err = by.sum().unwrap().compute().unwrap_err().to_string();
    assert!(err.contains("column 'v'") && err.contains("--dtype v:float"), "{err}");
}

/// A whole-frame aggregation over no rows has one row, as pandas' `df.agg`: counts
/// and sums 0, mean and extremes null (a daily job on an empty day).
#[test]
fn agg_over_no_rows_gives_one_row() {
    use brisk_frame::Agg;
    let (df, _) = data();
    let none = df.filter(col("v").gt(lit(1_000_000))).unwrap();
    let t = none
        .agg([
            ("v", Agg::Sum),
            ("v", Agg::Count),
            ("", Agg::Size),
            ("v", Agg::Mean),
            ("v", Agg::Min),
            ("k", Agg::Nunique),
            ("x", Agg::Std),
        ])
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(t.num_rows(), 1);
    for c in ["v_sum", "v_count", "size", "k_nunique"] {
        assert_eq!(ints(&t, c), vec![0], "{c}");
    }
    for c in ["v_mean", "v_min", "x_std"] {
        assert!(t.column(c).unwrap().is_null(0), "{c} should be null");
    }
    // With keys, no rows stay no groups.
    assert_eq!(none.groupby(["k"]).unwrap().sum().unwrap().compute().unwrap().num_rows(), 0);
}

/// Arithmetic between numeric types with no common type (Decimal and Int64) is a
/// type error naming both, not a panic.
#[test]
fn decimal_arithmetic_with_integers_is_a_type_error() {
    use arrow::array::Decimal128Array;
    let d = Decimal128Array::from(vec![150_i128, 250]).with_precision_and_scale(10, 2).unwrap();
    let b = RecordBatch::try_from_iter([("d", Arc::new(d) as ArrayRef)]).unwrap();
    let frame = Frame::from_batches(vec![b]).unwrap();
    let err = frame.query("d + 1 > 2").unwrap_err().to_string();
    assert!(err.contains("'+' cannot combine Decimal128(10, 2) and Int64"), "{err}");
    let err = frame.filter((col("d") * 2).gt(lit(1))).unwrap_err().to_string();
    assert!(err.contains("cannot combine"), "{err}");
}

/// A 2,500-term `or` chain (which overflowed the stack), the same list as
/// `in (...)`, and a per-row check of the values: the same rows, nulls never
/// matching. Also through `Frame::query`, and built in Rust one `or` at a time.
#[test]
fn long_or_chains_and_in_lists_keep_the_same_rows() {
    let n = 20_000;
    let keys: Vec<Option<String>> =
        (0..n).map(|i| (i % 17 != 0).then(|| format!("id{:05}", (i * 7919) % 9000))).collect();
    let values: Vec<Option<i64>> =
        (0..n).map(|i| (i % 11 != 0).then_some(i as i64 % 5000)).collect();
    let batch = RecordBatch::try_from_iter([
        ("k", Arc::new(StringArray::from(keys.clone())) as ArrayRef),
        ("v", Arc::new(Int64Array::from(values.clone())) as ArrayRef),
    ])
    .unwrap();
    let df = Frame::from_batches(vec![batch.slice(0, 7000), batch.slice(7000, n - 7000)]).unwrap();
    let wanted: Vec<String> = (0..2500).map(|j| format!("id{:05}", j * 3)).collect();
    let set: std::collections::HashSet<&str> = wanted.iter().map(String::as_str).collect();
    let want: Vec<i64> = (0..n)
        .filter(|&i| keys[i].as_deref().is_some_and(|k| set.contains(k)))
        .map(|i| i as i64)
        .collect();
    let chain = wanted.iter().map(|k| format!("k == '{k}'")).collect::<Vec<_>>().join(" or ");
    let list = wanted.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
    let built = wanted.iter().fold(lit(false), |e, k| e.or(col("k").eq(lit(k.as_str()))));
    let rows = |f: Frame| -> Vec<String> {
        let t = f.compute().unwrap().to_batch();
        let k = t.column(0).as_string::<i32>();
        (0..t.num_rows()).map(|r| k.value(r).to_string()).collect()
    };
    let expected: Vec<String> = want.iter().map(|&i| keys[i as usize].clone().unwrap()).collect();
    for f in [
        df.query(&chain).unwrap(),
        df.query(&format!("k in ({list})")).unwrap(),
        df.filter(col("k").is_in(wanted.iter().map(String::as_str))).unwrap(),
        df.filter(built).unwrap(),
    ] {
        assert_eq!(rows(f), expected);
    }
    // Integers, with `not in`: a null value is neither in nor not in.
    let not_in = df.query("v not in (1, 2, 3, 4999)").unwrap().compute().unwrap();
    let kept = values.iter().filter(|v| v.is_some_and(|v| ![1, 2, 3, 4999].contains(&v))).count();
    assert_eq!(not_in.num_rows(), kept);
}

/// `in` on UInt64 values past Int64's range compares them as they are (a
/// cast would make them null, so `not in` would drop them), and a list whose
/// values cannot be compared as one type with the column is refused when the
/// filter is built.
#[test]
fn membership_keeps_large_unsigned_values_and_types_the_whole_list() {
    use arrow::array::UInt64Array;
    let batch = RecordBatch::try_from_iter([(
        "u",
        Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(1), None])) as ArrayRef,
    )])
    .unwrap();
    let df = Frame::from_batches(vec![batch]).unwrap();
    let kept = df.query("u not in (1, 2)").unwrap().compute().unwrap().to_batch();
    let u = kept.column(0).as_primitive::<arrow::datatypes::UInt64Type>();
    assert_eq!(u.iter().collect::<Vec<_>>(), vec![Some(u64::MAX)]);
    let hit = df.filter(col("u").is_in([-1i64, 1])).unwrap().compute().unwrap();
    assert_eq!(hit.num_rows(), 1);
    let err = df.query("u in (1, 'a')").unwrap_err().to_string();
    assert!(err.contains("'in' cannot compare"), "{err}");
}

/// Infinities among more values than are kept exactly: the sketch has no bucket
/// for them, so they are counted beside it and the quartiles stay right.
#[test]
fn describe_quartiles_with_infinities_past_the_exact_limit() {
    let n = 100_000;
    let mut xs: Vec<f64> = (0..n).map(|i| (i % 1000) as f64 + 0.5).collect();
    xs[10] = f64::INFINITY;
    xs[20] = f64::NEG_INFINITY;
    xs[30] = f64::INFINITY;
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let got = quartiles(&floats(&xs, 30_000));
    for (i, q) in [0.25, 0.5, 0.75].into_iter().enumerate() {
        let want = linear_quantile(&sorted, q);
        let bound = brisk_frame::DESCRIBE_RELATIVE_ACCURACY * want.abs() * 1.01;
        assert!((got[i] - want).abs() <= bound, "q {q}: {} vs {want}", got[i]);
    }
}
