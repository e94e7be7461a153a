//! The plan a scheduler runs: a culled, checked, fused and ordered graph laid out in
//! flat arrays.

use brisk_core::{Key, Op};
use petgraph::Direction::{Incoming, Outgoing};
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::visit::NodeIndexable;

use crate::{Error, Graph, Result};

/// How [`Graph::plan`] optimizes.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// Fuse linear chains into one task (default: yes).
    pub fuse: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { fuse: true }
    }
}

/// A graph ready to run.
///
/// Task `i` of a plan has priority `i`: lower runs first. The order is a depth-first
/// post-order from the outputs, taking each task's inputs in argument order, so
/// every task comes after its inputs (index order is a valid sequential schedule)
/// and a branch is finished — letting its inputs be freed — before the next root
/// is started, in the spirit of `dask.order`.
///
/// Inputs and dependents are stored as compressed rows (`u32` indices) so a plan of a
/// million tasks is a handful of allocations.
#[derive(Debug)]
pub struct Plan {
    keys: Vec<Key>,
    ops: Vec<Op>,
    dep_start: Vec<u32>,
    deps: Vec<u32>,
    dependent_start: Vec<u32>,
    dependents: Vec<u32>,
    outputs: Vec<u32>,
    is_output: Vec<bool>,
    fused: usize,
    /// Tasks in the graph before culling and fusion.
    built: usize,
}

impl Graph {
    /// Plans the computation of `outputs`: culls what they do not need, fails on a
    /// cycle (naming its keys), fuses linear chains and orders the tasks.
    ///
    /// ```
    /// use brisk_core::{Key, Op, Value};
    /// use brisk_graph::{Graph, PlanOptions, Task};
    /// let g = Graph::from_tasks([
    ///     Task::root("x", Op::Const(Value::from(1.0))),
    ///     Task::root("unused", Op::Const(Value::from(2.0))),
    ///     Task::new("y", Op::local("id", |v| Ok(v[0].clone())), ["x"]),
    /// ])?;
    /// let plan = g.plan(&[Key::named("y")], PlanOptions::default())?;
    /// assert_eq!(plan.len(), 1); // "unused" culled, "x" fused into "y"
    /// # Ok::<(), brisk_graph::Error>(())
    /// ```
    pub fn plan(mut self, outputs: &[Key], options: PlanOptions) -> Result<Plan> {
        let built = self.len();
        self.cull(outputs)?;
        self.check_acyclic()?;
        let fused = if options.fuse { self.fuse(outputs) } else { 0 };
        if self.len() > u32::MAX as usize {
            return Err(Error::TooLarge { tasks: self.len() });
        }
        let order = self.post_order(outputs)?;
        Ok(self.lay_out(&order, outputs, fused, built))
    }

    /// Depth-first post-order from the outputs, iterative so a million-long chain does
    /// not overflow the stack. A task is placed as soon as its last input is, not
    /// when the walk reaches it: a partial feeding one combine per output part is
    /// then consumed by all of them at once, instead of being held until the walk
    /// gets to the last part.
    fn post_order(&self, outputs: &[Key]) -> Result<Vec<NodeIndex>> {
        let bound = self.dag.node_bound();
        let mut seen = vec![false; bound];
        let mut placed = vec![false; bound];
        // Inputs not yet placed, per task (an input given twice counts twice).
        let mut waiting = vec![0u32; bound];
        for n in self.dag.node_indices() {
            waiting[n.index()] = self.dag.edges_directed(n, Incoming).count() as u32;
        }
        let mut order = Vec::with_capacity(self.len());
        let mut ready = Vec::new();
        let mut place = |node: NodeIndex, order: &mut Vec<NodeIndex>, seen: &mut [bool]| {
            ready.push(node);
            while let Some(n) = ready.pop() {
                if std::mem::replace(&mut placed[n.index()], true) {
                    continue;
                }
                seen[n.index()] = true;
                order.push(n);
                for e in self.dag.edges_directed(n, Outgoing) {
                    let d = e.target().index();
                    waiting[d] -= 1;
                    if waiting[d] == 0 {
                        ready.push(e.target());
                    }
                }
            }
        };
        let mut stack: Vec<(NodeIndex, Vec<NodeIndex>, usize)> = Vec::new();
        for key in outputs {
            let root = self.node_of(key)?;
            if std::mem::replace(&mut seen[root.index()], true) {
                continue;
            }
            stack.push((root, self.deps_of(root), 0));
            while let Some((node, deps, next)) = stack.last_mut() {
                if let Some(&d) = deps.get(*next) {
                    *next += 1;
                    if !std::mem::replace(&mut seen[d.index()], true) {
                        stack.push((d, self.deps_of(d), 0));
                    }
                } else {
                    let node = *node;
                    stack.pop();
                    place(node, &mut order, &mut seen);
                }
            }
        }
        Ok(order)
    }

