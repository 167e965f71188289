//! A small Chrome DevTools Protocol client for the browser tests.
//!
//! It launches headless Chromium with its own temp profile (`--remote-debugging-port=0`, the
//! port read from `DevToolsActivePort`), attaches to one page over a WebSocket
//! (tokio-tungstenite, flattened sessions), sends commands by id and records every event. It
//! offers what a test needs to drive a page like a user: navigate, evaluate, poll a DOM
//! condition against a deadline, click with the mouse, type, press Enter, resize and screenshot.
//! `problems()` lists what counts as a broken page: console errors, uncaught exceptions, error
//! log entries (including failed resource loads) and failed requests.
//!
//! It must not know anything about the UI it drives: assertions on content belong to the tests.
//! It never sleeps to wait for the page, only between polls of a condition.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// How long one command or one awaited condition may take.
const DEADLINE: Duration = Duration::from_secs(30);
/// Between two polls of a DOM condition.
const POLL: Duration = Duration::from_millis(25);

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>;

/// The WebSocket to the browser: commands out, answers routed by id, events recorded.
struct Connection {
    out: mpsc::Sender<String>,
    next_id: AtomicU64,
    pending: Arc<Pending>,
    events: Arc<Mutex<Vec<Value>>>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Connection {
    async fn open(url: &str) -> Connection {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("the DevTools WebSocket connects");
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::channel::<String>(64);
        let writer = tokio::spawn(async move {
            while let Some(text) = outgoing.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        });
        let pending: Arc<Pending> = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let reader = tokio::spawn({
            let pending = pending.clone();
            let events = events.clone();
            async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else { continue };
                    let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    if let Some(id) = value["id"].as_u64() {
                        let waiter = pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                        if let Some(waiter) = waiter {
                            let answer = match value.get("error") {
                                Some(error) => Err(error.to_string()),
                                None => Ok(value["result"].clone()),
                            };
                            let _ = waiter.send(answer); // The caller may have timed out.
                        }
                    } else {
                        events.lock().unwrap_or_else(PoisonError::into_inner).push(value);
                    }
                }
            }
        });
        Connection { out, next_id: AtomicU64::new(1), pending, events, reader, writer }
    }

    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let (answer, answered) = oneshot::channel();
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, answer);
        self.out.send(command.to_string()).await.map_err(|_| format!("{method}: the browser connection is closed"))?;
        match tokio::time::timeout(DEADLINE, answered).await {
            Ok(Ok(answer)) => answer.map_err(|error| format!("{method}: {error}")),
            Ok(Err(_)) => Err(format!("{method}: the browser connection closed")),
            Err(_) => Err(format!("{method}: no answer within {DEADLINE:?}")),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// A headless Chromium process with its own profile; killed (its whole process group) on drop.
pub struct Chromium {
    child: Child,
    profile: tempfile::TempDir,
    connection: Arc<Connection>,
}

/// The Chromium binary: `$CHROMIUM`, else `chromium`, `chromium-browser` or `google-chrome` on
/// the `PATH`; `None` when there is none.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").map(PathBuf::from).filter(|path| path.is_file()) {
        return Some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

impl Chromium {
    /// Starts `binary` headless and connects to it over the DevTools protocol.
    pub async fn launch(binary: &Path) -> Chromium {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().expect("a temp profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("a log file");
        let child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, so that dropping it ends the renderers too.
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        let mut launching = Launching { child: Some(child), profile: Some(profile) };
        let url = launching.devtools_url().await;
        let connection = Arc::new(Connection::open(&url).await);
        let (child, profile) = launching.take();
        Chromium { child, profile, connection }
    }

    /// A new tab, attached, with the Page, Runtime, Log and Network domains enabled.
    pub async fn new_page(&self) -> Page {
        let created = self.call("Target.createTarget", json!({"url": "about:blank"})).await;
        let target = created["targetId"].as_str().expect("a target id").to_string();
        let attached = self.call("Target.attachToTarget", json!({"targetId": target, "flatten": true})).await;
        let session = attached["sessionId"].as_str().expect("a session id").to_string();
        let page = Page { connection: self.connection.clone(), session, width: 1280 };
        for domain in ["Page", "Runtime", "Log", "Network"] {
            page.call(&format!("{domain}.enable"), json!({})).await;
        }
        page
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        self.connection.call(None, method, params).await.unwrap_or_else(|error| panic!("{error}"))
    }

    /// The browser's own stderr, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills the process group led by `child` (the browser and its helpers) and reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's process group; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait(); // An error means it was already reaped.
}

/// The browser between spawn and connection: killed if connecting fails.
struct Launching {
    child: Option<Child>,
    profile: Option<tempfile::TempDir>,
}

impl Launching {
    fn profile(&self) -> &Path {
        self.profile.as_ref().expect("profile present until taken").path()
    }

    /// Polls `DevToolsActivePort` (port, then browser path) until Chromium writes it.
    async fn devtools_url(&mut self) -> String {
        let file = self.profile().join("DevToolsActivePort");
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
                }
            }
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            let log = || std::fs::read_to_string(self.profile().join("chromium.log")).unwrap_or_default();
            assert!(exited.is_none(), "chromium exited ({exited:?}) before listening:\n{}", log());
            assert!(started.elapsed() < DEADLINE, "chromium wrote no DevToolsActivePort in {DEADLINE:?}:\n{}", log());
            tokio::time::sleep(POLL).await;
        }
    }

    /// The running browser and its profile, no longer killed by this guard.
    fn take(mut self) -> (Child, tempfile::TempDir) {
        let child = self.child.take().expect("child present until taken");
        let profile = self.profile.take().expect("profile present until taken");
        (child, profile)
    }
}

