//! Liveness: silent peers are declared down after the peer timeout even
//! when the connection stays open, and a healed network reconnects by itself.

mod common;

use std::time::Duration;

use cohort_registry::transport::mem::MemNetwork;
use cohort_registry::{ConnectError, DownReason, NodeEvent, NodeName, RefuseReason};
use common::*;
use futures::StreamExt;

#[tokio::test]
async fn a_peer_that_stops_ticking_is_down_over_tcp() {
    let a = start("a@127.0.0.1").await;
    let mut ev = a.subscribe();
    // A hand-made peer: completes the handshake properly, then goes silent
    // while keeping its socket open.
    let mut f = raw_peer(&a.local_addr(), "mute@127.0.0.1").await;
    let me = NodeName::new("mute@127.0.0.1").unwrap();
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Up {
            node: me.clone(),
            creation: 5
        }
    );
    // Keep reading (a's ticks) but never answer.
    let reader = tokio::spawn(async move { while f.next().await.is_some() {} });
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Down {
            node: me,
            creation: 5,
            reason: DownReason::Timeout
        }
    );
    assert!(a.nodes().is_empty());
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn a_silent_partition_is_detected_and_heals_by_itself() {
    let net = MemNetwork::default();
    let a = start_on("a@mem", net.host("a")).await;
    let b = start_on("b@mem", net.host("b")).await;
    let c = start_on("c@mem", net.host("c")).await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b, &c]).await;
    let mut ev = a.subscribe();
    // Frames between c and the others vanish; no connection closes.
    net.partition(&["c"], &["a", "b"]);
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Down {
            node: c.name().clone(),
            creation: c.creation(),
            reason: DownReason::Timeout
        }
    );
    wait_for("both sides split", || {
        a.nodes() == vec![b.name().clone()]
            && b.nodes() == vec![a.name().clone()]
            && c.nodes().is_empty()
    })
    .await;
    net.heal();
    // Nobody calls connect: reconnection with backoff restores the mesh.
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Up {
            node: c.name().clone(),
            creation: c.creation()
        }
    );
    wait_full_mesh(&[&a, &b, &c]).await;
}

#[tokio::test(start_paused = true)]
async fn one_way_loss_is_detected_on_both_sides() {
    let net = MemNetwork::default();
    let a = start_on("a@mem", net.host("a")).await;
    let b = start_on("b@mem", net.host("b")).await;
    let mut ev_a = a.subscribe();
    let mut ev_b = b.subscribe();
    b.connect(&a.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev_a).await, NodeEvent::Up { .. }));
    assert!(matches!(next_event(&mut ev_b).await, NodeEvent::Up { .. }));
    net.block_one_way("a", "b");
    // b hears nothing and times out; a's session ends when b closes it.
    assert!(matches!(
        next_event(&mut ev_b).await,
        NodeEvent::Down {
            reason: DownReason::Timeout,
            ..
        }
    ));
    assert!(matches!(
        next_event(&mut ev_a).await,
        NodeEvent::Down { .. }
    ));
    net.heal();
    assert!(matches!(next_event(&mut ev_a).await, NodeEvent::Up { .. }));
    assert!(matches!(next_event(&mut ev_b).await, NodeEvent::Up { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_replaces_a_stale_session() {
    // b's old incarnation is cut off silently; before a notices, b comes
    // back under the same name with a new creation.
    let net = MemNetwork::default();
    let a = builder("a@mem")
        .listen("a:0")
        .transport(net.host("a"))
        .peer_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let b1 = start_on("b@mem", net.host("b1")).await;
    let mut ev = a.subscribe();
    b1.connect(&a.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev).await, NodeEvent::Up { .. }));
    net.partition(&["b1"], &["a"]);
    let b2 = start_on("b@mem", net.host("b2")).await;
    b2.connect(&a.local_addr()).await.unwrap();
    // a probes the old session before it lets the new creation in: the
    // probe goes unanswered (Restarted), or the old session closes while
    // it waits (on a cut link b1's own timeout closes it first).
    match next_event(&mut ev).await {
        NodeEvent::Down {
            node,
            creation,
            reason: DownReason::Restarted | DownReason::ConnectionClosed(_),
        } => assert_eq!((node, creation), (b1.name().clone(), b1.creation())),
        other => panic!("expected b1 down, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Up {
            node: b2.name().clone(),
            creation: b2.creation()
        }
    );
    assert_eq!(a.nodes(), vec![b2.name().clone()]);
}

#[tokio::test(start_paused = true)]
async fn a_dialed_node_claiming_a_live_peers_name_is_refused() {
    // b is connected to a; b then dials another node that calls itself a
    // (an impostor, or a discovery result pointing at the wrong process).
    // b asks its session with a first; a answers, so the newcomer is
    // refused and nothing happens to a's session.
    let net = MemNetwork::default();
    let a = start_on("a@mem", net.host("a")).await;
    let b = start_on("b@mem", net.host("b")).await;
    let mut ev = b.subscribe();
    b.connect(&a.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev).await, NodeEvent::Up { .. }));
    let impostor = start_on("a@mem", net.host("a2")).await;
    let r = b.connect(&impostor.local_addr()).await;
    assert_eq!(r, Err(ConnectError::Refused(RefuseReason::Alive)));
    assert_eq!(b.nodes(), vec![a.name().clone()]);
    assert!(ev.try_recv().is_none(), "b saw {:?}", ev.try_recv());
    assert!(impostor.nodes().is_empty());
    assert_eq!(b.stats().handshakes_refused_alive, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dialed_restart_replaces_a_silent_session() {
    // a's old incarnation is cut off silently; b dials its new one: the
    // probe of the old session goes unanswered, and the new one replaces it.
    let net = MemNetwork::default();
    let a1 = start_on("a@mem", net.host("a1")).await;
    let b = builder("b@mem")
        .listen("b:0")
        .transport(net.host("b"))
        .peer_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let mut ev = b.subscribe();
    b.connect(&a1.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev).await, NodeEvent::Up { .. }));
    net.partition(&["a1"], &["b"]);
    let a2 = start_on("a@mem", net.host("a2")).await;
    assert_eq!(b.connect(&a2.local_addr()).await, Ok(a2.name().clone()));
    match next_event(&mut ev).await {
        NodeEvent::Down {
            node,
            creation,
            reason: DownReason::Restarted | DownReason::ConnectionClosed(_),
        } => assert_eq!((node, creation), (a1.name().clone(), a1.creation())),
        other => panic!("expected a1 down, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Up {
            node: a2.name().clone(),
            creation: a2.creation()
        }
    );
}
