//! Futures on threads against what `concurrent.futures` and Dask's `Client` do:
//! results, failures with their keys, `as_completed` order, `wait` at its
//! timeout, cancel of queued and running work, retries, priorities,
//! dependencies, async, and no thread left behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use brisk_scheduler::client::{
    Client, FutureError, Options, Return, as_completed, cancelled, wait,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A gate tasks wait on until the test opens it.
fn gate() -> (Arc<(Mutex<bool>, std::sync::Condvar)>, impl Fn()) {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let g = gate.clone();
    let open = move || {
        *g.0.lock().unwrap() = true;
        g.1.notify_all();
    };
    (gate, open)
}

fn wait_gate(gate: &(Mutex<bool>, std::sync::Condvar)) {
    let mut open = gate.0.lock().unwrap();
    while !*open {
        open = gate.1.wait(open).unwrap();
    }
}

#[test]
fn submit_map_and_gather_give_the_values_in_order() {
    let client = Client::threads(3);
    let one = client.submit(|| 40 + 2);
    assert_eq!(one.result(None), Ok(42));
    let squares = client.map(|x: u64| x * x, 0..100);
    let want: Vec<u64> = (0..100).map(|x| x * x).collect();
    assert_eq!(client.gather(&squares).unwrap(), want);
    assert!(squares.iter().all(|f| f.done() && !f.cancelled() && f.exception().is_none()));
}

#[test]
fn failures_carry_the_key_and_the_message() {
    let client = Client::threads(2);
    let options = Options { key: Some("load-3".into()), ..Options::default() };
    let failed = client.try_submit_opts(options, || Err::<u8, _>("no such file: part-3.csv"));
    let want =
        FutureError::Failed { key: "load-3".into(), message: "no such file: part-3.csv".into() };
    assert_eq!(failed.result(None), Err(want.clone()));
    assert_eq!(failed.exception(), Some(want));
    let panicked = client.submit(|| -> u8 { panic!("index out of range") });
    match panicked.result(None) {
        Err(FutureError::Failed { message, .. }) => assert_eq!(message, "index out of range"),
        other => panic!("{other:?}"),
    }
    // gather gives the first failure in order, not the first to happen.
    let slow_fail = client.try_submit(|| {
        std::thread::sleep(ms(50));
        Err::<u8, _>("first in order")
    });
    let fast_fail = client.try_submit(|| Err::<u8, _>("second in order"));
    let err = client.gather(&[slow_fail.clone(), fast_fail]).unwrap_err();
    assert!(err.to_string().contains("first in order"), "{err}");
    assert!(err.to_string().contains(slow_fail.key()), "{err}");
}

#[test]
fn as_completed_yields_in_the_order_tasks_finish() {
    let client = Client::threads(3);
    let futures: Vec<_> = [120u64, 20, 70]
        .into_iter()
        .map(|t| client.submit(move || std::thread::sleep(ms(t))))
        .collect();
    let order: Vec<usize> = as_completed(&futures, None).collect();
    assert_eq!(order, [1, 2, 0]);
    // Already settled: all at once.
    assert_eq!(as_completed(&futures, None).count(), 3);
}

#[test]
fn wait_returns_at_its_timeout_while_a_task_hangs() {
    let client = Client::threads(2);
    let (hang, open) = gate();
    let hung = {
        let hang = hang.clone();
        client.submit(move || wait_gate(&hang))
    };
    let quick = client.submit(|| ());
    let futures = [hung.clone(), quick];
    let started = Instant::now();
    let (done, not_done) = wait(&futures, Some(ms(100)), Return::AllCompleted);
    assert!(started.elapsed() >= ms(100) && started.elapsed() < ms(2000));
    assert_eq!((done, not_done), (vec![1], vec![0]));
    // FirstCompleted returns as soon as one is done.
    let (done, not_done) = wait(&futures, Some(ms(5000)), Return::FirstCompleted);
    assert_eq!((done, not_done), (vec![1], vec![0]));
    // result() gives up at its timeout; the task goes on.
    let timed_out = hung.result(Some(ms(30)));
    assert!(matches!(timed_out, Err(FutureError::Timeout { .. })), "{timed_out:?}");
    assert!(hung.running() && !hung.done());
    open();
    assert_eq!(hung.result(Some(ms(5000))), Ok(()));
}

