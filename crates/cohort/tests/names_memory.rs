//! Bytes per name held by the name service: at most 128 bytes per name on
//! the registering node (issue 16) and on a remote node (issue 4). Counts
//! live heap bytes with a counting global allocator, so only what the
//! nodes keep counts (not freed buffers, not the test's own pids); run in
//! release with
//! `cargo test --release -p cohort-registry --test names_memory -- --ignored --nocapture`.

mod common;

use std::time::Duration;

use cohort_registry::core::names::{Mode, NamesConfig, TableConfig};
use cohort_registry::{Node, Process};
use common::counting::{live, Counting};
use common::{builder, wait_for};

#[global_allocator]
static A: Counting = Counting;

async fn node(name: &str, mode: Mode) -> Node {
    let cfg = NamesConfig::empty().table(TableConfig::new("t").mode(mode));
    builder(name).names(cfg).start().await.expect("node starts")
}

fn name(i: usize) -> String {
    format!("name-{i}")
}

/// Live bytes after registering one name per process of `procs` on
/// `origin` (whose processes exist before), once `watcher` (if any) sees
/// them all. No `sync`: its snapshot of every name would leave a read
/// buffer of that size behind, which is not name storage.
async fn registered(origin: &Node, procs: &[Process], watcher: Option<&Node>) -> isize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = live();
    let t = origin.names_table("t").unwrap();
    for (i, p) in procs.iter().enumerate() {
        t.register(name(i), p.pid()).await.unwrap();
    }
    if let Some(w) = watcher {
        let wt = w.names_table("t").unwrap();
        let last = name(procs.len() - 1);
        // Claims apply in order: the last one there means all are.
        wait_for("replication", || wt.whereis(&last).is_some()).await;
        assert_eq!(wt.len(), procs.len());
    }
    // Locked registrations release their name locks after they return.
    tokio::time::sleep(Duration::from_millis(300)).await;
    live() - before
}

/// Bytes per name on the registering node alone, and on a node that
/// follows it (both nodes in this process: the follower's share is the
/// pair's minus the lone node's).
async fn per_name(mode: Mode, n: usize) -> (f64, f64) {
    let solo = node("solo@127.0.0.1", mode).await;
    let procs: Vec<Process> = (0..n).map(|_| solo.spawn()).collect();
    let local = registered(&solo, &procs, None).await;
    drop(procs);
    solo.shutdown().await;

    let a = node("a@127.0.0.1", mode).await;
    let b = node("b@127.0.0.1", mode).await;
    b.connect(&a.local_addr()).await.unwrap();
    wait_for("mesh", || a.nodes().len() == 1 && b.nodes().len() == 1).await;
    let procs: Vec<Process> = (0..n).map(|_| a.spawn()).collect();
    let both = registered(&a, &procs, Some(&b)).await;
    drop(procs);
    a.shutdown().await;
    b.shutdown().await;
    (local as f64 / n as f64, (both - local) as f64 / n as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn bytes_per_name() {
    for (mode, label) in [(Mode::Locked, "locked"), (Mode::Eventual, "eventual")] {
        for n in [2_000, 10_000, 100_000] {
            let (local, remote) = per_name(mode, n).await;
            println!(
                "names_memory: {label} N={n} local {local:.1} B/name, remote {remote:.1} B/name"
            );
        }
    }
}