    fn lay_out(self, order: &[NodeIndex], outputs: &[Key], fused: usize, built: usize) -> Plan {
        let mut dense = vec![u32::MAX; self.dag.node_bound()];
        for (i, n) in order.iter().enumerate() {
            dense[n.index()] = i as u32;
        }
        let n = order.len();
        let mut dep_start = Vec::with_capacity(n + 1);
        let mut deps = Vec::with_capacity(self.dag.edge_count());
        let mut dependent_count = vec![0u32; n + 1];
        dep_start.push(0);
        for &node in order {
            for d in self.deps_of(node) {
                let d = dense[d.index()];
                deps.push(d);
                dependent_count[d as usize + 1] += 1;
            }
            dep_start.push(deps.len() as u32);
        }
        // Prefix sums turn counts into row starts; then fill rows in task order so
        // each task's dependents are listed by ascending priority.
        for i in 0..n {
            dependent_count[i + 1] += dependent_count[i];
        }
        let dependent_start = dependent_count;
        let mut fill = dependent_start.clone();
        let mut dependents = vec![0u32; deps.len()];
        for task in 0..n {
            for &d in &deps[dep_start[task] as usize..dep_start[task + 1] as usize] {
                dependents[fill[d as usize] as usize] = task as u32;
                fill[d as usize] += 1;
            }
        }
        let outputs: Vec<u32> = outputs.iter().map(|k| dense[self.index[k].index()]).collect();
        let mut is_output = vec![false; n];
        for &o in &outputs {
            is_output[o as usize] = true;
        }
        let mut dag = self.dag;
        // Without edges, removing a node is O(1); with them, petgraph walks edge lists
        // and a task with a million inputs would take quadratic time.
        dag.clear_edges();
        let mut keys = Vec::with_capacity(n);
        let mut ops = Vec::with_capacity(n);
        for &node in order {
            let node = dag.remove_node(node).expect("ordered node exists");
            keys.push(node.key);
            ops.push(node.op);
        }
        Plan {
            keys,
            ops,
            dep_start,
            deps,
            dependent_start,
            dependents,
            outputs,
            is_output,
            fused,
            built,
        }
    }
}

impl Plan {
    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of task `i`.
    pub fn key(&self, i: usize) -> &Key {
        &self.keys[i]
    }

    /// The op of task `i`.
    pub fn op(&self, i: usize) -> &Op {
        &self.ops[i]
    }

    /// The inputs of task `i`, in argument order (a task may appear twice).
    pub fn deps(&self, i: usize) -> &[u32] {
        &self.deps[self.dep_start[i] as usize..self.dep_start[i + 1] as usize]
    }

    /// The tasks that take task `i`'s result, once per use.
    pub fn dependents(&self, i: usize) -> &[u32] {
        &self.dependents[self.dependent_start[i] as usize..self.dependent_start[i + 1] as usize]
    }

    /// The requested outputs, in the order they were asked for.
    pub fn outputs(&self) -> &[u32] {
        &self.outputs
    }

    /// Whether task `i` is a requested output (its result is kept to the end).
    pub fn is_output(&self, i: usize) -> bool {
        self.is_output[i]
    }

    /// How many tasks fusion absorbed.
    pub fn fused(&self) -> usize {
        self.fused
    }

    /// What the plan will run, for people: tasks before and after culling and
    /// fusion, the outputs, and the tasks per operation (by op name, sorted).
    ///
    /// ```
    /// use brisk_core::{Key, Op, Value};
    /// use brisk_graph::{Graph, PlanOptions, Task};
    /// let id = Op::local("id", |v| Ok(v[0].clone()));
    /// let g = Graph::from_tasks([
    ///     Task::root("x", Op::Const(Value::from(1.0))),
    ///     Task::root("unused", Op::Const(Value::from(2.0))),
    ///     Task::new("y", id.clone(), ["x"]),
    ///     Task::new("z", id, ["x", "y"]),
    /// ])?;
    /// let text = g.plan(&[Key::named("z")], PlanOptions::default())?.explain();
    /// assert!(text.starts_with("task graph: 4 tasks, 3 to run (1 culled, 0 fused); 1 output\n"));
    /// # Ok::<(), brisk_graph::Error>(())
    /// ```
    pub fn explain(&self) -> String {
        let mut per_op: std::collections::BTreeMap<String, usize> = Default::default();
        for op in &self.ops {
            *per_op.entry(op.name()).or_default() += 1;
        }
        let outputs = self.outputs.len();
        let mut text = format!(
            "task graph: {} tasks, {} to run ({} culled, {} fused); {outputs} output{}\n",
            self.built,
            self.len(),
            self.built - self.len() - self.fused,
            self.fused,
            if outputs == 1 { "" } else { "s" },
        );
        for (op, n) in per_op {
            text.push_str(&format!("  {n:>7}  {op}\n"));
        }
        text
    }

    /// The first task holding a closure, if any: such a plan can run only in this
    /// process (a scheduler sending tasks to other processes must refuse it).
    pub fn first_local_task(&self) -> Option<&Key> {
        self.ops.iter().position(Op::is_local).map(|i| &self.keys[i])
    }
}
