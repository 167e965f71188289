//! Crash safety: every run that got a 200 keeps its turns after `kill -9`.

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::runs::agent;
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::{send, try_send, ConfigDir, Daemon};

#[tokio::test]
async fn acknowledged_runs_survive_kill_9() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("remembered").delay(2));
    let config = ConfigDir::new(&[("agents/keeper.agent.yaml", &agent("keeper", &llm, ""))]);
    let data = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::spawn(config.path(), data.path()).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for client in 0..8 {
        let url = daemon.url.clone();
        let acknowledged = acknowledged.clone();
        clients.push(tokio::spawn(async move {
            for run in 0..1000 {
                let session = format!("c{client}-r{run}");
                let body =
                    json!({"query": format!("remember {session}"), "session_id": session}).to_string().into_bytes();
                let answer = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    try_send("POST", &format!("{url}/v1/agents/keeper/run"), Some(body), &[]),
                )
                .await;
                match answer {
                    Ok(Ok(answer)) if answer.status == 200 => acknowledged.lock().unwrap().push(session),
                    _ => return,
                }
            }
        }));
    }
    // Kill once a good number of runs have been acknowledged, while others are in flight.
    loop {
        if acknowledged.lock().unwrap().len() >= 40 {
            break;
        }
        tokio::task::yield_now().await;
        llm.wait_for_requests(llm.request_count() + 1).await;
    }
    daemon.kill_hard();
    for client in clients {
        let _ = client.await; // Requests to the killed daemon fail; that ends each client.
    }
    let sessions = acknowledged.lock().unwrap().clone();
    assert!(sessions.len() >= 40);

    let daemon = Daemon::spawn(config.path(), data.path()).await;
    for session in &sessions {
        let history = send("GET", &format!("{}/v1/memory/keeper/history/{session}", daemon.url), None, &[]).await;
        assert_eq!(
            history.json["messages"],
            json!([{"role": "user", "content": format!("remember {session}")}, {"role": "assistant", "content": "remembered"}]),
            "session {session} lost its turns"
        );
    }
}
