//! No message, `Down` or `Exit` reaches a process after it ended.
//!
//! A process that exited has no mailbox; a core that still delivers to it
//! has lost track of its process table (or of an old incarnation).

use super::Invariant;
use crate::sim::Sim;

/// Deliveries only go to live processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeliveryToExited;

impl Invariant for NoDeliveryToExited {
    fn name(&self) -> &'static str {
        "no_delivery_to_exited"
    }

    fn always(&self, sim: &Sim) -> Result<(), String> {
        match sim.ledger().late_deliveries.first() {
            Some(s) => Err(format!("at {}us: {}", s.at.0, s.what)),
            None => Ok(()),
        }
    }
}
