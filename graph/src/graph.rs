//! The task graph: a petgraph DAG keyed by [`Key`].

use std::collections::{HashMap, HashSet};

use brisk_core::{Key, Op};
use petgraph::Direction::{Incoming, Outgoing};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};

use crate::{Error, Result};

/// One task as it is added to a graph: its key, its op and the keys of its inputs,
/// in the order the op takes them.
///
/// ```
/// use brisk_core::{Key, Op, Value};
/// use brisk_graph::Task;
/// let x = Task::root("x", Op::Const(Value::from(1.0)));
/// let y = Task::new("y", Op::local("id", |v| Ok(v[0].clone())), ["x"]);
/// assert_eq!(y.deps, [Key::named("x")]);
/// # let _ = x;
/// ```
#[derive(Clone, Debug)]
pub struct Task {
    /// The task's identity.
    pub key: Key,
    /// What it does.
    pub op: Op,
    /// Its inputs, in argument order; a key may appear more than once.
    pub deps: Vec<Key>,
}

impl Task {
    /// A task from anything that converts into keys.
    pub fn new(
        key: impl Into<Key>,
        op: Op,
        deps: impl IntoIterator<Item = impl Into<Key>>,
    ) -> Self {
        Self { key: key.into(), op, deps: deps.into_iter().map(Into::into).collect() }
    }

    /// A task with no inputs.
    pub fn root(key: impl Into<Key>, op: Op) -> Self {
        Self { key: key.into(), op, deps: Vec::new() }
    }
}

/// A node of the graph: a key and its op. The inputs are the incoming edges,
/// whose weights are argument positions.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) key: Key,
    pub(crate) op: Op,
}

/// A directed acyclic graph of tasks, edges pointing from a dependency to its
/// dependents.
///
/// Graphs are built from [`Task`]s in any order ([`Graph::from_tasks`]) or one task at
/// a time ([`Graph::add_task`]). Merging graphs shares tasks with equal keys, which is
/// how the outputs of several collections built from the same inputs compute their
/// common work once. Before running, [`Graph::plan`] checks for cycles, culls what the
/// outputs do not need, fuses linear chains and orders the tasks.
///
/// ```
/// use brisk_core::{Op, Value};
/// use brisk_graph::{Graph, Task};
/// let g = Graph::from_tasks([
///     Task::new("sum", Op::local("sum", |v| Ok(v[0].clone())), ["x"]),
///     Task::root("x", Op::Const(Value::from(1.0))),
/// ])?;
/// assert_eq!(g.len(), 2);
/// # Ok::<(), brisk_graph::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub(crate) dag: StableDiGraph<Node, u32>,
    /// foldhash (hashbrown's default) rather than SipHash: keys come from our own
    /// code, and hashing was the largest cost of building a 100,000-task graph.
    pub(crate) index: hashbrown::HashMap<Key, NodeIndex>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a graph from tasks given in any order. When two tasks share a key the
    /// first is kept: equal keys mean equal work. A dependency on a key that no task
    /// produces is an error naming both keys. Cycles are allowed here and reported by
    /// [`Graph::check_acyclic`] and [`Graph::plan`].
    pub fn from_tasks(tasks: impl IntoIterator<Item = Task>) -> Result<Self> {
        let mut g = Graph::new();
        g.extend(tasks)?;
        Ok(g)
    }

    /// Adds tasks given in any order (see [`Graph::from_tasks`]). On error the graph
    /// is left empty: build into a fresh graph when you need to recover.
    pub fn extend(&mut self, tasks: impl IntoIterator<Item = Task>) -> Result<()> {
        let mut builder = GraphBuilder { graph: std::mem::take(self), pending: Vec::new() };
        for task in tasks {
            builder.insert(task);
        }
        *self = builder.finish()?;
        Ok(())
    }

    /// Adds one task whose dependencies are already in the graph. A task whose key is
    /// already present is ignored (equal keys mean equal work).
    pub fn add_task(&mut self, task: Task) -> Result<()> {
        if let Some(dep) = task.deps.iter().find(|d| !self.index.contains_key(*d)) {
            return Err(Error::MissingDependency { key: task.key.clone(), dep: dep.clone() });
        }
        self.extend([task])
    }

    /// Adds the tasks of `other` that this graph does not have; tasks with equal keys
    /// are shared.
    pub fn merge(&mut self, other: &Graph) -> Result<()> {
        self.extend(other.tasks())
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    /// Whether the graph has no tasks.
    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// Whether a task with this key is in the graph.
    pub fn contains(&self, key: &Key) -> bool {
        self.index.contains_key(key)
    }

    /// The op of the task with this key.
    pub fn op(&self, key: &Key) -> Option<&Op> {
        self.index.get(key).map(|&i| &self.dag[i].op)
    }

    /// The inputs of the task with this key, in argument order.
    pub fn dependencies(&self, key: &Key) -> Option<Vec<Key>> {
        let &i = self.index.get(key)?;
        Some(self.deps_of(i).into_iter().map(|d| self.dag[d].key.clone()).collect())
    }

    /// The tasks, each with its inputs in argument order.
    pub fn tasks(&self) -> impl Iterator<Item = Task> + '_ {
        self.tasks_of(self.dag.node_indices())
    }

    fn tasks_of<'a>(
        &'a self,
        nodes: impl Iterator<Item = NodeIndex> + 'a,
    ) -> impl Iterator<Item = Task> + 'a {
        nodes.map(|i| Task {
            key: self.dag[i].key.clone(),
            op: self.dag[i].op.clone(),
            deps: self.deps_of(i).into_iter().map(|d| self.dag[d].key.clone()).collect(),
        })
    }

    /// The inputs of a node in argument order.
    pub(crate) fn deps_of(&self, i: NodeIndex) -> Vec<NodeIndex> {
        let mut edges: Vec<(u32, NodeIndex)> =
            self.dag.edges_directed(i, Incoming).map(|e| (*e.weight(), e.source())).collect();
        edges.sort_unstable_by_key(|&(pos, _)| pos);
        edges.into_iter().map(|(_, d)| d).collect()
    }

    pub(crate) fn node_of(&self, key: &Key) -> Result<NodeIndex> {
        self.index.get(key).copied().ok_or_else(|| Error::UnknownOutput { key: key.clone() })
    }

    /// Fails with [`Error::Cycle`], naming the keys on one cycle, if there is one.
    ///
    /// ```
    /// use brisk_core::Op;
    /// use brisk_graph::{Error, Graph, Task};
    /// let id = || Op::local("id", |v| Ok(v[0].clone()));
    /// let g = Graph::from_tasks([Task::new("a", id(), ["b"]), Task::new("b", id(), ["a"])])?;
    /// let err = g.check_acyclic().unwrap_err();
    /// assert!(matches!(&err, Error::Cycle { keys } if keys.len() == 2));
    /// # Ok::<(), brisk_graph::Error>(())
    /// ```
    pub fn check_acyclic(&self) -> Result<()> {
        if petgraph::algo::toposort(&self.dag, None).is_ok() {
            return Ok(());
        }
        for scc in petgraph::algo::tarjan_scc(&self.dag) {
            let on_cycle = scc.len() > 1 || self.dag.find_edge(scc[0], scc[0]).is_some();
            if on_cycle {
                return Err(Error::Cycle { keys: self.walk_cycle(&scc) });
            }
        }
        Err(Error::Cycle { keys: Vec::new() })
    }

    /// Walks a strongly connected component until a node repeats; the repeated part
    /// is one cycle.
    fn walk_cycle(&self, scc: &[NodeIndex]) -> Vec<Key> {
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc.iter().min_by_key(|i| &self.dag[**i].key).expect("non-empty component");
        let mut path = vec![start];
        let mut at: HashMap<NodeIndex, usize> = HashMap::from([(start, 0)]);
        let mut cur = start;
        loop {
            let next = self
                .dag
                .neighbors_directed(cur, Outgoing)
                .filter(|n| members.contains(n))
                .min_by_key(|n| &self.dag[*n].key)
                .expect("every node of a cycle has a successor on it");
            if let Some(&pos) = at.get(&next) {
                return path[pos..].iter().map(|&i| self.dag[i].key.clone()).collect();
            }
            at.insert(next, path.len());
            path.push(next);
            cur = next;
        }
    }

    /// Removes every task that none of `outputs` needs.
    pub fn cull(&mut self, outputs: &[Key]) -> Result<()> {
        let mut keep = vec![false; self.dag.node_bound()];
        let mut stack = outputs.iter().map(|k| self.node_of(k)).collect::<Result<Vec<_>>>()?;
        for &i in &stack {
            keep[i.index()] = true;
        }
        while let Some(i) = stack.pop() {
            for d in self.dag.neighbors_directed(i, Incoming) {
                if !keep[d.index()] {
                    keep[d.index()] = true;
                    stack.push(d);
                }
            }
        }
        if self.dag.node_indices().all(|i| keep[i.index()]) {
            return Ok(());
        }
        // Rebuild rather than remove nodes one by one: petgraph's removal walks edge
        // lists, quadratic when a kept task feeds many culled ones.
        let kept: Vec<Task> =
            self.tasks_of(self.dag.node_indices().filter(|i| keep[i.index()])).collect();
        *self = Graph::from_tasks(kept)?;
        Ok(())
    }
}

