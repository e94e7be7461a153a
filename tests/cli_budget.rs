//! The memory budget holds on every path a command takes: peak resident memory
//! of the `brisk` process at most the budget plus 100 MB, on generated data
//! several times the budget once parsed.

mod common;

use common::{brisk_in, brisk_peak_memory, scratch};

/// 5M rows of four small integers: 40 MB of text, 160 MB as Arrow columns.
fn small_ints(dir: &std::path::Path) -> &'static str {
    let mut text = String::from("a,b,c,d\n");
    for i in 0..5_000_000u64 {
        let (a, b, c, d) = (i % 10, i / 10 % 10, i / 100 % 10, i / 1000 % 10);
        text.push_str(&format!("{a},{b},{c},{d}\n"));
    }
    std::fs::write(dir.join("ints.csv"), text).expect("write");
    "ints.csv"
}

const BUDGET: u64 = 32 << 20;
const SLACK: u64 = 100 << 20;

#[test]
fn convert_to_one_parquet_file_streams_within_the_budget() {
    let d = scratch("budget-parquet");
    let input = small_ints(&d);
    // Blocks of 1 MB: a running task's parse buffers are outside what the budget
    // counts (it projects twice the block; columns of one-digit integers take
    // four times their text), so blocks are kept small beside the budget.
    let run = ["--memory-limit", "32MiB", "--threads", "2", "--blocksize", "1MB"];
    let args: Vec<&str> =
        ["convert", input, "--to", "out.parquet"].into_iter().chain(run).collect();
    let (status, peak) = brisk_peak_memory(&d, &args);
    assert_eq!(status, 0);
    assert!(peak <= BUDGET + SLACK, "peak {} MiB", peak >> 20);
    // Every row, in order: the first and last rows and the count read back.
    let head = brisk_in(&d, &["head", "out.parquet", "-n", "2", "--format", "csv"]);
    assert_eq!(head.stdout, "a,b,c,d\n0,0,0,0\n1,0,0,0\n");
    let count = brisk_in(&d, &["count", "out.parquet"]);
    assert_eq!(count.stdout.trim(), "5000000");
    let sum = brisk_in(&d, &["agg", "out.parquet", "--agg", "a:sum,d:max", "--format", "csv"]);
    assert_eq!(sum.stdout, "a_sum,d_max\n22500000,9\n");
}

/// A distinct count whose sets are as large as the input: 4M rows, 50 keys, a
/// million values of 20 characters; per key 80,000 distinct ones (100 MB of text).
fn wide_sets(dir: &std::path::Path) -> (&'static str, Vec<usize>) {
    let mut text = String::from("k,v\n");
    let mut seen = std::collections::HashSet::new();
    for i in 0..4_000_000u64 {
        let (k, v) = (i % 50, i * 2_654_435_761 % 4_294_967_291 % 1_000_000);
        text.push_str(&format!("k{k:02},value-{v:014}\n"));
        seen.insert((k, v));
    }
    std::fs::write(dir.join("sets.csv"), text).expect("write");
    let mut per_key = vec![0; 50];
    for (k, _) in seen {
        per_key[k as usize] += 1;
    }
    ("sets.csv", per_key)
}

#[test]
fn nunique_sets_spill_within_the_budget() {
    let d = scratch("budget-nunique");
    let (input, per_key) = wide_sets(&d);
    let args = [
        "groupby",
        input,
        "--by",
        "k",
        "--agg",
        "v:nunique",
        "--memory-limit",
        "32MiB",
        "--threads",
        "2",
        "-o",
        "out.csv",
    ];
    let (status, peak) = brisk_peak_memory(&d, &args);
    assert_eq!(status, 0);
    assert!(peak <= BUDGET + SLACK, "peak {} MiB", peak >> 20);
    let expected: String = std::iter::once("k,v_nunique\n".to_string())
        .chain(per_key.iter().enumerate().map(|(k, n)| format!("k{k:02},{n}\n")))
        .collect();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).expect("output"), expected);
}

#[test]
fn a_gzip_file_is_read_in_blocks_within_the_budget() {
    use std::io::Write;
    let d = scratch("budget-gzip");
    let plain = small_ints(&d);
    let text = std::fs::read(d.join(plain)).expect("read");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).expect("compress");
    std::fs::write(d.join("ints.csv.gz"), gz.finish().expect("compress")).expect("write");
    let run = ["--memory-limit", "32MiB", "--threads", "2", "--blocksize", "1MB"];
    for command in [&["count", "ints.csv.gz"][..], &["agg", "ints.csv.gz", "--agg", "a:sum,d:max"]]
    {
        let args: Vec<&str> = command.iter().copied().chain(run).collect();
        let (status, peak) = brisk_peak_memory(&d, &args);
        assert_eq!(status, 0, "{command:?}");
        assert!(peak <= BUDGET + SLACK, "{command:?}: peak {} MiB", peak >> 20);
    }
    // The same answers as the plain file.
    let args = ["agg", "ints.csv.gz", "--agg", "a:sum,d:max", "--format", "csv"];
    assert_eq!(brisk_in(&d, &args).stdout, "a_sum,d_max\n22500000,9\n");
    assert_eq!(brisk_in(&d, &["count", "ints.csv.gz"]).stdout.trim(), "5000000");
}
