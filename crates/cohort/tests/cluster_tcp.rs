//! Cluster membership over real TCP on loopback.

mod common;

use std::time::Duration;

use cohort_registry::{DownReason, NodeEvent};
use common::*;

#[tokio::test]
async fn two_nodes_connect_and_see_each_other() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let mut ev_a = a.subscribe();
    let mut ev_b = b.subscribe();
    let got = b.connect(&a.local_addr()).await.expect("connects");
    assert_eq!(&got, a.name());
    assert_eq!(b.nodes(), vec![a.name().clone()]);
    wait_for("a sees b", || a.nodes() == vec![b.name().clone()]).await;
    assert_eq!(
        next_event(&mut ev_a).await,
        NodeEvent::Up {
            node: b.name().clone(),
            creation: b.creation()
        }
    );
    assert_eq!(
        next_event(&mut ev_b).await,
        NodeEvent::Up {
            node: a.name().clone(),
            creation: a.creation()
        }
    );
    // Connecting again to an up node is a no-op that still answers with its name.
    assert_eq!(&b.connect(&a.local_addr()).await.unwrap(), a.name());
    assert_eq!(b.nodes(), vec![a.name().clone()]);
}

#[tokio::test]
async fn mesh_forms_transitively() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let c = start("c@127.0.0.1").await;
    let d = start("d@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&b.local_addr()).await.unwrap();
    d.connect(&c.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b, &c, &d]).await;
}

#[tokio::test]
async fn mesh_can_be_switched_off() {
    let a = builder("a@127.0.0.1").mesh(false).start().await.unwrap();
    let b = builder("b@127.0.0.1").mesh(false).start().await.unwrap();
    let c = builder("c@127.0.0.1").mesh(false).start().await.unwrap();
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&b.local_addr()).await.unwrap();
    // b's later session with c proves b has gossiped (or would have) by now.
    let pb = b.spawn();
    let mut pc = c.spawn();
    pb.send(pc.pid(), "x");
    next(&mut pc).await;
    assert_eq!(a.nodes(), vec![b.name().clone()]);
    assert_eq!(c.nodes(), vec![b.name().clone()]);
    assert_eq!(b.nodes(), vec![a.name().clone(), c.name().clone()]);
}

#[tokio::test]
async fn simultaneous_connects_settle_on_one_session() {
    for _ in 0..20 {
        let a = start("a@127.0.0.1").await;
        let b = start("b@127.0.0.1").await;
        let mut ev_a = a.subscribe();
        let mut ev_b = b.subscribe();
        let (addr_a, addr_b) = (a.local_addr(), b.local_addr());
        let (ra, rb) = tokio::join!(a.connect(&addr_b), b.connect(&addr_a));
        assert_eq!(&ra.expect("a connects"), b.name());
        assert_eq!(&rb.expect("b connects"), a.name());
        // A message each way proves the surviving session works both ways.
        let mut pa = a.spawn();
        let mut pb = b.spawn();
        pa.send(pb.pid(), "1");
        next(&mut pb).await;
        pb.send(pa.pid(), "2");
        next(&mut pa).await;
        assert_eq!(
            next_event(&mut ev_a).await,
            NodeEvent::Up {
                node: b.name().clone(),
                creation: b.creation()
            }
        );
        assert_eq!(
            next_event(&mut ev_b).await,
            NodeEvent::Up {
                node: a.name().clone(),
                creation: a.creation()
            }
        );
        assert!(
            ev_a.try_recv().is_none(),
            "a saw a second event: the session flapped"
        );
        assert!(
            ev_b.try_recv().is_none(),
            "b saw a second event: the session flapped"
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
async fn shutdown_is_seen_at_once_and_not_reconnected() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let mut ev = a.subscribe();
    b.connect(&a.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev).await, NodeEvent::Up { .. }));
    b.shutdown().await;
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Down {
            node: b.name().clone(),
            creation: b.creation(),
            reason: DownReason::PeerLeft
        }
    );
    assert!(a.nodes().is_empty());
}

