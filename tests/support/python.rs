//! The Python venv the ecosystem tests drive official clients from: `tests/.venv` with the
//! `openai` and `mcp` packages from PyPI.
//!
//! `.ci/run` creates it before `cargo test`. Locally, the first test that needs it tries to
//! create it; when that fails (no network, no `venv` module) the test prints a notice and
//! returns, instead of failing on a machine that cannot reach PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// Serialises venv creation between the tests of this binary.
static CREATING: Mutex<()> = Mutex::new(());

fn has_clients(python: &Path) -> bool {
    Command::new(python).args(["-c", "import openai, mcp"]).output().is_ok_and(|output| output.status.success())
}

fn create(venv: &Path) -> Result<(), String> {
    let run = |command: &mut Command| -> Result<(), String> {
        let output = command.output().map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "openai", "mcp"]))
}

/// The venv's python with `openai` and `mcp` importable, or `None` (after a notice).
pub async fn python() -> Option<PathBuf> {
    tokio::task::spawn_blocking(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.venv");
        let python = venv.join("bin/python");
        let _creating = CREATING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if has_clients(&python) {
            return Some(python);
        }
        match create(&venv) {
            Ok(()) if has_clients(&python) => Some(python),
            Ok(()) => {
                eprintln!("NOTICE: tests/.venv has no openai/mcp packages; skipping the Python client test");
                None
            }
            Err(reason) => {
                eprintln!("NOTICE: could not create tests/.venv ({reason}); skipping the Python client test");
                None
            }
        }
    })
    .await
    .unwrap()
}

/// Runs `tests/support/<script>` with `args` and parses the JSON it prints.
pub async fn run_script(python: &Path, script: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(script);
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python).arg(&script).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("the Python client finishes in time")
    .expect("the Python client starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed: {}\n{stdout}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("bad JSON from the client ({error}): {stdout}"))
}
