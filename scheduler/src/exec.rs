//! Running one task of a plan: gathering its inputs, releasing results whose last
//! dependent has started, catching panics. Shared by the sync and thread schedulers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use brisk_core::{Error, Value};
use brisk_graph::Plan;

use crate::Callback;
use crate::budget::{Budget, Reservation};
use crate::primitives::{AtomicU64, Mutex, Ordering, lock};
use crate::spill::{SpillStore, Spilled};

/// A task's result and how many of its dependents have yet to take it. The count
/// lives under the same lock as the value: decided apart, two dependents could both
/// see "not last" after the last one took it.
struct Slot<'b> {
    value: Option<Held<'b>>,
    uses_left: u32,
}

/// Where a result is: in memory, its bytes counted against the budget for as long
/// as it is held, or spilled to a file (with the bytes it counted in memory).
enum Held<'b> {
    Memory(Value, Reservation<'b>),
    Disk(Spilled, u64),
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
    slots: Vec<Mutex<Slot<'a>>>,
    pub(crate) budget: &'a Budget,
    callbacks: &'a [Arc<dyn Callback>],
    pub(crate) spill: SpillStore,
    /// Held by the worker spilling; others wait for it.
    spilling: Mutex<()>,
    /// Bytes of input files the tasks read.
    pub(crate) input_bytes: AtomicU64,
}

