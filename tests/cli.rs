//! The binary itself: `--version`, `validate`, `agents`, and `astromeshd` serving for real.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{agent_yaml, ConfigDir};

const BIN: &str = env!("CARGO_BIN_EXE_astromesh");

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN).args(args).env_remove("ASTROMESH_CONFIG_DIR").output().expect("binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn version_flag() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), format!("astromesh {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn validate_prints_every_problem_and_exits_2() {
    let broken = "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: broken}\nspec:\n  model:\n    primary: {provider: nope, model: x}\n  orchestration: {pattern: reactt}\n  extra_key: 1\n";
    let dir = ConfigDir::new(&[("agents/broken.agent.yaml", broken)]);
    let (code, stdout, _) = run(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}");
    assert!(
        stdout.contains("agents/broken.agent.yaml: spec.model.primary.source: unknown provider \"nope\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("agents/broken.agent.yaml: spec.orchestration.pattern: unknown pattern \"reactt\""),
        "{stdout}"
    );
    assert!(stdout.contains("warning: agents/broken.agent.yaml: spec.extra_key: unknown key"), "{stdout}");

    let good = ConfigDir::new(&[("agents/good.agent.yaml", &agent_yaml("good", "http://127.0.0.1:9"))]);
    let (code, stdout, _) = run(&["validate", good.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("ok:"), "{stdout}");

    let (code, _, _) = run(&["validate", "/definitely/not/here"]);
    assert_eq!(code, 2);
}

#[test]
fn agents_lists_a_config_dir_without_a_daemon() {
    let dir = ConfigDir::new(&[("agents/good.agent.yaml", &agent_yaml("good", "http://127.0.0.1:9"))]);
    let (code, stdout, _) = run(&["agents", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("good") && stdout.contains("ready") && stdout.contains("openai_compat/test-model"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["agents", "--json", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(parsed["agents"][0]["name"], "good");
}

#[test]
fn help_explains_the_commands() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in ["serve", "validate", "agents", "astromesh serve"] {
        assert!(stdout.contains(word), "--help mentions {word}: {stdout}");
    }
}

/// `astromeshd` (a link to the binary) serves; SIGTERM shuts it down with exit code 0.
#[tokio::test]
async fn astromeshd_link_serves_and_stops_on_sigterm() {
    let links = tempfile::tempdir().unwrap();
    let daemon = links.path().join("astromeshd");
    std::os::unix::fs::symlink(BIN, &daemon).unwrap();
    let config = ConfigDir::new(&[("agents/good.agent.yaml", &agent_yaml("good", "http://127.0.0.1:9"))]);
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(&daemon)
        .args(["--port", "0", "--config"])
        .arg(config.path())
        .arg("--data-dir")
        .arg(data.path())
        .env("ASTROMESH_LOG_LEVEL", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let address = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("listening address=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("daemon exited before listening");
    })
    .await
    .unwrap();
    let health = crate::support::send("GET", &format!("http://{address}/v1/health"), None, &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "healthy");
    let agents = crate::support::send("GET", &format!("http://{address}/v1/agents"), None, &[]).await;
    assert_eq!(agents.json["agents"][0]["name"], "good");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0), "clean shutdown on SIGTERM");
    assert!(data.path().join("astromesh.redb").is_file());
}
