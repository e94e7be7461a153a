//! [`Dashboard`]: the views of the performance report, live, in a browser
//! (Dask's dashboard): progress per operation, the task stream, memory held
//! against the budget with the spills, and each worker's memory. Served over
//! HTTP; the page updates itself from server-sent events, drawn here (no
//! script or style fetched from anywhere).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use brisk_scheduler::{Callback, ComputeStats, TaskDone};

use super::report::{OpRow, STYLE, escape, memory_chart, mib, op_table, task_stream};
use super::{MemorySample, TaskRecord};

/// Tasks the live task stream shows: the latest.
const RECENT_TASKS: usize = 2_000;
/// Memory samples kept: at most one per [`SAMPLE_EVERY`], the latest.
const MEMORY_SAMPLES: usize = 3_000;
/// Memory held is sampled at most this often (it is told after every task).
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// How often an open page is sent what changed.
const UPDATE_EVERY: Duration = Duration::from_millis(250);

/// How often the views are sent anew when the workers table has a source of
/// its own.
const WORKERS_EVERY: Duration = Duration::from_secs(1);

/// A worker's memory and load, as the dashboard's workers table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerMemory {
    /// Its name: its address, or its number in the compute.
    pub name: String,
    /// Bytes of results it holds.
    pub held: u64,
    /// The bytes it may hold before it spills.
    pub limit: u64,
    /// Tasks running or waiting on it, when known.
    pub running: Option<u64>,
}

/// Where the workers table comes from when the computes' own accounts are not
/// enough (a scheduler process between computes).
type WorkerSource = Arc<dyn Fn() -> Vec<WorkerMemory> + Send + Sync>;

/// A live dashboard of every compute it listens to (Dask's dashboard),
/// served on an HTTP address until it is dropped: open its
/// [`url`](Self::url) in a browser. Add [`callback`](Self::callback) to a
/// scheduler, or to every compute of the process with
/// [`brisk_scheduler::with_callback`].
///
/// ```no_run
/// use brisk::prelude::*;
/// let dashboard = brisk::diagnostics::Dashboard::serve("127.0.0.1:8787")?;
/// eprintln!("dashboard at {}", dashboard.url());
/// let x = random(&[20_000, 20_000], &[1_000, 1_000], 1)?;
/// let mean: f64 = brisk_scheduler::with_callback(dashboard.callback(), || {
///     x.mean(Axes::all()).compute()
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Dashboard {
    live: Arc<Live>,
    addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("addr", &self.addr).finish()
    }
}

