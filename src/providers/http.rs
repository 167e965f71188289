//! HTTP plumbing the adapters share: one pooled reqwest client per adapter, keys, timeouts,
//! error mapping.
//!
//! An error status still gives us its body, which we quote (shortened, with the key redacted)
//! in `ProviderError::Status`. Every request gets a total timeout of min(candidate timeout,
//! run's remaining time), covering the body too; the client has the candidate's connect
//! timeout. Not here: any wire format (the adapters own those).

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::stream::{StreamAssembler, StreamFault};
use super::{ProviderError, TokenSink};
use crate::config::model::ModelCandidate;
use crate::config::Secret;
use crate::net::BodyError;

/// Error bodies are quoted up to this many characters.
const EXCERPT_CHARS: usize = 300;
/// Error bodies are read up to this many bytes (the excerpt needs far less).
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// A response (whole or streamed) over this many bytes is refused: far beyond any model's
/// answer, framing included, and a broken upstream must not fill our memory.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// The headers that carry a key, and the key itself (to redact it from quoted error bodies).
#[derive(Default)]
pub(crate) struct Auth {
    pub headers: Vec<(&'static str, String)>,
    pub secret: Option<Secret>,
}

/// A base URL with its client (custom headers and connect timeout built in) and timeouts.
pub(crate) struct HttpEndpoint {
    client: reqwest::Client,
    pub base: String,
    timeout: Duration,
    connect_timeout: Duration,
}

impl HttpEndpoint {
    pub(crate) fn new(candidate: &ModelCandidate) -> Result<HttpEndpoint, ProviderError> {
        let mut headers = HeaderMap::with_capacity(candidate.headers.len());
        for (name, value) in &candidate.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ProviderError::Unsupported(format!("invalid header name \"{name}\"")))?;
            let header_value = HeaderValue::from_str(value)
                .map_err(|_| ProviderError::Unsupported(format!("invalid value for header \"{name}\"")))?;
            headers.append(header_name, header_value);
        }
        let client = crate::net::client(|builder| {
            builder
                .redirect(crate::net::same_origin_redirects())
                .connect_timeout(candidate.connect_timeout)
                .default_headers(headers)
        })
        .map_err(|error| ProviderError::Unsupported(format!("cannot build the HTTP client: {error}")))?;
        Ok(HttpEndpoint {
            client,
            base: candidate.endpoint.trim_end_matches('/').to_string(),
            timeout: candidate.timeout,
            connect_timeout: candidate.connect_timeout,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The total and connect timeouts for a call with `remaining` time left in the run.
    pub(crate) fn timeouts(&self, remaining: Duration) -> (Duration, Duration) {
        let total = self.timeout.min(remaining).max(Duration::from_millis(1));
        (total, self.connect_timeout.min(total))
    }

    /// POSTs JSON and returns the response if its status is 2xx.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        auth: &Auth,
        body: &Value,
        remaining: Duration,
    ) -> Result<Response, ProviderError> {
        let (total, connect) = self.timeouts(remaining);
        let bytes = serde_json::to_vec(body)
            .map_err(|error| ProviderError::Unsupported(format!("cannot encode the request: {error}")))?;
        let mut request = self.client.post(url).timeout(total).header(CONTENT_TYPE, "application/json");
        for (name, value) in &auth.headers {
            request = request.header(*name, value.as_str());
        }
        let response =
            request.body(bytes).send().await.map_err(|error| map_reqwest_error(&error, url, total, connect))?;
        check_status(response, url, auth.secret.as_ref()).await
    }

    /// GETs `url` and returns the response if its status is 2xx.
    pub(crate) async fn get(&self, url: &str, auth: &Auth, timeout: Duration) -> Result<Response, ProviderError> {
        let total = timeout.max(Duration::from_millis(1));
        let connect = self.connect_timeout.min(total);
        let mut request = self.client.get(url).timeout(total);
        for (name, value) in &auth.headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await.map_err(|error| map_reqwest_error(&error, url, total, connect))?;
        check_status(response, url, auth.secret.as_ref()).await
    }
}

async fn check_status(mut response: Response, url: &str, secret: Option<&Secret>) -> Result<Response, ProviderError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    // The excerpt needs only the start of the body; a broken body still leaves the status.
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(ERROR_BODY_LIMIT);
    let text = String::from_utf8_lossy(&body);
    Err(ProviderError::Status { url: url.to_string(), status, body: excerpt(&redact(&text, secret)) })
}

