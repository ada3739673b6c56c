//! White-box process-group tests on sans-IO cores: pg_SUITE's
//! `forced_sync` (a corrupted view is repaired by re-sync), catch-up by
//! deltas when a peer already holds an earlier part of the stream, repair
//! of a lost tail by head advertisements, hostile replication frames, and
//! held joins going out on the core timer, before any later message or
//! any frame of another layer (a held join before a name request, a held
//! name before a process-group frame).

mod common;

use bytes::Bytes;
use cohort_proto::names::{Mode, NamesConfig, NamesFrame, Outcome, RegisterArgs, TableConfig};
use cohort_proto::pg::{Op, PgFrame, SyncGroup};
use cohort_proto::pid::Pid;
use cohort_proto::proto::Frame;
use cohort_proto::FLUSH_REST;
use common::corenet::CoreNet;

fn sorted(mut v: Vec<Pid>) -> Vec<Pid> {
    v.sort();
    v
}

fn members(net: &CoreNet, node: usize, group: &str) -> Vec<Pid> {
    sorted(
        net.nodes[node]
            .pg()
            .view("pg")
            .unwrap()
            .members(group)
            .to_vec(),
    )
}

fn two_nodes() -> CoreNet {
    let mut net = CoreNet::new(&["a@h", "b@h"]);
    for i in 0..2 {
        let now = net.now;
        net.nodes[i].pg_start_scope("pg", now);
    }
    net.connect(0, 1);
    net
}

fn spawn(net: &mut CoreNet, node: usize, serial: u64) -> Pid {
    net.nodes[node].spawned(serial);
    net.nodes[node].pid(serial)
}

#[test]
fn forced_sync_repairs_a_corrupted_view() {
    let mut net = two_nodes();
    let (pa, pb) = (spawn(&mut net, 0, 1), spawn(&mut net, 1, 1));
    let now = net.now;
    net.nodes[0]
        .pg_join("pg", "one", std::slice::from_ref(&pa), None, now)
        .unwrap();
    net.nodes[1]
        .pg_join("pg", "one", std::slice::from_ref(&pb), None, now)
        .unwrap();
    net.settle();
    let expected = sorted(vec![pa.clone(), pb.clone()]);
    assert_eq!(members(&net, 0, "one"), expected);
    // A broken snapshot from b (as OTP's test casts by hand): `one` holds b's
    // pid twice and a group `forced` appears.
    let (stream, seq) = net.nodes[1].pg().head("pg").unwrap();
    let fake = PgFrame::Sync {
        scope: "pg".into(),
        stream,
        seq,
        groups: vec![
            SyncGroup {
                group: "one".into(),
                members: vec![(pb.serial(), 2, None)],
            },
            SyncGroup {
                group: "forced".into(),
                members: vec![(pb.serial(), 2, None)],
            },
        ],
        more: false,
    };
    net.inject(1, 0, Frame::Pg(fake));
    assert_eq!(members(&net, 0, "forced"), vec![pb.clone(), pb.clone()]);
    assert_eq!(
        members(&net, 0, "one"),
        sorted(vec![pa.clone(), pb.clone(), pb.clone()])
    );
    // Forced re-sync: a asks b for a full snapshot.
    net.inject(
        0,
        1,
        Frame::Pg(PgFrame::Discover {
            scope: "pg".into(),
            have: None,
        }),
    );
    assert_eq!(members(&net, 0, "one"), expected);
    assert!(members(&net, 0, "forced").is_empty());
    // An extra sync changes nothing.
    net.inject(
        0,
        1,
        Frame::Pg(PgFrame::Discover {
            scope: "pg".into(),
            have: None,
        }),
    );
    assert_eq!(members(&net, 0, "one"), expected);
}

#[test]
fn a_peer_behind_in_the_same_stream_gets_only_the_missing_deltas() {
    let mut net = two_nodes();
    let pb = spawn(&mut net, 1, 1);
    let now = net.now;
    net.nodes[1]
        .pg_join("pg", "g1", std::slice::from_ref(&pb), None, now)
        .unwrap();
    net.settle();
    let cursor = net.nodes[0].pg().cursor("pg", net.nodes[1].name()).unwrap();
    // b's next two changes (sent as two deltas: each flushed before the
    // next join) are lost on the way to a.
    net.nodes[1]
        .pg_join("pg", "g2", std::slice::from_ref(&pb), None, now)
        .unwrap();
    net.nodes[1].flush(now);
    net.nodes[1]
        .pg_join("pg", "g3", std::slice::from_ref(&pb), None, now)
        .unwrap();
    net.nodes[1].flush(now);
    assert_eq!(net.drop_queued_from(1), 2);
    assert_eq!(members(&net, 0, "g2"), Vec::<Pid>::new());
    // a asks from its cursor: b answers with the two deltas, not a snapshot.
    net.sent.clear();
    net.inject(
        0,
        1,
        Frame::Pg(PgFrame::Discover {
            scope: "pg".into(),
            have: Some(cursor),
        }),
    );
    assert_eq!(members(&net, 0, "g2"), vec![pb.clone()]);
    assert_eq!(members(&net, 0, "g3"), vec![pb.clone()]);
    let answers: Vec<Vec<u64>> = net
        .sent
        .iter()
        .map(|(_, f)| match f {
            Frame::Pg(PgFrame::Catchup { deltas, .. }) => deltas.iter().map(|(s, _)| *s).collect(),
            other => panic!("expected only a catch-up of deltas, got {other:?}"),
        })
        .collect();
    let (_, head) = net.nodes[1].pg().head("pg").unwrap();
    assert_eq!(
        answers,
        vec![vec![head - 1, head]],
        "exactly the two missing deltas, no snapshot"
    );
    assert_eq!(
        net.nodes[0].pg().cursor("pg", net.nodes[1].name()),
        net.nodes[1].pg().head("pg")
    );
}

