//! `GET /v1/agents` and `GET /v1/agents/{name}`: the agents and their configuration, in
//! API.md's summary shapes (not the raw YAML).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::ApiPath;
use super::forward::{self, Decision};
use super::AppState;
use crate::config::model::ModelCandidate;
use crate::config::{AgentEntry, AgentState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/agents", get(list)).route("/v1/agents/{name}", get(show))
}

fn model_label(candidate: &ModelCandidate) -> String {
    format!("{}/{}", candidate.provider, candidate.model)
}

/// `reload_error`: why the last reload refused this agent's new file; it still runs the previous
/// definition, so it stays `ready` and the `error` says what to fix.
fn summary(entry: &AgentEntry, reload_error: Option<String>) -> Value {
    match &entry.state {
        AgentState::Ready(config) => {
            let mut summary = json!({
                "name": entry.name,
                "description": config.description,
                "model": config.model.primary().map(model_label),
                "orchestration": config.orchestration.pattern.as_str(),
                "status": "ready",
            });
            if let Some(error) = reload_error {
                summary["error"] = json!(format!("reload refused, running the previous definition: {error}"));
            }
            summary
        }
        AgentState::Error(message) => json!({
            "name": entry.name,
            "description": entry.description,
            "model": null,
            "orchestration": null,
            "status": "error",
            "error": message,
        }),
    }
}

async fn list(State(app): State<AppState>) -> Json<Value> {
    let mut agents: Vec<Value> =
        app.runtime.agents().iter().map(|entry| summary(entry, app.runtime.reload_error(&entry.name))).collect();
    // In mesh mode the list is the cluster's: each agent names the nodes hosting it, and agents
    // hosted only elsewhere are listed too (runs for them are forwarded).
    if let Some(mesh) = &app.mesh {
        for (name, nodes) in mesh.cluster_agents() {
            match agents.iter_mut().find(|agent| agent["name"] == name.as_str()) {
                Some(agent) => agent["nodes"] = json!(nodes),
                None => agents.push(json!({
                    "name": name,
                    "description": "",
                    "model": null,
                    "orchestration": null,
                    "status": "ready",
                    "nodes": nodes,
                })),
            }
        }
    }
    Json(json!({ "agents": agents }))
}

async fn show(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if app.runtime.agent(&name).is_none() && app.mesh.is_some() {
        // Hosted elsewhere: the hosting node describes it.
        return match forward::decide(&app, &name, None, &headers)? {
            Decision::Remote(mesh, targets) => {
                forward::relay(&mesh, &targets, "GET", &forward::agent_path(&name, ""), &headers, Bytes::new()).await
            }
            Decision::Local(_) => Err(forward::not_in_cluster(&name)),
        };
    }
    let entry = app.runtime.agent(&name).ok_or_else(|| ApiError::NotFound(format!("Agent '{name}' not found")))?;
    let config = match &entry.state {
        AgentState::Ready(config) => config.clone(),
        AgentState::Error(_) => return Ok(Json(summary(&entry, None)).into_response()),
    };
    let pair = |candidate: &ModelCandidate| json!({ "provider": candidate.provider, "model": candidate.model });
    let roles: serde_json::Map<String, Value> = config
        .model
        .roles
        .iter()
        .map(|(role, role_config)| {
            (role.clone(), json!(role_config.candidates.iter().map(model_label).collect::<Vec<_>>()))
        })
        .collect();
    Ok(Json(json!({
        "name": entry.name,
        "display_name": config.display_name,
        "description": config.description,
        "version": config.version,
        "model": {
            "primary": config.model.default.candidates.first().map(pair),
            "fallback": config.model.default.candidates.get(1).map(pair),
            "extra": config.model.default.candidates.iter().skip(2).map(pair).collect::<Vec<_>>(),
            "routing": config.model.default.strategy.as_str(),
            "roles": roles,
        },
        "orchestration": {
            "pattern": config.orchestration.pattern.as_str(),
            "max_iterations": config.orchestration.max_iterations,
            "timeout": config.orchestration.timeout.as_secs_f64(),
        },
        "tools": config.tools.iter().map(|tool| tool.name.as_str()).collect::<Vec<_>>(),
        "memory": {
            "conversational": config.memory.conversational_backend,
            "semantic": config.memory.semantic_backend,
        },
        "status": "ready",
    }))
    .into_response())
}
