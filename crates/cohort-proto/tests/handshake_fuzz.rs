//! Fuzzing every decoder a peer reaches, before and after authentication.
//!
//! - Property test: any sequence of frames from an unauthenticated peer
//!   never panics the core, never brings a session up without the cookie,
//!   and leaves the node able to accept a real peer afterwards.
//! - Mutation fuzzing: a corpus of real frames of every kind (captured from
//!   a three-node exchange: handshakes, ticks, peers, messages, monitors,
//!   exits, process groups, locked and eventual names, global groups,
//!   snapshots after a reconnect, probes, refusals) is mutated (bytes
//!   flipped, cut, inserted, duplicated, spliced) and fed to
//!   `Frame::decode`; whatever decodes must encode back to itself and is
//!   given to a core on an unauthenticated connection and to a core on an
//!   up session. Nothing may panic; no session comes up without the
//!   cookie; the attacked node still serves a real peer.
//!
//! `mutated_frames_short` runs in the default test run; the long run is
//! ignored and sized by `COHORT_FUZZ_CASES`:
//! `COHORT_FUZZ_CASES=3000000 cargo test --release -p cohort-proto --test handshake_fuzz -- --ignored --nocapture`.

mod common;

use bytes::Bytes;
use cohort_proto::auth::Cookie;
use cohort_proto::cluster::ClusterConfig;
use cohort_proto::pid::{NodeName, Pid};
use cohort_proto::proto::{Frame, Hello, PeerInfo, RefuseReason, PROTOCOL_VERSION};
use cohort_proto::time::Time;
use cohort_proto::{CoreConfig, Effect, NodeCore};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cohort_proto::names::{Mode, NamesConfig, RegisterArgs, TableConfig};
use cohort_proto::pid::ExitReason;
use common::corenet::CoreNet;

fn core(name: &str) -> NodeCore {
    NodeCore::new(
        CoreConfig {
            name: NodeName::new(name).unwrap(),
            creation: 7,
            listen: Some(name.into()),
            cookie: Cookie::new("secret"),
            cluster: ClusterConfig::default(),
            names: Default::default(),
        },
        StdRng::seed_from_u64(1),
        Time::ZERO,
    )
}

fn frame() -> impl Strategy<Value = Frame> {
    let name = prop_oneof![
        Just("x@h".to_string()),
        Just("me@h".to_string()),
        Just("y@h".to_string())
    ];
    let hello =
        (any::<u16>(), name, any::<u32>(), any::<[u8; 32]>()).prop_map(|(v, n, c, nonce)| Hello {
            version: if v % 2 == 0 { PROTOCOL_VERSION } else { v },
            name: NodeName::new(&n).unwrap(),
            creation: c,
            listen: None,
            nonce,
        });
    prop_oneof![
        hello.clone().prop_map(Frame::Hello),
        hello.prop_map(Frame::Challenge),
        any::<[u8; 32]>().prop_map(|proof| Frame::Response { proof }),
        any::<[u8; 32]>().prop_map(|proof| Frame::Ack { proof }),
        Just(Frame::Tick),
        Just(Frame::Bye),
        Just(Frame::Refuse {
            reason: RefuseReason::Protocol
        }),
        Just(Frame::Peers(vec![PeerInfo {
            name: NodeName::new("z@h").unwrap(),
            addr: "z".into()
        }])),
        any::<u64>().prop_map(|s| Frame::Send {
            to: Pid::new(NodeName::new("me@h").unwrap(), 7, s),
            from: None,
            payload: Bytes::from_static(b"x"),
        }),
    ]
}

