//! The schedulers against each other and against an eager reference.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use brisk_core::{Error as CoreError, Key, Op, Scalar, Value};
use brisk_graph::{Graph, Task, delayed};
use brisk_scheduler::{Callback, Compute, ComputeStats, Error, Scheduler};
use common::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sync_and_threads_agree_bit_for_bit_with_the_reference(dag in dag_strategy(), threads in 1usize..5, fuse in any::<bool>()) {
        let want: Vec<u64> = reference(&dag).into_iter().map(f64::to_bits).collect();
        let outs = output_keys(&dag);
        let (sync, sync_stats) = Scheduler::sync().fuse(fuse).run_with_stats(graph(&dag), &outs).unwrap();
        let (par, par_stats) = Scheduler::threads(threads).fuse(fuse).run_with_stats(graph(&dag), &outs).unwrap();
        prop_assert_eq!(floats(&sync), want.clone());
        prop_assert_eq!(floats(&par), want);
        prop_assert_eq!(sync_stats.leaked_bytes, 0);
        prop_assert_eq!(par_stats.leaked_bytes, 0);
        prop_assert_eq!(par_stats.tasks_run, par_stats.tasks);
    }
}

fn scalar_i64(v: &Value) -> i64 {
    match v {
        Value::Scalar(Scalar::I64(x)) => *x,
        other => panic!("{other:?}"),
    }
}

/// A wide graph: `n` independent leaves, one of which (`bad`) fails, summed by one task.
fn wide_graph(n: usize, bad: usize, panic: bool, ran: Arc<AtomicUsize>) -> Graph {
    let mut tasks: Vec<Task> = (0..n)
        .map(|i| {
            let ran = Arc::clone(&ran);
            Task::root(
                Key::new("leaf", [i as u32]),
                Op::local("leaf", move |_| {
                    ran.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that the leaves could not all run in the time a
                    // loaded machine might take to deliver the stop.
                    std::thread::sleep(std::time::Duration::from_micros(20));
                    if i == bad {
                        if panic {
                            panic!("leaf {i} exploded");
                        }
                        return Err(CoreError::user(format!("leaf {i} got bad input")));
                    }
                    Ok(Value::from(i as i64))
                }),
            )
        })
        .collect();
    tasks.push(Task::new(
        "total",
        Op::local("sum", |v: Vec<Value>| Ok(Value::from(v.iter().map(scalar_i64).sum::<i64>()))),
        (0..n).map(|i| Key::new("leaf", [i as u32])),
    ));
    Graph::from_tasks(tasks).unwrap()
}

#[test]
fn a_failing_task_stops_the_compute_and_names_its_key() {
    for scheduler in [Scheduler::sync(), Scheduler::threads(2)] {
        let ran = Arc::new(AtomicUsize::new(0));
        let err = scheduler
            .run(wide_graph(10_000, 3, false, Arc::clone(&ran)), &[Key::named("total")])
            .unwrap_err();
        assert_eq!(err.task_key(), Some(&Key::new("leaf", [3])), "{err}");
        assert_eq!(err.to_string(), "task ('leaf', 3) failed: leaf 3 got bad input");
        // Priorities run leaf 3 among the first; most of the other 9,996 never start
        // (a bound loose enough for a preempted worker on a busy machine).
        assert!(
            ran.load(Ordering::SeqCst) < 2_000,
            "{} tasks ran after the failure",
            ran.load(Ordering::SeqCst)
        );
    }
}

#[test]
fn a_panicking_task_becomes_an_error_with_its_key_and_message() {
    for scheduler in [Scheduler::sync(), Scheduler::threads(2)] {
        let ran = Arc::new(AtomicUsize::new(0));
        let err = scheduler
            .run(wide_graph(10_000, 5, true, Arc::clone(&ran)), &[Key::named("total")])
            .unwrap_err();
        assert!(matches!(&err, Error::Task(CoreError::Panic { .. })), "{err:?}");
        assert_eq!(err.to_string(), "task ('leaf', 5) panicked: leaf 5 exploded");
        // No count of tasks run here: the panic hook (printing a backtrace) runs
        // before the panic reaches the scheduler, and the other worker goes on
        // meanwhile. The error test above checks that later tasks never start.
        assert!(ran.load(Ordering::SeqCst) <= 10_000);
    }
}

