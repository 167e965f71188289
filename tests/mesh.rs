//! Mesh mode with real nodes on loopback ports: joining and convergence, failure detection,
//! leader election after a crash and after a partition, graceful leave with draining, runs
//! forwarded over HTTP and WebSocket, and the shared secret. See: issue #9.
//!
//! Timings are short (`Timings::FAST`); every wait polls with a deadline, none sleeps blindly.

use std::time::{Duration, Instant};

use astromesh::mesh::membership::NodeState;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::runs::agent;
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::mesh::{cluster, eventually, MeshNode, NodeSpec, Timings};
use crate::support::{send, TestApp};
use crate::websocket::until_end;

const FAST: Timings = Timings::FAST;

/// Long enough for a loaded 2-core machine; the bench reports the real figures.
const CONVERGE: Duration = Duration::from_secs(20);

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

fn one_leader(nodes: &[&MeshNode], expected: &str) -> bool {
    nodes.iter().all(|node| node.leader().as_deref() == Some(expected))
}

#[tokio::test]
async fn mesh_endpoints_answer_503_when_mesh_is_off() {
    let app = TestApp::start(&[]).await;
    let state = app.get("/v1/mesh/state").await;
    assert_eq!(state.status, 503);
    assert_eq!(state.json, json!({"detail": "Mesh not enabled on this node"}));
    let join = app.post("/v1/mesh/join", &json!({"node_id": "x", "address": "127.0.0.1:1", "agents": []})).await;
    assert_eq!(join.status, 503);
    assert_eq!(app.get("/v1/system/status").await.json["mode"], "standalone");
    app.stop().await;
}

