//! `status`, `doctor`, `metrics` and `mesh status`: read-only views of a daemon.
//!
//! `doctor` exits 1 when a check is failing, so it can gate a deploy script. Every failure of
//! `mesh status` (mesh off: 503 "Mesh not enabled on this node", unreachable, a bad answer)
//! is wrapped in `CliError::Mesh`, exit code 4.

use serde_json::Value;

use super::output::{cell, millis, print_json, print_lines, print_table, table};
use super::{CliError, Context};

pub(crate) fn status(context: &Context) -> Result<(), CliError> {
    let status = context.client.get("/v1/system/status")?;
    if context.json {
        return print_json(&status);
    }
    let providers = &status["providers"];
    let mut rows = table(&["FIELD", "VALUE"]);
    for key in ["status", "version", "mode", "pid", "uptime_seconds", "agents_loaded"] {
        rows.add_row(vec![key.to_string(), cell(&status[key])]);
    }
    rows.add_row(vec![
        "providers".to_string(),
        format!(
            "{} healthy, {} degraded, {} unavailable",
            cell(&providers["healthy"]),
            cell(&providers["degraded"]),
            cell(&providers["unavailable"])
        ),
    ]);
    print_table(&rows, "")
}

pub(crate) fn doctor(context: &Context) -> Result<(), CliError> {
    let report = context.client.get("/v1/system/doctor")?;
    let failing = report["summary"]["failing"].as_u64().unwrap_or_default();
    if context.json {
        print_json(&report)?;
    } else {
        let mut rows = table(&["CHECK", "STATUS", "MESSAGE"]);
        for check in report["checks"].as_array().into_iter().flatten() {
            rows.add_row(vec![cell(&check["name"]), cell(&check["status"]), cell(&check["message"])]);
        }
        print_table(&rows, "no checks")?;
        let summary = &report["summary"];
        print_lines(&[format!(
            "{} healthy, {} degraded, {} failing",
            cell(&summary["healthy"]),
            cell(&summary["degraded"]),
            cell(&summary["failing"])
        )])?;
    }
    if failing > 0 {
        return Err(CliError::Unhealthy(format!("{failing} check(s) failing")));
    }
    Ok(())
}

pub(crate) fn metrics(context: &Context) -> Result<(), CliError> {
    let snapshot = context.client.get("/v1/metrics")?;
    if context.json {
        return print_json(&snapshot);
    }
    let mut counters = table(&["COUNTER", "VALUE"]);
    for (name, value) in snapshot["counters"].as_object().into_iter().flatten() {
        counters.add_row(vec![name.clone(), cell(value)]);
    }
    print_table(&counters, "no counters yet")?;
    let mut histograms = table(&["HISTOGRAM", "COUNT", "AVG", "MIN", "MAX"]);
    for (name, histogram) in snapshot["histograms"].as_object().into_iter().flatten() {
        let number = |key: &str| match histogram[key].as_f64() {
            Some(value) if name.ends_with("_ms") => millis(&Value::from(value)),
            Some(value) => format!("{value:.2}").trim_end_matches('0').trim_end_matches('.').to_string(),
            None => String::new(),
        };
        histograms.add_row(vec![name.clone(), cell(&histogram["count"]), number("avg"), number("min"), number("max")]);
    }
    print_lines(&[String::new()])?;
    print_table(&histograms, "no histograms yet")
}

pub(crate) fn mesh_status(context: &Context) -> Result<(), CliError> {
    let state = context.client.get("/v1/mesh/state").map_err(|error| CliError::Mesh(Box::new(error)))?;
    if context.json {
        return print_json(&state);
    }
    print_lines(&[format!("this node: {}  leader: {}", cell(&state["this_node"]), cell(&state["leader"]))])?;
    let mut rows = table(&["NODE", "ADDRESS", "STATE", "HEARTBEAT", "ACTIVE", "AGENTS"]);
    for node in state["nodes"].as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&node["node_id"]),
            cell(&node["address"]),
            cell(&node["state"]),
            cell(&node["heartbeat"]),
            cell(&node["active_requests"]),
            cell(&node["agents"]),
        ]);
    }
    print_table(&rows, "no nodes")
}
