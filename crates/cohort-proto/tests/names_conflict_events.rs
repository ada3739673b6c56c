//! Every node that held a claim which lost a clash reports the clash
//! (`ConflictResolved`) exactly once, with the winner and the action the
//! loser's node chose, where the loser's retraction reaches it: also a
//! node that never held the winning claim, and one that missed the
//! retraction and was repaired by a snapshot.

mod common;

use bytes::Bytes;
use cohort_proto::names::{
    LossPolicy, LostClaim, Mode, NameEvent, NamesConfig, NamesEffect, NamesFrame, Outcome,
    RegisterArgs, TableConfig, UnregisterReason,
};
use cohort_proto::pid::Pid;
use cohort_proto::proto::Frame;
use cohort_proto::Effect;
use common::corenet::CoreNet;

/// a, b and c with one table `t` in `mode`, watched on every node.
fn net(mode: Mode) -> CoreNet {
    let cfg = NamesConfig::empty().table(TableConfig::new("t").mode(mode));
    let mut net = CoreNet::with_names(&["a@h", "b@h", "c@h"], cfg);
    for n in &mut net.nodes {
        n.with_names(cohort_proto::time::Time::ZERO, |n, _| n.watch(0));
    }
    net
}

/// Node `i` registers its process `serial` as `name` and the cores settle;
/// checks that it got the name.
fn register(net: &mut CoreNet, i: usize, name: &str, serial: u64) {
    net.nodes[i].spawned(serial);
    let args = RegisterArgs {
        table: "t".into(),
        name: name.into(),
        pid: net.nodes[i].pid(serial),
        meta: Bytes::new(),
        policy: None,
        replace: false,
    };
    let now = net.now;
    let out = net.nodes[i].names_register(now, 1, args);
    net.settle();
    // Locked with members: answered later, by an effect.
    let answered = matches!(out, Outcome::Done(Ok(true)))
        || net.seen[i].iter().any(|e| {
            matches!(
                e,
                Effect::Names(NamesEffect::Reply {
                    op: 1,
                    result: Ok(true)
                })
            )
        });
    assert!(answered, "n{i} registers {name}: {out:?}");
    let pid = net.nodes[i].pid(serial);
    assert_eq!(net.nodes[i].names().whereis("t", name), Some(pid));
}

