//! Process groups on one node: pg_SUITE's `pg`, `single`, `errors`,
//! `leave_exit_race`, plus cpg selection helpers, metadata and monitors.

mod common;

use bytes::Bytes;
use cohort_registry::{ExitReason, Group, PgError, PgEvent, PgEventKind, Select};
use common::*;

fn g(s: &str) -> Group {
    s.into()
}

#[tokio::test]
async fn default_scope_join_leave_and_reads() {
    let a = start("a@127.0.0.1").await;
    let p = a.spawn();
    let pg = a.pg();
    assert_eq!(pg.name(), "pg");
    pg.join("pg", p.pid()).unwrap();
    assert_eq!(pg.local_members("pg"), vec![p.pid().clone()]);
    assert_eq!(pg.which_groups(), vec![g("pg")]);
    assert_eq!(pg.which_local_groups(), vec![g("pg")]);
    pg.leave("pg", p.pid()).unwrap();
    assert!(pg.members("pg").is_empty());
    assert!(pg.which_groups().is_empty());
    assert!(pg.which_local_groups().is_empty());
}

#[tokio::test]
async fn single_node_multi_join_and_not_joined() {
    let a = start("a@127.0.0.1").await;
    let s = a.scope("single");
    let me = a.spawn();
    let pid = me.pid().clone();
    s.join("single", &pid).unwrap();
    s.join_many("single", &[pid.clone(), pid.clone()]).unwrap();
    assert_eq!(s.local_members("single"), vec![pid.clone(); 3]);
    assert_eq!(s.members("single").to_vec(), vec![pid.clone(); 3]);
    assert_eq!(s.join_count("single", &pid), 3);
    assert_eq!(s.leave("$missing$", &pid), Err(PgError::NotJoined));
    s.leave_many("single", &[pid.clone(), pid.clone()]).unwrap();
    s.leave("single", &pid).unwrap();
    assert!(s.which_groups().is_empty());
    assert!(s.members("single").is_empty());
    // A second process; its exit removes only its own membership.
    s.join("single", &pid).unwrap();
    let other = a.spawn();
    let opid = other.pid().clone();
    s.join("single", &opid).unwrap();
    let mut both = s.members("single").to_vec();
    both.sort();
    let mut want = vec![pid.clone(), opid.clone()];
    want.sort();
    assert_eq!(both, want);
    drop(other);
    assert_eq!(s.local_members("single"), vec![pid.clone()]);
    s.leave("single", &pid).unwrap();
}

#[tokio::test]
async fn joins_are_refused_for_remote_and_dead_pids() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    let local = a.spawn();
    let remote = b.spawn();
    let s = a.pg();
    let err = s.join("g", remote.pid()).unwrap_err();
    assert_eq!(err, PgError::NotLocal(remote.pid().clone()));
    assert!(
        err.to_string().contains(&remote.pid().to_string()),
        "the error names the pid: {err}"
    );
    // All or nothing: a batch with one remote pid adds nobody.
    assert_eq!(
        s.join_many("g", &[local.pid().clone(), remote.pid().clone()]),
        Err(PgError::NotLocal(remote.pid().clone()))
    );
    assert!(s.members("g").is_empty());
    let dead = a.spawn().pid().clone();
    assert_eq!(s.join("g", &dead), Err(PgError::NoProc(dead)));
    assert!(s.members("g").is_empty());
}

#[tokio::test]
async fn leave_and_exit_race() {
    let a = start("a@127.0.0.1").await;
    let s = a.scope("race");
    for _ in 0..100 {
        let p = a.spawn();
        let pid = p.pid().clone();
        s.join("test", &pid).unwrap();
        drop(p);
        assert_eq!(s.leave("test", &pid), Err(PgError::NotJoined));
    }
    assert!(s.members("test").is_empty());
}

#[tokio::test]
async fn pg2_create_and_delete_are_harmless() {
    let a = start("a@127.0.0.1").await;
    let s = a.pg();
    let p = a.spawn();
    s.create("g");
    assert!(s.which_groups().is_empty(), "create makes no empty group");
    s.join("g", p.pid()).unwrap();
    s.delete("g");
    assert_eq!(s.local_members("g"), vec![p.pid().clone()]);
}

