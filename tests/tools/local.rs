//! The built-ins that need no network: datetime_now, json_transform, cache_store, the file
//! tools (and their sandbox), sql_query (and read-only databases), text_summarize's short path.

use serde_json::json;

use super::{app_with, detail, execute};
use crate::support::TestApp;

#[tokio::test]
async fn datetime_now_uses_iana_zones_and_falls_back_to_utc() {
    let app = TestApp::start(&[]).await;
    let madrid = execute(&app, "datetime_now", json!({"timezone": "Europe/Madrid"})).await;
    assert_eq!(madrid.status, 200, "{}", madrid.text);
    let output = &madrid.json["output"];
    assert_eq!(output["timezone"], "Europe/Madrid");
    let datetime = output["datetime"].as_str().unwrap();
    assert!(datetime.ends_with("+01:00") || datetime.ends_with("+02:00"), "{datetime}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((output["unix_timestamp"].as_i64().unwrap() - now).abs() < 60);
    let utc = execute(&app, "datetime_now", json!({})).await;
    assert_eq!(utc.json["output"]["timezone"], "UTC");
    let bogus = execute(&app, "datetime_now", json!({"timezone": "Mars/Olympus"})).await;
    assert_eq!(bogus.status, 200);
    assert_eq!(bogus.json["output"]["timezone"], "UTC");
    assert!(bogus.json["output"]["note"].as_str().unwrap().contains("Mars/Olympus"));
    app.stop().await;
}

#[tokio::test]
async fn json_transform_renders_json_with_jinja() {
    let app = TestApp::start(&[]).await;
    let data = json!({"items": [{"name": "a", "price": 2}, {"name": "b", "price": 3}]});
    let template = r#"{"count": {{ data["items"] | length }}, "names": {{ data["items"] | map(attribute="name") | list | tojson }}, "total": {{ data["items"] | map(attribute="price") | sum }}}"#;
    let answer = execute(&app, "json_transform", json!({"data": data, "template": template})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["output"], json!({"count": 2, "names": ["a", "b"], "total": 5}));
    let not_json = execute(&app, "json_transform", json!({"data": {}, "template": "hello {{ data }}"})).await;
    assert_eq!(not_json.status, 502);
    assert!(detail(&not_json).contains("did not produce JSON"), "{}", not_json.text);
    let endless = execute(
        &app,
        "json_transform",
        json!({"data": {}, "template": "{% for i in range(100000000) %}x{% endfor %}"}),
    )
    .await;
    assert_eq!(endless.status, 502);
    assert!(detail(&endless).contains("template error"), "{}", endless.text);
    app.stop().await;
}

#[tokio::test]
async fn cache_store_keeps_values_across_restarts_and_honours_ttl() {
    let app = TestApp::start(&[]).await;
    let set = execute(&app, "cache_store", json!({"action": "set", "key": "k", "value": {"n": 1}})).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json["output"]["stored"], true);
    let short = execute(&app, "cache_store", json!({"action": "set", "key": "short", "value": "v", "ttl": 0.2})).await;
    assert_eq!(short.status, 200);
    let got = execute(&app, "cache_store", json!({"action": "get", "key": "short"})).await;
    assert_eq!(got.json["output"], json!({"key": "short", "found": true, "value": "v"}));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let expired = execute(&app, "cache_store", json!({"action": "get", "key": "short"})).await;
    assert_eq!(expired.json["output"], json!({"key": "short", "found": false, "value": null}));

    let app = app.restart().await;
    let kept = execute(&app, "cache_store", json!({"action": "get", "key": "k"})).await;
    assert_eq!(kept.json["output"], json!({"key": "k", "found": true, "value": {"n": 1}}));
    let deleted = execute(&app, "cache_store", json!({"action": "delete", "key": "k"})).await;
    assert_eq!(deleted.json["output"], json!({"key": "k", "deleted": true}));
    let gone = execute(&app, "cache_store", json!({"action": "get", "key": "k"})).await;
    assert_eq!(gone.json["output"]["found"], false);
    app.stop().await;
}

#[tokio::test]
async fn file_tools_stay_inside_allowed_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("notes")).unwrap();
    std::fs::write(root.join("notes/a.txt"), "hello file").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("escape")).unwrap();
    let roots = json!({"allowed_paths": [root]});
    let app = app_with(json!({"read_file": roots, "write_file": roots})).await;

    let read = execute(&app, "read_file", json!({"path": "notes/a.txt"})).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json["output"]["content"], "hello file");
    assert_eq!(read.json["output"]["size"], 10);
    let absolute = execute(&app, "read_file", json!({"path": root.join("notes/../notes/a.txt")})).await;
    assert_eq!(absolute.status, 200);

    for escape in ["../secret.txt", "notes/../../secret.txt", "link.txt", "escape/secret.txt", "/etc/passwd"] {
        let answer = execute(&app, "read_file", json!({"path": escape})).await;
        assert_eq!(answer.status, 502, "{escape}: {}", answer.text);
        assert!(detail(&answer).contains("outside the allowed paths"), "{escape}: {}", answer.text);
    }

    let written = execute(&app, "write_file", json!({"path": "out/new.txt", "content": "written"})).await;
    assert_eq!(written.status, 200, "{}", written.text);
    assert_eq!(written.json["output"]["bytes_written"], 7);
    assert_eq!(std::fs::read_to_string(root.join("out/new.txt")).unwrap(), "written");
    for escape in ["../evil.txt", "escape/evil.txt", "link.txt", "missing/../../evil.txt"] {
        let answer = execute(&app, "write_file", json!({"path": escape, "content": "x"})).await;
        assert_eq!(answer.status, 502, "{escape}: {}", answer.text);
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("secret.txt")).unwrap(), "secret");
    assert!(!dir.path().join("evil.txt").exists());
    app.stop().await;
}

