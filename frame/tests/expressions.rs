//! The report-query expression forms (dates and intervals, between, like/ilike,
//! case, coalesce, abs, round, lower/upper/length, year/month) against a plain
//! row-by-row evaluation on random batches with nulls, written here without
//! Arrow's kernels; and through a lazy frame over several partitions.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use brisk_frame::{Agg, AggExpr, Frame, parse_expr_for};
use brisk_scheduler::Compute;
use proptest::prelude::*;

/// One row's values.
#[derive(Clone, Debug)]
struct Row {
    i: Option<i64>,
    f: Option<f64>,
    s: Option<String>,
    d: Option<i32>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.8, -300i64..300),
        prop::option::weighted(
            0.8,
            prop_oneof![(-4000i64..4000).prop_map(|v| v as f64 / 8.0), -1e3f64..1e3],
        ),
        prop::option::weighted(0.8, "[aAbB%_\u{e9}]{0,5}"),
        prop::option::weighted(0.8, -25_000i32..25_000),
    )
        .prop_map(|(i, f, s, d)| Row { i, f, s, d })
}

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("i", Arc::new(rows.iter().map(|r| r.i).collect::<Int64Array>()) as ArrayRef),
        ("f", Arc::new(rows.iter().map(|r| r.f).collect::<Float64Array>()) as _),
        ("s", Arc::new(rows.iter().map(|r| r.s.clone()).collect::<StringArray>()) as _),
        ("d", Arc::new(rows.iter().map(|r| r.d).collect::<Date32Array>()) as _),
    ])
    .expect("batch")
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i32) -> (i64, i64, i64) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// SQL's LIKE on characters: `%` any run, `_` one character.
fn like(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    fn go(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|k| go(&s[k..], &p[1..])),
            Some('_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some(c) => s.first() == Some(c) && go(&s[1..], &p[1..]),
        }
    }
    go(&s, &p)
}

/// The value one row should give, as text ("null" for null), by form.
fn expected(form: &str, r: &Row) -> String {
    let show_b = |b: Option<bool>| b.map_or("null".into(), |b| b.to_string());
    let show_i = |v: Option<i64>| v.map_or("null".into(), |v| v.to_string());
    let show_f = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:?}"));
    let show_s = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    match form {
        "i between -100 and 120" => show_b(r.i.map(|v| (-100..=120).contains(&v))),
        "not (f between -50.5 and 10)" => show_b(r.f.map(|v| !(-50.5..=10.0).contains(&v))),
        "s like 'a%'" => show_b(r.s.as_ref().map(|s| like(s, "a%"))),
        "s like '%_b'" => show_b(r.s.as_ref().map(|s| like(s, "%_b"))),
        "s not like '_'" => show_b(r.s.as_ref().map(|s| !like(s, "_"))),
        "s ilike '%a%b'" => show_b(r.s.as_ref().map(|s| like(&s.to_lowercase(), "%a%b"))),
        "case when i > 0 then f when s is null then -1.0 else 2.5 end" => show_f(match r.i {
            Some(i) if i > 0 => r.f,
            _ if r.s.is_none() => Some(-1.0),
            _ => Some(2.5),
        }),
        "coalesce(f, i, 0)" => show_f(r.f.or(r.i.map(|v| v as f64)).or(Some(0.0))),
        "coalesce(s, 'none')" => show_s(r.s.clone().or(Some("none".into()))),
        "abs(i)" => show_i(r.i.map(i64::abs)),
        "abs(f)" => show_f(r.f.map(f64::abs)),
        "round(f)" => show_f(r.f.map(f64::round)),
        "round(f, 1)" => show_f(r.f.map(|v| (v * 10.0).round() / 10.0)),
        "round(i, -1)" => show_i(r.i.map(|v| {
            let (q, m) = (v / 10, v % 10);
            if m.abs() >= 5 { (q + m.signum()) * 10 } else { q * 10 }
        })),
        "lower(s)" => show_s(r.s.as_ref().map(|s| s.to_lowercase())),
        "upper(s)" => show_s(r.s.as_ref().map(|s| s.to_uppercase())),
        "length(s)" => show_i(r.s.as_ref().map(|s| s.chars().count() as i64)),
        "year(d)" => show_i(r.d.map(|d| civil(d).0)),
        "month(d)" => show_i(r.d.map(|d| civil(d).1)),
        "day(d)" => show_i(r.d.map(|d| civil(d).2)),
        "d + interval 30 day > date '1990-01-01'" => show_b(r.d.map(|d| d + 30 > 7305)),
        "d <= '1998-09-02'" => show_b(r.d.map(|d| d <= 10_471)),
        "d - interval 1 week" => r.d.map_or("null".into(), |d| (d - 7).to_string()),
        "year(d + interval 12 month) - year(d)" => show_i(r.d.map(|_| 1)),
        "d - date '1970-01-02'" => show_i(r.d.map(|d| i64::from(d) - 1)),
        "i is null or f is not null" => show_b(Some(r.i.is_none() || r.f.is_some())),
        other => panic!("no reference for {other}"),
    }
}

