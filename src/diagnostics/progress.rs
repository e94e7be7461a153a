//! [`ProgressBar`]: a compute's progress on standard error (Dask's
//! `ProgressBar`), for programs as the `brisk` command draws it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use brisk_core::Key;
use brisk_scheduler::{Callback, ComputeStats};
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// A progress bar on standard error, drawn from a compute's task events: the
/// input bytes the reading tasks really read of `total_bytes` (so the rate and
/// ETA are the reading's), tasks done of the plan's. On a terminal it redraws
/// ten times a second; elsewhere it writes a plain line a second.
///
/// ```no_run
/// use brisk::prelude::*;
/// let bar = std::sync::Arc::new(brisk::diagnostics::ProgressBar::new(None));
/// let mean: f64 = Scheduler::threads(2)
///     .callback_arc(bar)
///     .compute(&random(&[10_000, 10_000], &[1_000, 1_000], 1)?.mean(Axes::all()))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
    tasks: AtomicUsize,
    done: AtomicUsize,
    read: std::sync::atomic::AtomicU64,
    /// Where plain lines go (not a terminal): the last line is written there
    /// when the compute ends.
    plain: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
}

impl ProgressBar {
    /// A bar for a compute reading `total_bytes` of input (`None`: one that
    /// reads none, or does not know; then it counts tasks).
    pub fn new(total_bytes: Option<u64>) -> ProgressBar {
        if std::io::stderr().is_terminal() {
            return ProgressBar::drawn(total_bytes, ProgressDrawTarget::stderr_with_hz(10), None);
        }
        // Where stderr is a file or a pipe: a plain line a second.
        ProgressBar::to_writer(total_bytes, Box::new(std::io::stderr()))
    }

    /// A bar written to `out` as plain lines (a log file, a test): at most a
    /// line a second while the compute runs, and a last line when it ends
    /// (tasks done, bytes read, time taken).
    pub fn to_writer(total_bytes: Option<u64>, out: Box<dyn Write + Send>) -> ProgressBar {
        let out = Arc::new(Mutex::new(out));
        let lines = PlainLines { out: out.clone(), last: Mutex::new(None) };
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(lines), 1);
        ProgressBar::drawn(total_bytes, target, Some(out))
    }

    fn drawn(
        total_bytes: Option<u64>,
        target: ProgressDrawTarget,
        plain: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    ) -> ProgressBar {
        let template = match total_bytes {
            Some(_) => "{bar:30} {bytes}/{total_bytes} {msg} ({binary_bytes_per_sec}, ETA {eta})",
            None => "{bar:30} {msg} ({elapsed})",
        };
        let bar = indicatif::ProgressBar::with_draw_target(total_bytes, target);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        ProgressBar {
            bar,
            tasks: AtomicUsize::new(1),
            done: AtomicUsize::new(0),
            read: std::sync::atomic::AtomicU64::new(0),
            plain,
        }
    }

    /// Whether it counts bytes (else tasks).
    fn by_bytes(&self) -> bool {
        self.bar.length().is_some()
    }
}

impl Callback for ProgressBar {
    fn start(&self, tasks: usize) {
        // Each compute counted (and timed) from its start.
        self.done.store(0, Ordering::Relaxed);
        self.read.store(0, Ordering::Relaxed);
        self.bar.reset();
        self.tasks.store(tasks.max(1), Ordering::Relaxed);
        if !self.by_bytes() {
            self.bar.set_length(tasks.max(1) as u64);
        }
        self.bar.set_message(format!("0/{tasks} tasks"));
    }

    fn task_read(&self, _key: &Key, _worker: usize, bytes: u64) {
        self.read.fetch_add(bytes, Ordering::Relaxed);
        if self.by_bytes() {
            self.bar.inc(bytes);
        }
    }

    fn task_finished(&self, _key: &Key, _worker: usize) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let tasks = self.tasks.load(Ordering::Relaxed);
        self.bar.set_message(format!("{done}/{tasks} tasks"));
        if !self.by_bytes() {
            self.bar.set_position(done as u64);
        }
    }

    fn finish(&self, _stats: &ComputeStats, error: Option<&brisk_scheduler::Error>) {
        let elapsed = self.bar.elapsed();
        self.bar.finish_and_clear();
        let Some(out) = &self.plain else { return };
        let done = self.done.load(Ordering::Relaxed);
        let tasks = self.tasks.load(Ordering::Relaxed);
        let read = brisk_core::text::bytes(self.read.load(Ordering::Relaxed));
        let ended = if error.is_some() { "failed" } else { "done" };
        let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(
            out,
            "{ended}: {done}/{tasks} tasks, {read} read, in {:.2} s",
            elapsed.as_secs_f64()
        );
    }
}

/// Progress as plain lines (on stderr for `--progress always` off a
/// terminal).
struct PlainLines {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    /// When the last line was written: one a second at most.
    last: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for PlainLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainLines").finish_non_exhaustive()
    }
}

impl indicatif::TermLike for PlainLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        if s.trim().is_empty() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return Ok(());
        }
        *last = Some(std::time::Instant::now());
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        writeln!(out, "{}", s.trim_end())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write_line(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}
