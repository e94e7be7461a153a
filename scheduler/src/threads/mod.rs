//! The work-stealing thread scheduler. See `README.md` beside this file for the
//! state machine and why it cannot lose a wake-up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::exec::Execution;
use crate::primitives::{AtomicBool, AtomicU32, AtomicUsize, Condvar, Mutex, Ordering, lock};

/// A ready queue, on its own cache lines so workers do not false-share.
#[repr(align(128))]
struct Queue(Mutex<BinaryHeap<Reverse<u32>>>);

struct Shared<'e, 'p> {
    exec: &'e Execution<'p>,
    /// Inputs of each task not yet computed; a task is ready at zero.
    waiting: Vec<AtomicU32>,
    /// One priority queue per worker: lowest index (highest priority) first.
    queues: Vec<Queue>,
    /// Tasks in all queues.
    queued: AtomicUsize,
    /// Tasks not yet finished.
    unfinished: AtomicUsize,
    ran: AtomicUsize,
    /// Set when every task finished or one failed: workers return.
    stop: AtomicBool,
    error: Mutex<Option<brisk_core::Error>>,
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

/// Runs the plan on `threads` workers of `pool`; returns how many tasks ran and the
/// first error.
pub(crate) fn run(
    exec: &Execution<'_>,
    pool: &rayon::ThreadPool,
    threads: usize,
) -> (usize, Result<(), brisk_core::Error>) {
    let plan = exec.plan;
    let n = plan.len();
    let shared = Shared {
        exec,
        waiting: (0..n).map(|i| AtomicU32::new(plan.deps(i).len() as u32)).collect(),
        queues: (0..threads).map(|_| Queue(Mutex::new(BinaryHeap::new()))).collect(),
        queued: AtomicUsize::new(0),
        unfinished: AtomicUsize::new(n),
        ran: AtomicUsize::new(0),
        stop: AtomicBool::new(n == 0),
        error: Mutex::new(None),
        sleepers: AtomicUsize::new(0),
        sleep: Mutex::new(()),
        wake: Condvar::new(),
    };
    // Deal the roots out in priority order, so every worker starts on the first
    // branches of the plan.
    let mut roots = 0;
    for i in (0..n).filter(|&i| plan.deps(i).is_empty()) {
        lock(&shared.queues[roots % threads].0).push(Reverse(i as u32));
        roots += 1;
    }
    shared.queued.store(roots, Ordering::SeqCst);
    pool.broadcast(|ctx| shared.work(ctx.index() % threads));
    let error = lock(&shared.error).take();
    (shared.ran.load(Ordering::Acquire), error.map_or(Ok(()), Err))
}

impl Shared<'_, '_> {
    fn work(&self, me: usize) {
        while !self.stop.load(Ordering::Acquire) {
            match self.pop(me) {
                Some(i) => self.run_task(me, i),
                None => self.idle(),
            }
        }
    }

    /// The best task of this worker's queue, else one stolen from another's.
    fn pop(&self, me: usize) -> Option<usize> {
        if self.queued.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let k = self.queues.len();
        for v in (0..k).map(|off| (me + off) % k) {
            if let Some(Reverse(i)) = lock(&self.queues[v].0).pop() {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                return Some(i as usize);
            }
        }
        None
    }

    fn run_task(&self, me: usize, i: usize) {
        if self.stop.load(Ordering::Acquire) {
            return; // a task failed after this one was taken: do not start it
        }
        if let Err(e) = self.exec.execute(i, me) {
            lock(&self.error).get_or_insert(e);
            self.finish();
            return;
        }
        self.ran.fetch_add(1, Ordering::AcqRel);
        let mut pushed = 0;
        {
            let mut queue = lock(&self.queues[me].0);
            for &j in self.exec.plan.dependents(i) {
                if self.waiting[j as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    queue.push(Reverse(j));
                    pushed += 1;
                }
            }
        }
        if pushed > 0 {
            let queued = self.queued.fetch_add(pushed, Ordering::SeqCst) + pushed;
            // This worker takes one of them itself; wake a sleeper only for the rest.
            if queued > 1 && self.sleepers.load(Ordering::SeqCst) > 0 {
                let _guard = lock(&self.sleep);
                self.wake.notify_one();
            }
        }
        if self.unfinished.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = lock(&self.sleep);
        self.wake.notify_all();
    }

    fn idle(&self) {
        let mut guard = lock(&self.sleep);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.queued.load(Ordering::SeqCst) == 0 && !self.stop.load(Ordering::SeqCst) {
            guard = self.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}
