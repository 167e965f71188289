//! Configuration: discovery, the YAML files, validation and the resolved `Config`.
//!
//! Two layers, as ripgrep splits its arguments: `file` mirrors the YAML exactly, and the
//! resolvers (`agent`, `model`, `runtime`) validate it into the types the rest of the daemon uses.
//! Problems are collected, all of them, as `file: key: message`; unknown keys are warnings.
//! A broken agent file never stops the daemon: its entry carries the error instead.
//! **Architecture Invariant:** this module reads files but no environment variable; the CLI layer
//! (`main.rs`, through clap's `env`) turns `ASTROMESH_*` into `Overrides`, so tests build a
//! `Config` in code and never see the user's environment.

pub mod agent;
pub mod embedder;
pub(crate) mod file;
pub mod mesh;
pub mod model;
mod runtime;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rust_embed::RustEmbed;
use serde::de::DeserializeOwned;

pub use agent::AgentConfig;
pub use embedder::{EmbedderConfig, RemoteEmbedderConfig, RemoteKind};
pub use runtime::{Overrides, ProvidersConfig, RateLimit, RuntimeConfig};

/// The default agents shipped inside the binary.
#[derive(RustEmbed)]
#[folder = "agents/"]
#[include = "*.agent.yaml"]
struct DefaultAgents;

/// A string that never prints: API keys and other secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    /// The one way to read the value: at the place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Dir(PathBuf),
    /// The defaults compiled into the binary.
    Embedded,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Dir(dir) => write!(f, "{}", dir.display()),
            ConfigSource::Embedded => f.write_str("<embedded defaults>"),
        }
    }
}

/// Picks the config dir: explicit (`--config` / `ASTROMESH_CONFIG_DIR`) > the system dir when it
/// holds runtime.yaml > `./config` when it exists > the embedded defaults.
pub fn discover(explicit: Option<&Path>, system_dir: &Path, local_dir: &Path) -> ConfigSource {
    if let Some(dir) = explicit {
        return ConfigSource::Dir(dir.to_path_buf());
    }
    if system_dir.join("runtime.yaml").is_file() {
        return ConfigSource::Dir(system_dir.to_path_buf());
    }
    if local_dir.is_dir() {
        return ConfigSource::Dir(local_dir.to_path_buf());
    }
    ConfigSource::Embedded
}

