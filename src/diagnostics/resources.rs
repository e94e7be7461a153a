//! [`ResourceProfiler`]: this process's memory and CPU, sampled while computes
//! run (Dask's `ResourceProfiler`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use brisk_scheduler::{Callback, ComputeStats};

/// One sample: when (from the profiler's start), the resident memory and the
/// CPU used since the sample before, in percent of one core.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResourceSample {
    /// When.
    pub at: Duration,
    /// Resident memory, in bytes.
    pub rss: u64,
    /// CPU since the sample before, in percent of one core (200 = two cores busy).
    pub cpu: f64,
}

/// Samples this process's resident memory and CPU every `interval` while a
/// compute it listens to runs (read from `/proc/self`; nothing elsewhere).
pub struct ResourceProfiler {
    interval: Duration,
    started: Instant,
    samples: Arc<Mutex<Vec<ResourceSample>>>,
    /// Computes running; the sampler runs while there is one.
    running: Arc<AtomicUsize>,
    sampler: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ResourceProfiler {
    /// A profiler sampling every `interval` (at least a millisecond).
    pub fn new(interval: Duration) -> ResourceProfiler {
        ResourceProfiler {
            interval: interval.max(Duration::from_millis(1)),
            started: Instant::now(),
            samples: Arc::default(),
            running: Arc::default(),
            sampler: Mutex::default(),
        }
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<ResourceSample> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Clock ticks per second in `/proc/self/stat` (Linux's USER_HZ, 100 on
/// every architecture it runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// This process's resident bytes (`VmRSS`) and CPU time (user + system, of
/// all its threads), from /proc; `None` where there is no /proc.
fn usage() -> Option<(u64, Duration)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, which may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((kib * 1024, Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND)))
}

impl Callback for ResourceProfiler {
    fn start(&self, _tasks: usize) {
        if self.running.fetch_add(1, Ordering::AcqRel) > 0 {
            return;
        }
        let mut sampler = self.sampler.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = sampler.take() {
            let _ = old.join();
        }
        let (samples, running, interval, started) =
            (self.samples.clone(), self.running.clone(), self.interval, self.started);
        let spawned = std::thread::Builder::new().name("brisk-resources".into()).spawn(move || {
            let mut last: Option<(Instant, Duration)> = None;
            loop {
                if let Some((rss, cpu)) = usage() {
                    let now = Instant::now();
                    // CPU time comes in clock ticks (10 ms): over a shorter
                    // wall interval the rate is noise, so it waits for more.
                    let busy = match last {
                        Some((t, c)) if now.duration_since(t) >= Duration::from_millis(10) => {
                            let wall = now.duration_since(t).as_secs_f64();
                            last = Some((now, cpu));
                            Some(100.0 * cpu.saturating_sub(c).as_secs_f64() / wall)
                        }
                        Some(_) => None,
                        None => {
                            last = Some((now, cpu));
                            Some(0.0)
                        }
                    };
                    let Some(busy) = busy else {
                        if running.load(Ordering::Acquire) == 0 {
                            return;
                        }
                        std::thread::park_timeout(interval);
                        continue;
                    };
                    let at = now.duration_since(started);
                    let sample = ResourceSample { at, rss, cpu: busy };
                    samples.lock().unwrap_or_else(PoisonError::into_inner).push(sample);
                }
                if running.load(Ordering::Acquire) == 0 {
                    return;
                }
                // Woken early when the last compute ends.
                std::thread::park_timeout(interval);
            }
        });
        *sampler = spawned.ok();
    }

    fn finish(&self, _stats: &ComputeStats, _error: Option<&brisk_scheduler::Error>) {
        // The last one out: the sampler takes its last sample and ends, on its
        // own (woken, not waited for: the compute ends when it does).
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(sampler) =
                self.sampler.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
        {
            sampler.thread().unpark();
        }
    }
}

impl Drop for ResourceProfiler {
    fn drop(&mut self) {
        self.running.store(0, Ordering::Release);
        if let Some(sampler) = self.sampler.lock().unwrap_or_else(PoisonError::into_inner).take() {
            sampler.thread().unpark();
            let _ = sampler.join();
        }
    }
}