/// Reads a whole JSON body into `T`.
pub(crate) async fn read_json<T: DeserializeOwned>(
    response: Response,
    url: &str,
    total: Duration,
) -> Result<T, ProviderError> {
    let bytes = crate::net::read_body(response, BODY_LIMIT).await.map_err(|error| match error {
        BodyError::Transport { error, received } => body_error(&error, url, total, received),
        BodyError::TooLarge => too_large(url),
    })?;
    serde_json::from_slice(&bytes).map_err(|error| ProviderError::Malformed {
        url: url.to_string(),
        detail: format!("{error} (body: {})", excerpt(&String::from_utf8_lossy(&bytes))),
    })
}

/// Reads a streaming body into `assembler`, forwarding text deltas to `tokens` until the
/// protocol's final frame or the end of the body.
pub(crate) async fn read_stream<A: StreamAssembler>(
    mut response: Response,
    assembler: &mut A,
    tokens: &mut TokenSink,
    url: &str,
    total: Duration,
) -> Result<(), ProviderError> {
    let mut decoded = Vec::new();
    let mut received_bytes: u64 = 0;
    let fault = |fault: StreamFault, received_bytes: u64| match fault {
        StreamFault::Malformed(detail) => ProviderError::Malformed { url: url.to_string(), detail },
        StreamFault::Upstream(reason) => {
            ProviderError::StreamInterrupted { url: url.to_string(), received_bytes, reason }
        }
    };
    while let Some(chunk) = response.chunk().await.map_err(|error| body_error(&error, url, total, received_bytes))? {
        received_bytes += chunk.len() as u64;
        if received_bytes > BODY_LIMIT {
            return Err(too_large(url));
        }
        assembler.push(&chunk, &mut decoded).map_err(|error| fault(error, received_bytes))?;
        for token in decoded.drain(..) {
            tokens.send(&token).await;
        }
        if assembler.is_done() {
            return Ok(());
        }
    }
    assembler.end(&mut decoded).map_err(|error| fault(error, received_bytes))?;
    for token in decoded.drain(..) {
        tokens.send(&token).await;
    }
    if !assembler.is_done() {
        return Err(ProviderError::StreamInterrupted {
            url: url.to_string(),
            received_bytes,
            reason: "the stream ended before its final event".to_string(),
        });
    }
    Ok(())
}

fn too_large(url: &str) -> ProviderError {
    ProviderError::Malformed {
        url: url.to_string(),
        detail: format!("the response is larger than {} MiB", BODY_LIMIT / (1024 * 1024)),
    }
}

/// A failure while reading a body: the total timeout, or the connection breaking.
fn body_error(error: &reqwest::Error, url: &str, total: Duration, received_bytes: u64) -> ProviderError {
    if error.is_timeout() {
        return ProviderError::Timeout { url: url.to_string(), timeout: total };
    }
    ProviderError::StreamInterrupted { url: url.to_string(), received_bytes, reason: crate::net::causes(error) }
}

/// Maps a transport failure to the variant an operator can act on.
pub(crate) fn map_reqwest_error(
    error: &reqwest::Error,
    url: &str,
    total: Duration,
    connect: Duration,
) -> ProviderError {
    let url = url.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<crate::net::UnknownHost>() {
            return ProviderError::Dns { url };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return ProviderError::ConnectionRefused { url };
            }
        }
        source = cause.source();
    }
    if error.is_timeout() && error.is_connect() {
        ProviderError::ConnectTimeout { url, timeout: connect }
    } else if error.is_timeout() {
        ProviderError::Timeout { url, timeout: total }
    } else {
        ProviderError::Connection { url, reason: crate::net::causes(error) }
    }
}