/// The name events node `i` reported, in order.
fn events(net: &CoreNet, i: usize) -> Vec<NameEvent> {
    net.seen[i]
        .iter()
        .filter_map(|e| match e {
            Effect::Names(NamesEffect::Event { event, .. }) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// The clashes node `i` reported: (winner, loser, action).
fn clashes(net: &CoreNet, i: usize) -> Vec<(Option<Pid>, Pid, LossPolicy)> {
    events(net, i)
        .into_iter()
        .filter_map(|e| match e {
            NameEvent::ConflictResolved {
                winner,
                loser,
                action,
                ..
            } => Some((winner, loser, action)),
            _ => None,
        })
        .collect()
}

/// a and b claim `x` apart; c is connected to b only and holds b's claim.
/// When a and b meet, b's claim loses (a's is earlier) and b retracts it;
/// a's session with c is slow to come up, so c never holds both claims at
/// once. With `hold_b`, b's frames to c are held from then on too.
/// Returns a's and b's pids.
fn clash_seen_by_a_bystander(net: &mut CoreNet, hold_b: bool) -> (Pid, Pid) {
    net.connect(2, 1);
    register(net, 0, "x", 1);
    // b's clock moves past a's: b's claim is the later one.
    register(net, 1, "y", 2);
    register(net, 1, "x", 1);
    let (pa, pb) = (net.nodes[0].pid(1), net.nodes[1].pid(1));
    assert_eq!(net.nodes[2].names().whereis("t", "x"), Some(pb.clone()));
    // a's frames to c are held: the mesh makes a dial c, but c hears of
    // a's claim only after b's retraction.
    net.hold(0, 2);
    if hold_b {
        net.hold(1, 2);
    }
    net.connect(0, 1);
    assert_eq!(net.nodes[1].names().whereis("t", "x"), Some(pa.clone()));
    (pa, pb)
}

#[test]
fn a_node_that_held_only_the_losing_claim_reports_the_clash() {
    for mode in [Mode::Locked, Mode::Eventual] {
        let mut net = net(mode);
        let (pa, pb) = clash_seen_by_a_bystander(&mut net, false);
        // c applied b's retraction: it reports the clash as b settled it.
        let told = (Some(pa.clone()), pb.clone(), LossPolicy::Kill);
        assert_eq!(clashes(&net, 2), vec![told.clone()], "{mode:?}");
        assert_eq!(net.nodes[2].names().whereis("t", "x"), None);
        net.release(0, 2);
        net.settle();
        for i in 0..3 {
            assert_eq!(net.nodes[i].names().whereis("t", "x"), Some(pa.clone()));
            // Exactly once on every node, the same clash everywhere.
            assert_eq!(clashes(&net, i), vec![told.clone()], "n{i} {mode:?}");
        }
        // On c, the clash comes where b's claim left: after its
        // registration and removal, before a's claim arrived.
        let on_x: Vec<NameEvent> = events(&net, 2)
            .into_iter()
            .filter(|e| match e {
                NameEvent::Registered { name, .. }
                | NameEvent::Unregistered { name, .. }
                | NameEvent::ConflictResolved { name, .. } => name == "x",
                _ => false,
            })
            .collect();
        assert_eq!(
            on_x,
            vec![
                NameEvent::Registered {
                    name: "x".into(),
                    pid: pb.clone(),
                    meta: Bytes::new()
                },
                NameEvent::Unregistered {
                    name: "x".into(),
                    pid: pb.clone(),
                    reason: UnregisterReason::Conflict
                },
                NameEvent::ConflictResolved {
                    name: "x".into(),
                    winner: Some(pa.clone()),
                    loser: pb.clone(),
                    action: LossPolicy::Kill
                },
                NameEvent::Registered {
                    name: "x".into(),
                    pid: pa.clone(),
                    meta: Bytes::new()
                },
            ],
            "{mode:?}"
        );
    }
}

#[test]
fn a_node_that_missed_the_retraction_reports_the_clash_from_the_snapshot() {
    let mut net = net(Mode::Eventual);
    let (pa, pb) = clash_seen_by_a_bystander(&mut net, true);
    // b's retraction to c is lost on the way.
    assert!(net.discard(1, 2) > 0);
    net.release(1, 2);
    assert!(clashes(&net, 2).is_empty());
    assert_eq!(net.nodes[2].names().whereis("t", "x"), Some(pb.clone()));
    // b's next head shows c it is behind: c asks for a snapshot, which
    // drops b's claim, and the losses sent before it say why.
    for _ in 0..3 {
        net.advance(500);
    }
    assert_eq!(net.nodes[2].names().whereis("t", "x"), None);
    let told = (Some(pa.clone()), pb.clone(), LossPolicy::Kill);
    assert_eq!(clashes(&net, 2), vec![told.clone()]);
    assert!(events(&net, 2).contains(&NameEvent::Unregistered {
        name: "x".into(),
        pid: pb,
        reason: UnregisterReason::Conflict
    }));
    net.release(0, 2);
    net.settle();
    for i in 0..3 {
        assert_eq!(clashes(&net, i), vec![told.clone()], "n{i}");
    }
}

#[test]
fn losses_of_another_nodes_claims_are_ignored() {
    let mut net = net(Mode::Eventual);
    net.connect(1, 0);
    net.connect(2, 0);
    net.settle();
    register(&mut net, 2, "x", 1);
    let pc = net.nodes[2].pid(1);
    // b claims that c's claim lost, then sends a snapshot: a keeps c's
    // claim and reports nothing.
    let lost = LostClaim {
        name: "x".into(),
        pid: pc.clone(),
        stamp: 1,
        winner: None,
        action: LossPolicy::Kill,
    };
    net.inject(
        1,
        0,
        Frame::Names(NamesFrame::Lost {
            tables: vec![("t".into(), vec![lost])],
        }),
    );
    net.inject(
        1,
        0,
        Frame::Names(NamesFrame::Snapshot {
            seq: 50,
            tables: vec![("t".into(), vec![])],
            more: false,
        }),
    );
    assert_eq!(net.nodes[0].names().whereis("t", "x"), Some(pc));
    assert!(clashes(&net, 0).is_empty());
}
