//! `brisk scheduler` and `brisk worker`: a cluster started by hand (or by a
//! launcher), which commands use with `--scheduler ADDR`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;

use brisk::distributed::{SchedulerServer, Timing, serve_worker};
use clap::Args;

use crate::failure::Failure;

/// `brisk scheduler`'s options.
#[derive(Args)]
pub(crate) struct SchedulerArgs {
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8786")]
    listen: SocketAddr,
}

/// `brisk worker`'s options.
#[derive(Args)]
pub(crate) struct WorkerArgs {
    /// The scheduler's address, as `brisk scheduler` printed it.
    #[arg(value_name = "SCHEDULER_ADDR")]
    scheduler: SocketAddr,
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Threads running tasks (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// The bytes of results this worker holds in memory, `4GB`; past them it
    /// spills the oldest to disk in TMPDIR (default: half the available memory).
    #[arg(long, value_name = "SIZE", value_parser = crate::input::parse_size)]
    memory_limit: Option<u64>,
}

/// Never set: the scheduler and workers run until interrupted.
static RUNNING_FOREVER: AtomicBool = AtomicBool::new(false);

/// Runs a scheduler until interrupted; its first line of output is its address.
pub(crate) fn scheduler(args: SchedulerArgs) -> Result<(), Failure> {
    let server = SchedulerServer::start(args.listen, Timing::default())
        .map_err(|e| Failure::User(e.to_string()))?;
    let addr = server.addr();
    // Its output may be closed once the address is read (a launcher, a test):
    // the scheduler goes on all the same.
    let _ = crate::output::print_line(&format!(
        "brisk scheduler listening on {addr}\nstart workers with: brisk worker {addr} --listen 127.0.0.1:0\nuse it with: brisk COMMAND ... --scheduler {addr}"
    ));
    loop {
        std::thread::park();
    }
}

/// Runs a worker registered with a scheduler until interrupted; its first line
/// of output is its address.
pub(crate) fn worker(args: WorkerArgs) -> Result<(), Failure> {
    brisk::scheduler::settle_worker_allocator();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores).clamp(1, 8 * cores);
    let memory = args.memory_limit.unwrap_or_else(brisk::scheduler::default_memory_budget);
    let scheduler = args.scheduler;
    serve_worker(scheduler, args.listen, brisk::ops(), threads, memory, &RUNNING_FOREVER, |addr| {
        let _ = crate::output::print_line(&format!(
            "brisk worker listening on {addr}, registered with the scheduler at {scheduler}"
        ));
    })
    .map_err(Failure::User)
}
