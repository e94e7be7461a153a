//! Graphviz output of a graph.

use std::fmt::Write as _;
use std::path::Path;

use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};

use crate::Graph;

impl Graph {
    /// The graph in Graphviz DOT: one box per task labelled with its key and op,
    /// edges from inputs to dependents, labelled with the argument position when a
    /// task has several inputs.
    ///
    /// ```
    /// use brisk_core::{Op, Value};
    /// use brisk_graph::{Graph, Task};
    /// let g = Graph::from_tasks([
    ///     Task::root("x", Op::Const(Value::from(1.0))),
    ///     Task::new("y", Op::local("neg", |v| Ok(v[0].clone())), ["x"]),
    /// ])?;
    /// let dot = g.to_dot();
    /// assert!(dot.starts_with("digraph brisk {"));
    /// assert!(dot.contains("-> "));
    /// # Ok::<(), brisk_graph::Error>(())
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = String::from(
            "digraph brisk {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for i in self.dag.node_indices() {
            let n = &self.dag[i];
            let label = format!("{}\\n{}", escape(&n.key.to_string()), escape(&n.op.name()));
            let _ = writeln!(out, "  n{} [label=\"{label}\"];", i.index());
        }
        let mut inputs = vec![0usize; self.dag.node_bound()];
        for e in self.dag.edge_references() {
            inputs[e.target().index()] += 1;
        }
        for e in self.dag.edge_references() {
            let many = inputs[e.target().index()] > 1;
            let label = if many { format!(" [label=\"{}\"]", e.weight()) } else { String::new() };
            let _ = writeln!(out, "  n{} -> n{}{label};", e.source().index(), e.target().index());
        }
        out.push_str("}\n");
        out
    }

    /// Writes [`Graph::to_dot`] to `path` (render it with `dot -Tsvg`).
    pub fn visualize(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_dot())
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
