//! Talking to workers: one HTTP/2 connection per worker, kept and shared by every
//! call ([`Connections`]), and the calls themselves — run a task, fetch a result,
//! free results, say hello.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightClient, Ticket};
use brisk_core::Value;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::security::Security;
use crate::worker::{Done, Hello, Ran, ResultId, RunTask, Wanted};

/// The largest gRPC message either side accepts: a task carries its constants
/// (gRPC's default of 4 MiB would refuse a modest array), while results travel
/// split into messages of about 2 MB.
pub(crate) const MESSAGE_LIMIT: usize = 1 << 30;

/// HTTP/2 flow-control windows: how much may be in flight on one call, and on
/// one connection, before the sender waits for the receiver.
pub(crate) const STREAM_WINDOW: u32 = 8 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 32 << 20;
/// The largest HTTP/2 frame either side accepts (the default, 16 KiB, cuts a
/// result into hundreds of frames per megabyte).
pub(crate) const FRAME_SIZE: u32 = 1 << 20;

/// How long a connection attempt may take before the worker counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One answer of [`Connections::run_batch`].
pub(crate) type BatchReply = Result<(usize, Result<Ran, Status>), Status>;

/// How long a connection may go without an answer to its pings before calls on
/// it fail.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Open connections to workers, by address. A connection belongs to the tokio
/// runtime it was opened on: keep one `Connections` per runtime.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<HashMap<SocketAddr, FlightServiceClient<Channel>>>,
    /// The token every call carries, the TLS every connection uses.
    security: Security,
    /// Links between two workers found cut, (from, to), and when.
    cut: Mutex<HashMap<(SocketAddr, SocketAddr), std::time::Instant>>,
}

/// How long a link found cut is avoided before it is tried again.
const CUT_MEMORY: Duration = Duration::from_secs(30);

impl Connections {
    /// Connections that prove themselves with `security` (the default: with
    /// nothing, as loopback servers without a token accept).
    pub fn new(security: Security) -> Connections {
        Connections { open: Mutex::default(), security, cut: Mutex::default() }
    }

    /// A client of the worker at `addr`, on the kept connection or a new one.
    pub async fn client(&self, addr: SocketAddr) -> Result<FlightClient, Status> {
        let kept = self.lock().get(&addr).cloned();
        let inner = match kept {
            Some(inner) => inner,
            None => self.connect(addr).await?,
        };
        let mut client = FlightClient::new_from_inner(inner);
        if let Some(authorization) = self.security.authorization() {
            client
                .add_header("authorization", &authorization)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        Ok(client)
    }

    /// Notes that the worker at `from` could not fetch from the one at `to`,
    /// both alive: the link between them is avoided for a while.
    pub(crate) fn note_cut(&self, from: SocketAddr, to: SocketAddr) {
        let mut cut = self.cut.lock().unwrap_or_else(PoisonError::into_inner);
        cut.retain(|_, at| at.elapsed() < CUT_MEMORY);
        cut.insert((from, to), std::time::Instant::now());
    }

    /// The links between workers found cut lately.
    pub(crate) fn cuts(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let cut = self.cut.lock().unwrap_or_else(PoisonError::into_inner);
        cut.iter().filter(|(_, at)| at.elapsed() < CUT_MEMORY).map(|(&link, _)| link).collect()
    }

    /// What these connections prove themselves with.
    pub(crate) fn security(&self) -> &Security {
        &self.security
    }

    /// Whether these connections use TLS.
    pub(crate) fn has_tls(&self) -> bool {
        self.security.has_tls()
    }

    /// Opens a connection to `addr` and keeps it.
    async fn connect(&self, addr: SocketAddr) -> Result<FlightServiceClient<Channel>, Status> {
        let scheme = if self.security.has_tls() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(tls) = self.security.client_tls(addr) {
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Status::invalid_argument(format!("TLS for {addr}: {e}")))?;
        }
        let channel = endpoint
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            // A worker stopped (SIGSTOP, a cut link) fails the calls waiting on it
            // instead of leaving them hanging.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(Some(STREAM_WINDOW))
            .initial_connection_window_size(Some(CONNECTION_WINDOW))
            // Results come to this side: in frames of a megabyte, not 16 KiB.
            .max_frame_size(Some(FRAME_SIZE))
            .connect()
            .await
            .map_err(|e| {
                Status::unavailable(format!("cannot connect to {addr}: {}", with_causes(&e)))
            })?;
        let inner = FlightServiceClient::new(channel)
            .max_decoding_message_size(MESSAGE_LIMIT)
            .max_encoding_message_size(MESSAGE_LIMIT);
        self.lock().insert(addr, inner.clone());
        Ok(inner)
    }

