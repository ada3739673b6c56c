//! Event streams are bounded: a subscriber that does not read keeps at most
//! `EVENT_BUFFER` events, is told how many it missed (`Lagged`), then reads
//! on; the node keeps serving everyone else meanwhile.

mod common;

use cohort_registry::{Lagged, NameEvent, PgEventKind, EVENT_BUFFER};
use common::*;
use futures::StreamExt;

#[tokio::test]
async fn a_names_subscriber_that_falls_behind_is_told_how_many_it_missed() {
    let a = start("a@127.0.0.1").await;
    let table = a.names();
    let mut slow = table.subscribe();
    let p = a.spawn();
    let extra = 100;
    // One name at a time: each register, then unregister, is two events.
    let rounds = (EVENT_BUFFER + extra) / 2;
    for i in 0..rounds {
        table.register(format!("n{i}"), p.pid()).await.unwrap();
        table.unregister(&format!("n{i}")).await.unwrap();
    }
    let total = rounds * 2;
    // The oldest events were dropped; the newest EVENT_BUFFER are kept.
    assert_eq!(
        within("the lag", slow.next()).await,
        Some(Err(Lagged((total - EVENT_BUFFER) as u64)))
    );
    let mut kept = 0;
    while let Some(ev) = slow.try_recv() {
        ev.expect("one lag report, then events");
        kept += 1;
    }
    assert_eq!(kept, EVENT_BUFFER);
    // The subscriber goes on from there, and the table works as before.
    table.register("after", p.pid()).await.unwrap();
    assert!(matches!(
        within("the next event", slow.recv()).await,
        Some(Ok(NameEvent::Registered { name, .. })) if name == "after"
    ));
}

#[tokio::test]
async fn a_group_monitor_that_falls_behind_is_told_how_many_it_missed() {
    let a = start("a@127.0.0.1").await;
    let scope = a.pg();
    let (mut slow, _) = scope.monitor("g").unwrap();
    let (mut fast, _) = scope.monitor("g").unwrap();
    let ps: Vec<_> = (0..EVENT_BUFFER + 7).map(|_| a.spawn()).collect();
    let mut seen = 0;
    for p in &ps {
        scope.join("g", p.pid()).unwrap();
        // A subscriber that keeps up misses nothing.
        let ev = within("a join", fast.recv()).await.unwrap().unwrap();
        assert_eq!(ev.kind, PgEventKind::Join);
        seen += ev.pids.len();
    }
    assert_eq!(seen, ps.len());
    assert_eq!(within("the lag", slow.recv()).await, Some(Err(Lagged(7))));
    let first_kept = within("a join", slow.recv()).await.unwrap().unwrap();
    assert_eq!(first_kept.pids, vec![ps[7].pid().clone()]);
    assert_eq!(scope.members("g").len(), ps.len());
}
