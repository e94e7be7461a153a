//! `brisk`: aggregations over CSV (and Parquet) files from the shell, a thin layer
//! over `brisk-frame`. Exit status 0 on success (and on a closed pipe), 2 for bad
//! input or usage, 1 for an internal error; every failure is one message on stderr.

mod cluster;
mod demo;
mod failure;
mod input;
mod output;
mod progress;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use brisk::frame::{Agg, Frame, parse_aggs, parse_expr_for};
use clap::{Args, Parser, Subcommand};

use crate::failure::Failure;
use crate::input::Input;
use crate::output::Output;
use crate::run::Run;

const ABOUT: &str =
    "Fast aggregations over CSV files: group, aggregate, filter, describe, convert.";

const EXAMPLES: &str = "\
Examples:
  brisk demo
  brisk groupby 'data/*.csv' --by id1
  brisk groupby data.csv --by id1,id2 --agg v1:sum,v3:mean --filter \"v2 > 3\"
  brisk agg data.csv.gz --agg v1:max,v3:std --format json
  brisk count data/ --filter \"id1 == 'id001' and not is_null(v2)\"
  brisk convert 'data/*.csv' --to data.parquet";

#[derive(Parser)]
#[command(name = "brisk", version, about = ABOUT, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Group rows by key columns and aggregate the others; output sorted by the keys.
    #[command(after_help = "\
Examples:
  brisk groupby 'data/*.csv' --by id1                      # mean of every numeric column
  brisk groupby data.csv --by id1,id2 --agg sum
  brisk groupby data.csv --by id3 --agg v1:sum,v3:mean -o out.csv")]
    Groupby {
        #[command(flatten)]
        input: Input,
        /// Key columns, comma-separated (`--by id1,id2`).
        #[arg(long, value_delimiter = ',', required = true, value_name = "COL[,COL...]")]
        by: Vec<String>,
        #[command(flatten)]
        query: Query,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        run: Run,
    },
    /// Aggregate the whole input to one row (no keys).
    #[command(after_help = "\
Examples:
  brisk agg data.csv --agg mean
  brisk agg 'data/*.csv' --agg v1:sum,v1:max,id3:nunique --filter \"v3 > 50\"")]
    Agg {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        query: Query,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        run: Run,
    },
    /// count, mean, std, min, quartiles and max of every numeric column.
    ///
    /// Quartiles interpolate between order statistics as pandas does. They are
    /// exact up to 65,536 values per column; beyond that each order statistic
    /// comes from a quantile sketch (DDSketch) within 0.5% of its value
    /// (values nearer 0 than 1e-9 count as 0). The other statistics are exact.
    #[command(after_help = "Example:\n  brisk describe data.csv --format csv")]
    Describe {
        #[command(flatten)]
        input: Input,
        /// Keep only the rows where this expression holds (see `groupby --help`).
        #[arg(long, value_name = "EXPR")]
        filter: Option<String>,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        run: Run,
    },
    /// The first rows, reading only the partitions they need.
    #[command(
        after_help = "Examples:\n  brisk head data.csv\n  brisk head 'data/*.csv' -n 3 --format json"
    )]
    Head {
        #[command(flatten)]
        input: Input,
        /// How many rows.
        #[arg(short = 'n', long = "rows", default_value_t = 10, value_name = "N")]
        rows: usize,
        #[command(flatten)]
        output: Output,
        #[command(flatten)]
        run: Run,
    },
    /// The number of rows (that pass --filter).
    #[command(after_help = "Example:\n  brisk count 'data/*.csv' --filter \"v1 > 3\"")]
    Count {
        #[command(flatten)]
        input: Input,
        /// Count only the rows where this expression holds (see `groupby --help`).
        #[arg(long, value_name = "EXPR")]
        filter: Option<String>,
        #[command(flatten)]
        run: Run,
    },
    /// The columns and their types, as read (inferred or given with --dtype).
    #[command(after_help = "Example:\n  brisk schema data.csv --dtype id4:str")]
    Schema {
        #[command(flatten)]
        input: Input,
    },
    /// Rewrite the input as one CSV or Parquet file (by the extension of --to).
    #[command(
        after_help = "Examples:\n  brisk convert 'data/*.csv' --to data.parquet\n  brisk convert data.parquet --to data.csv"
    )]
    Convert {
        #[command(flatten)]
        input: Input,
        /// The file to write: `.parquet` or `.csv`; written under a temporary name
        /// and renamed when complete.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        run: Run,
    },
    /// Run a scheduler that workers register with and commands compute on
    /// (`--scheduler ADDR`); its first line of output is its address.
    #[command(after_help = "\
