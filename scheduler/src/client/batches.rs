//! A [`Client`](super::Client) on worker processes: what is submitted is
//! gathered into computes of many requests at once ([`Backend::run_each`]),
//! each future settled as its own output comes back.
//!
//! - A batch leaves at once when fewer than two are on their way (so one
//!   request waited for alone takes one round trip); otherwise when one of
//!   them ends, or the younger is [`GATHER`] old: a loop submitting thousands
//!   sends them in a few large computes, and work submitted while a long task
//!   runs does not wait for it.
//! - Within a batch, higher priorities first (the plan runs its outputs' tasks
//!   in that order); a future cancelled before its batch leaves never runs.
//! - A compute stops once none of its futures is waited for (all settled, by
//!   their outputs or cancelled), and when the client is dropped: the workers
//!   free what it made, and its tasks still running see `brisk::cancelled()`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use brisk_core::{Key, Value};
use brisk_graph::{Collection, GraphBuilder};

use super::{FutureError, State, key_text, lock};
use crate::{BackendError, Each, Scheduler};

/// How long a batch waits for more requests while two are on their way.
const GATHER: Duration = Duration::from_millis(1);

/// Threads sending batches at most (each waits for its compute's end).
const MAX_SENDERS: usize = 16;

/// One request: a collection whose outputs settle a future.
pub(super) trait Request: Send {
    /// Adds its tasks to `graph`: its output keys.
    fn add(&self, graph: &mut GraphBuilder) -> Vec<Key>;
    /// Marks its future running: false when it was settled (cancelled) first.
    fn start(&self) -> bool;
    /// Output `i` is in (or failed).
    fn settle(&mut self, i: usize, outcome: Result<Value, BackendError>);
    /// Settles its future with `error`, unless it is settled.
    fn fail(&self, error: FutureError);
    /// Calls `f` once its future is settled (by its outputs, or cancelled).
    fn when_settled(&self, f: Box<dyn FnOnce() + Send>);
    /// Its future's key.
    fn key(&self) -> &str;
}

/// A collection and the future its outputs settle.
pub(super) struct Computing<C: Collection> {
    pub collection: C,
    pub state: Arc<State<C::Output>>,
    pub values: Vec<Option<Value>>,
    pub left: usize,
}

impl<C> Request for Computing<C>
where
    C: Collection + Send,
    C::Output: Send,
{
    fn add(&self, graph: &mut GraphBuilder) -> Vec<Key> {
        self.collection.add_tasks(graph);
        self.collection.output_keys()
    }

    fn start(&self) -> bool {
        self.state.start()
    }

    fn settle(&mut self, i: usize, outcome: Result<Value, BackendError>) {
        match outcome {
            Err(e) => self.state.resolve(Err(failure(&self.state.key, &e))),
            Ok(value) => {
                if self.values[i].replace(value).is_none() {
                    self.left -= 1;
                }
                if self.left == 0 {
                    let values = self.values.iter_mut().filter_map(Option::take).collect();
                    let outcome = self.collection.finish(values).map_err(|e| FutureError::Failed {
                        key: self.state.key.clone(),
                        message: e.to_string(),
                    });
                    self.state.resolve(outcome);
                }
            }
        }
    }

    fn fail(&self, error: FutureError) {
        self.state.resolve(Err(error));
    }

    fn when_settled(&self, f: Box<dyn FnOnce() + Send>) {
        self.state.when_done(f);
    }

    fn key(&self) -> &str {
        &self.state.key
    }
}

/// A backend's error as a future's failure: with the failing task's key when
/// it names one (the future's own, or an input's), else the future's.
pub(super) fn failure(key: &str, error: &BackendError) -> FutureError {
    use brisk_core::Error as E;
    let task = |e: &E| match e {
        E::Task { key, source } => Some((key_text(key), source.to_string())),
        E::Panic { key, message } => Some((key_text(key), format!("it panicked: {message}"))),
        _ => None,
    };
    let named = match error {
        BackendError::Task(e) => task(e),
        BackendError::KilledWorker { key, .. } => Some((key_text(key), error.to_string())),
        _ => None,
    };
    match named {
        Some((key, message)) => FutureError::Failed { key, message },
        None => FutureError::Failed { key: key.to_string(), message: error.to_string() },
    }
}

/// Why a request could not leave the process, as its future's failure.
fn refused(key: &str, error: crate::Error) -> FutureError {
    let key = error.task_key().map_or_else(|| key.to_string(), key_text);
    FutureError::Failed { key, message: error.to_string() }
}

/// A batch's plan, each output's (request, place), the retries by key, and
/// the persisted results it uses.
type Planned = (
    brisk_graph::Plan,
    Vec<(usize, usize)>,
    (std::collections::HashMap<Key, u32>, std::collections::HashMap<Key, i64>),
    std::collections::HashMap<Key, crate::Held>,
);

/// A request waiting for its batch.
struct Queued {
    priority: i64,
    seq: u64,
    retries: u32,
    request: Box<dyn Request>,
}

