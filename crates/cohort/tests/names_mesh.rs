//! A name table needs a full mesh among its members (claims are never
//! relayed): a node that hears from its peers of a member it has no
//! session with reports it (`Node::unreached`), over real TCP.

mod common;

use common::*;

/// a, b and c with the transitive mesh off: b and c both connect to a
/// only. Each of them hears of the other from a and reports it; a, with a
/// session to both, reports nothing. When b connects to c, the mesh is
/// full and nothing is reported.
#[tokio::test]
async fn a_partial_mesh_is_reported_until_it_is_full() {
    let a = builder("a@127.0.0.1").mesh(false).start().await.unwrap();
    let b = builder("b@127.0.0.1").mesh(false).start().await.unwrap();
    let c = builder("c@127.0.0.1").mesh(false).start().await.unwrap();
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    wait_for("b and c report each other", || {
        b.unreached() == vec![c.name().clone()] && c.unreached() == vec![b.name().clone()]
    })
    .await;
    assert_eq!(b.nodes(), vec![a.name().clone()], "still no session b-c");
    assert!(a.unreached().is_empty(), "a has a session with both");
    // A name registered on c is not seen on b: what the report warns of.
    let p = c.spawn();
    c.register("svc", p.pid()).await.unwrap();
    wait_for("a sees c's name", || a.whereis("svc").is_some()).await;
    assert_eq!(b.whereis("svc"), None);
    b.connect(&c.local_addr()).await.unwrap();
    wait_for("a full mesh, nothing reported", || {
        [&a, &b, &c].iter().all(|n| n.unreached().is_empty())
    })
    .await;
    wait_for("b sees c's name", || {
        b.whereis("svc").as_ref() == Some(p.pid())
    })
    .await;
}

/// With the mesh on, a one-way cut between b and c that outlives the
/// mesh's redials is reported the same way, and healing it clears it.
#[tokio::test]
async fn a_blocked_link_is_reported_until_it_heals() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let c = start("c@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b, &c]).await;
    b.block(c.name()).await;
    wait_for("b and c report each other", || {
        b.unreached() == vec![c.name().clone()] && c.unreached() == vec![b.name().clone()]
    })
    .await;
    assert!(a.unreached().is_empty());
    b.unblock(c.name()).await;
    wait_full_mesh(&[&a, &b, &c]).await;
    wait_for("nothing reported", || {
        [&a, &b, &c].iter().all(|n| n.unreached().is_empty())
    })
    .await;
}
