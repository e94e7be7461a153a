//! Object stores against real servers on 127.0.0.1, started here: moto's S3
//! server and a plain HTTP server with Range support (tests/object_server.py,
//! which also injects faults). The pandas group-by fixtures read by URL give the
//! local files' answers bit for bit; writes appear whole or not at all; a
//! transient failure is retried, a cut response and wrong credentials fail
//! clearly. Without python3 and moto (`.ci/run` installs them) the tests skip.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use brisk::Scheduler;
use brisk::frame::{Agg, CsvOptions, Sources, StorageOptions, Table, read_csv, read_parquet};
use common::{FIXTURES, brisk_in, scratch};

/// A running tests/object_server.py: stopped (its stdin closed, then killed if
/// need be) when dropped.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// The key it accepts, when started with --auth.
    key: Option<(String, String)>,
}

impl Server {
    /// Starts the server with bucket `data`, serving `files` under /_files/;
    /// `None` (the test skips) without python3 and moto.
    fn start(files: &Path, auth: bool) -> Option<Server> {
        let has_moto = Command::new("python3")
            .args(["-c", "import moto.server, werkzeug"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_moto {
            // CI installs it (.ci/run): a skip there would hide a broken setup.
            assert!(std::env::var_os("CI").is_none(), "python3 with moto[server] is missing");
            eprintln!("skipped: python3 with moto[server] is not installed (.ci/run installs it)");
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/object_server.py");
        let mut cmd = Command::new("python3");
        cmd.args([script, "--bucket", "data", "--files"]).arg(files);
        if auth {
            cmd.arg("--auth");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().expect("piped");
        let lines = if auth { 2 } else { 1 };
        // Its first lines, waited for at most 60 s.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let got: Vec<String> = (0..lines)
                .map_while(|_| {
                    let mut line = String::new();
                    reader.read_line(&mut line).ok().filter(|&n| n > 0).map(|_| line)
                })
                .collect();
            let _ = tx.send(got);
        });
        let got = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let mut server = Server { child, url: String::new(), key: None };
        server.url = got
            .first()
            .and_then(|l| l.trim().strip_prefix("listening on "))
            .expect("the server says where it listens")
            .to_string();
        if auth {
            let words: Vec<&str> = got[1].split_whitespace().collect();
            server.key = Some((words[1].to_string(), words[2].to_string()));
        }
        Some(server)
    }

    /// Settings reaching this server with its key (any key without --auth);
    /// retries bounded so failing tests end soon.
    fn storage(&self) -> StorageOptions {
        let (key, secret) = self.key.clone().unwrap_or(("test".into(), "test".into()));
        StorageOptions::new()
            .set("endpoint", &self.url)
            .set("access_key_id", key)
            .set("secret_access_key", secret)
            .set("max_retries", "3")
            .set("retry_timeout", "20")
    }

    /// One plain HTTP request to the server: the response's body.
    fn request(&self, method: &str, target: &str) -> String {
        let host = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).expect("the server listens");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
    }

    /// Arms `count` faults of `kind` for requests whose path has `matching`.
    fn fault(&self, kind: &str, count: usize, matching: &str) {
        self.request("POST", &format!("/_fault?kind={kind}&count={count}&match={matching}"));
    }

    /// How many faults of `kind` were served.
    fn served(&self, kind: &str) -> u64 {
        let body = self.request("GET", "/_fault");
        let v: serde_json::Value = serde_json::from_str(&body).expect("the fault status is JSON");
        v["served"][kind].as_u64().unwrap_or(0)
    }

    /// The multipart uploads begun and neither completed nor aborted in `bucket`.
    fn open_uploads(&self, bucket: &str) -> usize {
        self.request("GET", &format!("/{bucket}?uploads")).matches("<Upload>").count()
    }

    /// The keys in `bucket` (a listing; moto lists anonymous requests).
    fn keys(&self, bucket: &str) -> Vec<String> {
        let body = self.request("GET", &format!("/{bucket}?list-type=2"));
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(String::from)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// The fixture `name` uploaded as `s3://data/{key}` through Brisk's own upload.
fn upload(server: &Server, name: &str, key: &str) -> String {
    let url = format!("s3://data/{key}");
    brisk::frame::upload_file(&fixture(name), &url, &server.storage()).expect("uploaded");
    url
}

/// A group-by of every kind of aggregation over the frame (the fixtures' id and
/// value columns): the table bit for bit, as text of the batch's debug form.
fn answer(frame: brisk::frame::Frame, threads: usize) -> String {
    let q = frame
        .groupby(["id2", "id4"])
        .unwrap()
        .agg([("v1", Agg::Sum), ("v2", Agg::Min), ("v3", Agg::Mean), ("v3", Agg::Std)])
        .unwrap();
    let t: Table = Scheduler::threads(threads).compute(&q).unwrap();
    format!("{:?}", t.to_batch())
}

#[test]
fn csv_and_parquet_by_url_give_the_local_answers_bit_for_bit() {
    let dir = scratch("store-reads");
    let Some(server) = Server::start(&dir, false) else { return };
    let storage = server.storage();
    upload(&server, "g_plain.csv", "2026/01/part-a.csv");
    upload(&server, "g_nulls.csv", "2026/02/part-b.csv");
    upload(&server, "g_plain.csv", "2026/02/notes.txt");
    for (name, url) in [
        ("g_plain.csv", "s3://data/2026/01/part-a.csv"),
        ("g_nulls.csv", "s3://data/2026/02/part-b.csv"),
    ] {
        for (blocksize, threads) in [(4 << 20, 1), (7_919, 2), (65_536, 3)] {
            let opts = CsvOptions::default().blocksize(blocksize);
            let local = answer(read_csv(fixture(name).as_path(), opts.clone()).unwrap(), threads);
            let remote =
                read_csv(Sources::from(url).storage_options(storage.clone()), opts).unwrap();
            assert!(remote.npartitions() > 1 || blocksize > 1 << 20);
            assert_eq!(answer(remote, threads), local, "{url} at blocksize {blocksize}");
        }
    }
    // A glob over the listing: both parts, in order, not the .txt.
    let opts = CsvOptions::default().blocksize(50_000);
    let glob = Sources::from("s3://data/2026/*/part-*.csv").storage_options(storage.clone());
    let both = Sources::from(vec![fixture("g_plain.csv"), fixture("g_nulls.csv")]);
    assert_eq!(
        answer(read_csv(glob, opts.clone()).unwrap(), 2),
        answer(read_csv(both, opts.clone()).unwrap(), 2)
    );
    // A prefix ending in / is a directory of objects: those directly in it, as
    // a local directory is read (not the subdirectory's).
    upload(&server, "g_plain.csv", "2026/02/old/part-c.csv");
    let under = Sources::from("s3://data/2026/02/").storage_options(storage.clone());
    assert_eq!(
        answer(read_csv(under, opts.clone()).unwrap(), 2),
        answer(read_csv(fixture("g_nulls.csv").as_path(), opts.clone()).unwrap(), 2)
    );
    // Keys are taken as written: '#', '%' and spaces are part of them.
    let odd = upload(&server, "g_nulls.csv", "2026/03/a#1 b%3A.csv");
    let by_name = Sources::from(odd.as_str()).storage_options(storage.clone());
    let by_glob = Sources::from("s3://data/2026/03/*.csv").storage_options(storage.clone());
    let want = answer(read_csv(fixture("g_nulls.csv").as_path(), opts.clone()).unwrap(), 2);
    assert_eq!(answer(read_csv(by_name, opts.clone()).unwrap(), 2), want);
    assert_eq!(answer(read_csv(by_glob, opts.clone()).unwrap(), 2), want);
    // Plain HTTP with Range: the same bytes.
    std::fs::copy(fixture("g_nulls.csv"), dir.join("g_nulls.csv")).unwrap();
    let http = format!("{}/_files/g_nulls.csv", server.url);
    assert_eq!(
        answer(read_csv(http.as_str(), opts.clone()).unwrap(), 2),
        answer(read_csv(fixture("g_nulls.csv").as_path(), opts.clone()).unwrap(), 2)
    );
    let e =
        read_csv(format!("{}/_files/*.csv", server.url), opts.clone()).err().unwrap().to_string();
    assert!(e.contains("cannot be listed"), "{e}");
    // Parquet: written to the store in parts and as one file, read back equal
    // with only some columns.
    let local = read_csv(fixture("g_nulls.csv").as_path(), opts.clone()).unwrap();
    let sched = Scheduler::threads(2);
    local.to_parquet_with("s3://data/pq/one.parquet", &storage, &sched).unwrap();
    local.to_parquet_with("s3://data/pq/parts/", &storage, &sched).unwrap();
    let parts = server.keys("data").into_iter().filter(|k| k.starts_with("pq/parts/")).count();
    assert_eq!(parts, local.npartitions());
    let want = answer(local.clone(), 2);
    for url in ["s3://data/pq/one.parquet", "s3://data/pq/parts/"] {
        let columns = ["id2", "id4", "v1", "v2", "v3"];
        let frame =
            read_parquet(Sources::from(url).storage_options(storage.clone()), Some(&columns))
                .unwrap();
        assert_eq!(answer(frame, 2), want, "{url}");
    }
    // Missing objects and buckets are named.
    let e = read_csv(
        Sources::from("s3://data/nope.csv").storage_options(storage.clone()),
        opts.clone(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.starts_with("s3://data/nope.csv: no such object"), "{e}");
    let e = read_csv(
        Sources::from("s3://data/2026/*/none-*.csv").storage_options(storage.clone()),
        opts,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("matches no object"), "{e}");
    assert_eq!(server.open_uploads("data"), 0);
}

#[test]
fn writes_appear_whole_or_not_at_all() {
    let dir = scratch("store-writes");
    let Some(server) = Server::start(&dir, false) else { return };
    let storage = server.storage();
    let sched = Scheduler::threads(2);
    // Large enough for a multipart upload of several parts (8 MiB each).
    let big = dir.join("big.csv");
    let mut text = String::from("k,v\n");
    for i in 0..2_000_000u64 {
        text.push_str(&format!("k{},{}\n", i % 97, i * 7919 % 100_003));
    }
    std::fs::write(&big, &text).unwrap();
    assert!(text.len() > 17 << 20);
    let frame = read_csv(big.as_path(), CsvOptions::default()).unwrap();
    let rows = frame.to_csv_with("s3://data/out/big.csv", &storage, &sched).unwrap();
    assert_eq!(rows, 2_000_000);
    let back = read_csv(
        Sources::from("s3://data/out/big.csv").storage_options(storage.clone()),
        CsvOptions::default(),
    )
    .unwrap();
    let sum = |f: brisk::frame::Frame| {
        let t = sched.compute(&f.groupby(["k"]).unwrap().agg([("v", Agg::Sum)]).unwrap()).unwrap();
        format!("{:?}", t.to_batch())
    };
    assert_eq!(sum(back), sum(frame.clone()));
    assert_eq!(server.open_uploads("data"), 0);

    // Every part upload fails (503 past the retries): no object, and the
    // multipart upload begun is aborted.
    server.fault("503", 1000, "partNumber");
    let e =
        frame.to_csv_with("s3://data/out/failed.csv", &storage, &sched).err().unwrap().to_string();
    server.request("DELETE", "/_fault");
    assert!(e.starts_with("s3://data/out/failed.csv: "), "{e}");
    assert!(e.contains("retries") && e.contains("503"), "{e}");
    assert!(server.served("503") >= 4, "the part was tried and retried");
    assert!(!server.keys("data").iter().any(|k| k.contains("failed")), "{:?}", server.keys("data"));
    assert_eq!(server.open_uploads("data"), 0, "a failed upload is aborted");

    // Parts into a prefix that already holds objects are refused.
    let e = frame.to_csv_with("s3://data/out/", &storage, &sched).err().unwrap().to_string();
    assert!(e.contains("already holds objects"), "{e}");

    // A command interrupted (Ctrl-C) while it uploads, its parts held back by
    // 503s retried for minutes: no object, the upload aborted, nothing of the
    // staged output left in the temporary directory.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    server.fault("503", 1000, "partNumber");
    let child = Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(["convert", "big.csv", "--to", "s3://data/out/killed.csv", "--storage-option"])
        .arg(format!("endpoint={}", server.url))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("TMPDIR", &tmp)
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while server.open_uploads("data") == 0 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.open_uploads("data"), 1, "the upload had begun");
    let interrupt = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(interrupt.unwrap().success());
    let out = child.wait_with_output().unwrap();
    server.request("DELETE", "/_fault");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!server.keys("data").iter().any(|k| k.contains("killed")), "{:?}", server.keys("data"));
    assert_eq!(server.open_uploads("data"), 0, "the interrupted upload is aborted");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "staged output left behind: {left:?}");
}

#[test]
fn transient_failures_are_retried_and_cut_responses_fail() {
    let dir = scratch("store-faults");
    let Some(server) = Server::start(&dir, false) else { return };
    let storage = server.storage();
    let url = upload(&server, "g_nulls.csv", "faults/g.csv");
    let opts = CsvOptions::default().blocksize(30_000);
    let want = answer(read_csv(fixture("g_nulls.csv").as_path(), opts.clone()).unwrap(), 2);
    let frame =
        read_csv(Sources::from(url.as_str()).storage_options(storage.clone()), opts.clone())
            .unwrap();
    // Two 503s, then the server answers: the same result, both faults served.
    server.fault("503", 2, "faults/g.csv");
    assert_eq!(answer(frame.clone(), 2), want);
    assert_eq!(server.served("503"), 2);
    // Every response to the object cut short: an error naming it, no answer.
    let q = frame.groupby(["id2"]).unwrap().agg([("v1", Agg::Sum)]).unwrap();
    server.fault("short", 1000, "faults/g.csv");
    let got = Scheduler::threads(2).compute(&q);
    server.request("DELETE", "/_fault");
    let e = got.expect_err("a cut response is an error").to_string();
    assert!(e.contains("s3://data/faults/g.csv"), "{e}");
    assert!(server.served("short") >= 1);
    // Once, within the retries: retried, the right answer.
    server.fault("short", 1, "faults/g.csv");
    assert_eq!(answer(frame.clone(), 2), want);
    // The object replaced after the graph was built: an error, not a mix.
    let q = frame.groupby(["id2"]).unwrap().agg([("v1", Agg::Sum)]).unwrap();
    upload(&server, "g_plain.csv", "faults/g.csv");
    let e = Scheduler::threads(2).compute(&q).expect_err("a changed object fails").to_string();
    assert!(
        e.contains("s3://data/faults/g.csv") && e.contains("changed while it was being read"),
        "{e}"
    );
}

#[test]
fn wrong_credentials_are_a_clear_error() {
    let dir = scratch("store-auth");
    let Some(server) = Server::start(&dir, true) else { return };
    let url = upload(&server, "g_plain.csv", "auth/g.csv");
    let opts = CsvOptions::default();
    let good =
        read_csv(Sources::from(url.as_str()).storage_options(server.storage()), opts.clone());
    assert!(good.is_ok());
    let wrong = server.storage().set("secret_access_key", "not-the-secret");
    let e = read_csv(Sources::from(url.as_str()).storage_options(wrong), opts)
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("s3://data/auth/g.csv: "), "{e}");
    assert!(e.contains("credentials"), "{e}");
    assert!(!e.contains("not-the-secret"), "{e}");
}

