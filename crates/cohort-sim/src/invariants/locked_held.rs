//! When a locked registration answers `Ok`, every member of its table
//! synced with the registering node holds the name for it: installed, or
//! staged under the name lock until the commit arrives.
//!
//! The simulator records, at the moment the answer arrives, what every
//! node of the registering node's global group synced with it both ways
//! showed; this file checks the nodes synced from before the registration
//! started and still in session with it.
//! A node that lost the session meanwhile released the lock, as in OTP,
//! and is not expected to hold it.

use super::invariant::Invariant;
use crate::sim::Sim;

/// Locked registrations are held everywhere when they answer.
pub const LOCKED_HELD: Invariant = Invariant {
    name: "locked_held",
    always: Some(always),
    eventually: None,
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    for ack in &sim.ledger().reg.locked_acks {
        for w in &ack.witnesses {
            let (s1, s2) = w.synced_since;
            if !w.session_up || s1 > ack.started || s2 > ack.started {
                continue;
            }
            if w.holds == Some(false) {
                return Err(format!(
                    "at {}us: locked {}/{} acknowledged to {} on n{} (started at {}us), but n{} (synced since {}us/{}us) neither holds nor has staged it",
                    ack.acked.0, ack.table, ack.name, ack.pid, ack.node, ack.started.0, w.node, s1.0, s2.0
                ));
            }
        }
    }
    Ok(())
}
