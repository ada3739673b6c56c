//! White-box tests of the name service on sans-IO cores: the wait-die
//! lock order of racing locked registrations, claims staged under a lock
//! until their commit, eventual claims batched in order, and hostile frames.

mod common;

use bytes::Bytes;
use cohort_proto::names::{
    Claim, LockId, LossPolicy, NamesEffect, NamesError, NamesFrame, Outcome, OwnClaim,
    RegisterArgs, WireReason,
};
use cohort_proto::pid::Pid;
use cohort_proto::proto::Frame;
use cohort_proto::Effect;
use common::corenet::CoreNet;

fn args(name: &str, pid: &Pid) -> RegisterArgs {
    RegisterArgs {
        table: "global".into(),
        name: name.into(),
        pid: pid.clone(),
        meta: Bytes::new(),
        policy: None,
        replace: false,
    }
}

fn replies(net: &CoreNet, i: usize) -> Vec<(u64, Result<bool, NamesError>)> {
    net.seen[i]
        .iter()
        .filter_map(|e| match e {
            Effect::Names(NamesEffect::Reply { op, result }) => Some((*op, result.clone())),
            _ => None,
        })
        .collect()
}

fn mesh(n: usize) -> CoreNet {
    let names = ["a@h", "b@h", "c@h"];
    let mut net = CoreNet::new(&names[..n]);
    for i in 1..n {
        net.connect(i, 0);
    }
    net.settle();
    net
}

#[test]
fn racing_locked_registrations_follow_wait_die() {
    let mut net = mesh(3);
    let pids: Vec<Pid> = (0..3)
        .map(|i| {
            net.nodes[i].spawned(1);
            net.nodes[i].pid(1)
        })
        .collect();
    // All three start before any frame moves: equal stamps, so a's request
    // is the oldest; b and c are told to retry and then find it taken.
    for (i, p) in pids.iter().enumerate() {
        let out = net.nodes[i].names_register(net.now, 7, args("x", p));
        assert_eq!(out, Outcome::Pending);
    }
    net.settle();
    assert_eq!(replies(&net, 0), vec![(7, Ok(true))]);
    assert!(replies(&net, 1).is_empty() && replies(&net, 2).is_empty());
    for _ in 0..20 {
        net.advance(5);
    }
    assert_eq!(replies(&net, 1), vec![(7, Err(NamesError::Taken))]);
    assert_eq!(replies(&net, 2), vec![(7, Err(NamesError::Taken))]);
    for n in &net.nodes {
        assert_eq!(n.names().whereis("global", "x"), Some(pids[0].clone()));
        assert_eq!(n.names().claims("global").len(), 1);
    }
}

