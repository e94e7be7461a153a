//! Primitives that keep concurrent tasks correct, named like Dask's and found
//! by name (two `Lock::new("db")` anywhere in the cluster are the same lock):
//! [`Lock`], [`Semaphore`] (leases that expire when their holder stops
//! renewing them, and are taken back when its worker dies), [`Queue`],
//! [`Event`] and [`Variable`]. Every blocking call takes a timeout (`None`: as
//! long as it takes) and says whether it got what it waited for.
//!
//! In one process (threads, a futures [`Client`](crate::client::Client)) the
//! primitives live here. Tasks in worker processes reach the same names
//! through their coordinator — the scheduler process, or the program that
//! started a local cluster — which keeps every primitive and serves the
//! [`Request`]s the workers send ([`serve`]); a worker installs the route with
//! [`set_coordinator`]. Locks and leases held by a worker that dies are given
//! back ([`release_holder`]). A call that cannot reach the coordinator panics
//! in its task (which fails with that message).
//!
//! Queue items and variable values cross processes, so they are serde types
//! (kept encoded in MessagePack, with their type's name: a name used with
//! another type is an error).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The primitives by kind and name.
type Registry = Mutex<HashMap<(&'static str, String), Arc<dyn Any + Send + Sync>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// The state of the primitive of `kind` named `name`, made by `make` the
/// first time (each kind has one type of state).
fn named<S: Send + 'static>(
    kind: &'static str,
    name: &str,
    make: impl FnOnce() -> S,
) -> Arc<Shared<S>> {
    let mut all = lock(registry());
    let entry = all
        .entry((kind, name.to_string()))
        .or_insert_with(|| Arc::new(Shared { state: Mutex::new(make()), changed: Condvar::new() }));
    entry.clone().downcast::<Shared<S>>().expect("one type of state per kind")
}

/// Waits on `changed` while `blocked(&state)`, at most `timeout`: the guard,
/// and whether `blocked` turned false.
fn wait_while<'a, S>(
    changed: &Condvar,
    mut state: MutexGuard<'a, S>,
    timeout: Option<Duration>,
    mut blocked: impl FnMut(&mut S) -> bool,
) -> (MutexGuard<'a, S>, bool) {
    let deadline = timeout.map(|t| Instant::now() + t);
    while blocked(&mut state) {
        state = match deadline {
            None => changed.wait(state).unwrap_or_else(PoisonError::into_inner),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (state, false);
                }
                changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0
            }
        };
    }
    (state, true)
}

/// State and a signal of its changes.
struct Shared<S> {
    state: Mutex<S>,
    changed: Condvar,
}

/// What a primitive asks of the coordinator. Timeouts in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Request {
    LockAcquire {
        name: String,
        holder: String,
        timeout_ms: Option<u64>,
    },
    LockRelease {
        name: String,
        holder: String,
    },
    LockLocked {
        name: String,
    },
    SemaphoreAcquire {
        name: String,
        max: usize,
        lease_ms: u64,
        holder: String,
        timeout_ms: Option<u64>,
    },
    SemaphoreRefresh {
        name: String,
        id: u64,
    },
    SemaphoreRelease {
        name: String,
        id: u64,
    },
    SemaphoreHeld {
        name: String,
    },
    QueueOpen {
        name: String,
        maxsize: usize,
        kind: String,
    },
    QueuePut {
        name: String,
        maxsize: usize,
        kind: String,
        item: Vec<u8>,
        timeout_ms: Option<u64>,
    },
    QueueGet {
        name: String,
        maxsize: usize,
        kind: String,
        timeout_ms: Option<u64>,
    },
    QueueSize {
        name: String,
    },
    EventSet {
        name: String,
    },
    EventClear {
        name: String,
    },
    EventIsSet {
        name: String,
    },
    EventWait {
        name: String,
        timeout_ms: Option<u64>,
    },
    VariableSet {
        name: String,
        kind: String,
        value: Vec<u8>,
    },
    VariableGet {
        name: String,
        kind: String,
        timeout_ms: Option<u64>,
    },
    VariableDelete {
        name: String,
    },
}

/// The coordinator's answer to a [`Request`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Done, nothing to say.
    Done,
    /// Whether it got what it waited for.
    Granted(bool),
    /// A lease's number, or none at the timeout.
    Lease(Option<u64>),
    /// An item or value, or none at the timeout.
    Item(Option<Vec<u8>>),
    /// A count.
    Count(u64),
}

/// How a worker process reaches its coordinator: sends a request, gets the
/// reply (or why it could not).
pub type Route = Arc<dyn Fn(Request) -> Result<Reply, String> + Send + Sync>;

