//! A locked-mode registration never succeeds twice for one name within one
//! connected partition.
//!
//! The simulator records every acknowledged registration in the locked
//! table, and with it the earlier registrations of the same name whose
//! holders still held it at that moment (alive, not unregistered,
//! replaced or exited at their origin) and what every node synced with the
//! registering node showed. A violation is an earlier holder, acknowledged
//! before the new registration started, on a node synced with the
//! registering node, both ways, from before the new registration started
//! and still in session with it at the acknowledgement: the lock should
//! have refused the second one. `re_register` is exempt (it takes held
//! names on purpose).

use super::invariant::Invariant;
use crate::sim::Sim;

/// Locked registrations are exclusive in a connected partition.
pub const LOCKED_ONCE: Invariant = Invariant {
    name: "locked_once",
    always: Some(always),
    eventually: None,
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    for ack in &sim.ledger().reg.locked_acks {
        if ack.replace {
            continue;
        }
        for rival in &ack.rivals {
            if rival.acked >= ack.started {
                continue;
            }
            // Only a node synced with the registering node, both ways,
            // and still in session with it, must have refused.
            let Some(w) = ack.witness(rival.node) else {
                continue;
            };
            let (s1, s2) = w.synced_since;
            if w.session_up && s1 <= ack.started && s2 <= ack.started {
                let (i, j) = (ack.node, rival.node);
                return Err(format!(
                    "at {}us: locked {}/{} acknowledged to {} on n{i} (started at {}us) while {} (acked at {}us on n{j}) held it; n{i} and n{j} synced since {}us/{}us",
                    ack.acked.0, ack.table, ack.name, ack.pid, ack.started.0, rival.pid, rival.acked.0, s1.0, s2.0
                ));
            }
        }
    }
    Ok(())
}
