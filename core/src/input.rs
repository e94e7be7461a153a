//! Bytes of input files a task read, counted on the thread that runs it: the
//! scheduler takes the count after each task and tells its callbacks, so a
//! progress bar shows bytes really read, not a share of the total by tasks done.

use std::cell::Cell;

thread_local! {
    static READ: Cell<u64> = const { Cell::new(0) };
}

/// Notes that the task running on this thread read `n` bytes of an input file.
pub fn note_read(n: u64) {
    READ.set(READ.get() + n);
}

/// The bytes noted on this thread since the last call (and starts again at 0).
pub fn take_read() -> u64 {
    READ.replace(0)
}
