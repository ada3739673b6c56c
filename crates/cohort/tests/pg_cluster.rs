//! Process groups across nodes over loopback TCP: pg_SUITE's `two`,
//! `initial`, `netsplit`, `trisplit`, `foursplit`, `exchange`, `nolocal`,
//! `double`, `scope_restart`, `empty_group_by_remote_leave`,
//! `disconnected_start`, `group_leave`, `overlay_missing`, `thundering_herd` (also with 2,000 queued syncs)
//! and remote monitor sequences. Every wait is for an exact expected view.

mod common;

use cohort_registry::{Group, Message, Node, PgEvent, PgEventKind, Pid, Scope};
use common::*;

fn sorted(mut v: Vec<Pid>) -> Vec<Pid> {
    v.sort();
    v
}

async fn wait_members(what: &str, s: &Scope, group: &str, want: &[Pid]) {
    let want = sorted(want.to_vec());
    wait_for(what, || sorted(s.members(group).to_vec()) == want).await;
}

async fn pair() -> (Node, Node) {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b]).await;
    (a, b)
}

/// Cuts the session between `a` and `b` on purpose (both sides drop the
/// other's entries) and waits until both see it.
async fn split(a: &Node, b: &Node) {
    assert!(a.disconnect(b.name()).await);
    wait_for("split seen on both sides", || {
        !a.nodes().contains(b.name()) && !b.nodes().contains(a.name())
    })
    .await;
}

#[tokio::test]
async fn two() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("two"), b.scope("two"));
    let p = a.spawn();
    sa.join("two", p.pid()).unwrap();
    assert_eq!(sa.local_members("two"), vec![p.pid().clone()]);
    wait_members("b sees a's member", &sb, "two", &[p.pid().clone()]).await;
    assert!(sb.local_members("two").is_empty());
    drop(p);
    assert!(sa.local_members("two").is_empty());
    wait_members("b sees the exit", &sb, "two", &[]).await;
    let (p2, p3) = (b.spawn(), b.spawn());
    sb.join("two", p2.pid()).unwrap();
    sb.join("two", p3.pid()).unwrap();
    wait_members(
        "a sees b's two",
        &sa,
        "two",
        &[p2.pid().clone(), p3.pid().clone()],
    )
    .await;
    b.shutdown().await;
    wait_members("b's members vanish with b", &sa, "two", &[]).await;
}

/// Joins are sent in batches, yet never overtaken: a message sent after a
/// join finds the join applied on the receiving node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_after_a_join_finds_it_applied() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("order"), b.scope("order"));
    let mut watcher = b.spawn();
    let p = a.spawn();
    sa.join("warm", p.pid()).unwrap();
    wait_members("stream up", &sb, "warm", &[p.pid().clone()]).await;
    for i in 0..300 {
        let group = format!("g{i}");
        sa.join(&group, p.pid()).unwrap();
        a.send(watcher.pid(), group.clone());
        let Message::Data { payload, .. } = next(&mut watcher).await else {
            panic!("expected data");
        };
        assert_eq!(payload, group.as_bytes());
        assert_eq!(
            sb.members(&group).to_vec(),
            vec![p.pid().clone()],
            "{group}"
        );
    }
}

#[tokio::test]
async fn initial_members_reach_a_new_node_and_a_kill_propagates() {
    let a = start("a@127.0.0.1").await;
    let sa = a.scope("initial");
    let p = a.spawn();
    sa.join("initial", p.pid()).unwrap();
    let b = start("b@127.0.0.1").await;
    let sb = b.scope("initial");
    b.connect(&a.local_addr()).await.unwrap();
    wait_members(
        "existing member reaches b",
        &sb,
        "initial",
        &[p.pid().clone()],
    )
    .await;
    assert!(sb.local_members("initial").is_empty());
    b.kill(p.pid(), cohort_registry::ExitReason::Killed("test".into()));
    wait_members("killed member leaves on a", &sa, "initial", &[]).await;
    wait_members("killed member leaves on b", &sb, "initial", &[]).await;
}

