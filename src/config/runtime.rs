//! runtime.yaml and providers.yaml, resolved, with the command line's overrides applied.
//!
//! Precedence for each setting: `Overrides` (flags and `ASTROMESH_*`, filled by the CLI) >
//! runtime.yaml > the documented default. Not here: agent files (`agent`).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::agent::{resolve_orchestration, OrchestrationDefaults};
use super::embedder::EmbedderConfig;
use super::file::{ProviderEntryFile, ProvidersFile, RuntimeFile};
use super::mesh::{resolve_mesh, MeshConfig, MeshOverrides};
use super::model::{RoutingStrategy, STRATEGIES};
use super::{parse_yaml, Problems, Secret, Warning};

/// Settings given on the command line or in `ASTROMESH_*` variables; they win over the files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub cors_origins: Option<Vec<String>>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: export finished traces over OTLP/HTTP to this base URL.
    pub otlp_endpoint: Option<String>,
    /// `ASTROMESH_API_KEYS` (comma-separated): replaces `spec.api.auth.api_keys` when set.
    pub api_keys: Option<Vec<String>>,
    /// `ASTROMESH_MESH_*`, `ASTROMESH_NODE_NAME`, `ASTROMESH_SEEDS`, ...
    pub mesh: MeshOverrides,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Empty: CORS off.
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Capacity of the store writer's queue.
    pub write_queue: usize,
    /// `spec.rag.hnsw_threshold`: live vectors from which a collection gets an HNSW graph.
    pub rag_hnsw_threshold: usize,
    /// `spec.rag.max_ingest_chunks`: most chunks one ingest request may create.
    pub rag_max_ingest_chunks: usize,
    /// `spec.rag.embedder`: the embedder of every collection not named below (default local).
    pub rag_embedder: EmbedderConfig,
    /// `spec.rag.collections.<name>.embedder`: per-collection embedders.
    pub rag_collection_embedders: IndexMap<String, EmbedderConfig>,
    pub orchestration_defaults: OrchestrationDefaults,
    /// `spec.services.agents` (default true): false loads no agents.
    pub services_agents: bool,
    /// `spec.mesh` (see `config::mesh`).
    pub mesh: MeshConfig,
    /// `spec.observability.traces.max_traces`: traces kept in the store (oldest evicted first).
    pub trace_max_count: usize,
    /// `spec.observability.traces.max_age_days`: traces older than this are evicted.
    pub trace_max_age: Duration,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `spec.observability.otlp.endpoint` (unless
    /// `otlp.enabled: false`): base URL that finished traces are exported to over OTLP/HTTP.
    pub otlp_endpoint: Option<String>,
    /// `spec.api.auth.api_keys` or `ASTROMESH_API_KEYS`. Empty: no authentication.
    pub api_keys: Vec<Secret>,
    /// `spec.api.auth.rate_limit`: requests each key may make. `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// `spec.tools`: the `config` of each built-in when it runs outside an agent
    /// (`POST /v1/tools/execute`), e.g. `{http_request: {allow_localhost: true}}`.
    pub tools: IndexMap<String, Map<String, Value>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            host: "127.0.0.1".to_string(),
            port: 8000,
            data_dir: PathBuf::from("./data"),
            cors_origins: Vec::new(),
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(10),
            write_queue: 1024,
            rag_hnsw_threshold: 20_000,
            rag_max_ingest_chunks: 10_000,
            rag_embedder: EmbedderConfig::Local,
            rag_collection_embedders: IndexMap::new(),
            orchestration_defaults: OrchestrationDefaults::default(),
            services_agents: true,
            mesh: MeshConfig::default(),
            trace_max_count: 10_000,
            trace_max_age: Duration::from_secs(7 * 24 * 3600),
            otlp_endpoint: None,
            tools: IndexMap::new(),
            api_keys: Vec::new(),
            rate_limit: None,
        }
    }
}

/// A per-key request budget: `requests_per_minute` replenished evenly, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_per_minute: NonZeroU32,
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    /// Named providers for `providerRef` (later files override earlier ones).
    pub(crate) entries: IndexMap<String, ProviderEntryFile>,
    pub default_strategy: Option<RoutingStrategy>,
    pub fallback_enabled: bool,
    pub failure_threshold: u32,
    pub recovery_timeout: Duration,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            entries: IndexMap::new(),
            default_strategy: None,
            fallback_enabled: true,
            failure_threshold: 3,
            recovery_timeout: Duration::from_secs(60),
        }
    }
}

