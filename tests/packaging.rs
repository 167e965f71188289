//! The .deb and .rpm: built from the binary `cargo test` already built (no second, release
//! build), their contents checked with `dpkg-deb` and `rpm`; and, only as root with
//! `ASTROMESH_TEST_INSTALL=1` (CI sets it), the .deb installed, `astromeshd` started exactly as
//! the packaged unit's `ExecStart` says, as user `astromesh`, then purged.
//!
//! Missing tools (`cargo deb`, `cargo generate-rpm`, `dpkg-deb`, `rpm`) print a SKIP notice:
//! `.ci/run` installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::send;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(command: &mut Command) -> String {
    String::from_utf8_lossy(&run(command).stdout).into_owned()
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// A target dir whose `release/astromesh` is the binary under test: both tools map the
/// manifests' `target/release/astromesh` into the target dir they are given.
fn stage_binary(stage: &Path) -> PathBuf {
    let release = stage.join("release");
    std::fs::create_dir_all(&release).unwrap();
    let staged = release.join("astromesh");
    let built = Path::new(env!("CARGO_BIN_EXE_astromesh"));
    if std::fs::hard_link(built, &staged).is_err() {
        std::fs::copy(built, &staged).unwrap();
    }
    stage.to_path_buf()
}

fn build_deb(stage: &Path, out: &Path) -> PathBuf {
    let deb = out.join("astromesh.deb");
    run(Command::new(cargo())
        .current_dir(MANIFEST_DIR)
        .env("CARGO_TARGET_DIR", stage)
        .args(["deb", "--no-build", "--no-strip", "--fast", "--output"])
        .arg(&deb));
    deb
}

fn build_rpm(stage: &Path, out: &Path) -> PathBuf {
    let rpm = out.join("astromesh.rpm");
    run(Command::new(cargo())
        .current_dir(MANIFEST_DIR)
        // An uncompressed payload: the test binary is a ~600 MB debug build, and compressing it
        // took minutes of CPU for a package nobody installs.
        .args(["generate-rpm", "--payload-compress", "none", "--target-dir"])
        .arg(stage)
        .arg("--output")
        .arg(&rpm));
    rpm
}

#[tokio::test]
async fn packages_hold_the_binary_config_unit_and_scripts() {
    let missing: Vec<&str> = [
        ("cargo deb", works(&cargo(), &["deb", "--version"])),
        ("cargo generate-rpm", works(&cargo(), &["generate-rpm", "--version"])),
        ("dpkg-deb", works("dpkg-deb", &["--version"])),
        ("rpm", works("rpm", &["--version"])),
    ]
    .into_iter()
    .filter_map(|(tool, present)| (!present).then_some(tool))
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIP packaging test: missing {} (install: cargo install --locked cargo-deb cargo-generate-rpm; apt-get install rpm)",
            missing.join(", ")
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let stage = stage_binary(&work.path().join("target"));
    let (deb, rpm) = tokio::task::spawn_blocking({
        let (stage, out) = (stage.clone(), work.path().to_path_buf());
        move || (build_deb(&stage, &out), build_rpm(&stage, &out))
    })
    .await
    .unwrap();

    let listing = stdout(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/astromesh",
        "./usr/bin/astromeshd -> astromesh",
        "./etc/astromesh/runtime.yaml",
        "./etc/astromesh/providers.yaml",
        "./etc/astromesh/agents/assistant.agent.yaml",
        "./etc/astromesh/agents/researcher.agent.yaml",
        "./lib/systemd/system/astromeshd.service",
    ] {
        assert!(listing.contains(path), "{path} in the .deb:\n{listing}");
    }
    let conffiles = stdout(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("conffiles"));
    for path in
        ["/etc/astromesh/runtime.yaml", "/etc/astromesh/providers.yaml", "/etc/astromesh/agents/assistant.agent.yaml"]
    {
        assert!(conffiles.lines().any(|line| line == path), "{path} is a conffile:\n{conffiles}");
    }
    let control = stdout(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for script in ["postinst", "prerm", "postrm"] {
        assert!(control.contains(script), "{script} in the .deb:\n{control}");
    }

    let listing = stdout(Command::new("rpm").arg("-qlp").arg(&rpm));
    for path in [
        "/usr/bin/astromesh",
        "/etc/astromesh/runtime.yaml",
        "/etc/astromesh/providers.yaml",
        "/etc/astromesh/agents/assistant.agent.yaml",
        "/usr/lib/systemd/system/astromeshd.service",
    ] {
        assert!(listing.lines().any(|line| line == path), "{path} in the .rpm:\n{listing}");
    }
    let configs = stdout(Command::new("rpm").args(["-qp", "--configfiles"]).arg(&rpm));
    assert!(configs.lines().any(|line| line == "/etc/astromesh/runtime.yaml"), "{configs}");
    let scripts = stdout(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    for expected in
        ["useradd --system", "ln -sf astromesh /usr/bin/astromeshd", "systemctl enable", "userdel astromesh"]
    {
        assert!(scripts.contains(expected), "{expected:?} in the rpm scriptlets:\n{scripts}");
    }

    let is_root = unsafe { libc::geteuid() } == 0;
    let wanted = std::env::var("ASTROMESH_TEST_INSTALL").is_ok_and(|value| value == "1");
    if !(is_root && wanted && works("dpkg", &["--version"])) {
        eprintln!("SKIP install of the .deb: needs root, dpkg and ASTROMESH_TEST_INSTALL=1 (set by .ci/run)");
        return;
    }
    install_start_and_purge(&deb).await;
}

/// Purges the package even when an assertion fails half-way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "astromesh"]).output(); // Best effort cleanup.
    }
}

