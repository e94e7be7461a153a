//! The coordination primitives inside tasks of a futures client: a semaphore
//! bounds concurrency and takes back a lease its holder stopped renewing, a
//! lock excludes, a queue carries work from producers to consumers, an event
//! and a variable hand values over; every blocking call returns at its timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use brisk_scheduler::client::Client;
use brisk_scheduler::coordination::{Event, Lock, Queue, Semaphore, Variable};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_semaphore_bounds_how_many_tasks_use_a_resource() {
    let client = Client::threads(8);
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let futures: Vec<_> = (0..40)
        .map(|_| {
            let (now, most) = (now.clone(), most.clone());
            client.submit(move || {
                let semaphore = Semaphore::new("test-db", 3, Duration::from_secs(60));
                let _lease = semaphore.acquire(Some(Duration::from_secs(30))).expect("a lease");
                let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(inside, Ordering::SeqCst);
                std::thread::sleep(ms(3));
                now.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    client.gather(&futures).unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 3, "at most 3 at once, and 3 reached");
    assert_eq!(Semaphore::new("test-db", 3, Duration::from_secs(60)).held(), 0);
}

#[test]
fn a_lease_not_renewed_is_taken_back() {
    let semaphore = Semaphore::new("test-expiring", 1, ms(100));
    let lease = semaphore.acquire(None).unwrap();
    assert!(semaphore.acquire(Some(ms(20))).is_none(), "the one lease is held");
    assert!(lease.refresh());
    // Its holder hangs: the lease expires and someone else gets it.
    let started = Instant::now();
    let other = semaphore.acquire(Some(ms(2000))).expect("the expired lease");
    assert!(started.elapsed() >= ms(50), "{:?}", started.elapsed());
    assert!(!lease.refresh(), "an expired lease cannot be renewed");
    drop(other);
    std::mem::forget(lease);
}

#[test]
fn a_lock_excludes_and_times_out() {
    let client = Client::threads(4);
    let counter = Arc::new(std::sync::Mutex::new((0u64, false)));
    let futures: Vec<_> = (0..200)
        .map(|_| {
            let counter = counter.clone();
            client.submit(move || {
                let lock = Lock::new("test-counter");
                let _held = lock.acquire(None).unwrap();
                // Inside the lock nobody else is.
                {
                    let mut c = counter.lock().unwrap();
                    assert!(!c.1, "two holders at once");
                    c.1 = true;
                }
                std::thread::yield_now();
                let mut c = counter.lock().unwrap();
                c.0 += 1;
                c.1 = false;
            })
        })
        .collect();
    client.gather(&futures).unwrap();
    assert_eq!(counter.lock().unwrap().0, 200);
    let lock = Lock::new("test-held");
    let _held = lock.acquire(None).unwrap();
    let started = Instant::now();
    assert!(Lock::new("test-held").acquire(Some(ms(30))).is_none());
    assert!(started.elapsed() >= ms(30) && lock.locked());
}

#[test]
fn a_queue_carries_work_from_producers_to_consumers() {
    let client = Client::threads(4);
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            client.submit(move || {
                let queue: Queue<u64> = Queue::new("test-work", 4).unwrap();
                for i in 0..50 {
                    queue.put(p * 1000 + i, Some(Duration::from_secs(30))).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            client.submit(|| {
                let queue: Queue<u64> = Queue::new("test-work", 4).unwrap();
                let mut got = Vec::new();
                // Until the queue stays empty for a while.
                while let Some(item) = queue.get(Some(ms(300))) {
                    got.push(item);
                }
                got
            })
        })
        .collect();
    client.gather(&producers).unwrap();
    let mut all: Vec<u64> = client.gather(&consumers).unwrap().concat();
    all.sort_unstable();
    let want: Vec<u64> = (0..2).flat_map(|p| (0..50).map(move |i| p * 1000 + i)).collect();
    assert_eq!(all, want, "each item once");
    // Bounded: a full queue refuses at the timeout and gives the item back.
    let small: Queue<String> = Queue::new("test-small", 1).unwrap();
    small.put("a".into(), None).unwrap();
    assert_eq!(small.put("b".into(), Some(ms(20))), Err("b".to_string()));
    assert_eq!(small.qsize(), 1);
    // Another type under the same name is refused, not confused.
    assert!(Queue::<u32>::new("test-small", 1).is_err());
}

#[test]
fn events_and_variables_hand_over_between_tasks() {
    let client = Client::threads(2);
    let waiter = client.submit(|| Event::new("test-go").wait(Some(Duration::from_secs(30))));
    let reader = client.submit(|| {
        Variable::<String>::new("test-config").unwrap().get(Some(Duration::from_secs(30)))
    });
    std::thread::sleep(ms(20));
    assert!(!waiter.done() && !reader.done());
    Variable::new("test-config").unwrap().set("threads=4".to_string());
    Event::new("test-go").set();
    assert_eq!(waiter.result(Some(Duration::from_secs(30))), Ok(true));
    assert_eq!(reader.result(Some(Duration::from_secs(30))), Ok(Some("threads=4".to_string())));
    // Timeouts: not set, nothing to read.
    assert!(!Event::new("test-never").wait(Some(ms(20))));
    assert_eq!(Variable::<u8>::new("test-unset").unwrap().get(Some(ms(20))), None);
}