#[tokio::test]
async fn disconnect_ends_the_session_on_both_sides() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let mut ev_b = b.subscribe();
    a.connect(&b.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev_b).await, NodeEvent::Up { .. }));
    assert!(a.disconnect(b.name()).await);
    assert!(a.nodes().is_empty());
    assert_eq!(
        next_event(&mut ev_b).await,
        NodeEvent::Down {
            node: a.name().clone(),
            creation: a.creation(),
            reason: DownReason::PeerLeft
        }
    );
    assert!(
        !a.disconnect(b.name()).await,
        "second disconnect finds nothing"
    );
    // Explicit connect works again afterwards.
    a.connect(&b.local_addr()).await.unwrap();
    assert_eq!(a.nodes(), vec![b.name().clone()]);
}

#[tokio::test]
async fn dropped_connection_is_node_down_then_reconnected() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let mut ev = a.subscribe();
    a.connect(&b.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev).await, NodeEvent::Up { .. }));
    // b blocks a: the connection closes; a sees it down, then a keeps
    // redialing and is refused until b lifts the block.
    b.block(a.name()).await;
    match next_event(&mut ev).await {
        NodeEvent::Down {
            node,
            reason: DownReason::ConnectionClosed(_),
            ..
        } => assert_eq!(&node, b.name()),
        other => panic!("unexpected {other:?}"),
    }
    assert!(b.unblock(a.name()).await);
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Up {
            node: b.name().clone(),
            creation: b.creation()
        }
    );
    assert_eq!(a.nodes(), vec![b.name().clone()]);
}

#[tokio::test]
async fn connect_to_nothing_fails_cleanly() {
    let a = start("a@127.0.0.1").await;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let err = a.connect(&addr).await.unwrap_err();
    assert!(err.to_string().contains(&addr), "{err}");
    assert!(a.nodes().is_empty());
}

#[tokio::test]
async fn restart_with_new_creation_replaces_the_old_incarnation() {
    let a = start("a@127.0.0.1").await;
    let b1 = start("b@127.0.0.1").await;
    let mut ev = a.subscribe();
    b1.connect(&a.local_addr()).await.unwrap();
    assert!(matches!(next_event(&mut ev).await, NodeEvent::Up { .. }));
    let mut pa = a.spawn();
    let old = b1.spawn();
    let old_pid = old.pid().clone();
    std::mem::forget(old); // the process "dies" with its node, not by exiting
    b1.abort().await;
    match next_event(&mut ev).await {
        NodeEvent::Down {
            node,
            creation,
            reason: DownReason::ConnectionClosed(_),
        } => {
            assert_eq!(&node, b1.name());
            assert_eq!(creation, b1.creation());
        }
        other => panic!("unexpected {other:?}"),
    }
    let b2 = start("b@127.0.0.1").await;
    assert_ne!(b2.creation(), b1.creation());
    b2.connect(&a.local_addr()).await.unwrap();
    assert_eq!(
        next_event(&mut ev).await,
        NodeEvent::Up {
            node: b2.name().clone(),
            creation: b2.creation()
        }
    );
    // A pid of the dead creation never reaches the new incarnation.
    let mref = pa.monitor(&old_pid);
    assert_eq!(
        next(&mut pa).await,
        cohort_registry::Message::Down {
            mref,
            pid: old_pid.clone(),
            reason: cohort_registry::ExitReason::NoProc
        }
    );
    let mut fresh = b2.spawn();
    assert_eq!(
        fresh.pid().serial(),
        old_pid.serial(),
        "serials restart with the creation"
    );
    pa.send(&old_pid, "for the old one");
    pa.send(fresh.pid(), "for the new one");
    match next(&mut fresh).await {
        cohort_registry::Message::Data { payload, .. } => {
            assert_eq!(&payload[..], b"for the new one")
        }
        other => panic!("unexpected {other:?}"),
    }
    let _ = Duration::ZERO;
}
