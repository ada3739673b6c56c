//! Global names on a connected cluster: OTP global_SUITE's `names`,
//! `re_register_name`, a second name per pid, metadata, events, sync,
//! and locked registrations racing for one name.

mod common;
mod names_util;

use bytes::Bytes;
use cohort_registry::core::names::{
    Mode, NameEvent, NamesConfig, NamesError, TableConfig, UnregisterReason,
};
use cohort_registry::{ExitReason, Message};
use common::*;
use names_util::*;

#[tokio::test]
async fn names_on_four_nodes_over_tcp() {
    let nodes = tcp_cluster(
        &["a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1", "d@127.0.0.1"],
        NamesConfig::default(),
    )
    .await;
    let all: Vec<_> = nodes.iter().collect();
    let (a, b, c, d) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let mut p = a.spawn();
    let q = b.spawn();
    a.register("foo", p.pid()).await.unwrap();
    // Locked mode: when register returns, every node holds the name locked
    // for this claim, so a duplicate is refused at once, from any node...
    assert_eq!(b.register("foo", q.pid()).await, Err(NamesError::Taken));
    assert_eq!(a.register("foo", p.pid()).await, Err(NamesError::Taken));
    // ...and every node shows the entry once the commit arrives.
    wait_views(&all, &[("foo", p.pid())]).await;
    // Send by name from a third node.
    assert_eq!(c.names().send("foo", "hi").unwrap(), *p.pid());
    assert_eq!(
        next(&mut p).await,
        Message::Data {
            from: None,
            payload: Bytes::from_static(b"hi")
        }
    );
    assert_eq!(c.names().send("nope", "hi"), Err(NamesError::NotRegistered));
    // A name held by a process of d goes when d stops.
    let r = d.spawn();
    d.register("bar", r.pid()).await.unwrap();
    wait_views(&all, &[("foo", p.pid()), ("bar", r.pid())]).await;
    d.shutdown().await;
    wait_views(&all[..3], &[("foo", p.pid())]).await;
    // Exit unregisters everywhere.
    drop(p);
    wait_views(&all[..3], &[]).await;
    assert_eq!(a.whereis("foo"), None);
}

/// A local holder that ended reads as absent on its own node as soon as
/// its end returns (`exit`, a dropped handle, `kill`), in a locked and an
/// eventual table, and so does every local holder once the node stopped.
/// `whereis` reads one map for this: the view must already be clean.
#[tokio::test]
async fn a_local_holder_that_ended_reads_as_absent_at_once() {
    let cfg = NamesConfig::empty()
        .table(TableConfig::new("locked").mode(Mode::Locked))
        .table(TableConfig::new("eventual").mode(Mode::Eventual));
    let nodes = tcp_cluster(&["a@127.0.0.1", "b@127.0.0.1"], cfg).await;
    let a = &nodes[0];
    let mut holders = Vec::new();
    for table in ["locked", "eventual"] {
        let t = a.names_table(table).unwrap();
        for how in ["exit", "drop", "kill"] {
            let p = a.spawn();
            let pid = p.pid().clone();
            let name = format!("by_{how}");
            t.register(name.clone(), &pid).await.unwrap();
            assert_eq!(t.whereis(&name), Some(pid.clone()), "{table} {how}");
            let kept = match how {
                "exit" => {
                    p.exit(ExitReason::Other("done".into()));
                    None
                }
                "drop" => {
                    drop(p);
                    None
                }
                _ => {
                    a.kill(&pid, ExitReason::Killed("test".into()));
                    Some(p)
                }
            };
            assert_eq!(t.whereis(&name), None, "{table}: ended by {how}");
            assert_eq!(t.whereis_meta(&name), None, "{table}: ended by {how}");
            drop(kept);
        }
        let p = a.spawn();
        t.register("held", p.pid()).await.unwrap();
        holders.push(p);
    }
    a.abort().await;
    for table in ["locked", "eventual"] {
        let t = a.names_table(table).unwrap();
        assert_eq!(t.whereis("held"), None, "{table}: after the node stopped");
        assert_eq!(
            t.whereis_meta("held"),
            None,
            "{table}: after the node stopped"
        );
    }
    drop(holders);
}

