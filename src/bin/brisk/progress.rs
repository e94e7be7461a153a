//! Running a computation: threads, the progress bar, `--explain` and `--visualize`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brisk::core::Key;
use brisk::frame::{Frame, Table};
use brisk::graph::{Collection, PlanOptions};
use brisk::scheduler::{Callback, ComputeStats, Scheduler};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::failure::Failure;
use crate::input::Input;
use crate::output::Output;

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

/// How to run.
#[derive(Args)]
pub(crate) struct Run {
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// The memory budget: `512MB`, `2GiB` (default: half the available memory).
    /// Reading waits while results fill it, so reducers catch up.
    #[arg(long, value_name = "SIZE", value_parser = crate::input::parse_size)]
    memory_limit: Option<u64>,
    /// A progress bar on stderr: bytes read of the total, tasks done, rate, ETA.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    progress: Progress,
    /// Print a summary of the task graph (tasks per operation, partitions, files,
    /// bytes) and stop without computing.
    #[arg(long)]
    explain: bool,
    /// Write the task graph in Graphviz DOT form to this file (then compute, unless
    /// --explain is given too): `--visualize graph.dot`, then `dot -Tsvg graph.dot`.
    #[arg(long, value_name = "FILE.dot")]
    visualize: Option<PathBuf>,
}

/// Draws the bar from the scheduler's task events. The bytes shown are the input's
/// size times the fraction of tasks done: reading is most of the tasks.
struct Bar {
    bar: ProgressBar,
    total_bytes: u64,
    tasks: AtomicUsize,
    done: AtomicUsize,
}

impl Callback for Bar {
    fn start(&self, tasks: usize) {
        self.tasks.store(tasks.max(1), Ordering::Relaxed);
        self.bar.set_message(format!("0/{tasks} tasks"));
    }

    fn task_finished(&self, _key: &Key, _worker: usize) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let tasks = self.tasks.load(Ordering::Relaxed);
        self.bar.set_position(self.total_bytes * done as u64 / tasks as u64);
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

impl Run {
    fn scheduler(&self, input: &Input) -> Result<Scheduler, Failure> {
        let threads = match self.threads {
            Some(0) => return Err(Failure::User("--threads must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut scheduler = Scheduler::threads(threads);
        if let Some(bytes) = self.memory_limit {
            scheduler = scheduler.memory_limit(bytes);
        }
        let show = match self.progress {
            Progress::Never => false,
            Progress::Always => true,
            Progress::Auto => std::io::stderr().is_terminal(),
        };
        if show {
            let total_bytes: u64 = input
                .files()
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let target = if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr_with_hz(10)
            } else {
                // Asked for where stderr is a file or a pipe: a plain line a second.
                ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 1)
            };
            let bar = ProgressBar::with_draw_target(Some(total_bytes), target);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {bytes}/{total_bytes} {msg} ({binary_bytes_per_sec}, ETA {eta})",
                )
                .map_err(|e| Failure::Internal(e.to_string()))?,
            );
            let callback =
                Bar { bar, total_bytes, tasks: AtomicUsize::new(1), done: AtomicUsize::new(0) };
            scheduler = scheduler.callback_arc(Arc::new(callback));
        }
        Ok(scheduler)
    }

    /// Handles `--explain` and `--visualize`; `true` when the command should stop.
    pub(crate) fn explain_or_visualize<C: Collection>(
        &self,
        collection: &C,
    ) -> Result<bool, Failure> {
        if !self.explain && self.visualize.is_none() {
            return Ok(false);
        }
        let (graph, keys) = collection.graph()?;
        if let Some(path) = &self.visualize {
            graph.visualize(path).map_err(|e| {
                Failure::User(format!("{}: cannot write the graph: {e}", path.display()))
            })?;
            eprintln!("wrote the task graph to {}", path.display());
        }
        if !self.explain {
            return Ok(false);
        }
        let tasks = graph.len();
        let plan = graph.plan(&keys, PlanOptions::default())?;
        // Tasks per operation: key names without their hash.
        let mut per_op: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..plan.len() {
            let name = plan.op(i).name();
            *per_op.entry(name).or_default() += 1;
        }
        let mut text = format!(
            "task graph: {tasks} tasks, {} after fusing {} linear chains; {} outputs\n",
            plan.len(),
            plan.fused(),
            keys.len()
        );
        for (op, n) in per_op {
            text.push_str(&format!("  {n:>7}  {op}\n"));
        }
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let budget = self.memory_limit.unwrap_or_else(brisk::scheduler::default_memory_budget);
        let origin = if self.memory_limit.is_some() {
            "--memory-limit"
        } else {
            "half the available memory"
        };
        text.push_str(&format!(
            "threads: {threads}\nmemory budget: {:.1} MiB ({origin})",
            budget as f64 / (1u64 << 20) as f64
        ));
        crate::output::print_line(&text)?;
        Ok(true)
    }

    /// Computes a collection on the scheduler these options ask for.
    pub(crate) fn compute<C: Collection>(
        &self,
        collection: &C,
        input: &Input,
    ) -> Result<C::Output, Failure> {
        Ok(self.scheduler(input)?.compute(collection)?)
    }

    /// Computes a table and writes it as `output` asks, unless explaining.
    pub(crate) fn table<C: Collection<Output = Table>>(
        &self,
        collection: &C,
        input: &Input,
        output: &Output,
    ) -> Result<(), Failure> {
        if self.explain_or_visualize(collection)? {
            return Ok(());
        }
        output.check()?;
        let table = self.compute(collection, input)?;
        output.write(&table)
    }

    /// Writes the frame to `to` (CSV or Parquet by extension); the rows written.
    pub(crate) fn convert(
        &self,
        frame: &Frame,
        to: &Path,
        input: &Input,
    ) -> Result<usize, Failure> {
        let lower = to.to_string_lossy().to_ascii_lowercase();
        let scheduler = self.scheduler(input)?;
        if lower.ends_with(".parquet") {
            Ok(frame.to_parquet(to, &scheduler)?)
        } else if lower.ends_with(".csv") {
            Ok(frame.to_csv(to, &scheduler)?)
        } else {
            Err(Failure::User(format!("--to {}: name a .csv or .parquet file", to.display())))
        }
    }
}
