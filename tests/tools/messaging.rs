//! send_webhook, send_slack and send_email against local servers.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{app_with, detail, execute};
use crate::support::web::{SmtpServer, WebServer};

async fn hooks() -> WebServer {
    WebServer::start(
        Router::new()
            .route("/hook", post(|Json(body): Json<Value>| async move { Json(json!({"received": body})) }))
            .route("/slack", post(|| async { "ok" }))
            .route("/broken", post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") })),
    )
    .await
}

#[tokio::test]
async fn send_webhook_posts_the_payload_with_headers() {
    let server = hooks().await;
    let app = app_with(json!({"send_webhook": {"allow_localhost": true}})).await;
    let answer = execute(
        &app,
        "send_webhook",
        json!({"url": format!("{}/hook", server.url), "payload": {"event": "done", "n": 2}, "headers": {"x-signature": "abc"}}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["output"], json!({"status_code": 200, "response": {"received": {"event": "done", "n": 2}}}));
    assert_eq!(server.requests()[0].header("x-signature"), Some("abc"));
    let broken = execute(&app, "send_webhook", json!({"url": format!("{}/broken", server.url), "payload": {}})).await;
    assert_eq!(broken.status, 502);
    assert!(detail(&broken).contains("HTTP 500: boom"), "{}", broken.text);
    app.stop().await;
}

#[tokio::test]
async fn send_slack_posts_text_to_the_incoming_webhook() {
    let server = hooks().await;
    let config = json!({"allow_localhost": true, "webhook_url": format!("{}/slack", server.url)});
    let app = app_with(json!({"send_slack": config})).await;
    let answer = execute(&app, "send_slack", json!({"message": "Deploy finished", "channel": "#ops"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["output"], json!({"sent": true, "status_code": 200, "response": "ok"}));
    assert_eq!(server.requests()[0].json(), json!({"text": "Deploy finished", "channel": "#ops"}));
    app.stop().await;
}

#[tokio::test]
async fn send_slack_without_a_webhook_names_the_setting() {
    if std::env::var_os("SLACK_WEBHOOK_URL").is_some() {
        eprintln!("notice: SLACK_WEBHOOK_URL is set in this environment; the missing-setting check is skipped");
        return;
    }
    let app = app_with(json!({})).await;
    let answer = execute(&app, "send_slack", json!({"message": "hi"})).await;
    assert_eq!(answer.status, 502);
    assert!(
        detail(&answer).contains("`webhook_url`") && detail(&answer).contains("SLACK_WEBHOOK_URL"),
        "{}",
        answer.text
    );
    app.stop().await;
}

#[tokio::test]
async fn send_email_delivers_through_smtp() {
    let smtp = SmtpServer::start().await;
    let config = json!({"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "from_address": "Agent <agent@example.com>", "tls": "none", "allow_localhost": true});
    let app = app_with(json!({"send_email": config})).await;
    let answer = execute(
        &app,
        "send_email",
        json!({"to": "ada@example.com, bob@example.com", "subject": "Weekly report", "body": "All systems nominal."}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["output"]["sent"], true);
    assert_eq!(answer.json["output"]["to"], json!(["ada@example.com", "bob@example.com"]));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let transcript = &messages[0];
    assert!(transcript.contains("MAIL FROM:<agent@example.com>"), "{transcript}");
    assert!(transcript.contains("RCPT TO:<ada@example.com>") && transcript.contains("RCPT TO:<bob@example.com>"));
    assert!(transcript.contains("Subject: Weekly report"));
    assert!(transcript.contains("All systems nominal."));
    app.stop().await;
}

#[tokio::test]
async fn send_email_requires_starttls_and_the_network_policy() {
    let smtp = SmtpServer::start().await;
    let starttls = json!({"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "from_address": "agent@example.com", "allow_localhost": true});
    let app = app_with(json!({"send_email": starttls})).await;
    let answer = execute(&app, "send_email", json!({"to": "ada@example.com", "subject": "s", "body": "b"})).await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(detail(&answer).contains("STARTTLS"), "{}", answer.text);
    assert!(smtp.messages().is_empty(), "nothing is sent in plain text");
    app.stop().await;

    let local =
        json!({"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "from_address": "agent@example.com", "tls": "none"});
    let app = app_with(json!({"send_email": local})).await;
    let answer = execute(&app, "send_email", json!({"to": "ada@example.com", "subject": "s", "body": "b"})).await;
    assert_eq!(answer.status, 502);
    assert!(detail(&answer).contains("loopback address"), "{}", answer.text);
    app.stop().await;
}
