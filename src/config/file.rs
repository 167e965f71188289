//! Serde types that mirror the YAML files exactly, as the Python version writes them.
//!
//! Every field is optional here; defaults and validation happen in `resolve`/`agent`, which turn
//! these into the types the runtime uses. Nothing outside `config` sees these types.
//! Deliberately absent: `#[serde(flatten)]` (it hides unknown keys from serde_ignored) and
//! `deny_unknown_fields` (unknown keys are warnings, not errors).

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `kind: Agent` — one `*.agent.yaml` file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AgentFile {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: MetadataFile,
    pub spec: AgentSpecFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MetadataFile {
    pub name: Option<String>,
    pub version: Option<Value>,
    pub namespace: Option<String>,
    pub labels: Option<IndexMap<String, Value>>,
    pub annotations: Option<IndexMap<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AgentSpecFile {
    pub identity: IdentityFile,
    pub model: ModelSectionFile,
    pub prompts: PromptsFile,
    pub orchestration: OrchestrationFile,
    pub tools: Vec<ToolFile>,
    pub memory: MemoryFile,
    pub knowledge: Option<KnowledgeFile>,
    pub guardrails: GuardrailsFile,
    pub permissions: Option<Value>,
    pub observability: Option<Value>,
    pub channels: Option<Value>,
    pub output_schema: Option<Value>,
    pub chain: Option<Value>,
    pub program: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct IdentityFile {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub avatar: Option<String>,
}

/// Both model schemas: legacy `primary/fallback/extra/routing` and per-role `default/roles`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ModelSectionFile {
    pub primary: Option<ModelBlockFile>,
    pub fallback: Option<ModelBlockFile>,
    pub extra: Option<IndexMap<String, ModelBlockFile>>,
    pub routing: Option<RoutingFile>,
    pub default: Option<RoleFile>,
    pub roles: Option<IndexMap<String, RoleFile>>,
}

/// `routing: cost_optimized` (as the docs show) or `routing: {strategy: ..., ...}` (as the code
/// expects). Both are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RoutingFile {
    Strategy(String),
    Detailed(RoutingDetailFile),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RoutingDetailFile {
    pub strategy: Option<String>,
    pub health_check_interval: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RoleFile {
    pub strategy: Option<String>,
    pub health_check_interval: Option<f64>,
    pub candidates: Vec<ModelBlockFile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ModelBlockFile {
    pub source: Option<String>,
    pub provider: Option<String>,
    #[serde(rename = "providerRef")]
    pub provider_ref: Option<String>,
    pub model: Option<String>,
    pub endpoint: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub seed: Option<u64>,
    pub stop: Option<Value>,
    pub parameters: Option<Map<String, Value>>,
    pub model_path: Option<String>,
    /// Local models: generations that may wait while one runs (more are refused with 503).
    pub queue_size: Option<usize>,
    pub headers: Option<IndexMap<String, String>>,
    pub api_version: Option<String>,
    // Centinela-only fields; accepted so that existing files load without warnings.
    pub endpoint_name: Option<String>,
    pub contract: Option<Value>,
    pub invalid_policy: Option<String>,
    pub max_retries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PromptsFile {
    pub system: Option<String>,
    pub templates: Option<IndexMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OrchestrationFile {
    pub pattern: Option<String>,
    pub max_iterations: Option<u32>,
    pub timeout_seconds: Option<f64>,
    pub timeout: Option<f64>,
    pub role_map: Option<IndexMap<String, String>>,
    pub stages: Option<Vec<Value>>,
    pub max_depth: Option<u32>,
    pub max_handoffs: Option<u32>,
    pub max_repairs: Option<u32>,
    pub narrate: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ToolFile {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub config: Option<Map<String, Value>>,
    pub rate_limit: Option<RateLimitFile>,
    pub timeout_seconds: Option<f64>,
    pub requires_approval: Option<bool>,
    pub permissions: Option<Value>,
    // type: agent
    pub agent: Option<String>,
    pub context_transform: Option<String>,
    // type: webhook
    pub url: Option<String>,
    pub method: Option<String>,
    pub headers: Option<IndexMap<String, String>>,
    // type: mcp (and the reference's mcp_stdio / mcp_http / mcp_sse)
    pub transport: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<IndexMap<String, String>>,
    pub server: Option<Value>,
    pub tool_name: Option<String>,
    // type: integration (reference only)
    pub connection: Option<String>,
    pub actions: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct RateLimitFile {
    pub max_calls: Option<u32>,
    pub window_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MemoryFile {
    pub conversational: Option<ConversationalFile>,
    pub semantic: Option<SemanticFile>,
    pub episodic: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ConversationalFile {
    pub backend: Option<String>,
    pub strategy: Option<String>,
    pub max_turns: Option<u32>,
    pub max_tokens: Option<u32>,
    pub ttl: Option<f64>,
    pub connection: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SemanticFile {
    pub backend: Option<String>,
    pub similarity_threshold: Option<f64>,
    pub max_results: Option<u32>,
    pub connection: Option<Value>,
    pub collection: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct KnowledgeFile {
    pub pipeline: Option<String>,
    pub collection: Option<String>,
    pub top_k: Option<u32>,
    pub score_threshold: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GuardrailsFile {
    pub input: Vec<Map<String, Value>>,
    pub output: Vec<Map<String, Value>>,
}

/// `kind: RuntimeConfig` — `runtime.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RuntimeFile {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<Value>,
    pub spec: RuntimeSpecFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RuntimeSpecFile {
    pub api: ApiFile,
    pub defaults: DefaultsFile,
    pub services: Option<IndexMap<String, bool>>,
    pub peers: Option<Vec<Value>>,
    pub mesh: MeshFile,
    pub observability: ObservabilityFile,
    pub store: StoreFile,
    pub rag: RagFile,
    pub limits: Option<Value>,
    /// Built-in tool settings for direct execution (`POST /v1/tools/execute`), by tool name.
    pub tools: Option<IndexMap<String, Map<String, Value>>>,
}

/// `spec.mesh`: gossip membership, failure detection, election (see `config::mesh`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MeshFile {
    pub enabled: Option<bool>,
    pub node_name: Option<String>,
    pub advertise_address: Option<String>,
    pub seeds: Option<Vec<String>>,
    pub gossip_interval: Option<f64>,
    pub gossip_fanout: Option<usize>,
    pub heartbeat_interval: Option<f64>,
    pub failure_timeout: Option<f64>,
    pub dead_timeout: Option<f64>,
    pub cleanup_timeout: Option<f64>,
    /// The Python version's listen address; the daemon's own `spec.api` decides here.
    pub bind: Option<String>,
}

/// `spec.observability`: trace retention and OpenTelemetry export.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ObservabilityFile {
    pub traces: TracesFile,
    pub otlp: OtlpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TracesFile {
    pub max_traces: Option<usize>,
    pub max_age_days: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OtlpFile {
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RagFile {
    pub hnsw_threshold: Option<usize>,
    pub max_ingest_chunks: Option<usize>,
    pub embedder: Option<EmbedderFile>,
    pub collections: Option<IndexMap<String, RagCollectionFile>>,
}

/// `spec.rag.embedder` and `spec.rag.collections.<name>.embedder`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EmbedderFile {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub endpoint: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout: Option<f64>,
    pub batch_size: Option<usize>,
}

/// `spec.rag.collections.<name>`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RagCollectionFile {
    pub embedder: Option<EmbedderFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiFile {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub cors_origins: Option<Vec<String>>,
    pub max_body_bytes: Option<u64>,
    pub request_timeout: Option<f64>,
    pub shutdown_timeout: Option<f64>,
    pub auth: AuthFile,
}

/// `spec.api.auth`: API keys and the per-key request rate limit.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AuthFile {
    pub api_keys: Option<Vec<String>>,
    pub rate_limit: AuthRateLimitFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AuthRateLimitFile {
    pub requests_per_minute: Option<u32>,
    pub burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DefaultsFile {
    pub orchestration: OrchestrationFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StoreFile {
    pub write_queue: Option<usize>,
}

/// `kind: ProviderConfig` — `providers.yaml` (and any other `providers*.yaml`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ProvidersFile {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<Value>,
    pub spec: ProvidersSpecFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ProvidersSpecFile {
    pub providers: IndexMap<String, ProviderEntryFile>,
    pub routing: ProvidersRoutingFile,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ProviderEntryFile {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub endpoint: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub models: Vec<String>,
    pub health_check_interval: Option<f64>,
    pub timeout: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ProvidersRoutingFile {
    pub default_strategy: Option<String>,
    pub fallback_enabled: Option<bool>,
    pub circuit_breaker: CircuitBreakerFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CircuitBreakerFile {
    pub failure_threshold: Option<u32>,
    pub recovery_timeout: Option<f64>,
}
