//! Unit tests of the name service state machine on one node core.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::auth::Cookie;
use crate::cluster::ClusterConfig;
use crate::{CoreConfig, Effect, NodeCore};

fn core(mode: Mode) -> NodeCore {
    let mut c = NodeCore::new(
        CoreConfig {
            name: NodeName::new("a@h").unwrap(),
            creation: 1,
            listen: None,
            cookie: Cookie::new("c"),
            cluster: ClusterConfig::default(),
            names: NamesConfig::empty()
                .table(TableConfig::new("t").mode(mode))
                .table(TableConfig::new("m").mode(mode).multiple_names(true)),
        },
        StdRng::seed_from_u64(1),
        Time::ZERO,
    );
    for s in 1..=3 {
        c.spawned(s);
    }
    c.with_names(Time::ZERO, |n, _| n.watch(0));
    c
}

fn reg(
    c: &mut NodeCore,
    op: u64,
    table: &str,
    name: &str,
    serial: u64,
) -> Result<bool, NamesError> {
    let args = RegisterArgs {
        table: table.into(),
        name: name.into(),
        pid: c.pid(serial),
        meta: Bytes::from_static(b"m"),
        policy: None,
        replace: false,
    };
    match c.names_register(Time::ZERO, op, args) {
        Outcome::Done(r) => r,
        Outcome::Pending => {
            let mut found = None;
            while let Some(e) = c.poll_effect() {
                if let Effect::Names(NamesEffect::Reply { op: o, result }) = e {
                    assert_eq!(o, op);
                    found = Some(result);
                }
            }
            found.expect("a reply: no peers to wait for")
        }
    }
}

fn drain(c: &mut NodeCore) -> Vec<Effect> {
    std::iter::from_fn(|| c.poll_effect()).collect()
}

#[test]
fn register_rules_in_both_modes() {
    for mode in [Mode::Locked, Mode::Eventual] {
        let mut c = core(mode);
        assert_eq!(reg(&mut c, 1, "t", "x", 1), Ok(true));
        assert_eq!(reg(&mut c, 2, "t", "x", 2), Err(NamesError::Taken));
        assert_eq!(
            reg(&mut c, 3, "t", "y", 1),
            Err(NamesError::AlreadyNamed("x".into()))
        );
        assert_eq!(reg(&mut c, 4, "m", "x", 1), Ok(true));
        assert_eq!(reg(&mut c, 5, "m", "y", 1), Ok(true));
        assert_eq!(reg(&mut c, 6, "t", "z", 9), Err(NamesError::NoProc));
        assert_eq!(
            reg(&mut c, 7, "nope", "z", 1),
            Err(NamesError::UnknownTable("nope".into()))
        );
        assert_eq!(c.names().whereis("t", "x"), Some(c.pid(1)));
        assert_eq!(c.names().registered_names("m"), vec!["x", "y"]);
        assert_eq!(c.names().name_count("m"), 2);
        assert_eq!(c.names().name_count("nope"), 0);
        // Alone, nothing is held for peers.
        assert!(!c.holds(), "{mode:?}");
        // An exit retracts every name of the process, with events.
        c.exited(1, ExitReason::Normal, Time::ZERO);
        let fx = drain(&mut c);
        let views = fx
            .iter()
            .filter(|e| matches!(e, Effect::Names(NamesEffect::View { entry: None, .. })))
            .count();
        assert_eq!(views, 3, "{mode:?}: {fx:?}");
        assert!(fx.contains(&Effect::Names(NamesEffect::Event {
            table: 0,
            event: NameEvent::Unregistered {
                name: "x".into(),
                pid: c.pid(1),
                reason: UnregisterReason::Exited(ExitReason::Normal),
            },
        })));
        assert!(c.names().registered_names("t").is_empty());
        assert_eq!(c.names().name_count("t"), 0);
        assert_eq!(reg(&mut c, 8, "t", "x", 2), Ok(true));
    }
}

