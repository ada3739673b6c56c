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
            more: false,
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
                supersedes: Some(cohort_proto::names::Succession {
                    pid: cs_pid.clone(),
                    stamp: 1,
                    depth: 1,
                }),
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
/// and after the caller's wait timed out (it was told the outcome is
/// unknown, not `Ok`). It then retracts the holder's
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
    let unknown = NamesError::OutcomeUnknown {
        name: "gamma".into(),
    };
    assert_eq!(replies(&net, 2), vec![(9, Err(unknown))]);
    assert_eq!(net.nodes[0].names().whereis("e", "gamma"), Some(pa.clone()));
    // The held request arrives, then the partition heals.
    let stamp = ours.iter().find(|c| c.pid == pa).expect("a's claim").stamp;
    let held = NamesFrame::Unregister {
        table: "e".into(),
        name: "gamma".into(),
        pid: pa.clone(),
        stamp,
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

/// An eventual table whose losers are notified (the simulator's).
fn eventual_net() -> CoreNet {
    use cohort_proto::names::{Mode, NamesConfig, TableConfig};
    let cfg = NamesConfig::empty().table(
        TableConfig::new("e")
            .mode(Mode::Eventual)
            .policy(LossPolicy::Notify),
    );
    CoreNet::with_names(&["a@h", "b@h", "c@h"], cfg)
}

/// Node `i` registers its process `serial` as `name` in table `e`.
fn reg_e(net: &mut CoreNet, i: usize, name: &str, serial: u64, replace: bool) -> Outcome {
    net.nodes[i].spawned(serial);
    let pid = net.nodes[i].pid(serial);
    let a = RegisterArgs {
        table: "e".into(),
        replace,
        ..args(name, &pid)
    };
    let now = net.now;
    net.nodes[i].names_register(now, 1, a)
}

/// The claims on `name` that their own nodes hold now, and the one the
/// rank picks from them.
fn held_and_winner(net: &CoreNet, name: &str) -> (Vec<Claim>, Option<Pid>) {
    let held: Vec<Claim> = net
        .nodes
        .iter()
        .flat_map(|n| {
            n.names()
                .claims("e")
                .into_iter()
                .filter(|c| c.name == name && c.pid.node() == n.name())
        })
        .collect();
    let refs: Vec<&Claim> = held.iter().collect();
    let w = cohort_proto::names::rank::winner(&refs, None).map(|w| held[w].pid.clone());
    (held, w)
}

/// The `NameConflict` notices node `i` delivered: (serial, winner).
fn conflicts(net: &CoreNet, i: usize) -> Vec<(u64, Option<Pid>)> {
    net.seen[i]
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver {
                to,
                msg: cohort_proto::process::Message::NameConflict { winner, .. },
            } => Some((*to, winner.clone())),
            _ => None,
        })
        .collect()
}

/// An eventual `re_register` of a name held on another node takes the
/// place of the claim it replaces in the rank. b holds `x` (stamp 1); c,
/// cut off, claims it too (stamp 2); a re-registers it (stamp 5,
/// superseding b's). c meets b before b hears of a's claim and, seeing
/// b's claim and its own, rightly yields to b. Had a's claim ranked by
/// its own stamp, the claims held at once (a's, b's replaced one, c's)
/// would have made c the winner, while the nodes ended with a's: the
/// outcome depended on who heard what first (simulator seed 8301066).
#[test]
fn a_re_register_of_a_remote_holder_ranks_as_the_claim_it_replaced() {
    let mut net = eventual_net();
    net.connect(0, 1);
    assert_eq!(reg_e(&mut net, 1, "x", 1, false), Outcome::Done(Ok(true)));
    net.settle();
    // c, alone: its clock reaches 2 for its claim on x.
    assert_eq!(reg_e(&mut net, 2, "y", 2, false), Outcome::Done(Ok(true)));
    assert_eq!(reg_e(&mut net, 2, "x", 1, false), Outcome::Done(Ok(true)));
    // a's clock moves on before it re-registers x.
    for (serial, name) in [(2, "z1"), (3, "z2"), (4, "z3")] {
        assert_eq!(
            reg_e(&mut net, 0, name, serial, false),
            Outcome::Done(Ok(true))
        );
    }
    net.settle();
    let (pa, pb, pc) = (
        net.nodes[0].pid(1),
        net.nodes[1].pid(1),
        net.nodes[2].pid(1),
    );
    // a's claim is slow to reach b.
    net.hold(0, 1);
    assert_eq!(reg_e(&mut net, 0, "x", 1, true), Outcome::Done(Ok(true)));
    let (held, expected) = held_and_winner(&net, "x");
    assert_eq!(held.len(), 3, "a's, b's and c's claims are held at once");
    net.connect(2, 1);
    assert_eq!(conflicts(&net, 2), vec![(1, Some(pb.clone()))]);
    net.release(0, 1);
    net.connect(0, 2);
    net.settle();
    for n in &net.nodes {
        assert_eq!(
            n.names().whereis("e", "x"),
            Some(pa.clone()),
            "on {}",
            n.name()
        );
        let on_x = n.names().claims("e").into_iter().filter(|c| c.name == "x");
        assert_eq!(on_x.count(), 1);
    }
    assert_eq!(expected, Some(pa), "the rank agrees with the outcome");
    // Only c's process lost a clash, once; a's was never told it lost.
    assert!(conflicts(&net, 0).is_empty() && conflicts(&net, 1).is_empty());
    assert_eq!(conflicts(&net, 2).len(), 1);
    assert_ne!(expected, Some(pc));
}