const FORMS: &[&str] = &[
    "i between -100 and 120",
    "not (f between -50.5 and 10)",
    "s like 'a%'",
    "s like '%_b'",
    "s not like '_'",
    "s ilike '%a%b'",
    "case when i > 0 then f when s is null then -1.0 else 2.5 end",
    "coalesce(f, i, 0)",
    "coalesce(s, 'none')",
    "abs(i)",
    "abs(f)",
    "round(f)",
    "round(f, 1)",
    "round(i, -1)",
    "lower(s)",
    "upper(s)",
    "length(s)",
    "year(d)",
    "month(d)",
    "day(d)",
    "d + interval 30 day > date '1990-01-01'",
    "d <= '1998-09-02'",
    "d - interval 1 week",
    "year(d + interval 12 month) - year(d)",
    "d - date '1970-01-02'",
    "i is null or f is not null",
];

/// Each value of an array as the reference shows it.
fn shown(a: &ArrayRef) -> Vec<String> {
    (0..a.len())
        .map(|k| {
            if a.is_null(k) {
                return "null".to_string();
            }
            match a.data_type() {
                DataType::Boolean => a.as_boolean().value(k).to_string(),
                DataType::Int64 => a.as_primitive::<Int64Type>().value(k).to_string(),
                DataType::Float64 => format!("{:?}", a.as_primitive::<Float64Type>().value(k)),
                DataType::Utf8 => a.as_string::<i32>().value(k).to_string(),
                DataType::Date32 => a.as_primitive::<Date32Type>().value(k).to_string(),
                t => panic!("unexpected type {t}"),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every form on a random batch with nulls gives, row by row, what the
    /// reference gives, in the type the type check promised.
    #[test]
    fn each_form_matches_a_row_by_row_evaluation(rows in prop::collection::vec(row(), 0..40)) {
        let b = batch(&rows);
        for form in FORMS {
            let e = parse_expr_for(form, &b.schema()).unwrap_or_else(|e| panic!("{form}: {e}"));
            let t = e.data_type(&b.schema()).expect("typed");
            let got = e.evaluate(&b).unwrap_or_else(|e| panic!("{form}: {e}"));
            prop_assert_eq!(got.data_type(), &t, "{}", form);
            let want: Vec<String> = rows.iter().map(|r| expected(form, r)).collect();
            prop_assert_eq!(shown(&got), want, "{}", form);
        }
    }

    /// Through a lazy frame cut into random partitions: `--with`-style derived
    /// columns, a filter on them, named aggregations of expressions, and the
    /// top rows, against the same computed eagerly on one batch.
    #[test]
    fn a_report_over_partitions_matches_one_batch(
        rows in prop::collection::vec(row(), 1..60),
        cuts in prop::collection::vec(0usize..60, 0..4),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % rows.len()).collect();
        cuts.push(0);
        cuts.push(rows.len());
        cuts.sort_unstable();
        cuts.dedup();
        let parts: Vec<RecordBatch> = cuts.windows(2).map(|w| batch(&rows[w[0]..w[1]])).collect();
        let report = |frame: Frame| -> Frame {
            let schema = frame.schema().clone();
            let frame = frame
                .with_column("m", parse_expr_for("coalesce(month(d), 0)", &schema).expect("m"))
                .expect("with m");
            let schema = frame.schema().clone();
            let frame = frame
                .filter(parse_expr_for("not (s ilike 'b%') or s is null", &schema).expect("filter"))
                .expect("filter");
            let schema = frame.schema().clone();
            let aggs = vec![
                AggExpr::new("net", Agg::Sum, parse_expr_for("round(coalesce(f, 0) * 8) * abs(i)", &schema).expect("net")),
                AggExpr::count_rows("n"),
                AggExpr::new("first_year", Agg::Min, parse_expr_for("year(d)", &schema).expect("year")),
            ];
            let grouped = frame.groupby(["m"]).expect("groupby").agg_exprs(aggs).expect("aggs");
            grouped.top(5, [("n", true), ("m", false)]).expect("top")
        };
        let lazy = report(Frame::from_batches(parts).expect("frame")).compute().expect("lazy");
        let eager = report(Frame::from_batches(vec![batch(&rows)]).expect("frame")).compute().expect("eager");
        prop_assert_eq!(format!("{:?}", lazy.to_batch()), format!("{:?}", eager.to_batch()));
        // The counts are the reference's: rows kept per month, largest first.
        let kept: Vec<&Row> = rows.iter().filter(|r| r.s.as_ref().is_none_or(|s| !like(&s.to_lowercase(), "b%"))).collect();
        let mut counts = std::collections::BTreeMap::<i64, i64>::new();
        for r in &kept {
            *counts.entry(r.d.map_or(0, |d| civil(d).1)).or_default() += 1;
        }
        let mut want: Vec<(i64, i64)> = counts.into_iter().map(|(m, n)| (n, m)).collect();
        want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        want.truncate(5);
        let t = lazy.to_batch();
        let n = t.column_by_name("n").expect("n").as_primitive::<Int64Type>();
        let m = t.column_by_name("m").expect("m").as_primitive::<Int64Type>();
        let got: Vec<(i64, i64)> = (0..t.num_rows()).map(|k| (n.value(k), m.value(k))).collect();
        prop_assert_eq!(got, want);
    }
}

/// Halves round away from zero, as SQL's round does (and f64::round).
#[test]
fn rounding_and_date_edges() {
    let b = batch(&[Row { i: Some(-15), f: Some(-2.5), s: None, d: Some(-1) }]);
    for (text, want) in [
        ("round(f)", "-3.0"),
        ("round(f + 5)", "3.0"),
        ("round(i, -1)", "-20"),
        ("round(i + 1, -1)", "-10"),
        ("round(1.25, 1)", "1.3"),
        ("year(d)", "1969"),
        ("month(d)", "12"),
        ("day(d)", "31"),
        ("d + interval 1 day = date '1970-01-01'", "true"),
        ("date '2024-01-31' + interval 1 month", "19782"),
        ("length(s)", "null"),
        ("case when s is null then 'x' end", "x"),
        ("case when null then 1 else 2 end", "2"),
        ("round(i, -25)", "0"),
    ] {
        let e = parse_expr_for(text, &b.schema()).unwrap_or_else(|e| panic!("{text}: {e}"));
        let got = e.evaluate(&b).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(shown(&got), [want], "{text}");
    }
    // 2024-01-31 + 1 month is 2024-02-29 (the month's last day), as DuckDB gives.
    assert_eq!(civil(19_782), (2024, 2, 29));
}

/// Filters, derived columns and aggregations of expressions over a read read only
/// the columns they use: a column that would fail to parse (a value past the
/// sample that is not its inferred type) is never read, at any blocksize.
#[test]
fn steps_over_a_read_read_only_the_columns_they_use() {
    use brisk_frame::{CsvOptions, read_csv};
    let dir = std::env::temp_dir().join(format!("brisk-expr-pushdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.csv");
    let mut text = String::from("k,v,bad\n");
    for r in 0..5000 {
        text.push_str(&format!("{},{},{}\n", r % 3, r, r));
    }
    text.push_str("1,7,oops\n");
    std::fs::write(&path, text).unwrap();
    for blocksize in [1000, 1 << 20] {
        let opts = CsvOptions::default().blocksize(blocksize).dtype("bad", DataType::Int64);
        let df = read_csv(path.as_path(), opts).unwrap();
        let schema = df.schema().clone();
        let df = df.with_column("w", parse_expr_for("v * 2", &schema).unwrap()).unwrap();
        let df = df.query("w > 10 and k != 2").unwrap();
        let schema = df.schema().clone();
        let aggs = vec![
            AggExpr::new("s", Agg::Sum, parse_expr_for("w + 1", &schema).unwrap()),
            AggExpr::count_rows("n"),
        ];
        let t = df.groupby(["k"]).unwrap().agg_exprs(aggs.clone()).unwrap().compute();
        let t = t.unwrap_or_else(|e| panic!("blocksize {blocksize}: {e}"));
        let b = t.to_batch();
        let n = b.column_by_name("n").unwrap().as_primitive::<Int64Type>();
        // Rows with v in 6..5000 (and the last, v = 7), k in {0, 1}.
        let want0 = (6..5000).filter(|r| r % 3 == 0).count() as i64;
        let want1 = (6..5000).filter(|r| r % 3 == 1).count() as i64 + 1;
        assert_eq!((n.value(0), n.value(1)), (want0, want1), "blocksize {blocksize}");
        // The whole frame too (the `agg` command's path).
        let whole = df.agg_exprs(aggs).unwrap().compute().expect("whole");
        let n = whole.to_batch().column_by_name("n").unwrap().as_primitive::<Int64Type>().value(0);
        assert_eq!(n, want0 + want1);
        // Asking for the bad column does read it, and says where it fails.
        let e = df.select(["bad"]).unwrap().compute().expect_err("bad is read");
        assert!(e.to_string().contains("oops"), "{e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A derived column never takes the name of a real one: an aggregation of a
/// column called like the engine's own derived names reads that column.
#[test]
fn derived_names_do_not_clash_with_columns() {
    let b = RecordBatch::try_from_iter([
        ("k", Arc::new(Int64Array::from(vec![1, 1, 2])) as ArrayRef),
        ("i", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
        ("__brisk_agg_0", Arc::new(Int64Array::from(vec![100, 200, 300])) as _),
    ])
    .unwrap();
    let df = Frame::from_batches(vec![b]).unwrap();
    let s = df.schema().clone();
    let aggs = vec![
        AggExpr::new("s", Agg::Sum, parse_expr_for("i * 2", &s).unwrap()),
        AggExpr::new("m", Agg::Max, parse_expr_for("__brisk_agg_0", &s).unwrap()),
    ];
    let t = df.groupby(["k"]).unwrap().agg_exprs(aggs).unwrap().compute().unwrap().to_batch();
    let col = |n: &str| shown(t.column_by_name(n).unwrap());
    assert_eq!(col("s"), ["6", "6"]);
    assert_eq!(col("m"), ["200", "300"]);
}
