//! Names at scale and under mass exits: OTP global_SUITE's name_die,
//! mass_death and many_nodes (32 nodes on the in-memory network).

mod common;
mod names_util;

use cohort_registry::core::names::{Mode, NamesError};
use cohort_registry::transport::mem::MemNetwork;
use cohort_registry::{ExitReason, Node, Pid, Process};
use names_util::*;

const MODES: [Mode; 2] = [Mode::Locked, Mode::Eventual];

#[tokio::test(start_paused = true)]
async fn name_die_names_go_with_their_process_and_node() {
    for mode in MODES {
        let net = MemNetwork::default();
        let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(mode)).await;
        let all: Vec<&Node> = nodes.iter().collect();
        let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
        let p = b.spawn();
        let q = c.spawn();
        b.register("on_b", p.pid()).await.unwrap();
        c.register("on_c", q.pid()).await.unwrap();
        wait_views(&all, &[("on_b", p.pid()), ("on_c", q.pid())]).await;
        // Killed from another node.
        a.kill(p.pid(), ExitReason::Killed("test".into()));
        wait_views(&all, &[("on_c", q.pid())]).await;
        // Its node dies without a goodbye.
        std::mem::forget(q);
        c.abort().await;
        wait_views(&[a, b], &[]).await;
    }
}

#[tokio::test(start_paused = true)]
async fn mass_death_of_200_named_processes_leaves_no_name() {
    for mode in MODES {
        let net = MemNetwork::default();
        let hs = ["a@mem", "b@mem", "c@mem", "d@mem", "e@mem"];
        let nodes = mem_cluster(&net, &hs, cfg(mode)).await;
        let all: Vec<&Node> = nodes.iter().collect();
        let mut procs: Vec<Process> = Vec::new();
        let mut want: Vec<(String, Pid)> = Vec::new();
        for n in &nodes {
            for i in 0..40 {
                let p = n.spawn();
                let name = format!("{}-{i}", n.name());
                n.register(name.clone(), p.pid()).await.unwrap();
                want.push((name, p.pid().clone()));
                procs.push(p);
            }
        }
        let w: Vec<(&str, &Pid)> = want.iter().map(|(n, p)| (n.as_str(), p)).collect();
        wait_views(&all, &w).await;
        drop(procs);
        wait_views(&all, &[]).await;
    }
}

#[tokio::test(start_paused = true)]
async fn many_nodes_register_concurrently_and_converge() {
    for mode in MODES {
        let net = MemNetwork::default();
        let hs: Vec<String> = (0..32).map(|i| format!("n{i:02}@mem")).collect();
        let hs: Vec<&str> = hs.iter().map(String::as_str).collect();
        let nodes = mem_cluster(&net, &hs, cfg(mode)).await;
        let all: Vec<&Node> = nodes.iter().collect();
        let procs: Vec<Process> = nodes.iter().map(|n| n.spawn()).collect();
        let shared: Vec<Process> = nodes.iter().map(|n| n.spawn()).collect();
        // Every node registers its own name and the shared one at once.
        let own = futures::future::join_all(
            nodes
                .iter()
                .zip(&procs)
                .map(|(n, p)| n.register(format!("own-{}", n.name()), p.pid())),
        );
        let contested = futures::future::join_all(
            nodes
                .iter()
                .zip(&shared)
                .map(|(n, p)| n.register("shared", p.pid())),
        );
        let (own, contested) = futures::join!(own, contested);
        assert!(own.iter().all(Result::is_ok), "{own:?}");
        let oks: Vec<usize> = (0..32).filter(|&i| contested[i].is_ok()).collect();
        let winner = match mode {
            // Locked: exactly one call succeeds, the others see Taken.
            Mode::Locked => {
                assert_eq!(oks.len(), 1, "{contested:?}");
                assert!(contested
                    .iter()
                    .all(|r| r.is_ok() || *r == Err(NamesError::Taken)));
                oks[0]
            }
            // Eventual: the local writes all succeed (no claim has
            // travelled yet); equal stamps, so the lowest node name wins.
            Mode::Eventual => {
                assert_eq!(oks.len(), 32);
                0
            }
            other => unreachable!("a mode this test does not know: {other:?}"),
        };
        let mut want: Vec<(String, Pid)> = nodes
            .iter()
            .zip(&procs)
            .map(|(n, p)| (format!("own-{}", n.name()), p.pid().clone()))
            .collect();
        want.push(("shared".into(), shared[winner].pid().clone()));
        let w: Vec<(&str, &Pid)> = want.iter().map(|(n, p)| (n.as_str(), p)).collect();
        wait_views(&all, &w).await;
        for (i, p) in shared.iter().enumerate() {
            let alive = nodes[i].is_alive(p.pid());
            let expect = i == winner || mode == Mode::Locked;
            assert_eq!(alive, expect, "shared claimant {i} ({mode:?})");
        }
    }
}
