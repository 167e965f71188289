//! The mesh's background work: joining through a seed, the heartbeat loop (our counter, the
//! failure detector, a heartbeat to every peer) and the gossip loop (push-pull with
//! `gossip_fanout` random peers).
//!
//! Heartbeats go to every known peer, not to a random few: then each node hears each peer's
//! counter rise every `heartbeat_interval`, and suspicion needs `failure_timeout /
//! heartbeat_interval` (4 by default) consecutive losses, instead of hinging on which peers
//! gossip happened to pick. The cost, n·(n-1) small requests per interval, is fine for the tens
//! of nodes a mesh of agent runtimes has. Sends are spawned, never awaited by the loop, so a
//! hung peer cannot slow our own counter down.

use std::sync::Arc;
use std::time::Instant;

use rand::seq::IndexedRandom;
use tokio::time::MissedTickBehavior;
use tokio_util::task::TaskTracker;

use super::membership::{Change, NodeState};
use super::{Gossip, HeartbeatReply, HeartbeatRequest, JoinReply, JoinRequest, Mesh};

pub(super) fn spawn_loops(mesh: &Arc<Mesh>, tasks: &TaskTracker) {
    let heartbeat = Arc::clone(mesh);
    tasks.spawn(async move {
        let stop = heartbeat.stop.clone();
        tokio::select! {
            () = heartbeat_loop(&heartbeat) => {}
            () = stop.cancelled() => {}
        }
    });
    let gossip = Arc::clone(mesh);
    tasks.spawn(async move {
        let stop = gossip.stop.clone();
        tokio::select! {
            () = gossip_loop(&gossip) => {}
            () = stop.cancelled() => {}
        }
    });
}

/// Normalises a seed (`http://host:port/`, `host:port`) to `host:port`.
fn seed_address(seed: &str) -> &str {
    let without_scheme = seed.split_once("://").map_or(seed, |(_, rest)| rest);
    without_scheme.trim_end_matches('/')
}

impl Mesh {
    fn join_request(&self) -> JoinRequest {
        let me = self.table().me().clone();
        let mut meta = serde_json::Map::new();
        meta.insert("version".to_string(), env!("CARGO_PKG_VERSION").into());
        JoinRequest { node_id: me.node_id, address: me.address, agents: me.agents, meta }
    }

    /// Introduces us to `address` and pulls its view of the cluster.
    async fn join_via(self: &Arc<Self>, address: &str) -> bool {
        let request = self.join_request();
        match self.transport.call::<_, JoinReply>(address, "/v1/mesh/join", &request).await {
            Ok(reply) => {
                tracing::info!(via = %address, leader = ?reply.leader, size = reply.cluster_size, "joined the mesh");
                self.exchange(address).await;
                true
            }
            Err(error) => {
                tracing::debug!("cannot join through {address}: {error}");
                false
            }
        }
    }

    /// Tries each seed until one lets us in.
    async fn join_seeds(self: &Arc<Self>) {
        let own = self.address();
        for seed in &self.config.seeds {
            let address = seed_address(seed);
            if address == own {
                continue;
            }
            if self.join_via(address).await {
                return;
            }
        }
    }

    /// One push-pull gossip exchange with `address`.
    async fn exchange(self: &Arc<Self>, address: &str) {
        let message = Gossip { sender: self.node_id().to_string(), state: self.table().entries() };
        match self.transport.call::<_, Gossip>(address, "/v1/mesh/gossip", &message).await {
            Ok(reply) => self.merge(&reply.state),
            Err(error) => tracing::debug!("gossip with {address} failed: {error}"),
        }
    }

    fn on_changes(self: &Arc<Self>, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Suspected(node) => {
                    self.suspicions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(%node, "peer suspected");
                }
                Change::Died(node) => tracing::warn!(%node, "peer dead"),
                Change::Forgotten(node) => tracing::info!(%node, "dead peer forgotten"),
                Change::Recovered(node) => tracing::info!(%node, "peer alive again"),
                Change::Joined(node) => tracing::info!(%node, "peer joined"),
            }
        }
        if !changes.is_empty() {
            self.check_leader();
        }
    }
}

/// The failure detector looks this many times per heartbeat interval, so a still counter is
/// noticed within a quarter interval of `failure_timeout`, not a whole one.
const DETECTS_PER_HEARTBEAT: u32 = 4;

async fn heartbeat_loop(mesh: &Arc<Mesh>) {
    let mut ticks = tokio::time::interval(mesh.config.heartbeat_interval / DETECTS_PER_HEARTBEAT);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tick_idx: u32 = 0;
    loop {
        ticks.tick().await;
        let beats = tick_idx.is_multiple_of(DETECTS_PER_HEARTBEAT);
        tick_idx = tick_idx.wrapping_add(1);
        if !beats {
            let changes = mesh.table().detect(Instant::now());
            mesh.on_changes(&changes);
            continue;
        }
        let active = mesh.active_requests();
        let (heartbeat, changes, peers) = {
            let mut table = mesh.table();
            let heartbeat = table.beat(active);
            let changes = table.detect(Instant::now());
            // Dead peers still get heartbeats until forgotten: that is how two sides of a
            // healed partition find each other again.
            let peers: Vec<String> = table.peers().map(|entry| entry.address.clone()).collect();
            (heartbeat, changes, peers)
        };
        mesh.on_changes(&changes);
        let request = HeartbeatRequest { node_id: mesh.node_id().to_string(), heartbeat, active_requests: active };
        for address in peers {
            let sender = Arc::clone(mesh);
            let request = request.clone();
            mesh.spawn(async move {
                match sender.transport.call::<_, HeartbeatReply>(&address, "/v1/mesh/heartbeat", &request).await {
                    // The peer forgot us (or never knew us): introduce ourselves again.
                    Ok(HeartbeatReply { ack: false }) => {
                        sender.join_via(&address).await;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::trace!("heartbeat not delivered: {error}"),
                }
            });
        }
    }
}

async fn gossip_loop(mesh: &Arc<Mesh>) {
    mesh.join_seeds().await;
    mesh.check_leader();
    let mut ticks = tokio::time::interval(mesh.config.gossip_interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let targets: Vec<String> = {
            let table = mesh.table();
            let live: Vec<&str> = table
                .peers()
                .filter(|entry| entry.state != NodeState::Dead)
                .map(|entry| entry.address.as_str())
                .collect();
            live.choose_multiple(&mut rand::rng(), mesh.config.gossip_fanout)
                .map(|address| address.to_string())
                .collect()
        };
        if targets.is_empty() {
            // Alone (or everyone else is dead): keep knocking at the seeds.
            mesh.join_seeds().await;
        }
        let exchanges = targets.iter().map(|address| mesh.exchange(address));
        futures_util::future::join_all(exchanges).await;
        mesh.check_leader();
    }
}

#[cfg(test)]
mod tests {
    use super::seed_address;

    #[test]
    fn seeds_accept_urls_and_bare_addresses() {
        assert_eq!(seed_address("http://gateway:8000/"), "gateway:8000");
        assert_eq!(seed_address("10.0.0.1:8000"), "10.0.0.1:8000");
    }
}