#[tokio::test]
async fn netsplit_joins_and_leaves_merge_on_heal() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("ns"), b.scope("ns"));
    let remote_old = b.spawn();
    sb.join("$invisible", remote_old.pid()).unwrap();
    wait_members(
        "a sees $invisible",
        &sa,
        "$invisible",
        &[remote_old.pid().clone()],
    )
    .await;
    split(&a, &b).await;
    assert!(
        sa.members("$invisible").is_empty(),
        "a dropped b's entries at the split"
    );
    let remote = b.spawn();
    sb.join("ns", remote.pid()).unwrap();
    sb.leave("$invisible", remote_old.pid()).unwrap();
    sb.join("$visible", remote_old.pid()).unwrap();
    let local = a.spawn();
    sa.join("ns", local.pid()).unwrap();
    b.connect(&a.local_addr()).await.unwrap();
    let both = [remote.pid().clone(), local.pid().clone()];
    wait_members("b has the union", &sb, "ns", &both).await;
    wait_members("a has the union", &sa, "ns", &both).await;
    wait_members(
        "a sees $visible",
        &sa,
        "$visible",
        &[remote_old.pid().clone()],
    )
    .await;
    assert!(sa.members("$invisible").is_empty());
}

#[tokio::test]
async fn trisplit() {
    let (a, b) = pair().await;
    let (_sa, sb) = (a.scope("tri"), b.scope("tri"));
    let _p1 = b.spawn();
    let p2 = b.spawn();
    sb.join("three", p2.pid()).unwrap();
    split(&a, &b).await;
    a.connect(&b.local_addr()).await.unwrap();
    sb.join("one", p2.pid()).unwrap();
    let c = start("c@127.0.0.1").await;
    let sc = c.scope("tri");
    c.connect(&b.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b, &c]).await;
    wait_members("c sees one", &sc, "one", &[p2.pid().clone()]).await;
    wait_members("c sees three", &sc, "three", &[p2.pid().clone()]).await;
}

#[tokio::test]
async fn foursplit_leave_during_split_leaves_group_empty_on_both_sides() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("four"), b.scope("four"));
    let p = a.spawn();
    sa.join("one", p.pid()).unwrap();
    sa.join("two", p.pid()).unwrap();
    let peer_proc = b.spawn();
    sa.leave("one", p.pid()).unwrap();
    assert_eq!(
        sa.leave("three", p.pid()),
        Err(cohort_registry::PgError::NotJoined)
    );
    wait_members("b sees two", &sb, "two", &[p.pid().clone()]).await;
    split(&a, &b).await;
    drop(peer_proc);
    assert_eq!(
        sa.leave("three", p.pid()),
        Err(cohort_registry::PgError::NotJoined)
    );
    a.connect(&b.local_addr()).await.unwrap();
    wait_members("b resynced two", &sb, "two", &[p.pid().clone()]).await;
    assert!(sa.members("one").is_empty());
    assert!(sb.members("one").is_empty());
}

#[tokio::test]
async fn exchange_kills_partition_and_union_after_reconnect() {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    let c = start("c@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    c.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b, &c]).await;
    let (sa, sb, sc) = (a.scope("ex"), b.scope("ex"), c.scope("ex"));
    let mut procs1: Vec<_> = (0..10).map(|_| b.spawn()).collect();
    let procs2: Vec<_> = (0..10).map(|_| c.spawn()).collect();
    let procs11: Vec<_> = (0..10).map(|_| b.spawn()).collect();
    let pids =
        |ps: &[cohort_registry::Process]| ps.iter().map(|p| p.pid().clone()).collect::<Vec<_>>();
    sb.join_many("ex", &pids(&procs1)).unwrap();
    wait_members("a sees 10", &sa, "ex", &pids(&procs1)).await;
    let killed: Vec<_> = procs1.drain(..3).collect();
    for p in &killed {
        b.kill(p.pid(), cohort_registry::ExitReason::Killed("x".into()));
    }
    wait_members("a sees 7", &sa, "ex", &pids(&procs1)).await;
    // Partition a from both.
    split(&a, &b).await;
    split(&a, &c).await;
    assert!(sa.members("ex").is_empty());
    for p in &procs2 {
        sc.join("ex", p.pid()).unwrap();
    }
    for p in &procs11 {
        sb.join("second", p.pid()).unwrap();
    }
    sb.join_many("third", &pids(&procs11)).unwrap();
    a.connect(&b.local_addr()).await.unwrap();
    a.connect(&c.local_addr()).await.unwrap();
    let mut ex = pids(&procs1);
    ex.extend(pids(&procs2));
    wait_members("a has ex", &sa, "ex", &ex).await;
    wait_members("a has second", &sa, "second", &pids(&procs11)).await;
    wait_members("a has third", &sa, "third", &pids(&procs11)).await;
    let (left, stay) = procs11.split_at(3);
    sb.leave_many("third", &pids(left)).unwrap();
    wait_members("a sees stay", &sa, "third", &pids(stay)).await;
    assert_eq!(
        sb.leave_many("left", &pids(stay)),
        Err(cohort_registry::PgError::NotJoined)
    );
    sb.leave_many("third", &pids(stay)).unwrap();
    wait_members("third empty on a", &sa, "third", &[]).await;
    wait_members("third empty on c", &sc, "third", &[]).await;
}

#[tokio::test]
async fn nolocal_remote_joins_are_not_local() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("nolocal"), b.scope("nolocal"));
    let rp = b.spawn();
    sb.join("g", rp.pid()).unwrap();
    sb.join("g", rp.pid()).unwrap();
    wait_members(
        "a sees both joins",
        &sa,
        "g",
        &[rp.pid().clone(), rp.pid().clone()],
    )
    .await;
    assert!(sa.local_members("g").is_empty());
    assert_eq!(sa.remote_members("g"), vec![rp.pid().clone(); 2]);
}

