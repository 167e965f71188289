//! Swarm: agents hand the conversation to each other until one of them answers.
//!
//! The members are the running agent (the entry) plus every ready agent it names in an
//! `agent`-type tool. The active member acts as itself: its own system prompt, its own models
//! (role `reasoner` through its routers and `role_map`) and its own tools, which are executed.
//! Hand-off protocol: each other member is announced as a tool `transfer_to_<agent>` with an
//! optional `context` argument (the agent tool's description says what it is for); a reply that
//! is the reference's JSON `{"handoff": "<agent>", "context": "..."}` works too. On a hand-off
//! the whole transcript carries over, and the new member's prompt says who handed off and why.
//!
//! Limits: at most `max_handoffs` hand-offs (default `max_iterations`); after that the transfer
//! tools disappear and a transfer is answered "limit reached". Each member's turn is bounded by
//! `max_iterations` model calls, so a run makes at most (hand-offs + 1) × `max_iterations` calls.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{json, Map, Value};

use super::json::extract_json;
use super::react::limit_note;
use super::{listing, Framing, PatternOutcome};
use crate::config::agent::ToolKind;
use crate::providers::{ChatMessage, Role, ToolSpec};
use crate::runtime::context::RunContext;
use crate::runtime::prompt::{render, PromptInputs};
use crate::runtime::{AgentRuntime, RunError};

const TRANSFER_PREFIX: &str = "transfer_to_";

struct Member {
    name: String,
    description: String,
    agent: Arc<AgentRuntime>,
    /// The tool other members call to hand off to this one.
    transfer_tool: String,
}

fn transfer_tool_name(agent: &str) -> String {
    let cleaned: String =
        agent.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' { ch } else { '_' }).collect();
    format!("{TRANSFER_PREFIX}{cleaned}").chars().take(64).collect()
}

fn members(context: &RunContext) -> Vec<Member> {
    let entry = context.this_agent();
    let mut members = vec![Member {
        name: entry.config.name.clone(),
        description: entry.config.description.clone(),
        transfer_tool: transfer_tool_name(&entry.config.name),
        agent: entry.clone(),
    }];
    for tool in entry.config.tools.iter().filter(|tool| tool.kind == ToolKind::Agent) {
        let Some(target) = tool.agent.as_deref() else { continue };
        if members.iter().any(|member| member.name == target) {
            continue;
        }
        let Some(agent) = context.member(target) else {
            tracing::warn!(agent = %entry.config.name, member = %target, "swarm member is not a ready agent; left out");
            continue;
        };
        let description = if tool.description.trim().is_empty() {
            agent.config.description.clone()
        } else {
            tool.description.clone()
        };
        members.push(Member {
            name: target.to_string(),
            description,
            transfer_tool: transfer_tool_name(target),
            agent,
        });
    }
    members
}

/// What the active member's model is told about the swarm.
fn swarm_note(members: &[Member], active: usize, handed_by: Option<(&str, &str)>, can_hand_off: bool) -> String {
    let others = listing(
        members
            .iter()
            .enumerate()
            .filter(|(idx, _)| *idx != active)
            .map(|(_, member)| (member.name.as_str(), member.description.as_str())),
    );
    let mut note =
        format!("You are agent '{}' in a swarm of agents. The other agents:\n{others}\n", members[active].name);
    if can_hand_off {
        note.push_str(&format!(
            "To hand the conversation to another agent, call its `{TRANSFER_PREFIX}<agent>` tool with the context it needs. Otherwise answer the user yourself."
        ));
    } else {
        note.push_str("No more hand-offs are allowed: answer the user yourself.");
    }
    if let Some((from, handoff_context)) = handed_by {
        note.push_str(&format!("\nAgent '{from}' handed the conversation to you."));
        if !handoff_context.trim().is_empty() {
            note.push_str(&format!(" Context: {handoff_context}"));
        }
    }
    note
}

/// The active member's system messages: the entry keeps the run's rendered prompt; another
/// member renders its own template (without the caller's context, which belongs to the entry).
fn system_messages(framing: &Framing, member: &Member, is_entry: bool) -> Vec<ChatMessage> {
    if is_entry {
        return framing.preamble.iter().filter(|message| message.role == Role::System).cloned().collect();
    }
    let empty = Map::new();
    let inputs = PromptInputs { context: &empty, conversation: &[], summary: None, semantic: &[], knowledge: "" };
    let prompt = render(&member.agent.config.system_prompt, &inputs)
        .unwrap_or_else(|_| member.agent.config.system_prompt.clone());
    if prompt.trim().is_empty() {
        Vec::new()
    } else {
        vec![ChatMessage::system(&prompt)]
    }
}