impl Drop for Launching {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill_group(child);
        }
    }
}

/// One attached tab.
pub struct Page {
    connection: Arc<Connection>,
    session: String,
    width: u32,
}

impl Page {
    /// Sends a command to this page; a protocol error panics with the method and the error.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.connection.call(Some(&self.session), method, params).await.unwrap_or_else(|error| panic!("{error}"))
    }

    /// Opens `url` (a full navigation).
    pub async fn goto(&self, url: &str) {
        let answer = self.call("Page.navigate", json!({"url": url})).await;
        assert!(answer.get("errorText").is_none(), "navigating to {url}: {answer}");
    }

    /// Evaluates `expression` (awaiting a promise) and returns its value; a thrown error panics.
    pub async fn eval(&self, expression: &str) -> Value {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true, "userGesture": true}),
            )
            .await;
        if let Some(details) = answer.get("exceptionDetails") {
            panic!(
                "evaluating {expression}: {}",
                details["exception"]["description"].as_str().unwrap_or(&details.to_string())
            );
        }
        answer["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy and returns that value; panics after the deadline
    /// with `what`, the last value and the page's problems.
    pub async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(expression).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                Value::Number(number) => number.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > DEADLINE {
                let body = self.eval("document.body ? document.body.innerText : ''").await;
                panic!(
                    "timed out waiting for {what} ({expression}); last value {value}; problems {:?}; page text:\n{}",
                    self.problems(),
                    body.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `selector`, then clicks the middle of it with the mouse, as a user would: it
    /// fails when the element is hidden or covered by another one.
    pub async fn click(&self, selector: &str) {
        let selector_js = json!(selector);
        let point = self
            .wait_for(
                &format!("a visible {selector}"),
                &format!(
                    "(() => {{ const el = document.querySelector({selector_js}); if (!el) return null;
                      el.scrollIntoView({{block: 'center', inline: 'center'}});
                      const r = el.getBoundingClientRect(); if (!r.width || !r.height) return null;
                      const x = r.left + r.width / 2, y = r.top + r.height / 2;
                      const top = document.elementFromPoint(x, y);
                      return {{x, y, hit: !!top && (el === top || el.contains(top)),
                               top: top ? top.outerHTML.slice(0, 200) : null}}; }})()"
                ),
            )
            .await;
        assert_eq!(point["hit"], true, "{selector} is covered by {}", point["top"]);
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": point["x"], "y": point["y"], "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Focuses `selector` and types `text` into it.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let selector_js = json!(selector);
        self.wait_for(
            &format!("{selector} to take focus"),
            &format!("(() => {{ const el = document.querySelector({selector_js}); if (!el || el.disabled) return false; el.focus(); return document.activeElement === el; }})()"),
        )
        .await;
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Presses Enter in the focused element.
    pub async fn press_enter(&self) {
        for kind in ["keyDown", "keyUp"] {
            let mut event = json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13});
            if kind == "keyDown" {
                event["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", event).await;
        }
    }

    /// Sets the viewport width (a phone-like viewport below 600 px).
    pub async fn set_width(&mut self, width: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
        self.width = width;
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    /// Writes a PNG of the viewport to `file`.
    pub async fn screenshot(&self, file: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let data = shot["data"].as_str().expect("screenshot data");
        let bytes = base64::engine::general_purpose::STANDARD.decode(data).expect("screenshot is base64");
        std::fs::write(file, bytes).unwrap_or_else(|error| panic!("writing {}: {error}", file.display()));
    }

    /// Everything that went wrong in this page so far: console errors and assertions,
    /// uncaught exceptions, error log entries (e.g. a resource answered 404) and failed requests.
    pub fn problems(&self) -> Vec<String> {
        let events = self.connection.events.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = events.iter().filter(|event| event["sessionId"] == self.session.as_str());
        let urls: HashMap<&str, &str> = mine
            .clone()
            .filter(|event| event["method"] == "Network.requestWillBeSent")
            .filter_map(|event| {
                Some((event["params"]["requestId"].as_str()?, event["params"]["request"]["url"].as_str()?))
            })
            .collect();
        mine.filter_map(|event| {
            let params = &event["params"];
            match event["method"].as_str()? {
                "Runtime.consoleAPICalled" if matches!(params["type"].as_str(), Some("error" | "assert")) => {
                    let args: Vec<String> = params["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|arg| {
                            arg["value"].as_str().map(str::to_string).unwrap_or_else(|| arg["description"].to_string())
                        })
                        .collect();
                    Some(format!("console.{}: {}", params["type"].as_str().unwrap_or("error"), args.join(" ")))
                }
                "Runtime.exceptionThrown" => {
                    let details = &params["exceptionDetails"];
                    let text = details["exception"]["description"].as_str().or(details["text"].as_str()).unwrap_or("?");
                    Some(format!("uncaught: {text}"))
                }
                "Log.entryAdded" if params["entry"]["level"] == "error" => {
                    let entry = &params["entry"];
                    Some(format!(
                        "log: {} {}",
                        entry["text"].as_str().unwrap_or("?"),
                        entry["url"].as_str().unwrap_or("")
                    ))
                }
                "Network.loadingFailed" => {
                    let url = params["requestId"].as_str().and_then(|id| urls.get(id)).copied().unwrap_or("?");
                    Some(format!("request failed: {url}: {}", params["errorText"].as_str().unwrap_or("?")))
                }
                _ => None,
            }
        })
        .collect()
    }

    /// Panics when the page had any problem, naming them and `when`.
    pub fn assert_no_problems(&self, when: &str) {
        let problems = self.problems();
        assert!(problems.is_empty(), "the page had problems {when}:\n{}", problems.join("\n"));
    }
}