#[tokio::test]
async fn file_tools_without_roots_refuse() {
    let app = TestApp::start(&[]).await;
    let answer = execute(&app, "read_file", json!({"path": "/etc/hostname"})).await;
    assert_eq!(answer.status, 502);
    assert!(detail(&answer).contains("no `allowed_paths`"), "{}", answer.text);
    let write = execute(&app, "write_file", json!({"path": "/tmp/astromesh-never.txt", "content": "x"})).await;
    assert_eq!(write.status, 502);
    app.stop().await;
}

fn make_database(path: &std::path::Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL);
             INSERT INTO items (name, price) VALUES ('apple', 1.5), ('pear', 2.0), ('plum', NULL);",
        )
        .unwrap();
}

#[tokio::test]
async fn sql_query_reads_with_params_and_a_row_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    make_database(&db);
    let connection_string = format!("sqlite:///{}", db.display());
    let app = app_with(json!({"sql_query": {"connection_string": connection_string, "max_rows": 2}})).await;
    let answer = execute(
        &app,
        "sql_query",
        json!({"query": "SELECT name, price FROM items WHERE price > ? ORDER BY id", "params": [1]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json["output"],
        json!({"columns": ["name", "price"], "rows": [["apple", 1.5], ["pear", 2.0]], "row_count": 2, "truncated": false})
    );
    let all = execute(&app, "sql_query", json!({"query": "SELECT id FROM items"})).await;
    assert_eq!(all.json["output"]["row_count"], 2);
    assert_eq!(all.json["output"]["truncated"], true);
    app.stop().await;
}

#[tokio::test]
async fn sql_query_read_only_databases_refuse_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    make_database(&db);
    let app = app_with(json!({"sql_query": {"database": db}})).await;
    // Keyword regexes miss these; the read-only open does not.
    for write in [
        "INSERT INTO items (name) VALUES ('x')",
        "WITH doomed AS (SELECT 1) DELETE FROM items",
        "  update items set price = 0",
        "CREATE TABLE other (x)",
        "PRAGMA user_version = 7",
    ] {
        let answer = execute(&app, "sql_query", json!({"query": write})).await;
        assert_eq!(answer.status, 502, "{write}: {}", answer.text);
        assert!(detail(&answer).contains("read-only"), "{write}: {}", answer.text);
    }
    let attach = execute(
        &app,
        "sql_query",
        json!({"query": format!("ATTACH DATABASE '{}' AS other", dir.path().join("x.db").display())}),
    )
    .await;
    assert_eq!(attach.status, 502, "{}", attach.text);
    assert!(!dir.path().join("x.db").exists());
    let two = execute(&app, "sql_query", json!({"query": "SELECT 1; DELETE FROM items"})).await;
    assert_eq!(two.status, 502, "{}", two.text);
    app.stop().await;
    let count: i64 =
        rusqlite::Connection::open(&db).unwrap().query_row("SELECT count(*) FROM items", [], |row| row.get(0)).unwrap();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn sql_query_writes_when_read_only_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    make_database(&db);
    let app = app_with(json!({"sql_query": {"database": db, "read_only": false}})).await;
    let answer = execute(
        &app,
        "sql_query",
        json!({"query": "UPDATE items SET price = ? WHERE name = ?", "params": [9, "plum"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["output"], json!({"affected_rows": 1}));
    let missing = app_with(json!({"sql_query": {"database": dir.path().join("typo.db"), "read_only": false}})).await;
    let answer = execute(&missing, "sql_query", json!({"query": "SELECT 1"})).await;
    assert_eq!(answer.status, 502, "a missing database is not created: {}", answer.text);
    assert!(!dir.path().join("typo.db").exists());
    app.stop().await;
    missing.stop().await;
}

#[tokio::test]
async fn sql_query_without_a_database_names_the_setting() {
    let app = TestApp::start(&[]).await;
    let answer = execute(&app, "sql_query", json!({"query": "SELECT 1"})).await;
    assert_eq!(answer.status, 502);
    assert!(detail(&answer).contains("connection_string"), "{}", answer.text);
    app.stop().await;
}

#[tokio::test]
async fn text_summarize_returns_short_text_and_needs_a_model_for_long_text() {
    let app = TestApp::start(&[]).await;
    let short = execute(&app, "text_summarize", json!({"text": "Already short."})).await;
    assert_eq!(short.status, 200);
    assert_eq!(short.json["output"], json!({"summary": "Already short.", "summarized": false}));
    let long = execute(&app, "text_summarize", json!({"text": "word ".repeat(200)})).await;
    assert_eq!(long.status, 502);
    assert!(detail(&long).contains("needs a model"), "{}", long.text);
    app.stop().await;
}