fn user_exists(name: &str) -> bool {
    works("getent", &["passwd", name])
}

async fn install_start_and_purge(deb: &Path) {
    run(Command::new("dpkg").arg("-i").arg(deb).env("DEBIAN_FRONTEND", "noninteractive"));
    let installed = Installed;
    assert!(user_exists("astromesh"), "postinst creates the user");
    let owner = stdout(Command::new("stat").args(["-c", "%U %a", "/var/lib/astromesh"]));
    assert_eq!(owner.trim(), "astromesh 750");
    let config = stdout(Command::new("stat").args(["-c", "%G %a", "/etc/astromesh/runtime.yaml"]));
    assert_eq!(config.trim(), "astromesh 640", "keys may live there: group-readable only");
    assert_eq!(std::fs::read_link("/usr/bin/astromeshd").unwrap(), Path::new("astromesh"));

    let unit = std::fs::read_to_string("/lib/systemd/system/astromeshd.service").unwrap();
    let exec_start = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert_eq!(exec_start[0], "/usr/bin/astromeshd");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // As the unit runs it: user astromesh, the packaged config; the key and a free port come
    // from the environment (the unit's EnvironmentFile would carry them).
    let mut command = Command::new("setpriv");
    command.args(["--reuid=astromesh", "--regid=astromesh", "--init-groups", "--"]).args(&exec_start);
    for (name, _) in std::env::vars() {
        if name.starts_with("ASTROMESH_") || name == "NOTIFY_SOCKET" {
            command.env_remove(name);
        }
    }
    command.env("ASTROMESH_API_KEYS", "ci-key").env("ASTROMESH_PORT", port.to_string());
    let mut daemon = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start astromeshd");
    let stderr = daemon.stderr.take().unwrap();
    let listening = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref().map_while(Result::ok) {
            let found = line.contains("listening address=");
            seen.push(line);
            if found {
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(());
            }
        }
        Err(seen.join("\n"))
    })
    .await
    .unwrap();
    if let Err(log) = listening {
        let _ = daemon.kill();
        panic!("astromeshd exited before listening:\n{log}");
    }
    let base = format!("http://127.0.0.1:{port}");
    let health = send("GET", &format!("{base}/v1/health"), None, &[]).await;
    assert_eq!(health.status, 200, "{}", health.text);
    let refused = send("GET", &format!("{base}/v1/agents"), None, &[]).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    let agents = send("GET", &format!("{base}/v1/agents"), None, &[("authorization", "Bearer ci-key")]).await;
    assert_eq!(agents.status, 200, "{}", agents.text);
    assert!(agents.text.contains("assistant"), "the packaged agents load: {}", agents.text);
    assert!(Path::new("/var/lib/astromesh/astromesh.redb").exists(), "the store lives in the data dir");
    let pid = libc::pid_t::try_from(daemon.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid (setpriv execs the daemon in place).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || daemon.wait()).await.unwrap().unwrap();
    assert!(status.success(), "astromeshd stops cleanly on SIGTERM: {status}");

    drop(installed);
    assert!(!user_exists("astromesh"), "purge removes the user");
    for path in ["/var/lib/astromesh", "/etc/astromesh", "/usr/bin/astromesh", "/usr/bin/astromeshd"] {
        assert!(!Path::new(path).exists(), "purge removes {path}");
    }
}