/// What went wrong with a file, or with the whole configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config dir {0} does not exist or is not a directory")]
    MissingDir(PathBuf),
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// A problem that does not stop loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    UnknownKey { path: String, key: String },
    Other { path: String, message: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey { path, key } => write!(f, "{path}: {key}: unknown key (ignored)"),
            Warning::Other { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

/// Validation problems of one file, as `key: message`.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<(String, String)>);

impl Problems {
    pub(crate) fn push(&mut self, key: &str, message: impl Into<String>) {
        self.0.push((key.to_string(), message.into()));
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    pub(crate) fn has_errors(&self) -> bool {
        !self.0.is_empty()
    }
    pub(crate) fn has_under(&self, prefix: &str) -> bool {
        self.0.iter().any(|(key, _)| key.starts_with(prefix))
    }
    /// A duration in seconds: absent is `None`; zero, negative, infinite or absurd values are a
    /// problem (and `None`), never a panic.
    pub(crate) fn seconds(&mut self, value: Option<f64>, key: &str) -> Option<Duration> {
        let secs = value?;
        if secs > 0.0 && secs.is_finite() && secs < 1e9 {
            Some(Duration::from_secs_f64(secs))
        } else {
            self.push(key, format!("must be a positive number of seconds, found {secs}"));
            None
        }
    }

    fn render(&self, path: &str) -> Vec<String> {
        self.0.iter().map(|(key, message)| format!("{path}: {key}: {message}")).collect()
    }
}

/// The state of one agent after loading.
#[derive(Debug, Clone)]
pub enum AgentState {
    Ready(Arc<AgentConfig>),
    /// The agent is listed but cannot run; the text names file and key.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct AgentEntry {
    pub name: String,
    /// The file it came from (`agents/x.agent.yaml`, or `<embedded>/x.agent.yaml`).
    pub source: String,
    pub description: String,
    pub state: AgentState,
}

impl AgentEntry {
    pub fn config(&self) -> Option<&Arc<AgentConfig>> {
        match &self.state {
            AgentState::Ready(config) => Some(config),
            AgentState::Error(_) => None,
        }
    }
}

/// Everything the daemon was configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: ConfigSource,
    pub runtime: RuntimeConfig,
    pub providers: ProvidersConfig,
    pub agents: Vec<AgentEntry>,
    pub warnings: Vec<Warning>,
}

impl Config {
    /// Loads and validates everything. Errors in runtime.yaml or providers.yaml are fatal;
    /// errors in an agent file mark that agent only.
    pub fn load(source: ConfigSource, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let (runtime_text, provider_texts, agent_texts) = read_sources(&source)?;
        let mut fatal = Vec::new();
        let runtime = match runtime_text {
            Some((path, text)) => runtime::resolve_runtime_file(&path, &text, overrides, &mut warnings, &mut fatal),
            None => runtime::resolve_runtime_file("runtime.yaml", "", overrides, &mut warnings, &mut fatal),
        };
        let providers = runtime::resolve_providers(&provider_texts, &mut warnings, &mut fatal);
        if !fatal.is_empty() {
            return Err(ConfigError::Invalid(fatal));
        }
        let (Some(runtime), Some(providers)) = (runtime, providers) else {
            return Err(ConfigError::Invalid(vec!["configuration could not be resolved".to_string()]));
        };
        let agents = if runtime.services_agents {
            load_agents(&agent_texts, &providers, &runtime, &mut warnings)
        } else {
            Vec::new()
        };
        Ok(Config { source, runtime, providers, agents, warnings })
    }

    pub fn agent(&self, name: &str) -> Option<&AgentEntry> {
        self.agents.iter().find(|entry| entry.name == name)
    }

    /// Whether a loaded agent runs a local GGUF model (`provider: local`) in any role.
    pub fn uses_local_models(&self) -> bool {
        self.agents.iter().filter_map(AgentEntry::config).any(|agent| {
            std::iter::once(&agent.model.default)
                .chain(agent.model.roles.values())
                .flat_map(|role| &role.candidates)
                .any(|candidate| candidate.kind == model::ProviderKind::Local)
        })
    }

    /// Reads the agent files again (a reload), resolved against this configuration's runtime
    /// and providers settings: runtime.yaml and providers*.yaml are not re-read, because what
    /// they configure (listeners, the store, provider entries) is built once at startup.
    pub fn reload_agents(&self) -> Result<(Vec<AgentEntry>, Vec<Warning>), ConfigError> {
        let (_, _, agent_texts) = read_sources(&self.source)?;
        let mut warnings = Vec::new();
        let agents = if self.runtime.services_agents {
            load_agents(&agent_texts, &self.providers, &self.runtime, &mut warnings)
        } else {
            Vec::new()
        };
        Ok((agents, warnings))
    }

    /// Every problem that makes `astromesh validate` fail.
    pub fn errors(&self) -> Vec<String> {
        self.agents
            .iter()
            .filter_map(|entry| match &entry.state {
                AgentState::Error(message) => Some(message.clone()),
                AgentState::Ready(_) => None,
            })
            .collect()
    }
}

type Sources = (Option<(String, String)>, Vec<(String, String)>, Vec<(String, String)>);

/// Reads runtime.yaml, every providers*.yaml (sorted) and agents/*.agent.yaml (sorted).
fn read_sources(source: &ConfigSource) -> Result<Sources, ConfigError> {
    match source {
        ConfigSource::Embedded => {
            let mut agents: Vec<(String, String)> = DefaultAgents::iter()
                .filter_map(|name| {
                    let file = DefaultAgents::get(&name)?;
                    let text = String::from_utf8_lossy(&file.data).into_owned();
                    Some((format!("<embedded>/agents/{name}"), text))
                })
                .collect();
            agents.sort();
            Ok((None, Vec::new(), agents))
        }
        ConfigSource::Dir(dir) => {
            if !dir.is_dir() {
                return Err(ConfigError::MissingDir(dir.clone()));
            }
            let read = |path: &Path| {
                std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })
            };
            let runtime_path = dir.join("runtime.yaml");
            // Files are named relative to the config dir in messages: `agents/x.agent.yaml: key: ...`.
            let runtime =
                if runtime_path.is_file() { Some(("runtime.yaml".to_string(), read(&runtime_path)?)) } else { None };
            let mut providers = Vec::new();
            for path in list_dir(dir)? {
                let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
                if name.starts_with("providers") && (name.ends_with(".yaml") || name.ends_with(".yml")) {
                    providers.push((name.to_string(), read(&path)?));
                }
            }
            let mut agents = Vec::new();
            let agents_dir = dir.join("agents");
            if agents_dir.is_dir() {
                for path in list_dir(&agents_dir)? {
                    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
                    if name.ends_with(".agent.yaml") || name.ends_with(".agent.yml") {
                        agents.push((format!("agents/{name}"), read(&path)?));
                    }
                }
            }
            Ok((runtime, providers, agents))
        }
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| ConfigError::Read { path: dir.display().to_string(), source })?;
    let mut paths: Vec<PathBuf> =
        entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).filter(|path| path.is_file()).collect();
    paths.sort();
    Ok(paths)
}

