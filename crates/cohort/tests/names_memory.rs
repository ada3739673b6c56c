//! Bytes per name held by the name service (issue 4: at most 128 bytes per
//! name on a remote node). Counts live heap bytes with a counting global
//! allocator; run in release with
//! `cargo test --release -p cohort-registry --test names_memory -- --ignored --nocapture`.

mod common;

use std::time::Duration;

use cohort_registry::core::names::{Mode, NamesConfig, TableConfig};
use cohort_registry::{Node, Process};
use common::counting::{live, Counting};
use common::{builder, wait_for};

#[global_allocator]
static A: Counting = Counting;

const N: usize = 100_000;

async fn node(name: &str) -> Node {
    let cfg = NamesConfig::empty().table(TableConfig::new("t").mode(Mode::Eventual));
    builder(name).names(cfg).start().await.expect("node starts")
}

fn name(i: usize) -> String {
    format!("name-{i}")
}

/// Live bytes after registering `N` names on `origin` (whose processes
/// exist before), once `watcher` (if any) sees them all. No `sync`: its
/// snapshot of every name would leave a read buffer of that size behind,
/// which is not name storage.
async fn registered(origin: &Node, procs: &[Process], watcher: Option<&Node>) -> isize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = live();
    let t = origin.names_table("t").unwrap();
    for (i, p) in procs.iter().enumerate() {
        t.register(name(i), p.pid()).await.unwrap();
    }
    if let Some(w) = watcher {
        let wt = w.names_table("t").unwrap();
        let last = name(N - 1);
        // Claims apply in order: the last one there means all are.
        wait_for("replication", || wt.whereis(&last).is_some()).await;
        assert_eq!(wt.registered_names().len(), N);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    live() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn bytes_per_name() {
    // Local: one node alone.
    let solo = node("solo@127.0.0.1").await;
    let procs: Vec<Process> = (0..N).map(|_| solo.spawn()).collect();
    let local = registered(&solo, &procs, None).await;
    drop(procs);
    solo.shutdown().await;

    // Local + remote: a origin, b watcher.
    let a = node("a@127.0.0.1").await;
    let b = node("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    wait_for("mesh", || a.nodes().len() == 1 && b.nodes().len() == 1).await;
    let procs: Vec<Process> = (0..N).map(|_| a.spawn()).collect();
    let both = registered(&a, &procs, Some(&b)).await;
    let remote = both - local;
    // The watcher's whole footprint, directly: what it frees when it goes.
    let held = live();
    b.shutdown().await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let freed = held - live();
    println!(
        "names_memory: dropping the watcher freed {:.1} B/name",
        freed as f64 / N as f64
    );
    println!(
        "names_memory: N={N} local {:.1} B/name, remote {:.1} B/name (both {:.1})",
        local as f64 / N as f64,
        remote as f64 / N as f64,
        both as f64 / N as f64
    );
}
