//! The web UI: served at `/` from the embedded `assets/`, self-contained, and rendering real data
//! in headless Chromium (when it is installed; `.ci/run` installs it), driven over the DevTools
//! protocol like a user: choose an agent, chat with a streamed answer and a tool card, open the
//! trace, ingest and query knowledge, read metrics; any console error fails the test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::runs::app_with;
use crate::support::cdp::{find_chromium, Chromium, Page};
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

/// `ui-screenshots/` in the target dir (never committed).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Screenshots the page as it is now at 1280 and 360 px, checking that nothing makes the
/// narrow page scroll sideways, then returns to 1280 px.
async fn screenshots(page: &mut Page, name: &str) {
    let dir = screenshot_dir();
    for width in [1280, 360] {
        page.set_width(width).await;
        let wide = page.eval(BEYOND_THE_EDGE).await;
        let width_now = page.eval("[document.documentElement.clientWidth, document.documentElement.scrollWidth]").await;
        assert_eq!(width_now, json!([width, width]), "{name} at {width} px scrolls sideways: {wide}");
        assert_eq!(wide, json!([]), "{name} at {width} px has elements beyond the right edge");
        page.screenshot(&dir.join(format!("{name}-{width}.png"))).await;
    }
    page.set_width(1280).await;
    page.assert_no_problems(&format!("on {name}"));
}

/// The elements that stick out past the right edge of the viewport, unless an ancestor scrolls
/// or clips them (a wide table in its own scroll box is fine; a cut-off nav link is not).
const BEYOND_THE_EDGE: &str = "(() => {
  const edge = document.documentElement.clientWidth + 1;
  const contained = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== 'visible') return true;
    }
    return false;
  };
  return Array.from(document.querySelectorAll('body *'))
    .filter((el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > edge && !contained(el); })
    .map((el) => el.outerHTML.slice(0, 80));
})()";

/// The text of the elements matching `selector`, as a JS expression.
fn texts(selector: &str) -> String {
    format!("Array.from(document.querySelectorAll({}), (el) => el.textContent)", json!(selector))
}

const ANSWER: &str = "It is noon in UTC, and every word of this answer arrives as its own streamed token.";

