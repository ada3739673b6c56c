//! Global names: `whereis` hit and miss, local register + unregister
//! (eventual), the registration rate of a 3-node loopback cluster in
//! locked and eventual mode, from one caller and from 10 concurrent callers
//! (scenario `global_reg` in docs/BENCHMARKS.md), and, on two sans-IO cores
//! without sockets, what an eventual claim costs its origin and a peer.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cohort_registry::core::auth::Cookie;
use cohort_registry::core::cluster::ClusterConfig;
use cohort_registry::core::names::{
    Claim, LossPolicy, Mode, NamesConfig, NamesFrame, OwnClaim, RegisterArgs, TableConfig,
};
use cohort_registry::core::proto::Frame;
use cohort_registry::core::time::Time;
use cohort_registry::core::{ConnId, CoreConfig, Effect, NodeCore};
use cohort_registry::{Node, NodeName, Process};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;

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

/// Two cores, `a` and `b`, with a session between them (frames carried by
/// hand); returns them and the connection on `b` that `a`'s frames come in.
fn core_pair() -> (NodeCore, NodeCore, ConnId) {
    let core = |n: &str, creation: u32| {
        NodeCore::new(
            CoreConfig {
                name: NodeName::new(n).unwrap(),
                creation,
                listen: Some(n.into()),
                cookie: Cookie::new("c"),
                cluster: ClusterConfig::default(),
                names: config(),
            },
            StdRng::seed_from_u64(u64::from(creation)),
            Time::ZERO,
        )
    };
    let mut nodes = [core("a@h", 1), core("b@h", 2)];
    nodes[0].connect("b@h".into(), None, Time::ZERO);
    // (node, conn) → peer conn.
    let mut links: BTreeMap<(usize, ConnId), ConnId> = BTreeMap::new();
    let mut queue: VecDeque<(usize, ConnId, Frame)> = VecDeque::new();
    loop {
        for i in 0..2 {
            while let Some(e) = nodes[i].poll_effect() {
                match e {
                    Effect::Dial { conn, .. } => {
                        let peer = nodes[1].accepted("a@h".into(), Time::ZERO);
                        links.insert((0, conn), peer);
                        links.insert((1, peer), conn);
                        nodes[0].dialed(conn, Time::ZERO);
                    }
                    Effect::Send { conn, frame } => queue.push_back((i, conn, frame)),
                    Effect::Broadcast { conns, frame } => {
                        queue.extend(conns.into_iter().map(|c| (i, c, frame.clone())))
                    }
                    _ => {}
                }
            }
        }
        let Some((from, conn, frame)) = queue.pop_front() else {
            break;
        };
        let frame = Frame::decode(&frame.encode()).unwrap();
        nodes[1 - from].frame(links[&(from, conn)], frame, Time::ZERO);
    }
    assert_eq!(nodes[0].nodes().len(), 1, "the cores are connected");
    let conn = *links.iter().find(|((i, _), _)| *i == 0).unwrap().1;
    let [a, b] = nodes;
    (a, b, conn)
}

/// Eventual claims on two cores: a registration on the origin (claims
/// held and sent 256 to a frame, encoding included), and a peer decoding
/// and applying `Add`s of 256 claims (its view effects drained). Each run
/// of 10,000 names (the `global_reg` size) starts on a fresh pair of cores.
fn core_claims(c: &mut Criterion) {
    const BATCH: u64 = 256;
    const RUN: u64 = 10_000;
    let mut g = c.benchmark_group("core_eventual");
    g.throughput(Throughput::Elements(1));
    g.bench_function("origin_register", |bch| {
        bch.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(RUN);
                left -= n;
                let (mut a, _, _) = core_pair();
                for s in 1..=n {
                    a.spawned(s);
                }
                let args: Vec<RegisterArgs> = (1..=n)
                    .map(|s| RegisterArgs {
                        table: "eventual".into(),
                        name: format!("n{s}"),
                        pid: a.pid(s),
                        meta: Bytes::new(),
                        policy: None,
                        replace: false,
                    })
                    .collect();
                let start = Instant::now();
                for (s, args) in (1..).zip(args) {
                    std::hint::black_box(a.names_register(Time::ZERO, s, args));
                    if s % BATCH == 0 {
                        a.flush(Time::ZERO);
                    }
                    while let Some(e) = a.poll_effect() {
                        if let Effect::Broadcast { frame, .. } | Effect::Send { frame, .. } = e {
                            std::hint::black_box(frame.encode());
                        }
                    }
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("peer_apply", |bch| {
        bch.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(RUN);
                left -= n;
                let (a, mut b, conn) = core_pair();
                let frames: Vec<Bytes> = (0..n.div_ceil(BATCH))
                    .map(|k| {
                        let seq = 1 + k * BATCH;
                        let claims: Vec<OwnClaim> = (seq..(seq + BATCH).min(n + 1))
                            .map(|s| {
                                OwnClaim::of(&Claim {
                                    name: format!("n{s}"),
                                    pid: a.pid(s),
                                    meta: Bytes::new(),
                                    stamp: s,
                                    policy: LossPolicy::Kill,
                                    supersedes: None,
                                })
                            })
                            .collect();
                        Frame::Names(NamesFrame::Add {
                            table: "eventual".into(),
                            claims,
                            seq,
                            ack: None,
                        })
                        .encode()
                    })
                    .collect();
                let start = Instant::now();
                for bytes in &frames {
                    b.frame(conn, Frame::decode(bytes).unwrap(), Time::ZERO);
                    while let Some(e) = b.poll_effect() {
                        std::hint::black_box(e);
                    }
                }
                total += start.elapsed();
                assert_eq!(b.names().registered_names("eventual").len() as u64, n);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, core_claims, names);
criterion_main!(benches);
