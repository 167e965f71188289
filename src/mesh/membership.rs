//! The membership table: who is in the cluster, their heartbeat counters and liveness.
//!
//! Pure logic, no I/O and no clock of its own: callers pass `Instant`s, so the failure
//! detector is unit-tested without a network or sleeps. Liveness is decided by counters, never
//! by wall clocks: a peer is alive while its heartbeat counter keeps rising (whoever told us),
//! `suspect` once it has not risen for `failure_timeout`, `dead` after `dead_timeout`, and
//! forgotten `cleanup_timeout` later. A forgotten or departed node leaves a tombstone with its
//! last counter, so stale gossip about it cannot bring it back; only a higher counter can.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Alive,
    Suspect,
    Dead,
}

/// One node as gossip carries it (API.md's gossip entry, plus `address` and `active_requests`,
/// without which a node learned through gossip could not be reached or weighed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub node_id: String,
    #[serde(default)]
    pub address: String,
    pub heartbeat: u64,
    pub state: NodeState,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub active_requests: u64,
}

#[derive(Debug, Clone)]
struct Member {
    entry: Entry,
    /// When the counter last rose (local monotonic clock).
    last_rise: Instant,
    dead_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub failure: Duration,
    pub dead: Duration,
    pub cleanup: Duration,
}

/// A change worth acting on (the election watches the leader's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Joined(String),
    Suspected(String),
    Died(String),
    Recovered(String),
    Forgotten(String),
}

#[derive(Debug)]
pub struct Membership {
    me: Entry,
    peers: BTreeMap<String, Member>,
    /// Departed or forgotten nodes: their last counter, and when to drop the tombstone.
    tombstones: BTreeMap<String, (u64, Instant)>,
    timeouts: Timeouts,
}

impl Membership {
    pub fn new(me: Entry, timeouts: Timeouts) -> Membership {
        Membership { me, peers: BTreeMap::new(), tombstones: BTreeMap::new(), timeouts }
    }

    pub fn me(&self) -> &Entry {
        &self.me
    }

    pub fn set_address(&mut self, address: String) {
        self.me.address = address;
    }

    /// The agents we host, after a reload; peers learn them with our next heartbeat.
    pub fn set_agents(&mut self, agents: Vec<String>) {
        self.me.agents = agents;
    }

    /// Our own heartbeat: the counter rises; that is all "I am alive" means.
    pub fn beat(&mut self, active_requests: u64) -> u64 {
        self.me.heartbeat += 1;
        self.me.active_requests = active_requests;
        self.me.heartbeat
    }

    /// Every entry, ours first, as gossip sends it.
    pub fn entries(&self) -> Vec<Entry> {
        std::iter::once(self.me.clone()).chain(self.peers.values().map(|member| member.entry.clone())).collect()
    }

    pub fn peer(&self, node_id: &str) -> Option<&Entry> {
        self.peers.get(node_id).map(|member| &member.entry)
    }

    pub fn peers(&self) -> impl Iterator<Item = &Entry> {
        self.peers.values().map(|member| &member.entry)
    }

    /// Merges one entry learned from anyone: highest heartbeat wins.
    pub fn merge(&mut self, incoming: &Entry, now: Instant) -> Option<Change> {
        if incoming.node_id == self.me.node_id {
            // Someone holds a higher counter of ours (an earlier run of this node under the same
            // name): jump above it. An equal one is just our own news coming back; bumping on it
            // would let gossip carry counters our heartbeats never sent, which keeps a crashed
            // node looking alive for up to a gossip interval longer.
            if incoming.heartbeat > self.me.heartbeat {
                self.me.heartbeat = incoming.heartbeat + 1;
            }
            return None;
        }
        if let Some((last, _)) = self.tombstones.get(&incoming.node_id) {
            if incoming.heartbeat <= *last {
                return None;
            }
            self.tombstones.remove(&incoming.node_id);
        }
        match self.peers.get_mut(&incoming.node_id) {
            None => {
                // Only a node someone saw alive joins our table; gossip about unknown dead or
                // suspect nodes is not news.
                if incoming.state != NodeState::Alive || incoming.address.is_empty() {
                    return None;
                }
                let mut entry = incoming.clone();
                entry.state = NodeState::Alive;
                self.peers.insert(entry.node_id.clone(), Member { entry, last_rise: now, dead_since: None });
                Some(Change::Joined(incoming.node_id.clone()))
            }
            Some(member) if incoming.heartbeat > member.entry.heartbeat => {
                let was = member.entry.state;
                member.entry.heartbeat = incoming.heartbeat;
                member.entry.agents.clone_from(&incoming.agents);
                member.entry.active_requests = incoming.active_requests;
                if !incoming.address.is_empty() {
                    member.entry.address.clone_from(&incoming.address);
                }
                member.entry.state = NodeState::Alive;
                member.last_rise = now;
                member.dead_since = None;
                (was != NodeState::Alive).then(|| Change::Recovered(incoming.node_id.clone()))
            }
            // Heartbeats raise a peer's counter but carry no agent list, so gossip of the same
            // counter is the newest word on its agents (they change when the peer reloads).
            Some(member) if incoming.heartbeat == member.entry.heartbeat && incoming.agents != member.entry.agents => {
                member.entry.agents.clone_from(&incoming.agents);
                None
            }
            Some(_) => None,
        }
    }

