//! Loading the agent files users already have, both model schemas, and precise errors.

use std::time::Duration;

use astromesh::config::agent::{MemoryStrategy, Pattern, ToolKind};
use astromesh::config::model::{ProviderKind, RoutingStrategy};
use astromesh::config::{discover, AgentState, Config, ConfigSource, Overrides, Warning};
use serde_json::json;

use crate::support::ConfigDir;

const PYTHON_AGENTS: &[(&str, &str)] = &[
    ("agents/sales-qualifier.agent.yaml", include_str!("fixtures/python-agents/sales-qualifier.agent.yaml")),
    ("agents/sales-qualifier-v010.agent.yaml", include_str!("fixtures/python-agents/sales-qualifier-v010.agent.yaml")),
    ("agents/support-agent.agent.yaml", include_str!("fixtures/python-agents/support-agent.agent.yaml")),
    ("agents/whatsapp-assistant.agent.yaml", include_str!("fixtures/python-agents/whatsapp-assistant.agent.yaml")),
    ("agents/role-router-demo.agent.yaml", include_str!("fixtures/python-agents/role-router-demo.agent.yaml")),
    ("agents/autolink-parts.agent.yaml", include_str!("fixtures/python-agents/autolink-parts.agent.yaml")),
    ("agents/chef-iberia.agent.yaml", include_str!("fixtures/python-agents/chef-iberia.agent.yaml")),
    ("agents/acuse-programa.agent.yaml", include_str!("fixtures/python-agents/acuse-programa.agent.yaml")),
];

fn ready(config: &Config, name: &str) -> std::sync::Arc<astromesh::config::AgentConfig> {
    match &config.agent(name).unwrap_or_else(|| panic!("agent {name} listed")).state {
        AgentState::Ready(agent) => agent.clone(),
        AgentState::Error(message) => panic!("agent {name} should load, got: {message}"),
    }
}

#[test]
fn python_agent_files_load_or_fail_precisely() {
    let dir = ConfigDir::new(PYTHON_AGENTS);
    let config = dir.load();
    assert_eq!(config.agents.len(), PYTHON_AGENTS.len());
    for name in [
        "sales-qualifier",
        "sales-qualifier-v010",
        "support-agent",
        "whatsapp-assistant",
        "role-router-demo",
        "autolink-parts",
        "chef-iberia",
    ] {
        ready(&config, name);
    }
    // The glyph DSL is not supported: the file is listed with a precise error.
    let glyph = config.agent("acuse-programa").unwrap();
    let AgentState::Error(message) = &glyph.state else { panic!("glyph agent must not load") };
    assert_eq!(
        message,
        "agents/acuse-programa.agent.yaml: spec.orchestration.pattern: unknown pattern \"glyph\" (expected one of react, plan_and_execute, parallel_fan_out, pipeline, supervisor, swarm)"
    );
    // The reference ships keys we do not use (avatar, labels...) as known keys: no warnings
    // for these files, except for keys that really are unknown.
    assert!(config.warnings.is_empty(), "unexpected warnings: {:?}", config.warnings);
}

