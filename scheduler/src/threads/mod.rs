//! The work-stealing thread scheduler. See `README.md` beside this file for the
//! state machine and why it cannot lose a wake-up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::exec::Execution;
use crate::primitives::{AtomicBool, AtomicU32, AtomicUsize, Condvar, Mutex, Ordering, lock};

/// A ready queue, on its own cache lines so workers do not false-share.
#[repr(align(128))]
struct Queue(Mutex<BinaryHeap<Reverse<u32>>>);

/// Roots a worker takes from the shared queue at once. They stay queued (and
/// stealable) in its own queue; a small batch keeps roots close to priority order.
const ROOT_BATCH: usize = 4;

struct Shared<'e, 'p> {
    exec: &'e Execution<'p>,
    /// Inputs of each task not yet computed; a task is ready at zero.
    waiting: Vec<AtomicU32>,
    /// Roots (tasks with no inputs) not yet taken, shared by all workers.
    roots: Queue,
    /// One priority queue per worker for the tasks its own results made ready:
    /// lowest index (highest priority) first.
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
        roots: Queue(Mutex::new(
            (0..n).filter(|&i| plan.deps(i).is_empty()).map(|i| Reverse(i as u32)).collect(),
        )),
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
    let roots = lock(&shared.roots.0).len();
    shared.queued.store(roots, Ordering::SeqCst);
    pool.broadcast(|ctx| shared.work(ctx.index() % threads));
    let error = lock(&shared.error).take();
    (shared.ran.load(Ordering::Acquire), error.map_or(Ok(()), Err))
}

impl Shared<'_, '_> {
    fn work(&self, me: usize) {
        // Task panics are caught in `execute`; this catches a bug of the scheduler's
        // own, which would otherwise leave the other workers waiting forever.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            while !self.stop.load(Ordering::Acquire) {
                match self.pop(me) {
                    Some(i) => match self.exec.budget.admit(i) {
                        // The admission is dropped once the task is done, which
                        // wakes the workers waiting for room.
                        Some(_admission) => self.run_task(me, i),
                        None => self.wait_for_room(i),
                    },
                    None => self.idle(),
                }
            }
        }));
        if let Err(payload) = outcome {
            let e = brisk_core::Error::from_panic(
                &brisk_core::Key::named("scheduler"),
                payload.as_ref(),
            );
            lock(&self.error).get_or_insert(brisk_core::Error::Internal(e.to_string()));
            self.finish();
        }
    }

    /// The next task for worker `me`: the best of its own queue (continuing the branch
    /// it is on, so memory is freed before new roots start), else the best roots
    /// (taking a few more into its queue to spare the shared lock), else one stolen
    /// from another worker.
    fn pop(&self, me: usize) -> Option<usize> {
        if self.queued.load(Ordering::SeqCst) == 0 {
            return None;
        }
        // Each lock is taken in its own statement: a guard living to the end of a
        // chained expression would still be held when `take_roots` locks again.
        let own = lock(&self.queues[me].0).pop();
        let task = own.or_else(|| self.take_roots(me)).or_else(|| self.steal(me));
        let Reverse(i) = task?;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        Some(i as usize)
    }

    fn steal(&self, me: usize) -> Option<Reverse<u32>> {
        let k = self.queues.len();
        (1..k).find_map(|off| lock(&self.queues[(me + off) % k].0).pop())
    }

    fn take_roots(&self, me: usize) -> Option<Reverse<u32>> {
        let mut batch = [Reverse(0u32); ROOT_BATCH];
        let mut taken = 0;
        {
            let mut roots = lock(&self.roots.0);
            while taken < ROOT_BATCH {
                let Some(r) = roots.pop() else { break };
                batch[taken] = r;
                taken += 1;
            }
        }
        if taken > 1 {
            lock(&self.queues[me].0).extend(batch[1..taken].iter().copied());
        }
        (taken > 0).then_some(batch[0])
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
        let mut queued = 0;
        {
            let mut queue = lock(&self.queues[me].0);
            for &j in self.exec.plan.dependents(i) {
                if self.waiting[j as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    queue.push(Reverse(j));
                    pushed += 1;
                }
            }
            // Counted before the lock is released: a thief can take these tasks only
            // after that, so the count never drops below zero.
            if pushed > 0 {
                queued = self.queued.fetch_add(pushed, Ordering::SeqCst) + pushed;
            }
        }
        if pushed > 0 {
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

    /// Source `i` must wait for room in the memory budget: it goes back to the
    /// shared queue and this worker sleeps until a running task finishes (or a
    /// millisecond passes: a wake-up missed between the check and the sleep, or a
    /// stop, costs no more than that).
    fn wait_for_room(&self, i: usize) {
        lock(&self.roots.0).push(Reverse(i as u32));
        self.queued.fetch_add(1, Ordering::SeqCst);
        if !self.stop.load(Ordering::SeqCst) {
            self.exec.budget.wait_for_room(std::time::Duration::from_millis(1));
        }
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
