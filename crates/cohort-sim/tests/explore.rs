//! The exhaustive checker on small cases (a few seconds in a release
//! build, under a minute in debug): every interleaving passes the
//! contract's invariants on the current core. With the fix of "unregister
//! tells the truth" reverted in the core, the first test fails
//! (`unregister_targets_claim` in the eventual table: the late forwarded
//! unregister removed the newer claim; `unregister_applied` with the
//! partition: `Ok` for an unregister never applied).

use cohort_sim::explore::case::{parse_ops, Case, Choice, TableMode};
use cohort_sim::explore::{explore, replay};

fn case(setup: &str, ops: &str, mode: TableMode, partition: bool) -> Case {
    Case {
        nodes: 3,
        setup: parse_ops(setup).expect("valid setup"),
        ops: parse_ops(ops).expect("valid ops"),
        mode,
        partition,
        crash: false,
        timers: 4,
    }
}

/// A forwarded unregister racing the holder's own unregister and
/// re-registration (the late request must spare the newer claim), and a
/// forwarded unregister cut off by a partition (its answer must not be
/// `Ok`): every schedule passes, in both modes.
#[test]
fn every_interleaving_of_a_forwarded_unregister_keeps_the_contract() {
    for mode in [TableMode::Locked, TableMode::Eventual] {
        for (ops, partition) in [
            ("n2.p1:unreg:x,n0.p1:unreg:x,n0.p1:reg:x", false),
            ("n2.p1:unreg:x", true),
        ] {
            let c = case("n0.p1:reg:x", ops, mode, partition);
            let r = explore(&c, 1_000_000, true);
            assert!(!r.truncated, "{mode} {ops}: not exhaustive");
            assert!(r.schedules > 1, "{mode} {ops}: {} schedules", r.schedules);
            if let Some((v, s)) = &r.violation {
                let s: Vec<String> = s.iter().map(Choice::to_string).collect();
                panic!(
                    "{mode} {ops}: {}: {} (schedule {})",
                    v.invariant,
                    v.what,
                    s.join(",")
                );
            }
        }
    }
}

/// Two registrations of one name on two nodes (in the eventual table with
/// one node cut off and healed at any point): one winner by the rank on
/// every node at the end.
#[test]
fn every_interleaving_of_a_clash_settles_on_one_winner() {
    for (mode, partition) in [(TableMode::Locked, false), (TableMode::Eventual, true)] {
        let c = case("", "n0.p1:reg:x,n1.p1:reg:x", mode, partition);
        let r = explore(&c, 1_000_000, true);
        assert!(!r.truncated, "{mode}: not exhaustive");
        assert!(r.violation.is_none(), "{mode}: {:?}", r.violation);
        assert!(r.schedules > 4, "{mode}: {} schedules", r.schedules);
    }
}

/// The reductions lose no schedule's end state: without sleep sets and
/// the cache the same case has the same verdict, over many more schedules.
#[test]
fn the_reductions_agree_with_the_full_walk() {
    let c = case(
        "n0.p1:reg:x",
        "n2.p1:unreg:x,n0.p1:unreg:x,n0.p1:reg:x",
        TableMode::Eventual,
        false,
    );
    let reduced = explore(&c, 1_000_000, true);
    let full = explore(&c, 1_000_000, false);
    assert!(reduced.violation.is_none() && full.violation.is_none());
    assert!(full.schedules > reduced.schedules);
}

/// A schedule replays to the same verdict: the late forwarded unregister
/// of the first case, delivered last, finds the newer claim spared.
#[test]
fn a_schedule_replays() {
    let c = case(
        "n0.p1:reg:x",
        "n2.p1:unreg:x,n0.p1:unreg:x,n0.p1:reg:x",
        TableMode::Eventual,
        false,
    );
    let s = cohort_sim::explore::case::parse_schedule("o0,o1,o2,d0.0>1,d0.1>2,d2.1>0")
        .expect("valid schedule");
    let w = replay(&c, &s, false).expect("replayable");
    assert!(w.violation.is_none(), "{:?}", w.violation);
}
