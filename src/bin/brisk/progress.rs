//! The progress bar: drawn from the scheduler's task events, on a terminal or as
//! plain lines.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brisk::core::Key;
use brisk::scheduler::{Callback, ComputeStats};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::failure::Failure;

/// When to draw the progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Progress {
    /// When standard error is a terminal.
    Auto,
    /// Always (on standard error).
    Always,
    /// Never.
    Never,
}

impl Progress {
    /// The bar for a compute reading `total_bytes()`, when one should be drawn (the
    /// input is sized only then).
    pub(crate) fn bar(
        self,
        total_bytes: impl FnOnce() -> u64,
    ) -> Result<Option<Arc<dyn Callback>>, Failure> {
        let show = match self {
            Progress::Never => false,
            Progress::Always => true,
            Progress::Auto => std::io::stderr().is_terminal(),
        };
        if !show {
            return Ok(None);
        }
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            // Asked for where stderr is a file or a pipe: a plain line a second.
            ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 1)
        };
        let total_bytes = total_bytes();
        let bar = ProgressBar::with_draw_target(Some(total_bytes), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {msg} ({binary_bytes_per_sec}, ETA {eta})",
            )
            .map_err(|e| Failure::Internal(e.to_string()))?,
        );
        Ok(Some(Arc::new(Bar { bar, tasks: AtomicUsize::new(1), done: AtomicUsize::new(0) })))
    }
}

/// Draws the bar from the scheduler's task events: the bytes the read tasks
/// really read, of the input's size (so the rate and ETA are the reading's).
struct Bar {
    bar: ProgressBar,
    tasks: AtomicUsize,
    done: AtomicUsize,
}

impl Callback for Bar {
    fn start(&self, tasks: usize) {
        self.tasks.store(tasks.max(1), Ordering::Relaxed);
        self.bar.set_message(format!("0/{tasks} tasks"));
    }

    fn task_read(&self, _key: &Key, _worker: usize, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn task_finished(&self, _key: &Key, _worker: usize) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let tasks = self.tasks.load(Ordering::Relaxed);
        self.bar.set_message(format!("{done}/{tasks} tasks"));
    }

    fn finish(&self, _stats: &ComputeStats, _error: Option<&brisk::scheduler::Error>) {
        self.bar.finish_and_clear();
    }
}

/// Progress as plain lines on stderr, for `--progress always` off a terminal.
#[derive(Debug, Default)]
struct PlainLines {
    /// When the last line was written: one a second at most.
    last: std::sync::Mutex<Option<std::time::Instant>>,
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
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return Ok(());
        }
        *last = Some(std::time::Instant::now());
        use std::io::Write;
        writeln!(std::io::stderr().lock(), "{}", s.trim_end())
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
