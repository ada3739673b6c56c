//! Every acknowledged `unregister` was applied: when an unregister answers
//! `Ok`, the holder's node no longer holds the claim the caller saw as the
//! holder's when it called (pid and stamp). A forwarded unregister whose
//! answer does not come answers `OutcomeUnknown`, never `Ok`.

use super::invariant::Invariant;
use crate::sim::Sim;

/// An `Ok` from `unregister` means the holder's node retracted the claim.
pub const UNREGISTER_APPLIED: Invariant = Invariant {
    name: "unregister_applied",
    always: Some(always),
    eventually: None,
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    match sim.ledger().reg.unapplied.first() {
        Some(m) => Err(m.clone()),
        None => Ok(()),
    }
}
