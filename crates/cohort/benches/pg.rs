//! Process-group hot paths: `members` reads (small, large, absent group),
//! local joins into distinct groups and into one shared group, on a node
//! with two connected peers over loopback TCP (the docs/BENCHMARKS.md setup, in
//! one OS process).
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use cohort_registry::{Node, Pid, Process};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn node(name: &str) -> Node {
    Node::builder()
        .name(name)
        .cookie("bench")
        .start()
        .await
        .unwrap()
}

async fn cluster() -> (Node, Node, Node) {
    let a = node("a@127.0.0.1").await;
    let b = node("b@127.0.0.1").await;
    let c = node("c@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    while a.nodes().len() < 2 || b.nodes().len() < 2 || c.nodes().len() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (a, b, c)
}

fn pg(c: &mut Criterion) {
    let rt = rt();
    let (a, b, c_node) = rt.block_on(cluster());
    let procs: Vec<Process> = (0..100_000).map(|_| a.spawn()).collect();
    let pids: Vec<Pid> = procs.iter().map(|p| p.pid().clone()).collect();
    let (sa, sb) = (a.scope("bench"), b.scope("bench"));
    let _sc = c_node.scope("bench");
    for p in &pids[..10] {
        sa.join("ten", p).unwrap();
    }
    sa.join_many("big", &pids).unwrap();
    rt.block_on(async {
        while sb.members("big").len() < 100_000 || sb.members("ten").len() < 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });

    let mut g = c.benchmark_group("pg_members");
    g.bench_function("10_members_local", |bch| bch.iter(|| sa.members("ten")));
    g.bench_function("10_members_remote", |bch| bch.iter(|| sb.members("ten")));
    g.bench_function("100k_members_local", |bch| bch.iter(|| sa.members("big")));
    g.bench_function("100k_members_remote", |bch| bch.iter(|| sb.members("big")));
    g.bench_function("absent_group", |bch| bch.iter(|| sa.members("absent")));
    g.finish();

    let mut g = c.benchmark_group("pg_join");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("join_leave_distinct_groups", |bch| {
        bch.iter_batched(
            || {
                i += 1;
                (format!("g{}", i % 10_000), i % 100_000)
            },
            |(group, k)| {
                sa.join(&group, &pids[k]).unwrap();
                sa.leave(&group, &pids[k]).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    drop(procs);
}

/// One pass of the `pg_join` / `pg_join_shared` shapes, with
/// the convergence lag on the peers. Printed, not asserted.
fn scenario(c: &mut Criterion) {
    let _ = c;
    let rt = rt();
    rt.block_on(async {
        let (a, b, c) = cluster().await;
        for (label, n, groups, batch) in [
            ("pg_join distinct (100k joins, 10k groups)", 100_000usize, 10_000usize, 1usize),
            ("pg_join_shared single (10k joins, 1 group)", 10_000, 1, 1),
            ("pg_join_shared batch1000 (100k joins, 1 group)", 100_000, 1, 1000),
        ] {
            let scope = format!("s{n}{groups}{batch}");
            let (sa, sb, sc) = (a.scope(&scope), b.scope(&scope), c.scope(&scope));
            // Let the scope's discovery finish on every node first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let procs: Vec<Process> = (0..n).map(|_| a.spawn()).collect();
            let pids: Vec<Pid> = procs.iter().map(|p| p.pid().clone()).collect();
            let names: Vec<String> = (0..groups).map(|i| format!("g{i}")).collect();
            let start = Instant::now();
            if batch == 1 {
                for (i, p) in pids.iter().enumerate() {
                    sa.join(&names[i % groups], p).unwrap();
                }
            } else {
                for chunk in pids.chunks(batch) {
                    sa.join_many(&names[0], chunk).unwrap();
                }
            }
            let joined = start.elapsed();
            let total = |s: &cohort_registry::Scope| names.iter().map(|g| s.members(g).len()).sum::<usize>();
            while total(&sb) < n || total(&sc) < n {
                tokio::task::yield_now().await;
            }
            let converged = start.elapsed();
            println!(
                "{label}: {:.0} joins/s; all nodes converged {:.1} ms after the first join, lag {:.2} ms after the last return",
                n as f64 / joined.as_secs_f64(),
                converged.as_secs_f64() * 1e3,
                (converged - joined).as_secs_f64() * 1e3
            );
            drop(procs);
        }
    });
}

criterion_group!(benches, pg, scenario);
criterion_main!(benches);
