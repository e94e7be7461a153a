//! Coordination between tasks, step by step: a semaphore keeping at most two
//! tasks on a fragile resource at once, and a producer/consumer queue across
//! tasks of a futures client, with a timeout on every wait.
//!
//! ```sh
//! cargo run --release --example coordination
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use brisk::client::Client;
use brisk::scheduler::coordination::{Event, Queue, Semaphore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::threads(6);

    println!("## Step 1: 12 tasks, a resource that takes at most 2 callers at once");
    let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let (inside, most) = (inside.clone(), most.clone());
            client.submit(move || {
                let api = Semaphore::new("rate-limited-api", 2, Duration::from_secs(10));
                let _lease = api.acquire(Some(Duration::from_secs(10))).expect("a lease in time");
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20)); // the call
                inside.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    let done = client.gather(&calls)?;
    println!(
        "  {} calls in {:?}, at most {} at once",
        done.len(),
        started.elapsed(),
        most.load(Ordering::SeqCst)
    );

    println!("## Step 2: two producers and two consumers share a bounded queue");
    let producers: Vec<_> = (0..2u32)
        .map(|p| {
            client.submit(move || {
                let queue: Queue<String> = Queue::new("lines", 8).expect("a queue of strings");
                for i in 0..20 {
                    let line = format!("producer {p} line {i}");
                    queue.put(line, Some(Duration::from_secs(5))).expect("room in time");
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            client.submit(|| {
                let queue: Queue<String> = Queue::new("lines", 8).expect("a queue of strings");
                let finished = Event::new("producers-done");
                let mut n = 0;
                // Until the producers are done and the queue is empty.
                loop {
                    match queue.get(Some(Duration::from_millis(20))) {
                        Some(_line) => n += 1,
                        None if finished.is_set() => return n,
                        None => {}
                    }
                }
            })
        })
        .collect();
    client.gather(&producers)?;
    Event::new("producers-done").set();
    let counts = client.gather(&consumers)?;
    println!("  consumed {counts:?} lines: {} in all", counts.iter().sum::<usize>());
    Ok(())
}
