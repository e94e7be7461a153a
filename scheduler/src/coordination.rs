//! Primitives that keep concurrent tasks correct, named like Dask's and found
//! by name (two `Lock::new("db")` anywhere in the process are the same lock):
//! [`Lock`], [`Semaphore`] (leases that expire when their holder stops
//! renewing them, as a dead holder would), [`Queue`], [`Event`] and
//! [`Variable`]. Every blocking call takes a timeout (`None`: as long as it
//! takes) and says whether it got what it waited for.
//!
//! These serve tasks on threads (the thread scheduler, a futures
//! [`Client`](crate::client::Client)); tasks in worker processes will reach the
//! same names through the scheduler.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The primitives by kind and name.
type Registry = Mutex<HashMap<(&'static str, String), Arc<dyn Any + Send + Sync>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// The primitive of `kind` named `name`, made by `make` the first time.
/// A name used before with another type of value is an error.
fn named<T: Send + Sync + 'static>(
    kind: &'static str,
    name: &str,
    make: impl FnOnce() -> T,
) -> Result<Arc<T>, String> {
    let mut all = lock(registry());
    let entry = all.entry((kind, name.to_string())).or_insert_with(|| Arc::new(make()));
    entry.clone().downcast::<T>().map_err(|_| {
        format!(
            "the {kind} {name:?} exists already with values of another type: give it another name"
        )
    })
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
#[derive(Default)]
struct Shared<S> {
    state: Mutex<S>,
    changed: Condvar,
}

/// A named mutual-exclusion lock (Dask's `Lock`).
#[derive(Clone)]
pub struct Lock {
    name: String,
    shared: Arc<Shared<bool>>,
}

/// A held [`Lock`]: released when dropped.
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Lock {
    /// The lock named `name`.
    pub fn new(name: &str) -> Lock {
        let shared = named("lock", name, Shared::default).expect("locks hold no values");
        Lock { name: name.to_string(), shared }
    }

    /// Takes it, waiting at most `timeout`: the guard, or `None` at the timeout.
    pub fn acquire(&self, timeout: Option<Duration>) -> Option<LockGuard<'_>> {
        let held = lock(&self.shared.state);
        let (mut held, got) = wait_while(&self.shared.changed, held, timeout, |held| *held);
        got.then(|| {
            *held = true;
            LockGuard { lock: self }
        })
    }

    /// Whether someone holds it now.
    pub fn locked(&self) -> bool {
        *lock(&self.shared.state)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.lock.shared.state) = false;
        self.lock.shared.changed.notify_one();
    }
}

/// A named semaphore of `max_leases` leases (Dask's `Semaphore`). A lease not
/// renewed within the semaphore's lease timeout is taken back — what happens
/// to the lease of a holder that died or hangs.
#[derive(Clone)]
pub struct Semaphore {
    name: String,
    shared: Arc<Shared<Leases>>,
}

struct Leases {
    max: usize,
    lease_timeout: Duration,
    next: u64,
    /// Each lease held: its number and when it expires.
    held: Vec<(u64, Instant)>,
}

impl Leases {
    fn expire(&mut self) {
        let now = Instant::now();
        self.held.retain(|&(_, until)| until > now);
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
        let make = || Shared {
            state: Mutex::new(Leases {
                max: max_leases.max(1),
                lease_timeout,
                next: 0,
                held: vec![],
            }),
            changed: Condvar::new(),
        };
        let shared = named("semaphore", name, make).expect("semaphores hold no values");
        Semaphore { name: name.to_string(), shared }
    }

