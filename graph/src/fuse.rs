//! Fusion of linear chains: `random → add → sum-chunk` becomes one task per chunk,
//! so no intermediate chunk is ever stored.

use std::collections::HashSet;

use brisk_core::{Key, Op};
use petgraph::Direction::{Incoming, Outgoing};
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;

use crate::Graph;

impl Graph {
    /// Fuses every linear chain into one task and returns how many tasks were absorbed.
    ///
    /// A task `a` is absorbed into `b` when `b`'s only input is `a`, `a`'s only
    /// dependent is `b`, and `a` is not one of `outputs`. The fused task keeps `b`'s key
    /// (its dependents refer to it), takes `a`'s inputs and runs
    /// [`Op::chain`] of `a` then `b`, each step keeping its key for error messages.
    ///
    /// ```
    /// use brisk_core::{Key, Op, Value};
    /// use brisk_graph::{Graph, Task};
    /// let inc = || Op::local("inc", |v| Ok(v[0].clone()));
    /// let mut g = Graph::from_tasks([
    ///     Task::root("x", Op::Const(Value::from(1.0))),
    ///     Task::new("y", inc(), ["x"]),
    ///     Task::new("z", inc(), ["y"]),
    /// ])?;
    /// assert_eq!(g.fuse(&[Key::named("z")]), 2);
    /// assert_eq!(g.len(), 1);
    /// assert_eq!(g.op(&Key::named("z")).unwrap().name(), "const scalar f64+inc+inc");
    /// # Ok::<(), brisk_graph::Error>(())
    /// ```
    pub fn fuse(&mut self, outputs: &[Key]) -> usize {
        let outputs: HashSet<NodeIndex> =
            outputs.iter().filter_map(|k| self.index.get(k).copied()).collect();
        // Walk each chain up from its last task and fuse it in one step: absorbing
        // one task at a time would copy the growing chain each time (quadratic).
        let tails: Vec<NodeIndex> =
            self.dag.node_indices().filter(|&t| !self.is_absorbed(t, &outputs)).collect();
        let mut absorbed = 0;
        for tail in tails {
            let mut chain = Vec::new();
            let mut top = tail;
            while let Some(a) = self.sole_feeder(top, &outputs) {
                chain.push(a);
                top = a;
            }
            if chain.is_empty() {
                continue;
            }
            let inputs: Vec<(NodeIndex, u32)> =
                self.dag.edges_directed(top, Incoming).map(|e| (e.source(), *e.weight())).collect();
            let mut steps = Vec::with_capacity(chain.len() + 1);
            for &a in chain.iter().rev() {
                let node = self.dag.remove_node(a).expect("chain task is in the graph");
                self.index.remove(&node.key);
                steps.push((node.key, node.op));
            }
            for (src, pos) in inputs {
                self.dag.add_edge(src, tail, pos);
            }
            let tail_op = std::mem::replace(&mut self.dag[tail].op, Op::Chain(Vec::new().into()));
            steps.push((self.dag[tail].key.clone(), tail_op));
            self.dag[tail].op = Op::chain(steps);
            absorbed += chain.len();
        }
        absorbed
    }

    /// Whether `a` will be absorbed into its only dependent.
    fn is_absorbed(&self, a: NodeIndex, outputs: &HashSet<NodeIndex>) -> bool {
        let mut fed = self.dag.edges_directed(a, Outgoing);
        match (fed.next(), fed.next()) {
            (Some(e), None) => self.sole_feeder(e.target(), outputs) == Some(a),
            _ => false,
        }
    }

    /// `b`'s input `a` if `b` has no other input and `a` feeds nothing else.
    fn sole_feeder(&self, b: NodeIndex, outputs: &HashSet<NodeIndex>) -> Option<NodeIndex> {
        let mut inputs = self.dag.edges_directed(b, Incoming);
        let a = inputs.next()?.source();
        if inputs.next().is_some() || a == b || outputs.contains(&a) {
            return None;
        }
        let mut fed = self.dag.edges_directed(a, Outgoing);
        fed.next();
        fed.next().is_none().then_some(a)
    }
}
