//! Running one task of a plan: gathering its inputs, releasing results whose last
//! dependent has started, catching panics. Shared by the sync and thread schedulers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use brisk_core::{Error, MemoryLedger, Value};
use brisk_graph::Plan;

use crate::Callback;
use crate::primitives::{AtomicU64, AtomicUsize, Mutex, Ordering, lock};
use crate::spill::{SpillStore, Spilled};

/// A task's result, the bytes it was counted as, and how many of its dependents
/// have yet to take it. The count lives under the same lock as the value: decided
/// apart, two dependents could both see "not last" after the last one took it.
struct Slot {
    value: Option<(Held, u64)>,
    uses_left: u32,
}

/// Where a result is: in memory (counted in the ledger) or spilled to a file.
enum Held {
    Memory(Value),
    Disk(Spilled),
}

/// Whether a value has a codec (opaque values, anywhere inside, do not).
fn spillable(v: &Value) -> bool {
    match v {
        Value::Opaque(_) => false,
        Value::List(items) => items.iter().all(spillable),
        _ => true,
    }
}

pub(crate) struct Execution<'a> {
    pub(crate) plan: &'a Plan,
    slots: Vec<Mutex<Slot>>,
    pub(crate) ledger: MemoryLedger,
    callbacks: &'a [Arc<dyn Callback>],
    /// Bytes reserved for the outputs of running sources (admission control).
    reserved: AtomicU64,
    /// The largest output a source has had so far: what a starting source reserves.
    root_estimate: AtomicU64,
    /// Tasks running now.
    running: AtomicUsize,
    deferred: AtomicUsize,
    pub(crate) spill: SpillStore,
    /// Held by the worker spilling; others wait for it.
    spilling: Mutex<()>,
    /// Tasks that make data rather than consume it: roots, and ops that project
    /// their size (a CSV block read waits only on its file's tiny quote-parity
    /// task, but is a source all the same). Only these wait for room.
    sources: Vec<bool>,
}

impl<'a> Execution<'a> {
    pub(crate) fn new(
        plan: &'a Plan,
        callbacks: &'a [Arc<dyn Callback>],
        budget: u64,
        spill_dir: Option<PathBuf>,
    ) -> Self {
        let n = plan.len();
        Self {
            plan,
            slots: (0..n)
                .map(|i| {
                    Mutex::new(Slot { value: None, uses_left: plan.dependents(i).len() as u32 })
                })
                .collect(),
            ledger: MemoryLedger::with_limit(budget),
            callbacks,
            reserved: AtomicU64::new(0),
            root_estimate: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            deferred: AtomicUsize::new(0),
            spill: SpillStore::new(spill_dir),
            spilling: Mutex::new(()),
            sources: (0..n)
                .map(|i| plan.deps(i).is_empty() || plan.op(i).projected_bytes().is_some())
                .collect(),
        }
    }

