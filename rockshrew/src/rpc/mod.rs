//! The JSON-RPC 2.0 server (axum): `POST /` for Metashrew's methods, `GET /metrics` for
//! Prometheus, `GET /status` for every indexer's state ([`status`]).
//!
//! A daemon that runs several indexers answers each one's methods at `POST /LABEL`; `POST /`
//! then answers for `--default-indexer`, or is an error that lists the labels. With one
//! indexer, `POST /` answers for it (and `POST /LABEL` too when it has a label).
//!
//! Requests may be single objects or batches (up to [`MAX_BATCH`] entries). Errors use the
//! standard codes: -32700 parse error, -32600 invalid request, -32601 method not found, -32602
//! invalid params, -32603 internal error, -32000 for a view or preview that failed, -32001 for a
//! view refused because the host is short of memory (`--view-memory-floor-mib`), -32002 for one
//! that grew past its memory bound (`--view-memory-mib`), as Metashrew's production line answers,
//! and -32003 for a call pinned to a block hash that is not on the indexed chain.
//! The body size is limited (`--max-request-bytes`). Views run on their own threads
//! ([`view_pool`]), at a lower priority than the indexer, and never wait for block indexing;
//! heights, hashes and roots are answered on the server's threads without waiting for views. A
//! view whose client disconnects is cancelled.

pub mod host_memory;
pub mod methods;
pub mod status;
pub mod view_pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rockshrew_store::Replica;
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

use metashrew_runtime::MetashrewRuntime;
use metashrew_storage::Storage;

use crate::metrics::Metrics;

/// Most requests in one batch.
pub const MAX_BATCH: usize = 1000;

