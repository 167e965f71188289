//! Mesh mode: nodes find each other, notice failures, agree on a leader, and route runs.
//!
//! `Mesh` is the handle the API and the composition root hold. Its parts: `membership` (the
//! table and the failure detector, pure), `routing` (which peer runs an agent, pure),
//! `election` (bully over `/v1/mesh/election`), `tasks` (join, heartbeat and gossip loops),
//! `transport` (HTTP to peers, the shared secret, the fault hook). Liveness is decided by
//! heartbeat counters measured against the local monotonic clock, never by wall clocks.
//! A node's id is its configured name; ids compare as strings, so no two nodes tie.
//! **Architecture Invariant:** nothing here knows about axum; `api::mesh` translates.

mod election;
pub mod membership;
pub mod routing;
mod tasks;
pub mod transport;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::mesh::MeshConfig;
use membership::{Entry, HeardFrom, Membership, NodeState, Timeouts};
use transport::{Transport, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(
        "the daemon listens on {0}, which peers cannot reach; set spec.mesh.advertise_address \
         (ASTROMESH_ADVERTISE_ADDRESS) to host:port"
    )]
    NoAdvertiseAddress(SocketAddr),
    #[error("node id '{0}' is this node's own id")]
    DuplicateId(String),
    #[error("this node is leaving the mesh and takes no more runs")]
    Leaving,
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// `GET /v1/mesh/state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshState {
    pub this_node: String,
    pub leader: Option<String>,
    pub nodes: Vec<Entry>,
}

/// `POST /v1/mesh/join` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node_id: String,
    pub address: String,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReply {
    pub status: String,
    pub leader: Option<String>,
    pub cluster_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveRequest {
    pub node_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveReply {
    pub status: String,
    pub drained_requests: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub node_id: String,
    pub heartbeat: u64,
    #[serde(default)]
    pub active_requests: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// False: the receiver does not know the sender, which should `join` it.
    pub ack: bool,
}

/// `POST /v1/mesh/gossip` body and answer (push-pull).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gossip {
    pub sender: String,
    pub state: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElectionKind {
    Election,
    Ok,
    Coordinator,
}

/// `POST /v1/mesh/election` body and answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElectionMessage {
    #[serde(rename = "type")]
    pub kind: ElectionKind,
    pub sender: String,
}

/// Where a run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Local,
    /// Peers hosting the agent, best first: `(node_id, address)`.
    Remote(Vec<(String, String)>),
    NotFound,
}

/// The mesh handle. Cheap to share (`Arc`); every lock is a short `std::sync::Mutex` section,
/// never held across an `.await`.
pub struct Mesh {
    config: MeshConfig,
    membership: Mutex<Membership>,
    leader: watch::Sender<Option<String>>,
    transport: Transport,
    /// Runs in flight on this node (local runs, including those forwarded to us).
    active: watch::Sender<u64>,
    leaving: AtomicBool,
    electing: AtomicBool,
    /// Peers this node has suspected since it started (a healthy cluster keeps it at zero).
    suspicions: AtomicU64,
    /// Since when an alive node has outranked our leader (see `check_leader`).
    outranked_since: Mutex<Option<Instant>>,
    /// Cancelled on shutdown or after `leave`: the loops stop.
    stop: CancellationToken,
    tasks: Mutex<Option<TaskTracker>>,
}

/// Counts one run as in flight until dropped (a leaving node waits for these).
pub struct RunGuard {
    mesh: Arc<Mesh>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.mesh.active.send_modify(|active| *active = active.saturating_sub(1));
    }
}

impl Mesh {
    /// A mesh node hosting `agents`; it talks to nobody until `start`.
    pub fn new(config: &MeshConfig, agents: Vec<String>) -> Result<Arc<Mesh>, MeshError> {
        let me = Entry {
            node_id: config.node_name.clone(),
            address: config.advertise_address.clone().unwrap_or_default(),
            heartbeat: 0,
            state: NodeState::Alive,
            agents,
            active_requests: 0,
        };
        let timeouts =
            Timeouts { failure: config.failure_timeout, dead: config.dead_timeout, cleanup: config.cleanup_timeout };
        // A peer that does not answer within half the suspicion window is treated as down for
        // that message; loopback and LAN answers take milliseconds.
        let timeout = (config.failure_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(2));
        Ok(Arc::new(Mesh {
            config: config.clone(),
            membership: Mutex::new(Membership::new(me, timeouts)),
            leader: watch::channel(None).0,
            transport: Transport::new(config.secret.clone(), timeout)?,
            active: watch::channel(0).0,
            leaving: AtomicBool::new(false),
            electing: AtomicBool::new(false),
            suspicions: AtomicU64::new(0),
            outranked_since: Mutex::new(None),
            stop: CancellationToken::new(),
            tasks: Mutex::new(None),
        }))
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_name
    }

    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// The shared secret every mesh request must carry, if one is set.
    pub fn secret(&self) -> Option<&crate::config::Secret> {
        self.config.secret.as_ref()
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn leader(&self) -> Option<String> {
        self.leader.borrow().clone()
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::SeqCst)
    }

