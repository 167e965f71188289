//! Outbound HTTP plumbing. For our blocking ureq agents (OTLP export): `config`, the settings
//! every agent starts from, and `agent`, which builds an agent on `CachingResolver`. For our
//! async reqwest clients (model providers, remote embedders, the tools' fetch, the mesh, MCP):
//! `client_builder` (and `client`), with rustls on ring and a resolver whose failures callers
//! can recognise (`UnknownHost`); `same_origin_redirects`; `read_body`, a whole body under a
//! size limit; `causes`, an error's text.
//!
//! Why `CachingResolver`: ureq's `DefaultResolver` runs on every call, before the agent looks
//! for a pooled connection, and when a timeout is set it resolves on a freshly spawned thread:
//! one thread spawn per request (with the allocator's fresh pages for it) even against
//! `127.0.0.1`, which cost the LLM calls dearly while they were on ureq. `CachingResolver`
//! answers IP literals at once and keeps a host name's addresses for `TTL`; a miss goes to the
//! default resolver, timeout and all.
//!
//! Not here: the fetch tool's resolver (`tools/fetch.rs`), which must check every resolution
//! against its address policy and so never caches.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// How long a host name's addresses are reused.
const TTL: Duration = Duration::from_secs(30);
/// Entries kept at most (endpoints come from configuration, so a handful in practice).
const MAX_ENTRIES: usize = 256;

/// How every outbound request names us.
const USER_AGENT: &str = concat!("astromesh/", env!("CARGO_PKG_VERSION"));

/// The agent settings every caller starts from: HTTP error statuses are answers, not errors
/// (callers map them to their own errors), and requests name us in `User-Agent`.
pub fn config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder().http_status_as_error(false).user_agent(USER_AGENT)
}

/// A reqwest client builder with our `User-Agent`, TLS through rustls on the ring provider with
/// the webpki roots (no process-wide crypto provider, no aws-lc), and `AsyncResolver`.
pub fn client_builder() -> Result<reqwest::ClientBuilder, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(USER_AGENT)
        .dns_resolver(std::sync::Arc::new(AsyncResolver)))
}

/// A client from `client_builder` with the caller's settings on top.
pub fn client(
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, String> {
    configure(client_builder()?).build().map_err(|error| error.to_string())
}

/// Why a body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// The connection failed (or timed out) after `received` bytes.
    Transport { error: reqwest::Error, received: u64 },
    /// The body passed the limit; reading stopped there.
    TooLarge,
}

/// Reads a whole body, stopping as soon as it passes `limit` bytes.
pub async fn read_body(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return Ok(bytes),
            Err(error) => return Err(BodyError::Transport { error, received: bytes.len() as u64 }),
        }
        if bytes.len() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
    }
}

/// Redirects are followed (up to 5) only within the endpoint's own origin: a key sent in a
/// custom header (`x-api-key`, `api-key`) must never travel to another host. A redirect
/// elsewhere is answered as the 3xx status it is.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > 5 || !same_origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// The causes under a reqwest error, innermost last ("client error (Connect): tcp connect
/// error: ..."); the top level only restates the URL, which our messages already carry.
pub fn causes(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part: &String| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// A host name that resolved to no address; found in the source chain of a reqwest error.
#[derive(Debug, thiserror::Error)]
#[error("could not resolve {0}")]
pub struct UnknownHost(pub String);

/// Looks host names up with tokio (IP literals never reach a resolver: the connector parses
/// them). Every failure is an `UnknownHost`, so callers tell DNS apart from other failures.
#[derive(Debug)]
struct AsyncResolver;

impl reqwest::dns::Resolve for AsyncResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = lookup(host).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `host` (port 0: the connector sets the port); none is an `UnknownHost`.
pub async fn lookup(host: String) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => Vec::new(),
    };
    if addrs.is_empty() {
        return Err(Box::new(UnknownHost(host)));
    }
    Ok(addrs)
}

/// A ureq agent with `config` that resolves through a `CachingResolver`.
pub fn agent(config: Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, DefaultConnector::new(), CachingResolver::default())
}

/// Resolves IP literals without a lookup and caches host names for `TTL`.
#[derive(Debug, Default)]
pub struct CachingResolver {
    inner: DefaultResolver,
    /// `host:port` → when resolved, addresses. A `std` mutex: never held across a lookup.
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl CachingResolver {
    fn cached(&self, key: &str) -> Option<ResolvedSocketAddrs> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, addrs)| addrs.clone())
    }

    fn remember(&self, key: String, addrs: &ResolvedSocketAddrs) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < TTL);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), addrs.clone()));
    }
}

impl Resolver for CachingResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => DefaultResolver::host_and_port(scheme, authority),
            _ => None,
        };
        // Anything we cannot key (a malformed URI) gets the default resolver's own error.
        let Some(key) = key else {
            return self.inner.resolve(uri, config, timeout);
        };
        if let Ok(literal) = key.parse::<SocketAddr>() {
            let mut addrs = self.empty();
            addrs.push(literal);
            return Ok(addrs);
        }
        if let Some(addrs) = self.cached(&key) {
            return Ok(addrs);
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        self.remember(key, &addrs);
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(resolver: &CachingResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        let timeout = NextTimeout {
            after: ureq::unversioned::transport::time::Duration::NotHappening,
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        resolver.resolve(&uri, &config, timeout).unwrap().to_vec()
    }

    #[test]
    fn ip_literals_need_no_lookup_and_ports_default_by_scheme() {
        let resolver = CachingResolver::default();
        assert_eq!(resolve(&resolver, "http://127.0.0.1:8080/v1"), vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(resolve(&resolver, "http://[::1]/x"), vec!["[::1]:80".parse().unwrap()]);
        assert_eq!(resolve(&resolver, "https://10.0.0.7/x"), vec!["10.0.0.7:443".parse().unwrap()]);
        assert!(resolver.cache.lock().unwrap().is_empty(), "literals are not cached");
    }

    #[test]
    fn host_names_are_resolved_once_then_served_from_the_cache() {
        let resolver = CachingResolver::default();
        let first = resolve(&resolver, "http://localhost:9000/");
        assert!(first.iter().all(|addr| addr.ip().is_loopback() && addr.port() == 9000), "{first:?}");
        assert!(resolver.cached("localhost:9000").is_some());
        // Replace the cached answer: a second call must return it, not look the name up again.
        let mut planted = resolver.empty();
        planted.push("127.0.0.9:9000".parse().unwrap());
        resolver.remember("localhost:9000".into(), &planted);
        assert_eq!(resolve(&resolver, "http://localhost:9000/other"), vec!["127.0.0.9:9000".parse().unwrap()]);
        // An expired entry is looked up again.
        resolver.cache.lock().unwrap().get_mut("localhost:9000").unwrap().0 = Instant::now() - TTL;
        assert_eq!(resolve(&resolver, "http://localhost:9000/"), first);
    }
}
