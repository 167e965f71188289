//! The CLI client: commands that talk to a running daemon over the `/v1` API.
//!
//! `main.rs` parses the arguments and calls one function here per command; every function
//! returns `Result<(), CliError>` and `main.rs` turns the error's `Failure` into the exit code
//! (it stays the one place choosing them). Split by responsibility: `client` (blocking HTTP
//! with ureq, the server's `detail` into `CliError`), `stream` (the WebSocket a run streams
//! over), `output` (tables and JSON on stdout), then one file per command group.
//! Not here: anything that reads a config dir (the offline `validate` and `agents --config`
//! stay in `main.rs`, over the library), and no `println!`: output goes through a locked
//! stdout so a closed pipe is an `io::Error` (`BrokenPipe`), not a panic.

pub(crate) mod agents;
pub(crate) mod client;
pub(crate) mod output;
pub(crate) mod rag;
pub(crate) mod stream;
pub(crate) mod system;
pub(crate) mod tools;
pub(crate) mod traces;

use std::path::PathBuf;

use client::Client;

/// What a client command needs: the daemon and how to print.
pub(crate) struct Context {
    pub(crate) client: Client,
    /// Machine output: one JSON document on stdout instead of tables.
    pub(crate) json: bool,
}

/// Why a client command failed; `failure()` says which exit code that is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("invalid --url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach the daemon at {url}: {reason} (is `astromesh serve` running? --url or ASTROMESH_URL names another)")]
    Unreachable { url: String, reason: String },
    /// The daemon answered 4xx/5xx; `detail` is its `{"detail"}` message.
    #[error("{detail}")]
    Api { status: u16, detail: String },
    /// A 404 about an agent (exit code 3).
    #[error("{0}")]
    AgentNotFound(String),
    /// Any failure of a mesh command (exit code 4).
    #[error("{0}")]
    Mesh(Box<CliError>),
    #[error("unexpected answer from {path}: {reason}")]
    Protocol { path: String, reason: String },
    /// The WebSocket failed or closed before the run finished.
    #[error("stream: {0}")]
    Stream(String),
    /// The daemon reported that the run failed (an `error` frame).
    #[error("{0}")]
    RunFailed(String),
    /// `doctor` found failing checks (already printed).
    #[error("{0}")]
    Unhealthy(String),
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("{0}")]
    Output(#[from] std::io::Error),
}

/// The kinds of failure the exit codes distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Error,
    InvalidConfig,
    AgentNotFound,
    Mesh,
}

impl CliError {
    pub(crate) fn failure(&self) -> Failure {
        match self {
            CliError::InvalidUrl { .. } => Failure::InvalidConfig,
            CliError::AgentNotFound(_) => Failure::AgentNotFound,
            CliError::Mesh(_) => Failure::Mesh,
            _ => Failure::Error,
        }
    }

    /// True when stdout was closed under us (`astromesh traces list | head`): exit quietly.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// In a command about one agent, a 404 means that agent does not exist.
    pub(crate) fn about_agent(self) -> CliError {
        match self {
            CliError::Api { status: 404, detail } => CliError::AgentNotFound(detail),
            other => other,
        }
    }
}
