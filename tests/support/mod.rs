//! Shared test helpers: the scripted LLM server.

// Each test binary module uses a different part of these helpers.
#[allow(dead_code)]
pub mod llm;