#[tokio::test]
async fn three_nodes_join_through_one_seed_converge_and_forward_runs() {
    let llm = ScriptedLlm::start().await;
    let secret = "s3cret";
    let mut specs = Vec::new();
    for name in ["m3-a", "m3-b", "m3-c"] {
        let mut spec = NodeSpec::new(name, &[], FAST);
        spec.secret = Some(secret.to_string());
        specs.push(spec);
    }
    // Only m3-c hosts the agent `helper`.
    specs[2].files.push(("agents/helper.agent.yaml".to_string(), agent("helper", &llm, "")));
    let mut specs = specs.into_iter();
    let seed = MeshNode::start(specs.next().unwrap()).await;
    let mut nodes = vec![seed];
    for mut spec in specs {
        spec.seeds = vec![format!("http://{}", nodes[0].address)];
        nodes.push(MeshNode::start(spec).await);
    }
    let all: Vec<&MeshNode> = nodes.iter().collect();
    eventually(CONVERGE, "every node sees three alive nodes and m3-c leading", || {
        all.iter().all(|node| node.alive().len() == 3) && one_leader(&all, "m3-c")
    })
    .await;
    let (a, c) = (&nodes[0], &nodes[2]);

    // The secret is enforced on every mesh endpoint; the nodes themselves carry it.
    let bearer = format!("Bearer {secret}");
    let denied = send("GET", &format!("{}/v1/mesh/state", a.url), None, &[]).await;
    assert_eq!(denied.status, 401);
    let wrong = send("GET", &format!("{}/v1/mesh/state", a.url), None, &[("authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status, 401);
    let gossip = json!({"sender": "intruder", "state": []});
    let forged = send("POST", &format!("{}/v1/mesh/gossip", a.url), Some(gossip.to_string().into_bytes()), &[]).await;
    assert_eq!(forged.status, 401);
    let state = send("GET", &format!("{}/v1/mesh/state", a.url), None, &[("authorization", &bearer)]).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.json["this_node"], "m3-a");
    assert_eq!(state.json["leader"], "m3-c");
    let nodes_json = state.json["nodes"].as_array().unwrap();
    assert_eq!(nodes_json.len(), 3);
    let c_entry = nodes_json.iter().find(|node| node["node_id"] == "m3-c").unwrap();
    assert_eq!(c_entry["address"], c.address.as_str());
    assert_eq!(c_entry["state"], "alive");
    assert_eq!(c_entry["agents"], json!(["helper"]));
    assert!(c_entry["heartbeat"].as_u64().unwrap() > 0);
    assert!(c_entry["active_requests"].is_u64());

    // Status and doctor report the mesh.
    let status = send("GET", &format!("{}/v1/system/status", a.url), None, &[]).await;
    assert_eq!(status.json["mode"], "mesh");
    assert_eq!(status.json["mesh"]["leader"], "m3-c");
    assert_eq!(status.json["mesh"]["cluster_size"], 3);
    let doctor = send("GET", &format!("{}/v1/system/doctor", a.url), None, &[]).await;
    let checks = doctor.json["checks"].as_array().unwrap();
    assert!(checks.iter().any(|check| check["name"] == "mesh peer m3-c" && check["status"] == "healthy"));

    // The cluster's agents are listed everywhere.
    let agents = send("GET", &format!("{}/v1/agents", a.url), None, &[]).await;
    let helper = agents.json["agents"].as_array().unwrap().iter().find(|entry| entry["name"] == "helper").cloned();
    assert_eq!(helper.expect("helper listed on m3-a")["nodes"], json!(["m3-c"]));

    // An HTTP run at m3-a is forwarded to m3-c, and its session's history stays there.
    llm.push(Reply::text("Forwarded hello."));
    let body = json!({"query": "hi", "session_id": "sess-fw"}).to_string().into_bytes();
    let run = send("POST", &format!("{}/v1/agents/helper/run", a.url), Some(body), &[]).await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json["response"], "Forwarded hello.");
    assert_eq!(run.json["session_id"], "sess-fw");
    let history = send("GET", &format!("{}/v1/memory/helper/history/sess-fw", c.url), None, &[]).await;
    assert_eq!(history.json["messages"].as_array().map(Vec::len), Some(2));

    // Unknown everywhere: 404 in the cluster's words. Already forwarded: never forwarded again.
    let body = json!({"query": "hi"}).to_string().into_bytes();
    let missing = send("POST", &format!("{}/v1/agents/nobody/run", a.url), Some(body.clone()), &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json, json!({"detail": "Agent 'nobody' not found in cluster"}));
    let looped =
        send("POST", &format!("{}/v1/agents/helper/run", a.url), Some(body), &[("x-astromesh-forwarded-by", "m3-b")])
            .await;
    assert_eq!(looped.status, 404);

    // A WebSocket at m3-a is proxied to m3-c: tokens, then done.
    llm.push(Reply::text("Streamed through the mesh."));
    let ws_url = format!("ws://{}/v1/ws/agent/helper?session_id=ws-fw", a.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.expect("websocket connects");
    socket.send(Message::Text(r#"{"query": "stream it"}"#.into())).await.unwrap();
    let frames = until_end(&mut socket).await;
    let done = frames.last().unwrap();
    assert_eq!(done["type"], "done", "{frames:?}");
    assert_eq!(done["session_id"], "ws-fw");
    let text: String = frames.iter().filter(|f| f["type"] == "token").filter_map(|f| f["content"].as_str()).collect();
    assert_eq!(text, "Streamed through the mesh.");
    drop(socket);

    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn api_keys_and_the_mesh_secret_guard_their_own_endpoints_and_reloads_reach_peers() {
    // Peers present the mesh secret, not an API key: with both configured, gossip still flows
    // while every other endpoint needs a key, and forwarded runs carry the client's key.
    let llm = ScriptedLlm::start().await;
    let mut specs = Vec::new();
    for name in ["mk-a", "mk-b"] {
        let mut spec = NodeSpec::new(name, &[], FAST);
        spec.secret = Some("mesh-secret".to_string());
        spec.api_keys = vec!["api-key-1".to_string()];
        specs.push(spec);
    }
    specs[1].files.push(("agents/helper.agent.yaml".to_string(), agent("helper", &llm, "")));
    let a = MeshNode::start(specs.remove(0)).await;
    let mut spec_b = specs.remove(0);
    spec_b.seeds = vec![format!("http://{}", a.address)];
    let b = MeshNode::start(spec_b).await;
    let both = [&a, &b];
    eventually(CONVERGE, "both nodes see each other alive", || both.iter().all(|node| node.alive().len() == 2)).await;

    let agents = format!("{}/v1/agents", a.url);
    assert_eq!(send("GET", &agents, None, &[]).await.status, 401);
    assert_eq!(send("GET", &agents, None, &[("authorization", "Bearer mesh-secret")]).await.status, 401);
    assert_eq!(send("GET", &agents, None, &[("x-api-key", "api-key-1")]).await.status, 200);
    let state = format!("{}/v1/mesh/state", a.url);
    assert_eq!(send("GET", &state, None, &[]).await.status, 401);
    assert_eq!(send("GET", &state, None, &[("authorization", "Bearer mesh-secret")]).await.status, 200);
    // An operator reads the state with an API key (the UI, `astromesh mesh status`), but an API
    // key is no mesh secret: it cannot act as a peer.
    assert_eq!(send("GET", &state, None, &[("x-api-key", "api-key-1")]).await.status, 200);
    assert_eq!(send("GET", &state, None, &[("authorization", "Bearer api-key-1")]).await.status, 200);
    assert_eq!(send("GET", &state, None, &[("x-api-key", "wrong")]).await.status, 401);
    let join = json!({"node_id": "intruder", "address": "http://127.0.0.1:9"}).to_string().into_bytes();
    let refused = send("POST", &format!("{}/v1/mesh/join", a.url), Some(join), &[("x-api-key", "api-key-1")]).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    eventually(CONVERGE, "mk-a knows mk-b hosts helper", || {
        a.state().nodes.iter().any(|node| node.node_id == "mk-b" && node.agents.iter().any(|agent| agent == "helper"))
    })
    .await;

    // HTTP: the key in X-API-Key travels with the forwarded run.
    llm.push(Reply::text("Keyed hello."));
    let body = json!({"query": "hi"}).to_string().into_bytes();
    let run = send("POST", &format!("{}/v1/agents/helper/run", a.url), Some(body), &[("x-api-key", "api-key-1")]).await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json["response"], "Keyed hello.");
    // WebSocket: a browser sends the key as ?api_key=; the proxied socket presents it to mk-b.
    llm.push(Reply::text("Keyed stream."));
    let ws_url = format!("ws://{}/v1/ws/agent/helper?api_key=api-key-1", a.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.expect("websocket connects");
    socket.send(Message::Text(r#"{"query": "stream it"}"#.into())).await.unwrap();
    let frames = until_end(&mut socket).await;
    let last = frames.last().unwrap();
    assert_eq!(last["type"], "done", "{last}");

    // A reload on mk-a that adds an agent: peers learn it from the next heartbeats.
    std::fs::create_dir_all(a.config_dir.path().join("agents")).unwrap();
    std::fs::write(a.config_dir.path().join("agents/late.agent.yaml"), agent("late", &llm, "")).unwrap();
    let reloaded = send("POST", &format!("{}/v1/system/reload", a.url), None, &[("x-api-key", "api-key-1")]).await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text);
    eventually(CONVERGE, "mk-b learns that mk-a now hosts late", || {
        b.state().nodes.iter().any(|node| node.node_id == "mk-a" && node.agents.iter().any(|agent| agent == "late"))
    })
    .await;
    llm.push(Reply::text("Late hello."));
    let body = json!({"query": "hi"}).to_string().into_bytes();
    let run = send("POST", &format!("{}/v1/agents/late/run", b.url), Some(body), &[("x-api-key", "api-key-1")]).await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json["response"], "Late hello.");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn five_nodes_see_a_killed_leader_suspect_then_dead_and_elect_the_next_highest() {
    let mut nodes = cluster("m5k", 5, FAST).await;
    {
        let all: Vec<&MeshNode> = nodes.iter().collect();
        eventually(CONVERGE, "five alive nodes, m5k-04 leading everywhere", || {
            all.iter().all(|node| node.alive().len() == 5) && one_leader(&all, "m5k-04")
        })
        .await;
    }
    let mut leader = nodes.pop().unwrap();
    let killed_at = Instant::now();
    leader.kill();
    let rest: Vec<&MeshNode> = nodes.iter().collect();
    let bound = secs(FAST.failure + 2.0 * FAST.gossip);
    // The spec's bound is failure_timeout + 2 gossip intervals; the test allows twice that
    // because this machine is shared with compilers. The benchmark reports the real figure.
    eventually(bound * 2, "every survivor suspects m5k-04", || {
        rest.iter().all(|node| node.sees("m5k-04") != Some(NodeState::Alive))
    })
    .await;
    let suspected_after = killed_at.elapsed();
    assert!(
        suspected_after >= secs(FAST.failure) - secs(FAST.heartbeat) * 2,
        "suspected too early: {suspected_after:?}"
    );
    eventually(secs(FAST.dead + 2.0 * FAST.gossip) * 2, "every survivor declares m5k-04 dead", || {
        rest.iter().all(|node| node.sees("m5k-04") == Some(NodeState::Dead))
    })
    .await;
    eventually(CONVERGE, "m5k-03 leads everywhere", || one_leader(&rest, "m5k-03")).await;
    for node in &rest {
        assert_eq!(node.alive().len(), 4, "{} still sees the dead node alive", node.name);
    }
    drop(rest);
    drop(leader);
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_healed_partition_leaves_exactly_one_leader() {
    let nodes = cluster("m5p", 5, FAST).await;
    let all: Vec<&MeshNode> = nodes.iter().collect();
    eventually(CONVERGE, "five alive nodes, m5p-04 leading", || {
        all.iter().all(|node| node.alive().len() == 5) && one_leader(&all, "m5p-04")
    })
    .await;
    // Cut {00, 01} off from {02, 03, 04}, both ways.
    let (minority, majority) = all.split_at(2);
    let addresses = |side: &[&MeshNode]| side.iter().map(|node| node.address.clone()).collect::<Vec<_>>();
    for node in minority {
        node.mesh.block_peers(&addresses(majority));
    }
    for node in majority {
        node.mesh.block_peers(&addresses(minority));
    }
    eventually(CONVERGE, "the minority elects m5p-01; the majority keeps m5p-04", || {
        one_leader(minority, "m5p-01") && one_leader(majority, "m5p-04")
    })
    .await;
    eventually(CONVERGE, "each side holds the other dead", || {
        minority.iter().all(|node| node.sees("m5p-04") == Some(NodeState::Dead))
            && majority.iter().all(|node| node.sees("m5p-00") == Some(NodeState::Dead))
    })
    .await;
    for node in &all {
        node.mesh.heal();
    }
    eventually(CONVERGE, "after healing, all five alive and m5p-04 the one leader", || {
        all.iter().all(|node| node.alive().len() == 5) && one_leader(&all, "m5p-04")
    })
    .await;
    drop(all);
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_leaving_node_drains_its_in_flight_run_and_peers_drop_it_at_once() {
    let llm = ScriptedLlm::start().await;
    let first = MeshNode::start(NodeSpec::new("ml-a", &[], FAST)).await;
    let mut spec = NodeSpec::new("ml-b", &[first.address.as_str()], FAST);
    spec.files.push(("agents/slow.agent.yaml".to_string(), agent("slow", &llm, "")));
    let second = MeshNode::start(spec).await;
    eventually(CONVERGE, "both nodes see each other", || first.alive().len() == 2 && second.alive().len() == 2).await;

    // A slow run, sent to ml-a and forwarded to ml-b, is in flight when ml-b leaves.
    llm.push(Reply::text("worth the wait").delay(1500));
    let run_url = format!("{}/v1/agents/slow/run", first.url);
    let body = json!({"query": "take your time"}).to_string().into_bytes();
    let in_flight = tokio::spawn(async move { send("POST", &run_url, Some(body), &[]).await });
    llm.wait_for_requests(1).await;
    let leave_body = json!({"node_id": "ml-b"}).to_string().into_bytes();
    let left = send("POST", &format!("{}/v1/mesh/leave", second.url), Some(leave_body), &[]).await;
    assert_eq!(left.status, 200);
    assert_eq!(left.json, json!({"status": "left", "drained_requests": 1}));
    let run = in_flight.await.unwrap();
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json["response"], "worth the wait");
    // The peer dropped it when told, without waiting for the failure detector.
    assert_eq!(first.sees("ml-b"), None);
    // A node that left takes no more runs.
    let body = json!({"query": "again"}).to_string().into_bytes();
    let refused = send("POST", &format!("{}/v1/agents/slow/run", second.url), Some(body), &[]).await;
    assert_eq!(refused.status, 503);
    let status = send("GET", &format!("{}/v1/system/status", second.url), None, &[]).await;
    assert_eq!(status.json["mesh"]["status"], "left");
    first.stop().await;
    second.stop().await;
}

/// The real binary, configured only through `ASTROMESH_*` variables (clap `env`).
#[tokio::test]
async fn mesh_settings_reach_the_daemon_through_astromesh_variables() {
    use std::io::BufRead;
    let config_dir = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_astromesh"))
        .args(["serve", "--port", "0", "--config"])
        .arg(config_dir.path())
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("ASTROMESH_MESH_ENABLED", "true")
        .env("ASTROMESH_NODE_NAME", "env-node")
        .env("ASTROMESH_MESH_SECRET", "from-env")
        .env("ASTROMESH_SEEDS", "127.0.0.1:9,http://127.0.0.1:10")
        .env("ASTROMESH_GOSSIP_INTERVAL", "0.3")
        .env("ASTROMESH_GOSSIP_FANOUT", "2")
        .env("ASTROMESH_HEARTBEAT_INTERVAL", "0.2")
        .env("ASTROMESH_FAILURE_TIMEOUT", "1")
        .env("ASTROMESH_DEAD_TIMEOUT", "2")
        .env("ASTROMESH_CLEANUP_TIMEOUT", "5")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let address = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stderr).lines();
        let address = loop {
            let line = lines.next().expect("daemon exited before listening").unwrap();
            if let Some(rest) = line.split("listening address=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        address
    })
    .await
    .unwrap();
    let daemon = crate::support::Daemon { child, url: format!("http://{address}") };
    let unauthorised = send("GET", &format!("{}/v1/mesh/state", daemon.url), None, &[]).await;
    assert_eq!(unauthorised.status, 401);
    let state =
        send("GET", &format!("{}/v1/mesh/state", daemon.url), None, &[("authorization", "Bearer from-env")]).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.json["this_node"], "env-node");
    assert_eq!(state.json["nodes"][0]["address"], address.as_str(), "advertises the bound address");
    // Alone (the seeds do not answer), it leads itself.
    let leader = Instant::now();
    loop {
        let state =
            send("GET", &format!("{}/v1/mesh/state", daemon.url), None, &[("authorization", "Bearer from-env")]).await;
        if state.json["leader"] == "env-node" {
            break;
        }
        assert!(leader.elapsed() < CONVERGE, "a lone node elects itself");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = send("GET", &format!("{}/v1/system/status", daemon.url), None, &[]).await;
    assert_eq!(status.json["mode"], "mesh");
}
