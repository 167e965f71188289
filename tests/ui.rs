//! The web UI: served at `/` from the embedded `assets/`, self-contained, and rendering real data
//! in headless Chromium (when it is installed; `.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::runs::{app_with, CLIENT_TOOLS};
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::{agent_yaml, send, TestApp};

fn asset_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
}

fn url_path(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
    if relative == "index.html" {
        "/".to_string()
    } else {
        format!("/assets/{relative}")
    }
}

#[tokio::test]
async fn the_ui_is_served_with_content_types_and_caching() {
    let app = TestApp::start(&[("agents/a.agent.yaml", &agent_yaml("a", "http://127.0.0.1:9/v1"))]).await;
    let index = app.get("/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(index.text.contains("<title>Astromesh</title>"), "{}", index.text);
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let etag = index.header("etag").expect("an ETag").to_string();

    let revalidated = send("GET", &format!("{}/", app.url), None, &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, 304);

    for (path, kind) in [
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/js/app.js", "text/javascript; charset=utf-8"),
        ("/assets/js/views/chat.js", "text/javascript; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("content-type"), Some(kind), "{path}");
    }
    // Every file in assets/ is embedded and served with the bytes on disk.
    for file in asset_files() {
        let answer = app.get(&url_path(&file)).await;
        assert_eq!(answer.status, 200, "{}", file.display());
        assert_eq!(answer.text.as_bytes(), std::fs::read(&file).unwrap(), "{}", file.display());
    }
    app.stop().await;
}

#[tokio::test]
async fn api_paths_keep_the_json_404_and_ui_routes_fall_back_to_index() {
    let app = TestApp::start(&[]).await;
    for path in ["/v1/unknown", "/v1", "/v1/agents/x/y/z", "/assets/missing.js"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.json, json!({"detail": "Not Found"}), "{path}");
    }
    let route = app.get("/chat/helper").await;
    assert_eq!(route.status, 200);
    assert_eq!(route.header("content-type"), Some("text/html; charset=utf-8"));
    let posted = app.post("/chat/helper", &json!({})).await;
    assert_eq!(posted.status, 404);
    assert_eq!(posted.json["detail"], "Not Found");
    app.stop().await;
}

#[test]
fn assets_reference_no_external_urls() {
    // The SVG namespace is an identifier, not a fetch.
    let allowed = ["http://www.w3.org/2000/svg"];
    for file in asset_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("http") {
            let tail = &rest[start..];
            if tail.starts_with("http://") || tail.starts_with("https://") {
                assert!(
                    allowed.iter().any(|ok| tail.starts_with(ok)),
                    "{}: external URL at {:?}",
                    file.display(),
                    &tail[..tail.len().min(60)]
                );
            }
            rest = &rest[start + 4..];
        }
        for banned in ["//fonts.", "cdn.", "unpkg", "jsdelivr"] {
            assert!(!text.contains(banned), "{}: {banned}", file.display());
        }
    }
}

#[test]
fn assets_never_render_through_inner_html() {
    for file in asset_files().into_iter().filter(|file| file.extension().is_some_and(|ext| ext == "js")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"] {
            assert!(!text.contains(banned), "{}: uses {banned}", file.display());
        }
    }
}

/// Headless Chromium, when installed.
struct Browser {
    binary: PathBuf,
    profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    fn find() -> Option<Browser> {
        let binary = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
            let found = Command::new("which").arg(name).output().ok()?;
            found.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()))
        })?;
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let shots = target.join("ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser { binary, profile: tempfile::tempdir().unwrap(), shots })
    }

    fn command(&self, width: u32) -> Command {
        let mut command = Command::new(&self.binary);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
            &format!("--window-size={width},900"),
            &format!("--user-data-dir={}", self.profile.path().display()),
        ]);
        command
    }

    /// The DOM after the page's scripts ran; panics on a console error.
    async fn dump_dom(&self, url: &str) -> String {
        let mut command = self.command(1280);
        command.arg("--dump-dom").arg(url);
        let (dom, stderr) = run(command).await;
        assert!(dom.contains("</html>"), "no DOM for {url}: {stderr}");
        check_page_errors(url, &dom);
        dom
    }

    /// Screenshots `url` at 1280 and 360 px into the target dir.
    async fn screenshots(&self, url: &str, name: &str) {
        for width in [1280, 360] {
            let file = self.shots.join(format!("{name}-{width}.png"));
            let mut command = self.command(width);
            command.arg(format!("--screenshot={}", file.display())).arg(url);
            let (_, stderr) = run(command).await;
            assert!(file.exists(), "screenshot {} was not written: {stderr}", file.display());
        }
    }
}