#[test]
fn delayed_errors_name_the_call_and_keep_the_users_message() {
    fn parse(s: String) -> Result<i64, std::num::ParseIntError> {
        s.parse()
    }
    fn double(x: i64) -> i64 {
        2 * x
    }
    let bad = delayed!(try parse("12x".to_string()));
    let out = delayed!(double(bad.clone()));
    let err = out.compute().unwrap_err();
    assert_eq!(err.task_key(), Some(bad.key()));
    assert!(err.to_string().ends_with("failed: invalid digit found in string"), "{err}");
}

#[test]
fn shared_sub_graphs_run_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = Arc::clone(&calls);
        move |x: i64| {
            calls.fetch_add(1, Ordering::SeqCst);
            x * x
        }
    };
    let shared = brisk_graph::delayed::call1("expensive", counted, 7);
    let a = shared.map(|x| x + 1);
    let b = shared.map(|x| x + 2);
    let both = brisk_graph::delayed::call2("add", |x: i64, y: i64| x + y, &a, &b);
    for scheduler in [Scheduler::sync(), Scheduler::threads(2)] {
        calls.store(0, Ordering::SeqCst);
        let (a, b, both) = scheduler.compute(&(&a, &b, &both)).unwrap();
        assert_eq!((a, b, both), (50, 51, 101));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the shared call ran more than once");
    }
}

#[test]
fn merged_graphs_share_equal_keys() {
    let x = || Task::root("x", Op::Const(Value::from(3_i64)));
    let plus = |name: &str, k: i64| {
        Task::new(
            name,
            Op::local(name, move |v: Vec<Value>| Ok(Value::from(scalar_i64(&v[0]) + k))),
            ["x"],
        )
    };
    let mut g = Graph::from_tasks([x(), plus("a", 1)]).unwrap();
    g.merge(&Graph::from_tasks([x(), plus("b", 2)]).unwrap()).unwrap();
    assert_eq!(g.len(), 3, "x should be shared");
    let out = Scheduler::threads(2).run(g, &[Key::named("a"), Key::named("b")]).unwrap();
    assert_eq!(out.iter().map(scalar_i64).collect::<Vec<_>>(), [4, 5]);
}

/// Records every callback, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Callback for Recorder {
    fn start(&self, tasks: usize) {
        self.0.lock().unwrap().push(format!("start {tasks}"));
    }
    fn task_started(&self, key: &Key, _: usize) {
        self.0.lock().unwrap().push(format!("begin {key}"));
    }
    fn task_finished(&self, key: &Key, _: usize) {
        self.0.lock().unwrap().push(format!("end {key}"));
    }
    fn finish(&self, stats: &ComputeStats, error: Option<&Error>) {
        self.0.lock().unwrap().push(format!("finish {} ok={}", stats.tasks_run, error.is_none()));
    }
}

#[test]
fn callbacks_see_start_every_task_and_finish() {
    let rec = Arc::new(Recorder::default());
    let dag = Dag { deps: vec![vec![], vec![0], vec![0, 1], vec![2]], outputs: vec![3] };
    let s = Scheduler::threads(2).fuse(false).callback_arc(rec.clone());
    s.run(graph(&dag), &output_keys(&dag)).unwrap();
    let log = rec.0.lock().unwrap().clone();
    assert_eq!(log.first().map(String::as_str), Some("start 4"));
    assert_eq!(log.last().map(String::as_str), Some("finish 4 ok=true"));
    for i in 0..4 {
        let begin = log.iter().position(|l| *l == format!("begin ('t', {i})")).unwrap();
        let end = log.iter().position(|l| *l == format!("end ('t', {i})")).unwrap();
        assert!(begin < end);
    }
    // Dependencies finish before their dependents begin.
    let pos = |l: &str| log.iter().position(|x| x == l).unwrap();
    assert!(pos("end ('t', 1)") < pos("begin ('t', 2)"));
    assert!(pos("end ('t', 2)") < pos("begin ('t', 3)"));
}