/// The same for a `re_register` of a name held on the node itself: the
/// old claim is retracted at once, and the new one still takes its place
/// in the rank. a holds `x` (stamp 1), c claims it while cut off (stamp
/// 2) and meets a just as a re-registers it (stamp 4): c yields to a's
/// old claim, and a's new one must not yield to c's, or nobody keeps
/// the name.
#[test]
fn a_re_register_of_a_local_holder_ranks_as_the_claim_it_replaced() {
    let mut net = eventual_net();
    assert_eq!(reg_e(&mut net, 0, "x", 1, false), Outcome::Done(Ok(true)));
    assert_eq!(reg_e(&mut net, 2, "y", 2, false), Outcome::Done(Ok(true)));
    assert_eq!(reg_e(&mut net, 2, "x", 1, false), Outcome::Done(Ok(true)));
    for (serial, name) in [(2, "z1"), (3, "z2")] {
        assert_eq!(
            reg_e(&mut net, 0, name, serial, false),
            Outcome::Done(Ok(true))
        );
    }
    // c dials a; a re-registers x as soon as its session with c is up
    // (its snapshot with the old claim is on the way to c).
    let addr = net.nodes[0].name().to_string();
    let now = net.now;
    net.nodes[2].connect(addr, None, now);
    let c = net.nodes[2].name().clone();
    while !net.nodes[0].nodes().contains(&c) {
        assert!(net.step(), "the session comes up");
    }
    assert_eq!(reg_e(&mut net, 0, "x", 4, true), Outcome::Done(Ok(true)));
    let (held, expected) = held_and_winner(&net, "x");
    assert_eq!(held.len(), 2, "a's new claim and c's are held at once");
    net.settle();
    let pa = net.nodes[0].pid(4);
    for i in [0, 2] {
        assert_eq!(net.nodes[i].names().whereis("e", "x"), Some(pa.clone()));
    }
    assert_eq!(expected, Some(pa));
    assert!(conflicts(&net, 0).is_empty());
    assert_eq!(conflicts(&net, 2).len(), 1);
}

/// A locked table `global` and an eventual one `e`, on a, b and c.
fn both_modes_net() -> CoreNet {
    use cohort_proto::names::{Mode, NamesConfig, TableConfig};
    let cfg = NamesConfig::empty()
        .table(TableConfig::new("global"))
        .table(TableConfig::new("e").mode(Mode::Eventual));
    CoreNet::with_names(&["a@h", "b@h", "c@h"], cfg)
}

/// Node `i` registers its process `serial` as `name` in `table` and the
/// cores settle; returns the answer.
fn reg_in(net: &mut CoreNet, i: usize, table: &str, name: &str, serial: u64, op: u64) {
    net.nodes[i].spawned(serial);
    let pid = net.nodes[i].pid(serial);
    let a = RegisterArgs {
        table: table.into(),
        ..args(name, &pid)
    };
    let now = net.now;
    let out = net.nodes[i].names_register(now, op, a);
    net.settle();
    if out == Outcome::Pending {
        assert!(replies(net, i).contains(&(op, Ok(true))), "{table}/{name}");
    } else {
        assert_eq!(out, Outcome::Done(Ok(true)), "{table}/{name}");
    }
}