proptest! {
    #[test]
    fn unauthenticated_frames_never_bring_a_session_up(frames in proptest::collection::vec(frame(), 1..12)) {
        let mut me = core("me@h");
        me.spawned(1);
        let conn = me.accepted("attacker:1".into(), Time::ZERO);
        for (i, f) in frames.into_iter().enumerate() {
            me.frame(conn, f, Time(i as u64 * 1000));
            while let Some(e) = me.poll_effect() {
                prop_assert!(!matches!(e, Effect::NodeUp { .. }), "a session came up without the cookie");
                prop_assert!(!matches!(e, Effect::Deliver { .. }), "a message was delivered before authentication");
            }
        }
        prop_assert!(me.nodes().is_empty());
        // Still serves: a real peer completes its handshake afterwards.
        let mut peer = core("peer@h");
        let pc = {
            peer.connect("me@h".into(), None, Time::ZERO);
            match peer.poll_effect() {
                Some(Effect::Dial { conn, .. }) => conn,
                other => panic!("expected a dial, got {other:?}"),
            }
        };
        let mc = me.accepted("peer:1".into(), Time::ZERO);
        peer.dialed(pc, Time::ZERO);
        for _ in 0..10 {
            let to_me: Vec<Frame> = std::iter::from_fn(|| peer.poll_effect())
                .filter_map(|e| match e { Effect::Send { conn, frame } if conn == pc => Some(frame), _ => None })
                .collect();
            for f in to_me { me.frame(mc, f, Time::ZERO); }
            let to_peer: Vec<Frame> = std::iter::from_fn(|| me.poll_effect())
                .filter_map(|e| match e { Effect::Send { conn, frame } if conn == mc => Some(frame), _ => None })
                .collect();
            for f in to_peer { peer.frame(pc, f, Time::ZERO); }
        }
        prop_assert_eq!(me.nodes(), vec![NodeName::new("peer@h").unwrap()]);
    }
}

fn tables() -> NamesConfig {
    NamesConfig::default().table(TableConfig::new("ev").mode(Mode::Eventual))
}

fn args(table: &str, name: &str, pid: &Pid) -> RegisterArgs {
    RegisterArgs {
        table: table.into(),
        name: name.into(),
        pid: pid.clone(),
        meta: Bytes::from_static(b"meta"),
        policy: None,
        replace: false,
    }
}

/// Real frames of every kind, encoded: what three cores send each other
/// while they connect, replicate groups and names, message, monitor and
/// kill processes, reconnect (snapshots) and answer global-group checks.
fn corpus() -> Vec<Vec<u8>> {
    let mut net = CoreNet::with_names(&["a@h", "b@h", "c@h"], tables());
    for i in 0..3 {
        let now = net.now;
        net.nodes[i].pg_start_scope("pg", now);
        net.nodes[i].pg_start_scope("other", now);
    }
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    let mut pids = Vec::new();
    for i in 0..3 {
        for s in 1..4u64 {
            net.nodes[i].spawned(s);
            pids.push(net.nodes[i].pid(s));
        }
    }
    let now = net.now;
    for (k, p) in pids.iter().enumerate() {
        let i = k / 3;
        let meta = (k % 2 == 0).then(|| Bytes::from(vec![k as u8; 3]));
        net.nodes[i]
            .pg_join(
                "pg",
                &format!("g{}", k % 2),
                std::slice::from_ref(p),
                meta,
                now,
            )
            .unwrap();
        let _ = net.nodes[i].names_register(now, k as u64 + 1, args("global", &format!("n{k}"), p));
        let _ = net.nodes[i].names_register(now, k as u64 + 100, args("ev", &format!("e{k}"), p));
    }
    net.settle();
    // Messages, monitors, exits across nodes.
    net.nodes[0].send(&pids[4], Some(pids[0].clone()), Bytes::from_static(b"hi"));
    let mref = net.nodes[0].new_ref();
    net.nodes[0].monitor(mref, 1, &pids[5]);
    net.settle();
    let now = net.now;
    net.nodes[1].exited(3, ExitReason::Other("bye".into()), now);
    net.nodes[0].kill(&pids[7], ExitReason::Killed("k".into()), now);
    net.settle();
    let now = net.now;
    let _ = net.nodes[0].pg_leave("pg", "g0", std::slice::from_ref(&pids[0]), now);
    let _ = net.nodes[0].pg_update_meta("pg", "g1", &pids[1], Some(Bytes::from_static(b"m2")), now);
    let _ = net.nodes[0].names_unregister(now, 500, "global", "n0");
    net.nodes[0].groups_sync(1, now);
    net.nodes[0].groups_ask(
        &cohort_proto::pid::NodeName::new("b@h").unwrap(),
        cohort_proto::global_group::Query::RegisteredNames,
        2,
        now,
    );
    net.settle();
    // Ticks, then a reconnect: catch-ups and snapshots.
    net.advance(1500);
    let b = NodeName::new("b@h").unwrap();
    let now = net.now;
    net.nodes[0].disconnect(&b, now);
    net.settle();
    net.connect(0, 1);
    net.settle();
    let now = net.now;
    net.nodes[2].pg_stop_scope("other", now);
    net.settle();
    let mut frames: Vec<Frame> = net.sent.iter().map(|(_, f)| f.clone()).collect();
    frames.extend([Frame::Ping(7), Frame::Pong(7)]);
    for reason in [
        RefuseReason::Version(1),
        RefuseReason::BadCookie,
        RefuseReason::SameName,
        RefuseReason::Simultaneous,
        RefuseReason::AlreadyConnected,
        RefuseReason::Blocked,
        RefuseReason::ShuttingDown,
        RefuseReason::Protocol,
        RefuseReason::Alive,
        RefuseReason::Busy,
    ] {
        frames.push(Frame::Refuse { reason });
    }
    let mut out: Vec<Vec<u8>> = frames.iter().map(|f| f.encode().to_vec()).collect();
    out.sort();
    out.dedup();
    out
}