Example:
  brisk scheduler --listen 127.0.0.1:8786
  brisk worker 127.0.0.1:8786 --threads 2      # on each machine, as many as wanted
  brisk groupby data.csv --by id1 --scheduler 127.0.0.1:8786")]
    Scheduler(cluster::SchedulerArgs),
    /// Run a worker registered with a scheduler, until interrupted.
    #[command(
        after_help = "Example:\n  brisk worker 127.0.0.1:8786 --listen 127.0.0.1:0 --threads 2 --memory-limit 4GB"
    )]
    Worker(cluster::WorkerArgs),
    /// Show a scheduler's workers: threads, tasks running, memory held against
    /// the limit, spilled, bytes moved, last heartbeat; or wait for them.
    #[command(
        after_help = "Examples:\n  brisk status --scheduler 127.0.0.1:8786\n  brisk status --scheduler head:8786 --wait-for 4 --timeout 120 --json"
    )]
    Status(cluster::StatusArgs),
    /// Write a small dataset and run Brisk's two sentences on it:
    /// `groupby(id1).mean()` and `random((10000, 10000)).mean()`.
    Demo,
}

/// What to aggregate and which rows.
#[derive(Args)]
struct Query {
    /// One function for every numeric non-key column (`mean`; columns keep their
    /// names); `COL:FN[,COL:FN...]` (columns named `COL_FN`); or named
    /// aggregations of expressions, `NAME=FN(EXPR),...`:
    /// `revenue=sum(price * (1 - discount)),n=count(*),avg_qty=mean(qty)` (a
    /// name left out is the text as written). FN: sum, mean (avg), count, size,
    /// min, max, std, var, first, last, nunique; count(*) counts rows.
    #[arg(long, value_name = "SPEC")]
    agg: Option<String>,
    /// Add a column computed from the others before filtering and grouping,
    /// `NAME=EXPR` (repeatable; later ones may use earlier ones):
    /// `--with 'net=price * (1 - discount)' --with 'yr=year(shipdate)'`.
    #[arg(long = "with", value_name = "NAME=EXPR")]
    with: Vec<String>,
    /// Keep only the rows where this expression holds:
    /// `v1 > 2 and (id1 == 'id001' or v3 <= 10.5)`, `v2 is null`, `not ...`,
    /// `d <= date '1998-12-01' - interval 90 day`, `x between 0.05 and 0.07`,
    /// `k in ('a', 'b')`, `s like 'id%'` / `ilike`, `case when .. then .. else ..
    /// end`, `coalesce(a, b)`, `abs`, `round(x, 2)`, `lower`, `upper`, `length`,
    /// `year(d)`, `month(d)`, `contains(s, '77')`, arithmetic `+ - * /`.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Keep only the result rows (groups) where this expression over the
    /// output's columns holds: `--having 'n > 100 and revenue >= 1e6'`.
    #[arg(long, value_name = "EXPR")]
    having: Option<String>,
    /// Order the result by output columns, each ascending unless followed by
    /// `desc`: `--sort 'revenue desc, k'` (default: by the group keys).
    #[arg(long, value_name = "COL [desc][,...]")]
    sort: Option<String>,
    /// Only the first N result rows (in --sort's order, else the keys'); each
    /// partition's top N is found first, nothing is sorted whole.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// `--agg`, parsed.
enum AggSpec {
    /// One function for every numeric non-key column.
    Each(Agg),
    /// `(column, function)` pairs.
    Pairs(Vec<(String, Agg)>),
}

fn parse_agg(spec: &str) -> Result<AggSpec, Failure> {
    let function = |name: &str| {
        Agg::parse(name.trim()).ok_or_else(|| {
            Failure::User(format!(
                "unknown aggregation '{}' in --agg; use one of sum, mean, count, size, min, max, std, var, first, last, nunique",
                name.trim()
            ))
        })
    };
    if !spec.contains(':') {
        return function(spec).map(AggSpec::Each);
    }
    spec.split(',')
        .map(|pair| match pair.split_once(':') {
            Some((c, f)) if !c.trim().is_empty() => Ok((c.trim().to_string(), function(f)?)),
            _ => Err(Failure::User(format!(
                "--agg: '{pair}' is not COL:FN (for example v1:sum,v3:mean)"
            ))),
        })
        .collect::<Result<_, _>>()
        .map(AggSpec::Pairs)
}

impl Query {
    /// The frame with `--with` columns added and `--filter` applied.
    fn filtered(&self, mut frame: Frame) -> Result<Frame, Failure> {
        for item in &self.with {
            let Some((name, text)) = item.split_once('=') else {
                return Err(Failure::User(format!(
                    "--with: '{item}' is not NAME=EXPR (for example --with 'net=price * (1 - discount)')"
                )));
            };
            let name = name.trim().trim_matches('`');
            if name.is_empty() {
                return Err(Failure::User(format!("--with: '{item}' has no name before '='")));
            }
            let expr = parse_expr_for(text, frame.schema())
                .map_err(|e| Failure::from(e).context(&format!("--with {name}")))?;
            frame = frame.with_column(name, expr)?;
        }
        filtered(frame, self.filter.as_deref())
    }

