//! The `brisk` binary, run as a user would: answers on fixture data, every kind of
//! bad input, files left behind (none), closed pipes, help texts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{FIXTURES, Run, Tmpfs, brisk, brisk_in, scratch};

/// Rows of a CSV text as fields.
fn rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// Two CSV tables equal cell by cell, numbers within 1e-9 relative (headers aside).
fn assert_same_values(got: &str, want: &str) {
    let (got, want) = (rows(got), rows(want));
    assert_eq!(got.len(), want.len(), "row counts");
    for (g, w) in got.iter().zip(&want).skip(1) {
        assert_eq!(g.len(), w.len(), "{g:?} vs {w:?}");
        for (a, b) in g.iter().zip(w) {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => {
                    assert!((x - y).abs() <= 1e-9 * y.abs().max(1.0), "{a} vs {b} in {g:?}")
                }
                _ => assert_eq!(a, b, "{g:?} vs {w:?}"),
            }
        }
    }
}

#[test]
fn groupby_equals_pandas_on_the_fixtures() {
    let want = std::fs::read_to_string(Path::new(FIXTURES).join("g_plain.q3.csv")).unwrap();
    for blocksize in ["3KB", "1MiB"] {
        let r = brisk(&[
            "groupby",
            "g_plain.csv",
            "--by",
            "id3",
            "--agg",
            "v1:sum,v3:mean",
            "--blocksize",
            blocksize,
            "--threads",
            "2",
        ]);
        assert_eq!(r.status, 0, "{}", r.stderr);
        assert!(r.stdout.starts_with("id3,v1_sum,v3_mean\n"), "{}", &r.stdout[..40]);
        assert_same_values(&r.stdout, &want);
    }
    // Nulls skipped, count/min/max/first/last/std/var/size as pandas computes them.
    let want = std::fs::read_to_string(Path::new(FIXTURES).join("g_nulls.aggs.csv")).unwrap();
    let r = brisk(&[
        "groupby",
        "g_nulls.csv",
        "--by",
        "id2,id4",
        "--agg",
        "v1:count,v1:min,v1:max,v1:first,v1:last,v3:std,v3:var,v3:min,v3:max,v3:size",
        "--format",
        "csv",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_same_values(&r.stdout, &want);
}

#[test]
fn every_command_gives_the_known_answer() {
    let dir = scratch("commands");
    std::fs::write(dir.join("t.csv"), "k,v,w\na,1,2.5\nb,2,\na,3,0.5\nc,,1.0\n").unwrap();
    let ok = |args: &[&str]| {
        let r = brisk_in(&dir, args);
        assert_eq!(r.status, 0, "{args:?}: {}", r.stderr);
        r.stdout
    };
    assert_eq!(ok(&["groupby", "t.csv", "--by", "k"]), "k,v,w\na,2.0,1.5\nb,2.0,\nc,,1.0\n");
    assert_eq!(
        ok(&["groupby", "t.csv", "--by", "k", "--agg", "sum", "--filter", "v >= 2 or is_null(v)"]),
        "k,v,w\na,3,0.5\nb,2,0.0\nc,0,1.0\n"
    );
    assert_eq!(
        ok(&["agg", "t.csv", "--agg", "v:sum,w:max,k:nunique"]),
        "v_sum,w_max,k_nunique\n6,2.5,3\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["agg", "t.csv", "--agg", "mean", "--format", "json"])).unwrap();
    assert_eq!(json, serde_json::json!([{"v": 2.0, "w": 4.0 / 3.0}]));
    assert_eq!(ok(&["count", "t.csv"]), "4\n");
    assert_eq!(ok(&["count", "t.csv", "--filter", "k == 'a' and w < 1"]), "1\n");
    assert_eq!(ok(&["head", "t.csv", "-n", "2"]), "k,v,w\na,1,2.5\nb,2,\n");
    assert_eq!(ok(&["schema", "t.csv"]), "k\tUtf8\nv\tInt64\nw\tFloat64\n");
    assert_eq!(ok(&["schema", "t.csv", "--dtype", "v:float"]), "k\tUtf8\nv\tFloat64\nw\tFloat64\n");
    let describe = ok(&["describe", "t.csv"]);
    assert!(describe.starts_with("statistic,v,w\ncount,3.0,3.0\nmean,2.0,"), "{describe}");
    // CSV -> Parquet -> CSV gives the rows back; Parquet is read by its extension.
    let r = brisk_in(&dir, &["convert", "t.csv", "--to", "t.parquet"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(ok(&["head", "t.parquet"]), "k,v,w\na,1,2.5\nb,2,\na,3,0.5\nc,,1.0\n");
    assert_eq!(ok(&["count", "t.parquet", "--filter", "w > 1"]), "1\n");
    // -o: format by extension, written whole.
    ok(&["groupby", "t.csv", "--by", "k", "--agg", "v:sum", "-o", "out.json"]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out.json")).unwrap()).unwrap();
    assert_eq!(json[2], serde_json::json!({"k": "c", "v_sum": 0}));
    // --progress always draws on stderr even when it is not a terminal; never does not.
    let r = brisk_in(&dir, &["count", "t.csv", "--progress", "always"]);
    assert!(r.stderr.contains("tasks") && r.stdout == "4\n", "{}", r.stderr);
    let r = brisk_in(&dir, &["count", "t.csv", "--progress", "never"]);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // --explain prints the graph's summary and computes nothing.
    let explain = ok(&["groupby", "t.csv", "--by", "k", "--explain"]);
    assert!(
        explain.contains("task graph:") && explain.contains("frame.groupby-finish"),
        "{explain}"
    );
    ok(&["groupby", "t.csv", "--by", "k", "--visualize", "g.dot"]);
    assert!(std::fs::read_to_string(dir.join("g.dot")).unwrap().starts_with("digraph"));
    // A picture without Graphviz: by layer, or every task.
    ok(&["groupby", "t.csv", "--by", "k", "--visualize", "g.svg"]);
    let svg = std::fs::read_to_string(dir.join("g.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("groupby"), "{}", &svg[..svg.len().min(300)]);
    ok(&["groupby", "t.csv", "--by", "k", "--visualize", "all.svg", "--tasks"]);
    let every = std::fs::read_to_string(dir.join("all.svg")).unwrap();
    // Layers say their task counts; every task is named by its key.
    assert!(svg.contains(" task") && !svg.contains("&apos;"), "{svg}");
    assert!(every.contains("&apos;"), "{every}");
}

/// `--format table` truncates only a terminal's preview: into a file or a pipe
/// every row is written.
#[test]
fn a_table_written_to_a_file_or_pipe_has_every_row() {
    let dir = scratch("table-rows");
    let text: String = (0..50).map(|i| format!("k{i:02},{i}\n")).collect();
    std::fs::write(dir.join("t.csv"), format!("k,v\n{text}")).unwrap();
    let r = brisk_in(&dir, &["groupby", "t.csv", "--by", "k", "--agg", "v:sum", "-o", "out.txt"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let file = std::fs::read_to_string(dir.join("out.txt")).unwrap();
    let r =
        brisk_in(&dir, &["groupby", "t.csv", "--by", "k", "--agg", "v:sum", "--format", "table"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    for written in [&file, &r.stdout] {
        for i in 0..50 {
            assert!(written.contains(&format!("| k{i:02} ")), "k{i:02} missing:\n{written}");
        }
        assert!(!written.contains("showing the first and last"), "{written}");
    }
}

/// A full disk or device is the user's to fix: exit 2 naming what could not be
/// written, never an internal error, and no output left behind.
#[test]
fn a_full_disk_is_exit_2_with_the_path() {
    let dir = scratch("full");
    let text: String = (0..2000).map(|i| format!("k{i:04},{i}\n")).collect();
    std::fs::write(dir.join("t.csv"), format!("k,v\n{text}")).unwrap();
    // Standard output on a device that is always full.
    if let Ok(full) = std::fs::File::create("/dev/full") {
        let out = Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args(["groupby", "t.csv", "--by", "k", "--agg", "v:sum"])
            .current_dir(&dir)
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("No space left"), "{stderr}");
    }
    let Some(tmpfs) = Tmpfs::mount(dir.join("mnt"), "16k") else {
        eprintln!("skipped the tmpfs half: cannot mount one here (needs root)");
        return;
    };
    let mnt = tmpfs.path().to_path_buf();
    let runs: Vec<Run> = ["out.csv", "out.json", "out.txt"]
        .iter()
        .map(|o| {
            let target = mnt.join(o);
            let args = ["groupby", "t.csv", "--by", "k", "--agg", "v:sum", "-o"];
            let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            args.push(target.to_string_lossy().into_owned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            brisk_in(&dir, &args)
        })
        .collect();
    let leftovers: Vec<_> =
        std::fs::read_dir(&mnt).unwrap().flatten().map(|e| e.file_name()).collect();
    drop(tmpfs);
    for r in runs {
        assert_eq!(r.status, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("mnt/out.") && r.stderr.contains("No space left"),
            "{}",
            r.stderr
        );
    }
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// `-o` through a symlink writes the link's target (the link stays), and `-o` onto
/// a FIFO writes into it rather than renaming a regular file over it.
#[test]
fn output_to_a_symlink_or_fifo_writes_through_it() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("special-out");
    std::fs::write(dir.join("t.csv"), "k,v\na,1\nb,2\n").unwrap();
    std::fs::write(dir.join("real.csv"), "old").unwrap();
    std::os::unix::fs::symlink("real.csv", dir.join("link.csv")).unwrap();
    let r = brisk_in(&dir, &["groupby", "t.csv", "--by", "k", "--agg", "v:sum", "-o", "link.csv"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(std::fs::symlink_metadata(dir.join("link.csv")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(dir.join("real.csv")).unwrap(), "k,v_sum\na,1\nb,2\n");
    let fifo = dir.join("pipe.csv");
    if Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        // The reader is bounded in time: if the FIFO were replaced, nothing would
        // ever write to it.
        let reader = Command::new("timeout")
            .args(["10", "cat"])
            .arg(&fifo)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let r =
            brisk_in(&dir, &["groupby", "t.csv", "--by", "k", "--agg", "v:sum", "-o", "pipe.csv"]);
        assert_eq!(r.status, 0, "{}", r.stderr);
        let read = reader.wait_with_output().unwrap();
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
        assert_eq!(String::from_utf8_lossy(&read.stdout), "k,v_sum\na,1\nb,2\n");
    }
}

/// `agg` over no rows prints one row, as pandas' `df.agg`: counts and sums 0, the
/// mean empty (null).
#[test]
fn agg_over_no_rows_prints_one_row() {
    let dir = scratch("agg-empty");
    std::fs::write(dir.join("t.csv"), "k,v\na,1\nb,2\n").unwrap();
    let r = brisk_in(
        &dir,
        &[
            "agg",
            "t.csv",
            "--agg",
            "v:sum,v:count,v:mean",
            "--filter",
            "v > 100",
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "v_sum,v_count,v_mean\n0,0,\n");
}

/// Every command that computes goes through the same run path: `--explain` explains
/// (and writes nothing), and `--threads` and `--memory-limit` reach the scheduler.
#[test]
fn explain_threads_and_budget_reach_every_command() {
    let dir = scratch("run-path");
    std::fs::write(dir.join("t.csv"), "k,v\na,1\nb,2\na,3\n").unwrap();
    let ok = |args: &[&str]| {
        let r = brisk_in(&dir, args);
        assert_eq!(r.status, 0, "{args:?}: {}", r.stderr);
        r.stdout
    };
    let run = ["--threads", "3", "--memory-limit", "64MiB", "--explain"];
    for command in
        [&["count", "t.csv"][..], &["head", "t.csv"], &["convert", "t.csv", "--to", "o.csv"]]
    {
        let args: Vec<&str> = command.iter().chain(&run).copied().collect();
        let text = ok(&args);
        assert!(text.starts_with("input: 1 file, 16 B on disk, 1 partition\n"), "{args:?}: {text}");
        assert!(text.contains("task graph:"), "{args:?}: {text}");
        assert!(text.contains("threads: 3\nmemory budget: 64.0 MiB"), "{args:?}: {text}");
    }
    assert!(!dir.join("o.csv").exists(), "convert --explain wrote its output");
    // The same options without --explain compute.
    assert_eq!(
        ok(&["head", "t.csv", "-n", "2", "--threads", "1", "--memory-limit", "1MB"])
            .lines()
            .count(),
        3
    );
    ok(&["convert", "t.csv", "--to", "o.csv", "--threads", "1"]);
    assert_eq!(std::fs::read_to_string(dir.join("o.csv")).unwrap(), "k,v\na,1\nb,2\na,3\n");
}

#[test]
fn bad_input_exits_2_with_one_clear_message() {
    let dir = scratch("bad");
    std::fs::write(dir.join("ok.csv"), "k,v\na,1\nb,2\n").unwrap();
    std::fs::write(dir.join("wide.csv"), format!("k,v\n{}", "a,1\n".repeat(5000))).unwrap();
    std::fs::write(dir.join("ragged.csv"), "k,v\na,1\nb,2,3\n").unwrap();
    std::fs::write(dir.join("late.csv"), "k,v\na,1\nb,x7\n").unwrap();
    std::fs::write(dir.join("utf.csv"), b"k,v\na,1\nb,\xff\xfe\n").unwrap();
    std::fs::write(dir.join("empty.csv"), "").unwrap();
    std::fs::write(dir.join("big.csv"), "k,v\na,9223372036854775807\na,9223372036854775807\n")
        .unwrap();
    std::fs::create_dir_all(dir.join("nocsv")).unwrap();
    std::fs::write(dir.join("nocsv/readme.txt"), "no data").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["groupby", "missing.csv", "--by", "k"], "missing.csv: no such file"),
        (&["groupby", "zz*.csv", "--by", "k"], "zz*.csv: the pattern matches no file"),
        (&["groupby", "ok.csv", "--by", "kk"], "unknown column 'kk'; did you mean 'k'"),
        (&["groupby", "ok.csv", "--by", "k", "--agg", "median"], "unknown aggregation 'median'"),
        (&["groupby", "ok.csv", "--by", "k", "--agg", "v:sum,v"], "'v' is not COL:FN"),
        (&["groupby", "ok.csv", "--by", "k", "--filter", "v > and"], "position 5"),
        (&["groupby", "ok.csv", "--by", "k", "--filter", "v >"], "expected a value"),
        (&["groupby", "ragged.csv", "--by", "k"], "ragged.csv: line 3"),
        (
            &["groupby", "late.csv", "--by", "k", "--dtype", "v:int"],
            "late.csv: line 3, column 'v': cannot parse 'x7' as Int64; read the column as text (--dtype v:str) or mark the value as null (--null 'x7')",
        ),
        (&["groupby", "utf.csv", "--by", "k"], "utf.csv: line 3: invalid UTF-8"),
        (&["groupby", "empty.csv", "--by", "k"], "empty.csv: the file is empty"),
        (
            &["groupby", "big.csv", "--by", "k", "--agg", "v:sum"],
            "the integer sum of column 'v' overflowed Int64 in group k=a; read the column as a float to sum it (CLI: --dtype v:float)",
        ),
        (&["agg", "big.csv", "--agg", "v:sum"], "'v' overflowed Int64 over the whole input"),
        (&["groupby", "nocsv", "--by", "k"], "nocsv: the directory holds no .csv"),
        (&["groupby", "ok.csv", "--by", "k", "-o", "no/such/dir/out.csv"], "cannot write"),
        (&["groupby", "ok.csv", "--by", "k", "--format", "parquet"], "needs -o FILE"),
        (&["groupby", "ok.csv", "--by", "k", "--blocksize", "4 parsecs"], "unknown size unit"),
        (&["schema", "ok.csv", "--dtype", "v:decimal"], "unknown type"),
        (&["groupby", "ok.csv"], "--by"),
        (
            &["count", "ok.csv", "--threads", "10000"],
            "--threads 10000 is more than this machine can use",
        ),
        (&["count", "ok.csv", "--threads", "99999999999"], "is more than this machine can use"),
        (
            &["count", "wide.csv", "--memory-limit", "10KB"],
            "more than the whole memory budget of 9.8 KiB: use smaller chunks or a smaller blocksize",
        ),
    ];
    for (args, message) in cases {
        let r = brisk_in(&dir, args);
        assert_eq!(r.status, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?} printed {}", r.stdout);
        assert!(
            !r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn a_failed_run_leaves_no_output_file() {
    let dir = scratch("leftovers");
    let mut text = String::from("k,v\n");
    for i in 0..5000 {
        text.push_str(&format!("k{},{}\n", i % 7, i));
    }
    text.push_str("k1,oops\n");
    std::fs::write(dir.join("late.csv"), text).unwrap();
    for out in ["out.csv", "out.parquet", "out.json"] {
        let r = brisk_in(
            &dir,
            &[
                "groupby",
                "late.csv",
                "--by",
                "k",
                "--dtype",
                "v:int",
                "--blocksize",
                "4KB",
                "-o",
                out,
            ],
        );
        assert_eq!(r.status, 2, "{}", r.stderr);
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("late.csv")]);
    let r = brisk_in(&dir, &["groupby", "late.csv", "--by", "k", "--agg", "size", "-o", "ok.csv"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "no temporary file remains");
}

#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    let dir = scratch("pipe");
    let mut text = String::from("k,v\n");
    for i in 0..200_000 {
        text.push_str(&format!("key{},{}\n", i % 13, i));
    }
    std::fs::write(dir.join("big.csv"), text).unwrap();
    for format in ["csv", "json", "table"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args(["head", "big.csv", "-n", "200000", "--format", format])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // The reader is gone now (as with `| head -1`).
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}");
        assert!(out.stderr.is_empty(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn every_subcommand_documents_its_flags_with_an_example() {
    let flags: &[(&str, &[&str])] = &[
        (
            "groupby",
            &[
                "--by",
                "--agg",
                "--filter",
                "--format",
                "--output",
                "--threads",
                "--blocksize",
                "--delimiter",
                "--no-header",
                "--dtype",
                "--null",
                "--progress",
                "--explain",
                "--visualize",
            ],
        ),
        ("agg", &["--agg", "--filter", "--format", "--output"]),
        ("describe", &["--filter", "--format"]),
        ("head", &["--rows", "--format"]),
        ("count", &["--filter", "--threads"]),
        ("schema", &["--dtype", "--no-header"]),
        ("convert", &["--to", "--progress"]),
        ("demo", &[]),
    ];
    for (command, wanted) in flags {
        let r = brisk(&[command, "--help"]);
        assert_eq!(r.status, 0, "{command}");
        if *command != "demo" {
            assert!(r.stdout.contains("Example"), "{command} --help has no example");
        }
        for flag in *wanted {
            assert!(r.stdout.contains(flag), "{command} --help lacks {flag}");
        }
    }
}

#[test]
fn the_demo_runs_both_sentences() {
    let r = brisk(&["demo"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("groupby([\"id1\"]).mean()"), "{}", r.stdout);
    assert!(r.stdout.contains("| id010 |"), "{}", r.stdout);
    assert!(r.stdout.contains("mean = 0.49"), "{}", r.stdout);
}

/// A CSV of 1.5M rows and 1M distinct keys: long enough to stop mid-run.
fn many_keys(dir: &Path) {
    let mut text = String::from("k,v\n");
    for i in 0..1_500_000u64 {
        text.push_str(&format!("key{},{}\n", i.wrapping_mul(0x9e37_79b9) % 1_000_003, i % 97));
    }
    std::fs::write(dir.join("many.csv"), text).unwrap();
}

/// Whether process `pid` has a file open under `dir` (a spill file has no name
/// there, but /proc still shows where it was made).
fn has_file_open_in(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to.starts_with(dir)))
}

#[test]
fn spilled_results_leave_nothing_whatever_stops_the_run() {
    let dir = scratch("interrupt");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    many_keys(&dir);
    for signal in ["INT", "TERM", "KILL"] {
        let child = Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args(["groupby", "many.csv", "--by", "k", "--agg", "v:sum", "--memory-limit", "300KB"])
            .args(["--blocksize", "64KB", "--threads", "2", "-o", "out.csv"])
            .current_dir(&dir)
            .env("TMPDIR", &tmp)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the spill file, then stop the run.
        let started = std::time::Instant::now();
        while !has_file_open_in(child.id(), &tmp) {
            assert!(started.elapsed().as_secs() < 60, "nothing was spilled");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let pid = child.id().to_string();
        Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
        let out = child.wait_with_output().unwrap();
        if signal != "KILL" {
            assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
        }
        // Even after SIGKILL: the spill file had no name to leave behind.
        assert!(left(&tmp).is_empty(), "{signal} left behind: {:?}", left(&tmp));
        assert_eq!(left(&dir), vec![dir.join("many.csv"), tmp.clone()], "{signal}");
    }
}

#[test]
fn an_interrupted_convert_leaves_no_parts() {
    let dir = scratch("interrupt-convert");
    many_keys(&dir);
    for (signal, to) in [("INT", "out.csv"), ("TERM", "out.csv"), ("TERM", "out.parquet")] {
        let child = Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args(["convert", "many.csv", "--to", to, "--blocksize", "64KB", "--threads", "1"])
            .current_dir(&dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the temporary output (or its parts) to appear, then stop.
        let started = std::time::Instant::now();
        while left(&dir).len() < 2 {
            assert!(started.elapsed().as_secs() < 60, "no output was started");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(left(&dir), vec![dir.join("many.csv")], "{signal} during convert --to {to}");
    }
}

fn left(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
}

/// Worker processes started by the command itself: the same table as threads,
/// byte for byte, and the workers gone when it exits.
#[test]
fn processes_give_the_threads_answer() {
    let args = ["groupby", "g_nulls.csv", "--by", "id1,id2", "--agg", "v1:sum,v3:mean,id3:nunique"];
    let small = ["--blocksize", "4KB", "--progress", "never"];
    let threads = brisk(&[&args[..], &small, &["--threads", "2"]].concat());
    assert_eq!(threads.status, 0, "{}", threads.stderr);
    let processes = brisk(&[&args[..], &small, &["--processes", "2", "--threads", "1"]].concat());
    assert_eq!(processes.status, 0, "{}", processes.stderr);
    assert_eq!(processes.stdout, threads.stdout);
    assert!(threads.stdout.lines().count() > 10);
    // What it runs on, said by --explain.
    let explain = brisk(&[&args[..], &small, &["--processes", "2", "--explain"]].concat());
    assert!(explain.stdout.contains("runs on: local 2 worker processes"), "{}", explain.stdout);
    // A compressed file is decoded once, on one worker, and its blocks are read
    // there: the decoded copy is an open file of that process.
    let dir = scratch("processes-gz");
    let text = std::fs::read(Path::new(FIXTURES).join("g_nulls.csv")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &text).unwrap();
    std::fs::write(dir.join("g.csv.gz"), gz.finish().unwrap()).unwrap();
    let gz_args = ["groupby", "g.csv.gz", "--by", "id1", "--agg", "v1:sum", "--blocksize", "4KB"];
    let threads = brisk_in(&dir, &gz_args);
    let processes = brisk_in(&dir, &[&gz_args[..], &["--processes", "2"]].concat());
    assert_eq!(processes.status, 0, "{}", processes.stderr);
    assert_eq!(processes.stdout, threads.stdout);
    let bad = brisk(&[&args[..], &["--processes", "0"]].concat());
    assert_eq!(bad.status, 2);
    assert!(bad.stderr.contains("--processes 0: give between 1 and"), "{}", bad.stderr);
    // No worker outlived its command (a worker has the variable in its environment).
    let workers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            std::fs::read(p.path().join("environ")).is_ok_and(|env| {
                env.split(|&b| b == 0).any(|v| v.starts_with(b"BRISK_WORKER_PROCESS="))
            })
        })
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(workers.is_empty(), "worker processes left running: {workers:?}");
}

/// A server process of the CLI, ended (and reaped) when dropped.
struct Server(std::process::Child);

impl Server {
    /// Starts `brisk ARGS` and reads the address from its first line.
    fn start(args: &[&str]) -> (Server, String) {
        // In the fixtures' directory: workers read the inputs' paths as given.
        let mut child = Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args(args)
            .current_dir(FIXTURES)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr =
            line.split_whitespace().find(|w| w.contains(':')).unwrap_or("").trim_end_matches(',');
        let addr = addr.to_string();
        if addr.parse::<std::net::SocketAddr>().is_err() {
            let mut why = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut why);
            panic!("brisk {args:?} did not start: {line}{why}");
        }
        (Server(child), addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `brisk scheduler`, two `brisk worker`s on their own loopback addresses, and a
/// command with `--scheduler`: the threads' output, and nothing listening after.
#[test]
fn a_scheduler_and_its_workers_give_the_threads_answer() {
    let (scheduler, addr) = Server::start(&["scheduler", "--listen", "127.0.0.1:0"]);
    let w1 = Server::start(&["worker", &addr, "--listen", "127.0.0.2:0", "--threads", "1"]);
    let w2 = Server::start(&["worker", &addr, "--listen", "127.0.0.3:0", "--threads", "1"]);
    let args = [
        "groupby",
        "g_nulls.csv",
        "--by",
        "id1,id2",
        "--agg",
        "v1:sum,v3:mean",
        "--blocksize",
        "4KB",
    ];
    let threads = brisk(&args);
    let remote = brisk(&[&args[..], &["--scheduler", &addr]].concat());
    assert_eq!(remote.status, 0, "{}", remote.stderr);
    assert_eq!(remote.stdout, threads.stdout);
    let explain = brisk(&[&args[..], &["--scheduler", &addr, "--explain"]].concat());
    assert!(
        explain.stdout.contains(&format!("runs on: the scheduler at {addr}: 2 workers, 2 threads")),
        "{}",
        explain.stdout
    );
    // A scheduler that is not there: a clear error, at once.
    drop(scheduler);
    let gone = brisk(&[&args[..], &["--scheduler", &addr]].concat());
    assert_eq!(gone.status, 2, "{}", gone.stderr);
    assert!(gone.stderr.contains(&addr), "{}", gone.stderr);
    let addrs = [addr, w1.1.clone(), w2.1.clone()];
    drop((w1, w2));
    for a in addrs {
        assert!(std::net::TcpStream::connect(&a).is_err(), "{a} still listens");
    }
}

#[test]
fn report_writes_one_self_contained_page_of_the_compute() {
    let dir = scratch("report");
    let report = dir.join("q3.html");
    let report_arg = report.to_string_lossy().into_owned();
    let args = ["groupby", "g_plain.csv", "--by", "id3", "--agg", "v1:sum,v3:mean"];
    let plain = brisk(&[&args[..], &["--blocksize", "3KB", "--threads", "2"]].concat());
    let r = brisk(
        &[&args[..], &["--blocksize", "3KB", "--threads", "2", "--report", &report_arg]].concat(),
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    // The answer is the same, the report is beside it.
    assert_eq!(r.stdout, plain.stdout);
    assert!(r.stderr.contains("wrote the performance report to"), "{}", r.stderr);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    // Lanes of the two threads, a bar per task, the CSV reads among the ops,
    // the plan, the inputs.
    let bars = html.matches("class=\"task\"").count();
    let tasks: usize = html
        .split("<span id=\"tasks\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(bars, tasks);
    assert!(bars > 3, "{bars} tasks");
    assert!(html.contains("data-worker=\"0\"") || html.contains("data-worker=\"1\""));
    assert!(html.contains("id=\"plan\""), "the plan summary");
    assert!(html.contains("1 files") && html.contains("threads"), "the environment");
    let ops = &html[html.find("id=\"ops\"").unwrap()..];
    assert!(ops.contains("csv"), "the reads: {}", &ops[..ops.len().min(600)]);
    // Nothing is left half-written beside it.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, ["q3.html"]);
}

/// `brisk scheduler --dashboard`: the computes its clients run, and its
/// workers with their memory, live over HTTP.
#[test]
fn a_scheduler_serves_a_dashboard_of_its_computes_and_workers() {
    let (mut scheduler, addr) =
        Server::start(&["scheduler", "--listen", "127.0.0.1:0", "--dashboard=127.0.0.1:0"]);
    let mut said = String::new();
    BufReader::new(scheduler.0.stderr.take().unwrap()).read_line(&mut said).unwrap();
    let url = said.trim().strip_prefix("dashboard at http://").expect(&said).trim_end_matches('/');
    let dashboard = url.to_string();
    let worker = Server::start(&[
        "worker",
        &addr,
        "--listen",
        "127.0.0.2:0",
        "--threads",
        "1",
        "--memory-limit",
        "64MiB",
    ]);
    let args = ["groupby", "g_nulls.csv", "--by", "id1", "--agg", "v1:sum", "--blocksize", "4KB"];
    let remote = brisk(&[&args[..], &["--scheduler", &addr]].concat());
    assert_eq!(remote.status, 0, "{}", remote.stderr);
    // The first update an opened page gets: the compute done, the worker.
    let update = first_update(&dashboard);
    let number = |attribute: &str| -> usize {
        let at = update.find(attribute).unwrap_or_else(|| panic!("no {attribute} in {update}"));
        update[at + attribute.len() + 2..].split('"').next().unwrap().parse().unwrap()
    };
    assert!(update.contains("1 compute finished (0 failed)"), "{update}");
    let (planned, done) = (number("data-planned"), number("data-done"));
    assert!(planned > 4 && done == planned, "{done} of {planned} in {update}");
    assert!(update.contains(&format!("<td>{}</td>", worker.1)), "{update}");
    assert!(update.contains("data-limit=\"67108864\""), "{update}");
    assert!(update.contains("csv"), "the reads among the ops: {update}");
    drop((worker, scheduler));
    // On a command: the same answer, the address said; the path after a bare
    // --dashboard is not taken for an address.
    let plain = brisk(&args);
    let watched = brisk(&[&args[..], &["--dashboard=127.0.0.1:0"]].concat());
    assert_eq!(watched.status, 0, "{}", watched.stderr);
    assert_eq!(watched.stdout, plain.stdout);
    assert!(watched.stderr.contains("dashboard at http://127.0.0.1:"), "{}", watched.stderr);
    let parsed = brisk(&["count", "--dashboard", "--threads", "0", "g_nulls.csv"]);
    assert!(parsed.stderr.contains("--threads must be at least 1"), "{}", parsed.stderr);
}

/// The first `update` event of the dashboard at `addr`.
fn first_update(addr: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    write!(stream, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut data = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if let Some(text) = line.strip_prefix("data: ") {
            data.push(text.to_string());
        } else if line.is_empty() && !data.is_empty() {
            break;
        }
    }
    data.join("\n")
}

/// A report query: derived columns, a date filter, named aggregations of
/// expressions, `--having`, `--sort` each way, `--limit` (top-N in the sort's
/// order, else the keys'); mistakes are exit 2 with the flag and a caret.
#[test]
fn report_queries_with_having_sort_and_limit() {
    let dir = scratch("report");
    std::fs::write(
        dir.join("sales.csv"),
        "k,v,d\na,1,2020-01-05\nb,2,2020-02-01\na,3,2020-03-01\nc,,2021-01-01\nb,5,\nc,7,2020-12-31\n",
    )
    .unwrap();
    let base = [
        "groupby",
        "sales.csv",
        "--by",
        "k",
        "--with",
        "w=v * 2",
        "--filter",
        "d >= date '2020-01-01'",
        "--agg",
        "tot=sum(w),n=count(*),mx=max(v),first_month=min(month(d))",
        "--format",
        "csv",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        let r = brisk_in(&dir, &args);
        assert_eq!(r.status, 0, "{extra:?}: {}", r.stderr);
        r.stdout
    };
    let header = "k,tot,n,mx,first_month\n";
    assert_eq!(run(&[]), format!("{header}a,8,2,3,1\nb,4,1,2,2\nc,14,2,7,1\n"));
    assert_eq!(run(&["--having", "n >= 2"]), format!("{header}a,8,2,3,1\nc,14,2,7,1\n"));
    assert_eq!(
        run(&["--having", "n >= 2", "--sort", "tot desc", "--limit", "1"]),
        format!("{header}c,14,2,7,1\n")
    );
    assert_eq!(
        run(&["--sort", "first_month, tot desc"]),
        format!("{header}c,14,2,7,1\na,8,2,3,1\nb,4,1,2,2\n")
    );
    // A limit alone keeps the keys' order: the smallest keys, not one part's rows.
    assert_eq!(
        run(&["--limit", "2", "--blocksize", "40B"]),
        format!("{header}a,8,2,3,1\nb,4,1,2,2\n")
    );
    // The whole input, with count(*) and a case.
    let r = brisk_in(
        &dir,
        &[
            "agg",
            "sales.csv",
            "--agg",
            "n=count(*),late=sum(case when d > '2020-06-30' then 1 else 0 end),avg(v)",
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "n,late,avg(v)\n6,2,3.6\n");
    for (extra, flag, what) in [
        (vec!["--sort", "nope desc"], "--sort", "unknown column 'nope'"),
        (vec!["--sort", "tot down"], "--sort", "COL desc"),
        (vec!["--having", "tot > 'x'"], "--having", "^"),
        (vec!["--with", "w v"], "--with", "NAME=EXPR"),
    ] {
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        let r = brisk_in(&dir, &args);
        assert_eq!(r.status, 2, "{extra:?}: {}", r.stderr);
        assert!(r.stderr.contains(flag) && r.stderr.contains(what), "{extra:?}: {}", r.stderr);
    }
    let r = brisk_in(&dir, &["agg", "sales.csv", "--agg", "x=sum(k + 1)"]);
    assert_eq!(r.status, 2);
    assert!(r.stderr.contains("--agg") && r.stderr.contains("position 9"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}
