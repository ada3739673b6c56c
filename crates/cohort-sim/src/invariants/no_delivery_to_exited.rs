//! No message, `Down` or `Exit` reaches a process after it ended.
//!
//! A process that exited has no mailbox; a core that still delivers to it
//! has lost track of its process table (or of an old incarnation).

use super::invariant::Invariant;
use crate::sim::Sim;

/// Deliveries only go to live processes.
pub const NO_DELIVERY_TO_EXITED: Invariant = Invariant {
    name: "no_delivery_to_exited",
    always: Some(always),
    eventually: None,
};

pub(super) fn always(sim: &Sim) -> Result<(), String> {
    match sim.ledger().late_deliveries.first() {
        Some(s) => Err(format!("at {}us: {}", s.at.0, s.what)),
        None => Ok(()),
    }
}