/// Where this process's primitives go, and in whose name, when elsewhere.
static ROUTE: std::sync::RwLock<Option<(String, Route)>> = std::sync::RwLock::new(None);

fn route() -> Option<(String, Route)> {
    ROUTE.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Sends this process's primitives to a coordinator elsewhere (a worker
/// process does at its start, a client of a scheduler process while it is
/// connected): `holder` names this process in the locks and leases it holds
/// (given back when a worker of that address dies).
pub fn set_coordinator(holder: String, route: Route) {
    *ROUTE.write().unwrap_or_else(PoisonError::into_inner) = Some((holder, route));
}

/// Keeps this process's primitives here again, if they went where `holder`'s
/// [`set_coordinator`] sent them.
pub fn unset_coordinator(holder: &str) {
    let mut route = ROUTE.write().unwrap_or_else(PoisonError::into_inner);
    if route.as_ref().is_some_and(|(h, _)| h == holder) {
        *route = None;
    }
}

/// Who holds what this process takes.
fn holder() -> String {
    match route() {
        Some((holder, _)) => holder,
        None => format!("process-{}", std::process::id()),
    }
}

/// Sends `request` to the coordinator, or serves it here when this process
/// is the coordinator. A coordinator that cannot be reached panics the task.
fn ask(request: Request) -> Reply {
    let outcome = match route() {
        Some((_, route)) => route(request),
        None => serve(request),
    };
    outcome.unwrap_or_else(|e| panic!("coordination: {e}"))
}

/// [`ask`], with a refusal (a name used with another type) as an error.
fn ask_checked(request: Request) -> Result<Reply, String> {
    match route() {
        Some((_, route)) => route(request),
        None => serve(request),
    }
}

fn millis(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| t.as_millis().min(u64::MAX as u128) as u64)
}