impl<'a> Execution<'a> {
    pub(crate) fn new(
        plan: &'a Plan,
        callbacks: &'a [Arc<dyn Callback>],
        budget: &'a Budget,
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
            budget,
            callbacks,
            spill: SpillStore::new(spill_dir),
            spilling: Mutex::new(()),
            input_bytes: AtomicU64::new(0),
        }
    }

    /// Runs task `i` on `worker` and stores its result. The error names the task.
    pub(crate) fn execute(&self, i: usize, worker: usize) -> Result<(), Error> {
        let key = self.plan.key(i);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let start = std::time::Instant::now();
            for cb in self.callbacks {
                cb.task_started(key, worker);
            }
            // Inputs this task now owns stay counted while it runs: their memory is
            // in use until the task lets them go, so other results spill for them
            // and sources wait.
            let mut in_use = Vec::new();
            let inputs = self
                .plan
                .deps(i)
                .iter()
                .map(|&d| {
                    let (value, reservation) = self.input(d as usize)?;
                    in_use.extend(reservation);
                    Ok(value)
                })
                .collect::<Result<Vec<_>, Error>>()?;
            if self.budget.over() {
                self.spill_over()?;
            }
            let bytes_in = match self.callbacks.is_empty() {
                true => 0,
                false => inputs.iter().map(Value::nbytes).sum(),
            };
            brisk_core::take_read();
            let value = self.plan.op(i).run(inputs)?;
            drop(in_use);
            let read = brisk_core::take_read();
            if read > 0 {
                self.input_bytes.fetch_add(read, Ordering::Relaxed);
                for cb in self.callbacks {
                    cb.task_read(key, worker, read);
                }
            }
            let nbytes = value.nbytes();
            self.budget.produced(i, nbytes);
            let reservation = self.budget.hold(nbytes);
            lock(&self.slots[i]).value = Some(Held::Memory(value, reservation));
            if self.budget.over() {
                self.spill_over()?;
            }
            if !self.callbacks.is_empty() {
                let op = self.plan.op(i).name();
                let end = std::time::Instant::now();
                let done = crate::TaskDone {
                    key,
                    op: &op,
                    worker,
                    start,
                    end,
                    bytes_in,
                    bytes_out: nbytes,
                };
                let (held, limit) = (self.budget.held(), self.budget.limit());
                for cb in self.callbacks {
                    cb.task_done(&done);
                    cb.memory(held, limit);
                }
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

    /// Held results are over the budget: spills those needed last until the
    /// budget's low-water mark is held (so spills come in batches, not one per
    /// result). A result's next use is estimated as its first dependent not yet
    /// served, dependents being served in priority order; outputs are needed last;
    /// results whose next dependent is ready to run stay.
    fn spill_over(&self) -> Result<(), Error> {
        // One worker spills at a time. The others wait for it rather than go on
        // adding results (which would outrun a spill of many small results), then
        // spill again only if still over.
        let _one_at_a_time = lock(&self.spilling);
        if !self.budget.over() {
            return Ok(());
        }
        let target = self.budget.low_water();
        let n = self.plan.len();
        let present: Vec<bool> = (0..n).map(|j| lock(&self.slots[j]).value.is_some()).collect();
        // A result whose next dependent can already run is not spilled: it would
        // be read back at once (or once per item taken out of a split state).
        let mut candidates: Vec<(usize, usize)> = (0..n)
            .filter_map(|j| {
                let slot = lock(&self.slots[j]);
                match &slot.value {
                    Some(Held::Memory(v, r)) if r.bytes() > 0 && spillable(v) => {
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
            if self.budget.held() <= target {
                break;
            }
            let mut slot = lock(&self.slots[j]);
            if let Some(Held::Memory(v, reservation)) = &slot.value {
                let at = self.spill.write(v)?;
                let bytes = reservation.bytes();
                // Replacing the value drops its reservation: its bytes go back.
                slot.value = Some(Held::Disk(at, bytes));
                for cb in self.callbacks {
                    cb.spilled(bytes);
                    cb.memory(self.budget.held(), self.budget.limit());
                }
            }
        }
        Ok(())
    }

    /// The value in a slot: cloned from memory or read back from the spill file.
    fn read(&self, held: &Held) -> Result<Value, Error> {
        match held {
            Held::Memory(v, _) => Ok(v.clone()),
            Held::Disk(at, _) => self.spill.read(at),
        }
    }

    /// The result of task `d` for one of its dependents: moved out on its last use
    /// (outputs are kept to the end), shared otherwise; and the reservation of the
    /// memory the dependent now owns. A result it takes from memory brings its
    /// own, one read from disk is counted anew. A result that stays held for
    /// other dependents is counted where it is held (if it is spilled meanwhile,
    /// this task's copy goes uncounted until the task ends).
    fn input(&self, d: usize) -> Result<(Value, Option<Reservation<'a>>), Error> {
        let mut slot = lock(&self.slots[d]);
        slot.uses_left -= 1;
        if slot.uses_left == 0 && !self.plan.is_output(d) {
            let held = slot.value.take().ok_or_else(|| missing(self.plan, d))?;
            drop(slot);
            match held {
                Held::Memory(value, reservation) => Ok((value, Some(reservation))),
                // Spilled results gave their bytes back when written; their space
                // in the spill file is free once read.
                Held::Disk(at, nbytes) => {
                    let value = self.spill.take(at)?;
                    self.callbacks.iter().for_each(|cb| cb.read_back(nbytes));
                    Ok((value, Some(self.budget.hold(nbytes))))
                }
            }
        } else {
            let held = slot.value.as_ref().ok_or_else(|| missing(self.plan, d))?;
            let (at, nbytes) = match held {
                Held::Memory(value, _) => return Ok((value.clone(), None)),
                Held::Disk(at, nbytes) => (*at, *nbytes),
            };
            // A spilled result with uses left comes back into memory when the budget
            // has room for it: its other dependents are likely near, and reading it
            // once per use multiplies the disk traffic. Without room it is read
            // again for each use, a copy this task owns.
            let room = self.budget.has_room_for(nbytes);
            let value = self.spill.read(&at)?;
            self.callbacks.iter().for_each(|cb| cb.read_back(nbytes));
            if room {
                let reservation = self.budget.hold(nbytes);
                slot.value = Some(Held::Memory(value.clone(), reservation));
                self.spill.free(at);
                return Ok((value, None));
            }
            Ok((value, Some(self.budget.hold(nbytes))))
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
                let held = slot.value.as_ref().ok_or_else(|| missing(self.plan, o as usize))?;
                self.read(held)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output_bytes: u64 = (0..self.plan.len())
            .filter(|&i| self.plan.is_output(i))
            .filter_map(|i| match lock(&self.slots[i]).value.as_ref() {
                Some(Held::Memory(_, r)) => Some(r.bytes()),
                _ => None,
            })
            .sum();
        Ok((outputs, self.budget.held() - output_bytes + self.budget.unreturned()))
    }
}

fn missing(plan: &Plan, d: usize) -> Error {
    Error::Internal(format!(
        "the result of {} was used before it was computed or after it was released",
        plan.key(d)
    ))
}
