//! `agents list|show` against the daemon, `run` (one streamed answer) and `chat` (a REPL).
//!
//! `run` and `chat` first ask `GET /v1/agents/{name}`, so an unknown agent is a 404 with the
//! daemon's detail (exit code 3) before anything is sent; then they stream over one WebSocket.
//! Tokens go to stdout as they arrive; the session id, tool calls and prompts go to stderr, so
//! `astromesh run a "q" > answer.txt` captures only the answer and a script can read the
//! session from stderr. The offline listing of a config dir is in `main.rs`, not here.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{json, Value};

use super::client::segment;
use super::output::{cell, note, print_json, print_lines, print_table, shorten, table};
use super::stream::{AgentSocket, Event, Turn};
use super::{CliError, Context};

pub(crate) fn list(context: &Context) -> Result<(), CliError> {
    let answer = context.client.get("/v1/agents")?;
    if context.json {
        return print_json(&answer);
    }
    let mut rows = table(&["NAME", "STATUS", "PATTERN", "MODEL", "DESCRIPTION"]);
    for agent in answer["agents"].as_array().into_iter().flatten() {
        let description = match agent["status"].as_str() {
            Some("error") => cell(&agent["error"]),
            _ => cell(&agent["description"]),
        };
        rows.add_row(vec![
            cell(&agent["name"]),
            cell(&agent["status"]),
            cell(&agent["orchestration"]),
            cell(&agent["model"]),
            shorten(&description, 60),
        ]);
    }
    print_table(&rows, "no agents loaded")
}

pub(crate) fn show(context: &Context, name: &str) -> Result<(), CliError> {
    let agent = context.client.get(&format!("/v1/agents/{}", segment(name))).map_err(CliError::about_agent)?;
    if context.json {
        return print_json(&agent);
    }
    let model = &agent["model"];
    let model_line = |candidate: &Value| match (candidate["provider"].as_str(), candidate["model"].as_str()) {
        (Some(provider), Some(model)) => format!("{provider}/{model}"),
        _ => cell(candidate),
    };
    let mut rows = table(&["FIELD", "VALUE"]);
    rows.add_row(vec!["name".to_string(), cell(&agent["name"])]);
    rows.add_row(vec!["status".to_string(), cell(&agent["status"])]);
    rows.add_row(vec!["description".to_string(), cell(&agent["description"])]);
    if let Some(error) = agent["error"].as_str() {
        rows.add_row(vec!["error".to_string(), error.to_string()]);
    }
    if model.is_object() {
        rows.add_row(vec!["model".to_string(), model_line(&model["primary"])]);
        if !model["fallback"].is_null() {
            rows.add_row(vec!["fallback".to_string(), model_line(&model["fallback"])]);
        }
        rows.add_row(vec!["routing".to_string(), cell(&model["routing"])]);
    }
    let orchestration = &agent["orchestration"];
    if orchestration.is_object() {
        rows.add_row(vec!["pattern".to_string(), cell(&orchestration["pattern"])]);
        rows.add_row(vec!["max_iterations".to_string(), cell(&orchestration["max_iterations"])]);
        rows.add_row(vec!["timeout".to_string(), format!("{} s", cell(&orchestration["timeout"]))]);
    }
    if agent["tools"].is_array() {
        rows.add_row(vec!["tools".to_string(), cell(&agent["tools"])]);
    }
    print_table(&rows, "")
}

/// Checks that the agent exists (exit code 3 when not), then opens its socket.
fn open(context: &Context, agent: &str) -> Result<AgentSocket, CliError> {
    context.client.get(&format!("/v1/agents/{}", segment(agent))).map_err(CliError::about_agent)?;
    AgentSocket::connect(&context.client, agent)
}

/// Streams one turn: tokens to stdout as they come (unless `--json`), tools to stderr.
fn stream_turn(
    context: &Context,
    socket: &mut AgentSocket,
    query: &str,
    session: Option<&str>,
) -> Result<Turn, CliError> {
    let mut out = std::io::stdout();
    let turn = socket.ask(query, session, |event| {
        match event {
            Event::Token(text) if !context.json => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Event::ToolCall { tool, input } if !context.json => note(&format!("[tool {tool} {input}]")),
            Event::ToolResult { tool, output } if !context.json => {
                note(&format!("[tool {tool} -> {}]", shorten(&cell(output), 200)));
            }
            _ => {}
        }
        Ok(())
    })?;
    if !context.json && !turn.text.is_empty() && !turn.text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(turn)
}

fn turn_json(turn: &Turn) -> Value {
    json!({
        "response": turn.text,
        "session_id": turn.session_id,
        "tool_calls": turn.tool_calls,
        "usage": turn.done["usage"],
        "timing": turn.done["timing"],
        "model": turn.done["model"],
    })
}

pub(crate) fn run(context: &Context, agent: &str, query: &str, session: Option<&str>) -> Result<(), CliError> {
    let mut socket = open(context, agent)?;
    let turn = stream_turn(context, &mut socket, query, session)?;
    socket.close();
    if let Some(session_id) = &turn.session_id {
        note(&format!("session_id: {session_id}"));
    }
    if context.json {
        print_json(&turn_json(&turn))?;
    }
    Ok(())
}

/// A REPL on stdin: one session for every turn; `/exit` or end of input stops. A turn the
/// daemon fails is reported and the chat goes on; the exit code then says a turn failed.
pub(crate) fn chat(context: &Context, agent: &str, session: Option<String>) -> Result<(), CliError> {
    let mut socket = open(context, agent)?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        note(&format!("chatting with {agent}; /exit or Ctrl-D to leave"));
    }
    let mut session = session;
    let mut last_failure = None;
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            let mut err = std::io::stderr();
            let _ = write!(err, "> ").and_then(|()| err.flush()); // Only a prompt.
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let query = line.trim();
        if query == "/exit" {
            break;
        }
        if query.is_empty() {
            continue;
        }
        match stream_turn(context, &mut socket, query, session.as_deref()) {
            Ok(turn) => {
                if turn.session_id.is_some() && turn.session_id != session {
                    session = turn.session_id.clone();
                    note(&format!("session_id: {}", session.as_deref().unwrap_or_default()));
                }
                if context.json {
                    let text = serde_json::to_string(&turn_json(&turn)).map_err(std::io::Error::other)?;
                    print_lines(&[text])?;
                }
            }
            Err(CliError::RunFailed(message)) => {
                note(&format!("error: {message}"));
                last_failure = Some(CliError::RunFailed(message));
            }
            Err(other) => return Err(other),
        }
    }
    socket.close();
    last_failure.map_or(Ok(()), Err)
}