/// Collects tasks in any order and connects them when done; what
/// [`Collection`](crate::Collection)s add their tasks to.
///
/// ```
/// use brisk_core::{Op, Value};
/// use brisk_graph::{GraphBuilder, Task};
/// let mut b = GraphBuilder::new();
/// assert!(b.insert(Task::new("y", Op::local("id", |v| Ok(v[0].clone())), ["x"])));
/// assert!(b.insert(Task::root("x", Op::Const(Value::from(1.0)))));
/// assert!(!b.insert(Task::root("x", Op::Const(Value::from(2.0)))));
/// assert_eq!(b.finish()?.len(), 2);
/// # Ok::<(), brisk_graph::Error>(())
/// ```
#[derive(Default)]
pub struct GraphBuilder {
    graph: Graph,
    pending: Vec<(NodeIndex, Vec<Key>)>,
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a task with this key was inserted; collections use it to stop walking
    /// into sub-graphs that are already there.
    pub fn contains(&self, key: &Key) -> bool {
        self.graph.index.contains_key(key)
    }

    /// Inserts a task unless one with its key is there (equal keys mean equal work);
    /// returns whether it was inserted.
    pub fn insert(&mut self, task: Task) -> bool {
        if self.contains(&task.key) {
            return false;
        }
        let idx = self.graph.dag.add_node(Node { key: task.key.clone(), op: task.op });
        self.graph.index.insert(task.key, idx);
        self.pending.push((idx, task.deps));
        true
    }

    /// Connects every task to its inputs; a missing input is an error naming both keys.
    pub fn finish(self) -> Result<Graph> {
        let GraphBuilder { mut graph, pending } = self;
        for (idx, deps) in pending {
            for (pos, dep) in deps.iter().enumerate() {
                let Some(&d) = graph.index.get(dep) else {
                    return Err(Error::MissingDependency {
                        key: graph.dag[idx].key.clone(),
                        dep: dep.clone(),
                    });
                };
                graph.dag.add_edge(d, idx, pos as u32);
            }
        }
        Ok(graph)
    }
}
