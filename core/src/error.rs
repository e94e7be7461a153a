//! The error type of `brisk-core` and of every task.

use crate::Key;

/// A boxed error from user code (a delayed function, a kernel).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of values, ops and tasks.
///
/// User errors (bad input, a failing function) are kept apart from
/// [`Error::Internal`], which means a bug in Brisk itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task failed; `source` says why.
    #[error("task {key} failed: {source}")]
    Task {
        /// The key of the failing task.
        key: Key,
        /// What went wrong inside it.
        source: Box<Error>,
    },
    /// A task panicked; the panic was caught and stopped the compute.
    #[error("task {key} panicked: {message}")]
    Panic {
        /// The key of the panicking task.
        key: Key,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// An error returned by user code.
    #[error("{0}")]
    User(BoxError),
    /// A value was not of the type an op expected.
    #[error("expected {expected}, found {found}")]
    TypeMismatch {
        /// What the op expected.
        expected: String,
        /// What it got.
        found: String,
    },
    /// An op got the wrong number of inputs.
    #[error("op '{op}' takes {expected} input(s), got {found}")]
    Arity {
        /// The op's name.
        op: String,
        /// How many inputs it takes.
        expected: usize,
        /// How many it was given.
        found: usize,
    },
    /// Bytes could not be decoded into a value or an op.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A value or op cannot be turned into bytes.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why it failed, and what to do instead.
        reason: String,
    },
    /// An encoded op named an op this program does not know.
    #[error("unknown op '{name}': register it with OpRegistry::register before decoding")]
    UnknownOp {
        /// The name found in the bytes.
        name: String,
    },
    /// An encoded call named a function this program did not register.
    #[error(
        "unknown function '{name}': register it with register_fn! (OpRegistry::register_fn) in every process that runs it"
    )]
    UnknownFunction {
        /// The function's name.
        name: String,
    },
    /// A bug in Brisk: please report it.
    #[error("internal error (a bug in Brisk, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// Wraps any error from user code.
    ///
    /// ```
    /// use brisk_core::Error;
    /// let e = Error::user("x".parse::<i32>().unwrap_err());
    /// assert_eq!(e.to_string(), "invalid digit found in string");
    /// ```
    pub fn user(err: impl Into<BoxError>) -> Self {
        Error::User(err.into())
    }

    /// Attaches the key of the task this error came from (once: an error that
    /// already names its task is returned unchanged).
    pub fn in_task(self, key: &Key) -> Self {
        match self {
            e @ (Error::Task { .. } | Error::Panic { .. }) => e,
            e => Error::Task { key: key.clone(), source: Box::new(e) },
        }
    }

    /// The error for a panic caught while running the task `key`.
    pub fn from_panic(key: &Key, payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_string()
        };
        Error::Panic { key: key.clone(), message }
    }

    /// The key of the task this error came from, if it names one.
    pub fn task_key(&self) -> Option<&Key> {
        match self {
            Error::Task { key, .. } | Error::Panic { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Whether this is a bug in Brisk rather than a problem with the input.
    pub fn is_internal(&self) -> bool {
        match self {
            Error::Internal(_) => true,
            Error::Task { source, .. } => source.is_internal(),
            _ => false,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