    /// Takes a lease, waiting at most `timeout`: the lease, or `None`.
    pub fn acquire(&self, timeout: Option<Duration>) -> Option<Lease<'_>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut leases = lock(&self.shared.state);
        // An expired lease frees a place with no one told: wake at the next expiry.
        loop {
            leases.expire();
            if leases.held.len() < leases.max {
                let id = leases.next;
                leases.next += 1;
                let until = Instant::now() + leases.lease_timeout;
                leases.held.push((id, until));
                return Some(Lease { semaphore: self, id });
            }
            let next_expiry = leases.held.iter().map(|&(_, until)| until).min();
            let now = Instant::now();
            let mut wake =
                next_expiry.map_or(Duration::from_secs(3600), |t| t.saturating_duration_since(now));
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return None;
                }
                wake = wake.min(deadline - now);
            }
            leases = self
                .shared
                .changed
                .wait_timeout(leases, wake.max(Duration::from_micros(100)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Leases held now (expired ones not counted).
    pub fn held(&self) -> usize {
        let mut leases = lock(&self.shared.state);
        leases.expire();
        leases.held.len()
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
        let mut leases = lock(&self.semaphore.shared.state);
        leases.expire();
        let timeout = leases.lease_timeout;
        match leases.held.iter_mut().find(|(id, _)| *id == self.id) {
            Some((_, until)) => {
                *until = Instant::now() + timeout;
                true
            }
            None => false,
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        lock(&self.semaphore.shared.state).held.retain(|&(id, _)| id != self.id);
        self.semaphore.shared.changed.notify_one();
    }
}

/// A named first-in first-out queue of `T` (Dask's `Queue`), bounded by its
/// `maxsize` (0: unbounded).
pub struct Queue<T> {
    name: String,
    shared: Arc<Shared<(VecDeque<T>, usize)>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { name: self.name.clone(), shared: self.shared.clone() }
    }
}

impl<T: Send + 'static> Queue<T> {
    /// The queue named `name` (its `maxsize` from the first call): an error if
    /// the name holds values of another type.
    pub fn new(name: &str, maxsize: usize) -> Result<Queue<T>, String> {
        let make =
            || Shared { state: Mutex::new((VecDeque::new(), maxsize)), changed: Condvar::new() };
        Ok(Queue { name: name.to_string(), shared: named("queue", name, make)? })
    }

    /// Puts `item` at the back, waiting at most `timeout` for room: the item
    /// back when there was none.
    pub fn put(&self, item: T, timeout: Option<Duration>) -> Result<(), T> {
        let state = lock(&self.shared.state);
        let (mut state, room) = wait_while(&self.shared.changed, state, timeout, |(items, max)| {
            *max > 0 && items.len() >= *max
        });
        if !room {
            return Err(item);
        }
        state.0.push_back(item);
        drop(state);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Takes the item at the front, waiting at most `timeout` for one.
    pub fn get(&self, timeout: Option<Duration>) -> Option<T> {
        let state = lock(&self.shared.state);
        let (mut state, some) =
            wait_while(&self.shared.changed, state, timeout, |(items, _)| items.is_empty());
        let item = if some { state.0.pop_front() } else { None };
        drop(state);
        self.shared.changed.notify_all();
        item
    }

    /// Items in it now.
    pub fn qsize(&self) -> usize {
        lock(&self.shared.state).0.len()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A named flag tasks wait for (Dask's `Event`).
#[derive(Clone)]
pub struct Event {
    shared: Arc<Shared<bool>>,
}

impl Event {
    /// The event named `name`, not set until someone sets it.
    pub fn new(name: &str) -> Event {
        Event { shared: named("event", name, Shared::default).expect("events hold no values") }
    }

    /// Sets it: every waiter wakes.
    pub fn set(&self) {
        *lock(&self.shared.state) = true;
        self.shared.changed.notify_all();
    }

    /// Clears it.
    pub fn clear(&self) {
        *lock(&self.shared.state) = false;
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        *lock(&self.shared.state)
    }

    /// Waits until it is set, at most `timeout`: whether it was.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let state = lock(&self.shared.state);
        wait_while(&self.shared.changed, state, timeout, |set| !*set).1
    }
}

/// A named shared value (Dask's `Variable`): one task sets it, others read it.
pub struct Variable<T> {
    shared: Arc<Shared<Option<T>>>,
}

impl<T> Clone for Variable<T> {
    fn clone(&self) -> Self {
        Variable { shared: self.shared.clone() }
    }
}

impl<T: Clone + Send + Sync + 'static> Variable<T> {
    /// The variable named `name`: an error if the name holds another type.
    pub fn new(name: &str) -> Result<Variable<T>, String> {
        Ok(Variable { shared: named("variable", name, Shared::default)? })
    }

    /// Sets its value; waiting readers wake.
    pub fn set(&self, value: T) {
        *lock(&self.shared.state) = Some(value);
        self.shared.changed.notify_all();
    }

    /// Its value, waiting at most `timeout` for one to be set.
    pub fn get(&self, timeout: Option<Duration>) -> Option<T> {
        let state = lock(&self.shared.state);
        let (state, set) = wait_while(&self.shared.changed, state, timeout, |v| v.is_none());
        if set { state.clone() } else { None }
    }

    /// Unsets it.
    pub fn delete(&self) {
        *lock(&self.shared.state) = None;
    }
}
