//! API keys and the per-key rate limit: middleware in front of every route.
//!
//! With no keys configured (`spec.api.auth.api_keys`, `ASTROMESH_API_KEYS`) every request
//! passes and nothing is limited. With keys, a request must carry one as
//! `Authorization: Bearer KEY` or `X-API-Key: KEY`; a WebSocket upgrade may instead carry it as
//! `?api_key=KEY`, because browsers cannot set headers on a WebSocket. (The query form is
//! accepted on upgrades only, so keys do not end up in ordinary request URLs.) Open without a
//! key: `GET /v1/health`, and the web UI's static files (`/`, `/assets/*`, the UI's own
//! client-side routes) so that the UI can load and ask for a key. Everything under `/v1/`,
//! `/mcp` and `/metrics` needs one, except `/v1/mesh/*` when the mesh has a secret: peers
//! present that secret as their bearer token, and the mesh endpoints check it themselves
//! (`GET /v1/mesh/state` also takes an API key, marked with [`MeshReader`], so operators can
//! read the mesh without the peers' secret).
//!
//! Keys are compared in constant time (`subtle`) against every configured key, so the answer
//! time tells nothing about which bytes matched. Each key has its own GCRA budget (`governor`):
//! over it, 429 with `Retry-After` in whole seconds. Not here: who may bind which address
//! ([`exposure_problem`] is called by the CLI before binding).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::{RateLimit, RuntimeConfig, Secret};

/// The keys and their budgets, built once from the configuration. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Auth {
    inner: Arc<AuthInner>,
}

struct AuthInner {
    keys: Vec<Secret>,
    /// One limiter per key (same index as `keys`); empty when there is no limit.
    limiters: Vec<DefaultDirectRateLimiter>,
    clock: DefaultClock,
    /// Mesh on with a secret: `/v1/mesh/*` is guarded by that secret (peers send it as their
    /// bearer token, not an API key), so this layer lets those requests through to it.
    mesh_secret: bool,
}

impl Auth {
    pub(crate) fn new(config: &RuntimeConfig) -> Auth {
        let limiters = match config.rate_limit {
            Some(RateLimit { requests_per_minute, burst }) => {
                let quota = Quota::per_minute(requests_per_minute).allow_burst(burst);
                config.api_keys.iter().map(|_| RateLimiter::direct(quota)).collect()
            }
            None => Vec::new(),
        };
        let mesh_secret = config.mesh.enabled && config.mesh.secret.is_some();
        let keys = config.api_keys.clone();
        Auth { inner: Arc::new(AuthInner { keys, limiters, clock: DefaultClock::default(), mesh_secret }) }
    }

    /// The index of the configured key equal to `presented`, compared in constant time.
    fn find_key(&self, presented: &[u8]) -> Option<usize> {
        let mut found = None;
        // No early exit: every key is compared, whichever matches.
        for (idx, key) in self.inner.keys.iter().enumerate() {
            if bool::from(key.expose().as_bytes().ct_eq(presented)) {
                found = Some(idx);
            }
        }
        found
    }
}

/// Requests that need no key: liveness, and the UI's files (it asks for the key itself).
fn is_open(method: &Method, path: &str) -> bool {
    if path == "/v1/health" {
        return true;
    }
    let is_read = method == Method::GET || method == Method::HEAD;
    let is_api = path == "/v1"
        || path.starts_with("/v1/")
        || path == "/mcp"
        || path.starts_with("/mcp/")
        || path == "/metrics"
        || path.starts_with("/metrics/");
    is_read && !is_api
}

/// The key a request presents, if any: `Authorization: Bearer`, `X-API-Key`, or on a WebSocket
/// upgrade the `api_key` query parameter.
fn presented_key(request: &Request) -> Option<Vec<u8>> {
    presented_key_in(request.headers(), request.uri())
}

/// `presented_key` from a request's parts (the WebSocket handler has no `Request`).
pub(crate) fn presented_key_in(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<Vec<u8>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let bytes = value.as_bytes();
        let scheme = b"bearer ";
        if bytes.len() > scheme.len() && bytes[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(bytes[scheme.len()..].trim_ascii().to_vec());
        }
    }
    if let Some(value) = headers.get("x-api-key") {
        return Some(value.as_bytes().trim_ascii().to_vec());
    }
    if is_websocket_upgrade(headers) {
        let query = uri.query().unwrap_or_default();
        return form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "api_key")
            .map(|(_, value)| value.into_owned().into_bytes());
    }
    None
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket")))
}

