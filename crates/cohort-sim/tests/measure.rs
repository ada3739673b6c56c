//! `cohort-sim --measure`: the registry rows are measured in the mesh row's
//! run (one formation, one split), and must still measure what they say.

use cohort_sim::measure::{measure, measure_with};

/// Loading the registries after formation leaves the mesh row's
/// formation figures as the mesh alone gives them, and every registry
/// figure is measured.
#[test]
fn registries_ride_the_mesh_run() {
    let alone = measure(10, 1);
    let (mesh, regs) = measure_with(10, Some(1000), 1);
    let [pg, names] = regs.expect("registries measured");
    assert_eq!(mesh.form, alone.form);
    assert_eq!(mesh.form_traffic, alone.form_traffic);
    assert!(mesh.heal.is_some(), "the mesh healed");
    for (what, r) in [("pg", &pg), ("names", &names)] {
        assert_eq!((r.nodes, r.entries), (10, 1000));
        assert!(r.load.is_some(), "{what}: loaded");
        assert!(r.heal.is_some(), "{what}: healed");
        assert!(r.heal_traffic.bytes > 0, "{what}: heal traffic counted");
        assert!(
            r.per_op.0 > 0.0 && r.per_op.1 > 0.0,
            "{what}: {:?}",
            r.per_op
        );
    }
    assert!(pg.per_locked.is_none());
    let locked = names.per_locked.expect("locked registration measured");
    assert!(
        locked.0 > names.per_op.0,
        "a locked registration takes more frames than an eventual one: {locked:?} vs {:?}",
        names.per_op
    );
}

/// The heal carries the loaded entries only: the single operations of the
/// cost windows are undone before the split, so twice the entries take
/// about twice the heal bytes (with the cost windows' 400 names left in,
/// 2,000 names would take about 1.7 times what 1,000 take).
#[test]
fn heal_bytes_follow_the_loaded_entries() {
    let heal_bytes = |entries| {
        let [_, names] = measure_with(10, Some(entries), 1).1.expect("measured");
        names.heal_traffic.bytes as f64
    };
    let ratio = heal_bytes(2000) / heal_bytes(1000);
    assert!(
        (1.85..2.2).contains(&ratio),
        "2,000 names took {ratio:.2} times the heal bytes of 1,000"
    );
}

/// Once formed and loaded, a node's idle traffic is its ticks: one frame
/// to each peer per tick interval (1 s), nothing else (no peer lists,
/// digests or registry frames repeated while nothing changes).
#[test]
fn idle_traffic_is_ticks_only() {
    for nodes in [10, 30] {
        let (mesh, _) = measure_with(nodes, Some(1000), 1);
        let ticks = (nodes - 1) as u64;
        assert_eq!(
            mesh.idle_by_kind.into_iter().collect::<Vec<_>>(),
            vec![("tick", ticks)],
            "{nodes} nodes"
        );
        assert_eq!(mesh.idle_traffic.frames, ticks, "{nodes} nodes");
    }
}