fn duration(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

/// Serves `request` on this process's primitives (the coordinator's side).
/// A queue or variable used with another type is an error.
pub fn serve(request: Request) -> Result<Reply, String> {
    use Request as R;
    Ok(match request {
        R::LockAcquire { name, holder, timeout_ms } => {
            let lock_ = named("lock", &name, LockState::default);
            let held = lock(&lock_.state);
            let (mut held, got) =
                wait_while(&lock_.changed, held, duration(timeout_ms), |h| h.holder.is_some());
            if got {
                held.holder = Some(holder);
            }
            Reply::Granted(got)
        }
        R::LockRelease { name, holder } => {
            let lock_ = named("lock", &name, LockState::default);
            let mut held = lock(&lock_.state);
            if held.holder.as_deref() == Some(holder.as_str()) {
                held.holder = None;
                lock_.changed.notify_one();
            }
            Reply::Done
        }
        R::LockLocked { name } => {
            Reply::Granted(lock(&named("lock", &name, LockState::default).state).holder.is_some())
        }
        R::SemaphoreAcquire { name, max, lease_ms, holder, timeout_ms } => {
            let lease = Duration::from_millis(lease_ms);
            let sem = named("semaphore", &name, || Leases::new(max, lease));
            Reply::Lease(sem_acquire(&sem, holder, duration(timeout_ms)))
        }
        R::SemaphoreRefresh { name, id } => {
            let sem = named("semaphore", &name, || Leases::new(1, Duration::ZERO));
            let mut leases = lock(&sem.state);
            leases.expire();
            let timeout = leases.lease_timeout;
            let found = leases.held.iter_mut().find(|l| l.id == id);
            Reply::Granted(found.map(|l| l.until = Instant::now() + timeout).is_some())
        }
        R::SemaphoreRelease { name, id } => {
            let sem = named("semaphore", &name, || Leases::new(1, Duration::ZERO));
            lock(&sem.state).held.retain(|l| l.id != id);
            sem.changed.notify_one();
            Reply::Done
        }
        R::SemaphoreHeld { name } => {
            let sem = named("semaphore", &name, || Leases::new(1, Duration::ZERO));
            let mut leases = lock(&sem.state);
            leases.expire();
            Reply::Count(leases.held.len() as u64)
        }
        R::QueueOpen { name, maxsize, kind } => {
            let queue = named("queue", &name, || Items::new(maxsize, &kind));
            lock(&queue.state).check(&name, &kind)?;
            Reply::Done
        }
        R::QueuePut { name, maxsize, kind, item, timeout_ms } => {
            let queue = named("queue", &name, || Items::new(maxsize, &kind));
            let state = lock(&queue.state);
            state.check(&name, &kind)?;
            let (mut state, room) = wait_while(&queue.changed, state, duration(timeout_ms), |s| {
                s.maxsize > 0 && s.items.len() >= s.maxsize
            });
            if room {
                state.items.push_back(item);
                queue.changed.notify_all();
            }
            Reply::Granted(room)
        }
        R::QueueGet { name, maxsize, kind, timeout_ms } => {
            let queue = named("queue", &name, || Items::new(maxsize, &kind));
            let state = lock(&queue.state);
            state.check(&name, &kind)?;
            let (mut state, some) =
                wait_while(&queue.changed, state, duration(timeout_ms), |s| s.items.is_empty());
            let item = if some { state.items.pop_front() } else { None };
            queue.changed.notify_all();
            Reply::Item(item)
        }
        R::QueueSize { name } => {
            let queue = named("queue", &name, || Items::new(0, ""));
            Reply::Count(lock(&queue.state).items.len() as u64)
        }
        R::EventSet { name } => {
            let event = named("event", &name, || false);
            *lock(&event.state) = true;
            event.changed.notify_all();
            Reply::Done
        }
        R::EventClear { name } => {
            *lock(&named("event", &name, || false).state) = false;
            Reply::Done
        }
        R::EventIsSet { name } => Reply::Granted(*lock(&named("event", &name, || false).state)),
        R::EventWait { name, timeout_ms } => {
            let event = named("event", &name, || false);
            let state = lock(&event.state);
            Reply::Granted(wait_while(&event.changed, state, duration(timeout_ms), |set| !*set).1)
        }
        R::VariableSet { name, kind, value } => {
            let var = named("variable", &name, || Value { value: None, kind: kind.clone() });
            let mut state = lock(&var.state);
            state.check(&name, &kind)?;
            state.value = Some(value);
            var.changed.notify_all();
            Reply::Done
        }
        R::VariableGet { name, kind, timeout_ms } => {
            let var = named("variable", &name, || Value { value: None, kind: kind.clone() });
            let state = lock(&var.state);
            state.check(&name, &kind)?;
            let (state, set) =
                wait_while(&var.changed, state, duration(timeout_ms), |v| v.value.is_none());
            Reply::Item(if set { state.value.clone() } else { None })
        }
        R::VariableDelete { name } => {
            let var = named("variable", &name, || Value { value: None, kind: String::new() });
            lock(&var.state).value = None;
            Reply::Done
        }
    })
}

/// Gives back every lock and lease `holder` (a worker process that died)
/// holds, on this process's primitives (the coordinator's side).
pub fn release_holder(holder: &str) {
    let prefix = format!("{holder}/");
    let held_by = |h: &str| h == holder || h.starts_with(&prefix);
    let all: Vec<(&'static str, Arc<dyn Any + Send + Sync>)> =
        lock(registry()).iter().map(|((kind, _), p)| (*kind, p.clone())).collect();
    for (kind, primitive) in all {
        match kind {
            "lock" => {
                let Ok(lock_) = primitive.downcast::<Shared<LockState>>() else { continue };
                let mut held = lock(&lock_.state);
                if held.holder.as_deref().is_some_and(held_by) {
                    held.holder = None;
                    lock_.changed.notify_one();
                }
            }
            "semaphore" => {
                let Ok(sem) = primitive.downcast::<Shared<Leases>>() else { continue };
                lock(&sem.state).held.retain(|l| !held_by(&l.holder));
                sem.changed.notify_all();
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct LockState {
    holder: Option<String>,
}

/// A named mutual-exclusion lock (Dask's `Lock`).
#[derive(Clone)]
pub struct Lock {
    name: String,
}

/// A held [`Lock`]: released when dropped.
pub struct LockGuard<'a> {
    lock: &'a Lock,
    holder: String,
}

impl Lock {
    /// The lock named `name`.
    pub fn new(name: &str) -> Lock {
        Lock { name: name.to_string() }
    }

    /// Takes it, waiting at most `timeout`: the guard, or `None` at the timeout.
    pub fn acquire(&self, timeout: Option<Duration>) -> Option<LockGuard<'_>> {
        // Each guard is its own holder: two guards in one process exclude
        // each other, as threads do.
        static GUARDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = GUARDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let holder = format!("{}/{n}", holder());
        let request = Request::LockAcquire {
            name: self.name.clone(),
            holder: holder.clone(),
            timeout_ms: millis(timeout),
        };
        matches!(ask(request), Reply::Granted(true)).then_some(LockGuard { lock: self, holder })
    }

    /// Whether someone holds it now.
    pub fn locked(&self) -> bool {
        matches!(ask(Request::LockLocked { name: self.name.clone() }), Reply::Granted(true))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let holder = std::mem::take(&mut self.holder);
        ask(Request::LockRelease { name: self.lock.name.clone(), holder });
    }
}

/// A named semaphore of `max_leases` leases (Dask's `Semaphore`). A lease not
/// renewed within the semaphore's lease timeout is taken back — what happens
/// to the lease of a holder that hangs; one whose worker dies is taken back
/// at once.
#[derive(Clone)]
pub struct Semaphore {
    name: String,
    max: usize,
    lease_timeout: Duration,
}

struct Leases {
    max: usize,
    lease_timeout: Duration,
    next: u64,
    held: Vec<Held>,
}

/// A lease held: its number, when it expires, and who holds it.
struct Held {
    id: u64,
    until: Instant,
    holder: String,
}

impl Leases {
    fn new(max: usize, lease_timeout: Duration) -> Leases {
        Leases { max: max.max(1), lease_timeout, next: 0, held: vec![] }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        self.held.retain(|l| l.until > now);
    }
}

/// Takes a lease of `sem` for `holder`, waiting at most `timeout`.
fn sem_acquire(sem: &Shared<Leases>, holder: String, timeout: Option<Duration>) -> Option<u64> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut leases = lock(&sem.state);
    // An expired lease frees a place with no one told: wake at the next expiry.
    loop {
        leases.expire();
        if leases.held.len() < leases.max {
            let id = leases.next;
            leases.next += 1;
            let until = Instant::now() + leases.lease_timeout;
            leases.held.push(Held { id, until, holder });
            return Some(id);
        }
        let next_expiry = leases.held.iter().map(|l| l.until).min();
        let now = Instant::now();
        let mut wake =
            next_expiry.map_or(Duration::from_secs(3600), |t| t.saturating_duration_since(now));
        if let Some(deadline) = deadline {
            if now >= deadline {
                return None;
            }
            wake = wake.min(deadline - now);
        }
        leases = sem
            .changed
            .wait_timeout(leases, wake.max(Duration::from_micros(100)))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// A lease of a [`Semaphore`]: given back when dropped.
pub struct Lease<'a> {
    semaphore: &'a Semaphore,
    id: u64,
}

impl Semaphore {
    /// The semaphore named `name`, with `max_leases` leases that expire
    /// `lease_timeout` after they are taken or last renewed (both taken from
    /// the first call with this name).
    pub fn new(name: &str, max_leases: usize, lease_timeout: Duration) -> Semaphore {
        Semaphore { name: name.to_string(), max: max_leases.max(1), lease_timeout }
    }

    /// Takes a lease, waiting at most `timeout`: the lease, or `None`.
    pub fn acquire(&self, timeout: Option<Duration>) -> Option<Lease<'_>> {
        let request = Request::SemaphoreAcquire {
            name: self.name.clone(),
            max: self.max,
            lease_ms: self.lease_timeout.as_millis() as u64,
            holder: holder(),
            timeout_ms: millis(timeout),
        };
        match ask(request) {
            Reply::Lease(Some(id)) => Some(Lease { semaphore: self, id }),
            _ => None,
        }
    }

    /// Leases held now (expired ones not counted).
    pub fn held(&self) -> usize {
        match ask(Request::SemaphoreHeld { name: self.name.clone() }) {
            Reply::Count(n) => n as usize,
            _ => 0,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Lease<'_> {
    /// Renews it for another lease timeout: false when it had expired (and was
    /// given to someone else meanwhile, perhaps).
    pub fn refresh(&self) -> bool {
        let request = Request::SemaphoreRefresh { name: self.semaphore.name.clone(), id: self.id };
        matches!(ask(request), Reply::Granted(true))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        ask(Request::SemaphoreRelease { name: self.semaphore.name.clone(), id: self.id });
    }
}

/// Encoded items and their type's name.
struct Items {
    items: VecDeque<Vec<u8>>,
    maxsize: usize,
    kind: String,
}

impl Items {
    fn new(maxsize: usize, kind: &str) -> Items {
        Items { items: VecDeque::new(), maxsize, kind: kind.to_string() }
    }

    fn check(&self, name: &str, kind: &str) -> Result<(), String> {
        match self.kind == kind {
            true => Ok(()),
            false => Err(format!(
                "the queue {name:?} holds {}, not {kind}: give it another name",
                self.kind
            )),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec(value).unwrap_or_else(|e| panic!("coordination: cannot encode a value: {e}"))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
    rmp_serde::from_slice(bytes)
        .unwrap_or_else(|e| panic!("coordination: cannot decode a value: {e}"))
}

/// A named first-in first-out queue of `T` (Dask's `Queue`), bounded by its
/// `maxsize` (0: unbounded).
pub struct Queue<T> {
    name: String,
    maxsize: usize,
    _items: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { name: self.name.clone(), maxsize: self.maxsize, _items: std::marker::PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// The queue named `name` (its `maxsize` from the first call): an error if
    /// the name holds values of another type.
    pub fn new(name: &str, maxsize: usize) -> Result<Queue<T>, String> {
        let queue = Queue { name: name.to_string(), maxsize, _items: std::marker::PhantomData };
        // Made, or checked for its type, at once.
        let kind = std::any::type_name::<T>().to_string();
        let request = Request::QueueOpen { name: name.to_string(), maxsize, kind };
        ask_checked(request)?;
        Ok(queue)
    }

    /// Puts `item` at the back, waiting at most `timeout` for room: the item
    /// back when there was none.
    pub fn put(&self, item: T, timeout: Option<Duration>) -> Result<(), T> {
        let request = Request::QueuePut {
            name: self.name.clone(),
            maxsize: self.maxsize,
            kind: std::any::type_name::<T>().to_string(),
            item: encode(&item),
            timeout_ms: millis(timeout),
        };
        match ask(request) {
            Reply::Granted(true) => Ok(()),
            _ => Err(item),
        }
    }

    /// Takes the item at the front, waiting at most `timeout` for one.
    pub fn get(&self, timeout: Option<Duration>) -> Option<T> {
        let request = Request::QueueGet {
            name: self.name.clone(),
            maxsize: self.maxsize,
            kind: std::any::type_name::<T>().to_string(),
            timeout_ms: millis(timeout),
        };
        match ask(request) {
            Reply::Item(Some(bytes)) => Some(decode(&bytes)),
            _ => None,
        }
    }

    /// Items in it now.
    pub fn qsize(&self) -> usize {
        match ask(Request::QueueSize { name: self.name.clone() }) {
            Reply::Count(n) => n as usize,
            _ => 0,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A named flag tasks wait for (Dask's `Event`).
#[derive(Clone)]
pub struct Event {
    name: String,
}

impl Event {
    /// The event named `name`, not set until someone sets it.
    pub fn new(name: &str) -> Event {
        Event { name: name.to_string() }
    }

    /// Sets it: every waiter wakes.
    pub fn set(&self) {
        ask(Request::EventSet { name: self.name.clone() });
    }

    /// Clears it.
    pub fn clear(&self) {
        ask(Request::EventClear { name: self.name.clone() });
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        matches!(ask(Request::EventIsSet { name: self.name.clone() }), Reply::Granted(true))
    }

    /// Waits until it is set, at most `timeout`: whether it was.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let request = Request::EventWait { name: self.name.clone(), timeout_ms: millis(timeout) };
        matches!(ask(request), Reply::Granted(true))
    }
}

/// An encoded value and its type's name.
struct Value {
    value: Option<Vec<u8>>,
    kind: String,
}

impl Value {
    fn check(&self, name: &str, kind: &str) -> Result<(), String> {
        match self.kind == kind {
            true => Ok(()),
            false => Err(format!(
                "the variable {name:?} holds {}, not {kind}: give it another name",
                self.kind
            )),
        }
    }
}

/// A named shared value (Dask's `Variable`): one task sets it, others read it.
pub struct Variable<T> {
    name: String,
    _value: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Variable<T> {
    fn clone(&self) -> Self {
        Variable { name: self.name.clone(), _value: std::marker::PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> Variable<T> {
    /// The variable named `name`: an error if the name holds another type.
    pub fn new(name: &str) -> Result<Variable<T>, String> {
        let kind = std::any::type_name::<T>();
        let request =
            Request::VariableGet { name: name.to_string(), kind: kind.into(), timeout_ms: Some(0) };
        ask_checked(request)?;
        Ok(Variable { name: name.to_string(), _value: std::marker::PhantomData })
    }

    /// Sets its value; waiting readers wake.
    pub fn set(&self, value: T) {
        let kind = std::any::type_name::<T>().to_string();
        ask(Request::VariableSet { name: self.name.clone(), kind, value: encode(&value) });
    }

    /// Its value, waiting at most `timeout` for one to be set.
    pub fn get(&self, timeout: Option<Duration>) -> Option<T> {
        let kind = std::any::type_name::<T>().to_string();
        let request =
            Request::VariableGet { name: self.name.clone(), kind, timeout_ms: millis(timeout) };
        match ask(request) {
            Reply::Item(Some(bytes)) => Some(decode(&bytes)),
            _ => None,
        }
    }

    /// Unsets it.
    pub fn delete(&self) {
        ask(Request::VariableDelete { name: self.name.clone() });
    }
}