impl ProvidersConfig {
    /// Names of the providers declared in providers.yaml.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

fn positive_secs(value: Option<f64>, key: &str, default: Duration, problems: &mut Problems) -> Duration {
    problems.seconds(value, key).unwrap_or(default)
}

pub(super) fn resolve_runtime_file(
    path: &str,
    text: &str,
    overrides: &Overrides,
    warnings: &mut Vec<Warning>,
    fatal: &mut Vec<String>,
) -> Option<RuntimeConfig> {
    let file: RuntimeFile = match parse_yaml(path, text, warnings) {
        Ok(file) => file,
        Err(message) => {
            fatal.push(message);
            return None;
        }
    };
    let mut problems = Problems::default();
    if let Some(kind) = &file.kind {
        if kind != "RuntimeConfig" {
            problems.push("kind", format!("expected \"RuntimeConfig\", found \"{kind}\""));
        }
    }
    let defaults = RuntimeConfig::default();
    let spec = &file.spec;
    let orchestration = resolve_orchestration(
        &spec.defaults.orchestration,
        &OrchestrationDefaults::default(),
        "spec.defaults.orchestration",
        &mut problems,
    );
    let max_body_bytes = match spec.api.max_body_bytes {
        Some(0) => {
            problems.push("spec.api.max_body_bytes", "must be at least 1");
            defaults.max_body_bytes
        }
        Some(bytes) => usize::try_from(bytes).unwrap_or(usize::MAX),
        None => defaults.max_body_bytes,
    };
    let write_queue = match spec.store.write_queue {
        Some(0) => {
            problems.push("spec.store.write_queue", "must be at least 1");
            defaults.write_queue
        }
        Some(size) => size,
        None => defaults.write_queue,
    };
    let mut at_least_one = |value: Option<usize>, key: &str, default: usize| match value {
        Some(0) => {
            problems.push(key, "must be at least 1");
            default
        }
        Some(value) => value,
        None => default,
    };
    let rag_hnsw_threshold =
        at_least_one(spec.rag.hnsw_threshold, "spec.rag.hnsw_threshold", defaults.rag_hnsw_threshold);
    let rag_max_ingest_chunks =
        at_least_one(spec.rag.max_ingest_chunks, "spec.rag.max_ingest_chunks", defaults.rag_max_ingest_chunks);
    let trace_max_count = at_least_one(
        spec.observability.traces.max_traces,
        "spec.observability.traces.max_traces",
        defaults.trace_max_count,
    );
    let trace_max_age = positive_secs(
        spec.observability.traces.max_age_days.map(|days| days * 86_400.0),
        "spec.observability.traces.max_age_days",
        defaults.trace_max_age,
        &mut problems,
    );
    let (rag_embedder, rag_collection_embedders) =
        super::embedder::resolve(spec.rag.embedder.as_ref(), spec.rag.collections.as_ref(), &mut problems);
    let otlp = &spec.observability.otlp;
    let otlp_endpoint = match (&overrides.otlp_endpoint, otlp.enabled, &otlp.endpoint) {
        (Some(endpoint), _, _) => Some(endpoint.clone()),
        (None, Some(false), _) => None,
        (None, _, Some(endpoint)) => Some(endpoint.clone()),
        (None, Some(true), None) => Some("http://localhost:4318".to_string()),
        (None, None, None) => None,
    };
    let auth = &spec.api.auth;
    let key_texts = overrides.api_keys.clone().or_else(|| auth.api_keys.clone()).unwrap_or_default();
    let mut api_keys = Vec::with_capacity(key_texts.len());
    for (idx, key) in key_texts.into_iter().enumerate() {
        let key = key.trim().to_string();
        if key.is_empty() {
            // An empty entry (`ASTROMESH_API_KEYS=a,,b`, a blank list item) is a typo, not a key.
            if overrides.api_keys.is_none() {
                problems.push(&format!("spec.api.auth.api_keys[{idx}]"), "must not be empty");
            }
            continue;
        }
        api_keys.push(Secret::new(key));
    }
    let rate_limit = match (auth.rate_limit.requests_per_minute, auth.rate_limit.burst) {
        (None, None) => None,
        (None, Some(_)) => {
            problems.push("spec.api.auth.rate_limit.burst", "needs requests_per_minute");
            None
        }
        (Some(per_minute), burst) => {
            let per_minute = NonZeroU32::new(per_minute);
            let burst = burst.map_or(per_minute, NonZeroU32::new);
            match (per_minute, burst) {
                (Some(requests_per_minute), Some(burst)) => Some(RateLimit { requests_per_minute, burst }),
                (None, _) => {
                    problems.push("spec.api.auth.rate_limit.requests_per_minute", "must be at least 1");
                    None
                }
                (_, None) => {
                    problems.push("spec.api.auth.rate_limit.burst", "must be at least 1");
                    None
                }
            }
        }
    };
    let services_agents = spec.services.as_ref().and_then(|services| services.get("agents").copied()).unwrap_or(true);
    let config = RuntimeConfig {
        host: overrides.host.clone().or_else(|| spec.api.host.clone()).unwrap_or(defaults.host),
        port: overrides.port.or(spec.api.port).unwrap_or(defaults.port),
        data_dir: overrides.data_dir.clone().unwrap_or(defaults.data_dir),
        cors_origins: overrides.cors_origins.clone().or_else(|| spec.api.cors_origins.clone()).unwrap_or_default(),
        max_body_bytes,
        request_timeout: positive_secs(
            spec.api.request_timeout,
            "spec.api.request_timeout",
            defaults.request_timeout,
            &mut problems,
        ),
        shutdown_timeout: positive_secs(
            spec.api.shutdown_timeout,
            "spec.api.shutdown_timeout",
            defaults.shutdown_timeout,
            &mut problems,
        ),
        write_queue,
        rag_hnsw_threshold,
        rag_max_ingest_chunks,
        rag_embedder,
        rag_collection_embedders,
        orchestration_defaults: OrchestrationDefaults {
            pattern: orchestration.pattern,
            max_iterations: orchestration.max_iterations,
            timeout: orchestration.timeout,
        },
        services_agents,
        mesh: resolve_mesh(&spec.mesh, &overrides.mesh, &mut problems),
        trace_max_count,
        trace_max_age,
        otlp_endpoint: otlp_endpoint.filter(|endpoint| !endpoint.trim().is_empty()),
        tools: spec.tools.clone().unwrap_or_default(),
        api_keys,
        rate_limit,
    };
    if problems.has_errors() {
        fatal.extend(problems.render(path));
        return None;
    }
    Some(config)
}

pub(super) fn resolve_providers(
    files: &[(String, String)],
    warnings: &mut Vec<Warning>,
    fatal: &mut Vec<String>,
) -> Option<ProvidersConfig> {
    let mut config = ProvidersConfig::default();
    let mut ok = true;
    for (path, text) in files {
        let file: ProvidersFile = match parse_yaml(path, text, warnings) {
            Ok(file) => file,
            Err(message) => {
                fatal.push(message);
                ok = false;
                continue;
            }
        };
        let mut problems = Problems::default();
        if let Some(kind) = &file.kind {
            if kind != "ProviderConfig" {
                problems.push("kind", format!("expected \"ProviderConfig\", found \"{kind}\""));
            }
        }
        let routing = &file.spec.routing;
        if let Some(text) = &routing.default_strategy {
            match RoutingStrategy::parse(text) {
                Some(strategy) => config.default_strategy = Some(strategy),
                None => problems.push(
                    "spec.routing.default_strategy",
                    format!("unknown routing strategy \"{text}\" (expected one of {STRATEGIES})"),
                ),
            }
        }
        if let Some(enabled) = routing.fallback_enabled {
            config.fallback_enabled = enabled;
        }
        match routing.circuit_breaker.failure_threshold {
            Some(0) => problems.push("spec.routing.circuit_breaker.failure_threshold", "must be at least 1"),
            Some(threshold) => config.failure_threshold = threshold,
            None => {}
        }
        config.recovery_timeout = positive_secs(
            routing.circuit_breaker.recovery_timeout,
            "spec.routing.circuit_breaker.recovery_timeout",
            config.recovery_timeout,
            &mut problems,
        );
        for (name, entry) in &file.spec.providers {
            config.entries.insert(name.clone(), entry.clone());
        }
        if problems.has_errors() {
            fatal.extend(problems.render(path));
            ok = false;
        }
    }
    ok.then_some(config)
}
