//! Leader election: the bully algorithm over `POST /v1/mesh/election`.
//!
//! A node that sees no leader or a leader that is not alive starts an election (and so do the
//! highest alive node and the leader itself when the leader is outranked): it sends `election` to every higher
//! non-dead node. Any `ok` means a higher node takes over, and we wait for its `coordinator`;
//! no `ok` means we are the highest reachable node: we lead and broadcast `coordinator`. A
//! `coordinator` from a lower id than ours is answered by our own election (bully), which is
//! what leaves exactly one leader after a partition heals. At most one election runs per node.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::membership::NodeState;
use super::{ElectionKind, ElectionMessage, Mesh};

impl Mesh {
    /// Starts an election when the leader is missing or not alive (every node, as the bully
    /// algorithm has it), or when an alive node outranks the leader: then only the highest
    /// alive node we know (it wins anyway) and the outranked leader start one, so a join or a
    /// healed partition costs one election, not one per node.
    pub(super) fn check_leader(self: &Arc<Self>) {
        if self.is_leaving() || self.stop.is_cancelled() {
            return;
        }
        let me = self.node_id();
        let (leader_alive, highest) = {
            let table = self.table();
            let leader = self.leader();
            let leader_alive = leader.as_deref().is_some_and(|leader| {
                leader == me || table.peer(leader).is_some_and(|entry| entry.state == NodeState::Alive)
            });
            let alive =
                table.peers().filter(|entry| entry.state == NodeState::Alive).map(|entry| entry.node_id.as_str());
            let highest = std::iter::once(me).chain(alive).max().map(str::to_string);
            (leader_alive, highest)
        };
        let leader = self.leader();
        let outranked = leader != highest;
        let mine_to_fix = highest.as_deref() == Some(me) || leader.as_deref() == Some(me);
        // Anyone else waits for their coordinator message, but not forever (it may be lost).
        let waited_too_long = {
            let mut since = self.outranked_since.lock().expect("outranked lock");
            match (outranked, *since) {
                (false, _) => {
                    *since = None;
                    false
                }
                (true, None) => {
                    *since = Some(std::time::Instant::now());
                    false
                }
                (true, Some(start)) => start.elapsed() >= self.config.failure_timeout,
            }
        };
        if !leader_alive || (outranked && (mine_to_fix || waited_too_long)) {
            self.start_election();
        }
    }

    fn start_election(self: &Arc<Self>) {
        if self.electing.swap(true, Ordering::SeqCst) {
            return;
        }
        let mesh = Arc::clone(self);
        self.spawn(async move {
            mesh.elect().await;
            mesh.electing.store(false, Ordering::SeqCst);
        });
    }

    async fn elect(self: &Arc<Self>) {
        // Waiting this long for a `coordinator` after an `ok` before trying again.
        let patience = self.config.failure_timeout;
        loop {
            let higher: Vec<String> = {
                let table = self.table();
                table
                    .peers()
                    .filter(|entry| entry.state != NodeState::Dead && entry.node_id.as_str() > self.node_id())
                    .map(|entry| entry.address.clone())
                    .collect()
            };
            let mut leader_changes = self.leader.subscribe();
            leader_changes.mark_unchanged();
            let message = ElectionMessage { kind: ElectionKind::Election, sender: self.node_id().to_string() };
            let answers = futures_util::future::join_all(higher.iter().map(|address| {
                let message = &message;
                async move { self.transport.call::<_, ElectionMessage>(address, "/v1/mesh/election", message).await }
            }))
            .await;
            let outranked = answers.iter().any(|answer| matches!(answer, Ok(reply) if reply.kind == ElectionKind::Ok));
            if !outranked {
                self.become_leader().await;
                return;
            }
            // A higher node took over: wait for its coordinator message.
            let waited = tokio::time::timeout(patience, async {
                loop {
                    if leader_changes.changed().await.is_err() {
                        return false;
                    }
                    let leader = leader_changes.borrow_and_update().clone();
                    if leader.as_deref().is_some_and(|leader| leader > self.node_id()) {
                        return true;
                    }
                }
            })
            .await;
            if waited == Ok(true) {
                return;
            }
            if self.stop.is_cancelled() || self.is_leaving() {
                return;
            }
        }
    }

    async fn become_leader(self: &Arc<Self>) {
        let me = self.node_id().to_string();
        if self.leader().as_deref() != Some(me.as_str()) {
            tracing::info!(node = %me, "elected leader");
        }
        self.leader.send_replace(Some(me.clone()));
        let peers: Vec<String> = {
            let table = self.table();
            table.peers().filter(|entry| entry.state != NodeState::Dead).map(|entry| entry.address.clone()).collect()
        };
        let message = ElectionMessage { kind: ElectionKind::Coordinator, sender: me };
        futures_util::future::join_all(peers.iter().map(|address| {
            let message = &message;
            async move {
                let sent = self.transport.call::<_, ElectionMessage>(address, "/v1/mesh/election", message).await;
                if let Err(error) = sent {
                    tracing::debug!("coordinator message not delivered: {error}");
                }
            }
        }))
        .await;
    }

    /// `POST /v1/mesh/election`. The answer is `ok` when this node outranks the sender (and will
    /// run its own election); otherwise it echoes the message's type.
    pub fn on_election(self: &Arc<Self>, message: &ElectionMessage) -> ElectionMessage {
        let me = self.node_id().to_string();
        let outranks = me.as_str() > message.sender.as_str() && !self.is_leaving();
        match message.kind {
            ElectionKind::Election if outranks => {
                self.start_election();
                ElectionMessage { kind: ElectionKind::Ok, sender: me }
            }
            ElectionKind::Coordinator if outranks => {
                // A lower node claims to lead while we are here: bully it.
                self.start_election();
                ElectionMessage { kind: ElectionKind::Ok, sender: me }
            }
            ElectionKind::Coordinator => {
                if self.leader().as_deref() != Some(message.sender.as_str()) {
                    tracing::info!(leader = %message.sender, "new leader");
                }
                self.leader.send_replace(Some(message.sender.clone()));
                ElectionMessage { kind: ElectionKind::Coordinator, sender: me }
            }
            kind => ElectionMessage { kind, sender: me },
        }
    }
}
