//! The single-thread scheduler: runs the plan in priority order on the caller's
//! thread. Deterministic, for debugging and for nested computes.

use crate::exec::Execution;

/// Runs every task in index order (a topological order), stopping at the first
/// error; returns how many tasks ran.
pub(crate) fn run(exec: &Execution<'_>) -> (usize, Result<(), brisk_core::Error>) {
    for i in 0..exec.plan.len() {
        if let Err(e) = exec.execute(i, 0) {
            return (i, Err(e));
        }
    }
    (exec.plan.len(), Ok(()))
}
