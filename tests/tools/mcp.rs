//! MCP servers as tools: a small stdio server (`tests/support/mcp_echo.py`), the same server
//! over Streamable HTTP, restart after a crash, clean shutdown, and the official
//! `@modelcontextprotocol/server-filesystem` from npm when it is available.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use super::direct::agent_with_tools;
use super::{detail, execute};
use crate::support::TestApp;

fn echo_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp_echo.py")
}

fn stdio_agent(extra: &str) -> String {
    let tools = format!(
        "    - {{name: echo, type: mcp, command: python3, args: [\"{script}\"], description: Echo server}}\n    - {{name: only, type: mcp, command: python3, args: [\"{script}\"], tool_name: add, config: {{prefix: ignored_}}}}\n{extra}",
        script = echo_script().display()
    );
    agent_with_tools("mcpuser", &tools)
}

fn process_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|status| !status.lines().any(|line| line.starts_with("State:") && line.contains('Z')))
        .unwrap_or(false)
}

async fn wait_gone(pid: u64) -> bool {
    for _ in 0..50 {
        if !process_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn stdio_server_tools_are_listed_and_executed() {
    let app = TestApp::start(&[("agents/mcpuser.agent.yaml", &stdio_agent(""))]).await;
    let specs = app.tools().specs_for(&app.agent("mcpuser")).await;
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    assert_eq!(names, ["echo_echo", "echo_add", "echo_pid", "echo_crash", "echo_fail", "only"]);
    assert_eq!(specs[0].description, "Echo the text back");
    assert_eq!(specs[0].parameters["required"], json!(["text"]));

    let listing = app.get("/v1/tools").await;
    let tools = listing.json["tools"].as_array().unwrap();
    assert_eq!(
        tools[0],
        json!({"name": "echo_echo", "type": "mcp", "description": "Echo the text back", "agents": ["mcpuser"]})
    );
    assert!(tools.iter().any(|tool| tool["name"] == "only" && tool["description"] == "Add two numbers"));

    let echoed = execute(&app, "echo_echo", json!({"text": "héllo"})).await;
    assert_eq!(echoed.status, 200, "{}", echoed.text);
    assert_eq!(echoed.json["output"], json!({"result": "héllo"}));
    let sum = execute(&app, "only", json!({"a": 2, "b": 3.5})).await;
    assert_eq!(sum.json["output"], json!({"sum": 5.5}));
    let invalid = execute(&app, "echo_add", json!({"a": "two", "b": 1})).await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.json["detail"][0]["loc"], json!(["body", "input", "a"]));
    let failed = execute(&app, "echo_fail", json!({})).await;
    assert_eq!(failed.status, 502);
    assert!(detail(&failed).contains("the tool failed on purpose"), "{}", failed.text);

    let agent = app.agent("mcpuser");
    let ctx = astromesh::tools::ToolContext {
        agent: "mcpuser".to_string(),
        session_id: "s".to_string(),
        model: None,
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
        collection: None,
    };
    let outcome = app.tools().execute(&agent, "echo_echo", json!({"text": "from the agent"}), &ctx).await;
    assert_eq!(outcome.output, json!({"result": "from the agent"}));
    app.stop().await;
}

#[tokio::test]
async fn a_crashed_server_is_restarted_and_servers_stop_with_the_daemon() {
    let app = TestApp::start(&[("agents/mcpuser.agent.yaml", &stdio_agent(""))]).await;
    let first = execute(&app, "echo_pid", json!({})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first_pid: u64 = first.json["output"]["result"].as_str().unwrap().parse().unwrap();
    assert!(process_alive(first_pid));

    let crashed = execute(&app, "echo_crash", json!({})).await;
    assert_eq!(crashed.status, 502, "{}", crashed.text);
    assert!(wait_gone(first_pid).await);

    let second = execute(&app, "echo_pid", json!({})).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let second_pid: u64 = second.json["output"]["result"].as_str().unwrap().parse().unwrap();
    assert_ne!(first_pid, second_pid, "a new server process answered");
    app.stop().await;
    assert!(wait_gone(second_pid).await, "the MCP child exited with the daemon");
}

#[tokio::test]
async fn an_unreachable_server_offers_no_tools_and_does_not_stop_the_daemon() {
    let broken = "    - {name: broken, type: mcp, command: /nonexistent/mcp-server, description: Never starts}\n";
    let app = TestApp::start(&[("agents/mcpuser.agent.yaml", &agent_with_tools("mcpuser", broken))]).await;
    assert!(app.tools().specs_for(&app.agent("mcpuser")).await.is_empty());
    let listing = app.get("/v1/tools").await;
    assert_eq!(
        listing.json["tools"],
        json!([{"name": "broken", "type": "mcp", "description": "Never starts", "agents": ["mcpuser"]}])
    );
    assert_eq!(execute(&app, "broken_anything", json!({})).await.status, 404);
    let ctx = astromesh::tools::ToolContext {
        agent: "mcpuser".to_string(),
        session_id: "s".to_string(),
        model: None,
        deadline: tokio::time::Instant::now() + Duration::from_secs(30),
        collection: None,
    };
    let outcome = app.tools().execute(&app.agent("mcpuser"), "broken_x", json!({}), &ctx).await;
    let error = outcome.error.unwrap();
    assert!(error.contains("Tool 'broken_x' not found") && error.contains("could not start"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn streamable_http_servers_work_too() {
    let mut server = tokio::process::Command::new("python3")
        .arg(echo_script())
        .arg("--http")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    let port = first.strip_prefix("PORT ").unwrap().trim().to_string();
    let tools = format!(
        "    - {{name: remote, type: mcp, transport: http, url: \"http://127.0.0.1:{port}/mcp\", headers: {{x-token: abc}}}}\n"
    );
    let app = TestApp::start(&[("agents/web.agent.yaml", &agent_with_tools("web", &tools))]).await;
    let answer = execute(&app, "remote_echo", json!({"text": "over http"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["output"], json!({"result": "over http"}));
    let sum = execute(&app, "remote_add", json!({"a": 1, "b": 2})).await;
    assert_eq!(sum.json["output"], json!({"sum": 3}));
    app.stop().await;
    server.kill().await.unwrap();
}

/// The npm package, pinned so its output format cannot change under the test.
const FILESYSTEM_PACKAGE: &str = "@modelcontextprotocol/server-filesystem@2026.8.31";

/// Where `.ci/run` installs the npm server:
/// `npm install --no-audit --no-fund --prefix tests/npm @modelcontextprotocol/server-filesystem@2026.8.31`.
/// When it is missing and npm works, the test installs it there itself.
fn filesystem_server() -> Option<PathBuf> {
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    let entry = prefix.join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    if entry.is_file() {
        return Some(entry);
    }
    let npm_works = std::process::Command::new("npm").arg("--version").output().is_ok_and(|out| out.status.success());
    if !npm_works {
        eprintln!("notice: npm is not available; the @modelcontextprotocol/server-filesystem test is skipped");
        return None;
    }
    let installed = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(FILESYSTEM_PACKAGE)
        .output();
    match installed {
        Ok(out) if out.status.success() && entry.is_file() => Some(entry),
        Ok(out) => {
            eprintln!(
                "notice: installing @modelcontextprotocol/server-filesystem failed; its test is skipped\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(error) => {
            eprintln!(
                "notice: npm could not run ({error}); the @modelcontextprotocol/server-filesystem test is skipped"
            );
            None
        }
    }
}

#[tokio::test]
async fn the_official_filesystem_server_lists_a_directory() {
    let Some(entry) = tokio::task::spawn_blocking(filesystem_server).await.unwrap() else {
        return;
    };
    let node_works = std::process::Command::new("node").arg("--version").output().is_ok_and(|out| out.status.success());
    if !node_works {
        eprintln!("notice: node is not available; the @modelcontextprotocol/server-filesystem test is skipped");
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().canonicalize().unwrap();
    std::fs::write(root.join("notes.txt"), "hello").unwrap();
    std::fs::create_dir(root.join("photos")).unwrap();
    let tools = format!(
        "    - {{name: fs, type: mcp, command: node, args: [\"{}\", \"{}\"], timeout_seconds: 60}}\n",
        entry.display(),
        root.display()
    );
    let app = TestApp::start(&[("agents/files.agent.yaml", &agent_with_tools("files", &tools))]).await;
    let specs = app.tools().specs_for(&app.agent("files")).await;
    assert!(
        specs.iter().any(|spec| spec.name == "fs_list_directory"),
        "{:?}",
        specs.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let answer = execute(&app, "fs_list_directory", json!({"path": root})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let listing = match &answer.json["output"] {
        Value::Object(map) if map.contains_key("result") => map["result"].as_str().unwrap_or_default().to_string(),
        other => other.to_string(),
    };
    assert!(listing.contains("[FILE] notes.txt") && listing.contains("[DIR] photos"), "{listing}");
    let outside = execute(&app, "fs_list_directory", json!({"path": "/etc"})).await;
    assert_eq!(outside.status, 502, "the server's own sandbox refuses: {}", outside.text);
    app.stop().await;
}