/// JSON-RPC 2.0: the request is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0: no such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC 2.0: wrong parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0: the server failed (storage, engine).
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined: the guest failed (Metashrew's code for view and preview errors).
pub const SERVER_ERROR: i64 = -32000;
/// Implementation-defined: the view was refused for now (the host is below its memory floor).
pub const UNAVAILABLE: i64 = -32001;
/// Implementation-defined: the view grew past its memory bound.
pub const RESOURCE_EXHAUSTED: i64 = -32002;
/// Implementation-defined: the block hash a call was pinned to is not on the indexed chain
/// (unknown, or reorganised away).
pub const BLOCK_NOT_ON_CHAIN: i64 = -32003;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// What went wrong.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An [`INVALID_PARAMS`] error.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

/// What the handlers share.
pub struct AppState<S: Storage> {
    /// The indexer's runtime, for views, previews, heights, hashes and roots.
    pub runtime: Arc<MetashrewRuntime<S>>,
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// Runtime calls in flight, at most the runtime's view slots: the rest wait here, without
    /// holding a thread.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// The threads views run on, one per slot.
    pub(crate) pool: view_pool::ViewPool,
    /// New views are refused while the host has less available memory than this (0: never).
    pub(crate) memory_floor_bytes: u64,
    /// On a replica: held across every runtime call, so that no answer mixes two refreshes.
    pub(crate) replica: Option<Arc<Replica>>,
    /// Blocks rolled back by the sync loop, for block-hash tags.
    pub abandoned: Arc<crate::abandoned::Abandoned>,
    /// The indexer's label and whether it has stopped, for `/status`.
    pub status: Arc<status::Status>,
}

/// Every indexer the server answers for, and the one `POST /` answers for.
pub struct Endpoints<S: Storage> {
    lanes: Vec<Arc<AppState<S>>>,
    default: Option<usize>,
}

impl<S: Storage> Endpoints<S> {
    /// One indexer, answered at `POST /` (and at `POST /LABEL` when it has a label).
    pub fn single(state: Arc<AppState<S>>) -> Self {
        Self {
            lanes: vec![state],
            default: Some(0),
        }
    }

    /// Several indexers, each at `POST /LABEL`; `POST /` answers for `default` (a label), or
    /// is an error when it is `None` and there are several.
    pub fn several(lanes: Vec<Arc<AppState<S>>>, default: Option<&str>) -> Self {
        let default = match lanes.len() {
            1 => Some(0),
            _ => default.and_then(|d| lanes.iter().position(|l| l.status.label() == Some(d))),
        };
        Self { lanes, default }
    }

    /// The indexer labelled `label`.
    fn by_label(&self, label: &str) -> Option<&Arc<AppState<S>>> {
        self.lanes.iter().find(|l| l.status.label() == Some(label))
    }

    /// The labels, comma-separated, for messages.
    fn labels(&self) -> String {
        crate::indexers::listed(self.lanes.iter().map(|l| l.status.namespace()))
    }
}

/// How views are run, beside the runtime's own bounds (time, memory per view, slots).
#[derive(Debug, Clone, Default)]
pub struct ViewSettings {
    /// Priority and CPUs of the view threads.
    pub placement: crate::placement::Placement,
    /// New views are refused (-32001) while the host's available memory is below this many
    /// bytes; 0: never.
    pub memory_floor_bytes: u64,
}

impl<S: Storage> AppState<S> {
    /// State over `runtime` and `metrics`; starts the view threads.
    pub fn new(
        runtime: Arc<MetashrewRuntime<S>>,
        metrics: Arc<Metrics>,
        views: &ViewSettings,
    ) -> Result<Self, view_pool::PoolError> {
        let places = runtime.config().max_concurrent_views.max(1);
        Ok(Self {
            slots: Arc::new(tokio::sync::Semaphore::new(places)),
            pool: view_pool::ViewPool::start(places, &views.placement)?,
            memory_floor_bytes: views.memory_floor_bytes,
            runtime,
            metrics,
            replica: None,
            abandoned: Arc::default(),
            status: Arc::default(),
        })
    }

    /// The state of the indexer `status` describes (its label, its failure when it stops).
    pub fn with_status(mut self, status: Arc<status::Status>) -> Self {
        self.status = status;
        self
    }

    /// The state of a read replica: every runtime call holds `replica`'s current state.
    pub fn with_replica(mut self, replica: Arc<Replica>) -> Self {
        self.replica = Some(replica);
        self
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// The largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// `None`: no CORS headers; `Some("*")`: any origin; otherwise a comma-separated list.
    pub cors: Option<String>,
    /// Time to receive a request's headers; also how long an idle keep-alive connection is
    /// kept waiting for its next request.
    pub header_timeout: Duration,
    /// Time to receive a request's body.
    pub body_timeout: Duration,
    /// Connections open at once; at the bound a new one closes the oldest that has not sent a
    /// whole request yet, or waits for a slot when every open one has (see [`serve`]).
    pub max_connections: usize,
    /// Applied by the daemon to every thread the server runs on (default: none).
    pub thread_placement: crate::placement::Placement,
}

fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
        Err(e) => {
            json!({"jsonrpc": "2.0", "error": {"code": e.code, "message": e.message}, "id": id})
        }
    }
}

async fn handle_one<S: Storage>(state: Arc<AppState<S>>, request: Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(object) = request.as_object() else {
        return response(
            Value::Null,
            Err(RpcError::new(
                INVALID_REQUEST,
                "Invalid Request: not an object",
            )),
        );
    };
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        return response(
            id,
            Err(RpcError::new(
                INVALID_REQUEST,
                "Invalid Request: `method` must be a string",
            )),
        );
    };
    let params = match object.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return response(
                id,
                Err(RpcError::invalid_params(
                    "params must be an array (positional)",
                )),
            );
        }
    };
    let label = methods::Method::from_name(method).map_or("unknown", methods::Method::name);
    state.metrics.rpc_requests.with_label_values(&[label]).inc();
    let result = methods::dispatch(state, method.to_string(), params).await;
    if let Err(e) = &result {
        log::debug!("RPC {method} failed: {}", e.message);
    }
    response(id, result)
}