#[test]
fn hostile_name_frames_are_ignored() {
    let mut net = mesh(3);
    net.nodes[2].spawned(1);
    let cs_pid = net.nodes[2].pid(1);
    let claim = Claim {
        name: "x".into(),
        pid: cs_pid.clone(),
        meta: Bytes::new(),
        stamp: 1,
        policy: LossPolicy::Kill,
        supersedes: None,
    };
    // b speaks for c's pid (snapshots, retractions and locks; an `Add`
    // carries only the sender's own claims) and for an unknown table.
    let frames = vec![
        NamesFrame::Snapshot {
            seq: 1,
            tables: vec![("global".into(), vec![claim.clone()])],
        },
        NamesFrame::Add {
            table: "no-such-table".into(),
            claims: vec![OwnClaim::of(&claim)],
            seq: 2,
            ack: Some(1),
        },
        NamesFrame::LockSet {
            op: 1,
            attempt: 0,
            lock: LockId::new("r", "q"),
            holder: cs_pid.clone(),
        },
        NamesFrame::Prepared {
            op: 999,
            attempt: 3,
            answer: cohort_proto::names::PrepareAnswer::Granted,
        },
        NamesFrame::Release {
            table: "global".into(),
            name: "x".into(),
            stamp: 5,
        },
        NamesFrame::Ack { op: 12345 },
        // A lock request staging a claim that supersedes another.
        NamesFrame::Prepare {
            table: "global".into(),
            claim: OwnClaim {
                supersedes: Some((cs_pid.clone(), 1)),
                ..OwnClaim::of(&claim)
            },
            op: 2,
            attempt: 0,
            replace: false,
        },
        // A commit of a claim b never staged: a asks b for a snapshot.
        NamesFrame::Commit {
            table: "global".into(),
            name: "x".into(),
            stamp: 1,
            seq: 1,
        },
    ];
    for f in frames {
        net.inject(1, 0, Frame::Names(f));
    }
    assert!(net.nodes[0].names().claims("global").is_empty());
    assert_eq!(net.nodes[0].names().lock_holders("r"), None);
    assert!(net
        .sent
        .iter()
        .any(|(from, f)| *from == 0 && matches!(f, Frame::Names(NamesFrame::Resync))));
    assert!(!net.sent.iter().any(
        |(from, f)| *from == 0 && matches!(f, Frame::Names(NamesFrame::Prepared { op: 2, .. }))
    ));
    // A real claim of c cannot be retracted by b.
    net.nodes[2].names_register(net.now, 1, args("x", &cs_pid));
    net.settle();
    assert_eq!(
        net.nodes[0].names().whereis("global", "x"),
        Some(cs_pid.clone())
    );
    net.inject(
        1,
        0,
        Frame::Names(NamesFrame::Remove {
            table: "global".into(),
            name: "x".into(),
            pid: cs_pid.clone(),
            stamp: 1,
            reason: WireReason::Unregistered,
            seq: 1,
            ack: None,
        }),
    );
    assert_eq!(net.nodes[0].names().whereis("global", "x"), Some(cs_pid));
}

#[test]
fn a_held_name_lock_stalls_only_its_own_name() {
    let mut net = mesh(2);
    net.nodes[0].spawned(1);
    net.nodes[0].spawned(2);
    let (p1, p2) = (net.nodes[0].pid(1), net.nodes[0].pid(2));
    // b holds the lock of "x" on a, with an old request it never finishes.
    net.inject(
        1,
        0,
        Frame::Names(NamesFrame::Prepare {
            table: "global".into(),
            claim: OwnClaim {
                name: "x".into(),
                serial: 1,
                meta: Bytes::new(),
                stamp: 0,
                policy: LossPolicy::Kill,
                supersedes: None,
            },
            op: 1,
            attempt: 0,
            replace: false,
        }),
    );
    let now = net.now;
    assert_eq!(
        net.nodes[0].names_register(now, 10, args("x", &p1)),
        Outcome::Pending
    );
    assert_eq!(
        net.nodes[0].names_register(now, 11, args("y", &p2)),
        Outcome::Pending
    );
    net.settle();
    for _ in 0..10 {
        net.advance(50);
    }
    // "y" went through at once; "x" keeps retrying behind the older lock.
    assert_eq!(replies(&net, 0), vec![(11, Ok(true))]);
    assert_eq!(net.nodes[1].names().whereis("global", "y"), Some(p2));
    net.inject(
        1,
        0,
        Frame::Names(NamesFrame::Release {
            table: "global".into(),
            name: "x".into(),
            stamp: 0,
        }),
    );
    for _ in 0..10 {
        net.advance(50);
    }
    assert_eq!(replies(&net, 0), vec![(11, Ok(true)), (10, Ok(true))]);
    assert_eq!(net.nodes[1].names().whereis("global", "x"), Some(p1));
}

