//! The `astromesh` command line: parses, then calls the library. Invoked as `astromeshd` it
//! behaves as `astromesh serve`, the name users of the Python version know.
//!
//! This is the only place that reads `ASTROMESH_*` variables (through clap's `env`), prints to
//! stdout, and chooses exit codes: 0 ok, 1 error, 2 invalid configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use astromesh::config::{discover, AgentState, Config, ConfigSource, Overrides};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "astromesh",
    version,
    about = "Astromesh: an AI-agent runtime in one binary",
    long_about = "Astromesh runs AI agents declared in YAML: a tool-using reasoning loop against LLM \
providers, with memory, retrieval, traces and metrics, served over a /v1 HTTP + WebSocket API.\n\n\
Start here:  astromesh serve            (listens on 127.0.0.1:8000)\n\
Check files: astromesh validate ./config"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the HTTP + WebSocket API).
    Serve(ServeArgs),
    /// Check a config dir (runtime.yaml, providers*.yaml, agents/*.agent.yaml); exit 2 on problems.
    Validate {
        /// The config dir to check (default: the same discovery as `serve`).
        dir: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List the agents of a config dir, without a daemon.
    Agents {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// Config dir. Default: /etc/astromesh (if it holds runtime.yaml), else ./config, else the
    /// defaults built into the binary.
    #[arg(long = "config", env = "ASTROMESH_CONFIG_DIR", value_name = "DIR", global = true)]
    config_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1, or spec.api.host in runtime.yaml].
    #[arg(long, env = "ASTROMESH_HOST")]
    host: Option<String>,
    /// Port to listen on [default: 8000, or spec.api.port in runtime.yaml].
    #[arg(long, env = "ASTROMESH_PORT")]
    port: Option<u16>,
    /// Where the database lives.
    #[arg(long, env = "ASTROMESH_DATA_DIR", value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, env = "ASTROMESH_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Allowed CORS origins, comma-separated ("*" for any). CORS is off when unset.
    #[arg(long, env = "ASTROMESH_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Option<Vec<String>>,
    /// Log format: "text" for people, "json" for log collectors (one object per line).
    #[arg(long, env = "ASTROMESH_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Export finished traces over OTLP/HTTP (protobuf) to this base URL.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Boxed: the mesh flags would make `Command::Serve` dwarf the other variants.
    #[command(flatten)]
    mesh: Box<MeshArgs>,
}

/// Mesh mode (`spec.mesh` in runtime.yaml); each flag also reads its `ASTROMESH_*` variable.
/// Durations are in seconds.
#[derive(Args, Clone)]
#[command(next_help_heading = "Mesh")]
struct MeshArgs {
    /// Join a mesh of nodes [default: false, or spec.mesh.enabled].
    #[arg(long = "mesh", env = "ASTROMESH_MESH_ENABLED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    mesh_enabled: Option<bool>,
    /// This node's id in the mesh [default: the hostname].
    #[arg(long, env = "ASTROMESH_NODE_NAME")]
    node_name: Option<String>,
    /// host:port peers reach this node at [default: the listen address; never 0.0.0.0].
    #[arg(long, env = "ASTROMESH_ADVERTISE_ADDRESS", value_name = "HOST:PORT")]
    advertise_address: Option<String>,
    /// Nodes to join through, comma-separated (host:port or http://host:port).
    #[arg(long, env = "ASTROMESH_SEEDS", value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Seconds between gossip rounds [default: 2].
    #[arg(long, env = "ASTROMESH_GOSSIP_INTERVAL", value_name = "SECS")]
    gossip_interval: Option<f64>,
    /// Peers per gossip round [default: 3].
    #[arg(long, env = "ASTROMESH_GOSSIP_FANOUT", value_name = "N")]
    gossip_fanout: Option<usize>,
    /// Seconds between heartbeats [default: 1].
    #[arg(long, env = "ASTROMESH_HEARTBEAT_INTERVAL", value_name = "SECS")]
    heartbeat_interval: Option<f64>,
    /// Seconds without a rising heartbeat before a peer is suspect [default: 4].
    #[arg(long, env = "ASTROMESH_FAILURE_TIMEOUT", value_name = "SECS")]
    failure_timeout: Option<f64>,
    /// Seconds without a rising heartbeat before a peer is dead [default: 10].
    #[arg(long, env = "ASTROMESH_DEAD_TIMEOUT", value_name = "SECS")]
    dead_timeout: Option<f64>,
    /// Seconds a dead peer is kept before it is forgotten [default: 60].
    #[arg(long, env = "ASTROMESH_CLEANUP_TIMEOUT", value_name = "SECS")]
    cleanup_timeout: Option<f64>,
    /// Shared secret every mesh request must carry (bearer token); unset: none required.
    #[arg(long, env = "ASTROMESH_MESH_SECRET", hide_env_values = true)]
    mesh_secret: Option<String>,
}