async fn run(mut command: Command) -> (String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || command.output().expect("chromium runs")),
    )
    .await
    .expect("chromium finishes")
    .unwrap();
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The page's own error banner (`assets/js/errors.js`) catches uncaught errors and failed
/// module loads; headless Chromium does not print console messages without DevTools.
fn check_page_errors(url: &str, dom: &str) {
    assert!(!dom.contains("id=\"ui-error\""), "the UI reported an error on {url}: {dom}");
}

#[tokio::test]
async fn the_browser_renders_agents_chat_traces_and_knowledge() {
    let Some(browser) = Browser::find() else {
        eprintln!("NOTICE: chromium is not installed; skipping the browser test (.ci/run installs it)");
        return;
    };
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::tool_call("lookup_company", json!({"company_name": "Acme"})));
    llm.push(Reply::text("Acme is a fine company indeed.").with_usage(20, 6));
    let app = app_with(&llm, &[("helper", CLIENT_TOOLS)]).await;
    let base = &app.url;

    let agents = browser.dump_dom(&format!("{base}/#/agents")).await;
    assert!(agents.contains("id=\"agent-list\""), "{agents}");
    assert!(agents.contains("data-agent=\"helper\""), "{agents}");
    assert!(agents.contains("openai_compat/test-model"), "{agents}");

    let detail = browser.dump_dom(&format!("{base}/#/agents/helper")).await;
    assert!(detail.contains("Model routing") && detail.contains("lookup_company"), "{detail}");

    // The chat view sends `q` over the WebSocket. `--dump-dom` does not wait for WebSocket frames
    // (virtual time only waits for fetches), so the streamed answer is checked through the
    // session's history, which the UI reloads from the memory endpoint.
    // FIXME: drive Chromium over `--remote-debugging-pipe` to assert the streamed tokens and the
    // tool-call card in the live page.
    let chat = browser.dump_dom(&format!("{base}/#/chat/helper?session=sess_ui1&q=Tell%20me%20about%20Acme")).await;
    assert!(chat.contains("data-role=\"user\">Tell me about Acme"), "{chat}");
    assert!(!chat.contains("id=\"chat-error\""), "{chat}");
    let mut history = serde_json::Value::Null;
    for _ in 0..100 {
        history = app.get("/v1/memory/helper/history/sess_ui1").await.json;
        if history["messages"]
            .as_array()
            .is_some_and(|messages| messages.iter().any(|m| m["role"] == "assistant" && m["content"] != ""))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(history.to_string().contains("Acme is a fine company indeed."), "{history}");
    let reloaded = browser.dump_dom(&format!("{base}/#/chat/helper?session=sess_ui1")).await;
    assert!(reloaded.contains("data-role=\"user\">Tell me about Acme"), "{reloaded}");
    assert!(reloaded.contains("Acme is a fine company indeed."), "{reloaded}");

    let ingested = app
        .post(
            "/v1/rag/ingest",
            &json!({"collection": "docs", "documents": [{"text": "The mesh elects a leader with the bully algorithm.", "metadata": {"source": "mesh.md"}}]}),
        )
        .await;
    assert_eq!(ingested.status, 200, "{}", ingested.text);
    let knowledge = browser.dump_dom(&format!("{base}/#/knowledge?collection=docs&q=leader%20election")).await;
    assert!(knowledge.contains("bully algorithm"), "{knowledge}");
    assert!(knowledge.contains("score "), "{knowledge}");

    // Traces, metrics and mesh may not exist on this build: the views still render.
    let traces = browser.dump_dom(&format!("{base}/#/traces")).await;
    assert!(traces.contains("<h1>Traces</h1>"), "{traces}");
    let system = browser.dump_dom(&format!("{base}/#/system")).await;
    assert!(system.contains("id=\"doctor\"") && system.contains("runtime"), "{system}");

    for (view, path) in [
        ("agents", "#/agents"),
        ("agent", "#/agents/helper"),
        ("chat", "#/chat/helper?session=sess_ui1"),
        ("traces", "#/traces"),
        ("metrics", "#/metrics"),
        ("knowledge", "#/knowledge?collection=docs&q=leader%20election"),
        ("system", "#/system"),
    ] {
        browser.screenshots(&format!("{base}/{path}"), view).await;
    }
    app.stop().await;
}