#[test]
fn results_are_released_when_their_last_dependent_runs() {
    // A chain of 200 tasks, each making a 1 MB array from the previous one: if
    // results were kept, 200 MB would be held; released, at most a few at once.
    let n = 200;
    let big = |i: usize| {
        Op::local("big", move |_: Vec<Value>| {
            Ok(Value::from(brisk_core::ArrayChunk::F64(ndarray::ArrayD::from_elem(
                vec![125_000],
                i as f64,
            ))))
        })
    };
    let tasks = (0..n).map(|i| {
        let deps: Vec<Key> = if i == 0 { vec![] } else { vec![Key::new("c", [i as u32 - 1])] };
        Task::new(Key::new("c", [i as u32]), big(i), deps)
    });
    let g = Graph::from_tasks(tasks).unwrap();
    for scheduler in [Scheduler::sync().fuse(false), Scheduler::threads(2).fuse(false)] {
        let (_, stats) =
            scheduler.run_with_stats(g.clone(), &[Key::new("c", [n as u32 - 1])]).unwrap();
        assert_eq!(stats.tasks_run, n);
        assert!(stats.peak_bytes <= 2_000_000, "peak {} bytes", stats.peak_bytes);
        assert_eq!(stats.leaked_bytes, 0);
    }
}

#[test]
fn a_cycle_is_an_error_naming_its_keys() {
    let id = || Op::local("id", |v: Vec<Value>| Ok(v[0].clone()));
    let g = Graph::from_tasks([
        Task::root("x", Op::Const(Value::from(1_i64))),
        Task::new("a", id(), ["x", "c"]),
        Task::new("b", id(), ["a"]),
        Task::new("c", id(), ["b"]),
        Task::new("out", id(), ["c"]),
    ])
    .unwrap();
    let err = Scheduler::threads(2).run(g, &[Key::named("out")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the graph has a cycle: 'a' -> 'b' -> 'c' -> 'a'; a task cannot depend on its own result"
    );
}

#[test]
fn a_compute_inside_a_task_runs_instead_of_deadlocking() {
    fn inner(x: i64) -> i64 {
        let y = Delayed::value(x).map(|v| v + 1);
        brisk_scheduler::default_scheduler().compute(&y).unwrap()
    }
    use brisk_graph::delayed::Delayed;
    let outer: Vec<Delayed<i64>> = (0..8).map(|i| brisk_graph::delayed!(inner(i))).collect();
    let sum = brisk_graph::delayed::call1("sum", |v: Vec<i64>| v.iter().sum::<i64>(), outer);
    assert_eq!(sum.compute().unwrap(), (1..=8).sum::<i64>());
}

/// Regression: a result with several dependents running at once was released by its
/// last user while another was still about to read it ("used ... after it was
/// released"), seen on a 1,000 x 100 lattice with 2 threads.
#[test]
fn a_result_shared_by_concurrent_dependents_is_not_released_early() {
    let (width, depth) = (300u32, 40u32);
    let mut tasks = Vec::new();
    for j in 0..width {
        tasks.push(Task::root(Key::new("l", [0, j]), Op::Const(Value::from(i64::from(j)))));
    }
    let mix = || {
        Op::local("mix", |v: Vec<Value>| {
            Ok(Value::from(v.iter().map(scalar_i64).max().unwrap() + 1))
        })
    };
    for layer in 1..depth {
        for j in 0..width {
            let deps = [j.saturating_sub(1), j, (j + 1).min(width - 1)];
            tasks.push(Task::new(
                Key::new("l", [layer, j]),
                mix(),
                deps.map(|d| Key::new("l", [layer - 1, d])),
            ));
        }
    }
    let g = Graph::from_tasks(tasks).unwrap();
    let outputs: Vec<Key> = (0..width).map(|j| Key::new("l", [depth - 1, j])).collect();
    let want: Vec<i64> = (0..width)
        .map(|j| i64::from((j + depth - 1).min(width - 1)) + i64::from(depth) - 1)
        .collect();
    for threads in [2, 4] {
        let scheduler = Scheduler::threads(threads);
        for _ in 0..10 {
            let out = scheduler.run(g.clone(), &outputs).unwrap();
            assert_eq!(out.iter().map(scalar_i64).collect::<Vec<_>>(), want);
        }
    }
}

/// 64 roots of 1 MB each, reduced pairwise by slow combines (a binary tree).
fn slow_tree() -> (Graph, Key) {
    let leaf = |i: usize| {
        Op::local("leaf", move |_: Vec<Value>| {
            Ok(Value::from(brisk_core::ArrayChunk::F64(ndarray::ArrayD::from_elem(
                vec![125_000],
                i as f64,
            ))))
        })
    };
    let add = || {
        Op::local("add", |v: Vec<Value>| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            match (&v[0], &v[1]) {
                (Value::Array(a), Value::Array(b)) => match (a.as_ref(), b.as_ref()) {
                    (brisk_core::ArrayChunk::F64(a), brisk_core::ArrayChunk::F64(b)) => {
                        Ok(Value::from(brisk_core::ArrayChunk::F64(a + b)))
                    }
                    _ => Err(CoreError::Internal("expected f64 arrays".into())),
                },
                _ => Err(CoreError::Internal("expected arrays".into())),
            }
        })
    };
    let mut tasks: Vec<Task> =
        (0..64).map(|i| Task::root(Key::new("leaf", [i as u32]), leaf(i))).collect();
    let mut level: Vec<Key> = tasks.iter().map(|t| t.key.clone()).collect();
    let mut depth = 0u32;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .enumerate()
            .map(|(j, pair)| {
                let key = Key::new(format!("add{depth}"), [j as u32]);
                tasks.push(Task::new(key.clone(), add(), pair.to_vec()));
                key
            })
            .collect();
        depth += 1;
    }
    (Graph::from_tasks(tasks).unwrap(), level.remove(0))
}

