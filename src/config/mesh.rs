//! `spec.mesh` of runtime.yaml, resolved, with the `ASTROMESH_*` overrides applied.
//!
//! Defaults are chosen so that a failure is detected within 6 s: every node sends a heartbeat
//! to each peer every `heartbeat_interval` (1 s), and a peer whose counter has not risen for
//! `failure_timeout` (4 s) is suspect, so detection takes 4-5 s after the last heartbeat; with
//! four missed heartbeats before suspicion, a healthy cluster does not raise false alarms.
//! Not here: what the mesh does with these values (`crate::mesh`).

use std::time::Duration;

use super::file::MeshFile;
use super::{Problems, Secret};

/// Mesh settings from `ASTROMESH_*` variables (filled by the CLI); they win over runtime.yaml.
#[derive(Debug, Clone, Default)]
pub struct MeshOverrides {
    pub enabled: Option<bool>,
    pub node_name: Option<String>,
    pub advertise_address: Option<String>,
    pub seeds: Option<Vec<String>>,
    pub gossip_interval: Option<f64>,
    pub gossip_fanout: Option<usize>,
    pub heartbeat_interval: Option<f64>,
    pub failure_timeout: Option<f64>,
    pub dead_timeout: Option<f64>,
    pub cleanup_timeout: Option<f64>,
    /// `ASTROMESH_MESH_SECRET`: every mesh request must carry it as a bearer token.
    pub secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct MeshConfig {
    pub enabled: bool,
    /// This node's id in the cluster (default: the hostname).
    pub node_name: String,
    /// `host:port` peers use to reach this node; `None`: derived from the bound address.
    pub advertise_address: Option<String>,
    /// `host:port` or base URLs (`http://gateway:8000`) of nodes to join through.
    pub seeds: Vec<String>,
    pub gossip_interval: Duration,
    pub gossip_fanout: usize,
    pub heartbeat_interval: Duration,
    /// Counter not risen for this long: `suspect`.
    pub failure_timeout: Duration,
    /// Counter not risen for this long: `dead`.
    pub dead_timeout: Duration,
    /// Dead for this long: forgotten.
    pub cleanup_timeout: Duration,
    pub secret: Option<Secret>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            enabled: false,
            node_name: default_node_name(),
            advertise_address: None,
            seeds: Vec::new(),
            gossip_interval: Duration::from_secs(2),
            gossip_fanout: 3,
            heartbeat_interval: Duration::from_secs(1),
            failure_timeout: Duration::from_secs(4),
            dead_timeout: Duration::from_secs(10),
            cleanup_timeout: Duration::from_secs(60),
            secret: None,
        }
    }
}

fn default_node_name() -> String {
    hostname::get().ok().and_then(|name| name.into_string().ok()).unwrap_or_else(|| "astromesh".to_string())
}

pub(super) fn resolve_mesh(file: &MeshFile, overrides: &MeshOverrides, problems: &mut Problems) -> MeshConfig {
    let defaults = MeshConfig::default();
    let mut seconds = |value: Option<f64>, key: &str, default: Duration| {
        problems.seconds(value, &format!("spec.mesh.{key}")).unwrap_or(default)
    };
    let gossip_interval =
        seconds(overrides.gossip_interval.or(file.gossip_interval), "gossip_interval", defaults.gossip_interval);
    let heartbeat_interval = seconds(
        overrides.heartbeat_interval.or(file.heartbeat_interval),
        "heartbeat_interval",
        defaults.heartbeat_interval,
    );
    let failure_timeout =
        seconds(overrides.failure_timeout.or(file.failure_timeout), "failure_timeout", defaults.failure_timeout);
    let dead_timeout = seconds(overrides.dead_timeout.or(file.dead_timeout), "dead_timeout", defaults.dead_timeout);
    let cleanup_timeout =
        seconds(overrides.cleanup_timeout.or(file.cleanup_timeout), "cleanup_timeout", defaults.cleanup_timeout);
    let gossip_fanout = match overrides.gossip_fanout.or(file.gossip_fanout) {
        Some(0) => {
            problems.push("spec.mesh.gossip_fanout", "must be at least 1");
            defaults.gossip_fanout
        }
        Some(fanout) => fanout,
        None => defaults.gossip_fanout,
    };
    if failure_timeout <= heartbeat_interval {
        problems.push("spec.mesh.failure_timeout", "must be longer than heartbeat_interval");
    }
    if dead_timeout <= failure_timeout {
        problems.push("spec.mesh.dead_timeout", "must be longer than failure_timeout");
    }
    let node_name =
        overrides.node_name.clone().or_else(|| file.node_name.clone()).filter(|name| !name.trim().is_empty());
    let advertise_address = overrides
        .advertise_address
        .clone()
        .or_else(|| file.advertise_address.clone())
        .filter(|address| !address.trim().is_empty());
    if let Some(address) = &advertise_address {
        if address.starts_with("0.0.0.0") || address.starts_with("[::]") {
            problems.push("spec.mesh.advertise_address", "must be an address peers can reach, not 0.0.0.0");
        } else if !address.contains(':') {
            problems.push("spec.mesh.advertise_address", "must be host:port");
        }
    }
    let seeds: Vec<String> = overrides
        .seeds
        .clone()
        .or_else(|| file.seeds.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|seed| seed.trim().to_string())
        .filter(|seed| !seed.is_empty())
        .collect();
    MeshConfig {
        enabled: overrides.enabled.or(file.enabled).unwrap_or(false),
        node_name: node_name.unwrap_or(defaults.node_name),
        advertise_address,
        seeds,
        gossip_interval,
        gossip_fanout,
        heartbeat_interval,
        failure_timeout,
        dead_timeout,
        cleanup_timeout,
        secret: overrides.secret.clone().filter(|secret| !secret.expose().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_resolves_to_the_documented_defaults() {
        let mut problems = Problems::default();
        let config = resolve_mesh(&MeshFile::default(), &MeshOverrides::default(), &mut problems);
        assert!(!problems.has_errors());
        assert!(!config.enabled);
        assert_eq!(config.gossip_interval, Duration::from_secs(2));
        assert_eq!(config.gossip_fanout, 3);
        // The detection target (6 s) needs failure_timeout + heartbeat_interval below it.
        assert!(config.failure_timeout + config.heartbeat_interval <= Duration::from_secs(6));
        assert!(!config.node_name.is_empty());
    }

    #[test]
    fn overrides_win_and_bad_values_are_reported_by_key() {
        let file = MeshFile {
            enabled: Some(false),
            node_name: Some("from-file".to_string()),
            gossip_fanout: Some(0),
            dead_timeout: Some(1.0),
            advertise_address: Some("0.0.0.0:8000".to_string()),
            ..MeshFile::default()
        };
        let overrides = MeshOverrides {
            enabled: Some(true),
            node_name: Some("from-env".to_string()),
            seeds: Some(vec![" a:1 ".to_string(), String::new()]),
            ..MeshOverrides::default()
        };
        let mut problems = Problems::default();
        let config = resolve_mesh(&file, &overrides, &mut problems);
        assert!(config.enabled);
        assert_eq!(config.node_name, "from-env");
        assert_eq!(config.seeds, vec!["a:1".to_string()]);
        assert!(problems.has_under("spec.mesh.gossip_fanout"));
        assert!(problems.has_under("spec.mesh.dead_timeout"));
        assert!(problems.has_under("spec.mesh.advertise_address"));
    }
}
