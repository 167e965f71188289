//! `/v1/tools`: the tools agents use, the built-in catalogue, and direct execution.
//!
//! `POST /v1/tools/execute` answers 200 `{tool, output, timing_ms}` when the tool ran and
//! succeeded. A tool that ran and failed (network refused by policy, upstream error, timeout,
//! the tool's own error) answers **502** `{"detail": "Tool 'x' failed: <message>"}`: the request
//! was valid, what it asked us to do did not work. A 200 carrying `{"error": ...}` in `output`
//! would be indistinguishable from a tool whose real output has an `error` key (an MCP tool,
//! an HTTP body). Unknown tool: 404; arguments that fail the tool's schema: 422 with
//! `loc: ["body", "input", <field>]`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::ApiJson;
use super::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tools", get(list))
        .route("/v1/tools/builtin", get(builtin))
        .route("/v1/tools/execute", post(execute))
}

async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "tools": app.tools.listing() }))
}

async fn builtin(State(app): State<AppState>) -> Json<Value> {
    let tools = app.tools.builtins();
    let count = tools.len();
    Json(json!({ "tools": tools, "count": count }))
}

#[derive(Deserialize)]
struct ExecuteBody {
    tool: String,
    #[serde(default = "empty_object")]
    input: Value,
}

fn empty_object() -> Value {
    json!({})
}

async fn execute(State(app): State<AppState>, ApiJson(body): ApiJson<ExecuteBody>) -> Result<Json<Value>, ApiError> {
    let outcome = app.tools.execute_direct(&body.tool, body.input).await?;
    if let Some(message) = outcome.error {
        return Err(ApiError::BadGateway(format!("Tool '{}' failed: {message}", body.tool)));
    }
    let timing_ms = outcome.duration.as_millis() as u64;
    Ok(Json(json!({ "tool": body.tool, "output": outcome.output, "timing_ms": timing_ms })))
}
