//! Global names: `whereis` hit and miss, local register + unregister
//! (eventual), and the registration rate of a 3-node loopback cluster in
//! locked and eventual mode, from one caller and from 10 concurrent callers
//! (scenario `global_reg` in SCENARIOS.md).

use std::time::{Duration, Instant};

use cohort::core::names::{Mode, NamesConfig, TableConfig};
use cohort::{Node, Process};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config() -> NamesConfig {
    NamesConfig::empty()
        .table(TableConfig::new("locked").mode(Mode::Locked))
        .table(TableConfig::new("eventual").mode(Mode::Eventual))
}

async fn node(name: &str) -> Node {
    Node::builder()
        .name(name)
        .cookie("bench")
        .names(config())
        .start()
        .await
        .unwrap()
}

async fn cluster() -> Vec<Node> {
    let a = node("a@127.0.0.1").await;
    let b = node("b@127.0.0.1").await;
    let c = node("c@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    while a.nodes().len() < 2 || b.nodes().len() < 2 || c.nodes().len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    vec![a, b, c]
}

/// Registers one name per process from `callers` concurrent tasks; returns
/// the time the registrations took. Unregisters them afterwards, untimed.
async fn register_all(
    node: &Node,
    table: &str,
    procs: &[Process],
    callers: usize,
    round: u64,
) -> Duration {
    let t = node.names_table(table).unwrap();
    let chunk = procs.len().div_ceil(callers);
    let start = Instant::now();
    let tasks: Vec<_> = procs
        .chunks(chunk)
        .enumerate()
        .map(|(k, ps)| {
            let t = t.clone();
            let pids: Vec<_> = ps.iter().map(|p| p.pid().clone()).collect();
            tokio::spawn(async move {
                for (i, pid) in pids.iter().enumerate() {
                    t.register(format!("n{round}-{k}-{i}"), pid).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let took = start.elapsed();
    for name in t.registered_names() {
        t.unregister(&name).await.unwrap();
    }
    took
}

fn names(c: &mut Criterion) {
    let rt = rt();
    let nodes = rt.block_on(cluster());
    let a = nodes[0].clone();

    let mut g = c.benchmark_group("whereis");
    let (local, remote) = rt.block_on(async {
        let p = a.spawn();
        let q = nodes[1].spawn();
        let t = a.names_table("eventual").unwrap();
        t.register("local", p.pid()).await.unwrap();
        nodes[1]
            .names_table("eventual")
            .unwrap()
            .register("remote", q.pid())
            .await
            .unwrap();
        t.sync().await.unwrap();
        (p, q)
    });
    let t = a.names_table("eventual").unwrap();
    assert!(t.whereis("remote").is_some());
    g.bench_function("hit_local", |b| {
        b.iter(|| t.whereis(std::hint::black_box("local")))
    });
    g.bench_function("hit_remote", |b| {
        b.iter(|| t.whereis(std::hint::black_box("remote")))
    });
    g.bench_function("miss", |b| {
        b.iter(|| t.whereis(std::hint::black_box("absent")))
    });
    g.finish();
    rt.block_on(async {
        t.unregister("local").await.unwrap();
        t.unregister("remote").await.unwrap();
    });
    drop((local, remote));

    let mut g = c.benchmark_group("local");
    let solo = rt.block_on(node("solo@127.0.0.1"));
    let st = solo.names_table("eventual").unwrap();
    let p = solo.spawn();
    g.bench_function("register_unregister_eventual", |b| {
        b.to_async(&rt).iter(|| async {
            st.register("x", p.pid()).await.unwrap();
            st.unregister("x").await.unwrap();
        })
    });
    g.finish();

    const N: usize = 1000;
    let mut g = c.benchmark_group("cluster3_register");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    let mut round = 0u64;
    for table in ["locked", "eventual"] {
        for callers in [1usize, 10] {
            g.bench_with_input(
                BenchmarkId::new(table, format!("{callers}_callers")),
                &callers,
                |b, &callers| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let a = a.clone();
                        round += 1;
                        let r = round;
                        async move {
                            let mut total = Duration::ZERO;
                            for i in 0..iters {
                                let procs: Vec<Process> = (0..N).map(|_| a.spawn()).collect();
                                total +=
                                    register_all(&a, table, &procs, callers, r * 1_000_000 + i)
                                        .await;
                            }
                            total
                        }
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, names);
criterion_main!(benches);