    /// A message sent by the node itself: its own word about its counter. A restarted node
    /// (counter back near zero) is taken at its word when we hold it as dead.
    pub fn heard_from(&mut self, node_id: &str, heartbeat: u64, active_requests: u64, now: Instant) -> HeardFrom {
        let Some(member) = self.peers.get_mut(node_id) else { return HeardFrom::Unknown };
        let was = member.entry.state;
        if heartbeat > member.entry.heartbeat || was == NodeState::Dead {
            member.entry.heartbeat = heartbeat.max(if was == NodeState::Dead { 0 } else { member.entry.heartbeat });
            member.entry.active_requests = active_requests;
            member.entry.state = NodeState::Alive;
            member.last_rise = now;
            member.dead_since = None;
        }
        if was != NodeState::Alive {
            HeardFrom::Recovered
        } else {
            HeardFrom::Known
        }
    }

    /// A node introduced directly (`join`): added or refreshed as alive.
    pub fn admit(&mut self, entry: Entry, now: Instant) -> Change {
        self.tombstones.remove(&entry.node_id);
        let id = entry.node_id.clone();
        let heartbeat =
            self.peers.get(&id).map_or(entry.heartbeat, |member| member.entry.heartbeat.max(entry.heartbeat));
        let entry = Entry { heartbeat, state: NodeState::Alive, ..entry };
        let existed = self.peers.insert(id.clone(), Member { entry, last_rise: now, dead_since: None }).is_some();
        if existed {
            Change::Recovered(id)
        } else {
            Change::Joined(id)
        }
    }

    /// A node that left: dropped at once, tombstoned with its last counter.
    pub fn remove(&mut self, node_id: &str, now: Instant) -> bool {
        match self.peers.remove(node_id) {
            Some(member) => {
                self.tombstones.insert(node_id.to_string(), (member.entry.heartbeat, now + self.timeouts.cleanup));
                true
            }
            None => false,
        }
    }

    /// The failure detector: ages every peer by how long its counter has been still.
    pub fn detect(&mut self, now: Instant) -> Vec<Change> {
        let timeouts = self.timeouts;
        let mut changes = Vec::new();
        let mut forget = Vec::new();
        for (id, member) in &mut self.peers {
            let still = now.saturating_duration_since(member.last_rise);
            let state = if still >= timeouts.dead {
                NodeState::Dead
            } else if still >= timeouts.failure {
                NodeState::Suspect
            } else {
                NodeState::Alive
            };
            if state == NodeState::Dead {
                let since = *member.dead_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= timeouts.cleanup {
                    forget.push(id.clone());
                    continue;
                }
            }
            if state != member.entry.state {
                member.entry.state = state;
                changes.push(match state {
                    NodeState::Suspect => Change::Suspected(id.clone()),
                    NodeState::Dead => Change::Died(id.clone()),
                    NodeState::Alive => Change::Recovered(id.clone()),
                });
            }
        }
        for id in forget {
            self.remove(&id, now);
            changes.push(Change::Forgotten(id));
        }
        self.tombstones.retain(|_, (_, until)| *until > now);
        changes
    }
}