    /// The result of the aggregation, with `--having`, `--sort` and `--limit`.
    fn finished(&self, result: Frame) -> Result<Frame, Failure> {
        let mut result = match &self.having {
            Some(text) => result.query(text).map_err(|e| Failure::from(e).context("--having"))?,
            None => result,
        };
        let order = match &self.sort {
            Some(spec) => sort_spec(spec)?,
            None => Vec::new(),
        };
        let context = |e: brisk::frame::Error| {
            Failure::from(e).context(if self.sort.is_some() { "--sort" } else { "--limit" })
        };
        result = match (self.limit, order.is_empty()) {
            (Some(n), _) => result.top(n, order).map_err(context)?,
            (None, false) => result.sort_by(order).map_err(context)?,
            (None, true) => result,
        };
        Ok(result)
    }

    /// The aggregation: `--agg` (mean by default when grouping) of `frame`,
    /// grouped by `by` or whole.
    fn aggregated(&self, frame: &Frame, by: Option<&[String]>) -> Result<Frame, Failure> {
        let spec = match (&self.agg, by) {
            (Some(spec), _) => spec.as_str(),
            (None, Some(_)) => "mean",
            (None, None) => {
                return Err(Failure::User(
                    "agg needs --agg (for example --agg mean, --agg v1:sum or --agg 'n=count(*)')"
                        .into(),
                ));
            }
        };
        if spec.contains('(') || spec.contains('=') {
            let aggs =
                parse_aggs(spec, frame.schema()).map_err(|e| Failure::from(e).context("--agg"))?;
            return Ok(match by {
                Some(by) => frame.groupby(by)?.agg_exprs(aggs)?,
                None => frame.agg_exprs(aggs)?,
            });
        }
        Ok(match (parse_agg(spec)?, by) {
            (AggSpec::Each(Agg::Size), Some(by)) => frame.groupby(by)?.size()?,
            (AggSpec::Each(agg), Some(by)) => frame.groupby(by)?.agg_numeric(agg)?,
            (AggSpec::Pairs(pairs), Some(by)) => frame.groupby(by)?.agg(pairs)?,
            (AggSpec::Each(agg), None) => frame.agg_numeric(agg)?,
            (AggSpec::Pairs(pairs), None) => frame.agg(pairs)?,
        })
    }
}

/// `--sort 'a desc, b'` as `(column, descending)` pairs.
fn sort_spec(spec: &str) -> Result<Vec<(String, bool)>, Failure> {
    spec.split(',')
        .map(|item| {
            let words: Vec<&str> = item.split_whitespace().collect();
            let (column, descending) = match words.as_slice() {
                [c] => (*c, false),
                [c, d] if d.eq_ignore_ascii_case("desc") => (*c, true),
                [c, a] if a.eq_ignore_ascii_case("asc") => (*c, false),
                _ => {
                    return Err(Failure::User(format!(
                        "--sort: '{}' is not COL, COL asc or COL desc (for example --sort 'revenue desc, k')",
                        item.trim()
                    )));
                }
            };
            Ok((column.trim_matches('`').to_string(), descending))
        })
        .collect()
}

fn filtered(frame: Frame, filter: Option<&str>) -> Result<Frame, Failure> {
    match filter {
        Some(text) => Ok(frame.query(text).map_err(|e| Failure::from(e).context("--filter"))?),
        None => Ok(frame),
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Groupby { input, by, query, output, run } => {
            let frame = query.filtered(input.open()?)?;
            let result = query.finished(query.aggregated(&frame, Some(&by))?)?;
            run.table(&result, &input, &output)
        }
        Command::Agg { input, query, output, run } => {
            let frame = query.filtered(input.open()?)?;
            let result = query.finished(query.aggregated(&frame, None)?)?;
            run.table(&result, &input, &output)
        }
        Command::Describe { input, filter, output, run } => {
            let frame = filtered(input.open()?, filter.as_deref())?;
            run.table(&frame.describe()?, &input, &output)
        }
        Command::Head { input, rows, output, run } => {
            run.head(&input.open()?, rows, &input, &output)
        }
        Command::Count { input, filter, run } => {
            let frame = filtered(input.open()?, filter.as_deref())?;
            match run.compute(&frame.len(), &input)? {
                Some(rows) => output::print_line(&rows.to_string()),
                None => Ok(()),
            }
        }
        Command::Schema { input } => {
            let frame = input.open()?;
            let lines: Vec<String> = frame
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{}\t{}", f.name(), f.data_type()))
                .collect();
            output::print_line(&lines.join("\n"))
        }
        Command::Convert { input, to, run } => {
            let frame = input.open()?;
            if let Some(rows) = run.convert(&frame, &to, &input)? {
                eprintln!("wrote {rows} rows to {}", to.display());
            }
            Ok(())
        }
        Command::Scheduler(args) => cluster::scheduler(args),
        Command::Worker(args) => cluster::worker(args),
        Command::Status(args) => cluster::status(args),
        Command::Demo => demo::run(),
    }
}

/// Set by the Ctrl-C handler before it starts removing files.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ctrl-C, SIGTERM (`timeout`, `docker stop`, Kubernetes) or SIGHUP: remove what
/// this run was writing (a half-written output or its parts; spilled results are
/// in an unnamed file the system takes back) and exit with the conventional
/// status.
fn on_interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    brisk::core::remove_pending();
    // Uploads to object stores in progress: aborted, so no parts stay stored.
    brisk::frame::abort_uploads();
    eprintln!("interrupted");
    std::process::exit(130);
}

fn main() -> ExitCode {
    // Before any thread starts (the interrupt handler's is the first).
    brisk::scheduler::settle_allocator();
    // A worker process of `--processes` runs the worker here and never returns.
    brisk::worker_if_asked();
    failure::quiet_panics();
    // Without a handler the process would still stop; only the cleanup would be lost.
    let _ = ctrlc::set_handler(on_interrupt);
    let cli = Cli::parse();
    let result = run(cli.command);
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        // The compute failed because the handler removed its spill files; the
        // handler reports the interrupt and exits once its cleanup is done.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::User(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Internal(message)) => {
            eprintln!("internal error: {message}\n(this is a bug in brisk; please report it)");
            ExitCode::from(1)
        }
    }
}
