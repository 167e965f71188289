//! Outbound HTTP for the tools: an async reqwest client, through the network policy.
//!
//! Names are resolved by `PolicyResolver`, which checks each address with `NetPolicy::check`
//! before the client may connect to it: the check happens after DNS and on the very addresses
//! used, so a name that resolves to a private address (or changes its answer between a check
//! and the connect) cannot slip through. An IP literal never reaches a resolver (the connector
//! parses it), so `fetch` checks literal hosts itself before each hop. The client's own redirect
//! following is off; `fetch` follows up to 10 redirects itself so every hop is checked again,
//! and drops credentials (`authorization`, `cookie`) when a redirect leaves the origin. The body
//! is read up to `max_response_bytes`; the policy's `timeout` bounds the whole exchange. No
//! proxy is taken from the environment (`HTTP_PROXY` would bypass the address checks).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderName, HeaderValue};
use url::Url;

use crate::net::{BodyError, UnknownHost};

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
}

/// Sends `call` under `policy`, following redirects.
pub(crate) async fn fetch(policy: &NetPolicy, call: HttpCall) -> Result<HttpReply, FetchError> {
    let started = Instant::now();
    let client = crate::net::client(|builder| {
        builder
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver { policy: policy.clone() }))
    })
    .map_err(|reason| FetchError::Connection { url: call.url.clone(), reason })?;
    let mut url = Url::parse(&call.url)
        .map_err(|error| FetchError::BadUrl { url: call.url.clone(), reason: error.to_string() })?;
    let mut method = call.method.to_ascii_uppercase();
    let mut body = call.body;
    let mut headers = call.headers;
    for _hop in 0..=MAX_REDIRECTS {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PolicyError::Scheme(url.scheme().to_string()).into());
        }
        check_literal_host(policy, &url)?;
        let timed_out = || FetchError::Timeout { url: url.to_string(), secs: policy.timeout.as_secs_f64() };
        let remaining =
            policy.timeout.checked_sub(started.elapsed()).filter(|left| !left.is_zero()).ok_or_else(timed_out)?;
        let bad_request = |reason: String| FetchError::BadRequest { url: url.to_string(), reason };
        let request_method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|error| bad_request(error.to_string()))?;
        let mut request = client.request(request_method, url.clone()).timeout(remaining);
        for (name, value) in &headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|error| bad_request(error.to_string()))?;
            let value = HeaderValue::from_str(value).map_err(|error| bad_request(error.to_string()))?;
            request = request.header(name, value);
        }
        if let Some(bytes) = &body {
            request = request.body(bytes.clone());
        }
        let response = request.send().await.map_err(|error| map_error(&error, &url, policy))?;
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
        let bytes = crate::net::read_body(response, policy.max_response_bytes).await.map_err(|error| match error {
            BodyError::Transport { error, .. } => map_error(&error, &url, policy),
            BodyError::TooLarge => FetchError::TooLarge { url: url.to_string(), limit: policy.max_response_bytes },
        })?;
        return Ok(HttpReply { status, headers: reply_headers, body: bytes, url: url.to_string() });
    }
    Err(FetchError::TooManyRedirects { url: call.url })
}

/// An IP-literal host is connected to without any resolver: check it here.
fn check_literal_host(policy: &NetPolicy, url: &Url) -> Result<(), PolicyError> {
    let addr = match url.host() {
        Some(url::Host::Ipv4(addr)) => IpAddr::V4(addr),
        Some(url::Host::Ipv6(addr)) => IpAddr::V6(addr),
        Some(url::Host::Domain(_)) | None => return Ok(()),
    };
    policy.check(url.host_str().unwrap_or_default(), addr)
}

/// Resolves a name and checks every address against the policy before the client connects.
#[derive(Debug)]
struct PolicyResolver {
    policy: NetPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = crate::net::lookup(host.clone()).await?;
            // A name with both public and blocked addresses is refused as a whole: round-robin
            // over a mix is how rebinding attacks get one connection through.
            for addr in &addrs {
                policy.check(&host, addr.ip()).map_err(Box::new)?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn map_error(error: &reqwest::Error, url: &Url, policy: &NetPolicy) -> FetchError {
    let url_text = url.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<PolicyError>() {
            return FetchError::Policy(refusal.clone());
        }
        if cause.is::<UnknownHost>() {
            return FetchError::Dns { url: url_text };
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return FetchError::Timeout { url: url_text, secs: policy.timeout.as_secs_f64() };
    }
    FetchError::Connection { url: url_text, reason: crate::net::causes(error) }
}
