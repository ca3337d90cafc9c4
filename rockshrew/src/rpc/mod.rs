//! The JSON-RPC 2.0 server (axum): `POST /` for Metashrew's methods, `GET /metrics` for
//! Prometheus.
//!
//! Requests may be single objects or batches (up to [`MAX_BATCH`] entries). Errors use the
//! standard codes: -32700 parse error, -32600 invalid request, -32601 method not found, -32602
//! invalid params, -32603 internal error, -32000 for a view or preview that failed. The body size
//! is limited (`--max-request-bytes`); views run on blocking threads and never wait for block
//! indexing.

pub mod methods;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use metashrew_runtime::{MetashrewRuntime, Storage};

use crate::metrics::Metrics;

/// Most requests in one batch.
pub const MAX_BATCH: usize = 1000;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
pub const SERVER_ERROR: i64 = -32000;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

/// What the handlers share.
pub struct AppState<S: Storage> {
    pub runtime: Arc<MetashrewRuntime<S>>,
    pub metrics: Arc<Metrics>,
    /// Runtime calls in flight, at most the runtime's view slots: the rest wait here, without
    /// holding a thread.
    pub(crate) slots: tokio::sync::Semaphore,
}

impl<S: Storage> AppState<S> {
    pub fn new(runtime: Arc<MetashrewRuntime<S>>, metrics: Arc<Metrics>) -> Self {
        let slots = tokio::sync::Semaphore::new(runtime.config().max_concurrent_views.max(1));
        Self {
            runtime,
            metrics,
            slots,
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub max_request_bytes: usize,
    /// `None`: no CORS headers; `Some("*")`: any origin; otherwise a comma-separated list.
    pub cors: Option<String>,
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
    let label = if methods::is_known(method) {
        method
    } else {
        "unknown"
    };
    state.metrics.rpc_requests.with_label_values(&[label]).inc();
    let result = methods::dispatch(state, method.to_string(), params).await;
    if let Err(e) = &result {
        log::debug!("RPC {method} failed: {}", e.message);
    }
    response(id, result)
}

async fn handle<S: Storage>(State(state): State<Arc<AppState<S>>>, body: Bytes) -> Response {
    let parsed: Value = match serde_json::from_slice(&body) {
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

async fn metrics<S: Storage>(State(state): State<Arc<AppState<S>>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

fn cors_layer(cors: &str) -> CorsLayer {
    let layer = CorsLayer::new().allow_methods(Any).allow_headers(Any);
    if cors.trim() == "*" {
        return layer.allow_origin(Any);
    }
    let origins: Vec<HeaderValue> = cors
        .split(',')
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    layer.allow_origin(AllowOrigin::list(origins))
}

/// The HTTP application.
pub fn router<S: Storage>(state: Arc<AppState<S>>, config: &ServerConfig) -> Router {
    let mut router = Router::new()
        .route("/", post(handle::<S>))
        .route("/metrics", get(metrics::<S>))
        .layer(DefaultBodyLimit::max(config.max_request_bytes))
        .with_state(state);
    if let Some(cors) = &config.cors {
        router = router.layer(cors_layer(cors));
    }
    router
}

/// Serves until `shutdown` resolves.
pub async fn serve<S: Storage>(
    state: Arc<AppState<S>>,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding the JSON-RPC server to {}", config.addr))?;
    log::info!("JSON-RPC listening on http://{}", listener.local_addr()?);
    // Small answers go out at once (no Nagle delay waiting for the client's ACK).
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            log::debug!("cannot set TCP_NODELAY: {err}");
        }
    });
    axum::serve(listener, router(state, &config))
        .with_graceful_shutdown(shutdown)
        .await
        .context("JSON-RPC server")?;
    Ok(())
}
