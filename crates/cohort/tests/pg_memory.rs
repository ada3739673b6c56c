//! Bytes per membership held by process groups (issue 3: at most 64 bytes
//! per membership on a remote node), for the `pg_join` shape: 100,000
//! memberships in 10,000 groups. Counts live heap bytes with a counting
//! global allocator; run in release with
//! `cargo test --release -p cohort-registry --test pg_memory -- --ignored --nocapture`.

mod common;

use std::time::Duration;

use cohort_registry::{Node, Process};
use common::counting::{live, Counting};
use common::{start, wait_for};

#[global_allocator]
static A: Counting = Counting;

const N: usize = 100_000;
const GROUPS: usize = 10_000;

/// Live bytes after `origin`'s processes join their groups, once
/// `watcher` (if any) holds them all.
async fn joined(origin: &Node, procs: &[Process], watcher: Option<&Node>) -> isize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = live();
    let pg = origin.pg();
    let mut g = String::new();
    for (i, p) in procs.iter().enumerate() {
        g.clear();
        std::fmt::Write::write_fmt(&mut g, format_args!("g{}", i % GROUPS)).unwrap();
        pg.join(&g, p.pid()).unwrap();
    }
    if let Some(w) = watcher {
        let wp = w.pg();
        wait_for("replication", || wp.membership_count() == N).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    live() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn bytes_per_membership() {
    let solo = start("solo@127.0.0.1").await;
    let procs: Vec<Process> = (0..N).map(|_| solo.spawn()).collect();
    let local = joined(&solo, &procs, None).await;
    drop(procs);
    solo.shutdown().await;

    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    wait_for("mesh", || a.nodes().len() == 1 && b.nodes().len() == 1).await;
    let procs: Vec<Process> = (0..N).map(|_| a.spawn()).collect();
    let both = joined(&a, &procs, Some(&b)).await;
    let held = live();
    b.shutdown().await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let freed = held - live();
    println!(
        "pg_memory: N={N} in {GROUPS} groups: local {:.1} B/membership, remote {:.1} (both {:.1}); dropping the watcher freed {:.1}",
        local as f64 / N as f64,
        (both - local) as f64 / N as f64,
        both as f64 / N as f64,
        freed as f64 / N as f64
    );
}