#[test]
fn legacy_schema_fields_reach_the_resolved_config() {
    let config = ConfigDir::new(PYTHON_AGENTS).load();
    let agent = ready(&config, "sales-qualifier");
    assert_eq!(agent.description, "Qualifies incoming sales leads using BANT methodology");
    assert_eq!(agent.display_name.as_deref(), Some("Sales Lead Qualifier"));
    assert_eq!(agent.version, "1.0.0");
    assert_eq!(agent.namespace, "sales");
    assert_eq!(agent.model.default.strategy, RoutingStrategy::CostOptimized);
    assert_eq!(agent.model.health_check_interval, Some(Duration::from_secs(30)));
    let [primary, fallback] = &agent.model.default.candidates[..] else { panic!("two candidates") };
    assert_eq!(
        (primary.kind, primary.provider.as_str(), primary.model.as_str()),
        (ProviderKind::Ollama, "ollama", "llama3.1:8b")
    );
    assert_eq!(primary.endpoint, "http://localhost:11434");
    assert_eq!(primary.parameters.get("temperature"), Some(&json!(0.3)));
    assert_eq!(primary.parameters.get("top_p"), Some(&json!(0.9)));
    assert_eq!(primary.parameters.get("max_tokens"), Some(&json!(2048)));
    assert_eq!(fallback.kind, ProviderKind::OpenAiCompat);
    assert_eq!(fallback.endpoint, "https://api.openai.com/v1");
    assert_eq!(fallback.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    assert!(fallback.api_key_env_explicit);
    assert_eq!(agent.orchestration.pattern, Pattern::React);
    assert_eq!(agent.orchestration.max_iterations, 5);
    assert_eq!(agent.orchestration.timeout, Duration::from_secs(60));
    assert!(agent.system_prompt.starts_with("You are a sales lead qualification assistant"));
    let tool = &agent.tools[0];
    assert_eq!((tool.name.as_str(), tool.kind), ("lookup_company", ToolKind::Client));
    assert_eq!(
        tool.parameters,
        json!({"type": "object", "properties": {"company_name": {"type": "string", "description": "Company name to look up"}}})
    );
    assert_eq!(tool.timeout, Duration::from_secs(30));
    assert_eq!(agent.memory.conversational_backend.as_deref(), Some("redis"));
    assert_eq!(agent.memory.strategy, MemoryStrategy::SlidingWindow);
    assert_eq!(agent.memory.max_turns, 20);
    assert_eq!(agent.memory.ttl, Some(Duration::from_secs(3600)));
    assert_eq!(agent.memory.semantic_backend.as_deref(), Some("chromadb"));
    assert_eq!(agent.memory.similarity_threshold, 0.75);
    assert_eq!(agent.guardrails_input.len(), 2);
    assert_eq!(agent.guardrails_output[0].get("max_tokens_per_turn"), Some(&json!(1000)));
    assert_eq!(
        agent.output_schema,
        Some(
            json!({"type": "object", "properties": {"score": {"type": "integer"}, "urgent": {"type": "boolean"}, "next_action": {"type": "string"}}})
        )
    );
}

#[test]
fn routing_as_a_string_timeout_alias_and_tool_types() {
    let config = ConfigDir::new(PYTHON_AGENTS).load();
    let agent = ready(&config, "sales-qualifier-v010");
    assert_eq!(agent.model.default.strategy, RoutingStrategy::CostOptimized);
    assert_eq!(agent.orchestration.timeout, Duration::from_secs(60), "`timeout` is an alias of `timeout_seconds`");
    assert_eq!(agent.tools[0].kind, ToolKind::Builtin, "`internal` names a built-in");
    assert_eq!(agent.tools[0].declared_type, "internal");
    let webhook = &agent.tools[1];
    assert_eq!(webhook.kind, ToolKind::Webhook);
    assert_eq!(webhook.url.as_deref(), Some("https://crm.example.com/hooks/lead"));
    assert_eq!(webhook.parameters["required"], json!(["lead"]));
    assert!(webhook.parameters["properties"]["lead"].get("required").is_none());

    let support = ready(&config, "support-agent");
    let primary = &support.model.default.candidates[0];
    assert_eq!(primary.parameters.get("temperature"), Some(&json!(0.2)), "shorthand temperature");
    assert_eq!(primary.parameters.get("max_tokens"), Some(&json!(1024)), "shorthand max_tokens");
    assert_eq!(support.memory.strategy, MemoryStrategy::Summary);
    assert_eq!(support.orchestration.pattern, Pattern::PlanAndExecute);
    assert_eq!(support.orchestration.timeout, Duration::from_secs(120), "default deadline");

    assert_eq!(ready(&config, "chef-iberia").model.default.strategy, RoutingStrategy::LatencyOptimized);
    assert_eq!(ready(&config, "whatsapp-assistant").model.default.strategy, RoutingStrategy::CapabilityMatch);
    let autolink = ready(&config, "autolink-parts");
    assert_eq!(autolink.memory.strategy, MemoryStrategy::TokenBudget);
    assert_eq!(autolink.memory.max_tokens, 2000);
}

#[test]
fn per_role_schema_resolves_roles_and_litellm_vendors() {
    let config = ConfigDir::new(PYTHON_AGENTS).load();
    let agent = ready(&config, "role-router-demo");
    assert_eq!(agent.model.default.strategy, RoutingStrategy::CostOptimized);
    assert_eq!(agent.model.default.candidates[0].kind, ProviderKind::Ollama);
    let planner = &agent.model.roles["planner"];
    assert_eq!(planner.strategy, RoutingStrategy::QualityFirst);
    let candidate = &planner.candidates[0];
    assert_eq!((candidate.kind, candidate.provider.as_str()), (ProviderKind::Anthropic, "anthropic"));
    assert_eq!(candidate.model, "claude-sonnet-4-20250514");
    assert_eq!(candidate.endpoint, "https://api.anthropic.com");
    assert_eq!(candidate.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
    let worker = &agent.model.roles["worker"];
    assert_eq!(worker.candidates[0].timeout, Duration::from_secs(30));
    assert_eq!(agent.orchestration.role_map, vec![("synthesizer".to_string(), "planner".to_string())]);
}

const BROKEN: &str = "apiVersion: astromesh/v1
kind: Agent
metadata:
  name: broken
spec:
  model:
    primary: {provider: openai, model: gpt-4o, temprature: 0.2}
    routing: fastest
  orchestration: {pattern: reactt, max_iterations: 0, timeout_seconds: -5}
  tools:
    - name: bad.name
      type: builtin
    - name: shell
      type: rag
  memory:
    conversational: {strategy: forever}
";

#[test]
fn a_broken_file_reports_every_problem_with_file_and_key() {
    let dir = ConfigDir::new(&[
        ("agents/broken.agent.yaml", BROKEN),
        ("agents/fine.agent.yaml", &crate::support::agent_yaml("fine", "http://127.0.0.1:9")),
    ]);
    let config = dir.load();
    assert!(config.agent("fine").unwrap().config().is_some(), "one broken file does not stop the others");
    let AgentState::Error(message) = &config.agent("broken").unwrap().state else { panic!("broken must not load") };
    let file = "agents/broken.agent.yaml";
    for expected in [
        format!("{file}: spec.model.routing: unknown routing strategy \"fastest\""),
        format!("{file}: spec.orchestration.pattern: unknown pattern \"reactt\" (expected one of react, plan_and_execute, parallel_fan_out, pipeline, supervisor, swarm)"),
        format!("{file}: spec.orchestration.max_iterations: must be at least 1"),
        format!("{file}: spec.orchestration.timeout_seconds: must be a positive number of seconds"),
        format!("{file}: spec.tools[0].name: \"bad.name\" is not a valid tool name"),
        format!("{file}: spec.tools[1].type: unsupported tool type \"rag\""),
        format!("{file}: spec.memory.conversational.strategy: unknown strategy \"forever\""),
    ] {
        assert!(message.contains(&expected), "missing {expected:?} in {message}");
    }
    assert_eq!(
        config.warnings,
        vec![Warning::UnknownKey { path: file.to_string(), key: "spec.model.primary.temprature".to_string() }]
    );
    assert_eq!(config.errors().len(), 1);
}

#[test]
fn yaml_syntax_errors_name_the_file_and_position() {
    let dir = ConfigDir::new(&[("agents/bad.agent.yaml", "metadata:\n  name: [unclosed\n")]);
    let config = dir.load();
    let entry = &config.agents[0];
    assert_eq!(entry.name, "bad");
    let AgentState::Error(message) = &entry.state else { panic!("must not load") };
    assert!(message.starts_with("agents/bad.agent.yaml: "), "{message}");
    assert!(message.contains("line"), "position is reported: {message}");
}

#[test]
fn provider_ref_takes_defaults_from_providers_yaml_and_the_block_overrides() {
    let providers = "apiVersion: astromesh/v1
kind: ProviderConfig
spec:
  providers:
    gateway:
      type: vllm
      endpoint: http://10.1.2.3:8000
      api_key_env: GATEWAY_KEY
      models: [qwen2.5-7b-instruct]
  routing:
    default_strategy: round_robin
    fallback_enabled: true
    circuit_breaker: {failure_threshold: 5, recovery_timeout: 30}
";
    let agent = "apiVersion: astromesh/v1
kind: Agent
metadata: {name: ref-user}
spec:
  model:
    primary: {providerRef: gateway}
    fallback: {providerRef: gateway, model: other-model, endpoint: http://10.9.9.9:8000/v1}
";
    let config = ConfigDir::new(&[("providers.yaml", providers), ("agents/ref-user.agent.yaml", agent)]).load();
    let agent = ready(&config, "ref-user");
    assert_eq!(agent.model.default.strategy, RoutingStrategy::RoundRobin, "providers.yaml default strategy");
    let [primary, fallback] = &agent.model.default.candidates[..] else { panic!("two candidates") };
    assert_eq!(primary.provider, "vllm");
    assert_eq!(primary.kind, ProviderKind::OpenAiCompat);
    assert_eq!(primary.model, "qwen2.5-7b-instruct");
    assert_eq!(primary.endpoint, "http://10.1.2.3:8000/v1", "vLLM serves the OpenAI API under /v1");
    assert_eq!(primary.api_key_env.as_deref(), Some("GATEWAY_KEY"));
    assert_eq!(fallback.model, "other-model");
    assert_eq!(fallback.endpoint, "http://10.9.9.9:8000/v1");
    assert_eq!(config.providers.failure_threshold, 5);
    assert_eq!(config.providers.recovery_timeout, Duration::from_secs(30));

    let missing = "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: lost}\nspec:\n  model:\n    primary: {providerRef: nowhere}\n";
    let config = ConfigDir::new(&[("agents/lost.agent.yaml", missing)]).load();
    let AgentState::Error(message) = &config.agents[0].state else { panic!("unknown providerRef must fail") };
    assert!(message.contains("spec.model.primary.providerRef: unknown provider \"nowhere\""), "{message}");
}

#[test]
fn runtime_yaml_settings_and_overrides() {
    let runtime = "apiVersion: astromesh/v1
kind: RuntimeConfig
metadata: {name: default}
spec:
  api: {host: 0.0.0.0, port: 9100, cors_origins: [\"https://ui.example.com\"], max_body_bytes: 2048}
  defaults:
    orchestration: {pattern: plan_and_execute, max_iterations: 4, timeout_seconds: 30}
  services: {agents: true, rag: true}
  store: {write_queue: 64}
  rag: {hnsw_threshold: 5000, max_ingest_chunks: 200}
";
    let agent = "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: plain}\nspec:\n  model:\n    primary: {provider: ollama, model: llama3}\n";
    let dir = ConfigDir::new(&[("runtime.yaml", runtime), ("agents/plain.agent.yaml", agent)]);
    let config = dir.load();
    assert_eq!((config.runtime.host.as_str(), config.runtime.port), ("0.0.0.0", 9100));
    assert_eq!(config.runtime.cors_origins, vec!["https://ui.example.com".to_string()]);
    assert_eq!(config.runtime.max_body_bytes, 2048);
    assert_eq!(config.runtime.write_queue, 64);
    assert_eq!((config.runtime.rag_hnsw_threshold, config.runtime.rag_max_ingest_chunks), (5000, 200));
    let plain = ready(&config, "plain");
    assert_eq!(plain.orchestration.pattern, Pattern::PlanAndExecute, "runtime defaults apply to agents");
    assert_eq!(plain.orchestration.max_iterations, 4);
    assert_eq!(plain.orchestration.timeout, Duration::from_secs(30));

    let overrides = Overrides {
        host: Some("127.0.0.2".into()),
        port: Some(9200),
        data_dir: Some("/tmp/x".into()),
        cors_origins: Some(vec![]),
        otlp_endpoint: None,
        ..Overrides::default()
    };
    let config = Config::load(ConfigSource::Dir(dir.path().to_path_buf()), &overrides).unwrap();
    assert_eq!((config.runtime.host.as_str(), config.runtime.port), ("127.0.0.2", 9200), "flags win over the file");
    assert!(config.runtime.cors_origins.is_empty());
    assert_eq!(config.runtime.data_dir, std::path::PathBuf::from("/tmp/x"));
}

#[test]
fn an_empty_config_dir_resolves_to_the_documented_defaults() {
    let config = ConfigDir::new(&[("runtime.yaml", "# nothing here\n")]).load();
    assert_eq!((config.runtime.host.as_str(), config.runtime.port), ("127.0.0.1", 8000));
    assert_eq!(config.runtime.max_body_bytes, 10 * 1024 * 1024);
    assert!(config.runtime.cors_origins.is_empty(), "CORS is off by default");
    assert_eq!(config.runtime.orchestration_defaults.max_iterations, 10);
    assert_eq!(config.providers.failure_threshold, 3);
    assert_eq!((config.runtime.rag_hnsw_threshold, config.runtime.rag_max_ingest_chunks), (20_000, 10_000));
    assert_eq!(config.providers.recovery_timeout, Duration::from_secs(60));
    assert_eq!(config.runtime.trace_max_count, 10_000);
    assert_eq!(config.runtime.trace_max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(config.runtime.otlp_endpoint, None, "no export unless asked");
    assert!(config.agents.is_empty());
    assert!(config.warnings.is_empty());
}

#[test]
fn runtime_yaml_errors_are_fatal_and_listed_together() {
    let runtime = "kind: RuntimeConfig\nspec:\n  api: {max_body_bytes: 0}\n  rag: {hnsw_threshold: 0}\n  defaults:\n    orchestration: {pattern: nope}\n  bogus: 1\n";
    let dir = ConfigDir::new(&[("runtime.yaml", runtime)]);
    let error =
        Config::load(ConfigSource::Dir(dir.path().to_path_buf()), &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("runtime.yaml: spec.api.max_body_bytes: must be at least 1"), "{error}");
    assert!(error.contains("runtime.yaml: spec.rag.hnsw_threshold: must be at least 1"), "{error}");
    assert!(error.contains("runtime.yaml: spec.defaults.orchestration.pattern: unknown pattern \"nope\""), "{error}");
}

#[test]
fn spec_observability_reaches_the_runtime_config() {
    let load = |runtime: &str, overrides: &Overrides| {
        let dir = ConfigDir::new(&[("runtime.yaml", runtime)]);
        Config::load(ConfigSource::Dir(dir.path().to_path_buf()), overrides)
    };
    let runtime = "kind: RuntimeConfig\nspec:\n  observability:\n    traces: {max_traces: 50, max_age_days: 0.5}\n    otlp: {endpoint: \"http://collector:4318\"}\n    collector: internal\n";
    let config = load(runtime, &Overrides::default()).unwrap();
    assert_eq!(config.runtime.trace_max_count, 50);
    assert_eq!(config.runtime.trace_max_age, Duration::from_secs(43_200));
    assert_eq!(config.runtime.otlp_endpoint.as_deref(), Some("http://collector:4318"));
    let unknown: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    assert!(unknown.iter().any(|warning| warning.contains("spec.observability.collector")), "{unknown:?}");

    let from_env = Overrides { otlp_endpoint: Some("http://env:4318".into()), ..Overrides::default() };
    let config = load(runtime, &from_env).unwrap();
    assert_eq!(config.runtime.otlp_endpoint.as_deref(), Some("http://env:4318"), "the environment wins");
    let disabled = "spec:\n  observability:\n    otlp: {enabled: false, endpoint: \"http://collector:4318\"}\n";
    assert_eq!(load(disabled, &Overrides::default()).unwrap().runtime.otlp_endpoint, None);
    let enabled = "spec:\n  observability:\n    otlp: {enabled: true}\n";
    let config = load(enabled, &Overrides::default()).unwrap();
    assert_eq!(config.runtime.otlp_endpoint.as_deref(), Some("http://localhost:4318"));

    let bad = "spec:\n  observability:\n    traces: {max_traces: 0, max_age_days: -1}\n";
    let error = load(bad, &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("spec.observability.traces.max_traces: must be at least 1"), "{error}");
    assert!(error.contains("spec.observability.traces.max_age_days"), "{error}");
}

#[test]
fn agent_tools_must_name_existing_agents_without_cycles() {
    let calls = |name: &str, target: &str| {
        format!("apiVersion: astromesh/v1\nkind: Agent\nmetadata: {{name: {name}}}\nspec:\n  model:\n    primary: {{provider: ollama, model: llama3}}\n  tools:\n    - {{name: ask_{target}, type: agent, agent: {target}}}\n")
    };
    let (a, b, c) = (calls("alpha", "beta"), calls("beta", "alpha"), calls("gamma", "nobody"));
    let config =
        ConfigDir::new(&[("agents/a.agent.yaml", &a), ("agents/b.agent.yaml", &b), ("agents/c.agent.yaml", &c)]).load();
    for name in ["alpha", "beta"] {
        let AgentState::Error(message) = &config.agent(name).unwrap().state else { panic!("{name} is in a cycle") };
        assert!(message.contains("cycle"), "{message}");
    }
    let AgentState::Error(message) = &config.agent("gamma").unwrap().state else { panic!("gamma calls nobody") };
    assert!(message.contains("unknown agent \"nobody\""), "{message}");
}

#[test]
fn duplicate_agent_names_keep_the_first_and_warn() {
    let one = crate::support::agent_yaml("twin", "http://127.0.0.1:9");
    let config = ConfigDir::new(&[("agents/a.agent.yaml", &one), ("agents/b.agent.yaml", &one)]).load();
    assert_eq!(config.agents.len(), 1);
    assert_eq!(config.agents[0].source, "agents/a.agent.yaml");
    assert!(config.warnings.iter().any(|warning| warning.to_string().contains("already defined")));
}

#[test]
fn discovery_order() {
    let system = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let explicit = std::path::Path::new("/explicit");
    assert_eq!(discover(Some(explicit), system.path(), local.path()), ConfigSource::Dir(explicit.into()));
    // The system dir counts only when it holds runtime.yaml.
    assert_eq!(discover(None, system.path(), local.path()), ConfigSource::Dir(local.path().into()));
    std::fs::write(system.path().join("runtime.yaml"), "").unwrap();
    assert_eq!(discover(None, system.path(), local.path()), ConfigSource::Dir(system.path().into()));
    let missing = local.path().join("missing");
    assert_eq!(discover(None, &missing, &missing), ConfigSource::Embedded);
}

#[test]
fn embedded_default_agents_load() {
    let config = Config::load(ConfigSource::Embedded, &Overrides::default()).unwrap();
    let assistant = ready(&config, "assistant");
    assert_eq!(assistant.orchestration.pattern, Pattern::React);
    let kinds: Vec<ProviderKind> = assistant.model.default.candidates.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![ProviderKind::OpenAiCompat, ProviderKind::Anthropic, ProviderKind::Ollama]);
    assert_eq!(ready(&config, "researcher").orchestration.pattern, Pattern::PlanAndExecute);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn secrets_never_print() {
    let agent = "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: keyed}\nspec:\n  model:\n    primary: {provider: openai, model: gpt-4o, api_key: sk-very-secret}\n";
    let config = ConfigDir::new(&[("agents/k.agent.yaml", agent)]).load();
    let agent = ready(&config, "keyed");
    assert_eq!(agent.model.default.candidates[0].api_key.as_ref().unwrap().expose(), "sk-very-secret");
    let printed = format!("{config:?}");
    assert!(!printed.contains("sk-very-secret"));
    assert!(printed.contains("***"));
}

#[test]
fn absurd_durations_are_errors_not_panics() {
    let yaml = "apiVersion: astromesh/v1
kind: Agent
metadata: {name: odd}
spec:
  model:
    primary: {provider: ollama, model: llama3, timeout: .inf, connect_timeout: -1}
    routing: {strategy: quality_first, health_check_interval: .nan}
  tools:
    - {name: t, type: client, timeout_seconds: 0, rate_limit: {max_calls: 1, window_seconds: -.inf}}
  memory:
    conversational: {ttl: .inf}
";
    let config = ConfigDir::new(&[("agents/odd.agent.yaml", yaml)]).load();
    let AgentState::Error(message) = &config.agents[0].state else { panic!("must not load") };
    for key in [
        "spec.model.primary.timeout",
        "spec.model.primary.connect_timeout",
        "spec.model.routing.health_check_interval",
        "spec.tools[0].timeout_seconds",
        "spec.tools[0].rate_limit.window_seconds",
        "spec.memory.conversational.ttl",
    ] {
        assert!(message.contains(&format!("{key}: must be a positive number of seconds")), "{key}: {message}");
    }
}

/// The config that packages install into /etc/astromesh loads cleanly with the shipped agents.
#[test]
fn packaged_config_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let runtime = std::fs::read_to_string(root.join("packaging/config/runtime.yaml")).unwrap();
    let providers = std::fs::read_to_string(root.join("packaging/config/providers.yaml")).unwrap();
    let assistant = std::fs::read_to_string(root.join("agents/assistant.agent.yaml")).unwrap();
    let researcher = std::fs::read_to_string(root.join("agents/researcher.agent.yaml")).unwrap();
    let config = ConfigDir::new(&[
        ("runtime.yaml", &runtime),
        ("providers.yaml", &providers),
        ("agents/assistant.agent.yaml", &assistant),
        ("agents/researcher.agent.yaml", &researcher),
    ])
    .load();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(config.errors().is_empty(), "{:?}", config.errors());
    assert_eq!(config.providers.names().collect::<Vec<_>>(), vec!["openai", "anthropic", "ollama"]);
}
