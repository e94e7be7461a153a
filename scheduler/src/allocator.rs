//! Settings of the system allocator, made before the first compute.
//!
//! glibc's malloc serves every request above its mmap threshold (128 KiB at start)
//! with a fresh mapping, which the kernel faults in and zeroes page by page and
//! unmaps again on free. Tasks allocate buffers of 0.1–4 MiB over and over (a CSV
//! block's column builders, a group-by partial's state), so each one paid that
//! price every time: on a one-thread CSV scan, page faults took 40% of the time.
//! So buffers up to 4 MiB come from the heap and are reused.
//!
//! Left to itself, glibc raises that threshold to the size of any mapped chunk
//! freed (up to 32 MiB), keeps free memory at the top of a heap up to twice the
//! threshold, and gives each thread a heap of its own (up to eight per core), each
//! holding its own free and fragmented memory: with a worker's 10–30 MiB group-by
//! states, a distinct count over 10M rows at a 64 MiB budget ran at 190 MiB
//! resident for 93 MiB allocated. So the thresholds are fixed (larger buffers are
//! mapped and given back when freed; a heap keeps at most 8 MiB free at its top)
//! and the threads share one heap (each keeps its small-block cache): 140 MiB
//! resident, the q1 group-by as fast as before.

use std::sync::Once;

/// Fixes glibc's thresholds, once per process; every compute calls it.
pub(crate) fn settle() {
    static ONCE: Once = Once::new();
    ONCE.call_once(glibc::thresholds);
}

/// Settles the system allocator for a program whose work is Brisk's, as the
/// `brisk` command's is: the thresholds every compute sets (buffers up to 4 MiB
/// reused from the heap, larger ones given back when freed), and on glibc one
/// heap shared by every thread, which a library does not impose on its host
/// program. Call it first thing in `main`: glibc fixes the number of heaps when
/// a second thread first allocates.
pub fn settle_allocator() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        settle();
        glibc::one_heap();
    });
}

/// [`settle_allocator`] for a worker process, whose results move in and out as
/// megabyte messages: buffers up to 32 MiB come from the heap, and the heap
/// keeps up to 256 MiB free at its top, so each message reuses memory rather
/// than faulting in fresh pages. On this kind of machine an 8 MB copy took
/// 4 ms into fresh pages and 0.5 ms into reused ones. Call it first thing in a
/// worker process's `main`.
pub fn settle_worker_allocator() {
    settle_allocator();
    glibc::worker_thresholds();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    /// Buffers up to this size come from the heap.
    const MMAP_THRESHOLD: libc::c_int = 4 << 20;
    /// A heap gives back free memory at its top beyond this.
    const TRIM_THRESHOLD: libc::c_int = 8 << 20;

    pub(super) fn thresholds() {
        // SAFETY: mallopt only changes malloc's tuning parameters; it takes
        // malloc's own lock and is safe to call at any time, from any thread.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }

    pub(super) fn one_heap() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }

    pub(super) fn worker_thresholds() {
        // SAFETY: as above. 32 MiB is the largest mmap threshold glibc takes.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    /// Other allocators keep their own settings.
    pub(super) fn thresholds() {}
    pub(super) fn one_heap() {}
    pub(super) fn worker_thresholds() {}
}
