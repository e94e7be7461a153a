//! Computes as futures: `Scheduler::compute_async` and `Client::compute` give
//! the blocking compute's bits, on a plain executor and under tokio.

use std::time::Duration;

use brisk::client::{Client, FutureError};
use brisk::graph::Collection;
use brisk::prelude::*;

fn fail_on(x: i64) -> i64 {
    assert_ne!(x, 3, "three is not allowed");
    x
}

#[test]
fn compute_async_gives_the_blocking_computes_bits() {
    let scheduler = Scheduler::threads(2);
    let x = random(&[600, 400], &[150, 100], 11).unwrap();
    let mean = x.mean(Axes::all());
    let want: f64 = scheduler.compute(&mean).unwrap();
    let got: f64 = futures::executor::block_on(scheduler.compute_async(&mean)).unwrap();
    assert_eq!(got.to_bits(), want.to_bits());
    // Two at once under tokio, and a timeout that does not fire.
    let sums = x.sum(Axes::from([0])).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let (a, b) = runtime.block_on(async {
        let (a, b) = (scheduler.compute_async(&mean), scheduler.compute_async(&sums));
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(a, b) }).await.unwrap()
    });
    assert_eq!(a.unwrap().to_bits(), want.to_bits());
    assert_eq!(b.unwrap(), scheduler.compute(&sums).unwrap());
}

/// Runs of `counted`, a delayed call that counts itself.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn counted(x: i64) -> i64 {
    RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    x * 10
}

fn plus(x: i64, y: i64) -> i64 {
    x + y
}

#[test]
fn a_persisted_collection_is_computed_once() {
    let runs = || RUNS.load(std::sync::atomic::Ordering::SeqCst);
    let client = Client::new(&Scheduler::threads(2));
    let base = delayed!(counted(4));
    let persisted = client.persist(&base).unwrap();
    assert_eq!(runs(), 1);
    // Built on it: its task is not run again, by any later compute.
    let later = delayed!(plus((*persisted).clone(), 2));
    assert_eq!(client.compute(&later).result(None).unwrap(), 42);
    assert_eq!(client.compute(&delayed!(plus(base.clone(), 3))).result(None).unwrap(), 43);
    assert_eq!(runs(), 1, "the persisted value was used");
    // Let go: computed again.
    drop(persisted);
    assert_eq!(client.compute(&later).result(None).unwrap(), 42);
    assert_eq!(runs(), 2);
}

#[test]
fn a_client_computes_collections_as_futures() {
    let scheduler = Scheduler::threads(2);
    let client = Client::new(&scheduler);
    let x = random(&[300, 300], &[100, 100], 5).unwrap().mean(Axes::all());
    let future = client.compute(&x);
    let want: f64 = scheduler.compute(&x).unwrap();
    assert_eq!(future.result(Some(Duration::from_secs(60))).unwrap().to_bits(), want.to_bits());
    // Keyed by the collection's one output.
    assert!(future.key().contains(x.output_keys()[0].name()), "{}", future.key());
    // A failing task's error comes back through the future, with its key.
    let bad = delayed!(fail_on(3));
    let err = scheduler.compute_async(&bad).result(Some(Duration::from_secs(60))).unwrap_err();
    match err {
        FutureError::Failed { message, .. } => {
            assert!(
                message.contains("three is not allowed") && message.contains("fail_on"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}
