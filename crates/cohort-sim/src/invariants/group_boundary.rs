//! No name or process-group member crosses a global-group boundary.
//!
//! At every step: no node shows a member (any scope) or a name claim (any
//! table) owned by a node outside its own global group, and no answer to a
//! cross-group `whereis` names a pid outside the answering node's group.
//! After quiescence: every own-group pair with a session up both ways is
//! synced both ways (its definition check passed), so that names and
//! groups replicate between them.

use super::invariant::Invariant;
use super::pg_views::view_of;
use crate::registry::{SCOPES, TABLES};
use crate::sim::Sim;

/// Entries stay inside their global group.
pub const GROUP_BOUNDARY: Invariant = Invariant {
    name: "group_boundary",
    always: Some(always),
    eventually: Some(eventually),
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    let reg = &sim.ledger().reg;
    if let Some(s) = reg.crossings.first() {
        return Err(format!("at {}us: {}", s.at.0, s.what));
    }
    if !sim.config().groups {
        return Ok(());
    }
    for (o, node) in sim.nodes().iter().enumerate() {
        let Some(core) = node.core() else { continue };
        let foreign = |p: &cohort_proto::pid::Pid| {
            sim.index_of(p.node()).is_none_or(|b| !sim.same_group(o, b))
        };
        for scope in SCOPES {
            for (g, members) in view_of(sim, o, scope).unwrap_or_default() {
                if let Some(p) = members.keys().find(|p| foreign(p)) {
                    return Err(format!(
                        "n{o} (group {}) shows {p} of another group in {scope}/{g}",
                        sim.group_of(o)
                    ));
                }
            }
        }
        for table in TABLES {
            if let Some(c) = core.names().claims(table).iter().find(|c| foreign(&c.pid)) {
                return Err(format!(
                    "n{o} (group {}) holds a claim of {table}/{} by {} of another group",
                    sim.group_of(o),
                    c.name,
                    c.pid
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let reg = &sim.ledger().reg;
    let n = sim.nodes().len();
    for a in 0..n {
        for b in 0..n {
            if a == b || !sim.same_group(a, b) {
                continue;
            }
            let (na, nb) = (&sim.nodes()[a], &sim.nodes()[b]);
            let up = |x: &crate::sim::SimNode, y: &crate::sim::SimNode| {
                x.core().and_then(|c| c.cluster().peer_creation(&y.name)) == Some(y.creation)
            };
            if up(na, nb) && up(nb, na) && !reg.synced.contains_key(&(a, b)) {
                return Err(format!(
                    "n{a} and n{b} (group {}) have a session but n{a} never synced n{b}",
                    sim.group_of(a)
                ));
            }
        }
    }
    Ok(())
}
