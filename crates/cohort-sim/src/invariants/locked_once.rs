//! A locked-mode registration never succeeds twice for one name within one
//! connected partition.
//!
//! The simulator records every acknowledged registration in the locked
//! table. When another one for the same name is acknowledged, it checks
//! whether the earlier holder still held the name (alive, not unregistered,
//! replaced or exited at its origin) on a node that was synced with the
//! registering node, both ways, from before the new registration started
//! until its acknowledgement. If so, the lock should have refused the
//! second one: that is a violation. `re_register` is exempt (it takes held
//! names on purpose).

use super::Invariant;
use crate::sim::Sim;

/// Locked registrations are exclusive in a connected partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockedOnce;

impl Invariant for LockedOnce {
    fn name(&self) -> &'static str {
        "locked_once"
    }

    fn always(&self, sim: &Sim) -> Result<(), String> {
        match sim.ledger().reg.locked_doubles.first() {
            Some(s) => Err(format!("at {}us: {}", s.at.0, s.what)),
            None => Ok(()),
        }
    }
}