#[tokio::test(start_paused = true)]
async fn a_second_name_for_one_pid_is_refused_unless_allowed() {
    let net = cohort_registry::transport::mem::MemNetwork::default();
    let cfg = NamesConfig::default().table(
        TableConfig::new("multi")
            .multiple_names(true)
            .mode(Mode::Eventual),
    );
    let nodes = mem_cluster(&net, &["a@mem", "b@mem"], cfg).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let p = a.spawn();
    a.register("x", p.pid()).await.unwrap();
    assert_eq!(
        a.register("y", p.pid()).await,
        Err(NamesError::AlreadyNamed("x".into()))
    );
    let multi = a.names_table("multi").unwrap();
    multi.register("x", p.pid()).await.unwrap();
    multi.register("y", p.pid()).await.unwrap();
    let bm = b.names_table("multi").unwrap();
    bm.sync().await.unwrap();
    multi.sync().await.unwrap();
    assert_eq!(
        bm.registered_names(),
        vec!["x".to_string(), "y".to_string()]
    );
    assert_eq!(b.registered_names(), vec!["x".to_string()]);
    assert_eq!((bm.len(), b.names().len()), (2, 1));
    // Remote pids are refused, and so are dead ones.
    let q = b.spawn();
    assert_eq!(a.register("z", q.pid()).await, Err(NamesError::NotLocal));
    let dead = a.spawn();
    let dpid = dead.pid().clone();
    drop(dead);
    assert_eq!(a.register("z", &dpid).await, Err(NamesError::NoProc));
    assert!(a.names_table("absent").is_none());
}

