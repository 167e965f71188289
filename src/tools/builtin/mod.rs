//! The 17 built-in tools: the catalogue (`catalog`) and their implementations.
//!
//! `run` dispatches by name. Each tool gets its validated arguments, its `config` map (from the
//! agent's YAML, or runtime.yaml `spec.tools` for direct execution) and the call's context, and
//! returns JSON or a `ToolFailure` whose text becomes the observation. Network tools go through
//! `fetch` (and so the network policy); file tools through `FilePolicy`.
//!
//! **Environment variables** are read only where a setting names them, at the moment of use,
//! when the tool's config does not set the value: `SEARCH_API_KEY` (web_search `api_key`),
//! `SLACK_WEBHOOK_URL` (send_slack `webhook_url`), `SMTP_HOST`, `SMTP_PORT`, `SMTP_USER`,
//! `SMTP_PASSWORD` and `SMTP_FROM` (send_email `smtp_host`, `smtp_port`, `smtp_user`,
//! `smtp_password`, `from_address`). No other tool reads the environment.

mod basic;
pub(crate) mod catalog;
mod files;
mod html;
mod messaging;
mod rag;
mod sql;
mod web;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::fetch::FetchError;
use super::policy::PolicyError;
use super::ToolContext;
use crate::store::{Store, StoreError};

/// Everything one built-in call can use.
pub(crate) struct BuiltinCall<'a> {
    pub name: &'a str,
    pub input: &'a Map<String, Value>,
    pub config: &'a Map<String, Value>,
    pub ctx: &'a ToolContext,
    pub store: &'a Arc<Store>,
    pub rag: &'a Arc<crate::rag::Rag>,
    /// The tool's timeout: the default (and the bound) of network timeouts.
    pub timeout: Duration,
}

/// Why a built-in failed; the text is the observation the model sees.
#[derive(Debug, thiserror::Error)]
pub enum ToolFailure {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cache storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("{tool} needs `{setting}` in the tool's config{}", env_hint(.env))]
    MissingSetting { tool: &'static str, setting: &'static str, env: Option<&'static str> },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Failed(String),
    #[error("the tool's worker failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn env_hint(env: &Option<&'static str>) -> String {
    env.map(|name| format!(" or the {name} environment variable")).unwrap_or_default()
}

impl ToolFailure {
    pub fn failed(message: impl Into<String>) -> ToolFailure {
        ToolFailure::Failed(message.into())
    }
}

/// Whether `name` is one of the 17.
pub(crate) fn is_builtin(name: &str) -> bool {
    catalog::catalog().iter().any(|info| info.name == name)
}

/// Runs built-in `call.name`.
pub(crate) async fn run(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    match call.name {
        "datetime_now" => basic::datetime_now(call),
        "json_transform" => basic::json_transform(call).await,
        "cache_store" => basic::cache_store(call).await,
        "http_request" => web::http_request(call).await,
        "graphql_query" => web::graphql_query(call).await,
        "web_search" => web::web_search(call).await,
        "web_scrape" => web::web_scrape(call).await,
        "wikipedia" => web::wikipedia(call).await,
        "read_file" => files::read_file(call).await,
        "write_file" => files::write_file(call).await,
        "sql_query" => sql::sql_query(call).await,
        "send_webhook" => messaging::send_webhook(call).await,
        "send_slack" => messaging::send_slack(call).await,
        "send_email" => messaging::send_email(call).await,
        "text_summarize" => basic::text_summarize(call).await,
        "rag_query" => rag::rag_query(call).await,
        "rag_ingest" => rag::rag_ingest(call).await,
        other => Err(ToolFailure::failed(format!("Tool '{other}' not found"))),
    }
}

/// A string argument (present: the schema has checked the required ones).
pub(crate) fn str_arg<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ToolFailure> {
    input.get(key).and_then(Value::as_str).ok_or_else(|| ToolFailure::failed(format!("`{key}` must be a string")))
}

pub(crate) fn opt_str<'a>(input: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

pub(crate) fn opt_u64(input: &Map<String, Value>, key: &str) -> Option<u64> {
    input.get(key).and_then(Value::as_u64)
}

/// `{name: value}` string pairs from an object argument or config key.
pub(crate) fn string_pairs(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(name, value)| {
                    let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
                    (name.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A setting from the tool's config, else from the environment variable that the setting names.
pub(crate) fn setting(config: &Map<String, Value>, key: &str, env: &str) -> Option<String> {
    match config.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => std::env::var(env).ok().filter(|value| !value.is_empty()),
    }
}
