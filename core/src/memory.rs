//! Memory accounting shared by the scheduler and the spill store.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Counts the bytes a compute holds against an optional limit, and the peak.
///
/// The scheduler adds a result's [`Value::nbytes`](crate::Value::nbytes) when it is
/// stored and subtracts it when it is released; at the end of a compute `held()` is
/// back to zero, which tests assert.
///
/// ```
/// use brisk_core::MemoryLedger;
/// let ledger = MemoryLedger::with_limit(100);
/// ledger.try_reserve(60).unwrap();
/// assert!(ledger.try_reserve(60).is_err());
/// ledger.release(60);
/// assert_eq!((ledger.held(), ledger.peak()), (0, 60));
/// ```
#[derive(Debug)]
pub struct MemoryLedger {
    limit: Option<u64>,
    held: AtomicU64,
    peak: AtomicU64,
}

impl MemoryLedger {
    /// A ledger with no limit: it only counts.
    pub fn unlimited() -> Self {
        Self { limit: None, held: AtomicU64::new(0), peak: AtomicU64::new(0) }
    }

    /// A ledger that refuses reservations beyond `limit` bytes.
    pub fn with_limit(limit: u64) -> Self {
        Self { limit: Some(limit), ..Self::unlimited() }
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// The most bytes held at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }

    /// Counts `bytes` that are already in memory, even past the limit.
    pub fn add(&self, bytes: u64) {
        let now = self.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(now, Ordering::AcqRel);
    }

    /// Reserves `bytes` if they fit under the limit.
    pub fn try_reserve(&self, bytes: u64) -> Result<()> {
        let Some(limit) = self.limit else {
            self.add(bytes);
            return Ok(());
        };
        let mut held = self.held();
        loop {
            if held.saturating_add(bytes) > limit {
                return Err(Error::OutOfBudget { limit, held, requested: bytes });
            }
            match self.held.compare_exchange_weak(
                held,
                held + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(held + bytes, Ordering::AcqRel);
                    return Ok(());
                }
                Err(now) => held = now,
            }
        }
    }

    /// Returns `bytes` counted by [`add`](Self::add) or [`try_reserve`](Self::try_reserve).
    pub fn release(&self, bytes: u64) {
        let before = self.held.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(before >= bytes, "released {bytes} bytes but only {before} were held");
    }
}

impl Default for MemoryLedger {
    fn default() -> Self {
        Self::unlimited()
    }
}
