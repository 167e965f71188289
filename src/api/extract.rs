//! Extractors that answer bad input in our envelope: `ApiJson`, `ApiPath`, `ApiQuery`.
//!
//! axum's own rejections are plain text; these map every failure to `ApiError` with a `loc`
//! naming the field (via `serde_path_to_error`), and a body over the limit to 413.

use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::error::{ApiError, FieldError};

/// A JSON body. Any content type is accepted, as the Python version's clients send several.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                ApiError::PayloadTooLarge("Request body too large".to_string())
            }
            other => ApiError::BadRequest(other.body_text()),
        })?;
        parse_json_body(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body into `T`, reporting problems as 422 entries with `loc: ["body", ...]`.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(error) => {
            let msg = if bytes.iter().all(u8::is_ascii_whitespace) {
                "Field required".to_string()
            } else {
                format!("JSON decode error: {error}")
            };
            let kind = if bytes.iter().all(u8::is_ascii_whitespace) { "missing" } else { "json_invalid" };
            return Err(ApiError::invalid(vec![json!("body")], msg, kind));
        }
    };
    if !value.is_object() {
        return Err(ApiError::invalid(
            vec![json!("body")],
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        ));
    }
    deserialize_value(value, "body")
}

/// Deserializes `value` into `T`; on failure a 422 entry under `root` (`body`, `query`, `path`).
pub fn deserialize_value<T: DeserializeOwned>(value: Value, root: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let mut loc = vec![json!(root)];
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
                serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
                serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = error.inner().to_string();
        ApiError::Validation(vec![field_error(loc, &message)])
    })
}

/// Maps serde's message to the pydantic-style `msg` and `type` that clients know.
fn field_error(mut loc: Vec<Value>, message: &str) -> FieldError {
    if let Some(field) = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
        loc.push(json!(field));
        return FieldError::new(loc, "Field required", "missing");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let expected = rest.split("expected ").nth(1).unwrap_or("a valid value");
        let kind = if expected.contains("string") {
            "string_type"
        } else if expected.contains("integer") || expected.starts_with("u") || expected.starts_with("i") {
            "int_type"
        } else if expected.contains("float") || expected.starts_with("f") {
            "float_type"
        } else if expected.contains("boolean") {
            "bool_type"
        } else if expected.contains("map") || expected.contains("struct") {
            "dict_type"
        } else if expected.contains("sequence") {
            "list_type"
        } else {
            "type_error"
        };
        return FieldError::new(loc, format!("Input should be {expected}"), kind);
    }
    FieldError::new(loc, message.to_string(), "value_error")
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::invalid(vec![json!("path")], rejection.body_text(), "value_error")),
        }
    }
}

/// Query parameters, validated with `loc: ["query", field]`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|error| {
            let mut loc = vec![json!("query")];
            let path = error.path().to_string();
            if path != "." && !path.is_empty() {
                loc.push(json!(path));
            }
            let message = error.inner().to_string();
            ApiError::Validation(vec![field_error(loc, &message)])
        })
    }
}
