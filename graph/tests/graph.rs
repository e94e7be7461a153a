//! Building, checking, culling, fusing, ordering and drawing graphs.

use brisk_core::{Key, Op, Value};
use brisk_graph::{Error, Graph, PlanOptions, Task};

fn id() -> Op {
    Op::local("id", |v: Vec<Value>| Ok(v.into_iter().next().unwrap_or(Value::from(0.0))))
}

fn k(name: &str) -> Key {
    Key::named(name)
}

#[test]
fn a_missing_dependency_names_both_keys() {
    let err = Graph::from_tasks([Task::new("y", id(), ["x"])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task 'y' depends on 'x', which is not in the graph: add a task for 'x' first"
    );
    let mut g = Graph::new();
    assert!(matches!(
        g.add_task(Task::new("y", id(), ["x"])),
        Err(Error::MissingDependency { .. })
    ));
}

#[test]
fn a_self_loop_is_a_cycle_of_one() {
    let g = Graph::from_tasks([Task::new("a", id(), ["a"])]).unwrap();
    match g.check_acyclic() {
        Err(Error::Cycle { keys }) => assert_eq!(keys, [k("a")]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_cycle_reported_is_a_real_cycle_not_the_whole_component() {
    // Two cycles sharing 'a': a -> b -> a and a -> c -> d -> a.
    let g = Graph::from_tasks([
        Task::new("a", id(), ["b", "d"]),
        Task::new("b", id(), ["a"]),
        Task::new("c", id(), ["a"]),
        Task::new("d", id(), ["c"]),
    ])
    .unwrap();
    let Err(Error::Cycle { keys }) = g.check_acyclic() else { panic!("no cycle found") };
    // Each key must feed the next, and the last the first.
    for (i, key) in keys.iter().enumerate() {
        let next = &keys[(i + 1) % keys.len()];
        assert!(
            g.dependencies(next).unwrap().contains(key),
            "{key} does not feed {next}: {keys:?}"
        );
    }
}

#[test]
fn a_cycle_outside_what_the_outputs_need_is_culled_away() {
    let g = Graph::from_tasks([
        Task::root("x", Op::Const(Value::from(1.0))),
        Task::new("y", id(), ["x"]),
        Task::new("p", id(), ["q"]),
        Task::new("q", id(), ["p"]),
    ])
    .unwrap();
    assert!(g.check_acyclic().is_err());
    let plan = g.plan(&[k("y")], PlanOptions { fuse: false }).unwrap();
    assert_eq!(plan.len(), 2);
}

#[test]
fn an_unknown_output_is_an_error() {
    let g = Graph::from_tasks([Task::root("x", Op::Const(Value::from(1.0)))]).unwrap();
    assert_eq!(
        g.plan(&[k("nope")], PlanOptions::default()).unwrap_err().to_string(),
        "no task produces the requested output 'nope'"
    );
}

#[test]
fn merging_shares_equal_keys_and_keeps_argument_order() {
    let mut g = Graph::from_tasks([
        Task::root("x", Op::Const(Value::from(1.0))),
        Task::root("y", Op::Const(Value::from(2.0))),
        Task::new("f", id(), ["y", "x", "y"]),
    ])
    .unwrap();
    let other = Graph::from_tasks([
        Task::root("x", Op::Const(Value::from(1.0))),
        Task::new("g", id(), ["x"]),
    ])
    .unwrap();
    g.merge(&other).unwrap();
    assert_eq!(g.len(), 4);
    assert_eq!(g.dependencies(&k("f")).unwrap(), [k("y"), k("x"), k("y")]);
}

#[test]
fn fusion_joins_linear_chains_only() {
    // x -> a -> b -> c, and c also feeds d and e: a and b fuse into c; d, e stay.
    let mut g = Graph::from_tasks([
        Task::root("x", Op::Const(Value::from(1.0))),
        Task::new("a", id(), ["x"]),
        Task::new("b", id(), ["a"]),
        Task::new("c", id(), ["b"]),
        Task::new("d", id(), ["c"]),
        Task::new("e", id(), ["c"]),
        Task::new("out", id(), ["d", "e"]),
    ])
    .unwrap();
    let absorbed = g.fuse(&[k("out")]);
    assert_eq!(absorbed, 3, "x, a and b fuse into c");
    assert!(g.contains(&k("c")) && g.contains(&k("d")) && g.contains(&k("e")));
    assert!(!g.contains(&k("a")) && !g.contains(&k("b")));
    assert_eq!(g.op(&k("c")).unwrap().name(), "const scalar f64+id+id+id");
}

#[test]
fn fusion_never_absorbs_a_requested_output() {
    let mut g = Graph::from_tasks([
        Task::root("x", Op::Const(Value::from(1.0))),
        Task::new("a", id(), ["x"]),
        Task::new("b", id(), ["a"]),
    ])
    .unwrap();
    g.fuse(&[k("a"), k("b")]);
    assert!(g.contains(&k("a")) && g.contains(&k("b")));
}

/// A binary tree reduction over `leaves` leaves.
fn tree(leaves: usize) -> (Graph, Key) {
    let mut tasks: Vec<Task> =
        (0..leaves).map(|i| Task::root(Key::new("leaf", [i as u32]), id())).collect();
    let mut level: Vec<Key> = tasks.iter().map(|t| t.key.clone()).collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        level = level
            .chunks(2)
            .enumerate()
            .map(|(i, pair)| {
                let key = Key::new(format!("add-{depth}"), [i as u32]);
                tasks.push(Task::new(key.clone(), id(), pair.to_vec()));
                key
            })
            .collect();
    }
    (Graph::from_tasks(tasks).unwrap(), level.remove(0))
}

#[test]
fn the_plan_order_is_topological_and_finishes_branches_before_new_roots() {
    let (g, out) = tree(1024);
    let plan = g.plan(&[out], PlanOptions { fuse: false }).unwrap();
    assert_eq!(plan.len(), 2047);
    let mut live = 0usize;
    let mut peak = 0;
    let mut uses: Vec<usize> = (0..plan.len()).map(|i| plan.dependents(i).len()).collect();
    for i in 0..plan.len() {
        for &d in plan.deps(i) {
            assert!((d as usize) < i, "task {i} runs before its input {d}");
            uses[d as usize] -= 1;
            if uses[d as usize] == 0 {
                live -= 1;
            }
        }
        live += 1;
        peak = peak.max(live);
    }
    // Depth-first: at most one pending result per level. Breadth-first would hold 512.
    assert!(peak <= 11, "running in plan order holds {peak} results at once");
}

#[test]
fn a_million_long_chain_plans_without_overflowing_the_stack() {
    let n = 1_000_000u32;
    let tasks = (0..n).map(|i| {
        let deps = if i == 0 { vec![] } else { vec![Key::new("c", [i - 1])] };
        Task::new(Key::new("c", [i]), id(), deps)
    });
    let g = Graph::from_tasks(tasks).unwrap();
    let plan = g.clone().plan(&[Key::new("c", [n - 1])], PlanOptions { fuse: false }).unwrap();
    assert_eq!(plan.len(), n as usize);
    let fused = g.plan(&[Key::new("c", [n - 1])], PlanOptions::default()).unwrap();
    assert_eq!((fused.len(), fused.fused()), (1, n as usize - 1));
}

#[test]
fn dot_output_has_every_task_and_edge() {
    let (g, _) = tree(8);
    let dot = g.to_dot();
    assert_eq!(dot.matches("[label=\"").count() - dot.matches("-> ").count(), 15);
    assert_eq!(dot.matches(" -> ").count(), 14);
    assert!(dot.contains("('leaf', 7)"));
    assert!(dot.trim_end().ends_with('}'));
}
