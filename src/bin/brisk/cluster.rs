//! `brisk scheduler` and `brisk worker`: a cluster started by hand (or by a
//! launcher), which commands use with `--scheduler ADDR`; and the options that
//! say how every one of them proves itself (`--token`, `--tls-*`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use brisk::distributed::{SchedulerServer, Security, Timing, WorkerOptions, serve_worker};
use clap::Args;

use crate::failure::Failure;

/// How this process proves itself to a cluster, and checks who calls it.
#[derive(Args, Clone, Default)]
pub(crate) struct SecurityArgs {
    /// The cluster's shared secret: its scheduler, workers and clients all give
    /// the same. Needed to listen outside 127.0.0.0/8 (or TLS); better given in
    /// BRISK_TOKEN than here, where other users of the machine can see it.
    #[arg(long, value_name = "TOKEN", env = "BRISK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Mutual TLS: the certificate (PEM) of the authority that signed every
    /// node's certificate. With --tls-cert and --tls-key.
    #[arg(long, value_name = "FILE", env = "BRISK_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// Mutual TLS: this process's certificate (PEM).
    #[arg(long, value_name = "FILE", env = "BRISK_TLS_CERT", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// Mutual TLS: this process's private key (PEM).
    #[arg(long, value_name = "FILE", env = "BRISK_TLS_KEY", requires = "tls_ca")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: the name to check in servers' certificates instead of the
    /// address dialled (one certificate for a whole cluster).
    #[arg(long, value_name = "NAME", env = "BRISK_TLS_SERVER_NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
}

impl SecurityArgs {
    /// The token and TLS these options give.
    pub(crate) fn security(&self) -> Result<Security, Failure> {
        let mut security = Security::none();
        if let Some(token) = &self.token {
            security = security.token(token).map_err(|e| Failure::User(format!("--token: {e}")))?;
        }
        if let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            security = security.tls_files(ca, cert, key).map_err(Failure::User)?;
        }
        if let Some(name) = &self.tls_server_name {
            security = security.server_name(name);
        }
        Ok(security)
    }

    /// The options a worker or client of this cluster needs, as a command line
    /// shows them: TLS files (each node gives its own certificate and key), and
    /// a note for the token, which is never printed nor put on a command line.
    fn shown(&self) -> (String, &'static str) {
        let mut shown = String::new();
        for (flag, path) in [("ca", &self.tls_ca), ("cert", &self.tls_cert), ("key", &self.tls_key)]
        {
            if let Some(path) = path {
                shown.push_str(&format!(" --tls-{flag} '{}'", path.display()));
            }
        }
        if let Some(name) = &self.tls_server_name {
            shown.push_str(&format!(" --tls-server-name {name}"));
        }
        let note = match self.token {
            Some(_) => "\n(with the same token in BRISK_TOKEN)",
            None => "",
        };
        (shown, note)
    }
}

/// `HOST:PORT` as an address: a name is looked up (a Kubernetes service, a
/// Slurm node), the first address found taken.
pub(crate) fn resolve(text: &str) -> Result<SocketAddr, String> {
    let mut found = text.to_socket_addrs().map_err(|e| {
        format!("{text:?} is not an address: give HOST:PORT, such as 127.0.0.1:8786 ({e})")
    })?;
    found.next().ok_or_else(|| format!("{text:?}: the name has no address"))
}

/// Where `--dashboard` listens when given no address (Dask's port).
pub(crate) const DASHBOARD: &str = "127.0.0.1:8787";

/// A `--dashboard` address: `PORT` (on 127.0.0.1) or `HOST:PORT`.
pub(crate) fn dashboard_addr(text: &str) -> Result<SocketAddr, String> {
    match text.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => resolve(text),
    }
}

