//! After every partition healed and the cluster settled, live nodes that
//! know each other are connected: the transitive mesh is complete.
//!
//! "Know each other" means: the current incarnation of one of them had a
//! session with the other and was not told to forget it since (a
//! disconnect, or the other leaving gracefully), so it keeps redialing; or
//! they have a common peer of their global group (it introduces each to
//! the other). Pairs where
//! one side disconnected the other are exempt from that rule: the mesh may
//! or may not bring them back together. Applied to every pair, the rule
//! makes a connected group a full mesh, except where nodes were told to
//! forget each other: a node does not learn a forgotten peer again from
//! gossip, so it introduces it to nobody.

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

/// Whether `a` and `c` are of one global group by the truth and by both
/// of their configurations.
fn meshes(sim: &Sim, a: NodeIdx, c: NodeIdx) -> bool {
    sim.same_group(a, c) && sim.counts(a, c) && sim.counts(c, a)
}

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let running: Vec<NodeIdx> = (0..sim.nodes().len())
        .filter(|&i| sim.nodes()[i].is_running())
        .collect();
    let ledger = sim.ledger();
    let mut missing = BTreeSet::new();
    for &a in &running {
        for &b in &running {
            // Other global groups are never meshed.
            if a >= b || !sim.same_group(a, b) || up(sim, a, b) {
                continue;
            }
            let remembered =
                ledger.remembers.contains(&(a, b)) || ledger.remembers.contains(&(b, a));
            // A common peer introduces them, unless they parted on
            // purpose. Introductions go no further than that: a node that
            // was told to forget a peer (a disconnect) does not learn it
            // again from gossip, so it cannot pass it on (seed 10039580:
            // every node that knew one side had forgotten the other).
            // The common peer must be of their global group on every
            // side: a node passes on only the nodes of its own group, and
            // learns only from its own group (seed 10001681: with one
            // node's definition listing an extra node, that node had
            // sessions with both but introduced neither).
            let introduced = !ledger.parted.contains(&pair(a, b))
                && running.iter().any(|&c| {
                    c != a
                        && c != b
                        && meshes(sim, a, c)
                        && meshes(sim, b, c)
                        && up(sim, a, c)
                        && up(sim, c, b)
                });
            if introduced || remembered {
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