#[tokio::test]
async fn double_join_replicates_as_double() {
    let a = start("a@127.0.0.1").await;
    let sa = a.scope("double");
    let p = a.spawn();
    sa.join("g", p.pid()).unwrap();
    let b = start("b@127.0.0.1").await;
    let sb = b.scope("double");
    b.connect(&a.local_addr()).await.unwrap();
    sa.join_many("g", &[p.pid().clone()]).unwrap();
    assert_eq!(sa.members("g").to_vec(), vec![p.pid().clone(); 2]);
    wait_members(
        "b sees the double",
        &sb,
        "g",
        &[p.pid().clone(), p.pid().clone()],
    )
    .await;
    assert_eq!(sb.join_count("g", p.pid()), 2);
}

#[tokio::test]
async fn scope_restart_loses_local_members_keeps_remote() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("restart"), b.scope("restart"));
    let p = a.spawn();
    sa.join_many("g", &[p.pid().clone(), p.pid().clone()])
        .unwrap();
    let rp = b.spawn();
    sb.join("g", rp.pid()).unwrap();
    wait_members(
        "a sees all",
        &sa,
        "g",
        &[p.pid().clone(), p.pid().clone(), rp.pid().clone()],
    )
    .await;
    wait_members(
        "b sees all",
        &sb,
        "g",
        &[p.pid().clone(), p.pid().clone(), rp.pid().clone()],
    )
    .await;
    assert!(a.stop_scope("restart"));
    let sa = a.scope("restart");
    wait_members("a: remote back, local gone", &sa, "g", &[rp.pid().clone()]).await;
    wait_members("b: a's members gone", &sb, "g", &[rp.pid().clone()]).await;
}

#[tokio::test]
async fn missing_scope_refuses_writes() {
    let a = start("a@127.0.0.1").await;
    let s = a.scope("gone");
    assert!(a.stop_scope("gone"));
    let p = a.spawn();
    assert_eq!(
        s.join("g", p.pid()),
        Err(cohort_registry::PgError::NoScope("gone".into()))
    );
    assert_eq!(
        s.leave("g", p.pid()),
        Err(cohort_registry::PgError::NoScope("gone".into()))
    );
}

#[tokio::test]
async fn empty_group_by_remote_leave_disappears() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("empty"), b.scope("empty"));
    let rp = b.spawn();
    sb.join("g", rp.pid()).unwrap();
    wait_members("a sees it", &sa, "g", &[rp.pid().clone()]).await;
    sb.leave("g", rp.pid()).unwrap();
    wait_for("group gone on a", || sa.which_groups().is_empty()).await;
    let rp2 = b.spawn();
    sb.join_many("g", &[rp.pid().clone(), rp2.pid().clone()])
        .unwrap();
    wait_members(
        "a sees both",
        &sa,
        "g",
        &[rp.pid().clone(), rp2.pid().clone()],
    )
    .await;
    sb.leave_many("g", &[rp2.pid().clone(), rp.pid().clone()])
        .unwrap();
    wait_for("group gone again", || sa.which_groups().is_empty()).await;
}

