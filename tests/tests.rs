//! The one integration-test binary: it links once and shares `support`.

#![allow(clippy::unwrap_used)]

mod support;

mod cli;
mod cli_client;
mod config_files;
mod crash;
mod embedders;
mod http_api;
mod knowledge;
mod local_model;
mod mcp_server;
mod mesh;
mod observability;
mod openai_compat;
mod packaging;
mod patterns;
mod providers;
mod rag;
mod runs;
mod ship;
mod tidy;
mod tools;
mod ui;
mod websocket;
