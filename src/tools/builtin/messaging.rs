//! The messaging built-ins: send_webhook, send_slack (incoming webhook) and send_email (SMTP).
//!
//! Webhooks go through `fetch` and its network policy. SMTP is lettre's blocking transport on
//! the blocking pool; its host is resolved here and checked with the same `NetPolicy` (so a
//! private relay needs `allow_localhost` or `allowed_hosts`), then lettre connects to the
//! checked address while TLS verifies the certificate against the configured host name.
//! `tls: starttls` (the default) *requires* STARTTLS: a server that does not offer it is an
//! error, never a silent plain-text fallback. `tls: tls` is implicit TLS (port 465);
//! `tls: none` is plain SMTP, for a local relay.

use std::net::ToSocketAddrs;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::{json, Value};

use super::{opt_str, setting, str_arg, string_pairs, BuiltinCall, ToolFailure};
use crate::tools::fetch::{fetch, HttpCall};
use crate::tools::policy::NetPolicy;

pub(super) async fn send_webhook(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let url = str_arg(call.input, "url")?;
    let payload = call.input.get("payload").cloned().unwrap_or(Value::Null);
    let headers = string_pairs(call.input.get("headers"));
    let policy = NetPolicy::from_config(call.config, call.timeout);
    let reply = fetch(&policy, HttpCall::post_json(url, &payload, headers)).await?;
    if !reply.is_success() {
        let body: String = reply.text().chars().take(300).collect();
        return Err(ToolFailure::failed(format!("the webhook answered HTTP {}: {body}", reply.status)));
    }
    Ok(json!({"status_code": reply.status, "response": reply.body_value()}))
}

pub(super) async fn send_slack(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let message = str_arg(call.input, "message")?;
    let Some(webhook_url) = setting(call.config, "webhook_url", "SLACK_WEBHOOK_URL") else {
        return Err(ToolFailure::MissingSetting {
            tool: "send_slack",
            setting: "webhook_url",
            env: Some("SLACK_WEBHOOK_URL"),
        });
    };
    let mut payload = json!({"text": message});
    if let (Some(channel), Some(map)) = (opt_str(call.input, "channel"), payload.as_object_mut()) {
        map.insert("channel".to_string(), json!(channel));
    }
    let policy = NetPolicy::from_config(call.config, call.timeout);
    let reply = fetch(&policy, HttpCall::post_json(&webhook_url, &payload, Vec::new())).await?;
    if !reply.is_success() {
        let body: String = reply.text().chars().take(300).collect();
        return Err(ToolFailure::failed(format!("Slack answered HTTP {}: {body}", reply.status)));
    }
    Ok(json!({"sent": true, "status_code": reply.status, "response": reply.text()}))
}

/// The SMTP settings, from the tool's config or the `SMTP_*` environment variables.
struct SmtpSettings {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    from: String,
    tls: TlsMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    StartTls,
    Implicit,
    Plain,
}

fn smtp_settings(config: &serde_json::Map<String, Value>) -> Result<SmtpSettings, ToolFailure> {
    let missing = |setting, env| ToolFailure::MissingSetting { tool: "send_email", setting, env: Some(env) };
    let host = setting(config, "smtp_host", "SMTP_HOST").ok_or_else(|| missing("smtp_host", "SMTP_HOST"))?;
    let from = setting(config, "from_address", "SMTP_FROM").ok_or_else(|| missing("from_address", "SMTP_FROM"))?;
    let tls = match config.get("tls").and_then(Value::as_str).unwrap_or("starttls") {
        "starttls" => TlsMode::StartTls,
        "tls" | "ssl" | "implicit" => TlsMode::Implicit,
        "none" => TlsMode::Plain,
        other => return Err(ToolFailure::failed(format!("unknown tls mode '{other}' (starttls, tls or none)"))),
    };
    let default_port = if tls == TlsMode::Implicit { 465 } else { 587 };
    let port = match setting(config, "smtp_port", "SMTP_PORT") {
        Some(text) => text.parse::<u16>().map_err(|_| ToolFailure::failed(format!("invalid smtp_port '{text}'")))?,
        None => default_port,
    };
    Ok(SmtpSettings {
        host,
        port,
        user: setting(config, "smtp_user", "SMTP_USER"),
        password: setting(config, "smtp_password", "SMTP_PASSWORD"),
        from,
        tls,
    })
}

pub(super) async fn send_email(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let to = str_arg(call.input, "to")?;
    let subject = str_arg(call.input, "subject")?;
    let body = str_arg(call.input, "body")?;
    let settings = smtp_settings(call.config)?;
    let policy = NetPolicy::from_config(call.config, call.timeout);
    let invalid = |what: &str, error: &dyn std::fmt::Display| ToolFailure::failed(format!("invalid {what}: {error}"));
    let mut builder = Message::builder()
        .from(settings.from.parse().map_err(|error| invalid("from_address", &error))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    let recipients: Vec<&str> = to.split(',').map(str::trim).filter(|address| !address.is_empty()).collect();
    if recipients.is_empty() {
        return Err(ToolFailure::failed("`to` names no recipient"));
    }
    for recipient in &recipients {
        builder = builder.to(recipient.parse().map_err(|error| invalid("recipient", &error))?);
    }
    let message = builder.body(body.to_string()).map_err(|error| invalid("message", &error))?;
    let recipients: Vec<String> = recipients.into_iter().map(str::to_string).collect();
    tokio::task::spawn_blocking(move || {
        let SmtpSettings { host, port, user, password, tls, .. } = settings;
        let resolve_failure =
            |reason: String| ToolFailure::failed(format!("cannot resolve the SMTP host {host}: {reason}"));
        let addrs: Vec<_> =
            (host.as_str(), port).to_socket_addrs().map_err(|error| resolve_failure(error.to_string()))?.collect();
        let mut allowed = None;
        for addr in &addrs {
            policy.check(&host, addr.ip()).map_err(ToolFailure::from)?;
            allowed.get_or_insert(addr.ip());
        }
        let ip = allowed.ok_or_else(|| resolve_failure("no address".to_string()))?;
        let tls_parameters = || {
            TlsParameters::new(host.clone()).map_err(|error| ToolFailure::failed(format!("TLS setup failed: {error}")))
        };
        let tls = match tls {
            TlsMode::StartTls => Tls::Required(tls_parameters()?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters()?),
            TlsMode::Plain => Tls::None,
        };
        let mut transport =
            SmtpTransport::builder_dangerous(ip.to_string()).port(port).tls(tls).timeout(Some(policy.timeout));
        if let Some(user) = user {
            transport = transport.credentials(Credentials::new(user, password.unwrap_or_default()));
        }
        let response = transport.build().send(&message).map_err(|error| {
            let hint = if error.to_string().to_ascii_lowercase().contains("tls") {
                " (tls: starttls requires the server to offer STARTTLS)"
            } else {
                ""
            };
            ToolFailure::failed(format!("SMTP delivery through {host}:{port} failed: {error}{hint}"))
        })?;
        let reply = response.message().collect::<Vec<_>>().join(" ");
        Ok(json!({"sent": true, "to": recipients, "response": reply}))
    })
    .await?
}
