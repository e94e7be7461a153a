//! How a run fails: the user's input (exit 2), Brisk itself (exit 1), or a reader
//! that went away (exit 0, quietly).

use brisk::core::Error as CoreError;
use brisk::scheduler::Error as SchedulerError;

/// Why a command stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad input or usage; the message says what and what to do.
    User(String),
    /// A bug: an invariant of Brisk's did not hold.
    Internal(String),
    /// Standard output was closed (`brisk head ... | head -1`).
    BrokenPipe,
}

impl Failure {
    /// The same failure with `what` in front of its message.
    pub(crate) fn context(self, what: &str) -> Failure {
        match self {
            Failure::User(m) => Failure::User(format!("{what}: {m}")),
            Failure::Internal(m) => Failure::Internal(format!("{what}: {m}")),
            Failure::BrokenPipe => Failure::BrokenPipe,
        }
    }
}

/// A task's error, without the task's key in front: the key means nothing to a
/// user, the file, line and column in the message do.
fn from_core(e: &CoreError) -> Failure {
    match e {
        CoreError::Task { source, .. } => from_core(source),
        CoreError::User(inner) => Failure::User(with_flags(&inner.to_string())),
        other => Failure::Internal(other.to_string()),
    }
}

/// The library's advice in the CLI's terms: `--dtype` and `--null` rather than
/// the options' names.
fn with_flags(message: &str) -> String {
    const LIBRARY_HINT: &str = "; read the column as text (dtype ";
    let Some(at) = message.find(LIBRARY_HINT) else { return message.to_string() };
    let quoted = |after: &str| {
        message.split(after).nth(1).and_then(|s| s.split('\'').next()).unwrap_or("?").to_string()
    };
    let (column, value) = (quoted("column '"), quoted("cannot parse '"));
    format!(
        "{}; read the column as text (--dtype {column}:str) or mark the value as null (--null '{value}')",
        &message[..at]
    )
}

impl From<SchedulerError> for Failure {
    fn from(e: SchedulerError) -> Failure {
        match &e {
            SchedulerError::Task(core) | SchedulerError::Output(core) => from_core(core),
            SchedulerError::Backend(brisk::scheduler::BackendError::Task(core)) => from_core(core),
            // A worker or scheduler unreachable or dying, a task killing its
            // workers: about the cluster the user runs, not a bug.
            SchedulerError::ThreadPool { .. }
            | SchedulerError::OverBudget { .. }
            | SchedulerError::LocalOp { .. }
            | SchedulerError::UnknownFunction { .. }
            | SchedulerError::Backend(_) => Failure::User(e.to_string()),
            _ => Failure::Internal(e.to_string()),
        }
    }
}

impl From<brisk::frame::Error> for Failure {
    fn from(e: brisk::frame::Error) -> Failure {
        use brisk::frame::Error;
        match e {
            Error::Compute(e) => e.into(),
            Error::Graph(e) => Failure::Internal(e.to_string()),
            other => Failure::User(other.to_string()),
        }
    }
}

impl From<brisk::graph::Error> for Failure {
    fn from(e: brisk::graph::Error) -> Failure {
        Failure::Internal(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::User(e.to_string())
        }
    }
}

/// Panics caught by the scheduler become errors with their message; the default
/// hook would print them (and a backtrace hint) first. Only a panic outside a
/// task, which is a bug, is reported here.
pub(crate) fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let worker = std::thread::current().name().is_some_and(|n| n.starts_with("brisk-worker"));
        if !worker {
            eprintln!("internal error: {info}\n(this is a bug in brisk; please report it)");
        }
    }));
}