#[test]
fn roots_wait_for_room_in_the_memory_budget_and_every_compute_completes() {
    let (g, out) = slow_tree();
    let want = (0..64).sum::<usize>() as f64;
    let check = |values: Vec<Value>| match &values[0] {
        Value::Array(a) => match a.as_ref() {
            brisk_core::ArrayChunk::F64(a) => assert!(a.iter().all(|&x| x == want)),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    // A budget of four roots: roots are held back while reducers catch up.
    let budget = 4_000_000;
    for threads in [2, 4] {
        let (values, stats) = Scheduler::threads(threads)
            .memory_limit(budget)
            .run_with_stats(g.clone(), std::slice::from_ref(&out))
            .unwrap();
        check(values);
        assert_eq!(stats.memory_budget, budget);
        assert!(stats.roots_deferred > 0, "no root waited");
        // The budget, plus the outputs of the tasks running when it filled (checks
        // race by at most one root per worker).
        let bound = budget + (2 * threads as u64 + 1) * 1_000_000;
        assert!(stats.peak_bytes <= bound, "peak {} > {bound}", stats.peak_bytes);
        assert_eq!(stats.leaked_bytes, 0);
    }
    // A budget smaller than one root's output still completes, one root at a time.
    let (values, stats) = Scheduler::threads(3)
        .memory_limit(1)
        .run_with_stats(g.clone(), std::slice::from_ref(&out))
        .unwrap();
    check(values);
    assert_eq!(stats.tasks_run, stats.tasks);
    // A fan-in that needs every root at once cannot fit either: it completes anyway.
    let leaves: Vec<Task> = (0..16)
        .map(|i| {
            Task::root(
                Key::new("x", [i]),
                Op::local("x", move |_: Vec<Value>| {
                    Ok(Value::from(brisk_core::ArrayChunk::F64(ndarray::ArrayD::from_elem(
                        vec![10_000],
                        1.0,
                    ))))
                }),
            )
        })
        .collect();
    let keys: Vec<Key> = leaves.iter().map(|t| t.key.clone()).collect();
    let count =
        Task::new("n", Op::local("n", |v: Vec<Value>| Ok(Value::from(v.len() as i64))), keys);
    let g = Graph::from_tasks(leaves.into_iter().chain([count])).unwrap();
    let out = Scheduler::threads(2).memory_limit(100_000).run(g, &[Key::named("n")]).unwrap();
    assert_eq!(scalar_i64(&out[0]), 16);
}

/// A chunk of `len` copies of its input: a source that reads from a small root (as
/// a CSV block waits for its file's quote parity) and says its size up front.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Fill {
    len: usize,
}

impl brisk_core::OpKind for Fill {
    const NAME: &'static str = "test.fill";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let x = match inputs.first().and_then(Value::as_scalar) {
            Some(Scalar::F64(x)) => x,
            _ => return Err(CoreError::Internal("expected an f64 scalar".into())),
        };
        Ok(Value::from(brisk_core::ArrayChunk::F64(ndarray::ArrayD::from_elem(vec![self.len], x))))
    }

    fn projected_bytes(&self) -> Option<u64> {
        Some(self.len as u64 * 8)
    }
}

