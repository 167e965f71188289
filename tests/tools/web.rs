//! The web built-ins against local servers, and the network policy: loopback, private and
//! metadata addresses are refused unless allowed, also after a redirect; size and time limits.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{app_with, detail, execute};
use crate::support::web::WebServer;
use crate::support::TestApp;

async fn site() -> WebServer {
    let router = Router::new()
        .route("/json", get(|| async { Json(json!({"hello": "world"})) }))
        .route("/echo", post(|body: String| async move { (StatusCode::CREATED, body) }))
        .route("/page", get(|| async {
            let html = "<html><head><title>Test page</title><script>alert(1)</script></head><body><h1>Welcome</h1><p>Some <em>useful</em> text.</p><p>More text here.</p></body></html>";
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html)
        }))
        .route("/moved", get(|| async { Redirect::permanent("/page") }))
        .route("/to-metadata", get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }))
        .route("/to-private", get(|| async { Redirect::to("http://10.11.12.13/internal") }))
        .route("/big", get(|| async { "x".repeat(2000) }))
        .route("/slow", get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }));
    WebServer::start(router).await
}

fn open() -> Value {
    json!({"allow_localhost": true})
}

#[tokio::test]
async fn http_request_sends_and_returns_status_headers_and_body() {
    let site = site().await;
    let app = app_with(json!({"http_request": open()})).await;
    let got = execute(
        &app,
        "http_request",
        json!({"method": "GET", "url": format!("{}/json", site.url), "headers": {"x-test": "1"}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let output = &got.json["output"];
    assert_eq!(output["status_code"], 200);
    assert_eq!(output["body"], json!({"hello": "world"}));
    assert_eq!(output["headers"]["content-type"], "application/json");
    assert_eq!(site.requests()[0].header("x-test"), Some("1"));
    let posted =
        execute(&app, "http_request", json!({"method": "POST", "url": format!("{}/echo", site.url), "body": {"a": 1}}))
            .await;
    assert_eq!(posted.json["output"]["status_code"], 201);
    assert_eq!(posted.json["output"]["body"], json!({"a": 1}));
    assert_eq!(site.requests()[1].header("content-type"), Some("application/json"));
    app.stop().await;
}

#[tokio::test]
async fn loopback_private_and_metadata_addresses_are_refused_by_default() {
    let site = site().await;
    let app = TestApp::start(&[]).await;
    let port = site.url.rsplit(':').next().unwrap().to_string();
    for (url, range) in [
        (format!("{}/json", site.url), "loopback"),
        (format!("http://localhost:{port}/json"), "loopback"),
        ("http://10.1.2.3/".to_string(), "private"),
        ("http://192.168.0.1/".to_string(), "private"),
        ("http://169.254.169.254/latest/meta-data/".to_string(), "cloud metadata"),
        ("http://100.64.0.1/".to_string(), "carrier-grade NAT"),
        ("http://[::ffff:127.0.0.1]/".to_string(), "loopback"),
        ("http://0.0.0.0/".to_string(), "unspecified"),
    ] {
        let answer = execute(&app, "http_request", json!({"method": "GET", "url": url})).await;
        assert_eq!(answer.status, 502, "{url}: {}", answer.text);
        assert!(detail(&answer).contains(&format!("{range} address")), "{url}: {}", answer.text);
    }
    let scheme = execute(&app, "web_scrape", json!({"url": "file:///etc/passwd"})).await;
    assert!(detail(&scheme).contains("only http and https"), "{}", scheme.text);
    assert!(site.requests().is_empty(), "nothing reached the local server");
    app.stop().await;
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop() {
    let site = site().await;
    let app = app_with(json!({"http_request": {"allowed_hosts": ["127.0.0.1"]}, "web_scrape": open()})).await;
    let metadata =
        execute(&app, "http_request", json!({"method": "GET", "url": format!("{}/to-metadata", site.url)})).await;
    assert_eq!(metadata.status, 502, "{}", metadata.text);
    assert!(detail(&metadata).contains("169.254.169.254"), "{}", metadata.text);
    let private = execute(&app, "web_scrape", json!({"url": format!("{}/to-private", site.url)})).await;
    assert_eq!(private.status, 502);
    assert!(detail(&private).contains("10.11.12.13"), "{}", private.text);
    let endless = execute(&app, "web_scrape", json!({"url": format!("{}/loop", site.url)})).await;
    assert!(detail(&endless).contains("more than 10 redirects"), "{}", endless.text);
    app.stop().await;
}

#[tokio::test]
async fn responses_are_limited_in_size_and_time() {
    let site = site().await;
    let app = app_with(
        json!({"http_request": {"allow_localhost": true, "max_response_bytes": 1000, "timeout_seconds": 0.5}}),
    )
    .await;
    let big = execute(&app, "http_request", json!({"method": "GET", "url": format!("{}/big", site.url)})).await;
    assert_eq!(big.status, 502);
    assert!(detail(&big).contains("exceeds max_response_bytes (1000 bytes)"), "{}", big.text);
    let started = std::time::Instant::now();
    let slow = execute(&app, "http_request", json!({"method": "GET", "url": format!("{}/slow", site.url)})).await;
    assert_eq!(slow.status, 502);
    assert!(detail(&slow).contains("within 0.5s"), "{}", slow.text);
    assert!(started.elapsed() < Duration::from_secs(3));
    app.stop().await;
}

#[tokio::test]
async fn web_scrape_follows_redirects_and_returns_readable_text() {
    let site = site().await;
    let app = app_with(json!({"web_scrape": open()})).await;
    let answer = execute(&app, "web_scrape", json!({"url": format!("{}/moved", site.url)})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let output = &answer.json["output"];
    assert_eq!(output["url"], format!("{}/page", site.url));
    assert_eq!(output["title"], "Test page");
    assert_eq!(output["content"], "Welcome\nSome useful text.\nMore text here.");
    assert_eq!(output["truncated"], false);
    let short = execute(&app, "web_scrape", json!({"url": format!("{}/page", site.url), "max_length": 7})).await;
    assert_eq!(short.json["output"]["content"], "Welcome");
    assert_eq!(short.json["output"]["truncated"], true);
    app.stop().await;
}

#[tokio::test]
async fn graphql_query_posts_query_and_variables() {
    let server = WebServer::start(Router::new().route(
        "/graphql",
        post(|Json(body): Json<Value>| async move { Json(json!({"data": {"echo": body["variables"]["name"]}})) }),
    ))
    .await;
    let app = app_with(json!({"graphql_query": open()})).await;
    let query = "query($name: String) { echo(name: $name) }";
    let answer = execute(
        &app,
        "graphql_query",
        json!({"endpoint": format!("{}/graphql", server.url), "query": query, "variables": {"name": "ada"}, "headers": {"authorization": "Bearer t"}}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["output"], json!({"data": {"echo": "ada"}}));
    let seen = &server.requests()[0];
    assert_eq!(seen.json(), json!({"query": query, "variables": {"name": "ada"}}));
    assert_eq!(seen.header("authorization"), Some("Bearer t"));
    app.stop().await;
}

#[tokio::test]
async fn web_search_calls_the_configured_tavily_endpoint() {
    let server = WebServer::start(Router::new().route(
        "/search",
        post(|| async {
            Json(json!({"query": "rust", "answer": null, "results": [
                {"title": "Rust", "url": "https://www.rust-lang.org", "content": "A language", "score": 0.9, "raw_content": null},
                {"title": "Book", "url": "https://doc.rust-lang.org/book", "content": "The book", "score": 0.8}
            ]}))
        }),
    ))
    .await;
    let config = json!({"allow_localhost": true, "endpoint": format!("{}/search", server.url), "api_key": "tvly-test"});
    let app = app_with(json!({"web_search": config})).await;
    let answer = execute(&app, "web_search", json!({"query": "rust", "max_results": 1})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json["output"],
        json!({"query": "rust", "results": [{"title": "Rust", "url": "https://www.rust-lang.org", "content": "A language", "score": 0.9}]})
    );
    let seen = &server.requests()[0];
    assert_eq!(seen.header("authorization"), Some("Bearer tvly-test"));
    assert_eq!(seen.json()["query"], "rust");
    assert_eq!(seen.json()["max_results"], 1);
    app.stop().await;
}

#[tokio::test]
async fn web_search_without_a_key_names_the_setting() {
    if std::env::var_os("SEARCH_API_KEY").is_some() {
        eprintln!("notice: SEARCH_API_KEY is set in this environment; the missing-key check is skipped");
        return;
    }
    let app = app_with(json!({"web_search": {"endpoint": "http://127.0.0.1:9/search"}})).await;
    let answer = execute(&app, "web_search", json!({"query": "rust"})).await;
    assert_eq!(answer.status, 502);
    assert_eq!(
        detail(&answer),
        "Tool 'web_search' failed: web_search needs `api_key` in the tool's config or the SEARCH_API_KEY environment variable"
    );
    app.stop().await;
}

#[tokio::test]
async fn wikipedia_reads_a_summary_from_the_configured_endpoint() {
    let server = WebServer::start(Router::new().route(
        "/{lang}/summary/{topic}",
        get(|axum::extract::Path((lang, topic)): axum::extract::Path<(String, String)>| async move {
            if topic == "Nothing_here" {
                return (StatusCode::NOT_FOUND, Json(json!({"title": "Not found."}))).into_response();
            }
            Json(json!({
                "title": topic.replace('_', " "),
                "extract": format!("An article in {lang}."),
                "content_urls": {"desktop": {"page": format!("https://{lang}.wikipedia.org/wiki/{topic}")}}
            }))
            .into_response()
        }),
    ))
    .await;
    let config = json!({"allow_localhost": true, "endpoint": format!("{}/{{lang}}/summary/{{topic}}", server.url)});
    let app = app_with(json!({"wikipedia": config})).await;
    let answer = execute(&app, "wikipedia", json!({"topic": "Rust (programming language)", "language": "es"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json["output"],
        json!({"title": "Rust (programming language)", "extract": "An article in es.", "url": "https://es.wikipedia.org/wiki/Rust_(programming_language)"})
    );
    assert_eq!(server.requests()[0].uri, "/es/summary/Rust_%28programming_language%29");
    let missing = execute(&app, "wikipedia", json!({"topic": "Nothing here"})).await;
    assert_eq!(missing.status, 502);
    assert!(detail(&missing).contains("No Wikipedia article found for 'Nothing here'"), "{}", missing.text);
    let injected = execute(&app, "wikipedia", json!({"topic": "x", "language": "evil.com/"})).await;
    assert_eq!(injected.status, 422);
    app.stop().await;
}
