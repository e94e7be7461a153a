//! One nudge to the system allocator before the first compute.
//!
//! glibc's malloc serves every request above its mmap threshold (128 KiB at start)
//! with a fresh mapping, which the kernel faults in and zeroes page by page and
//! unmaps again on free. Tasks allocate buffers of 0.1–4 MiB over and over (a CSV
//! block's column builders, a group-by partial's state), so each one paid that
//! price every time: on a one-thread CSV scan, page faults took 40% of the time.
//! glibc raises the threshold to the size of any mapped chunk that is freed (the
//! "dynamic mmap threshold" of mallopt(3)), so one allocation just under its 32 MiB
//! ceiling, freed at once, moves it there: task buffers then come from the heap
//! and are reused. Other allocators just map and unmap one block.

use std::sync::Once;

/// Settles the allocator once per process.
pub(crate) fn settle() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            let nudge: Vec<u8> = Vec::with_capacity(31 << 20);
            std::hint::black_box(&nudge);
        }
    });
}