#[test]
fn a_lost_tail_is_repaired_by_head_advertisements() {
    let mut net = two_nodes();
    let pb = spawn(&mut net, 1, 1);
    let now = net.now;
    net.nodes[1]
        .pg_join("pg", "tail", std::slice::from_ref(&pb), None, now)
        .unwrap();
    assert_eq!(net.drop_queued_from(1), 1);
    assert!(members(&net, 0, "tail").is_empty());
    // No later write comes; b's periodic head tells a it is behind.
    net.advance(1500);
    assert_eq!(members(&net, 0, "tail"), vec![pb]);
}

#[test]
fn hostile_replication_frames_change_nothing() {
    let mut net = two_nodes();
    let pb = spawn(&mut net, 1, 1);
    let now = net.now;
    net.nodes[1]
        .pg_join("pg", "g", std::slice::from_ref(&pb), None, now)
        .unwrap();
    net.settle();
    let before = members(&net, 0, "g");
    let (stream, seq) = net.nodes[1].pg().head("pg").unwrap();
    // A delta far ahead, a stale delta, a leave of something never joined,
    // frames for a scope a does not run.
    let frames = vec![
        PgFrame::Delta {
            scope: "pg".into(),
            stream,
            seq: seq + 10,
            ops: vec![].into(),
        },
        PgFrame::Delta {
            scope: "pg".into(),
            stream,
            seq,
            ops: vec![Op::Join {
                group: "g".into(),
                serials: vec![99].into(),
                meta: None,
            }]
            .into(),
        },
        PgFrame::Delta {
            scope: "nope".into(),
            stream,
            seq: seq + 1,
            ops: vec![].into(),
        },
        PgFrame::Sync {
            scope: "nope".into(),
            stream,
            seq,
            groups: vec![],
            more: false,
        },
        PgFrame::Stopped {
            scope: "nope".into(),
        },
    ];
    for f in frames {
        net.inject(1, 0, Frame::Pg(f));
    }
    assert_eq!(members(&net, 0, "g"), before);
    let leave = PgFrame::Delta {
        scope: "pg".into(),
        stream,
        seq: seq + 1,
        ops: vec![Op::Leave {
            group: "never".into(),
            serials: vec![(77, 3)].into(),
        }]
        .into(),
    };
    net.inject(1, 0, Frame::Pg(leave));
    assert_eq!(members(&net, 0, "g"), before);
    assert!(members(&net, 0, "never").is_empty());
}

/// A node starting a scope hears from every connected peer before it
/// counts as synced: a peer that runs the scope sends its entries, and one
/// that does not says so (else the starter would wait for ever).
#[test]
fn a_new_scope_is_synced_once_every_peer_answered() {
    let mut net = CoreNet::new(&["a@h", "b@h", "c@h"]);
    net.connect(0, 1);
    net.connect(0, 2);
    net.connect(1, 2);
    net.settle();
    let pb = spawn(&mut net, 1, 1);
    let now = net.now;
    net.nodes[1].pg_start_scope("app", now);
    net.nodes[1]
        .pg_join("app", "g", std::slice::from_ref(&pb), None, now)
        .unwrap();
    net.settle();
    // c starts `app`: b runs it, a does not.
    let now = net.now;
    let view = net.nodes[2].pg_start_scope("app", now);
    assert_eq!(net.nodes[2].pg().synced("app"), Some(false));
    assert!(view.members("g").is_empty());
    net.settle();
    assert_eq!(net.nodes[2].pg().synced("app"), Some(true));
    assert_eq!(view.members("g").to_vec(), vec![pb.clone()]);
    assert_eq!(net.nodes[0].pg().synced("app"), None, "a never started it");
    // a starts it later: c and b answer with their entries.
    let now = net.now;
    let va = net.nodes[0].pg_start_scope("app", now);
    net.settle();
    assert_eq!(net.nodes[0].pg().synced("app"), Some(true));
    assert_eq!(va.members("g").to_vec(), vec![pb]);
}

