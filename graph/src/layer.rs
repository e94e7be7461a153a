//! Layers: the tasks one collection operation adds, with the layers they read.

use std::sync::Arc;

use brisk_core::Key;

use crate::{GraphBuilder, Task};

/// The tasks one collection operation built (a read, a filter, a reduction tree),
/// and the layers its tasks read from. Collections hold their newest layer; adding
/// it to a graph walks the layers below once each, so shared inputs are added once.
#[derive(Debug)]
pub struct Layer {
    name: String,
    tasks: Vec<Task>,
    inputs: Vec<Arc<Layer>>,
}

impl Layer {
    /// A layer of `tasks` reading from `inputs`.
    pub fn new(name: impl Into<String>, tasks: Vec<Task>, inputs: Vec<Arc<Layer>>) -> Arc<Layer> {
        Arc::new(Layer { name: name.into(), tasks, inputs })
    }

    /// The layer's name (its keys' common name, by convention).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its tasks, in the order they were built.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The keys of its tasks, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.tasks.iter().map(|t| &t.key)
    }

    /// The layers it reads.
    pub fn inputs(&self) -> &[Arc<Layer>] {
        &self.inputs
    }

    /// Adds this layer's tasks and those of every layer below it, skipping layers the
    /// graph already holds.
    pub fn add_to(self: &Arc<Self>, graph: &mut GraphBuilder) {
        let mut stack = vec![self];
        while let Some(layer) = stack.pop() {
            if layer.tasks.first().is_some_and(|t| graph.contains(&t.key)) {
                continue;
            }
            for t in &layer.tasks {
                graph.insert(t.clone());
            }
            stack.extend(layer.inputs.iter());
        }
    }
}
