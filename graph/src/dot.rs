//! Pictures of a graph: Graphviz DOT, and SVG drawn here (layout-rs, no
//! Graphviz needed), of every task or, for graphs of any size, of its layers:
//! one node per operation with its task count.

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

    /// The graph by layer in Graphviz DOT: one node per operation (the tasks
    /// sharing a key name: every chunk of one array op, every partition of one
    /// frame op), labelled with its op, its task count and, where the ops know
    /// it ahead, the bytes they hold; an edge per pair of layers one feeds the
    /// other, labelled with how many task edges it stands for. Readable for a
    /// graph of any size (a 100,000-task graph is a handful of nodes).
    ///
    /// ```
    /// use brisk_core::{Key, Op, Value};
    /// use brisk_graph::{Graph, Task};
    /// let tasks = (0..100u32).map(|i| Task::root(Key::new("x", [i]), Op::Const(Value::from(1.0))));
    /// let g = Graph::from_tasks(tasks)?;
    /// let dot = g.to_layers_dot();
    /// assert!(dot.contains("100 tasks"));
    /// # Ok::<(), brisk_graph::Error>(())
    /// ```
    pub fn to_layers_dot(&self) -> String {
        let mut layers: Vec<(String, String, usize, u64)> = Vec::new();
        let mut layer_of = vec![usize::MAX; self.dag.node_bound()];
        let mut by_name: std::collections::HashMap<&str, usize> = Default::default();
        for i in self.dag.node_indices() {
            let n = &self.dag[i];
            let l = *by_name.entry(n.key.name()).or_insert_with(|| {
                layers.push((n.key.name().to_string(), n.op.name(), 0, 0));
                layers.len() - 1
            });
            layers[l].2 += 1;
            layers[l].3 += n.op.projected_bytes().unwrap_or(0);
            layer_of[i.index()] = l;
        }
        let mut edges: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
        for e in self.dag.edge_references() {
            let (a, b) = (layer_of[e.source().index()], layer_of[e.target().index()]);
            *edges.entry((a, b)).or_default() += 1;
        }
        let mut out = String::from(
            "digraph brisk {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for (l, (name, op, tasks, bytes)) in layers.iter().enumerate() {
            let plural = if *tasks == 1 { "" } else { "s" };
            let held = match bytes {
                0 => String::new(),
                b => format!("\\n{:.1} MiB", *b as f64 / (1u64 << 20) as f64),
            };
            let _ = writeln!(
                out,
                "  l{l} [label=\"{}\\n{}\\n{tasks} task{plural}{held}\"];",
                escape(name),
                escape(op)
            );
        }
        for ((a, b), n) in edges {
            let _ = writeln!(out, "  l{a} -> l{b} [label=\"{n}\"];");
        }
        out.push_str("}\n");
        out
    }

    /// The picture of [`to_layers_dot`](Self::to_layers_dot) as SVG, laid
    /// out and drawn here (no Graphviz needed).
    pub fn to_svg(&self) -> Result<String, String> {
        dot_to_svg(&self.to_layers_dot())
    }

    /// The picture of every task ([`to_dot`](Self::to_dot)) as SVG: for small
    /// graphs (it is refused past [`MAX_DRAWN_TASKS`] tasks: draw the layers).
    pub fn to_tasks_svg(&self) -> Result<String, String> {
        if self.len() > MAX_DRAWN_TASKS {
            return Err(format!(
                "{} tasks are too many to draw one by one (at most {MAX_DRAWN_TASKS}): draw the graph by layer",
                self.len()
            ));
        }
        dot_to_svg(&self.to_dot())
    }

    /// Writes a picture of the graph by layer to `path`, in the form its
    /// extension names: `.svg` (drawn here), `.dot` (Graphviz DOT), `.png`
    /// (through Graphviz's `dot`, when it is installed).
    pub fn visualize(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        write_picture(path.as_ref(), &self.to_layers_dot())
    }

    /// [`visualize`](Self::visualize) with every task drawn (small graphs).
    pub fn visualize_tasks(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        if self.len() > MAX_DRAWN_TASKS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} tasks are too many to draw one by one (at most {MAX_DRAWN_TASKS}): draw the graph by layer",
                    self.len()
                ),
            ));
        }
        write_picture(path.as_ref(), &self.to_dot())
    }
}

/// The most tasks [`Graph::to_tasks_svg`] and [`Graph::visualize_tasks`] draw.
pub const MAX_DRAWN_TASKS: usize = 2_000;

/// Lays out and draws `dot` as SVG with layout-rs.
fn dot_to_svg(dot: &str) -> Result<String, String> {
    let mut parser = layout::gv::DotParser::new(dot);
    let graph = parser.process().map_err(|e| format!("cannot read the graph's DOT: {e}"))?;
    let mut builder = layout::gv::GraphBuilder::new();
    builder.visit_graph(&graph);
    let mut visual = builder.get();
    let mut svg = layout::backends::svg::SVGWriter::new();
    visual.do_it(false, false, false, &mut svg);
    Ok(svg.finalize())
}

/// Writes the picture of `dot` to `path` as its extension asks.
fn write_picture(path: &Path, dot: &str) -> std::io::Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "dot" | "gv" => dot.as_bytes().to_vec(),
        "svg" => dot_to_svg(dot).map_err(std::io::Error::other)?.into_bytes(),
        "png" => {
            let mut child = std::process::Command::new("dot")
                .arg("-Tpng")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| {
                    std::io::Error::other(format!(
                        "a PNG needs Graphviz's dot ({e}): install graphviz, or write .svg (drawn without it)"
                    ))
                })?;
            if let Some(mut stdin) = child.stdin.take() {
                std::io::Write::write_all(&mut stdin, dot.as_bytes())?;
            }
            let out = child.wait_with_output()?;
            if !out.status.success() {
                return Err(std::io::Error::other("Graphviz's dot failed to draw the graph"));
            }
            out.stdout
        }
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("cannot draw a graph as .{other}: name a .svg, .png or .dot file"),
            ));
        }
    };
    std::fs::write(path, bytes)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