#[test]
fn a_locked_claim_is_staged_until_its_commit_arrives() {
    let mut net = mesh(2);
    net.nodes[0].spawned(1);
    net.nodes[1].spawned(1);
    let (pa, pb) = (net.nodes[0].pid(1), net.nodes[1].pid(1));
    net.nodes[1].with_names(net.now, |n, _| n.watch(0));
    assert_eq!(
        net.nodes[0].names_register(net.now, 1, args("x", &pa)),
        Outcome::Pending
    );
    // Deliver frames one by one until a answers: b never shows the staged
    // claim meanwhile.
    while replies(&net, 0).is_empty() {
        assert!(net.step(), "a answers before the frames run out");
        assert_eq!(net.nodes[1].names().whereis("global", "x"), None);
    }
    assert_eq!(replies(&net, 0), vec![(1, Ok(true))]);
    assert!(net.nodes[1].names().registered_names("global").is_empty());
    assert!(!net.seen[1]
        .iter()
        .any(|e| matches!(e, Effect::Names(NamesEffect::Event { .. }))));
    // a answered; its commit to b is still queued: b holds "x" locked for
    // a's claim, without showing it, so b's own claim cannot get it.
    assert_eq!(
        net.nodes[0].names().whereis("global", "x"),
        Some(pa.clone())
    );
    assert_eq!(net.nodes[1].names().whereis("global", "x"), None);
    assert_eq!(
        net.nodes[1].names_register(net.now, 2, args("x", &pb)),
        Outcome::Pending
    );
    net.settle();
    assert_eq!(
        net.nodes[1].names().whereis("global", "x"),
        Some(pa.clone())
    );
    for _ in 0..20 {
        net.advance(5);
    }
    assert_eq!(replies(&net, 1), vec![(2, Err(NamesError::Taken))]);
    for n in &net.nodes {
        assert_eq!(n.names().whereis("global", "x"), Some(pa.clone()));
        assert_eq!(n.names().claims("global").len(), 1);
    }
}

#[test]
fn eventual_claims_made_back_to_back_travel_in_one_frame_and_stay_ordered() {
    use cohort_proto::names::{Mode, NamesConfig, TableConfig};
    let cfg = NamesConfig::empty().table(TableConfig::new("e").mode(Mode::Eventual));
    let mut net = CoreNet::with_names(&["a@h", "b@h"], cfg);
    net.connect(1, 0);
    net.settle();
    let pids: Vec<Pid> = (1..=4)
        .map(|s| {
            net.nodes[0].spawned(s);
            net.nodes[0].pid(s)
        })
        .collect();
    let reg = |net: &mut CoreNet, name: &str, pid: &Pid| {
        let a = RegisterArgs {
            table: "e".into(),
            ..args(name, pid)
        };
        net.nodes[0].names_register(net.now, 1, a)
    };
    let adds = |net: &CoreNet| -> Vec<(u64, Vec<String>)> {
        net.sent
            .iter()
            .filter_map(|(from, f)| match f {
                Frame::Names(NamesFrame::Add { claims, seq, .. }) if *from == 0 => {
                    Some((*seq, claims.iter().map(|c| c.name.to_string()).collect()))
                }
                _ => None,
            })
            .collect()
    };
    // Three registrations before the driver flushes: one frame.
    for (k, name) in ["x", "y", "z"].iter().enumerate() {
        assert_eq!(reg(&mut net, name, &pids[k]), Outcome::Done(Ok(true)));
    }
    assert!(net.nodes[0].holds());
    net.settle();
    assert!(!net.nodes[0].holds());
    assert_eq!(
        adds(&net),
        vec![(1, vec!["x".to_string(), "y".to_string(), "z".to_string()])]
    );
    // A held claim goes out before a later retraction: no gap on b.
    assert_eq!(reg(&mut net, "w", &pids[3]), Outcome::Done(Ok(true)));
    let now = net.now;
    assert_eq!(
        net.nodes[0].names_unregister(now, 2, "e", "x"),
        Outcome::Done(Ok(true))
    );
    net.settle();
    assert_eq!(adds(&net).last(), Some(&(4, vec!["w".to_string()])));
    assert!(!net
        .sent
        .iter()
        .any(|(from, f)| *from == 1 && matches!(f, Frame::Names(NamesFrame::Resync))));
    assert_eq!(
        net.nodes[1].names().registered_names("e"),
        vec!["w".to_string(), "y".to_string(), "z".to_string()]
    );
}