#[tokio::test]
async fn a_user_drives_chat_traces_knowledge_and_metrics_in_chromium() {
    let Some(binary) = find_chromium() else {
        eprintln!("NOTICE: chromium is not installed; skipping the browser test (.ci/run installs it)");
        return;
    };
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::tool_call("datetime_now", json!({"timezone": "UTC"})));
    // Four text frames, far enough apart that the page shows each partial answer for a while.
    llm.push(Reply::text(ANSWER).chunk_delay(400).with_usage(20, 6));
    let tools = "  tools:\n    - {name: datetime_now, type: builtin}\n";
    let app = app_with(&llm, &[("assistant", ""), ("helper", tools)]).await;
    let base = &app.url;
    let browser = Chromium::launch(&binary).await;
    let mut page = browser.new_page().await;

    // Agents: the list, then one agent's detail.
    page.goto(&format!("{base}/#/agents")).await;
    let card =
        page.wait_for("the helper's card", r#"document.querySelector('[data-agent="helper"]')?.innerText"#).await;
    assert!(card.as_str().unwrap().contains("openai_compat/test-model"), "{card}");
    screenshots(&mut page, "agents").await;
    page.click(r#"[data-agent="helper"] h3 a"#).await;
    let detail = page.wait_for("the agent detail", "location.hash === '#/agents/helper' && document.querySelector('main').innerText.includes('Model routing') && document.querySelector('main').innerText").await;
    assert!(detail.as_str().unwrap().contains("datetime_now"), "{detail}");
    screenshots(&mut page, "agent").await;

    // Chat: choose the agent, send a message with the keyboard.
    page.click(r#"#nav a[data-view="chat"]"#).await;
    page.wait_for(
        "the chat view",
        "document.querySelector('#agent-picker') && document.querySelector('#messages:not([aria-busy])')",
    )
    .await;
    page.eval("(() => { const picker = document.querySelector('#agent-picker'); picker.dataset.stale = 'yes'; picker.value = 'helper'; picker.dispatchEvent(new Event('change')); })()").await;
    let session = page
        .wait_for(
            "the helper's chat",
            "location.hash.startsWith('#/chat/helper?session=sess_') && document.querySelector('#agent-picker:not([data-stale])')?.value === 'helper' && document.querySelector('#messages:not([aria-busy])') && document.querySelector('#session-id').textContent",
        )
        .await;
    let session = session.as_str().unwrap().to_string();
    page.type_into("#chat-input", "What time is it?").await;
    page.press_enter().await;

    // The answer grows token by token: sample it until the run is done.
    let sample = format!(
        "(() => {{ const bubbles = {};
           return {{ text: bubbles.length ? bubbles[bubbles.length - 1] : null, bubbles: bubbles.length,
                     streaming: !!document.querySelector('.msg.assistant.streaming'),
                     cards: document.querySelectorAll('.tool-card').length,
                     done: !!document.querySelector('#last-meta') }}; }})()",
        texts(".msg.assistant")
    );
    let started = std::time::Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut saw_streaming = false;
    let mut card_before_text = false;
    loop {
        let now = page.eval(&sample).await;
        if let Some(text) = now["text"].as_str().filter(|text| !text.is_empty()) {
            if seen.last().map(String::as_str) != Some(text) {
                seen.push(text.to_string());
            }
        } else if now["cards"].as_u64() == Some(1) {
            card_before_text = true;
        }
        saw_streaming |= now["streaming"] == true;
        if now["done"] == true {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the answer never finished: {now} {:?}", page.problems());
    }
    assert_eq!(seen.last().map(String::as_str), Some(ANSWER), "the final answer: {seen:?}");
    let partial: Vec<&String> = seen.iter().filter(|text| text.as_str() != ANSWER).collect();
    assert!(partial.len() >= 2, "at least two partial answers were on screen before the final one: {seen:?}");
    for pair in seen.windows(2) {
        assert!(
            pair[1].starts_with(pair[0].as_str()) && pair[1].len() > pair[0].len(),
            "the answer only grows: {seen:?}"
        );
    }
    assert!(saw_streaming, "the bubble is marked as streaming while tokens arrive");
    assert!(card_before_text, "the tool card shows up before the answer's text");
    assert!(page.eval("document.querySelector('.msg.assistant.streaming')").await.is_null());

    // The tool call's card: done, and it opens to show the input and the result.
    let state = page
        .eval(r#"document.querySelector('details.tool-card[data-tool="datetime_now"] .tool-state').textContent"#)
        .await;
    assert_eq!(state, "done");
    page.click(r#"details.tool-card[data-tool="datetime_now"] summary"#).await;
    let opened =
        page.wait_for("the opened tool card", r#"document.querySelector('details.tool-card[open]')?.innerText"#).await;
    let opened = opened.as_str().unwrap();
    assert!(opened.contains("\"timezone\": \"UTC\"") && opened.contains("datetime"), "{opened}");
    let meta = page.eval("document.querySelector('#last-meta').textContent").await;
    assert!(meta.as_str().unwrap().contains(" tokens") && !meta.as_str().unwrap().contains("? tokens"), "{meta}");
    let bubbles = page.eval(&texts(".msg")).await;
    assert_eq!(bubbles, json!(["What time is it?", ANSWER]), "one bubble per message, none empty");
    screenshots(&mut page, "chat").await;

    // Its trace: a waterfall with the model calls and the tool call; a span shows its attributes.
    page.click("#last-meta a.trace-link").await;
    let spans = page
        .wait_for(
            "the waterfall",
            &format!(
                "location.hash.startsWith('#/traces/') && {}.length >= 4 && {}",
                texts("#waterfall .span-row button"),
                texts("#waterfall .span-row button")
            ),
        )
        .await;
    let spans: Vec<&str> = spans.as_array().unwrap().iter().map(|span| span.as_str().unwrap()).collect();
    assert_eq!(spans[0], "agent.run", "{spans:?}");
    assert_eq!(spans.iter().filter(|name| **name == "llm.complete").count(), 2, "{spans:?}");
    assert!(spans.contains(&"tool.call"), "{spans:?}");
    let trace_text = page.eval("document.querySelector('main').innerText").await;
    assert!(trace_text.as_str().unwrap().contains(&session), "the trace names the session: {trace_text}");
    let bars = page
        .eval(
            "Array.from(document.querySelectorAll('#waterfall .bar'), (bar) => bar.getBoundingClientRect().width > 0)",
        )
        .await;
    assert!(bars.as_array().unwrap().iter().all(|visible| visible == true), "every span has a visible bar: {bars}");
    let tool_span = spans.iter().position(|name| *name == "tool.call").unwrap();
    page.click(&format!("#waterfall .span-row:nth-child({}) button", tool_span + 1)).await;
    page.wait_for(
        "the tool span's attributes",
        r#"document.querySelector('#span-detail').innerText.includes('"tool": "datetime_now"')"#,
    )
    .await;
    screenshots(&mut page, "trace").await;
    page.click(r##"main a[href="#/traces"]"##).await;
    let rows = page
        .wait_for(
            "the trace list",
            &format!("{}.length && {}", texts("#trace-list tbody tr"), texts("#trace-list tbody tr")),
        )
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert!(rows[0].as_str().unwrap().contains("helper"), "{rows}");
    screenshots(&mut page, "traces").await;

    // The session survives a reload: its history comes back from the memory endpoint.
    page.goto("about:blank").await;
    page.goto(&format!("{base}/#/chat/helper?session={session}")).await;
    let reloaded = page
        .wait_for(
            "the reloaded history",
            &format!(
                "document.querySelector('#messages:not([aria-busy])') && {}.length === 2 && {}",
                texts(".msg"),
                texts(".msg")
            ),
        )
        .await;
    assert_eq!(reloaded, json!(["What time is it?", ANSWER]));
    page.assert_no_problems("after reloading the chat");

    // Knowledge: ingest pasted text, then query it.
    page.click(r#"#nav a[data-view="knowledge"]"#).await;
    page.wait_for("the knowledge view", "document.querySelector('#collections h3')").await;
    page.type_into(
        "#ingest-text",
        "The mesh elects a leader with the bully algorithm. Followers gossip their state every second.",
    )
    .await;
    page.click("#ingest-submit").await;
    let ingested =
        page.wait_for("the ingest result", "document.querySelector('#ingest-result .pill.ok')?.textContent").await;
    assert!(ingested.as_str().unwrap().contains("1 document(s)"), "{ingested}");
    let listed = page
        .wait_for(
            "the collection list",
            &format!("{}.find((row) => row.startsWith('docs'))", texts("#collections tbody tr")),
        )
        .await;
    assert!(listed.as_str().unwrap().starts_with("docs1"), "{listed}");
    page.type_into("#query-text", "how is the leader elected?").await;
    page.press_enter().await;
    let hits = page
        .wait_for(
            "the scored chunks",
            &format!("{}.length && {}", texts("#query-results .chunk"), texts("#query-results .chunk")),
        )
        .await;
    let first = hits[0].as_str().unwrap();
    assert!(first.starts_with("score ") && first.contains("web-ui") && first.contains("bully algorithm"), "{hits}");
    screenshots(&mut page, "knowledge").await;

    // Metrics: counters, histograms and the latency chart have data from the run.
    page.click(r#"#nav a[data-view="metrics"]"#).await;
    let counters =
        page.wait_for("counters", &format!("{}.length && {}", texts("#counters tr"), texts("#counters tr"))).await;
    assert!(!counters.as_array().unwrap().is_empty(), "{counters}");
    let histograms = page
        .wait_for(
            "histograms",
            &format!("{}.length && {}", texts("#histograms tbody tr"), texts("#histograms tbody tr")),
        )
        .await;
    assert!(!histograms.as_array().unwrap().is_empty(), "{histograms}");
    page.wait_for(
        "the latency chart",
        "document.querySelector('#latency-chart svg circle, #latency-chart svg polyline')",
    )
    .await;
    screenshots(&mut page, "metrics").await;

    // System: status and doctor checks.
    page.click(r#"#nav a[data-view="system"]"#).await;
    let system = page
        .wait_for(
            "status, doctor checks and mesh",
            "document.querySelector('#doctor table') && document.querySelector('#system-status dl') && !document.querySelector('#mesh').innerText.includes('Loading') && document.querySelector('main').innerText",
        )
        .await;
    let system = system.as_str().unwrap();
    assert!(system.contains("runtime") && system.contains("2 agent(s) ready"), "{system}");
    assert!(system.contains("standalone"), "{system}");
    screenshots(&mut page, "system").await;

    page.assert_no_problems("at the end");
    drop(browser);
    app.stop().await;
}
