//! When a locked registration answers `Ok`, every member of its table
//! synced with the registering node holds the name for it: installed, or
//! staged under the name lock until the commit arrives.
//!
//! The simulator checks this at the moment the answer is recorded, on
//! every node of the registering node's global group that was synced with
//! it, both ways, from before the registration started and still is.
//! A node that lost the session meanwhile released the lock, as in OTP,
//! and is not expected to hold it.

use super::Invariant;
use crate::sim::Sim;

/// Locked registrations are held everywhere when they answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockedHeld;

impl Invariant for LockedHeld {
    fn name(&self) -> &'static str {
        "locked_held"
    }

    fn always(&self, sim: &Sim) -> Result<(), String> {
        match sim.ledger().reg.locked_unheld.first() {
            Some(s) => Err(format!("at {}us: {}", s.at.0, s.what)),
            None => Ok(()),
        }
    }
}
