//! Processes, sends, monitors and kills, locally and across real TCP.

mod common;

use bytes::Bytes;
use cohort_registry::{ExitReason, Message, Node};
use common::*;

async fn pair() -> (Node, Node) {
    let a = start("a@127.0.0.1").await;
    let b = start("b@127.0.0.1").await;
    b.connect(&a.local_addr()).await.unwrap();
    wait_full_mesh(&[&a, &b]).await;
    (a, b)
}

fn data(from: Option<&cohort_registry::Pid>, payload: &'static [u8]) -> Message {
    Message::Data {
        from: from.cloned(),
        payload: Bytes::from_static(payload),
    }
}

#[tokio::test]
async fn local_and_remote_sends_arrive_in_order() {
    let (a, b) = pair().await;
    let mut pa = a.spawn();
    let pa2 = a.spawn();
    let pb = b.spawn();
    pa2.send(pa.pid(), "local");
    assert_eq!(next(&mut pa).await, data(Some(pa2.pid()), b"local"));
    for i in 0..100u32 {
        pb.send_typed(pa.pid(), &i).unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(next(&mut pa).await.decode::<u32>().unwrap().unwrap(), i);
    }
    a.send(pa.pid(), "anonymous");
    assert_eq!(next(&mut pa).await, data(None, b"anonymous"));
}

#[tokio::test]
async fn monitor_reports_exit_reason_across_nodes() {
    let (a, b) = pair().await;
    let mut watcher = a.spawn();
    let mut target = b.spawn();
    let tpid = target.pid().clone();
    let mref = watcher.monitor(&tpid);
    // Signals from one process to another stay in order: once the target
    // has this message, b has the monitor too.
    watcher.send(&tpid, "sync");
    next(&mut target).await;
    target.exit(ExitReason::Other("bye".into()));
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref,
            pid: tpid,
            reason: ExitReason::Other("bye".into())
        }
    );
}

#[tokio::test]
async fn dropping_a_handle_is_a_normal_exit() {
    let a = start("a@127.0.0.1").await;
    let mut watcher = a.spawn();
    let target = a.spawn();
    let tpid = target.pid().clone();
    let mref = watcher.monitor(&tpid);
    drop(target);
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref,
            pid: tpid.clone(),
            reason: ExitReason::Normal
        }
    );
    assert!(!a.is_alive(&tpid));
}

#[tokio::test]
async fn monitor_of_a_dead_process_is_noproc() {
    let (a, b) = pair().await;
    let mut watcher = a.spawn();
    let local_dead = a.spawn().pid().clone();
    let remote_dead = {
        let p = b.spawn();
        let pid = p.pid().clone();
        drop(p);
        pid
    };
    let m1 = watcher.monitor(&local_dead);
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref: m1,
            pid: local_dead,
            reason: ExitReason::NoProc
        }
    );
    let m2 = watcher.monitor(&remote_dead);
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref: m2,
            pid: remote_dead,
            reason: ExitReason::NoProc
        }
    );
}

#[tokio::test]
async fn monitor_fires_noconnection_when_the_node_is_lost() {
    let (a, b) = pair().await;
    let mut watcher = a.spawn();
    let mut target = b.spawn();
    let tpid = target.pid().clone();
    let mref = watcher.monitor(&tpid);
    watcher.send(&tpid, "sync");
    next(&mut target).await;
    std::mem::forget(target);
    b.abort().await;
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref,
            pid: tpid.clone(),
            reason: ExitReason::NoConnection
        }
    );
    // Monitoring a pid of an unconnected node answers at once too.
    let m2 = watcher.monitor(&tpid);
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref: m2,
            pid: tpid,
            reason: ExitReason::NoConnection
        }
    );
}

#[tokio::test]
async fn demonitor_stops_the_down() {
    let (a, b) = pair().await;
    let mut watcher = a.spawn();
    let mut target = b.spawn();
    let mref = watcher.monitor(target.pid());
    watcher.demonitor(mref);
    watcher.send(target.pid(), "sync");
    next(&mut target).await;
    drop(target);
    // A second monitored process exiting later shows the first Down never came.
    let mut other = b.spawn();
    let m2 = watcher.monitor(other.pid());
    let opid = other.pid().clone();
    watcher.send(&opid, "sync");
    next(&mut other).await;
    drop(other);
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref: m2,
            pid: opid,
            reason: ExitReason::Normal
        }
    );
}

#[tokio::test]
async fn kill_ends_local_and_remote_processes() {
    let (a, b) = pair().await;
    let mut watcher = a.spawn();
    let mut local = a.spawn();
    let mut remote = b.spawn();
    let (lpid, rpid) = (local.pid().clone(), remote.pid().clone());
    let ml = watcher.monitor(&lpid);
    let mr = watcher.monitor(&rpid);
    watcher.send(&rpid, "sync");
    next(&mut remote).await;
    a.kill(&lpid, ExitReason::Killed("test".into()));
    assert_eq!(
        next(&mut local).await,
        Message::Exit {
            reason: ExitReason::Killed("test".into())
        }
    );
    assert!(
        local.recv().await.is_none(),
        "a killed process's mailbox closes"
    );
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref: ml,
            pid: lpid,
            reason: ExitReason::Killed("test".into())
        }
    );
    a.kill(&rpid, ExitReason::Killed("remote".into()));
    assert_eq!(
        next(&mut remote).await,
        Message::Exit {
            reason: ExitReason::Killed("remote".into())
        }
    );
    assert_eq!(
        next(&mut watcher).await,
        Message::Down {
            mref: mr,
            pid: rpid.clone(),
            reason: ExitReason::Killed("remote".into())
        }
    );
    assert!(!b.is_alive(&rpid));
}

#[tokio::test]
async fn a_dying_watcher_releases_its_remote_monitors() {
    let (a, b) = pair().await;
    let watcher = a.spawn();
    let mut target = b.spawn();
    watcher.monitor(target.pid());
    drop(watcher);
    // The target's exit must not try to reach the dead watcher; a fresh
    // watcher sees only its own Down.
    let mut w2 = a.spawn();
    let m2 = w2.monitor(target.pid());
    let tpid = target.pid().clone();
    w2.send(&tpid, "sync");
    next(&mut target).await;
    drop(target);
    assert_eq!(
        next(&mut w2).await,
        Message::Down {
            mref: m2,
            pid: tpid,
            reason: ExitReason::Normal
        }
    );
}

#[tokio::test]
async fn many_nodes_run_in_one_process() {
    let mut nodes = Vec::new();
    for i in 0..6 {
        nodes.push(start(&format!("n{i}@127.0.0.1")).await);
    }
    for n in &nodes[1..] {
        n.connect(&nodes[0].local_addr()).await.unwrap();
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_full_mesh(&refs).await;
    let mut procs: Vec<_> = nodes.iter().map(|n| n.spawn()).collect();
    let pids: Vec<_> = procs.iter().map(|p| p.pid().clone()).collect();
    for p in &procs {
        for to in &pids {
            p.send(to, "hi");
        }
    }
    for p in &mut procs {
        let mut froms = Vec::new();
        for _ in 0..pids.len() {
            match next(p).await {
                Message::Data { from, .. } => froms.push(from.unwrap()),
                other => panic!("unexpected {other:?}"),
            }
        }
        froms.sort();
        let mut want = pids.clone();
        want.sort();
        assert_eq!(froms, want);
    }
}
