//! The memory budget of a compute: what is counted, when a source may start, when
//! held results spill, and the default budget. See `README.md` beside this file.

use std::sync::OnceLock;
use std::time::Duration;

use brisk_graph::Plan;

use crate::primitives::{AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, lock};

/// Half the memory this machine has available (Linux's `MemAvailable`), or 4 GiB
/// where that cannot be read: the default [`Scheduler::memory_limit`].
///
/// [`Scheduler::memory_limit`]: crate::Scheduler::memory_limit
pub fn default_memory_budget() -> u64 {
    static BUDGET: OnceLock<u64> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
        available.map_or(4 << 30, |bytes| bytes / 2)
    })
}

/// Refuses, before anything runs, a plan with a task whose projected peak alone
/// exceeds the budget: no amount of waiting or spilling would make it fit.
pub(crate) fn refuse_oversized(plan: &Plan, budget: u64) -> crate::Result<()> {
    for i in 0..plan.len() {
        let op = plan.op(i);
        if let Some(bytes) = op.projected_bytes().filter(|&b| b > budget) {
            let key = plan.key(i).clone();
            return Err(crate::Error::OverBudget { key, op: op.name(), bytes, budget });
        }
    }
    Ok(())
}

/// Bytes counted against the budget until this value is dropped (DataFusion's
/// `MemoryReservation` is the model): a result held in memory owns one, so its
/// bytes come back when it is consumed, spilled or dropped — a forgotten release
/// cannot happen. It borrows the budget rather than sharing it, so holding a result
/// costs no reference count: the scheduler's per-task work stays as it was.
#[derive(Debug)]
pub(crate) struct Reservation<'b> {
    budget: &'b Budget,
    bytes: u64,
}

impl Reservation<'_> {
    /// The bytes this reservation counts.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let before = self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        debug_assert!(before >= self.bytes, "returned {} bytes but {before} were held", self.bytes);
    }
}

/// A running task's place in the budget: it counts as running, and a source's
/// expected output stays reserved, until this is dropped.
#[derive(Debug)]
pub(crate) struct Admission<'b> {
    budget: &'b Budget,
    reserved: u64,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let b = self.budget;
        b.reserved.fetch_sub(self.reserved, Ordering::AcqRel);
        b.running.fetch_sub(1, Ordering::SeqCst);
        if b.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&b.room);
            b.room_made.notify_all();
        }
    }
}

/// One compute's budget: the bytes held against the limit (changed only by
/// [`Reservation`]s, so every byte counted is given back exactly once), the
/// admission of sources, and the levels that decide spilling.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    held: AtomicU64,
    /// The most bytes held at once.
    peak: AtomicU64,
    /// Tasks that make data rather than consume it: roots, and ops that project
    /// their size (a CSV block read waits only on its file's tiny quote-parity
    /// task, but is a source all the same). Only these wait for room.
    sources: Vec<bool>,
    /// Bytes reserved for the outputs of running sources.
    reserved: AtomicU64,
    /// The largest output a source has had so far: what a starting source reserves.
    source_estimate: AtomicU64,
    /// Tasks running now.
    running: AtomicUsize,
    /// How many times a source waited for room.
    deferred: AtomicUsize,
    /// Workers sleeping until a running task finishes and makes room.
    waiting: AtomicUsize,
    room: Mutex<()>,
    room_made: Condvar,
}

impl Budget {
    /// A budget of `limit` bytes for running `plan`.
    pub(crate) fn new(plan: &Plan, limit: u64) -> Self {
        Self {
            limit,
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            sources: (0..plan.len())
                .map(|i| plan.deps(i).is_empty() || plan.op(i).projected_bytes().is_some())
                .collect(),
            reserved: AtomicU64::new(0),
            source_estimate: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            deferred: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            room: Mutex::new(()),
            room_made: Condvar::new(),
        }
    }