#[test]
fn a_clash_kills_the_local_loser_and_keeps_the_winner() {
    let mut c = core(Mode::Eventual);
    assert_eq!(reg(&mut c, 1, "t", "x", 1), Ok(true));
    drain(&mut c);
    // A remote claim with an earlier stamp, as a snapshot would bring it.
    let remote = Pid::new(NodeName::new("b@h").unwrap(), 5, 1);
    let claim = Claim {
        name: "x".into(),
        pid: remote.clone(),
        meta: Bytes::new(),
        stamp: 0,
        policy: LossPolicy::Kill,
        supersedes: None,
    };
    c.with_names(Time::ZERO, |n, ctx| {
        n.add_claim(0, claim, ctx);
        n.pump(ctx);
    });
    let fx = drain(&mut c);
    assert_eq!(c.names().whereis("t", "x"), Some(remote.clone()));
    assert!(fx.contains(&Effect::Kill {
        serial: 1,
        reason: ExitReason::Killed("name conflict: x".into()),
    }));
    assert!(fx.contains(&Effect::Names(NamesEffect::Event {
        table: 0,
        event: NameEvent::ConflictResolved {
            name: "x".into(),
            winner: Some(remote),
            loser: c.pid(1),
            action: LossPolicy::Kill,
        },
    })));
    assert!(!c.processes().is_alive(1));
    assert_eq!(c.names().claims("t").len(), 1);
}

#[test]
fn locks_on_one_node_are_shared_by_requester_and_go_with_the_holder() {
    let mut c = core(Mode::Locked);
    let lock = |r: &str| LockId::new("res", r);
    let take = |c: &mut NodeCore, op, r: &str, s: u64| {
        let pid = c.pid(s);
        c.names_set_lock(Time::ZERO, op, lock(r), &pid, None, Some(0));
        drain(c)
            .into_iter()
            .find_map(|e| match e {
                Effect::Names(NamesEffect::Reply { result, .. }) => Some(result),
                _ => None,
            })
            .expect("a reply")
    };
    assert_eq!(take(&mut c, 1, "r1", 1), Ok(true));
    assert_eq!(take(&mut c, 2, "r2", 2), Ok(false));
    assert_eq!(take(&mut c, 3, "r1", 2), Ok(true));
    assert_eq!(
        c.names().lock_holders("res"),
        Some(("r1".into(), vec![c.pid(1), c.pid(2)]))
    );
    c.exited(1, ExitReason::Normal, Time::ZERO);
    let p2 = c.pid(2);
    c.names_del_lock(Time::ZERO, lock("r1"), &p2, None);
    assert_eq!(c.names().lock_holders("res"), None);
    assert_eq!(take(&mut c, 4, "r2", 3), Ok(true));
}

#[test]
fn claims_of_a_name_are_its_claims_of_the_whole_table() {
    let mut c = core(Mode::Eventual);
    assert_eq!(reg(&mut c, 1, "t", "x", 1), Ok(true));
    assert_eq!(reg(&mut c, 2, "t", "y", 2), Ok(true));
    drain(&mut c);
    // Two remote claims of x: the loser stays stored until its own node
    // drops it.
    for (node, stamp) in [("b@h", 0), ("c@h", 1)] {
        let claim = Claim {
            name: "x".into(),
            pid: Pid::new(NodeName::new(node).unwrap(), 5, 1),
            meta: Bytes::new(),
            stamp,
            policy: LossPolicy::Notify,
            supersedes: None,
        };
        c.with_names(Time::ZERO, |n, ctx| {
            n.add_claim(0, claim, ctx);
            n.pump(ctx);
        });
    }
    let names = c.names();
    for name in ["x", "y", "z"] {
        let all: Vec<Claim> = names
            .claims("t")
            .into_iter()
            .filter(|c| c.name == name)
            .collect();
        assert_eq!(names.claims_of("t", name), all, "{name}");
    }
    assert!(names.claims_of("t", "x").len() >= 2);
    assert!(names.claims_of("no such table", "x").is_empty());
}
