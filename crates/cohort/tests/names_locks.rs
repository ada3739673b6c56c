//! Locks: OTP global_SUITE's locks and lock_die, plus trans and locks on
//! a subset of nodes.

mod common;
mod names_util;

use cohort_registry::core::names::{LockId, Mode, NamesError};
use cohort_registry::transport::mem::MemNetwork;
use cohort_registry::{Node, Pid};
use common::*;
use names_util::*;

fn holders(n: &Node, res: &str) -> Option<(String, Vec<Pid>)> {
    n.lock_holders(res)
}

async fn wait_holders(nodes: &[&Node], res: &str, want: Option<(&str, Vec<Pid>)>) {
    let want = want.map(|(r, mut v)| {
        v.sort();
        (r.to_string(), v)
    });
    wait_for(&format!("lock {res} held as {want:?}"), || {
        nodes.iter().all(|n| holders(n, res) == want)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn locks_exclude_other_requesters_and_are_shared_by_one_requester() {
    let net = MemNetwork::default();
    let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(Mode::Locked)).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (p, q, r) = (a.spawn(), b.spawn(), c.spawn());
    let id1 = LockId::new("res", "r1");
    let id2 = LockId::new("res", "r2");
    assert_eq!(a.set_lock(&id1, p.pid(), None, Some(0)).await, Ok(true));
    // Held on every node as soon as set_lock returned.
    for n in &all {
        assert_eq!(
            holders(n, "res"),
            Some(("r1".into(), vec![p.pid().clone()]))
        );
    }
    // Another requester is refused; the same requester shares the lock.
    assert_eq!(b.set_lock(&id2, q.pid(), None, Some(3)).await, Ok(false));
    assert_eq!(b.set_lock(&id1, q.pid(), None, Some(0)).await, Ok(true));
    let mut both = vec![p.pid().clone(), q.pid().clone()];
    both.sort();
    for n in &all {
        assert_eq!(holders(n, "res"), Some(("r1".into(), both.clone())));
    }
    // Setting it again is idempotent; one del_lock releases that holder.
    assert_eq!(a.set_lock(&id1, p.pid(), None, Some(0)).await, Ok(true));
    a.del_lock(&id1, p.pid(), None);
    wait_holders(&all, "res", Some(("r1", vec![q.pid().clone()]))).await;
    assert_eq!(c.set_lock(&id2, r.pid(), None, Some(0)).await, Ok(false));
    b.del_lock(&id1, q.pid(), None);
    wait_holders(&all, "res", None).await;
    assert_eq!(c.set_lock(&id2, r.pid(), None, Some(0)).await, Ok(true));
    // A waiting requester (retrying forever) gets it once released.
    let waiter = {
        let a = a.clone();
        let p = p.pid().clone();
        tokio::spawn(async move { a.set_lock(&LockId::new("res", "r1"), &p, None, None).await })
    };
    c.del_lock(&id2, r.pid(), None);
    assert_eq!(within("the waiter", waiter).await.unwrap(), Ok(true));
    wait_holders(&all, "res", Some(("r1", vec![p.pid().clone()]))).await;
    // Remote holders are refused.
    assert_eq!(
        a.set_lock(&id1, q.pid(), None, Some(0)).await,
        Err(NamesError::NotLocal)
    );
}

#[tokio::test(start_paused = true)]
async fn lock_die_releases_on_holder_death_and_node_stop() {
    let net = MemNetwork::default();
    let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(Mode::Locked)).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let id = LockId::new("res", "r1");
    let p = a.spawn();
    let q = b.spawn();
    assert_eq!(a.set_lock(&id, p.pid(), None, Some(0)).await, Ok(true));
    assert_eq!(b.set_lock(&id, q.pid(), None, Some(0)).await, Ok(true));
    // One of two sharing holders dies: the other keeps the lock.
    drop(p);
    wait_holders(&all, "res", Some(("r1", vec![q.pid().clone()]))).await;
    // The last holder dies: the lock is gone everywhere.
    drop(q);
    wait_holders(&all, "res", None).await;
    // A holder's node stops: its locks go on the survivors.
    let r = b.spawn();
    assert_eq!(b.set_lock(&id, r.pid(), None, Some(0)).await, Ok(true));
    std::mem::forget(r);
    b.abort().await;
    wait_holders(&[a, c], "res", None).await;
    let s = c.spawn();
    assert_eq!(
        c.set_lock(&LockId::new("res", "other"), s.pid(), None, Some(0))
            .await,
        Ok(true)
    );
}

#[tokio::test(start_paused = true)]
async fn trans_runs_under_the_lock_and_locks_on_disjoint_nodes_do_not_meet() {
    let net = MemNetwork::default();
    let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(Mode::Locked)).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (p, q) = (a.spawn(), c.spawn());
    let id = LockId::new("t", "me");
    let got = a
        .trans(&id, p.pid(), None, Some(0), || async {
            holders(b, "t").map(|(r, _)| r)
        })
        .await;
    assert_eq!(got, Ok(Some(Some("me".to_string()))));
    wait_holders(&all, "t", None).await;
    // Held by another requester: trans does not run.
    assert_eq!(
        c.set_lock(&LockId::new("t", "other"), q.pid(), None, Some(0))
            .await,
        Ok(true)
    );
    let ran = a.trans(&id, p.pid(), None, Some(1), || async { 1 }).await;
    assert_eq!(ran, Ok(None));
    c.del_lock(&LockId::new("t", "other"), q.pid(), None);
    wait_holders(&all, "t", None).await;
    // Locks on disjoint node sets do not meet.
    let ab = [a.name().clone(), b.name().clone()];
    let only_c = [c.name().clone()];
    assert_eq!(a.set_lock(&id, p.pid(), Some(&ab), Some(0)).await, Ok(true));
    let other = LockId::new("t", "other");
    assert_eq!(
        c.set_lock(&other, q.pid(), Some(&only_c), Some(0)).await,
        Ok(true)
    );
    assert_eq!(holders(a, "t"), Some(("me".into(), vec![p.pid().clone()])));
    assert_eq!(
        holders(c, "t"),
        Some(("other".into(), vec![q.pid().clone()]))
    );
}
