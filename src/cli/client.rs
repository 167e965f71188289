//! Blocking HTTP to the daemon (ureq): JSON in and out, `{"detail"}` errors into `CliError`.
//!
//! Blocking is right here: the CLI does one thing at a time and has no async runtime to keep
//! responsive. Every request carries `Authorization: Bearer <key>` when `--api-key` is given.
//! A transport failure (refused, unknown host, timeout) is `Unreachable`, a 4xx/5xx is `Api`
//! with the server's `detail` (422 lists are flattened to `loc: msg`). Not here: what a path
//! means or how to print the answer.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::CliError;

/// Connecting to a local daemon takes microseconds; a remote one that does not answer in this
/// time is down, not slow.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer may legitimately take long (ingesting a large file embeds every chunk, `doctor`
/// probes every provider), so this only guards against a daemon that hangs.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Encodes one path segment (an agent name, a trace id).
pub(crate) fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// The daemon at one base URL.
pub(crate) struct Client {
    base: url::Url,
    api_key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// Checks the URL (http or https, with a host); does not connect.
    pub(crate) fn new(url: &str, api_key: Option<String>) -> Result<Client, CliError> {
        let invalid = |reason: &str| CliError::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
        let base = url::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .user_agent(concat!("astromesh-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client { base, api_key: api_key.filter(|key| !key.is_empty()), agent })
    }

    pub(crate) fn base(&self) -> &url::Url {
        &self.base
    }

    pub(crate) fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// The full URL of an API path (`/v1/...`, already encoded), under the base URL's path.
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base.as_str().trim_end_matches('/'))
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value, CliError> {
        let mut request = self.agent.get(self.url(path));
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        self.answer(path, request.call())
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let mut request = self.agent.post(self.url(path));
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        self.answer(path, request.send_json(body))
    }

    fn answer(
        &self,
        path: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, CliError> {
        let mut response = sent.map_err(|error| self.transport_error(error))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|error| self.transport_error(error))?;
        if status >= 400 {
            return Err(CliError::Api { status, detail: detail_of(status, &text) });
        }
        serde_json::from_str(&text)
            .map_err(|error| CliError::Protocol { path: path.to_string(), reason: format!("not JSON: {error}") })
    }

    fn transport_error(&self, error: ureq::Error) -> CliError {
        let reason = match error {
            ureq::Error::Io(io) => io.to_string(),
            ureq::Error::ConnectionFailed => "connection refused".to_string(),
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::Timeout(kind) => format!("timed out ({kind})"),
            other => other.to_string(),
        };
        CliError::Unreachable { url: self.base.to_string(), reason }
    }
}

/// The message of an error body: `detail` as a string, a 422 list as `loc: msg; ...`, or the
/// status and the start of a body that is not ours (a proxy's HTML page).
pub(crate) fn detail_of(status: u16, text: &str) -> String {
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(text) else {
        let text = text.trim();
        return match text.char_indices().nth(200) {
            _ if text.is_empty() => format!("HTTP {status}"),
            Some((cut, _)) => format!("HTTP {status}: {}...", &text[..cut]),
            None => format!("HTTP {status}: {text}"),
        };
    };
    match body.get("detail") {
        Some(Value::String(detail)) => detail.clone(),
        Some(Value::Array(problems)) => problems
            .iter()
            .map(|problem| {
                let loc: Vec<String> = problem["loc"]
                    .as_array()
                    .map(|parts| {
                        parts.iter().map(|part| part.as_str().map_or(part.to_string(), str::to_string)).collect()
                    })
                    .unwrap_or_default();
                let message = problem["msg"].as_str().unwrap_or("invalid");
                if loc.is_empty() {
                    message.to_string()
                } else {
                    format!("{}: {message}", loc.join("."))
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
        None => format!("HTTP {status}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_read_in_every_form() {
        assert_eq!(detail_of(404, r#"{"detail": "Agent 'x' not found"}"#), "Agent 'x' not found");
        let list =
            r#"{"detail": [{"loc": ["body", "documents", 0, "text"], "msg": "must not be empty", "type": "x"}]}"#;
        assert_eq!(detail_of(422, list), "body.documents.0.text: must not be empty");
        assert_eq!(detail_of(502, "<html>bad gateway</html>"), "HTTP 502: <html>bad gateway</html>");
        assert_eq!(detail_of(500, ""), "HTTP 500");
    }

    #[test]
    fn urls_are_checked_and_segments_encoded() {
        assert!(matches!(Client::new("ftp://x", None), Err(CliError::InvalidUrl { .. })));
        assert!(matches!(Client::new("not a url", None), Err(CliError::InvalidUrl { .. })));
        let client = Client::new("http://127.0.0.1:8000/", None).unwrap();
        assert_eq!(client.url("/v1/agents"), "http://127.0.0.1:8000/v1/agents");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