#[derive(Default)]
struct Waiting {
    queued: Vec<Queued>,
    /// Batches on their way, and when the youngest left.
    in_flight: usize,
    youngest: Option<Instant>,
    /// The stop flags of the batches on their way.
    stops: Vec<std::sync::Weak<AtomicBool>>,
    /// Sender threads, and how many wait for work.
    senders: usize,
    idle: usize,
    closing: bool,
}

/// The requests of a client on worker processes, and the threads sending them.
pub(super) struct Batches {
    scheduler: Scheduler,
    /// What the client's persists keep.
    kept: Arc<Mutex<super::persist::Kept>>,
    waiting: Mutex<Waiting>,
    work: Condvar,
    /// Senders still running, and a signal when one ends.
    ended: Condvar,
    /// Set when the client is dropped: its computes stop.
    cancel: Arc<AtomicBool>,
    seq: AtomicU64,
    /// Requests queued, read without the lock by senders about to sleep.
    queued: std::sync::atomic::AtomicUsize,
}

impl Batches {
    pub(super) fn new(
        scheduler: Scheduler,
        kept: Arc<Mutex<super::persist::Kept>>,
    ) -> Arc<Batches> {
        Arc::new(Batches {
            scheduler,
            kept,
            waiting: Mutex::default(),
            work: Condvar::new(),
            ended: Condvar::new(),
            cancel: Arc::default(),
            seq: AtomicU64::new(0),
            queued: Default::default(),
        })
    }

