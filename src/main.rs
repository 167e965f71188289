//! The `astromesh` command line: parses, then calls the library. Invoked as `astromeshd` it
//! behaves as `astromesh serve`, the name users of the Python version know.
//!
//! The client commands (status, run, chat, traces, ...) live in `cli/`, binary-private; this
//! file only parses and dispatches to them. It is the only place that reads `ASTROMESH_*`
//! variables (through clap's `env`) and chooses exit codes: 0 ok, 1 error, 2 invalid
//! configuration, 3 agent not found, 4 mesh error.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use astromesh::config::{discover, AgentState, Config, ConfigSource, Overrides};
use clap::{Args, CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "astromesh",
    version,
    about = "Astromesh: an AI-agent runtime in one binary",
    long_about = "Astromesh runs AI agents declared in YAML: a tool-using reasoning loop against LLM \
providers, with memory, retrieval, traces and metrics, served over a /v1 HTTP + WebSocket API.\n\n\
Start here:  astromesh serve            (listens on 127.0.0.1:8000)\n\
Check files: astromesh validate ./config\n\
Talk to it:  astromesh status; astromesh run assistant \"hello\"\n\n\
Exit codes: 0 ok, 1 error, 2 invalid configuration, 3 agent not found, 4 mesh error."
)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options of the commands that talk to a running daemon.
#[derive(Args)]
struct ClientArgs {
    /// The daemon the client commands talk to.
    #[arg(long, env = "ASTROMESH_URL", default_value = "http://127.0.0.1:8000", global = true, value_name = "URL")]
    url: String,
    /// API key, sent by the client commands as `Authorization: Bearer <KEY>`.
    #[arg(long, env = "ASTROMESH_API_KEY", global = true, hide_env_values = true, value_name = "KEY")]
    api_key: Option<String>,
    /// Machine output: JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions { shell: clap_complete::Shell },
    /// Local GGUF models.
    #[command(subcommand)]
    Model(ModelCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Re-quantise the Q5_0/Q5_1 tensors of a GGUF file to Q8_0 (candle has no fast kernel for
    /// them), so the daemon does not have to at every load.
    Convert { input: PathBuf, output: PathBuf },
}

/// Commands that talk to a running daemon over `/v1` (`--url`, `--api-key`, `--json`).
#[derive(Subcommand)]
enum ClientCommand {
    /// Show the daemon's version, uptime, agents and provider health.
    Status,
    /// Run the daemon's health checks; exit 1 when one is failing.
    Doctor,
    /// List or show agents. They come from the daemon; with --config DIR they are read from
    /// that config dir instead, without a daemon. With no subcommand: list.
    Agents {
        /// Read the agents from this config dir (offline) instead of asking the daemon.
        #[arg(long = "config", value_name = "DIR", global = true)]
        config_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<AgentsCommand>,
    },
    /// Ask an agent once, streaming the answer to stdout; the session id goes to stderr.
    Run {
        agent: String,
        query: String,
        /// Continue this session (its history is the agent's memory).
        #[arg(long, value_name = "ID")]
        session: Option<String>,
    },
    /// Chat with an agent on stdin, one session across turns; /exit or end of input stops.
    Chat {
        agent: String,
        /// Continue this session instead of starting a new one.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
    },
    /// Inspect recorded traces.
    #[command(subcommand)]
    Traces(TracesCommand),
    /// Show the in-memory counters and histograms.
    Metrics,
    /// List the tools agents use, or run one directly.
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// Ingest files into a RAG collection, or query one.
    #[command(subcommand)]
    Rag(RagCommand),
    /// Inspect the mesh; any failure exits 4.
    #[command(subcommand)]
    Mesh(MeshCommand),
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// List the agents (name, status, pattern, model).
    List,
    /// Show one agent; exit 3 when there is no such agent.
    Show { name: String },
}

#[derive(Subcommand)]
enum TracesCommand {
    /// List recent traces, newest first.
    List {
        /// Only this agent's traces.
        #[arg(long)]
        agent: Option<String>,
        /// How many (1-100; the daemon's default is 20).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show one trace as a tree of spans.
    Show { trace_id: String },
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// List the tools the loaded agents use.
    List,
    /// Run a tool directly (built-in or MCP), outside any agent.
    Exec {
        name: String,
        /// The tool's arguments, a JSON object.
        #[arg(long = "args", value_name = "JSON", default_value = "{}", value_parser = cli::tools::parse_arguments)]
        arguments: serde_json::Value,
    },
}

#[derive(Subcommand)]
enum RagCommand {
    /// Ingest text or markdown files, one document per file (filename in its metadata).
    Ingest {
        #[arg(long)]
        collection: String,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Characters per chunk [daemon default: 512].
        #[arg(long)]
        chunk_size: Option<usize>,
        /// Characters shared by neighbouring chunks [daemon default: 50].
        #[arg(long)]
        chunk_overlap: Option<usize>,
    },
    /// Find the chunks of a collection closest to a question.
    Query {
        #[arg(long)]
        collection: String,
        question: String,
        /// How many results (1-100) [daemon default: 5].
        #[arg(long, value_name = "N")]
        top_k: Option<u32>,
    },
}

#[derive(Subcommand)]
enum MeshCommand {
    /// Show the nodes this node knows, and the leader.
    Status,
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
    /// API keys, comma-separated; replaces spec.api.auth.api_keys. With keys, every endpoint
    /// but /v1/health and the UI's files needs one (`Authorization: Bearer KEY` or `X-API-Key`).
    #[arg(long = "api-keys", env = "ASTROMESH_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    api_keys: Option<Vec<String>>,
    /// Listen on a non-loopback address even with no API key and no mesh secret.
    #[arg(long)]
    allow_unauthenticated: bool,
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
        Command::Completions { shell } => completions(shell),
        Command::Model(ModelCommand::Convert { input, output }) => convert_model(&input, &output),
        Command::Client(ClientCommand::Agents { config_dir: Some(dir), command }) => {
            let only = match command {
                Some(AgentsCommand::Show { name }) => Some(name),
                Some(AgentsCommand::List) | None => None,
            };
            list_agents(Some(dir), cli.client.json, only.as_deref())
        }
        Command::Client(command) => Ok(run_client(&cli.client, command)),
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

/// Runs a client command and maps its failure to the exit code.
fn run_client(args: &ClientArgs, command: ClientCommand) -> ExitCode {
    let result = cli::client::Client::new(&args.url, args.api_key.clone())
        .and_then(|client| dispatch(&cli::Context { client, json: args.json }, command));
    let Err(error) = result else { return ExitCode::SUCCESS };
    if error.is_broken_pipe() {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {error}");
    ExitCode::from(match error.failure() {
        cli::Failure::Error => 1,
        cli::Failure::InvalidConfig => 2,
        cli::Failure::AgentNotFound => 3,
        cli::Failure::Mesh => 4,
    })
}

fn dispatch(context: &cli::Context, command: ClientCommand) -> Result<(), cli::CliError> {
    match command {
        ClientCommand::Status => cli::system::status(context),
        ClientCommand::Doctor => cli::system::doctor(context),
        ClientCommand::Metrics => cli::system::metrics(context),
        ClientCommand::Mesh(MeshCommand::Status) => cli::system::mesh_status(context),
        ClientCommand::Agents { command: None | Some(AgentsCommand::List), .. } => cli::agents::list(context),
        ClientCommand::Agents { command: Some(AgentsCommand::Show { name }), .. } => cli::agents::show(context, &name),
        ClientCommand::Run { agent, query, session } => cli::agents::run(context, &agent, &query, session.as_deref()),
        ClientCommand::Chat { agent, session } => cli::agents::chat(context, &agent, session),
        ClientCommand::Traces(TracesCommand::List { agent, limit }) => {
            cli::traces::list(context, agent.as_deref(), limit)
        }
        ClientCommand::Traces(TracesCommand::Show { trace_id }) => cli::traces::show(context, &trace_id),
        ClientCommand::Tools(ToolsCommand::List) => cli::tools::list(context),
        ClientCommand::Tools(ToolsCommand::Exec { name, arguments }) => cli::tools::exec(context, &name, &arguments),
        ClientCommand::Rag(RagCommand::Ingest { collection, files, chunk_size, chunk_overlap }) => {
            cli::rag::ingest(context, &collection, &files, &cli::rag::Chunking { chunk_size, chunk_overlap })
        }
        ClientCommand::Rag(RagCommand::Query { collection, question, top_k }) => {
            cli::rag::query(context, &collection, &question, top_k)
        }
    }
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "astromesh", &mut out);
    use std::io::Write;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn convert_model(input: &Path, output: &Path) -> anyhow::Result<ExitCode> {
    let converted = astromesh::providers::local::convert(input, output)
        .with_context(|| format!("cannot convert {}", input.display()))?;
    println!("wrote {} ({converted} tensor(s) re-quantised to Q8_0)", output.display());
    Ok(ExitCode::SUCCESS)
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
        api_keys: args.api_keys,
        mesh: args.mesh.into_overrides(),
    };
    let config = match Config::load(source.clone(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid configuration in {source}:\n{error}");
            return Ok(ExitCode::from(2));
        }
    };
    tune_candle_threads(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    for entry in &config.agents {
        if let AgentState::Error(message) = &entry.state {
            tracing::error!(agent = %entry.name, "agent not loaded: {message}");
        }
    }
    tracing::info!(config = %source, agents = config.agents.len(), "configuration loaded");
    let has_mesh_secret = config.runtime.mesh.secret.as_ref().is_some_and(|secret| !secret.expose().is_empty());
    let exposure = astromesh::api::auth::exposure_problem(
        &config.runtime.host,
        !config.runtime.api_keys.is_empty(),
        has_mesh_secret,
    );
    match exposure {
        Some(why) if !args.allow_unauthenticated => {
            eprintln!("error: {why}");
            return Ok(ExitCode::from(2));
        }
        Some(_) => {
            tracing::warn!(host = %config.runtime.host, "serving without authentication on a non-loopback address (--allow-unauthenticated)")
        }
        None => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("astromesh-rt").build()?;
    runtime.block_on(async move {
        let address = format!("{}:{}", config.runtime.host, config.runtime.port);
        let app = astromesh::App::build(config)?;
        let listener =
            tokio::net::TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        #[cfg(unix)]
        tokio::spawn(reload_on_hangup(app.reloader(), shutdown.clone()));
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

/// SIGHUP (systemd's `ExecReload`) re-reads the agent files; errors are logged by the reload.
#[cfg(unix)]
async fn reload_on_hangup(reloader: astromesh::Reloader, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!("cannot listen for SIGHUP, reload only through the API: {error}");
            return;
        }
    };
    loop {
        tokio::select! {
            received = hangups.recv() => {
                if received.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: reloading agents");
                if let Err(error) = reloader.reload().await {
                    tracing::error!("reload failed, the agents loaded before are unchanged: {error}");
                }
            }
            () = shutdown.cancelled() => return,
        }
    }
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

/// The offline listing of a config dir's agents; with `only`, that one agent (exit 3 if absent).
fn list_agents(dir: Option<PathBuf>, json: bool, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let source = config_source(dir);
    let mut config = match Config::load(source.clone(), &Overrides::default()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid configuration in {source}:\n{error}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(name) = only {
        config.agents.retain(|entry| entry.name == name);
        if config.agents.is_empty() {
            eprintln!("error: Agent '{name}' not found in {source}");
            return Ok(ExitCode::from(3));
        }
    }
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

/// candle runs elementwise ops on its own pool of spinning threads (`CANDLE_NUM_THREADS`,
/// default: every core) beside rayon's pool, which runs the matmuls. On two cores the spinning
/// threads steal the CPU the matmuls need: embedding ran at 69 sentences/s on 2 threads against
/// 238 with that pool kept to the calling thread (`cargo bench --bench embed`). Unless the user
/// chose, keep it to one thread; local GGUF models need it for their quantised matmuls, so a
/// config with a `provider: local` agent keeps candle's default. Called before the tokio runtime
/// starts: no other thread can be reading the environment.
fn tune_candle_threads(config: &Config) {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() && !config.uses_local_models() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
