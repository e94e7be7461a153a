//! The error type of `brisk-graph`.

use brisk_core::Key;

/// Errors found while building or planning a graph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The graph has a cycle.
    #[error("the graph has a cycle: {}; a task cannot depend on its own result", cycle_text(.keys))]
    Cycle {
        /// The keys on the cycle, in the order data flows: each feeds the next, the last feeds the first.
        keys: Vec<Key>,
    },
    /// A task names a dependency that is not in the graph.
    #[error("task {key} depends on {dep}, which is not in the graph: add a task for {dep} first")]
    MissingDependency {
        /// The task with the dangling dependency.
        key: Key,
        /// The key it depends on.
        dep: Key,
    },
    /// An output was asked for that the graph does not hold.
    #[error("no task produces the requested output {key}")]
    UnknownOutput {
        /// The requested key.
        key: Key,
    },
    /// The graph holds more tasks than one plan can index.
    #[error("the graph holds {tasks} tasks; at most {max} fit in one plan", max = u32::MAX)]
    TooLarge {
        /// How many tasks it holds.
        tasks: usize,
    },
    /// An error from `brisk-core`.
    #[error(transparent)]
    Core(#[from] brisk_core::Error),
}

fn cycle_text(keys: &[Key]) -> String {
    let mut s: Vec<String> = keys.iter().map(Key::to_string).collect();
    if let Some(first) = keys.first() {
        s.push(first.to_string());
    }
    s.join(" -> ")
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