    /// Queues `request` for the next batch.
    pub(super) fn push(self: &Arc<Self>, priority: i64, retries: u32, request: Box<dyn Request>) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut waiting = lock(&self.waiting);
        if waiting.closing {
            drop(waiting);
            let key = request.key().to_string();
            return request.fail(FutureError::Cancelled { key });
        }
        waiting.queued.push(Queued { priority, seq, retries, request });
        self.queued.fetch_add(1, Ordering::Release);
        let start = waiting.idle == 0 && waiting.senders < MAX_SENDERS;
        if start {
            waiting.senders += 1;
        }
        drop(waiting);
        match start {
            true => self.start_sender(),
            false => self.work.notify_one(),
        }
    }

    fn start_sender(self: &Arc<Self>) {
        let batches = self.clone();
        let started =
            std::thread::Builder::new().name("brisk-client-sender".into()).spawn(move || {
                batches.send_batches();
                lock(&batches.waiting).senders -= 1;
                batches.ended.notify_all();
            });
        if started.is_err() {
            // Another sender (or the next push) takes the work.
            lock(&self.waiting).senders -= 1;
        }
    }

    /// A sender thread: takes what is queued, as the rules above say, and
    /// sends it, until the client is dropped.
    fn send_batches(&self) {
        loop {
            let batch = {
                let mut waiting = lock(&self.waiting);
                loop {
                    if waiting.closing {
                        return;
                    }
                    if !waiting.queued.is_empty() {
                        let young = waiting.youngest.map(|t| t.elapsed() < GATHER);
                        if waiting.in_flight < 2 || young == Some(false) {
                            break;
                        }
                        let left =
                            GATHER.saturating_sub(waiting.youngest.map_or(GATHER, |t| t.elapsed()));
                        waiting.idle += 1;
                        waiting = self
                            .work
                            .wait_timeout(waiting, left)
                            .map(|(w, _)| w)
                            .unwrap_or_else(|e| e.into_inner().0);
                        waiting.idle -= 1;
                        continue;
                    }
                    // Nothing queued: look again for a moment before sleeping.
                    waiting.idle += 1;
                    drop(waiting);
                    super::spin_for(super::SPIN_REMOTE, || self.queued.load(Ordering::Acquire) > 0);
                    waiting = lock(&self.waiting);
                    if waiting.queued.is_empty() && !waiting.closing {
                        waiting = self
                            .work
                            .wait(waiting)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                    waiting.idle -= 1;
                }
                waiting.in_flight += 1;
                waiting.youngest = Some(Instant::now());
                self.queued.store(0, Ordering::Release);
                std::mem::take(&mut waiting.queued)
            };
            self.send(batch);
            lock(&self.waiting).in_flight -= 1;
            self.work.notify_one();
        }
    }

    /// Runs one batch: every request's outputs in one compute, each settled as
    /// it comes; a request the backend cannot run fails alone.
    fn send(&self, mut batch: Vec<Queued>) {
        batch.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.seq.cmp(&b.seq)));
        batch.retain(|q| q.request.start());
        if !batch.is_empty() {
            self.send_started(batch);
        }
    }

    /// [`send`](Self::send) of requests marked running.
    fn send_started(&self, mut batch: Vec<Queued>) {
        let (plan, owners, (retries, priorities), held) = match self.plan(&batch) {
            Ok(planned) => planned,
            Err(_) if batch.len() > 1 => {
                // Some request cannot run here: it fails alone, the rest go.
                let before = batch.len();
                batch.retain(|q| match self.plan(std::slice::from_ref(q)) {
                    Ok(_) => true,
                    Err(e) => {
                        q.request.fail(refused(q.request.key(), e));
                        false
                    }
                });
                // Each plans alone but not together: one compute each.
                if batch.len() == before {
                    return batch.into_iter().for_each(|q| self.send_started(vec![q]));
                }
                if !batch.is_empty() {
                    self.send_started(batch);
                }
                return;
            }
            Err(e) => return batch[0].request.fail(refused(batch[0].request.key(), e)),
        };
        let requests: Arc<Vec<Mutex<Box<dyn Request>>>> =
            Arc::new(batch.into_iter().map(|q| Mutex::new(q.request)).collect());
        let owners = Arc::new(owners);
        let settle = {
            let (requests, owners) = (requests.clone(), owners.clone());
            Arc::new(move |place: usize, outcome: Result<Value, BackendError>| {
                if let Some(&(i, j)) = owners.get(place) {
                    let mut request = lock(&requests[i]);
                    // Its collection's finish or a done callback may panic:
                    // that request fails, the compute goes on.
                    let settled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        request.settle(j, outcome)
                    }));
                    if settled.is_err() {
                        let key = request.key().to_string();
                        let message = "settling it panicked".to_string();
                        request.fail(FutureError::Failed { key, message });
                    }
                }
            })
        };
        // The compute stops once nobody waits for it: every future of the
        // batch settled (cancelled, say) before its end, or the client gone.
        let stop = Arc::new(AtomicBool::new(false));
        {
            let mut waiting = lock(&self.waiting);
            if waiting.closing {
                stop.store(true, Ordering::Relaxed);
            }
            waiting.stops.retain(|s| s.strong_count() > 0);
            waiting.stops.push(Arc::downgrade(&stop));
        }
        let left = Arc::new(std::sync::atomic::AtomicUsize::new(requests.len()));
        for request in requests.iter() {
            let (left, stop) = (left.clone(), stop.clone());
            lock(request).when_settled(Box::new(move || {
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    stop.store(true, Ordering::Relaxed);
                }
            }));
        }
        let outputs = owners.len();
        let each = Each { settle, retries, priorities, cancel: stop, held, outputs };
        let outcome = self.scheduler.run_each(&plan, &each);
        // What the compute did not settle fails with its error, or, when it
        // ended without one, was let go (the client dropped).
        let error = match outcome {
            _ if self.cancel.load(Ordering::Relaxed) => {
                FutureError::Cancelled { key: String::new() }
            }
            Ok(()) => FutureError::Cancelled { key: String::new() },
            Err(crate::Error::Backend(e)) => failure("", &e),
            Err(e) => FutureError::Failed { key: String::new(), message: e.to_string() },
        };
        for request in requests.iter() {
            let request = lock(request);
            let key = request.key().to_string();
            let error = match &error {
                FutureError::Failed { key: k, message } if k.is_empty() => {
                    FutureError::Failed { key, message: message.clone() }
                }
                FutureError::Cancelled { .. } => FutureError::Cancelled { key },
                e => e.clone(),
            };
            request.fail(error);
        }
    }

    /// The plan of `batch`'s requests together, checked to leave the process:
    /// with each output's (request, place), and the retries by key.
    fn plan(&self, batch: &[Queued]) -> crate::Result<Planned> {
        let mut graph = GraphBuilder::new();
        let mut outputs = Vec::new();
        let mut owners = Vec::new();
        let mut retries = std::collections::HashMap::new();
        let mut priorities = std::collections::HashMap::new();
        for (i, queued) in batch.iter().enumerate() {
            let keys = queued.request.add(&mut graph);
            for (j, key) in keys.iter().enumerate() {
                if queued.retries > 0 {
                    retries.insert(key.clone(), queued.retries);
                }
                if queued.priority != 0 {
                    priorities.insert(key.clone(), queued.priority);
                }
                outputs.push(key.clone());
                owners.push((i, j));
            }
        }
        let (plan, held) = super::persist::plan_using(&self.scheduler, graph, outputs, &self.kept)?;
        Ok((plan, owners, (retries, priorities), held))
    }

    /// Stops everything: queued requests settle as cancelled, computes on
    /// their way stop; waits a moment for the senders to end.
    pub(super) fn close(&self, grace: Duration) {
        let queued = {
            let mut waiting = lock(&self.waiting);
            waiting.closing = true;
            for stop in waiting.stops.drain(..).filter_map(|s| s.upgrade()) {
                stop.store(true, Ordering::Relaxed);
            }
            std::mem::take(&mut waiting.queued)
        };
        self.cancel.store(true, Ordering::Relaxed);
        self.work.notify_all();
        for q in queued {
            let key = q.request.key().to_string();
            q.request.fail(FutureError::Cancelled { key });
        }
        let waiting = lock(&self.waiting);
        let _ = self.ended.wait_timeout_while(waiting, grace, |w| w.senders > 0);
    }
}
