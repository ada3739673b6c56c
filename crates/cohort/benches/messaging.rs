//! Messaging hot paths: local send throughput, remote send throughput and
//! round-trip latency between two nodes over loopback TCP.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use cohort_registry::{Message, Node};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

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

const BATCH: u64 = 10_000;

fn messaging(c: &mut Criterion) {
    let rt = rt();
    let (a, b) = rt.block_on(async {
        let a = node("a@127.0.0.1").await;
        let b = node("b@127.0.0.1").await;
        b.connect(&a.local_addr()).await.unwrap();
        (a, b)
    });

    let mut g = c.benchmark_group("send");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("local_10k", |bench| {
        bench.to_async(&rt).iter_custom(|iters| {
            let a = a.clone();
            async move {
                let mut rx = a.spawn();
                let tx = a.spawn();
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..BATCH {
                        tx.send(rx.pid(), &b"0123456789abcdef"[..]);
                    }
                    for _ in 0..BATCH {
                        rx.recv().await.unwrap();
                    }
                }
                start.elapsed()
            }
        })
    });
    g.bench_function("remote_10k", |bench| {
        bench.to_async(&rt).iter_custom(|iters| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let mut rx = a.spawn();
                let tx = b.spawn();
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..BATCH {
                        tx.send(rx.pid(), &b"0123456789abcdef"[..]);
                    }
                    for _ in 0..BATCH {
                        rx.recv().await.unwrap();
                    }
                }
                start.elapsed()
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("latency");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("remote_round_trip", |bench| {
        bench.to_async(&rt).iter_custom(|iters| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let mut ping = a.spawn();
                let mut pong = b.spawn();
                let pong_pid = pong.pid().clone();
                let echo = tokio::spawn(async move {
                    while let Some(Message::Data {
                        from: Some(from),
                        payload,
                    }) = pong.recv().await
                    {
                        pong.send(&from, payload);
                    }
                });
                let start = Instant::now();
                for _ in 0..iters {
                    ping.send(&pong_pid, &b"ping"[..]);
                    ping.recv().await.unwrap();
                }
                let el = start.elapsed();
                echo.abort();
                el
            }
        })
    });
    g.finish();
}

criterion_group!(benches, messaging);
criterion_main!(benches);