/// Parses YAML into `T`, recording unknown keys as warnings. An empty file is `T::default()`.
pub(crate) fn parse_yaml<T: DeserializeOwned + Default>(
    path: &str,
    text: &str,
    warnings: &mut Vec<Warning>,
) -> Result<T, String> {
    if text.trim().is_empty() || text.lines().all(|line| line.trim().is_empty() || line.trim_start().starts_with('#')) {
        return Ok(T::default());
    }
    let mut unknown = Vec::new();
    let deserializer = yaml_serde::Deserializer::from_str(text);
    // serde_ignored writes `?` for an `Option` level; users know only the YAML keys.
    let value: T = serde_ignored::deserialize(deserializer, |key| {
        unknown.push(key.to_string().split('.').filter(|segment| *segment != "?").collect::<Vec<_>>().join("."))
    })
    .map_err(|error| format!("{path}: {error}"))?;
    warnings.extend(unknown.into_iter().map(|key| Warning::UnknownKey { path: path.to_string(), key }));
    Ok(value)
}

fn load_agents(
    texts: &[(String, String)],
    providers: &ProvidersConfig,
    runtime: &RuntimeConfig,
    warnings: &mut Vec<Warning>,
) -> Vec<AgentEntry> {
    let mut entries: Vec<AgentEntry> = Vec::new();
    for (path, text) in texts {
        let fallback_name = Path::new(path)
            .file_name()
            .and_then(|name| name.to_str())
            .map(|name| name.trim_end_matches(".yaml").trim_end_matches(".yml").trim_end_matches(".agent").to_string())
            .unwrap_or_default();
        let entry = match parse_yaml::<file::AgentFile>(path, text, warnings) {
            Err(message) => AgentEntry {
                name: fallback_name,
                source: path.clone(),
                description: String::new(),
                state: AgentState::Error(message),
            },
            Ok(parsed) => {
                let mut problems = Problems::default();
                let resolved = agent::resolve_agent(&parsed, providers, &runtime.orchestration_defaults, &mut problems);
                let name =
                    agent::declared_name(&parsed).filter(|name| agent::valid_agent_name(name)).unwrap_or(fallback_name);
                let description = parsed.spec.identity.description.clone().unwrap_or_default();
                let state = match resolved {
                    Some(config) if !problems.has_errors() => AgentState::Ready(Arc::new(config)),
                    _ => AgentState::Error(problems.render(path).join("; ")),
                };
                AgentEntry { name, source: path.clone(), description, state }
            }
        };
        if let Some(first) = entries.iter().find(|existing| existing.name == entry.name) {
            warnings.push(Warning::Other {
                path: entry.source.clone(),
                message: format!(
                    "agent \"{}\" is already defined in {}; this file is ignored",
                    entry.name, first.source
                ),
            });
            continue;
        }
        entries.push(entry);
    }
    check_agent_references(&mut entries);
    entries
}

/// Agent tools must name a loadable agent, and agents must not call each other in a cycle.
fn check_agent_references(entries: &mut [AgentEntry]) {
    let calls = |entry: &AgentEntry| -> Vec<String> {
        entry
            .config()
            .map(|config| config.tools.iter().filter_map(|tool| tool.agent.clone()).collect())
            .unwrap_or_default()
    };
    let mut failures: Vec<(usize, String)> = Vec::new();
    for (idx, entry) in entries.iter().enumerate() {
        for target in calls(entry) {
            match entries.iter().find(|other| other.name == target) {
                None => failures
                    .push((idx, format!("{}: spec.tools: agent tool calls unknown agent \"{target}\"", entry.source))),
                Some(other) if other.config().is_none() => failures.push((
                    idx,
                    format!("{}: spec.tools: agent tool calls agent \"{target}\", which has errors", entry.source),
                )),
                Some(_) => {}
            }
        }
        // Depth-first search for a path back to this agent.
        let mut stack = calls(entry);
        let mut seen: Vec<String> = Vec::new();
        while let Some(next) = stack.pop() {
            if next == entry.name {
                failures.push((
                    idx,
                    format!(
                        "{}: spec.tools: agent \"{}\" calls itself through a cycle of agent tools",
                        entry.source, entry.name
                    ),
                ));
                break;
            }
            if seen.contains(&next) {
                continue;
            }
            if let Some(other) = entries.iter().find(|other| other.name == next) {
                stack.extend(calls(other));
            }
            seen.push(next);
        }
    }
    for (idx, message) in failures {
        entries[idx].state = AgentState::Error(message);
    }
}

#[cfg(test)]
mod tests;