#[tokio::test(start_paused = true)]
async fn re_register_name_moves_the_name_without_killing() {
    for mode in [Mode::Locked, Mode::Eventual] {
        let net = cohort_registry::transport::mem::MemNetwork::default();
        let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(mode)).await;
        let all: Vec<_> = nodes.iter().collect();
        let (a, b) = (&nodes[0], &nodes[1]);
        let mut events = nodes[2].names().subscribe();
        let p1 = a.spawn();
        a.register("name", p1.pid()).await.unwrap();
        wait_views(&all, &[("name", p1.pid())]).await;
        // Re-registered to a process of another node.
        let p2 = b.spawn();
        b.re_register("name", p2.pid()).await.unwrap();
        wait_views(&all, &[("name", p2.pid())]).await;
        assert!(
            a.is_alive(p1.pid()),
            "the old holder keeps running ({mode:?})"
        );
        // Re-registered again, on the same node as the holder.
        let p3 = b.spawn();
        b.re_register("name", p3.pid()).await.unwrap();
        wait_views(&all, &[("name", p3.pid())]).await;
        // The old holders' exits do not touch the name.
        let (pid1, pid2) = (p1.pid().clone(), p2.pid().clone());
        drop(p1);
        drop(p2);
        a.names().sync().await.unwrap();
        b.names().sync().await.unwrap();
        wait_views(&all, &[("name", p3.pid())]).await;
        let evs: Vec<NameEvent> =
            std::iter::from_fn(|| events.try_recv().map(|r| r.expect("no events missed")))
                .collect();
        let reg = |p: &cohort_registry::Pid| NameEvent::Registered {
            name: "name".into(),
            pid: p.clone(),
            meta: Bytes::new(),
        };
        let unreg = |p: &cohort_registry::Pid| NameEvent::Unregistered {
            name: "name".into(),
            pid: p.clone(),
            reason: UnregisterReason::Replaced,
        };
        assert_eq!(
            evs,
            vec![
                reg(&pid1),
                unreg(&pid1),
                reg(&pid2),
                unreg(&pid2),
                reg(p3.pid())
            ],
            "{mode:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn metadata_events_sync_and_remote_unregister() {
    let net = cohort_registry::transport::mem::MemNetwork::default();
    let nodes = mem_cluster(&net, &["a@mem", "b@mem"], cfg(Mode::Eventual)).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut ev = b.names().subscribe();
    let p = a.spawn();
    a.names()
        .register_with("svc", p.pid(), Bytes::from_static(b"v1"), None)
        .await
        .unwrap();
    // sync returns once both sides exchanged what came before it.
    a.names().sync().await.unwrap();
    assert_eq!(
        b.names().whereis_meta("svc"),
        Some((p.pid().clone(), Bytes::from_static(b"v1")))
    );
    // Unregistering a name held on another node goes through its node.
    b.unregister("svc").await.unwrap();
    assert_eq!(b.whereis("svc"), None);
    assert_eq!(a.whereis("svc"), None);
    assert_eq!(b.unregister("svc").await, Err(NamesError::NotRegistered));
    // An exit.
    a.register("svc", p.pid()).await.unwrap();
    p.exit(ExitReason::Other("done".into()));
    a.names().sync().await.unwrap();
    let evs: Vec<NameEvent> =
        std::iter::from_fn(|| ev.try_recv().map(|r| r.expect("no events missed"))).collect();
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert_eq!(
        evs[1],
        NameEvent::Unregistered {
            name: "svc".into(),
            pid: evs_pid(&evs[0]),
            reason: UnregisterReason::Unregistered
        }
    );
    assert_eq!(
        evs[3],
        NameEvent::Unregistered {
            name: "svc".into(),
            pid: evs_pid(&evs[0]),
            reason: UnregisterReason::Exited(ExitReason::Other("done".into()))
        }
    );
    assert!(b.registered_names().is_empty());
    assert!(b.names().is_empty());
}

fn evs_pid(e: &NameEvent) -> cohort_registry::Pid {
    match e {
        NameEvent::Registered { pid, .. } => pid.clone(),
        other => panic!("expected a registration, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn racing_locked_registrations_never_both_succeed() {
    let net = cohort_registry::transport::mem::MemNetwork::default();
    let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(Mode::Locked)).await;
    let all: Vec<_> = nodes.iter().collect();
    let mut keep = Vec::new();
    let mut won = Vec::new();
    for round in 0..20 {
        let name = format!("r{round}");
        let procs: Vec<_> = nodes.iter().map(|n| n.spawn()).collect();
        let results = futures::future::join_all(
            nodes
                .iter()
                .zip(&procs)
                .map(|(n, p)| n.register(name.clone(), p.pid())),
        )
        .await;
        let winners: Vec<_> = results
            .iter()
            .zip(&procs)
            .filter(|(r, _)| r.is_ok())
            .map(|(_, p)| p.pid().clone())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == Err(NamesError::Taken))
                .count(),
            2
        );
        // Locked: every node shows the winner once its commit arrived.
        won.push((name, winners[0].clone()));
        let want: Vec<(&str, &cohort_registry::Pid)> =
            won.iter().map(|(n, p)| (n.as_str(), p)).collect();
        wait_views(&all, &want).await;
        keep.push(procs);
    }
}

#[tokio::test(start_paused = true)]
async fn eventual_concurrent_claims_settle_in_one_round() {
    let net = cohort_registry::transport::mem::MemNetwork::default();
    let nodes = mem_cluster(&net, &["a@mem", "b@mem", "c@mem"], cfg(Mode::Eventual)).await;
    let all: Vec<_> = nodes.iter().collect();
    let mut procs: Vec<_> = nodes.iter().map(|n| n.spawn()).collect();
    // All three local writes succeed before any claim travels.
    for (n, p) in nodes.iter().zip(&procs) {
        n.register("x", p.pid()).await.unwrap();
    }
    // Equal stamps: the lowest node name wins; the others are killed.
    wait_views(&all, &[("x", procs[0].pid())]).await;
    for p in &mut procs[1..] {
        assert_eq!(
            next(p).await,
            Message::Exit {
                reason: ExitReason::Killed("name conflict: x".into())
            }
        );
    }
    assert!(nodes[0].is_alive(procs[0].pid()));
}
