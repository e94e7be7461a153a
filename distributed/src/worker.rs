//! A worker: a Flight server that runs tasks it is sent and holds their results by
//! key, serving them to its peers and to any Flight client (`DoGet` with the key
//! as the ticket, the value as Arrow IPC in `brisk_core::ipc`'s form).
//!
//! Actions (`DoAction`):
//! - `run`: a [`RunTask`] (MessagePack); the worker gathers the task's inputs,
//!   from itself or from the peers that hold them, runs the op and keeps the
//!   result. The reply is the result's size in bytes (MessagePack `u64`).
//! - `free`: a list of keys whose results are no longer needed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightClient, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use brisk_core::{Key, OpRegistry, Value};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

/// One input of a task: a result and the worker that holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Input {
    /// The result's key.
    pub key: Key,
    /// The address of a worker holding it.
    pub at: SocketAddr,
}

/// A task sent to a worker: its key, its op (the bytes of `Op::encode`) and its
/// inputs in the order the op takes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunTask {
    /// Where the result is kept.
    pub key: Key,
    /// The op, encoded.
    pub op: Vec<u8>,
    /// The inputs, in order.
    pub inputs: Vec<Input>,
}

type Held = Arc<Mutex<HashMap<Key, Value>>>;

/// The largest gRPC message either side accepts: a task carries its constants
/// (gRPC's default of 4 MiB would refuse a modest array), while results travel
/// split into messages of about 2 MB.
const MESSAGE_LIMIT: usize = 1 << 30;

fn lock(held: &Held) -> std::sync::MutexGuard<'_, HashMap<Key, Value>> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The Flight service of one worker.
struct Service {
    addr: SocketAddr,
    held: Held,
    registry: Arc<OpRegistry>,
}

fn decode_body<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, Status> {
    rmp_serde::from_slice(bytes).map_err(|e| Status::invalid_argument(format!("bad {what}: {e}")))
}

impl Service {
    /// Runs `task`: its inputs gathered, its op run off the server's threads, its
    /// result kept. The result's size in bytes.
    async fn run(&self, task: RunTask) -> Result<u64, Status> {
        let op = self
            .registry
            .decode(&task.op)
            .map_err(|e| Status::invalid_argument(format!("task {}: {e}", task.key)))?;
        let mut inputs = Vec::with_capacity(task.inputs.len());
        for input in &task.inputs {
            let value = match input.at == self.addr {
                true => lock(&self.held).get(&input.key).cloned().ok_or_else(|| {
                    Status::not_found(format!("task {}: no input {} here", task.key, input.key))
                })?,
                false => fetch(input.at, &input.key).await?,
            };
            inputs.push(value);
        }
        let key = task.key.clone();
        let ran =
            tokio::task::spawn_blocking(move || catch_unwind(AssertUnwindSafe(|| op.run(inputs))))
                .await
                .map_err(|e| Status::internal(format!("task {key}: {e}")))?;
        let value = match ran {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => return Err(Status::aborted(format!("task {} failed: {e}", task.key))),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                return Err(Status::aborted(format!("task {} panicked: {message}", task.key)));
            }
        };
        let nbytes = value.nbytes();
        lock(&self.held).insert(task.key, value);
        Ok(nbytes)
    }
}

fn unimplemented<T>(what: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!("a Brisk worker has no {what}")))
}

