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
        let mut absorbed = 0;
        let nodes: Vec<NodeIndex> = self.dag.node_indices().collect();
        for b in nodes {
            if !self.dag.contains_node(b) {
                continue;
            }
            while let Some(a) = self.sole_feeder(b, &outputs) {
                let inputs: Vec<(NodeIndex, u32)> = self
                    .dag
                    .edges_directed(a, Incoming)
                    .map(|e| (e.source(), *e.weight()))
                    .collect();
                let a_node = self.dag.remove_node(a).expect("a is in the graph");
                self.index.remove(&a_node.key);
                for (src, pos) in inputs {
                    self.dag.add_edge(src, b, pos);
                }
                let b_op = std::mem::replace(&mut self.dag[b].op, Op::Chain(Vec::new().into()));
                self.dag[b].op =
                    Op::chain([(a_node.key, a_node.op), (self.dag[b].key.clone(), b_op)]);
                absorbed += 1;
            }
        }
        absorbed
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
