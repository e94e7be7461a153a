//! TPC-H Q1 and Q6 written with the CLI give DuckDB's answers, on lineitem made
//! here at scale factor 0.1 by `tpchgen-cli` (600,572 rows, 75 MB of CSV): every
//! group, every column, numbers within 1e-9 relative; other blocksizes agree, each
//! the same bits on any thread count. Needs python3 with duckdb and the
//! tpchgen-cli command (`.ci/run` installs both from the Python package index);
//! without them the test skips, except under CI, where that is a failure.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{brisk_in, scratch};

/// Q1's command line (as in the README).
const Q1: &[&str] = &[
    "groupby",
    "lineitem.csv",
    "--by",
    "l_returnflag,l_linestatus",
    "--filter",
    "l_shipdate <= date '1998-12-01' - interval 90 day",
    "--agg",
    "sum_qty=sum(l_quantity),sum_base_price=sum(l_extendedprice),\
     sum_disc_price=sum(l_extendedprice * (1 - l_discount)),\
     sum_charge=sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)),\
     avg_qty=avg(l_quantity),avg_price=avg(l_extendedprice),avg_disc=avg(l_discount),\
     count_order=count(*)",
    "--format",
    "csv",
];

/// Q6's command line (as in the README).
const Q6: &[&str] = &[
    "agg",
    "lineitem.csv",
    "--filter",
    "l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01' \
     and l_discount between 0.05 and 0.07 and l_quantity < 24",
    "--agg",
    "revenue=sum(l_extendedprice * l_discount)",
    "--format",
    "csv",
];

const Q1_SQL: &str = "select l_returnflag, l_linestatus, sum(l_quantity) sum_qty, \
 sum(l_extendedprice) sum_base_price, sum(l_extendedprice*(1-l_discount)) sum_disc_price, \
 sum(l_extendedprice*(1-l_discount)*(1+l_tax)) sum_charge, avg(l_quantity) avg_qty, \
 avg(l_extendedprice) avg_price, avg(l_discount) avg_disc, count(*) count_order \
 from read_csv_auto('lineitem.csv') where l_shipdate <= date '1998-12-01' - interval 90 day \
 group by all order by all";

const Q6_SQL: &str = "select sum(l_extendedprice*l_discount) revenue \
 from read_csv_auto('lineitem.csv') \
 where l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01' \
 and l_discount between 0.05 and 0.07 and l_quantity < 24";

/// Whether the tools are here; under CI their absence fails the test.
fn tools() -> bool {
    let duckdb = Command::new("python3")
        .args(["-c", "import duckdb"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let tpchgen = Command::new("tpchgen-cli")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !(duckdb && tpchgen) {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with duckdb (found: {duckdb}) and tpchgen-cli (found: {tpchgen}) are needed"
        );
        eprintln!(
            "skipped: python3 with duckdb, or tpchgen-cli, is not installed (.ci/run installs them)"
        );
    }
    duckdb && tpchgen
}

/// DuckDB's answer to `sql` in `dir`, as CSV with a header.
fn duckdb(dir: &Path, sql: &str) -> String {
    let script = format!(
        "import duckdb, sys\nr = duckdb.sql({sql:?})\ncols = r.columns\nrows = r.fetchall()\n\
         print(','.join(cols))\nfor row in rows:\n    print(','.join(repr(v) if isinstance(v, float) else str(v) for v in row))\n"
    );
    let out =
        Command::new("python3").arg("-c").arg(script).current_dir(dir).output().expect("python3");
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Brisk's CSV and DuckDB's: the same header, the same rows, text equal and
/// numbers within 1e-9 relative.
fn assert_agree(got: &str, want: &str) {
    let lines = |t: &str| -> Vec<Vec<String>> {
        t.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
    };
    let (got, want) = (lines(got), lines(want));
    assert_eq!(got.first(), want.first(), "headers");
    assert_eq!(got.len(), want.len(), "rows: {got:?} vs {want:?}");
    assert!(got.len() > 1, "no rows");
    for (g, w) in got.iter().zip(&want).skip(1) {
        assert_eq!(g.len(), w.len(), "{g:?} vs {w:?}");
        for (a, b) in g.iter().zip(w) {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => {
                    assert!((x - y).abs() <= 1e-9 * y.abs(), "{a} vs DuckDB's {b} in {g:?}")
                }
                _ => assert_eq!(a, b, "{g:?} vs {w:?}"),
            }
        }
    }
}

#[test]
fn q1_and_q6_give_duckdbs_answers() {
    if !tools() {
        return;
    }
    let dir = scratch("tpch");
    let made = Command::new("tpchgen-cli")
        .args(["csv", "-s", "0.1", "--tables", "lineitem", "--output-dir"])
        .arg(&dir)
        .output()
        .expect("tpchgen-cli");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(dir.join("lineitem.csv").metadata().expect("lineitem.csv").len() > 70_000_000);
    for (args, sql) in [(Q1, Q1_SQL), (Q6, Q6_SQL)] {
        let r = brisk_in(&dir, args);
        assert_eq!(r.status, 0, "{}", r.stderr);
        assert_agree(&r.stdout, &duckdb(&dir, sql));
        // Other blocksizes agree too, and each gives the same bits on 1 or 3 threads.
        for blocksize in ["1MB", "64MB"] {
            let runs: Vec<String> = ["1", "3"]
                .iter()
                .map(|threads| {
                    let mut more = args.to_vec();
                    more.extend(["--blocksize", blocksize, "--threads", threads]);
                    let again = brisk_in(&dir, &more);
                    assert_eq!(again.status, 0, "{}", again.stderr);
                    again.stdout
                })
                .collect();
            assert_eq!(runs[0], runs[1], "blocksize {blocksize}: 1 thread vs 3");
            assert_agree(&runs[0], &r.stdout);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