/// One mutation of a corpus entry (sometimes several stacked).
fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = corpus[rng.random_range(0..corpus.len())].clone();
    let rounds = rng.random_range(1..4);
    for _ in 0..rounds {
        let len = b.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] = [0u8, 1, 0x7f, 0x80, 0xff][rng.random_range(0..5)];
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] = rng.random();
            }
            3 => b.truncate(rng.random_range(0..=len)),
            4 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..6);
                for _ in 0..n {
                    b.insert(i, rng.random());
                }
            }
            5 if len > 1 => {
                let i = rng.random_range(0..len);
                let j = rng.random_range(i..len);
                let piece = b[i..=j].to_vec();
                let at = rng.random_range(0..=b.len());
                b.splice(at..at, piece);
            }
            6 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            _ => {
                let n = rng.random_range(0..48);
                b = (0..n).map(|_| rng.random()).collect();
            }
        }
    }
    b
}

/// Two connected cores; node 1 plays the (authenticated) attacker.
fn up_pair() -> CoreNet {
    let mut net = CoreNet::with_names(&["a@h", "b@h"], tables());
    for i in 0..2 {
        let now = net.now;
        net.nodes[i].pg_start_scope("pg", now);
        net.nodes[i].spawned(1);
    }
    net.connect(0, 1);
    let (pa, now) = (net.nodes[0].pid(1), net.now);
    net.nodes[0]
        .pg_join("pg", "g", std::slice::from_ref(&pa), None, now)
        .unwrap();
    let _ = net.nodes[0].names_register(now, 1, args("global", "held", &pa));
    net.settle();
    net
}

/// Counts of what happened to the mutated inputs.
#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    decoded: u64,
    sessions_lost: u64,
}