    /// Drops the connection to `addr` (after it failed): the next call reconnects.
    pub fn forget(&self, addr: SocketAddr) {
        self.lock().remove(&addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, FlightServiceClient<Channel>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The result `id` held by the worker at `addr`.
    pub async fn fetch(&self, addr: SocketAddr, id: &ResultId) -> Result<Value, Status> {
        let fail = flight_status(addr);
        let ticket = rmp_serde::to_vec(id).map_err(|e| Status::internal(e.to_string()))?;
        let mut data = self
            .client(addr)
            .await?
            .do_get(Ticket { ticket: ticket.into() })
            .await
            .map_err(&fail)?;
        let mut batches = Vec::new();
        while let Some(batch) = data.next().await {
            batches.push(batch.map_err(&fail)?);
        }
        let schema = data.schema().cloned().ok_or_else(|| {
            Status::data_loss(format!("worker {addr} sent no schema for {}", id.key))
        })?;
        // The encoder splits a large batch into several messages: one batch again.
        let batch = match batches.len() {
            0 => RecordBatch::new_empty(schema),
            1 => batches.remove(0),
            _ => arrow_select::concat::concat_batches(&schema, &batches)
                .map_err(|e| Status::data_loss(e.to_string()))?,
        };
        Value::from_batch(batch)
            .map_err(|e| Status::data_loss(format!("{} from {addr}: {e}", id.key)))
    }

    /// The results `ids` held by the worker at `addr`, in one call (Brisk's value
    /// codec rather than Flight's IPC stream: between workers, for many small
    /// results at once).
    pub async fn fetch_many(
        &self,
        addr: SocketAddr,
        ids: &[ResultId],
    ) -> Result<Vec<Value>, Status> {
        let wanted: Vec<Wanted> =
            ids.iter().map(|id| Wanted { id: id.clone(), item: None }).collect();
        self.fetch_wanted(addr, &wanted).await
    }

    /// [`fetch_many`](Self::fetch_many) of results or items of them.
    pub(crate) async fn fetch_wanted(
        &self,
        addr: SocketAddr,
        wanted: &[Wanted],
    ) -> Result<Vec<Value>, Status> {
        let ids = wanted;
        let body = rmp_serde::to_vec(wanted).map_err(|e| Status::internal(e.to_string()))?;
        let action = Action { r#type: "get-many".into(), body: body.into() };
        let mut replies =
            self.client(addr).await?.do_action(action).await.map_err(flight_status(addr))?;
        let mut values = Vec::with_capacity(ids.len());
        while let Some(reply) = replies.next().await {
            let bytes = reply.map_err(flight_status(addr))?;
            values.push(
                Value::decode(&bytes)
                    .map_err(|e| Status::data_loss(format!("from {addr}: {e}")))?,
            );
        }
        if values.len() != ids.len() {
            return Err(Status::data_loss(format!(
                "worker {addr} sent {} of {} results",
                values.len(),
                ids.len()
            )));
        }
        Ok(values)
    }

    /// Has the worker at `addr` run `task`: the size of its result in bytes.
    pub async fn run(&self, addr: SocketAddr, task: &RunTask) -> Result<u64, Status> {
        self.action(addr, "run", task).await
    }

    /// Has the worker at `addr` run `tasks` at once: each answer as it comes, with
    /// the task's place in `tasks` (what came of it, or why it failed).
    pub async fn run_batch(
        &self,
        addr: SocketAddr,
        tasks: &[RunTask],
    ) -> Result<BoxStream<'static, BatchReply>, Status> {
        let body = rmp_serde::to_vec(tasks).map_err(|e| Status::internal(e.to_string()))?;
        let action = Action { r#type: "run-batch".into(), body: body.into() };
        let replies =
            self.client(addr).await?.do_action(action).await.map_err(flight_status(addr))?;
        Ok(replies
            .map(move |reply| {
                let done: Done = decode_body("reply", &reply.map_err(flight_status(addr))?)?;
                let outcome = match done.failure {
                    None => Ok(Ran {
                        nbytes: done.nbytes,
                        micros: done.micros,
                        pinned: done.pinned,
                        read: done.read,
                        value: done.value.map(serde_bytes::ByteBuf::into_vec),
                    }),
                    Some(failure) => Err(Status::from(failure)),
                };
                Ok((done.index as usize, outcome))
            })
            .boxed())
    }

    /// Has the worker at `addr` drop results.
    pub async fn free(&self, addr: SocketAddr, ids: &[ResultId]) -> Result<(), Status> {
        self.action(addr, "free", &ids).await
    }

    /// Has the worker at `addr` drop every result of a compute.
    pub async fn free_compute(&self, addr: SocketAddr, compute: u64) -> Result<(), Status> {
        self.action(addr, "free-compute", &compute).await
    }

    /// What the worker at `addr` is: its version, ops, threads and epoch.
    pub async fn hello(&self, addr: SocketAddr) -> Result<Hello, Status> {
        self.action(addr, "hello", &()).await
    }

    /// One action with a MessagePack body and one MessagePack reply.
    pub(crate) async fn action<B: Serialize + ?Sized, R: for<'de> Deserialize<'de>>(
        &self,
        addr: SocketAddr,
        kind: &str,
        body: &B,
    ) -> Result<R, Status> {
        let body = rmp_serde::to_vec(body).map_err(|e| Status::internal(e.to_string()))?;
        let action = Action { r#type: kind.into(), body: body.into() };
        let mut replies =
            self.client(addr).await?.do_action(action).await.map_err(flight_status(addr))?;
        let reply = replies
            .try_next()
            .await
            .map_err(flight_status(addr))?
            .ok_or_else(|| Status::data_loss(format!("worker {addr} did not answer")))?;
        decode_body("reply", &reply)
    }
}

/// An error and the errors under it, `outer: inner: ...` (a transport error
/// alone says only "transport error").
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    text
}

/// A Flight error as the gRPC status it carries (or an internal one naming `addr`).
pub(crate) fn flight_status(
    addr: SocketAddr,
) -> impl Fn(arrow_flight::error::FlightError) -> Status {
    move |e| match e {
        // A connection that failed under the call (TLS refused, a reset) says
        // only "transport error" unless its causes are told.
        arrow_flight::error::FlightError::Tonic(status)
            if std::error::Error::source(status.as_ref()).is_some() =>
        {
            let causes = std::error::Error::source(status.as_ref()).map(with_causes);
            let mut told = Status::new(
                status.code(),
                format!("{}: {}", status.message(), causes.unwrap_or_default()),
            );
            *told.metadata_mut() = status.metadata().clone();
            told
        }
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => Status::internal(format!("worker {addr}: {other}")),
    }
}

/// The runtime a client's calls run on: `threads` I/O threads.
pub(crate) fn client_runtime(
    threads: usize,
) -> Result<tokio::runtime::Runtime, brisk_scheduler::BackendError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("brisk-client-io")
        .enable_all()
        .build()
        .map_err(|e| {
            brisk_scheduler::BackendError::Cluster(format!("cannot start the client's I/O: {e}"))
        })
}

/// A MessagePack body, or a status naming `what` could not be read.
pub(crate) fn decode_body<T: for<'de> Deserialize<'de>>(
    what: &str,
    bytes: &[u8],
) -> Result<T, Status> {
    rmp_serde::from_slice(bytes).map_err(|e| Status::invalid_argument(format!("bad {what}: {e}")))
}