impl Dashboard {
    /// Serves a dashboard on `addr` (`127.0.0.1:8787`; port 0 picks a free
    /// one). Anyone who can reach the address sees the computes' keys and
    /// figures: keep it on a loopback address unless that is wanted.
    pub fn serve(addr: impl ToSocketAddrs) -> std::io::Result<Dashboard> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let live = Arc::new(Live::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let served = live.clone();
        let server =
            std::thread::Builder::new().name("brisk-dashboard".into()).spawn(move || {
                runtime.block_on(serve(listener, served, stopped));
                // Open pages' event streams are cut here, not waited for.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Dashboard { live, addr, stop: Some(stop), server: Some(server) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its page's address, `http://127.0.0.1:8787/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// What listens to computes for it: add it to a scheduler
    /// ([`Scheduler::callback_arc`](brisk_scheduler::Scheduler::callback_arc))
    /// or to every compute ([`brisk_scheduler::with_callback`]).
    pub fn callback(&self) -> Arc<dyn Callback> {
        self.live.clone()
    }

    /// Fills the workers table from `source` (a scheduler's view of its
    /// workers, heard between computes too) instead of from the computes.
    pub fn workers_from(&self, source: impl Fn() -> Vec<WorkerMemory> + Send + Sync + 'static) {
        *self.live.workers_from.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::new(source));
        self.live.changed();
    }

    /// The dashboard's views as they are now: the HTML the page shows.
    pub fn html(&self) -> String {
        self.live.render()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Serves the page and its event stream until `stopped` says so.
async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    use axum::routing::get;
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let page = {
        let live = live.clone();
        move |headers: axum::http::HeaderMap| {
            let html = page(&live.render());
            async move {
                match refused(loopback, &headers) {
                    Some(refusal) => Err(refusal),
                    None => Ok(axum::response::Html(html)),
                }
            }
        }
    };
    let events = {
        let stopped = stopped.clone();
        move |headers: axum::http::HeaderMap| {
            let stream = events(live.clone(), stopped.clone());
            async move {
                match refused(loopback, &headers) {
                    Some(refusal) => Err(refusal),
                    None => Ok(axum::response::sse::Sse::new(stream)),
                }
            }
        }
    };
    let app = axum::Router::new().route("/", get(page)).route("/events", get(events));
    tokio::select! {
        _ = axum::serve(listener, app) => {}
        _ = stopped.wait_for(|stop| *stop) => {}
    }
}

/// Why a request is refused, if it is: on a loopback address, one naming
/// another host (a web page elsewhere reaching it through a name it made point
/// here: DNS rebinding).
fn refused(
    loopback: bool,
    headers: &axum::http::HeaderMap,
) -> Option<(axum::http::StatusCode, &'static str)> {
    if !loopback {
        return None;
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let local = name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match local {
        true => None,
        false => Some((
            axum::http::StatusCode::FORBIDDEN,
            "this dashboard answers only to a loopback address or localhost\n",
        )),
    }
}

/// The views, sent to an open page whenever they changed (at most every
/// [`UPDATE_EVERY`]), until the dashboard stops.
fn events(
    live: Arc<Live>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>> {
    // The last version sent and when; none yet.
    let state = (live, stopped, None::<(u64, Instant)>);
    futures::stream::unfold(state, |(live, mut stopped, sent)| async move {
        loop {
            let version = live.version.load(Ordering::Acquire);
            // A workers source changes on its own (heartbeats): sent anew
            // every second.
            let stale = sent.is_none_or(|(v, at)| {
                v != version || (live.has_workers_source() && at.elapsed() >= WORKERS_EVERY)
            });
            if stale {
                let html = live.render();
                let event = axum::response::sse::Event::default().event("update").data(html);
                return Some((Ok(event), (live, stopped, Some((version, Instant::now())))));
            }
            tokio::select! {
                _ = tokio::time::sleep(UPDATE_EVERY) => {}
                _ = stopped.wait_for(|stop| *stop) => return None,
            }
        }
    })
}

/// The whole page: the views as they are, and a script that replaces them
/// with each update (`data-updates` counts the updates received).
fn page(views: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Brisk dashboard</title>\n<style>{STYLE}{DASHBOARD_STYLE}</style></head><body data-updates=\"0\">\n<h1>Brisk dashboard <span id=\"connection\">connecting</span></h1>\n<div id=\"live\">{views}</div>\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
}

const DASHBOARD_STYLE: &str =
    "#connection{font-size:0.5em;color:#888;font-weight:normal}progress{width:12em}";

/// Replaces the views with each update; says when the connection is lost (the
/// browser reconnects by itself).
const SCRIPT: &str = "const events=new EventSource('events');const said=document.getElementById('connection');\
events.addEventListener('update',e=>{document.getElementById('live').innerHTML=e.data;\
document.body.dataset.updates=String(Number(document.body.dataset.updates)+1);said.textContent='live';});\
events.onerror=()=>{said.textContent='disconnected: retrying';};";

/// The dashboard's state, fed by its callback.
struct Live {
    started: Instant,
    /// Bumped by every change; the event streams send when it moved.
    version: AtomicU64,
    state: Mutex<LiveState>,
    workers_from: Mutex<Option<WorkerSource>>,
}

#[derive(Default)]
struct LiveState {
    /// Computes running now, and finished (and of those, failed).
    running: usize,
    finished: usize,
    failed: usize,
    /// Tasks planned and done by the computes since the last time none ran.
    planned: usize,
    done: usize,
    /// Per op since the last time none ran: done (with time and bytes) and
    /// planned.
    ops: BTreeMap<String, OpRow>,
    recent: VecDeque<TaskRecord>,
    memory: VecDeque<MemorySample>,
    spills: VecDeque<(Duration, u64)>,
    spilled: u64,
    read_back: u64,
    /// Results held now, as last told.
    held: u64,
    /// Each worker process's memory as the computes last told it.
    workers: BTreeMap<usize, (u64, u64)>,
}

impl Live {
    fn new() -> Live {
        Live {
            started: Instant::now(),
            version: AtomicU64::new(0),
            state: Mutex::default(),
            workers_from: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    fn has_workers_source(&self) -> bool {
        self.workers_from.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    fn since(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// The views as they are now.
    fn render(&self) -> String {
        // Called with no lock held: it may take its time, or look here.
        let source = self.workers_from.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let workers = source.map(|source| source());
        let s = self.lock();
        let mut h = String::new();
        let doing = match s.running {
            0 => "idle".to_string(),
            1 => "computing".to_string(),
            n => format!("{n} computes running"),
        };
        let _ = writeln!(
            h,
            "<p id=\"summary\" data-running=\"{}\" data-done=\"{}\" data-planned=\"{}\">{doing}: <span id=\"tasks\">{} of {}</span> tasks done; {} compute{} finished ({} failed); memory held <span id=\"held\">{}</span>; spilled <span id=\"spilled\">{}</span>, read back {}.</p>",
            s.running,
            s.done,
            s.planned,
            s.done,
            s.planned,
            s.finished,
            if s.finished == 1 { "" } else { "s" },
            s.failed,
            mib(s.held),
            mib(s.spilled),
            mib(s.read_back),
        );
        // Copied out, then drawn with the lock let go: the computes' threads
        // never wait for a drawing.
        let rows: Vec<OpRow> = s.ops.values().cloned().collect();
        let recent: Vec<TaskRecord> = s.recent.iter().cloned().collect();
        let memory: Vec<MemorySample> = s.memory.iter().copied().collect();
        let spills: Vec<(Duration, u64)> = s.spills.iter().copied().collect();
        let workers = workers.unwrap_or_else(|| match s.workers.is_empty() {
            true => s
                .memory
                .back()
                .map(|m| WorkerMemory {
                    name: "this process".into(),
                    held: s.held,
                    limit: m.budget,
                    running: None,
                })
                .into_iter()
                .collect(),
            false => s
                .workers
                .iter()
                .map(|(w, &(held, limit))| WorkerMemory {
                    name: format!("worker {w}"),
                    held,
                    limit,
                    running: None,
                })
                .collect(),
        });
        drop(s);
        h.push_str("<h2>Progress per operation</h2>\n");
        h.push_str(&op_table(&rows));
        h.push_str("<h2>Task stream (latest tasks)</h2>\n");
        let origin = recent.iter().map(|t| t.start).min().unwrap_or_default();
        h.push_str(&task_stream(&recent, origin));
        h.push_str("<h2>Memory held</h2>\n");
        h.push_str(&memory_chart(&memory, &spills));
        h.push_str("<h2>Workers</h2>\n");
        h.push_str(&workers_table(&workers));
        h
    }
}

/// One row per worker: memory held against its limit as a bar, and its load.
fn workers_table(workers: &[WorkerMemory]) -> String {
    let mut s = String::from(
        "<table id=\"workers\"><tr><th>worker</th><th>memory held</th><th>held</th><th>limit</th><th>tasks</th></tr>",
    );
    for w in workers {
        let running = w.running.map_or_else(|| "-".to_string(), |n| n.to_string());
        let _ = write!(
            s,
            "<tr class=\"worker\" data-held=\"{}\" data-limit=\"{}\"><td>{}</td><td><progress value=\"{}\" max=\"{}\"></progress></td><td>{}</td><td>{}</td><td>{running}</td></tr>",
            w.held,
            w.limit,
            escape(&w.name),
            w.held.min(w.limit),
            w.limit.max(1),
            mib(w.held),
            mib(w.limit),
        );
    }
    s.push_str("</table>\n");
    s
}

impl Callback for Live {
    fn start(&self, tasks: usize) {
        let mut s = self.lock();
        if s.running == 0 {
            // A new round of work: progress counts from here.
            s.planned = 0;
            s.done = 0;
            s.ops.clear();
        }
        s.running += 1;
        s.planned += tasks;
        drop(s);
        self.changed();
    }

    fn planned(&self, ops: &[(String, usize)]) {
        let mut s = self.lock();
        for (op, n) in ops {
            let row = s.ops.entry(op.clone()).or_insert_with(|| OpRow {
                op: op.clone(),
                planned: Some(0),
                ..OpRow::default()
            });
            row.planned = Some(row.planned.unwrap_or(0) + n);
        }
        drop(s);
        self.changed();
    }

    fn task_done(&self, done: &TaskDone<'_>) {
        let record = TaskRecord::of(done, self.started);
        let mut s = self.lock();
        s.done += 1;
        // The op's row is there after the first of its tasks: no key copied.
        match s.ops.get_mut(&record.op) {
            Some(row) => row.add(&record),
            None => {
                let mut row = OpRow { op: record.op.clone(), ..OpRow::default() };
                row.add(&record);
                s.ops.insert(record.op.clone(), row);
            }
        }
        if s.recent.len() == RECENT_TASKS {
            s.recent.pop_front();
        }
        s.recent.push_back(record);
        drop(s);
        self.changed();
    }

    fn memory(&self, held: u64, budget: u64) {
        let at = self.since(Instant::now());
        let mut s = self.lock();
        s.held = held;
        match s.memory.back_mut() {
            // Told after every task: one sample per SAMPLE_EVERY, the most
            // held in it (peaks stay seen).
            Some(last) if at.saturating_sub(last.at) < SAMPLE_EVERY => {
                *last = MemorySample { at: last.at, held: last.held.max(held), budget };
            }
            _ => {
                if s.memory.len() == MEMORY_SAMPLES {
                    s.memory.pop_front();
                }
                s.memory.push_back(MemorySample { at, held, budget });
            }
        }
        drop(s);
        self.changed();
    }

    fn worker_memory(&self, worker: usize, held: u64, limit: u64) {
        self.lock().workers.insert(worker, (held, limit));
        self.changed();
    }

    fn spilled(&self, bytes: u64) {
        let at = self.since(Instant::now());
        let mut s = self.lock();
        s.spilled += bytes;
        if s.spills.len() == MEMORY_SAMPLES {
            s.spills.pop_front();
        }
        s.spills.push_back((at, bytes));
        drop(s);
        self.changed();
    }

    fn read_back(&self, bytes: u64) {
        self.lock().read_back += bytes;
        self.changed();
    }

    fn finish(&self, _stats: &ComputeStats, error: Option<&brisk_scheduler::Error>) {
        let mut s = self.lock();
        s.running = s.running.saturating_sub(1);
        s.finished += 1;
        s.failed += usize::from(error.is_some());
        if s.running == 0 {
            // Nothing is held for the computes any more (their outputs are the
            // callers'); worker numbers mean other workers in the next one.
            s.held = 0;
            s.workers.clear();
            let at = self.since(Instant::now());
            if let Some(budget) = s.memory.back().map(|m| m.budget) {
                s.memory.push_back(MemorySample { at, held: 0, budget });
                if s.memory.len() > MEMORY_SAMPLES {
                    s.memory.pop_front();
                }
            }
        }
        drop(s);
        self.changed();
    }
}