/// What `heard_from` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeardFrom {
    Known,
    Recovered,
    /// Not in our table: the sender should introduce itself (`join`).
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, heartbeat: u64) -> Entry {
        Entry {
            node_id: id.to_string(),
            address: format!("{id}:1"),
            heartbeat,
            state: NodeState::Alive,
            agents: vec![],
            active_requests: 0,
        }
    }

    fn table() -> Membership {
        let timeouts = Timeouts {
            failure: Duration::from_secs(4),
            dead: Duration::from_secs(10),
            cleanup: Duration::from_secs(60),
        };
        Membership::new(entry("me", 0), timeouts)
    }

    fn state(table: &Membership, id: &str) -> Option<NodeState> {
        table.peer(id).map(|entry| entry.state)
    }

    #[test]
    fn a_still_counter_goes_suspect_then_dead_then_is_forgotten() {
        let start = Instant::now();
        let mut table = table();
        table.merge(&entry("b", 5), start);
        assert_eq!(table.detect(start + Duration::from_secs(3)), vec![]);
        assert_eq!(table.detect(start + Duration::from_secs(4)), vec![Change::Suspected("b".into())]);
        assert_eq!(table.detect(start + Duration::from_secs(10)), vec![Change::Died("b".into())]);
        assert_eq!(table.detect(start + Duration::from_secs(69)), vec![]);
        assert_eq!(table.detect(start + Duration::from_secs(70)), vec![Change::Forgotten("b".into())]);
        assert_eq!(state(&table, "b"), None);
        // Stale gossip cannot resurrect it; a higher counter can.
        table.merge(&entry("b", 5), start + Duration::from_secs(71));
        assert_eq!(state(&table, "b"), None);
        table.merge(&entry("b", 6), start + Duration::from_secs(72));
        assert_eq!(state(&table, "b"), Some(NodeState::Alive));
    }

    #[test]
    fn gossip_at_the_counter_a_heartbeat_brought_still_updates_the_agents() {
        let start = Instant::now();
        let mut table = table();
        table.merge(&entry("b", 5), start);
        // b's own heartbeat (no agents) raises the counter first...
        table.heard_from("b", 6, 0, start);
        // ...then its gossip at that counter says what it hosts since a reload.
        let mut reloaded = entry("b", 6);
        reloaded.agents = vec!["late".to_string()];
        assert_eq!(table.merge(&reloaded, start), None);
        assert_eq!(table.peer("b").map(|entry| entry.agents.clone()), Some(vec!["late".to_string()]));
        // Older gossip does not take it back.
        assert_eq!(table.merge(&entry("b", 5), start), None);
        assert_eq!(table.peer("b").map(|entry| entry.agents.clone()), Some(vec!["late".to_string()]));
    }

    #[test]
    fn a_rising_counter_refutes_suspicion_and_a_still_one_does_not() {
        let start = Instant::now();
        let mut table = table();
        table.merge(&entry("b", 5), start);
        table.detect(start + Duration::from_secs(5));
        assert_eq!(state(&table, "b"), Some(NodeState::Suspect));
        assert_eq!(table.merge(&entry("b", 5), start + Duration::from_secs(5)), None);
        assert_eq!(state(&table, "b"), Some(NodeState::Suspect));
        assert_eq!(table.merge(&entry("b", 6), start + Duration::from_secs(5)), Some(Change::Recovered("b".into())));
        assert_eq!(table.detect(start + Duration::from_secs(8)), vec![]);
    }

    #[test]
    fn gossip_about_ourselves_pushes_our_counter_above_it() {
        let mut table = table();
        table.merge(&entry("me", 41), Instant::now());
        assert_eq!(table.me().heartbeat, 42);
        table.merge(&entry("me", 42), Instant::now());
        assert_eq!(table.me().heartbeat, 42, "our own counter coming back is no news");
        assert_eq!(table.beat(0), 43);
    }

    #[test]
    fn unknown_nodes_are_learned_only_when_alive_and_left_nodes_stay_gone() {
        let now = Instant::now();
        let mut table = table();
        table.merge(&Entry { state: NodeState::Dead, ..entry("c", 3) }, now);
        assert_eq!(state(&table, "c"), None);
        table.merge(&entry("c", 3), now);
        assert!(table.remove("c", now));
        table.merge(&entry("c", 3), now);
        assert_eq!(state(&table, "c"), None);
    }

    #[test]
    fn a_restarted_node_is_taken_at_its_word_once_dead() {
        let start = Instant::now();
        let mut table = table();
        table.merge(&entry("b", 500), start);
        table.detect(start + Duration::from_secs(11));
        assert_eq!(state(&table, "b"), Some(NodeState::Dead));
        assert_eq!(table.heard_from("b", 2, 0, start + Duration::from_secs(12)), HeardFrom::Recovered);
        assert_eq!(table.peer("b").map(|entry| entry.heartbeat), Some(2));
        assert_eq!(table.heard_from("zz", 2, 0, start), HeardFrom::Unknown);
    }

    proptest::proptest! {
        /// Merging is order-independent for the counter: whatever order gossip arrives in, the
        /// table ends with the highest heartbeat seen.
        #[test]
        fn merge_keeps_the_highest_counter(beats in proptest::collection::vec(1u64..1000, 1..20)) {
            let now = Instant::now();
            let mut table = table();
            for beat in &beats {
                table.merge(&entry("b", *beat), now);
            }
            let highest = beats.iter().copied().max().unwrap_or_default();
            proptest::prop_assert_eq!(table.peer("b").map(|entry| entry.heartbeat), Some(highest));
        }
    }
}
