//! Traffic counters over real TCP: every frame a connection carries is
//! counted once on that connection ([`Node::peers`]) and once in the
//! node's totals ([`Node::stats`]), on both ends.

mod common;

use cohort_registry::Node;
use common::*;

/// The node's totals and the sum over its peers, as
/// `[frames_in, frames_out, bytes_in, bytes_out]`.
fn totals_and_sum(n: &Node) -> ([u64; 4], [u64; 4]) {
    let s = n.stats();
    let mut sum = [0; 4];
    for p in n.peers() {
        sum[0] += p.frames_in;
        sum[1] += p.frames_out;
        sum[2] += p.bytes_in;
        sum[3] += p.bytes_out;
    }
    ([s.frames_in, s.frames_out, s.bytes_in, s.bytes_out], sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_frame_counts_once_on_its_connection_and_in_the_node_totals() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    // One connection only (b dials a), so the node's totals are exactly
    // the sum over its one peer.
    b.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b]).await;

    let mut sink = b.spawn();
    const N: usize = 200;
    const SIZE: usize = 1000;
    for _ in 0..N {
        a.send(sink.pid(), vec![7u8; SIZE]);
    }
    for _ in 0..N {
        next(&mut sink).await;
    }

    let out = |n: &Node| n.peers().first().map(|p| (p.frames_out, p.bytes_out));
    let (frames, bytes) = out(&a).expect("a sees b");
    assert!(frames >= N as u64, "a counted {frames} frames out to b");
    assert!(
        bytes >= (N * SIZE) as u64,
        "a counted {bytes} bytes out to b"
    );

    // Ticks keep flowing, so the readings agree once no frame is counted
    // between the two reads.
    for n in [&a, &b] {
        wait_for("node totals equal to the sum over peers", || {
            let (t, s) = totals_and_sum(n);
            t == s && t.iter().all(|&v| v > 0)
        })
        .await;
    }
    // What one end sent, the other received (frames in flight aside).
    wait_for("both ends count the same frames", || {
        let (pa, pb) = (&a.peers()[0], &b.peers()[0]);
        pa.frames_out == pb.frames_in
            && pa.bytes_out == pb.bytes_in
            && pb.frames_out == pa.frames_in
            && pb.bytes_out == pa.bytes_in
    })
    .await;
}