/// Serves a dashboard at `addr` and says where on stderr.
pub(crate) fn serve_dashboard(addr: SocketAddr) -> Result<brisk::diagnostics::Dashboard, Failure> {
    let dashboard = brisk::diagnostics::Dashboard::serve(addr).map_err(|e| {
        Failure::User(format!(
            "--dashboard {addr}: cannot listen there ({e}); give another port, or 0 for any free one"
        ))
    })?;
    let open = match addr.ip().is_loopback() {
        true => "",
        false => " (not a loopback address: whoever reaches it sees the computes)",
    };
    eprintln!("dashboard at {}{open}", dashboard.url());
    Ok(dashboard)
}

/// `brisk scheduler`'s options.
#[derive(Args)]
pub(crate) struct SchedulerArgs {
    /// The address to listen on (port 0 picks a free one). Outside
    /// 127.0.0.0/8 (`0.0.0.0:8786` for every interface) it needs --token or TLS.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8786")]
    listen: SocketAddr,
    /// Serve a live dashboard of the computes it runs and its workers' memory:
    /// `--dashboard` on 127.0.0.1:8787, `--dashboard=PORT` or
    /// `--dashboard=HOST:PORT` elsewhere.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = DASHBOARD, value_parser = dashboard_addr)]
    dashboard: Option<SocketAddr>,
    #[command(flatten)]
    security: SecurityArgs,
}

/// `brisk worker`'s options.
#[derive(Args)]
pub(crate) struct WorkerArgs {
    /// The scheduler's address, HOST:PORT, as `brisk scheduler` printed it.
    #[arg(value_name = "SCHEDULER_ADDR", value_parser = resolve)]
    scheduler: SocketAddr,
    /// The address to listen on (port 0 picks a free one). Outside 127.0.0.0/8
    /// (`0.0.0.0:0` for every interface) it needs --token or TLS.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The address the scheduler and the other workers reach this one at, when
    /// not the one it listens on (default, listening on 0.0.0.0: the address
    /// it reaches the scheduler from).
    #[arg(long, value_name = "IP")]
    contact_address: Option<IpAddr>,
    /// Threads running tasks (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// The bytes of results this worker holds in memory, `4GB`; past them it
    /// spills the oldest to disk in TMPDIR (default: half the available memory).
    #[arg(long, value_name = "SIZE", value_parser = crate::input::parse_size)]
    memory_limit: Option<u64>,
    #[command(flatten)]
    security: SecurityArgs,
}

/// Never set: the scheduler and workers run until interrupted.
static RUNNING_FOREVER: AtomicBool = AtomicBool::new(false);

/// Runs a scheduler until interrupted; its first line of output is its address.
pub(crate) fn scheduler(args: SchedulerArgs) -> Result<(), Failure> {
    let security = args.security.security()?;
    let server = SchedulerServer::start(args.listen, Timing::default(), &security)
        .map_err(|e| Failure::User(e.to_string()))?;
    let addr = server.addr();
    // Listening on every interface: workers dial this host by its name.
    let (reach, listen) = match addr.ip().is_unspecified() {
        true => (format!("{}:{}", host_name(), addr.port()), "0.0.0.0:0"),
        false if addr.ip().is_loopback() => (addr.to_string(), "127.0.0.1:0"),
        false => (addr.to_string(), "0.0.0.0:0"),
    };
    let (shown, note) = args.security.shown();
    // Its output may be closed once the address is read (a launcher, a test):
    // the scheduler goes on all the same.
    let _ = crate::output::print_line(&format!(
        "brisk scheduler listening on {addr}\nstart workers with: brisk worker {reach} --listen {listen}{shown}\nuse it with: brisk COMMAND ... --scheduler {reach}{shown}{note}"
    ));
    let Some(at) = args.dashboard else {
        loop {
            std::thread::park();
        }
    };
    let dashboard = serve_dashboard(at)?;
    let server = std::sync::Arc::new(server);
    let heard = server.clone();
    dashboard.workers_from(move || {
        heard
            .workers()
            .into_iter()
            .map(|w| brisk::diagnostics::WorkerMemory {
                name: w.addr.to_string(),
                held: w.hello.held_bytes,
                limit: w.hello.memory_limit,
                running: Some(w.hello.running),
            })
            .collect()
    });
    // Every compute it runs for its clients is heard.
    server.add_callback(dashboard.callback());
    loop {
        std::thread::park();
    }
}