impl MeshArgs {
    fn into_overrides(self) -> astromesh::config::mesh::MeshOverrides {
        astromesh::config::mesh::MeshOverrides {
            enabled: self.mesh_enabled,
            node_name: self.node_name,
            advertise_address: self.advertise_address,
            seeds: self.seeds,
            gossip_interval: self.gossip_interval,
            gossip_fanout: self.gossip_fanout,
            heartbeat_interval: self.heartbeat_interval,
            failure_timeout: self.failure_timeout,
            dead_timeout: self.dead_timeout,
            cleanup_timeout: self.cleanup_timeout,
            secret: self.mesh_secret.map(astromesh::config::Secret::new),
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .and_then(|name| name.to_str())
        .unwrap_or_default()
        .to_string();
    if invoked_as == "astromeshd" {
        let is_top_level_flag = args.get(1).is_some_and(|arg| arg == "--version" || arg == "-V");
        if !is_top_level_flag {
            args.insert(1, "serve".into());
        }
    }
    let cli = Cli::parse_from(args);
    let outcome = match cli.command {
        Command::Serve(serve_args) => serve(serve_args),
        Command::Validate { dir, config } => validate(dir.or(config.config_dir)),
        Command::Agents { config, json } => list_agents(config.config_dir, json),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            if error.chain().any(|cause| {
                cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn config_source(explicit: Option<PathBuf>) -> ConfigSource {
    discover(explicit.as_deref(), Path::new("/etc/astromesh"), Path::new("./config"))
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    use std::io::IsTerminal;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        // A closed stderr (a pipe whose reader went away) must not panic the logging thread.
        .log_internal_errors(false);
    if args.log_format == "json" {
        subscriber.json().with_current_span(true).init();
    } else {
        subscriber.with_ansi(std::io::stderr().is_terminal()).init();
    }
    let source = config_source(args.config.config_dir.clone());
    let overrides = Overrides {
        host: args.host,
        port: args.port,
        data_dir: Some(args.data_dir),
        cors_origins: args.cors_origins,
        otlp_endpoint: args.otlp_endpoint,
        mesh: args.mesh.into_overrides(),
    };
    let config = match Config::load(source.clone(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid configuration in {source}:\n{error}");
            return Ok(ExitCode::from(2));
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    for entry in &config.agents {
        if let AgentState::Error(message) = &entry.state {
            tracing::error!(agent = %entry.name, "agent not loaded: {message}");
        }
    }
    tracing::info!(config = %source, agents = config.agents.len(), "configuration loaded");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("astromesh-rt").build()?;
    runtime.block_on(async move {
        let address = format!("{}:{}", config.runtime.host, config.runtime.port);
        let app = astromesh::App::build(config)?;
        let listener =
            tokio::net::TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        app.serve(listener, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!("cannot listen for SIGTERM: {error}");
                let _ = interrupt.await; // An error here means no signal can arrive either.
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await; // An error here means no signal can arrive either.
    }
    shutdown.cancel();
    tracing::info!("shutdown requested");
}

fn validate(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let source = config_source(dir);
    let config = match Config::load(source.clone(), &Overrides::default()) {
        Ok(config) => config,
        Err(error) => {
            println!("{error}");
            println!("invalid: {source}");
            return Ok(ExitCode::from(2));
        }
    };
    for warning in &config.warnings {
        println!("warning: {warning}");
    }
    let errors = config.errors();
    for error in &errors {
        println!("error: {error}");
    }
    let ready = config.agents.len() - errors.len();
    if errors.is_empty() {
        println!("ok: {source}: {ready} agent(s), {} warning(s)", config.warnings.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("invalid: {source}: {} of {} agent(s) have errors", errors.len(), config.agents.len());
        Ok(ExitCode::from(2))
    }
}

fn list_agents(dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let source = config_source(dir);
    let config = match Config::load(source.clone(), &Overrides::default()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid configuration in {source}:\n{error}");
            return Ok(ExitCode::from(2));
        }
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<serde_json::Value> = config
            .agents
            .iter()
            .map(|entry| match &entry.state {
                AgentState::Ready(agent) => serde_json::json!({
                    "name": entry.name, "description": agent.description, "status": "ready",
                    "model": agent.model.primary().map(|c| format!("{}/{}", c.provider, c.model)),
                    "orchestration": agent.orchestration.pattern.as_str(),
                }),
                AgentState::Error(message) => {
                    serde_json::json!({"name": entry.name, "status": "error", "error": message})
                }
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!({ "agents": rows }))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<24} {:<8} {:<18} {:<40} DESCRIPTION", "NAME", "STATUS", "PATTERN", "MODEL")?;
    for entry in &config.agents {
        match &entry.state {
            AgentState::Ready(agent) => {
                let model = agent.model.primary().map(|c| format!("{}/{}", c.provider, c.model)).unwrap_or_default();
                writeln!(
                    out,
                    "{:<24} {:<8} {:<18} {:<40} {}",
                    entry.name,
                    "ready",
                    agent.orchestration.pattern.as_str(),
                    model,
                    agent.description
                )?;
            }
            AgentState::Error(message) => writeln!(out, "{:<24} {:<8} {message}", entry.name, "error")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}
