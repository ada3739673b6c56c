//! A node going down, as one observer's core sees it: every membership of
//! its processes goes at once (groups it alone filled, groups shared with
//! local processes, groups shared with another node), monitors hear each
//! of them once, and the work is done per group, not per member: the
//! observer makes no allocation per removed membership (counted with a
//! counting global allocator; one test in this binary so that nothing else
//! allocates meanwhile).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cohort_proto::pg::{PgEffect, PgEventKind};
use cohort_proto::pid::Pid;
use cohort_proto::Effect;
use common::corenet::CoreNet;

/// The system allocator, counting allocation calls.
struct Counting;

static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Groups only the dying node's processes belong to.
const ALONE: u64 = 200;
/// Its processes per group.
const PER: u64 = 100;

/// a (0) watches; b (1) and c (2) own processes. c's processes fill
/// `ALONE` groups alone, and share `shared-*` with b's and `local-*` with
/// a's. Returns c's membership count.
fn cluster() -> (CoreNet, usize) {
    let mut net = CoreNet::new(&["a@h", "b@h", "c@h"]);
    for i in 0..3 {
        let now = net.now;
        net.nodes[i].pg_start_scope("pg", now);
    }
    net.connect(0, 1);
    net.connect(0, 2);
    net.connect(1, 2);
    let now = net.now;
    let mut serial = 0;
    let mut join = |net: &mut CoreNet, node: usize, group: &str| {
        serial += 1;
        net.nodes[node].spawned(serial);
        let p = net.nodes[node].pid(serial);
        net.nodes[node]
            .pg_join("pg", group, &[p], None, now)
            .unwrap();
    };
    let mut of_c = 0;
    for g in 0..ALONE {
        for _ in 0..PER {
            join(&mut net, 2, &format!("alone-{g}"));
            of_c += 1;
        }
    }
    for g in 0..10 {
        for k in 0..PER {
            join(&mut net, 2, &format!("shared-{g}"));
            join(&mut net, 2, &format!("local-{g}"));
            of_c += 2;
            if k % 10 == 0 {
                join(&mut net, 1, &format!("shared-{g}"));
                join(&mut net, 0, &format!("local-{g}"));
            }
        }
    }
    net.settle();
    (net, of_c)
}

/// c's session on a closes; returns the allocation calls a made meanwhile.
fn c_goes_down(net: &mut CoreNet) -> usize {
    let c = net.nodes[2].name().clone();
    let conn = net.nodes[0]
        .cluster()
        .peer_conn(&c)
        .expect("a has a session with c");
    let now = net.now;
    let before = CALLS.load(Ordering::Relaxed);
    net.nodes[0].closed(conn, "closed by peer".into(), now);
    CALLS.load(Ordering::Relaxed) - before
}

#[test]
fn a_node_down_drops_its_memberships_per_group_not_per_member() {
    // Unwatched: nothing is built per removed membership.
    let (mut net, of_c) = cluster();
    let view = net.nodes[0].pg().view("pg").unwrap();
    let total = view.membership_count();
    let held = view.members("alone-0");
    let allocs = c_goes_down(&mut net);
    assert_eq!(view.membership_count(), total - of_c);
    let c = net.nodes[2].name().clone();
    for g in view.which_groups() {
        let m = view.members(&g);
        assert!(m.iter().all(|m| m.node() != &c), "{g} still lists c");
        let want = if g.starts_with("shared-") || g.starts_with("local-") {
            10
        } else {
            0
        };
        assert_eq!(m.len(), want, "{g}");
    }
    assert!(view.members("alone-0").is_empty());
    // A snapshot taken before is untouched.
    assert_eq!(held.len(), PER as usize);
    assert!(held.iter().all(|m| m.node() == &c));
    let touched = ALONE as usize + 20;
    // The session's own work (about 20 allocations here), nothing per
    // membership: the old drop built each group's list of removed pids
    // (1,345 allocations here).
    assert!(
        allocs < touched,
        "{allocs} allocations to drop {of_c} memberships in {touched} groups"
    );

    // Watched (twice): each group's memberships of c are reported once per
    // watcher, as one event.
    let (mut net, of_c) = cluster();
    net.nodes[0].pg_monitor("pg", None, 1).unwrap();
    net.nodes[0].pg_monitor("pg", None, 2).unwrap();
    while net.nodes[0].poll_effect().is_some() {}
    let c = net.nodes[2].name().clone();
    c_goes_down(&mut net);
    let mut left = [0usize; 3];
    let mut events = [0usize; 3];
    while let Some(e) = net.nodes[0].poll_effect() {
        if let Effect::Pg(PgEffect::Event { sub, event }) = e {
            assert_eq!(event.kind, PgEventKind::Leave);
            assert!(event.pids.iter().all(|p: &Pid| p.node() == &c));
            left[sub as usize] += event.pids.len();
            events[sub as usize] += 1;
        }
    }
    assert_eq!(left[1..], [of_c, of_c]);
    assert_eq!(events[1..], [ALONE as usize + 20, ALONE as usize + 20]);
}