/// This machine's name, for the addresses printed (or a placeholder).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "THIS_HOST".into())
}

/// Runs a worker registered with a scheduler until interrupted; its first line
/// of output is its address.
pub(crate) fn worker(args: WorkerArgs) -> Result<(), Failure> {
    brisk::scheduler::settle_worker_allocator();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores).clamp(1, 8 * cores);
    let memory = args.memory_limit.unwrap_or_else(brisk::scheduler::default_memory_budget);
    let mut options = WorkerOptions::new(args.listen, threads, memory);
    options.contact = args.contact_address;
    options.security = args.security.security()?;
    let scheduler = args.scheduler;
    serve_worker(scheduler, &options, brisk::ops(), &RUNNING_FOREVER, |addr| {
        let _ = crate::output::print_line(&format!(
            "brisk worker listening on {addr}, registered with the scheduler at {scheduler}"
        ));
    })
    .map_err(Failure::User)
}

/// `brisk status`'s options.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The scheduler's address, HOST:PORT.
    #[arg(long, value_name = "ADDR", value_parser = resolve)]
    scheduler: SocketAddr,
    /// Wait until at least N workers have joined (a launcher starting a
    /// cluster), then print.
    #[arg(long, value_name = "N")]
    wait_for: Option<usize>,
    /// How long --wait-for may wait, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// Print JSON (one object: the version and each worker's state) instead
    /// of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    security: SecurityArgs,
}

/// Prints each worker of a scheduler as it last heard it: threads, memory
/// held against its limit, spilled, tasks running, bytes moved, last heartbeat.
pub(crate) fn status(args: StatusArgs) -> Result<(), Failure> {
    let security = args.security.security()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout);
    let hello = loop {
        let hello = brisk::distributed::scheduler_status(args.scheduler, security.clone());
        let joined = hello.as_ref().map_or(0, |h| h.workers.len());
        // Refused (no token, a wrong one): waiting cannot help.
        if let Err(e) = &hello
            && e.to_string().contains("refused")
        {
            return Err(Failure::User(e.to_string()));
        }
        match args.wait_for {
            Some(n) if joined < n && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Some(n) if joined < n => {
                let why = match hello {
                    Ok(_) => format!("{joined} of {n} workers joined"),
                    Err(e) => e.to_string(),
                };
                return Err(Failure::User(format!(
                    "waited {}s for {n} workers at {}: {why}",
                    args.timeout, args.scheduler
                )));
            }
            _ => break hello.map_err(|e| Failure::User(e.to_string()))?,
        }
    };
    if args.json {
        let text = serde_json::to_string_pretty(&hello)
            .map_err(|e| Failure::User(format!("cannot write JSON: {e}")))?;
        return crate::output::print_line(&text);
    }
    let mut lines = vec![format!(
        "scheduler {} (Brisk {}): {} workers",
        args.scheduler,
        hello.version,
        hello.workers.len()
    )];
    lines.push(format!(
        "{:<22} {:>7} {:>9} {:>10} {:>10} {:>10} {:>7} {:>10} {:>10} {:>8}",
        "worker",
        "threads",
        "running",
        "held",
        "limit",
        "spilled",
        "results",
        "sent",
        "received",
        "heard"
    ));
    for w in &hello.workers {
        let h = &w.hello;
        lines.push(format!(
            "{:<22} {:>7} {:>9} {:>10} {:>10} {:>10} {:>7} {:>10} {:>10} {:>6}ms",
            w.addr.to_string(),
            h.threads,
            h.running,
            bytes(h.held_bytes),
            bytes(h.memory_limit),
            bytes(h.spilled_bytes),
            h.held,
            bytes(h.sent_bytes),
            bytes(h.received_bytes),
            w.since_heard_ms
        ));
    }
    crate::output::print_line(&lines.join("\n"))
}

/// Bytes for people: `512 B`, `3.2 MB`, `1.5 GB`.
fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}
