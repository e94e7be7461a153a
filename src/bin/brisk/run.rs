//! Running a command's computation: the scheduler its options ask for (threads,
//! memory budget, progress bar), `--explain` and `--visualize`, and the compute.
//! Every command that computes goes through here.

use std::path::{Path, PathBuf};

use brisk::frame::{Frame, Table};
use brisk::graph::Collection;
use brisk::scheduler::Scheduler;
use clap::Args;

use crate::failure::Failure;
use crate::input::Input;
use crate::output::Output;
use crate::progress::Progress;

/// How to run.
#[derive(Args)]
pub(crate) struct Run {
    /// Worker threads (default: one per core; at most 8 per core, or 64). With
    /// --processes: threads per worker process (default: the cores shared).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Run on N worker processes on this machine (a local cluster, as Dask's
    /// LocalCluster) instead of threads in this one; they end with the command.
    /// --memory-limit is then each worker's.
    #[arg(long, value_name = "N", conflicts_with = "scheduler")]
    processes: Option<usize>,
    /// Compute on the cluster of the scheduler at ADDR (`brisk scheduler`,
    /// `brisk worker`) instead of on this machine's threads. The workers read
    /// the input: give paths valid where they run (absolute, or relative to the
    /// directory they were started in).
    #[arg(long, value_name = "ADDR", value_parser = crate::cluster::resolve)]
    scheduler: Option<std::net::SocketAddr>,
    /// With --scheduler: the cluster's token or certificates.
    #[command(flatten)]
    security: crate::cluster::SecurityArgs,
    /// The memory budget: `512MB`, `2GiB` (default: half the available memory).
    /// Reading waits while results fill it, so reducers catch up.
    #[arg(long, value_name = "SIZE", value_parser = crate::input::parse_size)]
    memory_limit: Option<u64>,
    /// A progress bar on stderr: bytes read of the total, tasks done, rate, ETA.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    progress: Progress,
    /// Print what is read (files, bytes, partitions) and a summary of the task
    /// graph (tasks per operation, threads, memory budget), and stop without
    /// computing.
    #[arg(long)]
    explain: bool,
    /// Draw the task graph to this file, by layer (one box per operation with
    /// its task count), then compute unless --explain is given too: `.svg`
    /// (drawn here, no Graphviz needed), `.png` (with Graphviz's dot), `.dot`.
    #[arg(long, value_name = "FILE.svg")]
    visualize: Option<PathBuf>,
    /// With --visualize: draw every task, not the layers (small graphs only).
    #[arg(long, requires = "visualize")]
    tasks: bool,
    /// Write a performance report of the compute to this HTML file (one file
    /// that opens without a network): the task stream per worker, memory held
    /// against the budget with the spills, time and bytes per operation, the
    /// plan and the environment.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Serve a live dashboard while the command runs (progress per operation,
    /// the task stream, memory held, each worker's memory): `--dashboard` on
    /// 127.0.0.1:8787, `--dashboard=PORT` or `--dashboard=HOST:PORT` elsewhere
    /// (port 0 picks a free one); open the address it prints in a browser.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = crate::cluster::DASHBOARD, value_parser = crate::cluster::dashboard_addr)]
    dashboard: Option<std::net::SocketAddr>,
}

impl Run {
    /// The scheduler these options ask for (threads, memory budget).
    fn scheduler(&self) -> Result<Scheduler, Failure> {
        if let Some(n) = self.processes {
            return self.processes(n);
        }
        if let Some(addr) = self.scheduler {
            use brisk::Processes;
            return Ok(Scheduler::connect_with(addr, self.security.security()?)?);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // More threads than this only slow a compute down (each is started and
        // scheduled), and thousands took minutes to start.
        let most = (8 * cores).max(64);
        let mut scheduler = match self.threads {
            Some(0) => return Err(Failure::User("--threads must be at least 1".into())),
            Some(n) if n > most => {
                return Err(Failure::User(format!(
                    "--threads {n} is more than this machine can use ({cores} cores): give at most {most}, or leave it out for one per core"
                )));
            }
            Some(n) => Scheduler::threads(n),
            None => Scheduler::default(),
        };
        if let Some(bytes) = self.memory_limit {
            scheduler = scheduler.memory_limit(bytes);
        }
        Ok(scheduler)
    }

    /// A local cluster of `n` worker processes, threads and memory as asked.
    fn processes(&self, n: usize) -> Result<Scheduler, Failure> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if n == 0 || n > 4 * cores {
            return Err(Failure::User(format!(
                "--processes {n}: give between 1 and {} ({cores} cores here)",
                4 * cores
            )));
        }
        let mut spawn = brisk::distributed::Spawn::new(n);
        if let Some(threads) = self.threads {
            spawn.threads = threads.clamp(1, 8 * cores);
        }
        if let Some(bytes) = self.memory_limit {
            spawn.memory_limit = bytes;
        }
        use brisk::Processes;
        Ok(Scheduler::processes_with(&spawn)?)
    }

    /// The scheduler to compute on: [`scheduler`](Self::scheduler) with the
    /// progress bar for `input`, when one is drawn.
    fn computing(&self, input: &Input) -> Result<Scheduler, Failure> {
        let scheduler = self.scheduler()?;
        Ok(match self.progress.bar(|| input.files().1)? {
            Some(bar) => scheduler.callback_arc(bar),
            None => scheduler,
        })
    }

    /// The `--dashboard`, serving, when asked for.
    fn dashboard(&self) -> Result<Option<brisk::diagnostics::Dashboard>, Failure> {
        self.dashboard.map(crate::cluster::serve_dashboard).transpose()
    }

