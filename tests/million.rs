//! A million-task graph builds and runs (Dask chokes past about a million tasks), both
//! as a raw graph and through the delayed API, whose building must stay linear.

use brisk::core::{Key, Op, Scalar, Value};
use brisk::graph::{Graph, Task};
use brisk::prelude::*;

fn int(v: &Value) -> i64 {
    match v {
        Value::Scalar(Scalar::I64(x)) => *x,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_million_task_graph_runs() {
    // 999,000 leaves in 1,000 groups, each group summed, then the sums summed:
    // 1,000,001 tasks.
    let groups = 1_000u32;
    let per = 999u32;
    let sum = || Op::local("sum", |v: Vec<Value>| Ok(Value::from(v.iter().map(int).sum::<i64>())));
    let mut tasks = Vec::with_capacity(1_000_001);
    for g in 0..groups {
        for i in 0..per {
            tasks.push(Task::root(
                Key::new("leaf", [g, i]),
                Op::Const(Value::from(i64::from(g * per + i))),
            ));
        }
        tasks.push(Task::new(
            Key::new("part", [g]),
            sum(),
            (0..per).map(|i| Key::new("leaf", [g, i])),
        ));
    }
    tasks.push(Task::new("total", sum(), (0..groups).map(|g| Key::new("part", [g]))));
    let graph = Graph::from_tasks(tasks).unwrap();
    assert_eq!(graph.len(), 1_000_001);
    let n = i64::from(groups * per);
    let (out, stats) = Scheduler::threads(2).run_with_stats(graph, &[Key::named("total")]).unwrap();
    assert_eq!(int(&out[0]), n * (n - 1) / 2);
    assert_eq!(stats.tasks_run, 1_000_001);
    assert_eq!(stats.leaked_bytes, 0);
}

#[test]
fn a_million_delayed_calls_build_run_and_drop() {
    fn inc(x: i64) -> i64 {
        x + 1
    }
    // A chain a million long: deep enough to overflow any recursive walk or drop.
    let mut x = Delayed::value(0_i64);
    for _ in 0..1_000_000 {
        x = delayed!(inc(x));
    }
    assert_eq!(x.compute().unwrap(), 1_000_000);
    drop(x);
}
