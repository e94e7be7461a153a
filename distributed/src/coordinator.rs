//! The coordination primitives (`brisk_scheduler::coordination`) for tasks in
//! worker processes: the coordinator keeps every lock, semaphore, queue, event
//! and variable and answers the `coordinate` action; each worker routes its
//! primitives there. The coordinator is the scheduler process, or, for a
//! local cluster, the program that started it (a small server of its own).
//! Locks and leases a dead worker held are given back when it is declared dead.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::Action;
use brisk_scheduler::coordination::{self, Reply, Request, Route};
use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::Status;

use crate::client::{Connections, decode_body};
use crate::flight::{Node, Replies, one_reply};
use crate::security::Security;

/// The action every coordinator answers.
pub(crate) const ACTION: (&str, &str) =
    ("coordinate", "a lock, semaphore, queue, event or variable request of a task");

/// Answers a `coordinate` action: the request served on this process's
/// primitives, off the server's threads (it may wait, up to its timeout).
pub(crate) fn coordinate(action: &Action) -> BoxFuture<'static, Result<Replies, Status>> {
    let request: Result<Request, Status> = decode_body("coordination request", &action.body);
    async move {
        let request = request?;
        let reply = tokio::task::spawn_blocking(move || coordination::serve(request))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::failed_precondition)?;
        one_reply(&reply)
    }
    .boxed()
}

/// The coordinator of a local cluster: a server in the program that started it.
pub(crate) struct Coordinator;

impl Node for Coordinator {
    const KIND: &'static str = "coordinator";
    const ACTIONS: &'static [(&'static str, &'static str)] = &[ACTION];

    fn action(self: Arc<Self>, action: Action) -> BoxFuture<'static, Result<Replies, Status>> {
        match action.r#type.as_str() {
            "coordinate" => coordinate(&action),
            other => {
                let other = other.to_string();
                async move { Err(Status::invalid_argument(format!("no action '{other}'"))) }.boxed()
            }
        }
    }
}

/// Routes this process's primitives to the coordinator at `at` (unless they
/// go somewhere already); its locks and leases are held in the name of
/// `holder` (a worker's address).
pub(crate) fn route_to(at: SocketAddr, security: Security, holder: String) {
    let reach = Arc::new(Reach {
        runtime: std::sync::OnceLock::new(),
        conns: Connections::new(security),
        at,
    });
    let route: Route = Arc::new(move |request| reach.call(request));
    coordination::set_coordinator(holder, route);
}

impl Drop for Reach {
    fn drop(&mut self) {
        // Possibly on a runtime's thread: not waited for there.
        if let Some(Ok(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The way to a coordinator: a runtime of its own (started on the first call)
/// and a connection.
struct Reach {
    runtime: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>>,
    conns: Connections,
    at: SocketAddr,
}

impl Reach {
    fn call(&self, request: Request) -> Result<Reply, String> {
        // A task running on a thread of a runtime (one the worker ran where it
        // took the call) cannot wait on another runtime there: from a thread
        // of its own, then.
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|s| {
                s.spawn(|| self.call(request))
                    .join()
                    .unwrap_or_else(|_| Err("the coordination call panicked".to_string()))
            });
        }
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("brisk-coordination-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        });
        let runtime = runtime.as_ref().map_err(|e| format!("no runtime for coordination: {e}"))?;
        let at = self.at;
        runtime.block_on(self.conns.action(at, "coordinate", &request)).map_err(|status| {
            self.conns.forget(at);
            format!("the coordinator at {at}: {}", status.message())
        })
    }
}
