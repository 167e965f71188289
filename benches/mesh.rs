//! Mesh failure detection and convergence with real nodes over HTTP on loopback.
//!
//! For 3, 10 and 30 nodes (`MESH_BENCH_SIZES`), with the default timings (gossip 2 s,
//! heartbeat 1 s, suspect after 4 s, dead after 10 s) and with gossip_interval 0.5 s
//! (`MESH_BENCH_GOSSIP`): convergence time after the last node joins (every node sees every
//! node alive and the same leader), false suspicions during a healthy period
//! (`MESH_BENCH_HEALTHY_SECS`, default 10; the target is zero over 300), and the time from
//! killing a node until every other node holds it suspect, then dead. Figures, not pass/fail.
//!
//! Run with `cargo bench --bench mesh` (or `cargo bench --profile dev --bench mesh` to skip the
//! release build). Each node has its own runtime thread, so a kill is a real crash.

#[path = "../tests/support/mesh.rs"]
mod support;

use std::time::{Duration, Instant};

use astromesh::mesh::membership::NodeState;
use support::{time_until, MeshNode, NodeSpec, Timings};

fn env_list(name: &str, default: &str) -> Vec<f64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|item| item.trim().parse().ok())
        .collect()
}

fn secs(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "timeout".to_string(), |duration| format!("{:.2}", duration.as_secs_f64()))
}

async fn scenario(size: usize, timings: Timings, healthy: Duration) {
    let prefix = format!("b{size}g{}", (timings.gossip * 10.0) as u32);
    let first = MeshNode::start(NodeSpec::new(&format!("{prefix}-00"), &[], timings)).await;
    let seed = first.address.clone();
    let mut nodes = vec![first];
    for index in 1..size {
        nodes.push(MeshNode::start(NodeSpec::new(&format!("{prefix}-{index:02}"), &[seed.as_str()], timings)).await);
    }
    let highest = format!("{prefix}-{:02}", size - 1);
    let converged = time_until(Duration::from_secs(120), || {
        nodes.iter().all(|node| node.alive().len() == size && node.leader().as_deref() == Some(highest.as_str()))
    })
    .await;
    let before: u64 = nodes.iter().map(|node| node.mesh.suspicions()).sum();
    tokio::time::sleep(healthy).await;
    let false_suspicions: u64 = nodes.iter().map(|node| node.mesh.suspicions()).sum::<u64>() - before;
    // Kill a node that is not the leader (the leader case adds an election, timed separately).
    let mut victim = nodes.remove(1);
    let victim_id = victim.name.clone();
    let killed = Instant::now();
    victim.kill();
    let limit = Duration::from_secs_f64(timings.dead * 3.0);
    let suspected = time_until(limit, || {
        nodes.iter().all(|node| node.sees(&victim_id).is_none_or(|state| state != NodeState::Alive))
    })
    .await
    .map(|_| killed.elapsed());
    let dead = time_until(limit, || {
        nodes.iter().all(|node| node.sees(&victim_id).is_none_or(|state| state == NodeState::Dead))
    })
    .await
    .map(|_| killed.elapsed());
    // The leader next: time until every survivor agrees on the next highest.
    let mut leader = nodes.pop().expect("leader");
    let next = nodes.last().expect("a survivor").name.clone();
    let killed = Instant::now();
    leader.kill();
    let reelected = time_until(limit, || nodes.iter().all(|node| node.leader().as_deref() == Some(next.as_str())))
        .await
        .map(|_| killed.elapsed());
    println!(
        "{size:>5} {:>7.1} {:>13} {:>9} {:>11} {:>9} {:>10}",
        timings.gossip,
        secs(converged),
        false_suspicions,
        secs(suspected),
        secs(dead),
        secs(reelected),
    );
    drop(victim);
    drop(leader);
    for node in nodes {
        node.stop().await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let sizes: Vec<usize> = env_list("MESH_BENCH_SIZES", "3,10,30").into_iter().map(|size| size as usize).collect();
    let gossips = env_list("MESH_BENCH_GOSSIP", "2,0.5");
    let healthy = Duration::from_secs_f64(env_list("MESH_BENCH_HEALTHY_SECS", "10").first().copied().unwrap_or(10.0));
    let defaults = astromesh::config::mesh::MeshConfig::default();
    println!(
        "mesh defaults: heartbeat {:?}, suspect after {:?}, dead after {:?}; healthy period {healthy:?}",
        defaults.heartbeat_interval, defaults.failure_timeout, defaults.dead_timeout
    );
    println!("nodes  gossip  converge(s)  false_susp  suspect(s)  dead(s)  leader(s)");
    for gossip in gossips {
        for &size in &sizes {
            let timings = Timings {
                gossip,
                heartbeat: defaults.heartbeat_interval.as_secs_f64(),
                failure: defaults.failure_timeout.as_secs_f64(),
                dead: defaults.dead_timeout.as_secs_f64(),
                cleanup: defaults.cleanup_timeout.as_secs_f64(),
            };
            runtime.block_on(scenario(size.max(3), timings, healthy));
        }
    }
}
