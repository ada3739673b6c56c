//! After every partition healed and the cluster settled, live nodes that
//! know each other are connected: the transitive mesh is complete.
//!
//! "Know each other" means: the current incarnation of one of them had a
//! session with the other and was not told to forget it since (a
//! disconnect, or the other leaving gracefully), so it keeps redialing; or
//! they are in one connected group (the mesh introduces everyone in a group
//! to everyone else). Pairs where one side disconnected the other are
//! exempt from the group rule: the mesh may or may not bring them back
//! together.

use std::collections::BTreeSet;

use super::invariant::Invariant;
use crate::ledger::pair;
use crate::net::NodeIdx;
use crate::sim::Sim;

/// Full mesh after quiescence.
pub const FULL_MESH: Invariant = Invariant {
    name: "full_mesh",
    always: None,
    eventually: Some(eventually),
};

fn up(sim: &Sim, a: NodeIdx, b: NodeIdx) -> bool {
    let (na, nb) = (&sim.nodes()[a], &sim.nodes()[b]);
    let side = |x: &crate::sim::SimNode, y: &crate::sim::SimNode| {
        x.core().and_then(|c| c.cluster().peer_creation(&y.name)) == Some(y.creation)
    };
    side(na, nb) && side(nb, na)
}

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let running: Vec<NodeIdx> = (0..sim.nodes().len())
        .filter(|&i| sim.nodes()[i].is_running())
        .collect();
    let ledger = sim.ledger();
    // Groups connected by up sessions (union-find over running nodes).
    let mut group: Vec<NodeIdx> = (0..sim.nodes().len()).collect();
    fn root(g: &mut [NodeIdx], mut x: NodeIdx) -> NodeIdx {
        while g[x] != x {
            g[x] = g[g[x]];
            x = g[x];
        }
        x
    }
    for &a in &running {
        for &b in &running {
            if a < b && sim.same_group(a, b) && up(sim, a, b) {
                let (ra, rb) = (root(&mut group, a), root(&mut group, b));
                group[ra] = rb;
            }
        }
    }
    let mut missing = BTreeSet::new();
    for &a in &running {
        for &b in &running {
            // Other global groups are never meshed.
            if a >= b || !sim.same_group(a, b) || up(sim, a, b) {
                continue;
            }
            let remembered =
                ledger.remembers.contains(&(a, b)) || ledger.remembers.contains(&(b, a));
            let same_group =
                root(&mut group, a) == root(&mut group, b) && !ledger.parted.contains(&pair(a, b));
            if same_group || remembered {
                missing.insert((a, b));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = missing.iter().map(|(a, b)| format!("n{a}-n{b}")).collect();
        Err(format!("not connected after settling: {}", list.join(" ")))
    }
}
