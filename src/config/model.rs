//! Resolved model routing for an agent: roles, strategies and candidates.
//!
//! Turns either YAML model schema (legacy primary/fallback/extra or per-role default/roles) into
//! one shape: a `default` role plus named roles, each an ordered list of `ModelCandidate`s.
//! `providerRef` defaults from providers.yaml are applied here. Not here: talking to providers
//! (`providers/`), or choosing among candidates at run time (`providers::router`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::file::{ModelBlockFile, ModelSectionFile, ProviderEntryFile, RoleFile, RoutingFile};
use super::{Problems, Secret};

/// Which wire protocol a candidate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// `POST {endpoint}/chat/completions` (openai, openai_compat, azure_openai, vllm, ...).
    OpenAiCompat,
    /// Native Messages API.
    Anthropic,
    /// Native `/api/chat`.
    Ollama,
    /// A GGUF model run inside the daemon.
    Local,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAiCompat => "openai_compat",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Local => "local",
        }
    }
}

/// How a router orders its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingStrategy {
    CostOptimized,
    LatencyOptimized,
    QualityFirst,
    RoundRobin,
    CapabilityMatch,
}

pub(crate) const STRATEGIES: &str = "cost_optimized, latency_optimized, quality_first, round_robin, capability_match";

impl RoutingStrategy {
    pub fn parse(text: &str) -> Option<RoutingStrategy> {
        Some(match text {
            "cost_optimized" => RoutingStrategy::CostOptimized,
            "latency_optimized" => RoutingStrategy::LatencyOptimized,
            "quality_first" => RoutingStrategy::QualityFirst,
            "round_robin" => RoutingStrategy::RoundRobin,
            "capability_match" => RoutingStrategy::CapabilityMatch,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoutingStrategy::CostOptimized => "cost_optimized",
            RoutingStrategy::LatencyOptimized => "latency_optimized",
            RoutingStrategy::QualityFirst => "quality_first",
            RoutingStrategy::RoundRobin => "round_robin",
            RoutingStrategy::CapabilityMatch => "capability_match",
        }
    }
}

/// One model a router may call, with everything the wire adapter needs.
#[derive(Debug, Clone)]
pub struct ModelCandidate {
    /// Where it came from: `primary`, `fallback`, an `extra` key, or `<role>[i]`.
    pub label: String,
    pub kind: ProviderKind,
    /// The provider name as written in YAML (`openai`, `vllm`, ...), used in API output.
    pub provider: String,
    pub model: String,
    /// Base URL, without a trailing slash.
    pub endpoint: String,
    pub api_key: Option<Secret>,
    /// Environment variable that holds the key, read at call time.
    pub api_key_env: Option<String>,
    /// Whether `api_key_env` was written by the user (a missing variable is then an error)
    /// rather than defaulted (a local server may accept no key).
    pub api_key_env_explicit: bool,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Passed through to the provider (temperature, max_tokens, top_p, ...).
    pub parameters: Map<String, Value>,
    pub headers: Vec<(String, String)>,
    pub model_path: Option<String>,
    /// Local models: generations that may wait while one runs (`queue_size`, default 8).
    pub queue_size: usize,
}

#[derive(Debug, Clone)]
pub struct RoleConfig {
    pub strategy: RoutingStrategy,
    pub candidates: Vec<ModelCandidate>,
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub default: RoleConfig,
    pub roles: BTreeMap<String, RoleConfig>,
    /// `routing.health_check_interval`, when given.
    pub health_check_interval: Option<Duration>,
}

impl ModelConfig {
    pub fn primary(&self) -> Option<&ModelCandidate> {
        self.default.candidates.first()
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_QUEUE_SIZE: usize = 8;

/// Resolves `spec.model`. Problems are pushed with keys under `spec.model`.
pub(crate) fn resolve_model(
    section: &ModelSectionFile,
    registry: &indexmap::IndexMap<String, ProviderEntryFile>,
    default_strategy: RoutingStrategy,
    problems: &mut Problems,
) -> ModelConfig {
    let per_role = section.default.is_some() || section.roles.is_some();
    if per_role {
        let default = match &section.default {
            Some(role) => resolve_role(role, "spec.model.default", registry, default_strategy, problems),
            None => {
                problems.push("spec.model.default", "the per-role schema needs a `default` role");
                RoleConfig { strategy: default_strategy, candidates: Vec::new() }
            }
        };
        let mut roles = BTreeMap::new();
        for (name, role) in section.roles.iter().flatten() {
            let key = format!("spec.model.roles.{name}");
            roles.insert(name.clone(), resolve_role(role, &key, registry, default_strategy, problems));
        }
        let interval = section.default.as_ref().and_then(|role| role.health_check_interval);
        let health_check_interval = problems.seconds(interval, "spec.model.default.health_check_interval");
        return ModelConfig { default, roles, health_check_interval };
    }

    let (strategy, health_check_interval) = match &section.routing {
        None => (default_strategy, None),
        Some(RoutingFile::Strategy(text)) => {
            (parse_strategy(text, "spec.model.routing", default_strategy, problems), None)
        }
        Some(RoutingFile::Detailed(detail)) => {
            let strategy = match &detail.strategy {
                Some(text) => parse_strategy(text, "spec.model.routing.strategy", default_strategy, problems),
                None => default_strategy,
            };
            (strategy, detail.health_check_interval)
        }
    };
    let mut candidates = Vec::new();
    let blocks = [("primary", section.primary.as_ref()), ("fallback", section.fallback.as_ref())];
    for (label, block) in blocks {
        if let Some(block) = block {
            let key = format!("spec.model.{label}");
            if let Some(candidate) = resolve_candidate(block, label, &key, registry, problems) {
                candidates.push(candidate);
            }
        }
    }
    for (name, block) in section.extra.iter().flatten() {
        let key = format!("spec.model.extra.{name}");
        if let Some(candidate) = resolve_candidate(block, name, &key, registry, problems) {
            candidates.push(candidate);
        }
    }
    if candidates.is_empty() && !problems.has_under("spec.model") {
        problems.push("spec.model", "no model configured (expected `primary` or `default.candidates`)");
    }
    ModelConfig {
        default: RoleConfig { strategy, candidates },
        roles: BTreeMap::new(),
        health_check_interval: problems.seconds(health_check_interval, "spec.model.routing.health_check_interval"),
    }
}

fn parse_strategy(text: &str, key: &str, fallback: RoutingStrategy, problems: &mut Problems) -> RoutingStrategy {
    RoutingStrategy::parse(text).unwrap_or_else(|| {
        problems.push(key, format!("unknown routing strategy \"{text}\" (expected one of {STRATEGIES})"));
        fallback
    })
}

fn resolve_role(
    role: &RoleFile,
    key: &str,
    registry: &indexmap::IndexMap<String, ProviderEntryFile>,
    default_strategy: RoutingStrategy,
    problems: &mut Problems,
) -> RoleConfig {
    let strategy = match &role.strategy {
        Some(text) => parse_strategy(text, &format!("{key}.strategy"), default_strategy, problems),
        None => default_strategy,
    };
    let candidates: Vec<ModelCandidate> = role
        .candidates
        .iter()
        .enumerate()
        .filter_map(|(idx, block)| {
            let label = format!("{}[{idx}]", key.rsplit('.').next().unwrap_or("default"));
            resolve_candidate(block, &label, &format!("{key}.candidates[{idx}]"), registry, problems)
        })
        .collect();
    if role.candidates.is_empty() {
        problems.push(&format!("{key}.candidates"), "at least one candidate is required");
    }
    RoleConfig { strategy, candidates }
}

/// Provider names accepted in `source` / `provider` / providers.yaml `type`.
pub(crate) const PROVIDERS: &str =
    "openai, openai_compat, azure_openai, vllm, llamacpp, hf_tgi, centinela, litellm, anthropic, ollama, local";

fn resolve_candidate(
    block: &ModelBlockFile,
    label: &str,
    key: &str,
    registry: &indexmap::IndexMap<String, ProviderEntryFile>,
    problems: &mut Problems,
) -> Option<ModelCandidate> {
    // providerRef: the registry entry gives defaults, the block's own keys override.
    let reference = match &block.provider_ref {
        Some(name) => match registry.get(name) {
            Some(entry) => Some(entry),
            None => {
                problems.push(
                    &format!("{key}.providerRef"),
                    format!("unknown provider \"{name}\" (not in providers.yaml)"),
                );
                return None;
            }
        },
        None => None,
    };
    let mut model = block.model.clone().or_else(|| reference.and_then(|entry| entry.models.first().cloned()));
    let declared = block
        .source
        .clone()
        .or_else(|| block.provider.clone())
        .or_else(|| reference.and_then(|entry| entry.kind.clone()));
    let declared = match declared {
        Some(name) => name,
        // The reference infers litellm for "vendor/model" names, openai_compat otherwise.
        None if model.as_deref().is_some_and(|name| name.contains('/')) => "litellm".to_string(),
        None if block.model_path.is_some() => "local".to_string(),
        None => "openai_compat".to_string(),
    };
    let mut provider = declared.clone();
    let kind = match declared.as_str() {
        "openai" | "openai_compat" | "azure_openai" | "vllm" | "llamacpp" | "hf_tgi" | "centinela" => {
            ProviderKind::OpenAiCompat
        }
        "anthropic" => ProviderKind::Anthropic,
        "ollama" => ProviderKind::Ollama,
        "local" => ProviderKind::Local,
        "litellm" => {
            // "vendor/model": route to the native adapter of that vendor.
            let Some((vendor, rest)) = model.as_deref().and_then(|name| name.split_once('/')) else {
                problems.push(
                    &format!("{key}.model"),
                    "litellm models are written \"vendor/model\" (e.g. \"openai/gpt-4o\")",
                );
                return None;
            };
            let kind = match vendor {
                "openai" | "azure" => ProviderKind::OpenAiCompat,
                "anthropic" => ProviderKind::Anthropic,
                "ollama" | "ollama_chat" => ProviderKind::Ollama,
                other => {
                    problems.push(
                        &format!("{key}.model"),
                        format!("litellm vendor \"{other}\" is not supported (expected openai, anthropic or ollama)"),
                    );
                    return None;
                }
            };
            provider = if vendor == "azure" {
                "azure_openai".to_string()
            } else {
                vendor.trim_end_matches("_chat").to_string()
            };
            model = Some(rest.to_string());
            kind
        }
        "onnx" => {
            problems.push(
                &format!("{key}.source"),
                "provider \"onnx\" is not supported; use `source: local` with a GGUF `model_path`",
            );
            return None;
        }
        other => {
            problems
                .push(&format!("{key}.source"), format!("unknown provider \"{other}\" (expected one of {PROVIDERS})"));
            return None;
        }
    };
    let model = match (model, kind) {
        (Some(model), _) => model,
        (None, ProviderKind::Local) => block.model_path.clone().unwrap_or_default(),
        (None, ProviderKind::Ollama) => "llama3".to_string(),
        (None, _) => {
            problems.push(&format!("{key}.model"), "a model name is required");
            return None;
        }
    };
    if kind == ProviderKind::Local && block.model_path.is_none() && block.model.is_none() {
        problems.push(&format!("{key}.model_path"), "`source: local` needs `model_path`");
        return None;
    }
    let endpoint = block
        .endpoint
        .clone()
        .or_else(|| reference.and_then(|entry| entry.endpoint.clone()))
        .unwrap_or_else(|| default_endpoint(&provider).to_string());
    let endpoint = normalise_endpoint(&provider, &endpoint);
    if kind != ProviderKind::Local && !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        problems.push(&format!("{key}.endpoint"), format!("\"{endpoint}\" is not an http(s) URL"));
        return None;
    }
    let api_key = block.api_key.clone().or_else(|| reference.and_then(|entry| entry.api_key.clone())).map(Secret::new);
    let explicit_env = block.api_key_env.clone().or_else(|| reference.and_then(|entry| entry.api_key_env.clone()));
    let api_key_env_explicit = explicit_env.is_some();
    let api_key_env = explicit_env.or_else(|| match kind {
        ProviderKind::OpenAiCompat => Some("OPENAI_API_KEY".to_string()),
        ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY".to_string()),
        ProviderKind::Ollama | ProviderKind::Local => None,
    });
    let errors_before = problems.len();
    let timeout = problems
        .seconds(block.timeout.or_else(|| reference.and_then(|entry| entry.timeout)), &format!("{key}.timeout"))
        .unwrap_or(DEFAULT_TIMEOUT);
    let connect_timeout = problems
        .seconds(block.connect_timeout, &format!("{key}.connect_timeout"))
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT.min(timeout));
    if problems.len() > errors_before {
        return None;
    }
    // Shorthand sampling keys merge into `parameters`; an explicit entry wins.
    let mut parameters = block.parameters.clone().unwrap_or_default();
    if let Some(temperature) = block.temperature {
        parameters.entry("temperature").or_insert(Value::from(temperature));
    }
    if let Some(max_tokens) = block.max_tokens {
        parameters.entry("max_tokens").or_insert(Value::from(max_tokens));
    }
    if let Some(top_p) = block.top_p {
        parameters.entry("top_p").or_insert(Value::from(top_p));
    }
    if let Some(top_k) = block.top_k {
        parameters.entry("top_k").or_insert(Value::from(top_k));
    }
    if let Some(seed) = block.seed {
        parameters.entry("seed").or_insert(Value::from(seed));
    }
    if let Some(stop) = &block.stop {
        if !(stop.is_string() || stop.as_array().is_some_and(|items| items.iter().all(Value::is_string))) {
            problems.push(&format!("{key}.stop"), "expected a string or a list of strings");
            return None;
        }
        parameters.entry("stop").or_insert(stop.clone());
    }
    if block.queue_size.is_some() && kind != ProviderKind::Local {
        tracing::warn!(key = %format!("{key}.queue_size"), "queue_size only applies to `source: local` models");
    }
    let headers = block.headers.iter().flatten().map(|(name, value)| (name.clone(), value.clone())).collect();
    Some(ModelCandidate {
        label: label.to_string(),
        kind,
        provider,
        model,
        endpoint,
        api_key,
        api_key_env,
        api_key_env_explicit,
        timeout,
        connect_timeout,
        parameters,
        headers,
        model_path: block.model_path.clone(),
        queue_size: block.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE),
    })
}

fn default_endpoint(provider: &str) -> &'static str {
    match provider {
        "anthropic" => "https://api.anthropic.com",
        "ollama" => "http://localhost:11434",
        "vllm" => "http://localhost:8000/v1",
        "llamacpp" | "hf_tgi" | "centinela" => "http://localhost:8080/v1",
        "local" => "",
        _ => "https://api.openai.com/v1",
    }
}

/// vLLM, llama.cpp and TGI serve the OpenAI API under `/v1`; the Python adapters appended it, so
/// users wrote bare `http://host:port` endpoints for them.
fn normalise_endpoint(provider: &str, endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    match provider {
        "vllm" | "llamacpp" | "hf_tgi" | "centinela" if !trimmed.ends_with("/v1") => format!("{trimmed}/v1"),
        "anthropic" => trimmed.trim_end_matches("/v1").to_string(),
        _ => trimmed.to_string(),
    }
}