/// Request bodies from this size on are parsed on a view thread, not on the server's: a
/// preview carries a whole block in hex, and parsing megabytes would hold up the cheap calls.
const PARSE_OFF_SERVER_BYTES: usize = 64 << 10;

/// A JSON-RPC error as the whole reply, with an HTTP status.
fn refusal(status: StatusCode, code: i64, message: String) -> Response {
    let reply = response(Value::Null, Err(RpcError::new(code, message)));
    (status, axum::Json(reply)).into_response()
}

async fn handle_default<S: Storage>(
    State(endpoints): State<Arc<Endpoints<S>>>,
    body: Bytes,
) -> Response {
    match endpoints.default.and_then(|i| endpoints.lanes.get(i)) {
        Some(state) => handle(state.clone(), body).await,
        None => refusal(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            format!(
                "this daemon runs several indexers ({}): POST to /LABEL, or start it with --default-indexer LABEL",
                endpoints.labels()
            ),
        ),
    }
}

async fn handle_labelled<S: Storage>(
    State(endpoints): State<Arc<Endpoints<S>>>,
    axum::extract::Path(label): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    match endpoints.by_label(&label) {
        Some(state) => handle(state.clone(), body).await,
        None => refusal(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            format!(
                "no indexer is labelled `{label}` (labels: {})",
                endpoints.labels()
            ),
        ),
    }
}

async fn handle<S: Storage>(state: Arc<AppState<S>>, body: Bytes) -> Response {
    let parsed: Result<Value, serde_json::Error> = if body.len() >= PARSE_OFF_SERVER_BYTES {
        match state.pool.run(move || serde_json::from_slice(&body)).await {
            Ok(parsed) => parsed,
            Err(_) => {
                let error = RpcError::new(INTERNAL_ERROR, "the parsing thread failed");
                return axum::Json(response(Value::Null, Err(error))).into_response();
            }
        }
    } else {
        serde_json::from_slice(&body)
    };
    let parsed: Value = match parsed {
        Ok(v) => v,
        Err(e) => {
            let error = RpcError::new(PARSE_ERROR, format!("Parse error: {e}"));
            return axum::Json(response(Value::Null, Err(error))).into_response();
        }
    };
    let reply = match parsed {
        Value::Array(items) if items.is_empty() => response(
            Value::Null,
            Err(RpcError::new(
                INVALID_REQUEST,
                "Invalid Request: empty batch",
            )),
        ),
        Value::Array(items) if items.len() > MAX_BATCH => response(
            Value::Null,
            Err(RpcError::new(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: batch of {} exceeds {MAX_BATCH}",
                    items.len()
                ),
            )),
        ),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(handle_one(state.clone(), item).await);
            }
            Value::Array(out)
        }
        single => handle_one(state, single).await,
    };
    axum::Json(reply).into_response()
}

async fn metrics<S: Storage>(State(endpoints): State<Arc<Endpoints<S>>>) -> Response {
    // The indexers' metrics share one registry: any of them renders them all.
    let text = endpoints
        .lanes
        .first()
        .map(|l| l.metrics.render())
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

async fn status_page<S: Storage>(State(endpoints): State<Arc<Endpoints<S>>>) -> Response {
    let report: Vec<Value> = endpoints.lanes.iter().map(|l| status::report(l)).collect();
    axum::Json(json!({ "indexers": report })).into_response()
}

/// The CORS layer of `--cors` (`*`, or a comma-separated list of origins); an origin that is
/// not a valid header value is an error.
fn cors_layer(cors: &str) -> anyhow::Result<CorsLayer> {
    let layer = CorsLayer::new().allow_methods(Any).allow_headers(Any);
    if cors.trim() == "*" {
        return Ok(layer.allow_origin(Any));
    }
    let origins = cors
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("--cors: invalid origin {o:?}"))
        })
        .collect::<anyhow::Result<Vec<HeaderValue>>>()?;
    anyhow::ensure!(!origins.is_empty(), "--cors names no origin");
    Ok(layer.allow_origin(AllowOrigin::list(origins)))
}