    /// Replaces the agents this node hosts (after a reload of the agent files); the change
    /// reaches peers with the next heartbeat, since entries carry their agents.
    pub fn set_agents(&self, agents: Vec<String>) {
        self.table().set_agents(agents);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock().expect("membership lock")
    }

    pub fn state(&self) -> MeshState {
        let nodes = self.table().entries();
        MeshState { this_node: self.node_id().to_string(), leader: self.leader(), nodes }
    }

    /// Picks the address peers reach us at and starts joining, heartbeats and gossip. The
    /// loops run on `tasks` and stop when `shutdown` is cancelled.
    pub fn start(
        self: &Arc<Self>,
        bound: SocketAddr,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<(), MeshError> {
        let address = match &self.config.advertise_address {
            Some(address) => address.clone(),
            None => advertise_from(bound)?,
        };
        self.table().set_address(address);
        *self.tasks.lock().expect("tasks lock") = Some(tasks.clone());
        let stop = self.stop.clone();
        let outer = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = outer.cancelled() => stop.cancel(),
                () = stop.cancelled() => {}
            }
        });
        tasks::spawn_loops(self, tasks);
        Ok(())
    }

    /// Spawns on the app's tracker (or drops the work when the mesh never started).
    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(tasks) = self.tasks.lock().expect("tasks lock").as_ref() {
            let stop = self.stop.clone();
            tasks.spawn(async move {
                tokio::select! {
                    () = work => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    }

    /// Counts a run as in flight; refused once the node is leaving.
    pub fn begin_run(self: &Arc<Self>) -> Result<RunGuard, MeshError> {
        if self.is_leaving() {
            return Err(MeshError::Leaving);
        }
        self.active.send_modify(|active| *active += 1);
        Ok(RunGuard { mesh: Arc::clone(self) })
    }

    /// How many times this node has suspected a peer (the benchmark's false-alarm count).
    pub fn suspicions(&self) -> u64 {
        self.suspicions.load(Ordering::Relaxed)
    }

    pub fn active_requests(&self) -> u64 {
        *self.active.borrow()
    }

    /// Where a run for `agent` goes; `key` is the session id (or any per-request value).
    pub fn route(&self, agent: &str, key: &str) -> Route {
        let table = self.table();
        if table.me().agents.iter().any(|name| name == agent) {
            return Route::Local;
        }
        let ranked = routing::rank(table.peers(), agent, key);
        if ranked.is_empty() {
            return Route::NotFound;
        }
        Route::Remote(ranked.into_iter().map(|entry| (entry.node_id.clone(), entry.address.clone())).collect())
    }

    /// Every agent in the cluster with the nodes hosting it (alive or suspect ones).
    pub fn cluster_agents(&self) -> Vec<(String, Vec<String>)> {
        let table = self.table();
        let mut agents: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        let hosts = std::iter::once(table.me()).chain(table.peers().filter(|entry| entry.state != NodeState::Dead));
        for entry in hosts {
            for agent in &entry.agents {
                agents.entry(agent.clone()).or_default().push(entry.node_id.clone());
            }
        }
        agents.into_iter().collect()
    }

    /// `POST /v1/mesh/join`: admits the node and tells it who leads.
    pub fn join(self: &Arc<Self>, request: JoinRequest) -> Result<JoinReply, MeshError> {
        if request.node_id == self.node_id() {
            return Err(MeshError::DuplicateId(request.node_id));
        }
        let entry = Entry {
            node_id: request.node_id,
            address: request.address,
            heartbeat: 0,
            state: NodeState::Alive,
            agents: request.agents,
            active_requests: 0,
        };
        let cluster_size = {
            let mut table = self.table();
            table.admit(entry, Instant::now());
            1 + table.peers().filter(|entry| entry.state != NodeState::Dead).count()
        };
        self.check_leader();
        Ok(JoinReply { status: "joined".to_string(), leader: self.leader(), cluster_size })
    }

    /// `POST /v1/mesh/heartbeat`.
    pub fn heartbeat(self: &Arc<Self>, request: &HeartbeatRequest) -> HeartbeatReply {
        let heard =
            self.table().heard_from(&request.node_id, request.heartbeat, request.active_requests, Instant::now());
        if heard == HeardFrom::Recovered {
            self.check_leader();
        }
        HeartbeatReply { ack: heard != HeardFrom::Unknown }
    }

    /// `POST /v1/mesh/gossip`: merge theirs, answer ours.
    pub fn gossip(self: &Arc<Self>, incoming: &Gossip) -> Gossip {
        self.merge(&incoming.state);
        Gossip { sender: self.node_id().to_string(), state: self.table().entries() }
    }

    fn merge(self: &Arc<Self>, entries: &[Entry]) {
        let now = Instant::now();
        let changed = {
            let mut table = self.table();
            entries.iter().filter_map(|entry| table.merge(entry, now)).count()
        };
        if changed > 0 {
            self.check_leader();
        }
    }

    /// `POST /v1/mesh/leave`. For another node: it is dropped at once. For this node: stop
    /// taking runs, wait for the ones in flight (up to `drain`), tell the peers, stop the loops.
    pub async fn leave(self: &Arc<Self>, node_id: &str, drain: Duration) -> LeaveReply {
        if node_id != self.node_id() {
            let removed = self.table().remove(node_id, Instant::now());
            if removed {
                self.check_leader();
            }
            return LeaveReply { status: "left".to_string(), drained_requests: 0 };
        }
        self.leaving.store(true, Ordering::SeqCst);
        let in_flight = self.active_requests();
        let mut active = self.active.subscribe();
        if tokio::time::timeout(drain, active.wait_for(|count| *count == 0)).await.is_err() {
            tracing::warn!(?drain, "runs still in flight after the drain timeout; leaving anyway");
        }
        self.announce_departure().await;
        self.stop.cancel();
        tracing::info!(drained = in_flight, "left the mesh");
        LeaveReply { status: "left".to_string(), drained_requests: in_flight }
    }

    /// Tells every known peer that we are gone, so they drop us at once instead of waiting for
    /// the failure detector. Best effort, bounded by the transport's timeout.
    pub async fn announce_departure(&self) {
        let peers: Vec<String> = self.table().peers().map(|entry| entry.address.clone()).collect();
        let message = LeaveRequest { node_id: self.node_id().to_string() };
        let sends = peers.iter().map(|address| {
            let message = &message;
            async move {
                let sent: Result<LeaveReply, _> = self.transport.call(address, "/v1/mesh/leave", message).await;
                if let Err(error) = sent {
                    tracing::debug!("leave notice not delivered: {error}");
                }
            }
        });
        futures_util::future::join_all(sends).await;
    }

    /// Fault hook for tests: cut this node off from `addresses` (outgoing messages and
    /// forwards fail at once). Block both sides for a symmetric partition.
    pub fn block_peers(&self, addresses: &[String]) {
        self.transport.block(addresses);
    }

    /// Fault hook: heal every cut made with `block_peers`.
    pub fn heal(&self) {
        self.transport.heal();
    }

    /// This node's address as peers see it (known once started).
    pub fn address(&self) -> String {
        self.table().me().address.clone()
    }
}

/// The address to advertise when none is configured: the bound one, unless it is a wildcard
/// (0.0.0.0 / ::), then the address of the interface that routes outwards (a UDP "connect"
/// sends no packet; it only asks the kernel for a route).
fn advertise_from(bound: SocketAddr) -> Result<String, MeshError> {
    if !bound.ip().is_unspecified() {
        return Ok(bound.to_string());
    }
    let probe = if bound.is_ipv4() { "192.0.2.1:9" } else { "[2001:db8::1]:9" };
    let local = std::net::UdpSocket::bind(SocketAddr::new(bound.ip(), 0))
        .and_then(|socket| socket.connect(probe).and_then(|()| socket.local_addr()))
        .map_err(|_| MeshError::NoAdvertiseAddress(bound))?;
    if local.ip().is_unspecified() || local.ip().is_loopback() {
        return Err(MeshError::NoAdvertiseAddress(bound));
    }
    Ok(SocketAddr::new(local.ip(), bound.port()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_never_advertises_the_wildcard() {
        let bound: SocketAddr = "0.0.0.0:8000".parse().expect("address");
        match advertise_from(bound) {
            Ok(address) => assert!(!address.starts_with("0.0.0.0") && address.ends_with(":8000")),
            Err(error) => assert!(error.to_string().contains("advertise_address")),
        }
        assert_eq!(advertise_from("127.0.0.1:9".parse().expect("address")).expect("bound"), "127.0.0.1:9");
    }
}
