//! Reloading agents (SIGHUP, `POST /v1/system/reload`): re-read the agent files, swap the set.
//!
//! Runs in flight keep the `Arc<AgentRuntime>` they started with, so they finish on the old
//! definition; new runs see the new set. A file that no longer loads does not take its agent
//! away: the previous definition stays and the error is reported (here and in the agent list).
//! New and removed files add and remove agents. What reload does not change: runtime.yaml,
//! providers*.yaml, and the MCP server processes and declared-tool schemas of the tool registry,
//! which are built at startup (a restart picks those up).

use std::sync::Arc;

use serde::Serialize;

use super::{AgentSet, Runtime};
use crate::config::{AgentState, ConfigError};
use crate::providers::router::BreakerSettings;

/// What a reload did; serialized as the `POST /v1/system/reload` body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReloadReport {
    /// Always `"reloaded"`: the new set is in place (even when some files had errors).
    pub status: &'static str,
    /// Agents ready to run after the reload (including those kept on a previous definition).
    pub agents: usize,
    pub errors: Vec<ReloadProblem>,
}

/// One agent file that did not load.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReloadProblem {
    pub agent: String,
    pub source: String,
    pub error: String,
    /// True when the agent was loaded before and keeps running its previous definition.
    pub kept_previous: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read the agent files: {0}")]
    Read(#[from] ConfigError),
    #[error("the reload task failed: {0}")]
    Task(String),
}

impl Runtime {
    /// Re-reads the agent files and swaps in the new set (see the module doc).
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let config = Arc::clone(&self.inner.config);
        // Reading and resolving files blocks: off the async runtime.
        let (entries, warnings) = tokio::task::spawn_blocking(move || config.reload_agents())
            .await
            .map_err(|error| ReloadError::Task(error.to_string()))??;
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        let previous = self.agent_set();
        let mut next =
            AgentSet::build(entries, BreakerSettings::from_config(&self.inner.config.providers), &self.inner.local);
        let mut errors = Vec::new();
        for entry in &mut next.entries {
            let AgentState::Error(message) = &entry.state else { continue };
            let message = message.clone();
            let kept = previous.ready.get(&entry.name).cloned();
            if let (Some(agent), Some(old_entry)) =
                (kept, previous.entries.iter().find(|old| old.name == entry.name && old.config().is_some()))
            {
                tracing::error!(agent = %entry.name, "reload refused the new definition, keeping the previous one: {message}");
                next.ready.insert(entry.name.clone(), agent);
                next.stale.insert(entry.name.clone(), message.clone());
                errors.push(ReloadProblem {
                    agent: entry.name.clone(),
                    source: entry.source.clone(),
                    error: message,
                    kept_previous: true,
                });
                *entry = old_entry.clone();
            } else {
                tracing::error!(agent = %entry.name, "agent not loaded: {message}");
                errors.push(ReloadProblem {
                    agent: entry.name.clone(),
                    source: entry.source.clone(),
                    error: message,
                    kept_previous: false,
                });
            }
        }
        let report = ReloadReport { status: "reloaded", agents: next.ready.len(), errors };
        *self.inner.agents.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next);
        tracing::info!(agents = report.agents, errors = report.errors.len(), "agents reloaded");
        Ok(report)
    }
}
