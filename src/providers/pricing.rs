//! List prices per 1K tokens (USD, input and output) for the models the cost router ranks.
//!
//! A table, exempt from the file-size rule of thumb. Names match by the longest prefix, so
//! dated snapshots (`gpt-4o-2024-08-06`) price as their family and `gpt-4o-mini` is not mistaken
//! for `gpt-4o`. Self-hosted providers (Ollama, vLLM, llama.cpp, TGI, local) cost 0. Unknown
//! models have no price: the router ranks them after every priced one, rather than treating
//! them as free as the reference did. Prices as published by the vendors in 2025.

use crate::config::model::{ModelCandidate, ProviderKind};

/// (model name prefix, input per 1K tokens, output per 1K tokens).
const PRICES: &[(&str, f64, f64)] = &[
    // OpenAI
    ("gpt-5-nano", 0.000_05, 0.000_4),
    ("gpt-5-mini", 0.000_25, 0.002),
    ("gpt-5", 0.001_25, 0.01),
    ("gpt-4.1-nano", 0.000_1, 0.000_4),
    ("gpt-4.1-mini", 0.000_4, 0.001_6),
    ("gpt-4.1", 0.002, 0.008),
    ("gpt-4o-mini", 0.000_15, 0.000_6),
    ("gpt-4o", 0.002_5, 0.01),
    ("gpt-4-turbo", 0.01, 0.03),
    ("gpt-4", 0.03, 0.06),
    ("gpt-3.5-turbo", 0.000_5, 0.001_5),
    ("o1-mini", 0.001_1, 0.004_4),
    ("o1", 0.015, 0.06),
    ("o3-mini", 0.001_1, 0.004_4),
    ("o3", 0.002, 0.008),
    ("o4-mini", 0.001_1, 0.004_4),
    // Anthropic
    ("claude-opus-4-5", 0.005, 0.025),
    ("claude-opus-4", 0.015, 0.075),
    ("claude-sonnet-4", 0.003, 0.015),
    ("claude-haiku-4", 0.001, 0.005),
    ("claude-3-7-sonnet", 0.003, 0.015),
    ("claude-3-5-sonnet", 0.003, 0.015),
    ("claude-3-5-haiku", 0.000_8, 0.004),
    ("claude-3-opus", 0.015, 0.075),
    ("claude-3-haiku", 0.000_25, 0.001_25),
    // Moonshot
    ("kimi-k2", 0.000_6, 0.002_5),
];

/// Providers that run on the operator's own hardware.
const SELF_HOSTED: &[&str] = &["ollama", "vllm", "llamacpp", "hf_tgi", "local"];

/// (input, output) USD per 1K tokens, or `None` when the model is unknown.
pub fn price_per_1k(candidate: &ModelCandidate) -> Option<(f64, f64)> {
    if matches!(candidate.kind, ProviderKind::Ollama | ProviderKind::Local)
        || SELF_HOSTED.contains(&candidate.provider.as_str())
    {
        return Some((0.0, 0.0));
    }
    let model = candidate.model.to_ascii_lowercase();
    // Azure deployments and proxies often prefix the vendor: "openai/gpt-4o".
    let model = model.rsplit('/').next().unwrap_or(&model);
    PRICES
        .iter()
        .filter(|(prefix, _, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(_, input, output)| (*input, *output))
}

/// The cost of a call with the given token counts, when the price is known.
pub fn estimated_cost(candidate: &ModelCandidate, input_tokens: u64, output_tokens: u64) -> Option<f64> {
    price_per_1k(candidate)
        .map(|(input, output)| (input * input_tokens as f64 + output * output_tokens as f64) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn candidate(provider: &str, kind: ProviderKind, model: &str) -> ModelCandidate {
        ModelCandidate {
            label: "x".into(),
            kind,
            provider: provider.into(),
            model: model.into(),
            endpoint: "http://h".into(),
            api_key: None,
            api_key_env: None,
            api_key_env_explicit: false,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            parameters: Default::default(),
            headers: Vec::new(),
            model_path: None,
            queue_size: 8,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let openai = |model| price_per_1k(&candidate("openai", ProviderKind::OpenAiCompat, model));
        assert_eq!(openai("gpt-4o-mini-2024-07-18"), Some((0.000_15, 0.000_6)));
        assert_eq!(openai("gpt-4o-2024-08-06"), Some((0.002_5, 0.01)));
        assert_eq!(openai("gpt-4-turbo-preview"), Some((0.01, 0.03)));
        assert_eq!(openai("openai/gpt-4.1-mini"), Some((0.000_4, 0.001_6)));
        assert_eq!(openai("my-finetune"), None);
    }

    #[test]
    fn self_hosted_is_free_and_cost_scales_with_tokens() {
        assert_eq!(price_per_1k(&candidate("ollama", ProviderKind::Ollama, "llama3")), Some((0.0, 0.0)));
        assert_eq!(price_per_1k(&candidate("vllm", ProviderKind::OpenAiCompat, "mistral")), Some((0.0, 0.0)));
        let sonnet = candidate("anthropic", ProviderKind::Anthropic, "claude-sonnet-4-20250514");
        let cost = estimated_cost(&sonnet, 2000, 1000).unwrap();
        assert!((cost - 0.021).abs() < 1e-12);
    }
}
