//! Sessions are symmetric: after quiescence, `a` lists `b` up iff `b` lists
//! `a` up, each with the other's current creation.
//!
//! At every moment: no node lists itself, none lists a creation its peer
//! never had, and the `NodeUp`/`NodeDown` effects a core emitted agree with
//! the peer table it shows (what the runtime tells applications is what
//! the core believes).

use super::invariant::Invariant;
use crate::sim::Sim;

/// Symmetric sessions with the right creations.
pub const SESSIONS_SYMMETRIC: Invariant = Invariant {
    name: "sessions_symmetric",
    always: Some(always),
    eventually: Some(eventually),
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    for (a, node) in sim.nodes().iter().enumerate() {
        let Some(core) = node.core() else {
            continue;
        };
        let listed = core.nodes();
        let announced: Vec<_> = sim
            .ledger()
            .sessions
            .range((a, 0)..(a + 1, 0))
            .map(|(&(_, b), &c)| (b, c))
            .collect();
        let mut shown = Vec::new();
        for name in &listed {
            let Some(b) = sim.index_of(name) else {
                return Err(format!("n{a} lists unknown node {name}"));
            };
            if b == a {
                return Err(format!("n{a} lists itself as a peer"));
            }
            let c = core.cluster().peer_creation(name).expect("listed peer");
            if c > sim.nodes()[b].creation {
                return Err(format!(
                    "n{a} lists {name} with creation {c}, which it never had (now {})",
                    sim.nodes()[b].creation
                ));
            }
            shown.push((b, c));
        }
        shown.sort_unstable();
        if shown != announced {
            return Err(format!(
                "n{a}'s peer table {shown:?} differs from its NodeUp/NodeDown effects {announced:?}"
            ));
        }
    }
    Ok(())
}

pub(super) fn eventually(sim: &Sim) -> Result<(), String> {
    let nodes = sim.nodes();
    for (a, na) in nodes.iter().enumerate() {
        let Some(ca) = na.core() else {
            continue;
        };
        for (b, nb) in nodes.iter().enumerate() {
            if a == b {
                continue;
            }
            let ab = ca.cluster().peer_creation(&nb.name);
            let Some(cb) = nb.core() else {
                if let Some(c) = ab {
                    return Err(format!(
                        "n{a} lists n{b} (creation {c}) up, but n{b} is not running"
                    ));
                }
                continue;
            };
            let ba = cb.cluster().peer_creation(&na.name);
            let a_sees = ab.map(|c| (c, c == nb.creation));
            let b_sees = ba.map(|c| (c, c == na.creation));
            let ok = matches!(
                (a_sees, b_sees),
                (None, None) | (Some((_, true)), Some((_, true)))
            );
            if !ok {
                return Err(format!(
                    "asymmetric session: n{a}.{} sees n{b} as {ab:?}, n{b}.{} sees n{a} as {ba:?}",
                    na.creation, nb.creation
                ));
            }
        }
    }
    Ok(())
}
