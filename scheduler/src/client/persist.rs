//! [`Client::persist`](super::Client::persist): a collection computed once and
//! its results kept — in this process on threads, on the workers on worker
//! processes — so that every later compute of the client built on it (the
//! same keys) starts from them instead of running their tasks again. On
//! worker processes a kept result whose worker dies is made again from its
//! lineage, which the later compute's plan still holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use brisk_core::{Key, Op, Value};
use brisk_graph::{Collection, GraphBuilder, Task};

use super::lock;
use crate::{Backend, Held, Scheduler};

/// What a client's persists keep, by key.
#[derive(Default)]
pub(super) struct Kept {
    /// On threads: the values themselves.
    pub values: HashMap<Key, Value>,
    /// On worker processes: where each is held.
    pub held: HashMap<Key, Held>,
}

/// Plans `outputs` of `graph` on `scheduler` using what `kept` holds: the
/// plan (checked to leave the process, on a backend), and the kept results
/// it uses. Those keys are planned as outputs after `outputs`, so they stay
/// tasks of their own (not fused into a chain): the backend knows them by key.
pub(super) fn plan_using(
    scheduler: &Scheduler,
    graph: GraphBuilder,
    mut outputs: Vec<Key>,
    kept: &Mutex<Kept>,
) -> crate::Result<(brisk_graph::Plan, HashMap<Key, Held>)> {
    let held: HashMap<Key, Held> = {
        let kept = lock(kept);
        kept.held
            .iter()
            .filter(|(k, _)| graph.contains(k))
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect()
    };
    outputs.extend(held.keys().cloned());
    let plan = scheduler.plan(graph.finish()?, &outputs)?;
    if let Some(backend) = scheduler.backend_of() {
        Scheduler::refuse(backend.as_ref(), &plan)?;
    }
    Ok((plan, held))
}

/// A collection whose graph starts from the values kept on threads: each kept
/// key is a constant, so the tasks that made it are not run again.
pub(super) struct WithKept<C> {
    pub collection: C,
    pub values: Vec<(Key, Value)>,
}

impl<C: Collection> Collection for WithKept<C> {
    type Output = C::Output;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        for (key, value) in &self.values {
            graph.insert(Task::root(key.clone(), Op::Const(value.clone())));
        }
        self.collection.add_tasks(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.collection.output_keys()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Self::Output> {
        self.collection.finish(values)
    }
}

/// What one persist keeps: dropped with the last clone of its
/// [`Persisted`], it lets go of it.
pub(super) struct Record {
    pub keys: Vec<Key>,
    /// The computes it made whose results it keeps on the workers.
    pub computes: Vec<u64>,
    pub kept: Weak<Mutex<Kept>>,
    pub backend: Option<Arc<dyn Backend>>,
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Some(kept) = self.kept.upgrade() {
            let mut kept = lock(&kept);
            for key in &self.keys {
                kept.values.remove(key);
                if kept.held.get(key).is_some_and(|h| self.computes.contains(&h.compute)) {
                    kept.held.remove(key);
                }
            }
        }
        if let Some(backend) = &self.backend {
            for &compute in &self.computes {
                backend.unpersist(compute);
            }
        }
    }
}

/// A collection whose results its client keeps (Dask's persisted collection):
/// use it as the collection itself (it derefs to it); computes of the client
/// built on it start from the kept results. They are let go when the last
/// clone is dropped (or the client is).
pub struct Persisted<C> {
    pub(super) collection: C,
    pub(super) record: Arc<Record>,
}

impl<C: Clone> Clone for Persisted<C> {
    fn clone(&self) -> Self {
        Persisted { collection: self.collection.clone(), record: self.record.clone() }
    }
}

impl<C> std::ops::Deref for Persisted<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.collection
    }
}

impl<C> std::fmt::Debug for Persisted<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persisted").field("keys", &self.record.keys.len()).finish()
    }
}

impl<C: Collection> Collection for Persisted<C> {
    type Output = C::Output;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.collection.add_tasks(graph)
    }

    fn output_keys(&self) -> Vec<Key> {
        self.collection.output_keys()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Self::Output> {
        self.collection.finish(values)
    }
}
