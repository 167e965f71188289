//! `ApiError`: the one place that knows HTTP status codes, and the `{"detail": ...}` envelope.
//!
//! Library errors convert into `ApiError` with `From`; handlers just use `?`. Validation errors
//! use the list form existing clients parse (`[{loc, msg, type}]`). 5xx errors are logged with
//! their full chain and the client gets a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

/// One entry of a 422 body: where, what, and a machine-readable kind.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldError {
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: Vec<serde_json::Value>, msg: impl Into<String>, kind: &str) -> FieldError {
        FieldError { loc, msg: msg.into(), kind: kind.to_string() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Unavailable(String),
    /// Something we called on the client's behalf (a tool, an upstream service) failed.
    #[error("{0}")]
    BadGateway(String),
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unauthorized(String),
    /// Over a rate limit; the caller adds `Retry-After`.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A single 422 entry.
    pub fn invalid(loc: Vec<serde_json::Value>, msg: impl Into<String>, kind: &str) -> ApiError {
        ApiError::Validation(vec![FieldError::new(loc, msg, kind)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Validation(errors) => json!(errors),
            ApiError::Internal(error) => {
                log_internal(error.as_ref());
                json!("Internal Server Error")
            }
            other => json!(other.to_string()),
        };
        (status, Json(json!({ "detail": detail }))).into_response()
    }
}

/// Logs a 5xx cause with its whole chain; the client only sees a generic message.
fn log_internal(error: &(dyn std::error::Error + Send + Sync)) {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    tracing::error!(error = %chain, "internal error");
}

/// The OpenAI error envelope, `{"error": {message, type, param, code}}`, used only by the
/// OpenAI-compatible routes (`/v1/models`, `/v1/chat/completions`) so SDKs parse our errors.
/// The status comes from the wrapped `ApiError`, so both envelopes agree on codes.
#[derive(Debug)]
pub struct OpenAiError {
    pub error: ApiError,
    /// OpenAI's machine-readable `code` (`model_not_found`, `invalid_request`, ...).
    pub code: &'static str,
}

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> OpenAiError {
        let code = match &error {
            ApiError::NotFound(_) => "not_found",
            ApiError::Validation(_) | ApiError::BadRequest(_) => "invalid_request",
            ApiError::Conflict(_) => "agent_unavailable",
            ApiError::PayloadTooLarge(_) => "request_too_large",
            ApiError::Timeout(_) => "timeout",
            ApiError::Unavailable(_) => "provider_unavailable",
            ApiError::BadGateway(_) => "upstream_error",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unauthorized(_) => "invalid_api_key",
            ApiError::TooManyRequests(_) => "rate_limit_exceeded",
            ApiError::Internal(_) => "internal_error",
        };
        OpenAiError { error, code }
    }
}

impl From<crate::runtime::RunError> for OpenAiError {
    fn from(error: crate::runtime::RunError) -> OpenAiError {
        use crate::runtime::RunError;
        let code = match &error {
            RunError::UnknownAgent(_) => Some("model_not_found"),
            RunError::Blocked(_) => Some("content_blocked"),
            RunError::InvalidSession(_) => Some("invalid_session"),
            _ => None,
        };
        let mut converted = OpenAiError::from(ApiError::from(error));
        if let Some(code) = code {
            converted.code = code;
        }
        converted
    }
}

impl OpenAiError {
    /// The envelope's JSON (also sent as an SSE event when a streamed run fails).
    pub fn body(&self) -> serde_json::Value {
        let message = match &self.error {
            ApiError::Validation(errors) => errors
                .iter()
                .map(|error| {
                    let loc: Vec<String> = error
                        .loc
                        .iter()
                        .map(|part| part.as_str().map_or_else(|| part.to_string(), str::to_string))
                        .collect();
                    format!("{}: {}", loc.join("."), error.msg)
                })
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::Internal(error) => {
                log_internal(error.as_ref());
                "Internal Server Error".to_string()
            }
            other => other.to_string(),
        };
        let param = match &self.error {
            ApiError::Validation(errors) => errors
                .first()
                .and_then(|error| error.loc.iter().skip(1).find_map(|part| part.as_str().map(str::to_string)))
                .map_or(serde_json::Value::Null, serde_json::Value::String),
            _ => serde_json::Value::Null,
        };
        let kind = match self.error.status() {
            StatusCode::REQUEST_TIMEOUT => "timeout_error",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => "service_unavailable_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            status if status.is_server_error() => "server_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": message, "type": kind, "param": param, "code": self.code}})
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.error.status(), Json(self.body())).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        ApiError::Internal(Box::new(error))
    }
}

impl From<crate::telemetry::TelemetryError> for ApiError {
    fn from(error: crate::telemetry::TelemetryError) -> ApiError {
        ApiError::Internal(Box::new(error))
    }
}

impl From<crate::tools::ToolError> for ApiError {
    fn from(error: crate::tools::ToolError) -> ApiError {
        use crate::tools::ToolError;
        match error {
            ToolError::UnknownTool(_) => ApiError::NotFound(error.to_string()),
            ToolError::InvalidInput { loc, message, .. } => {
                let mut full = vec![json!("body"), json!("input")];
                full.extend(loc);
                let kind = if message == "Field required" { "missing" } else { "value_error" };
                ApiError::invalid(full, message, kind)
            }
            other @ ToolError::UnknownDirectConfig(_) => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<crate::runtime::RunError> for ApiError {
    fn from(error: crate::runtime::RunError) -> ApiError {
        use crate::runtime::RunError;
        match error {
            RunError::UnknownAgent(_) => ApiError::NotFound(error.to_string()),
            RunError::AgentInvalid { .. } | RunError::Template { .. } => ApiError::Conflict(error.to_string()),
            RunError::Deadline(_) => ApiError::Timeout(error.to_string()),
            RunError::ProvidersDown(message) => ApiError::Unavailable(message),
            RunError::Blocked(_) => ApiError::BadRequest(error.to_string()),
            RunError::InvalidSession(message) => ApiError::invalid(
                vec![serde_json::json!("body"), serde_json::json!("session_id")],
                message,
                "value_error",
            ),
            RunError::EmptyQuery => ApiError::invalid(
                vec![serde_json::json!("body"), serde_json::json!("query")],
                "String should have at least 1 character",
                "string_too_short",
            ),
            RunError::TooDeep(_) => ApiError::Conflict(error.to_string()),
            RunError::Memory(inner) => ApiError::Internal(Box::new(inner)),
        }
    }
}