    /// The budget in bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes of results held in memory now.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// The most bytes held at once.
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }

    /// The level spilling brings held results down to, and the level at which new
    /// sources stop: three quarters of the budget (see README.md).
    pub(crate) fn low_water(&self) -> u64 {
        self.limit() / 4 * 3
    }

    /// Counts `bytes` of a result already in memory, even past the limit (the
    /// result exists; spilling decides what to do about it).
    pub(crate) fn hold(&self, bytes: u64) -> Reservation<'_> {
        let now = self.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(now, Ordering::AcqRel);
        Reservation { budget: self, bytes }
    }

    /// Whether held results are over the budget, so some must spill.
    pub(crate) fn over(&self) -> bool {
        self.held() > self.limit()
    }

    /// Whether `bytes` more fit under the budget.
    pub(crate) fn has_room_for(&self, bytes: u64) -> bool {
        self.held() + bytes <= self.limit()
    }

    /// Whether task `i` may start now; if so it counts as running (and a source's
    /// expected output is reserved) until the returned admission is dropped. Only
    /// sources wait: every other task consumes results and frees memory. With
    /// nothing running a source is always admitted, so a compute always progresses.
    /// Checks of concurrent workers may race and overshoot the budget by a few
    /// sources' outputs.
    pub(crate) fn admit(&self, i: usize) -> Option<Admission<'_>> {
        if !self.sources[i] {
            self.running.fetch_add(1, Ordering::SeqCst);
            return Some(Admission { budget: self, reserved: 0 });
        }
        let estimate = self.source_estimate.load(Ordering::Acquire);
        let wanted = self.held() + self.reserved.load(Ordering::Acquire) + estimate;
        if wanted > self.low_water() && self.running.load(Ordering::SeqCst) > 0 {
            self.deferred.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        self.reserved.fetch_add(estimate, Ordering::AcqRel);
        Some(Admission { budget: self, reserved: estimate })
    }

    /// Task `i` made a result of `bytes`: sources teach the estimate the next
    /// sources reserve.
    pub(crate) fn produced(&self, i: usize, bytes: u64) {
        if self.sources[i] {
            self.source_estimate.fetch_max(bytes, Ordering::AcqRel);
        }
    }

    /// Sleeps until a running task finishes (or `timeout` passes: a finish missed
    /// between the caller's check and this sleep costs no more than that).
    pub(crate) fn wait_for_room(&self, timeout: Duration) {
        let guard = lock(&self.room);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        drop(self.room_made.wait_timeout(guard, timeout).unwrap_or_else(|p| p.into_inner()));
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many times sources waited for room.
    pub(crate) fn deferred(&self) -> usize {
        self.deferred.load(Ordering::Relaxed)
    }

    /// Bytes reserved for running sources and not yet returned (zero once every
    /// admission is dropped).
    pub(crate) fn unreturned(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brisk_core::{Key, Op, Value};
    use brisk_graph::{Graph, PlanOptions, Task};

    fn plan() -> Plan {
        let add = Op::local("add", |v: Vec<Value>| Ok(v.into_iter().next().unwrap()));
        let g = Graph::from_tasks([
            Task::root("a", Op::Const(Value::from(1_i64))),
            Task::root("b", Op::Const(Value::from(2_i64))),
            Task::new("c", add, ["a", "b"]),
        ])
        .unwrap();
        g.plan(&[Key::named("c")], PlanOptions::default()).unwrap()
    }

    #[test]
    fn reservations_give_their_bytes_back_on_drop() {
        let budget = Budget::new(&plan(), 100);
        let a = budget.hold(60);
        let b = budget.hold(60);
        assert!(budget.over());
        assert_eq!(a.bytes(), 60);
        drop(a);
        assert!(!budget.over());
        assert!(budget.has_room_for(40) && !budget.has_room_for(41));
        drop(b);
        assert_eq!((budget.held(), budget.peak()), (0, 120));
    }

    #[test]
    fn sources_wait_above_three_quarters_unless_nothing_runs() {
        let p = plan();
        let budget = Budget::new(&p, 100);
        let roots: Vec<usize> = (0..p.len()).filter(|&i| p.deps(i).is_empty()).collect();
        let first = budget.admit(roots[0]).expect("nothing runs: always admitted");
        budget.produced(roots[0], 50);
        let held = budget.hold(50);
        // 50 held + 50 expected > 75: the second source waits while the first runs.
        assert!(budget.admit(roots[1]).is_none());
        assert_eq!(budget.deferred(), 1);
        drop(first);
        let second = budget.admit(roots[1]).expect("nothing runs now");
        assert_eq!(budget.unreturned(), 50);
        drop(second);
        drop(held);
        assert_eq!((budget.unreturned(), budget.held()), (0, 0));
    }
}