#[test]
fn the_cli_reads_and_writes_urls_with_storage_options() {
    let dir = scratch("store-cli");
    let Some(server) = Server::start(&dir, false) else { return };
    upload(&server, "g_nulls.csv", "cli/g.csv");
    let endpoint = format!("endpoint={}", server.url);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    std::fs::copy(fixture("g_nulls.csv"), dir.join("g.csv")).unwrap();
    let q = [
        "groupby",
        "--by",
        "id1",
        "--agg",
        "v1:sum,v3:mean",
        "--blocksize",
        "20KB",
        "--progress",
        "never",
    ];
    let local = brisk_in(&dir, &[&q[..1], &["g.csv"], &q[1..]].concat());
    assert_eq!(local.status, 0, "{}", local.stderr);
    let (status, remote, err) =
        run(&[&q[..1], &["s3://data/cli/g.csv", "--storage-option", &endpoint], &q[1..]].concat());
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(remote, local.stdout);
    // Worker processes read their own blocks from the store, with the settings
    // the command was given (no AWS_* variables anywhere).
    let out = Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(&q[..1])
        .args(["s3://data/cli/g.csv", "--processes", "2", "--storage-option", &endpoint])
        .args(["--storage-option", "access_key_id=test", "--storage-option"])
        .args(["secret_access_key=test"])
        .args(&q[1..])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), local.stdout);
    // The endpoint from the environment (AWS_ENDPOINT_URL) and -o to a URL.
    let out = Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(
            [&q[..1], &["s3://data/cli/g.csv", "-o", "s3://data/cli/result.csv"], &q[1..]].concat(),
        )
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", &server.url)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, _, err) = run(&[
        "convert",
        "s3://data/cli/result.csv",
        "--to",
        "back.csv",
        "--storage-option",
        &endpoint,
    ]);
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("back.csv")).unwrap(), local.stdout);
    // A missing object: the URL and the cause, exit 2 (bad input).
    let (status, _, err) =
        run(&["schema", "s3://data/cli/none.csv", "--storage-option", &endpoint]);
    assert_eq!(status, Some(2));
    assert!(err.contains("s3://data/cli/none.csv: no such object"), "{err}");
    let (status, _, err) = run(&["schema", "s3://data/cli/g.csv", "--storage-option", "nonsense"]);
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("KEY=VALUE"), "{err}");
}