/// An `unregister` called away from the holder's node is carried out when
/// its request reaches the holder, which may be after a partition healed
/// and after the caller's ack wait timed out. It then retracts the holder's
/// claim even if that claim would win a clash the holder has not heard of
/// yet, and the claim made on the other side stands alone everywhere: the
/// rank settles only the claims that exist (simulator seed 61052, whose
/// `names_unique` check had missed the late request).
#[test]
fn a_late_forwarded_unregister_retracts_the_holder_and_the_other_claim_stands() {
    use cohort_proto::names::{Mode, NamesConfig, TableConfig};
    let cfg = NamesConfig::empty().table(
        TableConfig::new("e")
            .mode(Mode::Eventual)
            .policy(LossPolicy::Notify),
    );
    // a and c are connected; b is on the other side of a partition.
    let mut net = CoreNet::with_names(&["a@h", "b@h", "c@h"], cfg);
    net.connect(2, 0);
    let (pa, pb) = {
        net.nodes[0].spawned(1);
        net.nodes[1].spawned(1);
        (net.nodes[0].pid(1), net.nodes[1].pid(1))
    };
    let reg = |net: &mut CoreNet, i: usize, pid: &Pid| {
        let a = RegisterArgs {
            table: "e".into(),
            ..args("gamma", pid)
        };
        let now = net.now;
        net.nodes[i].names_register(now, 1, a)
    };
    assert_eq!(reg(&mut net, 0, &pa), Outcome::Done(Ok(true)));
    net.settle();
    assert_eq!(net.nodes[2].names().whereis("e", "gamma"), Some(pa.clone()));
    // b claims the name too, later by its clock: a's claim ranks first.
    net.nodes[1].spawned(2);
    let pb2 = net.nodes[1].pid(2);
    let other = RegisterArgs {
        table: "e".into(),
        ..args("other", &pb2)
    };
    let now = net.now;
    assert_eq!(
        net.nodes[1].names_register(now, 2, other),
        Outcome::Done(Ok(true))
    );
    assert_eq!(reg(&mut net, 1, &pb), Outcome::Done(Ok(true)));
    net.settle();
    let claims = [
        net.nodes[0].names().claims("e"),
        net.nodes[1].names().claims("e"),
    ];
    let ours: Vec<&Claim> = claims
        .iter()
        .flatten()
        .filter(|c| c.name == "gamma")
        .collect();
    assert_eq!(
        cohort_proto::names::rank::winner(&ours, None).map(|w| ours[w].pid.clone()),
        Some(pa.clone())
    );
    // c asks a to unregister gamma; the request is held up on the way.
    let now = net.now;
    assert_eq!(
        net.nodes[2].names_unregister(now, 9, "e", "gamma"),
        Outcome::Pending
    );
    assert_eq!(net.drop_queued_from(2), 1);
    net.advance(3_100);
    assert_eq!(replies(&net, 2), vec![(9, Ok(true))]);
    assert_eq!(net.nodes[0].names().whereis("e", "gamma"), Some(pa.clone()));
    // The held request arrives, then the partition heals.
    let held = NamesFrame::Unregister {
        table: "e".into(),
        name: "gamma".into(),
        op: 9,
    };
    net.inject(2, 0, Frame::Names(held));
    assert_eq!(net.nodes[0].names().whereis("e", "gamma"), None);
    net.connect(1, 0);
    net.connect(1, 2);
    net.settle();
    for n in &net.nodes {
        assert_eq!(n.names().whereis("e", "gamma"), Some(pb.clone()));
        let held: Vec<Claim> = n
            .names()
            .claims("e")
            .into_iter()
            .filter(|c| c.name == "gamma")
            .collect();
        assert_eq!(held.len(), 1);
    }
    // Nobody lost a clash: b's process was not told of a conflict.
    assert!(!net.seen[1].iter().any(|e| matches!(
        e,
        Effect::Deliver {
            msg: cohort_proto::process::Message::NameConflict { .. },
            ..
        }
    )));
}
