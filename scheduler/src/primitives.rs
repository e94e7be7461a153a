//! Every synchronization primitive the schedulers use comes through this module, so
//! the scheduler's concurrency can be swapped for a model checker's (loom) in one
//! place.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning: no lock is held while user code runs (tasks run
/// under `catch_unwind` outside any lock), so a poisoned lock still guards
/// consistent data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