#[test]
fn sources_behind_a_small_root_also_wait_for_room() {
    // slow_tree's shape, but every 1 MB leaf is a Fill of one small root's value.
    let (g, out) = slow_tree();
    let mut tasks: Vec<Task> = g
        .tasks()
        .map(|t| {
            if t.key.name() == "leaf" {
                Task::new(t.key.clone(), Op::data(Fill { len: 125_000 }), [Key::named("one")])
            } else {
                t
            }
        })
        .collect();
    tasks.push(Task::root("one", Op::Const(Value::from(1.0))));
    let g = Graph::from_tasks(tasks).unwrap();
    let budget = 4_000_000;
    let (values, stats) = Scheduler::threads(2)
        .memory_limit(budget)
        .run_with_stats(g, std::slice::from_ref(&out))
        .unwrap();
    match &values[0] {
        Value::Array(a) => match a.as_ref() {
            brisk_core::ArrayChunk::F64(a) => assert!(a.iter().all(|&x| x == 64.0)),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(stats.roots_deferred > 0, "no source waited");
    let bound = budget + 5 * 1_000_000;
    assert!(stats.peak_bytes <= bound, "peak {} > {bound}", stats.peak_bytes);
    assert_eq!(stats.leaked_bytes, 0);
}

/// A directory of its own for one test's spills; what is left in it.
fn spill_base(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn left_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect()
}

/// 16 roots of 80 KB each, all needed by one last task: they cannot all be held
/// in a 100 KB budget.
fn fan_in(last: Op) -> Graph {
    let leaves: Vec<Task> = (0..16)
        .map(|i| {
            Task::root(
                Key::new("x", [i]),
                Op::local("x", move |_: Vec<Value>| {
                    Ok(Value::from(brisk_core::ArrayChunk::F64(ndarray::ArrayD::from_elem(
                        vec![10_000],
                        f64::from(i),
                    ))))
                }),
            )
        })
        .collect();
    let keys: Vec<Key> = leaves.iter().map(|t| t.key.clone()).collect();
    Graph::from_tasks(leaves.into_iter().chain([Task::new("sum", last, keys)])).unwrap()
}

#[test]
fn results_over_the_budget_are_spilled_read_back_and_cleaned_up() {
    let total = Op::local("total", |v: Vec<Value>| {
        let mut s = 0.0;
        for x in &v {
            match x {
                Value::Array(a) => match a.as_ref() {
                    brisk_core::ArrayChunk::F64(a) => s += a.sum(),
                    _ => return Err(CoreError::Internal("f64".into())),
                },
                _ => return Err(CoreError::Internal("array".into())),
            }
        }
        Ok(Value::from(s))
    });
    let want = (0..16).map(|i| f64::from(i) * 10_000.0).sum::<f64>();
    let base = spill_base("spill-fan-in");
    for scheduler in [Scheduler::sync(), Scheduler::threads(2), Scheduler::threads(4)] {
        let (out, stats) = scheduler
            .memory_limit(100_000)
            .spill_dir(&base)
            .run_with_stats(fan_in(total.clone()), &[Key::named("sum")])
            .unwrap();
        assert_eq!(out[0].as_scalar(), Some(Scalar::F64(want)));
        assert!(stats.spilled_bytes > 0, "nothing spilled");
        assert_eq!(
            stats.spill_read_bytes, stats.spilled_bytes,
            "every spilled result read back once"
        );
        assert_eq!(stats.leaked_bytes, 0);
        assert!(left_in(&base).is_empty(), "spill files left: {:?}", left_in(&base));
    }
    // A failing (or panicking) compute removes its spill files too.
    let boom = Op::local("boom", |_: Vec<Value>| -> Result<Value, CoreError> { panic!("boom") });
    let err = Scheduler::threads(2)
        .memory_limit(100_000)
        .spill_dir(&base)
        .run(fan_in(boom), &[Key::named("sum")])
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(left_in(&base).is_empty(), "spill files left: {:?}", left_in(&base));
    // Nowhere to spill: a clear error naming the place, not a hang.
    let nowhere = base.join("a-file");
    std::fs::write(&nowhere, "not a directory").unwrap();
    let err = Scheduler::threads(2)
        .memory_limit(100_000)
        .spill_dir(&nowhere)
        .run(fan_in(total.clone()), &[Key::named("sum")])
        .unwrap_err();
    assert!(err.to_string().contains("cannot create a spill file in"), "{err}");
}