/// A forwarded `unregister` names the claim its caller saw: arriving late,
/// after the holder unregistered the name and registered it again (same
/// process, newer claim), it leaves the newer claim alone, and the caller
/// is told the claim is gone, in both modes.
#[test]
fn a_late_forwarded_unregister_spares_a_newer_claim() {
    for (table, k) in [("global", 10), ("e", 20)] {
        let mut net = both_modes_net();
        net.connect(2, 0);
        reg_in(&mut net, 0, table, "x", 1, k);
        let pa = net.nodes[0].pid(1);
        assert_eq!(net.nodes[2].names().whereis(table, "x"), Some(pa.clone()));
        // c's request is held up on its way to a.
        let now = net.now;
        assert_eq!(
            net.nodes[2].names_unregister(now, k + 1, table, "x"),
            Outcome::Pending
        );
        assert_eq!(net.drop_queued_from(2), 1);
        let late = net
            .sent
            .iter()
            .rev()
            .find_map(|(from, f)| match f {
                Frame::Names(u @ NamesFrame::Unregister { .. }) if *from == 2 => Some(u.clone()),
                _ => None,
            })
            .expect("c sent its request");
        // Meanwhile a unregisters x and registers it again.
        let now = net.now;
        let out = net.nodes[0].names_unregister(now, k + 2, table, "x");
        net.settle();
        assert!(
            out == Outcome::Done(Ok(true)) || replies(&net, 0).contains(&(k + 2, Ok(true))),
            "{table}: {out:?}"
        );
        reg_in(&mut net, 0, table, "x", 1, k + 3);
        let newer = net.nodes[0].names().claims(table);
        net.inject(2, 0, Frame::Names(late));
        assert_eq!(
            replies(&net, 2),
            vec![(k + 1, Err(NamesError::NotRegistered))],
            "{table}"
        );
        for n in &net.nodes[..1] {
            assert_eq!(n.names().whereis(table, "x"), Some(pa.clone()), "{table}");
            assert_eq!(n.names().claims(table), newer, "{table}");
        }
        assert_eq!(
            net.nodes[2].names().whereis(table, "x"),
            Some(pa),
            "{table}"
        );
    }
}

/// A locked `unregister` takes the name's lock on every member and
/// releases it behind the retraction, so it serialises with a locked
/// registration of the name: c is slow to get a's retraction; b, which
/// has it, registers the name, and its request waits on c for the
/// unregister's lock instead of finding a's stale claim there (`Taken`).
#[test]
fn a_locked_unregister_holds_the_name_lock_until_members_dropped_the_claim() {
    let mut net = both_modes_net();
    net.connect(1, 0);
    net.connect(2, 0);
    net.connect(1, 2);
    reg_in(&mut net, 0, "global", "x", 1, 1);
    let now = net.now;
    assert_eq!(
        net.nodes[0].names_unregister(now, 2, "global", "x"),
        Outcome::Pending
    );
    // Until a retracts its claim (after every member's grant, with the
    // lock), then c is slow to hear from a.
    while net.nodes[0].names().whereis("global", "x").is_some() {
        assert!(net.step(), "a retracts its claim");
    }
    net.hold(0, 2);
    net.settle();
    assert_eq!(net.nodes[1].names().whereis("global", "x"), None);
    assert_eq!(net.nodes[2].names().claims("global").len(), 1);
    // b registers x: its request meets the unregister's lock on c.
    net.nodes[1].spawned(1);
    let pb = net.nodes[1].pid(1);
    let a = RegisterArgs {
        table: "global".into(),
        ..args("x", &pb)
    };
    let now = net.now;
    assert_eq!(net.nodes[1].names_register(now, 3, a), Outcome::Pending);
    for _ in 0..5 {
        net.advance(5);
    }
    assert!(replies(&net, 1).is_empty(), "b waits for the lock");
    net.release(0, 2);
    for _ in 0..20 {
        net.advance(5);
    }
    assert_eq!(replies(&net, 1), vec![(3, Ok(true))]);
    assert_eq!(replies(&net, 0), vec![(1, Ok(true)), (2, Ok(true))]);
    for n in &net.nodes {
        assert_eq!(n.names().whereis("global", "x"), Some(pb.clone()));
    }
}
