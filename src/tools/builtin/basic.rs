//! The built-ins that need no network: datetime_now, json_transform, cache_store, and
//! text_summarize (which uses the calling agent's model router).
//!
//! `cache_store` keeps one entry per (agent, key) in the store's `cache` table, so values
//! survive restarts; a TTL is an absolute wall-clock expiry stored with the value, checked on
//! read (expired entries read as absent and are deleted then). Direct execution (no agent) has
//! its own namespace. `json_transform` renders on the blocking pool with a fuel limit, so a
//! template cannot loop the runtime away.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{opt_str, opt_u64, str_arg, BuiltinCall, ToolFailure};
use crate::providers::{ChatMessage, ChatRequest};
use crate::store::{Table, WriteOp};

/// Text shorter than this comes back unchanged from text_summarize (as in the reference).
const SUMMARIZE_THRESHOLD_CHARS: usize = 500;

/// Instructions one template may spend; a few hundred thousand is far beyond any sane
/// transformation and stops `{% for i in range(10**9) %}` within milliseconds.
const TEMPLATE_FUEL: u64 = 500_000;

/// The largest value cache_store keeps (serialised).
const MAX_CACHE_VALUE_BYTES: usize = 1024 * 1024;

pub(super) fn datetime_now(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let requested = opt_str(call.input, "timezone").unwrap_or("UTC");
    let now = chrono::Utc::now();
    // An unknown zone falls back to UTC, as the reference does, and says so.
    let (zone, note) = match requested.parse::<chrono_tz::Tz>() {
        Ok(zone) => (zone, None),
        Err(_) => (chrono_tz::Tz::UTC, Some(format!("unknown timezone '{requested}'; using UTC"))),
    };
    let local = now.with_timezone(&zone);
    let mut output = json!({
        "datetime": local.to_rfc3339(),
        "timezone": zone.name(),
        "unix_timestamp": now.timestamp(),
    });
    if let (Some(note), Some(map)) = (note, output.as_object_mut()) {
        map.insert("note".to_string(), json!(note));
    }
    Ok(output)
}

pub(super) async fn json_transform(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let template = str_arg(call.input, "template")?.to_string();
    let data = call.input.get("data").cloned().unwrap_or(Value::Null);
    tokio::task::spawn_blocking(move || {
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        let rendered = env
            .render_str(&template, minijinja::context! { data => data })
            .map_err(|error| ToolFailure::failed(format!("template error: {error}")))?;
        serde_json::from_str::<Value>(&rendered).map_err(|error| {
            let preview: String = rendered.chars().take(200).collect();
            ToolFailure::failed(format!("the template did not produce JSON ({error}): {preview}"))
        })
    })
    .await?
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as u64).unwrap_or(0)
}

fn cache_key(agent: &str, key: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(agent.len() + 1 + key.len());
    bytes.extend_from_slice(agent.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

pub(super) async fn cache_store(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let action = str_arg(call.input, "action")?;
    let key = str_arg(call.input, "key")?;
    let store_key = cache_key(&call.ctx.agent, key);
    match action {
        "set" => {
            let value = call.input.get("value").cloned().unwrap_or(Value::Null);
            let ttl = call.input.get("ttl").and_then(Value::as_f64).filter(|secs| *secs > 0.0 && secs.is_finite());
            let expires_at_ms =
                ttl.map(|secs| now_ms().saturating_add(Duration::from_secs_f64(secs.min(1e9)).as_millis() as u64));
            let record = json!({"value": value, "expires_at_ms": expires_at_ms}).to_string().into_bytes();
            if record.len() > MAX_CACHE_VALUE_BYTES {
                return Err(ToolFailure::failed(format!(
                    "the value is too large (limit {MAX_CACHE_VALUE_BYTES} bytes)"
                )));
            }
            call.store.write(WriteOp::Put { table: Table::Cache, key: store_key, value: record }).await?;
            Ok(json!({"key": key, "stored": true, "ttl": ttl}))
        }
        "get" => {
            let found = call.store.get_async(Table::Cache, store_key.clone()).await?;
            let record = found.and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
            let expired = record
                .as_ref()
                .and_then(|record| record.get("expires_at_ms").and_then(Value::as_u64))
                .is_some_and(|expires| expires <= now_ms());
            match record {
                Some(_) if expired => {
                    call.store.write(WriteOp::Delete { table: Table::Cache, key: store_key }).await?;
                    Ok(json!({"key": key, "found": false, "value": null}))
                }
                Some(mut record) => {
                    let value = record.get_mut("value").map(Value::take).unwrap_or(Value::Null);
                    Ok(json!({"key": key, "found": true, "value": value}))
                }
                None => Ok(json!({"key": key, "found": false, "value": null})),
            }
        }
        "delete" => {
            let existed = call.store.get_async(Table::Cache, store_key.clone()).await?.is_some();
            call.store.write(WriteOp::Delete { table: Table::Cache, key: store_key }).await?;
            Ok(json!({"key": key, "deleted": existed}))
        }
        other => Err(ToolFailure::failed(format!("unknown action '{other}' (expected get, set or delete)"))),
    }
}

pub(super) async fn text_summarize(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let text = str_arg(call.input, "text")?;
    let max_words = opt_u64(call.input, "max_length").unwrap_or(200);
    if text.chars().count() < SUMMARIZE_THRESHOLD_CHARS {
        return Ok(json!({"summary": text, "summarized": false}));
    }
    let Some(router) = &call.ctx.model else {
        return Err(ToolFailure::failed(
            "text_summarize needs a model for text of 500 characters or more: call it from an agent (direct \
             execution has no model)",
        ));
    };
    let request = ChatRequest::new(vec![
        ChatMessage::system("You write concise, faithful summaries. Answer with the summary only."),
        ChatMessage::user(&format!("Summarize in ~{max_words} words:\n\n{text}")),
    ]);
    // The tool's own timeout may end before the run's deadline.
    let deadline = call.ctx.deadline.min(tokio::time::Instant::now() + call.timeout);
    let response = router
        .complete(request, deadline, None)
        .await
        .map_err(|error| ToolFailure::failed(format!("the model could not summarize: {error}")))?;
    Ok(
        json!({"summary": response.content.trim(), "summarized": true, "model": format!("{}/{}", response.provider, response.model)}),
    )
}
