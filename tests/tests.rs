//! The one integration-test binary: it links once and shares `support`.

#![allow(clippy::unwrap_used)]

mod support;

mod cli;
mod config_files;
mod crash;
mod http_api;
mod knowledge;
mod mcp_server;
mod mesh;
mod observability;
mod openai_compat;
mod patterns;
mod providers;
mod rag;
mod runs;
mod tidy;
mod tools;
mod ui;
mod websocket;