/// Set on a `GET /v1/mesh/state` request that carries a valid API key: an operator (the UI,
/// `astromesh mesh status`) may read the mesh state without the peers' secret.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MeshReader;

/// The middleware: 401 without a valid key, 429 over the key's budget, else the route.
pub(crate) async fn require_key(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if auth.inner.keys.is_empty() || is_open(request.method(), path) {
        return next.run(request).await;
    }
    if auth.inner.mesh_secret && path.starts_with("/v1/mesh/") {
        // Guarded by the mesh secret, which the endpoints check; reading the state with an API
        // key is allowed too (within the key's budget).
        let reads_state = request.method() == Method::GET && path == "/v1/mesh/state";
        if let Some(key_idx) = presented_key(&request).and_then(|key| auth.find_key(&key)).filter(|_| reads_state) {
            if let Some(refusal) = over_budget(&auth, key_idx) {
                return refusal;
            }
            request.extensions_mut().insert(MeshReader);
        }
        return next.run(request).await;
    }
    let Some(presented) = presented_key(&request) else {
        return unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'");
    };
    let Some(key_idx) = auth.find_key(&presented) else {
        return unauthorized("Invalid API key");
    };
    if let Some(refusal) = over_budget(&auth, key_idx) {
        return refusal;
    }
    next.run(request).await
}

/// 429 with `Retry-After` when the key is over its budget.
fn over_budget(auth: &Auth, key_idx: usize) -> Option<Response> {
    let limiter = auth.inner.limiters.get(key_idx)?;
    let not_until = limiter.check().err()?;
    let wait = not_until.wait_time_from(auth.inner.clock.now());
    // Whole seconds, rounded up: retrying after this many seconds succeeds.
    let retry_after = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let detail = format!("Rate limit exceeded for this API key; retry after {retry_after} s");
    let mut response = ApiError::TooManyRequests(detail).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    Some(response)
}

fn unauthorized(detail: &str) -> Response {
    let mut response = ApiError::Unauthorized(detail.to_string()).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Why serving on `host` would be unsafe, if it would: a non-loopback address with no API key
/// and no mesh secret lets anyone on the network run agents (and spend provider credit).
/// `localhost` and loopback addresses are always fine; any other name counts as non-loopback.
pub fn exposure_problem(host: &str, has_api_keys: bool, has_mesh_secret: bool) -> Option<String> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = trimmed.eq_ignore_ascii_case("localhost")
        || trimmed.parse::<IpAddr>().is_ok_and(|address| address.is_loopback());
    if loopback || has_api_keys || has_mesh_secret {
        return None;
    }
    Some(format!(
        "refusing to listen on {host}: it is not a loopback address and no API key is configured, so anyone \
who can reach it could run agents. Set spec.api.auth.api_keys in runtime.yaml or ASTROMESH_API_KEYS \
(or ASTROMESH_MESH_SECRET for a mesh node), listen on 127.0.0.1, or pass --allow-unauthenticated \
if the network itself is trusted."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_keys_are_safe_everything_else_is_refused() {
        assert_eq!(exposure_problem("127.0.0.1", false, false), None);
        assert_eq!(exposure_problem("::1", false, false), None);
        assert_eq!(exposure_problem("[::1]", false, false), None);
        assert_eq!(exposure_problem("localhost", false, false), None);
        assert!(exposure_problem("0.0.0.0", false, false).is_some_and(|why| why.contains("--allow-unauthenticated")));
        assert!(exposure_problem("::", false, false).is_some());
        assert!(exposure_problem("edge.example.com", false, false).is_some());
        assert_eq!(exposure_problem("0.0.0.0", true, false), None);
        assert_eq!(exposure_problem("0.0.0.0", false, true), None);
    }

    #[test]
    fn only_health_and_the_ui_files_are_open() {
        assert!(is_open(&Method::GET, "/v1/health"));
        assert!(is_open(&Method::GET, "/"));
        assert!(is_open(&Method::GET, "/assets/app.js"));
        assert!(is_open(&Method::GET, "/agents/support"), "a client-side route of the UI");
        assert!(!is_open(&Method::GET, "/v1/agents"));
        assert!(!is_open(&Method::GET, "/v1"));
        assert!(!is_open(&Method::GET, "/metrics"));
        assert!(!is_open(&Method::POST, "/mcp"));
        assert!(!is_open(&Method::POST, "/"));
    }
}
