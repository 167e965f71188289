//! Outbound HTTP for the tools: ureq on the blocking pool, through the network policy.
//!
//! ureq blocks, so `fetch` moves the whole exchange (every redirect hop included) into
//! `spawn_blocking`. Names are resolved by `PolicyResolver`, which checks each address with
//! `NetPolicy::check` before ureq may connect to it: the check happens after DNS and on the very
//! address used, so a name that resolves to a private address (or changes its answer between a
//! check and the connect) cannot slip through. ureq's own redirect following is off; `fetch`
//! follows up to 10 redirects itself so every hop goes through the resolver again, and drops
//! credentials (`authorization`, `cookie`) when a redirect leaves the origin. The body is read
//! up to `max_response_bytes`; the policy's `timeout` bounds the whole exchange. No proxy is
//! taken from the environment (`HTTP_PROXY` would bypass the address checks).

use std::time::Instant;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use url::Url;

use super::policy::{NetPolicy, PolicyError};

const MAX_REDIRECTS: usize = 10;

/// One request as a tool wants it sent.
#[derive(Debug, Clone)]
pub(crate) struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl HttpCall {
    pub fn get(url: &str) -> HttpCall {
        HttpCall { method: "GET".to_string(), url: url.to_string(), headers: Vec::new(), body: None }
    }

    /// A POST of `body` as JSON.
    pub fn post_json(url: &str, body: &serde_json::Value, headers: Vec<(String, String)>) -> HttpCall {
        let mut headers = headers;
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        HttpCall {
            method: "POST".to_string(),
            url: url.to_string(),
            headers,
            body: Some(body.to_string().into_bytes()),
        }
    }
}

/// What came back from the last hop.
#[derive(Debug, Clone)]
pub(crate) struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body as JSON when it parses, else as text.
    pub fn body_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid request to {url}: {reason}")]
    BadRequest { url: String, reason: String },
    #[error("more than {MAX_REDIRECTS} redirects from {url}")]
    TooManyRedirects { url: String },
    #[error("the response from {url} exceeds max_response_bytes ({limit} bytes)")]
    TooLarge { url: String, limit: u64 },
    #[error("no complete answer from {url} within {secs:.1}s")]
    Timeout { url: String, secs: f64 },
    #[error("could not resolve the host of {url}")]
    Dns { url: String },
    #[error("request to {url} failed: {reason}")]
    Connection { url: String, reason: String },
    #[error("the request task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Sends `call` under `policy`, following redirects, on the blocking pool.
pub(crate) async fn fetch(policy: &NetPolicy, call: HttpCall) -> Result<HttpReply, FetchError> {
    let policy = policy.clone();
    tokio::task::spawn_blocking(move || fetch_blocking(&policy, call)).await?
}

/// Checks every resolved address against the policy before ureq connects.
#[derive(Debug)]
struct PolicyResolver {
    policy: NetPolicy,
    inner: DefaultResolver,
}

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        let mut allowed = self.empty();
        let mut refusal = None;
        for addr in resolved.iter() {
            match self.policy.check(host, addr.ip()) {
                Ok(()) => allowed.push(*addr),
                Err(error) => refusal = Some(error),
            }
        }
        // A name with both public and blocked addresses is refused as a whole: round-robin
        // over a mix is how rebinding attacks get one connection through.
        match refusal {
            Some(error) => Err(ureq::Error::Other(Box::new(error))),
            None => Ok(allowed),
        }
    }
}

fn agent_for(policy: &NetPolicy, remaining: std::time::Duration) -> ureq::Agent {
    let config = crate::net::config()
        .max_redirects(0)
        .save_redirect_history(false)
        .proxy(None)
        .timeout_global(Some(remaining))
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::new(),
        PolicyResolver { policy: policy.clone(), inner: DefaultResolver::default() },
    )
}

fn fetch_blocking(policy: &NetPolicy, call: HttpCall) -> Result<HttpReply, FetchError> {
    let started = Instant::now();
    let mut url = Url::parse(&call.url)
        .map_err(|error| FetchError::BadUrl { url: call.url.clone(), reason: error.to_string() })?;
    let mut method = call.method.to_ascii_uppercase();
    let mut body = call.body;
    let mut headers = call.headers;
    for _hop in 0..=MAX_REDIRECTS {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PolicyError::Scheme(url.scheme().to_string()).into());
        }
        let timed_out = || FetchError::Timeout { url: url.to_string(), secs: policy.timeout.as_secs_f64() };
        let remaining =
            policy.timeout.checked_sub(started.elapsed()).filter(|left| !left.is_zero()).ok_or_else(timed_out)?;
        let agent = agent_for(policy, remaining);
        let request = headers.iter().fold(
            ureq::http::Request::builder().method(method.as_str()).uri(url.as_str()),
            |request, (name, value)| request.header(name.as_str(), value.as_str()),
        );
        let bad_request =
            |error: ureq::http::Error| FetchError::BadRequest { url: url.to_string(), reason: error.to_string() };
        let sent = match &body {
            Some(bytes) => agent.run(request.body(bytes.clone()).map_err(bad_request)?),
            None => agent.run(request.body(()).map_err(bad_request)?),
        };
        let mut response = sent.map_err(|error| map_error(error, &url, policy))?;
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|value| value.to_str().ok()).map(str::to_string);
        if let (300..=399, Some(location)) = (status, location) {
            let next = url
                .join(&location)
                .map_err(|error| FetchError::BadUrl { url: location.clone(), reason: error.to_string() })?;
            if next.origin() != url.origin() {
                headers.retain(|(name, _)| {
                    !name.eq_ignore_ascii_case("authorization") && !name.eq_ignore_ascii_case("cookie")
                });
            }
            // 303 always, and 301/302 after a POST, continue as a GET without the body.
            if status == 303 || ((status == 301 || status == 302) && method == "POST") {
                method = "GET".to_string();
                body = None;
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
            }
            tracing::debug!(from = %url, to = %next, status, "following redirect");
            url = next;
            continue;
        }
        let reply_headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(policy.max_response_bytes)
            .read_to_vec()
            .map_err(|error| map_error(error, &url, policy))?;
        return Ok(HttpReply { status, headers: reply_headers, body: bytes, url: url.to_string() });
    }
    Err(FetchError::TooManyRedirects { url: call.url })
}

fn map_error(error: ureq::Error, url: &Url, policy: &NetPolicy) -> FetchError {
    let url_text = url.to_string();
    match error {
        ureq::Error::Other(inner) => match inner.downcast::<PolicyError>() {
            Ok(policy_error) => FetchError::Policy(*policy_error),
            Err(other) => FetchError::Connection { url: url_text, reason: other.to_string() },
        },
        ureq::Error::Timeout(_) => FetchError::Timeout { url: url_text, secs: policy.timeout.as_secs_f64() },
        ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge { url: url_text, limit: policy.max_response_bytes },
        ureq::Error::HostNotFound => FetchError::Dns { url: url_text },
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            FetchError::Timeout { url: url_text, secs: policy.timeout.as_secs_f64() }
        }
        other => FetchError::Connection { url: url_text, reason: other.to_string() },
    }
}