/// Random selection draws from the caller's generator: the same seed picks
/// the same members, so a simulation replays.
#[test]
fn random_selection_replays_from_a_seed() {
    use cohort_proto::pg::Select;
    use rand::SeedableRng;
    let mut net = two_nodes();
    let pids: Vec<Pid> = (1..=50).map(|s| spawn(&mut net, 0, s)).collect();
    let now = net.now;
    net.nodes[0].pg_join("pg", "g", &pids, None, now).unwrap();
    net.settle();
    let view = net.nodes[1].pg().view("pg").unwrap();
    let picks = |seed: u64| -> Vec<Option<Pid>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..20)
            .map(|_| view.members("g").select(Select::Random, None, &mut rng))
            .collect()
    };
    assert_eq!(picks(7), picks(7));
    assert_ne!(picks(7), picks(8), "the choice depends on the generator");
}

#[test]
fn held_joins_leave_on_the_core_timer_and_before_a_later_message() {
    let mut net = two_nodes();
    let (pa, pb) = (spawn(&mut net, 0, 1), spawn(&mut net, 1, 1));
    net.settle();
    let delta_from_a = |f: &(usize, Frame)| matches!(f, (0, Frame::Pg(PgFrame::Delta { .. })));
    let now = net.now;
    // A join is held; the core's timer says when it goes out.
    net.nodes[0]
        .pg_join("pg", "timed", std::slice::from_ref(&pa), None, now)
        .unwrap();
    assert!(net.nodes[0].holds());
    let due = net.nodes[0].next_timeout();
    assert!(due <= now + FLUSH_REST, "due at {due:?}");
    net.sent.clear();
    net.nodes[0].timeout(due);
    assert!(!net.nodes[0].holds());
    net.settle();
    assert_eq!(net.sent.iter().filter(|f| delta_from_a(f)).count(), 1);
    assert_eq!(members(&net, 1, "timed"), vec![pa.clone()]);
    // A message sent after a join goes out after it.
    net.sent.clear();
    net.nodes[0]
        .pg_join("pg", "ordered", std::slice::from_ref(&pa), None, now)
        .unwrap();
    net.nodes[0].send(&pb, Some(pa.clone()), "after".into());
    net.settle();
    let position = |want: &dyn Fn(&(usize, Frame)) -> bool| net.sent.iter().position(want);
    let delta = position(&delta_from_a).expect("the join went out");
    let message = position(&|f| matches!(f, (0, Frame::Send { .. }))).expect("sent");
    assert!(delta < message, "the message overtook the join");
}

fn register_args(table: &str, name: &str, pid: &Pid) -> RegisterArgs {
    RegisterArgs {
        table: table.into(),
        name: name.into(),
        pid: pid.clone(),
        meta: Bytes::new(),
        policy: None,
        replace: false,
    }
}

/// The first frame `from` sent that matches `want`, as its place in the
/// order of everything sent.
fn first_sent(net: &CoreNet, from: usize, want: impl Fn(&Frame) -> bool) -> Option<usize> {
    net.sent.iter().position(|(i, f)| *i == from && want(f))
}

#[test]
fn a_held_join_goes_out_before_a_name_request_made_after_it() {
    let mut net = two_nodes();
    let pa = spawn(&mut net, 0, 1);
    net.settle();
    net.sent.clear();
    let now = net.now;
    net.nodes[0]
        .pg_join("pg", "g", std::slice::from_ref(&pa), None, now)
        .unwrap();
    assert!(net.nodes[0].holds(), "the join is held for batching");
    // A locked registration asks b for the name lock at once.
    let out = net.nodes[0].names_register(now, 1, register_args("global", "x", &pa));
    assert_eq!(out, Outcome::Pending);
    net.settle();
    let join = first_sent(&net, 0, |f| matches!(f, Frame::Pg(PgFrame::Delta { .. })))
        .expect("the join went out");
    let request = first_sent(&net, 0, |f| matches!(f, Frame::Names(_))).expect("asked b");
    assert!(join < request, "the name request overtook the held join");
}

#[test]
fn a_held_name_goes_out_before_a_process_group_frame_made_after_it() {
    let tables = NamesConfig::empty().table(TableConfig::new("ev").mode(Mode::Eventual));
    let mut net = CoreNet::with_names(&["a@h", "b@h"], tables);
    let now = net.now;
    net.nodes[1].pg_start_scope("pg", now);
    net.connect(0, 1);
    let pa = spawn(&mut net, 0, 1);
    net.settle();
    net.sent.clear();
    let out = net.nodes[0].names_register(now, 1, register_args("ev", "x", &pa));
    assert_eq!(out, Outcome::Done(Ok(true)));
    assert!(
        net.nodes[0].holds(),
        "the eventual claim is held for batching"
    );
    // Starting a scope asks b for its members at once.
    net.nodes[0].pg_start_scope("pg", now);
    net.settle();
    let claim = first_sent(&net, 0, |f| {
        matches!(f, Frame::Names(NamesFrame::Add { .. }))
    })
    .expect("the claim went out");
    let discover = first_sent(&net, 0, |f| matches!(f, Frame::Pg(_))).expect("asked b");
    assert!(
        claim < discover,
        "the scope's frame overtook the held claim"
    );
}