fn fuzz(cases: u64, seed: u64) -> Tally {
    let corpus = corpus();
    let kinds: std::collections::BTreeSet<&str> = corpus
        .iter()
        .map(|b| Frame::decode(b).unwrap().kind())
        .collect();
    assert!(
        kinds.len() >= 16,
        "the corpus covers every frame kind: {kinds:?}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut me = core("me@h");
    me.spawned(1);
    let mut net = up_pair();
    let b = NodeName::new("b@h").unwrap();
    let mut pre_auth = me.accepted("attacker:1".into(), Time::ZERO);
    let mut t = 0u64;
    for case in 0..cases {
        tally.cases += 1;
        let bytes = mutate(&mut rng, &corpus);
        let Ok(frame) = Frame::decode(&bytes) else {
            continue;
        };
        tally.decoded += 1;
        assert_eq!(
            Frame::decode(&frame.encode()).as_ref(),
            Ok(&frame),
            "round trip of {bytes:?}"
        );
        // Before authentication: a few frames per connection, then a new one.
        t += 1000;
        me.frame(pre_auth, frame.clone(), Time(t));
        while let Some(e) = me.poll_effect() {
            assert!(
                !matches!(e, Effect::NodeUp { .. }),
                "a session came up without the cookie: {frame:?}"
            );
            assert!(
                !matches!(e, Effect::Deliver { .. }),
                "delivered before authentication: {frame:?}"
            );
        }
        if case % 4 == 3 {
            me.closed(pre_auth, "next".into(), Time(t));
            while me.poll_effect().is_some() {}
            pre_auth = me.accepted("attacker:1".into(), Time(t));
        }
        // After authentication: the frame arrives on b's session with a.
        if net.nodes[0].nodes().contains(&b) {
            net.inject(1, 0, frame);
            net.seen.iter_mut().for_each(Vec::clear);
            net.sent.clear();
        }
        if !net.nodes[0].nodes().contains(&b) || case % 2000 == 1999 {
            if !net.nodes[0].nodes().contains(&b) {
                tally.sessions_lost += 1;
            }
            net = up_pair();
        }
    }
    assert!(me.nodes().is_empty());
    // The node attacked before authentication still takes a real peer.
    let mut peer = core("peer@h");
    peer.connect("me@h".into(), None, Time(t));
    let pc = match peer.poll_effect() {
        Some(Effect::Dial { conn, .. }) => conn,
        other => panic!("expected a dial, got {other:?}"),
    };
    me.closed(pre_auth, "done".into(), Time(t));
    let mc = me.accepted("peer:1".into(), Time(t));
    peer.dialed(pc, Time(t));
    for _ in 0..10 {
        let to_me: Vec<Frame> = std::iter::from_fn(|| peer.poll_effect())
            .filter_map(|e| match e {
                Effect::Send { conn, frame } if conn == pc => Some(frame),
                _ => None,
            })
            .collect();
        for f in to_me {
            me.frame(mc, f, Time(t));
        }
        let to_peer: Vec<Frame> = std::iter::from_fn(|| me.poll_effect())
            .filter_map(|e| match e {
                Effect::Send { conn, frame } if conn == mc => Some(frame),
                _ => None,
            })
            .collect();
        for f in to_peer {
            peer.frame(pc, f, Time(t));
        }
    }
    assert_eq!(me.nodes(), vec![NodeName::new("peer@h").unwrap()]);
    tally
}

#[test]
fn mutated_frames_short() {
    let tally = fuzz(20_000, 1);
    assert!(tally.decoded > 1_000, "{tally:?}");
}

/// The long run: `COHORT_FUZZ_CASES` cases (default 1,000,000), seed
/// `COHORT_FUZZ_SEED` (default 2).
#[test]
#[ignore = "long fuzzing run; see the module docs for the command"]
fn mutated_frames_long() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (cases, seed) = (
        env("COHORT_FUZZ_CASES", 1_000_000),
        env("COHORT_FUZZ_SEED", 2),
    );
    let start = std::time::Instant::now();
    let tally = fuzz(cases, seed);
    println!(
        "fuzzed {} cases (seed {seed}) in {:.1?}: {} decoded, {} sessions ended by a hostile frame",
        tally.cases,
        start.elapsed(),
        tally.decoded,
        tally.sessions_lost
    );
}

/// A `Refuse` is a handshake frame: on an up session it takes the session
/// down (as a protocol error) instead of forgetting the connection while
/// the peer stays up.
#[test]
fn a_refusal_on_an_up_session_takes_it_down() {
    let mut net = up_pair();
    net.inject(
        1,
        0,
        Frame::Refuse {
            reason: RefuseReason::Protocol,
        },
    );
    assert!(net.nodes[0].nodes().is_empty(), "a still lists b");
    assert!(
        net.seen[0]
            .iter()
            .any(|e| matches!(e, Effect::NodeDown { .. })),
        "a told its driver that b is down"
    );
    // And the two can meet again.
    net.connect(0, 1);
    assert_eq!(net.nodes[0].nodes(), vec![NodeName::new("b@h").unwrap()]);
}

/// A snapshot says how many times each process joined a group: a few
/// bytes for any count. The long fuzzing run found that a mutated count
/// made the receiver expand billions of memberships (21 GB, killed); a
/// count above `MAX_JOINS` now makes the receiver ignore the snapshot.
#[test]
fn a_snapshot_cannot_announce_millions_of_memberships() {
    use cohort_proto::pg::{PgFrame, SyncGroup};
    let mut net = up_pair();
    let members = |net: &CoreNet| net.nodes[0].pg().view("pg").unwrap().members("huge").len();
    net.inject(
        1,
        0,
        Frame::Pg(PgFrame::Sync {
            scope: "pg".into(),
            stream: 1,
            seq: 1,
            groups: vec![SyncGroup {
                group: "huge".into(),
                members: vec![(1, 1_000_000, None)],
            }],
            more: false,
        }),
    );
    assert_eq!(members(&net), 0);
    // A count within the limit is taken as it is.
    net.inject(
        1,
        0,
        Frame::Pg(PgFrame::Sync {
            scope: "pg".into(),
            stream: 1,
            seq: 2,
            groups: vec![SyncGroup {
                group: "huge".into(),
                members: vec![(1, 3, None)],
            }],
            more: false,
        }),
    );
    assert_eq!(members(&net), 3);
    assert_eq!(net.nodes[0].nodes(), vec![NodeName::new("b@h").unwrap()]);
}
