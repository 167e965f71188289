//! The web built-ins: http_request, graphql_query, web_search, web_scrape and wikipedia.
//!
//! All of them send through `fetch`, so the network policy (addresses, redirects, size, time)
//! applies to each, with the tool's `config` choosing its exceptions and limits. The search and
//! encyclopedia endpoints are configurable (`config.endpoint`) so tests and private mirrors can
//! stand in for the public services. HTML becomes text in `html`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::html::html_to_text;
use super::{opt_str, opt_u64, setting, str_arg, string_pairs, BuiltinCall, ToolFailure};
use crate::tools::fetch::{fetch, HttpCall, HttpReply};
use crate::tools::policy::NetPolicy;

const TAVILY_ENDPOINT: &str = "https://api.tavily.com/search";
const WIKIPEDIA_ENDPOINT: &str = "https://{lang}.wikipedia.org/api/rest_v1/page/summary/{topic}";

/// What a path segment keeps unescaped (RFC 3986 unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn policy(call: &BuiltinCall<'_>) -> NetPolicy {
    NetPolicy::from_config(call.config, call.timeout)
}

/// A failure naming the service and the HTTP status, with the start of the body.
fn status_failure(what: &str, reply: &HttpReply) -> ToolFailure {
    let body: String = reply.text().chars().take(300).collect();
    ToolFailure::failed(format!("{what} answered HTTP {}: {body}", reply.status))
}

pub(super) async fn http_request(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let method = str_arg(call.input, "method")?.to_ascii_uppercase();
    let url = str_arg(call.input, "url")?;
    let mut headers = string_pairs(call.input.get("headers"));
    let body = match call.input.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone().into_bytes()),
        Some(json_body) => {
            if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                headers.push(("content-type".to_string(), "application/json".to_string()));
            }
            Some(json_body.to_string().into_bytes())
        }
    };
    let reply = fetch(&policy(call), HttpCall { method, url: url.to_string(), headers, body }).await?;
    let headers: serde_json::Map<String, Value> =
        reply.headers.iter().map(|(name, value)| (name.clone(), json!(value))).collect();
    Ok(json!({"status_code": reply.status, "headers": headers, "body": reply.body_value(), "url": reply.url}))
}

pub(super) async fn graphql_query(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let endpoint = str_arg(call.input, "endpoint")?;
    let query = str_arg(call.input, "query")?;
    let variables = call.input.get("variables").cloned().unwrap_or_else(|| json!({}));
    let headers = string_pairs(call.input.get("headers"));
    let payload = json!({"query": query, "variables": variables});
    let reply = fetch(&policy(call), HttpCall::post_json(endpoint, &payload, headers)).await?;
    match reply.body_value() {
        // GraphQL servers answer errors with 200 or 4xx and an `errors` list; both are the answer.
        body @ Value::Object(_) => Ok(body),
        _ if !reply.is_success() => Err(status_failure("the GraphQL endpoint", &reply)),
        _ => Err(ToolFailure::failed("the GraphQL endpoint did not answer with JSON")),
    }
}

pub(super) async fn web_search(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let query = str_arg(call.input, "query")?;
    let max_results = opt_u64(call.input, "max_results").unwrap_or(5).clamp(1, 20);
    if let Some(provider) = call.config.get("provider").and_then(Value::as_str) {
        if provider != "tavily" {
            return Err(ToolFailure::failed(format!("unsupported search provider '{provider}' (only 'tavily')")));
        }
    }
    let Some(api_key) = setting(call.config, "api_key", "SEARCH_API_KEY") else {
        return Err(ToolFailure::MissingSetting {
            tool: "web_search",
            setting: "api_key",
            env: Some("SEARCH_API_KEY"),
        });
    };
    let endpoint = call.config.get("endpoint").and_then(Value::as_str).unwrap_or(TAVILY_ENDPOINT);
    // The key goes in the header (Tavily's current API) and the body (its original one).
    let payload = json!({"query": query, "max_results": max_results, "api_key": api_key});
    let headers = vec![("authorization".to_string(), format!("Bearer {api_key}"))];
    let reply = fetch(&policy(call), HttpCall::post_json(endpoint, &payload, headers)).await?;
    if !reply.is_success() {
        return Err(status_failure("the search service", &reply));
    }
    let body = reply.body_value();
    let results: Vec<Value> = body
        .get("results")
        .and_then(Value::as_array)
        .map(|results| {
            results
                .iter()
                .take(max_results as usize)
                .map(|result| {
                    json!({
                        "title": result.get("title").cloned().unwrap_or(Value::Null),
                        "url": result.get("url").cloned().unwrap_or(Value::Null),
                        "content": result.get("content").cloned().unwrap_or(Value::Null),
                        "score": result.get("score").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .ok_or_else(|| ToolFailure::failed("the search service answered without `results`"))?;
    let mut output = json!({"query": query, "results": results});
    if let (Some(answer), Some(map)) = (body.get("answer").filter(|answer| !answer.is_null()), output.as_object_mut()) {
        map.insert("answer".to_string(), answer.clone());
    }
    Ok(output)
}

pub(super) async fn web_scrape(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let url = str_arg(call.input, "url")?;
    let max_length = opt_u64(call.input, "max_length").unwrap_or(10_000) as usize;
    let reply = fetch(&policy(call), HttpCall::get(url)).await?;
    if !reply.is_success() {
        return Err(status_failure(url, &reply));
    }
    let is_html = reply.header("content-type").is_none_or(|kind| kind.contains("html"));
    let final_url = reply.url.clone();
    let (title, text) = if is_html {
        let html = reply.text();
        tokio::task::spawn_blocking(move || html_to_text(&html)).await?
    } else {
        (None, reply.text())
    };
    let length = text.chars().count();
    let content: String = text.chars().take(max_length).collect();
    Ok(
        json!({"url": final_url, "title": title, "content": content, "length": length, "truncated": length > max_length}),
    )
}

pub(super) async fn wikipedia(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let topic = str_arg(call.input, "topic")?;
    let language = opt_str(call.input, "language").unwrap_or("en");
    // The schema checks the pattern too; the language becomes part of a host name.
    if !language.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-') || language.is_empty() {
        return Err(ToolFailure::failed(format!("invalid language code '{language}'")));
    }
    let title = topic.trim().replace(' ', "_");
    let endpoint = call.config.get("endpoint").and_then(Value::as_str).unwrap_or(WIKIPEDIA_ENDPOINT);
    let url =
        endpoint.replace("{lang}", language).replace("{topic}", &utf8_percent_encode(&title, SEGMENT).to_string());
    let reply = fetch(&policy(call), HttpCall::get(&url)).await?;
    if reply.status == 404 {
        return Err(ToolFailure::failed(format!("No Wikipedia article found for '{topic}'")));
    }
    if !reply.is_success() {
        return Err(status_failure("Wikipedia", &reply));
    }
    let body = reply.body_value();
    let page_url =
        body.pointer("/content_urls/desktop/page").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
            format!("https://{language}.wikipedia.org/wiki/{}", utf8_percent_encode(&title, SEGMENT))
        });
    Ok(json!({
        "title": body.get("title").and_then(Value::as_str).unwrap_or(topic),
        "extract": body.get("extract").and_then(Value::as_str).unwrap_or_default(),
        "url": page_url,
    }))
}
