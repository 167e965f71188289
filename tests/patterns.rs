//! The orchestration patterns end to end: plan_and_execute, parallel_fan_out, pipeline,
//! supervisor and swarm over HTTP against the scripted LLM, checking which role asked what (the
//! prompts each model call received), that sub-steps' tool calls really run, and the limits.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::runs::{app_with, CLIENT_TOOLS};
use crate::support::llm::{Recorded, Reply, ScriptedLlm};
use crate::support::TestApp;

fn messages(request: &Recorded) -> Vec<Value> {
    request.body["messages"].as_array().cloned().unwrap_or_default()
}

/// The last user message of a model call: the prompt the pattern wrote for this role.
fn prompt(request: &Recorded) -> String {
    let all = messages(request);
    let last_user = all.iter().rev().find(|message| message["role"] == "user");
    last_user.and_then(|message| message["content"].as_str()).unwrap_or_default().to_string()
}

fn system(request: &Recorded) -> String {
    let all = messages(request);
    let systems: Vec<&str> = all
        .iter()
        .filter(|message| message["role"] == "system")
        .filter_map(|message| message["content"].as_str())
        .collect();
    systems.join("\n")
}

fn tool_names(request: &Recorded) -> Vec<String> {
    let tools = request.body["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().map(|tool| tool["function"]["name"].as_str().unwrap_or_default().to_string()).collect()
}

fn called_tools(answer: &Value) -> Vec<String> {
    let calls = answer["tool_calls"].as_array().cloned().unwrap_or_default();
    calls.iter().map(|call| call["tool"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn plan_and_execute_runs_steps_in_order_with_tools_then_synthesizes() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text(
        "Here is the plan:\n```json\n{\"steps\": [{\"step\": 1, \"description\": \"Check the stock\", \"depends_on\": [2]}, {\"step\": 2, \"description\": \"Look up Acme\", \"tool\": \"lookup_company\"}]}\n```\nShall I go on?",
    ));
    llm.push(Reply::tool_call("lookup_company", json!({"company_name": "Acme"})));
    llm.push(Reply::text("Acme exists."));
    llm.push(Reply::text("In stock."));
    llm.push(Reply::text("Acme exists and is in stock.").with_usage(20, 7));
    let spec = format!("{CLIENT_TOOLS}  orchestration: {{pattern: plan_and_execute}}\n");
    let app = app_with(&llm, &[("planner-agent", &spec)]).await;
    let answer = app.post("/v1/agents/planner-agent/run", &json!({"query": "Check Acme"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "Acme exists and is in stock.");
    assert_eq!(
        answer.json["tool_calls"],
        json!([{"tool": "lookup_company", "input": {"company_name": "Acme"}, "output": {"ok": true}}])
    );
    assert_eq!(answer.json["usage"], json!({"input_tokens": 60, "output_tokens": 27, "total_tokens": 87}));

    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 5);
    let plan = prompt(&requests[0]);
    assert!(plan.starts_with("Create a step-by-step plan to answer: Check Acme"), "{plan}");
    assert!(plan.contains("- lookup_company: Look up a company"), "the planner sees the tools: {plan}");
    assert!(tool_names(&requests[0]).is_empty(), "the planner only plans");
    assert!(system(&requests[0]).contains("You are planner-agent."));
    // Step 2 runs first: step 1 depends on it.
    let first = prompt(&requests[1]);
    assert!(first.starts_with("Execute step 2: Look up Acme\nSuggested tool: lookup_company"), "{first}");
    assert_eq!(tool_names(&requests[1]), vec!["lookup_company", "check_stock"]);
    let fed_back = messages(&requests[2]);
    assert_eq!(fed_back.last().unwrap()["role"], "tool", "the worker sees its tool result");
    let second = prompt(&requests[3]);
    assert!(second.starts_with("Execute step 1: Check the stock"), "{second}");
    assert!(second.contains("Previous results:\nStep 2: Acme exists."), "{second}");
    let synthesis = prompt(&requests[4]);
    assert!(synthesis.starts_with("Synthesize a final answer from these results:"), "{synthesis}");
    assert!(synthesis.contains("Step 2: Acme exists.\nStep 1: In stock."), "{synthesis}");
    assert!(synthesis.ends_with("Original question: Check Acme"), "{synthesis}");
    assert!(tool_names(&requests[4]).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_garbled_plan_becomes_one_step_and_steps_are_bounded_by_max_iterations() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Plan: {\"steps\": [oops, this is not json"));
    llm.push(Reply::tool_call("check_stock", json!({"sku": "A1"})));
    llm.push(Reply::tool_call("check_stock", json!({"sku": "A2"})));
    llm.push(Reply::text("Could not finish, sorry."));
    let spec = format!("{CLIENT_TOOLS}  orchestration: {{pattern: plan_and_execute, max_iterations: 2}}\n");
    let app = app_with(&llm, &[("bounded", &spec)]).await;
    let answer = app.post("/v1/agents/bounded/run", &json!({"query": "Is A1 in stock?"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "Could not finish, sorry.");
    assert_eq!(called_tools(&answer.json), vec!["check_stock", "check_stock"]);
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 4, "plan, two worker calls (the limit), synthesis");
    assert!(prompt(&requests[1]).starts_with("Execute step 1: Is A1 in stock?"), "the query is the only step");
    let synthesis = prompt(&requests[3]);
    assert!(synthesis.contains("Step 1: I stopped after reaching the limit of 2 iterations"), "{synthesis}");
    app.stop().await;
}

#[tokio::test]
async fn parallel_fan_out_runs_subtasks_concurrently_with_their_tools() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("```json\n[\"Find the price\", \"Find the stock\", \"Find the rating\"]\n```"));
    // The three first worker calls are answered after 1 s each; run one after the other they
    // would take 3 s.
    llm.push(Reply::tool_call("check_stock", json!({"sku": "A1"})).delay(1000));
    llm.push(Reply::text("result two").delay(1000));
    llm.push(Reply::text("result three").delay(1000));
    llm.push(Reply::text("result one"));
    llm.push(Reply::text("Aggregated."));
    let spec = format!("{CLIENT_TOOLS}  orchestration: {{pattern: parallel_fan_out}}\n");
    let app = app_with(&llm, &[("fan", &spec)]).await;
    let started = Instant::now();
    let answer = app.post("/v1/agents/fan/run", &json!({"query": "Tell me about A1"})).await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(elapsed < Duration::from_millis(2500), "subtasks ran concurrently: {elapsed:?}");
    assert_eq!(answer.json["response"], "Aggregated.");
    assert_eq!(called_tools(&answer.json), vec!["check_stock"], "a subtask's tool call is executed");

    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 6);
    let plan = prompt(&requests[0]);
    assert!(plan.starts_with("Decompose this into 2-4 independent subtasks"), "{plan}");
    assert!(plan.ends_with("Task: Tell me about A1"));
    let mut worker_prompts: Vec<String> = requests[1..5].iter().map(prompt).collect();
    worker_prompts.sort();
    worker_prompts.dedup();
    assert_eq!(worker_prompts.len(), 3, "one tool loop per subtask: {worker_prompts:?}");
    for subtask in ["Find the price", "Find the stock", "Find the rating"] {
        assert!(
            worker_prompts.iter().any(|text| text.starts_with(&format!("Complete this subtask: {subtask}"))),
            "{subtask}"
        );
    }
    let synthesis = prompt(&requests[5]);
    assert!(synthesis.starts_with("Aggregate these results into a final answer:"), "{synthesis}");
    for result in ["result one", "result two", "result three", "Find the rating"] {
        assert!(synthesis.contains(result), "{result} in {synthesis}");
    }
    assert!(tool_names(&requests[5]).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn parallel_fan_out_without_a_usable_list_runs_the_query_itself() {
    let llm = ScriptedLlm::start().await;
    llm.push_all([Reply::text("Just answer it."), Reply::text("only result"), Reply::text("Final.")]);
    let app = app_with(&llm, &[("fan", "  orchestration: {pattern: parallel_fan_out}\n")]).await;
    let answer = app.post("/v1/agents/fan/run", &json!({"query": "What is 2+2?"})).await;
    assert_eq!(answer.json["response"], "Final.", "{}", answer.text);
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 3);
    assert!(prompt(&requests[1]).starts_with("Complete this subtask: What is 2+2?"));
    assert!(prompt(&requests[2]).contains("only result"));
    app.stop().await;
}

#[tokio::test]
async fn pipeline_feeds_each_stage_into_the_next() {
    let llm = ScriptedLlm::start().await;
    llm.push_all([Reply::text("analysed"), Reply::text("processed"), Reply::text("synthesised")]);
    let app = app_with(&llm, &[("flow", "  orchestration: {pattern: pipeline}\n")]).await;
    let answer = app.post("/v1/agents/flow/run", &json!({"query": "raw input"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "synthesised");
    let prompts: Vec<String> = llm.chat_requests().iter().map(prompt).collect();
    assert_eq!(
        prompts,
        vec![
            "Stage 'analyze': Process the following input and produce output for the next stage.\nInput:\nraw input",
            "Stage 'process': Process the following input and produce output for the next stage.\nInput:\nanalysed",
            "Stage 'synthesize': Process the following input and produce output for the next stage.\nInput:\nprocessed",
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn pipeline_stages_come_from_yaml_and_may_call_tools() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::tool_call("lookup_company", json!({"company_name": "Acme"})));
    llm.push(Reply::text("Acme: real"));
    llm.push(Reply::text("A fine write-up."));
    let spec = format!(
        "{CLIENT_TOOLS}  orchestration:\n    pattern: pipeline\n    stages:\n      - research\n      - {{name: write, prompt: \"Write it up nicely.\"}}\n"
    );
    let broken = "  orchestration:\n    pattern: pipeline\n    stages: [{prompt: no name}]\n";
    let app = app_with(&llm, &[("writer", &spec), ("nameless", broken)]).await;
    let answer = app.post("/v1/agents/writer/run", &json!({"query": "Acme"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "A fine write-up.");
    assert_eq!(called_tools(&answer.json), vec!["lookup_company"]);
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 3);
    assert!(prompt(&requests[0]).starts_with("Stage 'research':"));
    assert_eq!(messages(&requests[1]).last().unwrap()["role"], "tool");
    assert_eq!(prompt(&requests[2]), "Write it up nicely.\nInput:\nAcme: real");

    let invalid = app.post("/v1/agents/nameless/run", &json!({"query": "x"})).await;
    assert_eq!(invalid.status, 409);
    let detail = invalid.json["detail"].as_str().unwrap();
    assert!(detail.contains("spec.orchestration.stages[0]: a stage is a name or {name, prompt}"), "{detail}");
    app.stop().await;
}

const WORKER_TOOL: &str =
    "  tools:\n    - {name: writer, type: agent, agent: scribe, description: Writes short prose}\n";

#[tokio::test]
async fn supervisor_delegates_to_a_real_agent_until_a_final_answer() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("I'll delegate. {\"delegate\": \"writer\", \"task\": \"Write a haiku about rain\"}"));
    llm.push(Reply::tool_call("check_stock", json!({"sku": "ink"})));
    llm.push(Reply::text("Rain taps the window"));
    llm.push(Reply::text("```json\n{\"final_answer\": \"Here it is: Rain taps the window\"}\n```"));
    let boss = format!("  orchestration: {{pattern: supervisor}}\n{WORKER_TOOL}");
    let app = app_with(&llm, &[("boss", &boss), ("scribe", CLIENT_TOOLS)]).await;
    let answer = app.post("/v1/agents/boss/run", &json!({"query": "I need a poem"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "Here it is: Rain taps the window");
    let calls = answer.json["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["tool"], "writer");
    assert_eq!(calls[0]["input"], json!({"query": "Write a haiku about rain"}));
    assert_eq!(calls[0]["output"]["response"], "Rain taps the window");
    assert_eq!(calls[0]["output"]["tool_calls"][0]["tool"], "check_stock", "the worker ran its own tool");

    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 4);
    let first = prompt(&requests[0]);
    assert!(first.contains("Workers:\n- writer: Writes short prose"), "{first}");
    assert!(first.contains("Task: I need a poem"));
    assert!(first.contains("Results so far:\n(none yet)"));
    assert!(system(&requests[0]).contains("You are boss."));
    assert!(system(&requests[1]).contains("You are scribe."), "the worker is the scribe agent itself");
    assert_eq!(prompt(&requests[1]), "Write a haiku about rain");
    let second = prompt(&requests[3]);
    assert!(second.contains("writer (task: Write a haiku about rain): Rain taps the window"), "{second}");
    app.stop().await;
}

#[tokio::test]
async fn supervisor_is_bounded_and_plain_text_is_the_answer() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("{\"delegate\": \"nobody\", \"task\": \"x\"}"));
    let boss = format!("  orchestration: {{pattern: supervisor, max_iterations: 3}}\n{WORKER_TOOL}");
    let app = app_with(&llm, &[("boss", &boss), ("scribe", "")]).await;
    let answer = app.post("/v1/agents/boss/run", &json!({"query": "loop"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.json["response"].as_str().unwrap().contains("limit of 3 iterations"), "{}", answer.text);
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 3);
    assert!(prompt(&requests[2]).contains("there is no worker named \"nobody\" (workers: writer)"));
    assert_eq!(answer.json["tool_calls"], json!([]));

    llm.push(Reply::text("I can answer that myself: 4."));
    let direct = app.post("/v1/agents/boss/run", &json!({"query": "2+2?"})).await;
    assert_eq!(direct.json["response"], "I can answer that myself: 4.");
    assert_eq!(llm.chat_requests().len(), 4);
    app.stop().await;
}

const SWARM: &str =
    "  orchestration: {pattern: swarm}\n  tools:\n    - {name: billing, type: agent, agent: billing-desk, description: Handles invoices}\n";

#[tokio::test]
async fn swarm_hands_off_with_context_and_runs_the_active_agents_tools() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::tool_call("transfer_to_billing-desk", json!({"context": "invoice 42 for Acme"})));
    llm.push(Reply::tool_call("lookup_company", json!({"company_name": "Acme"})));
    llm.push(Reply::text("Invoice 42 is paid."));
    let app = app_with(&llm, &[("triage", SWARM), ("billing-desk", CLIENT_TOOLS)]).await;
    let answer = app.post("/v1/agents/triage/run", &json!({"query": "Is my invoice paid?"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "Invoice 42 is paid.");
    assert_eq!(
        answer.json["tool_calls"],
        json!([{"tool": "lookup_company", "input": {"company_name": "Acme"}, "output": {"ok": true}}]),
        "the hand-off is not a tool execution; the billing desk's own tool is"
    );

    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(tool_names(&requests[0]), vec!["transfer_to_billing-desk"], "the agent tool becomes a transfer");
    let triage = system(&requests[0]);
    assert!(triage.contains("You are triage."), "{triage}");
    assert!(triage.contains("You are agent 'triage' in a swarm"), "{triage}");
    assert!(triage.contains("- billing-desk: Handles invoices"), "{triage}");
    let billing = system(&requests[1]);
    assert!(billing.contains("You are billing-desk."), "{billing}");
    assert!(!billing.contains("You are triage."), "{billing}");
    assert!(billing.contains("Agent 'triage' handed the conversation to you. Context: invoice 42 for Acme"));
    assert_eq!(tool_names(&requests[1]), vec!["lookup_company", "check_stock", "transfer_to_triage"]);
    let carried = messages(&requests[1]);
    assert!(carried.iter().any(|message| message["content"] == "Is my invoice paid?"), "the context carries over");
    assert!(carried.iter().any(|message| message["content"] == "Transferred to agent 'billing-desk'."));
    assert_eq!(messages(&requests[2]).last().unwrap()["role"], "tool");
    app.stop().await;
}

#[tokio::test]
async fn swarm_hand_offs_are_bounded() {
    let llm = ScriptedLlm::start().await;
    // The reference's text protocol hands off too; the second hand-off is over the limit.
    llm.push(Reply::text("{\"handoff\": \"billing-desk\", \"context\": \"money\"}"));
    llm.push(Reply::tool_call("transfer_to_triage", json!({})));
    llm.push(Reply::text("Fine, I'll answer: paid."));
    let spec = SWARM.replace("{pattern: swarm}", "{pattern: swarm, max_handoffs: 1}");
    let app = app_with(&llm, &[("triage", &spec), ("billing-desk", "")]).await;
    let answer = app.post("/v1/agents/triage/run", &json!({"query": "Paid?"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "Fine, I'll answer: paid.");
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 3);
    assert!(system(&requests[1]).contains("You are billing-desk."));
    assert!(system(&requests[1]).contains("Context: money"));
    assert!(tool_names(&requests[1]).is_empty(), "no transfers offered past the limit");
    assert_eq!(
        messages(&requests[2]).last().unwrap()["content"],
        "Hand-off limit reached (1): answer the user yourself."
    );
    app.stop().await;
}

#[tokio::test]
async fn role_map_and_per_role_models_route_each_role() {
    let main = ScriptedLlm::start().await;
    let planning = ScriptedLlm::start().await;
    planning.push_all([Reply::text("no plan, just do it"), Reply::text("synthesised on the planner model")]);
    main.push(Reply::text("worker result"));
    let yaml = format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {{name: routed}}\nspec:\n  model:\n    default: {{candidates: [{{source: openai_compat, model: main-model, endpoint: \"{}/v1\"}}]}}\n    roles:\n      planner: {{candidates: [{{source: openai_compat, model: planner-model, endpoint: \"{}/v1\"}}]}}\n  orchestration:\n    pattern: plan_and_execute\n    role_map: {{synthesizer: planner}}\n",
        main.url(),
        planning.url()
    );
    let app = TestApp::start(&[("agents/routed.agent.yaml", &yaml)]).await;
    let answer = app.post("/v1/agents/routed/run", &json!({"query": "route me"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "synthesised on the planner model");
    assert_eq!(answer.json["model"], "openai_compat/planner-model");
    let planner_calls = planning.chat_requests();
    assert_eq!(planner_calls.len(), 2, "planner and (mapped) synthesizer");
    assert!(prompt(&planner_calls[0]).starts_with("Create a step-by-step plan"));
    assert!(prompt(&planner_calls[1]).starts_with("Synthesize a final answer"));
    assert_eq!(planner_calls[1].body["model"], "planner-model");
    let worker_calls = main.chat_requests();
    assert_eq!(worker_calls.len(), 1, "the worker role has no model of its own: default");
    assert!(prompt(&worker_calls[0]).starts_with("Execute step 1: route me"));
    app.stop().await;
}

#[tokio::test]
async fn every_pattern_respects_the_deadline() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::hang());
    let patterns = ["plan_and_execute", "parallel_fan_out", "pipeline", "supervisor", "swarm"];
    let specs: Vec<(String, String)> = patterns
        .iter()
        .map(|pattern| {
            (pattern.replace('_', "-"), format!("  orchestration: {{pattern: {pattern}, timeout_seconds: 0.5}}\n"))
        })
        .collect();
    let agents: Vec<(&str, &str)> = specs.iter().map(|(name, spec)| (name.as_str(), spec.as_str())).collect();
    let app = app_with(&llm, &agents).await;
    for (name, _) in &specs {
        let started = Instant::now();
        let answer = app.post(&format!("/v1/agents/{name}/run"), &json!({"query": "hi"})).await;
        assert_eq!(
            (answer.status, answer.json.clone()),
            (408, json!({"detail": "Orchestration timeout exceeded (0.5s)"})),
            "{name}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_default_researcher_answers_end_to_end() {
    let llm = ScriptedLlm::start().await;
    let shipped =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/researcher.agent.yaml"))
            .unwrap();
    let model_start = shipped.find("  model:\n").unwrap();
    let model_end = shipped.find("  prompts:\n").unwrap();
    let researcher = format!(
        "{}  model:\n    primary: {{provider: openai_compat, model: test-model, endpoint: \"{}/v1\"}}\n{}",
        &shipped[..model_start],
        llm.url(),
        &shipped[model_end..]
    );
    llm.push(Reply::text(
        "{\"steps\": [{\"step\": 1, \"description\": \"Get today's date\", \"tool\": \"datetime_now\"}]}",
    ));
    llm.push(Reply::tool_call("datetime_now", json!({})));
    llm.push(Reply::text("Today is known."));
    llm.push(Reply::text("The date is known; nothing else is."));
    let app = TestApp::start(&[("agents/researcher.agent.yaml", &researcher)]).await;
    let answer = app.post("/v1/agents/researcher/run", &json!({"query": "What day is it?"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "The date is known; nothing else is.");
    let calls = answer.json["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["tool"], "datetime_now");
    assert!(calls[0]["output"].get("error").is_none(), "{}", calls[0]);
    assert!(system(&llm.chat_requests()[0]).contains("careful research analyst"));
    app.stop().await;
}
