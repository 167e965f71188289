//! The resolved agent: what an `*.agent.yaml` means once validated.
//!
//! `resolve_agent` checks every section and collects all problems as `key: message`; the caller
//! prefixes the file. Defaults live here, next to the type they fill. Not here: running anything.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::file::{AgentFile, OrchestrationFile, ToolFile};
use super::model::{resolve_model, ModelConfig, RoutingStrategy};
use super::{Problems, ProvidersConfig};

/// The six orchestration patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    React,
    PlanAndExecute,
    ParallelFanOut,
    Pipeline,
    Supervisor,
    Swarm,
}

pub(crate) const PATTERNS: &str = "react, plan_and_execute, parallel_fan_out, pipeline, supervisor, swarm";

impl Pattern {
    pub fn parse(text: &str) -> Option<Pattern> {
        Some(match text {
            "react" => Pattern::React,
            "plan_and_execute" => Pattern::PlanAndExecute,
            "parallel_fan_out" => Pattern::ParallelFanOut,
            "pipeline" => Pattern::Pipeline,
            "supervisor" => Pattern::Supervisor,
            "swarm" => Pattern::Swarm,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::React => "react",
            Pattern::PlanAndExecute => "plan_and_execute",
            Pattern::ParallelFanOut => "parallel_fan_out",
            Pattern::Pipeline => "pipeline",
            Pattern::Supervisor => "supervisor",
            Pattern::Swarm => "swarm",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OrchestrationConfig {
    pub pattern: Pattern,
    pub max_iterations: u32,
    /// The whole run's deadline (`timeout_seconds`, alias `timeout`).
    pub timeout: Duration,
    pub role_map: Vec<(String, String)>,
    /// Pipeline stages in order (default analyze, process, synthesize).
    pub stages: Vec<PipelineStage>,
    pub max_depth: Option<u32>,
    pub max_handoffs: Option<u32>,
}

/// One pipeline stage: `- analyze` or `- {name: analyze, prompt: "..."}` in YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStage {
    pub name: String,
    /// Replaces the default instruction for this stage; the input is appended to it.
    pub prompt: Option<String>,
}

const DEFAULT_STAGES: [&str; 3] = ["analyze", "process", "synthesize"];

/// Orchestration defaults from runtime.yaml `spec.defaults.orchestration`.
#[derive(Debug, Clone)]
pub struct OrchestrationDefaults {
    pub pattern: Pattern,
    pub max_iterations: u32,
    pub timeout: Duration,
}

impl Default for OrchestrationDefaults {
    fn default() -> Self {
        OrchestrationDefaults { pattern: Pattern::React, max_iterations: 10, timeout: Duration::from_secs(120) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    Builtin,
    Agent,
    Client,
    Webhook,
    Mcp,
}

impl ToolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolKind::Builtin => "builtin",
            ToolKind::Agent => "agent",
            ToolKind::Client => "client",
            ToolKind::Webhook => "webhook",
            ToolKind::Mcp => "mcp",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    pub max_calls: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct ToolConfig {
    pub name: String,
    pub kind: ToolKind,
    /// The type as written (`internal`, `mcp_stdio`, ...), for listings.
    pub declared_type: String,
    pub description: String,
    /// A full JSON Schema object (the YAML shorthand is normalised).
    pub parameters: Value,
    pub config: Map<String, Value>,
    pub rate_limit: Option<RateLimit>,
    pub timeout: Duration,
    pub agent: Option<String>,
    pub context_transform: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub headers: Vec<(String, String)>,
    pub transport: Option<String>,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub server: Option<Value>,
    pub tool_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryStrategy {
    SlidingWindow,
    Summary,
    TokenBudget,
}

#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Backend as written (`redis`, `sqlite`, ...); every backend is served by the embedded store.
    pub conversational_backend: Option<String>,
    pub strategy: MemoryStrategy,
    pub max_turns: u32,
    pub max_tokens: u32,
    pub ttl: Option<Duration>,
    pub semantic_backend: Option<String>,
    pub similarity_threshold: f64,
    pub max_results: u32,
}

#[derive(Debug, Clone)]
pub struct KnowledgeConfig {
    pub collection: String,
    pub top_k: u32,
    pub score_threshold: f64,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub version: String,
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: String,
    pub model: ModelConfig,
    pub system_prompt: String,
    pub output_schema: Option<Value>,
    pub orchestration: OrchestrationConfig,
    pub tools: Vec<ToolConfig>,
    pub memory: MemoryConfig,
    pub knowledge: Option<KnowledgeConfig>,
    pub guardrails_input: Vec<Map<String, Value>>,
    pub guardrails_output: Vec<Map<String, Value>>,
}

/// An agent's name as it may appear in URLs and file names.
pub(crate) fn valid_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.contains("..")
        && name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        && name.chars().next().is_some_and(|ch| ch.is_ascii_alphanumeric())
}

pub(crate) fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_'))
}

/// The agent's name as the file declares it (`metadata.name`, else `spec.identity.name`).
pub(crate) fn declared_name(file: &AgentFile) -> Option<String> {
    file.metadata.name.clone().or_else(|| file.spec.identity.name.clone())
}

pub(crate) fn resolve_agent(
    file: &AgentFile,
    providers: &ProvidersConfig,
    defaults: &OrchestrationDefaults,
    problems: &mut Problems,
) -> Option<AgentConfig> {
    if let Some(kind) = &file.kind {
        if kind != "Agent" {
            problems.push("kind", format!("expected \"Agent\", found \"{kind}\""));
        }
    }
    let name = match declared_name(file) {
        Some(name) if valid_agent_name(&name) => name,
        Some(name) => {
            problems.push(
                "metadata.name",
                format!("\"{name}\" is not a valid agent name (letters, digits, '-', '_', '.'; no '..')"),
            );
            return None;
        }
        None => {
            problems.push("metadata.name", "required");
            return None;
        }
    };
    let spec = &file.spec;
    let default_strategy = providers.default_strategy.unwrap_or(RoutingStrategy::QualityFirst);
    let model = resolve_model(&spec.model, &providers.entries, default_strategy, problems);
    let orchestration = resolve_orchestration(&spec.orchestration, defaults, "spec.orchestration", problems);
    let tools = spec
        .tools
        .iter()
        .enumerate()
        .filter_map(|(idx, tool)| resolve_tool(tool, &format!("spec.tools[{idx}]"), problems))
        .collect::<Vec<_>>();
    for (idx, tool) in tools.iter().enumerate() {
        if tools[..idx].iter().any(|earlier| earlier.name == tool.name) {
            problems.push(&format!("spec.tools[{idx}].name"), format!("duplicate tool name \"{}\"", tool.name));
        }
    }
    let memory = resolve_memory(file, problems);
    let knowledge = spec.knowledge.as_ref().and_then(|knowledge| {
        let collection = knowledge.collection.clone().or_else(|| knowledge.pipeline.clone());
        match collection {
            Some(collection) => Some(KnowledgeConfig {
                collection,
                top_k: knowledge.top_k.unwrap_or(5),
                score_threshold: knowledge.score_threshold.unwrap_or(0.0),
            }),
            None => {
                problems.push("spec.knowledge", "needs `collection` (or `pipeline`)");
                None
            }
        }
    });
    let output_schema = spec.output_schema.as_ref().map(normalise_schema);
    if let Some(system) = &spec.prompts.system {
        if let Err(error) = minijinja::Environment::new().template_from_str(system) {
            let what = error.detail().map(str::to_string).unwrap_or_else(|| error.kind().to_string());
            let line = error.line().map(|line| format!(" (line {line})")).unwrap_or_default();
            problems.push("spec.prompts.system", format!("template error: {what}{line}"));
        }
    }
    let version = match &file.metadata.version {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "0.1.0".to_string(),
    };
    if problems.has_errors() {
        return None;
    }
    Some(AgentConfig {
        name,
        version,
        namespace: file.metadata.namespace.clone().unwrap_or_else(|| "default".to_string()),
        display_name: spec.identity.display_name.clone(),
        description: spec.identity.description.clone().unwrap_or_default(),
        model,
        system_prompt: spec.prompts.system.clone().unwrap_or_default(),
        output_schema,
        orchestration,
        tools,
        memory,
        knowledge,
        guardrails_input: spec.guardrails.input.clone(),
        guardrails_output: spec.guardrails.output.clone(),
    })
}

/// Resolves an orchestration block; `prefix` is where it sits (`spec.orchestration`, or
/// `spec.defaults.orchestration` in runtime.yaml).
pub(crate) fn resolve_orchestration(
    file: &OrchestrationFile,
    defaults: &OrchestrationDefaults,
    prefix: &str,
    problems: &mut Problems,
) -> OrchestrationConfig {
    let pattern = match file.pattern.as_deref() {
        None => defaults.pattern,
        Some(text) => Pattern::parse(text).unwrap_or_else(|| {
            problems
                .push(&format!("{prefix}.pattern"), format!("unknown pattern \"{text}\" (expected one of {PATTERNS})"));
            defaults.pattern
        }),
    };
    let max_iterations = file.max_iterations.unwrap_or(defaults.max_iterations);
    if max_iterations == 0 {
        problems.push(&format!("{prefix}.max_iterations"), "must be at least 1");
    }
    let key = if file.timeout_seconds.is_some() { "timeout_seconds" } else { "timeout" };
    let timeout =
        problems.seconds(file.timeout_seconds.or(file.timeout), &format!("{prefix}.{key}")).unwrap_or(defaults.timeout);
    OrchestrationConfig {
        pattern,
        max_iterations,
        timeout,
        role_map: file.role_map.iter().flatten().map(|(from, to)| (from.clone(), to.clone())).collect(),
        stages: resolve_stages(file.stages.as_deref(), prefix, problems),
        max_depth: file.max_depth,
        max_handoffs: file.max_handoffs,
    }
}

fn resolve_stages(stages: Option<&[Value]>, prefix: &str, problems: &mut Problems) -> Vec<PipelineStage> {
    let Some(stages) = stages.filter(|stages| !stages.is_empty()) else {
        return DEFAULT_STAGES.iter().map(|name| PipelineStage { name: name.to_string(), prompt: None }).collect();
    };
    let mut resolved = Vec::with_capacity(stages.len());
    for (idx, stage) in stages.iter().enumerate() {
        let (name, prompt) = match stage {
            Value::String(name) => (Some(name.as_str()), None),
            Value::Object(map) => (map.get("name").and_then(Value::as_str), map.get("prompt")),
            _ => (None, None),
        };
        let prompt = match prompt {
            None | Some(Value::Null) => None,
            Some(Value::String(prompt)) => Some(prompt.clone()),
            Some(_) => {
                problems.push(&format!("{prefix}.stages[{idx}].prompt"), "must be a string");
                None
            }
        };
        match name.map(str::trim).filter(|name| !name.is_empty()) {
            Some(name) => resolved.push(PipelineStage { name: name.to_string(), prompt }),
            None => problems.push(&format!("{prefix}.stages[{idx}]"), "a stage is a name or {name, prompt}"),
        }
    }
    resolved
}

const TOOL_TYPES: &str = "builtin, internal, agent, client, webhook, mcp, mcp_stdio, mcp_http, mcp_sse";

fn resolve_tool(tool: &ToolFile, key: &str, problems: &mut Problems) -> Option<ToolConfig> {
    let Some(name) = tool.name.clone() else {
        problems.push(&format!("{key}.name"), "required");
        return None;
    };
    if !valid_tool_name(&name) {
        problems.push(&format!("{key}.name"), format!("\"{name}\" is not a valid tool name (^[a-zA-Z0-9_-]{{1,64}}$)"));
        return None;
    }
    // `internal` is the reference's default type and names a built-in.
    let declared_type = tool.kind.clone().unwrap_or_else(|| "internal".to_string());
    let kind = match declared_type.as_str() {
        "builtin" | "internal" => ToolKind::Builtin,
        "agent" => ToolKind::Agent,
        "client" => ToolKind::Client,
        "webhook" => ToolKind::Webhook,
        "mcp" | "mcp_stdio" | "mcp_http" | "mcp_sse" => ToolKind::Mcp,
        other => {
            problems.push(
                &format!("{key}.type"),
                format!("unsupported tool type \"{other}\" (expected one of {TOOL_TYPES})"),
            );
            return None;
        }
    };
    match kind {
        ToolKind::Agent if tool.agent.is_none() => {
            problems.push(&format!("{key}.agent"), "an agent tool names the agent to call")
        }
        ToolKind::Webhook if tool.url.is_none() => problems.push(&format!("{key}.url"), "a webhook tool needs `url`"),
        ToolKind::Mcp if tool.command.is_none() && tool.url.is_none() && tool.server.is_none() => {
            problems.push(key, "an mcp tool needs `command` (stdio) or `url` (http)")
        }
        _ => {}
    }
    let parameters = match &tool.parameters {
        None if kind == ToolKind::Agent => {
            json!({"type": "object", "properties": {"query": {"type": "string", "description": "The request for the agent"}}, "required": ["query"]})
        }
        None => json!({"type": "object", "properties": {}}),
        Some(value @ Value::Object(_)) => normalise_schema(value),
        Some(_) => {
            problems.push(&format!("{key}.parameters"), "must be a mapping of field name to {type, description}");
            return None;
        }
    };
    let timeout =
        problems.seconds(tool.timeout_seconds, &format!("{key}.timeout_seconds")).unwrap_or(Duration::from_secs(30));
    let rate_limit = tool.rate_limit.as_ref().map(|limit| RateLimit {
        max_calls: limit.max_calls.unwrap_or(10),
        window: problems
            .seconds(limit.window_seconds, &format!("{key}.rate_limit.window_seconds"))
            .unwrap_or(Duration::from_secs(60)),
    });
    let pairs = |map: &Option<indexmap::IndexMap<String, String>>| -> Vec<(String, String)> {
        map.iter().flatten().map(|(name, value)| (name.clone(), value.clone())).collect()
    };
    Some(ToolConfig {
        description: tool.description.clone().unwrap_or_default(),
        kind,
        declared_type,
        parameters,
        config: tool.config.clone().unwrap_or_default(),
        rate_limit,
        timeout,
        agent: tool.agent.clone(),
        context_transform: tool.context_transform.clone(),
        url: tool.url.clone(),
        method: tool.method.clone(),
        headers: pairs(&tool.headers),
        transport: tool.transport.clone(),
        command: tool.command.clone(),
        args: tool.args.clone().unwrap_or_default(),
        env: pairs(&tool.env),
        server: tool.server.clone(),
        tool_name: tool.tool_name.clone(),
        name,
    })
}

/// Turns the YAML shorthand `{field: {type, description}}` into a full JSON Schema object; a
/// value that already is one (`type: object` with `properties`) is kept as it is. A field is
/// required when it says `required: true`.
pub(crate) fn normalise_schema(value: &Value) -> Value {
    let Value::Object(map) = value else { return value.clone() };
    if map.get("type").and_then(Value::as_str) == Some("object") || map.contains_key("properties") {
        let mut schema = map.clone();
        schema.entry("type").or_insert(json!("object"));
        schema.entry("properties").or_insert(json!({}));
        return Value::Object(schema);
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (field, spec) in map {
        let mut spec = match spec {
            Value::Object(spec) => spec.clone(),
            Value::String(kind) => Map::from_iter([("type".to_string(), json!(kind))]),
            _ => Map::from_iter([("type".to_string(), json!("string"))]),
        };
        if spec.remove("required").and_then(|flag| flag.as_bool()) == Some(true) {
            required.push(json!(field));
        }
        properties.insert(field.clone(), Value::Object(spec));
    }
    let mut schema =
        Map::from_iter([("type".to_string(), json!("object")), ("properties".to_string(), Value::Object(properties))]);
    if !required.is_empty() {
        schema.insert("required".to_string(), Value::Array(required));
    }
    Value::Object(schema)
}

fn resolve_memory(file: &AgentFile, problems: &mut Problems) -> MemoryConfig {
    let conversational = file.spec.memory.conversational.as_ref();
    let semantic = file.spec.memory.semantic.as_ref();
    let strategy = match conversational.and_then(|memory| memory.strategy.as_deref()) {
        None | Some("sliding_window") => MemoryStrategy::SlidingWindow,
        Some("summary") => MemoryStrategy::Summary,
        Some("token_budget") => MemoryStrategy::TokenBudget,
        Some(other) => {
            problems.push(
                "spec.memory.conversational.strategy",
                format!("unknown strategy \"{other}\" (expected one of sliding_window, summary, token_budget)"),
            );
            MemoryStrategy::SlidingWindow
        }
    };
    let similarity_threshold = semantic.and_then(|memory| memory.similarity_threshold).unwrap_or(0.75);
    if !(0.0..=1.0).contains(&similarity_threshold) {
        problems.push("spec.memory.semantic.similarity_threshold", "must be between 0 and 1");
    }
    MemoryConfig {
        conversational_backend: conversational
            .map(|memory| memory.backend.clone().unwrap_or_else(|| "in_memory".to_string())),
        strategy,
        max_turns: conversational.and_then(|memory| memory.max_turns).unwrap_or(50),
        max_tokens: conversational.and_then(|memory| memory.max_tokens).unwrap_or(4096),
        ttl: problems.seconds(conversational.and_then(|memory| memory.ttl), "spec.memory.conversational.ttl"),
        semantic_backend: semantic.map(|memory| memory.backend.clone().unwrap_or_else(|| "in_memory".to_string())),
        similarity_threshold,
        max_results: semantic.and_then(|memory| memory.max_results).unwrap_or(5),
    }
}