#[tokio::test]
async fn disconnected_start_and_stop_of_a_scope() {
    let (a, b) = pair().await;
    split(&a, &b).await;
    let s = b.scope("late");
    assert!(b.stop_scope("late"));
    let s2 = b.scope("late");
    let p = b.spawn();
    s2.join("g", p.pid()).unwrap();
    assert_eq!(s2.local_members("g"), vec![p.pid().clone()]);
    let _ = s;
}

#[tokio::test]
async fn group_leave_of_sixteen_joins() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("gl"), b.scope("gl"));
    let rp = b.spawn();
    let total = vec![rp.pid().clone(); 16];
    sb.join_many("two", &total).unwrap();
    sb.leave_many("two", &total[..4]).unwrap();
    wait_members("twelve remain on a", &sa, "two", &total[4..]).await;
    b.shutdown().await;
    wait_members("all gone with b", &sa, "two", &[]).await;
}

#[tokio::test]
async fn overlay_missing_scope_does_not_replicate() {
    let (a, b) = pair().await;
    let sa = a.scope("overlay");
    let p = a.spawn();
    sa.join("g", p.pid()).unwrap();
    // b does not run "overlay"; b's own joins in another scope stay out.
    let sb_other = b.scope("other");
    let rp = b.spawn();
    sb_other.join("g", rp.pid()).unwrap();
    // A scope both run proves the streams have flowed by now.
    let (fa, fb) = (a.scope("flush"), b.scope("flush"));
    fb.join("f", rp.pid()).unwrap();
    wait_members("flush", &fa, "f", &[rp.pid().clone()]).await;
    assert_eq!(sa.members("g").to_vec(), vec![p.pid().clone()]);
    assert!(b.scopes().iter().all(|s| s.as_ref() != "overlay"));
    // Starting the scope later on b brings a's entries over.
    let sb = b.scope("overlay");
    wait_members("late scope syncs", &sb, "g", &[p.pid().clone()]).await;
}

#[tokio::test]
async fn thundering_herd_local_join_stays_prompt() {
    let a = start("a@127.0.0.1").await;
    let s = a.scope("herd");
    let me = a.spawn();
    for i in 0..10_000 {
        s.join(&format!("group{i}"), me.pid()).unwrap();
    }
    let mut peers = Vec::new();
    for i in 0..4 {
        let n = start(&format!("p{i}@127.0.0.1")).await;
        n.scope("herd");
        n.connect(&a.local_addr()).await.unwrap();
        peers.push(n);
    }
    // Syncs of 10,000 groups to each peer are under way; a join still completes.
    s.join("herd", me.pid()).unwrap();
    assert_eq!(s.local_members("herd"), vec![me.pid().clone()]);
    for n in &peers {
        let sp = n.scope("herd");
        wait_for("peer synced", || sp.which_groups().len() == 10_001).await;
    }
}

