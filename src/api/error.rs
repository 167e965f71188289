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
                let mut chain = error.to_string();
                let mut source = error.source();
                while let Some(cause) = source {
                    chain.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                tracing::error!(error = %chain, "internal error");
                json!("Internal Server Error")
            }
            other => json!(other.to_string()),
        };
        (status, Json(json!({ "detail": detail }))).into_response()
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
