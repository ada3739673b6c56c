//! Property test: any sequence of frames from an unauthenticated peer never
//! panics the core, never brings a session up without the cookie, and
//! leaves the node able to accept a real peer afterwards.

use bytes::Bytes;
use cohort_proto::auth::Cookie;
use cohort_proto::cluster::ClusterConfig;
use cohort_proto::pid::{NodeName, Pid};
use cohort_proto::proto::{Frame, Hello, PeerInfo, RefuseReason, PROTOCOL_VERSION};
use cohort_proto::time::Time;
use cohort_proto::{CoreConfig, Effect, NodeCore};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

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
