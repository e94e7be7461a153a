//! The process's thread count stays at the pool's size across many computes that
//! succeed and fail. Alone in its file: it runs in its own process, so no other
//! test's threads are counted.

use brisk_core::{Error as CoreError, Key, Op, Value};
use brisk_graph::{Graph, Task};
use brisk_scheduler::Scheduler;

fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

fn graph(fail: Option<usize>, panic: bool) -> Graph {
    let mut tasks: Vec<Task> = (0..200)
        .map(|i| {
            Task::root(
                Key::new("leaf", [i as u32]),
                Op::local("leaf", move |_| {
                    if Some(i) == fail {
                        if panic {
                            panic!("leaf {i} panicked on purpose");
                        }
                        return Err(CoreError::user("failed on purpose"));
                    }
                    Ok(Value::from(i as i64))
                }),
            )
        })
        .collect();
    tasks.push(Task::new(
        "sum",
        Op::local("sum", |v: Vec<Value>| Ok(Value::from(v.len() as i64))),
        (0..200).map(|i| Key::new("leaf", [i as u32])),
    ));
    Graph::from_tasks(tasks).unwrap()
}

#[test]
fn thread_count_is_steady_across_hundreds_of_computes() {
    if threads_now() == 0 {
        eprintln!("no /proc/self/task here; skipping");
        return;
    }
    // Panics are expected below; keep their messages out of the test output.
    std::panic::set_hook(Box::new(|_| {}));
    let scheduler = Scheduler::threads(3);
    scheduler.run(graph(None, false), &[Key::named("sum")]).unwrap();
    let baseline = threads_now();
    for round in 0..300 {
        let fail = (round % 3 != 0).then_some(round % 200);
        let result = scheduler.run(graph(fail, round % 2 == 0), &[Key::named("sum")]);
        assert_eq!(result.is_ok(), fail.is_none(), "round {round}");
        assert_eq!(threads_now(), baseline, "thread count changed in round {round}");
    }
    // The pool's 3 workers plus this test's own thread and the harness's main thread.
    assert!(baseline <= 3 + 2, "{baseline} threads for a pool of 3");
}