#[tonic::async_trait]
impl FlightService for Service {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unimplemented("handshake")
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented("flight list")
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unimplemented("flight info")
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unimplemented("flight info")
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unimplemented("schema by descriptor")
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let key: Key = decode_body("ticket (a key)", &request.get_ref().ticket)?;
        let value = lock(&self.held)
            .get(&key)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no result {key} on worker {}", self.addr)))?;
        let batch = value.to_batch().map_err(|e| Status::failed_precondition(e.to_string()))?;
        let data =
            FlightDataEncoderBuilder::new().build(stream::iter([Ok(batch)])).map_err(Status::from);
        Ok(Response::new(data.boxed()))
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unimplemented("put")
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        unimplemented("exchange")
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        let reply = match action.r#type.as_str() {
            "run" => {
                let task: RunTask = decode_body("task", &action.body)?;
                let nbytes = self.run(task).await?;
                rmp_serde::to_vec(&nbytes).map_err(|e| Status::internal(e.to_string()))?
            }
            "free" => {
                let keys: Vec<Key> = decode_body("key list", &action.body)?;
                let mut held = lock(&self.held);
                keys.iter().for_each(|k| drop(held.remove(k)));
                Vec::new()
            }
            other => return Err(Status::invalid_argument(format!("no action '{other}'"))),
        };
        let result = arrow_flight::Result { body: reply.into() };
        Ok(Response::new(stream::iter([Ok(result)]).boxed()))
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = [("run", "run a task and keep its result"), ("free", "drop results")]
            .map(|(t, d)| Ok(ActionType { r#type: t.into(), description: d.into() }));
        Ok(Response::new(stream::iter(actions).boxed()))
    }
}

/// A connection to the worker at `addr`.
async fn client(addr: SocketAddr) -> Result<FlightClient, Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("worker {addr}: {e}")))?;
    let inner = FlightServiceClient::new(channel)
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    Ok(FlightClient::new_from_inner(inner))
}

fn flight_status(addr: SocketAddr) -> impl Fn(arrow_flight::error::FlightError) -> Status {
    move |e| match e {
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => Status::internal(format!("worker {addr}: {other}")),
    }
}

/// The result `key` held by the worker at `addr`.
pub async fn fetch(addr: SocketAddr, key: &Key) -> Result<Value, Status> {
    let fail = flight_status(addr);
    let ticket = rmp_serde::to_vec(key).map_err(|e| Status::internal(e.to_string()))?;
    let mut data =
        client(addr).await?.do_get(Ticket { ticket: ticket.into() }).await.map_err(&fail)?;
    let mut batches = Vec::new();
    while let Some(batch) = data.next().await {
        batches.push(batch.map_err(&fail)?);
    }
    let schema = data
        .schema()
        .cloned()
        .ok_or_else(|| Status::data_loss(format!("worker {addr} sent no schema for {key}")))?;
    // The encoder splits a large batch into several messages: one batch again.
    let batch = match batches.len() {
        0 => RecordBatch::new_empty(schema),
        1 => batches.remove(0),
        _ => arrow_select::concat::concat_batches(&schema, &batches)
            .map_err(|e| Status::data_loss(e.to_string()))?,
    };
    Value::from_batch(batch).map_err(|e| Status::data_loss(format!("{key} from {addr}: {e}")))
}

/// Sends `task` to the worker at `addr` to run: the size of its result.
pub async fn run(addr: SocketAddr, task: &RunTask) -> Result<u64, Status> {
    let body = rmp_serde::to_vec(task).map_err(|e| Status::internal(e.to_string()))?;
    let action = Action { r#type: "run".into(), body: body.into() };
    let mut replies = client(addr).await?.do_action(action).await.map_err(flight_status(addr))?;
    let reply = replies
        .try_next()
        .await
        .map_err(flight_status(addr))?
        .ok_or_else(|| Status::data_loss(format!("worker {addr} did not answer")))?;
    decode_body("reply", &reply)
}

/// A worker serving on an address of its own until it is dropped; dropping it
/// stops the server and joins its threads.
pub struct Worker {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts a worker listening on `listen` (port 0 picks a free port) that runs
    /// the ops `registry` knows.
    pub fn start(listen: SocketAddr, registry: OpRegistry) -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("brisk-worker-io")
            .enable_all()
            .build()?;
        let incoming = {
            let _inside = runtime.enter();
            TcpIncoming::bind(listen)?.with_nodelay(Some(true))
        };
        let addr = incoming.local_addr()?;
        let service = Service { addr, held: Held::default(), registry: Arc::new(registry) };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread =
            std::thread::Builder::new().name(format!("brisk-worker-{addr}")).spawn(move || {
                runtime.block_on(async move {
                    let server = Server::builder()
                        .add_service(
                            FlightServiceServer::new(service)
                                .max_decoding_message_size(MESSAGE_LIMIT)
                                .max_encoding_message_size(MESSAGE_LIMIT),
                        )
                        .serve_with_incoming_shutdown(incoming, async {
                            let _ = stopped.await;
                        });
                    // An error here ends the worker; its clients see it unavailable.
                    let _ = server.await;
                });
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        Ok(Worker { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
