//! Many-way splits: OTP global_SUITE's ring, line and stress_partition,
//! in locked and eventual mode.

mod common;
mod names_util;

use cohort_registry::core::names::{LossPolicy, Mode, NamesConfig, TableConfig};
use cohort_registry::transport::mem::MemNetwork;
use cohort_registry::{ExitReason, Message, Node, Pid, Process};
use common::*;
use names_util::*;

const MODES: [Mode; 2] = [Mode::Locked, Mode::Eventual];

fn hosts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}@mem")).collect()
}

/// Cuts every link: each node alone.
async fn singletons(net: &MemNetwork, nodes: &[Node]) {
    let hs: Vec<String> = nodes
        .iter()
        .map(|n| host_of(n.name().as_str()).to_string())
        .collect();
    for (i, h) in hs.iter().enumerate() {
        let rest: Vec<&str> = hs[i + 1..].iter().map(String::as_str).collect();
        net.partition(&[h], &rest);
    }
    let sides: Vec<Vec<&Node>> = nodes.iter().map(|n| vec![n]).collect();
    let sides: Vec<&[&Node]> = sides.iter().map(Vec::as_slice).collect();
    wait_sides(&sides).await;
}

/// Ten single-node partitions each register one name, then the network
/// heals link by link in the order of `links`; the mesh fills in.
async fn heal_one_name(mode: Mode, policy: LossPolicy, links: &[(usize, usize)]) {
    let net = MemNetwork::default();
    let hs = hosts(10);
    let hs: Vec<&str> = hs.iter().map(String::as_str).collect();
    let cfg = NamesConfig::empty().table(TableConfig::new("global").mode(mode).policy(policy));
    let nodes = mem_cluster_with(&net, &hs, cfg, false).await;
    singletons(&net, &nodes).await;
    let mut ps: Vec<Process> = nodes.iter().map(|n| n.spawn()).collect();
    for (n, p) in nodes.iter().zip(&ps) {
        n.register("single", p.pid()).await.unwrap();
    }
    net.heal();
    for &(x, y) in links {
        nodes[x].connect(&nodes[y].local_addr()).await.unwrap();
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait_full_mesh(&all).await;
    // Equal stamps everywhere: the lowest node name wins.
    wait_views(&all, &[("single", ps[0].pid())]).await;
    for (i, p) in ps.iter_mut().enumerate().skip(1) {
        match (policy, next(p).await) {
            (LossPolicy::Kill, m) => assert_eq!(
                m,
                Message::Exit {
                    reason: ExitReason::Killed("name conflict: single".into()),
                },
                "loser {i} ({mode:?})"
            ),
            // The winner named is the one the loser's node met first: a
            // better-ranked claim, not necessarily the final winner.
            (
                _,
                Message::NameConflict {
                    table,
                    name,
                    winner,
                },
            ) => {
                assert_eq!((table.as_str(), name.as_str()), ("global", "single"));
                let w = winner.expect("a winner");
                assert!(w.node() < nodes[i].name(), "loser {i} beaten by {w}");
            }
            (_, m) => panic!("loser {i}: unexpected {m:?}"),
        }
        assert_eq!(nodes[i].is_alive(p.pid()), policy == LossPolicy::Notify);
    }
    assert!(nodes[0].is_alive(ps[0].pid()));
}

#[tokio::test(start_paused = true)]
async fn ring_of_single_node_partitions_keeps_exactly_one_name() {
    let ring: Vec<(usize, usize)> = (0..10).map(|i| (i, (i + 1) % 10)).collect();
    for mode in MODES {
        heal_one_name(mode, LossPolicy::Kill, &ring).await;
    }
}

#[tokio::test(start_paused = true)]
async fn line_of_single_node_partitions_keeps_exactly_one_name() {
    let line: Vec<(usize, usize)> = (0..9).map(|i| (9 - i, 8 - i)).collect();
    for mode in MODES {
        heal_one_name(mode, LossPolicy::Notify, &line).await;
    }
}

#[tokio::test(start_paused = true)]
async fn stress_partition_with_a_crash_a_restart_and_late_names_converges() {
    for mode in MODES {
        let net = MemNetwork::default();
        let hs = hosts(10);
        let hs: Vec<&str> = hs.iter().map(String::as_str).collect();
        let mut nodes = mem_cluster(&net, &hs, cfg(mode)).await;
        let mut ps: Vec<Process> = nodes.iter().map(|n| n.spawn()).collect();
        for (i, (n, p)) in nodes.iter().zip(&ps).enumerate() {
            n.register(format!("r{i}"), p.pid()).await.unwrap();
            n.names().sync().await.unwrap();
        }
        // Three partitions.
        let groups: [&[usize]; 3] = [&[0, 1, 2], &[3, 4, 5], &[6, 7, 8, 9]];
        let h = |g: &[usize]| -> Vec<&str> { g.iter().map(|&i| host_of(hs[i])).collect() };
        for x in 0..3 {
            for y in x + 1..3 {
                net.partition(&h(groups[x]), &h(groups[y]));
            }
        }
        {
            let sides: Vec<Vec<&Node>> = groups
                .iter()
                .map(|g| g.iter().map(|&i| &nodes[i]).collect())
                .collect();
            let sides: Vec<&[&Node]> = sides.iter().map(Vec::as_slice).collect();
            wait_sides(&sides).await;
        }
        // The same name in each partition, first thing: equal stamps.
        let shared: Vec<Process> = groups.iter().map(|g| nodes[g[0]].spawn()).collect();
        for (g, p) in groups.iter().zip(&shared) {
            nodes[g[0]].register("shared", p.pid()).await.unwrap();
        }
        // A crash in the second partition, and a restart of the same node.
        nodes[5].abort().await;
        let gone = ps[5].pid().clone();
        std::mem::forget(ps.remove(5));
        wait_for("n5 gone", || {
            nodes[3].whereis("r5").is_none() && nodes[4].whereis("r5").is_none()
        })
        .await;
        nodes[5] = mem_node(&net, "n5@mem", cfg(mode), true).await;
        nodes[5].connect(&nodes[3].local_addr()).await.unwrap();
        // Late registrations on every side, the restarted node included.
        let mut late: Vec<(String, Process, usize)> = Vec::new();
        for i in [1, 5, 4, 9, 6] {
            let p = nodes[i].spawn();
            let name = format!("late{i}");
            nodes[i].register(name.clone(), p.pid()).await.unwrap();
            late.push((name, p, i));
        }
        net.heal();
        let all: Vec<&Node> = nodes.iter().collect();
        wait_full_mesh(&all).await;
        let mut want: Vec<(String, Pid)> = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            let i = if i >= 5 { i + 1 } else { i };
            want.push((format!("r{i}"), p.pid().clone()));
        }
        want.push(("shared".into(), shared[0].pid().clone()));
        for (name, p, _) in &late {
            want.push((name.clone(), p.pid().clone()));
        }
        let want_ref: Vec<(&str, &Pid)> = want.iter().map(|(n, p)| (n.as_str(), p)).collect();
        wait_views(&all, &want_ref).await;
        assert!(want.iter().all(|(_, p)| p != &gone));
        for (k, mut p) in shared.into_iter().enumerate().skip(1) {
            assert_eq!(
                next(&mut p).await,
                Message::Exit {
                    reason: ExitReason::Killed("name conflict: shared".into())
                },
                "shared loser {k} ({mode:?})"
            );
        }
    }
}
