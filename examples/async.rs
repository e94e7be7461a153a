//! Brisk from async code, step by step: computes and futures are
//! `std::future::Future`s, so tokio's `join!` gathers them and
//! `tokio::time::timeout` bounds them. Brisk starts no runtime of its own.
//!
//! ```sh
//! cargo run --release --example async
//! ```

use std::time::Duration;

use brisk::client::Client;
use brisk::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let scheduler = Scheduler::threads(2);
    let x = random(&[4_000, 4_000], &[1_000, 1_000], 42)?;

    println!("## Step 1: two computes at once, gathered with join!");
    let (mean, std) = (x.mean(Axes::all()), x.std(Axes::all(), 0));
    let (mean, std) = runtime.block_on(async {
        tokio::join!(scheduler.compute_async(&mean), scheduler.compute_async(&std))
    });
    println!("  mean {:.6}, std {:.6}", mean?, std?);

    println!("## Step 2: a timeout around a task that takes too long");
    let client = Client::threads(2);
    let slow = client.submit(|| {
        std::thread::sleep(Duration::from_millis(500));
        "finally"
    });
    let timed = runtime
        .block_on(async { tokio::time::timeout(Duration::from_millis(50), slow.clone()).await });
    println!(
        "  after 50 ms: {}",
        if timed.is_err() { "timed out (the task goes on)" } else { "done" }
    );
    println!("  awaited again: {:?}", runtime.block_on(slow)?);
    Ok(())
}
