//! Where a run for an agent we do not host goes: pure peer selection.
//!
//! Session affinity by rendezvous (highest-random-weight) hashing of the session id over the
//! nodes hosting the agent: a session's history stays on one node, and when a node leaves only
//! its sessions move. Load bends it: nodes carrying more than `LOAD_SLACK` requests above the
//! least loaded one are passed over, and a suspect node counts `SUSPECT_PENALTY` extra requests
//! (the reference design's figure), so it is chosen only when nothing better exists. The hash is
//! SipHash-1-3 with fixed keys, so every node of a cluster ranks the same way.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use super::membership::{Entry, NodeState};

/// Virtual requests added to a suspect node's load.
pub const SUSPECT_PENALTY: u64 = 100;
/// How much busier than the least loaded host a node may be and still keep its sessions.
pub const LOAD_SLACK: u64 = 8;

fn weight(key: &str, node_id: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0x6173_7472_6f6d_6573, 0x6820_7265_6e64_657a);
    hasher.write(key.as_bytes());
    hasher.write_u8(0xff);
    hasher.write(node_id.as_bytes());
    hasher.finish()
}

/// The peers to try for `agent`, best first (the rest are fallbacks if the first is
/// unreachable). Dead nodes are never candidates. `key` is the session id, or any per-request
/// value when the run has none.
pub fn rank<'a>(peers: impl Iterator<Item = &'a Entry>, agent: &str, key: &str) -> Vec<&'a Entry> {
    let load =
        |entry: &Entry| entry.active_requests + if entry.state == NodeState::Suspect { SUSPECT_PENALTY } else { 0 };
    let mut hosts: Vec<&Entry> =
        peers.filter(|entry| entry.state != NodeState::Dead && entry.agents.iter().any(|name| name == agent)).collect();
    let Some(least) = hosts.iter().map(|entry| load(entry)).min() else { return hosts };
    hosts.sort_by_key(|entry| {
        let eligible = load(entry) <= least + LOAD_SLACK;
        (std::cmp::Reverse(eligible), std::cmp::Reverse(weight(key, &entry.node_id)))
    });
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, load: u64, state: NodeState, agents: &[&str]) -> Entry {
        Entry {
            node_id: id.to_string(),
            address: format!("{id}:1"),
            heartbeat: 1,
            state,
            agents: agents.iter().map(|name| name.to_string()).collect(),
            active_requests: load,
        }
    }

    #[test]
    fn a_session_sticks_to_one_host_and_sessions_spread() {
        let hosts: Vec<Entry> =
            ["n1", "n2", "n3", "n4"].iter().map(|id| host(id, 0, NodeState::Alive, &["a"])).collect();
        let mut chosen = std::collections::BTreeSet::new();
        for session in 0..64 {
            let key = format!("sess_{session}");
            let first = rank(hosts.iter(), "a", &key)[0].node_id.clone();
            assert_eq!(rank(hosts.iter().rev(), "a", &key)[0].node_id, first, "order of peers must not matter");
            chosen.insert(first);
        }
        assert_eq!(chosen.len(), 4, "64 sessions should use every host");
    }

    #[test]
    fn removing_a_host_moves_only_its_sessions() {
        let hosts: Vec<Entry> = ["n1", "n2", "n3"].iter().map(|id| host(id, 0, NodeState::Alive, &["a"])).collect();
        for session in 0..32 {
            let key = format!("s{session}");
            let before = rank(hosts.iter(), "a", &key)[0].node_id.clone();
            if before != "n3" {
                assert_eq!(rank(hosts.iter().take(2), "a", &key)[0].node_id, before);
            }
        }
    }

    #[test]
    fn overloaded_suspect_and_dead_hosts_are_passed_over() {
        let hosts = [
            host("busy", 50, NodeState::Alive, &["a"]),
            host("doubt", 0, NodeState::Suspect, &["a"]),
            host("gone", 0, NodeState::Dead, &["a"]),
            host("calm", 3, NodeState::Alive, &["a"]),
            host("other", 0, NodeState::Alive, &["b"]),
        ];
        for session in 0..16 {
            let ranked = rank(hosts.iter(), "a", &format!("s{session}"));
            assert_eq!(ranked[0].node_id, "calm");
            assert_eq!(ranked.len(), 3);
        }
        assert!(rank(hosts.iter(), "nobody-hosts-this", "s").is_empty());
    }
}