    /// Runs `compute` on the scheduler to compute `collection` on, and writes
    /// the `--report` of what it did (whether it succeeded or not).
    fn reported<C: Collection + ?Sized, T>(
        &self,
        collection: &C,
        input: &Input,
        compute: impl FnOnce(&Scheduler) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut scheduler = self.computing(input)?;
        let dashboard = self.dashboard()?;
        if let Some(dashboard) = &dashboard {
            scheduler = scheduler.callback_arc(dashboard.callback());
        }
        let Some(path) = &self.report else { return compute(&scheduler) };
        use brisk::diagnostics::{Profiler, Report, ResourceProfiler};
        let profiler = std::sync::Arc::new(Profiler::new());
        let resources =
            std::sync::Arc::new(ResourceProfiler::new(std::time::Duration::from_millis(20)));
        let plan = scheduler.explain(collection).ok();
        let scheduler = scheduler.callback_arc(profiler.clone()).callback_arc(resources.clone());
        let started = std::time::Instant::now();
        let out = compute(&scheduler);
        let (files, bytes) = input.files();
        let mut environment = brisk::diagnostics::environment();
        environment.push(("threads".into(), scheduler.num_threads().to_string()));
        environment
            .push(("memory budget".into(), brisk::core::text::bytes(scheduler.memory_budget())));
        environment.push((
            "inputs".into(),
            format!("{} files, {}", files.len(), brisk::core::text::bytes(bytes)),
        ));
        let report = Report {
            title: format!("brisk {}", crate::input::shown_args(std::env::args().skip(1))),
            profile: profiler.profile(),
            resources: resources.samples(),
            elapsed: started.elapsed(),
            plan,
            environment,
        };
        report.write(path).map_err(|e| {
            Failure::User(format!("{}: cannot write the report: {e}", path.display()))
        })?;
        eprintln!("wrote the performance report to {}", path.display());
        out
    }

    /// Handles `--explain` and `--visualize` for `collection`; `true` when the
    /// command should stop there.
    fn explain_or_visualize<C: Collection + ?Sized>(
        &self,
        collection: &C,
        input: &Input,
    ) -> Result<bool, Failure> {
        if let Some(path) = &self.visualize {
            let (graph, _) = collection.graph()?;
            let drawn = match self.tasks {
                true => graph.visualize_tasks(path),
                false => graph.visualize(path),
            };
            drawn.map_err(|e| {
                Failure::User(format!("{}: cannot write the graph: {e}", path.display()))
            })?;
            eprintln!("wrote the task graph to {}", path.display());
        }
        if !self.explain {
            return Ok(false);
        }
        // What is read: files, their size on disk, the partitions they make.
        let (files, bytes) = input.files();
        let partitions = input.open()?.npartitions();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        crate::output::print_line(&format!(
            "input: {}, {} on disk, {}",
            plural(files.len(), "file"),
            brisk::core::text::bytes(bytes),
            plural(partitions, "partition")
        ))?;
        crate::output::print_line(&self.scheduler()?.explain(collection)?)?;
        Ok(true)
    }

    /// Computes `collection` on the scheduler these options ask for; `None` when
    /// `--explain` stopped the command.
    pub(crate) fn compute<C: Collection>(
        &self,
        collection: &C,
        input: &Input,
    ) -> Result<Option<C::Output>, Failure> {
        if self.explain_or_visualize(collection, input)? {
            return Ok(None);
        }
        self.reported(collection, input, |s| Ok(Some(s.compute(collection)?)))
    }

    /// Computes a table and writes it as `output` asks, unless explaining.
    pub(crate) fn table<C: Collection<Output = Table>>(
        &self,
        collection: &C,
        input: &Input,
        output: &Output,
    ) -> Result<(), Failure> {
        if self.explain_or_visualize(collection, input)? {
            return Ok(());
        }
        output.check()?;
        let table = self.reported(collection, input, |s| Ok(s.compute(collection)?))?;
        output.write(&table, input)
    }

    /// The first `rows` rows of `frame`, written as `output` asks, reading only the
    /// partitions they need; `--explain` shows the whole frame's graph.
    pub(crate) fn head(
        &self,
        frame: &Frame,
        rows: usize,
        input: &Input,
        output: &Output,
    ) -> Result<(), Failure> {
        if self.explain_or_visualize(frame, input)? {
            return Ok(());
        }
        output.check()?;
        let table = self.reported(frame, input, |s| Ok(frame.head_on(rows, s)?))?;
        output.write(&table, input)
    }

    /// Writes the frame to `to` (CSV or Parquet by extension); the rows written, or
    /// `None` when `--explain` stopped the command (it shows the graph of what is
    /// read; the writing tasks add one per partition).
    pub(crate) fn convert(
        &self,
        frame: &Frame,
        to: &Path,
        input: &Input,
    ) -> Result<Option<usize>, Failure> {
        let lower = to.to_string_lossy().to_ascii_lowercase();
        let parquet = lower.ends_with(".parquet");
        if !parquet && !lower.ends_with(".csv") {
            return Err(Failure::User(format!(
                "--to {}: name a .csv or .parquet file",
                to.display()
            )));
        }
        if self.explain_or_visualize(frame, input)? {
            return Ok(None);
        }
        let storage = input.storage();
        let rows = self.reported(frame, input, |scheduler| {
            Ok(match parquet {
                true => frame.to_parquet_with(to, &storage, scheduler)?,
                false => frame.to_csv_with(to, &storage, scheduler)?,
            })
        })?;
        Ok(Some(rows))
    }
}
