//! The error type of `brisk-array`.

/// Errors found while building or computing an array.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A chunk specification does not fit the shape.
    #[error("chunks {chunks} do not fit shape {shape:?}: {reason}")]
    BadChunks {
        /// The array's shape.
        shape: Vec<usize>,
        /// The chunks as given.
        chunks: String,
        /// What is wrong with them.
        reason: String,
    },
    /// Two arrays that must have the same shape do not.
    #[error("shape mismatch: {left:?} and {right:?} {reason}")]
    ShapeMismatch {
        /// The first array's shape.
        left: Vec<usize>,
        /// The second's.
        right: Vec<usize>,
        /// Why they must agree.
        reason: String,
    },
    /// An option is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Computing failed.
    #[error(transparent)]
    Compute(#[from] brisk_scheduler::Error),
    /// The graph could not be built.
    #[error(transparent)]
    Graph(#[from] brisk_graph::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