#[test]
fn first_exception_returns_when_one_fails() {
    let client = Client::threads(3);
    let (hang, open) = gate();
    let hang2 = hang.clone();
    let futures = [
        client.try_submit(move || {
            wait_gate(&hang2);
            Ok::<u8, String>(1)
        }),
        client.try_submit(|| {
            std::thread::sleep(ms(20));
            Err::<u8, _>("boom")
        }),
    ];
    let (done, not_done) = wait(&futures, Some(ms(5000)), Return::FirstException);
    assert_eq!((done, not_done), (vec![1], vec![0]));
    open();
    assert_eq!(futures[0].result(None), Ok(1));
    // Settled before the call: all of them count as done.
    let (done, not_done) = wait(&futures, None, Return::FirstException);
    assert_eq!((done, not_done), (vec![0, 1], vec![]));
}

#[test]
fn cancel_of_queued_work_means_it_never_runs() {
    let client = Client::threads(1);
    let (hang, open) = gate();
    let ran = Arc::new(AtomicUsize::new(0));
    let blocker = client.submit(move || wait_gate(&hang));
    while !blocker.running() {
        std::thread::sleep(ms(1));
    }
    let queued: Vec<_> = (0..10)
        .map(|_| {
            let ran = ran.clone();
            client.submit(move || ran.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    assert!(queued.iter().all(|f| f.cancel()));
    assert!(queued.iter().all(|f| f.cancelled() && f.done()));
    assert!(!queued[0].cancel(), "a second cancel of a settled future");
    open();
    assert_eq!(blocker.result(None), Ok(()));
    // The pool is free again and ran none of them.
    assert_eq!(client.submit(|| 7).result(None), Ok(7));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(matches!(queued[3].result(None), Err(FutureError::Cancelled { .. })));
}

#[test]
fn cancel_of_running_work_settles_at_once_and_the_task_can_stop() {
    let client = Client::threads(1);
    let (saw, seen) = mpsc::channel();
    let running = client.submit(move || {
        while !cancelled() {
            std::thread::sleep(ms(1));
        }
        let _ = saw.send(());
        99
    });
    while !running.running() {
        std::thread::sleep(ms(1));
    }
    assert!(!cancelled(), "outside tasks nothing is cancelled");
    assert!(running.cancel());
    assert!(matches!(running.result(Some(ms(10))), Err(FutureError::Cancelled { .. })));
    seen.recv_timeout(ms(5000)).expect("the task saw its cancellation");
    // Its late result is dropped: still cancelled, and the pool moves on.
    assert!(running.cancelled());
    assert_eq!(client.submit(|| 1).result(Some(ms(5000))), Ok(1));
}

#[test]
fn retries_run_a_failing_task_again() {
    let client = Client::threads(2);
    let flaky = |fails: usize| {
        let tries = Arc::new(AtomicUsize::new(0));
        move || match tries.fetch_add(1, Ordering::SeqCst) < fails {
            true => Err("transient"),
            false => Ok(5),
        }
    };
    let ok = client.try_submit_opts(Options { retries: 2, ..Options::default() }, flaky(2));
    assert_eq!(ok.result(None), Ok(5));
    let out = client.try_submit_opts(Options { retries: 1, ..Options::default() }, flaky(2));
    assert!(matches!(out.result(None), Err(FutureError::Failed { .. })));
}

#[test]
fn higher_priority_runs_first() {
    let client = Client::threads(1);
    let (hang, open) = gate();
    let blocker = client.submit(move || wait_gate(&hang));
    while !blocker.running() {
        std::thread::sleep(ms(1));
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let futures: Vec<_> = [(0, "low"), (10, "high"), (5, "mid"), (10, "high2")]
        .into_iter()
        .map(|(priority, name)| {
            let order = order.clone();
            let options = Options { priority, ..Options::default() };
            client.try_submit_opts(options, move || {
                order.lock().unwrap().push(name);
                Ok::<(), String>(())
            })
        })
        .collect();
    open();
    client.gather(&futures).unwrap();
    assert_eq!(*order.lock().unwrap(), ["high", "high2", "mid", "low"]);
}

#[test]
fn futures_as_arguments_are_dependencies_not_waits() {
    let client = Client::threads(2);
    let (hang, open) = gate();
    let a = client.submit(move || {
        wait_gate(&hang);
        6
    });
    let b = client.submit(|| 7);
    // Submitting does not wait for a, still blocked.
    let started = Instant::now();
    let product = client
        .submit_with((a.clone(), b.clone()), Options::default(), |(x, y)| Ok::<_, String>(x * y));
    let total = client.submit_with(vec![a.clone(), b], Options::default(), |xs: Vec<i32>| {
        Ok::<_, String>(xs.iter().sum::<i32>())
    });
    assert!(started.elapsed() < ms(500) && !product.done());
    open();
    assert_eq!(product.result(Some(ms(5000))), Ok(42));
    assert_eq!(total.result(Some(ms(5000))), Ok(13));
    // A failed input fails its dependents, naming both.
    let bad = client
        .try_submit_opts(Options { key: Some("parse".into()), ..Options::default() }, || {
            Err::<i32, _>("bad digit")
        });
    let next =
        client.submit_with(bad, Options { key: Some("sum".into()), ..Options::default() }, |x| {
            Ok::<_, String>(x + 1)
        });
    let err = next.result(Some(ms(5000))).unwrap_err();
    assert_eq!(
        err,
        FutureError::Failed {
            key: "sum".into(),
            message: "its input parse failed: bad digit".into()
        }
    );
}

#[test]
fn done_callbacks_run_once_and_at_once_when_already_done() {
    let client = Client::threads(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let f = client.submit(|| std::thread::sleep(ms(20)));
    let c = calls.clone();
    f.add_done_callback(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    f.result(None).unwrap();
    // As in concurrent.futures, the settling thread calls the callbacks just
    // after it wakes the waiters: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(ms(1));
    }
    let c = calls.clone();
    f.add_done_callback(move || {
        c.fetch_add(10, Ordering::SeqCst);
    });
    assert!(!f.cancel());
    assert_eq!(calls.load(Ordering::SeqCst), 11);
}

#[test]
fn futures_are_awaited_on_any_runtime() {
    let client = Client::threads(2);
    // A plain executor, no runtime.
    let f = client.submit(|| 3);
    assert_eq!(futures::executor::block_on(f), Ok(3));
    let (a, b) = (client.submit(|| 1), client.submit(|| 2));
    let both = futures::executor::block_on(async { futures::join!(a, b) });
    assert_eq!(both, (Ok(1), Ok(2)));
    // tokio: a timeout while a task hangs, then the value.
    let (hang, open) = gate();
    let hung = client.submit(move || {
        wait_gate(&hang);
        "late"
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let timed_out = runtime.block_on(async { tokio::time::timeout(ms(50), hung.clone()).await });
    assert!(timed_out.is_err(), "{timed_out:?}");
    open();
    let value = runtime.block_on(async { tokio::time::timeout(ms(5000), hung).await }).unwrap();
    assert_eq!(value, Ok("late"));
}

/// This process's threads of futures pools.
fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|name| name.starts_with("brisk-futures"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn dropping_the_client_cancels_its_work_and_leaves_no_thread() {
    for round in 0..200 {
        let client = Client::threads(2);
        let ran_late = Arc::new(AtomicUsize::new(0));
        // Two running tasks that stop when asked.
        let running: Vec<_> = (0..2)
            .map(|_| {
                client.submit(|| {
                    while !cancelled() {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                })
            })
            .collect();
        if round % 2 == 0 {
            while !running.iter().all(|f| f.running()) {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let ran_late = ran_late.clone();
                client.submit(move || ran_late.fetch_add(1, Ordering::SeqCst))
            })
            .collect();
        drop(client);
        assert!(running.iter().all(|f| f.cancelled()), "round {round}");
        assert!(queued.iter().all(|f| f.cancelled()), "round {round}");
        assert_eq!(ran_late.load(Ordering::SeqCst), 0, "round {round}");
    }
    no_pool_threads_left();
}

#[test]
fn a_hung_task_does_not_hang_the_drop() {
    let client = Client::threads(1);
    let (hang, open) = gate();
    let hung = client.submit(move || wait_gate(&hang));
    while !hung.running() {
        std::thread::sleep(ms(1));
    }
    let started = Instant::now();
    drop(client);
    assert!(started.elapsed() < ms(2000), "the drop waited {:?}", started.elapsed());
    assert!(hung.cancelled());
    // Its thread ends once the task returns.
    open();
    no_pool_threads_left();
}

/// Fails unless every futures pool thread has ended (other tests' pools too,
/// which end as their tests do).
fn no_pool_threads_left() {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool_threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(ms(10));
    }
    assert_eq!(pool_threads(), 0, "threads of dropped clients left running");
}
