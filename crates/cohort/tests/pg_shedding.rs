//! A peer that does not keep up loses live replication deltas instead of
//! making the sender queue without limit, and still converges: it finds
//! the gap and asks again.

mod common;

use common::*;

#[tokio::test]
async fn shed_deltas_are_repaired_and_the_views_converge() {
    // No queue at all may build up: every delta beyond the first waiting
    // one is shed while the writer has not run.
    let a = builder("a@127.0.0.1")
        .max_queued_bytes(0)
        .start()
        .await
        .unwrap();
    let b = start("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b]).await;
    let (sa, sb) = (a.scope("shed"), b.scope("shed"));
    let probe = a.spawn();
    sa.join("probe", probe.pid()).unwrap();
    wait_for("stream up", || sb.members("probe").len() == 1).await;
    let procs: Vec<_> = (0..2000).map(|_| a.spawn()).collect();
    let sink = b.spawn();
    // A burst with no await in between: on this single-threaded runtime
    // the writer cannot drain, so the queue is never empty. Each join is
    // followed by a message to b, which sends the held join first: one
    // delta per join instead of one batch.
    for (i, p) in procs.iter().enumerate() {
        sa.join(&format!("g{}", i % 50), p.pid()).unwrap();
        a.send(sink.pid(), "after the join");
    }
    assert!(
        a.stats().shed_frames > 1000,
        "deltas were shed: {:?}",
        a.stats()
    );
    let total = |s: &cohort_registry::Scope| {
        (0..50)
            .map(|i| s.members(&format!("g{i}")).len())
            .sum::<usize>()
    };
    wait_for("b repaired every gap", || total(&sb) == 2000).await;
    for i in 0..50 {
        let g = format!("g{i}");
        let mut want = sa.members(&g).to_vec();
        want.sort();
        let mut got = sb.members(&g).to_vec();
        got.sort();
        assert_eq!(got, want, "group {g}");
    }
}
