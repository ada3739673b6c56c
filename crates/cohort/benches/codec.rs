//! Wire codec hot paths: `Frame::encode` and `Frame::decode` of a process
//! message (`Send`, 64-byte payload) and of a process-group `Delta` (one
//! join of one pid, and a batch of 1,000 pids as `join_many` sends it).
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use bytes::Bytes;
use cohort_registry::core::pg::{Op, PgFrame};
use cohort_registry::core::proto::Frame;
use cohort_registry::{NodeName, Pid};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn frames() -> Vec<(&'static str, Frame)> {
    let a = NodeName::new("a@127.0.0.1").unwrap();
    let b = NodeName::new("b@127.0.0.1").unwrap();
    let send = Frame::Send {
        to: Pid::new(b, 7, 4_242),
        from: Some(Pid::new(a, 3, 17)),
        payload: Bytes::from(vec![0x5a; 64]),
    };
    let delta = |n: u64| {
        Frame::Pg(PgFrame::Delta {
            scope: "pg".into(),
            stream: 0x1234_5678,
            seq: 99_999,
            ops: vec![Op::Join {
                group: "g1234".into(),
                serials: (10_000..10_000 + n).collect(),
                meta: None,
            }]
            .into(),
        })
    };
    vec![
        ("send_64B", send),
        ("pg_delta_join_1", delta(1)),
        ("pg_delta_join_1000", delta(1_000)),
    ]
}

fn frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for (name, f) in frames() {
        let bytes = f.encode();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| std::hint::black_box(&f).encode())
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Frame::decode(std::hint::black_box(&bytes)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, frame);
criterion_main!(benches);
