//! The HTTP edge: axum routes for `/v1`, one file per resource, plus the middleware stack.
//!
//! Handlers extract, call one library function and wrap the result; wire-only shapes live
//! here. **Architecture Invariant:** no other module (besides `lib.rs` and `main.rs`) uses axum
//! or tower-http, so the runtime can be driven by the CLI and tests without HTTP.

mod agents;
pub mod auth;
pub mod error;
pub mod extract;
mod forward;
mod health;
mod mcp;
mod memory;
mod mesh;
mod metrics;
mod openai;
mod rag;
mod runs;
mod system;
mod tools;
mod traces;
mod ui;
mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::config::Config;
use crate::rag::Rag;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::tools::ToolRegistry;
use error::ApiError;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub runtime: Runtime,
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    pub tools: Arc<ToolRegistry>,
    pub rag: Arc<Rag>,
    pub started: Instant,
    /// Cancelled when the daemon shuts down: long-lived connections (WebSockets) close on it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Mesh mode's handle; `None` when the node runs standalone.
    pub mesh: Option<Arc<crate::mesh::Mesh>>,
}

/// The whole `/v1` router with its middleware, ready to serve.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.runtime.max_body_bytes;
    let cors = cors_layer(&state.config.runtime.cors_origins);
    let mcp = mcp::service(state.runtime.clone(), state.shutdown.clone(), max_body);
    let auth = auth::Auth::new(&state.config.runtime);
    let router = Router::new()
        .merge(health::router())
        .merge(agents::router())
        .merge(system::router())
        .merge(mesh::router())
        .merge(runs::router())
        .merge(memory::router())
        .merge(tools::router())
        .merge(ws::router())
        .merge(rag::router())
        .merge(traces::router())
        .merge(metrics::router())
        .merge(ui::router())
        .merge(openai::router())
        .nest_service("/mcp", mcp)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .with_state(state)
        // Outside the routes (and the request counter), so a refused request runs no handler;
        // inside CORS, so preflights need no key and refusals still carry CORS headers.
        .layer(axum::middleware::from_fn_with_state(auth, auth::require_key))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    // Name the span with the matched route, never the raw URI (ids, names).
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|path| path.as_str().to_string())
                        .unwrap_or_else(|| "unmatched".to_string());
                    let trace_id = request
                        .headers()
                        .get("traceparent")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.split('-').nth(1))
                        .unwrap_or_default()
                        .to_string();
                    tracing::info_span!("http", method = %request.method(), route, path = %request.uri().path(), trace_id)
                })
                .on_request(())
                // One line per request: method, route and path (span fields), status, latency.
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Millis),
                )
                .on_failure(()),
        )
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            ApiError::Internal("handler panicked".into()).into_response()
        }));
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::from(Any)
    } else {
        let values: Vec<HeaderValue> = origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
        AllowOrigin::list(values)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS])
            .allow_headers(Any),
    )
}

/// Unknown `/v1` paths (and non-GET requests) answer the JSON 404 envelope; any other GET is a
/// client-side route of the web UI, so it gets `index.html` and the UI's router takes over.
async fn not_found(method: Method, uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    let path = uri.path();
    let is_api = path == "/v1" || path.starts_with("/v1/");
    if method == Method::GET && !is_api && !path.starts_with("/assets/") {
        return ui::index(headers).await;
    }
    ApiError::NotFound("Not Found".to_string()).into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}