#[tokio::test]
async fn selection_helpers() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    let (l1, l2) = (a.spawn(), a.spawn());
    let r1 = b.spawn();
    let (sa, sb) = (a.pg(), b.pg());
    sa.join("g", l1.pid()).unwrap();
    sb.join("g", r1.pid()).unwrap();
    sa.join("g", l2.pid()).unwrap();
    wait_for("a sees b's member", || sa.members("g").len() == 3).await;
    assert_eq!(
        sa.select("g", Select::Closest, None).unwrap().node(),
        a.name()
    );
    assert_eq!(
        sa.select("g", Select::Furthest, None),
        Some(r1.pid().clone())
    );
    assert_eq!(sa.select("g", Select::Remote, None), Some(r1.pid().clone()));
    assert_eq!(sa.select("g", Select::Remote, Some(r1.pid())), None);
    assert_eq!(
        sa.select("g", Select::Furthest, Some(r1.pid()))
            .unwrap()
            .node(),
        a.name()
    );
    assert_eq!(
        sa.select("g", Select::LocalOldest, None),
        Some(l1.pid().clone())
    );
    assert_eq!(
        sa.select("g", Select::LocalNewest, None),
        Some(l2.pid().clone())
    );
    assert_eq!(
        sa.select("g", Select::LocalOldest, Some(l1.pid())),
        Some(l2.pid().clone())
    );
    assert_eq!(sa.select("g", Select::Oldest, None), Some(l1.pid().clone()));
    assert_eq!(
        sa.select("g", Select::RemoteOldest, None),
        Some(r1.pid().clone())
    );
    assert_eq!(
        sa.select("g", Select::RemoteNewest, None),
        Some(r1.pid().clone())
    );
    let newest = sa.select("g", Select::Newest, None).unwrap();
    assert!(newest == *l2.pid() || newest == *r1.pid(), "{newest}");
    assert_eq!(
        sa.select("g", Select::Local, Some(l1.pid())),
        Some(l2.pid().clone())
    );
    assert!(sa.select("g", Select::Random, None).is_some());
    assert_eq!(sa.select("missing", Select::Closest, None), None);
}

#[tokio::test]
async fn metadata_is_readable_updatable_and_replicated() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    let p = a.spawn();
    let (sa, sb) = (a.pg(), b.pg());
    sa.join_with_meta("svc", p.pid(), "v1").unwrap();
    let meta = |s: &cohort_registry::Scope| {
        let m = s.members("svc");
        let first = m.pids().next();
        first.and_then(|p| m.meta(&p).cloned())
    };
    assert_eq!(meta(&sa), Some(Bytes::from_static(b"v1")));
    wait_for("b sees v1", || meta(&sb) == Some(Bytes::from_static(b"v1"))).await;
    sa.update_meta("svc", p.pid(), Some(Bytes::from_static(b"v2")))
        .unwrap();
    assert_eq!(meta(&sa), Some(Bytes::from_static(b"v2")));
    wait_for("b sees v2", || meta(&sb) == Some(Bytes::from_static(b"v2"))).await;
    let stranger = a.spawn();
    assert_eq!(
        sa.update_meta("svc", stranger.pid(), None),
        Err(PgError::NotJoined)
    );
}

#[tokio::test]
async fn monitor_scope_and_group_see_exact_local_sequences() {
    let a = start("a@127.0.0.1").await;
    let s = a.scope("mon");
    let p1 = a.spawn();
    s.join("before", p1.pid()).unwrap();
    let (mut all, snap) = s.monitor_scope().unwrap();
    assert_eq!(snap, vec![(g("before"), vec![p1.pid().clone()])]);
    let (mut one, snap1) = s.monitor("g1").unwrap();
    assert!(snap1.is_empty());
    let p2 = a.spawn();
    s.join_many("g1", &[p2.pid().clone(), p2.pid().clone()])
        .unwrap();
    s.join("g2", p2.pid()).unwrap();
    s.leave("g1", p2.pid()).unwrap();
    let p2pid = p2.pid().clone();
    drop(p2);
    let ev = |group: &str, kind: PgEventKind, pids: Vec<cohort_registry::Pid>| {
        PgEvent::new("mon".into(), g(group), kind, pids, None)
    };
    let want_all = vec![
        ev("g1", PgEventKind::Join, vec![p2pid.clone(), p2pid.clone()]),
        ev("g2", PgEventKind::Join, vec![p2pid.clone()]),
        ev("g1", PgEventKind::Leave, vec![p2pid.clone()]),
        ev("g1", PgEventKind::Leave, vec![p2pid.clone()]),
        ev("g2", PgEventKind::Leave, vec![p2pid.clone()]),
    ];
    for w in &want_all {
        assert_eq!(
            &within("scope event", all.recv()).await.unwrap().unwrap(),
            w
        );
    }
    assert!(all.try_recv().is_none());
    for w in want_all.iter().filter(|e| e.group.as_ref() == "g1") {
        assert_eq!(
            &within("group event", one.recv()).await.unwrap().unwrap(),
            w
        );
    }
    assert!(one.try_recv().is_none());
    // After demonitor, nothing more arrives.
    one.demonitor();
    let p3 = a.spawn();
    s.join("g1", p3.pid()).unwrap();
    assert_eq!(
        within("scope event", all.recv()).await.unwrap().unwrap(),
        ev("g1", PgEventKind::Join, vec![p3.pid().clone()])
    );
    let _ = ExitReason::Normal;
}