    /// Whether task `i` may start now; if so it is counted as running (and a
    /// source's expected output reserved) until [`done`](Self::done). Only sources
    /// (roots, reads) wait: every other task consumes results and frees memory.
    /// With nothing running a source is always admitted, so the compute always
    /// progresses. Checks of concurrent workers may race and overshoot the budget
    /// by a few sources' outputs.
    pub(crate) fn admit(&self, i: usize) -> Option<u64> {
        if !self.sources[i] {
            self.running.fetch_add(1, Ordering::SeqCst);
            return Some(0);
        }
        let estimate = self.root_estimate.load(Ordering::Acquire);
        // Roots stop at the level spilling brings held results down to, so that
        // new input waits for reducers rather than pushing results to disk.
        let limit = self.ledger.limit().map_or(u64::MAX, |l| l / 4 * 3);
        let wanted = self.ledger.held() + self.reserved.load(Ordering::Acquire) + estimate;
        if wanted > limit && self.running.load(Ordering::SeqCst) > 0 {
            self.deferred.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        self.reserved.fetch_add(estimate, Ordering::AcqRel);
        Some(estimate)
    }

    /// Task `i`, admitted with `reservation`, has finished (or failed).
    pub(crate) fn done(&self, reservation: u64) {
        self.reserved.fetch_sub(reservation, Ordering::AcqRel);
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many times roots waited for room.
    pub(crate) fn deferred(&self) -> usize {
        self.deferred.load(Ordering::Relaxed)
    }

    /// Runs task `i` on `worker` and stores its result. The error names the task.
    pub(crate) fn execute(&self, i: usize, worker: usize) -> Result<(), Error> {
        let key = self.plan.key(i);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            for cb in self.callbacks {
                cb.task_started(key, worker);
            }
            let inputs = self
                .plan
                .deps(i)
                .iter()
                .map(|&d| self.input(d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let value = self.plan.op(i).run(inputs)?;
            let nbytes = value.nbytes();
            if self.sources[i] {
                self.root_estimate.fetch_max(nbytes, Ordering::AcqRel);
            }
            self.ledger.add(nbytes);
            lock(&self.slots[i]).value = Some((Held::Memory(value), nbytes));
            if self.ledger.held() > self.ledger.limit().unwrap_or(u64::MAX) {
                self.spill_over()?;
            }
            for cb in self.callbacks {
                cb.task_finished(key, worker);
            }
            Ok(())
        }));
        match outcome {
            Ok(result) => result.map_err(|e: Error| e.in_task(key)),
            Err(payload) => Err(Error::from_panic(key, payload.as_ref())),
        }
    }

    /// Held results are over the budget: spills those needed last until three
    /// quarters of the budget is held (so spills come in batches, not one per
    /// result). A result's next use is estimated as its first dependent not yet
    /// served, dependents being served in priority order; outputs are needed last;
    /// results whose next dependent is ready to run stay.
    fn spill_over(&self) -> Result<(), Error> {
        // One worker spills at a time. The others wait for it rather than go on
        // adding results (which would outrun a spill of many small results), then
        // spill again only if still over.
        let _one_at_a_time = lock(&self.spilling);
        let limit = self.ledger.limit().unwrap_or(u64::MAX);
        if self.ledger.held() <= limit {
            return Ok(());
        }
        let target = limit / 4 * 3;
        let n = self.plan.len();
        let present: Vec<bool> = (0..n).map(|j| lock(&self.slots[j]).value.is_some()).collect();
        // A result whose next dependent can already run is not spilled: it would
        // be read back at once (or once per item taken out of a split state).
        let mut candidates: Vec<(usize, usize)> = (0..n)
            .filter_map(|j| {
                let slot = lock(&self.slots[j]);
                match &slot.value {
                    Some((Held::Memory(v), bytes)) if *bytes > 0 && spillable(v) => {
                        let dependents = self.plan.dependents(j);
                        let served = dependents.len() - slot.uses_left as usize;
                        let next = dependents.get(served).map_or(n, |&t| t as usize);
                        let ready =
                            next < n && self.plan.deps(next).iter().all(|&d| present[d as usize]);
                        (!ready).then_some((next, j))
                    }
                    _ => None,
                }
            })
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        for (_, j) in candidates {
            if self.ledger.held() <= target {
                break;
            }
            let mut slot = lock(&self.slots[j]);
            if let Some((Held::Memory(v), bytes)) = &slot.value {
                let bytes = *bytes;
                let at = self.spill.write(v)?;
                slot.value = Some((Held::Disk(at), bytes));
                drop(slot);
                self.ledger.release(bytes);
            }
        }
        Ok(())
    }

    /// The value in a slot: cloned from memory or read back from the spill file.
    fn read(&self, held: &Held) -> Result<Value, Error> {
        match held {
            Held::Memory(v) => Ok(v.clone()),
            Held::Disk(at) => self.spill.read(at),
        }
    }

    /// The result of task `d` for one of its dependents: moved out on its last use
    /// (releasing it), shared otherwise. Outputs are kept to the end.
    fn input(&self, d: usize) -> Result<Value, Error> {
        let mut slot = lock(&self.slots[d]);
        slot.uses_left -= 1;
        if slot.uses_left == 0 && !self.plan.is_output(d) {
            let (held, nbytes) = slot.value.take().ok_or_else(|| missing(self.plan, d))?;
            match held {
                Held::Memory(value) => {
                    drop(slot);
                    self.ledger.release(nbytes);
                    Ok(value)
                }
                // Spilled results were released from the ledger when written.
                Held::Disk(at) => self.spill.read(&at),
            }
        } else {
            let (held, nbytes) = slot.value.as_ref().ok_or_else(|| missing(self.plan, d))?;
            let (at, nbytes) = match held {
                Held::Memory(value) => return Ok(value.clone()),
                Held::Disk(at) => (*at, *nbytes),
            };
            // A spilled result with uses left comes back into memory when the budget
            // has room for it: its other dependents are likely near, and reading it
            // once per use multiplies the disk traffic. Without room it is read
            // again for each use.
            let limit = self.ledger.limit().unwrap_or(u64::MAX);
            let room = self.ledger.held() + nbytes <= limit;
            let value = self.spill.read(&at)?;
            if room {
                self.ledger.add(nbytes);
                slot.value = Some((Held::Memory(value.clone()), nbytes));
            }
            Ok(value)
        }
    }

    /// The outputs in the order they were asked for, and the bytes of any other
    /// result still held plus reservations not returned (zero unless one leaked).
    pub(crate) fn outputs(&self) -> Result<(Vec<Value>, u64), Error> {
        let outputs = self
            .plan
            .outputs()
            .iter()
            .map(|&o| {
                let slot = lock(&self.slots[o as usize]);
                let (held, _) =
                    slot.value.as_ref().ok_or_else(|| missing(self.plan, o as usize))?;
                self.read(held)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output_bytes: u64 = (0..self.plan.len())
            .filter(|&i| self.plan.is_output(i))
            .filter_map(|i| match lock(&self.slots[i]).value.as_ref() {
                Some((Held::Memory(_), n)) => Some(*n),
                _ => None,
            })
            .sum();
        let unreturned = self.reserved.load(Ordering::Acquire);
        Ok((outputs, self.ledger.held() - output_bytes + unreturned))
    }
}

fn missing(plan: &Plan, d: usize) -> Error {
    Error::Internal(format!(
        "the result of {} was used before it was computed or after it was released",
        plan.key(d)
    ))
}