/// OTP's `thundering_herd`: a node holding 10,000 groups gets 2,000 syncs
/// from one peer in a burst (a peer's snapshot of one group, as a restarting
/// cluster would flood it with); a local join made while they are queued
/// still completes, and the view ends exactly as the last sync says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thundering_herd_queued_syncs_do_not_stall_a_local_join() {
    use cohort_registry::core::pg::{PgFrame, SyncGroup};
    use cohort_registry::core::proto::Frame;
    use futures::{SinkExt, StreamExt};

    let a = start("a@127.0.0.1").await;
    let s = a.scope("herd");
    let me = a.spawn();
    for i in 0..10_000 {
        s.join(&format!("group{i}"), me.pid()).unwrap();
    }
    let mut f = raw_peer(&a.local_addr(), "herd@127.0.0.1").await;
    // Wait until a asks the peer for the scope: from then on a accepts its
    // snapshots.
    within("a discovers the scope on the peer", async {
        loop {
            let bytes = f.next().await.unwrap().unwrap();
            if let Ok(Frame::Pg(PgFrame::Discover { scope, .. })) = Frame::decode(&bytes) {
                if &*scope == "herd" {
                    break;
                }
            }
        }
    })
    .await;
    let (mut sink, mut stream) = f.split();
    // Keep the session alive: drain what a sends, tick back.
    let drain = tokio::spawn(async move { while stream.next().await.is_some() {} });
    let ticker = tokio::spawn(async move {
        let sync = |serial: u64| {
            Frame::Pg(PgFrame::Sync {
                scope: "herd".into(),
                stream: 1,
                seq: 1,
                groups: vec![SyncGroup {
                    group: "group1".into(),
                    members: vec![(serial, 2, None)],
                }],
                more: false,
            })
            .encode()
        };
        for i in 0..2_000 {
            sink.feed(sync(if i == 1_999 { 8 } else { 7 }))
                .await
                .unwrap();
        }
        sink.flush().await.unwrap();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if sink.send(Frame::Tick.encode()).await.is_err() {
                return;
            }
        }
    });
    let peer = |serial| {
        Pid::new(
            cohort_registry::NodeName::new("herd@127.0.0.1").unwrap(),
            5,
            serial,
        )
    };
    // The syncs are queued or being applied: a local join completes.
    wait_for("the first syncs are in", || s.members("group1").len() > 1).await;
    s.join("fresh", me.pid()).unwrap();
    assert_eq!(s.members("fresh").to_vec(), vec![me.pid().clone()]);
    // The last sync wins: two memberships of serial 8, none of 7.
    wait_members(
        "the last sync applied",
        &s,
        "group1",
        &[me.pid().clone(), peer(8), peer(8)],
    )
    .await;
    assert_eq!(s.which_groups().len(), 10_001);
    ticker.abort();
    drain.abort();
}

#[tokio::test]
async fn remote_monitor_sees_exact_sequence() {
    let (a, b) = pair().await;
    let (sa, sb) = (a.scope("rmon"), b.scope("rmon"));
    // Until b streams to a, a learns b's entries from one snapshot; wait
    // for the stream so that every change shows up on its own.
    let probe = b.spawn();
    sb.join("probe", probe.pid()).unwrap();
    wait_members("stream up", &sa, "probe", &[probe.pid().clone()]).await;
    sb.leave("probe", probe.pid()).unwrap();
    wait_members("probe gone", &sa, "probe", &[]).await;
    let (mut mon, snap) = sa.monitor_scope().unwrap();
    assert!(snap.is_empty());
    let rp = b.spawn();
    let rpid = rp.pid().clone();
    sb.join_many("g", &[rpid.clone(), rpid.clone()]).unwrap();
    sb.join_with_meta("h", &rpid, "m").unwrap();
    sb.leave("g", &rpid).unwrap();
    drop(rp);
    let ev = |group: &str, kind, pids: Vec<Pid>, meta: Option<&'static [u8]>| {
        PgEvent::new(
            "rmon".into(),
            Group::from(group),
            kind,
            pids,
            meta.map(bytes::Bytes::from_static),
        )
    };
    let want = vec![
        ev(
            "g",
            PgEventKind::Join,
            vec![rpid.clone(), rpid.clone()],
            None,
        ),
        ev("h", PgEventKind::Join, vec![rpid.clone()], Some(b"m")),
        ev("g", PgEventKind::Leave, vec![rpid.clone()], None),
        ev("g", PgEventKind::Leave, vec![rpid.clone()], None),
        ev("h", PgEventKind::Leave, vec![rpid.clone()], None),
    ];
    for w in want {
        assert_eq!(
            within("remote event", mon.recv()).await.unwrap().unwrap(),
            w
        );
    }
    // A node going down is reported as leaves of everything it owned.
    let rp2 = b.spawn();
    sb.join("x", rp2.pid()).unwrap();
    assert_eq!(
        within("join", mon.recv()).await.unwrap().unwrap(),
        ev("x", PgEventKind::Join, vec![rp2.pid().clone()], None)
    );
    std::mem::forget(rp2.pid().clone());
    let pid2 = rp2.pid().clone();
    std::mem::forget(rp2);
    b.abort().await;
    assert_eq!(
        within("leave on node down", mon.recv())
            .await
            .unwrap()
            .unwrap(),
        ev("x", PgEventKind::Leave, vec![pid2], None)
    );
    assert!(sa.which_groups().is_empty());
}
