//! What every Brisk server (worker, scheduler) shares: the Flight service over a
//! [`Node`] that answers actions (and, for a worker, tickets), and the server
//! thread that serves it on an address until dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::client::{CONNECTION_WINDOW, FRAME_SIZE, MESSAGE_LIMIT, STREAM_WINDOW};
use crate::security::Security;

/// The replies to an action.
pub(crate) type Replies = BoxStream<'static, Result<arrow_flight::Result, Status>>;
/// The messages of a `DoGet`.
pub(crate) type Data = BoxStream<'static, Result<FlightData, Status>>;

/// A server's behaviour: its actions, and what a ticket fetches.
pub(crate) trait Node: Send + Sync + 'static {
    /// What the server is, for messages ("worker", "scheduler").
    const KIND: &'static str;
    /// Its actions and what each does (`ListActions`).
    const ACTIONS: &'static [(&'static str, &'static str)];

    /// Answers one action.
    fn action(self: Arc<Self>, action: Action) -> BoxFuture<'static, Result<Replies, Status>>;

    /// The data a ticket names (`DoGet`).
    fn get(&self, _ticket: &[u8]) -> Result<Data, Status> {
        Err(Status::unimplemented(format!("a Brisk {} serves no data", Self::KIND)))
    }
}

/// One reply of MessagePack-encoded `value`.
pub(crate) fn one_reply<T: serde::Serialize>(value: &T) -> Result<Replies, Status> {
    let body = rmp_serde::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(stream::iter([Ok(arrow_flight::Result { body: body.into() })]).boxed())
}

struct Service<N>(Arc<N>);

fn unimplemented<N: Node, T>(what: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!("a Brisk {} has no {what}", N::KIND)))
}

#[tonic::async_trait]
impl<N: Node> FlightService for Service<N> {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = Data;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoActionStream = Replies;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unimplemented::<N, _>("handshake")
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented::<N, _>("flight list")
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unimplemented::<N, _>("flight info")
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unimplemented::<N, _>("flight info")
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unimplemented::<N, _>("schema by descriptor")
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Data>, Status> {
        Ok(Response::new(self.0.get(&request.get_ref().ticket)?))
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unimplemented::<N, _>("put")
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        unimplemented::<N, _>("exchange")
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Replies>, Status> {
        Ok(Response::new(self.0.clone().action(request.into_inner()).await?))
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = N::ACTIONS
            .iter()
            .map(|(t, d)| Ok(ActionType { r#type: (*t).into(), description: (*d).into() }));
        Ok(Response::new(stream::iter(actions.collect::<Vec<_>>()).boxed()))
    }
}

/// How long a caller may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The connections of `incoming` that complete a TLS handshake with `acceptor`
/// (each in a task of its own, so a slow one holds up no other); a refused one
/// is written to stderr with its address, `server` naming this server.
fn handshakes(
    mut incoming: TcpIncoming,
    acceptor: tokio_rustls::TlsAcceptor,
    server: String,
) -> impl futures::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>
{
    let (accepted, connections) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(tcp) = incoming.next().await {
            let Ok(tcp) = tcp else { continue };
            let (acceptor, accepted, server) = (acceptor.clone(), accepted.clone(), server.clone());
            tokio::spawn(async move {
                let from =
                    tcp.peer_addr().map_or_else(|_| "an unknown address".into(), |a| a.to_string());
                let refusal =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = accepted.send(Ok(tls)).await;
                            return;
                        }
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!("no TLS handshake in {HANDSHAKE_TIMEOUT:?}"),
                    };
                // Not eprintln!, which panics when stderr is closed.
                let line = format!("{server}: refused a connection from {from}: {refusal}\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            });
        }
    });
    stream::unfold(connections, |mut connections| async move {
        connections.recv().await.map(|c| (c, connections))
    })
}

/// A server on an address of its own, on its own thread and runtime, until
/// dropped: dropping it stops the server and joins its threads.
pub(crate) struct Serving {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// Serves the node `node` makes (knowing its address) on `listen` (port 0
    /// picks a free port), to callers that prove themselves as `security`
    /// asks. Outside loopback, `security` must ask for something.
    pub(crate) fn start<N: Node>(
        listen: SocketAddr,
        security: &Security,
        node: impl FnOnce(SocketAddr) -> N,
    ) -> std::io::Result<Serving> {
        security
            .check_listen(N::KIND, listen)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("brisk-{}-io", N::KIND))
            .enable_all()
            .build()?;
        let incoming = {
            let _inside = runtime.enter();
            TcpIncoming::bind(listen)?.with_nodelay(Some(true))
        };
        let addr = incoming.local_addr()?;
        let service = FlightServiceServer::new(Service(Arc::new(node(addr))))
            .max_decoding_message_size(MESSAGE_LIMIT)
            .max_encoding_message_size(MESSAGE_LIMIT);
        // Every call, whatever it is, passes the token check first.
        let who = format!("brisk {} {addr}", N::KIND);
        let (gate, server) = (security.clone(), who.clone());
        let service = InterceptedService::new(service, move |request| gate.admit(&server, request));
        let acceptor = security
            .acceptor()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let name = format!("brisk-{}-{addr}", N::KIND);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            runtime.block_on(async move {
                let server = Server::builder()
                    // Results are megabytes: windows of gRPC's 64 KiB default
                    // would cost a round trip every 64 KiB.
                    .initial_stream_window_size(Some(STREAM_WINDOW))
                    .initial_connection_window_size(Some(CONNECTION_WINDOW))
                    .max_frame_size(Some(FRAME_SIZE))
                    .add_service(service);
                let stopped = async {
                    let _ = stopped.await;
                };
                let server = match acceptor {
                    None => server.serve_with_incoming_shutdown(incoming, stopped).boxed(),
                    Some(acceptor) => server
                        .serve_with_incoming_shutdown(handshakes(incoming, acceptor, who), stopped)
                        .boxed(),
                };
                // An error here ends the server; its clients see it unavailable.
                let _ = server.await;
            });
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        })?;
        Ok(Serving { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
