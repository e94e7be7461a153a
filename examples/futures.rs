//! Futures, step by step, in the style of `concurrent.futures`: submit work
//! that waits on slow I/O, take results as they come, wait with a timeout
//! while a task hangs, cancel, and chain futures without waiting. Then the
//! overhead workload of `../shared/bench/peer_dask_distributed.py --workload
//! futures`, with the same RESULT line:
//!
//! ```sh
//! cargo run --release --example futures -- -T 20000
//! python peer_dask_distributed.py --workload futures -T 20000 --workers 2
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use brisk::client::{Client, Options, Return, as_completed, cancelled, wait};

/// A download that takes `ms` milliseconds (simulated slow I/O).
fn fetch(url: &str, ms: u64) -> String {
    std::thread::sleep(Duration::from_millis(ms));
    format!("<{} bytes from {url}>", url.len() * 100)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = args
        .iter()
        .position(|a| a == "-T")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(20_000), |t| t.parse())?;

    println!("## Step 1: a client with 4 threads; submit returns at once");
    let client = Client::threads(4);
    let urls = [("a.example/big", 300u64), ("b.example/small", 50), ("c.example/mid", 150)];
    let started = Instant::now();
    let downloads: Vec<_> =
        urls.iter().map(|&(url, ms)| client.submit(move || fetch(url, ms))).collect();
    println!("submitted {} downloads in {:?}", downloads.len(), started.elapsed());

    println!("## Step 2: results as they complete (fastest first)");
    for i in as_completed(&downloads, None) {
        println!("  {:>6.0?}  {} -> {}", started.elapsed(), urls[i].0, downloads[i].result(None)?);
    }

    println!("## Step 3: wait with a timeout while one task hangs");
    let hung = client.submit(|| {
        // Simulated I/O that never answers, but stops when cancelled.
        while !cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let quick = client.submit(|| ());
    let (done, not_done) =
        wait(&[hung.clone(), quick], Some(Duration::from_millis(200)), Return::AllCompleted);
    println!("  after 200 ms: done {done:?}, not done {not_done:?}");
    println!("  result with a 50 ms timeout: {:?}", hung.result(Some(Duration::from_millis(50))));

    println!("## Step 4: cancel it; the task sees cancelled() and stops");
    println!("  cancel() -> {}, cancelled() -> {}", hung.cancel(), hung.cancelled());

    println!("## Step 5: futures as arguments: a dependency, not a wait");
    let sizes: Vec<_> = urls.iter().map(|&(url, _)| client.submit(move || url.len())).collect();
    let total = client.submit_with(sizes, Options::default(), |lens: Vec<usize>| {
        Ok::<_, String>(lens.iter().sum::<usize>())
    });
    println!("  total length of the URLs: {}", total.result(None)?);

    println!("## Step 6: a failure carries its key");
    let options = Options { key: Some("parse-page-7".into()), ..Options::default() };
    let failed = client.try_submit_opts(options, || "x7".parse::<u32>());
    println!("  {}", failed.result(None).unwrap_err());
    drop(client);

    println!("## Step 7: overhead: map {tasks} trivial futures then gather; 200 round trips");
    let client = Client::threads(2);
    let started = Instant::now();
    let futures = client.map(|i: u64| i + 1, 0..tasks as u64);
    let total: u64 = client.gather(&futures)?.iter().sum();
    let per_future = started.elapsed().as_secs_f64() / tasks as f64;
    let started = Instant::now();
    for i in 0..200u64 {
        client.submit(move || i + 1).result(None)?;
    }
    let round_trip = started.elapsed().as_secs_f64() / 200.0;
    println!(
        "RESULT peer=brisk-threads workload=futures futures={tasks} result={total} us_per_future={:.2} us_round_trip={:.2}",
        per_future * 1e6,
        round_trip * 1e6
    );
    Ok(())
}
