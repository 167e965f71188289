//! The agent registry and (with the runs issue) the run pipeline.
//!
//! Owns the loaded agents and answers "which agents exist, and can this one run". Nothing here
//! knows about HTTP; `api/` translates. Not here: model calls (`providers`), tools (`tools`).

use std::sync::Arc;

use crate::config::{AgentEntry, Config};

/// Health of one configured provider, as `/v1/system/status` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    Healthy,
    Degraded,
    Unavailable,
}

/// The loaded agents and what they need to run.
pub struct Runtime {
    config: Arc<Config>,
}

impl Runtime {
    pub fn new(config: Arc<Config>) -> Runtime {
        Runtime { config }
    }

    pub fn agents(&self) -> &[AgentEntry] {
        &self.config.agents
    }

    pub fn agent(&self, name: &str) -> Option<&AgentEntry> {
        self.config.agent(name)
    }

    /// Agents that loaded without errors.
    pub fn ready_count(&self) -> usize {
        self.config.agents.iter().filter(|entry| entry.config().is_some()).count()
    }

    /// One state per distinct provider endpoint the ready agents use. No call has been made
    /// yet, so each is `Degraded` (unprobed) until the providers' router reports on it.
    pub fn provider_states(&self) -> Vec<(String, ProviderState)> {
        let mut seen: Vec<String> = Vec::new();
        for config in self.config.agents.iter().filter_map(AgentEntry::config) {
            let roles = std::iter::once(&config.model.default).chain(config.model.roles.values());
            for candidate in roles.flat_map(|role| role.candidates.iter()) {
                let key = format!("{} {}", candidate.kind.as_str(), candidate.endpoint);
                if !seen.contains(&key) {
                    seen.push(key);
                }
            }
        }
        seen.into_iter().map(|key| (key, ProviderState::Degraded)).collect()
    }
}