/// The key to send: the configured one, else the environment variable's value. A missing
/// variable is an error when `required`; otherwise no key is sent (local servers accept none).
pub(crate) fn resolve_key(
    api_key: Option<&Secret>,
    api_key_env: Option<&str>,
    required: bool,
) -> Result<Option<Secret>, ProviderError> {
    if let Some(key) = api_key {
        return Ok(Some(key.clone()));
    }
    let Some(env) = api_key_env else {
        return Ok(None);
    };
    match std::env::var(env) {
        Ok(value) if !value.trim().is_empty() => Ok(Some(Secret::new(value.trim().to_string()))),
        _ if required => Err(ProviderError::MissingApiKey { env: env.to_string() }),
        _ => Ok(None),
    }
}

/// The host part of a URL (`https://api.openai.com/v1` -> `api.openai.com`).
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    host_port.split(':').next().unwrap_or(host_port)
}

/// A one-line excerpt of a body for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "(empty body)".to_string();
    }
    match flat.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

fn redact(text: &str, secret: Option<&Secret>) -> String {
    match secret.map(Secret::expose).filter(|key| key.len() >= 4) {
        Some(key) => text.replace(key, "***"),
        None => text.to_string(),
    }
}

/// Splits a data URL into (media type, base64); bare base64 gets a media type sniffed from its
/// first bytes. `None` for http(s) URLs.
pub(crate) fn image_parts(image: &str) -> Option<(String, String)> {
    if image.starts_with("http://") || image.starts_with("https://") {
        return None;
    }
    if let Some(rest) = image.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').unwrap_or(("", rest));
        let media_type = meta.split(';').next().filter(|media| !media.is_empty()).unwrap_or("image/png");
        return Some((media_type.to_string(), data.to_string()));
    }
    let media_type = if image.starts_with("/9j/") {
        "image/jpeg"
    } else if image.starts_with("R0lGOD") {
        "image/gif"
    } else if image.starts_with("UklGR") {
        "image/webp"
    } else {
        "image/png"
    };
    Some((media_type.to_string(), image.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_handles_ports_paths_and_userinfo() {
        assert_eq!(host_of("https://api.openai.com/v1"), "api.openai.com");
        assert_eq!(host_of("http://127.0.0.1:8080/v1"), "127.0.0.1");
        assert_eq!(host_of("http://user:pw@example.com:1/x"), "example.com");
    }

    #[test]
    fn excerpt_is_one_short_line() {
        assert_eq!(excerpt("a\n  b\tc"), "a b c");
        assert_eq!(excerpt(""), "(empty body)");
        let long = "é".repeat(400);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn redact_removes_the_key() {
        let secret = Secret::new("sk-test-1234".to_string());
        assert_eq!(redact("bad key sk-test-1234 given", Some(&secret)), "bad key *** given");
    }

    #[test]
    fn image_parts_reads_data_urls_and_sniffs_base64() {
        assert_eq!(image_parts("data:image/jpeg;base64,AAAA"), Some(("image/jpeg".into(), "AAAA".into())));
        assert_eq!(image_parts("iVBORw0KGgo"), Some(("image/png".into(), "iVBORw0KGgo".into())));
        assert_eq!(image_parts("/9j/4AAQ"), Some(("image/jpeg".into(), "/9j/4AAQ".into())));
        assert_eq!(image_parts("https://example.com/cat.png"), None);
    }

    #[test]
    fn resolve_key_prefers_the_configured_key_and_reports_a_required_variable() {
        let secret = Secret::new("k".to_string());
        let key = resolve_key(Some(&secret), Some("ASTROMESH_UNSET_VARIABLE_FOR_TEST"), true);
        assert_eq!(key.map(|key| key.map(|key| key.expose().to_string())), Ok(Some("k".to_string())));
        let missing = resolve_key(None, Some("ASTROMESH_UNSET_VARIABLE_FOR_TEST"), true);
        assert_eq!(
            missing.map(|_| ()),
            Err(ProviderError::MissingApiKey { env: "ASTROMESH_UNSET_VARIABLE_FOR_TEST".into() })
        );
        assert_eq!(
            resolve_key(None, Some("ASTROMESH_UNSET_VARIABLE_FOR_TEST"), false).map(|key| key.is_none()),
            Ok(true)
        );
    }
}