/// The HTTP application. Fails on an invalid `--cors`.
pub fn router<S: Storage>(
    endpoints: Arc<Endpoints<S>>,
    config: &ServerConfig,
) -> anyhow::Result<Router> {
    let mut router = Router::new()
        .route("/", post(handle_default::<S>))
        .route("/{label}", post(handle_labelled::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/status", get(status_page::<S>))
        .layer(DefaultBodyLimit::max(config.max_request_bytes))
        .layer(RequestBodyTimeoutLayer::new(config.body_timeout))
        .with_state(endpoints);
    if let Some(cors) = &config.cors {
        router = router.layer(cors_layer(cors)?);
    }
    Ok(router)
}

/// The open connections, oldest first, so that a full server can shed the oldest one that
/// has not sent a whole request yet.
#[derive(Default)]
struct Connections {
    next_id: u64,
    open: std::collections::VecDeque<Connection>,
}

struct Connection {
    id: u64,
    task: tokio::task::AbortHandle,
    /// Set once the connection has sent a whole request header.
    requested: Arc<std::sync::atomic::AtomicBool>,
}

impl Connections {
    /// Closes the oldest connection that never sent a whole request header; false if none.
    fn shed_oldest_silent(&mut self) -> bool {
        let silent = self
            .open
            .iter()
            .position(|c| !c.requested.load(std::sync::atomic::Ordering::Relaxed));
        match silent.and_then(|i| self.open.remove(i)) {
            Some(connection) => {
                connection.task.abort();
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.open.iter().position(|c| c.id == id) {
            self.open.remove(i);
        }
    }
}

fn lock_connections(
    connections: &std::sync::Mutex<Connections>,
) -> std::sync::MutexGuard<'_, Connections> {
    connections.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves until `shutdown` resolves. Each connection is closed when a request's headers take
/// longer than `header_timeout` (also the idle keep-alive limit) or its body longer than
/// `body_timeout`. At most `max_connections` are open: when a new one arrives at the bound, the
/// oldest connection that has not sent a whole request yet is closed to make room (a flood of
/// silent connections cannot lock real clients out), and if every open connection is a real
/// client, the new one waits for a free slot. On shutdown, connections finish their request in
/// flight (at most 5 s).
pub async fn serve<S: Storage>(
    endpoints: Arc<Endpoints<S>>,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;
    let app = router(endpoints, &config)?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding the JSON-RPC server to {}", config.addr))?;
    log::info!("JSON-RPC listening on http://{}", listener.local_addr()?);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let connections = Arc::new(std::sync::Mutex::new(Connections::default()));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    log::warn!("accepting a JSON-RPC connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                lock_connections(&connections).shed_oldest_silent();
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => slot.context("connection slots closed")?,
                }
            }
        };
        // Small answers go out at once (no Nagle delay waiting for the client's ACK).
        if let Err(err) = stream.set_nodelay(true) {
            log::debug!("cannot set TCP_NODELAY: {err}");
        }
        let requested = Arc::new(AtomicBool::new(false));
        let service = {
            let (app, requested) = (app.clone(), requested.clone());
            hyper::service::service_fn(move |request| {
                requested.store(true, Ordering::Relaxed);
                app.clone().oneshot(request)
            })
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let mut open = lock_connections(&connections);
        let id = open.next_id;
        open.next_id += 1;
        let registry = connections.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = connection.await {
                log::debug!("JSON-RPC connection: {err}");
            }
            lock_connections(&registry).remove(id);
            drop(slot);
        });
        open.open.push_back(Connection {
            id,
            task: task.abort_handle(),
            requested,
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("JSON-RPC connections still open after 5 s; closing them");
    }
    Ok(())
}