pub(super) async fn run(context: &RunContext, framing: Framing) -> Result<PatternOutcome, RunError> {
    let members = members(context);
    let member_names: Vec<&str> = members.iter().map(|member| member.name.as_str()).collect();
    let history: Vec<ChatMessage> =
        framing.preamble.iter().filter(|message| message.role != Role::System).cloned().collect();
    let mut transcript = vec![ChatMessage::user(&framing.query)];
    let max_iterations = context.max_iterations();
    let max_handoffs = context.max_handoffs();
    let (mut active, mut handoffs, mut model_calls) = (0usize, 0u32, 0u32);
    let mut handed_by: Option<(String, String)> = None;
    'turns: loop {
        let member = &members[active];
        let can_hand_off = handoffs < max_handoffs && members.len() > 1;
        let mut messages = system_messages(&framing, member, active == 0);
        let handed = handed_by.as_ref().map(|(from, text)| (from.as_str(), text.as_str()));
        messages.push(ChatMessage::system(&swarm_note(&members, active, handed, can_hand_off)));
        messages.extend(history.iter().cloned());
        let conversation_start = messages.len();
        messages.extend(transcript.iter().cloned());
        let mut tools: Vec<ToolSpec> = context
            .tool_specs_as(&member.agent)
            .await
            .into_iter()
            .filter(|spec| !is_member_tool(&member.agent, &spec.name, &member_names))
            .collect();
        if can_hand_off {
            tools.extend(members.iter().enumerate().filter(|(idx, _)| *idx != active).map(|(_, other)| ToolSpec {
                name: other.transfer_tool.clone(),
                description: format!("Hand the conversation to agent '{}': {}", other.name, other.description),
                parameters: json!({"type": "object", "properties": {"context": {"type": "string", "description": "What the next agent needs to know"}}}),
            }));
        }
        let mut last_text = String::new();
        for _ in 0..max_iterations {
            let response = context.model_as(&member.agent, "reasoner", messages.clone(), tools.clone()).await?;
            model_calls += 1;
            if response.tool_calls.is_empty() {
                let handoff = text_handoff(&response.content, &members, active);
                match handoff {
                    Some((target, handoff_context)) if can_hand_off => {
                        transcript = messages.split_off(conversation_start);
                        transcript.push(ChatMessage::assistant(&response.content));
                        handoffs += 1;
                        handed_by = Some((member.name.clone(), handoff_context));
                        active = target;
                        continue 'turns;
                    }
                    Some(_) => {
                        messages.push(ChatMessage::assistant(&response.content));
                        messages.push(ChatMessage::user("No more hand-offs are allowed: answer the user yourself."));
                        continue;
                    }
                    None => return Ok(PatternOutcome { answer: response.content, iterations: model_calls }),
                }
            }
            if !response.content.trim().is_empty() {
                last_text = response.content.clone();
            }
            let mut assistant = ChatMessage::assistant_tool_calls(&response.content, response.tool_calls.clone());
            assistant.reasoning_content = response.reasoning_content.clone();
            messages.push(assistant);
            // Transfers are decided in call order (the first one wins); other calls run concurrently.
            let mut transfer: Option<(usize, String)> = None;
            let mut transfer_notes: Vec<Option<String>> = Vec::with_capacity(response.tool_calls.len());
            for call in &response.tool_calls {
                let target = members.iter().position(|other| other.transfer_tool == call.name);
                transfer_notes.push(target.map(|target| {
                    if !can_hand_off {
                        format!("Hand-off limit reached ({max_handoffs}): answer the user yourself.")
                    } else if target == active {
                        "You are already that agent.".to_string()
                    } else if let Some((chosen, _)) = &transfer {
                        format!("Ignored: already handing off to '{}'.", members[*chosen].name)
                    } else {
                        let handoff_context =
                            call.arguments.get("context").and_then(Value::as_str).unwrap_or_default().to_string();
                        transfer = Some((target, handoff_context));
                        format!("Transferred to agent '{}'.", members[target].name)
                    }
                }));
            }
            let observations =
                join_all(response.tool_calls.iter().zip(transfer_notes).map(|(call, note)| async move {
                    match note {
                        Some(note) => note,
                        None => context.tool_as(&member.agent, call).await,
                    }
                }))
                .await;
            for (call, observation) in response.tool_calls.iter().zip(observations) {
                messages.push(ChatMessage::tool_result(&call.id, &call.name, &observation));
            }
            if let Some((target, handoff_context)) = transfer {
                transcript = messages.split_off(conversation_start);
                handoffs += 1;
                handed_by = Some((member.name.clone(), handoff_context));
                active = target;
                continue 'turns;
            }
        }
        return Ok(PatternOutcome { answer: limit_note(max_iterations, &last_text), iterations: model_calls });
    }
}

/// Whether `name` is one of `agent`'s agent tools that points at a swarm member: those are
/// offered as transfers instead of nested runs.
fn is_member_tool(agent: &AgentRuntime, name: &str, members: &[&str]) -> bool {
    agent.config.tools.iter().any(|tool| {
        tool.name == name
            && tool.kind == ToolKind::Agent
            && tool.agent.as_deref().is_some_and(|target| members.contains(&target))
    })
}

/// The reference's text protocol: `{"handoff": "<agent>", "context": "..."}` naming another member.
fn text_handoff(text: &str, members: &[Member], active: usize) -> Option<(usize, String)> {
    let Value::Object(map) = extract_json(text)? else { return None };
    let name = map.get("handoff")?.as_str()?;
    let target = members.iter().position(|member| member.name == name || member.transfer_tool == name)?;
    if target == active {
        return None;
    }
    let handoff_context = map.get("context").and_then(Value::as_str).unwrap_or_default().to_string();
    Some((target, handoff_context))
}
